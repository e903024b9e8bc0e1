"""Speech metrics of the JWB-DH-V1 TTS track: :class:`WordErrorRate` and judge :class:`WinRate`.

Both follow EmergentTTS-Eval (``shared/spec/tts.md``). One module per step:

* :mod:`metrics.speech.wer`: :class:`WordErrorRate` (corpus and mean-per-utterance WER, per category);
* :mod:`metrics.speech.winrate`: :class:`WinRate`, :class:`Judgement` and :func:`judge_candidate` (one
  position-randomised candidate-vs-baseline judgement);
* :mod:`metrics.speech.judging`: the :class:`Judge` protocol, :class:`Verdict`, the judge prompt and the
  parsing of the judge's answer (pure logic; the HTTP clients are in :mod:`jwbdh_callbacks.tts.judges`);
* :mod:`metrics.speech.wav`: WAV bytes in and out;
* :mod:`metrics.speech.categories`: the category bookkeeping both metrics share.

Stateless formulas (normalisation, edit counts, outcome mapping, Wilson interval, audio helpers) are in
:mod:`metrics.functional.speech`; transcribers in :mod:`metrics.transcribers`. Nothing here imports Lightning.

Example:
    >>> from metrics.speech import WinRate
    >>> wr = WinRate()
    >>> wr.update(["win", "tie", "loss", "win"])
    >>> wr.compute()["win_rate"].item()
    0.625
"""

from metrics.functional.speech import Outcome
from metrics.speech.judging import (
    CATEGORY_RUBRICS,
    SYSTEM_PROMPT,
    Judge,
    JudgePrompt,
    JudgeResponseError,
    Verdict,
    build_judge_prompt,
    parse_judge_response,
    rubric_for,
)
from metrics.speech.wav import decode_wav, encode_wav, read_wav
from metrics.speech.wer import WordErrorRate
from metrics.speech.winrate import Judgement, OrderRule, WinRate, judge_candidate

__all__ = [
    "CATEGORY_RUBRICS",
    "SYSTEM_PROMPT",
    "Judge",
    "JudgePrompt",
    "JudgeResponseError",
    "Judgement",
    "OrderRule",
    "Outcome",
    "Verdict",
    "WinRate",
    "WordErrorRate",
    "build_judge_prompt",
    "decode_wav",
    "encode_wav",
    "judge_candidate",
    "parse_judge_response",
    "read_wav",
    "rubric_for",
]
