"""Train a small audio-driven avatar generator on synthetic data and watch the JWB-DH-V1 numbers per region.

The generator sees the first reference frame (identity) and the speech envelope of every frame, and learns
to render the talking, gesturing avatar. ``JWBDHCallback`` evaluates whole body, face and hands every epoch
and logs to Weights & Biases in offline mode (``WANDB_MODE=offline`` unless you set it): scalars, a table
next to the paper's Table 2, bar charts and side-by-side sample videos with the region boxes.

    python examples/train_avatar.py                    # smoke backbones, W&B offline, minutes on 2 CPU cores
    python examples/train_avatar.py --logger csv       # no wandb needed
    python examples/train_avatar.py --preset jwbdh-v1  # real backbones (`jwbdh-weights download ...` first)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F

from jwbdh_callbacks.region_callback import JWBDHCallback
from jwbdh_callbacks.synthetic import SyntheticAvatarDataModule


class AudioDrivenAvatar(pl.LightningModule):
    """First frame + per-frame speech envelope -> frames, as a residual over the identity frame."""

    def __init__(self, width: int = 32, lr: float = 2e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.audio = nn.Sequential(nn.Linear(3, width), nn.GELU(), nn.Linear(width, width))
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.GELU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, first_frame: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """``first_frame [B,3,H,W]`` in [0,1], ``envelope [B,T]`` -> video ``[B,T,3,H,W]`` in [0,1]."""
        b, t = envelope.shape
        feat = self.encoder(first_frame)  # [B, C, H/2, W/2]
        phase = torch.linspace(0, 1, t, device=envelope.device).expand(b, t)
        cond = self.audio(torch.stack([envelope, envelope.diff(dim=1, prepend=envelope[:, :1]), phase], -1))
        feat = feat[:, None].expand(b, t, *feat.shape[1:]).flatten(0, 1)
        cond = cond.flatten(0, 1)[:, :, None, None].expand(-1, -1, *feat.shape[-2:])
        delta = self.decoder(torch.cat([feat, cond], dim=1)).view(b, t, 3, *first_frame.shape[-2:])
        return (first_frame[:, None] + 0.5 * torch.tanh(delta)).clamp(0, 1)

    def _generate(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        reference = batch["reference"].float() / 255.0
        return self(reference[:, 0], batch["envelope"].float()), reference

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        generated, reference = self._generate(batch)
        loss = F.l1_loss(generated, reference)
        self.log("train/l1", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        generated, reference = self._generate(batch)
        self.log("val/l1", F.l1_loss(generated, reference), prog_bar=True)
        # The keys JWBDHCallback reads (see metrics.suite.AvatarBatch).
        return {
            "generated": generated,
            "reference": batch["reference"],
            "keypoints_reference": batch["keypoints"],
            "fps": batch["fps"],
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def _logger(kind: str, out: Path) -> pl.loggers.Logger:
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            print(
                "wandb is not installed (pip install 'jwbdh-callbacks[wandb]'); using CSVLogger",
                file=sys.stderr,
            )
            kind = "csv"
    if kind == "wandb":
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        return pl.loggers.WandbLogger(project="jwbdh-avatar-demo", save_dir=str(out))
    return pl.loggers.CSVLogger(str(out), name="csv")


PRESET_WEIGHTS = {
    "jwbdh-v1": ["inception_v3_imagenet", "i3d_torchscript", "dino_vitb16", "clip_vitb32_openai",
                 "clip_vitl14_openai", "laion_aesthetic_vitl14", "musiq_spaq", "raft_large_c_t_v1", "amt_s"],
    "standard": ["fid_inception_v3", "i3d_torchscript", "dino_vitb16", "clip_vitb32_openai",
                 "clip_vitl14_openai", "laion_aesthetic_vitl14", "musiq_spaq", "raft_large_c_t_v1", "amt_s",
                 "facenet_vggface2"],
}  # fmt: skip


def check_weights(preset: str) -> list[str]:
    """Registry names a calibrated preset needs that are not on disk (no download is attempted)."""
    from metrics.backbones.weights import WeightsUnavailableError, resolve_weights

    missing = []
    for name in PRESET_WEIGHTS.get(preset, []):
        try:
            resolve_weights(name, allow_download=False)
        except WeightsUnavailableError:
            missing.append(name)
    return missing


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="smoke", help="smoke (default, offline) | jwbdh-v1 | standard | YAML"
    )
    parser.add_argument("--logger", choices=("wandb", "csv"), default="wandb")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="runs/train_avatar")
    parser.add_argument("--num-train", type=int, default=16)
    parser.add_argument("--num-val", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args(argv)
    missing = check_weights(args.preset)
    if missing:
        print(
            f"preset {args.preset!r} needs checkpoints that are not cached: {', '.join(missing)}.\n"
            f"Run `jwbdh-weights download {' '.join(missing)}` (needs internet once), or use --preset smoke.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = SyntheticAvatarDataModule(
        num_train=args.num_train, num_val=args.num_val, batch_size=4, num_frames=args.frames, seed=0
    )
    callback = JWBDHCallback(preset=args.preset, every_n_epochs=1, max_batches=2, num_media_samples=2)
    logger = _logger(args.logger, out)
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="auto",
        devices=1,
        logger=logger,
        callbacks=[callback],
        default_root_dir=str(out),
        log_every_n_steps=1,
        num_sanity_val_steps=1,
        enable_checkpointing=False,
    )
    start = time.perf_counter()
    trainer.fit(AudioDrivenAvatar(), datamodule=data)
    elapsed = time.perf_counter() - start
    print(f"\ntrained {args.epochs} epochs in {elapsed:.0f}s; last JWB-DH-V1 results ({callback.prefix}):")
    for region, values in callback.last_results.items():
        print(f"  {region:10s} " + "  ".join(f"{k}={v:.4g}" for k, v in values.items()))
    if type(logger).__name__ == "WandbLogger":
        run_dir = Path(logger.experiment.dir).parent
        logger.experiment.finish()
        print(
            f"W&B offline run: {run_dir}  (table key '{callback.prefix}/table'; upload: wandb sync {run_dir})"
        )
    else:
        print(f"CSV logs: {logger.log_dir} (metrics.csv and jwbdh_table_step*.csv)")
    return callback.last_results


if __name__ == "__main__":
    main()
