"""Fréchet benchmarks: pooled compute vs torchmetrics' FID, per-video exact Fréchet vs scipy sqrtm.

* ``frechet_pooled``: our :class:`~metrics.frechet.FrechetDistance` (pooled mode, eigh/Cholesky sandwich in
  float64) ``compute()`` vs ``torchmetrics.image.fid.FrechetInceptionDistance.compute()`` with an identity
  feature extractor, both fed the same ``n = 1.25 d`` features per side (full rank). Ours is timed cold
  (no cached reference factor) and with the cached reference factor (a training run whose reference side
  does not change between validation epochs). Correctness: relative difference <= 1e-6 (DESIGN s7).
* ``frechet_per_video``: :func:`~metrics.functional.frechet.per_video_frechet_distance` on ``B`` 16-frame
  video pairs at once (time per video = batch time / B) vs the reference scripts' per-pair
  ``np.cov`` + ``scipy.linalg.sqrtm(S1 S2)`` (one pair per round; at d=2048 one sqrtm takes tens of seconds
  on a CPU). Correctness: relative difference <= 1e-6 on the pairs both computed.

    python -m benchmarks --only frechet_pooled frechet_per_video [--quick]
"""

from __future__ import annotations

import statistics

import numpy as np
import torch
from torch import nn

from benchmarks.common import (
    BenchResult,
    Config,
    Correctness,
    interleaved,
    quiet,
    relative_difference,
    speedup,
    summarize,
)
from benchmarks.reference_scripts import calculate_fid
from metrics.frechet import FrechetDistance
from metrics.functional.frechet import per_video_frechet_distance

#: DESIGN s7: our Fréchet values agree with torchmetrics / scipy to <= 1e-6 relative.
FRECHET_REL_TOL = 1e-6


class _Identity(nn.Module):
    """Feature extractor for torchmetrics' FID that returns its input: the features are given."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    """Non-negative, correlated float64 features (like pooled CNN activations)."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift).clamp_min(0)


def bench_frechet_pooled(cfg: Config) -> BenchResult:
    """Pooled Fréchet compute (cold / cached reference factor) vs torchmetrics FID.compute()."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    d = cfg.pick(512, 2048)
    n = d + d // 4
    rounds = cfg.n_rounds(5, 5)
    dev = cfg.device
    real, fake = _features(n, d, 0.0, 0).to(dev), _features(n, d, 0.05, 1).to(dev)
    ours = FrechetDistance(num_features=d, mode="pooled").to(dev)
    ours.update(real, real=True)
    ours.update(fake, real=False)
    tm = FrechetInceptionDistance(feature=_Identity(d)).to(dev)
    tm.update(real, real=True)
    tm.update(fake, real=False)

    def ours_cold() -> float:
        ours._computed, ours._factor_cache = None, None
        return float(ours.compute())

    def ours_cached() -> float:
        ours._computed = None  # torchmetrics' compute cache, not our reference factor cache
        return float(ours.compute())

    def baseline() -> float:
        tm._computed = None
        return float(tm.compute())

    with quiet():
        times, values = interleaved(
            {"torchmetrics": baseline, "ours_cold": ours_cold, "ours_cached": ours_cached},
            rounds,
            dev,
            warmup=1,
        )
    return BenchResult(
        name="frechet_pooled",
        mode=cfg.mode,
        device=str(dev),
        params={"d": d, "samples_per_side": n, "rounds": rounds, "dtype": "float64"},
        timings={k: summarize(v) for k, v in times.items()},
        ratios={
            "speedup_cold": speedup(times, "torchmetrics", "ours_cold", "torchmetrics / ours (no cache)"),
            "speedup_cached": speedup(
                times, "torchmetrics", "ours_cached", "torchmetrics / ours (cached reference factor)"
            ),
        },
        correctness=[
            Correctness(
                "rel diff ours vs torchmetrics",
                relative_difference(values["ours_cold"], values["torchmetrics"]),
                FRECHET_REL_TOL,
            ),
            Correctness(
                "rel diff cached vs cold",
                relative_difference(values["ours_cached"], values["ours_cold"]),
                1e-12,
            ),
        ],
        notes=[f"value {values['ours_cold']:.6g} (torchmetrics {values['torchmetrics']:.6g})"],
    )


def scipy_cov_frechet(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """The reference scripts' per-video Fréchet: ``np.cov`` + ``scipy.linalg.sqrtm`` with the 1e-6 retry.

    ``x`` ``[n1, d]`` and ``y`` ``[n2, d]`` feature matrices (one row per frame) or, for a single sample,
    the covariance is replaced by ``1e-6 I`` (the FVD rule).
    """
    mu1, mu2 = x.mean(axis=0), y.mean(axis=0)
    d = x.shape[1]
    s1 = np.cov(x, rowvar=False) if x.shape[0] > 1 else np.eye(d) * eps
    s2 = np.cov(y, rowvar=False) if y.shape[0] > 1 else np.eye(d) * eps
    return calculate_fid(mu1, s1, mu2, s2, eps)


def bench_frechet_per_video(cfg: Config) -> BenchResult:
    """Batched exact per-video 16-frame Fréchet vs np.cov + scipy sqrtm per pair."""
    d = cfg.pick(512, 2048)
    videos = 64
    rounds = cfg.n_rounds(3, 3)
    dev = cfg.device
    g = torch.Generator().manual_seed(2)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    centres = torch.randn(videos, 1, d, generator=g, dtype=torch.float64)
    gen = ((torch.randn(videos, 16, d, generator=g, dtype=torch.float64) * 0.5 + centres) @ mix).clamp_min(0)
    ref = (
        (torch.randn(videos, 16, d, generator=g, dtype=torch.float64) * 0.5 + centres + 0.1) @ mix
    ).clamp_min(0)
    gen_dev, ref_dev = gen.to(dev), ref.to(dev)
    gen_np, ref_np = gen.numpy(), ref.numpy()
    state = {"round": 0, "scipy": []}

    def ours() -> torch.Tensor:
        return per_video_frechet_distance(gen_dev, ref_dev)

    def baseline() -> float:
        i = state["round"] % videos
        state["round"] += 1
        value = scipy_cov_frechet(gen_np[i], ref_np[i])
        state["scipy"].append((i, value))
        return value

    times, outs = interleaved(
        {"ours_batch": ours, "scipy_sqrtm": baseline},
        rounds,
        dev,
        warmup={"ours_batch": 2},
        repeat={"ours_batch": 5},
    )
    per_video = {"scipy_sqrtm": times["scipy_sqrtm"], "ours": [t / videos for t in times["ours_batch"]]}
    values = outs["ours_batch"].cpu()
    rel = max(relative_difference(float(values[i]), v) for i, v in state["scipy"])
    return BenchResult(
        name="frechet_per_video",
        mode=cfg.mode,
        device=str(dev),
        params={"d": d, "frames_per_video": 16, "videos_per_batch": videos, "rounds": rounds},
        timings={k: summarize(v) for k, v in per_video.items()},
        ratios={
            "speedup": speedup(per_video, "scipy_sqrtm", "ours", "scipy sqrtm per pair / ours per video")
        },
        correctness=[Correctness("max rel diff ours vs scipy sqrtm", rel, FRECHET_REL_TOL)],
        notes=[
            f"ours {statistics.median(per_video['ours']) * 1e6:.3g} us per video (batch of {videos}); "
            f"scipy {statistics.median(times['scipy_sqrtm']):.3g} s per pair"
        ],
    )


BENCHMARKS = {
    "frechet_pooled": bench_frechet_pooled,
    "frechet_per_video": bench_frechet_per_video,
}
