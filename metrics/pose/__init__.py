"""Whole-body keypoint estimators producing COCO-WholeBody ``[T, 133, 3]`` keypoints for the region recipes.

Imported lazily: ``metrics.pose`` loads no backend until one of its names is used (mediapipe and onnxruntime
are optional extras).

Example:
    >>> from metrics.pose import MediaPipeWholeBody  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it. DWPoseONNX still lives in metrics.regions (to move to metrics.pose.dwpose).
_LAZY = {
    "MediaPipeWholeBody": "metrics.pose.mediapipe",
    "DWPoseONNX": "metrics.regions",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
