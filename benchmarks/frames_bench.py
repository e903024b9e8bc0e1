"""Per-frame building blocks: SSIM vs scikit-image, Canny edge maps vs OpenCV, region crops vs numpy + cv2.

All three run on rendered avatar frames (``benchmarks.data``); the baselines get their inputs already laid
out as the reference scripts hold them (``H x W x 3`` numpy frames, BGR where OpenCV reads them), so only the
per-frame work is timed.

* ``ssim``: :func:`~metrics.functional.pixel.ssim_frames` (float64, uniform 7x7 window, all frames in one
  batch) vs ``skimage.metrics.structural_similarity(gt, gen, channel_axis=-1, data_range=255)`` per frame.
  Correctness: max absolute difference of the per-frame SSIM <= 1e-9.
* ``edges``: :func:`~metrics.functional.edges.edge_maps` with ``backend="torch"`` (OpenCV-exact gray +
  Canny(100, 200) in torch, replicated to 3 channels) vs ``cv2.cvtColor(BGR2GRAY)`` + ``cv2.Canny`` +
  3-channel merge per frame. On a CPU OpenCV's hand-tuned SIMD Canny is much faster than tensor ops; the
  point of ours is to keep E-FID on the GPU (no per-frame device round trip). The threshold catches
  regressions, it claims no win. ``speedup_default`` times the default ``backend="auto"``, which hands CPU
  tensors to OpenCV itself (about 1x: the same loop). Correctness: identical edge maps (0 differing pixels).
* ``crops``: :func:`~metrics.regions.region_videos` with ``backend="torch"`` (OpenCV's fixed-point taps
  gathered per frame, batched per size group) for the face and hand regions vs per-frame numpy slicing
  ``frame[y1:y2, x1:x2]`` + ``cv2.resize`` (INTER_LINEAR) to the first kept crop's size, given the same
  boxes. ``speedup_default`` times the default ``backend="auto"``, which runs that very loop for CPU
  tensors. Correctness: identical pixels and shapes on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import BenchResult, Config, Correctness, interleaved, speedup, summarize
from benchmarks.data import avatar_videos, to_hwc

SSIM_ABS_TOL = 1e-9


def bench_ssim(cfg: Config) -> BenchResult:
    """SSIM (float64, batched frames) vs skimage structural_similarity per frame."""
    from skimage.metrics import structural_similarity

    from metrics.functional.pixel import ssim_frames

    size = cfg.pick(256, 512)
    frames = 16
    rounds = cfg.n_rounds(5, 5)
    dev = cfg.device
    ref, gen, _ = avatar_videos(1, frames, size, size)
    ref_t, gen_t = ref[0].to(dev), gen[0].to(dev)
    ref_np, gen_np = to_hwc(ref[0]), to_hwc(gen[0])

    def ours() -> torch.Tensor:
        return ssim_frames(gen_t, ref_t)  # float64, uniform 7x7, skimage-exact

    def baseline() -> list[float]:
        return [structural_similarity(r, g, channel_axis=-1, data_range=255) for r, g in zip(ref_np, gen_np)]

    times, outs = interleaved({"skimage": baseline, "ours": ours}, rounds, dev, warmup=1)
    diff = float((outs["ours"].cpu() - torch.tensor(outs["skimage"], dtype=torch.float64)).abs().max())
    return BenchResult(
        name="ssim",
        mode=cfg.mode,
        device=str(dev),
        params={"frames": frames, "height": size, "width": size, "window": "uniform 7x7", "dtype": "float64"},
        timings={k: summarize(v) for k, v in times.items()},
        ratios={
            "speedup": speedup(
                times, "skimage", "ours", f"skimage per frame / ours batched ({frames} frames)"
            )
        },
        correctness=[Correctness("max abs diff of per-frame SSIM vs skimage", diff, SSIM_ABS_TOL)],
        notes=[f"mean SSIM {float(outs['ours'].mean()):.6f}"],
    )


def bench_edges(cfg: Config) -> BenchResult:
    """Torch OpenCV-exact gray + Canny edge maps vs cv2.cvtColor + cv2.Canny per frame."""
    import cv2

    from metrics.functional.edges import edge_maps

    size = cfg.pick(256, 512)
    rounds = cfg.n_rounds(5, 5)
    dev = cfg.device
    ref, gen, _ = avatar_videos(1, 16, size, size)
    frames = torch.cat([ref[0], gen[0]])  # E-FID sees both sides: 32 frames
    frames_t = frames.to(dev)
    frames_bgr = to_hwc(frames, bgr=True)

    def ours() -> torch.Tensor:
        return edge_maps(frames_t, backend="torch")

    def ours_default() -> torch.Tensor:
        return edge_maps(frames_t)  # backend="auto": OpenCV itself for CPU tensors

    def baseline() -> list[np.ndarray]:
        out = []
        for f in frames_bgr:
            e = cv2.Canny(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), 100, 200)
            out.append(cv2.merge([e, e, e]))
        return out

    times, outs = interleaved(
        {"opencv": baseline, "ours": ours, "ours_default": ours_default}, rounds, dev, warmup=1
    )
    theirs = torch.from_numpy(np.stack(outs["opencv"])).permute(0, 3, 1, 2)
    mismatched = int((outs["ours"].cpu() != theirs).sum())
    mismatched_default = int((outs["ours_default"].cpu() != theirs).sum())
    edge_fraction = float((theirs[:, 0] > 0).float().mean())
    return BenchResult(
        name="edges",
        mode=cfg.mode,
        device=str(dev),
        params={"frames": frames.shape[0], "height": size, "width": size, "thresholds": [100, 200]},
        timings={k: summarize(v) for k, v in times.items()},
        ratios={
            "speedup": speedup(
                times, "opencv", "ours", "cv2 gray+Canny per frame / our torch Canny, batched"
            ),
            "speedup_default": speedup(
                times, "opencv", "ours_default", 'cv2 per frame / edge_maps default (backend="auto")'
            ),
        },
        correctness=[
            Correctness("differing edge-map pixels vs cv2.Canny", mismatched, 0),
            Correctness('differing pixels, backend="auto"', mismatched_default, 0),
        ],
        notes=[
            f"{edge_fraction:.2%} edge pixels",
            "OpenCV's SIMD Canny wins on a CPU (ratio < 1 expected there); ours keeps E-FID on the GPU",
        ],
    )


def bench_crops(cfg: Config) -> BenchResult:
    """Face/hand region videos (torch crops, and the default backend) vs numpy slicing + cv2.resize."""
    import cv2

    from metrics.regions import boxes_from_keypoints, region_videos

    size = cfg.pick(256, 512)
    num_videos = cfg.pick(2, 4)
    rounds = cfg.n_rounds(5, 5)
    dev = cfg.device
    ref, _, kps = avatar_videos(num_videos, 16, size, size)
    videos_t = ref.to(dev)
    regions = ("face", "hand")
    boxes = {r: boxes_from_keypoints(kps.to(dev), (size, size), r) for r in regions}
    frames_np = [to_hwc(v) for v in ref]
    boxes_np = {r: (b.round().long().cpu().numpy(), v.cpu().numpy()) for r, (b, v) in boxes.items()}

    def ours() -> dict[str, list[torch.Tensor]]:
        return {r: region_videos(videos_t, *boxes[r], backend="torch") for r in regions}

    def ours_default() -> dict[str, list[torch.Tensor]]:
        return {r: region_videos(videos_t, *boxes[r]) for r in regions}  # "auto": the cv2 loop on a CPU

    def baseline() -> dict[str, list[np.ndarray]]:
        out = {}
        for r in regions:
            bx, valid = boxes_np[r]
            videos = []
            for b, frames in enumerate(frames_np):
                kept = np.flatnonzero(valid[b])
                if kept.size == 0:
                    videos.append(np.zeros((0, 0, 0, 3), np.uint8))
                    continue
                x1, y1, x2, y2 = bx[b, kept[0]]
                h0, w0 = int(y2 - y1), int(x2 - x1)
                crops = []
                for t in kept:
                    x1, y1, x2, y2 = bx[b, t]
                    crops.append(cv2.resize(frames[t][y1:y2, x1:x2], (w0, h0)))
                videos.append(np.stack(crops))
            out[r] = videos
        return out

    times, outs = interleaved(
        {"numpy_cv2": baseline, "ours": ours, "ours_default": ours_default}, rounds, dev, warmup=1
    )
    torch_cmp = _compare_crops(outs["ours"], outs["numpy_cv2"], regions)
    default_cmp = _compare_crops(outs["ours_default"], outs["numpy_cv2"], regions)
    return BenchResult(
        name="crops",
        mode=cfg.mode,
        device=str(dev),
        params={"videos": num_videos, "frames": 16, "height": size, "width": size, "regions": list(regions)},
        timings={k: summarize(v) for k, v in times.items()},
        ratios={
            "speedup": speedup(times, "numpy_cv2", "ours", "script loop (slice + cv2.resize) / torch crops"),
            "speedup_default": speedup(
                times, "numpy_cv2", "ours_default", 'script loop / region_videos default (backend="auto")'
            ),
        },
        correctness=[
            Correctness("max abs diff of torch crops vs cv2.resize (grey levels)", torch_cmp.max_diff, 0),
            Correctness('max abs diff of crops, backend="auto"', default_cmp.max_diff, 0),
            Correctness(
                "crop shapes differing from the script's", torch_cmp.bad_shapes + default_cmp.bad_shapes, 0
            ),
        ],
        notes=[f"{torch_cmp.crops} crops; {torch_cmp.differing} crop pixels differ (torch path)"],
    )


@dataclass
class _CropComparison:
    max_diff: int = 0
    differing: int = 0
    crops: int = 0
    bad_shapes: int = 0


def _compare_crops(
    ours: dict[str, list[torch.Tensor]], script: dict[str, list[np.ndarray]], regions: tuple[str, ...]
) -> _CropComparison:
    """Pixel differences between our region videos and the script's (``[T, h, w, 3]`` numpy) per region."""
    out = _CropComparison()
    for r in regions:
        for mine, theirs in zip(ours[r], script[r], strict=True):
            theirs_t = torch.from_numpy(theirs).permute(0, 3, 1, 2)
            if mine.shape[0] == 0 and theirs_t.shape[0] == 0:
                continue
            if tuple(mine.shape) != tuple(theirs_t.shape):
                out.bad_shapes += 1
                continue
            d = (mine.cpu().int() - theirs_t.int()).abs()
            out.max_diff = max(out.max_diff, int(d.max()))
            out.differing += int((d > 0).sum())
            out.crops += mine.shape[0]
    return out


BENCHMARKS = {"ssim": bench_ssim, "edges": bench_edges, "crops": bench_crops}
