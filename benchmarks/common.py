"""Shared machinery of the speed benchmarks: interleaved timing, results, thresholds and the table.

Every benchmark times OUR code and a BASELINE in the same process, on the same inputs, alternating the
order of the two sides from round to round (A B, B A, A B, ...) so that slow drifts of a shared machine
(other jobs starting, thermal throttling) hit both sides alike. It reports

* for each side the median, min and max time over the rounds;
* one or more ratios: ``speedup = median(baseline) / median(ours)`` (> 1 means we are faster),
  ``overhead = median(with) / median(without) - 1`` or a ``growth`` factor, each with the spread of the
  per-round ratios (min, max);
* correctness checks: the largest difference between the two sides' numbers and the tolerance it must meet.

Thresholds live in ``benchmarks/thresholds.json`` (see the ``_doc`` entries there for how they were chosen).
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

MODES = ("quick", "full")
KINDS = ("speedup", "overhead", "growth")

#: Default threshold file, next to this module.
THRESHOLDS_PATH = Path(__file__).with_name("thresholds.json")


# ------------------------------------------------------------------------------------------------ config
@dataclass
class Config:
    """What a benchmark is asked to do: ``mode`` (quick/full), ``device``, optional ``rounds`` override."""

    mode: str = "quick"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rounds: int | None = None

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, ``full`` otherwise."""
        return quick if self.quick else full

    def n_rounds(self, quick: int, full: int) -> int:
        return self.rounds if self.rounds is not None else self.pick(quick, full)


def pick_device(name: str | None = None) -> torch.device:
    """``name`` if given, else CUDA when available, else CPU."""
    if name:
        return torch.device(name)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores visible)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------- results
@dataclass
class Ratio:
    """A measured ratio: ``value`` from the medians, ``low``/``high`` from the per-round ratios."""

    kind: str
    value: float
    low: float
    high: float
    what: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


@dataclass
class Correctness:
    """Our numbers vs the baseline's: ``ok`` iff ``value <= tolerance`` (and ``value`` is not NaN)."""

    quantity: str
    value: float
    tolerance: float
    ok: bool = False

    def __post_init__(self) -> None:
        self.ok = bool(self.value <= self.tolerance)  # NaN compares False: a NaN difference fails


@dataclass
class BenchResult:
    """Everything one benchmark measured (the JSON output holds a list of these, as dicts)."""

    name: str
    mode: str
    device: str
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)
    correctness: list[Correctness] = field(default_factory=list)
    breakdown: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    error: str | None = None
    #: Ratios of earlier attempts that missed a threshold under ``--check`` (see ``--retries``).
    earlier_attempts: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no inf/nan literals
    if isinstance(x, torch.Tensor):
        return jsonable(x.tolist())
    return x


def summarize(times: Sequence[float]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "rounds_s": list(times),
    }


def speedup(times: Mapping[str, Sequence[float]], baseline: str, ours: str, what: str = "") -> Ratio:
    """``median(baseline) / median(ours)``; spread from the per-round ratios."""
    base, mine = times[baseline], times[ours]
    per_round = [b / o for b, o in zip(base, mine, strict=True)]
    return Ratio(
        "speedup",
        statistics.median(base) / statistics.median(mine),
        min(per_round),
        max(per_round),
        what or f"{baseline} / {ours} (> 1: ours faster)",
    )


def relative_difference(ours: float, reference: float) -> float:
    """``|ours - reference| / |reference|``; exact equality (including two equal infinities) gives 0."""
    if ours == reference:
        return 0.0
    if not (math.isfinite(ours) and math.isfinite(reference)):
        return math.inf
    return abs(ours - reference) / max(abs(reference), 1e-300)


