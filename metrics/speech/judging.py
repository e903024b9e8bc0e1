"""What an audio judge is asked and what it answers: prompt, :class:`Verdict`, :class:`Judge` protocol.

A judge listens to two renderings of the same text and says which one delivers it better on the aspect that
the text's category tests (EmergentTTS-Eval protocol, ``shared/spec/tts.md`` s2). The prompt, the per-category
rubrics and the answer schema below are written for this project; they follow the structure described in the
spec (system prompt; one user turn ``[instructions + rubric] [audio 1] [short text] [audio 2]``; a JSON answer
with ``reasoning_system_1``, ``reasoning_system_2``, ``system_comparison``, ``score_1``, ``score_2`` and
``winner``).

This module is pure logic (no network, no Lightning): building the prompt (:func:`build_judge_prompt`) and
turning the model's text answer into a verdict (:func:`parse_judge_response`, tolerant of code fences, prose
around the JSON object, trailing commas and single quotes). The HTTP clients that send the prompt live in
:mod:`jwbdh_callbacks.tts.judges` (re-exported lazily by :mod:`metrics.judges`).

Example:
    >>> prompt = build_judge_prompt("Is it raining?", "Questions")
    >>> "rising pitch" in prompt.before_audio_a
    True
    >>> parse_judge_response('Verdict: {"winner": 2, "score_1": 1, "score_2": 3,}')["winner"]
    2
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CATEGORY_RUBRICS",
    "SYSTEM_PROMPT",
    "Judge",
    "JudgePrompt",
    "JudgeResponseError",
    "Verdict",
    "build_judge_prompt",
    "parse_judge_response",
    "rubric_for",
]


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
