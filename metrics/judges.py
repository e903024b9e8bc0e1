"""Audio judges for TTS win-rate: the :class:`Judge` protocol, Gemini and OpenAI-compatible HTTP judges.

A judge listens to two renderings of the same text and says which one delivers it better on the aspect that
the text's category tests (EmergentTTS-Eval protocol, ``shared/spec/tts.md`` s2). The prompt, the per-category
rubrics and the answer schema below are written for this project; they follow the structure described in the
spec (system prompt; one user turn ``[instructions + rubric] [audio 1] [short text] [audio 2]``; a JSON answer
with ``reasoning_system_1``, ``reasoning_system_2``, ``system_comparison``, ``score_1``, ``score_2`` and
``winner``).

Robustness rules (a failing judge must never stop training):

* :meth:`Judge.judge` never raises for anything the remote side does. HTTP 408/409/429/5xx, connection errors,
  time-outs and unreadable envelopes are retried with exponential back-off and jitter (``Retry-After`` is
  honoured, capped at ``backoff_max``); other 4xx answers, refusals and unparseable answers are not retried.
  Whatever fails in the end gives an *invalid* :class:`Verdict` (``winner == -1``), the reason in ``error``.
* Invalid arguments (text not a str or empty, audio with NaN/Inf or of the wrong shape, a bad sample rate)
  are the caller's bug and raise ValueError before anything is sent.
* Requests are spaced by a thread-safe rate limiter (``requests_per_minute``).
* API keys are read from environment variables at request time and never stored, logged or put in an error
  string (anything echoed back by a server is redacted). Gemini's key goes in the ``x-goog-api-key`` header,
  never in the URL.
* Only the standard library is used (``urllib``, ``json``, ``wave``): no SDK is needed.

Example (against a local OpenAI-compatible server, e.g. vLLM serving an open audio model)::

    judge = OpenAICompatibleJudge(model="Qwen/Qwen2.5-Omni-7B", base_url="http://127.0.0.1:8000/v1",
                                  api_key_env=None)
    verdict = judge.judge("Is it raining?", "Questions", audio_a, audio_b, sample_rate=24_000)
    verdict.winner      # 1 (audio_a better), 2 (audio_b better), 0 (tie) or -1 (invalid; see verdict.error)
"""

from __future__ import annotations

import ast
import base64
import io
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from metrics.functional.speech import JUDGE_SAMPLE_RATE, as_mono_waveform, resample_audio

__all__ = [
    "CATEGORY_RUBRICS",
    "SYSTEM_PROMPT",
    "GeminiJudge",
    "Judge",
    "JudgePrompt",
    "JudgeResponseError",
    "OpenAICompatibleJudge",
    "RateLimiter",
    "Verdict",
    "build_judge_prompt",
    "decode_wav",
    "encode_wav",
    "parse_judge_response",
    "read_wav",
    "rubric_for",
]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Verdicts and the protocol
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """A judge's decision about ``audio_a`` (system 1) versus ``audio_b`` (system 2).

    ``winner``: 1 = audio_a better, 2 = audio_b better, 0 = tie, -1 = no usable verdict (see ``error``).
    ``raw`` is the model's text answer (empty when no answer came back); ``attempts`` counts HTTP requests.
    """

    winner: int
    reasoning: str = ""
    raw: str = ""
    score_a: int | None = None
    score_b: int | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def valid(self) -> bool:
        return self.winner in (0, 1, 2) and self.error is None

    @classmethod
    def invalid(cls, error: str, raw: str = "", attempts: int = 1) -> Verdict:
        return cls(winner=-1, error=error, raw=raw, attempts=attempts)


@runtime_checkable
class Judge(Protocol):
    """Anything with ``judge(text, category, audio_a, audio_b, sample_rate) -> Verdict``.

    ``audio_a`` is played first (system 1), ``audio_b`` second (system 2); both are ``[T]`` or
    ``[channels, T]`` float waveforms at ``sample_rate`` Hz. Implementations should return an invalid
    :class:`Verdict` rather than raise when the remote side fails.
    """

    def judge(self, text: str, category: str, audio_a: Any, audio_b: Any, sample_rate: int) -> Verdict: ...


class JudgeResponseError(ValueError):
    """The judge's answer could not be turned into a verdict."""


