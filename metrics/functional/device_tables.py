"""Resize tables kept on their device: a bounded LRU so that a repeated size copies nothing to the GPU.

Used by :mod:`metrics.functional.resize` (PIL, OpenCV INTER_LINEAR / INTER_AREA and TF1 coefficient and index
tables); split out so that the resize module holds the resampling arithmetic only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["DEVICE_TABLES", "DeviceTableCache", "Tables"]

Tables = Tensor | tuple[Tensor, ...]


class DeviceTableCache:
    """A bounded LRU of resize tables already on their device: a repeated size copies nothing to it.

    The coefficient and index tables are built on the host (``lru_cache``) and are small, but moving one to
    an accelerator is a host->device copy on every call; keyed by (table kind, sizes, device, dtype), a
    table is copied once and then reused. Bounded in entries and bytes, least recently used first out; a
    table larger than the byte budget is returned uncached. Entries are shared: never modify one in place.

    Args:
        max_entries: most tables kept.
        max_bytes: most bytes kept, all tables together.

    Example:
        >>> import torch
        >>> cache = DeviceTableCache(max_entries=2)
        >>> t = cache.get(("demo", 3), torch.device("cpu"), lambda: torch.arange(3))
        >>> cache.get(("demo", 3), torch.device("cpu"), lambda: None) is t, len(cache)
        (True, 1)
    """

    def __init__(self, max_entries: int = 128, max_bytes: int = 64 << 20) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"`max_entries` must be a positive int, got {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"`max_bytes` must be a positive int, got {max_bytes!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, tuple[Tables, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple, device: torch.device, build: Callable[[], Tables]) -> Tables:
        """The table(s) ``build()`` returns, moved to ``device``; built and moved once per (key, device)."""
        full_key = (*key, str(device))
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None:
                self._entries.move_to_end(full_key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        value = build()
        if isinstance(value, Tensor):
            value = value.to(device)
            size = value.numel() * value.element_size()
        else:
            value = tuple(t.to(device) for t in value)
            size = sum(t.numel() * t.element_size() for t in value)
        if size > self.max_bytes:
            return value
        with self._lock:
            if full_key not in self._entries:
                self._entries[full_key] = (value, size)
                self.nbytes += size
            while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped
        return value

    def clear(self) -> None:
        """Drop every table (they are rebuilt on their next use)."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


#: The tables of every resize in this module, per device (see :class:`DeviceTableCache`).
DEVICE_TABLES = DeviceTableCache()
