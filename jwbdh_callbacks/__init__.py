"""Lightning callbacks, presets and command-line tools for the JWB-DH-V1 metrics in :mod:`metrics`.

The main classes are importable from the package itself (loaded on first use, so ``import jwbdh_callbacks``
stays cheap and the CLI does not import Lightning before it needs it):

Example:
    >>> from jwbdh_callbacks import JWBDHCallback, TTSWinRateCallback, load_preset
    >>> load_preset("smoke").name
    'smoke'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "JWBDHCallback": "jwbdh_callbacks.region_callback",
    "TTSWinRateCallback": "jwbdh_callbacks.tts_callback",
    "load_preset": "jwbdh_callbacks.presets",
}

__all__ = ["JWBDHCallback", "TTSWinRateCallback", "__version__", "load_preset"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jwbdh_callbacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
