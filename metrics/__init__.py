"""JWB-DH-V1 benchmark metrics as torchmetrics modules (no Lightning dependency).

Example:
    >>> from metrics import SSIM, PSNR, FID
"""

from metrics.frechet import FID, FVD, EdgeFID, FrechetDistance
from metrics.pixel import PSNR, SSIM, PixelCSIM
from metrics.speech import WinRate, WordErrorRate

__all__ = [
    "FID",
    "FVD",
    "PSNR",
    "SSIM",
    "EdgeFID",
    "FrechetDistance",
    "PixelCSIM",
    "WinRate",
    "WordErrorRate",
]
