r"""VBench temporal consistency: :class:`SubjectConsistency` (DINO) and :class:`BackgroundConsistency` (CLIP).

Both follow spec/vbench.md s1-s2. For a video with frame features :math:`f_0 .. f_{T-1}`, L2-normalised,

.. math::

    s_i = \tfrac12\left[\max(0, \cos(f_{i-1}, f_i)) + \max(0, \cos(f_0, f_i))\right],\quad i = 1..T-1

(for ``i = 1`` both terms compare with frame 0). The per-video score is the mean of its :math:`s_i`. The
dimension score depends on ``aggregation``:

* ``"pairs"`` (default): :math:`\sum_v \sum_i s_i / \sum_v (T_v - 1)`, every frame pair weighted equally --
  VBench's single-process SC and its BC in every mode.
* ``"videos"``: the mean over videos of the per-video scores -- VBench's multi-GPU SC, and what
  JWB-DH-V1's ``SC_calculate.py`` reports (it averages VBench's per-video values).

The two agree when all videos have the same length. Every frame of every video is used (VBench ignores
fps; higher frame rates score higher). States: float64 sums of pair scores and per-video scores and int64
counts, all ``sum``-reduced, so DDP ranks with different numbers of updates sync without deadlock.

Frames of all videos of an ``update`` go through the backbone together, in chunks of ``batch_size`` (VBench
feeds DINO one frame at a time and CLIP one video at a time; batching changes nothing but float rounding).
``precision`` / ``channels_last`` choose the backbone's arithmetic (:mod:`metrics.backbones.precision`); the
resize and normalisation before it always run in float32.

Example:
    >>> import torch
    >>> from metrics.backbones.dino import dino_ref
    >>> sc = SubjectConsistency(feature_extractor=dino_ref(None, embed_dim=48, depth=1, num_heads=3))
    >>> still = torch.full((2, 4, 3, 32, 32), 128, dtype=torch.uint8)  # static videos
    >>> sc.update(still)
    >>> round(float(sc.compute()), 6)
    1.0
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_choice, check_instance, check_positive_int
from metrics.aggregation import PerVideoMeanMetric
from metrics.backbones.cache import BackboneRef
from metrics.backbones.clip import clip_ref, clip_vbench_preprocess
from metrics.backbones.dino import dino_ref, dino_vbench_preprocess
from metrics.video import check_video

__all__ = [
    "BackgroundConsistency",
    "SubjectConsistency",
    "consistency_pair_scores",
    "encode_frames",
    "with_inference",
]

_AGGREGATIONS = ("pairs", "videos")


def consistency_pair_scores(features: Tensor) -> Tensor:
    r"""VBench's :math:`s_i` for ``i = 1..T-1`` from per-frame features.

    Args:
        features: ``[B, T, D]`` (T >= 2), any float dtype; normalised here in float64.

    Returns:
        float64 ``[B, T - 1]``: ``(max(0, cos(f[i-1], f[i])) + max(0, cos(f[0], f[i]))) / 2``.
        A zero feature vector has cosine 0 with everything (as ``F.normalize`` + ``F.cosine_similarity``).

    Example:
        >>> import torch
        >>> f = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
        >>> consistency_pair_scores(f).tolist()
        [[0.0, 0.5]]
    """
    if features.ndim != 3 or features.shape[1] < 2:
        raise ValueError(f"`features` must be [B, T >= 2, D], got shape {tuple(features.shape)}")
    f = F.normalize(features.to(torch.float64), p=2, dim=-1)
    current = f[:, 1:]
    to_previous = (f[:, :-1] * current).sum(dim=-1).clamp_min(0.0)
    to_first = (f[:, :1] * current).sum(dim=-1).clamp_min(0.0)
    return (to_previous + to_first) / 2.0


def with_inference(backbone: Any, precision: str | None, channels_last: bool | None) -> Any:
    """``backbone`` at ``precision`` / ``channels_last`` (None keeps the ref's own, see
    :meth:`~metrics.backbones.cache.BackboneRef.with_inference`); invalid values raise a ValueError naming the
    argument, and so does a precision asked of a backbone that is not a ``BackboneRef``.

    Example:
        >>> with_inference(dino_ref(None), "bf16", None).precision
        'bf16'
    """
    if precision is None and channels_last is None:
        return backbone
    if not isinstance(backbone, BackboneRef):
        raise ValueError(
            f"`precision` / `channels_last` need a BackboneRef backbone, got {type(backbone).__name__}"
        )
    return backbone.with_inference(precision, channels_last)


def check_fp16_precision(fp16: bool, precision: str | None) -> None:
    """``fp16=True`` (VBench's float16 CLIP) and a ``precision`` other than fp32 exclude each other."""
    if fp16 and precision not in (None, "fp32"):
        raise ValueError(
            f"`precision={precision!r}` cannot be combined with `fp16=True` (VBench's float16 CLIP on CUDA); "
            "pass one of them"
        )


def _input_dtype(network: nn.Module) -> torch.dtype | None:
    for param in network.parameters():
        if param.is_floating_point():
            return param.dtype
    return None


def encode_frames(
    network: nn.Module,
    frames: Tensor,
    preprocess: Callable[[Tensor], Tensor],
    batch_size: int,
) -> Tensor:
    """Run ``[N, 3, H, W]`` frames through ``preprocess`` and ``network`` in chunks; float32 ``[N, D]``.

    Preprocessing is done chunk by chunk too, so a long high-resolution video never holds all its resized
    frames at once.
    """
    dtype = _input_dtype(network)
    out = []
    with torch.no_grad():
        for start in range(0, frames.shape[0], batch_size):
            x = preprocess(frames[start : start + batch_size])
            out.append(network(x if dtype is None else x.to(dtype)).float())
    return torch.cat(out)


class _FrameConsistency(PerVideoMeanMetric):
    """Shared implementation of SC and BC (not public)."""

    #: fewest frames per video (one consecutive pair); the regional suite skips shorter region videos
    min_frames = 2
    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        backbone: BackboneRef,
        preprocess: Callable[[Tensor], Tensor],
        aggregation: str,
        batch_size: int,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        backbone = with_inference(backbone, precision, channels_last)
        check_choice("aggregation", aggregation, _AGGREGATIONS)
        check_positive_int("batch_size", batch_size)
        check_instance("feature_extractor", backbone, BackboneRef)
        self.backbone = backbone
        self.preprocess = preprocess
        self.aggregation = aggregation
        self.batch_size = batch_size
        self.add_state("pair_score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_pairs", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def is_calibrated(self) -> bool:
        """False when the backbone is randomly initialised (smoke runs): numbers are not comparable."""
        return not self.backbone.is_random_init

    def frame_features(self, videos: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` -> float32 ``[B, T, D]`` backbone features of the preprocessed frames."""
        b, t = videos.shape[:2]
        network = self.backbone.get(videos.device)
        return encode_frames(network, videos.flatten(0, 1), self.preprocess, self.batch_size).reshape(
            b, t, -1
        )

    def update(self, videos: Tensor) -> None:
        """Add videos ``[B, T, 3, H, W]`` (uint8, or float in [0, 1]; T >= 2 frames)."""
        videos = check_video(videos, "videos", min_frames=self.min_frames)
        if videos.shape[0] == 0:
            return
        scores = consistency_pair_scores(self.frame_features(videos))
        self.pair_score_sum.add_(scores.sum())
        self.num_pairs.add_(scores.numel())
        self.add_video_scores(scores.mean(dim=1))

    def compute(self) -> Tensor:
        """Pair-weighted (``"pairs"``) or video-weighted (``"videos"``) mean; NaN with a warning if empty."""
        if self.aggregation == "videos":
            return super().compute()
        if int(self.num_pairs) == 0:
            warnings.warn(f"{type(self).__name__}.compute() saw no videos; returning NaN", stacklevel=2)
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.pair_score_sum.device)
        return self.pair_score_sum / self.num_pairs


class SubjectConsistency(_FrameConsistency):
    r"""VBench subject consistency (SC): DINO ViT-B/16 CLS features, first- and previous-frame cosines.

    Per frame: VBench's ``dino_transform(224)`` (shorter side -> 224, bilinear, no antialiasing, no crop,
    ImageNet mean/std; :func:`~metrics.backbones.dino.dino_vbench_preprocess`), then DINO's CLS token after
    the final LayerNorm (non-square frames use DINO's position-embedding interpolation). With normalised
    features :math:`f_i`, :math:`s_i = \frac12[\max(0,\cos(f_{i-1},f_i)) + \max(0,\cos(f_0,f_i))]`;
    per video :math:`\frac1{T-1}\sum_{i\ge1} s_i`; dimension score by ``aggregation`` (module docstring).

    As input to ``update``: ``videos`` ``[B, T, 3, H, W]``, uint8 or float in [0, 1], ``T >= 2``.
    As output of ``compute``: float64 scalar in [0, 1], higher is better (1 = no change across frames).

    Args:
        weights: DINO checkpoint: registry name (``"dino_vitb16"``), path, or None (random init, smoke).
        aggregation: ``"pairs"`` (VBench single process, default) or ``"videos"`` (VBench multi-GPU,
            JWB-DH-V1's averaging of per-video values).
        batch_size: frames per backbone call.
        feature_extractor: a :class:`~metrics.backbones.cache.BackboneRef` replacing DINO ViT-B/16 (any
            network from ImageNet-normalised ``[N, 3, H, W]`` to ``[N, D]``; e.g. a smaller
            :func:`~metrics.backbones.dino.dino_ref`). ``weights`` is then ignored.
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``feature_extractor``'s own.
            The resize and normalisation always run in float32. bf16 + channels_last vs fp32 (DINO
            ViT-B/16, random init, 2 x 16 frames at 256 px, CPU): score |diff| 1.0e-4.
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the extractor's own.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> sc = SubjectConsistency(weights="dino_vitb16")  # doctest: +SKIP
        >>> sc.update(torch.randint(0, 256, (2, 16, 3, 256, 256), dtype=torch.uint8))  # doctest: +SKIP
        >>> sc.compute()  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "dino_vitb16",
        aggregation: str = "pairs",
        batch_size: int = 32,
        feature_extractor: BackboneRef | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        backbone = feature_extractor if feature_extractor is not None else dino_ref(weights)
        super().__init__(
            backbone, dino_vbench_preprocess, aggregation, batch_size, precision, channels_last, **kwargs
        )


class BackgroundConsistency(_FrameConsistency):
    r"""VBench background consistency (BC): CLIP ViT-B/32 image embeddings, same formula as SC.

    Per frame: VBench's ``clip_transform(224)`` (bicubic shorter side -> 224 without antialiasing or
    clamping, centre crop 224, CLIP mean/std; :func:`~metrics.backbones.clip.clip_vbench_preprocess`), then
    OpenAI CLIP ViT-B/32 ``encode_image`` (512-d, QuickGELU). With normalised features :math:`g_i`,
    :math:`s_i = \frac12[\max(0,\cos(g_{i-1},g_i)) + \max(0,\cos(g_0,g_i))]`; per video the mean over
    ``i = 1..T-1``; dimension score pair-weighted (VBench, single and multi-GPU) or video-weighted.

    As input to ``update``: ``videos`` ``[B, T, 3, H, W]``, uint8 or float in [0, 1], ``T >= 2``.
    As output of ``compute``: float64 scalar in [0, 1], higher is better.

    Args:
        weights: CLIP checkpoint: registry name (``"clip_vitb32_openai"``), path to OpenAI's TorchScript
            file or a state dict in its layout, or None (random init, smoke).
        aggregation: ``"pairs"`` (VBench, default) or ``"videos"`` (JWB-DH-V1's per-video averaging).
        fp16: run CLIP in float16 on CUDA as VBench's openai-clip does (default False: float32).
        batch_size: frames per backbone call.
        feature_extractor: a :class:`~metrics.backbones.cache.BackboneRef` replacing CLIP ViT-B/32 (any
            network from CLIP-normalised ``[N, 3, 224, 224]`` to ``[N, D]``). ``weights``/``fp16`` are then
            ignored.
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``feature_extractor``'s own.
            The resize and normalisation always run in float32; not combinable with ``fp16=True``.
            bf16 + channels_last vs fp32 (CLIP ViT-B/32, random init, 2 x 16 frames at 256 px, CPU):
            score |diff| 1.2e-4.
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the extractor's own.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> bc = BackgroundConsistency(weights="clip_vitb32_openai")  # doctest: +SKIP
        >>> bc.update(torch.rand(2, 16, 3, 256, 256))  # doctest: +SKIP
        >>> bc.compute()  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "clip_vitb32_openai",
        aggregation: str = "pairs",
        fp16: bool = False,
        batch_size: int = 32,
        feature_extractor: BackboneRef | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_fp16_precision(fp16 and feature_extractor is None, precision)
        backbone = (
            feature_extractor if feature_extractor is not None else clip_ref("ViT-B-32", weights, fp16=fp16)
        )
        super().__init__(
            backbone, clip_vbench_preprocess, aggregation, batch_size, precision, channels_last, **kwargs
        )
