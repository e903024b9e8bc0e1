"""Backbone networks, the weights registry and the process-wide backbone cache."""

from metrics.backbones.cache import BackboneRef, clear_backbone_cache, get_backbone
from metrics.backbones.weights import (
    REGISTRY,
    WeightsChecksumError,
    WeightsEntry,
    WeightsUnavailableError,
    resolve_weights,
)

__all__ = [
    "REGISTRY",
    "BackboneRef",
    "WeightsChecksumError",
    "WeightsEntry",
    "WeightsUnavailableError",
    "clear_backbone_cache",
    "get_backbone",
    "resolve_weights",
]