# ----------------------------------------------------------------------------------------------------------
# Prompt and rubrics (our own wording)
# ----------------------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are an expert listener who evaluates text-to-speech (TTS) systems and acts as a careful, impartial "
    "reward model. You are given a text and two recordings of it made by two different TTS systems. You "
    "judge how well each recording delivers the text on one specific aspect of spoken delivery (intonation, "
    "prosody, pronunciation or expressiveness, depending on the kind of text), and you decide which "
    "recording does it better. You answer only with the JSON object you are asked for."
)

_GENERIC_RUBRIC = """Evaluation dimension: overall fitness of the spoken delivery for this text.
What to listen for: whether the reading sounds like a competent human reading the text aloud: correct words,
natural phrasing and pauses, stress on the words that carry the meaning, and an intonation that matches the
sentence type and mood.
Rating scale:
  1 - noticeably unnatural or wrong delivery in several places.
  2 - acceptable, with a few awkward or flat moments.
  3 - natural and fitting throughout.
How to reason:
  1. Identify the parts of the text that are hardest to deliver well.
  2. For each system, describe how those parts are delivered, with approximate timestamps.
  3. Decide which system handles those parts better."""

CATEGORY_RUBRICS: dict[str, str] = {
    "Emotions": """Evaluation dimension: emotional expressiveness of quoted speech.
Example: 'The door slammed behind him. "I can't believe you did this to me!" she shouted.' - the narration is
read evenly, the quoted line carries anger and hurt.
What to listen for: the text mixes neutral narration with quoted lines spoken by characters. The emotion of
each quoted line is usually not named; it has to be inferred from the words and the situation. A good reading
keeps the narration in a calm storytelling voice and switches clearly into the inferred emotion (anger, joy,
fear, sadness, surprise ...) for the quoted lines, then back again.
Note: the emotion must match the context; a strong but wrong emotion is worse than a mild right one.
Rating scale:
  1 - quoted lines sound like the narration, or carry the wrong emotion.
  2 - some emotional colouring, but weak, inconsistent or not clearly separated from the narration.
  3 - narration and quoted lines are clearly distinguished and each quoted line carries a fitting emotion.
How to reason:
  1. Name the emotion that each quoted line calls for.
  2. For each system, describe how each quoted line and the surrounding narration sound, with timestamps.
  3. Compare how convincingly and how appropriately each system switches between narration and emotion.""",
    "Paralinguistics": """Evaluation dimension: rendering of the non-verbal cues written in the text.
Example: 'Ugh... I told you, it's NOT my fault! Sooo, w-w-what now? Hmm.' - a groan, a trailing pause, loud
stress on NOT, a stretched vowel, a stutter and a thinking sound.
What to listen for: interjections and onomatopoeia (ugh, hmm, psst, achoo, tsk) voiced as sounds rather than
spelled out; words in CAPITALS stressed; stretched spellings (sooo, nooo) held longer; hyphenated syllables
(ab-so-lute-ly) separated; ellipses and dashes turned into pauses or hesitation; stutters (w-w-what) audible;
exclamation and question marks reflected in the voice.
Note: reading a cue literally (for example spelling out "h-m-m" or saying "capital not") counts as a failure
for that cue.
Rating scale:
  1 - most cues are ignored or read literally.
  2 - some cues are rendered, others ignored or unnatural.
  3 - nearly every cue is rendered naturally and at the right place.
How to reason:
  1. List every cue in the text.
  2. For each system and each cue, say whether and how it was rendered, with timestamps.
  3. Compare how many cues each system rendered well and how natural they sound.""",
    "Syntactic Complexity": """Evaluation dimension: prosody that makes a complex sentence understandable.
Example: 'The manager who the employees that the company hired last spring admired resigned.' - pauses and
stress must show which clause belongs to which noun.
What to listen for: nested or embedded clauses, long lists, garden-path sentences and parentheticals need
pauses at clause boundaries, grouping of words that belong together, and stress on the main verb and the
contrasted words, so that a listener can follow the structure on first hearing. Homographs (read/read,
lead/lead, record/record) must be pronounced as the sentence requires.
Note: a fluent but monotonous reading that runs clauses together is poor even if every word is right.
Rating scale:
  1 - phrasing hides the structure (pauses in the wrong places or none) or homographs are mispronounced.
  2 - mostly understandable, with some misleading phrasing or flat stretches.
  3 - phrasing, pauses and stress make the structure clear throughout, homographs are right.
How to reason:
  1. Work out the structure of the sentence and where the boundaries and stresses belong.
  2. For each system, describe its pauses, grouping and stress at those points, with timestamps.
  3. Compare which reading a first-time listener would understand more easily.""",
    "Foreign Words": """Evaluation dimension: pronunciation of foreign words and phrases inside English text.
Example: 'We ended the trip with a quick déjà vu moment at the Biergarten before our Shinkansen left.'
What to listen for: words and phrases from other languages should be pronounced either as a native speaker of
that language would or in the widely accepted English way, and the switch between English and the foreign
words should be smooth, without stumbling, odd pauses or a change of voice.
Note: a plausible anglicised pronunciation that English speakers commonly use is acceptable; spelling-based
guesses that no speaker would use are not.
Rating scale:
  1 - foreign words are mispronounced, skipped or badly garbled.
  2 - understandable, but several foreign words sound wrong or the switching is awkward.
  3 - foreign words sound native or in the accepted English form, with smooth transitions.
How to reason:
  1. List the foreign words and how they should sound.
  2. For each system, describe how each one is pronounced and how the transitions sound, with timestamps.
  3. Compare the accuracy and smoothness of the two systems.""",
    "Questions": """Evaluation dimension: intonation that signals a question.
Example: 'You already sent the report to the client?' - a question written like a statement, which needs a
rising end.
What to listen for: yes/no questions usually end with rising pitch; wh-questions (who, what, where ...)
usually fall but stress the question word; declarative sentences used as questions need the rise to be
understood as questions; statements inside the text should not sound like questions.
Note: the listener should be able to tell which sentences are questions from the voice alone.
Rating scale:
  1 - questions sound like statements (or statements like questions).
  2 - question intonation is present but weak or inconsistent.
  3 - every sentence has the intonation its type calls for.
How to reason:
  1. Classify each sentence of the text (yes/no question, wh-question, statement ...).
  2. For each system, describe the pitch contour at the end of each sentence, with timestamps.
  3. Compare how clearly each system signals the questions.""",
    "Pronunciation": """Evaluation dimension: correct reading of text that is hard to pronounce.
Example: 'Wire $1,250.75 to IBAN DE44 5001 0517 before 09/03/2025, then email jo.smith@maple-ridge.org; the
NASA rover solved x^2 + 3x = 10.'
What to listen for: numbers, currencies and units read as words the way a person would say them; dates and
times in a natural spoken form; e-mail addresses, URLs, passwords and codes read character by character where
needed, with letter case and symbols made clear; street addresses; equations and other STEM notation read as
a teacher would; initialisms spelled out (FBI) and acronyms said as words (NASA) as is customary; tongue
twisters spoken quickly but every word clearly.
Note: skipping, misreading or spelling out something that should be said as a word counts as an error.
Rating scale:
  1 - several items are misread, skipped or unintelligible.
  2 - most items are correct, with one or two errors or awkward readings.
  3 - every item is read correctly and naturally.
How to reason:
  1. List the difficult items in the text and how each should be spoken.
  2. For each system, say how each item was read, with timestamps.
  3. Compare the number and seriousness of the errors.""",
}

