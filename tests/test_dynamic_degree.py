"""DynamicDegree (VBench DD) and RAFT: decision rule on injected flows, real RAFT path, loading, DDP.

Flow stand-ins subclass :class:`PaddedFlowNet`, so our padding/cropping code runs around them:

* ``_ContentFlow`` returns ``u = R2 - R1``, ``v = G2 - G1`` per (padded) pixel, i.e. flows written into the
  frames' red/green channels by the test;
* ``_PhaseCorrelationFlow`` estimates the global translation between two frames by phase correlation, so
  a texture moved by ``s`` px per frame has a flow of exactly ``s`` px.

Expected values are derived by hand from spec/vbench.md s4 (VBench's ``get_score``, ``set_params`` and
``check_move``), not with the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.optical_flow import Raft_Large_Weights, raft_large

from metrics.backbones.cache import BackboneRef
from metrics.backbones.raft import PaddedFlowNet, RAFTLarge, padding_for
from metrics.backbones.weights import WeightsChecksumError
from metrics.dynamic_degree import DynamicDegree, count_threshold, frame_interval
from tests.ddp import run_ddp


class _ContentFlow(PaddedFlowNet):
    def __init__(self, weights: object = None) -> None:
        super().__init__()

    def flow_padded(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        return (image2 - image1)[:, :2]


class _PhaseCorrelationFlow(PaddedFlowNet):
    def __init__(self, weights: object = None) -> None:
        super().__init__()

    def flow_padded(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        n, _, h, w = image1.shape
        spec1, spec2 = torch.fft.fft2(image1.mean(1).double()), torch.fft.fft2(image2.mean(1).double())
        cross = spec2 * spec1.conj()
        corr = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-12)).real.reshape(n, -1)
        peak = corr.argmax(dim=1)
        dy, dx = peak // w, peak % w
        dy, dx = torch.where(dy > h // 2, dy - h, dy), torch.where(dx > w // 2, dx - w, dx)
        return torch.stack([dx, dy], 1).float()[:, :, None, None].expand(n, 2, h, w)


CONTENT = BackboneRef("test_content_flow", _ContentFlow, None)
PHASE = BackboneRef("test_phase_correlation_flow", _PhaseCorrelationFlow, None)


def _levels_video(levels: list[float], h: int = 16, w: int = 16) -> torch.Tensor:
    """One uint8 video whose frame i is uniformly red = levels[i]: uniform flow |levels[i+1] - levels[i]|."""
    video = torch.zeros(1, len(levels), 3, h, w, dtype=torch.uint8)
    video[0, :, 0] = torch.tensor(levels, dtype=torch.uint8)[:, None, None]
    return video


def _texture(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 4, w // 4, generator=g)
    return (F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0] * 255).to(torch.uint8)


# ------------------------------------------------------------------------------- VBench formulas
def test_frame_interval_and_count_threshold_use_bankers_rounding():
    # VBench: interval = max(1, round(fps / 8)), count_num = round(4 * (N / 16.0)) with Python's round
    assert [frame_interval(f) for f in (1, 3, 4, 8, 10, 11.9, 12, 16, 20, 24, 25, 28, 29.97, 30, 60)] == [
        1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 8,
    ]  # fmt: skip
    # round half to even: N/4 = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 4.5 -> 4, 5.5 -> 6
    assert [count_threshold(n) for n in (1, 2, 6, 10, 14, 16, 18, 22, 41, 49)] == [
        0,
        0,
        2,
        2,
        4,
        4,
        4,
        6,
        10,
        12,
    ]


def test_fps_subsampling_selects_the_frames_vbench_keeps():
    dd = DynamicDegree(flow_model=CONTENT)
    ramp = _levels_video([2 * i for i in range(16)], 128, 128)  # 2 grey levels per frame; thres = 3.0 px
    assert dd.pair_scores(ramp, fps=8)[0].tolist() == [2.0] * 15  # interval 1: every step is 2 < 3
    assert dd.pair_scores(ramp, fps=24)[0].tolist() == [6.0] * 5  # interval 3: frames 0, 3, ..., 15
    assert dd.pair_scores(ramp, fps=12)[0].tolist() == [4.0] * 7  # round(1.5) = 2: frames 0, 2, ..., 14
    assert dd.pair_scores(ramp, fps=20)[0].tolist() == [4.0] * 7  # round(2.5) = 2

    # One batch, one frame rate per video: 8 fps -> static; 24, 12 and 20 fps -> dynamic; 11.9 fps -> 1.
    batch = ramp.expand(5, -1, -1, -1, -1)
    dd.update(batch, fps=torch.tensor([8.0, 24.0, 12.0, 20.0, 11.9]))
    assert float(dd.compute()) == pytest.approx(3 / 5)

    # Jumps on frames that subsampling drops do not count: 100-level flashes on frames 1, 4, 7, ...
    flashes = _levels_video([100 if i % 3 == 1 else 0 for i in range(16)], 128, 128)
    for fps, expected in ((24, 0.0), (8, 1.0)):
        metric = DynamicDegree(flow_model=CONTENT, fps=fps)  # the constructor's default frame rate
        metric.update(flashes)
        assert float(metric.compute()) == expected


def test_threshold_is_strict_and_uses_the_unpadded_short_side():
    # 128 x 200 frames: thres = 6 * 128 / 256 = 3.0 px (the long side would give 4.6875).
    # N = 5 sampled frames -> count_num = round(1.25) = 1 moving pair needed.
    dd = DynamicDegree(flow_model=CONTENT, fps=8)
    at_threshold = _levels_video([0, 3, 6, 9, 12], 128, 200)  # every pair exactly 3.0: not > thres
    one_above = _levels_video([0, 3, 7, 10, 13], 128, 200)  # one pair of 4.0 > 3.0
    assert dd.pair_scores(one_above)[0].tolist() == [3.0, 4.0, 3.0, 3.0]
    dd.update(at_threshold)
    assert float(dd.compute()) == 0.0
    dd.update(one_above)
    assert float(dd.compute()) == 0.5


@pytest.mark.parametrize(
    ("num_frames", "moving", "expected"),
    [
        (1, 0, False),  # no pair: never dynamic
        (2, 0, True),  # count_num = round(0.5) = 0: one pair, always dynamic
        (3, 0, False),
        (3, 1, True),
        (6, 1, False),  # round(1.5) = 2
        (6, 2, True),
        (10, 2, True),  # round(2.5) = 2 (round-half-up would need 3)
        (14, 3, False),  # round(3.5) = 4
        (14, 4, True),
        (18, 4, True),  # round(4.5) = 4 (half-up: 5)
        (22, 5, False),  # round(5.5) = 6
        (22, 6, True),
    ],
)
def test_count_rule_with_bankers_rounding(num_frames, moving, expected):
    levels = [0.0] * num_frames
    for j in range(moving):  # pair j moves by 10 levels (thres for 16 px frames: 0.375)
        levels[j + 1 :] = [v + 10 for v in levels[j + 1 :]]
    dd = DynamicDegree(flow_model=CONTENT, fps=8)
    dd.update(_levels_video(levels))
    assert float(dd.compute()) == float(expected)


def test_padding_effects_top5_over_padded_map():
    # 21 x 18 frames -> replicate-padded to 24 x 24 with (left, right, top, bottom) = (3, 3, 1, 2).
    assert padding_for(21, 18) == (3, 3, 1, 2)
    # Frame 1 has one pixel of red 7 at the top-left (video 0) or bottom-right (video 1) corner.
    # Padded map: that corner is replicated over (1 + 1) x (3 + 1) = 8 px (top-left) or
    # (1 + 2) x (1 + 3) = 12 px (bottom-right); k = int(24 * 24 * 0.05) = 28 -> 8 * 7 / 28 = 2.0 and
    # 12 * 7 / 28 = 3.0.
    # Cropped map: k = int(21 * 18 * 0.05) = 18 -> 7 / 18. thres = 6 * 18 / 256 = 0.421875 px.
    videos = torch.zeros(2, 3, 3, 21, 18, dtype=torch.uint8)
    videos[0, 1, 0, 0, 0] = 7
    videos[1, 1, 0, -1, -1] = 7
    padded = DynamicDegree(flow_model=CONTENT, fps=8)
    cropped = DynamicDegree(flow_model=CONTENT, fps=8, crop_flow=True)
    assert [s.tolist() for s in padded.pair_scores(videos)] == [[2.0, 2.0], [3.0, 3.0]]
    for scores in cropped.pair_scores(videos):
        assert scores.tolist() == pytest.approx([7 / 18, 7 / 18], rel=1e-12)
    # N = 3 -> one moving pair needed: VBench's padded map makes both videos dynamic, cropping would not.
    padded.update(videos)
    cropped.update(videos)
    assert float(padded.compute()) == 1.0
    assert float(cropped.compute()) == 0.0


def test_static_video_is_not_dynamic_and_moving_one_is():
    texture = _texture(64, 64, seed=1)  # thres = 6 * 64 / 256 = 1.5 px
    static = texture[None, None].expand(1, 16, -1, -1, -1)
    fast = torch.stack([texture.roll(5 * i, dims=-1) for i in range(16)])[None]  # 5 px per frame
    slow = torch.stack([texture.roll(i, dims=-2) for i in range(16)])[None]  # 1 px per frame, vertical
    dd = DynamicDegree(flow_model=PHASE)
    assert dd.pair_scores(fast, fps=8)[0].tolist() == [5.0] * 15
    assert dd.pair_scores(slow, fps=24)[0].tolist() == [3.0] * 5
    for video, fps, expected in ((static, 8, 0.0), (fast, 8, 1.0), (slow, 8, 0.0), (slow, 24, 1.0)):
        metric = DynamicDegree(flow_model=PHASE)
        metric.update(video, fps=fps)
        assert float(metric.compute()) == expected, (fps, expected)


# ---------------------------------------------------------------------------------------- real RAFT
def test_real_raft_random_init_end_to_end_with_padding_and_cropping(monkeypatch):
    # 121 x 126 frames: the smallest torchvision RAFT accepts after padding to 128 x 128;
    # InputPadder "sintel" pads: rows (3, 4), columns (1, 1).
    g = torch.Generator().manual_seed(3)
    first = _texture(121, 126, seed=2)
    second = (first.int() + torch.randint(-20, 20, first.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    video = torch.stack([first, second])[None]
    dd = DynamicDegree(weights=None, fps=8)  # 2 frames: one pair, count_num = 0 -> always dynamic
    net = dd.flow_model.get("cpu")
    assert isinstance(net, RAFTLarge) and net.num_flow_updates == 20

    seen = {}
    original = net._refine  # RAFT after the feature encoder, on the padded [-1, 1] first frames

    def spy(image1: torch.Tensor, fmap1: torch.Tensor, fmap2: torch.Tensor) -> torch.Tensor:
        seen["image1"] = image1.clone()
        seen["flow"] = original(image1, fmap1, fmap2)
        return seen["flow"]

    monkeypatch.setattr(net, "_refine", spy)
    dd.update(video)  # the real path: padding, [0, 255] -> [-1, 1], RAFT with 20 updates, decision
    assert float(dd.compute()) == 1.0
    assert not dd.is_calibrated and dd.state_dict() == {}

    # Independent reference: torchvision's own preprocessing ([0, 1] -> normalise to [-1, 1]), hand-written
    # replicate padding, raft_large with the same weights and 20 updates.
    reference = raft_large(weights=None).eval()
    reference.load_state_dict(net.raft.state_dict())
    x1, x2 = Raft_Large_Weights.C_T_V1.transforms()(first[None], second[None])
    x1, x2 = (F.pad(x, (1, 1, 3, 4), mode="replicate") for x in (x1, x2))
    with torch.no_grad():
        flow = reference(x1, x2, num_flow_updates=20)[-1]
    assert seen["image1"].shape == (1, 3, 128, 128)
    torch.testing.assert_close(seen["image1"][:, :, 0], seen["image1"][:, :, 3])  # replicated rows
    torch.testing.assert_close(seen["image1"], x1)
    torch.testing.assert_close(seen["flow"], flow, rtol=1e-4, atol=1e-3)

    # The score the metric derives from that flow is VBench's get_score on the PADDED flow (numpy float32:
    # sort, top int(h * w * 0.05), mean). RAFT is not rerun: the network returns the flow it produced above.
    monkeypatch.setattr(net, "_refine", lambda image1, fmap1, fmap2: seen["flow"])
    fl = flow[0].permute(1, 2, 0).numpy()
    rad = np.sqrt(np.square(fl[:, :, 0]) + np.square(fl[:, :, 1])).flatten()
    expected = float(np.mean(np.abs(np.sort(-rad))[: int(128 * 128 * 0.05)]))
    assert dd.pair_scores(video)[0].tolist() == pytest.approx([expected], rel=1e-4)

    # forward(crop=True) returns the flow cropped back to the frame (InputPadder.unpad)
    with torch.no_grad():
        out = net(first[None].float(), second[None].float(), crop=True)
    assert out.shape == (1, 2, 121, 126)
    torch.testing.assert_close(out, seen["flow"][:, :, 3:124, 1:127])
    monkeypatch.undo()

    with pytest.raises(ValueError, match=r"`videos`.*121"):
        dd.update(torch.zeros(1, 2, 3, 64, 64, dtype=torch.uint8))


def test_raft_loads_test_written_checkpoint_strictly(tmp_path, monkeypatch):
    torch.manual_seed(123)
    source = raft_large(weights=None)
    path = tmp_path / "raft_large_test.pth"
    torch.save(source.state_dict(), path)
    loaded = RAFTLarge(weights=str(path))
    for (name, a), (_, b) in zip(source.state_dict().items(), loaded.raft.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    state = source.state_dict()
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("mask_predictor")}, missing)
    # a checkpoint that does not fit: one line naming both accepted layouts (see test_raft_conversion.py)
    with pytest.raises(ValueError, match=r"raft_large state_dict.*4 key\(s\) missing") as info:
        RAFTLarge(weights=str(missing))
    assert "\n" not in str(info.value)
    extra = tmp_path / "extra.pth"
    torch.save({**state, "module.unexpected": torch.zeros(1)}, extra)
    with pytest.raises(ValueError, match=r"1 key\(s\) unexpected \(e\.g\. 'module\.unexpected'\)"):
        RAFTLarge(weights=str(extra))
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / "raft_large_C_T_V1-22a6c225.pth").write_bytes(path.read_bytes())
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(weights_dir))
    with pytest.raises(WeightsChecksumError, match="raft_large_c_t_v1"):
        RAFTLarge(weights="raft_large_c_t_v1")


# ------------------------------------------------------------------------------------------- inputs
def test_input_validation():
    dd = DynamicDegree(flow_model=CONTENT)
    video = _levels_video([0, 10, 20])
    with pytest.raises(ValueError, match="frame rate"):
        dd.update(video)
    with pytest.raises(ValueError, match="one value per video"):
        dd.update(video, fps=[8, 8])
    for bad in (0, -3, float("nan"), float("inf"), "24"):
        with pytest.raises(ValueError, match="fps"):
            dd.update(video, fps=bad)
    with pytest.raises(ValueError, match="`videos`"):
        dd.update(video[0], fps=8)
    with pytest.raises(ValueError, match="`videos`"):
        dd.update(video.float(), fps=8)  # [0, 255] floats
    dd.update(video[:0])  # an empty batch needs no frame rate and adds nothing
    assert int(dd.num_videos) == 0
    for kwargs in ({"fps": -1}, {"target_fps": 0}, {"top_fraction": 0}, {"batch_size": 0}, {"crop_flow": 1}):
        with pytest.raises(ValueError):
            DynamicDegree(flow_model=CONTENT, **kwargs)
    with pytest.raises(ValueError, match="BackboneRef"):
        DynamicDegree(flow_model=_ContentFlow())
    float_video = video.float() / 255
    dd.update(float_video, fps=np.float32(8.0))
    assert dd.pair_scores(float_video, fps=8)[0].tolist() == pytest.approx([10.0, 10.0], rel=1e-5)


# ---------------------------------------------------------------------------------------------- DDP
def _ddp_batches() -> list:
    """Per batch: a ramp (dynamic at any frame rate) and a video whose flashes only subsampling drops."""
    batches = []
    for i in range(5):
        ramp = _levels_video([(i + 1) * j for j in range(12)], 16, 24)
        flashes = _levels_video([100 if j % 3 == 1 else 0 for j in range(12)], 16, 24)
        batches.append((torch.cat([ramp, flashes]), torch.tensor([8.0 * (i + 1), 24.0 if i % 2 else 8.0])))
    return batches


def _ddp_worker(rank: int, world_size: int, batches: list) -> dict:
    dd = DynamicDegree(flow_model=CONTENT, batch_size=3)
    for i, (videos, fps) in enumerate(batches):
        if (i < 2 * world_size and i % world_size == rank) or (i >= 2 * world_size and rank == 0):
            dd.update(videos, fps=fps)
    return {"dd": dd.compute(), "n": dd.num_videos.clone()}


@pytest.mark.ddp
def test_ddp_uneven_updates_equal_single_process():
    batches = _ddp_batches()
    single = _ddp_worker(0, 1, batches)
    assert 0.0 < float(single["dd"]) < 1.0 and int(single["n"]) == 10
    for result in run_ddp(_ddp_worker, world_size=2, args=(batches,)):
        assert torch.equal(result["dd"], single["dd"])
