"""JWB-DH-V1 benchmark metrics as torchmetrics modules (no Lightning dependency).

Example:
    >>> from metrics import SSIM, PSNR, FID
"""

from metrics.aesthetic import AestheticQuality
from metrics.consistency import BackgroundConsistency, SubjectConsistency
from metrics.dynamic_degree import DynamicDegree
from metrics.frechet import FID, FVD, EdgeFID, FrechetDistance
from metrics.identity import CSIM
from metrics.imaging_quality import ImagingQuality
from metrics.motion import MotionSmoothness
from metrics.pixel import PSNR, SSIM, PixelCSIM
from metrics.speech import WinRate, WordErrorRate

__all__ = [
    "CSIM",
    "FID",
    "FVD",
    "PSNR",
    "SSIM",
    "AestheticQuality",
    "BackgroundConsistency",
    "DynamicDegree",
    "EdgeFID",
    "FrechetDistance",
    "ImagingQuality",
    "MotionSmoothness",
    "PixelCSIM",
    "SubjectConsistency",
    "WinRate",
    "WordErrorRate",
]
