"""The evaluation suite: every JWB-DH-V1 metric on every region from one ``update(batch)`` call.

:class:`AvatarBatch` carries generated and reference videos plus what is known about them (keypoints,
boxes, fps). :class:`RegionalSuite` keeps one ``MetricCollection`` per region (``whole_body``, ``face``,
``hand``, or any region of :data:`metrics.regions.REGION_RECIPES`), crops each region from each video with
the JWB-DH-V1 recipe (keypoints -> boxes -> each crop cut out and resized as the script's OpenCV
``INTER_LINEAR`` resize does, to the size of the first kept crop; frames without a detection are absent, as in
the benchmark's region videos) and feeds:

* paired metrics (FID, E-FID, FVD, SSIM, PSNR, CSIM) with (generated region video, reference region video);
* generated-only metrics (SC, BC, MS, DD, AQ, IQ: VBench dimensions of the generated video).

The data path, one module per step: :mod:`metrics.video` (video -> canonical uint8 tensor),
:mod:`metrics.batch` (the batch contract), :mod:`metrics.regions` (keypoints -> boxes -> region videos),
:mod:`metrics.builders` (paper keys -> metrics; their features and states live in each metric),
:mod:`metrics.suite_report` (skip counters, per-update report) and this module (update, compute, merge).

Backbones are shared across regions and metrics through the process-wide cache. Every metric state is
sum-reduced, so a region missing on one rank (no hands in its batch) cannot hang DDP; ``compute()`` must be
called on every rank. Usable without Lightning.

Example:
    >>> import torch
    >>> suite = RegionalSuite({"SSIM": {}, "PSNR": {"max_psnr": 100.0}}, regions=("whole_body",))
    >>> v = torch.randint(0, 256, (1, 4, 3, 32, 32), dtype=torch.uint8)
    >>> suite.update(AvatarBatch(generated=v, reference=v))
    >>> suite.compute()["whole_body"]["SSIM"]
    1.0
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from metrics.aggregation import MeanSummary
from metrics.batch import AvatarBatch, keypoints_for
from metrics.builders import GENERATED_ONLY, METRIC_KEYS, PAIRED, build_metric, resolve_backbone_spec
from metrics.features import FeatureCache
from metrics.suite_report import COUNTER_STATES, SkipCounts, UpdateReport, is_pooled, shape_notes
from metrics.video import canonical_pair

__all__ = [
    "GENERATED_ONLY",
    "METRIC_KEYS",
    "PAIRED",
    "AvatarBatch",
    "RegionalSuite",
    "SkipCounts",
    "UpdateReport",
    "build_metric",
    "resolve_backbone_spec",
]


def _shared_boxes(
    region: str, boxes: Tensor, valid: Tensor, gen: Tensor, ref: Tensor
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Boxes given once for both videos (e.g. MTCNN on the reference), cut to each side's frames.

    Boxes are pixels of one frame size and one row per frame: they must cover the longer video (a shorter
    generated clip uses the first rows, as with keypoints) and both videos must share the frame size.
    """
    if gen.shape[-2:] != ref.shape[-2:]:
        raise ValueError(
            f"`boxes['{region}']` are pixel boxes for both videos, but generated frames are "
            f"{gen.shape[-1]}x{gen.shape[-2]} and references {ref.shape[-1]}x{ref.shape[-2]}; give per-side "
            "keypoints (keypoints_generated / keypoints_reference) instead"
        )
    frames = max(gen.shape[1], ref.shape[1])
    if boxes.ndim != 3 or boxes.shape[1] < frames or valid.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f"`boxes['{region}']` must be [B, T, 4] with a `valid` mask [B, T] covering every frame "
            f"({frames}), got boxes {tuple(boxes.shape)} and valid {tuple(valid.shape)}"
        )
    return (boxes[:, : gen.shape[1]], valid[:, : gen.shape[1]]), (
        boxes[:, : ref.shape[1]],
        valid[:, : ref.shape[1]],
    )


