r"""Paired pixel metrics on videos: :class:`SSIM`, :class:`PSNR`, :class:`PixelCSIM` (JWB-DH-V1 scripts).

Each ``update(generated, reference)`` takes two ``[B, T, 3, H, W]`` batches (uint8, or float in [0, 1],
quantised to uint8 like decoded video frames), pairs video ``i`` with video ``i``, keeps the first
``min(num_frames, T_gen, T_ref)`` frames, resizes generated frames to the reference size with OpenCV-exact
bilinear resizing when sizes differ (as the script does), computes one value per frame pair, averages the
frames of each video, and accumulates the per-video means. ``compute()`` is the mean over videos, like the
benchmark's summary CSV. States are a float64 sum and int64 counts, ``sum``-reduced across DDP ranks.

Example:
    >>> import torch
    >>> g = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    >>> ssim = SSIM()
    >>> ssim.update(g, g)
    >>> float(ssim.compute())
    1.0
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from metrics._validate import check_choice, check_positive_int, check_positive_number
from metrics.aggregation import PerVideoMeanMetric
from metrics.functional.pixel import pixel_cosine_frames, psnr_frames, ssim_frames
from metrics.functional.resize import resize_opencv_bilinear
from metrics.video import check_pair, to_uint8

__all__ = ["PSNR", "SSIM", "PairedFrameMetric", "PixelCSIM"]


class PairedFrameMetric(PerVideoMeanMetric):
    """Base of the paired per-frame metrics: per-frame-pair value -> per-video mean -> mean over videos.

    Subclasses implement ``_frame_values(generated, reference)`` on uint8 ``[N, 3, H, W]`` frame pairs
    (usually one function of :mod:`metrics.functional.pixel`); :meth:`update` pairs the videos, keeps the
    first ``min(num_frames, T_gen, T_ref)`` frames, quantises float input to uint8 and resizes generated
    frames to the reference size as the JWB-DH-V1 script does. :class:`SSIM`, :class:`PSNR`,
    :class:`PixelCSIM` and :class:`metrics.identity.CSIM` build on it.

    Example:
        >>> import torch
        >>> from metrics.functional.pixel import psnr_frames
        >>> class MeanPSNR(PairedFrameMetric):
        ...     def _frame_values(self, generated, reference):
        ...         return psnr_frames(generated, reference)
        >>> g = torch.zeros(1, 2, 3, 4, 4, dtype=torch.uint8)
        >>> m = MeanPSNR(); m.update(g, g + 1); round(float(m.compute()), 4)
        48.1308
    """

    def __init__(self, num_frames: int | None = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_frames = check_positive_int(
            "num_frames", num_frames, allow_none=True, none_means="all frames"
        )

    def _frame_values(self, generated: Tensor, reference: Tensor) -> Tensor:
        """uint8 ``[N, 3, H, W]`` frame pairs -> float64 ``[N]``."""
        raise NotImplementedError

    def _aligned_frames(
        self, generated: Tensor, reference: Tensor, resize: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Checked uint8 ``[B, t, 3, H, W]`` pairs of the first ``t`` frames; with ``resize``, generated
        frames are resized to the reference size when the sizes differ."""
        gen, ref = check_pair(generated, reference)
        t = min(gen.shape[1], ref.shape[1])
        if self.num_frames is not None:
            t = min(t, self.num_frames)
        b = gen.shape[0]
        gen_frames = to_uint8(gen[:, :t]).flatten(0, 1)
        ref_frames = to_uint8(ref[:, :t]).flatten(0, 1)
        if resize and gen_frames.shape[-2:] != ref_frames.shape[-2:]:
            gen_frames = resize_opencv_bilinear(gen_frames, tuple(ref_frames.shape[-2:]))
        return gen_frames.unflatten(0, (b, t)), ref_frames.unflatten(0, (b, t))

    def update(self, generated: Tensor, reference: Tensor) -> None:
        """Add video pairs ``[B, T, 3, H, W]`` (sizes and lengths may differ between the two)."""
        gen, ref = self._aligned_frames(generated, reference)
        b, t = gen.shape[:2]
        if b == 0:
            return
        values = self._frame_values(gen.flatten(0, 1), ref.flatten(0, 1)).reshape(b, t)
        self.add_video_scores(values.mean(dim=1))


