"""I3D for FVD: the StyleGAN-V TorchScript file (``torch.jit.load``), or a random stand-in for smoke runs.

The TorchScript network's call is ``net(x, rescale=..., resize=..., return_features=True)`` with ``x`` a
``[B, 3, T, H, W]`` float tensor; ``rescale`` maps [0, 255] to [-1, 1] and ``resize`` resizes frames to
224x224 inside the graph. It returns 400-d pre-softmax Kinetics logits, the FVD features. No architecture
code is needed to run it, so none is shipped.

:class:`I3DStandIn` is NOT I3D: a small randomly initialised 3-D CNN with the same calling convention and
output size, so FVD's code paths run in tests and smoke runs without the (non-commercial) download.

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

from metrics.backbones.cache import BackboneRef
from metrics.backbones.weights import resolve_weights

__all__ = ["I3DStandIn", "i3d_ref", "load_i3d"]


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
        if rescale:
            x = x / 255.0 * 2.0 - 1.0
        if resize:
            b, c, t, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            frames = F.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False)
            x = frames.reshape(b, t, c, 224, 224).permute(0, 2, 1, 3, 4)
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