_CATEGORY_ALIASES = {
    "emotion": "Emotions",
    "emotions": "Emotions",
    "paralinguistic": "Paralinguistics",
    "paralinguistics": "Paralinguistics",
    "syntacticcomplexity": "Syntactic Complexity",
    "foreignwords": "Foreign Words",
    "foreignword": "Foreign Words",
    "questions": "Questions",
    "question": "Questions",
    "pronunciation": "Pronunciation",
    "complexpronunciation": "Pronunciation",
}


def rubric_for(category: str) -> str:
    """The evaluation criterion of a category (case, spaces and '_' ignored); a generic one otherwise."""
    if not isinstance(category, str):
        raise ValueError(f"category must be a str, got {type(category).__name__}")
    key = re.sub(r"[^a-z]", "", category.lower())
    name = _CATEGORY_ALIASES.get(key)
    return CATEGORY_RUBRICS[name] if name else _GENERIC_RUBRIC


_USER_TEMPLATE = """## Task
Two text-to-speech systems were asked to read the text below aloud. Listen to both recordings, rate each one
from 0 to 3 on the evaluation criterion of this text's category, compare them, and say which one is better.

## Inputs
- text_to_synthesize: the exact text the systems had to speak, between triple quotes.
- text_category: the kind of challenge this text poses.
- evaluation_criterion: what to listen for and how to rate it.
- synthesized_speech_1 and synthesized_speech_2: the two recordings, which follow this message.
A recording that does not speak the text (silence, noise, another text, large omissions) gets a score of 0.

text_to_synthesize:
\"\"\"{text}\"\"\"

text_category: {category}

evaluation_criterion:
{criterion}

## Rules for every category
- Judge ONLY the evaluation dimension above. Recording quality, background noise, loudness, the speaker's
  gender, timbre or voice, and any other factor unrelated to the dimension must not affect your decision.
- More dramatic is not better: reward expressiveness only where the text calls for it.
- The order in which the recordings are played says nothing about their quality.

## When both scores are equal
1. Write down what the two recordings do alike and where they differ on the evaluation dimension.
2. Mark every difference as minor or clear (clear = an ordinary listener would notice it and it matters for
   the dimension).
3. Count the clear advantages of each system.
4. No clear difference, or the same number of clear advantages on each side, means a tie (winner 0).
   Otherwise the system with more clear advantages wins.

## Answer format
Answer with a single JSON object and nothing else, with exactly these keys:
{{
  "reasoning_system_1": "<how system 1 does on the dimension, with approximate timestamps of key moments>",
  "reasoning_system_2": "<the same for system 2, written without reference to system 1>",
  "system_comparison": "<the comparison, including the tie-break steps when the scores are equal>",
  "score_1": <integer 0-3>,
  "score_2": <integer 0-3>,
  "winner": <integer: 1 if system 1 is better, 2 if system 2 is better, 0 for a tie>
}}
Escape quotes and line breaks inside the strings so that the object is valid JSON.

Here is synthesized_speech_1:"""

