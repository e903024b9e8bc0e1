"""``jwbdh-weights list|path|verify|download [NAME ...] [--preset PRESET]``: manage checkpoints.

``--preset jwbdh-v1`` (or any preset name / YAML file) stands for every checkpoint that preset's metrics load,
e.g. ``jwbdh-weights download --preset jwbdh-v1``.

Example:
    >>> preset_weights("smoke")
    []
"""

from __future__ import annotations

import os
import sys

__all__ = ["preset_weights", "weights_main"]


def weights_main(argv: list[str] | None = None) -> int:
    """Entry point of ``jwbdh-weights`` (see the module docstring and ``--help``)."""
    from jwbdh_callbacks.weights_cli import weights_command as main
    from metrics.backbones.weights import REGISTRY

    args = list(sys.argv[1:] if argv is None else argv)
    if "--preset" not in args:
        return main(args)
    at = args.index("--preset")
    if at + 1 >= len(args):
        print("jwbdh-weights: error: --preset needs a preset name or YAML file", file=sys.stderr)
        return 2
    preset = args[at + 1]
    del args[at : at + 2]
    try:
        names = [spec for spec in preset_weights(preset) if spec in REGISTRY]
    except ValueError as err:
        print(f"jwbdh-weights: error: {err}", file=sys.stderr)
        return 2
    if not names:
        print(f"preset {preset!r} loads no registry checkpoint (random-init backbones)")
        return 0
    return main([*args, *names])


def preset_weights(preset: str | os.PathLike) -> list[str]:
    """Checkpoint specs every metric of ``preset`` loads (its default regions), in a stable order."""
    from jwbdh_callbacks.presets import load_preset, preset_metrics
    from metrics.suite import RegionalSuite

    cfg = load_preset(preset)
    return RegionalSuite(preset_metrics(cfg), regions=cfg.regions).required_weights()
