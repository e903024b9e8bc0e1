"""The TTS check's prompt set: :class:`TTSPrompt`, :func:`load_prompts`, selection and the per-rank shards.

Prompts follow EmergentTTS-Eval's data format (``shared/spec/tts.md`` s4: ``category``,
``text_to_synthesize``, optional ``evolution_depth``, plus an ``id``). :func:`shard_prompts` gives each DDP
rank its share, padded so that every rank makes the same number of ``synthesize`` calls (a sharded model,
FSDP or ZeRO-3, runs collectives inside its forward and would hang otherwise).

Example:
    >>> prompts = load_prompts()  # the packaged set
    >>> len(prompts), prompts[0].category
    (32, 'Emotions')
    >>> share, n_real = shard_prompts(prompts[:3], rank=1, world_size=2)
    >>> [p.index for p in share], n_real   # prompt 1, then its copy as padding
    ([1, 1], 1)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["TTSPrompt", "category_slug", "load_prompts", "select_prompts", "shard_prompts"]


@dataclass(frozen=True)
class TTSPrompt:
    """One prompt: ``index`` is its row in the prompt list (seeds its position randomisation)."""

    index: int
    id: str
    category: str
    text: str
    evolution_depth: int | None = None


def category_slug(category: str) -> str:
    """Log-key form of a category name: ``"Complex Pronunciation"`` -> ``"complex_pronunciation"``."""
    slug = re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")
    if not slug:
        raise ValueError(f"category must contain a letter or digit, got {category!r}")
    return slug


def _prompt_from(i: int, item: Any) -> TTSPrompt:
    if isinstance(item, TTSPrompt):
        return TTSPrompt(i, item.id, item.category, item.text, item.evolution_depth)
    if not isinstance(item, Mapping):
        raise ValueError(
            f"prompts[{i}] must be a TTSPrompt or a mapping with 'text' and 'category', got {item!r}"
        )
    text = item.get("text_to_synthesize", item.get("text"))
    category = item.get("category")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"prompts[{i}] needs a non-empty 'text_to_synthesize' (or 'text') string, got {text!r}"
        )
    if not isinstance(category, str) or not category.strip():
        raise ValueError(f"prompts[{i}] needs a non-empty 'category' string, got {category!r}")
    depth = item.get("evolution_depth")
    return TTSPrompt(i, str(item.get("id", i)), category, text, None if depth is None else int(depth))


def load_prompts(source: str | os.PathLike[str] | Sequence[Any] | None = None) -> list[TTSPrompt]:
    """Load prompts from a JSONL file (EmergentTTS fields), a sequence of mappings/TTSPrompts, or the default.

    ``None`` gives the packaged ``jwbdh_callbacks/data/tts_prompts.jsonl`` (32 sentences written for this
    project in the six EmergentTTS-Eval categories).
    """
    if source is None:
        text = (
            resources.files("jwbdh_callbacks").joinpath("data/tts_prompts.jsonl").read_text(encoding="utf-8")
        )
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"prompts must be an existing JSONL file, got {str(path)!r}")
        items = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"prompts file {str(path)!r} line {n} is not JSON: {err}") from err
    elif isinstance(source, Sequence):
        items = list(source)
    else:
        raise ValueError(
            f"prompts must be a path, a sequence of prompts or None, got {type(source).__name__}"
        )
    prompts = [_prompt_from(i, item) for i, item in enumerate(items)]
    if not prompts:
        raise ValueError("prompts must contain at least one prompt")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        raise ValueError("prompts must have unique 'id' values")
    return prompts


def select_prompts(
    prompts: list[TTSPrompt], categories: Sequence[str], max_prompts: int | None
) -> list[TTSPrompt]:
    """The prompts of ``categories`` in list order; at most ``max_prompts``, round-robin per category."""
    by_cat = {c: [p for p in prompts if p.category == c] for c in categories}
    if max_prompts is None:
        return sorted((p for ps in by_cat.values() for p in ps), key=lambda p: p.index)
    chosen: list[TTSPrompt] = []
    depth = 0
    while len(chosen) < max_prompts and any(depth < len(ps) for ps in by_cat.values()):
        for c in categories:  # round-robin so that every category is represented
            if depth < len(by_cat[c]) and len(chosen) < max_prompts:
                chosen.append(by_cat[c][depth])
        depth += 1
    return sorted(chosen, key=lambda p: p.index)


def shard_prompts(prompts: Sequence[TTSPrompt], rank: int, world_size: int) -> tuple[list[TTSPrompt], int]:
    """This rank's prompts ``prompts[rank::world_size]``, padded to the largest share; and how many are real.

    Every rank gets ``ceil(len(prompts) / world_size)`` prompts, so every rank makes the same number of
    ``synthesize`` calls with the same batch sizes. Padding repeats the share's last prompt (prompt 0 for an
    empty share, when there are fewer prompts than ranks); only the first ``n_real`` entries are evaluated,
    the padding's audio is discarded. The shares depend only on ``(prompts, rank, world_size)``, so no
    communication is needed to agree on them.

    Example:
        >>> ps = load_prompts()[:3]
        >>> [([p.index for p in s], n) for s, n in (shard_prompts(ps, r, 2) for r in range(2))]
        [([0, 2], 2), ([1, 1], 1)]
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}")
    if len(prompts) == 0:
        raise ValueError("prompts must contain at least one prompt")
    share = list(prompts[rank::world_size])
    size = -(-len(prompts) // world_size)
    filler = share[-1] if share else prompts[0]
    return share + [filler] * (size - len(share)), len(share)
