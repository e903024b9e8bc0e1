"""Speed knobs of the six VBench dimensions: ``precision`` / ``channels_last``, batching across videos, and
RAFT's feature encoder run once per frame (metrics/{consistency,aesthetic,imaging_quality,motion,
dynamic_degree}.py and their backbone wrappers)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from metrics.aesthetic import AestheticQuality
from metrics.backbones.aesthetic import aesthetic_head_ref
from metrics.backbones.clip import clip_ref
from metrics.backbones.dino import dino_ref
from metrics.backbones.raft import RAFTLarge, pad_to_multiple, raft_ref
from metrics.consistency import BackgroundConsistency, SubjectConsistency
from metrics.dynamic_degree import DynamicDegree
from metrics.imaging_quality import ImagingQuality
from metrics.motion import MotionSmoothness, motion_smoothness_scores
from tests.test_consistency import TINY_CLIP, TINY_DINO

needs_pyiqa = pytest.mark.skipif(importlib.util.find_spec("pyiqa") is None, reason="needs pyiqa")
TINY_CLIP_768 = {**TINY_CLIP, "embed_dim": 768}


def _moving_videos(batch: int, frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """uint8 videos of a random image drifting by (1, 2) px per frame, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (batch, 1, 3, height, width), generator=g).float()
    clips = [torch.roll(base, (t, 2 * t), (-2, -1)) for t in range(frames)]
    noise = torch.randint(-8, 9, (batch, frames, 3, height, width), generator=g)
    return (torch.cat(clips, 1) + noise).clamp(0, 255).to(torch.uint8)


def _dims(precision: str | None = None, channels_last: bool | None = None) -> dict[str, object]:
    knobs = {"precision": precision, "channels_last": channels_last}
    return {
        "SC": SubjectConsistency(feature_extractor=dino_ref(None, **TINY_DINO), **knobs),
        "BC": BackgroundConsistency(feature_extractor=clip_ref(TINY_CLIP, None), **knobs),
        "AQ": AestheticQuality(feature_extractor=clip_ref(TINY_CLIP_768, None), head_weights=None, **knobs),
        "MS": MotionSmoothness(weights=None, **knobs),
        "DD": DynamicDegree(flow_model=raft_ref(None, 3), fps=8, **knobs),
        "IQ": ImagingQuality(weights=None, **knobs),
    }


def _backbone(metric: object):
    return getattr(metric, "flow_model", None) or metric.backbone


def test_precision_arguments_reach_every_backbone_and_are_validated():
    for name, metric in _dims("bf16", True).items():
        ref = _backbone(metric)
        assert (ref.precision, ref.channels_last) == ("bf16", True), name
    for name, metric in _dims().items():  # default: the parity setting
        ref = _backbone(metric)
        assert (ref.precision, ref.channels_last) == ("fp32", False), name
    # None keeps a given extractor's own setting
    sc = SubjectConsistency(feature_extractor=dino_ref(None, **TINY_DINO).with_inference("bf16", True))
    assert (sc.backbone.precision, sc.backbone.channels_last) == ("bf16", True)
    assert aesthetic_head_ref(None).precision == "fp32"  # AQ's LAION head is never cast
    constructors = {
        "SC": lambda **k: SubjectConsistency(weights=None, **k),
        "BC": lambda **k: BackgroundConsistency(weights=None, **k),
        "AQ": lambda **k: AestheticQuality(clip_weights=None, head_weights=None, **k),
        "MS": lambda **k: MotionSmoothness(weights=None, **k),
        "DD": lambda **k: DynamicDegree(weights=None, **k),
        "IQ": lambda **k: ImagingQuality(weights=None, **k),
    }
    for make in constructors.values():
        with pytest.raises(ValueError, match=r"`precision` must be one of \('fp32', 'tf32', 'bf16'\)"):
            make(precision="fp16")
        with pytest.raises(ValueError, match="`channels_last` must be a bool"):
            make(channels_last="yes")
    with pytest.raises(ValueError, match="cannot be combined with `fp16=True`"):
        BackgroundConsistency(weights=None, fp16=True, precision="bf16")
    with pytest.raises(ValueError, match="cannot be combined with `fp16=True`"):
        AestheticQuality(clip_weights=None, head_weights=None, fp16=True, precision="tf32")
    with pytest.raises(ValueError, match="cannot be combined with `fp16=True`"):
        clip_ref(TINY_CLIP, None, fp16=True).with_inference("bf16").get("cpu")


