r"""Face identity networks from facenet-pytorch: the MTCNN detector and the InceptionResnetV1 embedder.

Identity CSIM (spec/weights.md rows 9a/9b, spec/jwbdh_v1.md s3) compares the faces of two frames as
``cos(f(crop(gen)), f(crop(ref)))``, where ``crop`` is facenet-pytorch's MTCNN face crop and ``f`` the
512-d L2-normalised FaceNet embedding:

* :class:`MTCNNDetector` -- MTCNN P-, R- and O-Nets. By default their weights are the three files that ship
  inside the facenet-pytorch wheel (``facenet_pytorch/data/{pnet,rnet,onet}.pt``), loaded strictly.
  Detection is facenet-pytorch's own ``detect_face`` run on whole batches of equal-size frames; the face
  selection (largest box) and the crop (box truncated to integers, clipped, resized to ``image_size``)
  reproduce ``facenet_pytorch.MTCNN.forward`` with the resize of the input type it was given:
  ``crop_resize="pil"`` (PIL images: antialiased bilinear), ``"opencv"`` (numpy arrays: ``cv2.INTER_AREA``)
  or ``"torch"`` (tensors: ``F.interpolate(mode="area")`` truncated to uint8). Output crops are
  standardised as facenet-pytorch's ``fixed_image_standardization``: :math:`(x - 127.5) / 128`.
* :class:`FaceNetEmbedder` -- ``InceptionResnetV1(classify=False)``, loaded strictly from the VGGFace2
  checkpoint (registry ``facenet_vggface2``), a local path, or seeded random init (``weights=None``).

facenet-pytorch is an optional dependency (``pip install "jwbdh-callbacks[face]"``), imported only when one
of these networks is built. Its ``detect_face`` returns boxes as numpy arrays and runs its final
non-maximum suppression in numpy, so each detection batch makes one device->host round trip of the box
coordinates (a few numbers per frame); everything else (pyramid, networks, crops, resizes) stays on the
tensor's device.

Example:
    >>> import torch
    >>> detector = MTCNNDetector()  # the wheel's weights  # doctest: +SKIP
    >>> faces, found = detector(torch.zeros(2, 3, 128, 128, dtype=torch.uint8))  # doctest: +SKIP
    >>> found.tolist()  # doctest: +SKIP
    [False, False]
    >>> FaceNetEmbedder(weights=None).eval()(torch.zeros(1, 3, 96, 96)).shape  # doctest: +SKIP
    torch.Size([1, 512])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import (
    check_choice,
    check_int,
    check_interval,
    check_positive_int,
    check_positive_number,
)
from metrics.backbones.cache import BackboneRef
from metrics.backbones.inception import calibrate_batchnorm
from metrics.backbones.weights import load_checkpoint, torch_load
from metrics.functional.resize import resize_opencv_area, resize_pil_bilinear

__all__ = [
    "CROP_RESIZE_MODES",
    "EMBEDDING_DIM",
    "MTCNN_WHEEL_WEIGHTS",
    "FaceNetEmbedder",
    "MTCNNDetector",
    "facenet_ref",
    "import_facenet_pytorch",
    "load_facenet_state_dict",
    "mtcnn_ref",
    "mtcnn_weight_files",
]

#: ``weights`` value of :class:`MTCNNDetector` meaning "the P/R/O-Net files inside the facenet-pytorch wheel".
MTCNN_WHEEL_WEIGHTS = "facenet-pytorch"
#: Dimension of the FaceNet embedding.
EMBEDDING_DIM = 512
#: Face-crop resizes, named after the facenet-pytorch input type whose crop they reproduce.
CROP_RESIZE_MODES = ("pil", "opencv", "torch")
_SELECTIONS = ("largest", "probability")
_MTCNN_NETS = ("pnet", "rnet", "onet")
_INSTALL_HINT = 'pip install "jwbdh-callbacks[face]"'


def import_facenet_pytorch() -> ModuleType:
    """Import facenet-pytorch, or raise an ImportError that says how to install it."""
    try:
        import facenet_pytorch
    except ImportError as err:
        raise ImportError(
            "identity CSIM needs facenet-pytorch (MTCNN face detector and FaceNet InceptionResnetV1); "
            f"install it with `{_INSTALL_HINT}`"
        ) from err
    return facenet_pytorch


# ------------------------------------------------------------------------------------------ embedder
def load_facenet_state_dict(net: nn.Module, state: dict[str, Tensor]) -> int | None:
    """Load a FaceNet checkpoint into an ``InceptionResnetV1(classify=False)`` strictly.

    The published VGGFace2 file also holds the training classifier, ``logits.weight`` ``[8631, 512]`` and
    ``logits.bias`` ``[8631]``, which the embedding never uses. They are not skipped silently: both must be
    present together with consistent shapes, a ``logits`` layer of that size is attached so that the whole
    file loads with ``strict=True`` (every other key and shape must match exactly), and the layer is then
    removed. A checkpoint without ``logits.*`` keys (saved from a ``classify=False`` model) loads strictly
    as is.

    Returns:
        the number of classifier classes found in the checkpoint (8631 for VGGFace2), or None.

    Raises:
        ValueError: inconsistent ``logits.*`` keys; RuntimeError (from ``load_state_dict``): missing,
            unexpected or mis-shaped keys.
    """
    logit_keys = sorted(k for k in state if k.startswith("logits."))
    num_classes = None
    if logit_keys:
        if logit_keys != ["logits.bias", "logits.weight"]:
            raise ValueError(
                f"FaceNet checkpoint has classifier keys {logit_keys}; expected exactly "
                "['logits.bias', 'logits.weight']"
            )
        weight, bias = state["logits.weight"], state["logits.bias"]
        if weight.ndim != 2 or weight.shape[1] != EMBEDDING_DIM or tuple(bias.shape) != (weight.shape[0],):
            raise ValueError(
                f"FaceNet checkpoint classifier has logits.weight {tuple(weight.shape)} and logits.bias "
                f"{tuple(bias.shape)}; expected [num_classes, {EMBEDDING_DIM}] and [num_classes] "
                "(VGGFace2: 8631 classes)"
            )
        num_classes = int(weight.shape[0])
        net.logits = nn.Linear(EMBEDDING_DIM, num_classes)
    try:
        net.load_state_dict(state, strict=True)
    finally:
        if num_classes is not None:
            del net.logits  # classify=False never uses it; 17 MB less per cached instance
    return num_classes


class FaceNetEmbedder(nn.Module):
    """FaceNet InceptionResnetV1 embeddings: standardised faces -> 512-d L2-normalised vectors.

    Input: float ``[N, 3, S, S]`` face crops standardised as ``(x - 127.5) / 128`` (what
    :class:`MTCNNDetector` returns; VGGFace2 was trained at ``S = 160``; any ``S >= 75`` runs). Output:
    float32 ``[N, 512]`` with unit L2 norm (facenet-pytorch's ``classify=False`` forward).

    Args:
        weights: registry name (``"facenet_vggface2"``), checkpoint path, or None for seeded random init.
            Checkpoints load strictly (see :func:`load_facenet_state_dict` for the ``logits.*`` keys).
            A random network's BatchNorm statistics are calibrated on one seeded batch so that its
            embeddings are not all parallel (uncalibrated, every input gives cosine ~0.999 to every other).

    Attributes:
        num_pretrain_classes: classifier size found in the checkpoint (8631 for VGGFace2), else None.

    Example:
        >>> import torch
        >>> net = FaceNetEmbedder(weights=None).eval()  # doctest: +SKIP
        >>> net(torch.zeros(2, 3, 96, 96)).norm(dim=1)  # doctest: +SKIP
        tensor([1.0000, 1.0000])
    """

    def __init__(self, weights: str | os.PathLike | None = "facenet_vggface2") -> None:
        super().__init__()
        import_facenet_pytorch()
        from facenet_pytorch.models.inception_resnet_v1 import InceptionResnetV1

        net = InceptionResnetV1(pretrained=None, classify=False)
        self.num_pretrain_classes: int | None = None
        if weights is not None:
            self.num_pretrain_classes = load_facenet_state_dict(net, load_checkpoint(weights))
        else:
            generator = torch.Generator().manual_seed(0)
            dropout_p, net.dropout.p = net.dropout.p, 0.0  # train-mode dropout would skew last_bn's stats
            calibrate_batchnorm(net, torch.rand(4, 3, 96, 96, generator=generator) * 2 - 1)
            net.dropout.p = dropout_p
        self.net = net
        self.eval()  # a frozen feature extractor (the shared cache also puts it in eval mode)

    def forward(self, faces: Tensor) -> Tensor:
        """``[N, 3, S, S]`` standardised faces -> float32 ``[N, 512]`` unit vectors."""
        if not isinstance(faces, Tensor) or faces.ndim != 4 or faces.shape[1] != 3:
            got = f"shape {tuple(faces.shape)}" if isinstance(faces, Tensor) else type(faces).__name__
            raise ValueError(f"`faces` must be a float [N, 3, S, S] tensor, got {got}")
        if faces.shape[0] == 0:
            return faces.new_zeros((0, EMBEDDING_DIM), dtype=torch.float32)
        return self.net(faces.to(next(self.net.parameters()).dtype)).float()


# ------------------------------------------------------------------------------------------ detector
def mtcnn_weight_files(weights: str | os.PathLike = MTCNN_WHEEL_WEIGHTS) -> dict[str, Path]:
    """Paths of ``pnet.pt``, ``rnet.pt`` and ``onet.pt``: in the facenet-pytorch wheel, or in a directory.

    Raises:
        FileNotFoundError: a file is missing.
    """
    if os.fspath(weights) == MTCNN_WHEEL_WEIGHTS:
        folder = Path(import_facenet_pytorch().__file__).parent / "data"
    else:
        folder = Path(weights).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"MTCNN `weights` must be {MTCNN_WHEEL_WEIGHTS!r} (the files inside the facenet-pytorch "
                f"wheel), a directory with pnet.pt, rnet.pt and onet.pt, or None; got {os.fspath(weights)!r}"
            )
    files = {name: folder / f"{name}.pt" for name in _MTCNN_NETS}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"MTCNN weight file(s) not found: {', '.join(missing)}")
    return files


def _check_detection_settings(
    min_face_size: float, thresholds: Sequence[float], factor: float, selection: str
) -> None:
    check_positive_number("min_face_size", min_face_size, unit="pixels")
    if (
        not isinstance(thresholds, Sequence)
        or len(thresholds) != 3
        or not all(isinstance(t, int | float) and 0.0 <= t <= 1.0 for t in thresholds)
    ):
        raise ValueError(f"`thresholds` must be three probabilities (P-, R-, O-Net), got {thresholds!r}")
    check_interval("factor", factor, 0, 1, low_closed=False, high_closed=False, why="(pyramid scale step)")
    check_choice("selection", selection, _SELECTIONS)


def _check_crop_settings(image_size: int, margin: int, crop_resize: str) -> None:
    check_positive_int("image_size", image_size)
    check_int("margin", margin, minimum=0, maximum=image_size - 1, why="(below `image_size`)")
    check_choice("crop_resize", crop_resize, CROP_RESIZE_MODES)


def _check_uint8_frames(frames: object) -> Tensor:
    if (
        not isinstance(frames, Tensor)
        or frames.ndim != 4
        or frames.shape[1] != 3
        or frames.dtype != torch.uint8
    ):
        got = f"shape {tuple(frames.shape)} dtype {frames.dtype}" if isinstance(frames, Tensor) else frames
        raise ValueError(f"`frames` must be uint8 RGB [N, 3, H, W], got {got}")
    return frames


class MTCNNDetector(nn.Module):
    """MTCNN face detection and face crops exactly as ``facenet_pytorch.MTCNN`` produces them, batched.

    Input: uint8 RGB frames ``[N, 3, H, W]`` (one size per call; MTCNN batches equal-size images). Output of
    ``forward``: ``(faces, found)``: float32 ``[N, 3, image_size, image_size]`` crops standardised as
    ``(x - 127.5) / 128`` (zeros where no face was found) and a bool ``[N]``.

    Detection settings are call arguments, not attributes, so one cached network serves every metric; the
    defaults are facenet-pytorch's and the spec's: ``image_size=160, margin=0, min_face_size=20,
    thresholds=(0.6, 0.7, 0.7), factor=0.709``, post-processing on, largest face selected.

    Args:
        weights: :data:`MTCNN_WHEEL_WEIGHTS` (the files shipped in the facenet-pytorch wheel), a directory
            with ``pnet.pt``, ``rnet.pt``, ``onet.pt`` state dicts (loaded strictly), or None for seeded
            random init (detects nothing meaningful; for smoke runs only).

    Example:
        >>> import torch
        >>> det = MTCNNDetector().eval()  # doctest: +SKIP
        >>> det.locate(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))[1].tolist()  # doctest: +SKIP
        [False]
    """

    def __init__(self, weights: str | os.PathLike | None = MTCNN_WHEEL_WEIGHTS) -> None:
        super().__init__()
        import_facenet_pytorch()
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        self.pnet, self.rnet, self.onet = (
            PNet(pretrained=False),
            RNet(pretrained=False),
            ONet(pretrained=False),
        )
        if weights is not None:
            for name, path in mtcnn_weight_files(weights).items():
                state = torch_load(path, weights_only=True)
                getattr(self, name).load_state_dict(state, strict=True)
        self.eval()

    @property
    def _device(self) -> torch.device:
        return next(self.pnet.parameters()).device

    def detect(
        self,
        frames: Tensor,
        *,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> list[Tensor]:
        """All faces of each frame: a list of float32 ``[k_i, 5]`` CPU tensors ``(x1, y1, x2, y2, prob)``.

        One facenet-pytorch ``detect_face`` call for the whole batch, on the network's device. Rows are in
        facenet-pytorch's order (after its final "Min" non-maximum suppression); coordinates are pixels of
        the input frame and may extend past its border, as facenet-pytorch returns them. They stay on the
        CPU because facenet-pytorch hands them back as numpy arrays (a few numbers per frame).
        """
        frames = _check_uint8_frames(frames)
        _check_detection_settings(min_face_size, thresholds, factor, "largest")
        device = self._device
        n, (h, w) = frames.shape[0], frames.shape[-2:]
        if n == 0 or min(h, w) * 12.0 / min_face_size < 12:
            # No pyramid level fits (facenet-pytorch would fail on an empty torch.cat): no face possible.
            return [torch.zeros((0, 5)) for _ in range(n)]
        from facenet_pytorch.models.utils.detect_face import detect_face

        with torch.no_grad():
            # detect_face wants channels-last [N, H, W, 3]; it permutes back to [N, 3, H, W] itself.
            boxes, _ = detect_face(
                frames.permute(0, 2, 3, 1).to(device),
                min_face_size,
                self.pnet,
                self.rnet,
                self.onet,
                list(thresholds),
                factor,
                device,
            )
        # boxes is a numpy object array of per-frame float32 [k, 5] arrays (facenet-pytorch's format).
        return [torch.as_tensor(boxes[i].astype("float32").reshape(-1, 5)) for i in range(n)]

    @staticmethod
    def select(detections: Sequence[Tensor], selection: str = "largest") -> tuple[Tensor, Tensor, Tensor]:
        """One face per frame: ``(boxes [N, 4] float32, probs [N], found [N] bool)`` on the CPU.

        ``"largest"`` takes the box of largest ``(x2 - x1) * (y2 - y1)`` (facenet-pytorch's default,
        ``select_largest=True``), ``"probability"`` the most confident one. Frames without a detection get
        a zero box, probability 0 and ``found = False``.
        """
        check_choice("selection", selection, _SELECTIONS)
        n = len(detections)
        boxes = torch.zeros((n, 4), dtype=torch.float32)
        probs = torch.zeros(n, dtype=torch.float32)
        found = torch.zeros(n, dtype=torch.bool)
        for i, det in enumerate(detections):
            det = det.cpu()
            if det.shape[0] == 0:
                continue
            if selection == "largest":
                pick = torch.argmax((det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1]))
            else:
                pick = torch.argmax(det[:, 4])
            boxes[i], probs[i], found[i] = det[pick, :4], det[pick, 4], True
        return boxes, probs, found

    @staticmethod
    def crop(
        frames: Tensor,
        boxes: Tensor,
        *,
        image_size: int = 160,
        margin: int = 0,
        crop_resize: str = "pil",
    ) -> tuple[Tensor, Tensor]:
        """Cut and resize one face per frame as facenet-pytorch's ``extract_face``: uint8 crops and validity.

        The margin is ``margin * box_size / (image_size - margin)`` pixels of the frame (float32, as
        facenet-pytorch computes it from its float32 boxes), the box is truncated to integers and clipped
        to the frame, then resized to ``image_size`` x ``image_size`` with ``crop_resize``:

        * ``"pil"``: PIL ``Image.crop(box).resize(..., BILINEAR)`` (facenet-pytorch on PIL images);
          emulated in torch (metrics.functional.resize), identical to Pillow 13's pixels (pass order
          included).
        * ``"opencv"``: ``cv2.resize(..., INTER_AREA)`` (facenet-pytorch on numpy arrays): OpenCV itself for
          CPU tensors, its exact torch emulation elsewhere.
        * ``"torch"``: ``F.interpolate(mode="area")`` then truncation to uint8 (facenet-pytorch on tensors).

        Returns ``(crops uint8 [N, 3, S, S], ok [N] bool)`` on the frames' device; ``ok`` is False where the
        clipped box is empty (facenet-pytorch would raise there), and that crop is zeros.
        """
        frames = _check_uint8_frames(frames)
        _check_crop_settings(image_size, margin, crop_resize)
        n, (h, w) = frames.shape[0], frames.shape[-2:]
        if boxes.shape != (n, 4):
            raise ValueError(f"`boxes` must be [N, 4] for {n} frames, got shape {tuple(boxes.shape)}")
        out = torch.zeros((n, 3, image_size, image_size), dtype=torch.uint8, device=frames.device)
        ok = torch.zeros(n, dtype=torch.bool, device=frames.device)
        if n == 0:
            return out, ok
        b = boxes.to(device="cpu", dtype=torch.float32)
        # facenet-pytorch: margin * (x2 - x1) / (image_size - margin), all in float32.
        margin_x = (b[:, 2] - b[:, 0]) * margin / (image_size - margin)
        margin_y = (b[:, 3] - b[:, 1]) * margin / (image_size - margin)
        zero = torch.zeros(n)
        x1 = torch.maximum(b[:, 0] - margin_x / 2, zero).trunc().long().tolist()
        y1 = torch.maximum(b[:, 1] - margin_y / 2, zero).trunc().long().tolist()
        x2 = torch.minimum(b[:, 2] + margin_x / 2, torch.full((n,), float(w))).trunc().long().tolist()
        y2 = torch.minimum(b[:, 3] + margin_y / 2, torch.full((n,), float(h))).trunc().long().tolist()
        size = (image_size, image_size)
        for i in range(n):  # crops differ in size: one small resize per face
            if x2[i] <= x1[i] or y2[i] <= y1[i]:
                continue
            face = frames[i : i + 1, :, y1[i] : y2[i], x1[i] : x2[i]]
            if crop_resize == "pil":
                out[i] = resize_pil_bilinear(face, size)[0]
            elif crop_resize == "opencv":
                out[i] = resize_opencv_area(face, size)[0]
            else:
                out[i] = F.interpolate(face.float(), size=size, mode="area").to(torch.uint8)[0]
            ok[i] = True
        return out, ok

    def locate(
        self,
        frames: Tensor,
        *,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        selection: str = "largest",
        batch_size: int = 32,
    ) -> tuple[Tensor, Tensor]:
        """Detect and select one face per frame, ``batch_size`` frames per call: ``(boxes, found)``.

        Both on the CPU (see :meth:`detect`); :meth:`crop` takes the boxes as they are.
        """
        frames = _check_uint8_frames(frames)
        _check_detection_settings(min_face_size, thresholds, factor, selection)
        check_positive_int("batch_size", batch_size)
        detections: list[Tensor] = []
        for start in range(0, frames.shape[0], batch_size):
            detections += self.detect(
                frames[start : start + batch_size],
                min_face_size=min_face_size,
                thresholds=thresholds,
                factor=factor,
            )
        boxes, _, found = self.select(detections, selection)
        return boxes, found

    def forward(
        self,
        frames: Tensor,
        *,
        image_size: int = 160,
        margin: int = 0,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        selection: str = "largest",
        crop_resize: str = "pil",
        post_process: bool = True,
        batch_size: int = 32,
    ) -> tuple[Tensor, Tensor]:
        """uint8 ``[N, 3, H, W]`` -> ``(faces float32 [N, 3, S, S], found bool [N])``.

        ``post_process=True`` standardises as ``(x - 127.5) / 128`` (facenet-pytorch's
        ``fixed_image_standardization``, the embedder's input); False keeps 0-255 values.
        """
        _check_crop_settings(image_size, margin, crop_resize)
        boxes, found = self.locate(
            frames,
            min_face_size=min_face_size,
            thresholds=thresholds,
            factor=factor,
            selection=selection,
            batch_size=batch_size,
        )
        crops, ok = self.crop(frames, boxes, image_size=image_size, margin=margin, crop_resize=crop_resize)
        found = found.to(frames.device) & ok
        faces = crops.float()
        if post_process:
            faces = (faces - 127.5) / 128.0
        faces = faces * found.view(-1, 1, 1, 1)
        return faces, found


# ---------------------------------------------------------------------------------------- cache refs
def facenet_ref(weights: str | os.PathLike | None = "facenet_vggface2") -> BackboneRef:
    """Shared-cache handle for :class:`FaceNetEmbedder`."""
    return BackboneRef("facenet_inception_resnet_v1", FaceNetEmbedder, weights)


def mtcnn_ref(weights: str | os.PathLike | None = MTCNN_WHEEL_WEIGHTS) -> BackboneRef:
    """Shared-cache handle for :class:`MTCNNDetector` (settings are call arguments: one net serves all)."""
    return BackboneRef("mtcnn", MTCNNDetector, weights)
