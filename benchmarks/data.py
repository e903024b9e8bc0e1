"""Benchmark inputs: procedural avatar videos (jwbdh_callbacks.synthetic) and a degraded "generated" copy.

Real-looking content matters for some baselines: Canny's hysteresis and region boxes behave very differently
on white noise than on a rendered figure with a face and hands, so the frame benchmarks use rendered frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor


@lru_cache(maxsize=16)
def avatar_videos(
    num_videos: int, num_frames: int, height: int, width: int, seed: int = 0, other_motion: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """``(reference, generated, keypoints)``: uint8 ``[B, T, 3, H, W]`` twice and float ``[B, T, 133, 3]``.

    The generated videos are the references blurred (sigma 0.8 px) plus Gaussian noise (sigma 6 grey levels),
    a stand-in for a generator's output that differs from the reference everywhere (finite PSNR). With
    ``other_motion`` they are the same identity rendered with another motion and speech (then blurred and
    noised), like a generator that got the identity right but not the motion: Fréchet distances then are a
    sizeable fraction of the feature variances, as with real generated videos.
    """
    from jwbdh_callbacks.synthetic import add_noise, gaussian_blur, generate_sample

    refs, gens, kps = [], [], []
    for i in range(num_videos):
        key = seed * 1000 + i
        sample = generate_sample(key, num_frames=num_frames, height=height, width=width)
        source = sample.video
        if other_motion:
            source = generate_sample(
                key + 500, identity=sample.identity, num_frames=num_frames, height=height, width=width
            ).video
        refs.append(sample.video)
        gens.append(add_noise(gaussian_blur(source, 0.8), 6.0, seed=key))
        kps.append(sample.keypoints)
    return torch.stack(refs), torch.stack(gens), torch.stack(kps)


def to_hwc(frames: Tensor, bgr: bool = False) -> list[np.ndarray]:
    """uint8 ``[N, 3, H, W]`` (RGB) -> list of contiguous ``H x W x 3`` numpy frames (RGB or BGR)."""
    x = frames.permute(0, 2, 3, 1)
    if bgr:
        x = x.flip(-1)
    return [np.ascontiguousarray(f) for f in x.cpu().numpy()]
