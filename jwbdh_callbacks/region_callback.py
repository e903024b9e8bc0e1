"""``JWBDHCallback``: JWB-DH-V1 numbers for whole body, face and hands during validation.

Drop it into a ``Trainer``; make ``validation_step`` return a dict with ``generated`` and ``reference``
videos (``[B, T, 3, H, W]``, uint8 or float [0, 1]) and, for the face and hand regions,
``keypoints_reference`` (and/or ``keypoints_generated``) ``[B, T, 133, 3]`` or ``boxes``/``valid`` per
region; ``fps`` for DD.
Or pass ``batch_adapter(batch, outputs) -> AvatarBatch``.

What it does, and the Lightning pitfalls it avoids (spec/lightning.md s4):

* builds the :class:`~metrics.suite.RegionalSuite` in ``setup`` on ``pl_module.device`` (metrics owned by
  a callback are not moved by Lightning) and resolves every checkpoint it needs there, so that missing
  weights fail before training with one message naming all of them and the download command;
* never evaluates during the sanity check; the every-N-epochs decision uses ``trainer.current_epoch``,
  identical on all ranks, and skips update and compute together;
* updates under ``torch.inference_mode`` (the validation loop's own mode, so states never become inference
  tensors touched outside it); ``max_batches`` bounds the evaluation cost per epoch and counts batches of
  ALL ranks together, so the numbers do not depend on the number of GPUs (see :class:`JWBDHCallback`);
* computes on ALL ranks (compute is a collective; every state is sum-reduced, so a rank whose batches had
  no hands cannot hang); logs ``{prefix}/{region}/{metric}`` once through ``pl_module.log`` with
  ``sync_dist=False`` (values are already synced), VBench dimensions on 0-1, and for every mean over videos
  its standard error and 95% interval as ``{prefix}_sem/{region}/{metric}`` (and ``_ci_low``, ``_ci_high``;
  kept in ``last_summaries``); media only on rank 0 (the paper-comparison table shows percent, labelled);
* skipped videos (a region with too few kept frames, a metric that rejected or failed on a video) are
  counted over all ranks (:meth:`~metrics.suite.RegionalSuite.skip_counts`), kept in
  ``last_skip_counts`` and logged as ``{prefix}_skipped/{region}`` and ``{prefix}_skipped/{region}/{metric}``
  when nonzero;
* keeps its state (last evaluated epoch, last results, frozen reference statistics of pooled metrics) in
  ``state_dict`` so a resumed run continues where it stopped.

With an uncalibrated preset (``smoke``) the keys use the prefix ``val/jwbdh_uncalibrated`` so that random-
backbone numbers can never be mistaken for benchmark numbers.

Example:
    >>> from jwbdh_callbacks.region_callback import JWBDHCallback
    >>> cb = JWBDHCallback(preset="smoke", every_n_epochs=2, max_batches=4)
    >>> cb.prefix
    'val/jwbdh_uncalibrated'
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from jwbdh_callbacks import require_lightning

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.utilities import rank_zero_info
except ImportError:  # name the extra to install, not a bare "No module named 'lightning'"
    require_lightning("JWBDHCallback")
    raise

from jwbdh_callbacks.logging import MediaLogger, log_scalars, side_by_side
from jwbdh_callbacks.presets import PresetConfig, load_preset, preset_metrics
from metrics._validate import check_bool, check_int, check_positive_int
from metrics.backbones.weights import check_weights
from metrics.features import FeatureCache
from metrics.suite import AvatarBatch, RegionalSuite

__all__ = ["JWBDHCallback"]

log = logging.getLogger(__name__)


class JWBDHCallback(Callback):
    """Evaluate the JWB-DH-V1 metrics per region every N validation epochs and log them.

    Args:
        preset: ``"jwbdh-v1"`` (default, needs the real checkpoints), ``"standard"``, ``"smoke"``, a YAML path
            or a :class:`~jwbdh_callbacks.presets.PresetConfig`.
        regions: overrides the preset's regions (e.g. ``("whole_body", "face")``).
        every_n_epochs: evaluate after epochs ``N-1, 2N-1, ...``.
        max_batches: evaluate at most this many validation batches per epoch in total over all ranks
            (None = all). With ``W`` processes, rank ``r`` scores its ``i``-th local batch (counted from 0
            over the epoch's validation dataloaders) only while ``i * W + r < max_batches``: with Lightning's
            distributed sampler that is the first ``max_batches`` batches of the single-process order, so
            1 and ``W`` GPUs score the same videos (when the batch size is the same).
        batch_adapter: ``(batch, outputs) -> AvatarBatch``; default reads ``outputs`` as a dict.
        overrides: preset overrides (dict or dotlist, see :func:`~jwbdh_callbacks.presets.load_preset`).
        prefix: log key prefix; default ``val/jwbdh`` (``val/jwbdh_uncalibrated`` for uncalibrated presets).
        cache_reference: pooled (standard) FID/FVD compute their reference side once, on the first evaluated
            epoch, then only the generated side (assumes the same validation references every epoch).
        cache_reference_features: per-video (jwbdh-v1) FID/E-FID/FVD encode each reference video once per
            training run and reuse its features in later evaluations (:class:`~metrics.features.FeatureCache`,
            kept in CPU memory). Opt-in, for a FIXED validation set: videos are identified by the batch's
            ``video_ids`` if the validation step returns them, else by (dataloader, batch index, position),
            which requires an unshuffled validation loader (Lightning's default).
        num_media_samples: side-by-side sample videos logged per evaluation on rank 0 (0 disables media).
        media_fps: frame rate of the logged sample videos.
    """

    def __init__(
        self,
        preset: str | os.PathLike | PresetConfig = "jwbdh-v1",
        regions: Sequence[str] | None = None,
        every_n_epochs: int = 1,
        max_batches: int | None = None,
        batch_adapter: Callable[[Any, Any], AvatarBatch] | None = None,
        overrides: Mapping[str, Any] | list[str] | None = None,
        prefix: str | None = None,
        cache_reference: bool = True,
        cache_reference_features: bool = False,
        num_media_samples: int = 2,
        media_fps: float = 8.0,
    ) -> None:
        super().__init__()
        check_positive_int("every_n_epochs", every_n_epochs)
        check_positive_int("max_batches", max_batches, allow_none=True, none_means="all batches")
        check_int("num_media_samples", num_media_samples, minimum=0)
        check_bool("cache_reference_features", cache_reference_features)
        if batch_adapter is not None and not callable(batch_adapter):
            raise ValueError("`batch_adapter` must be callable (batch, outputs) -> AvatarBatch")
        extra = dict(overrides) if isinstance(overrides, Mapping) else None
        self.config = load_preset(preset, overrides=extra if extra is not None else overrides)
        if regions is not None:
            self.config.regions = list(regions)
        self.every_n_epochs = every_n_epochs
        self.max_batches = max_batches
        self.batch_adapter = batch_adapter
        self.prefix = prefix or ("val/jwbdh" if self.config.calibrated else "val/jwbdh_uncalibrated")
        self.cache_reference = cache_reference
        self.cache_reference_features = cache_reference_features
        self.num_media_samples = num_media_samples
        self.media_fps = media_fps
        self.suite: RegionalSuite | None = None
        self.last_evaluated_epoch: int | None = None
        self.last_results: dict[str, dict[str, float]] = {}
        #: global skip counts of the last evaluation (see :meth:`~metrics.suite.RegionalSuite.skip_counts`)
        self.last_skip_counts: dict[str, int] = {}
        #: spread of each mean over videos, last evaluation (:meth:`~metrics.suite.RegionalSuite.summaries`)
        self.last_summaries: dict[str, dict[str, Any]] = {}
        #: validation batches scored in the last evaluation, all ranks together (at most ``max_batches``)
        self.last_num_batches: int | None = None
        self._restored_reference: dict[str, dict[str, Any]] | None = None
        self._active = False
        self._batches = 0  # batches scored on this rank in the current epoch
        self._seen = 0  # batches seen on this rank in the current epoch (scored or not)
        self._rank, self._world_size = 0, 1
        self._samples: list[torch.Tensor] = []
        self._started = 0.0

    @property
    def state_key(self) -> str:
        return self._generate_state_key(preset=self.config.name, regions=tuple(self.config.regions))

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.suite is not None:
            self.suite.to(pl_module.device)
            return
        suite = RegionalSuite(
            preset_metrics(self.config),
            regions=self.config.regions,
            crop_size=self.config.crop_size,
            min_region_frames=self.config.min_region_frames,
            reference_cache=FeatureCache() if self.cache_reference_features else None,
        )
        # Fail before training, naming every missing checkpoint, not at the first evaluation epoch.
        check_weights(suite.required_weights())
        self.suite = suite.to(pl_module.device)
        if self._restored_reference:
            self.suite.set_reference_statistics(self._restored_reference)
        kind = "calibrated" if self.config.calibrated else "UNCALIBRATED"
        rank_zero_info(
            f"JWBDHCallback: preset '{self.config.name}' ({kind} backbones), regions "
            f"{list(self.config.regions)}, metrics {list(self.config.metrics)}, every {self.every_n_epochs} "
            f"epoch(s), logged under {self.prefix}/<region>/<metric>"
        )

    # ---------------------------------------------------------------------------------- validation
    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = self.suite is not None and self._due(trainer)
        self._batches = self._seen = 0
        self._rank, self._world_size = int(trainer.global_rank), max(1, int(trainer.world_size))
        self._samples = []
        self._started = time.perf_counter()

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active:
            return
        index, self._seen = self._seen, self._seen + 1
        if not self._takes(index):
            return
        avatar = self.batch_adapter(batch, outputs) if self.batch_adapter else AvatarBatch.from_dict(outputs)
        if self.cache_reference_features and avatar.video_ids is None:
            size = avatar.reference.shape[0] if isinstance(avatar.reference, torch.Tensor) else 0
            avatar.video_ids = [f"dl{dataloader_idx}/batch{batch_idx}/{i}" for i in range(size)]
        with torch.inference_mode():
            self.suite.update(avatar)
        self._batches += 1
        if (
            trainer.is_global_zero
            and len(self._samples) < self.num_media_samples
            and MediaLogger(trainer.loggers).logs_media  # no W&B/TensorBoard: do not build sample videos
        ):
            self._keep_samples(avatar)

    def _takes(self, local_index: int) -> bool:
        """Whether this rank scores its ``local_index``-th batch: ``max_batches`` counts all ranks' batches,
        interleaved as the distributed sampler deals them (global index ``local_index * W + rank``)."""
        if self.max_batches is None:
            return True
        return local_index * self._world_size + self._rank < self.max_batches

    def _global_sum(self, value: int, device: torch.device) -> int:
        """``value`` summed over the ranks (a collective under DDP; the value itself otherwise)."""
        dist = torch.distributed
        if self._world_size == 1 or not (dist.is_available() and dist.is_initialized()):
            return value
        total = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(total)
        return int(total.item())

    def _keep_samples(self, avatar: AvatarBatch) -> None:
        from metrics.regions import boxes_from_keypoints

        kp = (
            avatar.keypoints_reference
            if avatar.keypoints_reference is not None
            else avatar.keypoints_generated
        )
        for i in range(min(avatar.generated.shape[0], self.num_media_samples - len(self._samples))):
            boxes, valid = {}, {}
            for region in self.config.regions:
                if region == "whole_body":
                    continue
                if avatar.boxes and region in avatar.boxes:
                    boxes[region] = avatar.boxes[region][i]
                    valid[region] = (avatar.valid or {}).get(region, torch.ones(boxes[region].shape[:1]))[i]
                elif kp is not None:
                    b, v = boxes_from_keypoints(kp[i : i + 1], tuple(avatar.reference.shape[-2:]), region)
                    boxes[region], valid[region] = b[0], v[0]
            self._samples.append(
                side_by_side(avatar.generated[i].detach(), avatar.reference[i].detach(), boxes, valid)
            )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active:
            return
        self._active = False
        suite = self.suite
        with torch.inference_mode():
            # every rank, in the same order: compute(), skip_counts() and the batch count are collectives
            results = suite.compute()
            skips = suite.skip_counts()
            summaries = suite.summaries()
            num_batches = self._global_sum(self._batches, pl_module.device)
        log_scalars(pl_module, results, prefix=self.prefix, summaries=summaries)
        skipped = {name: count for name, count in skips.items() if count}
        for name, count in skipped.items():
            # global values, the same on every rank: no sync. Their own prefix keeps the metric keys
            # {prefix}/{region}/{metric} only.
            value = torch.tensor(float(count), device=pl_module.device)
            pl_module.log(
                f"{self.prefix}_skipped/{name}", value, on_step=False, on_epoch=True, sync_dist=False
            )
        if trainer.is_global_zero:
            media = MediaLogger(trainer.loggers, prefix=self.prefix)
            tag = "" if self.config.calibrated else "(smoke: uncalibrated backbones)"
            media.log_results(results, step=trainer.global_step, tag=tag)
            media.log_samples(self._samples, step=trainer.global_step, fps=self.media_fps)
            rank_zero_info(
                f"JWBDHCallback: epoch {trainer.current_epoch}: evaluated {num_batches} batch(es) on "
                f"{self._world_size} process(es) in {time.perf_counter() - self._started:.1f}s"
                + (f"; skipped videos (all ranks): {skipped}" if skipped else "")
            )
        with torch.inference_mode():
            if self.cache_reference and not suite.reference_frozen:
                suite.freeze_reference()
            suite.reset()
        self._samples = []
        self.last_results = results
        self.last_skip_counts = skips
        self.last_summaries = summaries
        self.last_num_batches = num_batches
        self.last_evaluated_epoch = trainer.current_epoch

    # ---------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "last_evaluated_epoch": self.last_evaluated_epoch,
            "last_results": self.last_results,
            "reference_statistics": self.suite.reference_statistics() if self.suite is not None else {},
            "preset": self.config.name,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_evaluated_epoch = state_dict.get("last_evaluated_epoch")
        self.last_results = state_dict.get("last_results", {})
        reference = state_dict.get("reference_statistics") or None
        self._restored_reference = reference
        if reference and self.suite is not None:
            self.suite.set_reference_statistics(reference)
