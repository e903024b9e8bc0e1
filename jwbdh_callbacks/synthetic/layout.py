"""COCO-WholeBody keypoint layout (0-based indices of the 133 points), the keypoint sets of the regions that
the region-restricted tools know (:data:`REGION_KEYPOINTS`) and the camera framings (:data:`FRAMINGS`).

Example:
    >>> len(REGION_KEYPOINTS["face"]), NUM_KEYPOINTS, FRAMINGS["upper"]
    (68, 133, (28.0, 8.0, 72.0, 90.0))
"""

from __future__ import annotations

NUM_KEYPOINTS = 133
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 1, 2, 3, 4
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 5, 6, 7, 8, 9, 10
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 11, 12, 13, 14, 15, 16
FEET_START, FACE_START, LEFT_HAND_START, RIGHT_HAND_START = 17, 23, 91, 112

#: Keypoint indices of the regions that the region-restricted degradations and :func:`region_boxes` know.
REGION_KEYPOINTS: dict[str, tuple[int, ...]] = {
    "face": tuple(range(23, 91)),
    "hands": tuple(range(91, 133)),
    "left_hand": tuple(range(91, 112)),
    "right_hand": tuple(range(112, 133)),
    "body": tuple(range(0, 23)),
    "whole_body": tuple(range(0, 133)),
}

#: Camera framings: the visible window of the canonical 128x160 figure canvas (x0, y0, width, height).
FRAMINGS: dict[str, tuple[float, float, float, float]] = {
    "full": (0.0, 0.0, 128.0, 160.0),
    "upper": (28.0, 8.0, 72.0, 90.0),
}
