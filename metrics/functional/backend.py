"""Which implementation runs an OpenCV-defined operation: the reference library itself, or our torch port.

JWB-DH-V1 preprocesses frames with OpenCV (``cv2.resize``, ``cv2.Canny``). Our torch ports reproduce it
(tests compare them pixel by pixel) so that the work can stay on a GPU, but on a CPU OpenCV's SIMD code is
both the reference and 10-100x faster than tensor ops. ``"auto"`` therefore picks OpenCV for uint8 CPU
tensors when it is installed, and the torch port everywhere else (GPU tensors, float inputs, no OpenCV).

Example:
    >>> import torch
    >>> resolve_backend("torch", torch.zeros(1, dtype=torch.uint8))
    'torch'
"""

from __future__ import annotations

from functools import cache

import torch
from torch import Tensor

__all__ = ["BACKENDS", "opencv_available", "resolve_backend"]

#: Accepted values of every ``backend=`` argument of :mod:`metrics.functional`.
BACKENDS = ("auto", "torch", "opencv")


@cache
def opencv_available() -> bool:
    """True when ``import cv2`` works (checked once per process)."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, frames: Tensor, *, max_channels: int | None = None) -> str:
    """``"torch"`` or ``"opencv"`` for ``backend`` in :data:`BACKENDS` and these ``frames``.

    ``"auto"`` -> ``"opencv"`` for uint8 tensors on the CPU when OpenCV imports (and, with
    ``max_channels``, ``frames.shape[1] <= max_channels``: some OpenCV paths take at most 4 channels), else
    ``"torch"``.

    Raises:
        ValueError: ``backend`` is not one of :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    on_cpu_uint8 = frames.device.type == "cpu" and frames.dtype == torch.uint8
    channels_ok = max_channels is None or (frames.ndim >= 2 and frames.shape[1] <= max_channels)
    return "opencv" if on_cpu_uint8 and channels_ok and opencv_available() else "torch"
