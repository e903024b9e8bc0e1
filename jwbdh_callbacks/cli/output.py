"""What ``jwbdh-eval`` prints and writes: aligned tables, CSV and strict JSON.

The results table and the files keep every metric on its own scale (VBench dimensions 0-1, as VBench
reports them) with the standard error and 95% interval of each mean over videos; a second printed table,
labelled as such, compares with the paper's Table 2 in the paper's units (VBench dimensions in percent).

Example:
    >>> print(format_table(["region", "PSNR"], [["face", 31.25]]))
    region  PSNR
    ------  -----
    face    31.25
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jwbdh_callbacks.cli.records import encode_value

__all__ = ["format_table", "write_results"]


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table with aligned columns (numbers to 4 significant digits)."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    text = [[cell(c) for c in columns], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(
    path: Path,
    *,
    preset: str,
    results: Mapping[str, Mapping[str, float]],
    summaries: Mapping[str, Mapping[str, Any]],
    skip_counts: Mapping[str, int],
    failures: Sequence[str],
    frames_kept: Mapping[str, Mapping[str, int]] | None = None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """``.json``: results, spread, skips, failures (NaN -> null, +-inf -> "inf"); ``.csv``: the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        payload = {
            "preset": preset,
            "scale": "VBench dimensions (SC, BC, MS, DD, AQ, IQ) on 0-1, as VBench reports them",
            "results": {r: dict(v) for r, v in results.items()},
            "summaries": {r: {k: s.as_dict() for k, s in v.items()} for r, v in summaries.items()},
            "skip_counts": {k: v for k, v in skip_counts.items() if v},
            "frames_kept": dict(frames_kept or {}),
            "failures": list(failures),
        }
        path.write_text(json.dumps(encode_value(payload), indent=2, allow_nan=False))
        return
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