# ---------------------------------------------------------------------------------------------- timing
def interleaved(
    sides: Mapping[str, Callable[[], Any]],
    rounds: int,
    device: torch.device,
    warmup: Mapping[str, int] | int = 1,
    repeat: Mapping[str, int] | None = None,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time every side ``rounds`` times, alternating the side order each round (ABBA...).

    ``warmup`` (per side or for all) untimed calls run first (lazy initialisation, allocator growth, caches).
    ``repeat`` runs a (fast) side several times back to back within each round and keeps the median of those
    runs as that round's time: it damps the noise of a shared machine on a side that takes milliseconds next
    to one that takes a minute, without favouring it (a median, not a minimum).
    Returns ``(times per side, the last return value per side)``.
    """
    names = list(sides)
    warm = dict.fromkeys(names, warmup) if isinstance(warmup, int) else {n: warmup.get(n, 0) for n in names}
    reps = {n: max(1, (repeat or {}).get(n, 1)) for n in names}
    outputs: dict[str, Any] = {}
    for name in names:
        for _ in range(warm[name]):
            outputs[name] = sides[name]()
    synchronize(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs = []
            for _ in range(reps[name]):
                gc.collect()
                synchronize(device)
                start = time.perf_counter()
                outputs[name] = sides[name]()
                synchronize(device)
                runs.append(time.perf_counter() - start)
            times[name].append(statistics.median(runs))
    return times, outputs


@contextmanager
def quiet() -> Iterator[None]:
    """Silence warnings that benchmarks trigger on purpose (singular sqrtm, smoke backbones, ...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------------------------------ thresholds
def load_thresholds(path: str | os.PathLike | None = None) -> dict[str, Any]:
    with open(path or THRESHOLDS_PATH, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise ValueError(f"{path or THRESHOLDS_PATH}: expected an object with a 'benchmarks' object")
    return data


def threshold_for(thresholds: Mapping[str, Any], name: str, ratio: str, mode: str) -> dict[str, float] | None:
    """``{"min": x}`` (speedups) or ``{"max": x}`` (overheads, growth) for one ratio in one mode, or None."""
    entry = thresholds.get("benchmarks", {}).get(name, {}).get(ratio)
    if not isinstance(entry, dict):
        return None
    limit = entry.get(mode)
    return limit if isinstance(limit, dict) and limit else None


def evaluate(result: BenchResult, thresholds: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per ratio and per correctness check: ``{"check", "status", ...}`` (pass, FAIL, unchecked)."""
    rows: list[dict[str, Any]] = []
    if result.error is not None:
        rows.append({"check": f"{result.name}: error", "status": "FAIL", "detail": result.error})
        return rows
    for key, ratio in result.ratios.items():
        limit = threshold_for(thresholds, result.name, key, result.mode)
        status, detail = "unchecked", "no threshold"
        if limit is not None:
            failures = []
            if "min" in limit and not ratio.value >= float(limit["min"]):
                failures.append(f"{ratio.value:.4g} < min {limit['min']}")
            if "max" in limit and not ratio.value <= float(limit["max"]):
                failures.append(f"{ratio.value:.4g} > max {limit['max']}")
            status = "FAIL" if failures else "pass"
            detail = "; ".join(failures) or " ".join(f"{k} {v}" for k, v in limit.items())
        rows.append(
            {"check": f"{result.name}.{key}", "status": status, "value": ratio.value, "detail": detail}
        )
    for c in result.correctness:
        rows.append(
            {
                "check": f"{result.name}: {c.quantity}",
                "status": "pass" if c.ok else "FAIL",
                "value": c.value,
                "detail": f"tolerance {c.tolerance:g}",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- output
def _fmt_ratio(r: Ratio) -> str:
    if r.kind == "overhead":
        return f"{r.value * 100:+.1f}% [{r.low * 100:+.1f}%, {r.high * 100:+.1f}%]"
    return f"x{r.value:.3g} [{r.low:.3g}, {r.high:.3g}]"


def _fmt_limit(limit: dict[str, float] | None, kind: str) -> str:
    if limit is None:
        return "-"
    parts = []
    for k, v in limit.items():
        parts.append(f"{k} {v * 100:+.0f}%" if kind == "overhead" else f"{k} {v:g}")
    return ", ".join(parts)


def format_table(results: Sequence[BenchResult], thresholds: Mapping[str, Any] | None) -> str:
    """The human-readable summary: one line per ratio with median, spread, threshold and correctness."""
    header = ("benchmark", "ratio", "median [min, max] over rounds", "threshold", "correctness")
    lines: list[tuple[str, ...]] = [header]
    for res in results:
        if res.error is not None:
            lines.append((res.name, "ERROR", res.error.splitlines()[0][:60], "-", "-"))
            continue
        worst = [c for c in res.correctness if not c.ok]
        corr = (
            "ok"
            if not worst
            else "MISMATCH " + ", ".join(f"{c.quantity} {c.value:.2g}>{c.tolerance:g}" for c in worst)
        )
        if res.correctness and not worst:
            corr = "ok (" + ", ".join(f"{c.value:.1g}<={c.tolerance:g}" for c in res.correctness[:3]) + ")"
        for i, (key, ratio) in enumerate(res.ratios.items()):
            limit = threshold_for(thresholds or {}, res.name, key, res.mode)
            lines.append(
                (
                    res.name if i == 0 else "",
                    key,
                    _fmt_ratio(ratio),
                    _fmt_limit(limit, ratio.kind),
                    corr if i == 0 else "",
                )
            )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for j, row in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def time_calls(obj: Any, method: str, bucket: dict[str, float], key: str, device: torch.device) -> None:
    """Wrap ``obj.method`` (on the instance) so that each call adds its wall time to ``bucket[key]``."""
    original = getattr(obj, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        synchronize(device)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            synchronize(device)
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - start

    timed.__wrapped_original__ = original  # type: ignore[attr-defined]
    setattr(obj, method, timed)


def untime_calls(obj: Any, method: str) -> None:
    """Undo :func:`time_calls`."""
    current = getattr(obj, method)
    original = getattr(current, "__wrapped_original__", None)
    if original is not None:
        setattr(obj, method, original)


def shares(bucket: Mapping[str, float], total: float | None = None) -> dict[str, dict[str, float]]:
    """``{key: {"s": seconds, "share": fraction of total}}``, largest first."""
    total = total if total is not None else sum(bucket.values())
    return {
        k: {"s": v, "share": v / total if total > 0 else math.nan}
        for k, v in sorted(bucket.items(), key=lambda kv: -kv[1])
    }
