"""DWPose whole-body keypoints through onnxruntime: raw RGB video -> COCO-WholeBody ``[B, T, 133, 3]``.

:class:`DWPoseONNX` reproduces the keypoint pipeline behind JWB-DH-V1 (DWPose's ``inference_detector`` +
``inference_pose``) on DWPose's two published ONNX files, which the weights registry knows as
``dwpose-yolox-l`` (``yolox_l.onnx``, the YOLOX-L person detector) and ``dwpose-ll-ucoco-384``
(``dw-ll_ucoco_384.onnx``, the RTMPose-l whole-body model distilled by DWPose), both from
huggingface.co/yzd-v/DWPose and checked against their sha256 (:mod:`metrics.backbones.weights`). The
pre- and post-processing is plain numpy/OpenCV and testable without the models: :func:`yolox_letterbox`,
:func:`yolox_decode`, :func:`nms`, :func:`yolox_person_boxes`, :func:`bbox_to_center_scale`,
:func:`fix_aspect_ratio`, :func:`affine_matrix`, :func:`simcc_decode`, :func:`keypoints_to_image`.

The output feeds :func:`metrics.regions.boxes_from_keypoints`.

Example:
    >>> import torch
    >>> from metrics.pose.dwpose import DWPoseONNX
    >>> pose = DWPoseONNX()  # doctest: +SKIP
    >>> pose(torch.zeros(1, 2, 3, 256, 256, dtype=torch.uint8)).shape  # doctest: +SKIP
    torch.Size([1, 2, 133, 3])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metrics.regions.recipes import NUM_KEYPOINTS
from metrics.video import check_video, to_uint8

__all__ = [
    "DWPOSE_INPUT_SIZE",
    "DWPOSE_WEIGHTS",
    "YOLOX_INPUT_SIZE",
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
]

#: Registry names of the two ONNX files :class:`DWPoseONNX` loads by default: (person detector, pose model).
DWPOSE_WEIGHTS = ("dwpose-yolox-l", "dwpose-ll-ucoco-384")
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


def _model_file(spec: str | os.PathLike, role: str, filename: str, allow_download: bool | None) -> Path:
    """A registry name resolved through the weights registry, or an existing path, else a clear error."""
    from metrics.backbones.weights import REGISTRY, resolve_weights

    if not isinstance(spec, str | os.PathLike):
        raise ValueError(
            f"DWPose {role} model must be a registry name or a path to {filename}, got {type(spec).__name__}"
        )
    name = os.fspath(spec)
    if name in REGISTRY:
        return resolve_weights(name, allow_download=allow_download)
    if not os.path.isfile(name):
        raise FileNotFoundError(
            f"DWPose {role} model not found: {name!r}. Pass a path to {filename} or the registry name "
            f"{DWPOSE_WEIGHTS[0] if role == 'person detector' else DWPOSE_WEIGHTS[1]!r} (downloaded from "
            "huggingface.co/yzd-v/DWPose and checked against its sha256; `jwbdh-weights download "
            f"{' '.join(DWPOSE_WEIGHTS)}` fetches both)"
        )
    return Path(name)


class DWPoseONNX:
    """DWPose whole-body keypoints from DWPose's ONNX files (``yolox_l.onnx``, ``dw-ll_ucoco_384.onnx``).

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
    the format :func:`~metrics.regions.boxes_from_keypoints` expects. Scores are DWPose's SimCC maxima (not
    probabilities).

    Args:
        det_model: registry name (default ``"dwpose-yolox-l"``, DWPose's ``yolox_l.onnx``) or a path to a
            YOLOX-L ONNX file.
        pose_model: registry name (default ``"dwpose-ll-ucoco-384"``, ``dw-ll_ucoco_384.onnx``) or a path.
        providers: onnxruntime execution providers (default: CUDA if available, else CPU).
        allow_download: for registry names, None = download into the cache unless ``JWBDH_OFFLINE`` /
            ``HF_HUB_OFFLINE`` is set (see :func:`metrics.backbones.weights.resolve_weights`).

    Raises:
        WeightsUnavailableError: a registry file is neither on disk nor downloadable; the message names the
            ``jwbdh-weights download ...`` command (checked before anything is imported).
        WeightsChecksumError: a registry file does not match its sha256.
        FileNotFoundError: a given path does not exist.
        ImportError: onnxruntime or OpenCV is not installed.
    """

    def __init__(
        self,
        det_model: str | os.PathLike = DWPOSE_WEIGHTS[0],
        pose_model: str | os.PathLike = DWPOSE_WEIGHTS[1],
        *,
        providers: Sequence[str] | None = None,
        allow_download: bool | None = None,
    ) -> None:
        det_path = _model_file(det_model, "person detector", "yolox_l.onnx", allow_download)
        pose_path = _model_file(pose_model, "pose", "dw-ll_ucoco_384.onnx", allow_download)
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(f"DWPoseONNX needs onnxruntime: {_ORT_HINT}") from err
        _import_cv2()
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        det = ort.InferenceSession(os.fspath(det_path), providers=list(providers))
        pose = ort.InferenceSession(os.fspath(pose_path), providers=list(providers))
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
