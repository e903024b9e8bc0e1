r"""OpenAI CLIP image towers (ViT-B/32 for VBench BC, ViT-L/14 for AQ) through open_clip_torch.

The architecture comes from open_clip's ``ViT-B-32-quickgelu`` / ``ViT-L-14-quickgelu`` configurations:
OpenAI's weights were trained with QuickGELU (``x * sigmoid(1.702 x)``), and open_clip 3.x no longer forces
it for the ``openai`` tag (it only warns), so the ``-quickgelu`` configurations are used explicitly. The
LayerNorms are open_clip's ``LayerNormFp32`` (normalise in float32, cast back), as OpenAI's own ``LayerNorm``.

Weights (``weights=``): a registry name (``"clip_vitb32_openai"``, ``"clip_vitl14_openai"``), a local path,
or None for seeded random initialisation. Accepted files: OpenAI's released TorchScript archive
(``ViT-B-32.pt``, fp16; read with ``torch.jit.load`` and its ``state_dict()``), a plain ``torch.save``'d state
dict in the same (OpenAI = open_clip) key layout, or open_clip's ``open_clip_model.safetensors``. The three
metadata entries of the TorchScript state dict (``input_resolution``, ``context_length``, ``vocab_size``)
are dropped, as open_clip and openai-clip do, and then the FULL CLIP model (image and text towers) loads
with ``strict=True`` -- no silent position-embedding resizing -- after which only the image tower is kept.

Precision: ``fp16=True`` reproduces openai-clip's ``clip.load(..., device="cuda")`` that VBench uses:
conv/linear/attention weights and the projection in float16, LayerNorms computed in float32, class and
position embeddings cast on the fly; inputs are cast to float16. As in openai-clip it applies on CUDA only
(CPU stays float32). Default False: float32 everywhere, reproducible across GPUs (spec/vbench.md s8.4).
The backbone cache's ``precision`` (``"tf32"``/``"bf16"``, :meth:`CLIPImageEncoder.configure_inference`) is
the other way to trade accuracy for speed; it cannot be combined with ``fp16=True``.

:func:`clip_vbench_preprocess` is VBench's ``clip_transform(224)`` on tensors: bicubic shorter side -> 224
(no antialiasing, no clamping of the bicubic overshoot), centre crop 224, /255, CLIP mean/std.

Example:
    >>> import torch
    >>> x = clip_vbench_preprocess(torch.zeros(2, 3, 48, 64, dtype=torch.uint8))
    >>> tuple(x.shape)
    (2, 3, 224, 224)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import os
import warnings
import zipfile
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_bool, check_choice
from metrics.backbones.cache import BackboneRef
from metrics.backbones.dino import normalize_channels, short_side_resize_shape, to_0_255
from metrics.backbones.precision import check_precision, inference_precision, set_module_layout, to_layout
from metrics.backbones.weights import resolve_weights, torch_load

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "OPENAI_CLIP_ARCHS",
    "CLIPImageEncoder",
    "clip_ref",
    "clip_vbench_preprocess",
    "openai_clip_config",
    "read_clip_state_dict",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: arch -> (open_clip configuration, default registry weights)
OPENAI_CLIP_ARCHS = {
    "ViT-B-32": ("ViT-B-32-quickgelu", "clip_vitb32_openai"),
    "ViT-L-14": ("ViT-L-14-quickgelu", "clip_vitl14_openai"),
}

#: Entries of OpenAI's TorchScript state dict that are not parameters.
_OPENAI_METADATA_KEYS = ("input_resolution", "context_length", "vocab_size")


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as err:
        raise ImportError(
            "CLIP backbones (BackgroundConsistency, AestheticQuality) need open_clip_torch: "
            'pip install "jwbdh-callbacks[clip]"'
        ) from err
    return open_clip


# ------------------------------------------------------------------------------------------ preprocessing
def clip_vbench_preprocess(frames: Tensor, size: int = 224) -> Tensor:
    """VBench ``clip_transform(size)`` on ``[N, 3, H, W]`` frames (uint8 or float in [0, 1]).

    Bicubic resize of the 0-255 values with the shorter side -> ``size`` (torchvision's size rule,
    ``antialias=False``, no clamp), centre crop ``size x size`` (torchvision's rounding of the offsets),
    /255, CLIP normalisation. Returns float32 ``[N, 3, size, size]``.

    Example:
        >>> import torch
        >>> clip_vbench_preprocess(torch.zeros(1, 3, 480, 832, dtype=torch.uint8)).shape
        torch.Size([1, 3, 224, 224])
    """
    x = to_0_255(frames)
    h, w = short_side_resize_shape(x.shape[-2], x.shape[-1], size)
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    top, left = round((h - size) / 2.0), round((w - size) / 2.0)
    x = x[..., top : top + size, left : left + size]
    return normalize_channels(x / 255.0, CLIP_MEAN, CLIP_STD)


# ------------------------------------------------------------------------------------------------ loading
def openai_clip_config(arch: str) -> dict[str, Any]:
    """open_clip model configuration (a copy) for ``"ViT-B-32"`` or ``"ViT-L-14"``, QuickGELU on.

    Example:
        >>> openai_clip_config("ViT-L-14")["vision_cfg"]["patch_size"]  # doctest: +SKIP
        14
    """
    check_choice("arch", arch, OPENAI_CLIP_ARCHS, alternative="a config dict")
    cfg = _import_open_clip().get_model_config(OPENAI_CLIP_ARCHS[arch][0])
    if cfg is None:  # pragma: no cover - depends on the installed open_clip
        raise RuntimeError(f"open_clip has no '{OPENAI_CLIP_ARCHS[arch][0]}' configuration")
    cfg = copy.deepcopy(cfg)
    cfg["quick_gelu"] = True
    return cfg


def _is_torchscript_archive(path: os.PathLike | str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


def read_clip_state_dict(weights: str | os.PathLike) -> dict[str, Tensor]:
    """Resolve ``weights`` and read a CLIP state dict (TorchScript archive, state dict or safetensors).

    OpenAI's metadata entries are dropped and a ``module.`` prefix (DDP checkpoints) is removed; tensor
    dtypes are kept (the loader copies them into float32 parameters).
    """
    path = resolve_weights(weights)
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    elif _is_torchscript_archive(path):
        with warnings.catch_warnings():  # torch >= 2.9 flags TorchScript as deprecated; OpenAI ships it
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        state = torch_load(path, weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise ValueError(f"checkpoint {path} does not hold a CLIP state dict (got {type(state).__name__})")
    state = {k: v for k, v in state.items() if k not in _OPENAI_METADATA_KEYS}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


class CLIPImageEncoder(nn.Module):
    """CLIP image tower: CLIP-normalised ``[N, 3, S, S]`` -> projected embedding ``encode_image(x)``.

    Args:
        weights: registry name, checkpoint path, None (seeded random init) or ``"default"`` (the OpenAI
            weights of ``arch``: ``"clip_vitb32_openai"`` / ``"clip_vitl14_openai"``).
        arch: ``"ViT-B-32"`` (512-d output), ``"ViT-L-14"`` (768-d), or an open_clip model configuration
            dict (``embed_dim``, ``vision_cfg``, ``text_cfg``; QuickGELU is forced) for small smoke models.
        fp16: float16 on CUDA as openai-clip/VBench (see the module docstring); CPU stays float32.

    Output: float32 ``[N, embed_dim]`` (not normalised; VBench L2-normalises afterwards).

    Example:
        >>> enc = CLIPImageEncoder("default", arch="ViT-B-32")  # doctest: +SKIP
        >>> enc(torch.zeros(1, 3, 224, 224)).shape  # doctest: +SKIP
        torch.Size([1, 512])
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = "default",
        arch: str | dict[str, Any] = "ViT-B-32",
        fp16: bool = False,
    ) -> None:
        super().__init__()
        open_clip = _import_open_clip()
        if isinstance(arch, dict):
            cfg = copy.deepcopy(arch)
            cfg["quick_gelu"] = True
            if weights == "default":
                raise ValueError("`weights='default'` needs a named `arch` ('ViT-B-32' or 'ViT-L-14')")
        else:
            cfg = openai_clip_config(arch)
            if weights == "default":
                weights = OPENAI_CLIP_ARCHS[arch][1]
        check_bool("fp16", fp16)
        state = None if weights is None else read_clip_state_dict(weights)
        # cast_dtype=float16 only selects LayerNormFp32 (OpenAI's LayerNorm); parameters stay float32.
        # With a checkpoint, build on the meta device and adopt its tensors (no wasted random init).
        with torch.device("meta") if state is not None else contextlib.nullcontext():
            model = open_clip.CLIP(**cfg, cast_dtype=torch.float16)
        if state is not None:
            state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
            model.load_state_dict(state, strict=True, assign=True)
        self.visual = model.visual
        if state is not None and any(t.is_meta for t in (*self.visual.parameters(), *self.visual.buffers())):
            raise RuntimeError("the CLIP image tower has tensors the checkpoint did not provide")
        self.embed_dim = int(cfg["embed_dim"])
        vision_size = cfg["vision_cfg"].get("image_size", 224)
        self.image_size = int(vision_size if isinstance(vision_size, int) else vision_size[0])
        self.fp16 = fp16
        self._converted = False

    #: inference precision and layout (:meth:`configure_inference`; the backbone cache sets them)
    precision: str = "fp32"
    channels_last: bool = False

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the image tower at ``precision`` (see :mod:`metrics.backbones.precision`); ``channels_last``
        stores its patch convolution NHWC. Inputs arrive preprocessed in float32 (the resize stays exact).

        Raises:
            ValueError: ``precision`` other than ``"fp32"`` on an ``fp16=True`` encoder (two precisions).
        """
        check_precision(precision, channels_last)
        if self.fp16 and precision != "fp32":
            raise ValueError(
                f"`precision={precision!r}` cannot be combined with `fp16=True` (VBench's float16 CLIP); "
                "use one of them"
            )
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            set_module_layout(self.visual)

    def use_fp16(self, device: torch.device) -> bool:
        """Whether the float16 path applies on ``device`` (openai-clip: CUDA only)."""
        return self.fp16 and device.type == "cuda"

    def _convert_to_fp16(self) -> None:
        _import_open_clip().convert_weights_to_lp(self.visual, torch.float16)
        self._converted = True

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[N, 3, S, S]`` -> float32 ``[N, embed_dim]``."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"`x` must be [N, 3, H, W], got shape {tuple(x.shape)}")
        if self.use_fp16(x.device) and not self._converted:
            self._convert_to_fp16()
        x = to_layout(x.to(self.visual.conv1.weight.dtype), self.channels_last)
        with inference_precision(self.precision, x.device):
            return self.visual(x).float()


def _config_tag(cfg: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def clip_ref(
    arch: str | dict[str, Any] = "ViT-B-32",
    weights: str | os.PathLike | None = "default",
    fp16: bool = False,
) -> BackboneRef:
    """Shared-cache handle for :class:`CLIPImageEncoder` (one instance per arch, weights, fp16, device).

    Example:
        >>> clip_ref("ViT-L-14").name
        'clip_ViT-L-14'
    """
    if isinstance(arch, dict):
        if weights == "default":
            raise ValueError("`weights='default'` needs a named `arch` ('ViT-B-32' or 'ViT-L-14')")
        name = f"clip_custom_{_config_tag(arch)}"
        arch = copy.deepcopy(arch)
    else:
        check_choice("arch", arch, OPENAI_CLIP_ARCHS, alternative="a config dict")
        name = f"clip_{arch}"
        if weights == "default":
            weights = OPENAI_CLIP_ARCHS[arch][1]
    if fp16:
        name += "_fp16"
    return BackboneRef(name, functools.partial(CLIPImageEncoder, arch=arch, fp16=bool(fp16)), weights)
