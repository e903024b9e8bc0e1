""":class:`SyntheticAvatarDataModule`: Lightning train/val splits of :class:`SyntheticAvatarDataset`. The only
module of the package that imports ``lightning``; the package loads it on first use.
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from ._checks import _check_choice, _check_int, _check_seed
from .dataset import SyntheticAvatarDataset, collate_avatar_batch


class SyntheticAvatarDataModule(L.LightningDataModule):
    """Train/val splits of :class:`SyntheticAvatarDataset` with :func:`collate_avatar_batch`.

    The validation clips never repeat training clips (their seeds follow the training indices); their
    identities are the training ones (``val_identities="shared"``) or unseen ones (``"disjoint"``).
    ``test_dataloader`` serves the validation split. Extra keyword arguments go to the datasets
    (``num_frames``, ``height``, ``width``, ``fps``, ``framing``, ``degradation``, ...).

    Example:
        >>> dm = SyntheticAvatarDataModule(num_train=4, num_val=2, batch_size=2, num_frames=4)
        >>> dm.setup("fit")
        >>> next(iter(dm.val_dataloader()))["reference"].shape
        torch.Size([2, 4, 3, 160, 128])
    """

    def __init__(
        self,
        num_train: int = 64,
        num_val: int = 16,
        batch_size: int = 8,
        num_workers: int = 0,
        *,
        seed: int = 0,
        num_identities: int = 8,
        val_identities: str = "shared",
        shuffle: bool = True,
        **dataset_kwargs: Any,
    ) -> None:
        super().__init__()
        self.num_train = _check_int("num_train", num_train, 1)
        self.num_val = _check_int("num_val", num_val, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_seed("seed", seed)
        self.num_identities = _check_int("num_identities", num_identities, 1)
        self.val_identities = _check_choice("val_identities", val_identities, ("shared", "disjoint"))
        self.shuffle = bool(shuffle)
        allowed = set(inspect.signature(SyntheticAvatarDataset).parameters) - {
            "num_samples",
            "seed",
            "num_identities",
            "index_offset",
            "identity_offset",
        }
        for key in dataset_kwargs:
            if key not in allowed:
                raise ValueError(
                    f"`{key}` is not an argument of SyntheticAvatarDataModule; dataset arguments are "
                    f"{sorted(allowed)}"
                )
        # Validate the dataset arguments now (a typo fails here, not in setup()).
        SyntheticAvatarDataset(1, seed=self.seed, num_identities=self.num_identities, **dataset_kwargs)
        self.dataset_kwargs = dict(dataset_kwargs)
        self.save_hyperparameters()
        self.train_set: SyntheticAvatarDataset | None = None
        self.val_set: SyntheticAvatarDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        common = {"seed": self.seed, "num_identities": self.num_identities, **self.dataset_kwargs}
        if self.train_set is None:
            self.train_set = SyntheticAvatarDataset(self.num_train, index_offset=0, **common)
        if self.val_set is None:
            offset = self.num_identities if self.val_identities == "disjoint" else 0
            self.val_set = SyntheticAvatarDataset(
                self.num_val, index_offset=self.num_train, identity_offset=offset, **common
            )

    def _loader(self, dataset: SyntheticAvatarDataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_avatar_batch,
            generator=generator,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self._loader(self.train_set, self.shuffle)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        assert self.val_set is not None
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
