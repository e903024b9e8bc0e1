"""Pure functions behind the speech metrics: text normalisation, word error counts, win-rate maths, audio.

Everything here is stateless and works on plain Python strings or small tensors; :mod:`metrics.speech`
wraps it in torchmetrics modules. The protocol follows EmergentTTS-Eval (``shared/spec/tts.md``):

* **WER.** Transcript and reference go through the same normalisation, then word-level Levenshtein counts
  come from ``jiwer.process_words`` (hits, substitutions, deletions, insertions). Corpus WER is
  ``(S + D + I) / (H + S + D)`` pooled over utterances; EmergentTTS reports the *mean of per-utterance*
  WER instead (spec s3), so both are provided. Empty references follow jiwer 4: an utterance whose
  normalised reference has no word scores its number of insertions (0 when the hypothesis is empty too).
* **Win-rate.** A judge verdict (0 tie, 1 first audio, 2 second audio, -1 failure) is mapped back to the
  candidate's point of view with the position the candidate was played in; ``W = (wins + 0.5 ties) / valid``,
  invalid verdicts are excluded from the denominator (spec s1).

Example:
    >>> refs = ["the cat sat on the mat", "hello world"]
    >>> hyps = ["the cat sat on a mat", ""]
    >>> counts = word_edit_counts(refs, hyps)   # columns: hits, substitutions, deletions, insertions
    >>> counts.tolist()
    [[5, 1, 0, 0], [0, 0, 2, 0]]
    >>> round(corpus_wer(counts.sum(0)).item(), 4)   # (1 + 2) / 8
    0.375
    >>> utterance_wer(counts).tolist()
    [0.16666666666666666, 1.0]
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import unicodedata
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "JUDGE_SAMPLE_RATE",
    "Normalization",
    "Outcome",
    "as_mono_waveform",
    "candidate_position",
    "combine_orders",
    "corpus_wer",
    "emergent_normalize",
    "get_normalizer",
    "normalize_texts",
    "outcome_counts",
    "resample_audio",
    "utterance_wer",
    "verdict_to_outcome",
    "wilson_interval",
    "win_rate_from_counts",
    "word_edit_counts",
    "word_error_rate",
]

#: Sample rate at which EmergentTTS-Eval hands audio to the judge and to Whisper.
JUDGE_SAMPLE_RATE = 16_000

TTS_EXTRA_HINT = 'pip install "jwbdh-callbacks[tts]"'

Normalization = Literal["emergent", "jiwer", "standardize", "none"]


# ----------------------------------------------------------------------------------------------------------
# Text normalisation
# ----------------------------------------------------------------------------------------------------------

_SPECIAL_TOKEN = re.compile(r"<\|.*?\|>")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r" ([!,.?;:])")


def _require_jiwer() -> Any:
    try:
        import jiwer
    except ImportError as err:  # pragma: no cover - jiwer is in the dev environment
        raise ImportError(
            f"WER needs the `jiwer` package (>= 4.0); install it with {TTS_EXTRA_HINT}"
        ) from err
    return jiwer


@functools.lru_cache(maxsize=1)
def _whisper_english_normalizer() -> Callable[[str], str]:
    """OpenAI Whisper's ``EnglishTextNormalizer``, from ``whisper_normalizer`` or ``openai-whisper``."""
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        try:
            from whisper.normalizers import EnglishTextNormalizer  # openai-whisper ships the same class
        except ImportError as err:
            raise ImportError(
                "normalization='emergent' needs Whisper's English text normaliser: install the "
                f"`whisper-normalizer` package (or openai-whisper): {TTS_EXTRA_HINT}"
            ) from err
    return EnglishTextNormalizer()


def _is_punctuation_token(token: str) -> bool:
    return all(unicodedata.category(ch).startswith("P") for ch in token)


