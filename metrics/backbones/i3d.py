"""I3D for FVD: the StyleGAN-V TorchScript file (``torch.jit.load``), or a random stand-in for smoke runs.

The TorchScript network's call is ``net(x, rescale=..., resize=..., return_features=True)`` with ``x`` a
``[B, 3, T, H, W]`` float tensor; ``rescale`` maps [0, 255] to [-1, 1] and ``resize`` resizes frames to
224x224 inside the graph. It returns 400-d pre-softmax Kinetics logits, the FVD features. No architecture
code is needed to run that file.

:class:`I3DStandIn` is NOT I3D: a small randomly initialised 3-D CNN with the same calling convention and
output size, so FVD's code paths run in tests and smoke runs without the (non-commercial) download.

:class:`InceptionI3d` IS the I3D architecture (Carreira & Zisserman 2017, "Quo Vadis, Action Recognition?":
Inception-v1 inflated to 3-D, 12.3M parameters with 400 classes) with the same calling convention and
scriptable, so that speed benchmarks run the real network at its real cost with random weights
(:func:`inception_i3d_ref`, seeded and BatchNorm-calibrated). It is not used by :class:`~metrics.frechet.FVD`
unless passed as ``feature_extractor``: FVD numbers need the published Kinetics weights.

Example:
    >>> import torch
    >>> net = I3DStandIn().eval()
    >>> net(torch.rand(1, 3, 16, 64, 64), rescale=False, resize=False, return_features=True).shape
    torch.Size([1, 400])
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.weights import resolve_weights

__all__ = [
    "I3DStandIn",
    "InceptionI3d",
    "build_inception_i3d",
    "i3d_ref",
    "inception_i3d_ref",
    "load_i3d",
    "prepare_clip",
]


def prepare_clip(x: Tensor, rescale: bool, resize: bool) -> Tensor:
    """The TorchScript I3D's input options on a ``[B, 3, T, H, W]`` clip: ``rescale`` maps [0, 255] to
    [-1, 1], ``resize`` resizes every frame to 224x224 (bilinear). Scriptable; shared by both networks here.

    Example:
        >>> prepare_clip(torch.full((1, 3, 2, 8, 8), 255.0), True, True).shape
        torch.Size([1, 3, 2, 224, 224])
    """
    if rescale:
        x = x / 255.0 * 2.0 - 1.0
    if resize:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
        x = frames.reshape(b, t, c, 224, 224).permute(0, 2, 1, 3, 4)
    return x


class I3DStandIn(nn.Module):
    """Random-init stand-in with the I3D TorchScript calling convention (scriptable)."""

    def __init__(self, num_classes: int = 400, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, width, kernel_size=(3, 7, 7), stride=(1, 4, 4), padding=(1, 3, 3)),
            nn.ReLU(),
            nn.Conv3d(width, 2 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv3d(2 * width, 4 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.logits = nn.Linear(4 * width, num_classes)

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        x = prepare_clip(x, rescale, resize)
        pooled = self.features(x).mean(dim=(2, 3, 4))
        logits = self.logits(pooled)
        return logits if return_features else torch.softmax(logits, dim=-1)


def load_i3d(weights: str | os.PathLike | None = "i3d_torchscript") -> nn.Module:
    """Load the I3D TorchScript file (registry name or path), or build the stand-in for ``weights=None``."""
    if weights is None:
        return I3DStandIn()
    path = resolve_weights(weights)
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format this file ships in
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise ValueError(
            f"{path} is not a loadable TorchScript archive ({err}); FVD needs i3d_torchscript.pt"
        ) from err


def i3d_ref(weights: str | os.PathLike | None = "i3d_torchscript") -> BackboneRef:
    """Shared-cache handle for the FVD network."""
    return BackboneRef("i3d", load_i3d, weights)


# ------------------------------------------------------------------------------------ the I3D architecture
def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: ``(front, back)``, the odd pixel at the back."""
    total = max(kernel - (size % stride if size % stride else stride), 0)
    return total // 2, total - total // 2


