"""Video inputs: the data contract, conversions, frame selection, protocol resizes and file decoding.

Every metric in this package takes videos as ``[B, T, C, H, W]`` tensors, RGB, either ``uint8`` in
[0, 255] or floating point in [0, 1] (DESIGN s2). :func:`check_video` enforces that contract with a
``ValueError`` that names the argument, what was seen and what was expected; nothing is clamped or
reordered silently.

The resizes are named after the implementation whose pixels they reproduce, because FID-like numbers
depend strongly on the resampling filter (spec/frechet.md s3):

* :func:`resize_pil_bilinear` -- ``torchvision.transforms.Resize`` on a PIL image (PIL bilinear with
  antialiasing), as the JWB-DH-V1 FID script feeds its Inception.
* :func:`resize_opencv_area` -- ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` (JWB-DH-V1 FVD).
* :func:`resize_opencv_bilinear` -- ``cv2.resize`` default ``INTER_LINEAR`` (JWB-DH-V1 SSIM/PSNR/CSIM when
  the generated frame size differs from the reference).
* :func:`resize_tf1_bilinear` -- TensorFlow 1 ``resize_bilinear(align_corners=False)``, the resize inside
  the standard FID Inception (torch-fidelity / TTUR).

All run batched on the tensor's device (implemented in :mod:`metrics.functional.resize`). On uint8 input
the PIL and OpenCV variants emulate those libraries' fixed-point arithmetic, so their pixels are
identical to the libraries' (measured in tests/test_video.py); ``backend="opencv"`` / ``backend="pil"``
call the libraries themselves on the CPU.

Example:
    >>> import torch
    >>> video = torch.randint(0, 256, (2, 8, 3, 32, 48), dtype=torch.uint8)
    >>> check_video(video, "generated").shape
    torch.Size([2, 8, 3, 32, 48])
    >>> resize_opencv_area(video.flatten(0, 1), (16, 24)).shape
    torch.Size([16, 3, 16, 24])
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from metrics._validate import check_int
from metrics.functional.resize import (
    resize_opencv_area,
    resize_opencv_bilinear,
    resize_pil_bilinear,
    resize_tf1_bilinear,
)

#: Floats may exceed [0, 1] by this much (about a quarter of one uint8 step) before they are rejected.
FLOAT_RANGE_TOLERANCE = 1e-3

__all__ = [
    "FLOAT_RANGE_TOLERANCE",
    "canonical_pair",
    "check_pair",
    "check_video",
    "first_frames",
    "read_video",
    "resize_opencv_area",
    "resize_opencv_bilinear",
    "resize_pil_bilinear",
    "resize_tf1_bilinear",
    "to_float01",
    "to_uint8",
    "write_video",
]


def _describe(x: Tensor) -> str:
    return f"shape {tuple(x.shape)} and dtype {x.dtype}"


def check_video(video: object, name: str = "video", *, min_frames: int = 1) -> Tensor:
    """Validate a video batch against the data contract and return it unchanged.

    Args:
        video: ``[B, T, 3, H, W]`` tensor, ``uint8`` in [0, 255] or float in [0, 1]. ``B = 0`` is allowed
            (an empty batch, e.g. a region absent from every sample on this rank).
        name: the argument name used in error messages.
        min_frames: the smallest ``T`` the caller can work with.

    Raises:
        ValueError: wrong type, rank, channel count, dtype, value range, NaN/Inf, or too few frames/pixels.

    Example:
        >>> import torch
        >>> check_video(torch.rand(1, 4, 3, 8, 8), "reference").dtype
        torch.float32
    """
    _check_layout(video, name, min_frames)
    _check_float_ranges([(video, name)])
    return video


def _check_layout(video: object, name: str, min_frames: int) -> Tensor:
    """Every check of :func:`check_video` that reads no value (no device sync)."""
    if not isinstance(video, Tensor):
        raise ValueError(
            f"`{name}` must be a torch.Tensor of shape [B, T, 3, H, W], got {type(video).__name__}"
        )
    if video.ndim != 5:
        hint = " (a single video? add a batch dimension with .unsqueeze(0))" if video.ndim == 4 else ""
        raise ValueError(f"`{name}` must have 5 dimensions [B, T, 3, H, W], got {_describe(video)}{hint}")
    if video.shape[2] != 3:
        hint = ""
        if video.shape[-1] == 3:
            hint = " (channels-last input? permute to [B, T, C, H, W] with .permute(0, 1, 4, 2, 3))"
        raise ValueError(
            f"`{name}` must be RGB with C=3 at dim 2 of [B, T, C, H, W], got {_describe(video)}{hint}"
        )
    if video.dtype != torch.uint8 and not video.is_floating_point():
        raise ValueError(f"`{name}` must be uint8 in [0, 255] or float in [0, 1], got {_describe(video)}")
    if video.shape[1] < min_frames:
        raise ValueError(f"`{name}` needs at least {min_frames} frame(s) (T = dim 1), got {_describe(video)}")
    if video.shape[3] < 1 or video.shape[4] < 1:
        raise ValueError(f"`{name}` has an empty frame size, got {_describe(video)}")
    return video


def _check_float_ranges(videos: list[tuple[Tensor, str]]) -> None:
    """The value-range check of the float videos among ``(video, name)``: one device sync for all of them."""
    scanned = [(v, n) for v, n in videos if v.is_floating_point() and v.numel() > 0]
    if not scanned:
        return
    common = scanned[0][0].dtype
    for v, _ in scanned[1:]:
        common = torch.promote_types(common, v.dtype)  # exact: no extreme is rounded before the test
    extremes = torch.stack([torch.stack(torch.aminmax(v.detach())).to(common) for v, _ in scanned]).tolist()
    for (video, name), (lo, hi) in zip(scanned, extremes, strict=True):
        if not (lo >= -FLOAT_RANGE_TOLERANCE and hi <= 1.0 + FLOAT_RANGE_TOLERANCE):
            if math.isnan(lo) or math.isnan(hi) or not torch.isfinite(video).all():
                raise ValueError(f"`{name}` contains NaN or Inf values ({_describe(video)})")
            raise ValueError(
                f"`{name}` is a float video with values in [{lo:.4g}, {hi:.4g}]; float videos must lie in "
                f"[0, 1] (uint8 videos in [0, 255]). Did you pass [0, 255] floats or [-1, 1] model outputs? "
                f"Use (x + 1) / 2 for [-1, 1] or x.to(torch.uint8) for [0, 255]."
            )


def check_pair(
    generated: object,
    reference: object,
    *,
    min_frames: int = 1,
    same_frame_size: bool = False,
    same_length: bool = False,
) -> tuple[Tensor, Tensor]:
    """Validate a (generated, reference) pair of video batches.

    Batch sizes must match (pairs are formed by index). Frame sizes and lengths may differ unless the caller
    asks otherwise; paired metrics then resize and truncate as the reference scripts do.

    Example:
        >>> import torch
        >>> g, r = check_pair(torch.rand(2, 4, 3, 8, 8), torch.rand(2, 5, 3, 8, 8))
    """
    gen = _check_layout(generated, "generated", min_frames)
    ref = _check_layout(reference, "reference", min_frames)
    if gen.device == ref.device:
        _check_float_ranges([(gen, "generated"), (ref, "reference")])  # one device sync for both
    if gen.shape[0] != ref.shape[0]:
        raise ValueError(
            f"`generated` and `reference` must hold the same number of videos (dim 0), got {gen.shape[0]} "
            f"and {ref.shape[0]} (shapes {tuple(gen.shape)} and {tuple(ref.shape)})"
        )
    if same_frame_size and gen.shape[-2:] != ref.shape[-2:]:
        raise ValueError(
            f"`generated` and `reference` must have the same frame size, got {tuple(gen.shape[-2:])} and "
            f"{tuple(ref.shape[-2:])}"
        )
    if same_length and gen.shape[1] != ref.shape[1]:
        raise ValueError(
            "`generated` and `reference` must have the same number of frames, "
            f"got {gen.shape[1]} and {ref.shape[1]}"
        )
    if gen.device != ref.device:
        raise ValueError(f"`generated` is on {gen.device} but `reference` is on {ref.device}")
    return gen, ref


def canonical_pair(generated: object, reference: object, *, min_frames: int = 1) -> tuple[Tensor, Tensor]:
    """Validate a (generated, reference) pair ONCE and return both as uint8: the form every metric takes.

    The regional suite calls this once per batch and hands the result to every metric and region, so the
    value-range scan of float videos (one device sync) runs once, not once per metric, and the uint8
    quantisation (:func:`to_uint8`, round-half-to-even, the same every metric applies itself) is done once.
    The range scans of both float videos share that one sync (:func:`check_pair`).
    A metric's own check of a uint8 video is shape/dtype only.

    Example:
        >>> import torch
        >>> g, r = canonical_pair(torch.full((1, 2, 3, 4, 4), 0.5), torch.zeros(1, 2, 3, 4, 4))
        >>> g.dtype, int(g[0, 0, 0, 0, 0])
        (torch.uint8, 128)
    """
    gen, ref = check_pair(generated, reference, min_frames=min_frames)
    return to_uint8(gen), to_uint8(ref)


def to_uint8(video: Tensor) -> Tensor:
    """Quantise a [0, 1] float tensor to uint8 with round-half-to-even (uint8 input is returned as is).

    Values within :data:`FLOAT_RANGE_TOLERANCE` outside [0, 1] saturate to 0 or 255; callers validate the
    range first with :func:`check_video`, so nothing larger is ever clamped.

    Example:
        >>> import torch
        >>> to_uint8(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0, 128, 255]
    """
    if video.dtype == torch.uint8:
        return video
    return (video.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def to_float01(video: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Convert uint8 [0, 255] or float [0, 1] to float [0, 1] of ``dtype``.

    Example:
        >>> import torch
        >>> to_float01(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
        [0.0, 1.0]
    """
    if video.dtype == torch.uint8:
        return video.to(dtype) / 255.0
    return video.to(dtype)


