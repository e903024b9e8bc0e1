"""Memory of every metric after N vs 10N updates: it must not grow with the number of evaluated videos.

For each metric of the smoke preset (all twelve paper keys, smoke backbones) plus the pooled Fréchet path
(``FID`` in pooled mode: float64 ``Σx``, ``Σxxᵀ`` and a count per side) the benchmark

1. builds the metric and runs one warm-up update (lazy backbone construction, allocator growth);
2. runs N updates and records the metric's state size (bytes of every ``add_state`` tensor or list) and the
   peak memory of that phase above the level before it;
3. runs 9N more updates (10N in total) and records the same.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on a CPU the
process's peak resident set size (``VmHWM`` in ``/proc/self/status``, reset between phases by writing 5 to
``/proc/self/clear_refs``; where that is not possible, the current RSS sampled after every update), each phase
starting after ``gc.collect()`` and glibc's ``malloc_trim(0)`` so that heap pages freed earlier (and reused
by one phase but not the other) do not decide the comparison.
tracemalloc cannot see torch's CPU allocations, and psutil is not needed.

Ratios (kind "growth", 1.0 = flat):

* ``state_growth`` = max over metrics of state bytes(10N) / state bytes(N): exactly 1.0 when every state is a
  fixed-size tensor (the DESIGN s3 rule); any list state that grows per video shows at once;
* ``retained_growth`` = max over metrics of ``(kept(10N) + F) / (kept(N) + F)``, ``kept`` = memory in use
  after the phase (after ``gc`` and ``malloc_trim``) minus the level before the first phase: catches leaks
  outside the states (caches, Python lists) of F or more;
* ``peak_growth`` = max over metrics of ``(peak delta, 10N phase + F) / (peak delta, N phase + F)``
  (the quantity the issue asks for). Noisier: a phase with 9x more updates has more chances to catch two
  allocator arenas at their high-water mark at once, so it reads 1.0-1.5 on a CPU with no leak at all.

F is a floor, so that allocator noise on a tiny baseline cannot fake growth: for peaks 16 MiB on a CPU
(1 MiB on CUDA), for retained memory 2 MiB on a CPU (measured noise after ``malloc_trim``: < 0.1 MiB) and
1 MiB on CUDA. With the 2 MiB floor and a limit of 1.5, retained growth of about 1 MiB over the extra 9N
updates fails the check.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import BenchResult, Config, Correctness, Ratio, quiet
from benchmarks.data import avatar_videos

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MIB = 1 << 20


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def _hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _trim() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``), so both phases start from the same state."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Probe:
    """Peak memory of a phase, above the level at its start (bytes)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.can_reset_hwm = device.type != "cuda" and _reset_hwm() and _hwm() is not None
        self.method = (
            "torch.cuda.max_memory_allocated"
            if device.type == "cuda"
            else ("VmHWM (peak RSS)" if self.can_reset_hwm else "RSS sampled after every update")
        )

    def start(self) -> None:
        gc.collect()
        _trim()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _rss()
            if self.can_reset_hwm:
                _reset_hwm()
        self.sampled = self.base

    def sample(self) -> None:
        if self.device.type != "cuda" and not self.can_reset_hwm:
            self.sampled = max(self.sampled, _rss())

    def current(self) -> int:
        """Memory in use now (after ``gc`` and ``malloc_trim``): CUDA allocated bytes or the RSS."""
        gc.collect()
        _trim()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.memory_allocated(self.device)
        return _rss()

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.base
        if self.can_reset_hwm:
            return (_hwm() or self.base) - self.base
        return self.sampled - self.base


def state_bytes(metric: Any) -> int:
    """Bytes held by a torchmetrics ``Metric``'s states (tensors, or lists of tensors)."""
    total = 0
    for name in metric._defaults:
        value = getattr(metric, name)
        items = value if isinstance(value, list) else [value]
        total += sum(t.numel() * t.element_size() for t in items if isinstance(t, torch.Tensor))
    return total


def _cases() -> dict[str, tuple[Callable[[], Any], bool]]:
    """name -> (builder, paired)."""
    from jwbdh_callbacks.presets import load_preset, preset_metrics
    from metrics.suite import PAIRED, build_metric

    smoke = preset_metrics(load_preset("smoke"))
    cases: dict[str, tuple[Callable[[], Any], bool]] = {}
    for key, kwargs in smoke.items():
        cases[key] = (lambda key=key, kwargs=kwargs: build_metric(key, **dict(kwargs)), key in PAIRED)
    fid_kwargs = dict(smoke["FID"])
    fid_kwargs["mode"] = "pooled"
    cases["FID (pooled)"] = (lambda: build_metric("FID", **fid_kwargs), True)
    return cases


