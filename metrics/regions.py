r"""Body regions of avatar videos: keypoints -> boxes (the JWB-DH-V1 recipe), boxes -> crops, detectors.

JWB-DH-V1 scores every metric on three regions: the whole frame, the face and the hands
(spec/jwbdh_v1.md s1-s2). Its script ``process_video_hands_videos.py`` takes DWPose's 133 COCO-WholeBody
keypoints of the first detected person and turns them into one box per frame and region; frames whose
box is missing or fails an area filter are left out of the region video, and every kept crop is resized
to the size of the first kept crop. This module reproduces that, batched and vectorised in torch on the
keypoints' device:

* :func:`boxes_from_keypoints` / :func:`region_boxes` -- ``[B, T, 133, 3]`` keypoints ``(x, y, score)``
  -> ``[B, T, 4]`` boxes ``(x1, y1, x2, y2)`` in pixels (integer valued, end-exclusive: the box covers
  pixel rows ``y1 .. y2 - 1``) and a ``[B, T]`` validity mask, with the recipe of a named region from
  :data:`REGION_RECIPES` (jwbdh-v1: ``whole_body``, ``face``, ``hand``; extra: ``left_hand``,
  ``right_hand``, ``legs`` and index-corrected ``face_coco`` / ``hand_coco``).
* :func:`crop_regions` -- ``[B, T, 3, H, W]`` videos + boxes -> ``[B, T, 3, h, w]`` crops with
  ``torchvision.ops.roi_align`` (one batched call on the device), at a fixed size or at the size of the
  first valid crop; :func:`region_videos` -- the script's region videos, one tensor per video (only the
  kept frames, each video at its own first-kept-crop size); :func:`compact_valid` -- kept frames first.
* :class:`MTCNNFaceBoxes` -- face boxes from facenet-pytorch's MTCNN (weights ship in its wheel) when no
  keypoints are available; :class:`DWPoseONNX` -- the 133 keypoints themselves, from the user's DWPose ONNX
  files through onnxruntime, pre- and post-processed as DWPose does (functions ``yolox_*``, ``nms``,
  ``bbox_to_center_scale``, ``fix_aspect_ratio``, ``affine_matrix``, ``simcc_decode``,
  ``keypoints_to_image``).

The recipe, as the script computes it (paraphrased; line references are to ``process_video_hands_videos.py``
in github.com/deepreasonings/WholeBodyBenchmark, mirror silent-commit/WholeBodyBenchmark):

1. Keypoint ``k`` of the first person is kept if ``score > 0.3`` (strictly greater).
2. Tight box: ``x1 = max(0, int(min x))``, ``y1 = max(0, int(min y))``, ``x2 = min(W, int(max x))``,
   ``y2 = min(H, int(max y))`` over the kept points; ``int`` truncates toward zero.
3. Expansion with ``w = x2 - x1``, ``h = y2 - y1``: ``x1 -= int(0.5 w)``, ``x2 += int(0.5 w)``,
   ``y1 -= int(0.5 h)``, ``y2 += int(0.5 h)``, clipped to the frame. Hands: if ``w < 20`` or ``h < 20`` every
   side grows by ``max(w, h)`` instead.
4. Face only: if the expanded box is narrower or shorter than 50 px it becomes ``cx +- 25, cy +- 25`` with
   ``cx = (x1 + x2) // 2`` (floor division), clipped. Hands only: a box with ``x1 >= x2`` or ``y1 >= y2``
   drops the frame.
5. The crop is ``img[y1:y2, x1:x2]`` (numpy slicing: a negative end counts from the far border -- only
   reachable for faces whose every kept point lies far outside the frame; reproduced); an empty crop is
   not saved, so that frame is absent.
6. Area filter on the box area ``(x2 - x1) * (y2 - y1)``: faces in ``[2000, 10000]`` px², hands in
   ``[2000, 15000]`` px² (both ends inclusive). If no frame of a video passes, every frame with a crop
   is used instead (the fallback).

KEYPOINT INDICES (a quirk, reproduced by the jwbdh-v1 ``face`` and ``hand`` recipes): the script slices
``keypoints[0][24:92]`` for the face and ``[92:113]`` + ``[113:134]`` for the hands. Those are the ranges of
DWPose's *OpenPose-remapped 134-point* layout (DWPose's ``Wholebody.__call__`` inserts a neck point at
index 17), but the script calls DWPose's ``inference_pose`` directly, which returns the raw 133
COCO-WholeBody points (body 0-16, feet 17-22, face 23-90, left hand 91-111, right hand 112-132). So on
the 133 points it actually gets, the "face" is points 24-91 (face points 1-67 plus the LEFT-HAND ROOT 91,
without the first jaw point 23) and the "hands" are points 92-132 (without the left-hand root). The
``face_coco`` and ``hand_coco`` recipes use the anatomically correct ranges 23-90 and 91-132.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metrics.video import check_video, to_uint8

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

#: Number of COCO-WholeBody keypoints (DWPose's raw output) in the data contract (DESIGN s2).
NUM_KEYPOINTS = 133
#: The regions JWB-DH-V1 evaluates (spec/jwbdh_v1.md s1).
JWBDH_V1_REGIONS = ("whole_body", "face", "hand")
#: Coordinates are clamped to +-2**40 px before truncation to int64; anything that far out gives the same
#: (empty or clipped) box as the script would.
_COORD_LIMIT = float(2**40)


# ============================================================================================ recipes
@dataclass(frozen=True)
class RegionRecipe:
    """How one region's box is derived from keypoints (or from any tight box, see :func:`refine_boxes`).

    Attributes:
        name: registry key.
        indices: keypoint indices (0-based, into the 133 COCO-WholeBody points) pooled into one box; None
            means the whole frame (no keypoints needed).
        score_threshold: a keypoint is kept if its score is strictly greater.
        expand: each side moves out by ``int(expand * w)`` (left/right) or ``int(expand * h)`` (top/bottom),
            ``int`` truncating toward zero, then the box is clipped to the frame.
        small_side: if not None and the tight box is narrower or shorter than this, every side moves out by
            ``max(w, h)`` instead (jwbdh-v1 hands: 20).
        min_side: if not None and the expanded box is narrower or shorter than this, it is replaced by a
            ``min_side`` x ``min_side`` box centred on it (centre by floor division), clipped (jwbdh-v1
            face: 50; must be even).
        drop_degenerate: drop frames whose final box has ``x1 >= x2`` or ``y1 >= y2`` (jwbdh-v1 hands). When
            False (jwbdh-v1 face), the box is used as a numpy slice, exactly as the script crops it.
        area_range: inclusive ``(min, max)`` box area in px² a frame must have to be kept, or None.
        fallback: when no frame of a video passes ``area_range``, keep every detected frame instead.
        description: one line for tables and docs.
    """

    name: str
    indices: tuple[int, ...] | None
    score_threshold: float = 0.3
    expand: float = 0.5
    small_side: int | None = None
    min_side: int | None = None
    drop_degenerate: bool = True
    area_range: tuple[float, float] | None = None
    fallback: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"RegionRecipe `name` must be a non-empty string, got {self.name!r}")
        if self.indices is not None:
            idx = tuple(int(i) for i in self.indices)
            if not idx or min(idx) < 0 or max(idx) >= NUM_KEYPOINTS:
                raise ValueError(
                    f"RegionRecipe {self.name!r}: `indices` must be a non-empty set of keypoint indices in "
                    f"[0, {NUM_KEYPOINTS}), got {self.indices!r}"
                )
            object.__setattr__(self, "indices", idx)
        if not isinstance(self.expand, int | float) or not self.expand >= 0:
            raise ValueError(f"RegionRecipe {self.name!r}: `expand` must be >= 0, got {self.expand!r}")
        if self.small_side is not None and (not isinstance(self.small_side, int) or self.small_side < 1):
            raise ValueError(f"RegionRecipe {self.name!r}: `small_side` must be a positive int or None")
        if self.min_side is not None and (
            not isinstance(self.min_side, int) or self.min_side < 2 or self.min_side % 2
        ):
            raise ValueError(f"RegionRecipe {self.name!r}: `min_side` must be an even int >= 2 or None")
        if self.area_range is not None:
            lo, hi = self.area_range
            if not lo <= hi:
                raise ValueError(
                    f"RegionRecipe {self.name!r}: `area_range` must be (min, max) with min <= max"
                )
            object.__setattr__(self, "area_range", (float(lo), float(hi)))


_FACE_SCRIPT = tuple(range(24, 92))  # keypoints[0][24:92] on 133 points
_HANDS_SCRIPT = tuple(range(92, 113)) + tuple(range(113, NUM_KEYPOINTS))  # [92:113] + [113:134] -> 92..132
_FACE_COCO = tuple(range(23, 91))
_LEFT_HAND = tuple(range(91, 112))
_RIGHT_HAND = tuple(range(112, 133))
_LEGS = tuple(range(11, 23))  # hips 11-12, knees 13-14, ankles 15-16, feet 17-22

_FACE_RULES: dict[str, Any] = dict(expand=0.5, min_side=50, drop_degenerate=False, area_range=(2000, 10000))
_HAND_RULES: dict[str, Any] = dict(expand=0.5, small_side=20, drop_degenerate=True, area_range=(2000, 15000))

#: Named region recipes. jwbdh-v1 uses ``whole_body``, ``face`` and ``hand`` (:data:`JWBDH_V1_REGIONS`).
REGION_RECIPES: dict[str, RegionRecipe] = {
    "whole_body": RegionRecipe("whole_body", None, description="the full frame (jwbdh-v1)"),
    "face": RegionRecipe(
        "face", _FACE_SCRIPT, **_FACE_RULES, description="jwbdh-v1 face: script indices 24..91, 50 px minimum"
    ),
    "hand": RegionRecipe(
        "hand", _HANDS_SCRIPT, **_HAND_RULES, description="jwbdh-v1 hands: script indices 92..132 pooled"
    ),
    "face_coco": RegionRecipe(
        "face_coco", _FACE_COCO, **_FACE_RULES, description="face recipe on COCO-WholeBody face points 23..90"
    ),
    "hand_coco": RegionRecipe(
        "hand_coco",
        _LEFT_HAND + _RIGHT_HAND,
        **_HAND_RULES,
        description="hand recipe on both COCO-WholeBody hands 91..132 pooled",
    ),
    "left_hand": RegionRecipe(
        "left_hand", _LEFT_HAND, **_HAND_RULES, description="hand recipe on the left hand 91..111"
    ),
    "right_hand": RegionRecipe(
        "right_hand", _RIGHT_HAND, **_HAND_RULES, description="hand recipe on the right hand 112..132"
    ),
    "legs": RegionRecipe(
        "legs",
        _LEGS,
        expand=0.1,
        drop_degenerate=True,
        area_range=None,
        description="hips, knees, ankles and feet (11..22), 10% margin, no area filter",
    ),
}


def register_region(recipe: RegionRecipe, *, overwrite: bool = False) -> RegionRecipe:
    """Add a recipe to :data:`REGION_RECIPES` under ``recipe.name`` (e.g. a variant made with
    ``dataclasses.replace(REGION_RECIPES["hand"], name="hand_strict", score_threshold=0.5)``).

    Raises:
        ValueError: the name is taken and ``overwrite`` is False.
    """
    if not isinstance(recipe, RegionRecipe):
        raise ValueError(f"`recipe` must be a RegionRecipe, got {type(recipe).__name__}")
    if recipe.name in REGION_RECIPES and not overwrite:
        raise ValueError(f"region {recipe.name!r} is already registered; pass overwrite=True to replace it")
    REGION_RECIPES[recipe.name] = recipe
    return recipe


def get_region_recipe(region: str | RegionRecipe) -> RegionRecipe:
    """The recipe for a region name (or the recipe itself). Raises ValueError for an unknown name."""
    if isinstance(region, RegionRecipe):
        return region
    if isinstance(region, str) and region in REGION_RECIPES:
        return REGION_RECIPES[region]
    raise ValueError(
        f"unknown region {region!r}; known regions: {sorted(REGION_RECIPES)} (or pass a RegionRecipe)"
    )


# ======================================================================================== box recipe
@dataclass
class RegionBoxes:
    """Everything :func:`region_boxes` computes for one region, per frame.

    Attributes:
        boxes: float32 ``[B, T, 4]`` ``(x1, y1, x2, y2)``: the pixels the script's crop takes, for every
            *detected* frame (zeros elsewhere); integer valued.
        valid: bool ``[B, T]``: the frame is in the region video (detected, passed the area filter or
            rescued by the fallback).
        detected: bool ``[B, T]``: the frame has a non-empty crop before the area filter.
        area: int64 ``[B, T]``: the box area the script filters on (0 where nothing was detected).
        in_range: bool ``[B, T]``: detected and the area lies in the recipe's ``area_range``.
        used_fallback: bool ``[B]``: no frame passed the filter, so every detected frame was kept.
    """

    boxes: Tensor
    valid: Tensor
    detected: Tensor
    area: Tensor
    in_range: Tensor
    used_fallback: Tensor

    @property
    def kept_fraction(self) -> Tensor:
        """float32 ``[B]``: kept frames / frames (the script reports videos below 0.2)."""
        t = self.valid.shape[1]
        return self.valid.sum(1).float() / max(t, 1)


def _check_image_size(image_size: object) -> tuple[int, int]:
    if (
        not isinstance(image_size, Sequence)
        or len(image_size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in image_size)
    ):
        raise ValueError(f"`image_size` must be (H, W), two positive ints, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


def _check_keypoints(keypoints: object) -> Tensor:
    if not isinstance(keypoints, Tensor):
        raise ValueError(
            f"`keypoints` must be a torch.Tensor [B, T, {NUM_KEYPOINTS}, 3], got {type(keypoints).__name__}"
        )
    shape = tuple(keypoints.shape)
    if keypoints.ndim != 4 or shape[-1] != 3 or shape[-2] != NUM_KEYPOINTS:
        hint = ""
        if keypoints.ndim == 3:
            hint = " (one video? add a batch dimension with .unsqueeze(0))"
        elif keypoints.ndim == 4 and shape[-2] == NUM_KEYPOINTS + 1:
            hint = (
                " (134 points look like DWPose's OpenPose-remapped layout with a neck inserted at index 17; "
                "pass the raw 133 COCO-WholeBody points that DWPose's inference_pose returns)"
            )
        elif keypoints.ndim == 4 and shape[-1] == 2:
            hint = " (no scores? append a score channel, e.g. ones, as the last coordinate)"
        raise ValueError(
            f"`keypoints` must have shape [B, T, {NUM_KEYPOINTS}, 3] (x, y, score in COCO-WholeBody order), "
            f"got {shape}{hint}"
        )
    if not keypoints.is_floating_point():
        raise ValueError(f"`keypoints` must be a floating point tensor, got dtype {keypoints.dtype}")
    return keypoints


def _trunc_int(x: Tensor) -> Tensor:
    """Python's ``int(x)`` (truncation toward zero) for finite float64 values, as int64."""
    return torch.trunc(x.clamp(-_COORD_LIMIT, _COORD_LIMIT)).to(torch.int64)


