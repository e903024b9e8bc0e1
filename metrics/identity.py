r"""CSIM: identity similarity of paired videos (face embeddings), or JWB-DH-V1's pixel cosine.

The JWB-DH-V1 paper describes CSIM as face-identity similarity; its script computes a raw-pixel cosine
instead (spec/jwbdh_v1.md s3). :class:`CSIM` offers both, selected by ``mode``:

* ``mode="pixel"`` (jwbdh-v1, the default as for every jwbdh-v1 setting, DESIGN s3): exactly
  :class:`metrics.pixel.PixelCSIM` (same pairing, resizing and per-frame function).
* ``mode="identity"`` (standard): per frame pair, the MTCNN face crop of the generated frame and of the
  reference frame (facenet-pytorch, spec/weights.md 9b) are embedded by FaceNet InceptionResnetV1 trained on
  VGGFace2 (9a) into 512-d unit vectors :math:`e_g, e_r`, and the frame value is their cosine.

Example:
    >>> import torch
    >>> video = torch.randint(1, 256, (1, 4, 3, 64, 64), dtype=torch.uint8)
    >>> csim = CSIM(mode="pixel")
    >>> csim.update(video, video)
    >>> round(float(csim.compute()), 12)
    1.0
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics._validate import check_choice, check_int, check_positive_int
from metrics.backbones.facenet import (
    MTCNN_WHEEL_WEIGHTS,
    _check_crop_settings,
    _check_detection_settings,
    facenet_ref,
    import_facenet_pytorch,
    mtcnn_ref,
)
from metrics.functional.pixel import pixel_cosine_frames
from metrics.pixel import PairedFrameMetric

__all__ = ["CSIM"]

_MODES = ("pixel", "identity")
_FACE_COUNTERS = (
    "num_frame_pairs",
    "num_frames_without_face",
    "num_generated_frames_without_face",
    "num_reference_frames_without_face",
    "num_videos_without_face",
)


class CSIM(PairedFrameMetric):
    r"""Cosine similarity of paired videos: face identity (``mode="identity"``) or raw pixels (``"pixel"``).

    Videos are paired by index and their first :math:`T = \min(T_{gen}, T_{ref}, \text{num\_frames})` frames
    are compared frame by frame (float input is quantised to uint8 like decoded video, as in
    :class:`~metrics.pixel.PixelCSIM`).

    **Identity mode.** For frame pair :math:`t` of video :math:`v`, MTCNN looks for faces in both frames
    (largest face kept). If both frames have one, the crops are embedded and

    .. math::
        s_{v,t} = \frac{\langle e_g, e_r \rangle}{\lVert e_g \rVert\,\lVert e_r \rVert}, \qquad
        \mathrm{CSIM}_v = \frac{1}{|V_v|} \sum_{t \in V_v} s_{v,t}, \qquad
        \mathrm{CSIM} = \frac{1}{|\{v : V_v \neq \emptyset\}|} \sum_{v : V_v \neq \emptyset} \mathrm{CSIM}_v

    where :math:`V_v` is the set of frame pairs in which BOTH frames have a detected face. Frame pairs where
    either side has no face are not scored: they are counted in ``num_frames_without_face`` (and by side in
    ``num_generated_frames_without_face`` / ``num_reference_frames_without_face``) and left out of the
    video's mean. A video with no scored frame pair is left out of the mean over videos and counted in
    ``num_videos_without_face``; ``num_frame_pairs`` counts every compared pair. Log these counters next
    to the value (:meth:`face_counts` returns them summed over DDP ranks): a generator that destroys faces
    is otherwise only judged on the frames where a face survived. All states are scalar and
    ``sum``-reduced, so DDP ranks with different numbers of updates sync.

    **Pixel mode** is :class:`~metrics.pixel.PixelCSIM` (JWB-DH-V1 script): per frame pair the cosine of the
    flattened raw pixels (generated frames resized to the reference size with OpenCV-exact bilinear when
    sizes differ), mean over frames, then over videos. The face counters stay 0.

    As input to ``update``: ``generated`` and ``reference``, ``[B, T, 3, H, W]`` uint8 in [0, 255] or float in
    [0, 1] (lengths and frame sizes may differ between the two; identity mode crops each frame's face from
    that frame at its own size). As output of ``compute``: a float64 scalar, the mean over videos, in
    [-1, 1] (identity) or [0, 1] (pixel; ``plot_lower_bound`` is -1 in both modes), higher is better; NaN
    with a warning when no video was scored.

    Args:
        mode: ``"pixel"`` (jwbdh-v1 script) or ``"identity"`` (face embeddings, standard protocol).
        num_frames: compare at most this many leading frames (jwbdh-v1 reads 16); None = all.
        weights: FaceNet checkpoint: registry name (``"facenet_vggface2"``), local path, or None for a seeded
            random network (smoke runs only). Identity mode only.
        detector_weights: MTCNN weights: ``"facenet-pytorch"`` (the files in the wheel), a directory with
            ``pnet.pt``/``rnet.pt``/``onet.pt``, or None (random; finds no real faces). Identity mode only.
        image_size: face crop size fed to FaceNet (facenet-pytorch default 160).
        margin: crop margin in pixels of the crop (default 0).
        min_face_size: smallest face MTCNN searches for, in pixels (default 20).
        thresholds: P-, R- and O-Net probability thresholds (default ``(0.6, 0.7, 0.7)``).
        factor: scale step of the detection pyramid (default 0.709).
        selection: ``"largest"`` face (facenet-pytorch default) or highest ``"probability"``.
        crop_resize: ``"pil"`` (default; facenet-pytorch's crop of PIL images), ``"opencv"`` (of numpy
            arrays) or ``"torch"`` (of tensors); see :meth:`metrics.backbones.facenet.MTCNNDetector.crop`.
        batch_size: frames per MTCNN call and faces per FaceNet call.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Raises:
        ValueError: bad arguments, or bad ``generated``/``reference`` (see ``metrics.video.check_pair``).
        ImportError: identity mode without facenet-pytorch (``pip install "jwbdh-callbacks[face]"``).

    Example:
        >>> import torch
        >>> from skimage.data import astronaut  # a photograph with one face  # doctest: +SKIP
        >>> frame = torch.from_numpy(astronaut()).permute(2, 0, 1)[:, ::2, ::2]  # doctest: +SKIP
        >>> video = frame.expand(1, 2, -1, -1, -1)  # doctest: +SKIP
        >>> csim = CSIM(mode="identity", weights=None)  # random FaceNet: smoke only  # doctest: +SKIP
        >>> csim.update(video, video); round(float(csim.compute()), 6)  # doctest: +SKIP
        1.0
    """

    higher_is_better = True
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    num_frame_pairs: Tensor
    num_frames_without_face: Tensor
    num_generated_frames_without_face: Tensor
    num_reference_frames_without_face: Tensor
    num_videos_without_face: Tensor

    def __init__(
        self,
        mode: str = "pixel",
        num_frames: int | None = 16,
        weights: str | os.PathLike | None = "facenet_vggface2",
        detector_weights: str | os.PathLike | None = MTCNN_WHEEL_WEIGHTS,
        image_size: int = 160,
        margin: int = 0,
        min_face_size: float = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        selection: str = "largest",
        crop_resize: str = "pil",
        batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        check_choice("mode", mode, _MODES)
        _check_crop_settings(image_size, margin, crop_resize)
        check_int("image_size", image_size, minimum=75, why="(InceptionResnetV1's smallest input)")
        _check_detection_settings(min_face_size, thresholds, factor, selection)
        check_positive_int("batch_size", batch_size)
        super().__init__(num_frames=num_frames, **kwargs)
        self.mode = mode
        self.image_size = image_size
        self.margin = margin
        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.selection = selection
        self.crop_resize = crop_resize
        self.batch_size = batch_size
        if mode == "pixel":
            self.embedder = self.detector = None
        else:
            import_facenet_pytorch()  # fail at construction, not at the first update
            # Handles to the process-wide cache, never submodules: state_dict carries no network weights.
            self.embedder = facenet_ref(weights)
            self.detector = mtcnn_ref(detector_weights)
        for name in _FACE_COUNTERS:
            self.add_state(name, torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def is_random_init(self) -> bool:
        """True in identity mode with an untrained FaceNet or MTCNN (``weights=None``): smoke numbers only."""
        return self.mode == "identity" and (self.embedder.is_random_init or self.detector.is_random_init)

    def _frame_values(self, generated: Tensor, reference: Tensor) -> Tensor:
        """Pixel mode: the per-frame function of :class:`~metrics.pixel.PixelCSIM` (they never diverge)."""
        return pixel_cosine_frames(generated, reference)

    def update(self, generated: Tensor, reference: Tensor) -> None:
        """Add video pairs ``[B, T, 3, H, W]`` (generated, reference)."""
        if self.mode == "pixel":
            super().update(generated, reference)
            return
        # the same pairing and frame count as pixel mode; no resize (faces are cropped per frame)
        gen, ref = self._aligned_frames(generated, reference, resize=False)
        b, t = gen.shape[:2]
        if b == 0:
            return
        gen_frames, ref_frames = gen.flatten(0, 1), ref.flatten(0, 1)
        cosines, found_gen, found_ref = self._frame_cosines(gen_frames, ref_frames)
        # Masks live on the CPU (detections come back from facenet-pytorch as numpy), values on the device.
        valid = (found_gen & found_ref).view(b, t)
        counts = valid.sum(dim=1)
        scored = counts > 0
        device = cosines.device
        video_sums = cosines.view(b, t).sum(dim=1)[scored.to(device)]
        self.add_video_scores(video_sums / counts[scored].to(device=device, dtype=torch.float64))
        self.num_frame_pairs.add_(b * t)
        self.num_frames_without_face.add_(int((~valid).sum()))
        self.num_generated_frames_without_face.add_(int((~found_gen).sum()))
        self.num_reference_frames_without_face.add_(int((~found_ref).sum()))
        self.num_videos_without_face.add_(int((~scored).sum()))

    def _locate(self, detector: torch.nn.Module, frames: Tensor) -> tuple[Tensor, Tensor]:
        return detector.locate(
            frames,
            min_face_size=self.min_face_size,
            thresholds=self.thresholds,
            factor=self.factor,
            selection=self.selection,
            batch_size=self.batch_size,
        )

    def _frame_cosines(self, gen_frames: Tensor, ref_frames: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """uint8 ``[N, 3, H, W]`` pairs -> float64 cosines ``[N]`` (0 where not scored), CPU found masks."""
        device = gen_frames.device
        detector = self.detector.get(device)
        n = gen_frames.shape[0]
        if gen_frames.shape[-2:] == ref_frames.shape[-2:]:  # one detection pass over both sides
            boxes, found = self._locate(detector, torch.cat([gen_frames, ref_frames]))
            boxes_gen, boxes_ref, found_gen, found_ref = boxes[:n], boxes[n:], found[:n], found[n:]
        else:
            boxes_gen, found_gen = self._locate(detector, gen_frames)
            boxes_ref, found_ref = self._locate(detector, ref_frames)
        # Crop only the pairs that can be scored; an empty clipped box also counts as "no face".
        found_gen, found_ref = found_gen.clone(), found_ref.clone()  # CPU masks
        both = torch.nonzero(found_gen & found_ref).flatten()
        crop_args = {"image_size": self.image_size, "margin": self.margin, "crop_resize": self.crop_resize}
        both_dev = both.to(device)
        crops_gen, ok_gen = detector.crop(gen_frames[both_dev], boxes_gen[both], **crop_args)
        crops_ref, ok_ref = detector.crop(ref_frames[both_dev], boxes_ref[both], **crop_args)
        ok_gen, ok_ref = ok_gen.cpu(), ok_ref.cpu()
        found_gen[both[~ok_gen]] = False
        found_ref[both[~ok_ref]] = False
        keep = ok_gen & ok_ref
        both = both[keep]
        cosines = torch.zeros(n, dtype=torch.float64, device=device)
        if both.numel() == 0:  # nothing to embed: FaceNet is not even built (a face-free region)
            return cosines, found_gen, found_ref
        keep_dev = keep.to(device)
        faces = torch.cat([crops_gen[keep_dev], crops_ref[keep_dev]]).float().sub_(127.5).div_(128.0)
        embedder = self.embedder.get(device)
        embeddings = torch.cat([embedder(chunk) for chunk in faces.split(self.batch_size)]).to(torch.float64)
        emb_gen, emb_ref = embeddings[: both.numel()], embeddings[both.numel() :]
        cosines[both.to(device)] = torch.nn.functional.cosine_similarity(emb_gen, emb_ref, dim=1, eps=1e-12)
        return cosines, found_gen, found_ref

    def face_counts(self) -> dict[str, int]:
        """The counters (and ``num_videos``, the scored videos) summed over all processes.

        The state attributes hold this process's counts; under DDP this method syncs them, so it is a
        collective: call it on every rank, like ``compute()``.
        """
        names = ("num_videos", *_FACE_COUNTERS)
        if self._is_synced:  # already inside a sync (e.g. called from compute)
            return {name: int(getattr(self, name)) for name in names}
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn,
            process_group=self.process_group,
            should_sync=self._to_sync,
            distributed_available=self.distributed_available_fn,
        ):
            return {name: int(getattr(self, name)) for name in names}

    def compute(self) -> Tensor:
        """Mean over scored videos (NaN with a warning when none was scored)."""
        if self.mode == "identity" and int(self.num_videos) == 0:
            warnings.warn(
                f"CSIM(mode='identity').compute(): no video had a frame pair with a face detected on both "
                f"sides ({int(self.num_videos_without_face)} video(s), {int(self.num_frame_pairs)} frame "
                f"pair(s) without one); returning NaN",
                stacklevel=2,
            )
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.score_sum.device)
        return super().compute()
