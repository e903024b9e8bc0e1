"""Command-line tools: ``jwbdh-eval`` (score folders of videos) and ``jwbdh-weights`` (manage checkpoints).

``jwbdh-eval GENERATED_DIR REFERENCE_DIR`` pairs videos by file name (without extension), crops the regions
(from ``--keypoints``, or MTCNN faces with ``--detect-faces``), runs a preset's metrics and prints a
Table-2-style table with the paper's rows for context; ``--out results.csv|.json`` writes the numbers.
Unreadable videos are reported and skipped; the exit code is 1 if any were skipped, 2 on bad arguments or
missing checkpoints (all of them are named, with the download command, before any video is decoded).

Reference features (FID, E-FID, FVD) are cached on disk, keyed by the reference file's sha256, its
keypoints, the frame limit, the region and the backbone's fingerprint (weights, precision, preprocessing):
a second run over the same ground-truth folder (another checkpoint's outputs) encodes only the generated
videos. ``--feature-cache DIR`` (default ``$JWBDH_FEATURE_CACHE`` or ``~/.cache/jwbdh/features``) or
``--no-feature-cache``.

Example:
    $ jwbdh-eval outputs/ ground_truth/ --keypoints gt_keypoints.pt --preset jwbdh-v1 --out results.csv
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "eval_main",
    "feature_cache_dir",
    "format_table",
    "pair_videos",
    "preset_weights",
    "reference_id",
    "weights_main",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def weights_main(argv: list[str] | None = None) -> int:
    """``jwbdh-weights list|path|verify|download [NAME ...] [--preset PRESET]`` (see ``--help``).

    ``--preset jwbdh-v1`` (or any preset name / YAML file) stands for every checkpoint that preset's metrics
    load, e.g. ``jwbdh-weights download --preset jwbdh-v1``.
    """
    from metrics.backbones.weights import REGISTRY, main

    args = list(sys.argv[1:] if argv is None else argv)
    if "--preset" not in args:
        return main(args)
    at = args.index("--preset")
    if at + 1 >= len(args):
        print("jwbdh-weights: error: --preset needs a preset name or YAML file", file=sys.stderr)
        return 2
    preset = args[at + 1]
    del args[at : at + 2]
    try:
        names = [spec for spec in preset_weights(preset) if spec in REGISTRY]
    except ValueError as err:
        print(f"jwbdh-weights: error: {err}", file=sys.stderr)
        return 2
    if not names:
        print(f"preset {preset!r} loads no registry checkpoint (random-init backbones)")
        return 0
    return main([*args, *names])


def preset_weights(preset: str | os.PathLike) -> list[str]:
    """Checkpoint specs every metric of ``preset`` loads (its default regions), in a stable order.

    Example:
        >>> preset_weights("smoke")
        []
    """
    from jwbdh_callbacks.presets import load_preset, preset_metrics
    from metrics.suite import RegionalSuite

    cfg = load_preset(preset)
    return RegionalSuite(preset_metrics(cfg), regions=cfg.regions).required_weights()


def pair_videos(
    generated_dir: str | os.PathLike, reference_dir: str | os.PathLike
) -> list[tuple[str, Path, Path]]:
    """``[(name, generated_path, reference_path)]`` paired by file stem, sorted by name.

    Raises:
        ValueError: a folder is missing or empty, names are ambiguous, or some videos have no partner
            (all of them are listed).
    """
    found = {}
    for label, folder in (("GENERATED_DIR", generated_dir), ("REFERENCE_DIR", reference_dir)):
        path = Path(folder)
        if not path.is_dir():
            raise ValueError(f"{label} {folder} is not a directory")
        videos: dict[str, Path] = {}
        for f in sorted(path.iterdir()):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                if f.stem in videos:
                    raise ValueError(
                        f"{label} has two videos named {f.stem!r}: {videos[f.stem].name}, {f.name}"
                    )
                videos[f.stem] = f
        if not videos:
            raise ValueError(f"{label} {folder} contains no videos ({', '.join(VIDEO_EXTENSIONS)})")
        found[label] = videos
    gen, ref = found["GENERATED_DIR"], found["REFERENCE_DIR"]
    only_gen, only_ref = sorted(set(gen) - set(ref)), sorted(set(ref) - set(gen))
    if only_gen or only_ref:
        raise ValueError(
            "videos must pair by file name; unpaired: "
            + "; ".join(
                part
                for part in (
                    f"only in GENERATED_DIR: {', '.join(only_gen)}" if only_gen else "",
                    f"only in REFERENCE_DIR: {', '.join(only_ref)}" if only_ref else "",
                )
                if part
            )
        )
    return [(name, gen[name], ref[name]) for name in sorted(gen)]


def _load_keypoints(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{"reference": {name: [T,133,3]}, "generated": {...}}`` from a .pt/.pth or .npz file.

    A flat ``{name: array}`` mapping means reference keypoints (used for both videos).
    """
    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--keypoints file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw: dict[str, Any] = {k: torch.from_numpy(data[k]) for k in data.files}
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict):
        raise ValueError(
            f"--keypoints file {path} must hold a mapping name -> [T, 133, 3], got {type(raw).__name__}"
        )
    if set(raw) <= {"reference", "generated"} and raw:
        return {side: {k: torch.as_tensor(v).float() for k, v in raw.get(side, {}).items()} for side in raw}
    return {"reference": {k: torch.as_tensor(v).float() for k, v in raw.items()}}


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table with aligned columns (numbers to 4 significant digits)."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    text = [[cell(c) for c in columns], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _progress(items: list, enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm

        return tqdm(items, desc="jwbdh-eval", unit="video", file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm ships with huggingface_hub and most stacks
        return items


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``jwbdh-eval`` (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="jwbdh-eval", description="Score generated videos against references."
    )
    parser.add_argument("generated_dir", metavar="GENERATED_DIR")
    parser.add_argument("reference_dir", metavar="REFERENCE_DIR")
    parser.add_argument("--keypoints", help="file (.pt/.npz) mapping video name -> [T, 133, 3] keypoints")
    parser.add_argument(
        "--preset", default="jwbdh-v1", help="jwbdh-v1 | standard | smoke | path to a YAML preset"
    )
    parser.add_argument("--regions", type=_regions, help="comma-separated regions (default: the preset's)")
    parser.add_argument("--out", help="write results to this .csv or .json file")
    parser.add_argument("--device", type=_device, default=None, help="cuda (default when available) or cpu")
    parser.add_argument(
        "--max-frames", type=_positive_int, default=None, help="decode at most this many frames per video"
    )
    parser.add_argument(
        "--detect-faces", action="store_true", help="MTCNN face boxes when no keypoints are given"
    )
    parser.add_argument(
        "--feature-cache",
        default=None,
        help="folder of cached reference features (default $JWBDH_FEATURE_CACHE or ~/.cache/jwbdh/features)",
    )
    parser.add_argument("--no-feature-cache", action="store_true", help="encode reference videos every run")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    from metrics.backbones.weights import WeightsUnavailableError

    try:
        return _run(args)
    except (ValueError, WeightsUnavailableError) as err:
        print(f"jwbdh-eval: error: {err}", file=sys.stderr)
        return 2


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--max-frames 0`` would score nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _device(text: str) -> str:
    """argparse type: a torch device that exists here (``cuda`` without a GPU is refused up front)."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {text!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text!r} was asked for, but no CUDA GPU is available here; use cpu"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {text!r}")
    return text


def _regions(text: str) -> list[str]:
    """argparse type: comma-separated region names, each ``whole_body`` or a known region recipe."""
    from metrics.regions import REGION_RECIPES

    names = [r.strip() for r in text.split(",") if r.strip()]
    known = ("whole_body", *REGION_RECIPES)
    unknown = [r for r in names if r not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown region(s) {unknown or text!r}; expected some of {', '.join(dict.fromkeys(known))}"
        )
    return names


def _run(args: argparse.Namespace) -> int:
    import torch

    from jwbdh_callbacks.logging import results_table
    from jwbdh_callbacks.presets import load_preset, preset_metrics
    from metrics.backbones.weights import check_weights
    from metrics.features import FeatureCache
    from metrics.suite import AvatarBatch, RegionalSuite
    from metrics.video import read_video

    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--out must end in .csv or .json, got {args.out}")
    pairs = pair_videos(args.generated_dir, args.reference_dir)
    cfg = load_preset(args.preset)
    regions = list(args.regions) if args.regions else list(cfg.regions)
    keypoints = _load_keypoints(args.keypoints) if args.keypoints else None
    if keypoints is None:
        needs = [r for r in regions if r != "whole_body" and not (r == "face" and args.detect_faces)]
        if needs:
            print(f"jwbdh-eval: no --keypoints: skipping region(s) {needs}", file=sys.stderr)
            regions = [r for r in regions if r not in needs]
    if not regions:
        raise ValueError("no region left to evaluate (pass --keypoints, or --detect-faces for faces)")
    device = torch.device(args.device or ("cuda" if _cuda() else "cpu"))
    cache = None if args.no_feature_cache else FeatureCache(feature_cache_dir(args.feature_cache))
    suite = RegionalSuite(
        preset_metrics(cfg), regions=regions, crop_size=cfg.crop_size, reference_cache=cache
    )
    check_weights(suite.required_weights())  # every missing checkpoint named before any video is decoded
    suite = suite.to(device)
    detector = None
    if keypoints is None and "face" in regions:
        from metrics.regions import MTCNNFaceBoxes

        detector = MTCNNFaceBoxes()
    failures: list[str] = []
    for name, gen_path, ref_path in _progress(pairs, not args.no_progress):
        try:
            gen, _ = read_video(gen_path, max_frames=args.max_frames)
            ref, fps = read_video(ref_path, max_frames=args.max_frames)
        except (ValueError, OSError) as err:
            failures.append(f"{name}: {err}")
            print(f"jwbdh-eval: skipping {name}: {err}", file=sys.stderr)
            continue
        batch = AvatarBatch(generated=gen[None].to(device), reference=ref[None].to(device), fps=[fps])
        kp_ref = kp_gen = None
        if keypoints is not None:
            kp_ref = keypoints.get("reference", {}).get(name)
            kp_gen = keypoints.get("generated", {}).get(name)
            if kp_ref is None and kp_gen is None:
                failures.append(f"{name}: no keypoints in {args.keypoints}")
                print(
                    f"jwbdh-eval: {name} has no keypoints; only whole_body is scored for it", file=sys.stderr
                )
            batch.keypoints_reference = None if kp_ref is None else kp_ref[None].to(device)
            batch.keypoints_generated = None if kp_gen is None else kp_gen[None].to(device)
        elif detector is not None:
            boxes, valid = detector(batch.reference)
            batch.boxes, batch.valid = {"face": boxes}, {"face": valid}
            kept, total = int(valid.sum()), valid.numel()
            if kept == 0:
                failures.append(f"{name}: no face found in the reference video (MTCNN); face not scored")
                print(f"jwbdh-eval: {name}: no face found; its face region is not scored", file=sys.stderr)
            elif kept < total:
                print(f"jwbdh-eval: {name}: face kept in {kept}/{total} frames", file=sys.stderr)
        if cache is not None:
            extra = ("mtcnn" if detector is not None else "", args.max_frames, cfg.crop_size)
            batch.video_ids = [reference_id(ref_path, kp_ref, kp_gen, extra)]
        try:
            with torch.inference_mode():
                suite.update(batch)
        except ValueError as err:  # this pair's data is inconsistent (e.g. keypoints vs video length)
            failures.append(f"{name}: {err}")
            print(f"jwbdh-eval: skipping {name}: {err}", file=sys.stderr)
    results = suite.compute()
    if cache is not None:
        print(
            f"jwbdh-eval: reference feature cache {cache.directory}: {cache.hits} reused, "
            f"{cache.misses} computed"
            + (f", {cache.rejected} unreadable entries recomputed" if cache.rejected else ""),
            file=sys.stderr,
        )
    columns, rows = results_table(results)
    print(format_table(columns, rows))
    if not cfg.calibrated:
        print(
            "note: uncalibrated (smoke) backbones: these numbers are not comparable to the paper",
            file=sys.stderr,
        )
    if args.out:
        _write(Path(args.out), results, columns, rows, failures, cfg.name)
    if failures:
        print(f"jwbdh-eval: {len(failures)} problem(s):\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def feature_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where ``jwbdh-eval`` caches reference features: ``explicit``, ``$JWBDH_FEATURE_CACHE`` or
    ``~/.cache/jwbdh/features``.

    Example:
        >>> feature_cache_dir("/tmp/f")
        PosixPath('/tmp/f')
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("JWBDH_FEATURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jwbdh" / "features"


def reference_id(path: str | os.PathLike, *tensors_and_settings: Any) -> str:
    """Cache id of a reference video: sha256 of the file's bytes and of everything that shapes its crops.

    Keypoints (they decide the face/hand boxes), the frame limit and the crop settings are hashed with the
    file, so editing any of them gives a new id; the backbone and preprocessing are the cache namespace.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     _ = f.write(b"video"); f.flush()
        ...     reference_id(f.name, None) == reference_id(f.name, None) != reference_id(f.name, 16)
        True
    """
    import hashlib

    import torch

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    for item in tensors_and_settings:
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
        else:
            digest.update(repr(item).encode())
    return digest.hexdigest()


def _write(path: Path, results: dict, columns: list, rows: list, failures: list[str], preset: str) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        # strict JSON has no NaN: a metric with nothing to score is written as null
        clean = {
            r: {k: (v if math.isfinite(v) else None) for k, v in vals.items()} for r, vals in results.items()
        }
        path.write_text(
            json.dumps({"preset": preset, "results": clean, "failures": failures}, indent=2, allow_nan=False)
        )
        return
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(eval_main())
