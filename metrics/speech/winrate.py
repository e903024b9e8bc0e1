"""Judge win-rate of a candidate TTS against a baseline: :class:`WinRate`, :func:`judge_candidate`.

* :class:`WinRate`: per category, counts of candidate wins, losses (baseline wins), ties and invalid verdicts;
  ``W = (wins + 0.5 ties) / valid`` with invalid verdicts excluded from the denominator, pooled (micro) and
  per category, plus a Wilson 95 % interval (:func:`~metrics.functional.speech.wilson_interval` says why).
  EmergentTTS-Eval's rules, ``shared/spec/tts.md`` s1; fixed-size, sum-reduced states (DESIGN s3).
* :func:`judge_candidate`: one candidate-vs-baseline judgement with seeded position randomisation (recorded in
  the returned :class:`Judgement`) and an optional both-orders mode.

Rates are fractions (multiply by 100 to compare with Table 1). Never imports Lightning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torchmetrics import Metric

from metrics.functional.speech import (
    JUDGE_SAMPLE_RATE,
    Outcome,
    as_mono_waveform,
    candidate_position,
    combine_orders,
    outcome_counts,
    resample_audio,
    verdict_to_outcome,
    wilson_interval,
    win_rate_from_counts,
)
from metrics.speech.categories import category_index, check_categories
from metrics.speech.judging import Judge, Verdict

__all__ = ["Judgement", "OrderRule", "WinRate", "judge_candidate"]

logger = logging.getLogger(__name__)

OrderRule = Literal["conservative", "separate"]


class WinRate(Metric):
    """Judge win-rate of a candidate TTS against a baseline, pooled and per category, with a Wilson interval.

    State: ``counts [4, C]`` int64 (rows indexed by :class:`Outcome`: LOSS, WIN, TIE, INVALID; one column per
    category), ``dist_reduce_fx="sum"``.

    ``compute()`` returns a dict of scalar tensors: ``win_rate = (wins + 0.5 ties) / valid`` (pooled over all
    valid judgements, i.e. a micro-average, as EmergentTTS-Eval's ``eval/win_rate``), ``tie_rate``,
    ``ci_low`` / ``ci_high`` (Wilson score interval at ``confidence``), ``wins``, ``ties``, ``losses``,
    ``valid`` and ``invalid``; with categories the same keys as ``"{category}/win_rate"`` etc. Invalid
    verdicts (judge failures) are counted but excluded from every denominator. Rates with no valid judgement
    are NaN.

    Example:
        >>> wr = WinRate(categories=["Emotions", "Questions"])
        >>> wr.update(["win", "tie", "loss", "invalid"],
        ...           categories=["Emotions", "Emotions", "Questions", "Questions"])
        >>> out = wr.compute()
        >>> out["win_rate"].item(), out["Emotions/win_rate"].item(), out["invalid"].item()
        (0.5, 0.75, 1)
    """

    is_differentiable: bool = False
    higher_is_better: bool = True
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    counts: Tensor

    def __init__(
        self, categories: Sequence[str] | None = None, confidence: float = 0.95, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.categories = check_categories(categories)
        if isinstance(confidence, bool) or not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be a float in (0, 1), got {confidence!r}")
        self.confidence = confidence
        n = len(self.categories) if self.categories else 1
        self.add_state("counts", torch.zeros(len(Outcome), n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, outcomes: Sequence[Any] | Tensor, categories: str | Sequence[str] | None = None) -> None:
        """Add judged samples: :class:`Outcome` values, their ints, or 'win'/'loss'/'tie'/'invalid'."""
        if isinstance(outcomes, Tensor):
            if (
                outcomes.ndim != 1
                or outcomes.is_floating_point()
                or outcomes.is_complex()
                or (outcomes.dtype == torch.bool)
            ):
                raise ValueError(
                    f"outcomes must be a 1-D integer tensor, got {outcomes.dtype} {tuple(outcomes.shape)}"
                )
            if outcomes.numel() and (outcomes.min() < 0 or outcomes.max() >= len(Outcome)):
                raise ValueError("outcomes must hold Outcome values 0..3 (LOSS, WIN, TIE, INVALID)")
            codes = outcomes.to(device=self.counts.device, dtype=torch.long)
        else:
            if isinstance(outcomes, str) or not isinstance(outcomes, Sequence):
                raise ValueError(
                    f"outcomes must be a sequence of outcomes or a tensor, got {type(outcomes).__name__}"
                )
            codes = torch.tensor(
                [int(Outcome.parse(o, f"outcomes[{i}]")) for i, o in enumerate(outcomes)],
                dtype=torch.long,
                device=self.counts.device,
            )
        n = int(codes.numel())
        idx = category_index(self.categories, categories, n, self.counts.device)
        if n:
            self.counts += outcome_counts(codes, idx, self.counts.shape[1])

    def update_verdicts(
        self,
        winners: Sequence[int | None],
        candidate_positions: Sequence[int],
        categories: str | Sequence[str] | None = None,
    ) -> None:
        """Add raw judge verdicts (0 tie, 1/2 the winning position, -1/None failure) + candidate positions."""
        if len(winners) != len(candidate_positions):
            raise ValueError(
                f"winners and candidate_positions must have the same length, got {len(winners)} and "
                f"{len(candidate_positions)}"
            )
        self.update([verdict_to_outcome(w, p) for w, p in zip(winners, candidate_positions)], categories)

    def _summary(self, counts: Tensor) -> dict[str, Tensor]:
        losses, wins, ties, invalid = counts.unbind(0)
        rate, tie_rate = win_rate_from_counts(wins, ties, losses)
        valid = wins + ties + losses
        low, high = wilson_interval(rate, valid, self.confidence)
        return {
            "win_rate": rate,
            "tie_rate": tie_rate,
            "ci_low": low,
            "ci_high": high,
            "wins": wins,
            "ties": ties,
            "losses": losses,
            "valid": valid,
            "invalid": invalid,
        }

    def compute(self) -> dict[str, Tensor]:
        """Pooled and per-category win-rate, tie rate, Wilson interval and counts (keys: class docstring)."""
        out = self._summary(self.counts.sum(1))
        if self.categories:
            per = self._summary(self.counts)
            for i, cat in enumerate(self.categories):
                for key, value in per.items():
                    out[f"{cat}/{key}"] = value[i]
        return out

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Plot the pooled win-rate with torchmetrics' plotting helper."""
        val = val if val is not None else self.compute()
        if isinstance(val, dict):
            val = {k: v for k, v in val.items() if k in ("win_rate", "tie_rate")}
        return self._plot(val, ax)


# ----------------------------------------------------------------------------------------------------------
# One candidate-vs-baseline judgement with position randomisation
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """The judge's decision(s) for one prompt, from the candidate's point of view.

    ``candidate_position`` is where the candidate was played in the first (or only) judgement (1 = first);
    with ``both_orders`` the second judgement swaps the order. ``order_outcomes`` holds one :class:`Outcome`
    per judgement, ``outcome`` the consolidated result (MT-Bench's conservative rule for two orders).
    """

    index: int
    category: str
    candidate_position: int
    verdicts: tuple[Verdict, ...]
    order_outcomes: tuple[Outcome, ...]
    outcome: Outcome

    def outcomes(self, rule: OrderRule = "conservative") -> tuple[Outcome, ...]:
        """What to count: ``(outcome,)`` for ``"conservative"``, every order's outcome for ``"separate"``."""
        if rule == "conservative":
            return (self.outcome,)
        if rule == "separate":
            return self.order_outcomes
        raise ValueError(f"rule must be 'conservative' or 'separate', got {rule!r}")

    @property
    def reasoning(self) -> str:
        return "\n---\n".join(v.reasoning or (v.error or "") for v in self.verdicts)


def _safe_judge(judge: Judge, text: str, category: str, a: Tensor, b: Tensor, sample_rate: int) -> Verdict:
    try:
        verdict = judge.judge(text, category, a, b, sample_rate)
    except Exception as err:  # a judge must never take training down
        logger.warning(
            "judge %r raised %s: %s; counted as invalid", type(judge).__name__, type(err).__name__, err
        )
        return Verdict.invalid(f"{type(err).__name__}: {err}")
    if not isinstance(verdict, Verdict):
        logger.warning(
            "judge %r returned %r instead of a Verdict; counted as invalid", type(judge).__name__, verdict
        )
        return Verdict.invalid(f"judge returned {type(verdict).__name__}, not a Verdict")
    return verdict


def judge_candidate(
    judge: Judge,
    text: str,
    category: str,
    candidate: Any,
    baseline: Any,
    sample_rate: int,
    *,
    index: int,
    seed: int | None = 0,
    both_orders: bool = False,
    baseline_sample_rate: int | None = None,
) -> Judgement:
    """Judge ``candidate`` against ``baseline`` for ``text``, randomising which one is played first.

    The candidate's position comes from :func:`~metrics.functional.speech.candidate_position`
    ``(index, seed)``, so it is reproducible and identical for every system and DDP rank. Both clips are
    converted to 16 kHz mono before judging. Exceptions raised by the judge (or by bad audio) give an
    invalid verdict, never an error.

    Example:
        >>> class AlwaysFirst:
        ...     def judge(self, text, category, audio_a, audio_b, sample_rate):
        ...         return Verdict(winner=1)
        >>> j = judge_candidate(AlwaysFirst(), "Hi!", "Emotions", torch.zeros(800), torch.zeros(800), 16_000,
        ...                     index=0, both_orders=True)
        >>> j.order_outcomes[0] != j.order_outcomes[1], j.outcome.name   # pure position bias -> tie
        (True, 'TIE')
    """
    base_rate = sample_rate if baseline_sample_rate is None else baseline_sample_rate
    try:
        cand = resample_audio(as_mono_waveform(candidate, "candidate"), sample_rate, JUDGE_SAMPLE_RATE)
        base = resample_audio(as_mono_waveform(baseline, "baseline"), base_rate, JUDGE_SAMPLE_RATE)
    except ValueError as err:
        logger.warning("prompt %d: unusable audio (%s); counted as invalid", index, err)
        pos = candidate_position(index, seed)
        bad = Verdict.invalid(f"unusable audio: {err}", attempts=0)
        return Judgement(index, category, pos, (bad,), (Outcome.INVALID,), Outcome.INVALID)
    pos = candidate_position(index, seed)
    orders = [pos, 3 - pos] if both_orders else [pos]
    verdicts, outcomes = [], []
    for p in orders:
        a, b = (cand, base) if p == 1 else (base, cand)
        verdict = _safe_judge(judge, text, category, a, b, JUDGE_SAMPLE_RATE)
        verdicts.append(verdict)
        outcomes.append(verdict_to_outcome(verdict.winner if verdict.valid else None, p))
    outcome = combine_orders(*outcomes) if both_orders else outcomes[0]
    return Judgement(index, category, pos, tuple(verdicts), tuple(outcomes), outcome)
