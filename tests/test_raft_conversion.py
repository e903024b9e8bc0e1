"""The original RAFT checkpoint (princeton-vl/RAFT ``raft-things.pth``) loads into torchvision's raft_large.

VBench's dynamic degree runs the original RAFT code; we run torchvision's ``raft_large``. To check the key
conversion without the real file (no downloads here), this file re-implements the original RAFT-large
architecture from its public source (princeton-vl/RAFT ``core/extractor.py``: ResidualBlock, BasicEncoder;
``core/update.py``: BasicMotionEncoder, SepConvGRU, FlowHead, BasicUpdateBlock; ``core/corr.py``: CorrBlock;
``core/utils/utils.py``: bilinear_sampler, coords_grid; ``core/raft.py``: RAFT.forward and upsample_flow),
with the same module and parameter names, so that its ``state_dict`` has the original checkpoint's keys
(``module.``-prefixed, as saved from ``nn.DataParallel``). A seeded instance with randomised weights and
BatchNorm statistics is converted by our loader, and torchvision's network must then give the same flow.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics.backbones.raft import RAFTLarge, convert_original_raft_state_dict, raft_ref, raft_state_dict
from metrics.dynamic_degree import DynamicDegree


# ------------------------------------------------------------------ original RAFT-large, re-implemented
class ResidualBlock(nn.Module):
    """Two 3x3 convs with norms; a strided block projects its input with a 1x1 conv and ``norm3``."""

    def __init__(self, in_planes: int, planes: int, norm_fn: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        norm = nn.BatchNorm2d if norm_fn == "batch" else nn.InstanceNorm2d
        self.norm1, self.norm2 = norm(planes), norm(planes)
        self.downsample = None
        if stride != 1:
            self.norm3 = norm(planes)  # registered here AND inside downsample, as in the original
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride), self.norm3
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return self.relu(x + y)


class BasicEncoder(nn.Module):
    """7x7/2 stem, stages of 64, 96, 128 channels (strides 1, 2, 2), 1x1 output conv: 1/8 resolution."""

    def __init__(self, output_dim: int, norm_fn: str) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(64) if norm_fn == "batch" else nn.InstanceNorm2d(64)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.relu1 = nn.ReLU(inplace=True)
        self.in_planes = 64
        self.layer1 = self._make_layer(64, norm_fn, stride=1)
        self.layer2 = self._make_layer(96, norm_fn, stride=2)
        self.layer3 = self._make_layer(128, norm_fn, stride=2)
        self.conv2 = nn.Conv2d(128, output_dim, kernel_size=1)

    def _make_layer(self, dim: int, norm_fn: str, stride: int) -> nn.Sequential:
        blocks = (ResidualBlock(self.in_planes, dim, norm_fn, stride), ResidualBlock(dim, dim, norm_fn, 1))
        self.in_planes = dim
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor | list[Tensor]) -> Tensor | tuple[Tensor, ...]:
        pair = isinstance(x, list)
        if pair:
            n = x[0].shape[0]
            x = torch.cat(x, dim=0)
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.conv2(self.layer3(self.layer2(self.layer1(x))))
        return torch.split(x, [n, n], dim=0) if pair else x


class BasicMotionEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        cor_planes = 4 * (2 * 4 + 1) ** 2  # corr_levels * (2 * corr_radius + 1)^2
        self.convc1 = nn.Conv2d(cor_planes, 256, 1, padding=0)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: Tensor, corr: Tensor) -> Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class SepConvGRU(nn.Module):
    """A GRU step with 1x5 convolutions, then one with 5x1 convolutions."""

    def __init__(self, hidden_dim: int = 128, input_dim: int = 256) -> None:
        super().__init__()
        c = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(c, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(c, hidden_dim, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h: Tensor, x: Tensor, convz: nn.Conv2d, convr: nn.Conv2d, convq: nn.Conv2d) -> Tensor:
        hx = torch.cat([h, x], dim=1)
        z, r = torch.sigmoid(convz(hx)), torch.sigmoid(convr(hx))
        q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class FlowHead(nn.Module):
    def __init__(self, input_dim: int = 128, hidden_dim: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class BasicUpdateBlock(nn.Module):
    def __init__(self, hidden_dim: int = 128) -> None:
        super().__init__()
        self.encoder = BasicMotionEncoder()
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=128 + hidden_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(256, 64 * 9, 1, padding=0)
        )

    def forward(self, net: Tensor, inp: Tensor, corr: Tensor, flow: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        inp = torch.cat([inp, self.encoder(flow, corr)], dim=1)
        net = self.gru(net, inp)
        return net, 0.25 * self.mask(net), self.flow_head(net)


def bilinear_sampler(img: Tensor, coords: Tensor) -> Tensor:
    """grid_sample at pixel coordinates (x, y), corners aligned."""
    h, w = img.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
    return F.grid_sample(img, grid, align_corners=True)


def coords_grid(batch: int, ht: int, wd: int) -> Tensor:
    ys, xs = torch.meshgrid(torch.arange(ht), torch.arange(wd), indexing="ij")
    return torch.stack([xs, ys], dim=0).float()[None].repeat(batch, 1, 1, 1)


class CorrBlock:
    """All-pairs correlation pyramid (4 levels) and its (2r+1)^2 lookup around each coordinate."""

    def __init__(self, fmap1: Tensor, fmap2: Tensor, num_levels: int = 4, radius: int = 4) -> None:
        self.num_levels, self.radius = num_levels, radius
        b, dim, ht, wd = fmap1.shape
        corr = fmap1.view(b, dim, ht * wd).transpose(1, 2) @ fmap2.view(b, dim, ht * wd)
        corr = (corr / torch.sqrt(torch.tensor(dim).float())).reshape(b * ht * wd, 1, ht, wd)
        self.pyramid = [corr]
        for _ in range(num_levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)

    def __call__(self, coords: Tensor) -> Tensor:
        r = self.radius
        coords = coords.permute(0, 2, 3, 1)
        b, h1, w1, _ = coords.shape
        d = torch.linspace(-r, r, 2 * r + 1)
        # meshgrid(dy, dx) stacked as (dy, dx) and ADDED to (x, y): the original's offset order, kept
        delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        out = []
        for i, corr in enumerate(self.pyramid):
            centroid = coords.reshape(b * h1 * w1, 1, 1, 2) / 2**i
            out.append(bilinear_sampler(corr, centroid + delta).view(b, h1, w1, -1))
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous().float()


class OriginalRAFT(nn.Module):
    """RAFT-large (small=False, dropout 0, no mixed precision, no alternate correlation)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden_dim = self.context_dim = 128
        self.fnet = BasicEncoder(output_dim=256, norm_fn="instance")
        self.cnet = BasicEncoder(output_dim=256, norm_fn="batch")
        self.update_block = BasicUpdateBlock(hidden_dim=128)

    @staticmethod
    def upsample_flow(flow: Tensor, mask: Tensor) -> Tensor:
        """Convex combination of each coarse pixel's 3x3 neighbourhood -> 8x resolution."""
        n, _, h, w = flow.shape
        mask = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
        up = F.unfold(8 * flow, [3, 3], padding=1).view(n, 2, 9, 1, 1, h, w)
        up = torch.sum(mask * up, dim=2).permute(0, 1, 4, 2, 5, 3)
        return up.reshape(n, 2, 8 * h, 8 * w)

    def forward(self, image1: Tensor, image2: Tensor, iters: int = 12) -> tuple[Tensor, Tensor]:
        """As ``forward(..., test_mode=True)``: ``(coarse flow, last upsampled flow)``."""
        image1 = (2 * (image1 / 255.0) - 1.0).contiguous()
        image2 = (2 * (image2 / 255.0) - 1.0).contiguous()
        fmap1, fmap2 = self.fnet([image1, image2])
        corr_fn = CorrBlock(fmap1.float(), fmap2.float(), radius=4)
        net, inp = torch.split(self.cnet(image1), [self.hidden_dim, self.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)
        n, _, h, w = image1.shape
        coords0, coords1 = coords_grid(n, h // 8, w // 8), coords_grid(n, h // 8, w // 8)
        flow_up = None
        for _ in range(iters):
            corr = corr_fn(coords1)
            net, up_mask, delta_flow = self.update_block(net, inp, corr, coords1 - coords0)
            coords1 = coords1 + delta_flow
            flow_up = self.upsample_flow(coords1 - coords0, up_mask)
        return coords1 - coords0, flow_up


def _seeded_original(seed: int = 0) -> OriginalRAFT:
    """Random weights AND BatchNorm affine/statistics (so a misplaced norm key changes the flow)."""
    torch.manual_seed(seed)
    net = OriginalRAFT()
    g = torch.Generator().manual_seed(seed + 1)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = 0.5 + torch.rand(c, generator=g)
            module.bias.data = 0.2 * torch.randn(c, generator=g)
            module.running_mean.data = 0.2 * torch.randn(c, generator=g)
            module.running_var.data = 0.5 + torch.rand(c, generator=g)
            module.num_batches_tracked.fill_(7)
    return net.eval()


def _original_checkpoint(net: OriginalRAFT) -> dict[str, Tensor]:
    return {f"module.{k}": v.clone() for k, v in net.state_dict().items()}


def _frames(n: int, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Smooth textures in [0, 255] and the same textures shifted by a few pixels."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(
        torch.rand(n, 3, size // 8, size // 8, generator=g), size=(size, size), mode="bicubic"
    )
    first = (base.clamp(0, 1) * 255).float()
    second = torch.roll(first, shifts=(3, -2), dims=(2, 3))
    return first, second


# ------------------------------------------------------------------------------------------------ tests
def test_original_keys_are_the_published_layout():
    keys = set(_original_checkpoint(_seeded_original()))
    # spot checks of raft-things.pth names (core/extractor.py, core/update.py)
    for key in (
        "module.fnet.conv1.weight",
        "module.cnet.norm1.running_var",
        "module.cnet.layer2.0.norm3.weight",
        "module.cnet.layer2.0.downsample.1.weight",
        "module.update_block.encoder.convc1.weight",
        "module.update_block.gru.convq2.bias",
        "module.update_block.mask.2.weight",
    ):
        assert key in keys, key
    assert not any(k.startswith("module.fnet.") and "norm" in k for k in keys)  # instance norm: no params


def test_converted_original_checkpoint_gives_the_original_flow(tmp_path):
    original = _seeded_original()
    checkpoint = _original_checkpoint(original)
    path = tmp_path / "raft-things.pth"
    torch.save(checkpoint, path)

    iters = 4
    net = RAFTLarge(weights=str(path), num_flow_updates=iters).eval()
    converted = convert_original_raft_state_dict(checkpoint)
    for key, value in net.raft.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, converted[key]), key

    image1, image2 = _frames(2, 128, seed=4)
    with torch.no_grad():
        _, expected = original(image1, image2, iters=iters)
        ours = net(image1, image2, crop=False)
    assert ours.shape == expected.shape == (2, 2, 128, 128)
    assert float(expected.abs().max()) > 0.5  # a non-trivial flow field, not zeros on both sides
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-4)


def test_torchvision_checkpoint_still_loads_and_a_checkpoint_with_only_the_alias_too():
    from torchvision.models.optical_flow import raft_large

    torch.manual_seed(1)
    tv = raft_large(weights=None).state_dict()
    assert raft_state_dict(tv).keys() == tv.keys()
    # old checkpoints: no num_batches_tracked counters; they are filled in (unused in eval mode)
    checkpoint = {k: v for k, v in _original_checkpoint(_seeded_original()).items() if "num_batches" not in k}
    assert raft_state_dict(checkpoint).keys() == tv.keys()
    # the norm3 alias must agree with its downsample twin
    checkpoint["module.cnet.layer3.0.norm3.bias"] = checkpoint["module.cnet.layer3.0.norm3.bias"] + 1
    with pytest.raises(ValueError, match=r"norm3.*differs"):
        raft_state_dict(checkpoint)


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("other_network", "got 2 key"),
        ("raft_small", "read as original RAFT layout"),
        ("truncated_torchvision", "missing"),
    ],
)
def test_a_checkpoint_that_fits_neither_format_fails_at_construction_in_one_line(tmp_path, case, detail):
    from torchvision.models.optical_flow import raft_large, raft_small

    if case == "other_network":
        state = {"conv.weight": torch.zeros(4, 3, 3, 3), "conv.bias": torch.zeros(4)}
    elif case == "raft_small":  # torchvision's small RAFT under original-style names: wrong shapes/keys
        state = {f"module.fnet.{k}": v for k, v in raft_small(weights=None).state_dict().items()}
        state.update({"module.update_block.encoder.convc1.weight": torch.zeros(96, 196, 1, 1)})
    else:
        state = {k: v for k, v in raft_large(weights=None).state_dict().items() if "mask_predictor" not in k}
    path = tmp_path / f"{case}.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        DynamicDegree(weights=str(path), fps=8)  # at construction, before any update
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    assert str(path) in message and detail in message
    assert "torchvision raft_large state_dict" in message and "raft-things.pth" in message
    with pytest.raises(ValueError, match=r"raft-things\.pth"):
        raft_ref(str(path))


def test_dynamic_degree_builds_from_the_original_checkpoint(tmp_path):
    path = tmp_path / "raft-things.pth"
    torch.save(_original_checkpoint(_seeded_original(3)), path)
    dd = DynamicDegree(weights=str(path), fps=8, num_flow_updates=2)
    net = dd.flow_model.get("cpu")
    assert isinstance(net, RAFTLarge) and net.num_flow_updates == 2
    video = torch.stack(_frames(1, 128, seed=5), dim=1).to(torch.uint8)  # [1, 2, 3, 128, 128]
    dd.update(video)
    assert float(dd.compute()) == 1.0  # one pair and count_num = round(4 * 2 / 16) = 0: dynamic
