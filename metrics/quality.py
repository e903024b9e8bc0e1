"""Per-frame quality dimensions of VBench (DESIGN s1 layout): AestheticQuality (AQ) and ImagingQuality (IQ).

The implementations live in :mod:`metrics.aesthetic` and :mod:`metrics.imaging_quality`; this module groups
them under the name the design uses.

Example:
    >>> from metrics.quality import AestheticQuality, ImagingQuality
"""

from metrics.aesthetic import AestheticQuality
from metrics.imaging_quality import ImagingQuality

__all__ = ["AestheticQuality", "ImagingQuality"]
