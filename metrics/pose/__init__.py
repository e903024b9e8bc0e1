"""Whole-body keypoint estimators producing COCO-WholeBody ``[T, 133, 3]`` keypoints for the region recipes.

- :mod:`metrics.pose.dwpose`: :class:`DWPoseONNX`, DWPose's ONNX files (the paper's detector) through
  onnxruntime, with its numpy/OpenCV pre- and post-processing functions.
- :mod:`metrics.pose.mediapipe`: ``MediaPipeWholeBody``, MediaPipe Holistic mapped to the 133 points.
- :mod:`metrics.pose.keypoints_file`: ``save_keypoints``, the file ``jwbdh-eval --keypoints`` reads.

Imported lazily: ``metrics.pose`` loads no backend until one of its names is used (mediapipe and onnxruntime
are optional extras).

Example:
    >>> from metrics.pose import MediaPipeWholeBody  # doctest: +SKIP
    >>> from metrics.pose import DWPoseONNX  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it.
_DWPOSE = (
    "DWPOSE_INPUT_SIZE",
    "DWPOSE_WEIGHTS",
    "DWPoseONNX",
    "affine_matrix",
    "bbox_to_center_scale",
    "fix_aspect_ratio",
    "keypoints_to_image",
    "nms",
    "simcc_decode",
    "yolox_decode",
    "yolox_letterbox",
    "yolox_person_boxes",
)
_LAZY = {
    "MediaPipeWholeBody": "metrics.pose.mediapipe",
    "save_keypoints": "metrics.pose.keypoints_file",
    **{name: "metrics.pose.dwpose" for name in _DWPOSE},
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