def _python_slice(start: Tensor, end: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """Bounds numpy's ``a[start:end]`` takes on an axis of ``length`` (negative values count from the end)."""
    start = torch.where(start < 0, (start + length).clamp(min=0), start.clamp(max=length))
    end = torch.where(end < 0, (end + length).clamp(min=0), end.clamp(max=length))
    return start, end


def _tight_boxes_from_points(
    keypoints: Tensor, recipe: RegionRecipe, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """int64 ``[B, T, 4]`` clipped tight boxes of the kept points and bool ``[B, T]`` "any point kept"."""
    idx = torch.tensor(recipe.indices, device=keypoints.device)
    pts = keypoints.index_select(2, idx)  # [B, T, n, 3]
    # The threshold is compared in the keypoints' own precision, as NumPy compares DWPose's float32 scores
    # with the Python float 0.3 (a float32 score of exactly float32(0.3) is NOT kept). NaN scores compare
    # False; non-finite coordinates would crash the script (int(nan)): never kept here.
    kept = pts[..., 2] > recipe.score_threshold
    x, y = pts[..., 0].to(torch.float64), pts[..., 1].to(torch.float64)
    kept &= torch.isfinite(x) & torch.isfinite(y)
    any_kept = kept.any(-1)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=keypoints.device)
    zero = torch.zeros((), dtype=torch.float64, device=keypoints.device)

    def reduce(v: Tensor, fill: Tensor, op: str) -> Tensor:
        r = getattr(torch.where(kept, v, fill), op)(-1)
        return _trunc_int(torch.where(any_kept, r, zero))

    x1 = reduce(x, inf, "amin").clamp(min=0)
    y1 = reduce(y, inf, "amin").clamp(min=0)
    x2 = reduce(x, -inf, "amax").clamp(max=width)
    y2 = reduce(y, -inf, "amax").clamp(max=height)
    return torch.stack([x1, y1, x2, y2], -1), any_kept


def refine_boxes(
    tight_boxes: Tensor, detected: Tensor, image_size: tuple[int, int], region: str | RegionRecipe
) -> RegionBoxes:
    """Steps 3-6 of the recipe (expansion, minimum size, degenerate boxes, slicing, area filter, fallback).

    Args:
        tight_boxes: int64 ``[B, T, 4]`` tight boxes already truncated to integers and clipped to the frame
            (``x1 = max(0, int(min x))`` etc.), from keypoints or from a detector such as MTCNN.
        detected: bool ``[B, T]``: frames that have a tight box at all.
        image_size: ``(H, W)`` of the frames.
        region: a registered name or a :class:`RegionRecipe` (``indices`` is not used here).
    """
    recipe = get_region_recipe(region)
    height, width = _check_image_size(image_size)
    if not isinstance(tight_boxes, Tensor) or tight_boxes.ndim != 3 or tight_boxes.shape[-1] != 4:
        got = tuple(tight_boxes.shape) if isinstance(tight_boxes, Tensor) else type(tight_boxes).__name__
        raise ValueError(f"`tight_boxes` must be an integer [B, T, 4] tensor, got {got}")
    if (
        not isinstance(detected, Tensor)
        or detected.dtype != torch.bool
        or detected.shape != tight_boxes.shape[:2]
    ):
        raise ValueError(
            f"`detected` must be a bool [B, T] tensor matching `tight_boxes` {tuple(tight_boxes.shape)}"
        )
    x1, y1, x2, y2 = tight_boxes.to(torch.int64).unbind(-1)

    # Step 3: expansion (int() truncation of a float product, exactly as Python computes it).
    w, h = x2 - x1, y2 - y1
    ex = _trunc_int(w.to(torch.float64) * recipe.expand)
    ey = _trunc_int(h.to(torch.float64) * recipe.expand)
    if recipe.small_side is not None:
        small = (w < recipe.small_side) | (h < recipe.small_side)
        grow = torch.maximum(w, h)  # int(max(w, h) * 1.0)
        ex, ey = torch.where(small, grow, ex), torch.where(small, grow, ey)
    x1, y1 = (x1 - ex).clamp(min=0), (y1 - ey).clamp(min=0)
    x2, y2 = (x2 + ex).clamp(max=width), (y2 + ey).clamp(max=height)

    # Step 4: minimum size (face) / degenerate boxes (hands).
    if recipe.min_side is not None:
        half = recipe.min_side // 2
        too_small = ((x2 - x1) < recipe.min_side) | ((y2 - y1) < recipe.min_side)
        cx = torch.div(x1 + x2, 2, rounding_mode="floor")
        cy = torch.div(y1 + y2, 2, rounding_mode="floor")
        x1 = torch.where(too_small, (cx - half).clamp(min=0), x1)
        y1 = torch.where(too_small, (cy - half).clamp(min=0), y1)
        x2 = torch.where(too_small, (cx + half).clamp(max=width), x2)
        y2 = torch.where(too_small, (cy + half).clamp(max=height), y2)
    detected = detected.clone()
    if recipe.drop_degenerate:
        detected &= (x1 < x2) & (y1 < y2)

    # Step 5: the crop is a numpy slice; an empty crop means no frame.
    sx1, sx2 = _python_slice(x1, x2, width)
    sy1, sy2 = _python_slice(y1, y2, height)
    detected &= (sx2 > sx1) & (sy2 > sy1)

    # Step 6: area filter on the recorded (unsliced) box, then the per-video fallback.
    area = torch.where(detected, (x2 - x1) * (y2 - y1), torch.zeros_like(x1))
    if recipe.area_range is not None:
        lo, hi = recipe.area_range
        area_f = area.to(torch.float64)
        in_range = detected & (area_f >= lo) & (area_f <= hi)
    else:
        in_range = detected.clone()
    if recipe.fallback:
        used_fallback = ~in_range.any(1) & detected.any(1)
        valid = torch.where(used_fallback[:, None], detected, in_range)
    else:
        used_fallback = torch.zeros_like(in_range[:, 0])
        valid = in_range
    boxes = torch.stack([sx1, sy1, sx2, sy2], -1).to(torch.float32) * detected[..., None]
    return RegionBoxes(boxes, valid, detected, area, in_range, used_fallback)


def region_boxes(
    keypoints: Tensor, image_size: tuple[int, int], region: str | RegionRecipe = "face"
) -> RegionBoxes:
    """The full per-frame result of a region recipe (boxes of every detected frame, filter flags, fallback).

    See :func:`boxes_from_keypoints` for the arguments; this variant keeps the intermediate masks, e.g. to
    draw boxes of filtered frames or to report videos whose kept-frame rate is below 20% (as the script does).
    """
    recipe = get_region_recipe(region)
    height, width = _check_image_size(image_size)
    keypoints = _check_keypoints(keypoints)
    b, t, device = keypoints.shape[0], keypoints.shape[1], keypoints.device
    if recipe.indices is None:  # the whole frame
        full = torch.tensor([0.0, 0.0, float(width), float(height)], device=device)
        ones = torch.ones((b, t), dtype=torch.bool, device=device)
        return RegionBoxes(
            boxes=full.expand(b, t, 4).clone(),
            valid=ones,
            detected=ones.clone(),
            area=torch.full((b, t), height * width, dtype=torch.int64, device=device),
            in_range=ones.clone(),
            used_fallback=torch.zeros(b, dtype=torch.bool, device=device),
        )
    tight, detected = _tight_boxes_from_points(keypoints, recipe, height, width)
    return refine_boxes(tight, detected, (height, width), recipe)


def boxes_from_keypoints(
    keypoints: Tensor, image_size: tuple[int, int], region: str | RegionRecipe = "face"
) -> tuple[Tensor, Tensor]:
    """Region boxes per frame from COCO-WholeBody keypoints, with the JWB-DH-V1 recipe (module docstring).

    Vectorised over videos and frames on the keypoints' device (no Python loop, no host synchronisation).

    Args:
        keypoints: float ``[B, T, 133, 3]`` ``(x, y, score)`` in pixels of the frame, COCO-WholeBody order
            (DWPose's raw output; DESIGN s2). A frame without a person should carry scores <= the threshold.
        image_size: ``(H, W)`` of the frames the keypoints refer to.
        region: a name in :data:`REGION_RECIPES` (jwbdh-v1: ``"whole_body"``, ``"face"``, ``"hand"``) or a
            :class:`RegionRecipe`.

    Returns:
        ``(boxes, valid)``: float32 ``[B, T, 4]`` ``(x1, y1, x2, y2)`` pixel boxes (integer valued; the crop
        is ``frame[y1:y2, x1:x2]``), zero where ``valid`` is False, and bool ``[B, T]`` marking the frames the
        region video keeps (detected and inside the area range, or every detected frame of a video in which
        none passes the area filter).

    Raises:
        ValueError: keypoints not ``[B, T, 133, 3]`` floating point, bad ``image_size``, unknown region.
    """
    res = region_boxes(keypoints, image_size, region)
    return res.boxes * res.valid[..., None], res.valid


# ============================================================================================= crops
def _check_boxes_valid(videos: Tensor, boxes: object, valid: object) -> tuple[Tensor, Tensor]:
    b, t = videos.shape[:2]
    if not isinstance(boxes, Tensor) or boxes.shape != (b, t, 4) or not boxes.is_floating_point():
        got = (
            f"shape {tuple(boxes.shape)} dtype {boxes.dtype}"
            if isinstance(boxes, Tensor)
            else type(boxes).__name__
        )
        raise ValueError(
            f"`boxes` must be a float [B, T, 4] = [{b}, {t}, 4] tensor (x1, y1, x2, y2), got {got}"
        )
    if not isinstance(valid, Tensor) or valid.shape != (b, t) or valid.dtype != torch.bool:
        got = (
            f"shape {tuple(valid.shape)} dtype {valid.dtype}"
            if isinstance(valid, Tensor)
            else type(valid).__name__
        )
        raise ValueError(f"`valid` must be a bool [B, T] = [{b}, {t}] tensor, got {got}")
    if boxes.device != videos.device or valid.device != videos.device:
        raise ValueError(
            f"`videos` ({videos.device}), `boxes` ({boxes.device}) and `valid` ({valid.device}) "
            "must be on one device"
        )
    return boxes, valid


def first_valid_sizes(boxes: Tensor, valid: Tensor) -> Tensor:
    """int64 ``[B, 2]``: ``(h, w)`` of each video's first valid box (rounded to pixels), ``(0, 0)`` if none.

    This is the size JWB-DH-V1 resizes every crop of a region video to (the first kept crop's size).
    """
    b, t = valid.shape
    if t == 0:
        return torch.zeros((b, 2), dtype=torch.int64, device=valid.device)
    first = valid.to(torch.int8).argmax(1)  # first True (0 when none: masked below)
    box = boxes[torch.arange(b, device=boxes.device), first]
    hw = torch.stack([box[:, 3] - box[:, 1], box[:, 2] - box[:, 0]], -1).round().to(torch.int64).clamp(min=1)
    return hw * valid.any(1, keepdim=True)


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f'`size` must be "first_valid" or (h, w), two positive ints, got {size!r}')
    return int(size[0]), int(size[1])


