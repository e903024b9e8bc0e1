"""WinRate: hand-computed cases, Wilson interval vs scipy, verdict mapping and position randomisation."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from metrics.functional.speech import (
    Outcome,
    candidate_position,
    combine_orders,
    verdict_to_outcome,
    wilson_interval,
)
from metrics.judges import Verdict
from metrics.speech import WinRate, judge_candidate

W, L, T, I = Outcome.WIN, Outcome.LOSS, Outcome.TIE, Outcome.INVALID  # noqa: E741


def test_hand_computed_ties_invalid_and_pooled_vs_per_category():
    wr = WinRate(categories=["Emotions", "Questions", "Foreign Words"])
    wr.update([W, W, T, L, I], categories="Emotions")
    wr.update(["tie", "tie", "invalid", "invalid"], categories=["Questions"] * 4)
    out = wr.compute()
    # Emotions: 2 wins, 1 tie, 1 loss valid (the invalid one is not in the denominator)
    assert out["Emotions/win_rate"].item() == pytest.approx((2 + 0.5) / 4)
    assert out["Emotions/tie_rate"].item() == pytest.approx(1 / 4)
    assert out["Emotions/invalid"].item() == 1 and out["Emotions/valid"].item() == 4
    # Questions: 2 ties over 2 valid
    assert out["Questions/win_rate"].item() == 0.5 and out["Questions/tie_rate"].item() == 1.0
    assert out["Questions/invalid"].item() == 2
    # pooled = micro average over the 6 valid judgements, not the mean of the category rates (0.5625)
    assert out["win_rate"].item() == pytest.approx((2 + 0.5 * 3) / 6)
    assert out["tie_rate"].item() == pytest.approx(3 / 6)
    assert (out["wins"].item(), out["ties"].item(), out["losses"].item(), out["invalid"].item()) == (
        2,
        3,
        1,
        3,
    )
    # a category without judgements gives NaN rates and zero counts
    assert math.isnan(out["Foreign Words/win_rate"].item()) and math.isnan(out["Foreign Words/ci_low"].item())
    assert out["Foreign Words/valid"].item() == 0


def test_all_invalid_gives_nan_and_counts_them():
    wr = WinRate()
    wr.update(torch.tensor([3, 3, 3]))
    out = wr.compute()
    assert math.isnan(out["win_rate"].item()) and out["invalid"].item() == 3 and out["valid"].item() == 0


@pytest.mark.parametrize("wins, n", [(0, 10), (3, 10), (7, 20), (20, 20), (140, 280), (1, 1)])
def test_wilson_interval_matches_scipy_without_ties(wins, n):
    wr = WinRate()
    wr.update([W] * wins + [L] * (n - wins))
    out = wr.compute()
    ci = binomtest(wins, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert out["ci_low"].item() == pytest.approx(ci.low, abs=1e-9)
    assert out["ci_high"].item() == pytest.approx(ci.high, abs=1e-9)
    assert out["ci_low"].item() <= out["win_rate"].item() <= out["ci_high"].item()


def test_wilson_interval_with_ties_and_other_levels():
    # 4 wins + 2 ties + 4 losses: score 0.5 on n = 10 -> same interval as 5 of 10
    wr = WinRate(confidence=0.9)
    wr.update([W] * 4 + [T] * 2 + [L] * 4)
    out = wr.compute()
    ci = binomtest(5, 10).proportion_ci(confidence_level=0.9, method="wilson")
    assert (out["ci_low"].item(), out["ci_high"].item()) == pytest.approx((ci.low, ci.high), abs=1e-9)
    # hand-derived: p = 0.5, n = 4, z = 1.959964: centre 0.5, half = z/(1+z^2/4) * sqrt(1/16 + z^2/64)
    z = 1.959963984540054
    half = z / (1 + z * z / 4) * math.sqrt(0.25 / 4 + z * z / 64)
    low, high = wilson_interval(torch.tensor([0.5]), torch.tensor([4]), 0.95)
    assert low.item() == pytest.approx(0.5 - half) and high.item() == pytest.approx(0.5 + half)
    with pytest.raises(ValueError, match="confidence"):
        WinRate(confidence=1.5)


@pytest.mark.parametrize(
    "winner, position, expected",
    [
        (1, 1, W),
        (2, 1, L),
        (0, 1, T),
        (2, 2, W),
        (1, 2, L),
        (0, 2, T),
        (-1, 1, I),
        (None, 2, I),
        (3, 1, I),
        ("1", 1, I),
        (True, 1, I),
        (np.int64(2), 2, W),
    ],
)
def test_verdict_to_outcome(winner, position, expected):
    assert verdict_to_outcome(winner, position) is expected


def test_verdict_to_outcome_bad_position():
    with pytest.raises(ValueError, match="candidate_position"):
        verdict_to_outcome(1, 0)


def test_update_verdicts_equals_mapped_outcomes():
    a, b = WinRate(), WinRate()
    winners, positions = [1, 2, 0, -1, 2, 1], [1, 1, 2, 2, 2, 2]
    a.update_verdicts(winners, positions)
    b.update([W, L, T, I, W, L])
    assert torch.equal(a.counts, b.counts)


def test_combine_orders_conservative_rule():
    assert combine_orders(W, W) is W and combine_orders(L, L) is L and combine_orders(T, T) is T
    assert combine_orders(W, L) is T and combine_orders(L, W) is T  # disagreement = position bias -> tie
    assert combine_orders(W, T) is T and combine_orders(T, L) is T
    assert combine_orders(W, I) is I and combine_orders(I, I) is I


def test_position_randomisation_is_seeded_and_reproduces_emergenttts():
    # seed=None: EmergentTTS-Eval's rule, default_rng(row).random() > 0.5 puts the baseline first
    for i in range(50):
        baseline_first = np.random.default_rng(seed=i).random() > 0.5
        assert candidate_position(i, None) == (2 if baseline_first else 1)
    pos = [candidate_position(i, seed=7) for i in range(2000)]
    assert pos == [candidate_position(i, seed=7) for i in range(2000)]  # reproducible
    assert pos != [candidate_position(i, seed=8) for i in range(2000)]  # seed matters
    assert 0.45 < pos.count(1) / len(pos) < 0.55  # about half the samples play the candidate first
    with pytest.raises(ValueError, match="index"):
        candidate_position(-1)


# --------------------------------------------------------------------------------- judge_candidate mapping
def loud(n=1600):
    return 0.5 * torch.sin(torch.arange(n) * 0.3)


def quiet(n=1600):
    return 0.05 * torch.sin(torch.arange(n) * 0.2)


class LoudnessJudge:
    """Prefers the louder clip (the candidate in these tests); records what it was given."""

    def __init__(self, tie=False):
        self.calls, self.tie, self.lock = [], tie, threading.Lock()

    def judge(self, text, category, audio_a, audio_b, sample_rate):
        with self.lock:
            self.calls.append((audio_a.pow(2).mean().item(), audio_b.pow(2).mean().item(), sample_rate))
        if self.tie:
            return Verdict(winner=0, reasoning="same")
        return Verdict(
            winner=1 if audio_a.pow(2).mean() > audio_b.pow(2).mean() else 2, reasoning="louder wins"
        )


class FirstJudge:
    def judge(self, text, category, audio_a, audio_b, sample_rate):
        return Verdict(winner=1, reasoning="always the first")


def test_position_maps_back_correctly_in_both_orders():
    judge = LoudnessJudge()
    seen = set()
    for index in range(12):
        j = judge_candidate(judge, "Hi!", "Emotions", loud(), quiet(), 16_000, index=index, seed=3)
        pos = candidate_position(index, 3)
        assert j.candidate_position == pos
        seen.add(pos)
        a_energy, b_energy, rate = judge.calls[-1]
        assert rate == 16_000
        assert (a_energy > b_energy) == (pos == 1)  # the candidate was really played at its recorded position
        assert (
            j.verdicts[0].winner == pos and j.outcome is W
        )  # the judge's "pos" maps back to a candidate win
    assert seen == {1, 2}

    # a judge that always says "first" gives wins exactly where the candidate was first
    wr = WinRate()
    outcomes = [
        judge_candidate(FirstJudge(), "Hi", "Emotions", loud(), quiet(), 16_000, index=i).outcome
        for i in range(20)
    ]
    wr.update(outcomes)
    first = sum(candidate_position(i, 0) == 1 for i in range(20))
    assert wr.compute()["wins"].item() == first and wr.compute()["losses"].item() == 20 - first


def test_both_orders_mode_cancels_position_bias():
    j = judge_candidate(FirstJudge(), "Hi", "Questions", loud(), quiet(), 16_000, index=5, both_orders=True)
    pos = candidate_position(5, 0)
    assert len(j.verdicts) == 2 and j.order_outcomes == ((W, L) if pos == 1 else (L, W))
    assert j.outcome is T
    assert j.outcomes("conservative") == (T,) and sorted(j.outcomes("separate")) == [L, W]
    fair = judge_candidate(
        LoudnessJudge(), "Hi", "Questions", loud(), quiet(), 16_000, index=5, both_orders=True
    )
    assert fair.order_outcomes == (W, W) and fair.outcome is W
    with pytest.raises(ValueError, match="rule"):
        j.outcomes("average")


def test_different_sample_rates_are_resampled_to_16k():
    judge = LoudnessJudge(tie=True)
    j = judge_candidate(
        judge, "Hi", "Emotions", loud(2400), quiet(4410), 24_000, index=0, baseline_sample_rate=44_100
    )
    assert j.outcome is T and judge.calls[0][2] == 16_000


class RaisingJudge:
    def judge(self, *args):
        raise TimeoutError("judge timed out")


class GarbageJudge:
    def judge(self, *args):
        return {"winner": 1}


@pytest.mark.parametrize("judge", [RaisingJudge(), GarbageJudge()])
def test_failing_judges_give_invalid_not_errors(judge):
    j = judge_candidate(judge, "Hi", "Emotions", loud(), quiet(), 16_000, index=1)
    assert j.outcome is I and j.verdicts[0].winner == -1 and j.verdicts[0].error


def test_unusable_audio_is_invalid_without_calling_the_judge():
    judge = LoudnessJudge()
    j = judge_candidate(judge, "Hi", "Emotions", torch.full((10,), float("nan")), quiet(), 16_000, index=1)
    assert j.outcome is I and judge.calls == [] and "NaN" in j.verdicts[0].error


@pytest.mark.parametrize(
    "outcomes, categories, match",
    [
        (["victory"], None, "outcomes"),
        ([5], None, "outcomes"),
        (torch.tensor([0.5]), None, "integer"),
        (torch.tensor([4]), None, "0..3"),
        ("win", None, "sequence"),
        (["win"], ["Nope"], "categories"),
    ],
)
def test_bad_winrate_inputs(outcomes, categories, match):
    wr = WinRate(categories=["Emotions"]) if categories else WinRate()
    with pytest.raises(ValueError, match=match):
        wr.update(outcomes, categories=categories)


def test_metric_attributes():
    assert WinRate.higher_is_better is True and WinRate.is_differentiable is False
    assert WinRate.full_state_update is False
    assert (WinRate.plot_lower_bound, WinRate.plot_upper_bound) == (0.0, 1.0)
    wr = WinRate(categories=["A", "B"])
    assert wr.counts.shape == (4, 2) and wr._reductions["counts"].__name__ in ("dim_zero_sum", "sum")
