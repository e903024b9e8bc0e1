"""Means over videos (JWB-DH-V1 / VBench style) with their spread: the shared base and the statistics.

Every mean-over-videos metric keeps three sum-reduced states: the float64 sum of per-video scores, the sum
of their squares and the video count. DDP ranks with different numbers of videos therefore sync without
deadlock, memory is constant, and :func:`mean_summary` gives the standard error of the mean and a Student-t
95% interval from the synced sums alone (no per-video list is kept).

A NaN per-video score (a degenerate video, an overflow at reduced precision) is never averaged in: it is
counted in the ``num_nan`` state on the device (no host sync in ``update``), left out of the mean, and
``compute()`` warns with the count -- the same rule as the Fréchet metrics' ``num_nonfinite``. ``+inf`` is a
legitimate score (PSNR of identical frames) and is kept.

Example:
    >>> import torch
    >>> class Brightness(PerVideoMeanMetric):
    ...     higher_is_better = True
    ...     def update(self, videos):
    ...         self.add_video_scores(videos.float().mean(dim=(1, 2, 3, 4)))
    >>> m = Brightness(); m.update(torch.ones(2, 3, 3, 4, 4)); float(m.compute())
    1.0
    >>> m.summary().count, m.summary().sem
    (2, 0.0)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MeanSummary", "PerVideoMeanMetric", "mean_summary"]


@dataclass(frozen=True)
class MeanSummary:
    """A mean over videos with its standard error and a two-sided confidence interval.

    ``sem`` is ``s / sqrt(n)`` with the sample standard deviation ``s`` (ddof 1); the interval is
    ``mean +- t_{(1+level)/2, n-1} * sem``. With fewer than two videos ``sem`` and the interval are NaN; with
    an infinite score (PSNR of identical videos) the mean is infinite and the spread NaN.
    """

    mean: float
    sem: float
    ci_low: float
    ci_high: float
    count: int
    level: float = 0.95

    def as_dict(self) -> dict[str, float | int]:
        """Plain ``{"mean", "sem", "ci_low", "ci_high", "count", "level"}`` for JSON and loggers."""
        return asdict(self)


def mean_summary(total: float, total_sq: float, count: int, level: float = 0.95) -> MeanSummary:
    """Mean, standard error and Student-t interval from the sum, the sum of squares and the count.

    The variance is ``(total_sq - total**2 / n) / (n - 1)``, clipped at 0 against rounding (float64 sums of
    20,000 PSNR values keep ~10 significant digits of it).

    Example:
        >>> s = mean_summary(total=6.0, total_sq=14.0, count=3)   # scores 1, 2, 3
        >>> s.mean, round(s.sem, 6), round(s.ci_high, 4)          # sd 1, sem 1/sqrt(3), t_{.975,2} = 4.3027
        (2.0, 0.57735, 4.4841)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}")
    count = int(count)
    if count < 0:
        raise ValueError(f"`count` must be >= 0, got {count}")
    nan = float("nan")
    if count == 0:
        return MeanSummary(nan, nan, nan, nan, 0, level)
    mean = float(total) / count
    if count < 2 or not math.isfinite(mean):
        return MeanSummary(mean, nan, nan, nan, count, level)
    from scipy.stats import t as student_t

    variance = max((float(total_sq) - float(total) * float(total) / count) / (count - 1), 0.0)
    sem = math.sqrt(variance / count)
    half = float(student_t.ppf(0.5 + level / 2.0, count - 1)) * sem
    return MeanSummary(mean, sem, mean - half, mean + half, count, level)


class PerVideoMeanMetric(Metric):
    """Mean over videos of one score per video; subclasses call :meth:`add_video_scores` in ``update``."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("score_sq_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_nan", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def add_video_scores(self, scores: Tensor) -> None:
        """Accumulate a ``[B]`` tensor of per-video scores (NaN ones: counted in ``num_nan``, not added)."""
        scores = scores.detach().to(torch.float64).flatten()
        nan = torch.isnan(scores)
        kept = torch.where(nan, torch.zeros_like(scores), scores)
        self.score_sum.add_(kept.sum())
        # inf * inf stays inf; 0 * inf would be NaN, so square only the kept values
        self.score_sq_sum.add_((kept * kept).sum())
        self.num_videos.add_(scores.numel() - nan.sum())
        self.num_nan.add_(nan.sum())

    def compute(self) -> Tensor:
        """Mean over videos (NaN with a warning when no video was added; NaN scores left out, warned)."""
        nan = int(self.num_nan)
        if nan:
            warnings.warn(
                f"{type(self).__name__}: {nan} video(s) gave a NaN score; they are left out of the mean and "
                "counted in `num_nan`",
                stacklevel=2,
            )
        if int(self.num_videos) == 0:
            warnings.warn(f"{type(self).__name__}.compute() saw no videos; returning NaN", stacklevel=2)
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.score_sum.device)
        return self.score_sum / self.num_videos

    def summary(self, level: float = 0.95) -> MeanSummary:
        """Mean, standard error and ``level`` interval over videos (synced across DDP ranks like compute)."""
        with self.sync_context(should_sync=self.sync_on_compute, should_unsync=True):
            values = torch.stack([self.score_sum, self.score_sq_sum, self.num_videos.to(torch.float64)])
            total, total_sq, count = values.tolist()
        return mean_summary(total, total_sq, int(count), level)

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot one value or a sequence of values (needs matplotlib); returns ``(figure, axes)``."""
        return self._plot(val, ax)
