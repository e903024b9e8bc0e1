"""``jwbdh-eval --compare a.jsonl b.jsonl``: is run B really better than run A, video by video?

Both files are ``--per-video`` outputs over the same reference set (e.g. two checkpoints). For every region
and metric, the videos scored in both runs are paired and the difference ``B - A`` is taken per video; its
mean gets a percentile bootstrap interval (resampling videos with replacement, ``--bootstrap`` resamples,
fixed seed). Pairing removes the between-video spread, which dominates these metrics, so a difference far
smaller than either run's standard error can still be clear. Videos with a non-finite score on either side
(PSNR of identical videos is +inf) are left out and counted.

Example:
    >>> import numpy as np
    >>> low, high = bootstrap_interval(np.array([0.1, 0.2, 0.15, 0.12]), resamples=2000, seed=0)
    >>> 0.1 <= low < high <= 0.2
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jwbdh_callbacks.cli.records import decode_value, read_rows

__all__ = ["bootstrap_interval", "compare_runs"]

LOWER_IS_BETTER = frozenset({"FID", "FVD", "E-FID"})


def bootstrap_interval(
    differences: np.ndarray, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (resampled in chunks: bounded memory)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"`differences` must be a non-empty 1-D array, got shape {d.shape}")
    if resamples < 100:
        raise ValueError(f"`resamples` must be >= 100, got {resamples}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // d.size))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        means[start:stop] = d[rng.integers(0, d.size, size=(stop - start, d.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _scores(path: str) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for row in read_rows(path):
        if row.get("error") is None and row.get("region") is not None:
            for key, value in row.get("scores", {}).items():
                out.setdefault((row["region"], key), {})[row["video"]] = float(decode_value(value))
    if not out:
        raise ValueError(f"--compare: {path} has no scored videos (is it a jwbdh-eval --per-video file?)")
    return out


def compare_runs(
    path_a: str, path_b: str, resamples: int = 10_000, seed: int = 0
) -> tuple[list[str], list[list[Any]], list[str]]:
    """Columns, rows and notes of the paired comparison table (see the module docstring)."""
    a, b = _scores(path_a), _scores(path_b)
    columns = ["region", "metric", "videos", "A", "B", "B - A", "95% CI low", "95% CI high", "verdict"]
    rows: list[list[Any]] = []
    notes: list[str] = []
    for region, key in sorted(set(a) & set(b)):
        common = sorted(set(a[region, key]) & set(b[region, key]))
        va = np.array([a[region, key][v] for v in common])
        vb = np.array([b[region, key][v] for v in common])
        finite = np.isfinite(va) & np.isfinite(vb)
        dropped = int((~finite).sum())
        if dropped:
            notes.append(f"{region}/{key}: {dropped} video(s) with a non-finite score left out")
        va, vb = va[finite], vb[finite]
        if va.size == 0:
            continue
        diff = vb - va
        low, high = bootstrap_interval(diff, resamples, seed=seed) if diff.size > 1 else (math.nan, math.nan)
        lower_better = key in LOWER_IS_BETTER
        if not (low > 0 or high < 0):
            verdict = "no clear difference"
        else:
            b_better = (high < 0) if lower_better else (low > 0)
            verdict = "B better" if b_better else "A better"
        rows.append([region, key, int(va.size), va.mean(), vb.mean(), diff.mean(), low, high, verdict])
    only = sorted(set(a) ^ set(b))
    if only:
        notes.append("metrics in one file only: " + ", ".join(f"{r}/{k}" for r, k in only))
    if not rows:
        raise ValueError(f"--compare: {path_a} and {path_b} have no video scored in both")
    return columns, rows, notes


def compare_main(paths: Sequence[str], resamples: int, seed: int) -> int:
    """Print the comparison table of two per-video files; 0 on success, 2 on unusable input."""
    import sys

    from jwbdh_callbacks.cli.output import format_table

    try:
        columns, rows, notes = compare_runs(paths[0], paths[1], resamples, seed)
    except (ValueError, OSError) as err:
        print(f"jwbdh-eval: error: {err}", file=sys.stderr)
        return 2
    print(f"A = {paths[0]}\nB = {paths[1]}  (paired per video; bootstrap {resamples} resamples)")
    print(format_table(columns, rows))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
