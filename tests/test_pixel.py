"""The paired pixel metrics SSIM, PSNR and PixelCSIM against the JWB-DH-V1 reference script's loop.

The oracle (``_script_scores``) re-implements the script's per-video loop with scikit-image, numpy and
OpenCV: the first ``min(16, T_gen, T_ref)`` frames, ``cv2.resize(gen, (W_ref, H_ref))`` when sizes differ,
``structural_similarity(gt, gen, channel_axis=-1, data_range=255, win_size=w)``,
``peak_signal_noise_ratio(gt, gen, data_range=255)`` and the flattened float64 pixel cosine; the mean over
frames, then over videos.

Exactness (1e-5 SSIM, 1e-6 relative PSNR) is required where the metric's resize is OpenCV-exact: equal
sizes and generated frames whose height shrinks. When the generated height must be enlarged,
``resize_opencv_bilinear`` can be one grey level off in the first/last output rows (see
tests/test_video.py), so that case is checked exactly against the loop fed with our resize, and loosely
against the loop with ``cv2.resize``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from metrics.functional.resize import resize_opencv_bilinear
from metrics.pixel import PSNR, SSIM, PixelCSIM

SSIM_TOL = 1e-5
PSNR_RTOL = 1e-6
CSIM_TOL = 1e-10
PSNR_ONE_LEVEL = 10 * math.log10(255.0**2)  # MSE = 1


# ------------------------------------------------------------------------------------------------- oracle
# scikit-image and OpenCV are imported lazily: the spawned DDP workers import this module and need neither.
def _skimage_metrics():
    return pytest.importorskip("skimage.metrics")


def _quantise(video: np.ndarray) -> np.ndarray:
    """What decoding a written video does to [0, 1] floats: float32 x * 255, round half to even."""
    if video.dtype == np.uint8:
        return video
    return np.clip(np.round(video.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)


def _cv2_bilinear(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    return cv2.resize(frame, (hw[1], hw[0]))  # the script: cv2.resize default INTER_LINEAR


def _our_bilinear(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    return resize_opencv_bilinear(x, hw, backend="torch")[0].permute(1, 2, 0).numpy()


def _script_win(h: int, w: int) -> int:
    win = min(7, min(h, w))
    return win - 1 if win % 2 == 0 else win


def _script_scores(pairs, num_frames: int | None = 16, resize=_cv2_bilinear, gaussian: bool = False):
    """The reference script's loop. ``pairs``: (gen, gt) numpy videos ``[T, H, W, 3]`` (uint8 or [0, 1]).

    Returns the mean over videos of the per-video frame means, for ssim / psnr / csim.
    """
    skimage_metrics = _skimage_metrics()
    per_video = {"ssim": [], "psnr": [], "csim": []}
    for gen, gt in pairs:
        gen, gt = _quantise(gen), _quantise(gt)
        n = min(len(gen), len(gt)) if num_frames is None else min(num_frames, len(gen), len(gt))
        frames = {"ssim": [], "psnr": [], "csim": []}
        for i in range(n):
            g, r = gen[i], gt[i]
            if g.shape != r.shape:
                g = resize(g, r.shape[:2])
            if gaussian:
                kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
            else:
                kw = {"win_size": _script_win(*r.shape[:2])}
            frames["ssim"].append(
                skimage_metrics.structural_similarity(r, g, channel_axis=-1, data_range=255, **kw)
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # identical frames: division by zero
                frames["psnr"].append(skimage_metrics.peak_signal_noise_ratio(r, g, data_range=255))
            gf, rf = g.astype(np.float64).ravel(), r.astype(np.float64).ravel()
            ng, nr = np.linalg.norm(gf), np.linalg.norm(rf)
            frames["csim"].append(0.0 if ng == 0 or nr == 0 else float(np.dot(gf, rf) / (ng * nr)))
        for key, values in frames.items():
            per_video[key].append(float(np.mean(values)))
    return {key: float(np.mean(values)) for key, values in per_video.items()}


# ------------------------------------------------------------------------------------------------- data
def _scene(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """A smooth moving scene sampled on an ``h x w`` grid over [0, 1]^2, float64 ``[t, h, w, 3]``."""
    y = (np.arange(h) + 0.5) / h
    x = (np.arange(w) + 0.5) / w
    yy, xx = np.meshgrid(y, x, indexing="ij")
    freqs = rng.uniform(1.0, 5.0, size=(3, 2))
    phases = rng.uniform(0, 2 * np.pi, size=3)
    out = np.empty((t, h, w, 3))
    for i in range(t):
        for c in range(3):
            out[i, ..., c] = 128 + 80 * np.sin(
                2 * np.pi * (freqs[c, 0] * xx + 0.05 * i) + phases[c]
            ) * np.cos(2 * np.pi * freqs[c, 1] * yy)
    return out


def _make_batch(
    seed: int,
    b: int,
    t_gen: int,
    t_ref: int,
    gen_hw: tuple[int, int],
    ref_hw: tuple[int, int],
    gen_float: bool = False,
    ref_float: bool = False,
):
    """One update's worth of videos: torch ``[B, T, 3, H, W]`` tensors plus the numpy videos per pair."""
    rng = np.random.default_rng(seed)
    gens, refs = [], []
    for _ in range(b):
        scene_seed = int(rng.integers(1 << 30))  # the generated video shows the same scene, noisier
        ref = _scene(np.random.default_rng(scene_seed), t_ref, *ref_hw) + rng.normal(
            0, 4, (t_ref, *ref_hw, 3)
        )
        gen = _scene(np.random.default_rng(scene_seed), t_gen, *gen_hw) + rng.normal(
            0, 14, (t_gen, *gen_hw, 3)
        )
        gens.append(np.clip(gen, 0, 255))
        refs.append(np.clip(ref, 0, 255))

    def finish(videos, as_float):
        if as_float:
            return np.stack(videos).astype(np.float32) / np.float32(255.0)  # not on the uint8 grid
        return np.round(np.stack(videos)).astype(np.uint8)

    gen_np, ref_np = finish(gens, gen_float), finish(refs, ref_float)
    gen_t = torch.from_numpy(gen_np).permute(0, 1, 4, 2, 3)  # [B, T, 3, H, W] (a channels-last view)
    ref_t = torch.from_numpy(ref_np).permute(0, 1, 4, 2, 3)
    return gen_t, ref_t, list(zip(gen_np, ref_np, strict=True))


