r"""Streaming Fréchet metrics: :class:`FrechetDistance`, :class:`FID`, :class:`EdgeFID`, :class:`FVD`.

Two ways of turning features into a number, chosen by ``mode``:

* ``"per_video"`` (JWB-DH-V1): every ``update(generated, reference)`` computes one exact Fréchet distance
  per video pair from that pair's frames (``functional.frechet.per_video_frechet_distance``) and adds it to
  a float64 sum and an int64 count; ``compute()`` returns the mean over videos, like the benchmark's
  ``all_models_summary.csv``.
* ``"pooled"`` (standard FID/FVD): features of all samples go into float64 ``Σx``, ``Σxxᵀ`` and an int64
  count per side; ``compute()`` fits one Gaussian per side and uses the eigh/Cholesky sandwich.

Every state is a fixed-size tensor reduced with ``"sum"``, so DDP ranks with different numbers of updates
sync without deadlock and memory does not grow with the number of videos. Backbones are shared through
the process-wide cache and are never part of ``state_dict``.

Degenerate inputs give defined results. Per video, :class:`FID` / :class:`EdgeFID` (unbiased covariance)
skip a pair whose generated or reference video has one frame and count it in the ``num_skipped`` state, as
the script gives such a video no score (``np.cov`` of one sample is NaN); :class:`FVD` under ``jwbdh-v1``
keeps the script's single-clip covariances (``-2e-6 * d`` trace term, see
``functional.frechet.script_fvd_distance``); :class:`FrechetDistance` gives a one-sample side zero
covariance. Pooled statistics with fewer than two samples per side, or a metric that saw no data, return
NaN with a warning naming the reason; fewer samples than feature dimensions warn that the estimate is biased.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from metrics._validate import check_bool, check_choice, check_instance, check_int, check_positive_int
from metrics.aggregation import MeanSummary, mean_summary
from metrics.backbones.cache import BackboneRef
from metrics.features import FeatureCache, cached_features
from metrics.functional.frechet import (
    frechet_distance,
    gaussian_moments,
    per_video_frechet_distance,
    script_fvd_distance,
    sqrt_factor,
)
from metrics.video import check_pair, check_video, first_frames, to_uint8

__all__ = ["FID", "FVD", "EdgeFID", "FrechetDistance"]

_STATS_FORMAT = "jwbdh-frechet-statistics/1"
_MODES = ("per_video", "pooled")
_MAX_FEATURE = 1e150  # x * x stays finite in float64 up to ~1.3e154


class _FrechetStatistics(Metric):
    """Shared state handling of the Fréchet metrics (not public: use the subclasses)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0

    def __init__(
        self,
        num_features: int,
        mode: str = "per_video",
        covariance: str = "unbiased",
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive_int("num_features", num_features)
        check_choice("mode", mode, _MODES)
        check_choice("covariance", covariance, ("unbiased", "biased"))
        check_bool("reset_real_features", reset_real_features)
        self.num_features = num_features
        self.mode = mode
        self.covariance = covariance
        self.reset_real_features = reset_real_features
        d = num_features
        if mode == "per_video":
            self.add_state("distance_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            # sum of squares: the standard error of the per-video mean (summary()) from fixed-size states
            self.add_state("distance_sq_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("num_pairs", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
            # pairs left out because a side had too few samples for its covariance (no score, as the script)
            self.add_state("num_skipped", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
            # pairs whose distance was not finite (backbone overflow): left out and reported by compute()
            self.add_state("num_nonfinite", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        else:
            for side in ("real", "fake"):
                self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
                self.add_state(
                    f"{side}_outer_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum"
                )
                self.add_state(f"{side}_count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        # Reference statistics loaded from disk: added after the DDP sync, so they are not multiplied by the
        # world size. Not states, hence untouched by reset().
        self._loaded_real: tuple[Tensor, Tensor, int] | None = None
        self._factor_cache: tuple[int, Tensor, Tensor] | None = None

    # ------------------------------------------------------------------------------------- accumulation
    def _add_pooled(self, features: Tensor, real: bool) -> None:
        feats = features.to(torch.float64)
        side = "real" if real else "fake"
        getattr(self, f"{side}_sum").add_(feats.sum(dim=0))
        getattr(self, f"{side}_outer_sum").addmm_(feats.T, feats)
        getattr(self, f"{side}_count").add_(feats.shape[0])

    def _add_per_video(self, generated: Tensor, reference: Tensor) -> None:
        self._accumulate_per_video(per_video_frechet_distance(generated, reference, self.covariance))

    def _accumulate_per_video(self, values: Tensor) -> None:
        """Add per-pair values without a host sync: non-finite ones are counted in ``num_nonfinite``."""
        finite = torch.isfinite(values)
        kept = torch.where(finite, values.to(torch.float64), torch.zeros((), dtype=torch.float64))
        self.distance_sum.add_(kept.sum())
        self.distance_sq_sum.add_((kept * kept).sum())
        self.num_pairs.add_(finite.sum())
        self.num_nonfinite.add_(finite.numel() - finite.sum())

    #: fewest samples (frames) per side of a per-video pair; pairs with fewer are skipped and counted
    _min_samples_per_video = 1
    _warned_skip = False

    def _skip_pairs(self, count: int, n_generated: int, n_reference: int) -> None:
        """Count ``count`` pairs that get no per-video value (warn once per metric)."""
        self.num_skipped.add_(count)
        if not self._warned_skip:
            self._warned_skip = True
            warnings.warn(
                f"{type(self).__name__}: skipped {count} video pair(s) with {n_generated} generated and "
                f"{n_reference} reference sample(s); a per-video covariance needs at least "
                f"{self._min_samples_per_video} per side (the JWB-DH-V1 script gives such videos no score). "
                "They are counted in `num_skipped`, not averaged in.",
                stacklevel=4,
            )

    def _check_features(self, features: Tensor, name: str, ndim: int) -> Tensor:
        if (
            not isinstance(features, Tensor)
            or features.ndim != ndim
            or features.shape[-1] != self.num_features
        ):
            got = (
                f"shape {tuple(features.shape)}" if isinstance(features, Tensor) else type(features).__name__
            )
            shape = "[N, d]" if ndim == 2 else "[B, n, d]"
            raise ValueError(f"`{name}` must be {shape} features with d={self.num_features}, got {got}")
        # One reduction (one device sync) answers both checks: NaN/Inf propagate into the maximum.
        peak = (
            float(features.detach().abs().max()) if features.numel() and features.is_floating_point() else 0.0
        )
        if not features.is_floating_point() or not math.isfinite(peak):
            raise ValueError(f"`{name}` must be finite floating-point features (dtype {features.dtype})")
        if peak > _MAX_FEATURE:
            raise ValueError(
                f"`{name}` has features above {_MAX_FEATURE:g} in magnitude; their float64 second moments "
                "would overflow. Rescale the features."
            )
        return features

    # ------------------------------------------------------------------------------------------ compute
    def _real_moments(self) -> tuple[Tensor, Tensor, int]:
        s, ss, n = self.real_sum, self.real_outer_sum, int(self.real_count)
        if self._loaded_real is not None:
            ls, lss, ln = self._loaded_real
            s, ss, n = s + ls.to(s.device), ss + lss.to(ss.device), n + ln
        return s, ss, n

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot one value or a sequence of values (needs matplotlib); returns ``(figure, axes)``."""
        return self._plot(val, ax)

    def summary(self, level: float = 0.95) -> MeanSummary | None:
        """Per-video mode: mean, standard error and ``level`` interval over video pairs (synced like
        compute). Pooled mode has one set-level distance and no per-video spread: None."""
        if self.mode != "per_video":
            return None
        with self.sync_context(should_sync=self.sync_on_compute, should_unsync=True):
            values = torch.stack([self.distance_sum, self.distance_sq_sum, self.num_pairs.to(torch.float64)])
            total, total_sq, count = values.tolist()
        return mean_summary(total, total_sq, int(count), level)

    def compute(self) -> Tensor:
        """Mean per-video distance, or the pooled distance; NaN (with a warning) when there is no data."""
        if self.mode == "per_video":
            nonfinite = int(self.num_nonfinite)
            if nonfinite:
                warnings.warn(
                    f"{type(self).__name__}: {nonfinite} video pair(s) gave a non-finite distance "
                    "(non-finite backbone features, e.g. an overflow at reduced precision); they are left "
                    "out of the mean and counted in `num_nonfinite`",
                    stacklevel=2,
                )
            if int(self.num_pairs) == 0:
                skipped = int(self.num_skipped)
                why = f" ({skipped} skipped for too few frames)" if skipped else ""
                warnings.warn(
                    f"{type(self).__name__}.compute() saw no video pairs to score{why}; returning NaN",
                    stacklevel=2,
                )
                return torch.tensor(float("nan"), dtype=torch.float64, device=self.distance_sum.device)
            return self.distance_sum / self.num_pairs
        real_sum, real_outer, n_real = self._real_moments()
        n_fake = int(self.fake_count)
        minimum = 2 if self.covariance == "unbiased" else 1
        if min(n_real, n_fake) < minimum:
            warnings.warn(
                f"{type(self).__name__}.compute() needs at least {minimum} samples per side for a "
                f"{self.covariance} covariance, got {n_real} reference and {n_fake} generated; returning NaN",
                stacklevel=2,
            )
            return torch.tensor(float("nan"), dtype=torch.float64, device=real_sum.device)
        if min(n_real, n_fake) < self.num_features:
            warnings.warn(
                f"{type(self).__name__}: {min(n_real, n_fake)} samples for {self.num_features}-d features; "
                "the covariance is rank-deficient and the distance is biased upward. Compare only at equal "
                "sample counts.",
                stacklevel=2,
            )
        mu_r, sigma_r = gaussian_moments(real_sum, real_outer, n_real, self.covariance)
        mu_f, sigma_f = gaussian_moments(self.fake_sum, self.fake_outer_sum, n_fake, self.covariance)
        return frechet_distance(
            mu_r, sigma_r, mu_f, sigma_f, factor1=self._cached_factor(real_sum, n_real, sigma_r)
        )

    def _cached_factor(self, real_sum: Tensor, n_real: int, sigma_real: Tensor) -> Tensor:
        cache = self._factor_cache
        if cache is not None and cache[0] == n_real and cache[1].device == real_sum.device:
            if torch.equal(cache[1], real_sum):
                return cache[2]
        factor = sqrt_factor(sigma_real)
        self._factor_cache = (n_real, real_sum.clone(), factor)
        return factor

    def reset(self) -> None:
        """Reset the accumulated statistics; keep the reference side if ``reset_real_features=False``."""
        if self.mode == "pooled" and not self.reset_real_features:
            kept = {k: getattr(self, k).clone() for k in ("real_sum", "real_outer_sum", "real_count")}
            super().reset()
            for k, v in kept.items():
                setattr(self, k, v)
        else:
            super().reset()

    # ------------------------------------------------------------------------------ reference statistics
    def statistics_key(self) -> dict[str, Any]:
        """What the reference statistics depend on (backbone, preprocessing, feature size)."""
        return {"metric": type(self).__name__, "num_features": self.num_features}

    def save_reference_statistics(self, path: str | os.PathLike, fingerprint: str | None = None) -> None:
        """Write the (DDP-synced) reference-side statistics to ``path`` (pooled mode).

        Call it on every rank (the sync is a collective); only rank 0 writes. ``fingerprint`` identifies the
        reference data (e.g. a dataset name and hash) and is checked by :meth:`load_reference_statistics`.
        """
        self._require_pooled("save_reference_statistics")
        with self.sync_context(should_sync=self.dist_sync_on_step or self._to_sync, should_unsync=True):
            real_sum, real_outer, n_real = self._real_moments()
            payload = {
                "format": _STATS_FORMAT,
                "key": self.statistics_key(),
                "fingerprint": fingerprint,
                "sum": real_sum.detach().cpu(),
                "outer_sum": real_outer.detach().cpu(),
                "count": n_real,
            }
        if (
            not torch.distributed.is_available()
            or not torch.distributed.is_initialized()
            or (torch.distributed.get_rank() == 0)
        ):
            tmp = f"{os.fspath(path)}.tmp"
            torch.save(payload, tmp)
            os.replace(tmp, path)

    def load_reference_statistics(
        self, path: str | os.PathLike, expected_fingerprint: str | None = None
    ) -> None:
        """Use reference statistics saved by :meth:`save_reference_statistics` (replaces earlier loaded ones).

        Raises:
            ValueError: the file was made with another backbone/preprocessing/feature size, or its
                fingerprint differs from ``expected_fingerprint``.
        """
        self._require_pooled("load_reference_statistics")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _STATS_FORMAT:
            raise ValueError(f"{path} is not a reference-statistics file ({_STATS_FORMAT})")
        if payload["key"] != self.statistics_key():
            raise ValueError(
                f"reference statistics in {path} were computed with {payload['key']}, but this metric uses "
                f"{self.statistics_key()}; recompute them"
            )
        if expected_fingerprint is not None and payload["fingerprint"] != expected_fingerprint:
            raise ValueError(
                f"reference statistics in {path} have fingerprint {payload['fingerprint']!r}, "
                f"expected {expected_fingerprint!r}"
            )
        self.set_reference_statistics(payload["sum"], payload["outer_sum"], int(payload["count"]))

    @property
    def reference_frozen(self) -> bool:
        """True when reference statistics are held outside the states (frozen, set or loaded from disk).

        They are then added to the reference states after every DDP sync and survive :meth:`reset`.
        """
        return self._loaded_real is not None

    def reference_statistics(self) -> tuple[Tensor, Tensor, int] | None:
        """The frozen/loaded reference statistics ``(sum, outer_sum, count)`` as CPU copies, or None.

        Feed them to :meth:`set_reference_statistics` of a metric with the same :meth:`statistics_key`
        (e.g. a resumed run). Only statistics held outside the states are returned: call
        :meth:`freeze_reference` first to move the accumulated reference side there.

        Example:
            >>> import torch
            >>> m = FrechetDistance(num_features=2, mode="pooled")
            >>> m.update(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), real=True)
            >>> m.reference_statistics() is None
            True
            >>> m.freeze_reference()
            >>> s, ss, n = m.reference_statistics()
            >>> s.tolist(), n
            ([2.0, 4.0], 2)
        """
        if self._loaded_real is None:
            return None
        s, ss, n = self._loaded_real
        return s.detach().cpu().clone(), ss.detach().cpu().clone(), int(n)

    def set_reference_statistics(self, feature_sum: Tensor, outer_sum: Tensor, count: int) -> None:
        """Hold ``(feature_sum, outer_sum, count)`` (from :meth:`reference_statistics`) as the frozen side.

        They replace earlier frozen or loaded statistics and are added to whatever the reference states
        accumulate afterwards (pooled mode). Set the same values on every rank: they are added after the
        DDP sync, so they are counted once, not once per rank.

        Raises:
            ValueError: shapes other than ``[d]`` / ``[d, d]`` for this metric's ``d``, a negative count, or
                non-finite values.
        """
        self._require_pooled("set_reference_statistics")
        d = self.num_features
        if not isinstance(feature_sum, Tensor) or tuple(feature_sum.shape) != (d,):
            got = tuple(feature_sum.shape) if isinstance(feature_sum, Tensor) else type(feature_sum).__name__
            raise ValueError(f"`feature_sum` must be a tensor of shape ({d},), got {got}")
        if not isinstance(outer_sum, Tensor) or tuple(outer_sum.shape) != (d, d):
            got = tuple(outer_sum.shape) if isinstance(outer_sum, Tensor) else type(outer_sum).__name__
            raise ValueError(f"`outer_sum` must be a tensor of shape ({d}, {d}), got {got}")
        count = check_int("count", int(count) if isinstance(count, Tensor) else count, minimum=0)
        if not (torch.isfinite(feature_sum).all() and torch.isfinite(outer_sum).all()):
            raise ValueError("`feature_sum` and `outer_sum` must be finite")
        self._loaded_real = (
            feature_sum.detach().to("cpu", torch.float64).clone(),
            outer_sum.detach().to("cpu", torch.float64).clone(),
            int(count),
        )
        self._factor_cache = None

    def freeze_reference(self) -> None:
        """Move the accumulated reference side into frozen statistics and stop accumulating it per epoch.

        The DDP-synced reference moments (plus any statistics loaded before) become the frozen copy that
        :meth:`reference_statistics` returns; the reference states are emptied and, from now on, cleared by
        every :meth:`reset` (``reset_real_features`` becomes True), while the frozen copy stays. For a
        reference set that is the same every epoch, update with ``real=False`` only afterwards. A collective
        under DDP: call it on every rank. The generated side is left as it is (pooled mode).

        Example:
            >>> import torch
            >>> m = FrechetDistance(num_features=2, mode="pooled")
            >>> m.update(torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 0.0]]), real=True)
            >>> m.freeze_reference()
            >>> m.reset()
            >>> m.update(torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 0.0]]), real=False)
            >>> round(float(m.compute()), 6)
            0.0
        """
        self._require_pooled("freeze_reference")
        with self.sync_context(should_sync=self._to_sync, should_unsync=True):
            s, ss, n = self._real_moments()
            frozen = (s.detach().to("cpu").clone(), ss.detach().to("cpu").clone(), int(n))
        self._loaded_real = frozen
        self._factor_cache = None
        self.reset_real_features = True
        for name in ("real_sum", "real_outer_sum", "real_count"):
            getattr(self, name).zero_()

    def _require_pooled(self, what: str) -> None:
        if self.mode != "pooled":
            raise RuntimeError(
                f"{what}() needs mode='pooled'; per-video distances have no reference statistics"
            )

    def _route(
        self,
        generated: Tensor,
        reference: Tensor | None,
        real: bool | None,
        features_of: Callable[[Tensor, bool], Tensor],
        pair_check: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
        single_check: Callable[[Tensor, str], Tensor],
    ) -> None:
        """Dispatch ``update(generated, reference=None, *, real=None)`` for both modes.

        ``features_of(x, is_reference)`` turns one side's input into ``[B, n, d]`` features.
        """
        check_bool("real", real, allow_none=True)
        if self.mode == "per_video":
            if reference is None or real is not None:
                raise ValueError(
                    "mode='per_video' needs pairs: call update(generated, reference) (the `real` flag is for "
                    "mode='pooled')"
                )
            gen, ref = pair_check(generated, reference)
            if gen.shape[0] and min(gen.shape[1], ref.shape[1]) < self._min_samples_per_video:
                # dim 1 is frames (videos) or samples (features); the lengths may differ between the sides
                self._skip_pairs(gen.shape[0], gen.shape[1], ref.shape[1])
            elif gen.shape[0]:
                self._add_per_video(features_of(gen, False), features_of(ref, True))
            return
        if reference is not None and real is not None:
            raise ValueError("pass either update(generated, reference) or update(x, real=...), not both")
        if reference is None and real is None:
            raise ValueError("mode='pooled' needs update(generated, reference) or update(x, real=True/False)")
        if reference is not None:
            gen, ref = pair_check(generated, reference)
            sides = [(gen, False), (ref, True)]
        else:
            sides = [(single_check(generated, "reference" if real else "generated"), real)]
        # Features of both sides first, then the states: a side that raises leaves the states untouched
        # (the regional suite retries a rejected batch video by video).
        computed = [(features_of(x, is_real), is_real) for x, is_real in sides if x.shape[0]]
        for feats, is_real in computed:
            self._add_pooled(feats.reshape(-1, feats.shape[-1]), is_real)


class FrechetDistance(_FrechetStatistics):
    r"""Fréchet distance of features you compute yourself (any backbone), per video pair or pooled.

    As input to ``update``:

    * ``mode="pooled"``: ``update(features, real=True|False)`` with ``[N, d]`` features, or
      ``update(generated_features, reference_features)`` adding both sides.
    * ``mode="per_video"``: ``update(generated_features, reference_features)`` with ``[B, n, d]`` features,
      one set of ``n`` samples (frames) per video.

    As output of ``compute``: a float64 scalar; lower is better, 0 for identical statistics.

    Args:
        num_features: feature dimension ``d``.
        mode: ``"per_video"`` (JWB-DH-V1, default) or ``"pooled"``.
        covariance: ``"unbiased"`` (n-1, default) or ``"biased"`` (n, StyleGAN-V FVD).
        reset_real_features: pooled only; False keeps the reference side across ``reset()``.
        kwargs: torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> metric = FrechetDistance(num_features=8, mode="pooled")
        >>> metric.update(torch.randn(100, 8), real=True)
        >>> metric.update(torch.randn(100, 8) + 2, real=False)
        >>> float(metric.compute()) > 20
        True
    """

    def update(self, generated: Tensor, reference: Tensor | None = None, *, real: bool | None = None) -> None:
        """Add features (see the class docstring for the accepted forms)."""
        ndim = 3 if self.mode == "per_video" else 2

        def pair(g: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
            g = self._check_features(g, "generated", ndim)
            r = self._check_features(r, "reference", ndim)
            if self.mode == "per_video" and g.shape[0] != r.shape[0]:
                raise ValueError(
                    f"`generated` and `reference` must hold the same number of videos, got "
                    f"{g.shape[0]} and {r.shape[0]}"
                )
            return g, r

        self._route(
            generated, reference, real, lambda f, _: f, pair, lambda f, n: self._check_features(f, n, ndim)
        )


class _VideoFrechet(_FrechetStatistics):
    """Fréchet metrics on videos through a shared backbone."""

    _PROTOCOLS: tuple[str, ...] = ("jwbdh-v1", "standard")

    def __init__(
        self,
        backbone: BackboneRef,
        num_features: int,
        protocol: str,
        mode: str | None,
        covariance: str,
        num_frames: int | None,
        batch_size: int,
        precision: str | None = None,
        channels_last: bool | None = None,
        reference_cache: FeatureCache | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if reference_cache is not None:
            check_instance(
                "reference_cache", reference_cache, FeatureCache, "a metrics.features.FeatureCache or None"
            )
        if isinstance(backbone, BackboneRef):
            backbone = backbone.with_inference(precision, channels_last)
        mode = mode if mode is not None else ("per_video" if protocol == "jwbdh-v1" else "pooled")
        super().__init__(num_features, mode=mode, covariance=covariance, **kwargs)
        check_positive_int("num_frames", num_frames, allow_none=True, none_means="all frames")
        check_positive_int("batch_size", batch_size)
        check_instance("feature_extractor", backbone, BackboneRef)
        self.protocol = protocol
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.backbone = backbone
        #: :class:`~metrics.features.FeatureCache` serving reference features by id (see :meth:`update`).
        self.reference_cache = reference_cache

    @property
    def is_calibrated(self) -> bool:
        """False when the backbone is randomly initialised (smoke runs): numbers are not comparable."""
        return not self.backbone.is_random_init

    def update(
        self,
        generated: Tensor,
        reference: Tensor | None = None,
        *,
        real: bool | None = None,
        reference_ids: Sequence[str] | None = None,
    ) -> None:
        """Add videos ``[B, T, 3, H, W]`` (uint8 or float in [0, 1]).

        ``update(generated, reference)`` adds pairs (both modes); ``update(videos, real=...)`` adds one side
        (pooled mode only). Paired videos may differ in length and size.

        ``reference_ids`` (one str per reference video, with ``reference_cache`` set): reference features are
        taken from the cache where present and stored there otherwise, so a reference set evaluated again
        (every validation epoch, a rerun) is encoded once. The caller guarantees that an id always names the
        same reference content; generated videos are never cached.
        """
        if reference_ids is not None and (reference is None and not real):
            raise ValueError("`reference_ids` name reference videos: pass them with a reference side")

        def features_of(videos: Tensor, is_reference: bool) -> Tensor:
            if not is_reference:
                return self.video_features(videos)
            return cached_features(
                self.reference_cache, self.feature_namespace, reference_ids, videos, self.video_features
            )

        self._route(
            generated,
            reference,
            real,
            features_of,
            lambda g, r: check_pair(g, r, min_frames=self._min_frames),
            lambda v, n: check_video(v, n, min_frames=self._min_frames),
        )

    _min_frames = 1

    @property
    def min_frames(self) -> int:
        """Fewest frames per video for a value: 16 for the standard FVD protocol, 2 for per-video FID / E-FID.

        ``update`` rejects videos below ``_min_frames`` (ValueError) and skips, counting in ``num_skipped``,
        pairs with a side below ``_min_samples_per_video`` (FID / E-FID: a one-frame video has no per-video
        covariance); the regional suite skips region videos shorter than this before calling ``update``.
        """
        return max(self._min_frames, self._min_samples_per_video)

    def video_features(self, videos: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` videos -> ``[B, n, d]`` float features (n frames or clips per video)."""
        raise NotImplementedError

    def _add_per_video(self, generated: Tensor, reference: Tensor) -> None:
        # Features come from our own backbone on validated videos: no per-update NaN scan (a device sync);
        # a non-finite value is counted on the device and reported by compute().
        values = per_video_frechet_distance(generated, reference, self.covariance, check_finite=False)
        self._accumulate_per_video(values)

    @property
    def feature_namespace(self) -> str:
        """What this metric's features depend on besides the video (the reference cache's namespace).

        The statistics key plus the weights' identity: a registry name (checksummed by the registry), or a
        checkpoint path with its size and modification time.
        """
        weights = self.backbone.weights
        if weights is not None and os.path.isfile(os.fspath(weights)):
            stat = os.stat(weights)
            weights = f"{os.path.abspath(os.fspath(weights))}:{stat.st_size}:{stat.st_mtime_ns}"
        key = dict(self.statistics_key(), weights=weights, fingerprint=self.backbone.fingerprint)
        return json.dumps(key, sort_keys=True, default=str)

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(
            backbone=self.backbone.name,
            weights="random-init"
            if self.backbone.weights is None
            else os.path.basename(os.fspath(self.backbone.weights)),
            protocol=self.protocol,
            num_frames=self.num_frames,
        )
        if self.backbone.precision != "fp32" or self.backbone.channels_last:
            key.update(precision=self.backbone.precision, channels_last=self.backbone.channels_last)
        return key

    def _frame_features(self, frames: Tensor, network: nn.Module) -> Tensor:
        """Run uint8 ``[N, 3, H, W]`` frames through ``network`` in chunks of ``batch_size``."""
        out = [network(frames[i : i + self.batch_size]) for i in range(0, frames.shape[0], self.batch_size)]
        return torch.cat(out) if out else frames.new_zeros((0, self.num_features), dtype=torch.float32)