_BETWEEN_TEXT = (
    "That was synthesized_speech_1. Here is synthesized_speech_2. After listening to it, give your judgement "
    "as the JSON object described above."
)


@dataclass(frozen=True)
class JudgePrompt:
    """Text parts of one judge request: ``system``; ``[before_audio_a] [audio_a] [between] [audio_b]``."""

    system: str
    before_audio_a: str
    between: str


def build_judge_prompt(text: str, category: str) -> JudgePrompt:
    """Fill the judge prompt for one text and its category (the category's rubric is embedded)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty str, got {text!r}")
    if not isinstance(category, str) or not category.strip():
        raise ValueError(f"category must be a non-empty str, got {category!r}")
    user = _USER_TEMPLATE.format(text=text, category=category, criterion=rubric_for(category))
    return JudgePrompt(system=SYSTEM_PROMPT, before_audio_a=user, between=_BETWEEN_TEXT)


# ----------------------------------------------------------------------------------------------------------
# WAV encoding
# ----------------------------------------------------------------------------------------------------------


def encode_wav(waveform: Any, sample_rate: int, target_sample_rate: int = JUDGE_SAMPLE_RATE) -> bytes:
    """Encode audio as a mono 16-bit PCM WAV file (bytes) at ``target_sample_rate`` (16 kHz by default).

    Channels are averaged, the signal is resampled with a band-limited filter, clipped to [-1, 1] (the
    reference scales by 32767 without a guard, which wraps around on overs) and rounded to int16.
    """
    x = as_mono_waveform(waveform, "waveform")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    x = resample_audio(x, int(sample_rate), int(target_sample_rate))
    pcm = (x.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).numpy().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(target_sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def decode_wav(data: bytes) -> tuple[Tensor, int]:
    """Decode PCM WAV bytes (8/16/24/32-bit) to float32 ``[T]`` (mono) or ``[channels, T]``, and the rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as err:
        raise ValueError(f"data must be a PCM WAV file: {err}") from err
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    else:  # pragma: no cover - the wave module rejects other widths
        raise ValueError(f"data has an unsupported sample width of {width} bytes")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if channels > 1:
        t = t.reshape(-1, channels).T.contiguous()
    return t, rate


def read_wav(path: str | os.PathLike[str]) -> tuple[Tensor, int]:
    """Read a PCM WAV file; see :func:`decode_wav`."""
    with open(path, "rb") as fh:
        return decode_wav(fh.read())


# ----------------------------------------------------------------------------------------------------------
# Parsing the judge's answer
# ----------------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_WINNER_FIELD = re.compile(r"""["']?winner["']?\s*[:=]\s*["']?\s*(-?\d+)""", re.IGNORECASE)
_TEXT_FIELDS = ("reasoning_system_1", "reasoning_system_2", "system_comparison")


