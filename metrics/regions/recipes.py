r"""Region recipes: COCO-WholeBody keypoints -> one box per frame and region (the JWB-DH-V1 recipe).

JWB-DH-V1 scores every metric on three regions: the whole frame, the face and the hands
(spec/jwbdh_v1.md s1-s2). Its script ``process_video_hands_videos.py`` takes DWPose's 133 COCO-WholeBody
keypoints of the first detected person and turns them into one box per frame and region; frames whose
box is missing or fails an area filter are left out of the region video. :func:`boxes_from_keypoints` /
:func:`region_boxes` reproduce that, batched and vectorised in torch on the keypoints' device:
``[B, T, 133, 3]`` keypoints ``(x, y, score)`` -> ``[B, T, 4]`` boxes ``(x1, y1, x2, y2)`` in pixels
(integer valued, end-exclusive: the box covers pixel rows ``y1 .. y2 - 1``) and a ``[B, T]`` validity
mask, with the recipe of a named region from :data:`REGION_RECIPES` (jwbdh-v1: ``whole_body``, ``face``,
``hand``; extra: ``left_hand``, ``right_hand``, ``legs`` and index-corrected ``face_coco`` /
``hand_coco``). :func:`refine_boxes` applies steps 3-6 to any tight box (e.g. MTCNN's, see
:mod:`metrics.regions.faces`).

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "JWBDH_V1_REGIONS",
    "NUM_KEYPOINTS",
    "REGION_RECIPES",
    "RegionBoxes",
    "RegionRecipe",
    "boxes_from_keypoints",
    "get_region_recipe",
    "refine_boxes",
    "region_boxes",
    "register_region",
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
    idx = recipe.indices
    if idx == tuple(
        range(idx[0], idx[0] + len(idx))
    ):  # a range (every built-in recipe): no host->device copy
        pts = keypoints.narrow(2, idx[0], len(idx))  # [B, T, n, 3]
    else:
        pts = keypoints.index_select(2, torch.tensor(idx, device=keypoints.device))
    # The threshold is compared in the keypoints' own precision, as NumPy compares DWPose's float32 scores
    # with the Python float 0.3 (a float32 score of exactly float32(0.3) is NOT kept). NaN scores compare
    # False; non-finite coordinates would crash the script (int(nan)): never kept here.
    kept = pts[..., 2] > recipe.score_threshold
    x, y = pts[..., 0].to(torch.float64), pts[..., 1].to(torch.float64)
    kept &= torch.isfinite(x) & torch.isfinite(y)
    any_kept = kept.any(-1)
    inf = torch.full((), float("inf"), dtype=torch.float64, device=keypoints.device)  # filled on the device
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