def _roi_align_crops(frames: Tensor, rois: Tensor, size: tuple[int, int], exact_borders: bool) -> Tensor:
    """Bilinear crops of ``rois`` ``[K, 5]`` (frame index, x1, y1, x2, y2) to ``size`` from float ``frames``.

    With ``aligned=True`` and ``sampling_ratio=1``, output pixel ``j`` samples the frame at
    ``x1 + (j + 0.5) * (x2 - x1) / w - 0.5``: OpenCV INTER_LINEAR's half-pixel source position inside the
    crop. roi_align clamps samples to the *frame*; OpenCV resizing a cut-out crop clamps to the *crop*, which
    differs when a crop is enlarged (the outermost samples fall before ``x1`` or after ``x2 - 1``). With
    ``exact_borders`` those samples are replaced by samples on the crop's edge pixels (zero-width boxes).
    """
    from torchvision.ops import roi_align

    h, w = size
    out = roi_align(frames, rois, (h, w), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    if not exact_borders or rois.shape[0] == 0:
        return out
    n, x1, y1, x2, y2 = rois.unbind(1)
    dev, dt = rois.device, rois.dtype
    jx = torch.arange(w, device=dev, dtype=dt) + 0.5
    jy = torch.arange(h, device=dev, dtype=dt) + 0.5
    px = x1[:, None] - 0.5 + jx * ((x2 - x1) / w)[:, None]  # [K, w] sample positions
    py = y1[:, None] - 0.5 + jy * ((y2 - y1) / h)[:, None]
    left, right = px < x1[:, None], px > (x2 - 1)[:, None]
    top, bottom = py < y1[:, None], py > (y2 - 1)[:, None]
    if not bool(left.any() | right.any() | top.any() | bottom.any()):
        return out
    xl, xr, yt, yb = x1 + 0.5, x2 - 0.5, y1 + 0.5, y2 - 0.5  # zero-width boxes sampling x1, x2-1, y1, y2-1
    cols = roi_align(
        frames,
        torch.cat([torch.stack([n, xl, y1, xl, y2], 1), torch.stack([n, xr, y1, xr, y2], 1)]),
        (h, 1),
        1.0,
        1,
        True,
    )
    rows = roi_align(
        frames,
        torch.cat([torch.stack([n, x1, yt, x2, yt], 1), torch.stack([n, x1, yb, x2, yb], 1)]),
        (1, w),
        1.0,
        1,
        True,
    )
    corners = roi_align(
        frames,
        torch.cat(
            [
                torch.stack([n, xl, yt, xl, yt], 1),
                torch.stack([n, xr, yt, xr, yt], 1),
                torch.stack([n, xl, yb, xl, yb], 1),
                torch.stack([n, xr, yb, xr, yb], 1),
            ]
        ),
        (1, 1),
        1.0,
        1,
        True,
    )
    k = rois.shape[0]
    col_l, col_r = cols[:k], cols[k:]
    row_t, row_b = rows[:k], rows[k:]
    c_tl, c_tr, c_bl, c_br = corners.split(k)
    lx, rx = left[:, None, None, :], right[:, None, None, :]
    ty, by = top[:, None, :, None], bottom[:, None, :, None]
    out = torch.where(lx, col_l, out)
    out = torch.where(rx, col_r, out)
    out = torch.where(ty, row_t, out)
    out = torch.where(by, row_b, out)
    out = torch.where(ty & lx, c_tl, out)
    out = torch.where(ty & rx, c_tr, out)
    out = torch.where(by & lx, c_bl, out)
    return torch.where(by & rx, c_br, out)


def _check_nonempty_boxes(boxes: Tensor, valid: Tensor) -> None:
    bad = valid & ~(
        torch.isfinite(boxes).all(-1) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    )
    if bool(bad.any()):
        i = bad.nonzero()[0].tolist()
        raise ValueError(
            f"`boxes` must be finite with x2 > x1 and y2 > y1 wherever `valid` is True; video {i[0]} frame "
            f"{i[1]} has {boxes[i[0], i[1]].tolist()}"
        )


def crop_regions(
    videos: Tensor,
    boxes: Tensor,
    valid: Tensor,
    size: str | tuple[int, int] = "first_valid",
    *,
    exact_borders: bool = True,
) -> tuple[Tensor, Tensor]:
    """Cut every frame's box out of the videos and resize it, batched on the videos' device.

    The JWB-DH-V1 script does ``cv2.resize(frame[y1:y2, x1:x2], (w, h))``. For uint8 videos whose valid
    boxes are whole pixels inside the frame (the recipe's always are) and ``exact_borders=True``, the crops
    are exactly OpenCV's pixels (:func:`metrics.functional.resize.opencv_linear_crops`: OpenCV's fixed-point
    taps gathered per frame). Otherwise (float videos or boxes, ``exact_borders=False``) one batched
    ``roi_align`` takes a bilinear sample at INTER_LINEAR's source position (half-pixel centres, no
    antialiasing) per output pixel: OpenCV's filter up to float rounding (uint8 within one grey level).
    ``sampling_ratio=1``: one sample per output pixel is exactly that filter; roi_align's adaptive default
    (``ceil(box / size)`` samples per bin) would average several samples when shrinking, an area-like
    antialiasing the script does not apply. Boxes should lie inside the frame
    (the recipe's boxes always do); roi_align reads zeros beyond it.

    Args:
        videos: ``[B, T, 3, H, W]`` uint8 or float in [0, 1] (DESIGN s2).
        boxes: float ``[B, T, 4]`` ``(x1, y1, x2, y2)`` pixel boxes (end-exclusive), e.g. from
            :func:`boxes_from_keypoints`.
        valid: bool ``[B, T]``; invalid frames are zeroed and their boxes ignored.
        size: ``(h, w)`` for every crop, or ``"first_valid"``: the size of the first valid box of the video
            (jwbdh-v1). In a batch this needs every video that has a valid frame to share that size
            (always true for ``B = 1``); otherwise a ValueError points to :func:`region_videos` (one tensor
            per video at its own size) or a fixed size. A batch without any valid frame gives ``h = w = 0``.
        exact_borders: when a crop is enlarged, its outermost samples fall before ``x1`` / after
            ``x2 - 1``; roi_align would blend in the frame pixels beyond the box there, OpenCV resizing the
            cut-out crop repeats the crop's edge. True (default) reproduces OpenCV with three extra small
            roi_align calls on zero-width boxes; False keeps plain roi_align.

    Returns:
        ``(crops, valid)``: ``[B, T, 3, h, w]`` of the input dtype (uint8 rounded half to even) with zeros at
        invalid frames, and a copy of ``valid``.

    Raises:
        ValueError: bad video (see :func:`metrics.video.check_video`), boxes/valid of the wrong shape,
            dtype or device, a valid box that is empty or not finite, bad ``size``, differing first sizes.
    """
    videos = check_video(videos, "videos")
    boxes, valid = _check_boxes_valid(videos, boxes, valid)
    b, t, c, height, width = videos.shape
    _check_nonempty_boxes(boxes, valid)
    if isinstance(size, str):
        if size != "first_valid":
            raise ValueError(f'`size` must be "first_valid" or (h, w), got {size!r}')
        sizes = first_valid_sizes(boxes, valid)
        present = {tuple(s) for s in sizes.tolist() if s != [0, 0]}
        if len(present) > 1:
            per_video = ", ".join(f"video {i}: {tuple(s)}" for i, s in enumerate(sizes.tolist()))
            raise ValueError(
                'size="first_valid" needs one crop size per batch, but the first valid crops differ '
                f"(h, w) ({per_video}). Use region_videos(...) for one tensor per video at its own size "
                "(jwbdh-v1 parity), crop one video at a time, or pass a fixed size=(h, w)."
            )
        h, w = present.pop() if present else (0, 0)
    else:
        h, w = _check_size(size)
    if b * t == 0 or h == 0:
        return videos.new_zeros((b, t, c, h, w)), valid.clone()
    flat_valid = valid.reshape(b * t)
    if (
        videos.dtype == torch.uint8
        and exact_borders
        and _whole_pixel_boxes_inside(boxes, valid, (height, width))
    ):
        from metrics.functional.resize import opencv_linear_crops

        dummy_box = torch.tensor([0, 0, 1, 1], dtype=boxes.dtype, device=boxes.device)
        flat_boxes = torch.where(flat_valid[:, None], boxes.reshape(b * t, 4), dummy_box)
        out = opencv_linear_crops(videos.reshape(b * t, c, height, width), flat_boxes, (h, w))
        out = out * flat_valid[:, None, None, None].to(torch.uint8)
        return out.reshape(b, t, c, h, w), valid.clone()
    work = torch.float64 if videos.dtype == torch.float64 else torch.float32
    frames = videos.reshape(b * t, c, height, width).to(work)
    dummy = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=work, device=videos.device)
    rois = torch.where(flat_valid[:, None], boxes.reshape(b * t, 4).to(work), dummy)
    index = torch.arange(b * t, device=videos.device, dtype=work)[:, None]
    out = _roi_align_crops(frames, torch.cat([index, rois], 1), (h, w), exact_borders)
    out = out * flat_valid[:, None, None, None]
    if videos.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = out.to(videos.dtype)
    return out.reshape(b, t, c, h, w), valid.clone()


