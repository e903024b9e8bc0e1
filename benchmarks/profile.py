"""Throughput profile of the regional suite: frames per second per metric and for the whole suite.

``python -m benchmarks.profile [--preset smoke] [--device cuda] [--videos 4] [--frames 16] [--size 256 192]``

Issue 6 item 2 (a GPU profile; it runs on a CPU too). Synthetic avatar clips (``benchmarks.data``) go through
:class:`~metrics.suite.RegionalSuite` built from a preset, in three passes over the same batches:

* ``preset``: the preset as configured (jwbdh-v1: per-video Fréchet distances);
* ``pooled``: FID, E-FID and FVD switched to the pooled protocol (``mode="pooled"``), both sides fed;
* ``pooled, cached reference``: the same after :meth:`~metrics.suite.RegionalSuite.freeze_reference`, so
  the reference side of the Fréchet metrics is never recomputed (what ``JWBDHCallback(cache_reference=True)``
  does from the second validation epoch on).

Throughput counts frames of the *generated* videos per region (a pair metric's reference side is part of its
cost) that a metric accepted, over the time in its ``update`` calls (device-synchronised timers; rejected
calls, e.g. crops too small for a network, still cost time), plus the suite's own work (boxes and crops).
These are absolute rates of one machine, not regression checks (those are ratios,
``python -m benchmarks``); record them with the device name. Real backbones need their checkpoints cached
(``jwbdh-weights download ...``); the smoke preset runs offline.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from benchmarks.common import describe_device, pick_device, synchronize, time_calls
from benchmarks.data import avatar_videos

_FRECHET_KEYS = ("FID", "E-FID", "FVD")


def _suite(preset: str, pooled: bool, device: torch.device) -> Any:
    from jwbdh_callbacks.presets import load_preset
    from jwbdh_callbacks.region_callback import preset_metrics
    from metrics.suite import RegionalSuite

    cfg = load_preset(preset)
    metrics = {k: dict(v) for k, v in preset_metrics(cfg).items()}
    if pooled:
        for key in _FRECHET_KEYS:
            if key in metrics:
                metrics[key]["mode"] = "pooled"
    suite = RegionalSuite(
        metrics, regions=cfg.regions, crop_size=cfg.crop_size, min_region_frames=cfg.min_region_frames
    )
    return suite.to(device)


def _batches(videos: int, frames: int, size: tuple[int, int], batch_size: int, device: torch.device) -> list:
    from metrics.suite import AvatarBatch

    ref, gen, kps = avatar_videos(videos, frames, size[0], size[1])
    out = []
    for i in range(0, videos, batch_size):
        out.append(
            AvatarBatch(
                generated=gen[i : i + batch_size].to(device),
                reference=ref[i : i + batch_size].to(device),
                keypoints_reference=kps[i : i + batch_size].to(device),
                fps=[25.0] * min(batch_size, videos - i),
            )
        )
    return out


def _timed_pass(suite: Any, batches: list, device: torch.device) -> dict[str, Any]:
    """One epoch over ``batches``: seconds per ``region/metric``, suite bookkeeping and the total."""
    bucket: dict[str, float] = {}
    frames: dict[str, int] = {}
    originals = []
    for region, collection in suite.collections.items():
        for key, metric in collection.items(keep_base=True, copy_state=False):
            name = f"{region}/{key}"
            original = metric.update  # torchmetrics' own wrapped update (an instance attribute)
            originals.append((metric, original))

            def counting(*args: Any, _name: str = name, _orig: Any = original, **kwargs: Any) -> Any:
                out = _orig(*args, **kwargs)  # a call that raises (a skipped video) counts no frames
                frames[_name] = frames.get(_name, 0) + int(args[0].shape[0] * args[0].shape[1])
                return out

            metric.update = counting
            time_calls(metric, "update", bucket, name, device)
    try:
        synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            suite.update(batch)
        synchronize(device)
        total = time.perf_counter() - start
    finally:
        for metric, original in originals:
            metric.update = original
    return {"seconds": bucket, "frames": frames, "total_s": total}


def profile(
    preset: str = "smoke",
    device: torch.device | None = None,
    videos: int = 4,
    frames: int = 16,
    size: tuple[int, int] = (256, 192),
    batch_size: int = 2,
) -> dict[str, Any]:
    """Run the three passes (after one warm-up epoch each) and return frames/s figures."""
    dev = device or pick_device()
    batches = _batches(videos, frames, size, batch_size, dev)
    total_frames = videos * frames
    out: dict[str, Any] = {
        "device": describe_device(dev),
        "torch": torch.__version__,
        "preset": preset,
        "videos": videos,
        "frames": frames,
        "size": list(size),
        "batch_size": batch_size,
        "passes": {},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, pooled, freeze in (
            ("preset", False, False),
            ("pooled", True, False),
            ("pooled, cached reference", True, True),
        ):
            suite = _suite(preset, pooled, dev)
            for batch in batches:  # warm-up: backbones built, kernels chosen
                suite.update(batch)
            if not freeze:
                suite.reset()
            elif not suite.freeze_reference():  # keeps the reference moments, empties the states
                raise RuntimeError("no pooled metric to freeze")
            timed = _timed_pass(suite, batches, dev)
            per_metric: dict[str, dict[str, float]] = {}
            for key in suite.metric_keys:
                secs = sum(v for k, v in timed["seconds"].items() if k.endswith(f"/{key}"))
                n = sum(v for k, v in timed["frames"].items() if k.endswith(f"/{key}"))
                per_metric[key] = {"seconds": secs, "frames": n, "frames_per_s": n / secs if secs else 0.0}
            metrics_s = sum(timed["seconds"].values())
            out["passes"][name] = {
                "total_s": timed["total_s"],
                "suite_frames_per_s": total_frames / timed["total_s"],
                "bookkeeping_s": max(timed["total_s"] - metrics_s, 0.0),
                "per_metric": per_metric,
            }
    return out


def format_profile(result: dict[str, Any]) -> str:
    """A plain-text table of :func:`profile`'s result."""
    passes = result["passes"]
    names = list(passes)
    keys = list(next(iter(passes.values()))["per_metric"])
    lines = [
        f"suite throughput, preset {result['preset']!r}, {result['device']}, torch {result['torch']}: "
        f"{result['videos']} videos x {result['frames']} frames at {result['size'][0]}x{result['size'][1]}, "
        f"batches of {result['batch_size']}",
        f"{'metric (frames/s)':<22}" + "".join(f"{n:>28}" for n in names),
    ]
    for key in keys:
        lines.append(
            f"{key:<22}" + "".join(f"{passes[n]['per_metric'][key]['frames_per_s']:>28.1f}" for n in names)
        )
    lines.append(f"{'whole suite':<22}" + "".join(f"{passes[n]['suite_frames_per_s']:>28.2f}" for n in names))
    lines.append(
        "frames/s per metric: generated frames over all regions / seconds in that metric's update; whole "
        "suite: generated frames / wall time of the epoch (all regions and metrics, crops included)."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--device", help="default: cuda if available, else cpu")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 192), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    if min(args.videos, args.frames, args.batch_size, *args.size) < 1:
        parser.error("--videos, --frames, --batch-size and --size must be positive")
    result = profile(
        args.preset,
        pick_device(args.device),
        args.videos,
        args.frames,
        tuple(args.size),
        args.batch_size,
    )
    print(format_profile(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
