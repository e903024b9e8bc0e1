"""Score a batch of generated videos against references with the torchmetrics modules alone (no Lightning).

Runs offline in seconds: the Fréchet metrics use randomly initialised backbones (``weights=None``), so their
values only demonstrate the API. Pass ``--calibrated`` to use the real checkpoints (downloaded once into
``~/.cache/jwbdh``; see ``jwbdh-weights list``).

    python examples/standalone_metrics.py [--calibrated]
"""

from __future__ import annotations

import argparse

import torch

from metrics import FID, FVD, PSNR, SSIM, EdgeFID, PixelCSIM


def make_videos(batch: int = 2, frames: int = 16, size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """A reference clip of a moving gradient and a noisy, slightly shifted 'generated' version."""
    t = torch.arange(frames).view(1, frames, 1, 1, 1)
    y = torch.linspace(0, 1, size).view(1, 1, 1, size, 1)
    x = torch.linspace(0, 1, size).view(1, 1, 1, 1, size)
    c = torch.tensor([0.2, 0.5, 0.8]).view(1, 1, 3, 1, 1)
    ref = (0.5 + 0.5 * torch.sin(6 * x + 4 * y + 0.3 * t + c)).expand(batch, -1, -1, -1, -1).clone()
    gen = (ref.roll(2, dims=-1) + 0.05 * torch.randn_like(ref)).clamp(0, 1)
    return gen, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrated", action="store_true", help="use the real pretrained backbones")
    args = parser.parse_args()
    weights = {} if args.calibrated else {"weights": None}
    torch.manual_seed(0)
    gen, ref = make_videos()
    metrics = {
        "SSIM": SSIM(),
        "PSNR": PSNR(),
        "CSIM (pixel)": PixelCSIM(),
        "FID": FID(**weights),
        "E-FID": EdgeFID(**weights),
        "FVD": FVD(**weights),
    }
    for name, metric in metrics.items():
        metric.update(gen, ref)
        tag = (
            ""
            if args.calibrated or name not in ("FID", "E-FID", "FVD")
            else "  (random backbone: smoke only)"
        )
        print(f"{name:14s} {float(metric.compute()):14.6g}{tag}")


if __name__ == "__main__":
    main()