def compact_valid(x: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Move each video's valid frames to the front (order kept), zero the rest: ``(compacted, lengths)``.

    The script's region videos simply lack the frames without a (kept) box; this gives the same frame
    sequence as ``x[b, :lengths[b]]`` for any per-frame tensor ``x`` ``[B, T, ...]`` (crops, boxes,
    keypoints).
    Vectorised (a stable sort of the validity mask), no host synchronisation.

    Example:
        >>> import torch
        >>> x = torch.arange(4.0).view(1, 4)
        >>> compact_valid(x, torch.tensor([[False, True, False, True]]))
        (tensor([[1., 3., 0., 0.]]), tensor([2]))
    """
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.ndim != 2:
        raise ValueError(f"`valid` must be a bool [B, T] tensor, got {getattr(valid, 'shape', type(valid))}")
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[:2] != valid.shape:
        raise ValueError(
            f"`x` must be a [B, T, ...] tensor matching `valid` {tuple(valid.shape)}, got "
            f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
        )
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices  # valid (0) first
    lengths = valid.sum(1)
    index = order.view(*order.shape, *([1] * (x.ndim - 2))).expand_as(x)
    out = torch.gather(x, 1, index)
    keep = torch.arange(valid.shape[1], device=valid.device)[None, :] < lengths[:, None]
    return out * keep.view(*keep.shape, *([1] * (x.ndim - 2))).to(out.dtype), lengths


def _whole_pixel_boxes_inside(boxes: Tensor, valid: Tensor, frame_hw: Sequence[int]) -> bool:
    """True when every valid box has integer corners with ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``."""
    kept = boxes[valid]
    if kept.numel() == 0:
        return True
    h, w = frame_hw
    inside = (kept[:, :2] >= 0).all() & (kept[:, 2] <= w).all() & (kept[:, 3] <= h).all()
    return bool(inside & (kept == kept.round()).all())


def _region_videos_opencv(
    videos: Tensor, boxes: Tensor, valid: Tensor, sizes: Sequence[tuple[int, int]]
) -> list[Tensor]:
    """The JWB-DH-V1 script's crop loop: numpy slice + ``cv2.resize`` (INTER_LINEAR) per kept frame."""
    import cv2

    c = videos.shape[2]
    corners = boxes.to(torch.int64).tolist()
    kept_frames = [row.nonzero().flatten().tolist() for row in valid]
    out = []
    for i, (h, w) in enumerate(sizes):
        frames = []
        for t in kept_frames[i]:
            x1, y1, x2, y2 = corners[i][t]
            crop = np.ascontiguousarray(videos[i, t, :, y1:y2, x1:x2].detach().permute(1, 2, 0).numpy())
            if crop.shape[:2] != (h, w):
                crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
            frames.append(crop.reshape(h, w, c))  # OpenCV drops a singleton channel axis
        if not frames:
            out.append(videos.new_zeros((0, c, h, w)))
            continue
        out.append(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous())
    return out


def region_videos(
    videos: Tensor,
    boxes: Tensor,
    valid: Tensor,
    size: str | tuple[int, int] = "first_valid",
    *,
    exact_borders: bool = True,
    backend: str = "auto",
) -> list[Tensor]:
    """The region videos the JWB-DH-V1 script writes: per video, only the kept frames, all at one size.

    Returns a list of ``B`` tensors ``[T_b, 3, h_b, w_b]`` (input dtype): the frames with ``valid`` True in
    order, each crop resized to the size of the video's first kept crop (``size="first_valid"``) or to a
    fixed ``(h, w)``. A video without a kept frame gives ``[0, 3, 0, 0]`` (``"first_valid"``) or
    ``[0, 3, h, w]``. A video's result never depends on the other videos in the batch; videos sharing a
    size are cropped in one :func:`crop_regions` call.

    ``backend="torch"`` always uses :func:`crop_regions` (batched on the videos' device; OpenCV's exact
    pixels for uint8 videos with whole-pixel boxes, see there). ``"opencv"`` and ``"auto"`` (default) run
    the script's own loop, ``cv2.resize(frame[y1:y2, x1:x2], (w, h))`` per kept frame, for uint8 CPU videos
    whose valid boxes are whole pixels inside the frame (the jwbdh-v1 recipe's always are) with
    ``exact_borders=True`` when OpenCV is installed: the same pixels as the torch path, faster on a CPU.
    Anything else takes the torch path under ``"auto"``; ``"opencv"`` raises instead.

    Example:
        >>> import torch
        >>> videos = torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8)
        >>> boxes = torch.tensor([[[4.0, 4.0, 20.0, 12.0], [0.0, 0.0, 32.0, 16.0]]])
        >>> [v.shape for v in region_videos(videos, boxes, torch.ones(1, 2, dtype=torch.bool))]
        [torch.Size([2, 3, 8, 16])]
    """
    from metrics.functional.backend import resolve_backend

    videos = check_video(videos, "videos")
    boxes, valid = _check_boxes_valid(videos, boxes, valid)
    b, c = videos.shape[0], videos.shape[2]
    if isinstance(size, str):
        if size != "first_valid":
            raise ValueError(f'`size` must be "first_valid" or (h, w), got {size!r}')
        sizes = [tuple(s) for s in first_valid_sizes(boxes, valid).tolist()]
    else:
        sizes = [_check_size(size)] * b
    if resolve_backend(backend, videos) == "opencv":
        _check_nonempty_boxes(boxes, valid)
        usable = (
            videos.dtype == torch.uint8
            and videos.device.type == "cpu"
            and exact_borders
            and _whole_pixel_boxes_inside(boxes, valid, videos.shape[-2:])
        )
        if usable:
            return _region_videos_opencv(videos, boxes, valid, sizes)
        if backend == "opencv":
            raise ValueError(
                'backend="opencv" needs uint8 CPU videos, exact_borders=True and whole-pixel boxes inside '
                'the frame wherever `valid` is True; use backend="torch" for anything else'
            )
    lengths = valid.sum(1).tolist()
    result: list[Tensor | None] = [None] * b
    for hw in dict.fromkeys(sizes):
        members = [i for i in range(b) if sizes[i] == hw]
        if hw == (0, 0) or all(lengths[i] == 0 for i in members):
            for i in members:
                result[i] = videos.new_zeros((0, c, *hw))
            continue
        idx = torch.tensor(members, device=videos.device)
        crops, _ = crop_regions(
            videos.index_select(0, idx),
            boxes.index_select(0, idx),
            valid.index_select(0, idx),
            size=hw,
            exact_borders=exact_borders,
        )
        packed, _ = compact_valid(crops, valid.index_select(0, idx))
        for j, i in enumerate(members):
            result[i] = packed[j, : lengths[i]]
    return [r for r in result if r is not None]


# ========================================================================================= detectors
_FACE_HINT = 'pip install "jwbdh-callbacks[face]"'


class MTCNNFaceBoxes:
    """Face boxes per frame from MTCNN (facenet-pytorch, the P/R/O-Net weights inside its wheel).

    For videos without keypoints. Each frame's face is facenet-pytorch's detection (largest face by default).
    With ``recipe="face"`` (default) the MTCNN box plays the role of the keypoints' tight box: truncated to
    integers, clipped, then expanded, size-checked and area-filtered with the jwbdh-v1 face rules
    (:func:`refine_boxes`), so that the crops resemble the benchmark's face crops (MTCNN's box spans brows to
    chin like the 68 face landmarks, but it is not the same box: numbers are not jwbdh-v1 parity). With
    ``recipe=None`` the raw MTCNN boxes are returned (clipped to the frame, float), valid where a face was
    found.

    The network comes from the process-wide backbone cache (shared with identity CSIM), on the videos'
    device. facenet-pytorch's final NMS runs in numpy: one small host round trip per detection batch.

    Args:
        weights: ``"facenet-pytorch"`` (the wheel's files) or a directory with pnet.pt, rnet.pt, onet.pt.
        recipe: a region name / :class:`RegionRecipe` applied to the MTCNN boxes, or None.
        min_face_size, thresholds, factor, selection, batch_size: facenet-pytorch's detection settings.

    Raises:
        ImportError: facenet-pytorch is missing (install with ``pip install "jwbdh-callbacks[face]"``).

    Example:
        >>> import torch
        >>> faces = MTCNNFaceBoxes()  # doctest: +SKIP
        >>> boxes, valid = faces(torch.zeros(1, 2, 3, 128, 128, dtype=torch.uint8))  # doctest: +SKIP
        >>> valid.tolist()  # doctest: +SKIP
        [[False, False]]
    """

    def __init__(
        self,
        weights: str | os.PathLike = "facenet-pytorch",
        *,
        recipe: str | RegionRecipe | None = "face",
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        selection: str = "largest",
        batch_size: int = 32,
    ) -> None:
        try:
            import facenet_pytorch  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"MTCNNFaceBoxes needs facenet-pytorch (MTCNN face detector); install it with `{_FACE_HINT}`"
            ) from err
        self.recipe = None if recipe is None else get_region_recipe(recipe)
        self.weights = weights
        self.settings = dict(
            min_face_size=min_face_size,
            thresholds=tuple(thresholds),
            factor=factor,
            selection=selection,
            batch_size=batch_size,
        )

    def _detector(self, device: torch.device) -> Any:
        from metrics.backbones.facenet import mtcnn_ref

        return mtcnn_ref(self.weights).get(device)

    def raw_boxes(self, videos: Tensor) -> tuple[Tensor, Tensor]:
        """MTCNN's box per frame: float32 ``[B, T, 4]`` as detected (may pass the frame border), ``found``."""
        videos = check_video(videos, "videos")
        b, t, c, height, width = videos.shape
        frames = to_uint8(videos).reshape(b * t, c, height, width)
        if b * t == 0:
            return videos.new_zeros((b, t, 4), dtype=torch.float32), torch.zeros(
                (b, t), dtype=torch.bool, device=videos.device
            )
        boxes, found = self._detector(videos.device).locate(frames, **self.settings)
        return boxes.reshape(b, t, 4).float(), found.reshape(b, t)

    def refine(self, boxes: Tensor, found: Tensor, image_size: tuple[int, int]) -> RegionBoxes:
        """Apply this instance's recipe to :meth:`raw_boxes` output (see :class:`RegionBoxes`).

        The MTCNN box is the tight box: truncated to integers and clipped like the keypoints' min/max, then
        :func:`refine_boxes`. With ``recipe=None``: the raw boxes clipped to the frame (float), valid where a
        face was found and the clipped box is not empty; ``in_range == detected == valid``.
        """
        height, width = _check_image_size(image_size)
        if self.recipe is None:
            x1, y1, x2, y2 = boxes.unbind(-1)
            clipped = torch.stack(
                [x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)], -1
            )
            ok = found & (clipped[..., 2] > clipped[..., 0]) & (clipped[..., 3] > clipped[..., 1])
            area = ((clipped[..., 2] - clipped[..., 0]) * (clipped[..., 3] - clipped[..., 1])).round().long()
            return RegionBoxes(
                clipped * ok[..., None], ok, ok.clone(), area * ok, ok.clone(), torch.zeros_like(ok[:, 0])
            )
        b64 = boxes.to(torch.float64)
        tight = torch.stack(
            [
                _trunc_int(b64[..., 0]).clamp(min=0),
                _trunc_int(b64[..., 1]).clamp(min=0),
                _trunc_int(b64[..., 2]).clamp(max=width),
                _trunc_int(b64[..., 3]).clamp(max=height),
            ],
            -1,
        )
        return refine_boxes(tight, found, (height, width), self.recipe)

    def region_boxes(self, videos: Tensor) -> RegionBoxes:
        """Detection and recipe in one call: ``refine(*raw_boxes(videos), (H, W))``."""
        boxes, found = self.raw_boxes(videos)
        return self.refine(boxes, found, tuple(videos.shape[-2:]))

    def __call__(self, videos: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T, 3, H, W]`` -> ``(boxes [B, T, 4] float32, valid [B, T] bool)``, boxes 0 if invalid."""
        res = self.region_boxes(videos)
        return res.boxes * res.valid[..., None], res.valid


# ------------------------------------------------------------------------------------- DWPose (ONNX)
#: DWPose ``dw-ll_ucoco_384.onnx`` input ``(width, height)``; the wrapper reads the real size from the model.
DWPOSE_INPUT_SIZE = (288, 384)
#: YOLOX-L input ``(height, width)`` as DWPose feeds it.
YOLOX_INPUT_SIZE = (640, 640)
_POSE_MEAN = np.array([123.675, 116.28, 103.53])
_POSE_STD = np.array([58.395, 57.12, 57.375])
_ORT_HINT = 'pip install "jwbdh-callbacks[pose]" (CPU onnxruntime) or onnxruntime-gpu (CUDA)'
_CV2_HINT = 'pip install "jwbdh-callbacks[opencv]"'


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as err:
        raise ImportError(f"DWPoseONNX pre-processing needs OpenCV: {_CV2_HINT}") from err
    return cv2


def yolox_letterbox(
    image: np.ndarray, input_size: tuple[int, int] = YOLOX_INPUT_SIZE
) -> tuple[np.ndarray, float]:
    """YOLOX input as DWPose builds it: ``([3, h, w] float32, ratio)``.

    The image (``[H, W, 3]`` uint8, BGR as DWPose reads frames) is scaled by ``r = min(h / H, w / W)`` to
    ``(int(W r), int(H r))`` with ``cv2.resize`` INTER_LINEAR, pasted at the top-left corner of a canvas
    filled with 114, and laid out channels-first as float32 0-255 (no normalisation).
    """
    cv2 = _import_cv2()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"`image` must be a uint8 [H, W, 3] array, got {getattr(image, 'shape', type(image))}"
        )
    h, w = input_size
    ratio = min(h / image.shape[0], w / image.shape[1])
    new_w, new_h = int(image.shape[1] * ratio), int(image.shape[0] * ratio)
    canvas = np.full((h, w, 3), 114, dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), ratio


def yolox_decode(
    raw: np.ndarray, input_size: tuple[int, int] = YOLOX_INPUT_SIZE, strides: Sequence[int] = (8, 16, 32)
) -> tuple[np.ndarray, np.ndarray]:
    """Decode YOLOX head output ``[A, 5 + C]`` into ``(boxes [A, 4] xyxy in input pixels, scores [A, C])``.

    Anchors are the cells of the stride-8, 16 and 32 grids, row-major per level; centre
    ``(raw_xy + cell) * stride``, size ``exp(raw_wh) * stride``; class scores are objectness x class
    probability (the exported model already applies the sigmoids).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 3 and raw.shape[0] == 1:
        raw = raw[0]
    cells, steps = [], []
    for stride in strides:
        gh, gw = input_size[0] // stride, input_size[1] // stride
        xv, yv = np.meshgrid(np.arange(gw), np.arange(gh))
        cells.append(np.stack([xv, yv], -1).reshape(-1, 2))
        steps.append(np.full((gh * gw, 1), stride))
    grid, step = np.concatenate(cells), np.concatenate(steps)
    if raw.ndim != 2 or raw.shape[0] != grid.shape[0] or raw.shape[1] < 6:
        raise ValueError(
            f"YOLOX output must be [{grid.shape[0]}, 5 + classes] for input {input_size}, got {raw.shape}"
        )
    centre = (raw[:, :2] + grid) * step
    size = np.exp(raw[:, 2:4]) * step
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    return boxes, raw[:, 4:5] * raw[:, 5:]


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS as DWPose's numpy version: areas with the ``+1`` pixel convention, drop IoU > threshold.

    Returns kept indices, highest score first.
    """
    boxes, scores = np.asarray(boxes, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return keep


def yolox_person_boxes(
    raw: np.ndarray,
    ratio: float,
    *,
    input_size: tuple[int, int] = YOLOX_INPUT_SIZE,
    candidate_threshold: float = 0.1,
    nms_threshold: float = 0.45,
    score_threshold: float = 0.3,
) -> np.ndarray:
    """Person boxes ``[n, 4]`` (xyxy, original image pixels), best first, as DWPose's ``inference_detector``.

    Candidates of class 0 with score > 0.1, NMS at IoU 0.45, then score > 0.3. (DWPose runs a class-aware
    NMS over all 80 classes and keeps class 0 afterwards; the class-0 result is the same.)
    """
    boxes, scores = yolox_decode(raw, input_size)
    boxes = boxes / ratio
    person = scores[:, 0]
    cand = person > candidate_threshold
    if not cand.any():
        return np.zeros((0, 4))
    boxes, person = boxes[cand], person[cand]
    keep = nms(boxes, person, nms_threshold)
    boxes, person = boxes[keep], person[keep]
    return boxes[person > score_threshold]


def bbox_to_center_scale(box: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """``(x1, y1, x2, y2)`` -> ``(centre (x, y), scale (w, h) * padding)``, DWPose's ``bbox_xyxy2cs``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) * 0.5, (y1 + y2) * 0.5]), np.array([x2 - x1, y2 - y1]) * padding


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow ``(w, h)`` to the model's ``w / h``: ``(w, w / r)`` if ``w > h r`` else ``(h r, h)``."""
    w, h = float(scale[0]), float(scale[1])
    return np.array([w, w / aspect_ratio]) if w > h * aspect_ratio else np.array([h * aspect_ratio, h])


