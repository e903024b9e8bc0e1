"""Old home of :class:`TTSWinRateCallback`: ``from jwbdh_callbacks.tts_callback import ...`` keeps working.

The callback now lives in :mod:`jwbdh_callbacks.tts.callback`, the prompt loading in
:mod:`jwbdh_callbacks.tts.prompts`; both are re-exported here unchanged (the same objects).

Example:
    >>> from jwbdh_callbacks.tts_callback import TTSWinRateCallback, load_prompts
    >>> TTSWinRateCallback.__module__
    'jwbdh_callbacks.tts.callback'
"""

from __future__ import annotations

from jwbdh_callbacks.tts.callback import BaselineSource, TTSWinRateCallback
from jwbdh_callbacks.tts.prompts import TTSPrompt, category_slug, load_prompts

__all__ = ["BaselineSource", "TTSPrompt", "TTSWinRateCallback", "category_slug", "load_prompts"]
