"""Reference-feature cache: encode each ground-truth video once per run (or once per machine, on disk).

In the JWB-DH-V1 per-video protocol every (generated, reference) pair is scored from both videos' features,
so an evaluation that re-runs on the same reference set (a callback every few epochs, ``jwbdh-eval`` run
again on the same ground-truth folder) spends half its backbone time re-encoding the same references.
:class:`FeatureCache` keeps those features, keyed by

* a *namespace*: everything the features depend on besides the video (metric class, backbone name and
  weights, precision and layout, frame selection, edge thresholds ...: the metric's ``feature_namespace``);
* a *video id*: a string the caller guarantees to identify the reference content (a file's sha256 in
  ``jwbdh-eval``; a dataset index in a training run whose validation set is fixed; the regional suite
  prefixes the region, since a face crop and a whole frame of one video are different inputs).

Entries live in memory (on ``device``, CPU by default so that a large validation set does not take GPU
memory) and, with ``directory``, also in one file per entry (written atomically; a corrupt or foreign file
is ignored and recomputed, counted in ``rejected``).

Example:
    >>> import torch
    >>> cache = FeatureCache()
    >>> cache.lookup("fid", ["video-1"])
    [None]
    >>> cache.store("fid", ["video-1"], torch.ones(1, 16, 8))
    >>> cache.lookup("fid", ["video-1"])[0].shape, cache.hits, cache.misses
    (torch.Size([16, 8]), 1, 1)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["FeatureCache", "cached_features", "check_video_ids"]

_FORMAT = "jwbdh-feature-cache/1"


def check_video_ids(ids: object, count: int, name: str = "reference_ids") -> list[str]:
    """Validate ``ids``: a sequence of ``count`` non-empty strings; returns them as a list.

    Example:
        >>> check_video_ids(("a", "b"), 2)
        ['a', 'b']
    """
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise ValueError(f"`{name}` must be a sequence of {count} str video ids, got {type(ids).__name__}")
    out = list(ids)
    if len(out) != count or not all(isinstance(i, str) and i for i in out):
        raise ValueError(
            f"`{name}` must hold one non-empty str id per video ({count}), got {len(out)} item(s): "
            f"{out[:4]!r}"
        )
    return out


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FeatureCache:
    """Features of reference videos keyed by (namespace, video id); in memory and optionally on disk.

    Args:
        directory: folder for the on-disk copy (created on first store); None keeps entries in memory only.
        device: where in-memory entries are kept (``"cpu"`` by default).

    Attributes:
        hits, misses: lookups answered / not answered (per video).
        rejected: disk entries that could not be read or did not match their key (recomputed).
    """

    def __init__(
        self, directory: str | os.PathLike | None = None, device: torch.device | str = "cpu"
    ) -> None:
        self.directory = None if directory is None else os.fspath(directory)
        self.device = torch.device(device)
        self._memory: dict[tuple[str, str], Tensor] = {}
        self.hits = 0
        self.misses = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._memory)

    def _path(self, namespace: str, video_id: str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, _digest(namespace), f"{_digest(video_id)}.pt")

    def _read(self, namespace: str, video_id: str) -> Tensor | None:
        if self.directory is None:
            return None
        path = self._path(namespace, video_id)
        if not os.path.exists(path):
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            ok = (
                isinstance(payload, dict)
                and payload.get("format") == _FORMAT
                and payload.get("namespace") == namespace
                and payload.get("video_id") == video_id
                and isinstance(payload.get("features"), Tensor)
            )
        except Exception:  # a truncated or foreign file: recompute, never fail the evaluation
            ok = False
        if not ok:
            self.rejected += 1
            return None
        return payload["features"].to(self.device)

    def lookup(self, namespace: str, ids: Sequence[str]) -> list[Tensor | None]:
        """The cached features of each id (None where absent)."""
        out: list[Tensor | None] = []
        for video_id in ids:
            value = self._memory.get((namespace, video_id))
            if value is None:
                value = self._read(namespace, video_id)
                if value is not None:
                    self._memory[(namespace, video_id)] = value
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            out.append(value)
        return out

    def store(self, namespace: str, ids: Sequence[str], features: Tensor) -> None:
        """Keep ``features[i]`` for ``ids[i]`` (``features``: ``[len(ids), ...]``)."""
        if features.shape[0] != len(ids):
            raise ValueError(f"`features` has {features.shape[0]} rows for {len(ids)} ids")
        # One copy to the cache's device for the whole batch (a device->host sync when it is the CPU), then a
        # private copy of each row, so that an entry never keeps the batch's storage alive.
        rows = features.detach().to(self.device)
        for video_id, value in zip(ids, rows, strict=True):
            value = value.clone()
            self._memory[(namespace, video_id)] = value
            if self.directory is not None:
                path = self._path(namespace, video_id)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.{os.getpid()}.tmp"
                payload = {"format": _FORMAT, "namespace": namespace, "video_id": video_id}
                torch.save({**payload, "features": value.cpu()}, tmp)
                os.replace(tmp, path)

    def clear(self) -> None:
        """Forget the in-memory entries (files on disk are kept)."""
        self._memory.clear()


def cached_features(
    cache: FeatureCache | None,
    namespace: str,
    ids: Sequence[str] | None,
    videos: Tensor,
    encode: Callable[[Tensor], Tensor],
) -> Tensor:
    """``encode(videos)`` (``[B, ...] -> [B, ...]``) reusing cached rows: only missing videos are encoded.

    Without a cache or ids this is ``encode(videos)``. Cached rows are moved to the device of ``videos``.

    Example:
        >>> cache = FeatureCache()
        >>> calls = []
        >>> enc = lambda v: calls.append(v.shape[0]) or v.float().mean(dim=(2, 3, 4))[..., None]
        >>> v = torch.zeros(2, 4, 3, 8, 8)
        >>> _ = cached_features(cache, "demo", ["a", "b"], v, enc)
        >>> _ = cached_features(cache, "demo", ["a", "c"], v, enc)
        >>> calls
        [2, 1]
    """
    if cache is None or ids is None:
        return encode(videos)
    ids = check_video_ids(ids, videos.shape[0])
    found = cache.lookup(namespace, ids)
    missing = [i for i, value in enumerate(found) if value is None]
    if len(missing) == len(ids):
        fresh = encode(videos)
        cache.store(namespace, ids, fresh)
        return fresh
    device = videos.device
    hits = [i for i, value in enumerate(found) if value is not None]
    # Cached rows are stacked where the cache keeps them and moved in ONE copy (not one per video).
    cached = torch.stack([found[i] for i in hits]).to(device, non_blocking=True)  # type: ignore[misc]
    if not missing:
        return cached
    fresh = encode(videos.index_select(0, torch.tensor(missing).to(device)))
    cache.store(namespace, [ids[i] for i in missing], fresh)
    # Rows of cat([cached, fresh]) back in batch order.
    order = torch.empty(len(ids), dtype=torch.int64)
    order[hits] = torch.arange(len(hits))
    order[missing] = torch.arange(len(hits), len(ids))
    return torch.cat([cached, fresh.to(cached.dtype)]).index_select(0, order.to(device))