def affine_matrix(center: np.ndarray, scale: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """2x3 float64 matrix mapping the box ``center +- scale / 2`` onto an ``output_size = (w, h)`` image.

    Built as DWPose's ``get_warp_matrix`` (rotation 0): three float32 point pairs -- the centre, the point
    ``scale_w / 2`` above it and the point left of that -- solved exactly (``cv2.getAffineTransform``
    solves the same 6x6 system). Only ``scale[0]`` sets the zoom, ``output_w / scale_w``; the height follows
    from the fixed aspect ratio.
    """
    out_w, out_h = output_size
    src_w = float(scale[0])
    c = np.asarray(center, dtype=np.float64)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = c
    src[1] = c + np.array([0.0, -0.5 * src_w])
    dst[0] = [out_w * 0.5, out_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, -0.5 * out_w])
    for pts in (src, dst):  # third point: the first-minus-second direction turned 90 degrees, from the second
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], dtype=np.float32)
    a = np.zeros((6, 6))
    rhs = np.zeros(6)
    for i in range(3):
        x, y = float(src[i, 0]), float(src[i, 1])
        a[2 * i, :3] = [x, y, 1.0]
        a[2 * i + 1, 3:] = [x, y, 1.0]
        rhs[2 * i], rhs[2 * i + 1] = float(dst[i, 0]), float(dst[i, 1])
    return np.linalg.solve(a, rhs).reshape(2, 3)


