"""Run a function on N CPU processes joined in a gloo process group and collect what each returns.

Usage in a test (the worker must be a module-level function so that ``spawn`` can pickle it)::

    def _worker(rank: int, world_size: int, data) -> dict:
        ...  # torch.distributed is initialised here
        return {"value": metric.compute()}

    results = run_ddp(_worker, world_size=2, args=(data,))
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, world_size: int, init_file: str, out_dir: str, fn: Callable, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.barrier()
        dist.destroy_process_group()


def run_ddp(fn: Callable[..., Any], world_size: int = 2, args: tuple = ()) -> list[Any]:
    """Spawn ``world_size`` processes running ``fn(rank, world_size, *args)``; return results by rank."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(_entry, args=(world_size, init_file, tmp, fn, args), nprocs=world_size, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False) for r in range(world_size)]