class SSIM(PairedFrameMetric):
    r"""Structural similarity of paired videos, scikit-image exact.

    ``window="uniform"`` (default, JWB-DH-V1): ``skimage.metrics.structural_similarity(gt, gen,
    channel_axis=-1, data_range=255)``: a uniform 7x7 window with sample covariance, smaller odd windows for
    frames under 7 px (frames under 3 px are rejected). ``window="gaussian"``: the SSIM paper's 11x11
    Gaussian (sigma 1.5, population covariance) as skimage computes it with ``gaussian_weights=True``.

    As input to ``update``: ``generated``, ``reference`` ``[B, T, 3, H, W]``. As output of ``compute``:
    float64 mean over videos, in [-1, 1], higher is better.

    Args:
        window: ``"uniform"`` or ``"gaussian"``.
        num_frames: frames per video (JWB-DH-V1 reads 16); None = all.
        compute_dtype: float64 (exact, default) or float32 (faster on consumer GPUs, ~1e-5 deviation)
            (devices without float64); with float64, uint8 frames and the uniform window use exact integer
            box sums.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> m = SSIM(window="gaussian")
        >>> x = torch.rand(1, 2, 3, 24, 24)
        >>> m.update(x, x); float(m.compute())
        1.0
    """

    higher_is_better = True
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        window: str = "uniform",
        num_frames: int | None = 16,
        compute_dtype: torch.dtype = torch.float64,
        **kwargs: Any,
    ) -> None:
        check_choice("window", window, ("uniform", "gaussian"), expected="'uniform' or 'gaussian'")
        check_choice(
            "compute_dtype",
            compute_dtype,
            (torch.float32, torch.float64),
            expected="torch.float32 or torch.float64",
        )
        super().__init__(num_frames=num_frames, **kwargs)
        self.window = window
        self.compute_dtype = compute_dtype

    def _frame_values(self, generated: Tensor, reference: Tensor) -> Tensor:
        return ssim_frames(generated, reference, window=self.window, compute_dtype=self.compute_dtype)


class PSNR(PairedFrameMetric):
    r"""Peak signal-to-noise ratio of paired videos (data range 255), as skimage computes it per frame.

    Identical frames have infinite PSNR. By default that infinity is kept (the reference script's mean then
    becomes +inf, and so does ours): ``compute()`` warns with the number of such frames, also available as
    ``num_infinite_frames``. ``max_psnr`` caps every frame's value instead (a common choice is 100 dB), which
    keeps the mean finite and informative; the cap is part of the reported number, so state it.

    As input to ``update``: ``generated``, ``reference`` ``[B, T, 3, H, W]``. As output of ``compute``:
    float64 mean over videos in dB, higher is better.

    Args:
        max_psnr: None (keep +inf, JWB-DH-V1) or a cap in dB applied per frame.
        num_frames: frames per video (JWB-DH-V1 reads 16); None = all.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> g = torch.zeros(1, 1, 3, 4, 4, dtype=torch.uint8); r = g + 1
        >>> m = PSNR(); m.update(g, r); round(float(m.compute()), 4)  # 10*log10(255**2 / 1)
        48.1308
    """

    higher_is_better = True
    plot_lower_bound = 0.0

    def __init__(self, max_psnr: float | None = None, num_frames: int | None = 16, **kwargs: Any) -> None:
        check_positive_number("max_psnr", max_psnr, allow_none=True, unit="dB")
        super().__init__(num_frames=num_frames, **kwargs)
        self.max_psnr = max_psnr
        self.add_state("num_infinite_frames", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def _frame_values(self, generated: Tensor, reference: Tensor) -> Tensor:
        values = psnr_frames(generated, reference)
        self.num_infinite_frames.add_(torch.isinf(values).sum())
        if self.max_psnr is not None:
            values = values.clamp_max(self.max_psnr)
        return values

    def compute(self) -> Tensor:
        value = super().compute()
        n_inf = int(self.num_infinite_frames)
        if n_inf and self.max_psnr is None:
            warnings.warn(
                f"PSNR: {n_inf} frame pair(s) are identical (infinite PSNR), so the mean is +inf as in the "
                "JWB-DH-V1 script; pass max_psnr=... to cap per-frame values",
                stacklevel=2,
            )
        return value


class PixelCSIM(PairedFrameMetric):
    r"""JWB-DH-V1's "CSIM" as its script computes it: cosine similarity of the raw pixel arrays per frame.

    Per frame pair, ``cos(flatten(gen), flatten(ref))`` in float64 (0 if either frame is all black),
    averaged over frames, then over videos. The paper cites CSIM as face-identity similarity; that
    definition needs a face-embedding network (identity CSIM). This class reproduces the script's numbers.

    Example:
        >>> import torch
        >>> g = torch.randint(1, 256, (1, 3, 3, 8, 8), dtype=torch.uint8)
        >>> m = PixelCSIM(); m.update(g, g); round(float(m.compute()), 12)
        1.0
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def _frame_values(self, generated: Tensor, reference: Tensor) -> Tensor:
        return pixel_cosine_frames(generated, reference)
