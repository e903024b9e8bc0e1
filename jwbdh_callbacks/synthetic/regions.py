"""Keypoint regions: per-frame boxes and pixel masks around a region's keypoints (:func:`region_boxes`,
:func:`region_mask`; a simple min/max box with a margin, the official jwbdh-v1 crop recipe is in
:mod:`metrics.regions`), the restriction of a degradation to such a region, and
:func:`simulate_detector_misses`, which lowers a region's scores on some frames like a missed detection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import (
    _S_DEGRADE,
    _check_choice,
    _check_float,
    _check_int,
    _check_keypoints_for,
    _check_seed,
    _derive_seed,
)
from .layout import REGION_KEYPOINTS


def simulate_detector_misses(
    keypoints: Tensor, region: str = "hands", fraction: float = 0.25, *, seed: int = 0, score: float = 0.1
) -> Tensor:
    """Copy of ``keypoints`` with the scores of ``region``'s points set to ``score`` on a random
    ``fraction`` of the frames (like a pose detector that missed them; the jwbdh-v1 recipe drops scores
    <= 0.3). Works on ``[T, 133, 3]`` or ``[B, T, 133, 3]``; ``fraction=1`` hides the region everywhere.
    """
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    fraction = _check_float("fraction", fraction, 0.0, 1.0)
    score = _check_float("score", score, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    if (
        not isinstance(keypoints, Tensor)
        or keypoints.ndim not in (3, 4)
        or tuple(keypoints.shape[-2:]) != (133, 3)
    ):
        raise ValueError(
            f"`keypoints` must be [T,133,3] or [B,T,133,3], got {getattr(keypoints, 'shape', keypoints)}"
        )
    out = keypoints.clone()
    flat = out.reshape(-1, *out.shape[-3:])
    g = torch.Generator().manual_seed(_derive_seed(seed, _S_DEGRADE, 7))
    idx = torch.tensor(REGION_KEYPOINTS[region])
    T = flat.shape[1]
    n = round(fraction * T)
    for b in range(flat.shape[0]):
        frames = torch.randperm(T, generator=g)[:n]
        if n:
            sub = flat[b, frames]
            sub[:, idx, 2] = score
            flat[b, frames] = sub
    return out


def region_boxes(
    keypoints: Tensor,
    region: str,
    *,
    margin: float = 0.25,
    min_score: float = 0.3,
    height: int | None = None,
    width: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-frame boxes ``[..., T, 4]`` (x1, y1, x2, y2 pixels, inclusive) around ``region``'s keypoints.

    The box is the min/max of the points with score > ``min_score``, grown by ``margin`` x its width and
    height on each side (and by at least 2 px), clipped to the frame when ``height``/``width`` are given.
    Returns ``(boxes, valid)``; frames without any kept point are invalid (their box is all zeros).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> boxes, valid = region_boxes(s.keypoints, "face")
        >>> boxes.shape, bool(valid.all())
        (torch.Size([4, 4]), True)
    """
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    margin = _check_float("margin", margin, 0.0)
    if not isinstance(keypoints, Tensor) or keypoints.ndim < 3 or tuple(keypoints.shape[-2:]) != (133, 3):
        raise ValueError(
            f"`keypoints` must be [..., T, 133, 3], got {getattr(keypoints, 'shape', keypoints)}"
        )
    pts = keypoints[..., list(REGION_KEYPOINTS[region]), :].float()
    keep = pts[..., 2] > min_score
    big = torch.tensor(1e9)
    x1 = torch.where(keep, pts[..., 0], big).amin(-1)
    y1 = torch.where(keep, pts[..., 1], big).amin(-1)
    x2 = torch.where(keep, pts[..., 0], -big).amax(-1)
    y2 = torch.where(keep, pts[..., 1], -big).amax(-1)
    valid = keep.any(-1)
    mx = torch.clamp(margin * (x2 - x1), min=2.0)
    my = torch.clamp(margin * (y2 - y1), min=2.0)
    boxes = torch.stack([x1 - mx, y1 - my, x2 + mx, y2 + my], -1)
    if width is not None:
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width - 1)
    if height is not None:
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height - 1)
    boxes = torch.where(valid[..., None], boxes, torch.zeros_like(boxes))
    return boxes, valid


def region_mask(
    keypoints: Tensor, region: str, height: int, width: int, *, margin: float = 0.25, min_score: float = 0.3
) -> Tensor:
    """Boolean ``[..., T, H, W]`` mask of the pixels inside :func:`region_boxes` (False on invalid frames)."""
    height, width = _check_int("height", height, 1), _check_int("width", width, 1)
    boxes, valid = region_boxes(keypoints, region, margin=margin, min_score=min_score)
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device)[:, None]
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device)[None, :]
    b = boxes[..., None, None, :]
    inside = (xs >= b[..., 0]) & (xs <= b[..., 2]) & (ys >= b[..., 1]) & (ys <= b[..., 3])
    return inside & valid[..., None, None]


def _restrict(
    original: Tensor, degraded: Tensor, region: str | None, keypoints: Tensor | None, margin: float
) -> Tensor:
    if region is None:
        return degraded
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    if keypoints is None:
        raise ValueError(f"`keypoints` are required when `region` is given (region={region!r})")
    kps = _check_keypoints_for(original, keypoints)
    mask = region_mask(kps, region, original.shape[-2], original.shape[-1], margin=margin).to(original.device)
    return torch.where(mask.unsqueeze(-3), degraded, original)
