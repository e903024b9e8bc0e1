"""Speech metrics of the JWB-DH-V1 TTS track: :class:`WordErrorRate` and judge :class:`WinRate`.

Both follow EmergentTTS-Eval (``shared/spec/tts.md``) and the rules of DESIGN s3: fixed-size, sum-reduced
states (per-category counts are tensors sized by the category list), so ranks with different numbers of
updates, or a category present on one rank only, sync without deadlock and memory does not grow with the
number of utterances.

* :class:`WordErrorRate`: jiwer hit/substitution/deletion/insertion counts after a configurable normalisation
  (``"emergent"`` reproduces EmergentTTS-Eval). Reports corpus WER (pooled counts) and the mean of
  per-utterance WER, which is what EmergentTTS-Eval and the paper's Table 1 report (there in percent).
  Takes transcripts, or audio plus a :class:`~metrics.transcribers.Transcriber`.
* :class:`WinRate`: per category, counts of candidate wins, losses (baseline wins), ties and invalid verdicts;
  ``W = (wins + 0.5 ties) / valid`` with invalid verdicts excluded from the denominator, pooled (micro) and
  per category, plus a Wilson 95 % interval (:func:`~metrics.functional.speech.wilson_interval` says why).
* :func:`judge_candidate`: one candidate-vs-baseline judgement with seeded position randomisation (recorded in
  the returned :class:`Judgement`) and an optional both-orders mode.

All rates are fractions (multiply by 100 to compare with Table 1). This module never imports Lightning.
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
    Normalization,
    Outcome,
    as_mono_waveform,
    candidate_position,
    combine_orders,
    get_normalizer,
    outcome_counts,
    resample_audio,
    utterance_wer,
    verdict_to_outcome,
    wilson_interval,
    win_rate_from_counts,
    word_edit_counts,
)
from metrics.judges import Judge, Verdict
from metrics.transcribers import Transcriber, transcribe_with_retries

__all__ = ["Judgement", "Outcome", "WinRate", "WordErrorRate", "judge_candidate"]

logger = logging.getLogger(__name__)

OrderRule = Literal["conservative", "separate"]


def _check_categories(categories: Sequence[str] | None) -> tuple[str, ...] | None:
    if categories is None:
        return None
    if isinstance(categories, str) or not isinstance(categories, Sequence) or len(categories) == 0:
        raise ValueError(f"categories must be a non-empty sequence of str or None, got {categories!r}")
    cats = tuple(categories)
    for c in cats:
        if not isinstance(c, str) or not c or "/" in c:
            raise ValueError(f"categories must hold non-empty str without '/', got {c!r}")
    if len(set(cats)) != len(cats):
        raise ValueError(f"categories must be unique, got {list(cats)}")
    return cats


def _category_index(
    known: tuple[str, ...] | None, categories: str | Sequence[str] | None, n: int, device: torch.device
) -> Tensor:
    """Map per-sample category names to indices into ``known`` (everything to 0 when ``known`` is None)."""
    if known is None:
        if categories is not None:
            raise ValueError(
                "categories were given to update() but the metric was built without categories; "
                "pass categories=[...] to the constructor"
            )
        return torch.zeros(n, dtype=torch.long, device=device)
    if categories is None:
        raise ValueError(f"categories is required (one of {list(known)} per sample, or one str for all)")
    names = [categories] * n if isinstance(categories, str) else list(categories)
    if len(names) != n:
        raise ValueError(f"categories must have one entry per sample ({n}), got {len(names)}")
    lookup = {c: i for i, c in enumerate(known)}
    idx = []
    for i, c in enumerate(names):
        if c not in lookup:
            raise ValueError(f"categories[{i}] must be one of {list(known)}, got {c!r}")
        idx.append(lookup[c])
    return torch.tensor(idx, dtype=torch.long, device=device)


class WordErrorRate(Metric):
    """Word error rate with jiwer counts, corpus-level and mean-per-utterance, per category.

    States (all ``dist_reduce_fx="sum"``), one row per category (a single row without categories):
    ``counts [C, 4]`` int64 (hits, substitutions, deletions, insertions), ``utterance_wer_sum [C]`` float64,
    ``utterances [C]`` int64 and ``asr_failed [C]`` int64 (audio whose transcription failed; excluded).

    ``compute()`` returns a dict of scalar tensors:

    * ``wer``: corpus WER ``(S + D + I) / (H + S + D)`` over every utterance (as ``jiwer.wer`` on the lists);
    * ``wer_utterance_mean``: mean of per-utterance WER (EmergentTTS-Eval's ``eval/wer``);
    * ``utterances``, ``asr_failed``, ``hits``, ``substitutions``, ``deletions``, ``insertions``;
    * with categories, ``"{category}/wer"``, ``"{category}/wer_utterance_mean"``, ``"{category}/utterances"``,
      ``"{category}/asr_failed"`` for each category.

    A bucket without utterances gives NaN rates. An utterance whose normalised reference is empty scores its
    number of inserted words (jiwer 4's rule), so empty hypotheses and references never raise.

    Args:
        categories: category names (fixed at construction so states have a fixed size), or None.
        normalization: ``"emergent"`` (EmergentTTS-Eval: lowercase, Whisper English normaliser,
            punctuation-only tokens dropped; needs ``whisper-normalizer``), ``"jiwer"`` (jiwer's default
            transform), ``"standardize"`` (jiwer's ``wer_standardize``), ``"none"`` or a ``str -> str``
            callable.
        transcriber: used when :meth:`update` gets audio instead of transcripts.
        asr_max_attempts: attempts per utterance for a failing transcriber.

    Example:
        >>> wer = WordErrorRate(categories=["Emotions", "Questions"], normalization="standardize")
        >>> wer.update(["Is it raining", "I am so happy"], ["is it raining", "i am happy"],
        ...            categories=["Questions", "Emotions"])
        >>> out = wer.compute()
        >>> round(out["wer"].item(), 4), round(out["wer_utterance_mean"].item(), 4)
        (0.1429, 0.125)
        >>> out["Emotions/wer"].item()
        0.25
    """

    is_differentiable: bool = False
    higher_is_better: bool = False
    full_state_update: bool = False
    plot_lower_bound: float = 0.0
    plot_upper_bound: float = 1.0

    counts: Tensor
    utterance_wer_sum: Tensor
    utterances: Tensor
    asr_failed: Tensor

    def __init__(
        self,
        categories: Sequence[str] | None = None,
        normalization: Normalization | Any = "emergent",
        transcriber: Transcriber | None = None,
        asr_max_attempts: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.categories = _check_categories(categories)
        self.normalization = normalization
        self._normalize = get_normalizer(normalization)
        if transcriber is not None and not hasattr(transcriber, "transcribe"):
            raise ValueError(
                f"transcriber must have a transcribe(waveforms, sample_rate) method, got {transcriber!r}"
            )
        # Plain attribute (never registered as a submodule): a Whisper model must not enter the state_dict.
        object.__setattr__(self, "transcriber", transcriber)
        self.asr_max_attempts = asr_max_attempts
        n = len(self.categories) if self.categories else 1
        self.add_state("counts", torch.zeros(n, 4, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("utterance_wer_sum", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("utterances", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("asr_failed", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        references: str | Sequence[str],
        hypotheses: str | Sequence[str] | None = None,
        categories: str | Sequence[str] | None = None,
        audio: Sequence[Any] | None = None,
        sample_rate: int | None = None,
    ) -> None:
        """Add utterances: ``references`` with ``hypotheses`` (transcripts) or ``audio`` + ``sample_rate``.

        A ``None`` hypothesis marks a failed transcription: counted in ``asr_failed``, left out of WER.
        """
        refs = [references] if isinstance(references, str) else references
        if not isinstance(refs, Sequence) or any(not isinstance(r, str) for r in refs):
            raise ValueError(f"references must be a str or a sequence of str, got {references!r:.200}")
        refs = list(refs)
        n = len(refs)
        if (hypotheses is None) == (audio is None):
            raise ValueError("exactly one of hypotheses (transcripts) or audio (waveforms) must be given")
        if audio is not None:
            if self.transcriber is None:
                raise ValueError("audio was given but the metric has no transcriber; pass transcriber=... ")
            if isinstance(audio, (str, bytes)) or not isinstance(audio, Sequence) or len(audio) != n:
                raise ValueError(
                    f"audio must be a sequence of {n} waveforms (one per reference), got {type(audio)}"
                )
            if sample_rate is None:
                raise ValueError("sample_rate (Hz) is required with audio")
            hyps: list[str | None] = transcribe_with_retries(
                self.transcriber, list(audio), sample_rate, max_attempts=self.asr_max_attempts
            )
        else:
            hyps_in = [hypotheses] if isinstance(hypotheses, str) else hypotheses
            if not isinstance(hyps_in, Sequence) or any(
                h is not None and not isinstance(h, str) for h in hyps_in
            ):
                raise ValueError(
                    f"hypotheses must be a str or a sequence of str (or None), got {hypotheses!r:.200}"
                )
            hyps = list(hyps_in)
            if len(hyps) != n:
                raise ValueError(f"hypotheses must have one entry per reference ({n}), got {len(hyps)}")
        cat_idx = _category_index(self.categories, categories, n, self.counts.device)
        ok = [i for i, h in enumerate(hyps) if h is not None]
        failed = [i for i, h in enumerate(hyps) if h is None]
        if failed:
            self.asr_failed += torch.bincount(cat_idx[failed], minlength=self.asr_failed.numel())
        if not ok:
            return
        ref_norm = [self._normalize(refs[i]) for i in ok]
        hyp_norm = [self._normalize(hyps[i]) for i in ok]  # type: ignore[arg-type]
        counts = word_edit_counts(ref_norm, hyp_norm).to(self.counts.device)
        idx = cat_idx[ok]
        self.counts.index_add_(0, idx, counts)
        self.utterance_wer_sum.index_add_(0, idx, utterance_wer(counts).to(self.utterance_wer_sum.dtype))
        self.utterances += torch.bincount(idx, minlength=self.utterances.numel())

    @staticmethod
    def _rates(counts: Tensor, wer_sum: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        c = counts.to(torch.float64)
        hits, subs, dels, ins = c.unbind(-1)
        ref_words = hits + subs + dels
        corpus = torch.where(ref_words > 0, (subs + dels + ins) / ref_words.clamp_min(1), ins)
        nan = torch.full_like(corpus, float("nan"))
        corpus = torch.where(n > 0, corpus, nan)
        mean = torch.where(n > 0, wer_sum / n.clamp_min(1).to(torch.float64), nan)
        return corpus, mean

    def compute(self) -> dict[str, Tensor]:
        """Corpus and mean-per-utterance WER, pooled and per category (the class docstring lists the keys)."""
        total_counts = self.counts.sum(0)
        corpus, mean = self._rates(total_counts, self.utterance_wer_sum.sum(), self.utterances.sum())
        out: dict[str, Tensor] = {
            "wer": corpus,
            "wer_utterance_mean": mean,
            "utterances": self.utterances.sum(),
            "asr_failed": self.asr_failed.sum(),
            "hits": total_counts[0],
            "substitutions": total_counts[1],
            "deletions": total_counts[2],
            "insertions": total_counts[3],
        }
        if self.categories:
            corpus_c, mean_c = self._rates(self.counts, self.utterance_wer_sum, self.utterances)
            for i, cat in enumerate(self.categories):
                out[f"{cat}/wer"] = corpus_c[i]
                out[f"{cat}/wer_utterance_mean"] = mean_c[i]
                out[f"{cat}/utterances"] = self.utterances[i]
                out[f"{cat}/asr_failed"] = self.asr_failed[i]
        return out

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Plot the pooled WER values (``wer``, ``wer_utterance_mean``) with torchmetrics' plotting helper."""
        val = val if val is not None else self.compute()
        if isinstance(val, dict):
            val = {k: v for k, v in val.items() if k in ("wer", "wer_utterance_mean")}
        return self._plot(val, ax)


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
        self.categories = _check_categories(categories)
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
        idx = _category_index(self.categories, categories, n, self.counts.device)
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
