"""Word error rate of synthetic speech: :class:`WordErrorRate` (EmergentTTS-Eval, ``shared/spec/tts.md`` s3).

jiwer hit/substitution/deletion/insertion counts after a configurable normalisation (``"emergent"``
reproduces EmergentTTS-Eval). Reports corpus WER (pooled counts) and the mean of per-utterance WER, which is
what EmergentTTS-Eval and the paper's Table 1 report (there in percent). Takes transcripts, or audio plus a
:class:`~metrics.transcribers.Transcriber`. States are fixed-size and sum-reduced (DESIGN s3). Rates are
fractions. Never imports Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from metrics.functional.speech import Normalization, get_normalizer, utterance_wer, word_edit_counts
from metrics.speech.categories import category_index, check_categories
from metrics.transcribers import Transcriber, transcribe_with_retries

__all__ = ["WordErrorRate"]


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
        self.categories = check_categories(categories)
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
        cat_idx = category_index(self.categories, categories, n, self.counts.device)
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
