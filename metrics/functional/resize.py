"""Batched torch resizes that reproduce the pixels of PIL, OpenCV and TensorFlow 1.

Why our own code rather than ``torch.nn.functional.interpolate``: the reference scripts resize uint8 frames
with PIL (FID) and OpenCV (FVD, paired metrics), whose integer arithmetic rounds differently from torch's
float kernels (about 15% of pixels differ by one grey level). FID-like numbers are sensitive to this, so
on uint8 input we emulate each library's fixed-point steps exactly, with integer-valued float64 or int32
tensors that stay on the input's device. Float input gets the same filter in floating point.

* PIL ``Image.resize(..., BILINEAR)`` (what ``torchvision.transforms.Resize`` does to PIL images):
  antialiased triangle filter, coefficients normalised and rounded to 22 fractional bits, one pass per
  axis, each rounded to uint8, so the pass order shows in the pixels. Pillow 13 runs the vertical pass
  first when the height shrinks by more than twice as many pixels as the width
  (``h < src_h and src_h - h > 2 * (src_w - w)``), the horizontal pass first otherwise (as every older
  Pillow always did); we follow Pillow 13.
* OpenCV ``INTER_LINEAR``: half-pixel centres, float32 offsets, coefficients rounded to 11 bits, an integer
  horizontal pass and the vectorised vertical rounding ``((b0*(S0>>4))>>16 + (b1*(S1>>4))>>16 + 2)>>2``.
* OpenCV ``INTER_AREA``: a box filter when both axes shrink. Integer factors sum each block in integers
  (2x2 blocks round half up, other blocks multiply by a float32 ``1/area`` and round half to even);
  other factors weight each source pixel by a float32 overlap fraction and accumulate in float32 in
  OpenCV's order (horizontal sums per source row, then the weighted rows), rounding half to even. When an
  axis grows, the linear machinery with area coefficients.
* TF1 ``resize_bilinear(align_corners=False)``: ``x_src = x_dst * src / dst``, no antialiasing, float out.

Example:
    >>> import torch
    >>> x = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8)
    >>> resize_pil_bilinear(x, (299, 299)).dtype
    torch.uint8
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from metrics.functional.backend import resolve_backend
from metrics.functional.device_tables import DEVICE_TABLES, DeviceTableCache

__all__ = [
    "DEVICE_TABLES",
    "DeviceTableCache",
    "opencv_linear_crops",
    "resize_opencv_area",
    "resize_opencv_bilinear",
    "resize_pil_bilinear",
    "resize_tf1_bilinear",
]

_PIL_BITS = 22  # PIL's PRECISION_BITS for 8-bit images (32 - 8 - 2)
_CV_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 bits)
_AREA_GATHER_ELEMENTS = 1 << 25  # ~128 MB of float32 per gather in the exact INTER_AREA port


def _check_frames(frames: object, size: object) -> tuple[int, int]:
    if not isinstance(frames, Tensor) or frames.ndim != 4:
        got = f"shape {tuple(frames.shape)}" if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"`frames` must be a [N, C, H, W] tensor, got {got}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise ValueError(f"`frames` must be uint8 or floating point, got dtype {frames.dtype}")
    if frames.shape[-1] < 1 or frames.shape[-2] < 1:
        raise ValueError(f"`frames` has an empty frame size: shape {tuple(frames.shape)}")

    def _is_positive_int(s: object) -> bool:
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
            return False
        return int(s) == s and s >= 1

    if not isinstance(size, tuple | list) or len(size) != 2 or not all(_is_positive_int(s) for s in size):
        raise ValueError(f"`size` must be (height, width) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _check_backend(backend: str, allowed: tuple[str, ...]) -> None:
    if backend not in allowed:
        raise ValueError(f"`backend` must be one of {allowed}, got {backend!r}")


def _float_separable(
    frames: Tensor, key: tuple, build_y: Callable[[], Tensor], build_x: Callable[[], Tensor]
) -> Tensor:
    """``wy @ frames @ wx.T`` with the [dst, src] matrices of one filter (``key`` names it and its sizes)."""
    dtype = torch.float64 if frames.dtype == torch.float64 else torch.float32
    x = frames.to(dtype)
    wy, wx = DEVICE_TABLES.get((*key, dtype), x.device, lambda: (build_y().to(dtype), build_x().to(dtype)))
    return torch.matmul(torch.matmul(wy, x), wx.T)


# ----------------------------------------------------------------------------------------------- PIL
@lru_cache(maxsize=128)
def _pil_bilinear_coeffs(src: int, dst: int) -> Tensor:
    """[dst, src] integer coefficients (scaled by 2**22) of PIL's antialiased bilinear filter.

    Follows Pillow's ``precompute_coeffs`` and ``normalize_coeffs_8bpc`` in double precision, including its
    multiplication by ``1 / filterscale`` (not a division) and the sequential sum of the taps.
    """
    scale = src / dst
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the triangle filter has support 1
    inv_filterscale = 1.0 / filterscale
    k = torch.zeros(dst, src, dtype=torch.float64)
    for i in range(dst):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), src)
        taps = [max(0.0, 1.0 - abs((x - center + 0.5) * inv_filterscale)) for x in range(xmin, xmax)]
        total = 0.0
        for t in taps:
            total += t
        for x, w in zip(range(xmin, xmax), taps, strict=True):
            w = w / total if total != 0.0 else w
            # (int)(0.5 + w * 2**22) for w >= 0, (int)(-0.5 + w * 2**22) otherwise: C truncation
            k[i, x] = float(math.trunc(w * (1 << _PIL_BITS) + (0.5 if w >= 0 else -0.5)))
    return k


def _pil_pass(x: Tensor, coeffs: Tensor) -> Tensor:
    # Integer-valued float64: |sum| < 2**31, exact; then PIL's rounding shift and clip to 8 bits.
    acc = torch.matmul(x, coeffs.T) + float(1 << (_PIL_BITS - 1))
    return torch.floor_(acc / float(1 << _PIL_BITS)).clamp_(0, 255)


def _pil_vertical_first(src: tuple[int, int], dst: tuple[int, int]) -> bool:
    """Pillow 13's pass order: vertical first iff the height shrinks by over twice the width's shrink.

    Derived from the pixels of Pillow 13.0.0 (the change of python-pillow/Pillow#9549) and checked against
    it on random shapes and on both sides of the boundary ``src_h - h == 2 * (src_w - w)``; the order only
    matters when both axes are resampled.
    """
    (src_h, src_w), (h, w) = src, dst
    return h < src_h and w != src_w and src_h - h > 2 * (src_w - w)


def resize_pil_bilinear(frames: Tensor, size: tuple[int, int], *, backend: str = "torch") -> Tensor:
    """Resize uint8 ``[N, C, H, W]`` frames exactly like PIL ``Image.resize(size, Image.BILINEAR)``.

    This is what ``torchvision.transforms.Resize((h, w))`` does to a PIL image (the JWB-DH-V1 FID script).
    ``backend="pil"`` runs PIL itself on the CPU instead.

    Example:
        >>> import torch
        >>> resize_pil_bilinear(torch.zeros(2, 3, 64, 80, dtype=torch.uint8), (299, 299)).shape
        torch.Size([2, 3, 299, 299])
    """
    h, w = _check_frames(frames, size)
    if frames.dtype != torch.uint8:
        raise ValueError(f"`frames` must be uint8 for a PIL-exact resize, got dtype {frames.dtype}")
    _check_backend(backend, ("torch", "pil"))
    if backend == "pil":
        return _resize_with_pil(frames, (h, w))
    src_h, src_w = frames.shape[-2:]
    x = frames.to(torch.float64)

    def coeffs(src: int, dst: int) -> Tensor:
        return DEVICE_TABLES.get(("pil", src, dst), x.device, lambda: _pil_bilinear_coeffs(src, dst))

    def horizontal(x: Tensor) -> Tensor:
        return _pil_pass(x, coeffs(src_w, w)) if w != src_w else x

    def vertical(x: Tensor) -> Tensor:
        if h == src_h:
            return x
        return _pil_pass(x.transpose(-1, -2), coeffs(src_h, h)).transpose(-1, -2)

    if _pil_vertical_first((src_h, src_w), (h, w)):
        x = horizontal(vertical(x))
    else:
        x = vertical(horizontal(x))
    return x.to(torch.uint8)


def _resize_with_pil(frames: Tensor, size: tuple[int, int]) -> Tensor:
    from PIL import Image

    arr = frames.permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img in arr:
        if img.shape[-1] == 1:
            res = np.asarray(Image.fromarray(img[..., 0]).resize((size[1], size[0]), Image.BILINEAR))[
                ..., None
            ]
        else:
            res = np.stack(
                [
                    np.asarray(Image.fromarray(img[..., c]).resize((size[1], size[0]), Image.BILINEAR))
                    for c in range(img.shape[-1])
                ],
                axis=-1,
            )
        out.append(res)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous().to(frames.device)


# -------------------------------------------------------------------------------------------- OpenCV
@lru_cache(maxsize=128)
def _opencv_linear_taps(
    src: int, dst: int, area: bool, rows: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Two-tap (index0, index1, weight0, weight1) of OpenCV's linear kernel along one axis.

    Offsets are computed in float32 as OpenCV does; ``area`` selects INTER_AREA's coefficients for
    enlarging axes. OpenCV treats the two axes differently at the borders of INTER_LINEAR: columns outside
    the image get their fraction zeroed, rows keep it and clamp both row indices (``rows=True``), which
    matters because each tap is rounded separately in the vertical pass.
    """
    inv_scale = dst / src
    scale = 1.0 / inv_scale
    i0, i1, f = np.zeros(dst, np.int64), np.zeros(dst, np.int64), np.zeros(dst, np.float32)
    for d in range(dst):
        if area:
            sx = math.floor(d * scale)
            fx = np.float32((d + 1) - (sx + 1) * inv_scale)
            fx = np.float32(0.0) if fx <= 0 else np.float32(fx - math.floor(fx))
        else:
            fx = np.float32((d + 0.5) * scale - 0.5)
            sx = math.floor(fx)
            fx = np.float32(fx - np.float32(sx))
        if rows and not area:
            i0[d], i1[d], f[d] = min(max(sx, 0), src - 1), min(max(sx + 1, 0), src - 1), fx
            continue
        if sx < 0:
            sx, fx = 0, np.float32(0.0)
        if sx >= src - 1:
            sx, fx = src - 1, np.float32(0.0)
        i0[d], i1[d], f[d] = sx, min(sx + 1, src - 1), fx
    w0 = np.float32(1.0) - f
    return (
        torch.from_numpy(i0),
        torch.from_numpy(i1),
        torch.from_numpy(w0.astype(np.float64)),
        torch.from_numpy(f.astype(np.float64)),
    )


def _taps_to_matrix(taps: tuple[Tensor, Tensor, Tensor, Tensor], src: int) -> Tensor:
    i0, i1, w0, w1 = taps
    m = torch.zeros(len(i0), src, dtype=torch.float64)
    rows = torch.arange(len(i0))
    m.index_put_((rows, i0), w0, accumulate=True)
    m.index_put_((rows, i1), w1, accumulate=True)
    return m


@lru_cache(maxsize=1024)
def _opencv_linear_int_taps(src: int, dst: int, rows: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_opencv_linear_taps` (INTER_LINEAR) with OpenCV's 11-bit integer coefficients."""
    i0, i1, w0, w1 = _opencv_linear_taps(src, dst, False, rows=rows)
    return i0, i1, _cv_round(w0 * _CV_COEF_SCALE), _cv_round(w1 * _CV_COEF_SCALE)


def _linear_int_taps_batched(lengths: Tensor, dst: int, rows: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_opencv_linear_int_taps` for many source lengths at once, on the device of ``lengths``.

    ``lengths`` int64 ``[K, 1]`` (each >= 1) -> ``[K, dst]`` index0, index1 (int64) and the two coefficients
    (int32). The same float64 and float32 operations as the scalar loop, in the same order; each is
    correctly rounded on any IEEE device, so the integers are the same (tests/test_host_syncs.py compares
    them for every length up to 1100). Divisions are written as ``torch.div`` of two tensors because
    ``scalar / tensor`` is computed as ``reciprocal(tensor) * scalar``, which rounds twice.

    Example:
        >>> import torch
        >>> got = _linear_int_taps_batched(torch.tensor([[5]]), 3, False)
        >>> [t[0].tolist() for t in got] == [t.tolist() for t in _opencv_linear_int_taps(5, 3, False)]
        True
    """
    n = lengths.to(torch.float64)
    inv_scale = torch.div(torch.full_like(n, float(dst)), n)  # dst / src
    scale = torch.div(torch.ones_like(inv_scale), inv_scale)  # 1 / inv_scale, as OpenCV
    d = torch.arange(dst, dtype=torch.float64, device=lengths.device)
    fx = ((d + 0.5) * scale - 0.5).to(torch.float32)  # [K, dst]
    sx_f = torch.floor(fx)
    fx = fx - sx_f
    sx = sx_f.to(torch.int64)
    last = lengths - 1
    zero = torch.zeros_like(fx)
    if rows:  # rows keep the fraction and clamp both indices
        i0 = sx.clamp(min=0).minimum(last)
        i1 = (sx + 1).clamp(min=0).minimum(last)
    else:  # columns outside the image: first/last column with the fraction zeroed
        fx = torch.where(sx < 0, zero, fx)
        sx = sx.clamp(min=0)
        beyond = sx >= last
        fx = torch.where(beyond, zero, fx)
        i0 = torch.where(beyond, last, sx)
        i1 = (i0 + 1).minimum(last)
    w0 = 1.0 - fx  # float32, as OpenCV's 1.f - fx
    scale_coef = float(_CV_COEF_SCALE)
    return i0, i1, _cv_round(w0.to(torch.float64) * scale_coef), _cv_round(fx.to(torch.float64) * scale_coef)


def opencv_linear_crops(frames: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """``cv2.resize(frame[y1:y2, x1:x2], (w, h))`` (INTER_LINEAR) for every frame, exactly, batched.

    ``frames`` uint8 ``[K, C, H, W]``; ``boxes`` ``[K, 4]`` whole-pixel ``(x1, y1, x2, y2)`` with
    ``0 <= x1 < x2 <= W`` and ``0 <= y1 < y2 <= H`` (not checked here); returns uint8 ``[K, C, h, w]`` on the
    frames' device. Each crop has its own source size, so OpenCV's fixed-point taps (11-bit coefficients,
    the integer horizontal pass and the vectorised vertical rounding of :func:`resize_opencv_bilinear`) are
    computed for every frame at once where the boxes are (:func:`_linear_int_taps_batched`: no host sync,
    no table copied to the device) and gathered: one set of gathers for the whole batch, no per-frame loop,
    and the same pixels as OpenCV on any device.

    Example:
        >>> import torch
        >>> frames = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
        >>> opencv_linear_crops(frames, torch.tensor([[1, 1, 3, 3]]), (2, 2))[0, 0].tolist()
        [[5, 6], [9, 10]]
    """
    k, c = frames.shape[:2]
    h, w = size
    dev = frames.device
    # The taps are computed where the boxes are (no host round trip); MPS has no float64: there, on the CPU.
    work = torch.device("cpu") if dev.type == "mps" else dev
    corners = boxes.to(torch.int64)
    if corners.device != work:
        corners = corners.to(work)
    x1, y1 = corners[:, 0:1], corners[:, 1:2]

    def per_frame(lengths: Tensor, dst: int, rows: bool, offset: Tensor) -> list[Tensor]:
        i0, i1, c0, c1 = _linear_int_taps_batched(lengths, dst, rows)
        taps = [i0 + offset, i1 + offset, c0, c1]
        return taps if work == dev else [t.to(dev) for t in taps]

    ix0, ix1, cx0, cx1 = per_frame(corners[:, 2:3] - x1, w, False, x1)
    iy0, iy1, cy0, cy1 = per_frame(corners[:, 3:4] - y1, h, True, y1)
    full_w = frames.shape[-1]

    def horizontal(row_index: Tensor) -> Tensor:  # the two-tap integer pass on the source rows needed
        # gather in uint8 first: only the h needed rows per crop are widened to int32, never whole frames
        src_rows = frames.gather(2, row_index[:, None, :, None].expand(k, c, h, full_w))
        left = src_rows.gather(3, ix0[:, None, None, :].expand(k, c, h, w)).to(torch.int32)
        right = src_rows.gather(3, ix1[:, None, None, :].expand(k, c, h, w)).to(torch.int32)
        return (left * cx0[:, None, None, :] + right * cx1[:, None, None, :]) >> 4

    top = (horizontal(iy0) * cy0[:, None, :, None]) >> 16
    bottom = (horizontal(iy1) * cy1[:, None, :, None]) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def _fixed_point_taps(src: int, dst: int, area: bool, rows: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(index0, index1, coef0, coef1) of :func:`_opencv_linear_taps` with 11-bit integer coefficients."""
    i0, i1, w0, w1 = _opencv_linear_taps(src, dst, area, rows)
    return i0, i1, _cv_round(w0 * _CV_COEF_SCALE), _cv_round(w1 * _CV_COEF_SCALE)


def _opencv_fixed_point_linear(
    frames: Tensor, size: tuple[int, int], area: bool, rows_y: tuple[bool, bool]
) -> Tensor:
    """OpenCV's 8-bit linear resize: int horizontal pass, then the vectorised vertical rounding.

    ``area`` selects INTER_AREA's coefficients for enlarging axes; ``rows_y`` is the ``rows`` flag of
    :func:`_opencv_linear_taps` for (y, x).
    """
    dev = frames.device
    (src_h, src_w), (h, w) = frames.shape[-2:], size
    iy0, iy1, cy0, cy1 = DEVICE_TABLES.get(
        ("cv-linear", src_h, h, area, rows_y[0]), dev, lambda: _fixed_point_taps(src_h, h, area, rows_y[0])
    )
    ix0, ix1, cx0, cx1 = DEVICE_TABLES.get(
        ("cv-linear", src_w, w, area, rows_y[1]), dev, lambda: _fixed_point_taps(src_w, w, area, rows_y[1])
    )
    x = frames.to(torch.int32)
    rows = x[..., ix0] * cx0 + x[..., ix1] * cx1  # [N, C, H, w], < 2**20
    rows = rows >> 4
    top = (rows[..., iy0, :] * cy0[:, None]) >> 16
    bottom = (rows[..., iy1, :] * cy1[:, None]) >> 16
    return ((top + bottom + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def _cv_round(x: Tensor) -> Tensor:
    return torch.round(x).to(torch.int32)  # cvRound: round half to even, like torch.round


@lru_cache(maxsize=128)
def _opencv_area_box(src: int, dst: int) -> Tensor:
    """[dst, src] overlap-weighted box filter of OpenCV INTER_AREA shrinking along one axis."""
    w = torch.zeros(dst, src, dtype=torch.float64)
    scale = src / dst
    for i in range(dst):
        start, end = i * scale, min((i + 1) * scale, src)
        j = math.floor(start)
        while j < end:
            overlap = min(end, j + 1) - max(start, j)
            if overlap > 1e-12:
                w[i, j] += overlap / scale
            j += 1
    return w


def _opencv_area_integer_factors(src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int] | None:
    """(factor_y, factor_x) when OpenCV takes its integer-factor INTER_AREA path, else None.

    OpenCV tests ``|1 / (dst / src) - round(...)| < DBL_EPSILON`` on both axes in double precision, so a
    factor that is an integer mathematically can still miss it (then the float32 path runs).
    """
    factors = []
    for s, d in zip(src, dst, strict=True):
        scale = 1.0 / (d / s)
        iscale = round(scale)  # cvRound (half to even), like Python's round
        if abs(scale - iscale) >= 2.220446049250313e-16:
            return None
        factors.append(iscale)
    return factors[0], factors[1]


def _opencv_area_fast(frames: Tensor, fy: int, fx: int) -> Tensor:
    """OpenCV's integer-factor INTER_AREA (``resizeAreaFast_``) on uint8: integer block sums, then
    ``(sum + 2) >> 2`` for 2x2 blocks on 1, 3 or 4 channels, ``cvRound(sum * (1.f / area))`` otherwise."""
    n, c, src_h, src_w = frames.shape
    h, w = src_h // fy, src_w // fx
    sums = frames.to(torch.int32).reshape(n, c, h, fy, w, fx).sum(dim=(3, 5), dtype=torch.int32)
    if fy == 2 and fx == 2 and c in (1, 3, 4):
        return ((sums + 2) >> 2).to(torch.uint8)
    scale = float(np.float32(1.0) / np.float32(fy * fx))  # 1.f / area, a float32 division
    out = torch.round_(sums.to(torch.float32) * scale)  # float32 product; cvRound: half to even
    return out.clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=128)
def _opencv_area_tab(src: int, dst: int) -> tuple[Tensor, Tensor]:
    """OpenCV's INTER_AREA decimation table (``computeResizeAreaTab``) along one shrinking axis.

    Returns ``[dst, taps]`` source indices and float32 weights, each row in OpenCV's accumulation order: the
    partly covered first pixel, the fully covered ones, the partly covered last one. Rows with fewer taps
    are padded with weight 0 (adding ``+0.0`` leaves a float32 sum unchanged). Positions are computed in
    double precision from ``scale = 1 / (dst / src)`` like OpenCV, the weights rounded to float32.
    """
    scale = 1.0 / (dst / src)
    rows: list[list[tuple[int, float]]] = []
    for d in range(dst):
        start = d * scale
        end = start + scale
        cell = min(scale, src - start)
        first, last = math.ceil(start), math.floor(end)
        last = min(last, src - 1)
        first = min(first, last)
        taps = []
        if first - start > 1e-3:
            taps.append((first - 1, (first - start) / cell))
        taps.extend((j, 1.0 / cell) for j in range(first, last))
        if end - last > 1e-3:
            taps.append((last, min(min(end - last, 1.0), cell) / cell))
        rows.append(taps)
    width = max(len(taps) for taps in rows)
    index = np.zeros((dst, width), dtype=np.int64)
    weight = np.zeros((dst, width), dtype=np.float32)
    for d, taps in enumerate(rows):
        for t, (j, a) in enumerate(taps):
            index[d, t], weight[d, t] = j, np.float32(a)
    return torch.from_numpy(index), torch.from_numpy(weight)


def _opencv_area_float32(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """OpenCV's non-integer INTER_AREA (``ResizeArea_Invoker`` with float32 sums) on uint8 frames.

    Per source row, ``buf[dx] += src[sx] * alpha`` over the x table; per output row, ``sum = beta0 * buf0``
    then ``sum += beta * buf`` over the y table; ``cvRound`` at the end. Every product and every sum is a
    separate float32 operation here, in the same order, so the rounding is the same on any device.
    """
    dev = frames.device
    (src_h, src_w), (h, w) = frames.shape[-2:], size
    iy, wy = DEVICE_TABLES.get(("cv-area", src_h, h), dev, lambda: _opencv_area_tab(src_h, h))
    ix, wx = DEVICE_TABLES.get(("cv-area", src_w, w), dev, lambda: _opencv_area_tab(src_w, w))
    # The gathered [n, C, H, w, taps] tensor can be large (1080p -> 299 on 16 frames: ~0.5 GB): bound it.
    per_frame = frames.shape[1] * frames.shape[2] * ix.shape[0] * ix.shape[1]
    step = max(1, _AREA_GATHER_ELEMENTS // max(per_frame, 1))
    if frames.shape[0] > step:
        return torch.cat([_opencv_area_float32(part, size) for part in frames.split(step)])
    x = frames.to(torch.float32)
    cols = x[..., ix]  # [N, C, H, w, taps_x]
    buf = cols[..., 0] * wx[:, 0]
    for t in range(1, ix.shape[1]):
        buf = buf + cols[..., t] * wx[:, t]
    del cols
    rows = buf[..., iy, :]  # [N, C, h, taps_y, w]
    out = rows[..., 0, :] * wy[:, 0, None]
    for t in range(1, iy.shape[1]):
        out = out + rows[..., t, :] * wy[:, t, None]
    return torch.round_(out).clamp_(0, 255).to(torch.uint8)


def resize_opencv_area(frames: Tensor, size: tuple[int, int], *, backend: str = "auto") -> Tensor:
    """Resize ``[N, C, H, W]`` frames like ``cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)``.

    uint8 in -> uint8 out with OpenCV's rounding; float in -> float out. ``backend="opencv"`` calls OpenCV,
    ``"torch"`` runs our port on the frames' device, ``"auto"`` (default) picks OpenCV for uint8 CPU frames
    when it is installed (:func:`metrics.functional.backend.resolve_backend`).

    Example:
        >>> import torch
        >>> resize_opencv_area(torch.arange(16.).reshape(1, 1, 4, 4), (2, 2))[0, 0].tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """
    h, w = _check_frames(frames, size)
    if resolve_backend(backend, frames, max_channels=4) == "opencv":
        return _resize_with_opencv(frames, (h, w), "INTER_AREA")
    src_h, src_w = frames.shape[-2:]
    if src_h >= h and src_w >= w:
        if frames.dtype != torch.uint8:
            out = _float_separable(
                frames.to(torch.float64),
                ("cv-area-box", src_h, h, src_w, w),
                lambda: _opencv_area_box(src_h, h),
                lambda: _opencv_area_box(src_w, w),
            )
            return out.to(frames.dtype)
        factors = _opencv_area_integer_factors((src_h, src_w), (h, w))
        if factors is not None:
            return _opencv_area_fast(frames, *factors)
        return _opencv_area_float32(frames, (h, w))
    if frames.dtype == torch.uint8:
        return _opencv_fixed_point_linear(frames, (h, w), True, (False, False))
    return _float_separable(
        frames,
        ("cv-area-linear", src_h, h, src_w, w),
        lambda: _taps_to_matrix(_opencv_linear_taps(src_h, h, True), src_h),
        lambda: _taps_to_matrix(_opencv_linear_taps(src_w, w, True), src_w),
    )


def resize_opencv_bilinear(frames: Tensor, size: tuple[int, int], *, backend: str = "auto") -> Tensor:
    """Resize ``[N, C, H, W]`` frames like ``cv2.resize(img, (W, H))`` (``INTER_LINEAR``, no antialiasing).

    uint8 in -> uint8 out with OpenCV's fixed-point rounding; float in -> float out. ``backend`` as in
    :func:`resize_opencv_area`.

    Example:
        >>> import torch
        >>> resize_opencv_bilinear(torch.tensor([[[[0., 4.]]]]), (1, 4))[0, 0, 0].tolist()
        [0.0, 1.0, 3.0, 4.0]
    """
    h, w = _check_frames(frames, size)
    if resolve_backend(backend, frames, max_channels=4) == "opencv":
        return _resize_with_opencv(frames, (h, w), "INTER_LINEAR")
    src_h, src_w = frames.shape[-2:]
    if (src_h, src_w) == (h, w):
        return frames.clone()
    if frames.dtype == torch.uint8:
        return _opencv_fixed_point_linear(frames, (h, w), False, (True, False))
    return _float_separable(
        frames,
        ("cv-linear-float", src_h, h, src_w, w),
        lambda: _taps_to_matrix(_opencv_linear_taps(src_h, h, False, rows=True), src_h),
        lambda: _taps_to_matrix(_opencv_linear_taps(src_w, w, False), src_w),
    )


def _resize_with_opencv(frames: Tensor, size: tuple[int, int], flag: str) -> Tensor:
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError('backend="opencv" needs OpenCV: pip install "jwbdh-callbacks[opencv]"') from err
    if frames.dtype != torch.uint8:
        raise ValueError(f'`frames` must be uint8 for backend="opencv", got dtype {frames.dtype}')
    if frames.shape[0] == 0:
        return frames.new_empty((0, frames.shape[1], *size))
    arr = frames.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([cv2.resize(img, (size[1], size[0]), interpolation=getattr(cv2, flag)) for img in arr])
    if out.ndim == 3:  # OpenCV drops a singleton channel axis
        out = out[..., None]
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(frames.device)


# ----------------------------------------------------------------------------------------------- TF1
@lru_cache(maxsize=128)
def _tf1_linear_weights(src: int, dst: int) -> Tensor:
    w = torch.zeros(dst, src, dtype=torch.float64)
    scale = src / dst
    for i in range(dst):
        x = float(np.float32(i) * np.float32(scale))  # TF1 computes source positions in float32
        x0 = min(math.floor(x), src - 1)
        fx = x - x0
        w[i, x0] += 1.0 - fx
        w[i, min(x0 + 1, src - 1)] += fx
    return w


def resize_tf1_bilinear(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize like TF1 ``tf.image.resize_bilinear(align_corners=False)``; returns float (float64 stays).

    The resize inside the TF FID Inception graph, which torch-fidelity reproduces.

    Example:
        >>> import torch
        >>> resize_tf1_bilinear(torch.tensor([[[[0., 4.]]]]), (1, 4))[0, 0, 0].tolist()
        [0.0, 2.0, 4.0, 4.0]
    """
    h, w = _check_frames(frames, size)
    src_h, src_w = frames.shape[-2:]
    return _float_separable(
        frames,
        ("tf1", src_h, h, src_w, w),
        lambda: _tf1_linear_weights(src_h, h),
        lambda: _tf1_linear_weights(src_w, w),
    )
