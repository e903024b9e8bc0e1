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


def test_frame_blend_interpolator_scores_linear_fades_perfectly_and_flicker_lower():
    from metrics.backbones.smoke import FrameBlendInterpolator, frame_blend_ref
    from metrics.motion import MotionSmoothness

    # A fade whose frames change by an even number of grey levels per frame: the blend of frames 2k and
    # 2k+2 is exactly frame 2k+1, so the VBench score (255 - MAD) / 255 is exactly 1.
    t = torch.arange(9, dtype=torch.int64).view(1, 9, 1, 1, 1)
    base = torch.randint(0, 100, (1, 1, 3, 20, 24), generator=torch.Generator().manual_seed(0))
    fade = (base + 16 * t).to(torch.uint8)
    flicker = fade.clone()
    flicker[:, 1::2] = 255 - flicker[:, 1::2]
    scores = {}
    for name, video in (("fade", fade), ("flicker", flicker)):
        ms = MotionSmoothness(interpolator=frame_blend_ref(), small_frames="pad")
        ms.update(video)
        scores[name] = float(ms.compute())
        assert not ms.is_calibrated
    assert scores["fade"] == 1.0
    # flicker: each odd frame is predicted by the blend of its (unflickered) even neighbours, truncated to
    # uint8 as VBench does; the expected MAD is computed by hand from the frames.
    pred = (fade[:, 0:-2:2].double() + fade[:, 2::2].double()) / 2
    mad = (pred.trunc() - flicker[:, 1::2].double()).abs().mean()
    assert scores["flicker"] == pytest.approx((255 - float(mad)) / 255, abs=1e-12)
    out = FrameBlendInterpolator()(
        torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.full((1, 1, 1, 1), 0.25)
    )
    assert torch.equal(out["imgt_pred"], torch.full((1, 3, 4, 4), 0.25))
    with pytest.raises(ValueError, match="no weights"):
        frame_blend_ref().factory("some.pth")