def _first_json_object(text: str) -> str | None:
    start = text.find("{")
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def _tolerant_load(text: str) -> Any:
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    obj = _first_json_object(text)
    if obj is not None:
        candidates.append(obj)
    for cand in candidates:
        for attempt in (cand, _TRAILING_COMMA.sub(r"\1", cand)):
            try:
                return json.loads(attempt, strict=False)  # strict=False: raw newlines inside strings
            except json.JSONDecodeError:
                pass
            try:
                value = ast.literal_eval(attempt)  # single-quoted, Python-style dicts
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    match = _WINNER_FIELD.search(text)
    if match:
        return {"winner": int(match.group(1))}
    raise JudgeResponseError("the answer contains no JSON object and no 'winner' field")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def parse_judge_response(text: str) -> dict[str, Any]:
    """Parse the judge's answer into ``{"winner", "score_1", "score_2", "reasoning", ...}``.

    Strict ``json.loads`` first; if that fails, a tolerant fallback: code fences, prose around the object,
    trailing commas, raw line breaks inside strings, single-quoted keys, and as a last resort a bare
    ``"winner": N`` field. ``winner`` must be 0, 1 or 2 (an int, or a digit string in the fallback sense);
    otherwise :class:`JudgeResponseError`. ``score_*`` outside 0..3 become None.
    """
    if not isinstance(text, str):
        raise JudgeResponseError(f"the answer must be text, got {type(text).__name__}")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = _tolerant_load(text)
    if not isinstance(obj, dict):
        raise JudgeResponseError(f"the answer must be a JSON object, got {type(obj).__name__}")
    if "winner" not in obj:
        raise JudgeResponseError("the answer has no 'winner' field")
    winner = _as_int(obj["winner"])
    if winner not in (0, 1, 2):
        raise JudgeResponseError(f"'winner' must be 0, 1 or 2, got {obj['winner']!r}")
    scores = []
    for key in ("score_1", "score_2"):
        s = _as_int(obj.get(key))
        scores.append(s if s is not None and 0 <= s <= 3 else None)
    parts = []
    for key, label in zip(_TEXT_FIELDS, ("System 1", "System 2", "Comparison")):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(f"{label}: {value.strip()}")
    out = dict(obj)
    out.update(winner=winner, score_1=scores[0], score_2=scores[1], reasoning="\n".join(parts))
    return out


# ----------------------------------------------------------------------------------------------------------
# HTTP judges
# ----------------------------------------------------------------------------------------------------------


class RateLimiter:
    """Spaces calls to ``acquire`` at least ``60 / requests_per_minute`` seconds apart (thread-safe)."""

    def __init__(self, requests_per_minute: float | None) -> None:
        if requests_per_minute is not None and (
            isinstance(requests_per_minute, bool)
            or not isinstance(requests_per_minute, (int, float))
            or not requests_per_minute > 0
        ):
            raise ValueError(
                f"requests_per_minute must be a positive number or None, got {requests_per_minute!r}"
            )
        self.interval = 0.0 if requests_per_minute is None else 60.0 / float(requests_per_minute)
        self._lock = threading.Lock()
        self._next = 0.0

    def acquire(self) -> float:
        """Block until the next request may start; returns the seconds waited."""
        if self.interval <= 0:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            time.sleep(wait)
        return wait

    def __getstate__(self) -> dict[str, Any]:  # locks do not pickle (DDP spawn pickles callbacks)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _FatalError(Exception):
    pass


class _Refusal(Exception):
    pass


