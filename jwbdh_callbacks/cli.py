"""Command-line entry points: ``jwbdh-weights`` (manage checkpoints)."""

from __future__ import annotations

import sys


def weights_main(argv: list[str] | None = None) -> int:
    """``jwbdh-weights list|path|verify|download [NAME ...]`` (see ``jwbdh-weights --help``)."""
    from metrics.backbones.weights import main

    return main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(weights_main())
