"""Fréchet speed: our compute vs torchmetrics FID.compute() at d=2048, per-video Fréchet vs scipy sqrtm.

Both sides run in this process on the same statistics, interleaved over several rounds; we report median
times and the ratio baseline / ours (>1 means we are faster), plus the relative difference of the values.

    python -m benchmarks.frechet_bench [--rounds 3] [--dim 2048] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from metrics.frechet import FrechetDistance
from metrics.functional.frechet import per_video_frechet_distance


class _Identity(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift).clamp_min(0)


def _timed(fn) -> tuple[float, float]:
    start = time.perf_counter()
    value = float(fn())
    return time.perf_counter() - start, value


def bench_pooled(d: int, n: int, rounds: int) -> dict:
    real, fake = _features(n, d, 0.0, 0), _features(n, d, 0.05, 1)
    ours = FrechetDistance(num_features=d, mode="pooled")
    ours.update(real, real=True)
    ours.update(fake, real=False)
    tm = FrechetInceptionDistance(feature=_Identity(d))
    tm.update(real, real=True)
    tm.update(fake, real=False)

    def ours_cold():
        ours._computed, ours._factor_cache = None, None
        return ours.compute()

    def ours_cached():
        ours._computed = None
        return ours.compute()

    def baseline():
        tm._computed = None
        return tm.compute()

    times = {"torchmetrics": [], "ours_cold": [], "ours_cached": []}
    values = {}
    for _ in range(rounds):  # interleaved so that machine noise hits both sides alike
        for name, fn in (("torchmetrics", baseline), ("ours_cold", ours_cold), ("ours_cached", ours_cached)):
            t, values[name] = _timed(fn)
            times[name].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_s": med,
        "spread_s": {k: (min(v), max(v)) for k, v in times.items()},
        "speedup_cold": med["torchmetrics"] / med["ours_cold"],
        "speedup_cached": med["torchmetrics"] / med["ours_cached"],
        "rel_diff": abs(values["ours_cold"] - values["torchmetrics"]) / abs(values["torchmetrics"]),
    }


def _scipy_per_video(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def bench_per_video(d: int, videos: int, rounds: int) -> dict:
    g = torch.Generator().manual_seed(2)
    gen = torch.randn(videos, 16, d, generator=g, dtype=torch.float64)
    ref = torch.randn(videos, 16, d, generator=g, dtype=torch.float64) + 0.1
    ours_t, base_t, rel = [], [], []
    for r in range(rounds):
        start = time.perf_counter()
        ours = per_video_frechet_distance(gen, ref)
        ours_t.append((time.perf_counter() - start) / videos)
        i = r % videos
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, value = _timed(lambda i=i: _scipy_per_video(gen[i].numpy(), ref[i].numpy()))
        base_t.append(t)
        rel.append(abs(float(ours[i]) - value) / abs(value))
    return {
        "median_s_per_video": {"scipy_sqrtm": statistics.median(base_t), "ours": statistics.median(ours_t)},
        "speedup": statistics.median(base_t) / statistics.median(ours_t),
        "max_rel_diff": max(rel),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="d=512 and fewer samples (seconds, not minutes)")
    args = parser.parse_args(argv)
    d = 512 if args.quick else args.dim
    pooled = bench_pooled(d, n=d + d // 4, rounds=args.rounds)
    per_video = bench_per_video(d, videos=64, rounds=args.rounds)
    print(f"device cpu, torch threads {torch.get_num_threads()}, d={d}, rounds={args.rounds}")
    m = pooled["median_s"]
    print(
        f"pooled compute  torchmetrics {m['torchmetrics']:.3f}s | ours {m['ours_cold']:.3f}s "
        f"(cached reference {m['ours_cached']:.3f}s) | speedup x{pooled['speedup_cold']:.2f} "
        f"(cached x{pooled['speedup_cached']:.2f}) | rel diff {pooled['rel_diff']:.1e}"
    )
    pv = per_video["median_s_per_video"]
    print(
        f"per-video 16f   scipy sqrtm {pv['scipy_sqrtm']:.3f}s | ours {pv['ours'] * 1e6:.1f}us per video | "
        f"speedup x{per_video['speedup']:.0f} | max rel diff {per_video['max_rel_diff']:.1e}"
    )
    return {"pooled": pooled, "per_video": per_video}


if __name__ == "__main__":
    main()
