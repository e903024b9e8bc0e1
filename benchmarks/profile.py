"""Throughput profile of the regional suite: frames per second per metric and for the whole suite.

``python -m benchmarks.profile [--preset smoke] [--device cuda] [--videos 4] [--frames 16] [--size 256 192]``
``python -m benchmarks.profile --device cuda --backbones real --metrics FID,E-FID,FVD,SSIM,PSNR,CSIM
--size 512 512 --precision tf32 --channels-last`` (the jwbdh-v1 frame pipeline at real sizes: issue 10's
"<= 50 ms per video-region" figure)

Issue 6 item 2 (a GPU profile; it runs on a CPU too). Synthetic avatar clips (``benchmarks.data``) go through
:class:`~metrics.suite.RegionalSuite` built from a preset, in three passes over the same batches:

* ``preset``: the preset as configured (jwbdh-v1: per-video Fréchet distances);
* ``pooled``: FID, E-FID and FVD switched to the pooled protocol (``mode="pooled"``), both sides fed;
* ``pooled, cached reference``: the same after :meth:`~metrics.suite.RegionalSuite.freeze_reference`, so
  the reference side of the Fréchet metrics is never recomputed (what ``JWBDHCallback(cache_reference=True)``
  does from the second validation epoch on);
* ``preset, cached features``: the preset with a :class:`~metrics.features.FeatureCache` and video ids,
  timed on its second epoch: per-video reference features are reused, not recomputed (what
  ``JWBDHCallback(cache_reference_features=True)`` and a ``jwbdh-eval`` rerun do).

``--backbones real`` replaces the preset's checkpoints by the real architectures with seeded random weights
(torchvision Inception-v3, the I3D architecture, DINO/CLIP/AMT/RAFT/MUSIQ ports): real cost, no download,
numbers not calibrated. ``--precision`` / ``--channels-last`` set every backbone's inference mode
(:mod:`metrics.backbones.precision`). ``ms_per_video_region`` is the epoch's wall time over the number of
(video, region) pairs scored.

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


#: Metrics whose backbone argument is ``weights`` (None = the real architecture, seeded random init).
_WEIGHTED = ("SC", "BC", "MS", "DD", "AQ", "IQ", "FID", "E-FID")


def _metric_config(
    preset: str, backbones: str, keys: Sequence[str] | None, precision: str, channels_last: bool
) -> tuple[Any, dict[str, dict[str, Any]]]:
    from jwbdh_callbacks.presets import load_preset
    from jwbdh_callbacks.region_callback import preset_metrics

    cfg = load_preset(preset)
    metrics = {k: dict(v) for k, v in preset_metrics(cfg).items()}
    if keys:
        unknown = sorted(set(keys) - set(metrics))
        if unknown:
            raise ValueError(f"--metrics: {unknown} not in preset {preset!r} ({sorted(metrics)})")
        metrics = {k: metrics[k] for k in keys}
    if backbones == "real":
        from metrics.backbones.i3d import inception_i3d_ref

        for key, kwargs in metrics.items():
            if key in _WEIGHTED:
                kwargs.pop("feature_extractor", None)
                kwargs["weights"] = None
            elif key == "FVD":
                kwargs["feature_extractor"] = inception_i3d_ref(None)
    for key, kwargs in metrics.items():
        if key in _WEIGHTED or key == "FVD":
            kwargs.update(precision=precision, channels_last=channels_last)
    return cfg, metrics


def _suite(
    cfg: Any, metrics: dict[str, dict[str, Any]], pooled: bool, device: torch.device, cache: Any = None
) -> Any:
    from metrics.suite import RegionalSuite

    metrics = {k: dict(v) for k, v in metrics.items()}
    if pooled:
        for key in _FRECHET_KEYS:
            if key in metrics:
                metrics[key]["mode"] = "pooled"
    suite = RegionalSuite(
        metrics,
        regions=cfg.regions,
        crop_size=cfg.crop_size,
        min_region_frames=cfg.min_region_frames,
        reference_cache=cache,
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
                video_ids=[f"video{j}" for j in range(i, min(i + batch_size, videos))],
            )
        )
    return out


def _timed_pass(suite: Any, batches: list, device: torch.device) -> dict[str, Any]:
    """One epoch over ``batches``: seconds per ``region/metric``, suite bookkeeping and the total."""
    bucket: dict[str, float] = {}
    frames: dict[str, int] = {}
    videos: dict[str, int] = {}  # videos each region/metric accepted
    originals = []
    for region, collection in suite.collections.items():
        for key, metric in collection.items(keep_base=True, copy_state=False):
            name = f"{region}/{key}"
            original = metric.update  # torchmetrics' own wrapped update (an instance attribute)
            originals.append((metric, original))

            def counting(*args: Any, _name: str = name, _orig: Any = original, **kwargs: Any) -> Any:
                out = _orig(*args, **kwargs)  # a call that raises (a skipped video) counts no frames
                frames[_name] = frames.get(_name, 0) + int(args[0].shape[0] * args[0].shape[1])
                videos[_name] = videos.get(_name, 0) + int(args[0].shape[0])
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
    regions: dict[str, int] = {}  # (video, region) pairs scored: the most any metric of the region accepted
    for name, count in videos.items():
        region = name.split("/")[0]
        regions[region] = max(regions.get(region, 0), count)
    return {
        "seconds": bucket,
        "frames": frames,
        "total_s": total,
        "regions": regions,
        "video_regions": sum(regions.values()),
    }


def _without_ids(batch: Any) -> Any:
    import dataclasses

    return dataclasses.replace(batch, video_ids=None)


def profile(
    preset: str = "smoke",
    device: torch.device | None = None,
    videos: int = 4,
    frames: int = 16,
    size: tuple[int, int] = (256, 192),
    batch_size: int = 2,
    backbones: str = "preset",
    metric_keys: Sequence[str] | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    passes: Sequence[str] = ("preset", "pooled", "pooled, cached reference", "preset, cached features"),
) -> dict[str, Any]:
    """Run the passes (after one warm-up epoch each) and return frames/s figures."""
    from metrics.features import FeatureCache

    dev = device or pick_device()
    cfg, metrics = _metric_config(preset, backbones, metric_keys, precision, channels_last)
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
        "backbones": backbones,
        "precision": precision,
        "channels_last": channels_last,
        "passes": {},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, pooled, freeze, cached in (
            ("preset", False, False, False),
            ("pooled", True, False, False),
            ("pooled, cached reference", True, True, False),
            ("preset, cached features", False, False, True),
        ):
            if name not in passes:
                continue
            suite = _suite(cfg, metrics, pooled, dev, FeatureCache(device=dev) if cached else None)
            for batch in batches:  # warm-up: backbones built, kernels chosen (and the feature cache filled)
                suite.update(batch if cached else _without_ids(batch))
            if not freeze:
                suite.reset()
            elif not suite.freeze_reference():  # keeps the reference moments, empties the states
                raise RuntimeError("no pooled metric to freeze")
            timed = _timed_pass(suite, batches if cached else [_without_ids(b) for b in batches], dev)
            per_metric: dict[str, dict[str, float]] = {}
            for key in suite.metric_keys:
                secs = sum(v for k, v in timed["seconds"].items() if k.endswith(f"/{key}"))
                n = sum(v for k, v in timed["frames"].items() if k.endswith(f"/{key}"))
                per_metric[key] = {"seconds": secs, "frames": n, "frames_per_s": n / secs if secs else 0.0}
            metrics_s = sum(timed["seconds"].values())
            scored = sum(1 for k in timed["regions"] if timed["regions"][k])
            out["passes"][name] = {
                "total_s": timed["total_s"],
                "video_regions": timed["video_regions"],
                "ms_per_video_region": 1000 * timed["total_s"] / max(timed["video_regions"], 1),
                "regions_scored": scored,
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
        f"batches of {result['batch_size']}; backbones {result['backbones']}, {result['precision']}"
        + (", channels_last" if result["channels_last"] else ""),
        f"{'metric (frames/s)':<22}" + "".join(f"{n:>28}" for n in names),
    ]
    for key in keys:
        lines.append(
            f"{key:<22}" + "".join(f"{passes[n]['per_metric'][key]['frames_per_s']:>28.1f}" for n in names)
        )
    lines.append(f"{'whole suite':<22}" + "".join(f"{passes[n]['suite_frames_per_s']:>28.2f}" for n in names))
    lines.append(
        f"{'ms per video-region':<22}" + "".join(f"{passes[n]['ms_per_video_region']:>28.1f}" for n in names)
    )
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
    parser.add_argument(
        "--backbones",
        choices=("preset", "real"),
        default="preset",
        help="real: the preset's architectures with seeded random weights (no download)",
    )
    parser.add_argument("--metrics", help="comma-separated paper keys (default: the preset's)")
    parser.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--passes",
        default="preset,pooled,pooled-cached,cached-features",
        help="comma-separated subset of preset,pooled,pooled-cached,cached-features",
    )
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    if min(args.videos, args.frames, args.batch_size, *args.size) < 1:
        parser.error("--videos, --frames, --batch-size and --size must be positive")
    names = {
        "preset": "preset",
        "pooled": "pooled",
        "pooled-cached": "pooled, cached reference",
        "cached-features": "preset, cached features",
    }
    chosen = [p.strip() for p in args.passes.split(",") if p.strip()]
    if not chosen or any(p not in names for p in chosen):
        parser.error(f"--passes must name some of {sorted(names)}, got {args.passes!r}")
    result = profile(
        args.preset,
        pick_device(args.device),
        args.videos,
        args.frames,
        tuple(args.size),
        args.batch_size,
        backbones=args.backbones,
        metric_keys=[k.strip() for k in args.metrics.split(",")] if args.metrics else None,
        precision=args.precision,
        channels_last=args.channels_last,
        passes=[names[p] for p in chosen],
    )
    print(format_profile(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