def simcc_decode(
    simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC argmax decoding as DWPose: ``(locations [N, K, 2] in model-input pixels, scores [N, K])``.

    Location = ``(argmax_x, argmax_y) / split_ratio`` (first maximum on ties); score = the smaller of the
    two maxima; a keypoint whose score is <= 0 gets location ``-1 / split_ratio`` on both axes.
    """
    sx, sy = np.asarray(simcc_x), np.asarray(simcc_y)
    if sx.ndim == 2:
        sx, sy = sx[None], sy[None]
    if sx.ndim != 3 or sy.ndim != 3 or sx.shape[:2] != sy.shape[:2]:
        raise ValueError(f"simcc_x / simcc_y must be [N, K, Wx] / [N, K, Wy], got {sx.shape} and {sy.shape}")
    n, k = sx.shape[:2]
    fx, fy = sx.reshape(n * k, -1), sy.reshape(n * k, -1)
    locs = np.stack([fx.argmax(1), fy.argmax(1)], -1).astype(np.float32)
    vals = np.minimum(fx.max(1), fy.max(1))
    locs[vals <= 0.0] = -1
    return locs.reshape(n, k, 2) / split_ratio, vals.reshape(n, k)


def keypoints_to_image(
    locations: np.ndarray, input_size: tuple[int, int], center: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Model-input pixels -> image pixels: ``loc / input_size * scale + center - scale / 2`` (DWPose)."""
    size = np.asarray(input_size, dtype=np.float64)
    return np.asarray(locations) / size * scale + center - scale / 2


class DWPoseONNX:
    """DWPose whole-body keypoints from the user's ONNX files (``yolox_l.onnx``, ``dw-ll_ucoco_384.onnx``).

    Reproduces the pipeline behind JWB-DH-V1's keypoints (DWPose's ``inference_detector`` +
    ``inference_pose``), top-down, one frame at a time on an onnxruntime session:

    1. RGB frame -> BGR uint8 (DWPose receives ``cv2.imread`` frames).
    2. YOLOX-L person boxes (:func:`yolox_letterbox` 640x640, :func:`yolox_person_boxes`); the FIRST
       (highest-scoring) person is used; with no person, the whole frame is the box (DWPose's fallback).
    3. Box -> centre and 1.25x scale (:func:`bbox_to_center_scale`), widened to the model's aspect ratio
       (:func:`fix_aspect_ratio`), warped to the model input (288 x 384, read from the model) with
       :func:`affine_matrix` and ``cv2.warpAffine`` INTER_LINEAR (black outside).
    4. Normalised as DWPose does: ``(pixel - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375]`` on the
       BGR pixels (the ImageNet RGB constants applied in BGR order: DWPose's quirk, kept so that keypoints
       match DWPose's).
    5. SimCC outputs -> :func:`simcc_decode` (split ratio 2) -> :func:`keypoints_to_image`.

    Output: float32 ``[B, T, 133, 3]`` ``(x, y, score)`` in COCO-WholeBody order, on the input's device;
    the format :func:`boxes_from_keypoints` expects. Scores are DWPose's SimCC maxima (not probabilities).

    Args:
        det_model: path to YOLOX-L ``yolox_l.onnx``.
        pose_model: path to DWPose ``dw-ll_ucoco_384.onnx``.
        providers: onnxruntime execution providers (default: CUDA if available, else CPU).

    Raises:
        FileNotFoundError: a model file is missing (checked before anything is imported).
        ImportError: onnxruntime or OpenCV is not installed.
    """

    def __init__(
        self,
        det_model: str | os.PathLike,
        pose_model: str | os.PathLike,
        *,
        providers: Sequence[str] | None = None,
    ) -> None:
        for role, path, name in (
            ("person detector", det_model, "yolox_l.onnx"),
            ("pose", pose_model, "dw-ll_ucoco_384.onnx"),
        ):
            if not os.path.isfile(os.fspath(path)):
                raise FileNotFoundError(
                    f"DWPose {role} model not found: {os.fspath(path)!r}. DWPose's ONNX files are not "
                    f"bundled; download {name} from the DWPose project (e.g. huggingface.co/yzd-v/DWPose) "
                    "and pass its path"
                )
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"DWPoseONNX needs onnxruntime: {_ORT_HINT}") from err
        _import_cv2()
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        det = ort.InferenceSession(os.fspath(det_model), providers=list(providers))
        pose = ort.InferenceSession(os.fspath(pose_model), providers=list(providers))
        self._init_sessions(det, pose)

    @classmethod
    def from_sessions(cls, det_session: Any, pose_session: Any) -> DWPoseONNX:
        """Wrap built sessions (anything with onnxruntime's ``get_inputs()`` / ``run()`` interface)."""
        _import_cv2()
        self = cls.__new__(cls)
        self._init_sessions(det_session, pose_session)
        return self

    def _init_sessions(self, det: Any, pose: Any) -> None:
        self.det_session, self.pose_session = det, pose
        shape = list(pose.get_inputs()[0].shape)
        h, w = shape[2], shape[3]
        self.input_size = (int(w), int(h)) if isinstance(h, int) and isinstance(w, int) else DWPOSE_INPUT_SIZE

    def person_boxes(self, image_bgr: np.ndarray) -> np.ndarray:
        """YOLOX person boxes ``[n, 4]`` of one BGR uint8 image, best first."""
        x, ratio = yolox_letterbox(image_bgr)
        out = self.det_session.run(None, {self.det_session.get_inputs()[0].name: x[None]})
        return yolox_person_boxes(out[0], ratio)

    def pose(self, image_bgr: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """133 keypoints ``[133, 2]`` and scores ``[133]`` of the person in ``box`` (xyxy) of a BGR image."""
        cv2 = _import_cv2()
        w, h = self.input_size
        center, scale = bbox_to_center_scale(np.asarray(box, dtype=np.float64), padding=1.25)
        scale = fix_aspect_ratio(scale, w / h)
        matrix = affine_matrix(center, scale, (w, h))
        warped = cv2.warpAffine(image_bgr, matrix, (int(w), int(h)), flags=cv2.INTER_LINEAR)
        x = (warped - _POSE_MEAN) / _POSE_STD
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
        simcc_x, simcc_y = self.pose_session.run(None, {self.pose_session.get_inputs()[0].name: x})[:2]
        locs, scores = simcc_decode(simcc_x, simcc_y, 2.0)
        return keypoints_to_image(locs[0], (w, h), center, scale), scores[0]

    def frame_keypoints(self, image_rgb: np.ndarray) -> np.ndarray:
        """float32 ``[133, 3]`` ``(x, y, score)`` of the first person in one RGB uint8 ``[H, W, 3]`` image."""
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        boxes = self.person_boxes(bgr)
        box = boxes[0] if len(boxes) else np.array([0.0, 0.0, bgr.shape[1], bgr.shape[0]])
        kp, scores = self.pose(bgr, box)
        return np.concatenate([kp, scores[:, None]], 1).astype(np.float32)

    def __call__(self, videos: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` uint8 or float [0, 1] videos -> float32 ``[B, T, 133, 3]`` on their device."""
        videos = check_video(videos, "videos")
        b, t = videos.shape[:2]
        frames = to_uint8(videos).permute(0, 1, 3, 4, 2).reshape(b * t, *videos.shape[3:], 3).cpu().numpy()
        out = (
            np.stack([self.frame_keypoints(f) for f in frames]) if b * t else np.zeros((0, NUM_KEYPOINTS, 3))
        )
        return torch.from_numpy(out.astype(np.float32)).reshape(b, t, NUM_KEYPOINTS, 3).to(videos.device)