def _per_video(name: str, metric, videos: torch.Tensor) -> torch.Tensor:
    """The per-video values each dimension adds to its state (float64 [B])."""
    from metrics.consistency import consistency_pair_scores

    with torch.no_grad():
        if name in ("SC", "BC"):
            return consistency_pair_scores(metric.frame_features(videos)).mean(dim=1)
        if name == "AQ":
            return metric.frame_scores(videos).double().mean(dim=1)
        if name == "MS":
            return motion_smoothness_scores(videos, metric.backbone.get("cpu"), batch_size=metric.batch_size)
        if name == "DD":
            return torch.stack([s.mean() for s in metric.pair_scores(videos)])
        return metric.video_scores(videos)


def test_fp32_batched_across_videos_equals_video_by_video_and_explicit_fp32_is_the_default():
    videos = _moving_videos(2, 3, 128, 128)
    for name, metric in _dims().items():
        if name == "IQ" and importlib.util.find_spec("pyiqa") is None:
            continue
        batched = _per_video(name, metric, videos)
        single = torch.cat([_per_video(name, metric, videos[i : i + 1]) for i in range(2)])
        torch.testing.assert_close(batched, single, rtol=0, atol=1e-6, msg=name)
    fp32 = _dims("fp32", False)
    for name in ("SC", "BC", "AQ"):  # (the heavy networks' fp32 path is covered by their parity tests)
        metric = _dims()[name]
        assert torch.equal(_per_video(name, metric, videos), _per_video(name, fp32[name], videos)), name


def test_raft_shared_feature_encoder_gives_the_per_pair_flow_of_torchvision_forward():
    net = raft_ref(None, 4).get("cpu")  # the cached instance the metric below uses
    assert isinstance(net, RAFTLarge)
    frames = _moving_videos(1, 5, 124, 130, seed=1)[0].float()
    first, second = torch.tensor([0, 1, 3]), torch.tensor([1, 2, 4])  # videos of 3 and 2 frames
    encoded = []
    original = net.raft.feature_encoder.forward
    net.raft.feature_encoder.forward = lambda x: encoded.append(x.shape[0]) or original(x)
    with torch.no_grad():
        shared = torch.cat(list(net.pair_flows(lambda i: frames[i], first, second, batch_size=3, crop=False)))
        net.raft.feature_encoder.forward = original
        plain = []
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            padded, _ = pad_to_multiple(frames[[a, b]])
            x = 2.0 * (padded / 255.0) - 1.0
            plain.append(net.raft(x[:1], x[1:], num_flow_updates=4)[-1])  # torchvision's own forward
        plain = torch.cat(plain)
    assert sum(encoded) == 5  # each of the 5 frames encoded once (a per-pair forward encodes 6)
    assert shared.shape == (3, 2, 128, 136) and float(plain.abs().max()) > 0.1
    torch.testing.assert_close(shared, plain, rtol=0, atol=1e-5)


#: bf16 + channels_last vs fp32, |score difference| on these tiny/random test networks; the real-architecture
#: numbers are in the metrics' docstrings (measured on 2 x 16 frames at 256 x 256).
_BF16_TEST_BOUNDS = {"SC": 5e-3, "BC": 5e-3, "AQ": 5e-3, "MS": 5e-3, "DD": 5e-2, "IQ": 5e-2}


def test_bf16_channels_last_stays_close_to_fp32_and_really_runs_in_bfloat16():
    videos = _moving_videos(2, 3, 128, 128)
    fp32, bf16 = _dims(), _dims("bf16", True)
    for name in fp32:
        if name == "IQ" and importlib.util.find_spec("pyiqa") is None:
            continue
        a, b = _per_video(name, fp32[name], videos), _per_video(name, bf16[name], videos)
        scale = 1.0 if name != "DD" else float(a.abs().max())  # DD: flow magnitudes in px, relative
        diff = float((a - b).abs().max()) / scale
        print(f"bf16 {name}: {diff:.2e}")
        assert b.dtype == torch.float64 and diff < _BF16_TEST_BOUNDS[name], (name, diff)
        if name != "MS":  # MS quantises predictions to uint8: a bf16 run may land on the same integers
            assert not torch.equal(a, b), name