_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def _positive_number(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
    return float(value)


@dataclass
class _Stats:
    requests: int = 0
    retries: int = 0
    valid: int = 0
    invalid: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()


class _HTTPJudge:
    """Shared request/retry/parse loop of the HTTP judges."""

    provider = "http"

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str | None,
        require_api_key: bool,
        timeout: float,
        max_attempts: int,
        backoff_initial: float,
        backoff_max: float,
        backoff_multiplier: float,
        requests_per_minute: float | None,
        temperature: float,
        top_p: float,
        max_output_tokens: int,
        json_mode: bool,
        extra_headers: Mapping[str, str] | None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        if not isinstance(base_url, str) or not re.match(r"^https?://", base_url):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise ValueError(
                f"api_key_env must be the name of an environment variable or None, got {api_key_env!r}"
            )
        if require_api_key and (api_key_env is None or not os.environ.get(api_key_env)):
            raise ValueError(
                f"{type(self).__name__} needs an API key in the environment variable "
                f"{api_key_env or '<api_key_env>'}, which is not set"
            )
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        if (
            isinstance(max_output_tokens, bool)
            or not isinstance(max_output_tokens, int)
            or max_output_tokens < 1
        ):
            raise ValueError(f"max_output_tokens must be a positive int, got {max_output_tokens!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = _positive_number("timeout", timeout)
        self.max_attempts = max_attempts
        self.backoff_initial = _positive_number("backoff_initial", backoff_initial, allow_zero=True)
        self.backoff_max = _positive_number("backoff_max", backoff_max, allow_zero=True)
        self.backoff_multiplier = _positive_number("backoff_multiplier", backoff_multiplier)
        self.temperature = _positive_number("temperature", temperature, allow_zero=True)
        self.top_p = _positive_number("top_p", top_p)
        self.max_output_tokens = max_output_tokens
        self.json_mode = bool(json_mode)
        self.extra_headers = dict(extra_headers or {})
        self.rate_limiter = RateLimiter(requests_per_minute)
        self.stats = _Stats()
        self._rng = random.Random()
        self._opener = self._build_opener()

    def _build_opener(self) -> urllib.request.OpenerDirector:
        # Proxies from the environment, except that loopback addresses are always reached directly.
        return urllib.request.build_opener(
            urllib.request.ProxyHandler({} if _is_loopback(self.base_url) else None)
        )

    def __getstate__(self) -> dict[str, Any]:  # picklable for DDP spawn; the opener is rebuilt
        state = self.__dict__.copy()
        del state["_opener"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._opener = self._build_opener()

    def __repr__(self) -> str:  # never shows the key
        name = type(self).__name__
        return f"{name}(model={self.model!r}, base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    # -- subclass hooks --------------------------------------------------------------------------------
    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def _extract_text(self, payload: Any) -> str:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------------
    def _api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @staticmethod
    def _redact(text: str, key: str | None) -> str:
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_initial * self.backoff_multiplier ** (attempt - 1))
        delay *= 0.5 + 0.5 * self._rng.random()  # jitter, so parallel workers do not retry in lockstep
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _post(self, url: str, headers: dict, body: dict, key: str | None) -> Any:
        data = json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            try:
                detail = err.read(400).decode("utf-8", "replace")
            except Exception:
                detail = ""
            detail = self._redact(" ".join(detail.split())[:300], key)
            msg = f"HTTP {err.code} {err.reason}" + (f": {detail}" if detail else "")
            if err.code in _RETRY_STATUS:
                retry_after = None
                header = err.headers.get("Retry-After") if err.headers else None
                if header:
                    try:
                        retry_after = max(0.0, float(header))
                    except ValueError:
                        retry_after = None
                raise _RetryableError(msg, retry_after) from None
            raise _FatalError(msg) from None
        except TimeoutError as err:
            raise _RetryableError(f"timed out after {self.timeout:g} s ({type(err).__name__})") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, TimeoutError):
                raise _RetryableError(f"timed out after {self.timeout:g} s") from None
            raise _RetryableError(self._redact(f"connection failed: {reason}", key)) from None
        except (ConnectionError, HTTPException, OSError) as err:
            raise _RetryableError(
                self._redact(f"connection failed: {type(err).__name__}: {err}", key)
            ) from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = self._redact(raw[:200].decode("utf-8", "replace"), key)
            raise _RetryableError(
                f"the server answered with something that is not JSON: {snippet!r}"
            ) from None

    # -- the protocol ----------------------------------------------------------------------------------
    def judge(self, text: str, category: str, audio_a: Any, audio_b: Any, sample_rate: int) -> Verdict:
        """Compare ``audio_a`` (system 1) with ``audio_b`` (system 2) ; never raises on API errors."""
        prompt = build_judge_prompt(text, category)
        wav_a = encode_wav(audio_a, sample_rate)
        wav_b = encode_wav(audio_b, sample_rate)
        key = self._api_key()
        url, headers, body = self._request(prompt, wav_a, wav_b, key)
        headers = {"Content-Type": "application/json", **self.extra_headers, **headers}
        last_error = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            self.rate_limiter.acquire()
            self.stats.add(requests=1)
            try:
                payload = self._post(url, headers, body, key)
                answer = self._extract_text(payload)
            except _RetryableError as err:
                last_error = str(err)
                if attempt < self.max_attempts:
                    delay = self._backoff(attempt, err.retry_after)
                    logger.warning(
                        "%s judge (%s): attempt %d/%d failed: %s; retrying in %.2f s",
                        self.provider,
                        self.model,
                        attempt,
                        self.max_attempts,
                        last_error,
                        delay,
                    )
                    self.stats.add(retries=1)
                    time.sleep(delay)
                    continue
                break
            except _Refusal as err:
                return self._invalid(f"refused: {self._redact(str(err), key)}", attempt)
            except _FatalError as err:
                return self._invalid(self._redact(str(err), key), attempt)
            try:
                parsed = parse_judge_response(answer)
            except JudgeResponseError as err:
                return self._invalid(f"unparseable answer: {err}", attempt, raw=self._redact(answer, key))
            self.stats.add(valid=1)
            return Verdict(
                winner=parsed["winner"],
                reasoning=self._redact(parsed["reasoning"], key),
                raw=self._redact(answer, key),
                score_a=parsed["score_1"],
                score_b=parsed["score_2"],
                attempts=attempt,
            )
        return self._invalid(f"gave up after {self.max_attempts} attempt(s): {last_error}", self.max_attempts)

    def _invalid(self, error: str, attempts: int, raw: str = "") -> Verdict:
        self.stats.add(invalid=1)
        logger.warning("%s judge (%s): invalid verdict: %s", self.provider, self.model, error)
        return Verdict.invalid(error, raw=raw, attempts=attempts)


def _is_loopback(url: str) -> bool:
    host = urllib.request.urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class OpenAICompatibleJudge(_HTTPJudge):
    """Judge through an OpenAI-style ``/chat/completions`` endpoint with ``input_audio`` content parts.

    Works with OpenAI's audio models (e.g. ``gpt-4o-audio-preview``) and with any OpenAI-compatible server
    (vLLM, SGLang ...) serving an open audio model such as Qwen2.5-Omni. The key is read from the environment
    variable ``api_key_env`` at each request (``None``: no ``Authorization`` header, for local servers); it is
    required when ``base_url`` is OpenAI's own API. Sampling as EmergentTTS-Eval (temperature 0, top_p 0.9).

    Args:
        model: model name sent in the request.
        base_url: API root that ``/chat/completions`` is appended to.
        api_key_env: environment variable holding the key, or None.
        timeout: seconds per HTTP request (connect and each read).
        max_attempts: total attempts for retryable failures (EmergentTTS uses 5 for OpenAI).
        backoff_initial, backoff_multiplier, backoff_max: exponential back-off (seconds), with jitter.
        requests_per_minute: client-side rate limit, None for none.
        json_mode: send ``response_format={"type": "json_object"}`` (not every audio model supports it).

    Example:
        >>> OpenAICompatibleJudge(model="omni", base_url="http://127.0.0.1:8000/v1", api_key_env=None)
        OpenAICompatibleJudge(model='omni', base_url='http://127.0.0.1:8000/v1', api_key_env=None)
    """

    provider = "openai-compatible"

    def __init__(
        self,
        model: str = "gpt-4o-audio-preview",
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        require_api_key: bool | None = None,
        timeout: float = 120.0,
        max_attempts: int = 5,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        backoff_multiplier: float = 2.0,
        requests_per_minute: float | None = None,
        temperature: float = 0.0,
        top_p: float = 0.9,
        max_output_tokens: int = 4096,
        json_mode: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        if require_api_key is None:
            require_api_key = "api.openai.com" in str(base_url)
        super().__init__(
            model,
            base_url,
            api_key_env,
            require_api_key,
            timeout,
            max_attempts,
            backoff_initial,
            backoff_max,
            backoff_multiplier,
            requests_per_minute,
            temperature,
            top_p,
            max_output_tokens,
            json_mode,
            extra_headers,
        )

    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt.before_audio_a},
                        {"type": "input_audio", "input_audio": {"data": _b64(wav_a), "format": "wav"}},
                        {"type": "text", "text": prompt.between},
                        {"type": "input_audio", "input_audio": {"data": _b64(wav_b), "format": "wav"}},
                    ],
                },
            ],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_output_tokens,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return f"{self.base_url}/chat/completions", headers, body

    def _extract_text(self, payload: Any) -> str:
        try:
            choice = payload["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise _FatalError("the response has no choices[0].message") from None
        refusal = message.get("refusal") if isinstance(message, dict) else None
        if refusal:
            raise _Refusal(str(refusal)[:300])
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not content:
            if choice.get("finish_reason") == "content_filter":
                raise _Refusal("content filter")
            raise _FatalError(f"empty answer (finish_reason={choice.get('finish_reason')!r})")
        return str(content)


_GEMINI_HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
_GEMINI_BLOCKED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "OTHER"})