def bench_memory(cfg: Config) -> BenchResult:
    """State, retained and peak memory of every metric after N vs 10N updates (growth factor)."""
    dev = cfg.device
    n = cfg.pick(2, 3)
    ref, gen, _ = avatar_videos(2, 8, 96, 96, seed=2)
    pairs = [(gen[i : i + 1].to(dev), ref[i : i + 1].to(dev)) for i in range(2)]
    probe = _Probe(dev)
    rows: dict[str, dict[str, Any]] = {}
    floor = MIB if dev.type == "cuda" else 16 * MIB  # peaks
    kept_floor = MIB if dev.type == "cuda" else 2 * MIB  # retained memory: trimmed, hence precise
    with quiet(), torch.inference_mode():
        for name, (build, paired) in _cases().items():
            started = time.perf_counter()
            metric = build().to(dev)
            count = 0

            def step(metric: Any = metric, paired: bool = paired, name: str = name) -> None:
                nonlocal count
                g, r = pairs[count % len(pairs)]
                if paired:
                    metric.update(g, r)
                elif name == "DD":
                    metric.update(g, fps=25.0)
                else:
                    metric.update(g)
                count += 1
                probe.sample()

            step()  # warm-up
            probe.start()
            start = probe.base
            for _ in range(n):
                step()
            peak_n, state_n = probe.peak(), state_bytes(metric)
            kept_n = probe.current() - start
            probe.start()
            for _ in range(9 * n):
                step()
            peak_10n, state_10n = probe.peak(), state_bytes(metric)
            kept_10n = probe.current() - start
            value = float(metric.compute())
            rows[name] = {
                "updates": [n, 10 * n],
                "state_bytes": [state_n, state_10n],
                "peak_delta_bytes": [peak_n, peak_10n],
                "state_growth": state_10n / state_n if state_n else 1.0,
                "peak_growth": (max(peak_10n, 0) + floor) / (max(peak_n, 0) + floor),
                "retained_delta_bytes": [kept_n, kept_10n],
                "retained_growth": (max(kept_10n, 0) + kept_floor) / (max(kept_n, 0) + kept_floor),
                "value": value,
                "seconds": time.perf_counter() - started,
            }
            del metric
    worst_state = max(rows, key=lambda k: rows[k]["state_growth"])
    worst_peak = max(rows, key=lambda k: rows[k]["peak_growth"])
    worst_kept = max(rows, key=lambda k: rows[k]["retained_growth"])
    state_values = [r["state_growth"] for r in rows.values()]
    peak_values = [r["peak_growth"] for r in rows.values()]
    kept_values = [r["retained_growth"] for r in rows.values()]
    return BenchResult(
        name="memory",
        mode=cfg.mode,
        device=str(dev),
        params={
            "N": n,
            "video": "1 x 8 x 3 x 96 x 96 uint8 per update",
            "peak_method": probe.method,
            "floor_bytes": {"peak": floor, "retained": kept_floor},
            "metrics": list(rows),
        },
        ratios={
            "state_growth": Ratio(
                "growth",
                max(state_values),
                min(state_values),
                max(state_values),
                f"max over metrics of state bytes after 10N / after N (worst: {worst_state})",
            ),
            "peak_growth": Ratio(
                "growth",
                max(peak_values),
                min(peak_values),
                max(peak_values),
                f"max over metrics of (peak delta 10N + F) / (peak delta N + F) (worst: {worst_peak})",
            ),
            "retained_growth": Ratio(
                "growth",
                max(kept_values),
                min(kept_values),
                max(kept_values),
                f"max over metrics of (memory kept after 10N + F) / (kept after N + F) (worst: {worst_kept})",
            ),
        },
        correctness=[
            Correctness(
                "metrics whose compute() is NaN", sum(r["value"] != r["value"] for r in rows.values()), 0
            )
        ],
        breakdown={"per_metric": rows},
        notes=[
            f"peak memory via {probe.method}; largest peak delta N/10N: "
            + ", ".join(
                "{} {:.1f}/{:.1f} MiB".format(k, *(b / MIB for b in rows[k]["peak_delta_bytes"]))
                for k in sorted(rows, key=lambda k: -rows[k]["peak_delta_bytes"][1])[:4]
            ),
            "state bytes: "
            + ", ".join(f"{k} {rows[k]['state_bytes'][1]}" for k in rows if rows[k]["state_bytes"][1] > 64),
        ],
    )


BENCHMARKS = {"memory": bench_memory}
