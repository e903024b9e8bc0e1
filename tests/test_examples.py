"""The README's demo and the standalone example run end to end (small settings, CPU)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = ["--epochs", "1", "--num-train", "4", "--num-val", "2", "--frames", "4"]


def test_demo_with_csv_logger_works_without_wandb(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    demo = _load("train_avatar")
    results = demo.main([*SMALL, "--logger", "csv", "--out", str(tmp_path)])
    assert set(results) == {"whole_body", "face", "hand"}
    assert math.isfinite(results["whole_body"]["SSIM"])
    metrics_csv = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "val/jwbdh_uncalibrated/face/FID" in metrics_csv
    assert list(tmp_path.rglob("jwbdh_table_step*.csv"))


@pytest.mark.slow
def test_demo_writes_a_wandb_offline_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    demo = _load("train_avatar")
    demo.main([*SMALL, "--logger", "wandb", "--out", str(tmp_path)])
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))  # scalar history and the table live in the run file
    media = runs[0] / "files" / "media"
    assert list(media.rglob("*.png")) and list(media.rglob("*.mp4"))
    assert list(media.rglob("*table*.json"))


def test_calibrated_preset_without_cached_weights_exits_with_the_download_command(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    demo = _load("train_avatar")
    with pytest.raises(SystemExit) as info:
        demo.main(["--preset", "jwbdh-v1", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "jwbdh-weights download inception_v3_imagenet" in capsys.readouterr().err
