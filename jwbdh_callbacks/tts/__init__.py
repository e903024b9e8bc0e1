"""The TTS side of the Lightning layer: the periodic WER / win-rate callback, its prompts, the HTTP judges.

* :mod:`jwbdh_callbacks.tts.callback`: :class:`TTSWinRateCallback` (imports Lightning);
* :mod:`jwbdh_callbacks.tts.prompts`: :class:`TTSPrompt`, :func:`load_prompts`, per-rank shards;
* :mod:`jwbdh_callbacks.tts.judges`: :class:`OpenAICompatibleJudge`, :class:`GeminiJudge` (standard library
  HTTP, no Lightning), on top of :mod:`jwbdh_callbacks.tts.http_judge` (retries, rate limit, redaction).

Names are loaded on first use, so importing a judge never imports Lightning.

Example:
    >>> from jwbdh_callbacks.tts import OpenAICompatibleJudge, load_prompts
    >>> load_prompts()[0].category
    'Emotions'
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "TTSWinRateCallback": "jwbdh_callbacks.tts.callback",
    "BaselineSource": "jwbdh_callbacks.tts.callback",
    "TTSPrompt": "jwbdh_callbacks.tts.prompts",
    "category_slug": "jwbdh_callbacks.tts.prompts",
    "load_prompts": "jwbdh_callbacks.tts.prompts",
    "select_prompts": "jwbdh_callbacks.tts.prompts",
    "shard_prompts": "jwbdh_callbacks.tts.prompts",
    "GeminiJudge": "jwbdh_callbacks.tts.judges",
    "OpenAICompatibleJudge": "jwbdh_callbacks.tts.judges",
    "RateLimiter": "jwbdh_callbacks.tts.judges",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jwbdh_callbacks.tts' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
