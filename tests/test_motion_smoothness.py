"""MotionSmoothness (VBench MS) and AMT-S: formula, behaviour, checkpoint layout, DDP, batching.

The reference computation in these tests re-implements VBench's ``motion_smoothness.py`` pipeline the way
VBench runs it (numpy/cv2 frames, one pair at a time through the network, ``InputPadder`` arithmetic,
``tensor2img`` truncation, ``cv2.absdiff``), independently of ``metrics.motion``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import metrics.backbones.amt as amt_module
from metrics.backbones.amt import AMTS, padding_for
from metrics.backbones.cache import BackboneRef
from metrics.backbones.weights import REGISTRY, WeightsUnavailableError
from metrics.motion import MotionSmoothness, motion_smoothness_scores, vbench_scale_factor
from tests.ddp import run_ddp

# state_dict of networks/AMT-S.py Model(corr_radius=3, corr_lvls=4, num_flows=3), the architecture VBench
# builds from cfgs/AMT-S.yaml and into which it loads amt-s.pth['state_dict'] strictly. Read from
# github.com/MCG-NKU/AMT @ 70f988fbfc0d3d458beba1ee49caf876e57968fe (networks/AMT-S.py, networks/blocks/*.py;
# identical in Vchitect/VBench @ 45e79ec vbench/third_party/amt). Instance norms have no parameters.
PUBLIC_AMT_S_KEYS = """
feat_encoder.conv1.weight 32x3x7x7
feat_encoder.conv1.bias 32
feat_encoder.layer1.0.conv1.weight 8x32x1x1
feat_encoder.layer1.0.conv1.bias 8
feat_encoder.layer1.0.conv2.weight 8x8x3x3
feat_encoder.layer1.0.conv2.bias 8
feat_encoder.layer1.0.conv3.weight 32x8x1x1
feat_encoder.layer1.0.conv3.bias 32
feat_encoder.layer1.1.conv1.weight 8x32x1x1
feat_encoder.layer1.1.conv1.bias 8
feat_encoder.layer1.1.conv2.weight 8x8x3x3
feat_encoder.layer1.1.conv2.bias 8
feat_encoder.layer1.1.conv3.weight 32x8x1x1
feat_encoder.layer1.1.conv3.bias 32
feat_encoder.layer2.0.conv1.weight 16x32x1x1
feat_encoder.layer2.0.conv1.bias 16
feat_encoder.layer2.0.conv2.weight 16x16x3x3
feat_encoder.layer2.0.conv2.bias 16
feat_encoder.layer2.0.conv3.weight 64x16x1x1
feat_encoder.layer2.0.conv3.bias 64
feat_encoder.layer2.0.downsample.0.weight 64x32x1x1
feat_encoder.layer2.0.downsample.0.bias 64
feat_encoder.layer2.1.conv1.weight 16x64x1x1
feat_encoder.layer2.1.conv1.bias 16
feat_encoder.layer2.1.conv2.weight 16x16x3x3
feat_encoder.layer2.1.conv2.bias 16
feat_encoder.layer2.1.conv3.weight 64x16x1x1
feat_encoder.layer2.1.conv3.bias 64
feat_encoder.layer3.0.conv1.weight 24x64x1x1
feat_encoder.layer3.0.conv1.bias 24
feat_encoder.layer3.0.conv2.weight 24x24x3x3
feat_encoder.layer3.0.conv2.bias 24
feat_encoder.layer3.0.conv3.weight 96x24x1x1
feat_encoder.layer3.0.conv3.bias 96
feat_encoder.layer3.0.downsample.0.weight 96x64x1x1
feat_encoder.layer3.0.downsample.0.bias 96
feat_encoder.layer3.1.conv1.weight 24x96x1x1
feat_encoder.layer3.1.conv1.bias 24
feat_encoder.layer3.1.conv2.weight 24x24x3x3
feat_encoder.layer3.1.conv2.bias 24
feat_encoder.layer3.1.conv3.weight 96x24x1x1
feat_encoder.layer3.1.conv3.bias 96
feat_encoder.conv2.weight 84x96x1x1
feat_encoder.conv2.bias 84
encoder.pyramid1.0.0.weight 20x3x3x3
encoder.pyramid1.0.0.bias 20
encoder.pyramid1.0.1.weight 20
encoder.pyramid1.1.0.weight 20x20x3x3
encoder.pyramid1.1.0.bias 20
encoder.pyramid1.1.1.weight 20
encoder.pyramid2.0.0.weight 32x20x3x3
encoder.pyramid2.0.0.bias 32
encoder.pyramid2.0.1.weight 32
encoder.pyramid2.1.0.weight 32x32x3x3
encoder.pyramid2.1.0.bias 32
encoder.pyramid2.1.1.weight 32
encoder.pyramid3.0.0.weight 44x32x3x3
encoder.pyramid3.0.0.bias 44
encoder.pyramid3.0.1.weight 44
encoder.pyramid3.1.0.weight 44x44x3x3
encoder.pyramid3.1.0.bias 44
encoder.pyramid3.1.1.weight 44
encoder.pyramid4.0.0.weight 56x44x3x3
encoder.pyramid4.0.0.bias 56
encoder.pyramid4.0.1.weight 56
encoder.pyramid4.1.0.weight 56x56x3x3
encoder.pyramid4.1.0.bias 56
encoder.pyramid4.1.1.weight 56
decoder4.convblock.0.0.weight 112x113x3x3
decoder4.convblock.0.0.bias 112
decoder4.convblock.0.1.weight 112
decoder4.convblock.1.conv1.0.weight 112x112x3x3
decoder4.convblock.1.conv1.0.bias 112
decoder4.convblock.1.conv1.1.weight 112
decoder4.convblock.1.conv2.0.weight 20x20x3x3
decoder4.convblock.1.conv2.0.bias 20
decoder4.convblock.1.conv2.1.weight 20
decoder4.convblock.1.conv3.0.weight 112x112x3x3
decoder4.convblock.1.conv3.0.bias 112
decoder4.convblock.1.conv3.1.weight 112
decoder4.convblock.1.conv4.0.weight 20x20x3x3
decoder4.convblock.1.conv4.0.bias 20
decoder4.convblock.1.conv4.1.weight 20
decoder4.convblock.1.conv5.weight 112x112x3x3
decoder4.convblock.1.conv5.bias 112
decoder4.convblock.1.prelu.weight 112
decoder4.convblock.2.weight 112x48x4x4
decoder4.convblock.2.bias 48
decoder3.convblock.0.0.weight 132x136x3x3
decoder3.convblock.0.0.bias 132
decoder3.convblock.0.1.weight 132
decoder3.convblock.1.conv1.0.weight 132x132x3x3
decoder3.convblock.1.conv1.0.bias 132
decoder3.convblock.1.conv1.1.weight 132
decoder3.convblock.1.conv2.0.weight 20x20x3x3
decoder3.convblock.1.conv2.0.bias 20
decoder3.convblock.1.conv2.1.weight 20
decoder3.convblock.1.conv3.0.weight 132x132x3x3
decoder3.convblock.1.conv3.0.bias 132
decoder3.convblock.1.conv3.1.weight 132
decoder3.convblock.1.conv4.0.weight 20x20x3x3
decoder3.convblock.1.conv4.0.bias 20
decoder3.convblock.1.conv4.1.weight 20
decoder3.convblock.1.conv5.weight 132x132x3x3
decoder3.convblock.1.conv5.bias 132
decoder3.convblock.1.prelu.weight 132
decoder3.convblock.2.weight 132x36x4x4
decoder3.convblock.2.bias 36
decoder2.convblock.0.0.weight 96x100x3x3
decoder2.convblock.0.0.bias 96
decoder2.convblock.0.1.weight 96
decoder2.convblock.1.conv1.0.weight 96x96x3x3
decoder2.convblock.1.conv1.0.bias 96
decoder2.convblock.1.conv1.1.weight 96
decoder2.convblock.1.conv2.0.weight 20x20x3x3
decoder2.convblock.1.conv2.0.bias 20
decoder2.convblock.1.conv2.1.weight 20
decoder2.convblock.1.conv3.0.weight 96x96x3x3
decoder2.convblock.1.conv3.0.bias 96
decoder2.convblock.1.conv3.1.weight 96
decoder2.convblock.1.conv4.0.weight 20x20x3x3
decoder2.convblock.1.conv4.0.bias 20
decoder2.convblock.1.conv4.1.weight 20
decoder2.convblock.1.conv5.weight 96x96x3x3
decoder2.convblock.1.conv5.bias 96
decoder2.convblock.1.prelu.weight 96
decoder2.convblock.2.weight 96x24x4x4
decoder2.convblock.2.bias 24
decoder1.convblock.0.0.weight 60x64x3x3
decoder1.convblock.0.0.bias 60
decoder1.convblock.0.1.weight 60
decoder1.convblock.1.conv1.0.weight 60x60x3x3
decoder1.convblock.1.conv1.0.bias 60
decoder1.convblock.1.conv1.1.weight 60
decoder1.convblock.1.conv2.0.weight 20x20x3x3
decoder1.convblock.1.conv2.0.bias 20
decoder1.convblock.1.conv2.1.weight 20
decoder1.convblock.1.conv3.0.weight 60x60x3x3
decoder1.convblock.1.conv3.0.bias 60
decoder1.convblock.1.conv3.1.weight 60
decoder1.convblock.1.conv4.0.weight 20x20x3x3
decoder1.convblock.1.conv4.0.bias 20
decoder1.convblock.1.conv4.1.weight 20
decoder1.convblock.1.conv5.weight 60x60x3x3
decoder1.convblock.1.conv5.bias 60
decoder1.convblock.1.prelu.weight 60
decoder1.convblock.2.weight 60x24x4x4
decoder1.convblock.2.bias 24
update4.convc1.weight 64x392x1x1
update4.convc1.bias 64
update4.convf1.weight 40x4x7x7
update4.convf1.bias 40
update4.convf2.weight 20x40x3x3
update4.convf2.bias 20
update4.conv.weight 68x84x3x3
update4.conv.bias 68
update4.gru.0.weight 76x116x3x3
update4.gru.0.bias 76
update4.gru.2.weight 76x76x3x3
update4.gru.2.bias 76
update4.feat_head.0.weight 76x76x3x3
update4.feat_head.0.bias 76
update4.feat_head.2.weight 44x76x3x3
update4.feat_head.2.bias 44
update4.flow_head.0.weight 76x76x3x3
update4.flow_head.0.bias 76
update4.flow_head.2.weight 4x76x3x3
update4.flow_head.2.bias 4
update3.convc1.weight 64x392x1x1
update3.convc1.bias 64
update3.convf1.weight 40x4x7x7
update3.convf1.bias 40
update3.convf2.weight 20x40x3x3
update3.convf2.bias 20
update3.conv.weight 68x84x3x3
update3.conv.bias 68
update3.gru.0.weight 76x104x3x3
update3.gru.0.bias 76
update3.gru.2.weight 76x76x3x3
update3.gru.2.bias 76
update3.feat_head.0.weight 76x76x3x3
update3.feat_head.0.bias 76
update3.feat_head.2.weight 32x76x3x3
update3.feat_head.2.bias 32
update3.flow_head.0.weight 76x76x3x3
update3.flow_head.0.bias 76
update3.flow_head.2.weight 4x76x3x3
update3.flow_head.2.bias 4
update2.convc1.weight 64x392x1x1
update2.convc1.bias 64
update2.convf1.weight 40x4x7x7
update2.convf1.bias 40
update2.convf2.weight 20x40x3x3
update2.convf2.bias 20
update2.conv.weight 68x84x3x3
update2.conv.bias 68
update2.gru.0.weight 76x92x3x3
update2.gru.0.bias 76
update2.gru.2.weight 76x76x3x3
update2.gru.2.bias 76
update2.feat_head.0.weight 76x76x3x3
update2.feat_head.0.bias 76
update2.feat_head.2.weight 20x76x3x3
update2.feat_head.2.bias 20
update2.flow_head.0.weight 76x76x3x3
update2.flow_head.0.bias 76
update2.flow_head.2.weight 4x76x3x3
update2.flow_head.2.bias 4
comb_block.0.weight 18x9x3x3
comb_block.0.bias 18
comb_block.1.weight 18
comb_block.2.weight 3x18x3x3
comb_block.2.bias 3
"""
PUBLIC_AMT_S_PARAMETERS = 2_990_543  # AMT paper, Table 1: AMT-S 2.99 M parameters


# ---------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(autouse=True)
def _one_thread():
    """AMT-S on 128-px frames is made of many small kernels: one thread is faster than two on a shared
    2-core machine (OpenMP workers spin), and it makes the single-process run of the DDP test use the same
    kernels as the (single-threaded) DDP workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_ms(**kwargs) -> MotionSmoothness:
    return MotionSmoothness(weights=None, **kwargs)


