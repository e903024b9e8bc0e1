"""Boxes -> crops: the region videos of the JWB-DH-V1 script, batched on the videos' device.

The script cuts ``frame[y1:y2, x1:x2]`` out of every kept frame and resizes it with
``cv2.resize(..., INTER_LINEAR)`` to the size of the video's first kept crop. This module is the one place
that does that:

* :func:`crop_regions` -- ``[B, T, 3, H, W]`` videos + ``[B, T, 4]`` boxes -> ``[B, T, 3, h, w]`` crops at a
  fixed size or at the size of the first valid crop. Two paths behind one core (``_crop``):
  the **OpenCV-exact** path (default for uint8 videos whose valid boxes are whole pixels inside the frame,
  i.e. always for the recipe's boxes: OpenCV's fixed-point taps gathered per frame,
  :func:`metrics.functional.resize.opencv_linear_crops`, bit-identical to ``cv2.resize``), and the
  **roi_align** path (float videos, fractional boxes or ``exact_borders=False``: one batched
  ``torchvision.ops.roi_align`` at INTER_LINEAR's source positions, OpenCV's filter up to float rounding).
* :func:`region_videos` -- the script's region videos, one tensor per video (only the kept frames, each
  video at its own first-kept-crop size); videos sharing a size go through ``_crop`` together, and on a
  CPU the script's own ``cv2.resize`` loop is used when it gives the same pixels faster.
* :func:`compact_valid` -- kept frames first; :func:`first_valid_sizes` -- each video's first kept size.

Host syncs: the box checks, the per-video crop sizes, frame counts and exact-path flags are read in ONE
device->host transfer per call (``_box_facts``); the crops themselves need none on an accelerator (on a
CPU the roi_align path reads one flag to skip its border fix when no crop is enlarged).

Example:
    >>> import torch
    >>> video = torch.randint(0, 256, (1, 2, 3, 64, 64), dtype=torch.uint8)
    >>> boxes = torch.tensor([[[8.0, 4.0, 40.0, 28.0], [0.0, 0.0, 16.0, 12.0]]])
    >>> crops, valid = crop_regions(video, boxes, torch.tensor([[True, True]]))
    >>> crops.shape, crops.dtype
    (torch.Size([1, 2, 3, 24, 32]), torch.uint8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metrics.video import check_video

__all__ = ["compact_valid", "crop_regions", "first_valid_sizes", "region_videos"]

_FIRST_VALID_ERROR = '`size` must be "first_valid" or (h, w), got {!r}'


# ============================================================================================ checks
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


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise ValueError(f'`size` must be "first_valid" or (h, w), two positive ints, got {size!r}')
    return int(size[0]), int(size[1])


def _requested_size(size: object) -> tuple[int, int] | None:
    """``None`` for ``"first_valid"``, else the checked fixed ``(h, w)``."""
    if isinstance(size, str):
        if size != "first_valid":
            raise ValueError(_FIRST_VALID_ERROR.format(size))
        return None
    return _check_size(size)


@dataclass(frozen=True)
class _BoxFacts:
    """What the crop code needs to know on the host about a batch of boxes, per video.

    Attributes:
        bad: some valid box is empty (``x2 <= x1`` or ``y2 <= y1``) or not finite.
        exact: every valid box has whole-pixel corners with ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H``
            (the OpenCV-exact path applies).
        sizes: ``(h, w)`` of the first valid box (:func:`first_valid_sizes`), ``(0, 0)`` if none.
        lengths: number of valid frames.
    """

    bad: list[bool]
    exact: list[bool]
    sizes: list[tuple[int, int]]
    lengths: list[int]

    def raise_if_bad(self, boxes: Tensor, valid: Tensor) -> None:
        """ValueError naming the first offending video and frame (reads it from the device: error path)."""
        if not any(self.bad):
            return
        nonempty = (
            torch.isfinite(boxes).all(-1) & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
        )
        i, f = (valid & ~nonempty).nonzero()[0].tolist()
        raise ValueError(
            f"`boxes` must be finite with x2 > x1 and y2 > y1 wherever `valid` is True; video {i} frame "
            f"{f} has {boxes[i, f].tolist()}"
        )


def _box_facts(boxes: Tensor, valid: Tensor, frame_hw: Sequence[int]) -> _BoxFacts:
    """Every per-video fact of :class:`_BoxFacts`, computed on the device and read in one transfer."""
    b = valid.shape[0]
    height, width = int(frame_hw[0]), int(frame_hw[1])
    x1, y1, x2, y2 = boxes.unbind(-1)
    nonempty = torch.isfinite(boxes).all(-1) & (x2 > x1) & (y2 > y1)
    whole_inside = (x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height) & (boxes == boxes.round()).all(-1)
    parts = [
        (valid & ~nonempty).any(1),
        (whole_inside | ~valid).all(1),
        first_valid_sizes(boxes, valid).reshape(-1),
        valid.sum(1),
    ]
    flat = torch.cat([p.to(torch.int64) for p in parts]).tolist()  # the one device->host sync
    sizes = flat[2 * b : 4 * b]
    return _BoxFacts(
        bad=[bool(v) for v in flat[:b]],
        exact=[bool(v) for v in flat[b : 2 * b]],
        sizes=[(sizes[2 * i], sizes[2 * i + 1]) for i in range(b)],
        lengths=flat[4 * b :],
    )


# ============================================================================================= crops
def first_valid_sizes(boxes: Tensor, valid: Tensor) -> Tensor:
    """int64 ``[B, 2]``: ``(h, w)`` of each video's first valid box (rounded to pixels), ``(0, 0)`` if none.

    This is the size JWB-DH-V1 resizes every crop of a region video to (the first kept crop's size).
    Computed on the device, no host synchronisation.

    Example:
        >>> import torch
        >>> boxes = torch.tensor([[[0.0, 0.0, 8.0, 4.0], [2.0, 2.0, 12.0, 7.0]]])
        >>> first_valid_sizes(boxes, torch.tensor([[False, True]])).tolist()
        [[5, 10]]
    """
    b, t = valid.shape
    if t == 0:
        return torch.zeros((b, 2), dtype=torch.int64, device=valid.device)
    first = valid.to(torch.int8).argmax(1)  # first True (0 when none: masked below)
    box = boxes[torch.arange(b, device=boxes.device), first]
    hw = torch.stack([box[:, 3] - box[:, 1], box[:, 2] - box[:, 0]], -1).round().to(torch.int64).clamp(min=1)
    return hw * valid.any(1, keepdim=True)


def _boxes_or_unit(boxes: Tensor, valid: Tensor) -> Tensor:
    """``[N, 4]`` boxes, invalid rows replaced by the unit box ``(0, 0, 1, 1)`` (built on the device)."""
    unit = (torch.arange(4, device=boxes.device) >= 2).to(boxes.dtype)
    return torch.where(valid[:, None], boxes, unit)


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
    # Skipping the fix when no sample falls outside its box saves work on a CPU; on an accelerator reading
    # that flag would wait for the queue, so the fix always runs there (a no-op where every mask is False).
    if rois.device.type == "cpu" and not bool(left.any() | right.any() | top.any() | bottom.any()):
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


def _crop(
    videos: Tensor,
    boxes: Tensor,
    valid: Tensor,
    size: tuple[int, int],
    exact_borders: bool,
    exact_pixels: bool,
) -> Tensor:
    """The crop itself, on checked inputs: ``[B, T, C, h, w]`` of the input dtype, zeros at invalid frames.

    ``exact_pixels`` (uint8 videos, whole-pixel boxes inside the frame, ``exact_borders``) takes OpenCV's
    fixed-point taps; otherwise roi_align (:func:`_roi_align_crops`) in float32 (float64 for float64 videos),
    uint8 rounded half to even.
    """
    b, t, c, height, width = videos.shape
    h, w = size
    if b * t == 0 or h == 0:
        return videos.new_zeros((b, t, c, h, w))
    flat_valid = valid.reshape(b * t)
    if exact_pixels:
        from metrics.functional.resize import opencv_linear_crops

        flat_boxes = _boxes_or_unit(boxes.reshape(b * t, 4), flat_valid)
        out = opencv_linear_crops(videos.reshape(b * t, c, height, width), flat_boxes, (h, w))
        out = out * flat_valid[:, None, None, None].to(torch.uint8)
        return out.reshape(b, t, c, h, w)
    work = torch.float64 if videos.dtype == torch.float64 else torch.float32
    frames = videos.reshape(b * t, c, height, width).to(work)
    rois = _boxes_or_unit(boxes.reshape(b * t, 4).to(work), flat_valid)
    index = torch.arange(b * t, device=videos.device, dtype=work)[:, None]
    out = _roi_align_crops(frames, torch.cat([index, rois], 1), (h, w), exact_borders)
    out = out * flat_valid[:, None, None, None]
    if videos.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    else:
        out = out.to(videos.dtype)
    return out.reshape(b, t, c, h, w)


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
            :func:`~metrics.regions.recipes.boxes_from_keypoints`.
        valid: bool ``[B, T]``; invalid frames are zeroed and their boxes ignored.
        size: ``(h, w)`` for every crop, or ``"first_valid"``: the size of the first valid box of the video
            (jwbdh-v1). In a batch this needs every video that has a valid frame to share that size
            (always true for ``B = 1``); otherwise a ValueError points to :func:`region_videos` (one tensor
            per video at its own size) or a fixed size. A batch without any valid frame gives ``h = w = 0``.
        exact_borders: when a crop is enlarged, its outermost samples fall before ``x1`` / after
            ``x2 - 1``; roi_align would blend in the frame pixels beyond the box there, OpenCV resizing the
            cut-out crop repeats the crop's edge. True (default) reproduces OpenCV (the exact path, or three
            extra small roi_align calls on zero-width boxes); False keeps plain roi_align.

    Returns:
        ``(crops, valid)``: ``[B, T, 3, h, w]`` of the input dtype (uint8 rounded half to even) with zeros at
        invalid frames, and a copy of ``valid``.

    Raises:
        ValueError: bad video (see :func:`metrics.video.check_video`), boxes/valid of the wrong shape,
            dtype or device, a valid box that is empty or not finite, bad ``size``, differing first sizes.

    Example:
        >>> import torch
        >>> video = torch.zeros(2, 1, 3, 32, 32, dtype=torch.uint8)
        >>> boxes = torch.tensor([[[0.0, 0.0, 16.0, 8.0]], [[4.0, 4.0, 12.0, 12.0]]])
        >>> crop_regions(video, boxes, torch.ones(2, 1, dtype=torch.bool), size=(8, 8))[0].shape
        torch.Size([2, 1, 3, 8, 8])
    """
    videos = check_video(videos, "videos")
    boxes, valid = _check_boxes_valid(videos, boxes, valid)
    height, width = videos.shape[-2:]
    fixed = _requested_size(size)
    facts = _box_facts(boxes, valid, (height, width))
    facts.raise_if_bad(boxes, valid)
    if fixed is None:
        present = {s for s in facts.sizes if s != (0, 0)}
        if len(present) > 1:
            per_video = ", ".join(f"video {i}: {s}" for i, s in enumerate(facts.sizes))
            raise ValueError(
                'size="first_valid" needs one crop size per batch, but the first valid crops differ '
                f"(h, w) ({per_video}). Use region_videos(...) for one tensor per video at its own size "
                "(jwbdh-v1 parity), crop one video at a time, or pass a fixed size=(h, w)."
            )
        h, w = present.pop() if present else (0, 0)
    else:
        h, w = fixed
    exact = videos.dtype == torch.uint8 and exact_borders and all(facts.exact)
    return _crop(videos, boxes, valid, (h, w), exact_borders, exact), valid.clone()


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


def _region_videos_opencv(
    videos: Tensor, boxes: Tensor, valid: Tensor, sizes: Sequence[tuple[int, int]]
) -> list[Tensor]:
    """The JWB-DH-V1 script's crop loop on a CPU: numpy slice + ``cv2.resize`` INTER_LINEAR per kept frame."""
    import cv2

    c = videos.shape[2]
    corners = boxes.to(torch.int64).tolist()
    kept_frames = [[t for t, keep in enumerate(row) if keep] for row in valid.tolist()]
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
    ``[0, 3, h, w]``. A video's result never depends on the other videos in the batch: videos sharing a
    size and a path (OpenCV-exact or roi_align, decided by each video's own boxes) are cropped together.
    One device->host transfer reads every video's size, frame count, path and box checks.

    ``backend="torch"`` always uses the batched crop of :func:`crop_regions` (on the videos' device;
    OpenCV's exact pixels for uint8 videos with whole-pixel boxes, see there). ``"opencv"`` and ``"auto"``
    (default) run the script's own loop, ``cv2.resize(frame[y1:y2, x1:x2], (w, h))`` per kept frame, for
    uint8 CPU videos whose valid boxes are whole pixels inside the frame (the jwbdh-v1 recipe's always are)
    with ``exact_borders=True`` when OpenCV is installed: the same pixels as the torch path, faster on a
    CPU. Anything else takes the torch path under ``"auto"``; ``"opencv"`` raises instead.

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
    fixed = _requested_size(size)
    use_opencv = resolve_backend(backend, videos) == "opencv"
    facts = _box_facts(boxes, valid, videos.shape[-2:])
    facts.raise_if_bad(boxes, valid)
    sizes = facts.sizes if fixed is None else [fixed] * b
    if use_opencv:
        if videos.dtype == torch.uint8 and videos.device.type == "cpu" and exact_borders and all(facts.exact):
            return _region_videos_opencv(videos, boxes, valid, sizes)
        if backend == "opencv":
            raise ValueError(
                'backend="opencv" needs uint8 CPU videos, exact_borders=True and whole-pixel boxes inside '
                'the frame wherever `valid` is True; use backend="torch" for anything else'
            )
    # Videos are cropped together when they share a size and a path (the exact path needs whole-pixel
    # boxes), so that each video's pixels are those it gets alone.
    uint8_exact = videos.dtype == torch.uint8 and exact_borders
    groups: dict[tuple[tuple[int, int], bool], list[int]] = {}
    for i, hw in enumerate(sizes):
        groups.setdefault((hw, uint8_exact and facts.exact[i]), []).append(i)
    order: Tensor | None = None  # every group's members in one index tensor: one host->device copy at most
    offset = 0
    result: list[Tensor] = [videos.new_zeros((0, c, *hw)) for hw in sizes]
    for (hw, exact), members in groups.items():
        first, n = offset, len(members)
        offset += n
        if hw == (0, 0) or all(facts.lengths[i] == 0 for i in members):
            continue
        if members == list(range(members[0], members[0] + n)):  # contiguous videos: a view, no index
            pick = lambda x, s=members[0], n=n: x.narrow(0, s, n)  # noqa: E731
        else:
            if order is None:
                flat = [i for group in groups.values() for i in group]
                order = torch.tensor(flat, device=videos.device)
            pick = lambda x, idx=order[first : first + n]: x.index_select(0, idx)  # noqa: E731
        sub_valid = pick(valid)
        crops = _crop(pick(videos), pick(boxes), sub_valid, hw, exact_borders, exact)
        packed, _ = compact_valid(crops, sub_valid)
        for j, i in enumerate(members):
            result[i] = packed[j, : facts.lengths[i]]
    return result