def first_frames(video: Tensor, num_frames: int, *, pad_black: bool = False) -> Tensor:
    """Keep the first ``num_frames`` frames of ``[B, T, C, H, W]`` videos.

    With ``pad_black`` a video shorter than ``num_frames`` is completed with black (all-zero) frames, as the
    JWB-DH-V1 FVD script does; otherwise a short video keeps the frames it has.

    Example:
        >>> import torch
        >>> first_frames(torch.ones(1, 3, 3, 2, 2), 5, pad_black=True)[0, :, 0, 0, 0].tolist()
        [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    check_int("num_frames", num_frames, minimum=1)
    out = video[:, :num_frames]
    if pad_black and out.shape[1] < num_frames:
        pad = out.new_zeros((out.shape[0], num_frames - out.shape[1], *out.shape[2:]))
        out = torch.cat([out, pad], dim=1)
    return out


def read_video(path: str | os.PathLike, *, max_frames: int | None = None) -> tuple[Tensor, float]:
    """Decode a video file with PyAV into uint8 RGB frames ``[T, 3, H, W]`` and its frame rate.

    Args:
        path: any container/codec FFmpeg (as bundled with PyAV) can read.
        max_frames: stop after this many frames (the JWB-DH-V1 scripts read the first 16).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be decoded, holds no video stream, or yields no frames.

    Example:
        >>> frames, fps = read_video("clip.mp4", max_frames=16)  # doctest: +SKIP
    """
    import av

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: {path}")
    check_int("max_frames", max_frames, minimum=1, allow_none=True, none_means="all frames")
    frames: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError(f"{path} contains no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else float("nan")
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as err:
        if not frames:
            raise ValueError(f"cannot decode video {path}: {err}") from err
        # A truncated file: keep the frames decoded before the damage, as OpenCV-based scripts do.
    if not frames:
        raise ValueError(f"video {path} contains no decodable frames")
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
    return video, fps


def write_video(path: str | os.PathLike, frames: Tensor, fps: float = 25.0, *, codec: str = "mpeg4") -> None:
    """Encode uint8 RGB frames ``[T, 3, H, W]`` to a file with PyAV (used by tests, demos and the CLI).

    ``codec="mpeg4"`` is available in every PyAV build. Odd frame sizes get their last row/column repeated,
    because the yuv420p pixel format needs even sizes.

    Example:
        >>> import torch
        >>> write_video("/tmp/x.mp4", torch.zeros(4, 3, 16, 16, dtype=torch.uint8))  # doctest: +SKIP
    """
    import av

    if (
        not isinstance(frames, Tensor)
        or frames.ndim != 4
        or frames.shape[1] != 3
        or frames.dtype != torch.uint8
    ):
        got = _describe(frames) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"`frames` must be a uint8 [T, 3, H, W] tensor, got {got}")
    if frames.shape[0] < 1:
        raise ValueError("`frames` must contain at least one frame")

    arr = frames.permute(0, 2, 3, 1).cpu().numpy()
    height, width = arr.shape[1:3]
    if height % 2 or width % 2:  # yuv420p needs even sizes: repeat the last row/column
        arr = np.pad(arr, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")

    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        for img in arr:
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
