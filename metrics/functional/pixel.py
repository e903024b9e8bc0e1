"""Batched per-frame pixel metrics (SSIM, PSNR, pixel cosine) that reproduce scikit-image.

The JWB-DH-V1 benchmark scripts score videos frame by frame with scikit-image on ``uint8`` frames laid out
``H x W x 3``. The functions here compute the same numbers for a whole batch of frames at once, in pure
torch (CPU or GPU), on ``[N, C, H, W]`` tensors:

* :func:`ssim_frames` -- ``skimage.metrics.structural_similarity(ref, gen, channel_axis=-1, ...)``
* :func:`psnr_frames` -- ``skimage.metrics.peak_signal_noise_ratio(ref, gen, data_range=255)``
* :func:`pixel_cosine_frames` -- the scripts' pixel "CSIM": cosine similarity of the raw pixel vectors.

Every function returns a ``float64`` tensor of shape ``[N]`` on the inputs' device. Inputs are used as
given (no clamping, no rescaling): they must already be on the ``0..data_range`` scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pixel_cosine_frames", "psnr_frames", "ssim_frames"]

#: Gaussian window of the SSIM paper as scikit-image builds it: sigma 1.5, truncate 3.5.
_GAUSSIAN_SIGMA = 1.5
_GAUSSIAN_TRUNCATE = 3.5
#: ``scipy.ndimage`` radius rule ``int(truncate * sigma + 0.5)`` -> 5, i.e. an 11-tap kernel.
_GAUSSIAN_RADIUS = int(_GAUSSIAN_TRUNCATE * _GAUSSIAN_SIGMA + 0.5)
_GAUSSIAN_WIN = 2 * _GAUSSIAN_RADIUS + 1

#: JWB-DH-V1 script rule: the uniform window is at most 7 px wide.
_DEFAULT_UNIFORM_WIN = 7

_COMPUTE_DTYPES = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------- validation
def _check_frames(generated: Tensor, reference: Tensor) -> None:
    """Raise ``ValueError`` unless both are numeric ``[N, C, H, W]`` tensors of one shape on one device."""
    for name, t in (("generated", generated), ("reference", reference)):
        if not isinstance(t, Tensor):
            raise ValueError(f"`{name}` must be a torch.Tensor of shape [N, C, H, W], got {type(t).__name__}")
        if t.dtype == torch.bool or t.dtype.is_complex:
            raise ValueError(
                f"`{name}` must have a real numeric dtype (uint8, integer or floating point), got {t.dtype} "
                f"(shape {tuple(t.shape)})"
            )
        if t.ndim != 4:
            raise ValueError(
                f"`{name}` must be 4-D [N, C, H, W], got {t.ndim}-D shape {tuple(t.shape)} (dtype {t.dtype})"
            )
        if min(t.shape[1:]) < 1:
            raise ValueError(
                f"`{name}` must have C, H, W >= 1 in [N, C, H, W], got shape {tuple(t.shape)} "
                f"(dtype {t.dtype})"
            )
    if generated.shape != reference.shape:
        raise ValueError(
            f"`generated` and `reference` must have the same shape [N, C, H, W], got "
            f"generated {tuple(generated.shape)} ({generated.dtype}) vs "
            f"reference {tuple(reference.shape)} ({reference.dtype})"
        )
    if generated.device != reference.device:
        raise ValueError(
            f"`generated` and `reference` must be on the same device, got "
            f"generated on {generated.device} vs reference on {reference.device}"
        )


def _check_data_range(data_range: float) -> float:
    value = float(data_range)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`data_range` must be a finite number > 0, got {data_range!r}")
    return value


def _resolve_win_size(window: str, win_size: int | None, height: int, width: int) -> int:
    """Window side for ``window`` on ``height x width`` frames (see :func:`ssim_frames`)."""
    smaller = min(height, width)
    if window == "gaussian":
        if win_size is not None and win_size != _GAUSSIAN_WIN:
            raise ValueError(
                f'`win_size` must be None or {_GAUSSIAN_WIN} for window="gaussian" (the 11-tap sigma=1.5 '
                f"kernel fixes it), got {win_size!r}"
            )
        if smaller < _GAUSSIAN_WIN:
            raise ValueError(
                f"`reference` (and `generated`) frames must be at least {_GAUSSIAN_WIN}x{_GAUSSIAN_WIN} px "
                f'for window="gaussian", got H x W = {height} x {width}'
            )
        return _GAUSSIAN_WIN
    if window != "uniform":
        raise ValueError(f'`window` must be "uniform" or "gaussian", got {window!r}')
    if win_size is None:
        # JWB-DH-V1 rule: w = min(7, min(H, W)), made odd by subtracting 1. A side < 3 px would give w = 1:
        # skimage's sample covariance divides by w*w - 1 = 0, so SSIM is undefined there.
        if smaller < 3:
            raise ValueError(
                f"`reference` (and `generated`) frames need a smaller side >= 3 px for SSIM (the window "
                f"would be 1 px and the sample covariance normalisation w*w/(w*w-1) is undefined), got "
                f"H x W = {height} x {width}"
            )
        w = min(_DEFAULT_UNIFORM_WIN, smaller)
        return w - 1 if w % 2 == 0 else w
    if isinstance(win_size, bool) or not isinstance(win_size, int):
        raise ValueError(f"`win_size` must be an int or None, got {win_size!r}")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"`win_size` must be odd and >= 3, got {win_size}")
    if win_size > smaller:
        raise ValueError(
            f"`win_size` ({win_size}) must be <= the smaller frame side, got H x W = {height} x {width}"
        )
    return win_size


# ----------------------------------------------------------------------------------------------------- SSIM
def _gaussian_kernel1d(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 1-D kernel ``scipy.ndimage.gaussian_filter`` uses: exp(-x^2 / (2 sigma^2)) normalised to sum 1.

    The 2-D filter is the separable product of this kernel along H and along W, so the 11 x 11 weights sum
    to 1 as well.
    """
    x = torch.arange(-_GAUSSIAN_RADIUS, _GAUSSIAN_RADIUS + 1, dtype=torch.float64)
    phi = torch.exp(-0.5 / (_GAUSSIAN_SIGMA * _GAUSSIAN_SIGMA) * x * x)
    return (phi / phi.sum()).to(dtype=dtype, device=device)


