"""Property-based tests (hypothesis) of the input contract of every public metric and of ``pair_videos``.

DESIGN s2: a video is ``[B, T, 3, H, W]``, uint8 in [0, 255] or float in [0, 1] (plus a small tolerance);
anything else -- wrong type, rank, channel count or dtype, values outside [0, 1], NaN/Inf, too few frames,
an empty frame, generated/reference batches of different sizes -- raises a ValueError that names the argument
and what was seen. Nothing is clamped or reordered silently, and nothing else (a RuntimeError from inside a
backbone, an IndexError, a TypeError) may escape.

Every metric exported by :mod:`metrics` runs here with small random backbones (the ``smoke`` preset's
arguments), on inputs drawn by hypothesis: each example is either valid (in many dtypes, memory layouts,
sizes and contents) or carries exactly one contract violation. The oracle below re-states the contract
independently of :func:`metrics.video.check_video`; valid inputs must give a finite value (or the documented
NaN / +inf), must leave the input tensors untouched, and a rejected update must leave the metric's state
untouched. Metric-specific rules (SSIM windows, AMT-S and RAFT minimum sizes, FVD's 16-frame clips) are
stated per case.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwbdh_callbacks.cli import VIDEO_EXTENSIONS, pair_videos
from metrics import (
    CSIM,
    FID,
    FVD,
    PSNR,
    SSIM,
    AestheticQuality,
    BackgroundConsistency,
    DynamicDegree,
    EdgeFID,
    FrechetDistance,
    ImagingQuality,
    MotionSmoothness,
    PixelCSIM,
    SubjectConsistency,
    WinRate,
    WordErrorRate,
)
from metrics.backbones.smoke import block_matching_flow_ref, tiny_image_encoder_ref
from metrics.functional.speech import Outcome

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # NaN-on-empty and small-frame warnings

TOL = 1e-3  # DESIGN s2 "small tolerance" (metrics.video.FLOAT_RANGE_TOLERANCE)
#: JWBDH_PROPERTY_SCALE=20 runs twenty times more examples (a deeper search than CI's two-minute budget).
SCALE = max(1, int(os.environ.get("JWBDH_PROPERTY_SCALE", "1")))
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is several times faster on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ the oracle
def contract_violation(x: object, min_frames: int) -> str | None:
    """DESIGN s2, stated independently: the first rule ``x`` breaks, or None for a valid video batch."""
    if not isinstance(x, torch.Tensor):
        return "type"
    if x.ndim != 5:
        return "rank"
    if x.shape[2] != 3:
        return "channels"
    if x.dtype != torch.uint8 and not x.is_floating_point():
        return "dtype"
    if x.shape[1] < min_frames:
        return "frames"
    if x.shape[3] < 1 or x.shape[4] < 1:
        return "size"
    if x.is_floating_point() and x.numel() > 0:
        values = x.detach().to(torch.float64)
        if not torch.isfinite(values).all():
            return "nonfinite"
        if float(values.min()) < -TOL or float(values.max()) > 1.0 + TOL:
            return "range"
    return None


def check_message(message: str, name: str, rule: str, x: object) -> None:
    """The message names the argument and says what was seen (DESIGN s2)."""
    assert f"`{name}`" in message, message
    if rule == "type":
        assert type(x).__name__ in message, message
    elif rule in ("rank", "channels", "dtype", "frames", "size"):
        assert str(tuple(x.shape)) in message, message
        if rule == "dtype":
            assert str(x.dtype) in message, message
        if rule == "rank" and x.ndim == 4:
            assert "unsqueeze(0)" in message, message  # a single video: the hint says how to batch it
        if rule == "channels" and x.ndim == 5 and x.shape[-1] == 3:
            assert "permute" in message, message  # channels-last: the hint says how to reorder
    elif rule == "nonfinite":
        assert "NaN or Inf" in message, message
    elif rule == "range":
        assert "[0, 1]" in message, message


def snapshot(metric: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in metric.metric_state.items()}


def assert_state_unchanged(metric: Any, before: dict[str, torch.Tensor]) -> None:
    after = metric.metric_state
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), f"a rejected update changed state {key!r}"


# ------------------------------------------------------------------------------------------- video inputs
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
BAD_DTYPES = tuple(
    d
    for d in (
        torch.bool,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        getattr(torch, "uint16", None),
        torch.complex64,
        torch.complex128,
    )
    if d is not None
)
VIDEO_FAULTS = (
    "non_tensor",
    "rank",
    "channels",
    "channels_last_shape",
    "dtype",
    "range",
    "nonfinite",
    "few_frames",
    "empty_frame",
)


def make_video(
    shape: tuple[int, int, int, int], dtype: torch.dtype, content: str, layout: str, seed: int
) -> torch.Tensor:
    """A valid ``[B, T, 3, H, W]`` batch of ``dtype`` with the given content and memory layout."""
    b, t, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    if content == "black":
        x = torch.zeros(b, t, 3, h, w, dtype=torch.float64)
    elif content == "white":
        x = torch.ones(b, t, 3, h, w, dtype=torch.float64)
    elif content == "static":
        x = torch.rand(b, 1, 3, h, w, generator=gen, dtype=torch.float64).expand(b, t, 3, h, w).contiguous()
    elif content == "tolerance" and dtype != torch.uint8:  # just outside [0, 1], inside the tolerance
        x = torch.rand(b, t, 3, h, w, generator=gen, dtype=torch.float64) * (1 + 0.8 * TOL) - 0.4 * TOL
    else:
        x = torch.rand(b, t, 3, h, w, generator=gen, dtype=torch.float64)
    x = (x * 255).round().clamp(0, 255).to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)
    if layout == "channels_last":  # logical [B, T, 3, H, W], channels-last strides
        x = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    elif layout == "strided":  # a non-contiguous view
        wide = torch.zeros(b, t, 3, h, 2 * w, dtype=x.dtype)
        wide[..., ::2] = x
        x = wide[..., ::2]
    elif layout == "expanded" and b > 0:  # stride 0 over the batch
        x = x[:1].expand(b, t, 3, h, w)
    return x


@dataclass(frozen=True)
class Case:
    """One metric configuration and the rules that are specific to it."""

    name: str
    factory: Callable[[], Any]
    paired: bool
    min_frames: int = 1
    max_b: int = 2
    max_t: int = 4
    hw: tuple[int, int] = (1, 24)  # range of frame sides for valid draws (1 px sides are drawn too)
    bounds: tuple[float, float] = (-math.inf, math.inf)
    extra_rule: Callable[[Any, Any], tuple[str, str] | None] | None = None  # -> (name, regex) or None
    nan_rule: Callable[[Any, Any], bool] | None = None  # True: NaN is the documented result
    inf_ok: bool = False
    examples: int = 30
    frechet: bool = False  # update(generated, reference=None, *, real=None): None means a one-sided call


def _no_videos(gen: torch.Tensor, ref: torch.Tensor | None) -> bool:
    return gen.shape[0] == 0


def _pooled_frames(gen: torch.Tensor, ref: torch.Tensor | None) -> bool:
    """Pooled FID (jwbdh-v1 protocol: first 16 frames): NaN with fewer than 2 frames on a side."""
    return min(gen.shape[0] * min(gen.shape[1], 16), ref.shape[0] * min(ref.shape[1], 16)) < 2


def _single_frame_pairs(gen: torch.Tensor, ref: torch.Tensor | None) -> bool:
    """Per-video FID / E-FID: a pair with a one-frame side gets no score (the script's np.cov is NaN), so a
    batch of such pairs leaves nothing to average: NaN."""
    return min(gen.shape[1], ref.shape[1]) < 2


def _pooled_videos(gen: torch.Tensor, ref: torch.Tensor | None) -> bool:
    """Pooled standard FVD: one clip per video, NaN with fewer than 2 clips on a side."""
    return gen.shape[0] < 2


def _always(gen: torch.Tensor, ref: torch.Tensor | None) -> bool:
    return True  # identity CSIM on noise: random MTCNN finds no face, the documented NaN


def _ssim_rule(minimum: int, pattern: str) -> Callable[[Any, Any], tuple[str, str] | None]:
    def rule(gen: torch.Tensor, ref: torch.Tensor) -> tuple[str, str] | None:
        # generated frames are resized to the reference size, so the reference decides
        if gen.shape[0] > 0 and min(ref.shape[-2:]) < minimum:
            return (
                "",
                pattern,
            )  # the message does not name the argument (test_ssim_small_frame_error_names_...)
        return None

    return rule


def _ms_vbench_rule(videos: torch.Tensor, _: Any) -> tuple[str, str] | None:
    """VBench mode: frames padding (to /16) under 64 px crash VBench, so they are a ValueError here."""
    padded = [16 * math.ceil(side / 16) for side in videos.shape[-2:]]
    if videos.shape[0] > 0 and min(padded) < 64:
        return "videos", r"needs 128"
    return None


def _raft_rule(videos: torch.Tensor, _: Any) -> tuple[str, str] | None:
    """Real RAFT needs >= 121 px; at fps 8 every frame is sampled, so T >= 2 means flow is computed."""
    if videos.shape[0] > 0 and videos.shape[1] >= 2 and min(videos.shape[-2:]) < 121:
        return "videos", r"at least 121 px"
    return None


def _tiny(dim: int, uint8: bool = False) -> Any:
    return tiny_image_encoder_ref(dim, uint8_input=uint8)


CASES = (
    Case(
        "FID",
        lambda: FID(feature_extractor=_tiny(16, True), num_features=16),
        paired=True,
        bounds=(0, math.inf),
        nan_rule=_single_frame_pairs,
        frechet=True,
    ),
    Case(
        "FID-pooled",
        lambda: FID(feature_extractor=_tiny(16, True), num_features=16, mode="pooled"),
        paired=True,
        bounds=(0, math.inf),
        nan_rule=_pooled_frames,
        frechet=True,
    ),
    Case(
        "EdgeFID",
        lambda: EdgeFID(feature_extractor=_tiny(16, True), num_features=16),
        paired=True,
        bounds=(0, math.inf),
        nan_rule=_single_frame_pairs,
        frechet=True,
    ),
    # jwbdh-v1 FVD keeps the script's -2e-6 * 400 trace term: identical clips score -8e-4.
    Case("FVD", lambda: FVD(weights=None), paired=True, bounds=(-8e-4, math.inf), examples=20, frechet=True),
    Case(
        "FVD-standard",
        lambda: FVD(weights=None, protocol="standard"),
        paired=True,
        min_frames=16,
        max_t=17,
        hw=(1, 12),
        bounds=(0, math.inf),
        nan_rule=_pooled_videos,
        examples=15,
        frechet=True,
    ),
    Case(
        "SSIM",
        SSIM,
        paired=True,
        bounds=(-1, 1),
        extra_rule=_ssim_rule(3, r"smaller side >= 3 px"),
    ),
    Case(
        "SSIM-gaussian",
        lambda: SSIM(window="gaussian"),
        paired=True,
        hw=(9, 16),
        bounds=(-1, 1),
        extra_rule=_ssim_rule(11, r"at least 11x11 px"),
    ),
    Case("PSNR", PSNR, paired=True, bounds=(0, math.inf), inf_ok=True),
    Case("PSNR-capped", lambda: PSNR(max_psnr=100.0), paired=True, bounds=(0, 100)),
    Case("PixelCSIM", PixelCSIM, paired=True, bounds=(0, 1)),
    Case("CSIM-pixel", CSIM, paired=True, bounds=(0, 1)),
    Case(
        "CSIM-identity",
        lambda: CSIM(mode="identity", weights=None),
        paired=True,
        hw=(1, 40),
        bounds=(-1, 1),
        nan_rule=_always,
        examples=20,
    ),
    Case(
        "SubjectConsistency",
        lambda: SubjectConsistency(feature_extractor=_tiny(16)),
        paired=False,
        min_frames=2,
        bounds=(0, 1),
    ),
    Case(
        "BackgroundConsistency",
        lambda: BackgroundConsistency(feature_extractor=_tiny(16)),
        paired=False,
        min_frames=2,
        bounds=(0, 1),
    ),
    Case(
        "MotionSmoothness",
        lambda: MotionSmoothness(weights=None, small_frames="pad"),  # the smoke preset's random AMT-S
        paired=False,
        min_frames=3,
        max_t=5,
        hw=(1, 20),
        bounds=(0, 1),
        examples=20,
    ),
    Case(
        "MotionSmoothness-vbench",
        lambda: MotionSmoothness(weights=None),  # frames < 113 px never reach the network
        paired=False,
        min_frames=3,
        max_t=5,
        hw=(40, 80),
        bounds=(0, 1),
        extra_rule=_ms_vbench_rule,
    ),
    Case(
        "DynamicDegree",
        lambda: DynamicDegree(flow_model=block_matching_flow_ref(), fps=8),
        paired=False,
        max_t=5,
        bounds=(0, 1),
    ),
    Case(
        "DynamicDegree-raft",
        lambda: DynamicDegree(weights=None, fps=8),  # real RAFT architecture, random weights
        paired=False,
        hw=(1, 40),
        bounds=(0, 1),
        extra_rule=_raft_rule,
        examples=20,
    ),
    Case(
        "AestheticQuality",
        lambda: AestheticQuality(feature_extractor=_tiny(768), head_weights=None),  # smoke preset
        paired=False,
    ),
    Case("ImagingQuality", lambda: ImagingQuality(backbone=_tiny(1)), paired=False),
)


@st.composite
def sizes(draw: st.DrawFn, case: Case, b: int | None = None) -> tuple[int, int, int, int]:
    lo, hi = case.hw
    side = st.one_of(st.integers(lo, hi), st.integers(1, 4))
    return (
        draw(st.integers(0, case.max_b)) if b is None else b,
        draw(st.integers(case.min_frames, case.max_t)),
        draw(side),
        draw(side),
    )


@st.composite
def valid_videos(draw: st.DrawFn, case: Case, b: int | None = None) -> torch.Tensor:
    shape = draw(sizes(case, b))
    dtype = draw(st.sampled_from((torch.uint8, *FLOAT_DTYPES)))
    content = draw(st.sampled_from(("random", "random", "black", "white", "static", "tolerance")))
    layout = draw(st.sampled_from(("contiguous", "contiguous", "channels_last", "strided", "expanded")))
    return make_video(shape, dtype, content, layout, draw(st.integers(0, 2**16)))


@st.composite
def faulty_videos(draw: st.DrawFn, case: Case, fault: str, b: int) -> object:
    """A batch with exactly one violation of the data contract."""
    good = draw(valid_videos(case, b=max(b, 1) if fault in ("range", "nonfinite") else b))
    bb, t, h, w = good.shape[0], good.shape[1], good.shape[3], good.shape[4]
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    if fault == "non_tensor":
        small = good[:1, :2, :, :4, :4].to(torch.uint8)
        return draw(
            st.sampled_from(
                (small.numpy(), small.tolist(), None, "clip.mp4", 0.5, {"videos": small}, (small,))
            )
        )
    if fault == "rank":
        ndim = draw(st.sampled_from((0, 1, 2, 3, 4, 4, 6)))
        if ndim == 4 and bb > 0 and draw(st.booleans()):
            return good[0]  # a single video without its batch dimension
        shape = draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim))
        return torch.rand(shape, generator=gen)
    if fault == "channels":
        c = draw(st.sampled_from((0, 1, 2, 4)))
        return torch.randint(0, 256, (bb, t, c, h, w), generator=gen, dtype=torch.int64).to(torch.uint8)
    if fault == "channels_last_shape":
        h = h if h != 3 else 4
        return torch.rand(bb, t, h, w, 3, generator=gen)
    if fault == "dtype":
        dtype = draw(st.sampled_from(BAD_DTYPES))
        if dtype == torch.bool:
            return torch.rand(bb, t, 3, h, w, generator=gen) > 0.5
        if dtype.is_complex:
            return torch.rand(bb, t, 3, h, w, generator=gen, dtype=dtype)
        return (
            torch.zeros(bb, t, 3, h, w, dtype=dtype)
            if dtype == getattr(torch, "uint16", None)
            else (torch.randint(0, 2, (bb, t, 3, h, w), generator=gen, dtype=torch.int64).to(dtype))
        )
    if fault == "few_frames":
        return torch.rand(bb, draw(st.integers(0, case.min_frames - 1)), 3, h, w, generator=gen)
    if fault == "empty_frame":
        hh, ww = draw(st.sampled_from(((0, w), (h, 0), (0, 0))))
        return torch.zeros(bb, t, 3, hh, ww, dtype=draw(st.sampled_from((torch.uint8, torch.float32))))
    x = good.to(draw(st.sampled_from(FLOAT_DTYPES))).contiguous().clone()  # float, B >= 1
    flat = x.view(-1)
    index = draw(st.integers(0, flat.numel() - 1))
    if fault == "nonfinite":
        flat[index] = draw(st.sampled_from((float("nan"), float("inf"), float("-inf"))))
        if draw(st.booleans()):
            flat[draw(st.integers(0, flat.numel() - 1))] = float("nan")
        return x
    kind = draw(st.sampled_from(("x255", "signed", "high", "low")))
    if kind == "x255":  # [0, 255] floats
        x = x * 255
        x.view(-1)[index] = 255
    elif kind == "signed":  # [-1, 1] model outputs
        x = x * 2 - 1
        x.view(-1)[index] = -1
    elif kind == "high":
        flat[index] = draw(st.floats(1.01, 6e4))
    else:
        flat[index] = draw(st.floats(-6e4, -0.01))
    return x


def _update(case: Case, metric: Any, gen: object, ref: object) -> None:
    if case.paired:
        metric.update(gen, ref)
    else:
        metric.update(gen)


def _check_result(case: Case, metric: Any, gen: torch.Tensor, ref: torch.Tensor | None) -> None:
    value = float(metric.compute())
    documented_nan = _no_videos(gen, ref) or (case.nan_rule is not None and case.nan_rule(gen, ref))
    if math.isnan(value):
        assert documented_nan, f"{case.name} returned NaN for valid input {tuple(gen.shape)}"
        return
    if _no_videos(gen, ref):
        pytest.fail(f"{case.name}: no video was added, but compute() returned {value} instead of NaN")
    if math.isinf(value):
        assert case.inf_ok and value > 0, f"{case.name} returned {value}"
        return
    lo, hi = case.bounds
    assert lo - 1e-9 <= value <= hi + 1e-9, f"{case.name} = {value} outside [{lo}, {hi}]"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_video_contract(case: Case) -> None:
    """Random valid inputs succeed; inputs with one violation raise a ValueError naming the argument."""

    @settings(max_examples=case.examples * SCALE, **SETTINGS)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        b = data.draw(st.sampled_from((1, case.max_b, 0)), label="B")
        faults = VIDEO_FAULTS + (("batch",) if case.paired else ())
        fault = data.draw(st.one_of(st.just("none"), st.sampled_from(faults)), label="fault")
        side = data.draw(st.sampled_from(("generated", "reference"))) if case.paired else "videos"
        gen = data.draw(valid_videos(case, b=b), label="generated" if case.paired else "videos")
        ref = None
        if case.paired:
            if data.draw(st.booleans()) and fault == "none":
                ref = gen  # the same object on both sides: a valid call (identical frames)
            else:
                ref = data.draw(valid_videos(case, b=b), label="reference")
        if fault == "batch":
            other = data.draw(st.integers(0, case.max_b + 1).filter(lambda n: n != b))
            ref = data.draw(valid_videos(case, b=other), label="reference")
        elif fault != "none":
            bad = data.draw(faulty_videos(case, fault, b), label=f"faulty {side}")
            if side == "reference":
                ref = bad
            else:
                gen = bad

        metric = case.factory()
        before = snapshot(metric)
        originals = [x.clone() for x in (gen, ref) if isinstance(x, torch.Tensor)]

        # the oracle: contract of each argument, then pairing, then the metric's own rules
        expected: tuple[str, str, object] | None = None  # (argument name, rule, offending value)
        if case.frechet and ref is None and isinstance(gen, torch.Tensor):
            # reference=None is the pooled one-sided form: without `real=` the call form is explained
            expected = ("", "extra", r"needs (pairs|update\(generated, reference\))")
        for name, x in (("generated", gen), ("reference", ref)) if case.paired else (("videos", gen),):
            rule = contract_violation(x, case.min_frames)
            if rule is not None and expected is None:
                expected = (name, rule, x)
                break
        if expected is None and case.paired and gen.shape[0] != ref.shape[0]:
            expected = ("generated", "batch", None)
        if expected is None and case.extra_rule is not None:
            hit = case.extra_rule(gen, ref)
            if hit is not None:
                expected = (hit[0], "extra", hit[1])

        if expected is None:
            _update(case, metric, gen, ref)
            for x, original in zip([x for x in (gen, ref) if isinstance(x, torch.Tensor)], originals):
                assert torch.equal(x, original), "update() modified its input"
            _check_result(case, metric, gen, ref)
            return
        with pytest.raises(ValueError) as info:
            _update(case, metric, gen, ref)
        message = str(info.value)
        name, rule, x = expected
        if rule == "batch":
            assert "`generated`" in message and "`reference`" in message, message
            assert "same number of videos" in message, message
        elif rule == "extra":
            assert re.search(x, message), message
            if name:
                assert f"`{name}`" in message, message
        else:
            check_message(message, name, rule, x)
        assert_state_unchanged(metric, before)

    run()


@settings(max_examples=25 * SCALE, **SETTINGS)
@given(
    real=st.sampled_from((True, False, None, 1, 0, "yes")),
    fault=st.sampled_from(("none", "none", "range", "dtype", "rank")),
    data=st.data(),
)
def test_pooled_video_frechet_single_side(real: object, fault: str, data: st.DataObject) -> None:
    """``update(videos, real=...)`` of pooled FID: the flag must be a bool, the videos the contract."""
    case = next(c for c in CASES if c.name == "FID-pooled")
    b = data.draw(st.integers(0, 2))
    videos = data.draw(valid_videos(case, b=b) if fault == "none" else faulty_videos(case, fault, b))
    metric = case.factory()
    before = snapshot(metric)
    if real is not None and not isinstance(real, bool):
        with pytest.raises(ValueError, match="`real` must be a bool"):
            metric.update(videos, real=real)
    elif real is None:
        with pytest.raises(ValueError, match="mode='pooled' needs"):
            metric.update(videos)
    elif contract_violation(videos, 1) is not None:
        with pytest.raises(ValueError) as info:
            metric.update(videos, real=real)
        side = "reference" if real else "generated"
        check_message(str(info.value), side, contract_violation(videos, 1), videos)
    else:
        metric.update(videos, real=real)
        count = metric.real_count if real else metric.fake_count
        assert int(count) == videos.shape[0] * min(videos.shape[1], 16)
        return
    assert_state_unchanged(metric, before)


# ----------------------------------------------------------------------------------------- DynamicDegree fps
@settings(max_examples=40 * SCALE, **SETTINGS)
@given(
    b=st.integers(1, 2),
    t=st.integers(1, 5),
    fps=st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-5, 500),
        st.booleans(),
        st.text(max_size=3),
        st.lists(st.floats(-1, 100), max_size=3),
        st.tuples(st.integers(0, 3), st.floats(-1, 100)),  # -> a tensor of some shape
    ),
)
def test_dynamic_degree_fps(b: int, t: int, fps: object) -> None:
    """``fps``: a number or one per video, finite and positive; anything else is a ValueError naming it."""
    if isinstance(fps, tuple):  # (shape selector, value) -> tensors of rank 0, [B], [B + 1], [B, 1]
        shape = ((), (b,), (b + 1,), (b, 1))[fps[0]]
        fps = torch.full(shape, fps[1])
    videos = torch.randint(0, 256, (b, t, 3, 16, 16), dtype=torch.uint8)
    metric = DynamicDegree(flow_model=block_matching_flow_ref())  # no default fps
    if fps is None:
        valid = False
    elif isinstance(fps, torch.Tensor):
        valid = (fps.ndim == 0 or (fps.ndim == 1 and fps.numel() == b)) and bool(
            (torch.isfinite(fps) & (fps > 0)).all()
        )
    elif isinstance(fps, bool | str):
        valid = False
    elif isinstance(fps, list):
        valid = len(fps) == b and all(math.isfinite(v) and v > 0 for v in fps)
    else:
        valid = math.isfinite(fps) and fps > 0
    if valid:
        metric.update(videos, fps=fps)
        assert 0.0 <= float(metric.compute()) <= 1.0
    else:
        with pytest.raises(ValueError, match=r"`?fps`?|frame rate"):
            metric.update(videos, fps=fps)
        assert int(metric.num_videos) == 0


# --------------------------------------------------------------------------------------- FrechetDistance
@st.composite
def features(draw: st.DrawFn, ndim: int, d: int, b: int | None = None) -> object:
    """Mostly well-formed ``[N, d]`` / ``[B, n, d]`` features, sometimes broken in one way."""
    kind = draw(st.sampled_from(("ok", "ok", "ok", "ok", "rank", "dim", "dtype", "nonfinite", "list")))
    shape = [draw(st.integers(0, 3)) if b is None else b] if ndim == 3 else []
    shape += [draw(st.integers(0 if ndim == 2 else 1, 6)), d]
    if kind == "rank":
        shape = [*shape, 1] if draw(st.booleans()) else shape[1:]
    elif kind == "dim":
        shape[-1] = draw(st.integers(1, 6).filter(lambda n: n != d))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from((1e-6, 1.0, 1e3, 1e6)))
    dtype = draw(st.sampled_from((torch.float16, torch.float32, torch.float64)))
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(dtype)
    if dtype == torch.float16:
        x = x.clamp(-6e4, 6e4)
    if kind == "dtype":
        x = draw(st.sampled_from((x.to(torch.int64), x > 0, x.to(torch.complex64))))
    elif kind == "nonfinite" and x.numel():
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from((math.nan, math.inf)))
    elif kind == "list":
        return x.tolist()
    return x


def _feature_problem(x: object, ndim: int, d: int) -> bool:
    return (
        not isinstance(x, torch.Tensor)
        or x.ndim != ndim
        or x.shape[-1] != d
        or not x.is_floating_point()
        or not bool(torch.isfinite(x).all())
        or (ndim == 3 and x.shape[1] < 1)
    )


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(
    mode=st.sampled_from(("pooled", "per_video")),
    covariance=st.sampled_from(("unbiased", "biased")),
    d=st.integers(1, 5),
    data=st.data(),
)
def test_frechet_distance_features(mode: str, covariance: str, d: int, data: st.DataObject) -> None:
    """Features of any shape/dtype: a finite distance >= 0, the documented NaN, or a ValueError."""
    ndim = 2 if mode == "pooled" else 3
    b = data.draw(st.integers(0, 3))
    gen = data.draw(features(ndim, d, b=b))
    ref = data.draw(features(ndim, d, b=data.draw(st.sampled_from((b, b, b + 1)))))
    metric = FrechetDistance(num_features=d, mode=mode, covariance=covariance)
    before = snapshot(metric)
    problem = _feature_problem(gen, ndim, d) or _feature_problem(ref, ndim, d)
    if not problem and ndim == 3 and gen.shape[0] != ref.shape[0]:
        problem = True
    if problem:
        with pytest.raises(ValueError, match=r"`(generated|reference)"):
            metric.update(gen, ref)
        assert_state_unchanged(metric, before)
        return
    metric.update(gen, ref)
    value = float(metric.compute())
    if mode == "per_video":
        empty = gen.shape[0] == 0
    else:
        empty = min(gen.shape[0], ref.shape[0]) < (2 if covariance == "unbiased" else 1)
    if empty:
        assert math.isnan(value)
    else:
        assert math.isfinite(value) and value >= 0, value


@settings(max_examples=30 * SCALE, **SETTINGS)
@given(
    mode=st.sampled_from(("pooled", "per_video")),
    form=st.sampled_from(("pair", "real", "pair+real", "alone", "bad-real")),
)
def test_frechet_distance_update_forms(mode: str, form: str) -> None:
    metric = FrechetDistance(num_features=3, mode=mode)
    x = torch.randn(4, 3) if mode == "pooled" else torch.randn(2, 4, 3)
    calls = {
        "pair": lambda: metric.update(x, x + 1),
        "real": lambda: metric.update(x, real=True),
        "pair+real": lambda: metric.update(x, x, real=False),
        "alone": lambda: metric.update(x),
        "bad-real": lambda: metric.update(x, real="yes"),
    }
    valid = form == "pair" or (form == "real" and mode == "pooled")
    if valid:
        calls[form]()
    else:
        with pytest.raises(ValueError, match=r"real|pairs|needs"):
            calls[form]()


# ----------------------------------------------------------------------------------------------- WER
_WORDS = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ("", " ", "a b", "Hello, World!", "it's $20.50", "\t\n", "ÉCOLE été", "1st 2nd", "uh... hmm", "<|en|>")
)
_NON_STR = st.sampled_from((1, None, b"bytes", 2.5, ["nested"]))


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(
    normalization=st.sampled_from(("jiwer", "standardize", "none", "emergent")),
    categories=st.sampled_from((None, ("A", "B"))),
    refs=st.one_of(_WORDS, st.lists(st.one_of(_WORDS, _WORDS, _WORDS, _NON_STR), max_size=4), _NON_STR),
    hyps=st.one_of(_WORDS, st.lists(st.one_of(_WORDS, _WORDS, st.none(), _NON_STR), max_size=4), _NON_STR),
    cats=st.one_of(st.none(), st.sampled_from(("A", "C")), st.lists(st.sampled_from(("A", "B", "C")))),
)
def test_word_error_rate_inputs(normalization: str, categories: Any, refs: Any, hyps: Any, cats: Any) -> None:
    """Arbitrary text and malformed arguments: counts and rates, or a ValueError naming the argument."""
    if normalization == "emergent":
        pytest.importorskip("whisper_normalizer")
    metric = WordErrorRate(categories=categories, normalization=normalization)
    before = snapshot(metric)
    ref_list = [refs] if isinstance(refs, str) else refs
    problem = None
    if not isinstance(ref_list, list) or not all(isinstance(r, str) for r in ref_list):
        problem = "references"
    else:
        n = len(ref_list)
        hyp_list = [hyps] if isinstance(hyps, str) else hyps
        if not isinstance(hyp_list, list) or not all(h is None or isinstance(h, str) for h in hyp_list):
            problem = "hypotheses"
        elif len(hyp_list) != n:
            problem = "hypotheses"
        elif categories is None and cats is not None:
            problem = "categories"
        elif categories is not None:
            names = [cats] * n if isinstance(cats, str) else cats
            if names is None or len(names) != n or not all(c in categories for c in names):
                problem = "categories"
    if problem is not None:
        with pytest.raises(ValueError, match=problem):
            metric.update(refs, hyps, categories=cats)
        assert_state_unchanged(metric, before)
        return
    metric.update(refs, hyps, categories=cats)
    out = metric.compute()
    scored = sum(h is not None for h in hyp_list)
    assert int(out["utterances"]) == scored and int(out["asr_failed"]) == n - scored
    for key in ("wer", "wer_utterance_mean"):
        value = float(out[key])
        assert math.isnan(value) if scored == 0 else (math.isfinite(value) and value >= 0), (key, value)
    counts = [int(out[k]) for k in ("hits", "substitutions", "deletions", "insertions")]
    assert min(counts) >= 0


def test_word_error_rate_hypotheses_xor_audio() -> None:
    metric = WordErrorRate(normalization="none")
    for kwargs in ({}, {"hypotheses": ["a"], "audio": [torch.zeros(8)], "sample_rate": 16000}):
        with pytest.raises(ValueError, match="exactly one of hypotheses"):
            metric.update(["a"], **kwargs)
    with pytest.raises(ValueError, match="no transcriber"):
        metric.update(["a"], audio=[torch.zeros(8)], sample_rate=16000)


# ------------------------------------------------------------------------------------------------ WinRate
_GOOD_OUTCOMES = st.one_of(
    st.sampled_from(list(Outcome)),
    st.integers(0, 3),
    st.integers(0, 3).map(np.int64),
    st.tuples(
        st.sampled_from(("win", "loss", "tie", "invalid")),
        st.sampled_from((str.lower, str.upper, str.title)),
        st.sampled_from(("", " ", "\t")),
    ).map(lambda p: p[2] + p[1](p[0]) + p[2]),
)
_BAD_OUTCOMES = st.one_of(
    st.integers().filter(lambda v: not 0 <= v <= 3),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=6).filter(lambda s: s.strip().upper() not in Outcome.__members__),
    st.just(np.float64(1.0)),
)


def _outcome_ok(value: object) -> bool:
    if isinstance(value, Outcome):
        return True
    if isinstance(value, str):
        return value.strip().upper() in Outcome.__members__
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= int(value) <= 3


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(
    outcomes=st.one_of(
        st.lists(_GOOD_OUTCOMES, max_size=8),
        st.lists(st.one_of(_GOOD_OUTCOMES, _BAD_OUTCOMES), max_size=5),
        st.tuples(
            st.sampled_from(
                (
                    torch.int8,
                    torch.int16,
                    torch.int32,
                    torch.int64,
                    torch.uint8,
                    torch.float32,
                    torch.complex64,
                ),
            ),
            st.lists(st.integers(-2, 5), max_size=6),
            st.sampled_from((0, 1, 1, 2)),
        ),
        st.sampled_from(("win", 1, None, {"win"}, Outcome.WIN)),
    )
)
def test_win_rate_outcomes(outcomes: Any) -> None:
    """Outcomes as sequences or tensors: consistent counts and rates, or a ValueError naming them."""
    if isinstance(outcomes, tuple):  # (dtype, values, rank) -> a tensor
        dtype, values, ndim = outcomes
        tensor = torch.tensor(values, dtype=torch.int64)
        if ndim == 0:
            tensor = torch.tensor(values[0] if values else 0)
        elif ndim == 2:
            tensor = tensor.reshape(-1, 1)
        outcomes = tensor.to(dtype)
        valid = (
            outcomes.ndim == 1
            and not outcomes.is_floating_point()
            and not outcomes.is_complex()
            and all(0 <= v <= 3 for v in outcomes.tolist())
        )
        n = outcomes.numel()
    elif isinstance(outcomes, list):
        valid = all(_outcome_ok(o) for o in outcomes)
        n = len(outcomes)
    else:
        valid, n = False, 0
    metric = WinRate()
    before = snapshot(metric)
    if not valid:
        with pytest.raises(ValueError, match="outcomes"):
            metric.update(outcomes)
        assert_state_unchanged(metric, before)
        return
    metric.update(outcomes)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["wins"] + out["ties"] + out["losses"] + out["invalid"] == n
    assert out["valid"] == out["wins"] + out["ties"] + out["losses"]
    if out["valid"] == 0:
        assert math.isnan(out["win_rate"])
    else:
        assert out["win_rate"] == pytest.approx((out["wins"] + 0.5 * out["ties"]) / out["valid"])
        assert out["ci_low"] - 1e-12 <= out["win_rate"] <= out["ci_high"] + 1e-12
        assert 0 <= out["ci_low"] and out["ci_high"] <= 1


# ------------------------------------------------------------------------------------- documented gaps
@pytest.mark.parametrize(("window", "side"), [("uniform", 2), ("gaussian", 9)])
def test_ssim_small_frame_error_names_the_argument(window: str, side: int) -> None:
    ref = torch.zeros(1, 2, 3, side, 9, dtype=torch.uint8)
    with pytest.raises(ValueError, match="`reference`"):
        SSIM(window=window).update(torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8), ref)


def test_win_rate_rejects_bool_tensors() -> None:
    with pytest.raises(ValueError, match="outcomes"):
        WinRate().update(torch.tensor([True, False]))


def test_frechet_distance_overflowing_features() -> None:
    metric = FrechetDistance(num_features=4, mode="pooled")
    g = torch.Generator().manual_seed(0)
    big = torch.randn(5, 4, generator=g, dtype=torch.float64) * 1e200  # finite, accepted by update()
    try:
        metric.update(big, torch.randn(5, 4, generator=g, dtype=torch.float64))
    except ValueError as err:  # rejecting at update time, naming the argument, is fine too
        assert "`generated`" in str(err)
        return
    value = float(metric.compute())  # expected: a ValueError naming the overflow, or inf with a warning
    assert math.isinf(value) or math.isnan(value)


# -------------------------------------------------------------------------------- CLI: pair_videos on disk
_STEMS = st.text(alphabet="abcAB01_-", min_size=1, max_size=4)
_VIDEO_EXT = st.sampled_from(VIDEO_EXTENSIONS + tuple(e.upper() for e in VIDEO_EXTENSIONS[:3]))
_OTHER_EXT = st.sampled_from((".txt", ".json", ".mp4.part", ".pt", ""))


@st.composite
def folder(draw: st.DrawFn) -> dict[str, list[str]]:
    """``{"files": [...], "dirs": [...]}``: videos (some stems twice), other files, look-alike folders."""
    files = {stem + draw(_VIDEO_EXT) for stem in draw(st.lists(_STEMS, max_size=5, unique_by=str.lower))}
    if files and draw(st.booleans()):  # a second extension for an existing stem -> ambiguous
        stem = os.path.splitext(sorted(files)[0])[0]
        files.add(stem + draw(_VIDEO_EXT))
    files |= {stem + draw(_OTHER_EXT) for stem in draw(st.lists(_STEMS, max_size=3))}
    if draw(st.booleans()):
        files.add(".mp4")  # a hidden file named like an extension: no stem, not a video
    dirs = {stem + ".mp4" for stem in draw(st.lists(_STEMS, max_size=2))} - files
    return {"files": sorted(files), "dirs": sorted(dirs)}


def _videos(listing: dict[str, list[str]]) -> dict[str, list[str]]:
    """The documented rule: regular files whose extension (case-insensitive) is a video extension."""
    out: dict[str, list[str]] = {}
    for name in listing["files"]:
        stem, ext = os.path.splitext(name)
        if ext.lower() in VIDEO_EXTENSIONS:
            out.setdefault(stem, []).append(name)
    return out


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(generated=folder(), reference=folder(), pair_all=st.booleans())
def test_pair_videos_file_handling(generated: dict, reference: dict, pair_all: bool) -> None:
    """Exactly the documented pairing, or a ValueError that names the problem and every unpaired name."""
    if pair_all:  # often the folders hold the same stems: exercise the success path
        files = {stem + ".mp4" for stem in _videos(generated)} | set(reference["files"])
        reference = {"files": sorted(files), "dirs": sorted(set(reference["dirs"]) - files)}
    with tempfile.TemporaryDirectory() as root:
        dirs = {}
        for label, listing in (("GENERATED_DIR", generated), ("REFERENCE_DIR", reference)):
            path = Path(root) / label.lower()
            path.mkdir()
            for name in listing["files"]:
                (path / name).write_bytes(b"x")
            for name in listing["dirs"]:
                (path / name).mkdir()
            dirs[label] = path

        expected_error = None
        found = {}
        for label, listing in (("GENERATED_DIR", generated), ("REFERENCE_DIR", reference)):
            videos = _videos(listing)
            duplicated = sorted(stem for stem, names in videos.items() if len(names) > 1)
            if duplicated:
                names = "|".join(re.escape(repr(stem)) for stem in duplicated)
                expected_error = (rf"{label} has two videos named ({names}): ", [])
                break
            if not videos:
                expected_error = (rf"{label} .* contains no videos", [])
                break
            found[label] = {stem: names[0] for stem, names in videos.items()}
        if expected_error is None:
            only_gen = sorted(set(found["GENERATED_DIR"]) - set(found["REFERENCE_DIR"]))
            only_ref = sorted(set(found["REFERENCE_DIR"]) - set(found["GENERATED_DIR"]))
            if only_gen or only_ref:
                expected_error = ("unpaired", only_gen + only_ref)
                message_parts = []
                if only_gen:
                    message_parts.append("only in GENERATED_DIR: " + ", ".join(only_gen))
                if only_ref:
                    message_parts.append("only in REFERENCE_DIR: " + ", ".join(only_ref))

        if expected_error is None:
            pairs = pair_videos(dirs["GENERATED_DIR"], dirs["REFERENCE_DIR"])
            stems = sorted(found["GENERATED_DIR"])
            assert [p[0] for p in pairs] == stems
            for name, gen_path, ref_path in pairs:
                assert gen_path == dirs["GENERATED_DIR"] / found["GENERATED_DIR"][name]
                assert ref_path == dirs["REFERENCE_DIR"] / found["REFERENCE_DIR"][name]
                assert gen_path.is_file() and ref_path.is_file()
            return
        with pytest.raises(ValueError) as info:
            pair_videos(dirs["GENERATED_DIR"], dirs["REFERENCE_DIR"])
        message = str(info.value)
        pattern, unpaired = expected_error
        assert re.search(pattern, message), (pattern, message)
        if unpaired:
            for part in message_parts:  # every unpaired name, by side
                assert part in message, (part, message)


def test_pair_videos_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.mp4").write_bytes(b"x")
    (tmp_path / "file").write_bytes(b"x")
    for gen, ref, label in (
        (tmp_path / "missing", tmp_path / "g", "GENERATED_DIR"),
        (tmp_path / "g", tmp_path / "file", "REFERENCE_DIR"),
    ):
        with pytest.raises(ValueError, match=f"{label} .* is not a directory"):
            pair_videos(gen, ref)
