"""The whole JWB-DH-V1 frame-metric pipeline with the real networks: ours vs FID_calculate.py's loop.

Both sides score the same 16-frame (generated, reference) video pairs of the whole-body region with FID,
E-FID, FVD, SSIM, PSNR and pixel CSIM, and both run the REAL architectures at their real sizes with the same
random weights (seeded; BatchNorm statistics calibrated so that features respond to the input):

* Inception-v3: torchvision ``inception_v3`` inside our
  :class:`~metrics.backbones.inception.ImageNetInceptionV3` (``weights=None``); the baseline calls the
  very same torchvision network instance (``.net``) on the frames it preprocessed with PIL + torchvision
  transforms, four frames per call, as the script does;
* I3D: :class:`~metrics.backbones.i3d.InceptionI3d` (12.7M parameters, 400 logits), scripted
  (``torch.jit.script``) as the StyleGAN-V file is; the baseline calls the same scripted module.

The baseline is :class:`benchmarks.reference_scripts.FIDCalculateLoop`, the script's per-video loop function
by function (see that module for what it does and the few things it leaves out: decoding, printing, CSVs).
Ours is :class:`~metrics.suite.RegionalSuite` with the jwbdh-v1 metric set on those backbones (one
``update`` with all videos, then ``compute``), at ``precision="fp32"`` (the parity setting) and at the
fastest setting, ``"bf16"`` with ``channels_last`` (autocast on the backbones only).

Three ratios (baseline time / our time, > 1: ours faster), each from per-round times:

* ``frechet_step``: the Fréchet step alone: the script's ``np.cov`` + ``scipy.linalg.sqrtm`` (FID, E-FID,
  FVD) vs our exact low-rank per-video Fréchet on the same kind of features (the time of the metrics'
  ``_add_per_video``);
* ``non_frechet`` (and ``non_frechet_bf16``): everything else (preprocessing, edge maps, both networks,
  SSIM, PSNR, CSIM), i.e. the end-to-end time minus the Fréchet step, on each side;
* ``end_to_end`` (and ``end_to_end_bf16``): the whole pipeline;
* ``second_evaluation``: ours at fp32 with a :class:`~metrics.features.FeatureCache` (batches carry
  ``video_ids``): the first evaluation of the pairs / a second evaluation of the same references (what a
  validation callback does from epoch 2 on, or a rerun of ``jwbdh-eval``); no baseline involved.

Correctness: at fp32, FID and E-FID within 1e-5 relative (sqrtm of a rank-15 2048 x 2048 product vs the
exact formula differ by ~1e-7; the script's float32 mean difference adds ~1e-7), FVD within
``FVD_REL_TOL`` = 1e-4 (float32 summation order of I3D, see there), SSIM, PSNR and CSIM within 1e-9
absolute; the cached second evaluation gives the same numbers. At bf16 the pixel metrics are unchanged
(1e-9) and the Fréchet values move by the backbones' bfloat16 rounding, up to ``BF16_FRECHET_REL_TOL``
(3e-2 measured on the quick workload; the per-metric differences are in the result's breakdown).

The run is long on a CPU: the script's sqrtm of a 2048 x 2048 matrix takes 20-45 s on 2 cores, twice per
pair, and the real networks cost ~5.7 GFLOP per Inception frame and ~56 GFLOP per 16-frame I3D clip on
both sides. The full run (5 pairs, 512 x 512, one round) took 18 CPU-minutes (31 minutes of wall time on
2 cores shared with other jobs), the quick one (1 pair, 128 x 128) about 4 CPU-minutes.

Only the whole-body region (full frames) is scored: cropping is benchmarked separately (``crops``).

    python -m benchmarks --only pipeline [--quick]
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.common import (
    BenchResult,
    Config,
    Correctness,
    Ratio,
    quiet,
    relative_difference,
    shares,
    speedup,
    summarize,
    synchronize,
    time_calls,
    untime_calls,
)
from benchmarks.data import avatar_videos, to_hwc
from benchmarks.reference_scripts import FRECHET_STAGES, KEYS, FIDCalculateLoop

FRECHET_REL_TOL = 1e-5
#: The script hands I3D a permuted view (channels-last-3d strides), ours a contiguous clip: the 57-layer
#: network then sums in another order, which moves its float32 logits by ~1e-5 relative (measured: mean
#: |diff| 3.4e-6 on logits of mean magnitude 0.43) and the per-video FVD = |f_gen - f_ref|^2 by up to a
#: few 1e-5 relative (8e-6 measured on the quick workload).
FVD_REL_TOL = 1e-4
PIXEL_ABS_TOL = 1e-9
#: bf16 backbones (8-bit mantissa) move per-video Fréchet values by about a percent (see the module doc).
BF16_FRECHET_REL_TOL = 5e-2
FRAMES = 16
FRECHET_KEYS = ("FID", "E-FID", "FVD")
PIXEL_KEYS = ("SSIM", "PSNR", "CSIM")

#: (label, precision, channels_last) of our sides: the parity setting and the fastest one.
SETTINGS = (("fp32", "fp32", False), ("bf16", "bf16", True))


@dataclass(frozen=True)
class Backbones:
    """The two backbone handles ours uses; the baseline gets the networks inside their fp32 instances.

    ``inception`` must build a module with a ``.net`` attribute taking ImageNet-normalised float frames
    (as :class:`~metrics.backbones.inception.ImageNetInceptionV3` does); ``i3d`` a network with the I3D
    TorchScript calling convention; ``inception_dim`` is the Inception's feature size.
    """

    inception: Any
    i3d: Any
    inception_dim: int = 2048

    @staticmethod
    def real() -> Backbones:
        """Random-init real architectures: ImageNetInceptionV3 (torchvision) and the scripted InceptionI3d."""
        from metrics.backbones.i3d import inception_i3d_ref
        from metrics.backbones.inception import imagenet_inception_ref

        return Backbones(imagenet_inception_ref(None), inception_i3d_ref(None), 2048)


def build_suite(
    backbones: Backbones,
    precision: str,
    channels_last: bool,
    device: torch.device,
    reference_cache: Any = None,
) -> Any:
    """RegionalSuite with the jwbdh-v1 frame metrics on ``backbones`` at ``precision`` (whole body only)."""
    from metrics.suite import RegionalSuite

    inference = {"precision": precision, "channels_last": channels_last}
    inception = {"feature_extractor": backbones.inception, "num_features": backbones.inception_dim}
    metrics = {
        "FID": {"protocol": "jwbdh-v1", **inception, **inference},
        "E-FID": {"protocol": "jwbdh-v1", **inception, **inference},
        "FVD": {"protocol": "jwbdh-v1", "feature_extractor": backbones.i3d, **inference},
        "SSIM": {"window": "uniform", "num_frames": FRAMES},
        "PSNR": {"num_frames": FRAMES},
        "CSIM": {"mode": "pixel"},
    }
    if reference_cache is None:
        return RegionalSuite(metrics, regions=("whole_body",)).to(device)
    return RegionalSuite(metrics, regions=("whole_body",), reference_cache=reference_cache).to(device)


def _feature_cache() -> Any:
    """A fresh :class:`metrics.features.FeatureCache`, or None where that API does not exist."""
    try:
        from metrics.features import FeatureCache
    except ImportError:
        return None
    return FeatureCache()


def _settings() -> tuple[tuple[str, str, bool], ...]:
    """Our sides: fp32, plus bf16 + channels_last when the precision API exists."""
    try:
        from metrics.backbones.precision import check_precision  # noqa: F401
    except ImportError:
        return SETTINGS[:1]
    return SETTINGS


class _Ours:
    """One suite at one precision, instrumented: Fréchet step, per-metric and backbone-preprocessing time."""

    def __init__(
        self,
        backbones: Backbones,
        precision: str,
        channels_last: bool,
        device: torch.device,
        reference_cache: Any = None,
    ) -> None:
        self.suite = build_suite(backbones, precision, channels_last, device, reference_cache)
        self.cache = reference_cache
        self.device = device
        self.bucket: dict[str, float] = {}
        self.metrics = dict(self.suite.collections["whole_body"].items(keep_base=True, copy_state=False))
        for key, metric in self.metrics.items():
            time_calls(metric, "update", self.bucket, f"update {key}", device)
            if key in FRECHET_KEYS:
                time_calls(metric, "_add_per_video", self.bucket, "frechet", device)
            if key == "E-FID":
                time_calls(metric, "frame_transform", self.bucket, "edges", device)

    def __call__(self, gen: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
        from metrics.suite import AvatarBatch

        self.suite.reset()
        # with a reference cache, the batch names its reference videos (a dataset index, a file hash)
        ids = None if self.cache is None else [f"reference-{i}" for i in range(ref.shape[0])]
        with torch.inference_mode():
            self.suite.update(AvatarBatch(generated=gen, reference=ref, video_ids=ids))
            return {k: float(v) for k, v in self.suite.compute()["whole_body"].items()}

    def close(self) -> None:
        for metric in self.metrics.values():
            for name in ("update", "_add_per_video", "frame_transform"):
                if name in vars(metric):
                    untime_calls(metric, name)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    gc.collect()
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def measure_pipeline(
    generated: torch.Tensor,
    reference: torch.Tensor,
    backbones: Backbones,
    device: torch.device,
    rounds: int = 1,
    settings: tuple[tuple[str, str, bool], ...] | None = None,
    second_evaluation: bool = True,
) -> dict[str, Any]:
    """Time the baseline loop and our suite(s) on uint8 ``[B, T, 3, H, W]`` video pairs, interleaved.

    Each round runs the baseline once and each of our settings once, the order reversed every other round,
    after one untimed warm-up call of each of ours on the first video's first two frames (builds and
    calibrates the backbones, creates the kernels). With ``second_evaluation`` (and the
    :class:`metrics.features.FeatureCache` API) an fp32 suite with a fresh reference cache then evaluates
    the same pairs twice (``ours_fp32_first`` / ``ours_fp32_second``: a validation epoch 2+ or a rerun of
    ``jwbdh-eval`` on the same references). Returns per-round times of every side and of its Fréchet step,
    the last values of each side, stage/metric time splits and the features the baseline saw.

    Example:
        >>> out = measure_pipeline(gen, ref, Backbones.real(), torch.device("cpu"))  # doctest: +SKIP
        >>> sorted(out["times"])  # doctest: +SKIP
        ['ours_bf16', 'ours_fp32', 'reference']
    """
    if generated.shape != reference.shape or generated.ndim != 5 or generated.dtype != torch.uint8:
        raise ValueError(
            f"`generated` and `reference` must be uint8 [B, T, 3, H, W] of one shape, got "
            f"{tuple(generated.shape)} {generated.dtype} and {tuple(reference.shape)} {reference.dtype}"
        )
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"`rounds` must be a positive int, got {rounds!r}")
    settings = settings if settings is not None else _settings()
    gen_t, ref_t = generated.to(device), reference.to(device)
    gen_bgr = [to_hwc(v, bgr=True) for v in generated]
    ref_bgr = [to_hwc(v, bgr=True) for v in reference]

    ours = {f"ours_{label}": _Ours(backbones, p, cl, device) for label, p, cl in settings}
    cached = None
    if second_evaluation and _feature_cache() is not None:
        cached = _Ours(backbones, "fp32", False, device, _feature_cache())
    loop = FIDCalculateLoop(backbones.inception.get(device).net, backbones.i3d.get(device), device)
    times: dict[str, list[float]] = {"reference": [], **{k: [] for k in ours}}
    if cached is not None:
        times.update(ours_fp32_first=[], ours_fp32_second=[])
    frechet: dict[str, list[float]] = {k: [] for k in times}
    values: dict[str, dict[str, float]] = {}
    stages: dict[str, float] = {}
    splits: dict[str, dict[str, float]] = {}

    def run_reference() -> None:
        loop.timer.reset()
        seconds, values["reference"] = _timed(lambda: loop.run(gen_bgr, ref_bgr), device)
        times["reference"].append(seconds)
        frechet["reference"].append(sum(loop.timer.seconds.get(s, 0.0) for s in FRECHET_STAGES))
        for k, v in loop.timer.seconds.items():
            stages[k] = stages.get(k, 0.0) + v

    def run_ours(name: str) -> None:
        side = ours[name]
        side.bucket.clear()
        seconds, values[name] = _timed(lambda: side(gen_t, ref_t), device)
        times[name].append(seconds)
        frechet[name].append(side.bucket.get("frechet", 0.0))
        splits[name] = {**side.bucket, "total": seconds}

    def run_twice() -> None:
        assert cached is not None
        cached.cache.clear()  # a new run: nothing cached yet
        for name in ("ours_fp32_first", "ours_fp32_second"):
            cached.bucket.clear()
            seconds, values[name] = _timed(lambda: cached(gen_t, ref_t), device)
            times[name].append(seconds)
            frechet[name].append(cached.bucket.get("frechet", 0.0))

    with quiet():
        warm = [*ours.values(), *([cached] if cached is not None else [])]
        for side in warm:  # warm-up: backbones built and calibrated, kernels chosen (the cache is cleared)
            side(gen_t[:1, :2], ref_t[:1, :2])
        order = ["reference", *ours, *(["cached"] if cached is not None else [])]
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                if name == "reference":
                    run_reference()
                elif name == "cached":
                    run_twice()
                else:
                    run_ours(name)
    for side in [*ours.values(), *([cached] if cached is not None else [])]:
        side.close()
    return {
        "times": times,
        "frechet": frechet,
        "values": values,
        "reference_stages": {k: v / rounds for k, v in stages.items()},
        "ours_splits": splits,
        "reference_features": loop.features,
    }


def _non_frechet(total: list[float], frechet: list[float]) -> list[float]:
    return [max(t - f, 1e-9) for t, f in zip(total, frechet, strict=True)]


def pipeline_ratios(measured: dict[str, Any]) -> dict[str, Ratio]:
    """``frechet_step``, ``non_frechet``, ``end_to_end`` (fp32) and their ``_bf16`` variants, per round."""
    times, frechet = measured["times"], measured["frechet"]
    series = {
        "ref_total": times["reference"],
        "ref_frechet": frechet["reference"],
        "ref_rest": _non_frechet(times["reference"], frechet["reference"]),
    }
    ratios: dict[str, Ratio] = {}
    if "ours_fp32_second" in times:
        ratios["second_evaluation"] = speedup(
            {"first": times["ours_fp32_first"], "second": times["ours_fp32_second"]},
            "first",
            "second",
            "ours fp32: first evaluation / second evaluation of the same references (reference cache)",
        )
    for name in times:
        if name == "reference" or name.startswith("ours_fp32_"):
            continue
        label = name.removeprefix("ours_")
        suffix = "" if label == "fp32" else f"_{label}"
        series[f"{name}_total"] = times[name]
        series[f"{name}_frechet"] = [max(f, 1e-9) for f in frechet[name]]
        series[f"{name}_rest"] = _non_frechet(times[name], frechet[name])
        if label == "fp32":
            ratios["frechet_step"] = speedup(
                series,
                "ref_frechet",
                f"{name}_frechet",
                "script np.cov + scipy sqrtm / our exact per-video Fréchet",
            )
        ratios[f"non_frechet{suffix}"] = speedup(
            series,
            "ref_rest",
            f"{name}_rest",
            f"everything but the Fréchet step (preprocessing, networks, pixel metrics), ours at {label}",
        )
        ratios[f"end_to_end{suffix}"] = speedup(
            series, "ref_total", f"{name}_total", f"whole pipeline, ours at {label}"
        )
    return ratios


def pipeline_checks(values: dict[str, dict[str, float]]) -> tuple[list[Correctness], dict[str, Any]]:
    """Correctness of each of our settings against the baseline's values, and the per-metric differences."""
    checks, diffs = [], {}
    theirs = values["reference"]
    for name, mine in values.items():
        if name == "reference":
            continue
        label = name.removeprefix("ours_").replace("fp32_", "fp32 ")
        worst = {}
        for key in KEYS:
            if key in FRECHET_KEYS:
                worst[key] = relative_difference(mine[key], theirs[key])
            else:
                delta = mine[key] - theirs[key]
                worst[key] = (
                    abs(delta) if math.isfinite(delta) else (0.0 if mine[key] == theirs[key] else math.inf)
                )
        diffs[name] = worst
        fp32 = label.startswith("fp32")
        checks.append(
            Correctness(
                f"{label}: max rel diff FID/E-FID vs script loop",
                max(worst["FID"], worst["E-FID"]),
                FRECHET_REL_TOL if fp32 else BF16_FRECHET_REL_TOL,
            )
        )
        checks.append(
            Correctness(
                f"{label}: rel diff FVD vs script loop",
                worst["FVD"],
                FVD_REL_TOL if fp32 else BF16_FRECHET_REL_TOL,
            )
        )
        checks.append(
            Correctness(
                f"{label}: max abs diff SSIM/PSNR/CSIM vs script loop",
                max(worst[k] for k in PIXEL_KEYS),
                PIXEL_ABS_TOL,
            )
        )
    return checks, diffs