class FID(_VideoFrechet):
    r"""Fréchet Inception Distance on video frames.

    ``protocol="jwbdh-v1"`` (default) reproduces FID_calculate.py: the first 16 frames of each video,
    torchvision ImageNet Inception-v3 (PIL-bilinear 299, ImageNet normalisation), one exact Fréchet
    distance per (generated, reference) video pair, averaged over videos. NOT comparable to standard FID.
    ``protocol="standard"``: the TF FID Inception (TF1-bilinear resize, (x-128)/128), all frames of all
    videos pooled per side, unbiased covariance (torch-fidelity / TTUR).

    As input to ``update``: ``generated`` and ``reference`` videos ``[B, T, 3, H, W]``, uint8 or float [0, 1]
    (see :meth:`update`). As output of ``compute``: float64 scalar, lower is better, >= 0.

    Args:
        protocol: ``"jwbdh-v1"`` or ``"standard"``; sets the defaults of the arguments left as None.
        weights: Inception checkpoint (registry name or path); None = random init (smoke, uncalibrated);
            ``"default"`` = the protocol's network.
        mode: ``"per_video"`` or ``"pooled"`` (default from the protocol).
        num_frames: frames per video (jwbdh-v1: 16; standard: None = all).
        covariance: ``"unbiased"`` or ``"biased"``.
        feature_extractor: a :class:`~metrics.backbones.cache.BackboneRef` replacing the Inception (any
            ``uint8 [N,3,H,W] -> [N,d]`` network); ``num_features`` must then be given.
        batch_size: frames per backbone call.
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``feature_extractor``'s own.
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the extractor's own.
        kwargs: ``reset_real_features`` and torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> fid = FID(weights=None)  # doctest: +SKIP
        >>> videos = torch.randint(0, 256, (2, 16, 3, 64, 64), dtype=torch.uint8)  # doctest: +SKIP
        >>> fid.update(videos, videos.flip(1)); fid.compute()  # doctest: +SKIP
    """

    def __init__(
        self,
        protocol: str = "jwbdh-v1",
        weights: str | os.PathLike | None = "default",
        mode: str | None = None,
        num_frames: int | str | None = "default",
        covariance: str = "unbiased",
        feature_extractor: BackboneRef | None = None,
        num_features: int = 2048,
        batch_size: int = 64,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if feature_extractor is None:
            from metrics.backbones.inception import fid_inception_ref, imagenet_inception_ref

            if protocol == "jwbdh-v1":
                feature_extractor = imagenet_inception_ref(
                    "inception_v3_imagenet" if weights == "default" else weights
                )
            else:
                feature_extractor = fid_inception_ref("fid_inception_v3" if weights == "default" else weights)
        if num_frames == "default":
            num_frames = 16 if protocol == "jwbdh-v1" else None
        super().__init__(
            feature_extractor,
            num_features,
            protocol,
            mode,
            covariance,
            num_frames,
            batch_size,
            precision=precision,
            channels_last=channels_last,
            **kwargs,
        )

    def frame_transform(self, frames: Tensor) -> Tensor:
        """Per-frame preprocessing before the backbone (identity for FID; edge maps for E-FID)."""
        return frames

    @property
    def _min_samples_per_video(self) -> int:
        # Per video with np.cov's unbiased covariance, one frame gives NaN statistics and the script then
        # writes no FID/E-FID for that video (calculate_statistics -> None): such pairs are skipped.
        return 2 if self.mode == "per_video" and self.covariance == "unbiased" else 1

    def video_features(self, videos: Tensor) -> Tensor:
        clip = videos if self.num_frames is None else first_frames(videos, self.num_frames)
        b, t = clip.shape[:2]
        frames = self.frame_transform(to_uint8(clip).flatten(0, 1))
        feats = self._frame_features(frames, self.backbone.get(videos.device))
        return feats.reshape(b, t, -1)


class EdgeFID(FID):
    r"""E-FID ("Edge-FID" in the JWB-DH-V1 repository, "Enhanced FID" in the paper).

    Each frame -> grayscale (OpenCV's BGR2GRAY weights) -> ``cv2.Canny(gray, 100, 200)`` -> three equal
    channels -> the same Inception and Fréchet computation as :class:`FID`. The Canny runs in torch on the
    input's device and matches OpenCV pixel for pixel (tests/test_edges.py); CPU tensors go to OpenCV itself
    when it is installed (``edge_backend="auto"``).

    Args:
        edge_backend: ``"auto"`` (default: OpenCV's Canny for CPU tensors when OpenCV is installed, our
            identical torch Canny otherwise, e.g. on a GPU), ``"torch"`` or ``"opencv"``.
        low_threshold, high_threshold: Canny hysteresis thresholds (jwbdh-v1: 100, 200).
        kwargs: as :class:`FID`.

    Example:
        >>> efid = EdgeFID(weights=None)  # doctest: +SKIP
    """

    def __init__(
        self,
        *args: Any,
        edge_backend: str = "auto",
        low_threshold: float = 100.0,
        high_threshold: float = 200.0,
        **kwargs: Any,
    ) -> None:
        check_choice("edge_backend", edge_backend, ("auto", "torch", "opencv"))
        if not 0 <= low_threshold <= high_threshold:
            raise ValueError(
                f"`low_threshold` and `high_threshold` must satisfy 0 <= low <= high, got {low_threshold}, "
                f"{high_threshold}"
            )
        super().__init__(*args, **kwargs)
        self.edge_backend = edge_backend
        self.low_threshold = low_threshold
        self.high_threshold = high_threshold

    def frame_transform(self, frames: Tensor) -> Tensor:
        from metrics.functional.edges import edge_maps

        return edge_maps(
            frames,
            backend=self.edge_backend,
            low_threshold=self.low_threshold,
            high_threshold=self.high_threshold,
        )

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(edges=(self.low_threshold, self.high_threshold))
        return key


class FVD(_VideoFrechet):
    r"""Fréchet Video Distance with the I3D Kinetics-400 TorchScript network (400-d logits as features).

    ``protocol="jwbdh-v1"`` (default) reproduces FID_calculate.py, quirks included: the first 16 frames
    (black frames appended to shorter videos), ``cv2.resize(..., (224, 224), INTER_AREA)``, values in [0, 1]
    passed with ``rescale=False, resize=False`` (the network expects [-1, 1]; the script feeds [0, 1]), one
    clip per video and the script's per-video distance ``‖f_gen - f_ref‖² - 2e-6 * 400``: its single-clip
    covariances are ``1e-6·I`` and its sqrtm adds another ``1e-6·I``, so the trace term is -8e-4, not zero
    (identical videos score -0.0008; see ``functional.frechet.script_fvd_distance``). Averaged over videos.
    With ``mode="per_video"`` under ``protocol="standard"`` the textbook value ``‖f_gen - f_ref‖²`` is used.
    ``protocol="standard"`` (StyleGAN-V ``fvd2048_16f``): the first 16 frames as uint8 values with
    ``rescale=True, resize=True`` (the network maps them to [-1, 1] and resizes to 224 itself), clips pooled
    per side; ``covariance="biased"`` reproduces StyleGAN-V, the default "unbiased" the original TF FVD.
    Videos shorter than 16 frames are rejected in this protocol rather than padded.

    Args:
        protocol: ``"jwbdh-v1"`` or ``"standard"``.
        weights: ``"i3d_torchscript"`` (default), a path to a TorchScript file, or None for a randomly
            initialised stand-in with the same calling convention (smoke runs only: it is not I3D).
        mode, covariance, batch_size, precision, channels_last, kwargs: as :class:`FID`; ``batch_size``
            counts clips.

    Example:
        >>> fvd = FVD(weights=None)  # doctest: +SKIP
    """

    CLIP_LENGTH = 16

    def __init__(
        self,
        protocol: str = "jwbdh-v1",
        weights: str | os.PathLike | None = "i3d_torchscript",
        mode: str | None = None,
        covariance: str = "unbiased",
        feature_extractor: BackboneRef | None = None,
        num_features: int = 400,
        batch_size: int = 8,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if feature_extractor is None:
            from metrics.backbones.i3d import i3d_ref

            feature_extractor = i3d_ref(weights)
        super().__init__(
            feature_extractor,
            num_features,
            protocol,
            mode,
            covariance,
            self.CLIP_LENGTH,
            batch_size,
            precision=precision,
            channels_last=channels_last,
            **kwargs,
        )
        self._min_frames = self.CLIP_LENGTH if protocol == "standard" else 1

    def video_features(self, videos: Tensor) -> Tensor:
        from metrics.functional.resize import resize_opencv_area

        network = self.backbone.get(videos.device)
        b = videos.shape[0]
        if self.protocol == "jwbdh-v1":
            clip = first_frames(to_uint8(videos), self.CLIP_LENGTH, pad_black=True)
            frames = resize_opencv_area(clip.flatten(0, 1), (224, 224)).float() / 255.0
            x = frames.reshape(b, self.CLIP_LENGTH, 3, 224, 224).permute(0, 2, 1, 3, 4)
            rescale = resize = False
        else:
            clip = to_uint8(first_frames(videos, self.CLIP_LENGTH))
            x = clip.float().permute(0, 2, 1, 3, 4)
            rescale = resize = True
        chunks = [
            network(x[i : i + self.batch_size], rescale=rescale, resize=resize, return_features=True)
            for i in range(0, b, self.batch_size)
        ]
        return torch.cat(chunks).float().reshape(b, 1, -1)

    def _add_per_video(self, generated: Tensor, reference: Tensor) -> None:
        if self.protocol != "jwbdh-v1":
            super()._add_per_video(generated, reference)
            return
        # One clip per video: the script's 1e-6*I covariances and sqrtm regularisation (-2e-6 * d).
        self._accumulate_per_video(script_fvd_distance(generated[:, 0], reference[:, 0], check_finite=False))

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(clip_length=self.CLIP_LENGTH)
        return key
