r"""LAION aesthetic predictor V1: a linear head on L2-normalised CLIP ViT-L/14 image embeddings.

VBench's aesthetic quality (AQ) loads ``sa_0_4_vit_l_14_linear.pth`` (LAION-AI/aesthetic-predictor, MIT,
4,071 bytes) into ``nn.Linear(768, 1)`` with ``strict=True``. The file is a state dict with exactly two
float32 tensors, ``weight [1, 768]`` and ``bias [1]``; the head outputs LAION's ~1-10 rating, which VBench
divides by 10. Registry name: ``"laion_aesthetic_vitl14"`` (sha256 ``2cd4e60f...``; see
``jwbdh-weights list``). The same loader reads the ViT-B/32 head (``in_features=512``) from a path.

Example:
    >>> import torch
    >>> head = load_aesthetic_head(None)
    >>> head(torch.zeros(2, 768)).shape
    torch.Size([2, 1])
"""

from __future__ import annotations

import functools
import os

from torch import nn

from metrics._validate import check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.weights import load_checkpoint

__all__ = ["aesthetic_head_ref", "load_aesthetic_head"]


def load_aesthetic_head(
    weights: str | os.PathLike | None = "laion_aesthetic_vitl14", in_features: int = 768
) -> nn.Linear:
    """Build ``nn.Linear(in_features, 1)`` and load ``weights`` strictly (None = seeded random init).

    Args:
        weights: registry name, path to a ``{"weight", "bias"}`` state dict, or None.
        in_features: CLIP embedding size (768 for ViT-L/14, LAION's V1 head).

    Raises:
        RuntimeError: the checkpoint has other keys or shapes (``load_state_dict(strict=True)``).

    Example:
        >>> load_aesthetic_head(None, in_features=512).weight.shape
        torch.Size([1, 512])
    """
    check_positive_int("in_features", in_features)
    head = nn.Linear(in_features, 1)
    if weights is not None:
        head.load_state_dict(load_checkpoint(weights), strict=True)
    return head


def aesthetic_head_ref(
    weights: str | os.PathLike | None = "laion_aesthetic_vitl14", in_features: int = 768
) -> BackboneRef:
    """Shared-cache handle for :func:`load_aesthetic_head`.

    Example:
        >>> aesthetic_head_ref().name
        'laion_aesthetic_head_768'
    """
    factory = functools.partial(load_aesthetic_head, in_features=in_features)
    return BackboneRef(f"laion_aesthetic_head_{in_features}", factory, weights)
