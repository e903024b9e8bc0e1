"""Command-line tools: ``jwbdh-eval`` (score folders of videos) and ``jwbdh-weights`` (manage checkpoints).

``jwbdh-eval GENERATED_DIR REFERENCE_DIR`` pairs videos by file name (without extension), crops the regions
(from ``--keypoints``, keypoints estimated with ``--pose mediapipe|dwpose``, or MTCNN faces with
``--detect-faces``), runs a preset's metrics and prints the results (VBench dimensions on 0-1, each mean with
its standard error and 95% interval), then a labelled comparison with the paper's Table 2 in the paper's
units. ``--out results.csv|.json`` writes the numbers; ``--per-video rows.jsonl`` one line per video pair and
region as it is scored, ``--resume`` continues an interrupted run from it, and ``--compare a.jsonl b.jsonl``
tells whether run B is better than run A with a paired bootstrap interval. Under ``torchrun`` the pairs are
sharded across processes (``python -m jwbdh_callbacks.cli``); ``--workers`` decode ahead.

Reference features (FID, E-FID, FVD) are cached on disk, keyed by the reference file's sha256, its keypoints,
the frame limit, the region and the backbone's fingerprint (weights, precision, preprocessing): a second run
over the same ground-truth folder (another checkpoint's outputs) encodes only the generated videos
(``--feature-cache DIR``, default ``$JWBDH_FEATURE_CACHE`` or ``~/.cache/jwbdh/features``;
``--no-feature-cache``).

Modules: :mod:`.evaluate` (arguments and the scoring loop), :mod:`.inputs` (pairs, keypoint files, decode
workers), :mod:`.records` (per-video lines, resume), :mod:`.compare`, :mod:`.output` (tables, files),
:mod:`.distributed` (torchrun), :mod:`.weights` (``jwbdh-weights``).

Example:
    $ jwbdh-eval outputs/ ground_truth/ --keypoints gt_keypoints.pt --preset jwbdh-v1 --out results.csv
"""

from __future__ import annotations

from jwbdh_callbacks.cli.evaluate import _device, _positive_int, _regions, build_parser, eval_main
from jwbdh_callbacks.cli.inputs import (
    VIDEO_EXTENSIONS,
    feature_cache_dir,
    load_keypoints,
    pair_videos,
    reference_id,
)
from jwbdh_callbacks.cli.output import format_table
from jwbdh_callbacks.cli.weights import preset_weights, weights_main

_load_keypoints = load_keypoints  # the pre-package private name, used by tests and notebooks

__all__ = [
    "VIDEO_EXTENSIONS",
    "build_parser",
    "eval_main",
    "feature_cache_dir",
    "format_table",
    "load_keypoints",
    "pair_videos",
    "preset_weights",
    "reference_id",
    "weights_main",
]
_ARGUMENT_TYPES = (_device, _positive_int, _regions)
