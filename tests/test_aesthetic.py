"""AestheticQuality: VBench's loop recomputed from raw CLIP features, the LAION head loader, edge cases.

The DDP test of AestheticQuality shares the spawned workers of tests/test_consistency.py (one process
group for SC, BC and AQ keeps the suite fast).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from metrics.aesthetic import AestheticQuality
from metrics.backbones.aesthetic import aesthetic_head_ref, load_aesthetic_head
from metrics.backbones.cache import BackboneRef
from metrics.backbones.clip import clip_ref
from metrics.backbones.weights import WeightsChecksumError, WeightsUnavailableError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# A small CLIP with the real ViT-L/14 output size (768), so that LAION-shaped heads apply.
TINY_CLIP_768 = {
    "embed_dim": 768,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 64, "heads": 1, "layers": 1},
}
# VBench vbench/utils.py clip_transform(224), applied to float32 0-255 frames.
VBENCH_CLIP = transforms.Compose(
    [
        transforms.Resize(224, interpolation=InterpolationMode.BICUBIC, antialias=False),
        transforms.CenterCrop(224),
        transforms.Lambda(lambda x: x.float().div(255.0)),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ]
)


def _videos(b: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, h, w), dtype=torch.uint8, generator=g)


def _write_head(path, weight: torch.Tensor, bias: float) -> str:
    """A file in the layout of sa_0_4_vit_l_14_linear.pth: {'weight': [1, D], 'bias': [1]}, float32."""
    torch.save({"weight": weight.reshape(1, -1).float(), "bias": torch.tensor([bias])}, path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_clip() -> BackboneRef:
    pytest.importorskip("open_clip")
    return clip_ref(TINY_CLIP_768, None)


@pytest.fixture(scope="module")
def laion_layout_head(tmp_path_factory) -> str:
    weight = torch.randn(768, generator=torch.Generator().manual_seed(4)) * 0.3
    return _write_head(tmp_path_factory.mktemp("head") / "sa_0_4_vit_l_14_linear.pth", weight, 5.25)


def test_aesthetic_formula_on_raw_clip_features(tiny_clip, laion_layout_head):
    first, second = _videos(2, 4, 40, 64, seed=1), _videos(1, 5, 50, 30, seed=2)
    aq = AestheticQuality(
        feature_extractor=tiny_clip, head=aesthetic_head_ref(laion_layout_head), batch_size=3
    )
    aq.update(first)
    aq.update(second)

    net = tiny_clip.get("cpu")
    head = nn.Linear(768, 1)
    head.load_state_dict(torch.load(laion_layout_head, weights_only=True))
    per_video = []
    with torch.no_grad():
        for video in [*first, *second]:  # VBench laion_aesthetic: batches of 32 frames
            scores = []
            for i in range(0, len(video), 32):
                feats = F.normalize(net(VBENCH_CLIP(video[i : i + 32].float())).float(), dim=-1, p=2)
                scores.append(head(feats).squeeze(dim=-1))
            per_video.append(float(torch.mean(torch.cat(scores) / 10, dim=0)))
    assert float(aq.compute()) == pytest.approx(sum(per_video) / len(per_video), abs=1e-6)
    assert int(aq.num_videos) == 3  # video-weighted: 3 videos, whatever their lengths


class _MeanColour(nn.Module):
    """Feature = per-channel mean of the normalised 224 crop: known directions for constant frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _mean_colour(weights):
    return _MeanColour()


