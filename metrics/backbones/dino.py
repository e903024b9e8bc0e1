r"""DINO ViT-B/16 (Caron et al., 2021): the network behind VBench's subject consistency (SC).

:class:`DinoVisionTransformer` is a plain-PyTorch ViT whose parameter names and shapes are those of
facebookresearch/dino ``vision_transformer.py`` (``vit_base(patch_size=16, num_classes=0)``, the model
``torch.hub.load('facebookresearch/dino:main', 'dino_vitb16')`` builds and VBench calls), so the published
``dino_vitbase16_pretrain.pth`` loads into it with ``strict=True``. Keys and shapes for ViT-B/16 (150
tensors; read from DINO's ``vision_transformer.py`` / ``hubconf.py``):

* ``cls_token`` ``[1, 1, 768]``; ``pos_embed`` ``[1, 197, 768]`` (CLS + 14 x 14 grid for 224 px);
* ``patch_embed.proj.weight`` ``[768, 3, 16, 16]``, ``patch_embed.proj.bias`` ``[768]``;
* for each of ``blocks.0`` .. ``blocks.11``: ``norm1.weight/bias`` ``[768]`` (LayerNorm, eps 1e-6),
  ``attn.qkv.weight`` ``[2304, 768]`` and ``attn.qkv.bias`` ``[2304]`` (qkv_bias=True),
  ``attn.proj.weight`` ``[768, 768]`` / ``.bias`` ``[768]``, ``norm2.weight/bias`` ``[768]``,
  ``mlp.fc1.weight`` ``[3072, 768]`` / ``.bias`` ``[3072]`` (mlp_ratio 4, exact erf GELU),
  ``mlp.fc2.weight`` ``[768, 3072]`` / ``.bias`` ``[768]``;
* ``norm.weight``, ``norm.bias`` ``[768]`` (the final LayerNorm; the head is Identity, no parameters).

The forward returns what DINO's does: the CLS token after the final LayerNorm (768-d). Non-square
inputs use DINO's own position-embedding interpolation (:func:`interpolate_pos_embed`): the 14 x 14 grid is
resampled bicubically (``align_corners=False``, no antialiasing) with ``scale_factor=((H//16 + 0.1) / 14,
(W//16 + 0.1) / 14)``; because a scale factor rather than a size is passed, the sampling positions are
``(dst + 0.5) * 14 / (n + 0.1) - 0.5``, not the ``n / 14`` grid a size-based resize would use. DINO skips
the interpolation only when the token count matches AND the input is square, so a 224 x 239 input (still
14 x 14 patches) is resampled too. Remainder pixels (H or W not a multiple of 16) are dropped by the
patch convolution, as in DINO.

:func:`dino_vbench_preprocess` is VBench's ``dino_transform(224)``: shorter side to 224 with torchvision's
size rule (long side ``int(224 * long / short)``), bilinear, ``antialias=False``, no crop, /255, ImageNet
mean/std.

Example:
    >>> import torch
    >>> net = DinoVisionTransformer(weights=None, embed_dim=48, depth=1, num_heads=3).eval()
    >>> x = dino_vbench_preprocess(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
    >>> tuple(x.shape), tuple(net(x).shape)
    ((2, 3, 224, 298), (2, 48))
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.precision import check_precision, inference_precision, set_module_layout, to_layout
from metrics.backbones.weights import load_checkpoint

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DinoVisionTransformer",
    "dino_ref",
    "dino_vbench_preprocess",
    "interpolate_pos_embed",
    "normalize_channels",
    "short_side_resize_shape",
    "to_0_255",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: ViT-B/16 as in DINO's ``vit_base(patch_size=16)``.
VIT_B16 = {"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "img_size": 224}


# ------------------------------------------------------------------------------------------ preprocessing
def short_side_resize_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Output ``(h, w)`` of torchvision ``Resize(size)``: shorter side -> ``size``, longer side truncated.

    Example:
        >>> short_side_resize_shape(480, 832, 224)
        (224, 388)
    """
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def to_0_255(frames: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] ``[N, 3, H, W]`` frames -> float32 in [0, 255] (what VBench's decoder
    hands over); anything else raises ``ValueError``."""
    if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        got = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"`frames` must be a [N, 3, H, W] tensor, got {got}")
    if frames.dtype == torch.uint8:
        return frames.to(torch.float32)
    return frames.to(torch.float32) * 255.0


def normalize_channels(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """``(x - mean) / std`` per channel of ``[N, 3, H, W]`` (torchvision ``Normalize``)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def dino_vbench_preprocess(frames: Tensor, size: int = 224) -> Tensor:
    """VBench ``dino_transform(size)`` on ``[N, 3, H, W]`` frames (uint8 or float in [0, 1]).

    Shorter side -> ``size`` (aspect kept, no crop), bilinear without antialiasing on the 0-255 values,
    /255, ImageNet normalisation. Returns float32 ``[N, 3, h, w]``.

    Example:
        >>> import torch
        >>> dino_vbench_preprocess(torch.zeros(1, 3, 480, 832, dtype=torch.uint8)).shape
        torch.Size([1, 3, 224, 388])
    """
    x = to_0_255(frames)
    out_hw = short_side_resize_shape(x.shape[-2], x.shape[-1], size)
    if tuple(x.shape[-2:]) != out_hw:
        x = F.interpolate(x, size=out_hw, mode="bilinear", align_corners=False, antialias=False)
    return normalize_channels(x / 255.0, IMAGENET_MEAN, IMAGENET_STD)


