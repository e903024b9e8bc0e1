"""Inception / I3D backbones: strict checkpoint loading, preprocessing parity, shared cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torchvision import transforms
from torchvision.models import inception_v3

from metrics.backbones.cache import clear_backbone_cache
from metrics.backbones.i3d import load_i3d
from metrics.backbones.inception import FIDInceptionV3, ImageNetInceptionV3
from metrics.backbones.weights import WeightsChecksumError
from metrics.frechet import FID, EdgeFID


def _frames(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    smooth = (torch.sin(7 * xx + 3 * yy) * 90 + 128)[None, None].expand(n, 3, h, w)
    noise = torch.randint(-30, 30, (n, 3, h, w), generator=g)
    return (smooth + noise).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def imagenet_checkpoint(tmp_path_factory):
    """A checkpoint in the torchvision IMAGENET1K_V1 layout (with AuxLogits), random values."""
    torch.manual_seed(123)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    for m in net.modules():  # non-trivial BN statistics so that the eval-mode forward is well scaled
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    path = tmp_path_factory.mktemp("ckpt") / "inception_test.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_imagenet_inception_loads_strictly_and_matches_the_script_pipeline(imagenet_checkpoint):
    path, reference_net = imagenet_checkpoint
    ours = ImageNetInceptionV3(weights=str(path)).eval()
    reference_net.fc = nn.Identity()
    reference_net.eval()
    frames = _frames(3, 120, 160, seed=1)  # both axes enlarge: the resize is PIL-exact
    script = transforms.Compose(
        [
            transforms.Resize((299, 299)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    batch = torch.stack([script(Image.fromarray(f.permute(1, 2, 0).numpy())) for f in frames])
    with torch.no_grad():
        expected = reference_net(batch)
        got = ours(frames)
    assert got.shape == (3, 2048)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_registry_checkpoint_with_wrong_sha256_fails(imagenet_checkpoint, tmp_path, monkeypatch):
    path, _ = imagenet_checkpoint
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / "inception_v3_google-0cc3c7bd.pth").write_bytes(path.read_bytes())
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(weights_dir))
    with pytest.raises(WeightsChecksumError, match="inception_v3_imagenet"):
        ImageNetInceptionV3(weights="inception_v3_imagenet")


def test_wrong_architecture_checkpoint_fails_strict_load(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(RuntimeError, match="state_dict"):
        ImageNetInceptionV3(weights=str(bad))
    with pytest.raises(ValueError, match="TorchScript"):
        load_i3d(str(bad))


def test_fid_inception_matches_torch_fidelity(tmp_path):
    torch.manual_seed(7)
    ours = FIDInceptionV3(weights=None).eval()
    path = tmp_path / "fid_inception.pth"
    state = {k: v for k, v in ours.net.net.state_dict().items() if not k.startswith("fc.")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, path)
    theirs = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    theirs.eval()
    loaded = FIDInceptionV3(weights=str(path)).eval()
    frames = _frames(2, 90, 130, seed=2)
    with torch.no_grad():
        expected = theirs(frames)[0]
        # the TF1 resizes agree to ~5e-5 grey levels; features are compared relative to their scale
        tol = 1e-4 * float(expected.abs().max())
        torch.testing.assert_close(ours(frames), expected, rtol=0, atol=tol)
        torch.testing.assert_close(loaded(frames), expected, rtol=0, atol=tol)


def test_backbone_shared_between_metrics_and_absent_from_state_dict():
    clear_backbone_cache()
    fid, efid = FID(weights=None), EdgeFID(weights=None)
    assert fid.backbone.get("cpu") is efid.backbone.get("cpu")
    assert fid.state_dict() == {} and efid.state_dict() == {}
    assert not fid.is_calibrated
    other = FID(weights=None, protocol="standard")
    assert other.backbone.get("cpu") is not fid.backbone.get("cpu")
    params = [p.requires_grad for p in fid.backbone.get("cpu").parameters()]
    assert params and not any(params)


def test_random_init_is_seeded_identically_across_builds():
    a = ImageNetInceptionV3(weights=None)
    clear_backbone_cache()
    b = FID(weights=None).backbone.get("cpu")
    c = FID(weights=None).backbone.get("cpu")
    assert b is c
    first = next(iter(b.state_dict().values()))
    assert first.shape == next(iter(a.state_dict().values())).shape
    clear_backbone_cache()
    d = FID(weights=None).backbone.get("cpu")
    for (k, v), (_, w) in zip(b.state_dict().items(), d.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    assert np.isfinite(d(_frames(1, 64, 64, 3)).numpy()).all()
