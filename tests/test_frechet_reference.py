"""Public reference-statistics API of the Fréchet metrics: freeze, read, set (and the suite's use of it).

Values are checked against sums and a Fréchet distance computed here with numpy/scipy from the raw features.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from metrics.frechet import FrechetDistance
from tests.ddp import run_ddp

D = 5


def _features(seed: int, n: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=torch.float64) + shift


def _scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_freeze_keeps_the_reference_side_across_resets() -> None:
    real, fake = _features(0, 40), _features(1, 30, shift=0.5)
    metric = FrechetDistance(num_features=D, mode="pooled")
    assert not metric.reference_frozen and metric.reference_statistics() is None
    metric.update(real[:25], real=True)
    metric.update(real[25:], real=True)
    metric.freeze_reference()

    assert metric.reference_frozen
    s, ss, n = metric.reference_statistics()
    assert n == 40
    torch.testing.assert_close(s, real.sum(0))
    torch.testing.assert_close(ss, real.T @ real)
    assert int(metric.real_count) == 0 and float(metric.real_sum.abs().sum()) == 0.0

    expected = _scipy_frechet(real.numpy(), fake.numpy())
    for _ in range(2):  # two "epochs": the generated side is refilled, the reference side is never fed again
        metric.reset()
        metric.update(fake, real=False)
        assert float(metric.compute()) == pytest.approx(expected, rel=1e-8)
    assert metric.reference_statistics()[2] == 40


def test_set_reference_statistics_round_trip_and_freeze_after_loading() -> None:
    real, more, fake = _features(2, 20), _features(3, 15), _features(4, 25, shift=-0.3)
    source = FrechetDistance(num_features=D, mode="pooled")
    source.update(real, real=True)
    source.freeze_reference()

    target = FrechetDistance(num_features=D, mode="pooled")
    target.set_reference_statistics(*source.reference_statistics())
    target.update(more, real=True)  # accumulated on top of the set statistics
    target.update(fake, real=False)
    both = torch.cat([real, more])
    assert float(target.compute()) == pytest.approx(_scipy_frechet(both.numpy(), fake.numpy()), rel=1e-8)

    target.freeze_reference()  # set + accumulated, counted once
    s, ss, n = target.reference_statistics()
    assert n == 35
    torch.testing.assert_close(s, both.sum(0))
    torch.testing.assert_close(ss, both.T @ both)
    # the returned tensors are copies: editing them does not change the metric
    s.zero_()
    assert float(target.reference_statistics()[0].abs().sum()) > 0


def test_set_reference_statistics_rejects_bad_input() -> None:
    metric = FrechetDistance(num_features=D, mode="pooled")
    good_s, good_ss = torch.zeros(D, dtype=torch.float64), torch.eye(D, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"`feature_sum` must be a tensor of shape \(5,\)"):
        metric.set_reference_statistics(torch.zeros(D + 1), good_ss, 3)
    with pytest.raises(ValueError, match=r"`outer_sum` must be a tensor of shape \(5, 5\)"):
        metric.set_reference_statistics(good_s, torch.eye(D + 1), 3)
    with pytest.raises(ValueError, match="`count` must be >= 0, got -1"):
        metric.set_reference_statistics(good_s, good_ss, -1)
    bad = good_ss.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="must be finite"):
        metric.set_reference_statistics(good_s, bad, 3)
    assert not metric.reference_frozen
    per_video = FrechetDistance(num_features=D)
    for call in (per_video.freeze_reference, lambda: per_video.set_reference_statistics(good_s, good_ss, 3)):
        with pytest.raises(RuntimeError, match="needs mode='pooled'"):
            call()


def _freeze_worker(rank: int, world_size: int, real: torch.Tensor, fake: torch.Tensor) -> dict:
    metric = FrechetDistance(num_features=D, mode="pooled")
    metric.update(real[rank::world_size], real=True)
    metric.freeze_reference()
    metric.reset()
    metric.update(fake[rank::world_size], real=False)
    return {"value": float(metric.compute()), "stats": metric.reference_statistics()}


@pytest.mark.ddp
def test_freeze_under_ddp_counts_every_rank_once() -> None:
    real, fake = _features(5, 31), _features(6, 22, shift=0.4)
    results = run_ddp(_freeze_worker, world_size=2, args=(real, fake))
    expected = _scipy_frechet(real.numpy(), fake.numpy())
    for result in results:
        s, ss, n = result["stats"]
        assert n == 31  # global, and not doubled by a second sync in compute
        torch.testing.assert_close(s, real.sum(0))
        torch.testing.assert_close(ss, real.T @ real)
        assert result["value"] == pytest.approx(expected, rel=1e-8)