# Shapes where our resize is OpenCV-exact: equal sizes, or generated frames whose height shrinks.
EXACT_BATCHES = [
    dict(seed=1, b=2, t_gen=5, t_ref=7, gen_hw=(24, 32), ref_hw=(24, 32)),  # uint8, T_gen < T_ref
    dict(seed=2, b=3, t_gen=4, t_ref=3, gen_hw=(24, 32), ref_hw=(24, 32), gen_float=True, ref_float=True),
    dict(seed=3, b=1, t_gen=3, t_ref=3, gen_hw=(48, 64), ref_hw=(24, 32), ref_float=True),  # 2x larger gen
    dict(seed=4, b=2, t_gen=18, t_ref=17, gen_hw=(20, 28), ref_hw=(20, 28)),  # > 16 frames
    dict(seed=5, b=1, t_gen=2, t_ref=2, gen_hw=(30, 22), ref_hw=(20, 28)),  # mixed: H shrinks, W grows
]
TINY_BATCHES = [
    dict(seed=6, b=2, t_gen=2, t_ref=3, gen_hw=(5, 6), ref_hw=(5, 6)),  # uniform window 5
    dict(seed=16, b=1, t_gen=2, t_ref=2, gen_hw=(8, 9), ref_hw=(4, 9)),  # window 4 -> 3; gen resized
]
UPSCALE_BATCH = dict(seed=7, b=2, t_gen=3, t_ref=3, gen_hw=(18, 24), ref_hw=(24, 32))


def _assert_scores(
    got: dict, ref: dict, ssim_tol: float = SSIM_TOL, psnr_rtol: float = PSNR_RTOL, csim_tol: float = CSIM_TOL
) -> None:
    assert got["ssim"] == pytest.approx(ref["ssim"], abs=ssim_tol, rel=0)
    assert got["psnr"] == pytest.approx(ref["psnr"], rel=psnr_rtol)
    assert got["csim"] == pytest.approx(ref["csim"], abs=csim_tol, rel=0)


def _run_metrics(batches, **kwargs) -> dict:
    metrics = {"ssim": SSIM(**kwargs), "psnr": PSNR(**kwargs), "csim": PixelCSIM(**kwargs)}
    for gen, ref in batches:
        for metric in metrics.values():
            metric.update(gen, ref)
    out = {}
    for key, metric in metrics.items():
        value = metric.compute()
        assert value.dtype == torch.float64 and value.ndim == 0
        out[key] = float(value)
    return out


