r"""VBench dynamic degree (DD): is a video dynamic, judged from RAFT optical flow (spec/vbench.md s4).

Per video, as ``vbench/dynamic_degree.py`` (v0.1.5 / HEAD) computes it:

1. Frame subsampling to about 8 fps: ``interval = max(1, round(fps / 8))`` (Python's round, half to even:
   fps 12 -> 2, 20 -> 2, 28 -> 4), keep frames ``0, interval, 2 * interval, ...`` -> ``N`` sampled frames.
2. For each consecutive pair of sampled frames: RAFT flow (20 updates) on the frames replicate-padded to
   multiples of 8, magnitude ``r = sqrt(u^2 + v^2)`` per pixel of the **padded** map,
   :math:`m_j = \operatorname{mean}(\text{top-}k\ r)` with ``k = int(H_pad * W_pad * 0.05)``.
3. ``thres = 6 * min(H, W) / 256`` (unpadded frame size), ``count_num = round(4 * N / 16)`` (half to even:
   N = 10 -> 2, N = 6 -> 2, N = 18 -> 4).
4. The video is dynamic iff at least ``count_num`` pairs have ``m_j > thres`` (strictly) and it has at least
   one pair (``N = 1`` is never dynamic; ``N = 2`` always is).

``compute()`` is the fraction of dynamic videos (the mean of the per-video booleans), as VBench's aggregate in
single- and multi-GPU runs. States: a float64 count of dynamic videos and an int64 video count, sum-reduced.

Frame rate: VBench reads it from the video file. ``update(videos, fps=...)`` takes one number for the batch or
one per video (a sequence or a ``[B]`` tensor); when it is omitted the constructor's ``fps`` is used, and when
both are missing ``update`` raises a ValueError (a silently assumed frame rate would change the number).
Frames already at about 8 fps (VBench's image-folder input, which is never subsampled): pass ``fps=8``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics._validate import (
    check_bool,
    check_instance,
    check_interval,
    check_positive_int,
    check_positive_number,
)
from metrics.aggregation import PerVideoMeanMetric
from metrics.backbones.cache import BackboneRef
from metrics.backbones.raft import VBENCH_NUM_FLOW_UPDATES, raft_ref
from metrics.consistency import with_inference
from metrics.video import check_video

__all__ = [
    "DynamicDegree",
    "count_threshold",
    "flow_threshold",
    "frame_interval",
    "sampled_frame_indices",
    "top_fraction_mean",
]


def frame_interval(fps: float, target_fps: float = 8.0) -> int:
    """VBench's subsampling step ``max(1, round(fps / target_fps))`` (Python round: half to even).

    Example:
        >>> [frame_interval(f) for f in (8, 12, 20, 24, 25, 28, 30, 60, 3)]
        [1, 2, 2, 3, 3, 4, 4, 8, 1]
    """
    return max(1, round(fps / target_fps))


def sampled_frame_indices(num_frames: int, fps: float, target_fps: float = 8.0) -> list[int]:
    """Indices ``0, interval, 2 * interval, ...`` below ``num_frames``.

    Example:
        >>> sampled_frame_indices(16, 24)
        [0, 3, 6, 9, 12, 15]
    """
    return list(range(0, num_frames, frame_interval(fps, target_fps)))


def flow_threshold(height: int, width: int, pixels_at_256: float = 6.0) -> float:
    """Per-pair magnitude threshold ``6 * min(H, W) / 256`` in pixels (unpadded frame size).

    Example:
        >>> flow_threshold(480, 832), flow_threshold(720, 1280)
        (11.25, 16.875)
    """
    return pixels_at_256 * (min(height, width) / 256.0)


def count_threshold(num_sampled_frames: int, ratio: float = 0.25) -> int:
    """Moving pairs needed: ``round(4 * N / 16)`` with Python's round (half to even).

    Example:
        >>> [count_threshold(n) for n in (1, 2, 6, 10, 14, 16, 18, 41)]
        [0, 0, 2, 2, 4, 4, 4, 10]
    """
    if ratio == 0.25:
        return round(4 * (num_sampled_frames / 16.0))  # VBench's exact expression
    return round(ratio * num_sampled_frames)


def top_fraction_mean(flow: Tensor, fraction: float = 0.05) -> Tensor:
    """Mean of the ``int(H * W * fraction)`` largest flow magnitudes of each ``[N, 2, H, W]`` flow map.

    Magnitudes in the flow's dtype (float32, as VBench's numpy code), their mean in float64. Returns ``[N]``.
    A map too small to hold one top pixel gives NaN (as ``np.mean`` of nothing), which is never ``> thres``.
    """
    n, _, h, w = flow.shape
    k = int(h * w * fraction)
    if k < 1:
        return torch.full((n,), float("nan"), dtype=torch.float64, device=flow.device)
    radius = torch.sqrt(flow[:, 0].square() + flow[:, 1].square()).reshape(n, h * w)
    return radius.topk(k, dim=1, sorted=False).values.to(torch.float64).mean(dim=1)


def _fps_list(fps: object, batch: int, default: float | None) -> list[float]:
    if fps is None:
        if default is None:
            raise ValueError(
                "DynamicDegree needs the videos' frame rate for VBench's subsampling to ~8 fps: call "
                "update(videos, fps=...) (a number or one per video) or construct DynamicDegree(fps=...); "
                "pass fps=8 for frames that are already at ~8 fps (no subsampling)"
            )
        fps = default
    if isinstance(fps, Tensor):
        if fps.ndim > 1 or (fps.ndim == 1 and fps.numel() != batch):
            raise ValueError(
                f"`fps` must be a number or hold one value per video ({batch}), got {tuple(fps.shape)}"
            )
        values = [float(v) for v in fps.detach().flatten().tolist()]
        values = values * batch if fps.ndim == 0 else values
    elif isinstance(fps, numbers.Real) and not isinstance(fps, bool):
        values = [float(fps)] * batch
    else:
        try:
            if isinstance(fps, str | bytes):
                raise TypeError
            values = [float(v) for v in fps]  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            raise ValueError(
                f"`fps` must be a number or one frame rate per video (sequence or tensor), got {fps!r}"
            ) from None
        if len(values) != batch:
            raise ValueError(f"`fps` must hold one value per video ({batch}), got {len(values)} values")
    bad = [v for v in values if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"`fps` must be finite and positive, got {bad[0]!r}")
    return values


class DynamicDegree(PerVideoMeanMetric):
    r"""VBench dynamic degree: fraction of videos with enough large-motion frame pairs (RAFT flow).

    Per video: frames subsampled to ~8 fps (``interval = max(1, round(fps / 8))``, N sampled frames); per
    consecutive pair the mean of the top 5% flow magnitudes over the padded flow map, :math:`m_j`; the video
    is dynamic iff :math:`\#\{j : m_j > 6\,\min(H, W)/256\} \ge \operatorname{round}(N/4)` (half to even) and
    N >= 2. ``compute()`` returns the mean of the per-video booleans (module docstring and spec/vbench.md s4).

    As input to ``update``: ``videos`` ``[B, T, 3, H, W]`` (uint8, or float in [0, 1] scaled by 255 for RAFT,
    which VBench feeds 0-255 floats) and ``fps``: a number or one frame rate per video (sequence or ``[B]``
    tensor); default: the constructor's ``fps``; required when that is None. With real RAFT frames need at
    least 121 px per side. As output of ``compute``: float64 fraction in [0, 1]. "Higher is better" follows
    VBench, which adds DD to its quality score with weight 0.5; it measures motion, not quality.

    Args:
        weights: RAFT checkpoint: registry name (``"raft_large_c_t_v1"``, or ``"raft_things"``: VBench's
            own file), or a path to a torchvision ``raft_large`` state dict or to the original RAFT
            ``raft-things.pth`` (VBench's ``raft_model/models/raft-things.pth``; its keys are converted to
            torchvision's layout); None = seeded random init (smoke runs, meaningless flows). A local file
            that fits neither layout raises a one-line ValueError here, not at the first update.
        fps: frame rate used when ``update`` gets none (None: ``update`` must pass it).
        target_fps: subsampling target (VBench: 8).
        num_flow_updates: RAFT refinement steps (VBench: 20).
        top_fraction: fraction of the largest magnitudes averaged per pair (VBench: 0.05).
        threshold_pixels: the per-pair threshold at a 256 px short side (VBench: 6.0), scaled by
            min(H, W) / 256.
        count_ratio: fraction of sampled frames that must be moving pairs (VBench: 4/16), Python-rounded.
        crop_flow: rank magnitudes over the flow cropped back to the frame instead of the padded map
            (VBench: False; only matters when H or W is not a multiple of 8).
        batch_size: frame pairs per RAFT call (each pair holds an (H/8 * W/8)^2 correlation volume: ~0.9 GB
            at 720p, so keep this small for large frames). Pairs of all videos of an ``update`` are chunked
            together, and RAFT's feature encoder runs once per frame (VBench runs it twice per inner frame).
        flow_model: a :class:`~metrics.backbones.cache.BackboneRef` replacing RAFT; its network must behave
            as :class:`~metrics.backbones.raft.PaddedFlowNet` (``net(image1, image2, crop=...)`` on [0, 255]
            frames).
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``flow_model``'s own. Padding, the
            ``[-1, 1]`` mapping and the top-5% magnitudes always run in float32. bf16 + channels_last vs
            fp32 (RAFT-large, random init, 256 px frames, CPU): pair scores ``m_j`` within 5e-3 relative
            (a decision can flip for a pair within that margin of the threshold).
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the flow model's own.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> dd = DynamicDegree(weights=None)  # doctest: +SKIP
        >>> videos = torch.randint(0, 256, (2, 16, 3, 128, 128), dtype=torch.uint8)  # doctest: +SKIP
        >>> dd.update(videos, fps=24); dd.compute()  # doctest: +SKIP
    """

    #: fewest frames for a meaningful value: ``update`` accepts a single frame (no pair: static, as in
    #: VBench), but the regional suite skips such region videos instead of counting them as static
    min_frames = 2
    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        weights: str | os.PathLike | None = "raft_large_c_t_v1",
        fps: float | None = None,
        target_fps: float = 8.0,
        num_flow_updates: int = VBENCH_NUM_FLOW_UPDATES,
        top_fraction: float = 0.05,
        threshold_pixels: float = 6.0,
        count_ratio: float = 0.25,
        crop_flow: bool = False,
        batch_size: int = 4,
        flow_model: BackboneRef | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_number("fps", fps, allow_none=True)
        check_positive_number("target_fps", target_fps)
        check_positive_number("threshold_pixels", threshold_pixels)
        check_interval("top_fraction", top_fraction, 0, 1, low_closed=False)
        check_interval("count_ratio", count_ratio, 0, 1, low_closed=False)
        check_positive_int("batch_size", batch_size)
        check_bool("crop_flow", crop_flow)
        if flow_model is None:
            flow_model = raft_ref(weights, num_flow_updates)
        check_instance("flow_model", flow_model, BackboneRef)
        flow_model = with_inference(flow_model, precision, channels_last)
        self.fps = fps
        self.target_fps = target_fps
        self.top_fraction = top_fraction
        self.threshold_pixels = threshold_pixels
        self.count_ratio = count_ratio
        self.crop_flow = crop_flow
        self.batch_size = batch_size
        self.flow_model = flow_model

    @property
    def is_calibrated(self) -> bool:
        """False when the flow network is randomly initialised (smoke runs): numbers are not comparable."""
        return not self.flow_model.is_random_init

    def _scores(self, videos: Tensor, fps: object) -> tuple[Tensor, list[int]]:
        """float64 ``[P]`` scores of every sampled pair of the batch and the number of pairs per video."""
        b, t, _, h, w = videos.shape
        if b == 0:
            return videos.new_zeros((0,), dtype=torch.float64), []
        rates = _fps_list(fps, b, self.fps)
        first_idx: list[int] = []
        second_idx: list[int] = []
        counts: list[int] = []
        for i, rate in enumerate(rates):
            idx = [i * t + j for j in sampled_frame_indices(t, rate, self.target_fps)]
            first_idx.extend(idx[:-1])
            second_idx.extend(idx[1:])
            counts.append(len(idx) - 1)
        if not first_idx:
            return videos.new_zeros((0,), dtype=torch.float64), counts
        net = self.flow_model.get(videos.device)
        min_size = net.min_frame_size() if hasattr(net, "min_frame_size") else 1
        if min(h, w) < min_size:
            raise ValueError(
                f"`videos` frames are {h}x{w}; the flow network needs at least {min_size} px per side "
                f"(shape {tuple(videos.shape)})"
            )
        frames = videos.flatten(0, 1)
        first = torch.tensor(first_idx, device=videos.device)
        second = torch.tensor(second_idx, device=videos.device)
        scores = []
        with torch.no_grad():
            pair_flows = getattr(net, "pair_flows", None)
            if callable(pair_flows):  # PaddedFlowNet: pairs of all videos together, shared frame encodings
                flows = pair_flows(
                    lambda idx: self._to_255(frames[idx]), first, second, self.batch_size, self.crop_flow
                )
            else:
                flows = (
                    net(
                        self._to_255(frames[first[start : start + self.batch_size]]),
                        self._to_255(frames[second[start : start + self.batch_size]]),
                        crop=self.crop_flow,
                    )
                    for start in range(0, len(first_idx), self.batch_size)
                )
            for flow in flows:
                scores.append(top_fraction_mean(flow, self.top_fraction))
        return torch.cat(scores), counts

    def pair_scores(
        self, videos: Tensor, fps: float | Sequence[float] | Tensor | None = None
    ) -> list[Tensor]:
        """Per video, the float64 ``[N - 1]`` top-fraction mean flow magnitudes of its sampled frame pairs.

        These are the values VBench compares with the threshold (``static_score`` in its ``infer``).
        """
        scores, counts = self._scores(check_video(videos, "videos"), fps)
        return list(scores.split(counts)) if counts else []

    @staticmethod
    def _to_255(frames: Tensor) -> Tensor:
        return frames.float() if frames.dtype == torch.uint8 else frames.float() * 255.0

    def decide(self, scores: Tensor, counts: Sequence[int], height: int, width: int) -> Tensor:
        """VBench's ``check_move`` for a batch: bool ``[B]`` from the concatenated pair scores.

        ``counts[i]`` is the number of pairs of video ``i`` (``N_i - 1``). A video is dynamic iff it has a
        pair and at least ``count_threshold(N_i)`` of its pairs exceed ``flow_threshold(H, W)``.
        """
        device = scores.device
        thres = flow_threshold(height, width, self.threshold_pixels)
        video_of_pair = torch.repeat_interleave(  # output_size given: no device sync
            torch.arange(len(counts), device=device),
            torch.tensor(counts, device=device),
            output_size=sum(counts),
        )
        moving = torch.zeros(len(counts), dtype=torch.int64, device=device)
        moving.index_add_(0, video_of_pair, (scores > thres).to(torch.int64))
        needed = torch.tensor([count_threshold(n + 1, self.count_ratio) for n in counts], device=device)
        has_pair = torch.tensor([n > 0 for n in counts], device=device)
        return has_pair & (moving >= needed)

    def update(self, videos: Tensor, fps: float | Sequence[float] | Tensor | None = None) -> None:
        """Add videos ``[B, T, 3, H, W]`` with their frame rate(s) (see the class docstring)."""
        videos = check_video(videos, "videos")
        scores, counts = self._scores(videos, fps)
        if counts:
            self.add_video_scores(self.decide(scores, counts, *videos.shape[-2:]))
