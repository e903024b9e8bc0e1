r"""AMT-S frame interpolation (Li et al., CVPR 2023), the network behind VBench's motion smoothness (MS).

No package ships AMT, so the network is implemented here from the public architecture (MCG-NKU/AMT
``networks/AMT-S.py`` and ``networks/blocks/{feat_enc,ifrnet,multi_flow,raft}.py``, vendored unchanged by
VBench in ``vbench/third_party/amt``) with the same module tree, so that the released ``amt-s.pth`` (tensors
under its ``state_dict`` key) loads **strictly**: 213 tensors, 2,990,543 parameters. Configuration:
correlation radius 3, 4 correlation levels, 3 flow hypotheses, pyramid channels (20, 32, 44, 56), skip
channels 20.

One idea: the AMT-S network, one architecture whose module tree must mirror the released checkpoint's key
layout to load it strictly; splitting its blocks over files would scatter that one correspondence.

Pipeline of one forward pass (two frames ``img0``, ``img1`` in [0, 1], ``[N, 3, H, W]``, H and W multiples of
16 and at least 128 so that the coarsest correlation level keeps 2 x 2 cells):

1. subtract the per-sample mean intensity of both frames (added back at the end);
2. a RAFT-style instance-normalised feature encoder (1/8 resolution, 84 channels) builds an all-pairs
   correlation volume ``<f0(p), f1(q)> / sqrt(84)`` and its transpose, pooled into 4 levels;
3. an IFRNet-style 4-level pyramid encoder (1/2 .. 1/16 resolution) feeds coarse-to-fine decoders that
   predict the bidirectional flows t->0 and t->1 and an intermediate feature map at 1/8, 1/4 and 1/2; after
   each, a RAFT-style update block (working at 1/8) refines them from correlation lookups (radius 3 around
   ``coord + flow_t1 / t`` and ``coord + flow_t0 / (1 - t)``);
4. the last decoder outputs 3 flow pairs, 3 occlusion masks (sigmoid) and 3 RGB residuals at full
   resolution; each hypothesis is ``mask * warp(img0, f0) + (1 - mask) * warp(img1, f1) + mean + residual``;
   the prediction is their average plus a small convolutional combination of them, clamped to [0, 1].

``scale_factor < 1`` runs steps 2-4 on bilinearly downscaled frames and upsamples flows, masks and
residuals back, exactly as AMT does (VBench's VRAM heuristic, see :mod:`metrics.motion`). Every sample of a
batch is processed independently (instance norm, per-sample mean, per-sample correlation), so pairs of
frames can be batched freely.

Weights: ``amt-s.pth`` from the AMT authors (registry name ``"amt_s"``), CC BY-NC 4.0 (non-commercial).

Example:
    >>> import torch
    >>> net = AMTS(weights=None).eval()
    >>> a, b = torch.rand(2, 1, 3, 128, 128).unbind(0)
    >>> net(a, b, torch.full((1, 1, 1, 1), 0.5))["imgt_pred"].shape
    torch.Size([1, 3, 128, 128])
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.precision import check_precision, inference_precision, set_module_layout, to_layout
from metrics.backbones.weights import REGISTRY, WeightsChecksumError, resolve_weights, torch_load, verify_file

__all__ = [
    "AMTS",
    "MIN_PADDED_SIZE",
    "amt_s_ref",
    "backward_warp",
    "load_amt_checkpoint",
    "pad_replicate",
    "padding_for",
    "unpad",
]

#: Smallest padded frame side AMT-S can process: 128 / 8 = 16 correlation cells, pooled 3 times to 2.
#: (At 64..112 px the coarsest level has a single row or column and the reference code returns NaN.)
MIN_PADDED_SIZE = 128


# --------------------------------------------------------------------------------------------------------
# padding (VBench / AMT ``InputPadder`` semantics)


def padding_for(height: int, width: int, divisor: int = 16, min_size: int = 0) -> tuple[int, int, int, int]:
    """Replicate-padding ``(left, right, top, bottom)`` that makes a frame a multiple of ``divisor``.

    The extra rows/columns are split as evenly as possible, the odd one going to the bottom/right (as
    AMT's ``InputPadder``). ``min_size`` additionally grows each side to at least that many pixels (split
    the same way); it is 0 in VBench.

    Example:
        >>> padding_for(115, 139)
        (2, 3, 6, 7)
    """
    check_int("divisor", divisor, minimum=1)

    def total(size: int) -> int:
        target = -(-size // divisor) * divisor
        if target < min_size:
            target = -(-min_size // divisor) * divisor
        return target - size

    pad_h, pad_w = total(height), total(width)
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def pad_replicate(frames: Tensor, pads: Sequence[int]) -> Tensor:
    """Replicate-pad ``[N, C, H, W]`` frames by ``(left, right, top, bottom)``."""
    if not any(pads):
        return frames
    return F.pad(frames, tuple(pads), mode="replicate")


def unpad(frames: Tensor, pads: Sequence[int]) -> Tensor:
    """Crop the border added by :func:`pad_replicate`."""
    left, right, top, bottom = pads
    height, width = frames.shape[-2:]
    return frames[..., top : height - bottom, left : width - right]


# --------------------------------------------------------------------------------------------------------
# sampling helpers


def _rescale(x: Tensor, scale_factor: float) -> Tensor:
    """Bilinear resize by a factor (half-pixel centres, no antialiasing), AMT's ``resize``."""
    return F.interpolate(x, scale_factor=scale_factor, mode="bilinear", align_corners=False)


