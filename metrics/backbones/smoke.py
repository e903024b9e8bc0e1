"""Small randomly initialised stand-in networks for the ``smoke`` preset (CI, first runs, demos on CPU).

They have the calling conventions of the real backbones they replace, so every metric runs its real code
path, but their numbers mean nothing: the smoke preset tags everything it logs as uncalibrated.

* :class:`TinyImageEncoder` -- frames ``[N, 3, H, W]`` -> ``[N, D]``: stands in for Inception (uint8 input,
  ``uint8_input=True``), DINO and CLIP (normalised float input after the metric's own preprocessing).

Example:
    >>> import torch
    >>> TinyImageEncoder(out_dim=16)(torch.rand(2, 3, 64, 48)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from metrics.backbones.cache import BackboneRef

__all__ = ["TinyImageEncoder", "tiny_image_encoder_ref"]


class TinyImageEncoder(nn.Module):
    """Four strided convolutions, global average pooling and a linear projection to ``out_dim``."""

    def __init__(self, out_dim: int = 64, width: int = 16, uint8_input: bool = False) -> None:
        super().__init__()
        if out_dim < 1 or width < 1:
            raise ValueError(f"`out_dim` and `width` must be positive, got {out_dim}, {width}")
        self.uint8_input = uint8_input
        layers: list[nn.Module] = []
        channels = 3
        for i in range(4):
            layers += [nn.Conv2d(channels, width * 2**i, 3, stride=2, padding=1), nn.GELU()]
            channels = width * 2**i
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, frames: Tensor) -> Tensor:
        x = frames.float() / 255.0 if self.uint8_input or frames.dtype == torch.uint8 else frames.float()
        return self.proj(self.features(x).mean(dim=(2, 3)))


def tiny_image_encoder_ref(out_dim: int = 64, uint8_input: bool = False) -> BackboneRef:
    """Shared-cache handle of a :class:`TinyImageEncoder` (seeded, identical on every rank)."""

    return BackboneRef(f"tiny_image_encoder_{out_dim}_{int(uint8_input)}", _TinyFactory(out_dim, uint8_input))


class _TinyFactory:
    """Picklable factory (DDP spawn pickles metrics, and with them their BackboneRefs)."""

    def __init__(self, out_dim: int, uint8_input: bool) -> None:
        self.out_dim, self.uint8_input = out_dim, uint8_input

    def __call__(self, weights: str | os.PathLike | None) -> nn.Module:
        net = TinyImageEncoder(out_dim=self.out_dim, uint8_input=self.uint8_input)
        if weights is not None:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        return net

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TinyFactory) and (self.out_dim, self.uint8_input) == (
            other.out_dim,
            other.uint8_input,
        )

    def __hash__(self) -> int:
        return hash((self.out_dim, self.uint8_input))
