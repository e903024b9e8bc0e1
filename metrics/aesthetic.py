r"""VBench aesthetic quality (AQ): the LAION aesthetic predictor on CLIP ViT-L/14 frames (spec/vbench.md s5).

Example:
    >>> import torch
    >>> from metrics.backbones.dino import dino_ref
    >>> aq = AestheticQuality(
    ...     feature_extractor=dino_ref(None, embed_dim=48, depth=1, num_heads=3),
    ...     head=aesthetic_head_ref(None, in_features=48),
    ... )
    >>> aq.update(torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8))
    >>> aq.compute().shape
    torch.Size([])
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from metrics._validate import check_instance, check_positive_int
from metrics.aggregation import PerVideoMeanMetric
from metrics.backbones.aesthetic import aesthetic_head_ref
from metrics.backbones.cache import BackboneRef
from metrics.backbones.clip import clip_ref, clip_vbench_preprocess
from metrics.consistency import check_fp16_precision, encode_frames, with_inference
from metrics.video import check_video

__all__ = ["AestheticQuality", "aesthetic_head_ref"]


class AestheticQuality(PerVideoMeanMetric):
    r"""VBench aesthetic quality: LAION linear head on L2-normalised CLIP ViT-L/14 embeddings, /10.

    Per frame: VBench's ``clip_transform(224)`` (bicubic shorter side -> 224 without antialiasing, centre
    crop 224, CLIP mean/std), OpenAI CLIP ViT-L/14 ``encode_image`` :math:`e_i` (768-d) cast to float32, then

    .. math::

        a_i = w^\top \frac{e_i}{\lVert e_i \rVert_2} + b, \qquad
        \mathrm{AQ}_{video} = \frac1T \sum_{i=0}^{T-1} \frac{a_i}{10}, \qquad
        \mathrm{AQ} = \text{mean over videos}

    with LAION's V1 head ``nn.Linear(768, 1)`` (``sa_0_4_vit_l_14_linear.pth``, ratings ~1-10). All frames
    count, no clamp (a frame could in principle score outside [0, 1]); video-weighted in single and
    multi-GPU VBench alike. States: float64 sum of per-video scores and int64 video count, ``sum``-reduced.

    As input to ``update``: ``videos`` ``[B, T, 3, H, W]``, uint8 or float in [0, 1], ``T >= 1``.
    As output of ``compute``: float64 scalar, nominally in [0, 1], higher is better.

    Args:
        clip_weights: CLIP checkpoint: registry name (``"clip_vitl14_openai"``), path to OpenAI's TorchScript
            ``ViT-L-14.pt`` or a state dict in its layout, or None (random init, smoke).
        head_weights: LAION head: registry name (``"laion_aesthetic_vitl14"``), path, or None (random init).
        fp16: run CLIP in float16 on CUDA as VBench's openai-clip does (default False: float32). The head
            always runs in float32, as in VBench.
        batch_size: frames per backbone call (VBench uses 32; no numerical effect).
        feature_extractor: a :class:`~metrics.backbones.cache.BackboneRef` replacing CLIP ViT-L/14 (any
            network from CLIP-normalised ``[N, 3, 224, 224]`` to ``[N, D]``).
        head: a :class:`~metrics.backbones.cache.BackboneRef` replacing the LAION head (``[N, D] -> [N, 1]``,
            e.g. ``aesthetic_head_ref(None, in_features=D)``).
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``feature_extractor``'s own.
            Applies to CLIP only: the resize and normalisation before it and the LAION head after it always
            run in float32; not combinable with ``fp16=True``. bf16 + channels_last vs fp32 (ViT-L/14,
            random init, 2 x 16 frames at 256 px, CPU): score |diff| 1.7e-5.
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the extractor's own.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> aq = AestheticQuality()  # doctest: +SKIP
        >>> aq.update(torch.randint(0, 256, (2, 16, 3, 256, 256), dtype=torch.uint8))  # doctest: +SKIP
        >>> aq.compute()  # doctest: +SKIP
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        clip_weights: str | os.PathLike | None = "clip_vitl14_openai",
        head_weights: str | os.PathLike | None = "laion_aesthetic_vitl14",
        fp16: bool = False,
        batch_size: int = 32,
        feature_extractor: BackboneRef | None = None,
        head: BackboneRef | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_int("batch_size", batch_size)
        check_fp16_precision(fp16 and feature_extractor is None, precision)
        if feature_extractor is None:
            feature_extractor = clip_ref("ViT-L-14", clip_weights, fp16=fp16)
        feature_extractor = with_inference(feature_extractor, precision, channels_last)
        if head is None:
            head = aesthetic_head_ref(head_weights)
        check_instance("feature_extractor", feature_extractor, BackboneRef)
        check_instance("head", head, BackboneRef)
        self.backbone = feature_extractor
        self.head = head
        self.batch_size = batch_size

    @property
    def is_calibrated(self) -> bool:
        """False when CLIP or the head is randomly initialised (smoke runs)."""
        return not (self.backbone.is_random_init or self.head.is_random_init)

    def frame_scores(self, videos: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` -> float32 ``[B, T]`` per-frame ``a_i / 10``."""
        b, t = videos.shape[:2]
        network = self.backbone.get(videos.device)
        feats = encode_frames(network, videos.flatten(0, 1), clip_vbench_preprocess, self.batch_size)
        feats = F.normalize(feats, p=2, dim=-1)
        head = self.head.get(videos.device)
        with torch.no_grad():
            ratings = head(feats).squeeze(-1).float()
        return (ratings / 10.0).reshape(b, t)

    def update(self, videos: Tensor) -> None:
        """Add videos ``[B, T, 3, H, W]`` (uint8, or float in [0, 1])."""
        videos = check_video(videos, "videos", min_frames=1)
        if videos.shape[0] == 0:
            return
        self.add_video_scores(self.frame_scores(videos).to(torch.float64).mean(dim=1))
