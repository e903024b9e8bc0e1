"""Process-wide backbone cache: one network instance per (name, weights, device, dtype, precision, layout).

Metrics never register a backbone as a submodule: they hold a :class:`BackboneRef` and ask it for the
network on the device of their input. So a metric's ``state_dict`` never carries backbone weights,
``metric.to(device)`` stays cheap, and FID, E-FID and the same metric on several regions share one
Inception per device.

``precision`` (``"fp32"``, ``"tf32"``, ``"bf16"``) and ``channels_last`` (see
:mod:`metrics.backbones.precision`) are part of the key: a backbone wrapper that preprocesses its input
implements ``configure_inference(precision, channels_last)`` so that only the network proper runs at that
precision; any other network is wrapped whole in an :class:`~metrics.backbones.precision.InferenceRunner`.

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

import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from metrics.backbones.precision import InferenceRunner, check_precision

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
    precision: str = "fp32",
    channels_last: bool = False,
) -> nn.Module:
    """Return the cached network for the key; build it with ``factory(weights)``.

    The network is put in eval mode with gradients disabled. ``factory`` runs under a fixed seed.
    """
    check_precision(precision, channels_last)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (name, _weights_key(weights), str(device), dtype, precision, channels_last)
    with _LOCK:
        module = _CACHE.get(key)
        if module is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                module = factory(weights)
            module = module.to(device=device, dtype=dtype).eval()
            for param in module.parameters():  # ScriptModules do not support requires_grad_()
                param.requires_grad_(False)
            configure = getattr(module, "configure_inference", None)
            if callable(configure):
                configure(precision, channels_last)
            elif precision != "fp32" or channels_last:
                module = InferenceRunner(module, precision, channels_last).eval()
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
        precision: ``"fp32"`` (default, parity), ``"tf32"`` or ``"bf16"`` inference.
        channels_last: NHWC / NDHWC weights and inputs.
    """

    name: str
    factory: Callable[[str | os.PathLike | None], nn.Module]
    weights: str | os.PathLike | None = None
    dtype: torch.dtype = torch.float32
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision, self.channels_last)

    def get(self, device: torch.device | str) -> nn.Module:
        """The shared network on ``device``."""
        return get_backbone(
            self.name,
            self.factory,
            weights=self.weights,
            device=device,
            dtype=self.dtype,
            precision=self.precision,
            channels_last=self.channels_last,
        )

    def with_inference(self, precision: str | None = None, channels_last: bool | None = None) -> BackboneRef:
        """The same backbone at another precision / layout (a separate cached instance); None: keep.

        Example:
            >>> ref = BackboneRef("demo_linear", lambda weights: torch.nn.Linear(4, 2))
            >>> ref.with_inference("bf16").precision
            'bf16'
        """
        if precision is None and channels_last is None:
            return self
        return dataclasses.replace(
            self,
            precision=self.precision if precision is None else precision,
            channels_last=self.channels_last if channels_last is None else channels_last,
        )

    @property
    def fingerprint(self) -> str:
        """What features of this backbone depend on: name, weights, dtype, precision and layout.

        Example:
            >>> BackboneRef("demo_linear", lambda weights: torch.nn.Linear(4, 2)).fingerprint
            'demo_linear|random-init|torch.float32|fp32|contiguous'
        """
        weights = "random-init" if self.weights is None else os.path.basename(os.fspath(self.weights))
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{self.name}|{weights}|{self.dtype}|{self.precision}|{layout}"

    @property
    def is_random_init(self) -> bool:
        """True for uncalibrated (smoke) networks."""
        return self.weights is None
