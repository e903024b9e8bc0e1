"""Old home of the audio judges, kept so that ``from metrics.judges import ...`` keeps working.

The judge-side pure logic now lives in :mod:`metrics.speech` (:mod:`~metrics.speech.judging`: ``Verdict``,
``Judge``, the prompt and the answer parsing; :mod:`~metrics.speech.wav`: WAV bytes) and is re-exported here.
The HTTP clients (``OpenAICompatibleJudge``, ``GeminiJudge``, ``RateLimiter``) moved to
:mod:`jwbdh_callbacks.tts.judges`; they are re-exported lazily (module ``__getattr__``), so importing
:mod:`metrics` or this module never imports :mod:`jwbdh_callbacks`.

Example:
    >>> from metrics.judges import Verdict, GeminiJudge
    >>> Verdict(winner=0).valid, GeminiJudge.__module__
    (True, 'jwbdh_callbacks.tts.judges')
"""

from __future__ import annotations

import importlib
from typing import Any

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

#: names served from the Lightning-side package on first use
_LAZY = {
    "GeminiJudge": "jwbdh_callbacks.tts.judges",
    "OpenAICompatibleJudge": "jwbdh_callbacks.tts.judges",
    "RateLimiter": "jwbdh_callbacks.tts.judges",
}

__all__ = [
    "CATEGORY_RUBRICS",
    "SYSTEM_PROMPT",
    "GeminiJudge",  # noqa: F822 (served by __getattr__)
    "Judge",
    "JudgePrompt",
    "JudgeResponseError",
    "OpenAICompatibleJudge",  # noqa: F822 (served by __getattr__)
    "RateLimiter",  # noqa: F822 (served by __getattr__)
    "Verdict",
    "build_judge_prompt",
    "decode_wav",
    "encode_wav",
    "parse_judge_response",
    "read_wav",
    "rubric_for",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'metrics.judges' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