class RegionalSuite(nn.Module):
    """One ``MetricCollection`` per region, fed from one :meth:`update` per batch.

    Args:
        metrics: ``{paper key: constructor kwargs}`` (e.g. from a preset).
        regions: region names (``whole_body`` = full frame; others need keypoints or boxes in the batch).
        crop_size: ``"first_valid"`` (JWB-DH-V1: every crop resized to the video's first kept crop) or (h, w).
        min_region_frames: videos whose region has fewer kept frames are skipped for that region (counted in
            ``skipped``); metrics with larger minimums (MS needs 3 frames) skip shorter region videos.
        reference_cache: a :class:`~metrics.features.FeatureCache` shared by the Fréchet metrics of every
            region: reference features of batches that carry ``video_ids`` are encoded once and reused
            (keyed by backbone, preprocessing, region and id). Only for reference sets that do not change
            between evaluations under the same ids.
        sync_on_compute: passed to every metric; False makes :meth:`compute` local to this process (a
            per-video scratch suite under DDP, see :meth:`merge`).

    Skips are metric states: :meth:`skip_counts` gives the counts of every rank (a collective under DDP), so
    rank 0 logs global numbers. An exception in one metric's update (a ValueError for a video the metric
    rejects, but also e.g. a CUDA out-of-memory error) is caught, the videos it concerns are retried one by
    one, and what still fails is a counted skip: every rank reaches ``compute`` together and one failing
    metric never ends a run. :attr:`last_update` reports what the latest :meth:`update` kept and skipped.
    """

    def __init__(
        self,
        metrics: Mapping[str, Mapping[str, Any]],
        regions: Sequence[str] = ("whole_body", "face", "hand"),
        crop_size: str | tuple[int, int] = "first_valid",
        min_region_frames: int = 1,
        reference_cache: FeatureCache | None = None,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__()
        from torchmetrics import MetricCollection

        from metrics.regions import get_region_recipe

        if not regions:
            raise ValueError("`regions` must name at least one region")
        for region in regions:
            if region != "whole_body":
                get_region_recipe(region)  # raises ValueError for unknown regions
        if not metrics:
            raise ValueError("`metrics` must name at least one metric")
        self.regions = tuple(regions)
        self.metric_keys = tuple(metrics)
        self.crop_size = crop_size
        self.min_region_frames = min_region_frames
        self.collections = nn.ModuleDict(
            {
                region: MetricCollection(
                    {
                        key: build_metric(key, **{"sync_on_compute": sync_on_compute, **dict(kwargs)})
                        for key, kwargs in metrics.items()
                    },
                    compute_groups=False,
                )
                for region in self.regions
            }
        )
        if reference_cache is not None and not isinstance(reference_cache, FeatureCache):
            raise ValueError(
                f"`reference_cache` must be a metrics.features.FeatureCache or None, got "
                f"{type(reference_cache).__name__}"
            )
        self.reference_cache = reference_cache
        for collection in self.collections.values():
            for metric in collection.values():
                if hasattr(metric, "reference_cache"):
                    metric.reference_cache = reference_cache
        self.skip_counter = SkipCounts(
            [name for r in self.regions for name in (r, *(f"{r}/{k}" for k in self.metric_keys))],
            sync_on_compute=sync_on_compute,
        )
        self.last_update = UpdateReport()
        self._warned: set[str] = set()
        self._frozen_reference = False

    # --------------------------------------------------------------------------------------- update
    def update(self, batch: AvatarBatch) -> None:
        """Crop every region of every video and update all metrics.

        The batch is validated and quantised once (:func:`metrics.video.canonical_pair`); every metric then
        receives uint8 videos, whose checks are shape/dtype only (no value scan, no device sync).
        """
        gen, ref = canonical_pair(batch.generated, batch.reference)
        self.last_update = report = UpdateReport(notes=shape_notes(gen, ref))
        for note in report.notes:
            if note not in self._warned:
                self._warned.add(note)
                warnings.warn(f"RegionalSuite: {note}", stacklevel=2)
        fps = self._fps(batch, gen.shape[0])
        ids = None
        if batch.video_ids is not None:
            from metrics.features import check_video_ids

            ids = check_video_ids(batch.video_ids, gen.shape[0], "video_ids")
        uses_keypoints = any(r != "whole_body" and r not in (batch.boxes or {}) for r in self.regions)
        if uses_keypoints and (
            batch.keypoints_generated is not None or batch.keypoints_reference is not None
        ):
            # Before any metric is updated: a batch with inconsistent keypoints changes no state at all.
            keypoints_for(batch, "generated", gen.shape[1])
            keypoints_for(batch, "reference", ref.shape[1])
        for region in self.regions:
            if region == "whole_body":
                report.frames[region] = [(gen.shape[1], ref.shape[1])] * gen.shape[0]
                self._update_region(region, list(gen.unbind(0)), list(ref.unbind(0)), fps, (gen, ref), ids)
                continue
            pair = self._crop(region, batch, gen, ref)
            if pair is None:
                continue
            report.frames[region] = [(g.shape[0], r.shape[0]) for g, r in zip(*pair, strict=True)]
            self._update_region(region, *pair, fps, ids=ids)

    def _fps(self, batch: AvatarBatch, b: int) -> list[float | None]:
        if batch.fps is None:
            return [None] * b
        values = torch.as_tensor(batch.fps, dtype=torch.float64).flatten().tolist()
        if len(values) != b:
            raise ValueError(f"`fps` must hold one value per video ({b}), got {len(values)}")
        return values

    def _crop(self, region: str, batch: AvatarBatch, gen: Tensor, ref: Tensor) -> tuple[list, list] | None:
        from metrics.regions import boxes_from_keypoints, region_videos

        if batch.boxes is not None and region in batch.boxes:
            valid = (batch.valid or {}).get(region)
            if valid is None:
                valid = torch.ones(batch.boxes[region].shape[:2], dtype=torch.bool, device=gen.device)
            box_gen, box_ref = _shared_boxes(region, batch.boxes[region], valid, gen, ref)
        else:
            if batch.keypoints_generated is None and batch.keypoints_reference is None:
                if region not in self._warned:
                    warnings.warn(
                        f"RegionalSuite: region '{region}' needs keypoints or boxes; skipping it",
                        stacklevel=3,
                    )
                    self._warned.add(region)
                return None
            kp_gen = keypoints_for(batch, "generated", gen.shape[1])
            kp_ref = keypoints_for(batch, "reference", ref.shape[1])
            box_gen = boxes_from_keypoints(kp_gen, tuple(gen.shape[-2:]), region)
            box_ref = boxes_from_keypoints(kp_ref, tuple(ref.shape[-2:]), region)
        gen_videos = region_videos(gen[:, : box_gen[0].shape[1]], *box_gen, size=self.crop_size)
        ref_videos = region_videos(ref[:, : box_ref[0].shape[1]], *box_ref, size=self.crop_size)
        return gen_videos, ref_videos

    def _update_region(
        self,
        region: str,
        gen_videos: list,
        ref_videos: list,
        fps: list,
        whole_batch: tuple[Tensor, Tensor] | None = None,
        ids: list[str] | None = None,
    ) -> None:
        """Update the region's metrics, one call per group of videos of equal shapes (in batch order).

        Region videos of one batch usually share their shapes (always for ``whole_body``), so each metric
        sees them as one batch, as the metric would from a user: far fewer calls and larger kernels. When a
        metric rejects a group (a ValueError), the group is retried video by video, so only the videos it
        rejects (crops too small for RAFT, a bad fps, ...) are skipped and counted; nothing crashes the run.
        ``whole_batch`` is the ``[B, ...]`` pair the lists were unbound from (used as is when every video
        forms one group).
        """
        collection = self.collections[region]
        groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
        for i, (g, r) in enumerate(zip(gen_videos, ref_videos, strict=True)):
            if min(g.shape[0], r.shape[0]) < self.min_region_frames or g.shape[0] == 0 or r.shape[0] == 0:
                self.skip_counter.update(region)
                self.last_update.skips.append((region, f"{min(g.shape[0], r.shape[0])} frame(s) kept"))
                continue
            groups.setdefault((tuple(g.shape), tuple(r.shape)), []).append(i)
        for members in groups.values():
            if len(members) == len(gen_videos) and isinstance(whole_batch, tuple):
                g, r = whole_batch  # the batch itself: no re-stacking copy
            else:
                g = torch.stack([gen_videos[i] for i in members])
                r = torch.stack([ref_videos[i] for i in members])
            rates = [fps[i] for i in members]
            names = None if ids is None else [f"{region}/{ids[i]}" for i in members]
            for key, metric in collection.items(keep_base=True, copy_state=False):
                if g.shape[1] < getattr(metric, "min_frames", 1):
                    self._skip(region, key, f"{g.shape[1]} frame(s)", len(members))
                    continue
                try:
                    self._update_metric(key, metric, g, r, rates, names)
                except Exception:
                    # A rejection can depend on one video's content (a bad fps, a crop too small for RAFT)
                    # and an error may be transient (out of memory for the whole group): retry video by
                    # video so that only the offending ones are skipped and counted. Any exception is
                    # caught: under DDP a rank that raised would leave the others waiting in compute.
                    for j in range(len(members)):
                        one = None if names is None else names[j : j + 1]
                        try:
                            self._update_metric(
                                key, metric, g[j : j + 1], r[j : j + 1], rates[j : j + 1], one
                            )
                        except Exception as err:
                            why = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
                            self._skip(region, key, why)

    def _update_metric(
        self, key: str, metric: Metric, g: Tensor, r: Tensor, rates: list, names: list[str] | None = None
    ) -> None:
        if key in PAIRED and self._frozen_reference and getattr(metric, "mode", None) == "pooled":
            metric.update(g, real=False)  # reference side already known (see freeze_reference)
        elif key in PAIRED and names is not None and getattr(metric, "reference_cache", None) is not None:
            metric.update(g, r, reference_ids=names)
        elif key in PAIRED:
            metric.update(g, r)
        elif key == "DD" and rates[0] is not None:
            metric.update(g, fps=rates)
        else:
            metric.update(g)

    def _skip(self, region: str, key: str, why: str, count: int = 1) -> None:
        name = f"{region}/{key}"
        self.skip_counter.update(name, count)
        self.last_update.skips.append((name, why))
        if name not in self._warned:
            self._warned.add(name)
            warnings.warn(
                f"RegionalSuite: {key} skipped a {region} video ({why}); counted in skip_counts()",
                stacklevel=4,
            )

    # ---------------------------------------------------------------------------------------- skips
    @property
    def skipped(self) -> dict[str, int]:
        """This process's region skips ``{region: videos}`` (videos without enough kept frames)."""
        counts = self.skip_counter.local_counts()
        return {region: counts[region] for region in self.regions}

    @property
    def skipped_metric(self) -> dict[str, int]:
        """This process's metric skips ``{"region/KEY": videos}`` (nonzero entries only)."""
        counts = self.skip_counter.local_counts()
        return {name: n for name, n in counts.items() if "/" in name and n}

    def skip_counts(self) -> dict[str, int]:
        """Global skip counts of every rank (a collective under DDP: call it on all ranks).

        Keys: ``region`` (videos whose region had too few kept frames), ``region/KEY`` (videos a metric
        skipped or failed on) and ``region/KEY/state`` for the metrics' own nonzero counters (``num_skipped``:
        FID/E-FID pairs with a one-frame side, ``num_nonfinite``/``num_nan``: scores left out of the mean).
        """
        counts = self.skip_counter.counts_dict()
        for region, collection in self.collections.items():
            for key, metric in collection.items(keep_base=True, copy_state=False):
                names = [n for n in COUNTER_STATES if n in metric._defaults]
                if not names:
                    continue
                with metric.sync_context(should_sync=metric.sync_on_compute, should_unsync=True):
                    values = torch.stack([getattr(metric, n).to(torch.int64) for n in names]).tolist()
                counts.update({f"{region}/{key}/{n}": v for n, v in zip(names, values, strict=True) if v})
        return counts

    # -------------------------------------------------------------------------------------- compute
    def compute(self, pooled: bool = True) -> dict[str, dict[str, float]]:
        """``{region: {paper key: value}}`` on every rank (a collective under DDP: call it on all ranks).

        ``pooled=False`` leaves out the set-level (pooled) Fréchet metrics: a per-video row has no value
        for them.
        """
        out: dict[str, dict[str, float]] = {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*saw no video.*")
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            for region in self.regions:
                values = {}
                for key, metric in self.collections[region].items(keep_base=True, copy_state=False):
                    if pooled or not is_pooled(metric):
                        values[key] = float(metric.compute())
                out[region] = values
        return out

    def summaries(self, level: float = 0.95) -> dict[str, dict[str, MeanSummary]]:
        """Mean, standard error and ``level`` interval of every mean-over-videos metric (not pooled ones).

        A collective under DDP like :meth:`compute`. Example: ``suite.summaries()["face"]["SSIM"].sem``.
        """
        out: dict[str, dict[str, MeanSummary]] = {}
        for region in self.regions:
            for key, metric in self.collections[region].items(keep_base=True, copy_state=False):
                summary = getattr(metric, "summary", None)
                value = summary(level) if callable(summary) else None
                if value is not None:
                    out.setdefault(region, {})[key] = value
        return out

    def merge(self, other: RegionalSuite) -> None:
        """Add ``other``'s metric states and skip counts to this suite's (same metrics and regions).

        ``jwbdh-eval`` scores each video pair in a scratch suite (its per-video row), then merges it here;
        every state is sum-reduced, so the merged totals equal those of one suite that saw every pair.
        """
        if other.regions != self.regions or other.metric_keys != self.metric_keys:
            raise ValueError(
                f"`other` must have the same regions and metrics, got {other.regions}/{other.metric_keys} "
                f"for {self.regions}/{self.metric_keys}"
            )
        for region in self.regions:
            mine = self.collections[region]
            for key, metric in other.collections[region].items(keep_base=True, copy_state=False):
                mine[key].merge_state(metric)
        self.skip_counter.merge_state(other.skip_counter)

    def scalar_states(self) -> dict[str, dict[str, float | int]]:
        """``{"region/KEY": {state: value}}`` of every non-pooled metric plus ``{"skips": {name: n}}``.

        Small enough for one JSON line per video; :meth:`merge_scalar_states` adds them back (resume).
        Pooled metrics keep feature matrices and are left out (check :meth:`has_pooled`).
        """
        out: dict[str, dict[str, float | int]] = {}
        for region, collection in self.collections.items():
            for key, metric in collection.items(keep_base=True, copy_state=False):
                if is_pooled(metric):
                    continue
                names = list(metric._defaults)
                values = [getattr(metric, n) for n in names]
                if any(not isinstance(v, Tensor) or v.numel() != 1 for v in values):
                    raise ValueError(f"{region}/{key} has non-scalar states; it cannot be written per video")
                host = torch.stack([v.detach().to(torch.float64).reshape(()) for v in values]).tolist()
                out[f"{region}/{key}"] = {
                    n: (int(h) if not v.is_floating_point() else h)
                    for n, v, h in zip(names, values, host, strict=True)
                }
        out["skips"] = {n: c for n, c in self.skip_counter.local_counts().items() if c}
        return out

    def merge_scalar_states(self, states: Mapping[str, Mapping[str, float | int]]) -> None:
        """Add states written by :meth:`scalar_states` (e.g. rows of an interrupted run) to this suite."""
        for name, values in states.items():
            if name == "skips":
                for skip, count in values.items():
                    self.skip_counter.update(skip, int(count))
                continue
            region, _, key = name.partition("/")
            if region not in self.collections or key not in self.collections[region]:
                raise ValueError(
                    f"state {name!r} names no metric of this suite ({self.regions} x {self.metric_keys})"
                )
            metric = self.collections[region][key]
            incoming = {}
            for n, default in metric._defaults.items():
                if n not in values:
                    raise ValueError(f"state {name!r} lacks {n!r}; was it written by another preset?")
                current = getattr(metric, n)
                incoming[n] = torch.tensor(values[n], dtype=default.dtype, device=current.device)
            metric.merge_state(incoming)

    def has_pooled(self) -> list[str]:
        """``region/KEY`` of the pooled (set-level) metrics, which have no per-video value."""
        return [f"{region}/{key}" for region, key, _ in self._pooled()]

    def reset(self) -> None:
        """Reset every metric (reference statistics kept where a metric was built to keep them)."""
        for collection in self.collections.values():
            collection.reset()
        self.skip_counter.reset()
        self.last_update = UpdateReport()

    def required_weights(self) -> list[str]:
        """Checkpoint specs (registry names or paths) of every backbone the suite's metrics will load.

        For a check before any work (:func:`~metrics.backbones.weights.check_weights`): a missing file then
        fails at setup with all missing files named, not at the first update after an epoch of training.
        """
        from metrics.backbones.cache import BackboneRef

        specs: dict[str, None] = {}
        for collection in self.collections.values():
            for metric in collection.values():
                for value in vars(metric).values():
                    refs = value if isinstance(value, list | tuple) else (value,)
                    for ref in refs:
                        if isinstance(ref, BackboneRef) and ref.weights is not None:
                            specs[os.fspath(ref.weights)] = None
        return list(specs)

    @property
    def is_calibrated(self) -> bool:
        """False if any metric runs a randomly initialised backbone (smoke preset)."""
        return all(getattr(m, "is_calibrated", True) for c in self.collections.values() for m in c.values())

    def _pooled(self) -> list[tuple[str, str, Metric]]:
        return [
            (region, key, metric)
            for region, collection in self.collections.items()
            for key, metric in collection.items(keep_base=True, copy_state=False)
            if is_pooled(metric)
        ]

    def freeze_reference(self) -> bool:
        """Keep the pooled metrics' reference statistics and stop feeding reference videos to them.

        For a validation set that is the same every epoch, the ground-truth side of pooled FID/FVD is then
        computed once. A collective under DDP (the statistics are synced): call it on every rank. Returns
        True if any metric was frozen.
        """
        for _, _, metric in self._pooled():
            metric.freeze_reference()  # synced reference moments -> frozen copy; reference states emptied
            metric.reset()
        self._frozen_reference = bool(self._pooled())
        return self._frozen_reference

    def set_reference_statistics(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Restore statistics from :meth:`reference_statistics` (e.g. a resumed callback) and freeze them."""
        for region, key, metric in self._pooled():
            if region in stats and key in stats[region]:
                s, ss, n = stats[region][key]
                metric.set_reference_statistics(s, ss, int(n))
                self._frozen_reference = True

    def reference_statistics(self) -> dict[str, dict[str, Any]]:
        """Frozen pooled Fréchet reference sums ``{region: {key: (sum, outer_sum, count)}}`` (CPU tensors)."""
        out: dict[str, dict[str, Any]] = {}
        for region, key, metric in self._pooled():
            stats = metric.reference_statistics()
            if stats is not None:
                out.setdefault(region, {})[key] = stats
        return out

    @property
    def reference_frozen(self) -> bool:
        """True once :meth:`freeze_reference` (or :meth:`set_reference_statistics`) froze a pooled metric's
        reference side: reference videos are then no longer fed to those metrics."""
        return self._frozen_reference

    def save_reference_statistics(self, directory: str | os.PathLike, fingerprint: str | None = None) -> None:
        """Save every pooled Fréchet metric's reference side to ``directory/{region}_{key}.pt``."""
        os.makedirs(directory, exist_ok=True)
        for region, collection in self.collections.items():
            for name, metric in collection.items(keep_base=True, copy_state=False):
                if getattr(metric, "mode", None) == "pooled":
                    metric.save_reference_statistics(
                        os.path.join(directory, f"{region}_{name}.pt"), fingerprint
                    )

    def load_reference_statistics(self, directory: str | os.PathLike, fingerprint: str | None = None) -> int:
        """Load files written by :meth:`save_reference_statistics`; returns how many were loaded."""
        loaded = 0
        for region, collection in self.collections.items():
            for name, metric in collection.items(keep_base=True, copy_state=False):
                path = os.path.join(directory, f"{region}_{name}.pt")
                if getattr(metric, "mode", None) == "pooled" and os.path.exists(path):
                    metric.load_reference_statistics(path, expected_fingerprint=fingerprint)
                    loaded += 1
        return loaded
