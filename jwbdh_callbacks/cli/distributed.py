"""``jwbdh-eval`` under torchrun: one process per GPU, video pairs sharded across ranks.

``torchrun --nproc_per_node=N -m jwbdh_callbacks.cli GEN REF ...`` (and multi-node runs with torchrun's
usual ``--nnodes``/``--rdzv-*`` flags) sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; :func:`setup` joins the
process group (NCCL on GPUs, gloo on CPUs) unless one is already initialised. Rank ``r`` scores pairs
``r, r + N, r + 2N, ...``; metric states are synced by torchmetrics' own reduction in ``compute()``. Every
state is a fixed-size sum and every collective is reached by every rank in the same order, so uneven shards
(even an empty one) never hang. Lists (failures) are gathered with ``all_gather_object``.

Example:
    >>> shard(["a", "b", "c"], rank=1, world_size=2)
    ['b']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Distributed", "setup", "shard"]


@dataclass
class Distributed:
    """This process's place in the run: rank, world size and the device it scores on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 prints and writes the results."""
        return self.rank == 0

    def gather(self, items: list[Any]) -> list[Any]:
        """Concatenation of every rank's ``items`` (in rank order) on every rank."""
        if self.world_size == 1:
            return list(items)
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, list(items))
        return [x for part in out for x in part]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if :func:`setup` joined it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str | None) -> Distributed:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (or use the one already initialised)."""
    if dist.is_available() and dist.is_initialized():
        rank, world, owns = dist.get_rank(), dist.get_world_size(), False
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        wants_cuda = device != "cpu" and torch.cuda.is_available() and (device is None or "cuda" in device)
        dist.init_process_group("nccl" if wants_cuda else "gloo")
        rank, world, owns = dist.get_rank(), dist.get_world_size(), True
    else:
        rank, world, owns = 0, 1, False
    if device is not None and device != "cuda":
        chosen = torch.device(device)
    elif torch.cuda.is_available() and device != "cpu":
        local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else torch.cuda.current_device()
        chosen = torch.device("cuda", local)
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    return Distributed(rank, world, chosen, owns)


def shard(items: list[Any], rank: int, world_size: int) -> list[Any]:
    """Rank ``rank``'s share: every ``world_size``-th item starting at ``rank``."""
    return items[rank::world_size]
