"""Category bookkeeping shared by :class:`~metrics.speech.WordErrorRate` and :class:`~metrics.speech.WinRate`.

Categories are fixed at construction so that every state has a fixed size (one row per category) and ranks
sync without deadlock even when a category is present on one rank only (DESIGN s3).

Example:
    >>> import torch
    >>> known = check_categories(["Emotions", "Questions"])
    >>> category_index(known, ["Questions", "Emotions", "Questions"], 3, torch.device("cpu")).tolist()
    [1, 0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["category_index", "check_categories"]


def check_categories(categories: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate a category list (non-empty, unique str without '/'); None stays None (no categories)."""
    if categories is None:
        return None
    if isinstance(categories, str) or not isinstance(categories, Sequence) or len(categories) == 0:
        raise ValueError(f"categories must be a non-empty sequence of str or None, got {categories!r}")
    cats = tuple(categories)
    for c in cats:
        if not isinstance(c, str) or not c or "/" in c:
            raise ValueError(f"categories must hold non-empty str without '/', got {c!r}")
    if len(set(cats)) != len(cats):
        raise ValueError(f"categories must be unique, got {list(cats)}")
    return cats


def category_index(
    known: tuple[str, ...] | None, categories: str | Sequence[str] | None, n: int, device: torch.device
) -> Tensor:
    """Map per-sample category names to indices into ``known`` (everything to 0 when ``known`` is None)."""
    if known is None:
        if categories is not None:
            raise ValueError(
                "categories were given to update() but the metric was built without categories; "
                "pass categories=[...] to the constructor"
            )
        return torch.zeros(n, dtype=torch.long, device=device)
    if categories is None:
        raise ValueError(f"categories is required (one of {list(known)} per sample, or one str for all)")
    names = [categories] * n if isinstance(categories, str) else list(categories)
    if len(names) != n:
        raise ValueError(f"categories must have one entry per sample ({n}), got {len(names)}")
    lookup = {c: i for i, c in enumerate(known)}
    idx = []
    for i, c in enumerate(names):
        if c not in lookup:
            raise ValueError(f"categories[{i}] must be one of {list(known)}, got {c!r}")
        idx.append(lookup[c])
    return torch.tensor(idx, dtype=torch.long, device=device)
