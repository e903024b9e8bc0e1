"""``jwbdh-eval``: score a folder of generated videos against their references (see ``--help``).

Flow: arguments are checked by the parser; every checkpoint the preset needs is checked before any video is
decoded (exit 2, all missing files named); pairs are sharded across torchrun ranks and decoded ahead by
``--workers`` DataLoader processes; each pair is scored in a scratch suite (its per-video rows) whose sums
are merged into the run's totals; the totals are synced across ranks and printed by rank 0.

Exit codes: 0 all pairs scored, 1 some pairs or regions could not be scored (listed), 2 bad arguments or
missing checkpoints.

Example:
    $ jwbdh-eval outputs/ ground_truth/ --pose mediapipe --per-video rows.jsonl --out results.json
    $ torchrun --nproc_per_node=8 -m jwbdh_callbacks.cli outputs/ ground_truth/ --keypoints kp.pt
    $ jwbdh-eval --compare rows_ckpt_a.jsonl rows_ckpt_b.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "eval_main"]


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--max-frames 0`` would score nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    """argparse type: an int >= 0 (``--workers 0`` decodes in the main process)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
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


def build_parser() -> argparse.ArgumentParser:
    """The ``jwbdh-eval`` argument parser."""
    p = argparse.ArgumentParser(prog="jwbdh-eval", description="Score generated videos against references.")
    p.add_argument("generated_dir", metavar="GENERATED_DIR", nargs="?")
    p.add_argument("reference_dir", metavar="REFERENCE_DIR", nargs="?")
    p.add_argument("--keypoints", help="file (.pt/.npz) mapping video name -> [T, 133, 3] keypoints")
    p.add_argument(
        "--pose",
        choices=("mediapipe", "dwpose"),
        help="estimate keypoints of both videos: mediapipe (models in its wheel) or dwpose (the paper's)",
    )
    p.add_argument(
        "--save-keypoints", help="write the estimated keypoints here (.pt), readable by --keypoints"
    )
    p.add_argument("--preset", default="jwbdh-v1", help="jwbdh-v1 | standard | smoke | path to a YAML preset")
    p.add_argument("--regions", type=_regions, help="comma-separated regions (default: the preset's)")
    p.add_argument("--out", help="write results to this .csv or .json file")
    p.add_argument("--per-video", help="append one JSON line per video pair and region to this .jsonl file")
    p.add_argument("--resume", action="store_true", help="skip the pairs already in --per-video's file")
    p.add_argument(
        "--compare", nargs=2, metavar=("A_JSONL", "B_JSONL"), help="paired comparison of two --per-video runs"
    )
    p.add_argument("--bootstrap", type=_positive_int, default=10_000, help="resamples for --compare")
    p.add_argument("--device", type=_device, default=None, help="cuda (default when available) or cpu")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="decode at most this many frames")
    p.add_argument(
        "--workers", type=_non_negative_int, default=2, help="decode worker processes (0: in this process)"
    )
    p.add_argument("--detect-faces", action="store_true", help="MTCNN face boxes when no keypoints are given")
    p.add_argument(
        "--feature-cache",
        default=None,
        help="folder of cached reference features (default $JWBDH_FEATURE_CACHE or ~/.cache/jwbdh/features)",
    )
    p.add_argument("--no-feature-cache", action="store_true", help="encode reference videos every run")
    p.add_argument("--no-progress", action="store_true")
    return p


def _check_arguments(args: argparse.Namespace) -> list[str]:
    """Every combination problem of the arguments, before anything is loaded."""
    problems = []
    if args.compare:
        if args.generated_dir or args.reference_dir:
            problems.append("--compare takes two .jsonl files and no folders")
    elif not (args.generated_dir and args.reference_dir):
        problems.append("GENERATED_DIR and REFERENCE_DIR are required (or --compare A.jsonl B.jsonl)")
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        problems.append(f"--out must end in .csv or .json, got {args.out}")
    if args.resume and not args.per_video:
        problems.append("--resume needs --per-video FILE (the rows it resumes from)")
    if args.per_video and Path(args.per_video).suffix.lower() != ".jsonl":
        problems.append(f"--per-video must end in .jsonl, got {args.per_video}")
    if args.pose and args.keypoints:
        problems.append("--pose and --keypoints exclude each other (estimated or given keypoints)")
    if args.pose and args.detect_faces:
        problems.append("--pose already locates faces; drop --detect-faces")
    if args.save_keypoints and not args.pose:
        problems.append("--save-keypoints needs --pose (it writes the estimated keypoints)")
    if args.save_keypoints and Path(args.save_keypoints).suffix.lower() not in (".pt", ".pth"):
        problems.append(f"--save-keypoints must end in .pt or .pth, got {args.save_keypoints}")
    return problems