def bench_pipeline(cfg: Config) -> BenchResult:
    """FID, E-FID, FVD, SSIM, PSNR, CSIM with real Inception-v3 / I3D: RegionalSuite vs FID_calculate.py."""
    num_videos = cfg.pick(1, 5)
    height, width = cfg.pick((128, 128), (512, 512))
    rounds = cfg.n_rounds(1, 1)
    dev = cfg.device
    ref, gen, _ = avatar_videos(num_videos, FRAMES, height, width, seed=1, other_motion=True)
    backbones = Backbones.real()
    measured = measure_pipeline(gen, ref, backbones, dev, rounds=rounds)
    ratios = pipeline_ratios(measured)
    checks, diffs = pipeline_checks(measured["values"])
    ref_stages = measured["reference_stages"]
    ref_total = statistics.median(measured["times"]["reference"])
    notes = [
        "script loop time by stage: "
        + ", ".join(f"{k} {v['share']:.0%}" for k, v in shares(ref_stages, ref_total).items())
    ]
    for name, split in measured["ours_splits"].items():
        total = split["total"]
        parts = {k: v for k, v in split.items() if k != "total"}
        notes.append(f"{name} ({total:.1f}s): " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()))
    if len(measured["times"]) < 1 + len(SETTINGS):
        notes.append("bf16 side skipped: metrics.backbones.precision is not available")
    return BenchResult(
        name="pipeline",
        mode=cfg.mode,
        device=str(dev),
        params={
            "videos": num_videos,
            "frames": FRAMES,
            "height": height,
            "width": width,
            "inception": "torchvision inception_v3 (random init, BN calibrated), 2048-d",
            "i3d": "InceptionI3d (random init, BN calibrated, scripted), 400-d",
            "rounds": rounds,
            "regions": ["whole_body"],
            "ours": [k.removeprefix("ours_") for k in measured["times"] if k != "reference"],
        },
        timings={
            **{k: summarize(v) for k, v in measured["times"].items()},
            **{f"{k} frechet step": summarize(v) for k, v in measured["frechet"].items()},
        },
        ratios=ratios,
        correctness=checks,
        breakdown={
            "reference_stages": shares(ref_stages, ref_total),
            "ours_splits": measured["ours_splits"],
            "per_metric_difference": diffs,
            "values": measured["values"],
        },
        notes=notes,
    )


BENCHMARKS = {"pipeline": bench_pipeline}
