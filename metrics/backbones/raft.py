"""RAFT optical flow for VBench's dynamic degree: torchvision ``raft_large`` with the C_T_V1 weights.

VBench runs the original RAFT code with ``raft-things.pth``; torchvision's ``Raft_Large_Weights.C_T_V1`` is
the port of that checkpoint to torchvision's RAFT, so we build ``raft_large(weights=None)`` and load our
registry's ``raft_large_c_t_v1`` file (or any path) strictly. What VBench does around the network, and what
:class:`RAFTLarge` reproduces:

* Frames are float RGB in **[0, 255]** (VBench feeds decoded uint8 frames as float32); the original RAFT maps
  them to ``2 * (x / 255) - 1`` inside its forward. torchvision's RAFT expects [-1, 1] already
  (``weights.transforms()``), so the mapping happens here, before the network.
* Both frames of a pair are replicate-padded to multiples of 8, centred (RAFT's ``InputPadder`` in
  ``"sintel"`` mode: ``pad = (-size) % 8``, ``pad // 2`` before and the rest after), because RAFT works on a
  1/8 resolution grid. :func:`crop_padding` undoes it; VBench's dynamic degree does NOT crop (it ranks flow
  magnitudes over the padded map), so ``forward(..., crop=False)`` returns the padded flow.
* 20 flow updates (VBench's ``iters=20``; torchvision defaults to 12), the last upsampled flow in pixels
  (``test_mode=True``'s ``flow_up``).

torchvision's correlation pyramid needs feature maps of at least 16 x 16, so padded frames must be at least
128 x 128 (frames of 121 px or more per side); :attr:`RAFTLarge.min_padded_size` states this and
:class:`PaddedFlowNet` raises a ValueError for smaller frames instead of failing deep inside RAFT.

Example:
    >>> import torch
    >>> net = RAFTLarge(weights=None).eval()
    >>> a = torch.rand(1, 3, 124, 130) * 255
    >>> net(a, a, crop=False).shape, net(a, a).shape  # doctest: +SKIP
    (torch.Size([1, 2, 128, 136]), torch.Size([1, 2, 124, 130]))
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics.backbones.cache import BackboneRef
from metrics.backbones.weights import load_checkpoint

__all__ = [
    "VBENCH_NUM_FLOW_UPDATES",
    "PaddedFlowNet",
    "RAFTLarge",
    "crop_padding",
    "pad_to_multiple",
    "padding_for",
    "raft_ref",
]

#: VBench's ``iters=20`` for dynamic degree.
VBENCH_NUM_FLOW_UPDATES = 20


def padding_for(height: int, width: int, multiple: int = 8) -> tuple[int, int, int, int]:
    """RAFT ``InputPadder`` ("sintel" mode) padding ``(left, right, top, bottom)`` up to ``multiple``.

    Example:
        >>> padding_for(121, 126)
        (1, 1, 3, 4)
    """
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def pad_to_multiple(images: Tensor, multiple: int = 8) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Replicate-pad float ``[N, C, H, W]`` images (centred) to multiples of ``multiple``.

    Returns the padded images and the ``(left, right, top, bottom)`` padding for :func:`crop_padding`.
    """
    pads = padding_for(images.shape[-2], images.shape[-1], multiple)
    if not any(pads):
        return images, pads
    return F.pad(images, pads, mode="replicate"), pads


