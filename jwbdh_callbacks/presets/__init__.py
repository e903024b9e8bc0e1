"""Evaluation presets: validated omegaconf configs that set every number-changing argument as a group.

``jwbdh-v1`` reproduces the benchmark's scripts; ``standard`` uses the community definitions; ``smoke`` runs
the same code paths with small random backbones (no downloads, uncalibrated numbers). A preset is a YAML
file checked against :class:`PresetConfig`: an unknown or misspelt key, an unknown metric key, or a metric
argument the metric does not take is an error at load time, not a silently ignored setting.

Example:
    >>> cfg = load_preset("smoke", overrides=["regions=[whole_body]"])
    >>> cfg.name, list(cfg.regions)
    ('smoke', ['whole_body'])
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["PRESETS", "PresetConfig", "load_preset", "preset_metrics"]

PRESETS = ("jwbdh-v1", "standard", "smoke")

# Keyword arguments every torchmetrics Metric accepts.
_METRIC_BASE_KWARGS = {
    "compute_on_cpu",
    "dist_sync_on_step",
    "process_group",
    "dist_sync_fn",
    "distributed_available_fn",
    "sync_on_compute",
    "compute_with_cache",
}


@dataclass
class PresetConfig:
    """Schema of a preset file.

    Attributes:
        name: preset name (shown in logs).
        protocol: ``jwbdh-v1`` or ``standard`` (documentation; metric arguments carry the details).
        calibrated: False for random backbones; results are then tagged as smoke numbers.
        regions: regions to evaluate (``whole_body``, ``face``, ``hand``, or any registered region).
        crop_size: ``first_valid`` (JWB-DH-V1) or ``[h, w]``.
        min_region_frames: region videos with fewer kept frames are skipped.
        metrics: ``{paper key: constructor arguments}``.
    """

    name: str = "custom"
    protocol: str = "jwbdh-v1"
    calibrated: bool = True
    regions: list[str] = field(default_factory=lambda: ["whole_body", "face", "hand"])
    crop_size: Any = "first_valid"
    min_region_frames: int = 1
    metrics: dict[str, Any] = field(default_factory=dict)


def _preset_path(name_or_path: str | os.PathLike) -> str:
    text = os.fspath(name_or_path)
    if text in PRESETS:
        return str(resources.files("jwbdh_callbacks.presets").joinpath(f"{text}.yaml"))
    if os.path.isfile(text):
        return text
    raise ValueError(f"`preset` must be one of {PRESETS} or a YAML file path, got {text!r}")


def _check_metric_args(metrics: dict[str, Any]) -> None:
    from metrics.builders import METRIC_KEYS, _builders

    builders = _builders()
    for key, kwargs in metrics.items():
        if key not in METRIC_KEYS:
            raise ValueError(f"preset: unknown metric key {key!r}; expected some of {METRIC_KEYS}")
        if kwargs is None:
            continue
        if not isinstance(kwargs, dict):
            raise ValueError(f"preset: arguments of metric {key!r} must be a mapping, got {kwargs!r}")
        accepted = _accepted_kwargs(builders[key])
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise ValueError(
                f"preset: metric {key!r} ({builders[key].__name__}) has no argument(s) {unknown}; "
                f"accepted: {sorted(accepted)}"
            )


def _accepted_kwargs(cls: type) -> set[str]:
    names = set(_METRIC_BASE_KWARGS)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith("torchmetrics"):
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return names


def load_preset(
    preset: str | os.PathLike | PresetConfig = "jwbdh-v1", overrides: dict[str, Any] | list[str] | None = None
) -> PresetConfig:
    """Load and validate a preset (built-in name or YAML path), optionally overridden.

    Args:
        preset: ``"jwbdh-v1"``, ``"standard"``, ``"smoke"``, a YAML path, or a :class:`PresetConfig`.
        overrides: a nested dict (``{"metrics": {"PSNR": {"max_psnr": 60}}}``) or dotlist strings
            (``["regions=[whole_body,face]", "metrics.PSNR.max_psnr=60"]``).

    Raises:
        ValueError: unknown keys, wrong types, unknown metrics or metric arguments.
    """
    schema = OmegaConf.structured(PresetConfig)
    try:
        if isinstance(preset, PresetConfig):
            cfg = OmegaConf.merge(schema, OmegaConf.structured(preset))
        else:
            cfg = OmegaConf.merge(schema, OmegaConf.load(_preset_path(preset)))
        if overrides:
            extra = (
                OmegaConf.from_dotlist(list(overrides))
                if isinstance(overrides, list)
                else OmegaConf.create(overrides)
            )
            cfg = OmegaConf.merge(cfg, extra)
    except OmegaConfBaseException as err:
        raise ValueError(f"invalid preset {preset!r}: {err}") from err
    result: PresetConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    metrics = OmegaConf.to_container(cfg.metrics) if isinstance(cfg.metrics, DictConfig) else result.metrics
    result.metrics = {k: dict(v or {}) for k, v in metrics.items()}
    if not result.metrics:
        raise ValueError(f"preset {result.name!r} names no metrics")
    _check_metric_args(result.metrics)
    if isinstance(result.crop_size, list | tuple):
        if len(result.crop_size) != 2 or not all(isinstance(v, int) and v > 0 for v in result.crop_size):
            raise ValueError(f"preset: `crop_size` must be 'first_valid' or [h, w], got {result.crop_size!r}")
        result.crop_size = tuple(result.crop_size)
    elif result.crop_size != "first_valid":
        raise ValueError(f"preset: `crop_size` must be 'first_valid' or [h, w], got {result.crop_size!r}")
    return result


def preset_metrics(cfg: PresetConfig) -> dict[str, dict[str, Any]]:
    """The metric arguments of a preset, ready for :class:`metrics.suite.RegionalSuite`."""
    return {k: dict(v) for k, v in cfg.metrics.items()}
