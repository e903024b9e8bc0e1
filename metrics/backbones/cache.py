"""Process-wide backbone cache: one network instance per (name, weights, device, dtype).

Metrics never register a backbone as a submodule: they hold a :class:`BackboneRef` and ask it for the
network on the device of their input. So a metric's ``state_dict`` never carries backbone weights,
``metric.to(device)`` stays cheap, and FID, E-FID and the same metric on several regions share one
Inception per device.

Random initialisation (``weights=None``) is seeded, so every process (every DDP rank) builds the same
random network and smoke-preset numbers are reproducible.

Example:
    >>> import torch
    >>> ref = BackboneRef("demo_linear", lambda weights: torch.nn.Linear(4, 2), weights=None)
    >>> net = ref.get(torch.device("cpu"))
    >>> net is ref.get(torch.device("cpu"))
    True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["RANDOM_INIT_SEED", "BackboneRef", "clear_backbone_cache", "get_backbone"]

#: Seed used for ``weights=None`` backbones, identical on every rank.
RANDOM_INIT_SEED = 0

_CACHE: dict[tuple, nn.Module] = {}
_LOCK = threading.Lock()


def _weights_key(weights: str | os.PathLike | None) -> str:
    if weights is None:
        return "random-init"
    text = os.fspath(weights)
    return os.path.abspath(text) if os.path.exists(text) else text


def get_backbone(
    name: str,
    factory: Callable[[str | os.PathLike | None], nn.Module],
    *,
    weights: str | os.PathLike | None,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Return the cached network for ``(name, weights, device, dtype)``; build it with ``factory(weights)``.

    The network is put in eval mode with gradients disabled. ``factory`` runs under a fixed seed.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (name, _weights_key(weights), str(device), dtype)
    with _LOCK:
        module = _CACHE.get(key)
        if module is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                module = factory(weights)
            module = module.to(device=device, dtype=dtype).eval()
            for param in module.parameters():  # ScriptModules do not support requires_grad_()
                param.requires_grad_(False)
            _CACHE[key] = module
    return module


def clear_backbone_cache() -> None:
    """Drop every cached network (frees memory; the next use rebuilds)."""
    with _LOCK:
        _CACHE.clear()


@dataclass(frozen=True)
class BackboneRef:
    """A picklable handle to a cached backbone: what to build, not the network itself.

    Attributes:
        name: family name, part of the cache key (e.g. ``"inception_v3_imagenet"``).
        factory: ``factory(weights) -> nn.Module`` building the network and loading ``weights``.
        weights: registry name, checkpoint path, or None for seeded random initialisation.
        dtype: parameter dtype of the cached instance.
    """

    name: str
    factory: Callable[[str | os.PathLike | None], nn.Module]
    weights: str | os.PathLike | None = None
    dtype: torch.dtype = torch.float32

    def get(self, device: torch.device | str) -> nn.Module:
        """The shared network on ``device``."""
        return get_backbone(self.name, self.factory, weights=self.weights, device=device, dtype=self.dtype)

    @property
    def is_random_init(self) -> bool:
        """True for uncalibrated (smoke) networks."""
        return self.weights is None
