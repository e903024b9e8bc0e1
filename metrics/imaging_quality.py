r"""VBench imaging quality (IQ): MUSIQ-SPAQ MOS of every frame (spec/vbench.md s6).

As ``vbench/imaging_quality.py`` (v0.1.5 / HEAD) computes it, with its default ``'longer'`` mode:

1. All frames as float32 in [0, 255]. If ``max(H, W) > 512``: ``s = 512 / max(H, W)`` and every frame is
   resized to ``(int(s * H), int(s * W))`` (bilinear, ``antialias=False``; ``int`` truncates, so a 561 px
   side becomes 511 px). Smaller videos are not upscaled. Then ``/ 255``.
2. MUSIQ (SPAQ head) scores each frame: raw MOS on a ~0-100 scale.
3. Per video: the mean of its frames' MOS, kept raw (0-100) as VBench's per-video JSON values.
4. Dimension: the mean over videos of the per-video values, divided by 100 (0-1 scale).

Other VBench modes (``preprocess_mode``): ``'shorter'`` (if ``min(H, W) > 512`` the shorter side goes to
512), ``'shorter_centercrop'`` (the same plus a 512 x 512 centre crop), ``'None'`` (no resize).

Example:
    >>> import torch
    >>> iq = ImagingQuality(weights=None)  # doctest: +SKIP
    >>> iq.update(torch.randint(0, 256, (2, 4, 3, 64, 96), dtype=torch.uint8))  # doctest: +SKIP
    >>> iq.compute()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from metrics._validate import check_choice, check_instance, check_positive_int
from metrics.aggregation import PerVideoMeanMetric
from metrics.backbones.cache import BackboneRef
from metrics.backbones.musiq import musiq_ref
from metrics.consistency import with_inference
from metrics.video import check_video

__all__ = ["ImagingQuality", "vbench_iq_size"]

_MODES = ("longer", "shorter", "shorter_centercrop", "None")


def vbench_iq_size(height: int, width: int, mode: str = "longer", cap: int = 512) -> tuple[int, int]:
    """Frame size after VBench's IQ resize (before any centre crop), with its float/int arithmetic.

    Example:
        >>> vbench_iq_size(720, 1280), vbench_iq_size(40, 561), vbench_iq_size(300, 400)
        ((288, 512), (36, 511), (300, 400))
    """
    if mode == "longer" and max(height, width) > cap:
        scale = float(cap) / max(height, width)
    elif mode.startswith("shorter") and min(height, width) > cap:
        scale = float(cap) / min(height, width)
    else:
        return height, width
    return int(scale * height), int(scale * width)


def _center_crop(frames: Tensor, size: int) -> Tensor:
    """torchvision ``CenterCrop(size)`` on a tensor, zero padding included when a side is short."""
    h, w = frames.shape[-2:]
    if h < size or w < size:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        frames = F.pad(frames, (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2))
        h, w = frames.shape[-2:]
        if h == size and w == size:
            return frames
    top = round((h - size) / 2.0)  # Python round, as torchvision's center_crop
    left = round((w - size) / 2.0)
    return frames[..., top : top + size, left : left + size]


class ImagingQuality(PerVideoMeanMetric):
    r"""VBench imaging quality: mean MUSIQ-SPAQ MOS per video, averaged over videos, divided by 100.

    .. math:: \mathrm{IQ} = \frac{1}{100\,V} \sum_{v=1}^{V} \frac{1}{T_v} \sum_{t=1}^{T_v}
        \mathrm{MUSIQ}\big(\mathrm{cap}_{512}(x_{v,t})\big)

    where :math:`\mathrm{cap}_{512}` is VBench's ``'longer'`` resize (module docstring). Per-video values
    (:meth:`video_scores`) are raw MOS on the ~0-100 scale, as VBench stores them; ``compute()`` is on the
    0-1 scale. The state holds the sum of raw per-video MOS (float64) and the number of videos (int64).

    As input to ``update``: ``videos`` ``[B, T, 3, H, W]``, uint8 or float in [0, 1] (uint8 frames are
    resized as float32 0-255 values exactly as VBench's decoded frames). As output of ``compute``: float64
    scalar, ~[0, 1], higher is better.

    Args:
        weights: MUSIQ checkpoint (registry name ``"musiq_spaq"`` or a path to a pyiqa MUSIQ state dict);
            None = seeded random init (smoke runs, meaningless scores).
        preprocess_mode: ``"longer"`` (VBench default), ``"shorter"``, ``"shorter_centercrop"`` or ``"None"``.
        size_cap: the 512 of the resize rules.
        batch_size: frames per MUSIQ call (frames of one batch share their size).
        backbone: a :class:`~metrics.backbones.cache.BackboneRef` replacing MUSIQ (a network mapping
            ``[N, 3, H, W]`` floats in [0, 1] to ``[N]`` scores).
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``backbone``'s own. VBench's
            512 px cap and MUSIQ's multi-scale patch extraction always run in float32. bf16 +
            channels_last vs fp32 (random init, 2 x 16 frames at 256 px, CPU): score |diff| 3.4e-5
            (0.0034 MOS points).
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the backbone's own.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> iq = ImagingQuality(weights=None)  # doctest: +SKIP
        >>> iq.update(torch.rand(1, 2, 3, 40, 561)); iq.compute()  # doctest: +SKIP
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        weights: str | os.PathLike | None = "musiq_spaq",
        preprocess_mode: str = "longer",
        size_cap: int = 512,
        batch_size: int = 32,
        backbone: BackboneRef | None = None,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("preprocess_mode", preprocess_mode, _MODES)
        check_positive_int("size_cap", size_cap)
        check_positive_int("batch_size", batch_size)
        if backbone is None:
            backbone = musiq_ref(weights)
        check_instance("backbone", backbone, BackboneRef)
        backbone = with_inference(backbone, precision, channels_last)
        self.preprocess_mode = preprocess_mode
        self.size_cap = size_cap
        self.batch_size = batch_size
        self.backbone = backbone

    @property
    def is_calibrated(self) -> bool:
        """False when MUSIQ is randomly initialised (smoke runs): numbers are not comparable."""
        return not self.backbone.is_random_init

    def preprocess(self, frames: Tensor) -> Tensor:
        """``[N, 3, H, W]`` uint8 or float [0, 1] frames -> float32 [0, 1] frames at VBench's IQ size."""
        x = frames.float() if frames.dtype == torch.uint8 else frames.float() * 255.0
        h, w = x.shape[-2:]
        size = vbench_iq_size(h, w, self.preprocess_mode, self.size_cap)
        if size != (h, w):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
        if self.preprocess_mode == "shorter_centercrop" and min(h, w) > self.size_cap:
            x = _center_crop(x, self.size_cap)
        return x / 255.0

    def video_scores(self, videos: Tensor) -> Tensor:
        """float64 ``[B]`` per-video mean MOS (raw, ~0-100) of ``[B, T, 3, H, W]`` videos."""
        videos = check_video(videos, "videos")
        b, t = videos.shape[:2]
        if b == 0:
            return torch.zeros(0, dtype=torch.float64, device=videos.device)
        net = self.backbone.get(videos.device)
        frames = videos.flatten(0, 1)
        scores = []
        with torch.no_grad():
            for start in range(0, frames.shape[0], self.batch_size):
                chunk = self.preprocess(frames[start : start + self.batch_size])
                scores.append(net(chunk).reshape(-1))
        return torch.cat(scores).to(torch.float64).reshape(b, t).mean(dim=1)

    def update(self, videos: Tensor) -> None:
        """Add videos ``[B, T, 3, H, W]`` (uint8 or float in [0, 1])."""
        self.add_video_scores(self.video_scores(videos))

    def compute(self) -> Tensor:
        """Mean over videos of the per-video MOS, divided by 100 (NaN with a warning when empty)."""
        return super().compute() / 100.0
