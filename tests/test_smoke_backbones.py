"""Smoke-preset stand-in networks: block-matching flow measures real motion; frozen frames lower DD."""

from __future__ import annotations

import pytest
import torch

from jwbdh_callbacks.synthetic import frozen_frames, generate_sample
from metrics.backbones.smoke import BlockMatchingFlow, TinyImageEncoder, block_matching_flow_ref
from metrics.dynamic_degree import DynamicDegree


def _texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h + 16, w + 16), mode="bicubic").clamp(0, 1) * 255


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (3, -2), (-5, 4)])
def test_block_matching_recovers_a_known_translation(dx, dy):
    big = _texture(64, 80)
    frame1 = big[..., 8:72, 8:88]
    frame2 = big[..., 8 - dy : 72 - dy, 8 - dx : 88 - dx]  # content moves by (dx, dy)
    flow = BlockMatchingFlow(radius=6)(frame1, frame2)
    assert flow.shape == (1, 2, 64, 80)
    inner = flow[..., 8:-8, 8:-8]  # blocks away from the replicated border
    assert torch.all(inner[:, 0] == dx) and torch.all(inner[:, 1] == dy)


def test_frozen_frames_lower_dynamic_degree_on_synthetic_avatars():
    moving, frozen = (
        DynamicDegree(flow_model=block_matching_flow_ref()),
        DynamicDegree(flow_model=block_matching_flow_ref()),
    )
    for seed in range(8):
        sample = generate_sample(seed=seed, num_frames=16)
        moving.update(sample.video[None], fps=sample.fps)
        frozen.update(frozen_frames(sample.video, 1.0)[None], fps=sample.fps)
    assert float(frozen.compute()) == 0.0  # a frozen video has exactly zero flow
    assert float(moving.compute()) > 0.0


def test_tiny_image_encoder_and_bad_arguments():
    assert TinyImageEncoder(out_dim=3, uint8_input=True)(
        torch.zeros(2, 3, 20, 30, dtype=torch.uint8)
    ).shape == (2, 3)
    with pytest.raises(ValueError):
        TinyImageEncoder(out_dim=0)
    with pytest.raises(ValueError):
        BlockMatchingFlow(radius=0)
    with pytest.raises(ValueError, match="no weights"):
        block_matching_flow_ref().factory("some.pth")