def backward_warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` at ``p + flow(p)`` (bilinear, border padding), AMT's ``warp``.

    ``flow`` is ``[N, 2, H, W]`` in pixels (x then y); the sampling grid is built like AMT's: a
    ``linspace(-1, 1)`` base grid plus the flow scaled by ``2 / (size - 1)``, read with
    ``align_corners=True``.
    """
    n, _, height, width = flow.shape
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device).view(1, 1, 1, width).expand(n, -1, height, -1)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device).view(1, 1, height, 1).expand(n, -1, -1, width)
    base = torch.cat([xs, ys], 1).to(image)
    offset = torch.cat([flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)], 1)
    grid = (base + offset).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _pixel_grid(batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """``[N, 2, H, W]`` float pixel coordinates, channel 0 = x (column), channel 1 = y (row)."""
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    return torch.stack([cols, rows], dim=0).float()[None].repeat(batch, 1, 1, 1)


def _sample_pixels(volume: Tensor, coords: Tensor) -> Tensor:
    """``grid_sample`` at pixel coordinates ``coords[..., (x, y)]`` (zero outside, corner-aligned)."""
    height, width = volume.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
    return F.grid_sample(volume, grid, align_corners=True)


# --------------------------------------------------------------------------------------------------------
# building blocks (attribute names follow the public checkpoint)


def _conv_prelu(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """Conv2d followed by a per-channel PReLU (keys ``0.weight``, ``0.bias``, ``1.weight``)."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.PReLU(cout))


class _Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 residual bottleneck with parameter-free instance norms."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        mid = cout // 4
        self.conv1 = nn.Conv2d(cin, mid, kernel_size=1, padding=0)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(mid, cout, kernel_size=1, padding=0)
        self.norm1 = nn.InstanceNorm2d(mid)
        self.norm2 = nn.InstanceNorm2d(mid)
        self.norm3 = nn.InstanceNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1:
            self.norm4 = nn.InstanceNorm2d(cout)
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride), self.norm4)

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.relu(self.norm3(self.conv3(y)))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(skip + y)


class _CorrelationEncoder(nn.Module):
    """RAFT "small" encoder with instance norm: ``[N, 3, H, W]`` -> ``[N, 84, H/8, W/8]``."""

    def __init__(self, output_dim: int = 84) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=7, stride=2, padding=3)
        self.norm1 = nn.InstanceNorm2d(32)
        self.relu1 = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(_Bottleneck(32, 32, 1), _Bottleneck(32, 32, 1))
        self.layer2 = nn.Sequential(_Bottleneck(32, 64, 2), _Bottleneck(64, 64, 1))
        self.layer3 = nn.Sequential(_Bottleneck(64, 96, 2), _Bottleneck(96, 96, 1))
        self.conv2 = nn.Conv2d(96, output_dim, kernel_size=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _SideResBlock(nn.Module):
    """IFRNet residual block that re-convolves the last ``side`` channels twice on the way."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.side_channels = side
        self.conv1 = _conv_prelu(channels, channels)
        self.conv2 = _conv_prelu(side, side)
        self.conv3 = _conv_prelu(channels, channels)
        self.conv4 = _conv_prelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)
        self.prelu = nn.PReLU(channels)

    def _refine_side(self, x: Tensor, conv: nn.Module) -> Tensor:
        s = self.side_channels
        return torch.cat([x[:, :-s], conv(x[:, -s:])], 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self._refine_side(self.conv1(x), self.conv2))
        out = self.conv5(self._refine_side(out, self.conv4))
        return self.prelu(x + out)


class _PyramidEncoder(nn.Module):
    """Four stride-2 stages ``pyramid1..4`` of two conv+PReLU each: features at 1/2, 1/4, 1/8, 1/16."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.num_levels = len(channels)
        previous = 3
        for level, ch in enumerate(channels, 1):
            stage = nn.Sequential(_conv_prelu(previous, ch, 3, 2, 1), _conv_prelu(ch, ch, 3, 1, 1))
            self.add_module(f"pyramid{level}", stage)
            previous = ch

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for level in range(1, self.num_levels + 1):
            x = getattr(self, f"pyramid{level}")(x)
            features.append(x)
        return features


def _decoder_block(cin: int, width: int, cout: int, side: int) -> nn.Sequential:
    """conv+PReLU to ``width``, side residual block, 2x transposed-conv upsampling (``convblock.{0,1,2}``)."""
    return nn.Sequential(
        _conv_prelu(cin, width), _SideResBlock(width, side), nn.ConvTranspose2d(width, cout, 4, 2, 1)
    )


class _InitDecoder(nn.Module):
    """Coarsest decoder: both 1/16 features + the time map -> flows t->0, t->1 and a feature at 1/8."""

    def __init__(self, cin: int, cout: int, side: int) -> None:
        super().__init__()
        self.convblock = _decoder_block(2 * cin + 1, 2 * cin, cout + 4, side)

    def forward(self, f0: Tensor, f1: Tensor, embt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        height, width = f0.shape[2:]
        out = self.convblock(torch.cat([f0, f1, embt.repeat(1, 1, height, width)], 1))
        return out[:, 0:2], out[:, 2:4], out[:, 4:]


class _IntermediateDecoder(nn.Module):
    """Decoder at 1/8 and 1/4: warps both feature maps with the current flows, predicts residual flows."""

    def __init__(self, cin: int, cout: int, side: int) -> None:
        super().__init__()
        self.convblock = _decoder_block(3 * cin + 4, 3 * cin, cout + 4, side)

    def forward(
        self, feat_t: Tensor, f0: Tensor, f1: Tensor, flow0: Tensor, flow1: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.cat([feat_t, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1)
        out = self.convblock(x)
        new0 = out[:, 0:2] + 2.0 * _rescale(flow0, 2.0)
        new1 = out[:, 2:4] + 2.0 * _rescale(flow1, 2.0)
        return new0, new1, out[:, 4:]


class _MultiFlowDecoder(nn.Module):
    """Finest decoder: ``num_flows`` flow pairs, occlusion masks and RGB residuals at full resolution."""

    def __init__(self, cin: int, side: int, num_flows: int) -> None:
        super().__init__()
        self.num_flows = num_flows
        self.convblock = _decoder_block(3 * cin + 4, 3 * cin, 8 * num_flows, side)

    def forward(
        self, feat_t: Tensor, f0: Tensor, f1: Tensor, flow0: Tensor, flow1: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k = self.num_flows
        x = torch.cat([feat_t, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1)
        delta0, delta1, mask_logits, residual = torch.split(self.convblock(x), [2 * k, 2 * k, k, 3 * k], 1)
        new0 = delta0 + 2.0 * _rescale(flow0, 2.0).repeat(1, k, 1, 1)
        new1 = delta1 + 2.0 * _rescale(flow1, 2.0).repeat(1, k, 1, 1)
        return new0, new1, torch.sigmoid(mask_logits), residual


class _UpdateBlock(nn.Module):
    """RAFT-style refinement from correlation + flow; runs at 1/8 (``scale`` 2 or 4 resamples to 1/8)."""

    def __init__(
        self,
        feat_dim: int,
        scale: int | None,
        corr_levels: int,
        radius: int,
        hidden_dim: int = 76,
        flow_dim: int = 20,
        corr_dim: int = 64,
        fc_dim: int = 68,
    ) -> None:
        super().__init__()
        self.scale_factor = scale
        corr_planes = corr_levels * (2 * radius + 1) ** 2
        self.convc1 = nn.Conv2d(2 * corr_planes, corr_dim, 1, padding=0)
        self.convf1 = nn.Conv2d(4, 2 * flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * flow_dim, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def head(cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
                nn.LeakyReLU(0.1, inplace=True),
                nn.Conv2d(hidden_dim, cout, 3, padding=1),
            )

        self.gru = nn.Sequential(
            nn.Conv2d(fc_dim + 4 + feat_dim, hidden_dim, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
        )
        self.feat_head = head(feat_dim)
        self.flow_head = head(4)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, feat: Tensor, flow: Tensor, corr: Tensor) -> tuple[Tensor, Tensor]:
        if self.scale_factor is not None:
            feat = _rescale(feat, 1 / self.scale_factor)
        motion = torch.cat(
            [self.lrelu(self.convc1(corr)), self.lrelu(self.convf2(self.lrelu(self.convf1(flow))))], dim=1
        )
        hidden = self.gru(torch.cat([self.lrelu(self.conv(motion)), flow, feat], dim=1))
        delta_feat, delta_flow = self.feat_head(hidden), self.flow_head(hidden)
        if self.scale_factor is not None:
            delta_feat = _rescale(delta_feat, self.scale_factor)
            delta_flow = self.scale_factor * _rescale(delta_flow, self.scale_factor)
        return delta_feat, delta_flow


class _BidirectionalCorrelation:
    """All-pairs correlation of two feature maps, both directions, as a pooled pyramid (not a module)."""

    def __init__(self, fmap0: Tensor, fmap1: Tensor, num_levels: int, radius: int) -> None:
        self.num_levels = num_levels
        self.radius = radius
        n, dim, height, width = fmap0.shape
        scale = torch.sqrt(torch.tensor(dim, device=fmap0.device).float())
        cells = height * width
        corr = torch.matmul(fmap0.view(n, dim, cells).transpose(1, 2), fmap1.view(n, dim, cells))
        corr = corr.view(n, height, width, 1, height, width) / scale
        # forward: per pixel of fmap0 a map over fmap1; backward: per pixel of fmap1 a map over fmap0
        level0 = corr.reshape(n * height * width, 1, height, width)
        level1 = corr.permute(0, 4, 5, 3, 1, 2).reshape(n * height * width, 1, height, width)
        self.pyramid0, self.pyramid1 = [level0], [level1]
        for _ in range(num_levels - 1):
            level0 = F.avg_pool2d(level0, 2, stride=2)
            level1 = F.avg_pool2d(level1, 2, stride=2)
            self.pyramid0.append(level0)
            self.pyramid1.append(level1)

    def _lookup(self, pyramid: list[Tensor], coords: Tensor) -> Tensor:
        n, height, width, _ = coords.shape
        r = self.radius
        offsets = torch.linspace(-r, r, 2 * r + 1, device=coords.device)
        # RAFT's window layout: the first window axis moves x, the second moves y.
        grid_a, grid_b = torch.meshgrid(offsets, offsets, indexing="ij")
        window = torch.stack([grid_a, grid_b], dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        levels = []
        for i, volume in enumerate(pyramid):
            centre = coords.reshape(n * height * width, 1, 1, 2) / 2**i
            levels.append(_sample_pixels(volume, centre + window).view(n, height, width, -1))
        return torch.cat(levels, dim=-1).permute(0, 3, 1, 2).contiguous().float()

    def __call__(self, coords0: Tensor, coords1: Tensor) -> tuple[Tensor, Tensor]:
        """Windows around ``coords0`` in the forward volume and around ``coords1`` in the backward one."""
        return (
            self._lookup(self.pyramid0, coords0.permute(0, 2, 3, 1)),
            self._lookup(self.pyramid1, coords1.permute(0, 2, 3, 1)),
        )


# --------------------------------------------------------------------------------------------------------
# the network


def load_amt_checkpoint(weights: str | os.PathLike) -> dict[str, Tensor]:
    """Resolve ``weights`` (registry name or path) and return the tensors under its ``state_dict`` key.

    Files are read with ``torch.load(weights_only=True)``. The AMT authors' training checkpoints are
    ``OrderedDict(epoch=..., state_dict=..., optim=...)`` pickles and VBench loads ``amt-s.pth`` with
    ``weights_only=False``; if the safe loader refuses the file, it is re-read with full unpickling only when
    its sha256 equals the registry's ``amt_s`` entry (the published file), never for an unknown file.

    Raises:
        ValueError: the file holds no state dict, or cannot be read safely and is not the published file.
    """
    path = resolve_weights(weights)
    try:
        state = torch_load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            verify_file(path, REGISTRY["amt_s"])
        except WeightsChecksumError:
            raise ValueError(
                f"checkpoint {path} contains objects that torch.load(weights_only=True) refuses and it is "
                f"not the published amt-s.pth (sha256 {REGISTRY['amt_s'].sha256}); re-save it as "
                f"torch.save({{'state_dict': model.state_dict()}}, path). Loader error: {err}"
            ) from err
        state = torch_load(path, weights_only=False)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a state dict (got {type(state).__name__})")
    return state


class AMTS(nn.Module):
    r"""AMT-S: bidirectional all-pairs-correlation frame interpolation, loadable from ``amt-s.pth``.

    Args:
        weights: registry name (``"amt_s"``), a checkpoint path (a plain state dict or
            ``{"state_dict": ...}``, loaded strictly), or None for random initialisation (smoke runs; a random
            network does not interpolate).
        corr_radius: correlation lookup radius (AMT-S: 3).
        corr_lvls: correlation pyramid levels (AMT-S: 4).
        num_flows: flow hypotheses of the last decoder (AMT-S: 3).

    ``forward(img0, img1, embt, scale_factor=1.0, eval=True)``: ``img0``, ``img1`` float ``[N, 3, H, W]`` in
    [0, 1] with H, W multiples of ``16 / scale_factor`` (VBench pads by replication, see :func:`padding_for`)
    and at least :data:`MIN_PADDED_SIZE` after scaling; ``embt`` the time step, a float or a tensor
    broadcastable to ``[N, 1, 1, 1]`` (0.5 = midpoint). Returns ``{"imgt_pred": [N, 3, H, W]}`` clamped to
    [0, 1]; with ``eval=False`` also the flow and feature pyramids (``flow0_pred``, ``flow1_pred``,
    ``ft_pred``) as AMT's training forward does.

    Example:
        >>> import torch
        >>> net = AMTS(None).eval()
        >>> x = torch.rand(2, 3, 128, 144)
        >>> net(x, x.flip(0), 0.5)["imgt_pred"].shape
        torch.Size([2, 3, 128, 144])
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "amt_s",
        corr_radius: int = 3,
        corr_lvls: int = 4,
        num_flows: int = 3,
    ) -> None:
        super().__init__()
        channels, skip = (20, 32, 44, 56), 20
        self.radius = corr_radius
        self.corr_levels = corr_lvls
        self.num_flows = num_flows
        self.feat_encoder = _CorrelationEncoder(output_dim=84)
        self.encoder = _PyramidEncoder(channels)
        self.decoder4 = _InitDecoder(channels[3], channels[2], skip)
        self.decoder3 = _IntermediateDecoder(channels[2], channels[1], skip)
        self.decoder2 = _IntermediateDecoder(channels[1], channels[0], skip)
        self.decoder1 = _MultiFlowDecoder(channels[0], skip, num_flows)
        self.update4 = _UpdateBlock(channels[2], None, corr_lvls, corr_radius)
        self.update3 = _UpdateBlock(channels[1], 2, corr_lvls, corr_radius)
        self.update2 = _UpdateBlock(channels[0], 4, corr_lvls, corr_radius)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1),
            nn.PReLU(6 * num_flows),
            nn.Conv2d(6 * num_flows, 3, 3, 1, 1),
        )
        if weights is not None:
            self.load_state_dict(load_amt_checkpoint(weights), strict=True)

    #: inference precision and layout (:meth:`configure_inference`; the backbone cache sets them)
    precision: str = "fp32"
    channels_last: bool = False

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the interpolation at ``precision`` (see :mod:`metrics.backbones.precision`), convolutions in
        ``channels_last`` layout. The metric's padding and ``/ 255`` happen before the call and its uint8
        truncation after it, in float32; ``imgt_pred`` is always float32."""
        check_precision(precision, channels_last)
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            set_module_layout(self)

    def _lookup(
        self,
        corr_fn: _BidirectionalCorrelation,
        coords: Tensor,
        flow0: Tensor,
        flow1: Tensor,
        embt: Tensor,
        downsample: int,
    ) -> tuple[Tensor, Tensor]:
        """Correlation at the flows extrapolated (linear motion) from t to the frames, at 1/8 resolution."""
        to_frame1 = 1.0 / embt  # t->1 flow scaled to a 0->1 displacement
        to_frame0 = 1.0 / (1.0 - embt)
        if downsample != 1:
            inv = 1 / downsample
            flow0 = inv * _rescale(flow0, inv)
            flow1 = inv * _rescale(flow1, inv)
        corr0, corr1 = corr_fn(coords + flow1 * to_frame1, coords + flow0 * to_frame0)
        return torch.cat([corr0, corr1], dim=1), torch.cat([flow0, flow1], dim=1)

    def _refine(
        self,
        update: _UpdateBlock,
        lookup: tuple[_BidirectionalCorrelation, Tensor, Tensor],
        flow0: Tensor,
        flow1: Tensor,
        feat: Tensor,
        downsample: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One residual update of the decoder's flows and feature from a correlation lookup."""
        corr_fn, coords, embt = lookup
        corr, flow = self._lookup(corr_fn, coords, flow0, flow1, embt, downsample)
        delta_feat, delta_flow = update(feat, flow, corr)
        delta0, delta1 = torch.chunk(delta_flow, 2, 1)
        return flow0 + delta0, flow1 + delta1, feat + delta_feat

    def _combine(
        self,
        img0: Tensor,
        img1: Tensor,
        flow0: Tensor,
        flow1: Tensor,
        mask: Tensor,
        residual: Tensor,
        mean: Tensor,
    ) -> Tensor:
        """Warp both frames with every flow hypothesis, blend by mask, add residual, fuse the hypotheses."""
        n, c, height, width = flow0.shape
        k = c // 2

        def per_hypothesis(x: Tensor, channels: int) -> Tensor:
            return x.reshape(n, k, channels, height, width).reshape(-1, channels, height, width)

        def repeat(x: Tensor) -> Tensor:
            return torch.stack([x] * k, 1).reshape(-1, *x.shape[1:])

        mask_k = per_hypothesis(mask, 1)
        warped0 = backward_warp(repeat(img0), per_hypothesis(flow0, 2))
        warped1 = backward_warp(repeat(img1), per_hypothesis(flow1, 2))
        candidates = mask_k * warped0 + (1 - mask_k) * warped1 + repeat(mean) + per_hypothesis(residual, 3)
        candidates = candidates.reshape(n, k, 3, height, width)
        return candidates.mean(1) + self.comb_block(candidates.view(n, -1, height, width))

    def forward(
        self,
        img0: Tensor,
        img1: Tensor,
        embt: Tensor | float,
        scale_factor: float = 1.0,
        eval: bool = True,
    ) -> dict[str, Tensor | list[Tensor]]:
        """Interpolate the frame at time ``embt`` between ``img0`` (t=0) and ``img1`` (t=1)."""
        with inference_precision(self.precision, img0.device):
            out = self._forward(
                to_layout(img0, self.channels_last),
                to_layout(img1, self.channels_last),
                embt,
                scale_factor,
                eval,
            )
        if self.precision == "fp32":
            return out
        return {k: v.float() if isinstance(v, Tensor) else [t.float() for t in v] for k, v in out.items()}

    def _forward(
        self, img0: Tensor, img1: Tensor, embt: Tensor | float, scale_factor: float, eval: bool
    ) -> dict[str, Tensor | list[Tensor]]:
        n = img0.shape[0]
        if not isinstance(embt, Tensor):
            embt = torch.tensor(float(embt))
        embt = embt.to(device=img0.device, dtype=img0.dtype).reshape(-1, 1, 1, 1).expand(n, 1, 1, 1)

        # per-sample mean over channels, then rows of both frames, then columns (AMT's reduction order)
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0 = img0 - mean
        img1 = img1 - mean
        small0 = _rescale(img0, scale_factor) if scale_factor != 1.0 else img0
        small1 = _rescale(img1, scale_factor) if scale_factor != 1.0 else img1
        height, width = small0.shape[-2:]
        if height // 8 < MIN_PADDED_SIZE // 8 or width // 8 < MIN_PADDED_SIZE // 8:
            raise ValueError(
                f"AMT-S needs frames of at least {MIN_PADDED_SIZE} px per side after scaling (its coarsest "
                f"correlation level would be empty or a single cell); got {height}x{width}"
            )
        coords = _pixel_grid(n, height // 8, width // 8, img0.device)

        fmap0, fmap1 = torch.split(self.feat_encoder(torch.cat([small0, small1], 0)), [n, n], 0)
        corr_fn = _BidirectionalCorrelation(fmap0, fmap1, self.corr_levels, self.radius)
        f0 = self.encoder(small0)
        f1 = self.encoder(small1)

        lookup = (corr_fn, coords, embt)
        flow0_4, flow1_4, feat_3 = self._refine(self.update4, lookup, *self.decoder4(f0[3], f1[3], embt), 1)
        decoded = self.decoder3(feat_3, f0[2], f1[2], flow0_4, flow1_4)
        flow0_3, flow1_3, feat_2 = self._refine(self.update3, lookup, *decoded, 2)
        decoded = self.decoder2(feat_2, f0[1], f1[1], flow0_3, flow1_3)
        flow0_2, flow1_2, feat_1 = self._refine(self.update2, lookup, *decoded, 4)

        flow0_1, flow1_1, mask, residual = self.decoder1(feat_1, f0[0], f1[0], flow0_2, flow1_2)
        if scale_factor != 1.0:
            inv = 1.0 / scale_factor
            flow0_1 = _rescale(flow0_1, inv) * inv
            flow1_1 = _rescale(flow1_1, inv) * inv
            mask = _rescale(mask, inv)
            residual = _rescale(residual, inv)

        pred = torch.clamp(self._combine(img0, img1, flow0_1, flow1_1, mask, residual, mean), 0, 1)
        if eval:
            return {"imgt_pred": pred}
        full = (n, self.num_flows, 2, *flow0_1.shape[-2:])
        return {
            "imgt_pred": pred,
            "flow0_pred": [flow0_1.reshape(full), flow0_2, flow0_3, flow0_4],
            "flow1_pred": [flow1_1.reshape(full), flow1_2, flow1_3, flow1_4],
            "ft_pred": [feat_1, feat_2, feat_3],
        }


def amt_s_ref(weights: str | os.PathLike | None = "amt_s") -> BackboneRef:
    """Shared-cache handle for :class:`AMTS`."""
    return BackboneRef("amt_s", AMTS, weights)
