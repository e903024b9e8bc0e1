"""Per-video results of ``jwbdh-eval --per-video out.jsonl``: one JSON line per video pair and region.

Each line is written as soon as its pair is scored, with one ``write`` per pair (all its regions) on a file
opened in append mode and flushed, so a run killed at video 15,000 keeps 14,999 complete pairs, and several
torchrun ranks can append to the same local file. A line holds:

``video``, ``region``, ``run`` (fingerprint of the settings), ``scores`` (``{KEY: value}``; pooled,
set-level metrics have none), ``frames`` (``[generated, reference]`` frames kept in the region videos),
``skipped`` (``[what, why]`` per skip), ``warnings`` and ``states`` (the metric sums this pair added: what
``--resume`` adds back so that the final table equals an uninterrupted run's). A pair that could not be
scored at all has one line with ``region: null`` and ``error``; ``--resume`` tries it again.

JSON has no NaN or infinity: a value that is NaN ("nothing scored") is written as ``null`` and infinities as
the strings ``"inf"`` / ``"-inf"`` (PSNR of identical videos); :func:`decode_value` reverses both.

Example:
    >>> encode_value(float("inf")), encode_value(float("nan")), decode_value("inf")
    ('inf', None, inf)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["PerVideoLog", "decode_value", "encode_value", "read_rows"]


def encode_value(value: Any) -> Any:
    """A float for strict JSON: NaN -> None, +-inf -> "inf"/"-inf"; containers recursively."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {k: encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    """Reverse :func:`encode_value` for one score (None -> NaN, "inf" -> inf)."""
    if value is None:
        return math.nan
    if value in ("inf", "-inf"):
        return float(value)
    return value


def _decode_states(states: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {k: (decode_value(v) if v is None or isinstance(v, str) else v) for k, v in values.items()}
        for name, values in states.items()
    }


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete line of a per-video file (a torn last line, from a killed run, is ignored).

    Raises:
        ValueError: a line other than the last is not valid JSON (the file is not a per-video file).
    """
    lines = Path(path).read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:
                break  # the write that was cut short by the kill
            raise ValueError(f"{path}: line {i + 1} is not a per-video JSON line ({err})") from err
    return rows


class PerVideoLog:
    """Append-only per-video file; with ``resume`` the pairs already in it are known and restorable.

    Args:
        path: the ``.jsonl`` file.
        run: fingerprint of the settings; a resumed file written with other settings is refused.
        resume: keep the file and read its rows (else the file is truncated by the first rank).
    """

    def __init__(self, path: str | os.PathLike, run: str, resume: bool = False) -> None:
        self.path = Path(path)
        self.run = run
        self.done: dict[str, list[dict[str, Any]]] = {}
        if resume and self.path.exists():
            for row in read_rows(self.path):
                if row.get("run") != run:
                    raise ValueError(
                        f"--resume: {self.path} was written by a run with other settings (preset, regions, "
                        "folders, keypoints or frame limit); resume with the same command or use a new file"
                    )
                if row.get("error") is None:
                    self.done.setdefault(row["video"], []).append(row)

    def start(self, truncate: bool) -> None:
        """Create the folder; truncate the file when not resuming (call on one rank before the others)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if truncate or not self.path.exists():
            self.path.write_text("")
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a line torn by the kill: cut it, its pair is scored again
            with open(self.path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append the rows of one pair in ONE write (whole lines even when ranks share the file)."""
        text = "".join(
            json.dumps({"run": self.run, **encode_value(dict(row))}, allow_nan=False) + "\n" for row in rows
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def restored_states(self) -> list[dict[str, Any]]:
        """For each done pair (file order), the ``RegionalSuite.merge_scalar_states`` input of its rows."""
        out = []
        for rows in self.done.values():
            states: dict[str, Any] = {"skips": {}}
            for row in rows:
                states.update(_decode_states(row.get("states", {})))
                states["skips"].update(row.get("skip_counts", {}))
            out.append(states)
        return out


def pair_rows(
    name: str,
    regions: Iterable[str],
    scores: Mapping[str, Mapping[str, float]],
    report: Any,
    states: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The lines of one scored pair: one per region, from the scratch suite's results and report."""
    rows = []
    skips = states.get("skips", {})
    for region in regions:
        frames = report.frames.get(region)
        rows.append(
            {
                "video": name,
                "region": region,
                "scores": dict(scores.get(region, {})),
                "frames": list(frames[0]) if frames else None,
                "skipped": [[what, why] for what, why in report.skips if what.split("/")[0] == region],
                "warnings": list(report.notes),
                "states": {k: v for k, v in states.items() if k.split("/")[0] == region},
                "skip_counts": {k: v for k, v in skips.items() if k.split("/")[0] == region},
            }
        )
    return rows