# ----------------------------------------------------------------------------------------------- parity
def test_matches_script_loop_over_several_updates():
    batches, pairs = [], []
    for spec in [*EXACT_BATCHES, *TINY_BATCHES]:
        gen, ref, p = _make_batch(**spec)
        batches.append((gen, ref))
        pairs += p
    got = _run_metrics(batches)
    expected = _script_scores(pairs)
    _assert_scores(got, expected)
    assert 0.2 < got["ssim"] < 0.95 and 20 < got["psnr"] < 40  # a meaningful, non-degenerate regime


@pytest.mark.parametrize("spec", [*EXACT_BATCHES, *TINY_BATCHES], ids=lambda s: f"seed{s['seed']}")
def test_matches_script_loop_per_batch(spec):
    gen, ref, pairs = _make_batch(**spec)
    _assert_scores(_run_metrics([(gen, ref)]), _script_scores(pairs))


def test_generated_frames_enlarged():
    """Enlarging the generated height is where our resize may differ from cv2 by one level in border rows."""
    gen, ref, pairs = _make_batch(**UPSCALE_BATCH)
    got = _run_metrics([(gen, ref)])
    # exact when the oracle resizes the way the metric does ...
    _assert_scores(got, _script_scores(pairs, resize=_our_bilinear))
    # ... and close to the script with cv2.resize (measured: SSIM 2e-6, PSNR 3e-5 relative, CSIM 1.2e-6)
    script = _script_scores(pairs, resize=_cv2_bilinear)
    _assert_scores(got, script, ssim_tol=1e-4, psnr_rtol=1e-4, csim_tol=1e-5)


def test_uint8_and_float_inputs_agree_after_quantisation():
    gen, ref, _ = _make_batch(seed=8, b=2, t_gen=3, t_ref=3, gen_hw=(16, 20), ref_hw=(16, 20), gen_float=True)
    gen_u8 = torch.from_numpy(_quantise(gen.permute(0, 1, 3, 4, 2).numpy())).permute(0, 1, 4, 2, 3)
    assert _run_metrics([(gen, ref)]) == _run_metrics([(gen_u8, ref)])
    ref_f = ref.double() / 255  # uint8 -> exact [0, 1] floats round-trip to the same uint8 values
    assert _run_metrics([(gen, ref_f)]) == _run_metrics([(gen, ref)])


def test_gaussian_window_matches_skimage():
    batches, pairs = [], []
    for spec in EXACT_BATCHES[:3]:
        gen, ref, p = _make_batch(**spec)
        batches.append((gen, ref))
        pairs += p
    metric = SSIM(window="gaussian")
    for gen, ref in batches:
        metric.update(gen, ref)
    expected = _script_scores(pairs, gaussian=True)["ssim"]
    assert float(metric.compute()) == pytest.approx(expected, abs=SSIM_TOL, rel=0)
    uniform = SSIM()
    for gen, ref in batches:
        uniform.update(gen, ref)
    assert abs(float(uniform.compute()) - expected) > 1e-3  # the two windows really differ


def test_ssim_float32_compute_dtype():
    gen, ref, _ = _make_batch(**EXACT_BATCHES[0])
    m64, m32 = SSIM(), SSIM(compute_dtype=torch.float32)
    m64.update(gen, ref)
    m32.update(gen, ref)
    assert m32.compute().dtype == torch.float64
    assert float(m32.compute()) == pytest.approx(float(m64.compute()), abs=1e-4)


def test_identical_videos():
    _, ref, _ = _make_batch(**EXACT_BATCHES[0])
    ssim, csim = SSIM(), PixelCSIM()
    ssim.update(ref, ref)
    csim.update(ref, ref)
    assert float(ssim.compute()) == pytest.approx(1.0, abs=1e-12)
    assert float(csim.compute()) == pytest.approx(1.0, abs=1e-12)


def test_black_frames_csim_zero():
    black = torch.zeros(1, 3, 3, 8, 8, dtype=torch.uint8)
    other = torch.randint(1, 256, (1, 3, 3, 8, 8), dtype=torch.uint8)
    m = PixelCSIM()
    m.update(black, other)
    m.update(other, black)
    assert float(m.compute()) == 0.0


# ------------------------------------------------------------------------------------------------- PSNR
def test_psnr_infinite_frames_warn_and_count():
    base = torch.randint(0, 255, (2, 3, 3, 8, 8), dtype=torch.uint8)
    gen = base.clone()
    gen[0, 2] += 1  # video 0: frames 0 and 1 identical, frame 2 off by one everywhere
    gen[1] += 1  # video 1: no identical frame
    m = PSNR()
    m.update(gen, base)
    assert int(m.num_infinite_frames) == 2
    with pytest.warns(UserWarning, match=r"2 frame pair\(s\) are identical.*max_psnr"):
        value = m.compute()
    assert value == float("inf")
    m.update(gen[:1], base[:1])
    assert int(m.num_infinite_frames) == 4


