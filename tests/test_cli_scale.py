"""``jwbdh-eval`` at scale: per-video rows, resume, spread, --compare, torchrun sharding, decode workers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from jwbdh_callbacks.cli import eval_main
from jwbdh_callbacks.cli.compare import bootstrap_interval
from jwbdh_callbacks.cli.records import read_rows
from jwbdh_callbacks.synthetic import add_noise, generate_sample
from metrics.video import write_video
from tests.ddp import run_ddp

PRESET = """
name: cli-scale-test
protocol: jwbdh-v1
calibrated: false
regions: [whole_body, face]
metrics:
  SSIM: {}
  PSNR: {}
  FID: {feature_extractor: "smoke:image_encoder:16:uint8", num_features: 16}
  SC: {feature_extractor: "smoke:image_encoder:16"}
"""
NAMES = [f"clip{i}" for i in range(3)]


def _write_run(root, label: str, noise: float, identical: str | None = None, short: str | None = None):
    gen_dir = root / label
    gen_dir.mkdir()
    for i, name in enumerate(NAMES):
        sample = generate_sample(seed=i, num_frames=6, height=96, width=80)
        video = sample.video if name == identical else add_noise(sample.video, noise * (i + 1), seed=i)
        write_video(gen_dir / f"{name}.mp4", video[:4] if name == short else video, fps=25)
    return gen_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    ref_dir = root / "reference"
    ref_dir.mkdir()
    keypoints = {}
    for i, name in enumerate(NAMES):
        sample = generate_sample(seed=i, num_frames=6, height=96, width=80)
        write_video(ref_dir / f"{name}.mp4", sample.video, fps=25)
        keypoints[name] = sample.keypoints
    torch.save(keypoints, root / "kp.pt")
    (root / "preset.yaml").write_text(PRESET)
    _write_run(root, "gen_a", 6.0, identical="clip1", short="clip2")
    _write_run(root, "gen_b", 20.0)
    return root


def _args(data, gen: str, *extra: str) -> list[str]:
    return [
        str(data / gen),
        str(data / "reference"),
        "--keypoints",
        str(data / "kp.pt"),
        "--preset",
        str(data / "preset.yaml"),
        "--no-progress",
        "--no-feature-cache",
        *extra,
    ]


def test_per_video_rows_spread_inf_and_scale(data, tmp_path, capsys):
    rows_path, out = tmp_path / "rows.jsonl", tmp_path / "res.json"
    argv = _args(data, "gen_a", "--per-video", str(rows_path), "--out", str(out), "--workers", "0")
    assert eval_main(argv) == 0
    captured = capsys.readouterr()
    rows = read_rows(rows_path)
    assert sorted((r["video"], r["region"]) for r in rows) == sorted(
        (n, r) for n in NAMES for r in ("whole_body", "face")
    )
    by = {(r["video"], r["region"]): r for r in rows}
    assert by["clip1", "whole_body"]["scores"]["PSNR"] == "inf"  # identical videos: +inf, not null
    assert by["clip2", "whole_body"]["frames"] == [4, 6]  # the generated clip is 4 frames long
    assert any("4 frame(s), references 6" in w for w in by["clip2", "whole_body"]["warnings"])
    assert "clip2: generated videos have 4 frame(s)" in captured.err
    assert by["clip0", "face"]["frames"][0] >= 1
    result = json.loads(out.read_text())
    assert result["frames_kept"]["whole_body"] == {"generated": 16, "reference": 18, "decoded": 18}
    assert "frames kept per region" in captured.out and "whole_body 16/18 of 18" in captured.out
    assert result["results"]["whole_body"]["PSNR"] == "inf"
    ssim = [by[n, "whole_body"]["scores"]["SSIM"] for n in NAMES]
    spread = result["summaries"]["whole_body"]["SSIM"]
    assert spread["count"] == 3 and spread["mean"] == pytest.approx(np.mean(ssim), rel=1e-12)
    assert spread["sem"] == pytest.approx(stats.sem(ssim), rel=1e-9)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(ssim), scale=stats.sem(ssim))
    assert (spread["ci_low"], spread["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    sc = result["results"]["whole_body"]["SC"]
    assert 0.0 <= sc <= 1.0  # VBench dimensions on 0-1 ...
    assert "SC (%)" in captured.out and "paper comparison" in captured.out  # ... percent only when labelled
    assert "ours ± sem" in captured.out


def test_resume_after_a_kill_equals_the_uninterrupted_run(data, tmp_path):
    rows_path, full, resumed = tmp_path / "rows.jsonl", tmp_path / "full.json", tmp_path / "resumed.json"
    assert eval_main(_args(data, "gen_b", "--per-video", str(rows_path), "--out", str(full))) == 0
    lines = rows_path.read_text().splitlines(keepends=True)
    first_pair = [ln for ln in lines if json.loads(ln)["video"] == "clip0"]
    # what a kill during the second pair's write leaves: the first pair's lines and a torn line
    rows_path.write_text("".join(first_pair) + lines[-1][: len(lines[-1]) // 2])
    argv = _args(data, "gen_b", "--per-video", str(rows_path), "--resume", "--out", str(resumed))
    assert eval_main(argv) == 0
    a, b = json.loads(full.read_text()), json.loads(resumed.read_text())
    for region, values in a["results"].items():
        assert b["results"][region] == pytest.approx(values, rel=1e-12, abs=1e-12)
    for region, keys in a["summaries"].items():
        for key, spread in keys.items():
            assert b["summaries"][region][key]["count"] == spread["count"]
            assert b["summaries"][region][key]["sem"] == pytest.approx(spread["sem"], rel=1e-9)
    assert sorted(r["video"] for r in read_rows(rows_path) if r["region"] == "face") == NAMES


def test_resume_refuses_other_settings_and_missing_file_flag(data, tmp_path, capsys):
    rows_path = tmp_path / "rows.jsonl"
    assert eval_main(_args(data, "gen_b", "--per-video", str(rows_path), "--max-frames", "5")) == 0
    assert eval_main(_args(data, "gen_b", "--per-video", str(rows_path), "--resume")) == 2
    assert "other settings" in capsys.readouterr().err
    assert eval_main(_args(data, "gen_b", "--resume")) == 2
    assert "--resume needs --per-video" in capsys.readouterr().err


def test_compare_gives_paired_bootstrap_intervals(data, tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert eval_main(_args(data, "gen_a", "--per-video", str(a))) == 0
    assert eval_main(_args(data, "gen_b", "--per-video", str(b))) == 0
    capsys.readouterr()
    assert eval_main(["--compare", str(a), str(b), "--bootstrap", "2000"]) == 0
    out = capsys.readouterr()
    line = next(ln for ln in out.out.splitlines() if ln.startswith("whole_body") and " SSIM " in f" {ln} ")
    assert "videos" in out.out and line.split()[2] == "3"
    assert "PSNR: 1 video(s) with a non-finite score left out" in out.err  # clip1 is +inf in run A


def test_bootstrap_interval_agrees_with_scipy():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=60)
    low, high = bootstrap_interval(d, resamples=20_000, seed=3)
    ref = stats.bootstrap((d,), np.mean, n_resamples=20_000, method="percentile", random_state=5)
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.03)
    assert low < d.mean() < high
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval(d, resamples=10)


def _ddp_eval(rank: int, world_size: int, argv: list[str]) -> int:
    return eval_main(argv)


def test_two_gloo_processes_equal_one_process(data, tmp_path):
    one, two, rows = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "two.jsonl"
    assert eval_main(_args(data, "gen_b", "--out", str(one), "--workers", "0")) == 0
    codes = run_ddp(
        _ddp_eval,
        world_size=2,
        args=(_args(data, "gen_b", "--out", str(two), "--per-video", str(rows), "--workers", "1"),),
    )
    assert codes == [0, 0]  # 3 pairs on 2 ranks: shards of 2 and 1, no hang
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    for region, values in a["results"].items():
        for key, value in values.items():
            assert math.isclose(b["results"][region][key], value, rel_tol=1e-9, abs_tol=1e-12), (region, key)
    assert a["summaries"]["face"]["SSIM"]["count"] == b["summaries"]["face"]["SSIM"]["count"]
    assert sorted({r["video"] for r in read_rows(rows)}) == NAMES  # both ranks appended whole lines


def test_decode_workers_give_the_same_numbers(data, tmp_path):
    zero, two = tmp_path / "w0.json", tmp_path / "w2.json"
    assert eval_main(_args(data, "gen_a", "--out", str(zero), "--workers", "0")) == 0
    assert eval_main(_args(data, "gen_a", "--out", str(two), "--workers", "2")) == 0
    assert json.loads(zero.read_text())["results"] == json.loads(two.read_text())["results"]


def test_resume_after_a_real_kill_equals_the_uninterrupted_run(data, tmp_path):
    """SIGKILL a running ``python -m jwbdh_callbacks.cli`` once its first pair is written, then resume."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    rows_path, full, resumed = tmp_path / "rows.jsonl", tmp_path / "full.json", tmp_path / "resumed.json"
    assert eval_main(_args(data, "gen_b", "--out", str(full), "--workers", "0")) == 0
    argv = _args(data, "gen_b", "--per-video", str(rows_path), "--workers", "0")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "jwbdh_callbacks.cli", *argv], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if rows_path.exists() and len({r["video"] for r in read_rows(rows_path)}) >= 1:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
    finally:
        proc.wait(timeout=60)
    done = {r["video"] for r in read_rows(rows_path)}
    if proc.returncode == 0:  # pragma: no cover - the run outpaced the poll; the kill never happened
        pytest.skip("the run finished before it could be killed")
    assert 1 <= len(done) < len(NAMES)  # killed part-way
    argv = _args(data, "gen_b", "--per-video", str(rows_path), "--resume", "--out", str(resumed))
    assert eval_main(argv) == 0
    a, b = json.loads(full.read_text()), json.loads(resumed.read_text())
    for region, values in a["results"].items():
        assert b["results"][region] == pytest.approx(values, rel=1e-12, abs=1e-12)
    assert sorted({r["video"] for r in read_rows(rows_path)}) == NAMES