# ------------------------------------------------------------------------------------------ architecture
def interpolate_pos_embed(pos_embed: Tensor, height: int, width: int, patch_size: int) -> Tensor:
    """DINO's ``interpolate_pos_encoding`` for an input of ``height x width`` pixels.

    Args:
        pos_embed: ``[1, 1 + g*g, D]`` (CLS position first, then a square ``g x g`` grid, row-major).
        height, width: input size in pixels.
        patch_size: patch side in pixels.

    Returns:
        ``[1, 1 + (height // p) * (width // p), D]``; ``pos_embed`` itself when the patch count equals
        ``g*g`` and the input is square (DINO's only shortcut).

    Example:
        >>> import torch
        >>> interpolate_pos_embed(torch.randn(1, 1 + 14 * 14, 8), 224, 388, 16).shape
        torch.Size([1, 337, 8])
    """
    num_grid = pos_embed.shape[1] - 1
    grid = int(math.sqrt(num_grid))
    if grid * grid != num_grid:
        raise ValueError(f"`pos_embed` must hold 1 + g*g positions, got {pos_embed.shape[1]}")
    rows, cols = height // patch_size, width // patch_size
    if rows * cols == num_grid and height == width:
        return pos_embed
    dim = pos_embed.shape[-1]
    patch_pos = pos_embed[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    # DINO adds 0.1 to the target grid (facebookresearch/dino issue #8) and passes a scale factor.
    scale = ((rows + 0.1) / grid, (cols + 0.1) / grid)
    patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", align_corners=False)
    if patch_pos.shape[-2:] != (rows, cols):  # DINO asserts the same
        raise RuntimeError(f"position-embedding interpolation gave {tuple(patch_pos.shape[-2:])}")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
    return torch.cat([pos_embed[:, :1], patch_pos], dim=1)


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"`embed_dim` ({dim}) must be divisible by `num_heads` ({num_heads})")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v, as DINO
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DinoVisionTransformer(nn.Module):
    """DINO's ViT returning the final-LayerNorm CLS token; defaults = ViT-B/16 (``dino_vitb16``).

    Args:
        weights: registry name (``"dino_vitb16"``), path to a state dict in DINO's key layout, or None for
            seeded random initialisation (DINO's: truncated normal std 0.02 for linear layers, CLS token and
            position embedding). Checkpoints load with ``strict=True``; a checkpoint whose tensors sit under
            ``state_dict`` is unwrapped.
        patch_size, embed_dim, depth, num_heads, mlp_ratio, img_size: architecture (ViT-B/16 by default;
            smaller values build the same network family for smoke runs and tests).

    Input: ImageNet-normalised float ``[N, 3, H, W]`` with ``H, W >= patch_size`` (any aspect ratio).
    Output: float ``[N, embed_dim]`` (float32 at every :meth:`configure_inference` precision).

    Example:
        >>> import torch
        >>> net = DinoVisionTransformer(None, embed_dim=24, depth=1, num_heads=2).eval()
        >>> net(torch.randn(1, 3, 32, 80)).shape
        torch.Size([1, 24])
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "dino_vitb16",
        *,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        img_size: int = 224,
    ) -> None:
        super().__init__()
        for name, value in (
            ("patch_size", patch_size),
            ("embed_dim", embed_dim),
            ("depth", depth),
            ("num_heads", num_heads),
            ("img_size", img_size),
        ):
            check_positive_int(name, value)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        grid = img_size // patch_size
        state = None if weights is None else load_checkpoint(weights)
        # With a checkpoint, build on the meta device and adopt its tensors (no wasted random init).
        with torch.device("meta") if state is not None else contextlib.nullcontext():
            self.patch_embed = _PatchEmbed(patch_size, embed_dim)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
            self.blocks = nn.ModuleList([_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        if state is None:
            self._init_random()
        else:
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            self.load_state_dict(state, strict=True, assign=True)

    #: inference precision and layout (:meth:`configure_inference`; the backbone cache sets them)
    precision: str = "fp32"
    channels_last: bool = False

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the transformer at ``precision`` (see :mod:`metrics.backbones.precision`); ``channels_last``
        stores the patch convolution (the only 4-D weight) NHWC. The input is already preprocessed (the
        metrics resize and normalise in float32 before calling the network)."""
        check_precision(precision, channels_last)
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            set_module_layout(self.patch_embed)

    def _init_random(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[N, 3, H, W]`` -> CLS features ``[N, embed_dim]``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"`x` must be [N, 3, H, W], got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(f"input {height}x{width} is smaller than one {self.patch_size}px patch")
        with inference_precision(self.precision, x.device):
            tokens = self.patch_embed(to_layout(x, self.channels_last))
            tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
            tokens = tokens + interpolate_pos_embed(self.pos_embed, height, width, self.patch_size)
            for block in self.blocks:
                tokens = block(tokens)
            out = self.norm(tokens[:, 0])  # LayerNorm is per token: normalising only CLS is identical
        return out.float()


def dino_ref(weights: str | os.PathLike | None = "dino_vitb16", **arch: int) -> BackboneRef:
    """Shared-cache handle for :class:`DinoVisionTransformer` (ViT-B/16 unless ``arch`` overrides it).

    Example:
        >>> ref = dino_ref(None, embed_dim=48, depth=2, num_heads=3)
        >>> ref.name
        'dino_vit[depth=2,embed_dim=48,num_heads=3]'
    """
    unknown = set(arch) - {"patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "img_size"}
    if unknown:
        raise ValueError(f"unknown DINO architecture argument(s): {sorted(unknown)}")
    custom = {k: v for k, v in sorted(arch.items()) if VIT_B16.get(k) != v}
    name = (
        "dino_vitb16" if not custom else "dino_vit[" + ",".join(f"{k}={v}" for k, v in custom.items()) + "]"
    )
    factory = functools.partial(DinoVisionTransformer, **arch)
    return BackboneRef(name, factory, weights)
