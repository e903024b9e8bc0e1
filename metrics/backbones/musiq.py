"""MUSIQ (SPAQ) for VBench's imaging quality, through pyiqa's architecture (optional extra ``iqa``).

VBench builds ``pyiqa.archs.musiq_arch.MUSIQ(pretrained_model_path=<musiq_spaq_ckpt-358bb6af.pth>)`` with the
default architecture (patch 32, hidden 384, MLP 1152, 6 heads, 14 layers, 3 scales, 10 x 10 hashed position
grid, ``num_class=1``: a regression head whose output is the SPAQ MOS on a ~0-100 scale, so pyiqa's
``dist_to_mos`` is the identity) and calls ``model(frame)`` on RGB floats in [0, 1].

**The ``training`` flag is part of the input pipeline.** pyiqa's ``MUSIQ.forward`` only runs its own
preprocessing (``x -> 2x - 1`` and the multi-scale patch extraction: longer side 224 and 384, bicubic, plus
the native resolution, 32 x 32 patches with TF "SAME" padding, hashed spatial and scale positions, masks)
when ``not self.training``; in training mode it expects ready-made patch sequences. VBench therefore sets
``model.training = False`` on the top-level module only, instead of calling ``.eval()``. The two are
numerically identical for this network: every dropout rate is 0, stochastic depth is an ``Identity`` and
there is no BatchNorm (GroupNorm / LayerNorm behave the same in both modes). :class:`MUSIQSpaq` is put in eval
mode by the backbone cache and additionally keeps the wrapped network's top-level flag False even after
``.train()``, so images always go through the preprocessing VBench relies on.

pyiqa is imported lazily; its PyPI metadata pulls many heavy packages that MUSIQ does not need (see
spec/weights.md: ``pip install --no-deps pyiqa`` plus torch, torchvision, numpy, opencv, pillow, scipy, tqdm,
pyyaml, requests, huggingface_hub is enough for this import). Weights: CC BY-NC-SA 4.0, pyiqa code
PolyForm-Noncommercial.

Example:
    >>> import torch
    >>> net = MUSIQSpaq(weights=None).eval()  # doctest: +SKIP
    >>> net(torch.rand(2, 3, 64, 96)).shape  # doctest: +SKIP
    torch.Size([2])
"""

from __future__ import annotations

import os
import pickle

from torch import Tensor, nn

from metrics.backbones.cache import BackboneRef
from metrics.backbones.precision import check_precision, inference_precision, set_module_layout
from metrics.backbones.weights import REGISTRY, resolve_weights, torch_load

__all__ = ["MUSIQSpaq", "load_musiq_state_dict", "musiq_class", "musiq_ref"]

IQA_EXTRA_HINT = 'pip install "jwbdh-callbacks[iqa]" && pip install --no-deps "pyiqa==0.1.16"'


def musiq_class() -> type[nn.Module]:
    """pyiqa's ``MUSIQ`` class (lazy import with an ImportError naming the extra to install)."""
    try:
        from pyiqa.archs.musiq_arch import MUSIQ
    except ImportError as err:
        raise ImportError(
            "ImagingQuality needs pyiqa's MUSIQ architecture, which is not installed: "
            f"{IQA_EXTRA_HINT} (pyiqa's own requirements pull heavy packages MUSIQ does not need). "
            f"Original error: {err}"
        ) from err
    return MUSIQ


def load_musiq_state_dict(weights: str | os.PathLike) -> dict[str, Tensor]:
    """Resolve ``weights`` (registry name or path) and read its state dict on the CPU.

    Tensors-only loading (``weights_only=True``) is tried first. pyiqa itself loads with
    ``weights_only=False``; that fallback is used only for a registry file whose sha256 was verified.
    A ``module.`` prefix (DataParallel checkpoints) is stripped as pyiqa's ``clean_state_dict`` does.
    """
    path = resolve_weights(weights)
    try:
        state = torch_load(path, weights_only=True)
    except pickle.UnpicklingError:
        if os.fspath(weights) not in REGISTRY:
            raise ValueError(
                f"checkpoint {path} holds objects that torch.load(weights_only=True) refuses; only the "
                "verified registry file is unpickled fully. Re-save it as a plain state dict."
            ) from None
        state = torch_load(path, weights_only=False)  # checksum-verified registry file
    for key in ("params", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a state dict (got {type(state).__name__})")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


class MUSIQSpaq(nn.Module):
    """pyiqa MUSIQ with the SPAQ regression head: RGB ``[N, 3, H, W]`` floats in [0, 1] -> ``[N]`` MOS.

    All images of one call must share a size (pyiqa extracts patches for the batch at once); each image is
    scored independently. Scores are raw SPAQ MOS (~0-100).

    Args:
        weights: registry name (``"musiq_spaq"``), checkpoint path (pyiqa MUSIQ state dict), or None for a
            seeded random initialisation (smoke runs).

    Example:
        >>> import torch
        >>> net = MUSIQSpaq(weights=None).eval()  # doctest: +SKIP
        >>> net(torch.rand(1, 3, 32, 48)).shape  # doctest: +SKIP
        torch.Size([1])
    """

    def __init__(self, weights: str | os.PathLike | None = "musiq_spaq") -> None:
        super().__init__()
        arch = musiq_class()
        # pretrained=False: without a path pyiqa would download its AVA checkpoint (and set num_class=10).
        net = arch(num_class=1, pretrained=False, pretrained_model_path=None)
        if weights is not None:
            net.load_state_dict(load_musiq_state_dict(weights), strict=True)
        self.net = net
        self.net.training = False  # VBench's switch: pyiqa's multi-scale preprocessing runs when not training

    #: inference precision and layout (:meth:`configure_inference`; the backbone cache sets them)
    precision: str = "fp32"
    channels_last: bool = False

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run the patch network and transformer at ``precision`` (:mod:`metrics.backbones.precision`); the
        multi-scale preprocessing (bicubic resizes, patch extraction, position hashing) stays float32.
        ``channels_last`` stores the ResNet stem's convolutions NHWC."""
        check_precision(precision, channels_last)
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            set_module_layout(self.net)

    def train(self, mode: bool = True) -> MUSIQSpaq:
        """Set submodules' mode; the wrapped MUSIQ's own flag stays False (its preprocessing stays on)."""
        super().train(mode)
        self.net.training = False
        return self

    def forward(self, images: Tensor) -> Tensor:
        """``[N, 3, H, W]`` in [0, 1] -> ``[N]`` float32 MOS."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"MUSIQ takes float RGB images [N, 3, H, W] in [0, 1], got shape {tuple(images.shape)} "
                f"and dtype {images.dtype}"
            )
        from pyiqa.data.multiscale_trans_util import get_multiscale_patches

        dtype = next(self.net.parameters()).dtype
        # pyiqa's own preprocessing, done here (same operations) so that it stays outside the precision
        # context; the network is then told (training flag) that it gets ready-made patch sequences.
        x = (images.to(dtype) - 0.5) * 2
        patches = get_multiscale_patches(x, **self.net.data_preprocess_opts)
        self.net.training = True
        try:
            with inference_precision(self.precision, images.device):
                scores = self.net(patches)
        finally:
            self.net.training = False
        return scores.reshape(images.shape[0]).float()


def musiq_ref(weights: str | os.PathLike | None = "musiq_spaq") -> BackboneRef:
    """Shared-cache handle for :class:`MUSIQSpaq` (pyiqa is imported when the network is first built)."""
    return BackboneRef("musiq_spaq", MUSIQSpaq, weights)
