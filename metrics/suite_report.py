"""Bookkeeping of a suite update: skip counters as DDP-synced states and the per-update report.

Example:
    >>> c = SkipCounts(["face", "face/DD"]); c.update("face/DD", 2); c.counts_dict()
    {'face': 0, 'face/DD': 2}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["COUNTER_STATES", "SkipCounts", "UpdateReport", "is_pooled", "shape_notes"]

#: sum-reduced counters of the metrics themselves, reported by :meth:`RegionalSuite.skip_counts`
COUNTER_STATES = ("num_skipped", "num_nonfinite", "num_nan")


def is_pooled(metric: Metric) -> bool:
    return getattr(metric, "mode", None) == "pooled"


class SkipCounts(Metric):
    """Sum-reduced counters by name (videos a suite skipped), synced across DDP ranks like any state.

    Example:
        >>> c = SkipCounts(["face", "face/DD"]); c.update("face/DD", 2); c.counts_dict()
        {'face': 0, 'face/DD': 2}
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.add_state("counts", torch.zeros(len(self.names), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, name: str, count: int = 1) -> None:
        """Add ``count`` to counter ``name`` (on the device, no host sync)."""
        if name not in self._index:
            raise ValueError(f"`name` must be one of {self.names}, got {name!r}")
        self.counts[self._index[name]] += count

    def compute(self) -> Tensor:
        """The counts of every rank, in :attr:`names` order."""
        return self.counts

    def counts_dict(self) -> dict[str, int]:
        """``{name: count}`` over every rank (a collective under DDP)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            values = self.compute().tolist()
        return dict(zip(self.names, values, strict=True))

    def local_counts(self) -> dict[str, int]:
        """``{name: count}`` of this process only (no collective)."""
        return dict(zip(self.names, self.counts.tolist(), strict=True))


@dataclass
class UpdateReport:
    """What one :meth:`RegionalSuite.update` did: kept frames, skips and notes about the pair.

    Attributes:
        frames: ``{region: [(generated frames, reference frames) per video]}`` of the region videos scored.
        skips: ``(region or region/KEY, why)`` for every skipped video.
        notes: differences between generated and reference videos that the metrics resolve themselves
            (paired metrics resize or cut as the reference scripts do), one line each.
    """

    frames: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    skips: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def shape_notes(gen: Tensor, ref: Tensor) -> list[str]:
    notes = []
    if gen.shape[1] != ref.shape[1]:
        notes.append(
            f"generated videos have {gen.shape[1]} frame(s), references {ref.shape[1]}: paired metrics use "
            f"the first {min(gen.shape[1], ref.shape[1])} frame pairs (as the reference scripts do)"
        )
    if gen.shape[-2:] != ref.shape[-2:]:
        notes.append(
            f"generated frames are {gen.shape[-1]}x{gen.shape[-2]}, references "
            f"{ref.shape[-1]}x{ref.shape[-2]}: paired metrics resize them as the reference scripts do"
        )
    return notes
