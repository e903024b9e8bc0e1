"""Cost of ``JWBDHCallback(preset="smoke")`` in a small validation epoch, as a fraction of that epoch.

A tiny audio-driven avatar generator (:class:`TinyAvatarModule`, the example's architecture at width 16)
runs ``trainer.validate`` over synthetic avatar clips (``jwbdh_callbacks.synthetic``, cached in memory, so
rendering is not timed) with and without the callback, interleaved over rounds. The epoch is timed from the
first callback's ``on_validation_epoch_start`` to ``on_validation_end``, so it includes the callback's
per-batch updates and its end-of-epoch compute and logging, and excludes the Trainer's fixed start-up.

    overhead = median(epoch with callback) / median(epoch without) - 1

A separate pass with timers on every metric's ``update`` of the callback's suite says what dominates.
The smoke preset runs the real code paths with small random backbones on all three regions (whole body,
face, hand) and all twelve metrics, including AMT-S (MS) at full architecture size, so on a CPU the callback
costs far more than a tiny generator's forward pass: the number is reported as measured.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.common import (
    BenchResult,
    Config,
    Correctness,
    Ratio,
    shares,
    summarize,
    synchronize,
    time_calls,
    untime_calls,
)


def _module_class() -> type:
    import lightning.pytorch as pl

    class TinyAvatarModule(pl.LightningModule):
        """First frame + per-frame speech envelope -> frames (examples/train_avatar.py at width 16)."""

        def __init__(self, width: int = 16) -> None:
            super().__init__()
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
            b, t = envelope.shape
            feat = self.encoder(first_frame)
            phase = torch.linspace(0, 1, t, device=envelope.device).expand(b, t)
            cond = self.audio(
                torch.stack([envelope, envelope.diff(dim=1, prepend=envelope[:, :1]), phase], -1)
            )
            feat = feat[:, None].expand(b, t, *feat.shape[1:]).flatten(0, 1)
            cond = cond.flatten(0, 1)[:, :, None, None].expand(-1, -1, *feat.shape[-2:])
            delta = self.decoder(torch.cat([feat, cond], dim=1)).view(b, t, 3, *first_frame.shape[-2:])
            return (first_frame[:, None] + 0.5 * torch.tanh(delta)).clamp(0, 1)

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            reference = batch["reference"]
            target = reference.float() / 255.0
            generated = self(target[:, 0], batch["envelope"])
            self.log("val/l1", F.l1_loss(generated, target), batch_size=reference.shape[0])
            return {
                "generated": generated,
                "reference": reference,
                "keypoints_reference": batch["keypoints"],
                "fps": batch["fps"],
            }

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return TinyAvatarModule


def _epoch_timer(device: torch.device) -> Any:
    import lightning.pytorch as pl

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.seconds: float | None = None
            self._start = 0.0

        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            synchronize(device)
            self._start = time.perf_counter()

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            synchronize(device)
            self.seconds = time.perf_counter() - self._start

    return EpochTimer()


def bench_callback_overhead(cfg: Config) -> BenchResult:
    """Validation epoch with JWBDHCallback(preset="smoke") vs without (overhead fraction)."""
    import lightning.pytorch as pl

    from jwbdh_callbacks.region_callback import JWBDHCallback
    from jwbdh_callbacks.synthetic import SyntheticAvatarDataModule

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities"):
        logging.getLogger(name).setLevel(logging.WARNING)  # Trainer banners, the callback's per-epoch line
    dev = cfg.device
    num_val, batch_size = cfg.pick((1, 1), (2, 2))
    num_frames, height, width = cfg.pick((8, 128, 96), (16, 160, 128))
    rounds = cfg.n_rounds(3, 3)
    data = SyntheticAvatarDataModule(
        num_train=1,
        num_val=num_val,
        batch_size=batch_size,
        num_frames=num_frames,
        height=height,
        width=width,
        seed=0,
    )
    data.setup("validate")
    loader = data.val_dataloader()
    for _ in loader:  # render and cache every clip now: rendering is not part of the epoch
        pass
    torch.manual_seed(0)
    model = _module_class()()
    callback = JWBDHCallback(preset="smoke")

    def epoch(with_callback: bool) -> float:
        timer = _epoch_timer(dev)
        trainer = pl.Trainer(
            accelerator="gpu" if dev.type == "cuda" else "cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            callbacks=[timer, callback] if with_callback else [timer],
        )
        trainer.validate(model, dataloaders=loader, verbose=False)
        assert timer.seconds is not None
        return timer.seconds

    times: dict[str, list[float]] = {"without": [], "with_callback": []}
    bucket: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epoch(False)  # warm-up: Trainer, dataloader, module
        epoch(True)  # warm-up: suite and backbones built once, as in a training run
        # Where the callback's time goes: timers on every metric of the suite during the timed epochs
        # (a perf_counter pair per metric call: negligible next to the metrics themselves).
        suite = callback.suite
        wrapped = []
        for collection in suite.collections.values():
            for key, metric in collection.items(keep_base=True, copy_state=False):
                time_calls(metric, "update", bucket, key, dev)
                wrapped.append(metric)
        time_calls(suite, "compute", bucket, "compute (all metrics)", dev)
        try:
            for r in range(rounds):
                order = (False, True) if r % 2 == 0 else (True, False)
                for with_cb in order:
                    times["with_callback" if with_cb else "without"].append(epoch(with_cb))
        finally:
            for metric in wrapped:
                untime_calls(metric, "update")
            untime_calls(suite, "compute")
    results = callback.last_results
    expected = [(r, k) for r in callback.config.regions for k in callback.config.metrics]
    missing = [
        f"{r}/{k}"
        for r, k in expected
        if not isinstance(results.get(r, {}).get(k), float) or not math.isfinite(results[r][k])
    ]
    base, withcb = times["without"], times["with_callback"]
    per_round = [w / b - 1 for w, b in zip(withcb, base, strict=True)]
    median_base = summarize(base)["median_s"]
    median_with = summarize(withcb)["median_s"]
    callback_s = max(median_with - median_base, 0.0)
    per_epoch = {k: v / rounds for k, v in bucket.items()}
    other = max(statistics.mean(withcb) - statistics.mean(base) - sum(per_epoch.values()), 0.0)
    per_epoch["callback bookkeeping (region boxes and crops, samples, logging)"] = other
    share = shares(per_epoch)
    return BenchResult(
        name="callback_overhead",
        mode=cfg.mode,
        device=str(dev),
        params={
            "preset": "smoke",
            "regions": list(callback.config.regions),
            "val_videos": num_val,
            "batch_size": batch_size,
            "frames": num_frames,
            "height": height,
            "width": width,
            "rounds": rounds,
        },
        timings={"without": summarize(base), "with_callback": summarize(withcb)},
        correctness=[
            Correctness("region/metric values missing or not finite after the epoch", len(missing), 0)
        ],
        ratios={
            "overhead": Ratio(
                "overhead",
                median_with / median_base - 1,
                min(per_round),
                max(per_round),
                "epoch with callback / epoch without - 1",
            )
        },
        breakdown={
            "callback_time_by_metric": share,
            "callback_share_of_epoch_with_callback": callback_s / median_with if median_with > 0 else 0.0,
            "missing_or_nonfinite": missing,
            "last_results": results,
        },
        notes=[
            f"epoch without {median_base:.3g}s, with callback {median_with:.3g}s "
            f"(callback = {callback_s / median_with:.0%} of the epoch with it)",
            "callback time by metric (all regions): "
            + ", ".join(f"{k} {v['share']:.0%}" for k, v in list(share.items())[:6]),
        ],
    )


BENCHMARKS = {"callback_overhead": bench_callback_overhead}
