"""The data contract of one evaluation batch (DESIGN s2): :class:`AvatarBatch` and its keypoint rules.

A validation step (or ``jwbdh-eval``) hands generated and reference videos plus what is known about them --
keypoints, boxes, frame rates, ids -- to :class:`metrics.suite.RegionalSuite`. The keypoint rules live here
because they are part of the contract: a side's own keypoints need one row per frame; the other side's
keypoints, used when a side has none, must cover its frames.

Example:
    >>> import torch
    >>> v = torch.zeros(1, 4, 3, 8, 8, dtype=torch.uint8)
    >>> AvatarBatch.from_dict({"generated": v, "reference": v, "step": 3}).extra
    {'step': 3}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["AvatarBatch", "keypoints_for"]


@dataclass
class AvatarBatch:
    """One batch of generated videos and their references (DESIGN s2).

    Attributes:
        generated, reference: ``[B, T, 3, H, W]`` uint8 or float [0, 1] (lengths and sizes may differ).
        keypoints_generated, keypoints_reference: ``[B, T, 133, 3]`` (x, y, score), COCO-WholeBody order;
            if only one is given it is used for both videos.
        boxes, valid: ``{region: [B, T, 4]}`` pixel boxes and ``{region: [B, T]}`` masks, used for both videos
            (take precedence over keypoints).
        fps: ``[B]`` frame rates (DynamicDegree subsamples to ~8 fps); None uses the metric's default.
        audio, text, category: carried along for speech metrics and logging.
        video_ids: one str per video naming its REFERENCE content (a file hash, a dataset index), used by a
            suite with a ``reference_cache`` to encode each reference video once per run.
    """

    generated: Tensor
    reference: Tensor
    keypoints_generated: Tensor | None = None
    keypoints_reference: Tensor | None = None
    boxes: dict[str, Tensor] | None = None
    valid: dict[str, Tensor] | None = None
    fps: Tensor | Sequence[float] | None = None
    audio: Any = None
    text: Any = None
    category: Any = None
    video_ids: Sequence[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AvatarBatch:
        """Build from a validation step's output dict with the same keys (unknown keys go to ``extra``)."""
        if not isinstance(data, Mapping) or "generated" not in data or "reference" not in data:
            keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(
                f"the validation step must return a dict with 'generated' and 'reference'; got {keys}"
            )
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known},
        )


def keypoints_for(batch: AvatarBatch, side: str, frames: int) -> Tensor:
    """The keypoints that locate regions in ``side``'s videos of ``frames`` frames, checked against them.

    A side's own keypoints must have exactly one row per frame; the other side's keypoints, used when a side
    has none (DESIGN s2), must cover at least its frames and are cut to them (a generated clip shorter than
    its reference). Anything else is a mismatch between keypoint file and video: a ValueError, never a
    silent truncation or a region video shorter than its source.
    """
    own = batch.keypoints_generated if side == "generated" else batch.keypoints_reference
    other_side = "reference" if side == "generated" else "generated"
    kp = own if own is not None else _region_keypoints(batch, side == "generated")
    name = f"keypoints_{side if own is not None else other_side}"
    if not isinstance(kp, Tensor) or kp.ndim != 4 or kp.shape[2:] != (133, 3):
        got = f"shape {tuple(kp.shape)}" if isinstance(kp, Tensor) else type(kp).__name__
        raise ValueError(f"`{name}` must be [B, T, 133, 3] COCO-WholeBody keypoints, got {got}")
    if own is not None and kp.shape[1] != frames:
        raise ValueError(
            f"`{name}` has {kp.shape[1]} frame(s) for {side} videos of {frames} frame(s); keypoints need one "
            "row per frame (dim 1). Were they extracted from another video or at another frame rate?"
        )
    if kp.shape[1] < frames:
        raise ValueError(
            f"`{name}` has {kp.shape[1]} frame(s), used for {side} videos of {frames} frame(s) (no "
            f"keypoints_{side} given); they must cover every frame"
        )
    return kp[:, :frames]


def _region_keypoints(batch: AvatarBatch, generated: bool) -> Tensor | None:
    own = batch.keypoints_generated if generated else batch.keypoints_reference
    other = batch.keypoints_reference if generated else batch.keypoints_generated
    return own if own is not None else other
