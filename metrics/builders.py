"""Paper keys -> metric classes: the builders a preset's ``{key: kwargs}`` goes through.

Example:
    >>> build_metric("PSNR", max_psnr=100.0).max_psnr
    100.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torchmetrics import Metric

__all__ = ["GENERATED_ONLY", "METRIC_KEYS", "PAIRED", "build_metric", "resolve_backbone_spec"]

PAIRED = ("FID", "FVD", "SSIM", "PSNR", "E-FID", "CSIM")
GENERATED_ONLY = ("SC", "BC", "MS", "DD", "AQ", "IQ")
#: Paper key order (Table 2).
METRIC_KEYS = ("SC", "BC", "MS", "DD", "AQ", "IQ", "FID", "FVD", "SSIM", "PSNR", "E-FID", "CSIM")


def resolve_backbone_spec(value: Any) -> Any:
    """Turn ``"smoke:image_encoder:D[:uint8]"`` strings of presets into backbone handles; other values pass.

    Example:
        >>> resolve_backbone_spec("smoke:image_encoder:16").name
        'tiny_image_encoder_v2_16_0'
    """
    if not isinstance(value, str) or not value.startswith("smoke:"):
        return value
    parts = value.split(":")
    if parts[1:] == ["block_matching_flow"]:
        from metrics.backbones.smoke import block_matching_flow_ref

        return block_matching_flow_ref()
    if parts[1:] == ["frame_blend"]:
        from metrics.backbones.smoke import frame_blend_ref

        return frame_blend_ref()
    if len(parts) in (3, 4) and parts[1] == "image_encoder" and parts[2].isdigit():
        from metrics.backbones.smoke import tiny_image_encoder_ref

        return tiny_image_encoder_ref(int(parts[2]), uint8_input=len(parts) == 4 and parts[3] == "uint8")
    raise ValueError(
        f"unknown smoke backbone spec {value!r}; expected 'smoke:image_encoder:<dim>[:uint8]', "
        "'smoke:block_matching_flow' or 'smoke:frame_blend'"
    )


def _builders() -> dict[str, Callable[..., Metric]]:
    from metrics.aesthetic import AestheticQuality
    from metrics.consistency import BackgroundConsistency, SubjectConsistency
    from metrics.dynamic_degree import DynamicDegree
    from metrics.frechet import FID, FVD, EdgeFID
    from metrics.identity import CSIM
    from metrics.imaging_quality import ImagingQuality
    from metrics.motion import MotionSmoothness
    from metrics.pixel import PSNR, SSIM

    return {
        "SC": SubjectConsistency,
        "BC": BackgroundConsistency,
        "MS": MotionSmoothness,
        "DD": DynamicDegree,
        "AQ": AestheticQuality,
        "IQ": ImagingQuality,
        "FID": FID,
        "FVD": FVD,
        "SSIM": SSIM,
        "PSNR": PSNR,
        "E-FID": EdgeFID,
        "CSIM": CSIM,
    }


def build_metric(key: str, **kwargs: Any) -> Metric:
    """Construct the metric for a paper key (``"FID"``, ``"E-FID"``, ``"SC"`` ...) with keyword arguments.

    String values ``"smoke:..."`` become small random backbones (:func:`resolve_backbone_spec`); ``None``
    weights mean random initialisation.
    """
    builders = _builders()
    if key not in builders:
        raise ValueError(f"unknown metric key {key!r}; expected one of {METRIC_KEYS}")
    resolved = {k: resolve_backbone_spec(v) for k, v in kwargs.items()}
    try:
        return builders[key](**resolved)
    except TypeError as err:
        raise ValueError(f"invalid arguments for metric {key!r}: {err}") from err
