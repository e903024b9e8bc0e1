"""Helpers shared by the synthetic-data modules: argument checks that raise a ``ValueError`` naming the
argument, the seeded random streams (one stream id per purpose, so one integer seed gives independent
draws for identity, motion, speech, texture, degradations and the dataset) and a single-thread context for
the small tensors of the renderer and the speech synthesiser.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .layout import FRAMINGS, NUM_KEYPOINTS

# Seed streams: the same integer seed gives independent draws for each purpose.
_S_IDENTITY, _S_MOTION, _S_SPEECH, _S_TEXTURE, _S_DEGRADE, _S_DATASET = 1, 2, 3, 4, 5, 6


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch single-threaded: the renderer's tensors are small, so intra-op threads only add
    synchronisation (measured ~10x slower wall time with 2 threads on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


# ----------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, minimum: float, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`{name}` must be a number in [{minimum}, {maximum}], got {value!r}")
    value = float(value)
    if not (minimum <= value <= maximum):
        raise ValueError(f"`{name}` must be in [{minimum}, {maximum}], got {value!r}")
    return value


def _check_seed(name: str, value: Any) -> int:
    return _check_int(name, value, 0)


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}")
    return value


def _check_video(video: Any, name: str = "video") -> Tensor:
    if not isinstance(video, Tensor):
        raise ValueError(
            f"`{name}` must be a torch.Tensor [T,3,H,W] or [B,T,3,H,W], got {type(video).__name__}"
        )
    if video.ndim not in (4, 5) or video.shape[-3] != 3:
        raise ValueError(f"`{name}` must have shape [T,3,H,W] or [B,T,3,H,W], got {tuple(video.shape)}")
    if video.dtype != torch.uint8 and not video.is_floating_point():
        raise ValueError(f"`{name}` must be uint8 in [0,255] or float in [0,1], got dtype {video.dtype}")
    if video.shape[-4] < 1:
        raise ValueError(f"`{name}` has no frames: shape {tuple(video.shape)}")
    return video


def _check_keypoints_for(video: Tensor, keypoints: Any) -> Tensor:
    if not isinstance(keypoints, Tensor):
        raise ValueError(
            f"`keypoints` must be a torch.Tensor [..., T, 133, 3], got {type(keypoints).__name__}"
        )
    expected = (*video.shape[:-3], NUM_KEYPOINTS, 3)
    if tuple(keypoints.shape) != expected:
        raise ValueError(
            f"`keypoints` must have shape {list(expected)} to match video {list(video.shape)}, "
            f"got {list(keypoints.shape)}"
        )
    return keypoints


def _check_size(height: int, width: int, framing: str) -> tuple[int, int, str]:
    return (
        _check_int("height", height, 32),
        _check_int("width", width, 32),
        _check_choice("framing", framing, tuple(FRAMINGS)),
    )
