"""JWBDHCallback under DDP (2 gloo processes, Lightning ``ddp_spawn`` on the CPU) against 1 process.

* ``max_batches`` counts the batches of all ranks: 2 ranks with ``max_batches=3`` score 3 batches in total,
  the same 3 that 1 process scores, with the same numbers.
* Uneven regions: rank 0's video shows a face and hands, rank 1's neither; both ranks report the same
  global skip counts, equal to the single process's.
* A metric update that raises ``RuntimeError`` on rank 1 only: no hang, the skip is counted on every rank,
  and that metric's value is rank 0's contribution alone.

Each rank writes what its callback saw to a file (ranks run in child processes), read back here.
"""

from __future__ import annotations

import math
import os

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from jwbdh_callbacks.region_callback import JWBDHCallback
from tests.test_region_callback import AvatarClips, ToyGenerator, _preset, _trainer

pytestmark = pytest.mark.ddp

METRICS = ("SSIM", "PSNR", "SC")


class Subset(AvatarClips):
    """The clips of AvatarClips at ``items``; ``faceless`` items get zero-score face keypoints."""

    def __init__(self, items: list[int], faceless: tuple[int, ...] = ()) -> None:
        super().__init__(max(items) + 1)
        self.items, self.faceless = list(items), set(faceless)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(self.items[i])
        if self.items[i] in self.faceless:
            item["keypoints"][:, 23:91, 2] = 0.0  # the face keypoints are not detected
        return item


class Recorder(pl.Callback):
    """Saves the JWBDHCallback's last evaluation on each rank to ``{out_dir}/rank{r}.pt``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        (cb,) = [c for c in trainer.callbacks if isinstance(c, JWBDHCallback)]
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        record = {
            "results": cb.last_results,
            "skips": cb.last_skip_counts,
            "num_batches": cb.last_num_batches,
            "logged": logged,
        }
        torch.save(record, os.path.join(self.out_dir, f"rank{trainer.global_rank}.pt"))


class FailOnRank(pl.Callback):
    """Makes one metric's ``update`` raise ``RuntimeError`` on one rank (as an out-of-memory error would)."""

    def __init__(self, rank: int, region: str, key: str) -> None:
        self.rank, self.region, self.key = rank, region, key

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != self.rank:
            return
        (cb,) = [c for c in trainer.callbacks if isinstance(c, JWBDHCallback)]
        metric = cb.suite.collections[self.region][self.key]

        def fail(*args, **kwargs) -> None:
            raise RuntimeError("simulated out of memory")

        metric.update = fail


def _run(tmp_path, name: str, devices: int, data: Subset, callbacks=(), **cb_kwargs) -> list[dict]:
    out = tmp_path / name
    out.mkdir()
    cb = JWBDHCallback(preset=_preset(METRICS), num_media_samples=0, **cb_kwargs)
    trainer = _trainer(
        out, [cb, *callbacks, Recorder(str(out))], devices=devices, epochs=1, num_sanity_val_steps=0
    )
    trainer.fit(ToyGenerator(), DataLoader(data, batch_size=1), DataLoader(data, batch_size=1))
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(devices)]


def _assert_results_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for region in a:
        assert set(a[region]) == set(b[region])
        for key, value in a[region].items():
            other = b[region][key]
            assert (math.isnan(value) and math.isnan(other)) or value == pytest.approx(other, rel=1e-6), (
                region,
                key,
            )


def test_max_batches_counts_the_batches_of_all_ranks(tmp_path):
    data = Subset(list(range(8)))
    # 2 ranks: rank 0 sees items 0, 2, 4, 6 and rank 1 items 1, 3, 5, 7 (Lightning's distributed sampler);
    # global batch i * 2 + r < 3 keeps items 0, 2 on rank 0 and item 1 on rank 1.
    double = _run(tmp_path, "two", 2, data, max_batches=3)
    single = _run(tmp_path, "one", 1, data, max_batches=3)  # items 0, 1, 2
    first_three = _run(tmp_path, "three", 1, Subset([0, 1, 2]))  # the same videos, no limit
    for record in double:
        assert record["num_batches"] == 3  # in total, on every rank
        _assert_results_equal(record["results"], single[0]["results"])
    assert single[0]["num_batches"] == 3 and first_three[0]["num_batches"] == 3
    _assert_results_equal(single[0]["results"], first_three[0]["results"])
    # a per-rank limit would have scored 6 videos: the numbers differ from those of items 3..5 added
    six = _run(tmp_path, "six", 1, Subset(list(range(6))))
    assert six[0]["results"]["whole_body"]["SSIM"] != pytest.approx(
        single[0]["results"]["whole_body"]["SSIM"], rel=1e-6
    )


def test_uneven_regions_give_the_same_global_skip_counts_on_every_rank(tmp_path):
    # item 0 (rank 0): face and hands; item 1 (rank 1): no face (zero-score keypoints) and no hands
    data = Subset([0, 1], faceless=(1,))
    double = _run(tmp_path, "two", 2, data)
    single = _run(tmp_path, "one", 1, data)
    rank0, rank1 = double
    assert rank0["skips"] == rank1["skips"] == single[0]["skips"]
    # by hand: the faceless, handless video of rank 1 is skipped once in the face and once in the hand region
    assert rank0["skips"]["face"] == 1 and rank0["skips"]["hand"] == 1 and rank0["skips"]["whole_body"] == 0
    assert rank0["logged"]["val/jwbdh_uncalibrated_skipped/face"] == 1.0
    for record in double:
        _assert_results_equal(record["results"], single[0]["results"])


def test_a_metric_raising_on_one_rank_is_a_counted_skip_and_does_not_hang(tmp_path):
    data = Subset([0, 1, 2, 3])  # rank 0: items 0, 2; rank 1: items 1, 3
    double = _run(tmp_path, "two", 2, data, callbacks=[FailOnRank(1, "whole_body", "SSIM")])
    single = _run(tmp_path, "all", 1, data)[0]
    everything = single["results"]
    rank0_only = _run(tmp_path, "rank0", 1, Subset([0, 2]))[0]["results"]
    assert single["skips"]["whole_body/SSIM"] == 0
    for record in double:
        # both whole-body videos of rank 1 were skipped by SSIM, counted on every rank; the other skips
        # (regions without hands, 1-frame face crops for SC) are those of the single process
        assert record["skips"] == {**single["skips"], "whole_body/SSIM": 2}
        results = record["results"]
        assert results["whole_body"]["SSIM"] == pytest.approx(rank0_only["whole_body"]["SSIM"], rel=1e-6)
        assert results["whole_body"]["SSIM"] != pytest.approx(everything["whole_body"]["SSIM"], rel=1e-6)
        # the other metrics, and SSIM in the other regions, saw every video
        for region, values in results.items():
            for key, value in values.items():
                if (region, key) != ("whole_body", "SSIM"):
                    assert value == pytest.approx(everything[region][key], rel=1e-6), (region, key)
