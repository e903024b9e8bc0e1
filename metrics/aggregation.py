"""Shared base for metrics reported as a mean over videos of per-video scores (JWB-DH-V1 / VBench style).

States are a float64 sum of per-video scores and an int64 video count, both ``sum``-reduced, so DDP ranks
with different numbers of videos sync without deadlock and memory is constant.

Example:
    >>> import torch
    >>> class Brightness(PerVideoMeanMetric):
    ...     higher_is_better = True
    ...     def update(self, videos):
    ...         self.add_video_scores(videos.float().mean(dim=(1, 2, 3, 4)))
    >>> m = Brightness(); m.update(torch.ones(2, 3, 3, 4, 4)); float(m.compute())
    1.0
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["PerVideoMeanMetric"]


class PerVideoMeanMetric(Metric):
    """Mean over videos of one score per video; subclasses call :meth:`add_video_scores` in ``update``."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def add_video_scores(self, scores: Tensor) -> None:
        """Accumulate a ``[B]`` tensor of per-video scores."""
        self.score_sum.add_(scores.detach().to(torch.float64).sum())
        self.num_videos.add_(scores.numel())

    def compute(self) -> Tensor:
        """Mean over videos (NaN with a warning when no video was added)."""
        if int(self.num_videos) == 0:
            warnings.warn(f"{type(self).__name__}.compute() saw no videos; returning NaN", stacklevel=2)
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.score_sum.device)
        return self.score_sum / self.num_videos

    def plot(self, val: Tensor | None = None, ax: Any = None) -> Any:
        """Plot one value or a sequence of values (needs matplotlib); returns ``(figure, axes)``."""
        return self._plot(val, ax)