def _valid_filter(stats: Tensor, window: str, win: int) -> Tensor:
    """Local (weighted) means of ``stats`` ``[B, H, W]`` over every window that lies fully inside the frame.

    skimage filters with border padding and then crops ``(win - 1) // 2`` px on every side before
    averaging, so only windows fully inside the image survive. Filtering without any padding ("valid"
    mode) gives exactly those values, hence the border mode is irrelevant. Both filters are separable and
    run as two 1-D passes (H, then W, as ``scipy.ndimage`` does).
    """
    t = stats.unsqueeze(1)  # [B, 1, H, W]
    if window == "uniform":
        t = F.avg_pool2d(t, kernel_size=(win, 1), stride=1, padding=0)
        t = F.avg_pool2d(t, kernel_size=(1, win), stride=1, padding=0)
    else:
        k = _gaussian_kernel1d(t.dtype, t.device)
        t = F.conv2d(t, k.view(1, 1, win, 1))
        t = F.conv2d(t, k.view(1, 1, 1, win))
    return t.squeeze(1)


#: Pixels per chunk of the exact uint8 SSIM path on a CPU. Streaming bands of about this size through the
#: whole computation keeps every intermediate in the L2 cache; one pass over a whole batch of 512 x 512
#: frames is memory-bound and ~4x slower. On accelerators the whole batch goes at once (up to the cap
#: below), since kernel launches, not caches, are what costs there.
_CPU_CHUNK_PIXELS = 1 << 16
_ACCEL_CHUNK_PIXELS = 1 << 24


