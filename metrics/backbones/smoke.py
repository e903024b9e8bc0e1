"""Small randomly initialised stand-in networks for the ``smoke`` preset (CI, first runs, demos on CPU).

They have the calling conventions of the real backbones they replace, so every metric runs its real code
path, but their numbers mean nothing: the smoke preset tags everything it logs as uncalibrated.

* :class:`TinyImageEncoder` -- frames ``[N, 3, H, W]`` -> ``[N, D]``: stands in for Inception (uint8 input,
  ``uint8_input=True``), DINO and CLIP (normalised float input after the metric's own preprocessing).
* :class:`BlockMatchingFlow` -- a classical, parameter-free optical flow (exhaustive block matching) with
  RAFT's calling convention, for DynamicDegree in smoke runs: unlike a random RAFT it measures real motion
  (a static video has exactly zero flow), at a fraction of the cost and on crops of any size.
* :class:`FrameBlendInterpolator` -- the classical linear-blend frame interpolator (``(1 - t) I0 + t I1``)
  with AMT's calling convention, for MotionSmoothness in smoke runs: a video whose frames change linearly
  scores exactly 1, flicker scores lower, and it costs a few element-wise passes instead of a random AMT-S.

Example:
    >>> import torch
    >>> TinyImageEncoder(out_dim=16)(torch.rand(2, 3, 64, 48)).shape
    torch.Size([2, 16])
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.raft import PaddedFlowNet
from metrics.backbones.weights import torch_load

__all__ = [
    "BlockMatchingFlow",
    "FrameBlendInterpolator",
    "TinyImageEncoder",
    "block_matching_flow_ref",
    "frame_blend_ref",
    "tiny_image_encoder_ref",
]


class TinyImageEncoder(nn.Module):
    """A 4x4 patchify stem, three strided convolutions, global average pooling and a linear projection.

    The patchify stem (as in ViTs and ConvNeXt) makes the encoder about 4x cheaper than a 3x3 stride-2 stem
    at the 224 px the CLIP/DINO preprocessing produces; frames smaller than 4 px are padded up to it.
    """

    def __init__(self, out_dim: int = 64, width: int = 16, uint8_input: bool = False) -> None:
        super().__init__()
        check_positive_int("out_dim", out_dim)
        check_positive_int("width", width)
        self.uint8_input = uint8_input
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=4), nn.GELU()]
        channels = width
        for i in range(1, 4):
            layers += [nn.Conv2d(channels, width * 2**i, 3, stride=2, padding=1), nn.GELU()]
            channels = width * 2**i
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, frames: Tensor) -> Tensor:
        x = frames.float() / 255.0 if self.uint8_input or frames.dtype == torch.uint8 else frames.float()
        short_h, short_w = max(0, 4 - x.shape[-2]), max(0, 4 - x.shape[-1])
        if short_h or short_w:
            x = F.pad(x, (0, short_w, 0, short_h), mode="replicate")
        return self.proj(self.features(x).mean(dim=(2, 3)))


def tiny_image_encoder_ref(out_dim: int = 64, uint8_input: bool = False) -> BackboneRef:
    """Shared-cache handle of a :class:`TinyImageEncoder` (seeded, identical on every rank)."""

    # "v2": the patchify-stem architecture; a new name keeps statistics saved with the old one from loading
    name = f"tiny_image_encoder_v2_{out_dim}_{int(uint8_input)}"
    return BackboneRef(name, _TinyFactory(out_dim, uint8_input))


class _TinyFactory:
    """Picklable factory (DDP spawn pickles metrics, and with them their BackboneRefs)."""

    def __init__(self, out_dim: int, uint8_input: bool) -> None:
        self.out_dim, self.uint8_input = out_dim, uint8_input

    def __call__(self, weights: str | os.PathLike | None) -> nn.Module:
        net = TinyImageEncoder(out_dim=self.out_dim, uint8_input=self.uint8_input)
        if weights is not None:
            net.load_state_dict(torch_load(weights), strict=True)
        return net

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TinyFactory) and (self.out_dim, self.uint8_input) == (
            other.out_dim,
            other.uint8_input,
        )

    def __hash__(self) -> int:
        return hash((self.out_dim, self.uint8_input))


class BlockMatchingFlow(PaddedFlowNet):
    """Per-block integer displacement minimising the mean absolute difference within ``±radius`` pixels.

    Frames (float [0, 255], padded to a multiple of ``block``) are converted to grey; for every shift
    ``(dx, dy)`` the absolute difference between frame 2 shifted back and frame 1 is averaged over
    ``block x block`` cells; each cell takes the best shift (ties go to the smallest displacement, so a static
    scene gives exactly zero). The block flow is repeated to full resolution: ``[N, 2, H, W]`` in pixels.
    """

    multiple = 8

    def __init__(self, radius: int = 6, block: int = 8) -> None:
        super().__init__()
        check_positive_int("radius", radius)
        check_positive_int("block", block)
        self.radius, self.block = radius, block
        self.multiple = block

    def flow_padded(self, image1: Tensor, image2: Tensor) -> Tensor:
        weights = torch.tensor([0.299, 0.587, 0.114], device=image1.device).view(1, 3, 1, 1)
        g1, g2 = (image1 * weights).sum(1, keepdim=True), (image2 * weights).sum(1, keepdim=True)
        r = self.radius
        padded = F.pad(g2, (r, r, r, r), mode="replicate")
        h, w = g1.shape[-2:]
        shifts = [(dx, dy) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        costs = []
        for dx, dy in shifts:
            moved = padded[..., r + dy : r + dy + h, r + dx : r + dx + w]
            costs.append(F.avg_pool2d((moved - g1).abs(), self.block))
        cost = torch.cat(costs, dim=1)  # [N, S, H/b, W/b]
        disp = torch.tensor(shifts, dtype=cost.dtype, device=cost.device)  # [S, 2]
        cost = cost + 1e-4 * disp.norm(dim=1).view(1, -1, 1, 1)  # ties -> smallest motion
        best = disp[cost.argmin(dim=1)]  # [N, H/b, W/b, 2]
        flow = best.permute(0, 3, 1, 2)
        return flow.repeat_interleave(self.block, dim=2).repeat_interleave(self.block, dim=3)


def block_matching_flow_ref(radius: int = 6, block: int = 8) -> BackboneRef:
    """Shared-cache handle of a :class:`BlockMatchingFlow` (no weights)."""
    return BackboneRef(f"block_matching_flow_{radius}_{block}", _BlockMatchingFactory(radius, block))


class _BlockMatchingFactory:
    def __init__(self, radius: int, block: int) -> None:
        self.radius, self.block = radius, block

    def __call__(self, weights: str | os.PathLike | None) -> nn.Module:
        if weights is not None:
            raise ValueError("BlockMatchingFlow has no weights; pass weights=None")
        return BlockMatchingFlow(self.radius, self.block)


class FrameBlendInterpolator(nn.Module):
    """Linear-blend frame interpolation with AMT's calling convention (no parameters, no weights).

    ``forward(img0, img1, embt)`` returns ``{"imgt_pred": (1 - embt) * img0 + embt * img1}`` clamped to
    [0, 1], the classical baseline interpolator: exact for content that changes linearly in time (fades,
    static scenes), blurry for moving edges, wrong for flicker. The scale factor is accepted and ignored
    (there is no flow pyramid to scale).
    """

    def forward(
        self, img0: Tensor, img1: Tensor, embt: Tensor, scale_factor: float = 1.0, eval: bool = True
    ) -> dict[str, Tensor]:
        del scale_factor, eval  # AMT's signature; nothing to scale
        return {"imgt_pred": torch.lerp(img0, img1, embt).clamp(0, 1)}


def frame_blend_ref() -> BackboneRef:
    """Shared-cache handle of a :class:`FrameBlendInterpolator` (no weights)."""
    return BackboneRef("frame_blend_interpolator", _FrameBlendFactory())


class _FrameBlendFactory:
    def __call__(self, weights: str | os.PathLike | None) -> nn.Module:
        if weights is not None:
            raise ValueError("FrameBlendInterpolator has no weights; pass weights=None")
        return FrameBlendInterpolator()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FrameBlendFactory)

    def __hash__(self) -> int:
        return hash("frame_blend")
