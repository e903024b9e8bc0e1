"""Lightning callbacks, presets and command-line tools for the JWB-DH-V1 metrics in :mod:`metrics`.

The main classes are importable from the package itself (loaded on first use, so ``import jwbdh_callbacks``
stays cheap, and the CLI and ``load_preset`` work without Lightning installed). The callbacks need the
``lightning`` extra: ``pip install "jwbdh-callbacks[lightning]"``; without it, importing them raises an
ImportError that says so.

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

#: exports whose module imports Lightning
_NEEDS_LIGHTNING = frozenset({"JWBDHCallback", "TTSWinRateCallback"})

LIGHTNING_HINT = 'pip install "jwbdh-callbacks[lightning]"'

__all__ = [
    "LIGHTNING_HINT",
    "JWBDHCallback",
    "TTSWinRateCallback",
    "__version__",
    "load_preset",
    "require_lightning",
]


def require_lightning(what: str) -> None:
    """Raise an ImportError naming the ``lightning`` extra when Lightning cannot be imported.

    Args:
        what: the object that needs Lightning, named in the message.

    Raises:
        ImportError: Lightning (``lightning.pytorch``) is not installed or fails to import.

    Example:
        >>> require_lightning("JWBDHCallback")  # silent when Lightning is installed
    """
    try:
        importlib.import_module("lightning.pytorch")
    except ImportError as err:
        raise ImportError(
            f"{what} needs PyTorch Lightning, which is an optional dependency: {LIGHTNING_HINT} "
            f"(the metrics in `metrics` work without it). Import failed with: {err}"
        ) from err


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        if name in _NEEDS_LIGHTNING:
            require_lightning(f"jwbdh_callbacks.{name}")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jwbdh_callbacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
