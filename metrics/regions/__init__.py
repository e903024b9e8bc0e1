"""Body regions of avatar videos: keypoints -> boxes (the JWB-DH-V1 recipe) -> crops.

JWB-DH-V1 scores every metric on three regions: the whole frame, the face and the hands
(spec/jwbdh_v1.md s1-s2). One module per step:

* :mod:`metrics.regions.recipes` -- :class:`RegionRecipe` / :data:`REGION_RECIPES` and
  :func:`boxes_from_keypoints` / :func:`region_boxes`: ``[B, T, 133, 3]`` COCO-WholeBody keypoints ->
  ``[B, T, 4]`` boxes and a ``[B, T]`` mask of kept frames, as the benchmark's script computes them (the
  recipe and its keypoint-index quirk are described there).
* :mod:`metrics.regions.crops` -- :func:`crop_regions` / :func:`region_videos`: boxes -> crops resized to
  the first kept crop's size, batched on the videos' device. The default path for uint8 videos and the
  recipe's whole-pixel boxes is OpenCV-exact (``cv2.resize`` INTER_LINEAR's fixed-point pixels); float
  videos or fractional boxes take a batched ``roi_align`` path (OpenCV's filter up to float rounding).
* :mod:`metrics.regions.faces` -- :class:`MTCNNFaceBoxes`: face boxes without keypoints.
* Keypoints themselves come from the estimators of :mod:`metrics.pose` (:class:`~metrics.pose.DWPoseONNX`,
  the paper's detector, and ``MediaPipeWholeBody``); the DWPose names are still importable from here.

Example:
    >>> import torch
    >>> kp = torch.zeros(1, 2, 133, 3)
    >>> kp[..., 24:92, 0] = torch.linspace(100, 141, 68)   # face points 41 px wide ...
    >>> kp[..., 24:92, 1] = torch.linspace(60, 101, 68)    # ... and 41 px high
    >>> kp[:, 0, 24:92, 2] = 0.9                           # confident in frame 0 only
    >>> boxes, valid = boxes_from_keypoints(kp, (256, 256), "face")
    >>> boxes[0, 0].tolist(), valid.tolist()
    ([80.0, 40.0, 161.0, 121.0], [[True, False]])
    >>> video = torch.randint(0, 256, (1, 2, 3, 256, 256), dtype=torch.uint8)
    >>> crops, valid = crop_regions(video, boxes, valid, size="first_valid")
    >>> crops.shape, crops.dtype
    (torch.Size([1, 2, 3, 81, 81]), torch.uint8)
"""

from __future__ import annotations

import importlib
from typing import Any

from metrics.regions.crops import compact_valid, crop_regions, first_valid_sizes, region_videos
from metrics.regions.faces import MTCNNFaceBoxes
from metrics.regions.recipes import (
    JWBDH_V1_REGIONS,
    NUM_KEYPOINTS,
    REGION_RECIPES,
    RegionBoxes,
    RegionRecipe,
    boxes_from_keypoints,
    get_region_recipe,
    refine_boxes,
    region_boxes,
    register_region,
)

# DWPose moved to metrics.pose.dwpose; imported on first use (numpy/OpenCV pre-processing, onnxruntime).
_LAZY = {
    name: "metrics.pose.dwpose"
    for name in (
        "DWPOSE_INPUT_SIZE",
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
}

__all__ = [
    "DWPOSE_INPUT_SIZE",
    "JWBDH_V1_REGIONS",
    "NUM_KEYPOINTS",
    "REGION_RECIPES",
    "DWPoseONNX",
    "MTCNNFaceBoxes",
    "RegionBoxes",
    "RegionRecipe",
    "affine_matrix",
    "bbox_to_center_scale",
    "boxes_from_keypoints",
    "compact_valid",
    "crop_regions",
    "first_valid_sizes",
    "fix_aspect_ratio",
    "get_region_recipe",
    "keypoints_to_image",
    "nms",
    "refine_boxes",
    "region_boxes",
    "region_videos",
    "register_region",
    "simcc_decode",
    "yolox_decode",
    "yolox_letterbox",
    "yolox_person_boxes",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
