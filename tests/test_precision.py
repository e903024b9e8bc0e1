"""Backbone inference precision and layout (metrics/backbones/precision.py, the cache key, FID/FVD knobs)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metrics.backbones.cache import BackboneRef, get_backbone
from metrics.backbones.precision import (
    InferenceRunner,
    check_precision,
    fold_batchnorm,
    inference_precision,
)


def _conv_bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3),
        nn.BatchNorm2d(4),
    )
    for m in net.modules():  # non-trivial running statistics, so that folding has something to fold
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_check_precision_names_every_problem():
    with pytest.raises(
        ValueError, match=r"`precision` must be one of .*'fp16'.*`channels_last` must be a bool"
    ):
        check_precision("fp16", "yes")
    check_precision("tf32", False)


def test_fold_batchnorm_matches_the_hand_folded_formula():
    net = _conv_bn_net()[:2].eval()  # conv -> BN
    x = torch.rand(2, 3, 10, 10)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # Independent reference: y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta, in float64.
    conv, bn = net[0], net[1]
    z = nn.functional.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    c = (slice(None), None, None)
    expected = (z - bn.running_mean.double()[c]) / torch.sqrt(bn.running_var.double()[c] + bn.eps)
    expected = expected * bn.weight.double()[c] + bn.bias.double()[c]
    torch.testing.assert_close(folded(x).double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fold_batchnorm(_conv_bn_net())(x), _conv_bn_net()(x), rtol=1e-5, atol=1e-5)


def test_runner_fp32_is_the_network_itself_and_channels_last_only_reorders_sums():
    net = _conv_bn_net()
    x = torch.rand(2, 3, 16, 16)
    expected = net(x)
    assert torch.equal(InferenceRunner(net, "fp32", False)(x), expected)
    runner = InferenceRunner(_conv_bn_net(), "fp32", True)
    assert runner.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert any(isinstance(m, nn.BatchNorm2d) for m in runner.net.modules())  # fp32 never folds
    torch.testing.assert_close(runner(x), expected, rtol=1e-5, atol=1e-6)


def test_runner_bf16_returns_float32_within_bfloat16_error():
    net = _conv_bn_net()
    x = torch.rand(2, 3, 16, 16)
    expected = net(x)
    got = InferenceRunner(_conv_bn_net(), "bf16", True)(x)
    assert got.dtype == torch.float32
    assert not torch.equal(got, expected)  # really ran in bfloat16
    rel = (got - expected).norm() / expected.norm()
    assert rel < 2e-2, float(rel)


def test_inference_precision_on_cpu_autocasts_bf16_and_leaves_fp32_alone():
    lin = nn.Linear(3, 2)
    with inference_precision("bf16", "cpu"):
        assert lin(torch.ones(1, 3)).dtype == torch.bfloat16
    for precision in ("fp32", "tf32"):  # no TF32 units on a CPU: tf32 is fp32 there
        with inference_precision(precision, "cpu"):
            assert lin(torch.ones(1, 3)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inference_precision_sets_and_restores_cuda_tf32_flags():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with inference_precision("fp32", "cuda"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with inference_precision("tf32", "cuda"):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == saved


def test_cache_keeps_one_instance_per_precision_and_wraps_plain_networks():
    ref = BackboneRef("test_precision_conv", lambda weights: _conv_bn_net())
    fp32 = ref.get("cpu")
    bf16 = ref.with_inference("bf16", True).get("cpu")
    assert fp32 is not bf16 and fp32 is ref.get("cpu")
    assert isinstance(bf16, InferenceRunner) and not isinstance(fp32, InferenceRunner)
    assert ref.fingerprint != ref.with_inference("bf16").fingerprint
    with pytest.raises(ValueError, match="`precision`"):
        BackboneRef("x", lambda weights: nn.Identity(), precision="half")
    with pytest.raises(ValueError, match="`precision`"):
        get_backbone("x", lambda weights: nn.Identity(), weights=None, device="cpu", precision="half")


def test_inception_wrapper_keeps_preprocessing_exact_and_runs_the_network_in_bf16():
    from metrics.backbones.inception import ImageNetInceptionV3, imagenet_inception_ref

    frames = torch.randint(0, 256, (2, 3, 40, 48), dtype=torch.uint8)
    ref = imagenet_inception_ref(None)
    fp32 = ref.get("cpu")
    bf16 = ref.with_inference("bf16", True).get("cpu")
    assert isinstance(bf16, ImageNetInceptionV3) and isinstance(bf16.net, InferenceRunner)
    torch.testing.assert_close(bf16.preprocess(frames), fp32.preprocess(frames), rtol=0, atol=0)
    a, b = fp32(frames), bf16(frames)
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert float((a - b).norm() / a.norm()) < 5e-2


def test_fid_precision_argument_reaches_the_backbone_and_the_statistics_key():
    from metrics import FID, FVD

    fid = FID(weights=None, precision="bf16", channels_last=True)
    assert fid.backbone.precision == "bf16" and fid.backbone.channels_last
    assert fid.statistics_key()["precision"] == "bf16"
    assert "precision" not in FID(weights=None).statistics_key()  # fp32 files stay loadable as before
    assert FVD(weights=None, precision="tf32").backbone.precision == "tf32"
    with pytest.raises(ValueError, match="`precision`"):
        FID(weights=None, precision="int8")