def test_head_sees_l2_normalised_features_and_ratings_are_divided_by_ten(tmp_path):
    white = torch.tensor([(1.0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)], dtype=torch.float64)
    black = torch.tensor([(0.0 - m) / s for m, s in zip(CLIP_MEAN, CLIP_STD)], dtype=torch.float64)
    unit_white = white / white.norm()
    # weight = 10 * unit(white feature), bias 0: a white frame rates exactly 10 whatever its feature norm.
    head = aesthetic_head_ref(_write_head(tmp_path / "h.pth", 10 * unit_white, 0.0), in_features=3)
    aq = AestheticQuality(feature_extractor=BackboneRef("mean_colour_aq", _mean_colour, None), head=head)
    frames = torch.tensor([255, 0, 255], dtype=torch.uint8).view(1, 3, 1, 1, 1).expand(1, 3, 3, 30, 40)
    aq.update(frames.contiguous())
    cos = float(unit_white @ (black / black.norm()))
    assert float(aq.compute()) == pytest.approx((1.0 + cos + 1.0) / 3, abs=1e-6)
    assert cos < 0  # no clamp in AQ: a negative rating lowers the score

    constant = aesthetic_head_ref(_write_head(tmp_path / "c.pth", torch.zeros(3), 7.3), in_features=3)
    aq = AestheticQuality(feature_extractor=BackboneRef("mean_colour_aq", _mean_colour, None), head=constant)
    aq.update(_videos(2, 3, 20, 20, seed=3))
    aq.update(_videos(1, 1, 20, 20, seed=4))  # one frame is enough for AQ
    assert float(aq.compute()) == pytest.approx(0.73, abs=1e-7)


def test_laion_head_loads_strictly_and_through_the_registry(tmp_path, monkeypatch, laion_layout_head):
    head = load_aesthetic_head(laion_layout_head)
    saved = torch.load(laion_layout_head, weights_only=True)
    assert torch.equal(head.weight, saved["weight"]) and torch.equal(head.bias, saved["bias"])
    b32_head = _write_head(tmp_path / "b32.pth", torch.zeros(512), 1.0)  # the ViT-B/32 head's shape
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_aesthetic_head(b32_head)
    assert load_aesthetic_head(b32_head, in_features=512).weight.shape == (1, 512)
    torch.save({**saved, "extra": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(RuntimeError, match="extra"):
        load_aesthetic_head(str(tmp_path / "extra.pth"))

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsUnavailableError, match=r"sa_0_4_vit_l_14_linear\.pth"):
        load_aesthetic_head("laion_aesthetic_vitl14")
    (weights_dir / "sa_0_4_vit_l_14_linear.pth").write_bytes(Path(laion_layout_head).read_bytes())
    with pytest.raises(WeightsChecksumError, match="laion_aesthetic_vitl14"):  # not LAION's bytes
        load_aesthetic_head("laion_aesthetic_vitl14")


def test_inputs_are_validated_and_defaults(tiny_clip):
    aq = AestheticQuality(feature_extractor=tiny_clip, head=aesthetic_head_ref(None))
    with pytest.raises(ValueError, match="`videos` needs at least 1 frame"):
        aq.update(torch.zeros(1, 0, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`videos` must be RGB"):
        aq.update(torch.zeros(1, 2, 4, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch_size"):
        AestheticQuality(feature_extractor=tiny_clip, batch_size=0)
    with pytest.raises(ValueError, match="`head` must be a BackboneRef"):
        AestheticQuality(feature_extractor=tiny_clip, head=nn.Linear(768, 1))
    aq.update(torch.zeros(0, 2, 3, 16, 16, dtype=torch.uint8))
    with pytest.warns(UserWarning, match="no videos"):
        assert torch.isnan(aq.compute())
    aq.update(_videos(1, 2, 16, 16, seed=5))
    assert torch.isfinite(aq.compute())
    assert aq.state_dict() == {}
    assert not aq.is_calibrated
    default = AestheticQuality()  # nothing is loaded before the first update
    assert default.is_calibrated
    assert (default.backbone.name, default.backbone.weights) == ("clip_ViT-L-14", "clip_vitl14_openai")
    assert (default.head.name, default.head.weights) == ("laion_aesthetic_head_768", "laion_aesthetic_vitl14")
    assert (AestheticQuality.higher_is_better, AestheticQuality.is_differentiable) == (True, False)
    assert (AestheticQuality.plot_lower_bound, AestheticQuality.plot_upper_bound) == (0.0, 1.0)