def eval_main(argv: list[str] | None = None) -> int:
    """Entry point of ``jwbdh-eval`` (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problems = _check_arguments(args)
    if problems:
        parser.print_usage(sys.stderr)
        print("jwbdh-eval: error: " + "; ".join(problems), file=sys.stderr)
        return 2
    if args.compare:
        from jwbdh_callbacks.cli.compare import compare_main

        return compare_main(args.compare, args.bootstrap, seed=0)
    from metrics.backbones.weights import WeightsUnavailableError

    try:
        return _run(args)
    except (ValueError, WeightsUnavailableError) as err:
        print(f"jwbdh-eval: error: {err}", file=sys.stderr)
        return 2


def _fingerprint(args: argparse.Namespace, metrics: Any, regions: list[str], crop_size: Any) -> str:
    """Settings that decide every per-video number: a resumed file must have been written with them."""
    keypoints = None
    if args.keypoints:
        keypoints = hashlib.sha256(Path(args.keypoints).read_bytes()).hexdigest()
    settings = {
        "generated": str(Path(args.generated_dir).resolve()),
        "reference": str(Path(args.reference_dir).resolve()),
        "metrics": metrics,
        "regions": regions,
        "crop_size": crop_size,
        "max_frames": args.max_frames,
        "keypoints": keypoints,
        "pose": args.pose,
        "detect_faces": args.detect_faces,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _say(text: str) -> None:
    print(f"jwbdh-eval: {text}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:

    from jwbdh_callbacks.cli.distributed import setup
    from jwbdh_callbacks.cli.inputs import (
        feature_cache_dir,
        load_keypoints,
        pair_videos,
    )
    from jwbdh_callbacks.presets import load_preset, preset_metrics
    from metrics.backbones.weights import check_weights
    from metrics.features import FeatureCache
    from metrics.suite import RegionalSuite

    pairs = pair_videos(args.generated_dir, args.reference_dir)
    cfg = load_preset(args.preset)
    metrics = preset_metrics(cfg)
    regions = list(args.regions) if args.regions else list(cfg.regions)
    keypoints = load_keypoints(args.keypoints) if args.keypoints else None
    if keypoints is None and not args.pose:
        needs = [r for r in regions if r != "whole_body" and not (r == "face" and args.detect_faces)]
        if needs:
            _say(f"no --keypoints or --pose: skipping region(s) {needs}")
            regions = [r for r in regions if r not in needs]
    if not regions:
        raise ValueError(
            "no region left to evaluate (pass --keypoints or --pose, or --detect-faces for faces)"
        )
    cache = None if args.no_feature_cache else FeatureCache(feature_cache_dir(args.feature_cache))
    suite_args = {"regions": regions, "crop_size": cfg.crop_size, "reference_cache": cache}
    total = RegionalSuite(metrics, **suite_args)
    needed = total.required_weights()
    if args.pose == "dwpose":
        from metrics.pose.dwpose import DWPOSE_WEIGHTS

        needed += list(DWPOSE_WEIGHTS)
    check_weights(needed)  # every missing checkpoint named before any video is decoded
    if args.resume and total.has_pooled():
        raise ValueError(
            f"--resume restores per-video sums, but {', '.join(total.has_pooled())} are pooled (set-level "
            "statistics of every video's features); rerun without --resume, or use a per-video preset"
        )
    run = setup(args.device)
    try:
        return _score(args, run, pairs, cfg, metrics, regions, keypoints, cache, total, suite_args)
    finally:
        run.close()


def _score(args, run, pairs, cfg, metrics, regions, keypoints, cache, total, suite_args) -> int:
    import torch

    from jwbdh_callbacks.cli.distributed import shard
    from jwbdh_callbacks.cli.inputs import PairDataset, pair_loader
    from jwbdh_callbacks.cli.records import PerVideoLog, pair_rows
    from metrics.suite import AvatarBatch, RegionalSuite

    total = total.to(run.device)
    scratch = RegionalSuite(metrics, sync_on_compute=False, **suite_args).to(run.device)
    for collection in scratch.collections.values():
        for metric in collection.values():
            if hasattr(metric, "reset_real_features"):
                metric.reset_real_features = True  # each pair's sums start from zero
    log = None
    if args.per_video:
        log = PerVideoLog(args.per_video, _fingerprint(args, metrics, regions, cfg.crop_size), args.resume)
        if run.is_main:
            log.start(truncate=not args.resume)
            for states in log.restored_states():
                total.merge_scalar_states(states)
        if log.done:
            _say(f"--resume: {len(log.done)} pair(s) already in {args.per_video}, not scored again")
        run.barrier()
    todo = [p for p in pairs if log is None or p[0] not in log.done]
    detector = None
    if keypoints is None and not args.pose and "face" in regions:
        from metrics.regions import MTCNNFaceBoxes

        detector = MTCNNFaceBoxes()
    settings = None
    if cache is not None:
        settings = ("mtcnn" if detector else args.pose or "", args.max_frames, cfg.crop_size)
    dataset = PairDataset(
        shard(todo, run.rank, run.world_size), args.max_frames, keypoints, args.pose, settings
    )
    failures: list[str] = []
    #: per region: generated and reference frames kept in its region videos, reference frames decoded
    frames_kept: dict[str, list[int]] = {}
    saved: dict[str, dict[str, Any]] = {"generated": {}, "reference": {}}
    for item in _progress(pair_loader(dataset, args.workers), len(dataset), not args.no_progress):
        name = item["name"]
        if item["error"] is not None:
            failures.append(f"{name}: {item['error']}")
            _say(f"skipping {name}: {item['error']}")
            if log is not None:
                log.write([{"video": name, "region": None, "error": item["error"]}])
            continue
        if args.save_keypoints:
            saved["generated"][name] = item["keypoints_generated"]
            saved["reference"][name] = item["keypoints_reference"]
        batch = AvatarBatch(
            generated=item["generated"][None].to(run.device),
            reference=item["reference"][None].to(run.device),
            fps=[item["fps"]],
        )
        if keypoints is not None or args.pose:
            kp_ref, kp_gen = item["keypoints_reference"], item["keypoints_generated"]
            if kp_ref is None and kp_gen is None:
                failures.append(f"{name}: no keypoints in {args.keypoints}; only whole_body scored")
                _say(f"{name} has no keypoints; only whole_body is scored for it")
            batch.keypoints_reference = None if kp_ref is None else kp_ref[None].to(run.device)
            batch.keypoints_generated = None if kp_gen is None else kp_gen[None].to(run.device)
        elif detector is not None:
            boxes, valid = detector(batch.reference)
            batch.boxes, batch.valid = {"face": boxes}, {"face": valid}
            kept, frames = int(valid.sum()), valid.numel()
            if kept == 0:
                failures.append(f"{name}: no face found in the reference video (MTCNN); face not scored")
                _say(f"{name}: no face found; its face region is not scored")
            elif kept < frames:
                _say(f"{name}: face kept in {kept}/{frames} frames")
        if item["video_id"] is not None:
            batch.video_ids = [item["video_id"]]
        scratch.reset()
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # reported per video below, not once per process
                scratch.update(batch)
        except ValueError as err:  # this pair's data is inconsistent (e.g. keypoints vs video length)
            failures.append(f"{name}: {err}")
            _say(f"skipping {name}: {err}")
            if log is not None:
                log.write([{"video": name, "region": None, "error": str(err)}])
            continue
        report = scratch.last_update
        for region, frames in report.frames.items():
            kept = frames_kept.setdefault(region, [0, 0, 0])
            kept[0] += sum(g for g, _ in frames)
            kept[1] += sum(r for _, r in frames)
            kept[2] += batch.reference.shape[1]
        for note in report.notes:
            _say(f"{name}: {note}")
        for what, why in report.skips:
            _say(f"{name}: {what} not scored ({why})")
        if log is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = scratch.compute(pooled=False)
            log.write(pair_rows(name, regions, scores, report, scratch.scalar_states()))
        total.merge(scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = total.compute()
        summaries = total.summaries()
    skip_counts = total.skip_counts()
    frames_kept = _sum_frames(run.gather(list(frames_kept.items())))
    failures = run.gather(failures)
    if args.save_keypoints:
        _save_keypoints(args.save_keypoints, run, saved)
    hits = run.gather([(cache.hits, cache.misses, cache.rejected)] if cache is not None else [])
    if not run.is_main:
        return 1 if failures else 0
    _report(args, cfg, cache, hits, results, summaries, skip_counts, failures, frames_kept)
    return 1 if failures else 0


def _progress(items: Any, total: int, enabled: bool) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm

        return tqdm(items, total=total, desc="jwbdh-eval", unit="video", file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm ships with huggingface_hub and most stacks
        return items


def _save_keypoints(path: str, run: Any, saved: dict[str, dict[str, Any]]) -> None:
    from metrics.pose.keypoints_file import save_keypoints

    merged: dict[str, dict[str, Any]] = {"generated": {}, "reference": {}}
    for side in merged:
        for name, kp in run.gather(sorted(saved[side].items(), key=lambda kv: kv[0])):
            merged[side][name] = kp
    if run.is_main:
        save_keypoints(path, merged)
        _say(
            f"keypoints of {len(merged['reference'])} pair(s) written to {path} (read them with --keypoints)"
        )


def _sum_frames(items: list[tuple[str, list[int]]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for region, counts in items:
        out[region] = [a + b for a, b in zip(out.get(region, [0, 0, 0]), counts, strict=True)]
    return out


def _report(args, cfg, cache, hits, results, summaries, skip_counts, failures, frames_kept) -> None:
    from jwbdh_callbacks.cli.output import format_table, write_results
    from jwbdh_callbacks.logging import results_table

    if cache is not None:
        found, missed, rejected = (sum(h[i] for h in hits) for i in range(3))
        _say(
            f"reference feature cache {cache.directory}: {found} reused, {missed} computed"
            + (f", {rejected} unreadable entries recomputed" if rejected else "")
        )
    columns, rows = results_table(results, include_paper=False, summaries=summaries)
    print(format_table(columns, rows))
    scored = {r: max((s.count for s in v.values()), default=0) for r, v in summaries.items()}
    if scored:
        print("videos scored per region: " + ", ".join(f"{r} {n}" for r, n in scored.items()))
    if frames_kept:
        print(
            "frames kept per region (generated/reference of the reference frames decoded): "
            + ", ".join(f"{r} {g}/{k} of {n}" for r, (g, k, n) in frames_kept.items())
        )
    skips = {k: v for k, v in skip_counts.items() if v}
    if skips:
        print("skipped (videos): " + ", ".join(f"{k} {v}" for k, v in skips.items()))
    paper_columns, paper_rows = results_table(results, include_paper=True)
    print("\npaper comparison (JWB-DH-V1 Table 2 units: SC, BC, MS, DD, AQ, IQ in %)")
    print(format_table(paper_columns, paper_rows))
    if not cfg.calibrated:
        _say("note: uncalibrated (smoke) backbones: these numbers are not comparable to the paper")
    if args.out:
        write_results(
            Path(args.out),
            preset=cfg.name,
            results=results,
            summaries=summaries,
            skip_counts=skip_counts,
            frames_kept={
                r: dict(zip(("generated", "reference", "decoded"), v, strict=True))
                for r, v in frames_kept.items()
            },
            failures=failures,
            columns=columns,
            rows=rows,
        )
    if failures:
        _say(f"{len(failures)} problem(s):\n  " + "\n  ".join(failures))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(eval_main())