class GeminiJudge(_HTTPJudge):
    """Judge with Google's Gemini ``generateContent`` REST API (no SDK needed).

    Request as in EmergentTTS-Eval: system instruction, one user turn ``[text, audio/wav, text, audio/wav]``
    (inline base64), temperature 0, top_p 0.9, the four harm categories at ``BLOCK_NONE`` and a thinking
    budget of 256 tokens (thoughts are not returned). The key comes from ``api_key_env`` (``GEMINI_API_KEY``)
    and is sent in the ``x-goog-api-key`` header. EmergentTTS retries Gemini 10 times.

    Example:
        >>> judge = GeminiJudge(model="gemini-2.5-pro", require_api_key=False)  # key: $GEMINI_API_KEY
        >>> judge.model, judge.api_key_env
        ('gemini-2.5-pro', 'GEMINI_API_KEY')
    """

    provider = "gemini"

    def __init__(
        self,
        model: str = "gemini-2.5-pro",
        base_url: str = "https://generativelanguage.googleapis.com",
        api_key_env: str = "GEMINI_API_KEY",
        require_api_key: bool = True,
        timeout: float = 300.0,
        max_attempts: int = 10,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        backoff_multiplier: float = 2.0,
        requests_per_minute: float | None = None,
        temperature: float = 0.0,
        top_p: float = 0.9,
        max_output_tokens: int = 8192,
        json_mode: bool = True,
        thinking_budget: int | None = 256,
        api_version: str = "v1beta",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            model,
            base_url,
            api_key_env,
            require_api_key,
            timeout,
            max_attempts,
            backoff_initial,
            backoff_max,
            backoff_multiplier,
            requests_per_minute,
            temperature,
            top_p,
            max_output_tokens,
            json_mode,
            extra_headers,
        )
        if thinking_budget is not None and (
            isinstance(thinking_budget, bool) or not isinstance(thinking_budget, int)
        ):
            raise ValueError(f"thinking_budget must be an int or None, got {thinking_budget!r}")
        self.thinking_budget = thinking_budget
        self.api_version = api_version

    def _request(
        self, prompt: JudgePrompt, wav_a: bytes, wav_b: bytes, key: str | None
    ) -> tuple[str, dict, dict]:
        headers = {"x-goog-api-key": key} if key else {}
        config: dict[str, Any] = {
            "temperature": self.temperature,
            "topP": self.top_p,
            "maxOutputTokens": self.max_output_tokens,
        }
        if self.json_mode:
            config["responseMimeType"] = "application/json"
        if self.thinking_budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": self.thinking_budget, "includeThoughts": False}
        body = {
            "systemInstruction": {"parts": [{"text": prompt.system}]},
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": prompt.before_audio_a},
                        {"inlineData": {"mimeType": "audio/wav", "data": _b64(wav_a)}},
                        {"text": prompt.between},
                        {"inlineData": {"mimeType": "audio/wav", "data": _b64(wav_b)}},
                    ],
                }
            ],
            "generationConfig": config,
            "safetySettings": [{"category": c, "threshold": "BLOCK_NONE"} for c in _GEMINI_HARM_CATEGORIES],
        }
        url = f"{self.base_url}/{self.api_version}/models/{self.model}:generateContent"
        return url, headers, body

    def _extract_text(self, payload: Any) -> str:
        if not isinstance(payload, dict):
            raise _FatalError("the response is not a JSON object")
        feedback = payload.get("promptFeedback") or {}
        candidates = payload.get("candidates") or []
        if not candidates:
            if feedback.get("blockReason"):
                raise _Refusal(f"prompt blocked ({feedback['blockReason']})")
            raise _FatalError("the response has no candidates")
        cand = candidates[0] if isinstance(candidates[0], dict) else {}
        parts = (cand.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
        if not text.strip():
            reason = cand.get("finishReason")
            if reason in _GEMINI_BLOCKED:
                raise _Refusal(f"finishReason={reason}")
            raise _FatalError(f"empty answer (finishReason={reason!r})")
        return text