def _vbench_motion_scores(net: torch.nn.Module, video: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """VBench's ``MotionSmoothness.motion_score`` on a uint8 ``[T, 3, H, W]`` video, written out step by step.

    Returns the score with VBench's truncating ``tensor2img``, the score had it rounded instead, and the
    network's raw (padded) predictions.
    """
    frames = [f.permute(1, 2, 0).numpy() for f in video]  # what cv2 decoding + BGR2RGB yields: HWC RGB uint8
    inputs = [torch.tensor(f).permute(2, 0, 1).unsqueeze(0) / 255.0 for f in frames[0::2]]
    assert len(inputs) > 1
    ht, wd = inputs[0].shape[-2:]
    divisor = 16  # scale 1 -> int(16 / 1)
    pad_ht = (((ht // divisor) + 1) * divisor - ht) % divisor
    pad_wd = (((wd // divisor) + 1) * divisor - wd) % divisor
    pad = [pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2]
    inputs = [F.pad(x, pad, mode="replicate") for x in inputs]
    embt = torch.tensor(1 / 2).float().view(1, 1, 1, 1)
    outputs = [inputs[0]]
    with torch.no_grad():
        for in0, in1 in itertools.pairwise(inputs):  # one pair per call, as VBench
            outputs += [net(in0, in1, embt, scale_factor=1.0, eval=True)["imgt_pred"], in1]
    raw = torch.cat(outputs[1::2])
    hp, wp = outputs[0].shape[-2:]
    outputs = [o[..., pad[2] : hp - pad[3], pad[0] : wp - pad[1]] for o in outputs]
    scores = []
    for rounding in (False, True):
        images = []
        for o in outputs:
            arr = (o * 255.0).squeeze(0).permute(1, 2, 0).numpy()
            images.append((np.round(arr) if rounding else arr).clip(0, 255).astype(np.uint8))
        originals, predicted = frames[1::2], images[1::2]
        diffs = [np.mean(cv2.absdiff(originals[i], predicted[i])) for i in range(len(predicted))]
        scores.append((255.0 - float(np.mean(np.array(diffs)))) / 255.0)
    return scores[0], scores[1], raw


def _averaging_amt_s(weights=None) -> AMTS:
    """A random AMT-S whose flow, mask-logit, residual and fusion outputs are zeroed.

    All flows are then exactly 0, the masks 0.5 and the residuals 0, so the network returns
    ``0.5 * (img0 - m) + 0.5 * (img1 - m) + m`` (m = the frames' mean), i.e. the average of its inputs, which
    is the true middle frame of a static video and of a linear brightness ramp. Encoders, correlation and
    update blocks still run with random weights.
    """
    net = AMTS(weights=None)
    state = net.state_dict()
    for name in ("decoder4", "decoder3", "decoder2"):  # first 4 output channels are the two flows
        state[f"{name}.convblock.2.weight"][:, :4] = 0
        state[f"{name}.convblock.2.bias"][:4] = 0
    for key in (
        "decoder1.convblock.2.weight",  # flows, mask logits, residuals of the 3 hypotheses
        "decoder1.convblock.2.bias",
        "update4.flow_head.2.weight",
        "update4.flow_head.2.bias",
        "update3.flow_head.2.weight",
        "update3.flow_head.2.bias",
        "update2.flow_head.2.weight",
        "update2.flow_head.2.bias",
        "comb_block.2.weight",
        "comb_block.2.bias",
    ):
        state[key].zero_()
    net.load_state_dict(state, strict=True)
    return net


# ---------------------------------------------------------------------------------------------------------
# (1) the formula, from the network's raw predictions; (5) batched execution


def test_metric_matches_vbench_pipeline_and_batches_pairs():
    gen = torch.Generator().manual_seed(0)
    # 115 x 123 -> padded to 128 x 128 with uneven splits (top 6 / bottom 7, left 2 / right 3)
    first = torch.randint(0, 256, (2, 5, 3, 115, 123), generator=gen, dtype=torch.uint8)
    first[0, 1:] = first[0, :1]  # a static video next to a noise video: very different scores
    second = torch.randint(0, 256, (1, 4, 3, 115, 123), generator=gen, dtype=torch.uint8)
    metric = _random_ms(batch_size=3)
    net = metric.backbone.get("cpu")
    calls: list[int] = []
    hook = net.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(args[0].shape[0]), with_kwargs=True
    )
    try:
        metric.update(first)  # T=5: inputs 0,2,4 -> predictions for frames 1 and 3
        metric.update(second.float() / 255.0)  # T=4: inputs 0,2 -> frame 1; frame 3 unused. Float input is
        # quantised back to the same uint8 frames.
    finally:
        hook.remove()
    # (5) all 4 pairs of the first batch go through the network together, in chunks of 3
    assert calls == [3, 1, 1]
    value = float(metric.compute())

    truncated, rounded, raw = zip(*(_vbench_motion_scores(net, v) for v in (*first, *second)))
    expected = float(np.mean(truncated))
    # batched vs one-pair-at-a-time convolutions differ by ~1e-6, which can flip a few truncated pixels
    # (measured: the score moves by < 2e-7)
    assert value == pytest.approx(expected, abs=2e-6)
    assert abs(float(np.mean(rounded)) - value) > 50 * 2e-6  # sharp enough to tell truncation from rounding
    assert truncated[0] != pytest.approx(truncated[1], abs=0.01)
    raw = torch.cat(raw)
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    assert bool((raw == 0).any() or (raw == 1).any())  # the random network saturates: the clamp is active


# ---------------------------------------------------------------------------------------------------------
# (2) behaviour with real signal


def _checkerboard(height: int, width: int, shift: int, cell: int = 8) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    board = (((xx - shift) // cell + yy // cell) % 2 * 200 + 20).to(torch.uint8)
    return board.expand(3, height, width)


def test_static_and_linear_videos_score_close_to_one_moving_lower():
    """What is provable with a network whose interpolation we know (see ``_averaging_amt_s``).

    A random AMT-S does not interpolate, so "MS close to 1 for identical frames" cannot be shown with it.
    With the averaging network the prediction for a static video (and for a linear brightness ramp) equals
    the true middle frame up to float rounding (mean subtraction/addition, warping at zero flow), so every
    uint8 pixel is off by at most one grey level after VBench's truncation: MS >= 254/255. It is not exactly
    1: the truncation turns tiny negative float errors into -1 (VBench behaves the same). A moving pattern
    is not the average of its neighbours, so its MS is clearly lower.
    """
    gen = torch.Generator().manual_seed(1)
    height, width = 48, 64  # small frames: replicate-padded to AMT-S's 128-px minimum and cropped back
    texture = torch.randint(30, 200, (3, height, width), generator=gen, dtype=torch.uint8)
    static = texture.expand(6, 3, height, width)
    ramp = torch.stack([texture + 8 * k for k in range(6)])
    moving = torch.stack([_checkerboard(height, width, 6 * k) for k in range(6)])
    last_changed = static.clone()
    last_changed[5] = 255 - last_changed[5]  # even length: the last frame is never compared
    flicker = static.clone()
    flicker[3] = 255 - flicker[3]  # an odd frame: compared with the average of frames 2 and 4
    videos = torch.stack([static, ramp, moving, last_changed, flicker])

    ref = BackboneRef("amt_s_averaging_test", _averaging_amt_s, None)
    scores = motion_smoothness_scores(videos, ref.get("cpu"), batch_size=10, min_padded_size=128).tolist()
    static_ms, ramp_ms, moving_ms, last_changed_ms, flicker_ms = scores
    assert 254 / 255 <= static_ms <= 1.0
    assert 254 / 255 <= ramp_ms <= 1.0
    assert moving_ms < 0.8
    assert last_changed_ms == pytest.approx(static_ms, abs=1e-9)
    # pair 1 (frame 1) is as good as static; pair 2 misses frame 3 by |x - (255 - x)| per pixel
    expected_flicker = (255 - 0.5 * float((2 * texture.double() - 255).abs().mean())) / 255
    assert flicker_ms == pytest.approx(expected_flicker, abs=1 / 255)

    metric = MotionSmoothness(interpolator=ref, small_frames="pad")  # any interpolator via a BackboneRef
    metric.update(static[None, :3].float() / 255.0)
    assert 254 / 255 <= float(metric.compute()) <= 1.0


def test_small_frames_reproduce_vbench_black_prediction(monkeypatch):
    """Frames padding to 64..112 px: VBench's AMT-S returns NaN, numpy casts it to 0, MS measures brightness.

    The reference here runs our AMT-S exactly as VBench runs its own on such frames (the size guard that
    normally refuses them is lifted), so the NaN comes from the network itself, not from the metric.
    """
    with np.errstate(invalid="ignore"):  # the platform behaviour VBench relies on without knowing it
        assert np.array([np.nan], dtype=np.float32).astype(np.uint8)[0] == 0
    gen = torch.Generator().manual_seed(4)
    videos = torch.randint(0, 256, (2, 5, 3, 80, 96), generator=gen, dtype=torch.uint8)
    metric = _random_ms()
    with pytest.warns(UserWarning, match="brightness"):
        metric.update(videos)
    value = float(metric.compute())

    monkeypatch.setattr(amt_module, "MIN_PADDED_SIZE", 64)
    net = metric.backbone.get("cpu")
    with np.errstate(invalid="ignore"):
        truncated, _, raw = zip(*(_vbench_motion_scores(net, v) for v in videos))
    assert bool(torch.cat(raw).isnan().all())
    assert value == pytest.approx(float(np.mean(truncated)), abs=1e-12)
    brightness = 1 - videos[:, 1::2].double().mean() / 255
    assert value == pytest.approx(float(brightness), abs=1e-12)

    padded = _random_ms(small_frames="pad")  # the extension: a real prediction at AMT-S's 128-px minimum
    padded.update(videos[:1, :3])
    assert float(padded.compute()) != pytest.approx(value, abs=1e-3)


# ---------------------------------------------------------------------------------------------------------
# (3) checkpoint layout and strict loading


def test_parameter_names_and_shapes_match_public_amt_s():
    expected = {}
    for line in PUBLIC_AMT_S_KEYS.strip().splitlines():
        name, shape = line.split()
        expected[name] = tuple(int(d) for d in shape.split("x"))
    state = AMTS(weights=None).state_dict()
    assert len(expected) == 213
    assert list(state) == list(expected)  # same names, same order
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(v.numel() for v in state.values()) == PUBLIC_AMT_S_PARAMETERS
    assert all(v.dtype == torch.float32 for v in state.values())


class _NotAllowlisted:
    """A pickled object that ``torch.load(weights_only=True)`` refuses."""


def test_checkpoint_loads_strictly(tmp_path, monkeypatch):
    with torch.random.fork_rng():
        torch.manual_seed(123)
        source = AMTS(weights=None)
    state = source.state_dict()
    wrapped = tmp_path / "amt-s-test.pth"
    torch.save({"epoch": 299, "state_dict": state}, wrapped)
    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    for path in (wrapped, plain):
        loaded = AMTS(weights=path).state_dict()
        assert list(loaded) == list(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    # through the metric's shared backbone: the loaded network is the one used
    net = MotionSmoothness(weights=wrapped).backbone.get("cpu")
    assert torch.equal(net.comb_block[2].weight, state["comb_block.2.weight"])

    missing = dict(state)
    missing.pop("update2.flow_head.2.bias")
    torch.save({"state_dict": missing}, tmp_path / "missing.pth")
    with pytest.raises(RuntimeError, match="Missing key"):
        AMTS(weights=tmp_path / "missing.pth")
    extra = dict(state)
    extra["module.extra"] = torch.zeros(1)
    torch.save({"state_dict": extra}, tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        AMTS(weights=tmp_path / "extra.pth")
    reshaped = dict(state)
    reshaped["comb_block.0.weight"] = torch.zeros(18, 9, 1, 1)
    torch.save({"state_dict": reshaped}, tmp_path / "reshaped.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        AMTS(weights=tmp_path / "reshaped.pth")

    unsafe = tmp_path / "unsafe.pth"  # like an AMT training checkpoint with non-tensor objects inside
    torch.save({"state_dict": state, "extra": _NotAllowlisted()}, unsafe)
    with pytest.raises(ValueError, match=r"not the published amt-s\.pth"):
        AMTS(weights=unsafe)
    # ... unless the file is the published one (checked by sha256): then it is unpickled fully, as VBench does
    published = dataclasses.replace(
        REGISTRY["amt_s"], sha256=hashlib.sha256(unsafe.read_bytes()).hexdigest(), size=None
    )
    monkeypatch.setitem(REGISTRY, "amt_s", published)
    loaded = AMTS(weights=unsafe).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsUnavailableError, match=r"amt-s\.pth"):
        AMTS(weights="amt_s")


# ---------------------------------------------------------------------------------------------------------
# (4) DDP


def _ddp_worker(rank: int, world_size: int, videos: torch.Tensor) -> float:
    metric = _random_ms()
    if rank == 0:  # uneven: two updates here, one on rank 1
        metric.update(videos[0:1])
        metric.update(videos[1:2])
    else:
        metric.update(videos[2:3])
    return float(metric.compute())


def test_ddp_equals_single_process():
    gen = torch.Generator().manual_seed(5)
    videos = torch.randint(0, 256, (3, 3, 3, 120, 116), generator=gen, dtype=torch.uint8)  # padded: 128 px
    results = run_ddp(_ddp_worker, world_size=2, args=(videos,))
    single = _random_ms()
    for i in range(3):  # the same calls as the ranks make, so every network batch is identical
        single.update(videos[i : i + 1])
    expected = float(single.compute())
    assert results[0] == pytest.approx(expected, abs=1e-12)
    assert results[1] == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# padding, downscaling and input validation


def test_padding_matches_input_padder_arithmetic():
    for size in range(1, 300, 7):
        for divisor in (16, 17, 32, 45):
            pad = (((size // divisor) + 1) * divisor - size) % divisor
            left, right, top, bottom = padding_for(size, size, divisor)
            assert (top, bottom) == (pad // 2, pad - pad // 2) == (left, right)
    assert padding_for(48, 64, 16, min_size=128) == (32, 32, 40, 40)
    assert padding_for(130, 128, 16, min_size=128) == (0, 0, 7, 7)


def test_vbench_scale_factor_formula():
    def by_hand(h, w, anchor, memory, bias, vram):
        s = anchor / (h * w) * np.sqrt((vram - bias) / memory)
        s = 1 if s > 1 else s
        s = 1 / np.floor(1 / np.sqrt(s) * 16) * 16
        return float(s), int(16 / s)

    for h, w in [(480, 832), (1080, 1920), (2160, 3840), (4320, 7680), (9000, 9000)]:
        assert vbench_scale_factor(h, w) == by_hand(h, w, 8192 * 8192, 1, 0, 1)
        for gib in (8, 24, 80):
            vram = gib * 1024**3
            assert vbench_scale_factor(h, w, vram) == by_hand(
                h, w, 1024 * 512, 1500 * 1024**2, 2500 * 1024**2, vram
            )
    assert vbench_scale_factor(1080, 1920) == (1.0, 16)  # what VBench actually runs (CPU constants)


def test_downscaled_interpolation_matches_amt_scale_path():
    gen = torch.Generator().manual_seed(7)
    video = torch.randint(0, 256, (1, 3, 3, 120, 128), generator=gen, dtype=torch.uint8)
    # pad to /32 and (small_frames="pad") to at least 256 px; the flow estimation runs at half size
    metric = _random_ms(scale_factor=0.5, small_frames="pad")
    metric.update(video)
    net = metric.backbone.get("cpu")
    pads = [64, 64, 68, 68]  # 120 x 128 -> 256 x 256
    frames = F.pad(video[0].float() / 255.0, pads, mode="replicate")
    with torch.no_grad():
        pred = net(frames[0:1], frames[2:3], 0.5, scale_factor=0.5)["imgt_pred"]
    pred = (pred[..., 68:-68, 64:-64] * 255.0).clamp(0, 255).to(torch.uint8)
    mad = (pred.int() - video[0, 1:2].int()).abs().double().mean()
    assert float(metric.compute()) == pytest.approx(float((255 - mad) / 255), abs=1e-12)


def test_input_validation():
    metric = _random_ms()
    with pytest.raises(ValueError, match=r"`videos`.*at least 3 frame"):
        metric.update(torch.zeros(1, 2, 3, 128, 128, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"`videos`.*RGB"):
        metric.update(torch.zeros(1, 3, 1, 128, 128, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"`videos`.*float"):
        metric.update(torch.full((1, 3, 3, 128, 128), 2.0))
    with pytest.raises(ValueError, match=r"`videos`.*5 dimensions"):
        metric.update(torch.zeros(3, 3, 128, 128, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`videos` has frames of 64x200"):
        _random_ms(small_frames="error").update(torch.zeros(1, 3, 3, 64, 200, dtype=torch.uint8))
    with pytest.raises(ValueError, match="VBench fails"):  # pads to 48 px: VBench's AMT-S crashes
        _random_ms().update(torch.zeros(1, 3, 3, 40, 200, dtype=torch.uint8))
    with pytest.raises(ValueError, match="small_frames"):
        _random_ms(small_frames="upscale")
    for bad in (0.7, 0.0, 1.5, "half", True):
        with pytest.raises(ValueError, match="scale_factor"):
            _random_ms(scale_factor=bad)
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            _random_ms(batch_size=bad)
    with pytest.raises(ValueError, match="num_frames"):
        _random_ms(num_frames=2)
    with pytest.raises(ValueError, match="interpolator"):
        MotionSmoothness(interpolator=AMTS(None))
    with pytest.raises(ValueError, match="at least 128 px"):
        AMTS(None)(torch.rand(1, 3, 112, 128), torch.rand(1, 3, 112, 128), 0.5)
    empty = _random_ms()
    empty.update(torch.zeros(0, 3, 3, 128, 128, dtype=torch.uint8))  # nothing to add, no network call
    with pytest.warns(UserWarning, match="saw no videos"):
        assert torch.isnan(empty.compute())


def test_metric_conventions():
    metric = _random_ms()
    assert metric.higher_is_better is True
    assert metric.is_differentiable is False
    assert metric.full_state_update is False
    assert (metric.plot_lower_bound, metric.plot_upper_bound) == (0.0, 1.0)
    assert not metric.is_calibrated
    assert set(metric.state_dict()) <= {"score_sum", "num_videos"}  # never backbone weights
    assert not list(metric.parameters())
