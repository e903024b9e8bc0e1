"""Test-wide settings: the repo root on sys.path (for ``tests.ddp``) and no network, ever."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Weights must never be downloaded in tests; spawned DDP workers inherit this too.
os.environ["JWBDH_OFFLINE"] = "1"

# `jwbdh-eval` caches reference features on disk by default: never in the user's home during tests.
if "JWBDH_FEATURE_CACHE" not in os.environ:
    import tempfile

    os.environ["JWBDH_FEATURE_CACHE"] = tempfile.mkdtemp(prefix="jwbdh-test-features-")
