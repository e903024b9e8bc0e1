"""Face boxes without keypoints: MTCNN (facenet-pytorch) detections turned into jwbdh-v1-style face boxes.

:class:`MTCNNFaceBoxes` finds one face per frame with facenet-pytorch's MTCNN (its weights ship inside the
wheel) and, by default, treats that box as the keypoints' tight box of the jwbdh-v1 face recipe
(:func:`metrics.regions.recipes.refine_boxes`): expansion, 50 px minimum and area filter. The boxes feed
:func:`metrics.regions.crops.region_videos` like keypoint boxes do.

Example:
    >>> import torch
    >>> faces = MTCNNFaceBoxes()  # doctest: +SKIP
    >>> boxes, valid = faces(torch.zeros(1, 2, 3, 128, 128, dtype=torch.uint8))  # doctest: +SKIP
    >>> valid.tolist()  # doctest: +SKIP
    [[False, False]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metrics.regions.recipes import (
    RegionBoxes,
    RegionRecipe,
    _check_image_size,
    _trunc_int,
    get_region_recipe,
    refine_boxes,
)
from metrics.video import check_video, to_uint8

__all__ = ["MTCNNFaceBoxes"]

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
