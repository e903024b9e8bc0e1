r"""Fréchet statistics as torchmetrics states: the shared base of every Fréchet metric and
:class:`FrechetDistance` (features in, distance out).

The base keeps the two modes' states (per-video sums of distances with their squares and counts; pooled
feature sums, outer-product sums and counts), the reference-statistics API (freeze, save, load, set) and
``compute()``. :mod:`metrics.frechet` adds the video metrics that own a backbone (FID, E-FID, FVD).

Example:
    >>> import torch
    >>> m = FrechetDistance(num_features=2, mode="pooled")
    >>> x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [1.0, 0.0]])
    >>> m.update(x, real=True); m.update(x, real=False); abs(float(m.compute())) < 1e-6
    True
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from metrics._validate import check_bool, check_choice, check_int, check_positive_int
from metrics.aggregation import MeanSummary, mean_summary
from metrics.functional.frechet import (
    frechet_distance,
    gaussian_moments,
    per_video_frechet_distance,
    sqrt_factor,
)

__all__ = ["FrechetDistance"]

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
        values = values.to(torch.float64)
        kept = torch.where(finite, values, torch.zeros((), dtype=torch.float64, device=values.device))
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
