"""Serving samples to PyTorch: :class:`SyntheticAvatarDataset` (item ``i`` is always the same clip, as a
dict with the keys of DESIGN s2, optionally with a degraded ``generated`` copy) and
:func:`collate_avatar_batch`. Needs only torch (the Lightning DataModule is in ``datamodule.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._checks import (
    _S_DATASET,
    _check_choice,
    _check_float,
    _check_int,
    _check_seed,
    _check_size,
    _derive_seed,
)
from .degrade import DEGRADATIONS, degrade
from .identity import AvatarIdentity
from .layout import REGION_KEYPOINTS
from .sample import AvatarSample, generate_sample


class SyntheticAvatarDataset(Dataset):
    """Deterministic synthetic talking avatars: item ``i`` is always the same clip.

    Item ``i`` uses motion/speech seed ``derive(seed, index_offset + i)`` and identity
    ``identity_offset + (index_offset + i) % num_identities`` (its seed derived from ``seed``). Items are
    dicts:

    * ``reference``: uint8 ``[T, 3, H, W]``; ``keypoints``: float32 ``[T, 133, 3]``; ``audio``: ``[S]``
    * ``fps`` (float), ``sample_rate`` (int), ``identity`` (int), ``index`` (int), ``text`` (str)
    * ``envelope``: float32 ``[T]`` per-frame speech envelope (a convenient conditioning signal)
    * ``generated``: only with ``degradation``: the reference degraded by :func:`degrade`.

    ``cache=True`` keeps rendered items in memory (about 1 MB per default item).

    Example:
        >>> ds = SyntheticAvatarDataset(4, num_frames=8)
        >>> item = ds[0]
        >>> item["reference"].shape, item["keypoints"].shape, item["audio"].shape, item["fps"]
        (torch.Size([8, 3, 160, 128]), torch.Size([8, 133, 3]), torch.Size([5120]), 25.0)
    """

    def __init__(
        self,
        num_samples: int = 64,
        *,
        seed: int = 0,
        num_identities: int = 8,
        num_frames: int = 16,
        height: int = 160,
        width: int = 128,
        fps: float = 25.0,
        sample_rate: int = 16000,
        framing: str = "full",
        degradation: str | None = None,
        degradation_strength: float = 0.0,
        degradation_region: str | None = None,
        index_offset: int = 0,
        identity_offset: int = 0,
        cache: bool = True,
    ) -> None:
        self.num_samples = _check_int("num_samples", num_samples, 1)
        self.seed = _check_seed("seed", seed)
        self.num_identities = _check_int("num_identities", num_identities, 1)
        self.num_frames = _check_int("num_frames", num_frames, 1)
        self.height, self.width, self.framing = _check_size(height, width, framing)
        self.fps = _check_float("fps", fps, 1.0, 1000.0)
        self.sample_rate = _check_int("sample_rate", sample_rate, 4000)
        if degradation is not None:
            _check_choice("degradation", degradation, tuple(DEGRADATIONS))
        self.degradation = degradation
        self.degradation_strength = _check_float("degradation_strength", degradation_strength, 0.0)
        if degradation_region is not None:
            _check_choice("degradation_region", degradation_region, tuple(REGION_KEYPOINTS))
        self.degradation_region = degradation_region
        self.index_offset = _check_int("index_offset", index_offset, 0)
        self.identity_offset = _check_int("identity_offset", identity_offset, 0)
        self.cache = bool(cache)
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self.num_samples

    def identity_of(self, index: int) -> int:
        """The identity id of item ``index``."""
        return self.identity_offset + (self.index_offset + index) % self.num_identities

    def sample(self, index: int) -> AvatarSample:
        """The full :class:`AvatarSample` behind item ``index``."""
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not -len(self) <= index < len(self)
        ):
            raise IndexError(f"index {index!r} out of range for SyntheticAvatarDataset of length {len(self)}")
        index = int(index) % len(self)
        ident = AvatarIdentity.from_seed(_derive_seed(self.seed, _S_DATASET, 1, self.identity_of(index)))
        return generate_sample(
            _derive_seed(self.seed, _S_DATASET, 2, self.index_offset + index),
            identity=ident,
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            fps=self.fps,
            sample_rate=self.sample_rate,
            framing=self.framing,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if (
            isinstance(index, (int, np.integer))
            and not isinstance(index, bool)
            and -len(self) <= index < len(self)
        ):
            index = int(index) % len(self)
        if index in self._cache:
            return dict(self._cache[index])
        sample = self.sample(index)
        item = sample.to_item()
        item["identity"] = self.identity_of(index)
        item["index"] = index
        if self.degradation is not None:
            item["generated"] = degrade(
                sample,
                self.degradation,
                self.degradation_strength,
                seed=_derive_seed(self.seed, _S_DATASET, 3, self.index_offset + index),
                region=self.degradation_region,
            )
        if self.cache:
            self._cache[index] = item
        return dict(item)


def collate_avatar_batch(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch: tensors -> ``[B, ...]``, numbers -> ``[B]`` tensors (float32 /
    int64), strings -> lists. Every item must have the same keys and tensor shapes.

    Example:
        >>> ds = SyntheticAvatarDataset(2, num_frames=4)
        >>> batch = collate_avatar_batch([ds[0], ds[1]])
        >>> batch["reference"].shape, batch["fps"].dtype, batch["text"][0] == ds[0]["text"]
        (torch.Size([2, 4, 3, 160, 128]), torch.float32, True)
    """
    if len(items) == 0:
        raise ValueError("`items` must be a non-empty sequence of dataset items")
    keys = set(items[0])
    for i, item in enumerate(items):
        if set(item) != keys:
            raise ValueError(f"item {i} has keys {sorted(item)}, expected {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(f"cannot stack `{key}`: different shapes {sorted(shapes)}")
            batch[key] = torch.stack(values)
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, (int, np.integer)):
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif isinstance(first, (float, np.floating)):
            batch[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        else:
            batch[key] = list(values)
    return batch
