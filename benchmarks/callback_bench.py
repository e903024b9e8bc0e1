"""Cost of ``JWBDHCallback(preset="smoke")`` in a small validation epoch, as a fraction of that epoch.

The validation epoch is what our users' models do at validation: sample clips from an audio-driven avatar
*diffusion* generator. :class:`DiffusionAvatarModule` is a small conditional denoiser (identity frame +
per-frame speech envelope + timestep; the demo generator's layout at its default width 32, ~0.1 M
parameters) sampled with 25 deterministic DDIM steps, the step count of published avatar samplers
(MimicMotion 25, EchoMimicV2 30, Hallo 40) at the low end. It runs ``trainer.validate`` over synthetic avatar
clips (``jwbdh_callbacks.synthetic``, cached in memory, so rendering is not timed) with and without the
callback, interleaved over rounds. The epoch is timed from the first callback's
``on_validation_epoch_start`` to ``on_validation_end``, so it includes the callback's per-batch updates and
its end-of-epoch compute and logging, and excludes the Trainer's fixed start-up.

    overhead = median(epoch with callback) / median(epoch without) - 1                (checked)
    overhead_vs_single_forward = callback seconds / epoch of ONE generator forward    (reported only)

The second ratio answers "what if my generator were a single feed-forward pass of this tiny network":
36 metric instances (12 metrics x 3 regions) with real preprocessing then cost many times such an epoch on a
CPU; it is reported so that nobody mistakes the first ratio for a property of the callback alone.
A separate pass with timers on every metric's ``update`` of the callback's suite says what dominates.
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

#: DDIM steps of the validation sampler (the low end of published avatar samplers).
SAMPLING_STEPS = 25


def _module_class() -> type:
    import lightning.pytorch as pl

    class DiffusionAvatarModule(pl.LightningModule):
        """Audio-conditioned video denoiser (epsilon prediction) sampled with DDIM (eta = 0) at validation.

        Per frame: the noisy frame and the identity (first reference) frame are encoded together, the
        speech envelope, its change and the frame phase plus a sinusoidal timestep embedding condition the
        decoder; frames are denoised jointly as a batch. ``steps=1`` is a single forward pass.
        """

        def __init__(self, width: int = 32, steps: int = 25, train_steps: int = 1000) -> None:
            super().__init__()
            if width < 2 or width % 2 or steps < 1:
                raise ValueError(f"`width` must be even and >= 2 and `steps` >= 1, got {width}, {steps}")
            self.steps, self.width = steps, width
            betas = torch.linspace(1e-4, 0.02, train_steps, dtype=torch.float64)
            self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)
            self.encoder = nn.Sequential(
                nn.Conv2d(6, width, 3, padding=1),
                nn.GELU(),
                nn.Conv2d(width, width, 3, stride=2, padding=1),
                nn.GELU(),
            )
            self.cond = nn.Sequential(nn.Linear(3 + width, width), nn.GELU(), nn.Linear(width, width))
            self.decoder = nn.Sequential(
                nn.Conv2d(2 * width, width, 3, padding=1),
                nn.GELU(),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(width, 3, 3, padding=1),
            )

        def _timestep_embedding(self, t: torch.Tensor) -> torch.Tensor:
            half = self.width // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
            angles = t.float()[:, None] * freqs[None]
            return torch.cat([angles.sin(), angles.cos()], dim=-1)

        def denoise(
            self, x_t: torch.Tensor, identity: torch.Tensor, audio: torch.Tensor, t: int
        ) -> torch.Tensor:
            """Predicted noise for frames ``x_t [N, 3, H, W]`` at timestep ``t``."""
            n = x_t.shape[0]
            emb = self._timestep_embedding(torch.full((n,), t, device=x_t.device))
            cond = self.cond(torch.cat([audio, emb], dim=-1))
            feat = self.encoder(torch.cat([x_t, identity], dim=1))
            cond = cond[:, :, None, None].expand(-1, -1, *feat.shape[-2:])
            return self.decoder(torch.cat([feat, cond], dim=1))

        @torch.no_grad()
        def sample(self, first_frame: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
            """DDIM: ``first_frame [B, 3, H, W]`` in [0, 1], ``envelope [B, T]`` -> ``[B, T, 3, H, W]``."""
            b, t = envelope.shape
            h, w = first_frame.shape[-2:]
            phase = torch.linspace(0, 1, t, device=envelope.device).expand(b, t)
            audio = torch.stack([envelope, envelope.diff(dim=1, prepend=envelope[:, :1]), phase], -1)
            audio = audio.flatten(0, 1)
            identity = (first_frame * 2 - 1)[:, None].expand(b, t, 3, h, w).flatten(0, 1)
            x = torch.randn(b * t, 3, h, w, device=first_frame.device)
            total = self.alphas_cumprod.shape[0]
            timesteps = torch.linspace(total - 1, 0, self.steps).round().long().tolist()
            for i, step in enumerate(timesteps):
                a_t = self.alphas_cumprod[step]
                a_prev = (
                    self.alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else a_t.new_tensor(1.0)
                )
                eps = self.denoise(x, identity, audio, step)
                x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
                x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            return ((x + 1) / 2).clamp(0, 1).view(b, t, 3, h, w)

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
            reference = batch["reference"]
            target = reference.float() / 255.0
            generated = self.sample(target[:, 0], batch["envelope"].float())
            self.log("val/l1", F.l1_loss(generated, target), batch_size=reference.shape[0])
            return {
                "generated": generated,
                "reference": reference,
                "keypoints_reference": batch["keypoints"],
                "fps": batch["fps"],
            }

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return DiffusionAvatarModule


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
    num_frames, height, width = cfg.pick((16, 128, 96), (16, 160, 128))
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
    module_class = _module_class()
    model = module_class(steps=SAMPLING_STEPS)
    single_forward = module_class(steps=1)
    single_forward.load_state_dict(model.state_dict())
    callback = JWBDHCallback(preset="smoke")

    def epoch(with_callback: bool, module: Any = model) -> float:
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
        torch.manual_seed(0)  # same initial noise in every epoch
        trainer.validate(module, dataloaders=loader, verbose=False)
        assert timer.seconds is not None
        return timer.seconds

    times: dict[str, list[float]] = {"without": [], "with_callback": [], "single_forward": []}
    bucket: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epoch(False)  # warm-up: Trainer, dataloader, module
        epoch(True)  # warm-up: suite and backbones built once, as in a training run
        epoch(False, single_forward)
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
                times["single_forward"].append(epoch(False, single_forward))
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
    median_single = summarize(times["single_forward"])["median_s"]
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
            "generator": f"DiffusionAvatarModule(width=32), {SAMPLING_STEPS} DDIM steps",
            "frames": num_frames,
            "height": height,
            "width": width,
            "rounds": rounds,
        },
        timings={k: summarize(v) for k, v in times.items()},
        correctness=[
            Correctness("region/metric values missing or not finite after the epoch", len(missing), 0)
        ],
        ratios={
            "overhead": Ratio(
                "overhead",
                median_with / median_base - 1,
                min(per_round),
                max(per_round),
                f"epoch with callback / epoch without - 1 ({SAMPLING_STEPS}-step sampler epoch)",
            ),
            "overhead_vs_single_forward": Ratio(
                "overhead",
                callback_s / median_single,
                min(w - b for w, b in zip(withcb, base, strict=True)) / max(times["single_forward"]),
                max(w - b for w, b in zip(withcb, base, strict=True)) / min(times["single_forward"]),
                "callback seconds / epoch of one generator forward pass (reported, not checked)",
            ),
        },
        breakdown={
            "callback_time_by_metric": share,
            "callback_share_of_epoch_with_callback": callback_s / median_with if median_with > 0 else 0.0,
            "missing_or_nonfinite": missing,
            "last_results": results,
        },
        notes=[
            f"epoch without {median_base:.3g}s ({SAMPLING_STEPS} DDIM steps), "
            f"with callback {median_with:.3g}s "
            f"(callback = {callback_s / median_with:.0%} of the epoch with it); one generator forward "
            f"pass per clip instead: {median_single:.3g}s",
            "callback time by metric (all regions): "
            + ", ".join(f"{k} {v['share']:.0%}" for k, v in list(share.items())[:6]),
        ],
    )


BENCHMARKS = {"callback_overhead": bench_callback_overhead}
