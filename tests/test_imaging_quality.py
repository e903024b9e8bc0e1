"""ImagingQuality (VBench IQ) and the MUSIQ backbone against raw pyiqa MUSIQ run as VBench runs it.

The reference path below is VBench's ``technical_quality`` written out independently: frames as float32
0-255, ``torchvision.transforms.Resize((int(s*h), int(s*w)), antialias=False)`` when the longer side exceeds
512, ``/ 255``, a pyiqa ``MUSIQ`` whose top-level ``training`` flag is set to False (not ``.eval()``), one
frame at a time, per-video mean of the raw MOS, mean over videos / 100.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from torchvision import transforms

from metrics.backbones.musiq import MUSIQSpaq, musiq_ref
from metrics.backbones.weights import WeightsChecksumError
from metrics.imaging_quality import ImagingQuality, vbench_iq_size
from tests.ddp import run_ddp

# pyiqa is an optional extra (installed with --no-deps, see spec/weights.md); without it only the
# import-error and preprocessing tests run.
needs_pyiqa = pytest.mark.skipif(
    importlib.util.find_spec("pyiqa") is None, reason='needs pyiqa: pip install "jwbdh-callbacks[iqa]"'
)


def _musiq_arch(**kwargs):
    from pyiqa.archs.musiq_arch import MUSIQ

    return MUSIQ(pretrained=False, **kwargs)


def _video(b: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, h, w), generator=g, dtype=torch.uint8)


def _vbench_reference(model: torch.nn.Module, videos: list[torch.Tensor]) -> tuple[list[float], float]:
    """VBench's imaging_quality loop ('longer' mode) on [T, 3, H, W] uint8 videos (or [0, 1] floats)."""
    per_video = []
    for video in videos:
        images = video.float() if video.dtype == torch.uint8 else video * 255.0
        _, _, h, w = images.size()
        if max(h, w) > 512:
            scale = 512.0 / max(h, w)
            images = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(images)
        images = images / 255.0
        acc = 0.0
        with torch.no_grad():
            for i in range(len(images)):
                acc += float(model(images[i].unsqueeze(0)))
        per_video.append(acc / len(images))
    return per_video, sum(per_video) / len(per_video) / 100.0


def _raw_musiq_like(net: MUSIQSpaq) -> torch.nn.Module:
    raw = _musiq_arch(num_class=1)
    raw.load_state_dict(net.net.state_dict())
    raw.training = False  # VBench: the top-level flag only
    return raw


@needs_pyiqa
def test_imaging_quality_matches_vbench_loop_with_the_512_cap():
    iq = ImagingQuality(weights=None, batch_size=3)
    tall = _video(1, 2, 561, 40, seed=1)  # longer side 561 > 512: s = 512/561 -> int(511.99..) = 511 rows
    small = _video(1, 1, 24, 40, seed=2).float() / 255.0  # float input, not upscaled
    assert vbench_iq_size(561, 40) == (511, 36)
    capped = iq.preprocess(tall[0])
    assert capped.shape == (2, 3, 511, 36)
    expected_pixels = transforms.Resize(size=(511, 36), antialias=False)(tall[0].float()) / 255.0
    torch.testing.assert_close(capped, expected_pixels, rtol=0, atol=1e-6)

    iq.update(tall)
    iq.update(small)
    raw = _raw_musiq_like(iq.backbone.get("cpu"))
    per_video, expected = _vbench_reference(raw, [tall[0], small[0]])
    assert float(iq.compute()) == pytest.approx(expected, rel=1e-5)
    assert int(iq.num_videos) == 2
    assert float(iq.score_sum) == pytest.approx(sum(per_video), rel=1e-5)  # raw 0-100 per-video values
    assert abs(per_video[0] - per_video[1]) > 1e-4  # the random network does respond to its input