def _box_sum(t: Tensor, dim: int, win: int) -> Tensor:
    """Sums of ``win`` consecutive values along ``dim`` ("valid" mode: the size shrinks by ``win - 1``).

    Built from shifted adds by doubling (``s2 = x + x>>1``, ``s4 = s2 + s2>>2``, ...), so a window of ``w``
    costs about ``log2(w) + popcount(w)`` element passes rather than ``w``; integer inputs stay exact.
    """
    out_len = t.shape[dim] - win + 1
    parts: list[Tensor] = []
    offset = 0
    block, size = t, 1  # block[i] = sum of `size` consecutive values starting at i
    remaining = win
    while remaining:
        if remaining & size:
            parts.append(block.narrow(dim, offset, out_len))
            offset += size
            remaining -= size
        if remaining:
            length = block.shape[dim] - size
            block = block.narrow(dim, 0, length) + block.narrow(dim, size, length)
            size *= 2
    if len(parts) == 1:
        return parts[0].clone()
    out = parts[0] + parts[1]
    for part in parts[2:]:
        out.add_(part)
    return out


def _ssim_uint8_uniform_sums(generated: Tensor, reference: Tensor, win: int, c1: float, c2: float) -> Tensor:
    """Sum of the SSIM map of every ``[P, H, W]`` uint8 plane (uniform window), computed exactly.

    For uint8 frames every window statistic is an integer: with ``n = win * win``, ``S_x``, ``S_y``,
    ``S_xy`` and ``S_{x^2+y^2}`` are box sums, and skimage's

    ``(2 mu_x mu_y + C1)(2 cov + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2))``

    with sample covariance (``n / (n - 1)``) equals, after multiplying numerator and denominator by
    ``n^2 * n (n - 1)``,

    ``(2 S_x S_y + n^2 C1)(2 (n S_xy - S_x S_y) + n (n-1) C2) /
    ((S_x^2 + S_y^2 + n^2 C1)(n S_{x^2+y^2} - S_x^2 - S_y^2 + n (n-1) C2))``.

    All integer parts are computed exactly in int32 (bounded by ``2 n^2 255^2 < 2^31`` for ``win <= 11``;
    int64 beyond), so the only rounding left is the final float64 products and the division: the result
    matches skimage to ~1e-14, without the float cancellation of ``E[x^2] - E[x]^2``. Why not float
    filters: the exact integer form is also what makes the CPU path fast (int32 adds, no float64 passes
    until the last step); the bands below keep it in cache.
    """
    planes, h, w = generated.shape
    n = win * win
    int_dtype = torch.int32 if win <= 11 else torch.int64
    k1 = n * n * c1
    k2 = n * (n - 1) * c2
    out_h = h - win + 1
    cap = _ACCEL_CHUNK_PIXELS if generated.device.type != "cpu" else _CPU_CHUNK_PIXELS
    sums = torch.zeros(planes, dtype=torch.float64, device=generated.device)
    if h * w <= cap:
        step_planes, step_rows = max(1, cap // (h * w)), out_h
    else:
        step_planes, step_rows = 1, max(1, cap // w - (win - 1))
    # filled on the device (torch.tensor(..., device=cuda) would copy from the host and sync)
    k1_t = torch.full((), k1, dtype=torch.float64, device=generated.device)
    k2_t = torch.full((), k2, dtype=torch.float64, device=generated.device)
    for p0 in range(0, planes, step_planes):
        p1 = min(planes, p0 + step_planes)
        for r0 in range(0, out_h, step_rows):
            r1 = min(out_h, r0 + step_rows)
            x8 = generated[p0:p1, r0 : r1 + win - 1]
            y8 = reference[p0:p1, r0 : r1 + win - 1]
            stats = torch.empty((4, *x8.shape), dtype=int_dtype, device=x8.device)
            x, y, sq, xy = stats.unbind(0)
            x.copy_(x8)
            y.copy_(y8)
            torch.mul(x, x, out=sq)
            sq.addcmul_(y, y)
            torch.mul(x, y, out=xy)
            s_x, s_y, s_sq, s_xy = _box_sum(_box_sum(stats, 3, win), 2, win).unbind(0)
            prod = s_x * s_y
            squares = (s_x * s_x).addcmul_(s_y, s_y)
            # A 0-dim float64 constant plus an int tensor is float64 (type promotion): no explicit casts.
            num = torch.add(k1_t, prod, alpha=2)
            num.mul_(torch.add(k2_t, s_xy, alpha=2 * n).sub_(prod, alpha=2))
            den = torch.add(k1_t, squares)
            den.mul_(torch.add(k2_t, s_sq, alpha=n).sub_(squares))
            sums[p0:p1] += num.div_(den).sum(dim=(-2, -1))
    return sums


def ssim_frames(
    generated: Tensor,
    reference: Tensor,
    *,
    window: str = "uniform",
    win_size: int | None = None,
    data_range: float = 255.0,
    k1: float = 0.01,
    k2: float = 0.03,
    compute_dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Per-frame mean SSIM, equal to scikit-image's ``structural_similarity`` on each ``H x W x C`` frame.

    For every frame ``i`` the result equals
    ``skimage.metrics.structural_similarity(ref_hwc, gen_hwc, channel_axis=-1, data_range=data_range,
    win_size=w)``: the SSIM map of each channel is averaged over the valid interior (pixels at least
    ``(w - 1) // 2`` from every border) and the per-channel means are averaged.

    Args:
        generated: ``[N, C, H, W]`` frames (uint8, integer or float) on the ``0..data_range`` scale.
        reference: ``[N, C, H, W]`` reference frames, same shape. SSIM is symmetric in its two inputs.
        window: ``"uniform"`` -- skimage defaults: ``w x w`` box window with the sample covariance
            (``NP / (NP - 1)``, ``NP = w * w``). ``"gaussian"`` -- the SSIM paper variant as skimage
            computes it with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``: an 11 x 11
            Gaussian window (``truncate=3.5`` -> radius 5, each 1-D kernel normalised to sum 1) with
            population covariance; frames must be at least 11 x 11 px.
        win_size: uniform window side. ``None`` applies the JWB-DH-V1 script rule
            ``w = min(7, min(H, W))``, minus 1 if even; frames whose smaller side is < 3 px raise
            ``ValueError`` (w would be 1 and the sample covariance divides by ``w * w - 1 = 0``). An
            explicit value must be odd, >= 3 and <= ``min(H, W)``. For ``window="gaussian"`` only
            ``None`` or 11 is accepted.
        data_range: value range of the inputs (255 for uint8 frames); sets ``C1 = (k1 * data_range) ** 2``
            and ``C2 = (k2 * data_range) ** 2``.
        k1: SSIM luminance constant.
        k2: SSIM contrast/structure constant.
        compute_dtype: dtype of the filtering. ``torch.float64`` (default) matches skimage to ~1e-13.
            At the 0..255 scale the variances ``E[x^2] - E[x]^2`` subtract numbers up to ~6.5e4 whose
            float32 spacing is ~4e-3, which puts errors of up to ~3e-4 into single SSIM-map values of
            bright, flat regions, so float32 cannot guarantee 1e-5 parity. ``torch.float32`` is allowed
            for speed: the frames are shifted by each (frame, channel)'s reference mean before squaring
            (variances and covariances are shift invariant), which removes most of that cancellation; the
            per-frame means then stayed within ~1e-7 (random frames) to ~7e-6 (synthetic high-contrast
            frames) of float64 in our measurements, and the tests require 1e-3. The result is float64 either
            way. With the default float64, ``uint8`` inputs and ``window="uniform"`` (the JWB-DH-V1 case)
            every window statistic is an integer, so SSIM is computed from exact integer box sums (see
            ``_ssim_uint8_uniform_sums``): exact and the fastest route. ``torch.float32`` always takes the
            float32 filters (for devices without float64, e.g. Apple MPS).

    Returns:
        ``float64`` tensor ``[N]`` on the inputs' device (empty when ``N == 0``).

    Raises:
        ValueError: bad shapes/dtypes/devices, unknown ``window``, invalid ``win_size`` or frames that are too
            small, ``data_range <= 0``, negative ``k1``/``k2`` or a ``compute_dtype`` other than float32/64.

    Example:
        >>> import torch
        >>> ref = torch.randint(0, 256, (2, 3, 32, 48), dtype=torch.uint8)
        >>> ssim_frames(ref, ref)
        tensor([1., 1.], dtype=torch.float64)
        >>> noisy = (ref.double() + 20 * torch.randn(ref.shape)).clamp(0, 255).round().to(torch.uint8)
        >>> bool((ssim_frames(noisy, ref) < 1).all())
        True
    """
    _check_frames(generated, reference)
    data_range = _check_data_range(data_range)
    if not (float(k1) >= 0 and float(k2) >= 0):
        raise ValueError(f"`k1` and `k2` must be >= 0, got k1={k1!r}, k2={k2!r}")
    if compute_dtype not in _COMPUTE_DTYPES:
        raise ValueError(f"`compute_dtype` must be torch.float32 or torch.float64, got {compute_dtype!r}")
    n, c, h, w = generated.shape
    win = _resolve_win_size(window, win_size, h, w)
    if n == 0:
        return torch.empty(0, dtype=torch.float64, device=generated.device)

    c1 = (float(k1) * data_range) ** 2
    c2 = (float(k2) * data_range) ** 2
    exact = compute_dtype == torch.float64 and generated.dtype == reference.dtype == torch.uint8
    if window == "uniform" and exact:
        planes = n * c
        sums = _ssim_uint8_uniform_sums(
            generated.reshape(planes, h, w), reference.reshape(planes, h, w), win, c1, c2
        )
        per_channel = sums / ((h - win + 1) * (w - win + 1))
        return per_channel.reshape(n, c).mean(dim=1)

    x = generated.to(compute_dtype)
    y = reference.to(compute_dtype)
    # Shift both frames by the same per-(frame, channel) constant: variances and covariances are shift
    # invariant, and squaring values centred near 0 loses far less precision (matters in float32).
    shift = y.mean(dim=(-2, -1), keepdim=True)
    x = x - shift
    y = y - shift

    stats = torch.stack((x, y, x * x, y * y, x * y), dim=0)  # [5, N, C, H, W]
    filtered = _valid_filter(stats.reshape(5 * n * c, h, w), window, win)
    mu_x, mu_y, e_xx, e_yy, e_xy = filtered.reshape(5, n, c, *filtered.shape[-2:]).unbind(0)

    if window == "uniform":
        np_ = win * win
        cov_norm = np_ / (np_ - 1)  # sample covariance (skimage's use_sample_covariance=True)
    else:
        cov_norm = 1.0  # population covariance, as in Wang et al. 2004
    var_x = cov_norm * (e_xx - mu_x * mu_x)
    var_y = cov_norm * (e_yy - mu_y * mu_y)
    cov_xy = cov_norm * (e_xy - mu_x * mu_y)
    mu_x = mu_x + shift  # back to absolute means for the luminance term
    mu_y = mu_y + shift

    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    ssim_map = numerator / denominator  # [N, C, H - win + 1, W - win + 1]

    per_channel = ssim_map.mean(dim=(-2, -1), dtype=torch.float64)  # [N, C]
    return per_channel.mean(dim=1)


# ----------------------------------------------------------------------------------------------------- PSNR
def psnr_frames(generated: Tensor, reference: Tensor, *, data_range: float = 255.0) -> Tensor:
    """Per-frame PSNR ``10 * log10(data_range**2 / MSE)``, MSE over all pixels and channels of a frame.

    Equal to ``skimage.metrics.peak_signal_noise_ratio(ref, gen, data_range=data_range)`` per frame, computed
    in float64. Identical frames (MSE = 0) give ``+inf`` -- not NaN, and without any warning.

    Args:
        generated: ``[N, C, H, W]`` frames (uint8, integer or float) on the ``0..data_range`` scale.
        reference: ``[N, C, H, W]`` reference frames, same shape.
        data_range: peak signal value (255 for uint8 frames).

    Returns:
        ``float64`` tensor ``[N]`` in dB on the inputs' device (empty when ``N == 0``).

    Raises:
        ValueError: bad shapes/dtypes/devices or ``data_range <= 0``.

    Example:
        >>> import torch
        >>> ref = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
        >>> gen = ref.clone()
        >>> gen[1] += 1  # MSE = 1
        >>> psnr_frames(gen, ref)
        tensor([    inf, 48.1308], dtype=torch.float64)
    """
    _check_frames(generated, reference)
    data_range = _check_data_range(data_range)
    if generated.dtype == torch.uint8 and reference.dtype == torch.uint8:
        # Exact integer sum of squared differences (< 2**53 for any frame that fits in memory), then one
        # float64 division: the same value as the float64 mean of the exact integer squares, in a quarter of
        # the memory traffic.
        diff = generated.to(torch.int32) - reference.to(torch.int32)
        sse = diff.square_().flatten(1).sum(dim=1, dtype=torch.int64)
        mse = sse.to(torch.float64) / max(1, diff.shape[1:].numel())
    else:
        diff = generated.to(torch.float64) - reference.to(torch.float64)
        mse = diff.square().flatten(1).mean(dim=1)
    # torch divides by zero silently: MSE = 0 -> data_range**2 / 0 = inf -> log10(inf) = inf.
    return 10 * torch.log10(data_range**2 / mse)


# ---------------------------------------------------------------------------------------------- pixel CSIM
def pixel_cosine_frames(generated: Tensor, reference: Tensor) -> Tensor:
    """Per-frame cosine similarity of the two flattened raw pixel arrays (the JWB-DH-V1 pixel "CSIM").

    Each frame is flattened over ``C, H, W`` and cast to float64; the result is
    ``dot(g, r) / (||g|| * ||r||)``, and ``0.0`` when either norm is 0 (e.g. an all-black frame).

    Args:
        generated: ``[N, C, H, W]`` frames (uint8, integer or float).
        reference: ``[N, C, H, W]`` reference frames, same shape.

    Returns:
        ``float64`` tensor ``[N]`` in ``[-1, 1]`` on the inputs' device (empty when ``N == 0``).

    Raises:
        ValueError: bad shapes/dtypes/devices.

    Example:
        >>> import torch
        >>> ref = torch.arange(12, dtype=torch.uint8).view(1, 3, 2, 2).repeat(2, 1, 1, 1)
        >>> gen = torch.stack((ref[0] * 2, torch.zeros_like(ref[0])))
        >>> pixel_cosine_frames(gen, ref)
        tensor([1., 0.], dtype=torch.float64)
    """
    _check_frames(generated, reference)
    g = generated.to(torch.float64).flatten(1)
    r = reference.to(torch.float64).flatten(1)
    dot = (g * r).sum(dim=1)
    norm_g = torch.linalg.vector_norm(g, dim=1)
    norm_r = torch.linalg.vector_norm(r, dim=1)
    nonzero = (norm_g > 0) & (norm_r > 0)
    denominator = torch.where(nonzero, norm_g * norm_r, torch.ones_like(dot))
    return torch.where(nonzero, dot / denominator, torch.zeros_like(dot))