def emergent_normalize(text: str) -> str:
    """Normalise one string the way EmergentTTS-Eval does before computing WER (spec/tts.md s3).

    Steps, in order: lowercase; replace ``<|...|>`` tokens by a space, collapse whitespace and delete a space
    before ``! , . ? ; :``, strip on the left; Whisper's ``EnglishTextNormalizer`` (drops bracketed text and
    fillers, expands contractions, spells numbers as digits, US spelling); drop whitespace-separated tokens
    made only of Unicode punctuation; lowercase again. Returns the words joined by single spaces.

    Example:
        >>> emergent_normalize("Hello, Mr. Smith! It's <|en|> twenty dollars... uh")  # doctest: +SKIP
        'hello mister smith it is $20'
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    normalizer = _whisper_english_normalizer()
    out = text.lower()
    out = _SPECIAL_TOKEN.sub(" ", out)
    out = _WHITESPACE.sub(" ", out)
    out = _SPACE_BEFORE_PUNCT.sub(r"\1", out)
    out = out.lstrip(" ")
    out = normalizer(out)
    tokens = [tok for tok in out.split(" ") if tok and not _is_punctuation_token(tok)]
    return " ".join(tokens).lower()


class _JiwerNormalizer:
    """jiwer's ``wer_default`` or ``wer_standardize`` as a picklable ``str -> str`` callable (DDP spawn)."""

    def __init__(self, name: str) -> None:
        _require_jiwer()
        self.name = name

    def __call__(self, text: str) -> str:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        jiwer = _require_jiwer()
        transform = jiwer.wer_default if self.name == "jiwer" else jiwer.wer_standardize
        words = transform(text)
        return " ".join(words[0]) if words else ""

    def __repr__(self) -> str:
        return f"jiwer_{self.name}"


def _jiwer_transform_normalizer(name: str) -> Callable[[str], str]:
    return _JiwerNormalizer(name)


