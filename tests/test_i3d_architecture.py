"""The real I3D architecture (metrics.backbones.i3d.InceptionI3d) used by the speed benchmarks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metrics.backbones.i3d import InceptionI3d, build_inception_i3d, inception_i3d_ref


def test_parameter_count_matches_the_published_tf_i3d() -> None:
    net = InceptionI3d()
    convs = sum(p.numel() for m in net.modules() if isinstance(m, torch.nn.Conv3d) for p in m.parameters())
    bn_channels = sum(m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    # The TF graph's BatchNorm has an offset but no scale: conv weights + logits bias + one offset per
    # channel = 12.69M, the figure OpenVINO's model zoo lists for i3d-rgb-tf ("MParams 12.69").
    assert convs + bn_channels == 12_689_984
    # PyTorch's BatchNorm3d also has a scale per channel.
    assert sum(p.numel() for p in net.parameters()) == 12_689_984 + bn_channels == 12_697_264
    # the logits layer: 1024 -> 400 with a bias; the last block ends with 384 + 384 + 128 + 128 channels
    assert net.logits.conv3d.weight.shape == (400, 1024, 1, 1, 1) and net.logits.conv3d.bias is not None
    assert net.features.Mixed_5c.out_channels == 1024
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 57 and {m.eps for m in bns} == {1e-3}


def test_tf_same_padding_output_sizes() -> None:
    """TF "SAME": every stride-2 stage gives ceil(size / 2); 16 x 224 x 224 pools to 2 x 7 x 7."""
    net = InceptionI3d().eval()
    seen = {}
    for name in ("Conv3d_1a_7x7", "MaxPool3d_4a_3x3", "Mixed_5c"):
        getattr(net.features, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
    with torch.no_grad():
        out = net(torch.rand(1, 3, 16, 224, 224), return_features=True)
    assert out.shape == (1, 400)
    assert seen["Conv3d_1a_7x7"] == (1, 64, 8, 112, 112)
    assert seen["MaxPool3d_4a_3x3"] == (1, 480, 4, 14, 14)
    assert seen["Mixed_5c"] == (1, 1024, 2, 7, 7)


def test_calling_convention_and_scripting() -> None:
    eager = build_inception_i3d(script=False, calibrate=False)
    scripted = build_inception_i3d(calibrate=False)
    assert isinstance(scripted, torch.jit.ScriptModule)
    x = torch.rand(2, 3, 4, 40, 48) * 255
    with torch.no_grad():
        logits = eager(x / 255.0 * 2 - 1, return_features=True)
        # rescale maps [0, 255] to [-1, 1]; the scripted module computes the same logits
        assert torch.allclose(scripted(x, True, False, True), logits, rtol=1e-4, atol=1e-5)
        assert torch.allclose(eager(x, rescale=True), torch.softmax(logits, dim=-1), atol=1e-6)
        # resize: bilinear to 224 x 224 inside the network
        x = x[:1, :, :2]
        frames = x.permute(0, 2, 1, 3, 4).reshape(2, 3, 40, 48)
        big = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
        big = big.reshape(1, 2, 3, 224, 224).permute(0, 2, 1, 3, 4)
        assert torch.allclose(
            scripted(x, False, True, True), eager(big, return_features=True), rtol=1e-4, atol=1e-5
        )
    with pytest.raises(ValueError, match="num_classes"):
        InceptionI3d(num_classes=0)


def test_random_weights_are_seeded_and_calibrated() -> None:
    a = build_inception_i3d(script=False)
    b, c = (build_inception_i3d(script=False, calibrate=False) for _ in range(2))
    assert all(
        torch.equal(p, q) for p, q in zip(b.state_dict().values(), c.state_dict().values(), strict=True)
    )
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))  # same seed
    x = torch.rand(2, 3, 8, 64, 64)
    with torch.no_grad():
        calibrated, default = a(x, return_features=True), b(x, return_features=True)
    # calibrated BatchNorm keeps the logits' response to the input O(1); with PyTorch's default init it
    # shrinks layer by layer (what is left is mostly the logits bias, the same for every clip)
    spread = [float((f[0] - f[1]).std()) for f in (calibrated, default)]
    assert 0.05 < spread[0] < 20 and spread[1] < 1e-3 * spread[0], spread
    assert inception_i3d_ref().name == "inception_i3d" and inception_i3d_ref().weights is None


def test_loads_a_saved_state_dict(tmp_path) -> None:
    net = build_inception_i3d(script=False, calibrate=False, seed=3)
    path = tmp_path / "i3d.pt"
    torch.save(net.state_dict(), path)
    loaded = build_inception_i3d(str(path), script=False)
    assert all(
        torch.equal(p, q)
        for p, q in zip(net.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