def test_psnr_max_psnr_caps_per_frame():
    base = torch.randint(0, 255, (2, 3, 3, 8, 8), dtype=torch.uint8)
    gen = base.clone()
    gen[0, 2] += 1
    gen[1] += 1
    m = PSNR(max_psnr=100)
    m.update(gen, base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when capped
        value = float(m.compute())
    assert math.isfinite(value)
    expected = ((100 + 100 + PSNR_ONE_LEVEL) / 3 + PSNR_ONE_LEVEL) / 2
    assert value == pytest.approx(expected, rel=1e-12)
    assert int(m.num_infinite_frames) == 2  # still counted
    low = PSNR(max_psnr=40.0)  # finite values above the cap are capped too
    low.update(gen, base)
    assert float(low.compute()) == pytest.approx(40.0, rel=1e-12)


def test_psnr_hand_computed():
    gen = torch.randint(0, 255, (3, 4, 3, 6, 10), dtype=torch.uint8)
    m = PSNR()
    m.update(gen + 1, gen)  # every pixel differs by exactly 1: MSE = 1
    m.update(gen, gen + 1)
    assert float(m.compute()) == pytest.approx(PSNR_ONE_LEVEL, rel=1e-12)
    assert PSNR_ONE_LEVEL == pytest.approx(48.1308036, rel=1e-8)
    m2 = PSNR()
    half = torch.zeros(1, 1, 3, 4, 4, dtype=torch.uint8)
    m2.update(half + 2, half)  # MSE = 4
    assert float(m2.compute()) == pytest.approx(10 * math.log10(255.0**2 / 4), rel=1e-12)


# ------------------------------------------------------------------------------------------- num_frames
def test_num_frames_none_uses_all_frames():
    gen, ref, pairs = _make_batch(seed=9, b=2, t_gen=20, t_ref=22, gen_hw=(12, 16), ref_hw=(12, 16))
    _assert_scores(_run_metrics([(gen, ref)], num_frames=None), _script_scores(pairs, num_frames=None))
    default = _run_metrics([(gen, ref)])
    assert default != _run_metrics([(gen, ref)], num_frames=None)
    _assert_scores(default, _script_scores(pairs, num_frames=16))


def test_num_frames_truncation():
    gen, ref, pairs = _make_batch(seed=10, b=1, t_gen=20, t_ref=20, gen_hw=(12, 16), ref_hw=(12, 16))
    default = _run_metrics([(gen, ref)])
    assert _run_metrics([(gen, ref)], num_frames=16) == default
    gen2 = gen.clone()
    gen2[:, 16:] = 0  # frames after the 16th are never looked at
    assert _run_metrics([(gen2, ref)]) == default
    gen2[:, 15] = 0
    assert _run_metrics([(gen2, ref)]) != default
    _assert_scores(_run_metrics([(gen, ref)], num_frames=3), _script_scores(pairs, num_frames=3))
    _assert_scores(_run_metrics([(gen[:, :3], ref)]), _script_scores(pairs, num_frames=3))  # T_gen = 3


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
# ------------------------------------------------------------------------------------------ empty input
@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
def test_compute_without_updates_is_nan_with_warning(cls):
    m = cls()
    with pytest.warns(UserWarning, match=rf"{cls.__name__}\.compute\(\) saw no video.*returning NaN"):
        value = m.compute()
    assert math.isnan(float(value)) and value.dtype == torch.float64


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
def test_empty_batch_is_a_no_op(cls):
    m = cls()
    empty_gen = torch.zeros(0, 4, 3, 16, 16, dtype=torch.uint8)
    empty_ref = torch.zeros(0, 2, 3, 12, 12)  # different size and length: still nothing to do
    m.update(empty_gen, empty_ref)
    assert int(m.num_videos) == 0
    with pytest.warns(UserWarning, match="saw no video"):
        assert math.isnan(float(m.compute()))
    gen, ref, _ = _make_batch(**EXACT_BATCHES[0])
    m.update(gen, ref)
    before = float(m.compute())
    m.update(empty_gen, empty_ref)
    assert int(m.num_videos) == 2 and float(m.compute()) == before


@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
def test_update_validates_inputs(cls):
    m = cls()
    good = torch.zeros(2, 3, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"`generated`.*unsqueeze"):
        m.update(good[0], good)
    with pytest.raises(ValueError, match=r"`reference` is a float video.*\[0, 255\]"):
        m.update(good, good.float() + 255)
    with pytest.raises(ValueError, match="same number of videos"):
        m.update(good, good[:1])
    assert int(m.num_videos) == 0


def test_ssim_rejects_frames_too_small():
    m = SSIM()
    with pytest.raises(ValueError, match="smaller side >= 3 px"):
        m.update(torch.zeros(1, 2, 3, 2, 8, dtype=torch.uint8), torch.zeros(1, 2, 3, 2, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        x = torch.zeros(1, 2, 3, 10, 16, dtype=torch.uint8)
        SSIM(window="gaussian").update(x, x)


# ------------------------------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world_size: int, batches_per_rank) -> dict:
    metrics = {"ssim": SSIM(), "psnr": PSNR(), "csim": PixelCSIM()}
    for gen, ref in batches_per_rank[rank]:
        for metric in metrics.values():
            metric.update(gen, ref)
    return {key: float(metric.compute()) for key, metric in metrics.items()}


@pytest.mark.ddp
def test_ddp_uneven_updates_match_single_process():
    from tests.ddp import run_ddp

    specs = [
        dict(seed=11, b=2, t_gen=3, t_ref=4, gen_hw=(12, 16), ref_hw=(12, 16)),
        dict(seed=12, b=1, t_gen=2, t_ref=2, gen_hw=(24, 32), ref_hw=(12, 16), gen_float=True),
        dict(seed=13, b=3, t_gen=5, t_ref=3, gen_hw=(10, 14), ref_hw=(10, 14)),
        dict(seed=14, b=2, t_gen=4, t_ref=4, gen_hw=(16, 16), ref_hw=(16, 16), ref_float=True),
    ]
    batches = [_make_batch(**spec)[:2] for spec in specs]
    empty = (torch.zeros(0, 2, 3, 8, 8, dtype=torch.uint8), torch.zeros(0, 2, 3, 8, 8, dtype=torch.uint8))
    per_rank = [batches[:3], [batches[3], empty]]  # rank 0: 3 updates, rank 1: 1 update (+ an empty one)
    results = run_ddp(_ddp_worker, world_size=2, args=(per_rank,))
    single = _run_metrics(batches)
    for result in results:
        assert result.keys() == single.keys()
        for key in single:
            assert result[key] == pytest.approx(single[key], rel=1e-12, abs=1e-12), key


# ------------------------------------------------------------------------------------------ constructors
@pytest.mark.parametrize("window", ["box", "Gaussian", "", None])
def test_ssim_bad_window(window):
    with pytest.raises(ValueError, match="`window` must be 'uniform' or 'gaussian'"):
        SSIM(window=window)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32, "float64"])
def test_ssim_bad_compute_dtype(dtype):
    with pytest.raises(ValueError, match=r"`compute_dtype` must be torch\.float32 or torch\.float64"):
        SSIM(compute_dtype=dtype)


@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
@pytest.mark.parametrize("num_frames", [0, -1, 2.5, "16", 16.0])
def test_bad_num_frames(cls, num_frames):
    with pytest.raises(ValueError, match="`num_frames` must be a positive int or None"):
        cls(num_frames=num_frames)


@pytest.mark.parametrize("max_psnr", [0, -5.0, float("inf"), float("nan"), "100", [100]])
def test_psnr_bad_max_psnr(max_psnr):
    with pytest.raises(ValueError, match="`max_psnr` must be None or a finite positive number"):
        PSNR(max_psnr=max_psnr)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
def test_metric_attributes_and_state_dict(cls):
    m = cls()
    assert m.higher_is_better is True
    assert m.is_differentiable is False
    assert m.num_frames == 16
    assert m.state_dict() == {}
    gen, ref, _ = _make_batch(**EXACT_BATCHES[0])
    m.update(gen, ref)
    assert m.state_dict() == {}  # states are not persistent
    m.reset()
    assert int(m.num_videos) == 0
    with pytest.warns(UserWarning, match="saw no video"):
        assert math.isnan(float(m.compute()))


@pytest.mark.parametrize("cls", [SSIM, PSNR, PixelCSIM])
def test_plot_returns_figure(cls):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    gen, ref, _ = _make_batch(**EXACT_BATCHES[0])
    m = cls()
    m.update(gen, ref)
    fig, ax = m.plot()
    assert isinstance(fig, Figure) and ax is not None
    plt.close(fig)
    values = []
    for _ in range(3):
        m.update(gen, ref)
        values.append(m.compute())
    fig, _ = m.plot(values)
    assert isinstance(fig, Figure)
    plt.close(fig)