@needs_pyiqa
def test_musiq_training_flag_trick_and_train_mode():
    # (eval mode against the raw network is covered by the formula test: the cache puts backbones in eval)
    net = MUSIQSpaq(weights=None)
    frame = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        net.train()  # submodules follow, but MUSIQ's own flag stays False: preprocessing still runs
        assert net.training and net.net.conv_root.training and not net.net.training
        raw = _raw_musiq_like(net)
        torch.testing.assert_close(net(frame), raw(frame).reshape(1), rtol=1e-5, atol=1e-6)
        raw.train()  # pyiqa in training mode expects patch sequences, not images
        with pytest.raises(RuntimeError):
            raw(frame)
    with pytest.raises(ValueError, match="MUSIQ takes float"):
        net(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@needs_pyiqa
def test_musiq_loads_test_written_checkpoint_strictly(tmp_path, monkeypatch):
    torch.manual_seed(5)
    state = _musiq_arch(num_class=1).state_dict()
    plain, prefixed = tmp_path / "musiq_test.pth", tmp_path / "musiq_dataparallel.pth"
    torch.save(state, plain)
    torch.save({f"module.{k}": v for k, v in state.items()}, prefixed)  # DataParallel form, as pyiqa accepts
    for path in (plain, prefixed):
        loaded = MUSIQSpaq(weights=str(path)).net.state_dict()
        assert list(loaded) == list(state)
        for name, value in state.items():
            assert torch.equal(loaded[name], value), name
    broken = {k: v for k, v in state.items() if not k.startswith("head.")}
    ava = (
        tmp_path / "musiq_ava_like.pth"
    )  # an AVA (10-class distribution) head is Sequential(Linear, Softmax)
    torch.save({**broken, "head.0.weight": torch.zeros(10, 384), "head.0.bias": torch.zeros(10)}, ava)
    with pytest.raises(
        RuntimeError, match=r"Missing key.*head\.weight(.|\n)*Unexpected key.*head\.0\.weight"
    ):
        MUSIQSpaq(weights=str(ava))
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save({**state, "head.weight": torch.zeros(10, 384)}, wrong_shape)
    with pytest.raises(RuntimeError, match="size mismatch"):
        MUSIQSpaq(weights=str(wrong_shape))
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / "musiq_spaq_ckpt-358bb6af.pth").write_bytes(b"not the SPAQ checkpoint")
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(weights_dir))
    with pytest.raises(WeightsChecksumError, match="musiq_spaq"):
        MUSIQSpaq(weights="musiq_spaq")


def test_missing_pyiqa_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa.archs.musiq_arch", None)
    with pytest.raises(ImportError, match=r"jwbdh-callbacks\[iqa\]"):
        MUSIQSpaq(weights=None)
    ImagingQuality(weights=None)  # constructing the metric does not import pyiqa yet


def test_other_vbench_modes_resize_like_torchvision():
    frames = _video(1, 1, 600, 700, seed=4)[0]
    for mode, size in (("shorter", (512, 597)), ("shorter_centercrop", (512, 512)), ("None", (600, 700))):
        iq = ImagingQuality(weights=None, preprocess_mode=mode)
        ops = [transforms.Resize(size=(512, 597), antialias=False)] if mode.startswith("shorter") else []
        ops += [transforms.CenterCrop(512)] if mode == "shorter_centercrop" else []
        expected = transforms.Compose(ops)(frames.float()) / 255.0 if ops else frames.float() / 255.0
        out = iq.preprocess(frames)
        assert out.shape[-2:] == size
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert vbench_iq_size(720, 1280) == (288, 512) and vbench_iq_size(480, 832) == (295, 512)
    assert vbench_iq_size(300, 400) == (300, 400)  # never upscaled


def test_input_validation_and_empty():
    iq = ImagingQuality(weights=None)
    with pytest.raises(ValueError, match="`videos`"):
        iq.update(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="`videos`"):
        iq.update(torch.rand(1, 2, 3, 16, 16) * 255)
    for kwargs in ({"preprocess_mode": "longest"}, {"size_cap": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            ImagingQuality(weights=None, **kwargs)
    with pytest.raises(ValueError, match="BackboneRef"):
        ImagingQuality(backbone=object())
    iq.update(torch.zeros(0, 2, 3, 16, 16, dtype=torch.uint8))
    with pytest.warns(UserWarning, match="no videos"):
        assert torch.isnan(iq.compute())
    assert iq.state_dict() == {} and not iq.is_calibrated
    assert iq.backbone == musiq_ref(None)


# ---------------------------------------------------------------------------------------------- DDP
def _ddp_batches() -> list:
    return [_video(1, 1 + i % 2, 24, 32, seed=10 + i) for i in range(3)]


def _ddp_worker(rank: int, world_size: int, batches: list) -> dict:
    iq = ImagingQuality(weights=None)
    for i, videos in enumerate(batches):
        if i % world_size == rank:  # rank 0: batches 0 and 2, rank 1: batch 1 (uneven)
            iq.update(videos)
    return {"iq": iq.compute()}


@needs_pyiqa
@pytest.mark.ddp
def test_ddp_uneven_updates_equal_single_process():
    batches = _ddp_batches()
    single = _ddp_worker(0, 1, batches)
    for result in run_ddp(_ddp_worker, world_size=2, args=(batches,)):
        torch.testing.assert_close(result["iq"], single["iq"], rtol=1e-6, atol=0)
