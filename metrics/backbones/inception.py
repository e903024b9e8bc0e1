"""Inception-v3 feature extractors for FID / E-FID, with the preprocessing each protocol uses.

Two different networks are called "Inception" in the literature and give different numbers:

* :class:`ImageNetInceptionV3` -- torchvision ``inception_v3`` with ImageNet weights (IMAGENET1K_V1),
  ``transform_input=False``, ``fc`` replaced by identity: the JWB-DH-V1 FID_calculate.py network. Its
  preprocessing is PIL-bilinear resize to 299x299, /255, ImageNet mean/std.
* :class:`FIDInceptionV3` -- the TF 2015-12-05 Inception used by TTUR, pytorch-fid and torch-fidelity
  (standard FID). Preprocessing: TF1-bilinear resize to 299x299 of the uint8 values, then (x - 128) / 128.
  The architecture's FID-specific blocks come from pytorch-fid (a dependency), the weights from our registry.

Both take uint8 ``[N, 3, H, W]`` RGB frames and return float32 ``[N, 2048]`` pool features.

Example:
    >>> import torch
    >>> net = ImageNetInceptionV3(weights=None).eval()
    >>> net(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape
    torch.Size([2, 2048])
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from metrics.backbones.cache import BackboneRef
from metrics.backbones.precision import InferenceRunner
from metrics.backbones.weights import load_checkpoint
from metrics.functional.resize import resize_pil_bilinear, resize_tf1_bilinear

__all__ = [
    "FIDInceptionV3",
    "ImageNetInceptionV3",
    "fid_inception_ref",
    "imagenet_inception_ref",
    "load_checkpoint",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def calibrate_batchnorm(net: nn.Module, example: Tensor) -> None:
    """Set BatchNorm running statistics of a randomly initialised network from one seeded example batch.

    Without this, a random Inception in eval mode (running mean 0, variance 1) amplifies activations
    layer by layer until features reach ~1e10; after it, smoke-run features are O(1) and FID values sane.
    """
    momenta = {}
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            momenta[m] = m.momentum
            m.reset_running_stats()
            m.momentum = None  # cumulative average: exactly this batch's statistics
    was_training = net.training
    net.train()
    with torch.no_grad():
        net(example)
    net.train(was_training)
    for m, momentum in momenta.items():
        m.momentum = momentum


def _check_uint8_frames(frames: Tensor) -> None:
    if (
        not isinstance(frames, Tensor)
        or frames.ndim != 4
        or frames.shape[1] != 3
        or frames.dtype != torch.uint8
    ):
        got = (
            f"shape {tuple(frames.shape)} dtype {frames.dtype}"
            if isinstance(frames, Tensor)
            else type(frames)
        )
        raise ValueError(f"`frames` must be uint8 RGB [N, 3, H, W], got {got}")


class ImageNetInceptionV3(nn.Module):
    """torchvision Inception-v3 (ImageNet) as JWB-DH-V1 uses it, 2048-d pooled features.

    Args:
        weights: registry name (``"inception_v3_imagenet"``), checkpoint path, or None for random init.
        resize_backend: ``"torch"`` (PIL-exact emulation on the tensor's device) or ``"pil"``.

    Example:
        >>> import torch
        >>> ImageNetInceptionV3(None).eval()(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([1, 2048])
    """

    def __init__(
        self, weights: str | os.PathLike | None = "inception_v3_imagenet", resize_backend: str = "torch"
    ):
        super().__init__()
        from torchvision.models import inception_v3

        # aux_logits=True so that the published checkpoint (which has AuxLogits) loads strictly.
        net = inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=weights is None)
        if weights is not None:
            net.load_state_dict(load_checkpoint(weights), strict=True)
        net.fc = nn.Identity()
        net.AuxLogits = None
        net.aux_logits = False
        if weights is None:
            calibrate_batchnorm(net, torch.rand(4, 3, 299, 299) * 2 - 1)
        self.net = net
        self.resize_backend = resize_backend
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, frames: Tensor) -> Tensor:
        """uint8 RGB -> PIL-bilinear 299x299 -> ToTensor -> ImageNet normalisation."""
        _check_uint8_frames(frames)
        x = resize_pil_bilinear(frames, (299, 299), backend=self.resize_backend).to(self.mean.dtype) / 255.0
        return (x - self.mean) / self.std

    def forward(self, frames: Tensor) -> Tensor:
        """uint8 ``[N, 3, H, W]`` -> ``[N, 2048]``."""
        x = self.preprocess(frames).to(next(self.net.parameters()).dtype)
        return self.net(x).float()

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the network (not the PIL-exact resize) at ``precision`` / in ``channels_last`` layout."""
        self.net = InferenceRunner(self.net, precision, channels_last)


def _build_fid_inception_torso() -> nn.Module:
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=True)
    # The TF graph's blocks differ from torchvision's in pooling details; pytorch-fid provides them.
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class FIDInceptionV3(nn.Module):
    """The standard FID Inception (TF 2015-12-05 weights), torch-fidelity's ``'2048'`` features.

    Args:
        weights: registry name (``"fid_inception_v3"``), checkpoint path, or None for random init.

    Example:
        >>> import torch
        >>> FIDInceptionV3(None).eval()(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([1, 2048])
    """

    def __init__(self, weights: str | os.PathLike | None = "fid_inception_v3"):
        super().__init__()
        net = _build_fid_inception_torso()
        if weights is not None:
            net.load_state_dict(load_checkpoint(weights), strict=True)
        else:
            net.fc = nn.Identity()  # torchvision's forward is only used for the calibration pass
            calibrate_batchnorm(net, torch.rand(4, 3, 299, 299) * 2 - 1)
        self.net = _PoolFeatures(net)

    def forward(self, frames: Tensor) -> Tensor:
        """uint8 ``[N, 3, H, W]`` -> ``[N, 2048]``."""
        _check_uint8_frames(frames)
        x = resize_tf1_bilinear(frames.float(), (299, 299))
        x = ((x - 128.0) / 128.0).to(next(self.net.parameters()).dtype)
        return self.net(x).float()

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the network (not the TF1 resize) at ``precision`` / in ``channels_last`` layout."""
        self.net = InferenceRunner(self.net, precision, channels_last)


class _PoolFeatures(nn.Module):
    """The FID Inception torso up to the 2048-d average pool (the TF graph's ``pool_3``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))
        for block in (
            n.Mixed_5b,
            n.Mixed_5c,
            n.Mixed_5d,
            n.Mixed_6a,
            n.Mixed_6b,
            n.Mixed_6c,
            n.Mixed_6d,
            n.Mixed_6e,
        ):
            x = block(x)
        x = n.Mixed_7c(n.Mixed_7b(n.Mixed_7a(x)))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def imagenet_inception_ref(weights: str | os.PathLike | None = "inception_v3_imagenet") -> BackboneRef:
    """Shared-cache handle for :class:`ImageNetInceptionV3`."""
    return BackboneRef("inception_v3_imagenet", ImageNetInceptionV3, weights)


def fid_inception_ref(weights: str | os.PathLike | None = "fid_inception_v3") -> BackboneRef:
    """Shared-cache handle for :class:`FIDInceptionV3`."""
    return BackboneRef("fid_inception_v3", FIDInceptionV3, weights)