class _Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d (eps 1e-3) + ReLU with TF "SAME" padding, as in the TF I3D graph.

    With ``batch_norm=False`` and ``relu=False`` it is the logits layer (a biased 1x1x1 convolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm: bool = True,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.relu = relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=not batch_norm)
        # TF's default BN epsilon is 1e-3 (PyTorch's is 1e-5); the momentum only matters for calibration.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        t0, t1 = _same_padding(x.shape[2], self.kernel[0], self.stride[0])
        h0, h1 = _same_padding(x.shape[3], self.kernel[1], self.stride[1])
        w0, w1 = _same_padding(x.shape[4], self.kernel[2], self.stride[2])
        x = self.bn(self.conv3d(F.pad(x, [w0, w1, h0, h1, t0, t1])))
        return F.relu(x) if self.relu else x


class _MaxPool3dSame(nn.Module):
    """3-D max pooling with TF "SAME" padding.

    Pads with zeros rather than -inf: every pooled tensor in I3D follows a ReLU (values >= 0), so the
    maximum is the same.
    """

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        t0, t1 = _same_padding(x.shape[2], self.kernel[0], self.stride[0])
        h0, h1 = _same_padding(x.shape[3], self.kernel[1], self.stride[1])
        w0, w1 = _same_padding(x.shape[4], self.kernel[2], self.stride[2])
        return F.max_pool3d(F.pad(x, [w0, w1, h0, h1, t0, t1]), list(self.kernel), list(self.stride))


class _InceptionBlock3d(nn.Module):
    """An inflated Inception-v1 block: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | max-pool -> 1x1x1.

    ``widths`` = (branch 0, branch 1 reduce, branch 1, branch 2 reduce, branch 2, pool projection); the
    output has ``widths[0] + widths[2] + widths[4] + widths[5]`` channels. (The TF I3D graph uses 3x3x3 in
    the second reduce branch too, not GoogLeNet's 5x5.)
    """

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.branch0 = _Unit3D(in_channels, widths[0])
        self.branch1 = nn.Sequential(
            _Unit3D(in_channels, widths[1]), _Unit3D(widths[1], widths[2], kernel=(3, 3, 3))
        )
        self.branch2 = nn.Sequential(
            _Unit3D(in_channels, widths[3]), _Unit3D(widths[3], widths[4], kernel=(3, 3, 3))
        )
        self.branch3 = nn.Sequential(_MaxPool3dSame((3, 3, 3), (1, 1, 1)), _Unit3D(in_channels, widths[5]))
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