def _identity(text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return text


def get_normalizer(normalization: Normalization | Callable[[str], str]) -> Callable[[str], str]:
    """Return the ``str -> str`` normaliser for a normalisation name or pass a callable through.

    * ``"emergent"``: :func:`emergent_normalize` (EmergentTTS-Eval; needs ``whisper-normalizer``).
    * ``"jiwer"``: jiwer's default WER transform (collapse spaces, strip; no lowercasing, punctuation kept).
    * ``"standardize"``: jiwer's ``wer_standardize`` (lowercase, expand contractions, drop ``[..]``/``<..>``).
    * ``"none"``: the text as given (words are still split on whitespace).
    """
    if callable(normalization):
        return normalization
    if normalization == "emergent":
        _whisper_english_normalizer()  # fail early with the install hint
        return emergent_normalize
    if normalization in ("jiwer", "standardize"):
        return _jiwer_transform_normalizer(normalization)
    if normalization == "none":
        return _identity
    raise ValueError(
        "normalization must be one of 'emergent', 'jiwer', 'standardize', 'none' or a callable str -> str, "
        f"got {normalization!r}"
    )


def _as_str_list(value: str | Sequence[str], name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a str or a sequence of str, got {type(value).__name__}")
    out = list(value)
    for i, item in enumerate(out):
        if not isinstance(item, str):
            raise ValueError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    return out


def normalize_texts(
    texts: str | Sequence[str], normalization: Normalization | Callable[[str], str], name: str = "texts"
) -> list[str]:
    """Apply a normalisation to every string; the result has one normalised string per input."""
    items = _as_str_list(texts, name)
    fn = get_normalizer(normalization)
    out = []
    for i, text in enumerate(items):
        norm = fn(text)
        if not isinstance(norm, str):
            raise ValueError(
                f"the normalization callable must return a str, got {type(norm).__name__} for {name}[{i}]"
            )
        out.append(norm)
    return out


# ----------------------------------------------------------------------------------------------------------
# WER arithmetic
# ----------------------------------------------------------------------------------------------------------


def word_edit_counts(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> Tensor:
    """Per-utterance word alignment counts from ``jiwer.process_words``.

    Inputs are already normalised; words are split on whitespace. Returns an ``int64`` tensor ``[N, 4]`` whose
    columns are hits, substitutions, deletions and insertions (jiwer's minimal unit-cost alignment).
    """
    refs = _as_str_list(references, "references")
    hyps = _as_str_list(hypotheses, "hypotheses")
    if len(refs) != len(hyps):
        raise ValueError(
            f"references and hypotheses must have the same length, got {len(refs)} references and "
            f"{len(hyps)} hypotheses"
        )
    if not refs:
        return torch.zeros(0, 4, dtype=torch.long)
    jiwer = _require_jiwer()
    output = jiwer.process_words(refs, hyps)
    rows = []
    for chunks in output.alignments:
        hits = subs = dels = ins = 0
        for chunk in chunks:
            if chunk.type == "equal":
                hits += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type in ("substitute", "replace"):
                subs += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "delete":
                dels += chunk.ref_end_idx - chunk.ref_start_idx
            elif chunk.type == "insert":
                ins += chunk.hyp_end_idx - chunk.hyp_start_idx
            else:  # pragma: no cover - jiwer only emits the four types above
                raise RuntimeError(f"unexpected jiwer alignment type {chunk.type!r}")
        rows.append([hits, subs, dels, ins])
    return torch.tensor(rows, dtype=torch.long)


def _wer_from_counts(counts: Tensor) -> Tensor:
    counts = counts.to(torch.float64)
    hits, subs, dels, ins = counts.unbind(-1)
    ref_words = hits + subs + dels
    errors = subs + dels + ins
    # jiwer 4 convention: with no reference word the WER is the number of insertions (0 if both are empty).
    return torch.where(ref_words > 0, errors / ref_words.clamp_min(1), ins)


def corpus_wer(counts: Tensor) -> Tensor:
    """Pooled WER ``(S + D + I) / (H + S + D)`` of counts ``[..., 4]`` (jiwer's empty-reference rule)."""
    if counts.shape[-1] != 4:
        raise ValueError(
            f"counts must have a last dimension of 4 (H, S, D, I), got shape {tuple(counts.shape)}"
        )
    return _wer_from_counts(counts)


def utterance_wer(counts: Tensor) -> Tensor:
    """WER of each utterance from per-utterance counts ``[N, 4]``; float64 ``[N]``."""
    if counts.ndim != 2 or counts.shape[-1] != 4:
        raise ValueError(f"counts must have shape [N, 4] (H, S, D, I), got {tuple(counts.shape)}")
    return _wer_from_counts(counts)


def word_error_rate(
    references: str | Sequence[str],
    hypotheses: str | Sequence[str],
    normalization: Normalization | Callable[[str], str] = "jiwer",
    mean_of_utterances: bool = False,
) -> Tensor:
    """Word error rate of transcripts against references, as a fraction (multiply by 100 for percent).

    ``mean_of_utterances=False`` gives corpus WER (pooled counts, as ``jiwer.wer`` on lists);
    ``True`` gives the mean of per-utterance WER, which is what EmergentTTS-Eval reports.

    Example:
        >>> word_error_rate(["a b c d", "e f"], ["a b x d", ""])
        tensor(0.5000, dtype=torch.float64)
        >>> word_error_rate(["a b c d", "e f"], ["a b x d", ""], mean_of_utterances=True)
        tensor(0.6250, dtype=torch.float64)
    """
    refs = normalize_texts(references, normalization, "references")
    hyps = normalize_texts(hypotheses, normalization, "hypotheses")
    counts = word_edit_counts(refs, hyps)
    if counts.shape[0] == 0:
        raise ValueError("references must contain at least one utterance, got an empty sequence")
    if mean_of_utterances:
        return utterance_wer(counts).mean()
    return corpus_wer(counts.sum(0))


# ----------------------------------------------------------------------------------------------------------
# Win-rate arithmetic
# ----------------------------------------------------------------------------------------------------------


class Outcome(IntEnum):
    """One judged comparison from the candidate's point of view."""

    LOSS = 0
    WIN = 1
    TIE = 2
    INVALID = 3

    @classmethod
    def parse(cls, value: Any, name: str = "outcome") -> Outcome:
        """Accept an :class:`Outcome`, its int value or its name (``"win"``, ``"tie"`` ...)."""
        if isinstance(value, Outcome):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= int(value) <= 3:
            return cls(int(value))
        raise ValueError(
            f"{name} must be an Outcome, one of 'win', 'loss', 'tie', 'invalid' or an int in 0..3 "
            f"(LOSS=0, WIN=1, TIE=2, INVALID=3), got {value!r}"
        )


def verdict_to_outcome(winner: int | None, candidate_position: int) -> Outcome:
    """Map a judge's ``winner`` (0 tie, 1 first audio, 2 second, -1/None failure) to the candidate's outcome.

    ``candidate_position`` is where the candidate was played (1 = first, 2 = second). Any winner outside
    {0, 1, 2} (including bools, strings and the failure code -1) is INVALID.

    Example:
        >>> verdict_to_outcome(2, candidate_position=2).name, verdict_to_outcome(1, candidate_position=2).name
        ('WIN', 'LOSS')
    """
    if candidate_position not in (1, 2) or isinstance(candidate_position, bool):
        raise ValueError(f"candidate_position must be 1 or 2, got {candidate_position!r}")
    if winner is None or isinstance(winner, bool) or not isinstance(winner, (int, np.integer)):
        return Outcome.INVALID
    winner = int(winner)
    if winner == 0:
        return Outcome.TIE
    if winner == candidate_position:
        return Outcome.WIN
    if winner in (1, 2):
        return Outcome.LOSS
    return Outcome.INVALID


def combine_orders(first: Outcome, second: Outcome) -> Outcome:
    """Consolidate the two judgements of a pair judged in both orders (MT-Bench's conservative rule).

    The candidate wins (loses) only if it wins (loses) in both orders; any disagreement, e.g. win + loss
    (pure position bias) or win + tie, is a tie. If either order is INVALID the pair is INVALID.
    """
    first = Outcome.parse(first, "first")
    second = Outcome.parse(second, "second")
    if Outcome.INVALID in (first, second):
        return Outcome.INVALID
    return first if first == second else Outcome.TIE


def candidate_position(index: int, seed: int | None = 0) -> int:
    """Seeded, per-sample position of the candidate (1 = played first, 2 = played second).

    Depends only on ``(seed, index)``, so every evaluated system and every DDP rank sees the same order for
    the same prompt. ``seed=None`` reproduces EmergentTTS-Eval exactly: ``default_rng(index).random() > 0.5``
    puts the baseline first.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative int, got {index!r}")
    rng = np.random.default_rng(int(index) if seed is None else [int(seed), int(index)])
    return 2 if rng.random() > 0.5 else 1


def outcome_counts(outcomes: Tensor, category_index: Tensor, num_categories: int) -> Tensor:
    """Count outcomes per category: ``int64 [4, num_categories]`` indexed by :class:`Outcome` value."""
    if outcomes.shape != category_index.shape or outcomes.ndim != 1:
        raise ValueError(
            "outcomes and category_index must be 1-D and of equal length, got shapes "
            f"{tuple(outcomes.shape)} and {tuple(category_index.shape)}"
        )
    flat = outcomes.long() * num_categories + category_index.long()
    return torch.bincount(flat, minlength=4 * num_categories).reshape(4, num_categories)


def win_rate_from_counts(wins: Tensor, ties: Tensor, losses: Tensor) -> tuple[Tensor, Tensor]:
    """``W = (wins + 0.5 ties) / valid`` and ``tie_rate = ties / valid`` (NaN where ``valid == 0``)."""
    wins, ties, losses = (t.to(torch.float64) for t in (wins, ties, losses))
    valid = wins + ties + losses
    nan = torch.full_like(valid, float("nan"))
    rate = torch.where(valid > 0, (wins + 0.5 * ties) / valid.clamp_min(1), nan)
    tie_rate = torch.where(valid > 0, ties / valid.clamp_min(1), nan)
    return rate, tie_rate


def wilson_interval(score: Tensor, n: Tensor, confidence: float = 0.95) -> tuple[Tensor, Tensor]:
    """Wilson score interval for a proportion ``score`` observed on ``n`` trials (NaN where ``n == 0``).

    Why Wilson: unlike the Wald interval that EmergentTTS-Eval's human-alignment script uses, it never leaves
    [0, 1] and does not collapse to zero width at 0 % or 100 % (e.g. a 0.00 win-rate in the paper's table),
    it has near-nominal coverage for the few dozen prompts a training-time check judges, and it is a closed
    form of the summed counts, so it needs no per-sample list (unlike a bootstrap) and syncs across DDP
    ranks for free. Ties count as half a win; a score in {0, 0.5, 1} has variance at most ``p (1 - p)``, so
    treating it as Bernoulli makes the interval slightly conservative when there are ties.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = score.to(torch.float64)
    n = n.to(torch.float64)
    safe_n = n.clamp_min(1)
    denom = 1.0 + z * z / safe_n
    center = (p + z * z / (2.0 * safe_n)) / denom
    half = z / denom * torch.sqrt((p * (1.0 - p) / safe_n + z * z / (4.0 * safe_n * safe_n)).clamp_min(0))
    nan = torch.full_like(p, float("nan"))
    # At p = 0 (p = 1) the lower (upper) Wilson bound is exactly 0 (1); pin it against rounding error.
    low = torch.where(p <= 0, torch.zeros_like(p), (center - half).clamp(0.0, 1.0))
    high = torch.where(p >= 1, torch.ones_like(p), (center + half).clamp(0.0, 1.0))
    low = torch.where(n > 0, low, nan)
    high = torch.where(n > 0, high, nan)
    return low, high


# ----------------------------------------------------------------------------------------------------------
# Audio helpers (used by judges and transcribers)
# ----------------------------------------------------------------------------------------------------------


def as_mono_waveform(waveform: Any, name: str = "waveform") -> Tensor:
    """Return a 1-D float32 CPU tensor from ``[T]`` or ``[channels, T]`` audio (channels are averaged).

    Floating input is taken as amplitude in [-1, 1] (not clamped here); ``int16`` input is divided by 32768.
    NaN/Inf, other integer types and other ranks raise ValueError naming ``name``.
    """
    if isinstance(waveform, np.ndarray):
        if waveform.dtype == np.int16:
            waveform = waveform.astype(np.float32) / 32768.0
        elif not np.issubdtype(waveform.dtype, np.floating):
            raise ValueError(
                f"{name} must be floating point or int16 audio, got numpy dtype {waveform.dtype}"
            )
        waveform = torch.from_numpy(np.ascontiguousarray(waveform))
    if not isinstance(waveform, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(waveform).__name__}")
    x = waveform.detach()
    if x.dtype == torch.int16:
        x = x.to(torch.float32) / 32768.0
    elif not x.is_floating_point():
        raise ValueError(f"{name} must be floating point or int16 audio, got dtype {x.dtype}")
    if x.ndim == 2:
        x = x.to(torch.float32).mean(0)
    elif x.ndim != 1:
        raise ValueError(f"{name} must have shape [T] or [channels, T], got shape {tuple(x.shape)}")
    x = x.to(device="cpu", dtype=torch.float32)
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf samples")
    return x.contiguous()


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, width_zeros: int, rolloff: float) -> tuple[Tensor, int]:
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, :] / orig
    t = (-torch.arange(new, dtype=torch.float64)[:, None] / new + idx) * base
    t = t.clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernel = (sinc * window * (base / orig)).to(torch.float32)
    return kernel[:, None, :], width


def resample_audio(waveform: Tensor, orig_freq: int, new_freq: int) -> Tensor:
    """Band-limited resampling of ``[..., T]`` audio with a Hann-windowed sinc polyphase filter.

    Output length is ``ceil(T * new_freq / orig_freq)``. Identity when the rates are equal.
    """
    for arg, val in (("orig_freq", orig_freq), ("new_freq", new_freq)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val <= 0:
            raise ValueError(f"{arg} must be a positive int (Hz), got {val!r}")
    if orig_freq == new_freq:
        return waveform
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    kernel, width = _sinc_kernel(orig, new, 6, 0.99)
    shape = waveform.shape
    length = shape[-1]
    x = waveform.reshape(-1, 1, length).to(torch.float32)
    x = F.pad(x, (width, width + orig))
    y = F.conv1d(x, kernel.to(x.device), stride=orig)  # [B, new, frames]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)
    target = math.ceil(new * length / orig)
    return y[:, :target].reshape(*shape[:-1], target)
