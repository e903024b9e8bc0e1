"""Controlled, seeded degradations of a video: :func:`add_noise`, :func:`gaussian_blur`,
:func:`temporal_jitter`, :func:`frozen_frames` and :func:`identity_change` (a re-render with another
identity), each optionally restricted to a keypoint region, and :func:`degrade`, which dispatches on a
name of :data:`DEGRADATIONS`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    _S_DEGRADE,
    _check_choice,
    _check_float,
    _check_int,
    _check_seed,
    _check_video,
    _derive_seed,
    _rng,
)
from .identity import AvatarIdentity
from .regions import _restrict
from .render import render_avatar
from .sample import AvatarSample


def _to_float255(video: Tensor) -> Tensor:
    return video.float() if video.dtype == torch.uint8 else video.float() * 255.0


def _from_float255(x: Tensor, like: Tensor) -> Tensor:
    if like.dtype == torch.uint8:
        return x.round().clamp(0, 255).to(torch.uint8)
    return (x / 255.0).clamp(0.0, 1.0).to(like.dtype)


def add_noise(
    video: Tensor,
    sigma: float,
    *,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Additive Gaussian noise of standard deviation ``sigma`` grey levels (0-255 scale, also for float
    videos), rounded and clipped to the valid range (as a sensor would saturate).

    Example:
        >>> v = generate_sample(0, num_frames=2).video
        >>> (add_noise(v, 8.0).float() - v.float()).std().round()
        tensor(8.)
    """
    video = _check_video(video)
    sigma = _check_float("sigma", sigma, 0.0)
    seed = _check_seed("seed", seed)
    g = torch.Generator().manual_seed(_derive_seed(seed, _S_DEGRADE, 1))
    x = _to_float255(video)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
    out = _from_float255(x + sigma * noise.to(x.device), video)
    return _restrict(video, out, region, keypoints, margin)