#: (name, input channels, branch widths) of the nine Inception blocks, as published.
_I3D_BLOCKS: tuple[tuple[str, int, tuple[int, int, int, int, int, int]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class InceptionI3d(nn.Module):
    """The I3D network (RGB stream, Kinetics-400 head) with the StyleGAN-V TorchScript calling convention.

    Layers, with TF "SAME" padding throughout: ``Conv3d_1a_7x7`` (64, stride 2), ``MaxPool3d_2a_3x3``
    (1x3x3, stride 1x2x2), ``Conv3d_2b_1x1`` (64), ``Conv3d_2c_3x3`` (192), ``MaxPool3d_3a_3x3`` (1x3x3,
    stride 1x2x2), ``Mixed_3b``, ``Mixed_3c``, ``MaxPool3d_4a_3x3`` (3x3x3, stride 2), ``Mixed_4b`` ..
    ``Mixed_4f``, ``MaxPool3d_5a_2x2`` (2x2x2, stride 2), ``Mixed_5b``, ``Mixed_5c`` (1024 channels), average
    pooling over 2x7x7 (stride 1), dropout, a biased 1x1x1 convolution to ``num_classes`` logits, averaged
    over the remaining time (and space) positions. For a 16 x 224 x 224 clip the pooled map is 1x1x1.
    Clips smaller than 2 x 7 x 7 after the five stride-2 stages (inputs under 9 frames or 193 px) pool over
    what is left, so tests can run it on small inputs.

    ``forward(x, rescale=False, resize=False, return_features=False)`` with ``x`` ``[B, 3, T, H, W]``:
    ``rescale`` maps [0, 255] to [-1, 1], ``resize`` resizes frames bilinearly to 224x224, and the result is
    the ``[B, num_classes]`` logits (``return_features=True``, FVD's features) or their softmax. Scriptable
    (``torch.jit.script``). Random initialisation is PyTorch's default; :func:`build_inception_i3d`
    calibrates the BatchNorm statistics so that a random network's activations stay O(1).

    Example:
        >>> import torch
        >>> net = InceptionI3d().eval()
        >>> net(torch.rand(1, 3, 8, 64, 64), return_features=True).shape
        torch.Size([1, 400])
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes)
        stem: list[tuple[str, nn.Module]] = [
            ("Conv3d_1a_7x7", _Unit3D(in_channels, 64, kernel=(7, 7, 7), stride=(2, 2, 2))),
            ("MaxPool3d_2a_3x3", _MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", _Unit3D(64, 64)),
            ("Conv3d_2c_3x3", _Unit3D(64, 192, kernel=(3, 3, 3))),
            ("MaxPool3d_3a_3x3", _MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3)), "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2))}
        layers = nn.Sequential()
        for name, module in stem:
            layers.add_module(name, module)
        for name, in_ch, widths in _I3D_BLOCKS:
            if name in pools:
                pool_name, kernel = pools[name]
                layers.add_module(pool_name, _MaxPool3dSame(kernel, (2, 2, 2)))
            layers.add_module(name, _InceptionBlock3d(in_ch, widths))
        self.features = layers
        self.dropout = nn.Dropout(dropout)
        self.logits = _Unit3D(1024, num_classes, batch_norm=False, relu=False)
        self.num_classes = num_classes

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError("`x` must be a [B, 3, T, H, W] clip")
        x = prepare_clip(x, rescale, resize)
        y = self.features(x)
        kernel = [min(2, y.shape[2]), min(7, y.shape[3]), min(7, y.shape[4])]
        y = F.avg_pool3d(y, kernel, [1, 1, 1])
        logits = self.logits(self.dropout(y)).mean(dim=(2, 3, 4))
        return logits if return_features else torch.softmax(logits, dim=-1)


def build_inception_i3d(
    weights: str | os.PathLike | None = None, script: bool = True, calibrate: bool = True, seed: int = 0
) -> nn.Module:
    """An :class:`InceptionI3d` in eval mode, scripted like the StyleGAN-V file (``script=True``).

    ``weights=None``: seeded random initialisation, then (``calibrate``) the BatchNorm running statistics
    are set from one seeded batch of two random 16 x 112 x 112 clips in [0, 1] (what jwbdh-v1 feeds), so
    that activations stay O(1) through the 57 layers instead of shrinking towards zero; FVD values are then
    sizeable, like those of the trained network. Otherwise ``weights`` is a checkpoint (path or registry
    name) holding an :class:`InceptionI3d` state dict, loaded strictly.

    Example:
        >>> net = build_inception_i3d(calibrate=False)
        >>> net(torch.rand(1, 3, 8, 64, 64), False, False, True).shape
        torch.Size([1, 400])
    """
    from metrics.backbones.inception import calibrate_batchnorm
    from metrics.backbones.weights import load_checkpoint

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = InceptionI3d()
        if weights is not None:
            net.load_state_dict(load_checkpoint(weights), strict=True)
        elif calibrate:
            calibrate_batchnorm(net, torch.rand(2, 3, 16, 112, 112))
    net.eval()
    return torch.jit.script(net) if script else net


def inception_i3d_ref(weights: str | os.PathLike | None = None) -> BackboneRef:
    """Shared-cache handle for the scripted :class:`InceptionI3d` (random calibrated weights by default).

    Example:
        >>> inception_i3d_ref().name
        'inception_i3d'
    """
    return BackboneRef("inception_i3d", build_inception_i3d, weights)
