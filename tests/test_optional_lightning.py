"""Lightning is an optional extra: ``metrics`` (every module) and ``import jwbdh_callbacks`` work without it.

Each check runs in a fresh interpreter whose import system refuses ``lightning``, ``pytorch_lightning`` and
``lightning_fabric`` (a ``sys.meta_path`` finder installed before anything else is imported), which is what
an environment without the extra looks like to our code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HIDE_LIGHTNING = """
import sys

class _NoLightning:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lightning", "pytorch_lightning", "lightning_fabric"):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, _NoLightning())
"""


def _run_without_lightning(body: str) -> dict:
    """Run ``body`` after hiding Lightning; it must print one JSON object as its last line."""
    code = _HIDE_LIGHTNING + textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_metrics_module_and_the_package_import_without_lightning() -> None:
    out = _run_without_lightning(
        """
        import importlib, json, pkgutil, sys
        import metrics

        imported, failed = [], {}
        for info in pkgutil.walk_packages(metrics.__path__, "metrics."):
            try:
                importlib.import_module(info.name)
                imported.append(info.name)
            except Exception as err:
                failed[info.name] = repr(err)

        import jwbdh_callbacks
        from jwbdh_callbacks import load_preset

        preset = load_preset("smoke").name
        try:
            from jwbdh_callbacks import JWBDHCallback  # noqa: F401
            callback_error = None
        except ImportError as err:
            callback_error = str(err)
        try:
            import jwbdh_callbacks.region_callback  # noqa: F401
            module_error = None
        except ImportError as err:
            module_error = str(err)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning"))
        print(json.dumps(dict(imported=imported, failed=failed, preset=preset, callback_error=callback_error,
                              module_error=module_error, leaked=leaked)))
        """
    )
    assert out["failed"] == {}
    # the walk really covered the package, not just its __init__
    for name in ("metrics.suite", "metrics.frechet", "metrics.pixel", "metrics.identity", "metrics.regions"):
        assert name in out["imported"]
    assert any(name.startswith("metrics.backbones.") for name in out["imported"])
    assert any(name.startswith("metrics.functional.") for name in out["imported"])
    assert out["preset"] == "smoke"
    assert out["leaked"] == []
    for message in (out["callback_error"], out["module_error"]):
        assert message is not None, "importing the callback must fail without Lightning"
        assert 'pip install "jwbdh-callbacks[lightning]"' in message
        assert "JWBDHCallback" in message


def test_tts_callback_export_names_the_extra_without_lightning() -> None:
    out = _run_without_lightning(
        """
        import json
        try:
            from jwbdh_callbacks import TTSWinRateCallback  # noqa: F401
            error = None
        except ImportError as err:
            error = str(err)
        print(json.dumps(dict(error=error)))
        """
    )
    assert out["error"] is not None
    assert 'pip install "jwbdh-callbacks[lightning]"' in out["error"]
    assert "TTSWinRateCallback" in out["error"]


def test_lightning_is_an_extra_in_all_and_dev() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert not any(dep.replace(" ", "").startswith("lightning") for dep in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(dep.startswith("lightning") for dep in extras["lightning"])
    for group in ("all", "dev"):
        selfref = [dep for dep in extras[group] if dep.startswith("jwbdh-callbacks[")]
        assert selfref and "lightning" in selfref[0].split("[", 1)[1].rstrip("]").split(",")