def crop_padding(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Remove ``(left, right, top, bottom)`` padding from the last two dimensions (``InputPadder.unpad``)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class PaddedFlowNet(nn.Module):
    """Base of flow networks used by :class:`~metrics.dynamic_degree.DynamicDegree`.

    ``forward(image1, image2, crop=True)`` takes two float ``[N, 3, H, W]`` batches in [0, 255], pads them
    with :func:`pad_to_multiple`, calls :meth:`flow_padded` and returns the ``[N, 2, H', W']`` flow in pixels
    (``u`` = x displacement, ``v`` = y displacement), cropped back to ``H x W`` unless ``crop=False``.
    Subclasses implement :meth:`flow_padded`; tests use this to inject known flow fields.
    """

    #: padding multiple of the network's input
    multiple: int = 8
    #: smallest padded height/width the network accepts
    min_padded_size: int = 1

    def flow_padded(self, image1: Tensor, image2: Tensor) -> Tensor:
        """Flow ``[N, 2, Hp, Wp]`` between padded float [0, 255] frames."""
        raise NotImplementedError

    def min_frame_size(self) -> int:
        """Smallest unpadded frame side the network accepts."""
        return max(1, self.min_padded_size - self.multiple + 1)

    def forward(self, image1: Tensor, image2: Tensor, crop: bool = True) -> Tensor:
        if image1.ndim != 4 or image1.shape != image2.shape or image1.shape[1] != 3:
            raise ValueError(
                f"flow inputs must be two [N, 3, H, W] batches of the same shape, got {tuple(image1.shape)} "
                f"and {tuple(image2.shape)}"
            )
        if not image1.is_floating_point():
            raise ValueError(f"flow inputs must be float frames in [0, 255], got dtype {image1.dtype}")
        h, w = image1.shape[-2:]
        if min(h, w) < self.min_frame_size():
            raise ValueError(
                f"{type(self).__name__} needs frames of at least {self.min_frame_size()} px per side (padded "
                f"to a multiple of {self.multiple}: >= {self.min_padded_size}), got {h}x{w}"
            )
        pair = torch.cat([image1, image2])
        padded, pads = pad_to_multiple(pair, self.multiple)
        first, second = padded.chunk(2)
        flow = self.flow_padded(first, second)
        return crop_padding(flow, pads) if crop else flow


class RAFTLarge(PaddedFlowNet):
    """torchvision RAFT-large with VBench's input handling (see the module docstring).

    Args:
        weights: registry name (``"raft_large_c_t_v1"``), checkpoint path (a torchvision ``raft_large``
            state dict), or None for a seeded random initialisation (smoke runs: flows are meaningless).
        num_flow_updates: recurrent refinement steps (VBench: 20).

    Example:
        >>> import torch
        >>> net = RAFTLarge(weights=None).eval()
        >>> x = torch.rand(1, 3, 128, 128) * 255
        >>> net(x, x).shape  # doctest: +SKIP
        torch.Size([1, 2, 128, 128])
    """

    min_padded_size = 128  # torchvision: feature maps of >= 16 px for the 4-level correlation pyramid

    def __init__(
        self,
        weights: str | os.PathLike | None = "raft_large_c_t_v1",
        num_flow_updates: int = VBENCH_NUM_FLOW_UPDATES,
    ) -> None:
        super().__init__()
        if not isinstance(num_flow_updates, int) or num_flow_updates < 1:
            raise ValueError(f"`num_flow_updates` must be a positive int, got {num_flow_updates!r}")
        from torchvision.models.optical_flow import raft_large

        net = raft_large(weights=None, progress=False)
        if weights is not None:
            net.load_state_dict(load_checkpoint(weights), strict=True)
        self.raft = net
        self.num_flow_updates = num_flow_updates

    def flow_padded(self, image1: Tensor, image2: Tensor) -> Tensor:
        """[0, 255] padded frames -> ``2 * (x / 255) - 1`` -> RAFT -> last upsampled flow."""
        dtype = next(self.raft.parameters()).dtype
        x1 = (2.0 * (image1 / 255.0) - 1.0).to(dtype)
        x2 = (2.0 * (image2 / 255.0) - 1.0).to(dtype)
        return self.raft(x1, x2, num_flow_updates=self.num_flow_updates)[-1].float()


def raft_ref(
    weights: str | os.PathLike | None = "raft_large_c_t_v1",
    num_flow_updates: int = VBENCH_NUM_FLOW_UPDATES,
) -> BackboneRef:
    """Shared-cache handle for :class:`RAFTLarge` (one cache entry per number of flow updates)."""
    if num_flow_updates == VBENCH_NUM_FLOW_UPDATES:
        return BackboneRef("raft_large", RAFTLarge, weights)
    factory = functools.partial(RAFTLarge, num_flow_updates=num_flow_updates)
    return BackboneRef(f"raft_large_{num_flow_updates}upd", factory, weights)