def _gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(
    video: Tensor,
    sigma: float,
    *,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Separable Gaussian blur of standard deviation ``sigma`` pixels (radius ceil(3 sigma), edges
    replicated) applied to every frame; ``sigma=0`` returns an unchanged copy.

    Example:
        >>> v = generate_sample(0, num_frames=2).video
        >>> gaussian_blur(v, 1.5).shape == v.shape
        True
    """
    video = _check_video(video)
    sigma = _check_float("sigma", sigma, 0.0)
    if sigma == 0.0:
        return _restrict(video, video.clone(), region, keypoints, margin)
    x = _to_float255(video)
    shape = x.shape
    frames = x.reshape(-1, 3, shape[-2], shape[-1])
    k = _gaussian_kernel(sigma).to(x.device)
    r = (k.numel() - 1) // 2
    frames = F.pad(frames, (r, r, 0, 0), mode="replicate")
    frames = F.conv2d(frames, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    frames = F.pad(frames, (0, 0, r, r), mode="replicate")
    frames = F.conv2d(frames, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    out = _from_float255(frames.reshape(shape), video)
    return _restrict(video, out, region, keypoints, margin)


def temporal_jitter_indices(
    num_frames: int, strength: float, *, seed: int = 0, max_offset: int = 2
) -> Tensor:
    """Frame order ``[T]`` for :func:`temporal_jitter` in ``"swap"`` mode: a permutation made of
    ``round(strength * T / 2)`` disjoint swaps of frames at most ``max_offset`` apart (as many as fit)."""
    num_frames = _check_int("num_frames", num_frames, 1)
    strength = _check_float("strength", strength, 0.0, 1.0)
    max_offset = _check_int("max_offset", max_offset, 1)
    rng = _rng(_check_seed("seed", seed), _S_DEGRADE, 2)
    order = np.arange(num_frames)
    free = np.ones(num_frames, dtype=bool)
    wanted = round(strength * num_frames / 2)
    done = 0
    for i in rng.permutation(num_frames):
        if done >= wanted:
            break
        if not free[i]:
            continue
        cands = [
            j
            for j in range(max(0, i - max_offset), min(num_frames, i + max_offset + 1))
            if j != i and free[j]
        ]
        if not cands:
            continue
        j = int(cands[int(rng.integers(len(cands)))])
        order[i], order[j] = order[j], order[i]
        free[i] = free[j] = False
        done += 1
    return torch.from_numpy(order)


def temporal_jitter(
    video: Tensor,
    strength: float,
    *,
    seed: int = 0,
    mode: str = "swap",
    max_offset: int = 2,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Local temporal disorder: ``strength`` in [0, 1] is the fraction of frames displaced.

    ``mode="swap"`` permutes the frames (disjoint swaps of frames at most ``max_offset`` apart, so the set of
    frames is unchanged); ``mode="duplicate"`` replaces the displaced frames by a copy of a neighbour within
    ``max_offset`` (a stutter: some frames are lost). Each video of a batch gets its own draw. With
    ``return_indices=True`` also returns the source frame index ``[..., T]`` of every output frame.

    Example:
        >>> v = generate_sample(0, num_frames=8).video
        >>> out, idx = temporal_jitter(v, 0.5, seed=1, return_indices=True)
        >>> sorted(idx.tolist()) == list(range(8))
        True
    """
    video = _check_video(video)
    strength = _check_float("strength", strength, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    _check_choice("mode", mode, ("swap", "duplicate"))
    max_offset = _check_int("max_offset", max_offset, 1)
    batch = video.reshape(-1, *video.shape[-4:])
    T = batch.shape[1]
    orders = []
    for b in range(batch.shape[0]):
        sub_seed = _derive_seed(seed, b)
        if mode == "swap":
            order = temporal_jitter_indices(T, strength, seed=sub_seed, max_offset=max_offset)
        else:
            rng = _rng(sub_seed, _S_DEGRADE, 3)
            order = np.arange(T)
            for i in rng.permutation(T)[: round(strength * T)]:
                offsets = [o for o in range(-max_offset, max_offset + 1) if o != 0 and 0 <= i + o < T]
                if offsets:
                    order[i] = i + offsets[int(rng.integers(len(offsets)))]
            order = torch.from_numpy(order)
        orders.append(order)
    idx = torch.stack(orders)
    out = torch.stack([batch[b, idx[b].to(batch.device)] for b in range(batch.shape[0])]).reshape(video.shape)
    out = _restrict(video, out, region, keypoints, margin)
    idx = idx.reshape(*video.shape[:-4], T)
    return (out, idx) if return_indices else out


def frozen_frames(
    video: Tensor,
    fraction: float,
    *,
    start: int | None = None,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
    return_span: bool = False,
) -> Tensor | tuple[Tensor, tuple[int, int]]:
    """Hold one frame: frames ``start .. start + n - 1`` show frame ``start``, ``n = round(fraction * T)``.

    ``start`` defaults to a seeded random position where the span fits. With ``return_span=True`` also
    returns ``(start, n)``. The same span is used for every video of a batch.

    Example:
        >>> v = generate_sample(0, num_frames=8).video
        >>> out, (start, n) = frozen_frames(v, 0.5, start=2, return_span=True)
        >>> bool((out[2:6] == v[2]).all()), (start, n)
        (True, (2, 4))
    """
    video = _check_video(video)
    fraction = _check_float("fraction", fraction, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    T = video.shape[-4]
    n = round(fraction * T)
    if start is None:
        start = int(_rng(seed, _S_DEGRADE, 4).integers(0, T - n + 1)) if n < T else 0
    else:
        start = _check_int("start", start, 0)
        if start + n > T:
            raise ValueError(f"`start` + frozen length must be <= T={T}, got start={start}, length={n}")
    idx = torch.arange(T)
    idx[start : start + n] = start
    out = video.index_select(video.ndim - 4, idx.to(video.device))
    out = _restrict(video, out, region, keypoints, margin)
    return (out, (start, n)) if return_span else out


def identity_change(
    sample: AvatarSample,
    strength: float = 1.0,
    *,
    seed: int | None = None,
    keep_geometry: bool = True,
    region: str | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Re-render ``sample``'s motion with another identity blended in by ``strength`` (0 = unchanged).

    The new identity is :meth:`AvatarIdentity.from_seed` of ``seed`` (default: a seed derived from the
    sample's identity). ``keep_geometry=True`` keeps the original proportions and positions, so the
    keypoints are exactly the original ones and only colours, hair and textures change; ``False`` also
    blends the body proportions (the motion is the same, the keypoints move with the new body).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> other = identity_change(s, 1.0, seed=99)
        >>> other.shape == s.video.shape, bool((other != s.video).any())
        (True, True)
    """
    if not isinstance(sample, AvatarSample):
        raise ValueError(
            f"`sample` must be an AvatarSample (identity_change re-renders), got {type(sample).__name__}"
        )
    strength = _check_float("strength", strength, 0.0, 1.0)
    new_seed = (
        _derive_seed(sample.identity.seed, _S_DEGRADE, 5) if seed is None else _check_seed("seed", seed)
    )
    if new_seed == sample.identity.seed:
        raise ValueError(
            f"`seed` must differ from the sample's identity seed ({new_seed}) to change identity"
        )
    blended = sample.identity.blend(AvatarIdentity.from_seed(new_seed), strength, keep_geometry=keep_geometry)
    video, _ = render_avatar(
        blended, sample.motion, sample.video.shape[-2], sample.video.shape[-1], sample.framing
    )
    return _restrict(sample.video, video, region, sample.keypoints, margin)


#: Name -> what ``strength`` means, for :func:`degrade`.
DEGRADATIONS: dict[str, str] = {
    "noise": "Gaussian noise sigma in grey levels (0-255)",
    "blur": "Gaussian blur sigma in pixels",
    "temporal_jitter": "fraction of frames displaced by local swaps, in [0, 1]",
    "identity_change": "blend towards another identity, in [0, 1]",
    "frozen_frames": "fraction of the video held on one frame, in [0, 1]",
}


def degrade(
    video_or_sample: Tensor | AvatarSample,
    kind: str,
    strength: float,
    *,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Apply the degradation ``kind`` (a key of :data:`DEGRADATIONS`) of ``strength`` to a video.

    Accepts a video tensor (``[T,3,H,W]`` / ``[B,T,3,H,W]``) or an :class:`AvatarSample`
    (``identity_change`` needs the sample; its keypoints are used for ``region`` when ``keypoints`` is None).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> degrade(s, "blur", 2.0, region="face").shape
        torch.Size([4, 3, 160, 128])
    """
    _check_choice("kind", kind, tuple(DEGRADATIONS))
    sample = video_or_sample if isinstance(video_or_sample, AvatarSample) else None
    video = sample.video if sample is not None else _check_video(video_or_sample)
    if keypoints is None and sample is not None:
        keypoints = sample.keypoints
    common = {"region": region, "keypoints": keypoints, "margin": margin}
    if kind == "noise":
        return add_noise(video, strength, seed=seed, **common)
    if kind == "blur":
        return gaussian_blur(video, strength, **common)
    if kind == "temporal_jitter":
        return temporal_jitter(video, strength, seed=seed, **common)  # type: ignore[return-value]
    if kind == "frozen_frames":
        return frozen_frames(video, strength, seed=seed, **common)  # type: ignore[return-value]
    if sample is None:
        raise ValueError(
            "`video_or_sample` must be an AvatarSample for kind='identity_change' (it re-renders)"
        )
    new_seed = _derive_seed(sample.identity.seed, _S_DEGRADE, 5, seed)
    if new_seed == sample.identity.seed:
        new_seed += 1
    return identity_change(sample, strength, seed=new_seed, region=region, margin=margin)
