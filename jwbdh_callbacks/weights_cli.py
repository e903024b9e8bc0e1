"""``jwbdh-weights list|path|verify|download [NAME ...]``: the registry half of the weights command line.

The checkpoint registry, resolver and downloader live in :mod:`metrics.backbones.weights`; this module is only
the argument parsing and printing on top of them, so that ``metrics/`` carries no command line (issue 12).
``jwbdh_callbacks.cli.weights_main`` adds ``--preset NAME`` (every checkpoint a preset loads) and calls
:func:`weights_command` with the expanded names.

Exit status: 0 when every NAME was handled, 1 when one is missing or fails its checksum (each is still
reported, none stops the others), 2 for a usage error (argparse's ``SystemExit(2)``).

Example:
    >>> weights_command(["path", "inception_v3_imagenet"])  # doctest: +SKIP
    inception_v3_imagenet: /home/me/.cache/jwbdh/inception_v3_google-0cc3c7bd.pth
    0
"""

from __future__ import annotations

import argparse
import sys

# Reached through the module (not ``from ... import name``) so that registrations and monkeypatches made on
# ``metrics.backbones.weights`` after this import are the ones used.
from metrics.backbones import weights as registry

__all__ = ["build_parser", "weights_command"]

_PER_NAME_COMMANDS = (
    ("path", "print the local path of each NAME (no download)"),
    ("verify", "check the sha256 of each NAME found locally"),
    ("download", "download each NAME into the cache"),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``jwbdh-weights`` argument parser (``list`` and the per-name ``path``/``verify``/``download``).

    Example:
        >>> build_parser().parse_args(["verify", "amt_s"]).names
        ['amt_s']
    """
    parser = argparse.ArgumentParser(
        prog="jwbdh-weights", description="Manage the checkpoints jwbdh metrics use."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list registry entries, where they are and their licences")
    for command, text in _PER_NAME_COMMANDS:
        p = sub.add_parser(command, help=text)
        p.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all for verify)")
    return parser


def _local_copy(entry: registry.WeightsEntry) -> str | None:
    """The first existing file among the places the resolver searches, or None."""
    return next((str(p) for p in registry._candidates(entry) if p.is_file()), None)


def _list_entries() -> int:
    for entry in registry.REGISTRY.values():
        flag = "  [NON-COMMERCIAL]" if entry.non_commercial else ""
        print(f"{entry.name:24s} {entry.filename:40s} {entry.license}{flag}")
        print(f"{'':24s} {entry.description}; local: {_local_copy(entry) or '-'}")
    return 0


def weights_command(argv: list[str] | None = None) -> int:
    """Run ``jwbdh-weights`` on ``argv`` (``sys.argv[1:]`` when None) and return the exit status.

    ``list`` prints every registry entry with its licence, a ``[NON-COMMERCIAL]`` flag and the local copy if
    any; ``path NAME...`` prints where each is found (never downloads); ``verify [NAME...]`` checks the sha256
    of each local copy (default: the whole registry); ``download NAME...`` fetches each into the cache.

    Raises:
        SystemExit: usage errors (no NAME for ``path``/``download``, an unknown NAME), from argparse.

    Example:
        >>> weights_command(["verify", "amt_s"])  # doctest: +SKIP
        amt_s: missing
        1
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list_entries()
    names = args.names or (list(registry.REGISTRY) if args.command == "verify" else [])
    if not names:
        parser.error(f"`{args.command}` needs at least one NAME")
    unknown = [n for n in names if n not in registry.REGISTRY]
    if unknown:
        parser.error(f"unknown NAME(s): {', '.join(unknown)}; see `jwbdh-weights list`")
    status = 0
    missing: list[str] = []
    for name in names:
        try:
            if args.command == "download":
                print(f"{name}: {registry.download_weights(name)}")
            elif args.command == "path":
                print(f"{name}: {registry.resolve_weights(name, allow_download=False)}")
            else:
                entry = registry.REGISTRY[name]
                local = _local_copy(entry)
                if local is None:
                    print(f"{name}: missing")
                    missing.append(name)
                    status = 1
                    continue
                ok = registry.verify_file(local, entry)
                print(f"{name}: {'ok' if ok else 'MISMATCH (warning only)'} {local}")
        except (registry.WeightsUnavailableError, registry.WeightsChecksumError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            status = 1
    if missing:
        print(
            f"{len(missing)} of {len(names)} checkpoint(s) missing; "
            f"`jwbdh-weights download {' '.join(missing)}` fetches them",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    raise SystemExit(weights_command())
