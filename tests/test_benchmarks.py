"""The speed-regression benchmarks (``python -m benchmarks``).

The quick CI run passes its committed thresholds and writes the documented JSON; ``--check`` really fails on
a regression (a threshold above the measured value) or a wrong number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.common import (
    BenchResult,
    Correctness,
    Ratio,
    evaluate,
    load_thresholds,
    speedup,
    threshold_for,
)

ROOT = Path(__file__).resolve().parents[1]
ALL = (
    "frechet_pooled",
    "frechet_per_video",
    "ssim",
    "edges",
    "crops",
    "pipeline",
    "vbench",
    "callback_overhead",
    "memory",
    "eval",
)
#: Benchmarks with real-size networks (Inception-v3, I3D, DINO, CLIP-L, RAFT, MUSIQ): minutes each on 2 cores.
#: Their plumbing and number checks are tested below on tiny networks; `.ci/run` runs the pipeline's quick
#: --check as its own step, outside the 10-minute test suite.
REAL_NETWORKS = ("pipeline", "vbench")
#: Whole `jwbdh-eval` runs with decode worker processes (a minute in quick mode): `.ci/run` checks it beside
#: the pipeline, outside the suite's quick run.
CI_STEP = (*REAL_NETWORKS, "eval")
LIGHT = tuple(name for name in ALL if name not in CI_STEP)


def _run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = _run("--quick", "--check", "--only", *LIGHT, "--json", str(out), timeout=540)
    payload = json.loads(out.read_text()) if out.exists() else {}
    return proc, payload


@pytest.mark.slow
def test_quick_check_passes_and_writes_json(quick_run: tuple[subprocess.CompletedProcess, dict]) -> None:
    proc, payload = quick_run
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert "all checks passed" in proc.stdout
    assert "device cpu" in proc.stdout or "device cuda" in proc.stdout
    assert payload["format"] == "jwbdh-benchmarks/1"
    assert payload["mode"] == "quick"
    assert payload["check"] == {"enabled": True, "passed": True, "failures": []}
    results = {r["name"]: r for r in payload["results"]}
    assert tuple(results) == LIGHT
    for name, res in results.items():
        assert res["error"] is None, (name, res["notes"])
        assert res["mode"] == "quick" and res["device"] in ("cpu", "cuda")
        assert res["ratios"], name
        for key, ratio in res["ratios"].items():
            assert ratio["kind"] in ("speedup", "overhead", "growth"), (name, key)
            value, low, high = (float(ratio[k]) for k in ("value", "low", "high"))
            assert math.isfinite(value) and low <= high, (name, key, ratio)
        assert res["correctness"], name
        for check in res["correctness"]:
            assert check["ok"] is True and float(check["value"]) <= float(check["tolerance"]), (name, check)
        if name != "memory":
            for side in res["timings"].values():
                assert side["min_s"] <= side["median_s"] <= side["max_s"]
                assert len(side["rounds_s"]) >= 1
    assert {row["status"] for row in payload["checks"]} == {"pass"}


@pytest.mark.slow
def test_every_measured_ratio_has_thresholds_in_both_modes(
    quick_run: tuple[subprocess.CompletedProcess, dict],
) -> None:
    _, payload = quick_run
    thresholds = load_thresholds()
    for res in payload["results"]:
        for key, ratio in res["ratios"].items():
            for mode in ("quick", "full"):
                limit = threshold_for(thresholds, res["name"], key, mode)
                assert limit, f"no {mode} threshold for {res['name']}.{key}"
                expected = "min" if ratio["kind"] == "speedup" else "max"
                assert set(limit) == {expected}, (res["name"], key, mode, limit)


def test_check_fails_when_a_threshold_is_raised_above_the_measured_value(tmp_path: Path) -> None:
    raised = load_thresholds()
    raised["benchmarks"]["ssim"]["speedup"]["quick"] = {"min": 1e9}
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps(raised))
    out = tmp_path / "out.json"
    args = ("--quick", "--only", "ssim", "--rounds", "1", "--thresholds", str(path), "--json", str(out))
    proc = _run(*args, "--check", timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "FAILED checks" in proc.stdout and "ssim.speedup" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["check"]["passed"] is False
    assert [f["check"] for f in payload["check"]["failures"]] == ["ssim.speedup"]
    # Without --check the same regression is reported but does not fail the command.
    assert _run(*args, timeout=180).returncode == 0


def _result(ratios: dict[str, Ratio], correctness: list[Correctness] | None = None) -> BenchResult:
    return BenchResult(name="demo", mode="quick", device="cpu", ratios=ratios, correctness=correctness or [])


THRESHOLDS = {
    "benchmarks": {
        "demo": {
            "speedup": {"quick": {"min": 2.0}, "full": {"min": 5.0}},
            "overhead": {"quick": {"max": 0.5}},
        }
    }
}


def test_evaluate_min_max_and_modes() -> None:
    rows = evaluate(
        _result({"speedup": Ratio("speedup", 3.0, 2.5, 3.5), "overhead": Ratio("overhead", 0.4, 0.3, 0.6)}),
        THRESHOLDS,
    )
    assert [r["status"] for r in rows] == ["pass", "pass"]
    rows = evaluate(
        _result({"speedup": Ratio("speedup", 1.9, 1.8, 2.1), "overhead": Ratio("overhead", 0.7, 0.6, 0.8)}),
        THRESHOLDS,
    )
    assert [r["status"] for r in rows] == ["FAIL", "FAIL"]
    full = _result({"speedup": Ratio("speedup", 3.0, 2.5, 3.5)})
    full.mode = "full"
    assert [r["status"] for r in evaluate(full, THRESHOLDS)] == ["FAIL"]  # full mode asks for 5x
    assert [
        r["status"] for r in evaluate(_result({"other": Ratio("speedup", 0.1, 0.1, 0.1)}), THRESHOLDS)
    ] == ["unchecked"]


def test_evaluate_fails_on_correctness_mismatch_nan_and_errors() -> None:
    ok = Correctness("rel diff", 1e-8, 1e-6)
    bad = Correctness("rel diff", 1e-3, 1e-6)
    nan = Correctness("rel diff", float("nan"), 1e-6)
    assert ok.ok and not bad.ok and not nan.ok
    rows = evaluate(_result({"speedup": Ratio("speedup", 3.0, 3.0, 3.0)}, [ok, bad, nan]), THRESHOLDS)
    assert [r["status"] for r in rows] == ["pass", "pass", "FAIL", "FAIL"]
    crashed = _result({})
    crashed.error = "RuntimeError: boom"
    assert [r["status"] for r in evaluate(crashed, THRESHOLDS)] == ["FAIL"]


def test_speedup_uses_medians_and_per_round_spread() -> None:
    r = speedup({"base": [10.0, 12.0, 30.0], "ours": [1.0, 2.0, 3.0]}, "base", "ours")
    assert r.kind == "speedup"
    assert r.value == pytest.approx(12.0 / 2.0)
    assert (r.low, r.high) == pytest.approx((6.0, 10.0))


def test_state_bytes_sees_growing_list_states() -> None:
    import torch
    from torchmetrics import Metric

    from benchmarks.memory_bench import state_bytes

    class Keeps(Metric):
        def __init__(self) -> None:
            super().__init__()
            self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("kept", [], dist_reduce_fx="cat")

        def update(self, x: torch.Tensor) -> None:
            self.total += x.sum()
            self.kept.append(x)

        def compute(self) -> torch.Tensor:
            return self.total

    m = Keeps()
    m.update(torch.zeros(4, dtype=torch.float32))
    one = state_bytes(m)
    for _ in range(9):
        m.update(torch.zeros(4, dtype=torch.float32))
    assert one == 8 + 16 and state_bytes(m) == 8 + 160


def test_throughput_profile_counts_frames_for_every_metric_and_pass() -> None:
    """``python -m benchmarks.profile``: frames/s per metric and for the suite, three passes (smoke)."""
    from benchmarks.profile import format_profile, profile

    result = profile("smoke", videos=2, frames=4, size=(128, 96), batch_size=2)
    assert list(result["passes"]) == [
        "preset",
        "pooled",
        "pooled, cached reference",
        "preset, cached features",
    ]
    for name, run in result["passes"].items():
        assert run["total_s"] > 0 and run["suite_frames_per_s"] == pytest.approx(2 * 4 / run["total_s"])
        # 2 whole-body videos always; face/hand crops add the videos where the region was found
        assert 2 <= run["video_regions"] <= 6 and run["regions_scored"] >= 1
        assert run["ms_per_video_region"] == pytest.approx(1000 * run["total_s"] / run["video_regions"])
        whole_body_frames = 2 * 4
        for key in ("SSIM", "PSNR", "FID", "FVD", "E-FID"):
            entry = run["per_metric"][key]
            # whole body always counts 8 generated frames; face/hand crops add their kept frames
            assert entry["frames"] >= whole_body_frames and entry["frames_per_s"] > 0, (name, key, entry)
    table = format_profile(result)
    assert "whole suite" in table and "pooled, cached reference" in table and "ms per video-region" in table
    with pytest.raises(ValueError, match="--metrics"):
        profile("smoke", videos=1, frames=2, metric_keys=["NOPE"])


# ------------------------------------------------------------------------------------------- pipeline
class _TinyImageNetNet(torch.nn.Module):
    """An ImageNetInceptionV3-shaped wrapper (PIL-exact 299 resize, ImageNet normalisation, ``.net``) around
    a small CNN, so that the pipeline's plumbing and number checks run in seconds."""

    def __init__(self, weights: object = None) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 9, stride=8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4),
            torch.nn.Flatten(),
            torch.nn.Linear(128, 12),
        )
        for m in self.net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        from metrics.functional.resize import resize_pil_bilinear

        x = resize_pil_bilinear(frames, (299, 299)).float() / 255.0
        return self.net((x - self.mean) / self.std)


def test_pipeline_ours_equals_the_script_loop_and_reports_three_ratios() -> None:
    """Structure and numbers of the pipeline benchmark on tiny backbones (speed is not asserted here)."""
    import torch

    from benchmarks.data import avatar_videos
    from benchmarks.pipeline_bench import Backbones, measure_pipeline, pipeline_checks, pipeline_ratios
    from metrics.backbones.cache import BackboneRef
    from metrics.backbones.i3d import i3d_ref

    ref, gen, _ = avatar_videos(2, 4, 48, 40, seed=1, other_motion=True)  # FVD pads to 16 frames
    backbones = Backbones(BackboneRef("test_tiny_imagenet_net", _TinyImageNetNet), i3d_ref(None), 12)
    measured = measure_pipeline(gen, ref, backbones, torch.device("cpu"), rounds=1)
    sides = {"reference", "ours_fp32", "ours_bf16", "ours_fp32_first", "ours_fp32_second"}
    assert set(measured["times"]) == sides
    ratios = pipeline_ratios(measured)
    assert set(ratios) == {
        "frechet_step",
        "non_frechet",
        "end_to_end",
        "non_frechet_bf16",
        "end_to_end_bf16",
        "second_evaluation",
    }
    assert all(r.kind == "speedup" and r.value > 0 for r in ratios.values())
    # the baseline's time splits into its Fréchet stages and the rest
    assert 0 < measured["frechet"]["reference"][0] < measured["times"]["reference"][0]
    assert {"fid_sqrtm", "fvd_sqrtm", "inception_forward", "i3d_forward", "ssim_skimage"} <= set(
        measured["reference_stages"]
    )
    checks, _ = pipeline_checks(measured["values"])
    assert all(c.ok for c in checks), checks
    fp32, script = measured["values"]["ours_fp32"], measured["values"]["reference"]
    for key in ("FID", "E-FID", "FVD"):
        assert fp32[key] == pytest.approx(script[key], rel=1e-5), key
    assert script["FID"] > 0 and script["E-FID"] > 0
    # the reference cache's second evaluation gives the first one's numbers
    assert measured["values"]["ours_fp32_second"] == pytest.approx(fp32, rel=1e-12)
    for key in ("SSIM", "PSNR", "CSIM"):
        assert fp32[key] == pytest.approx(script[key], abs=1e-9), key
        assert measured["values"]["ours_bf16"][key] == pytest.approx(script[key], abs=1e-9), key
    # the FVD quirk: one clip per side, trace term -2e-6 * 400, on the script's own features
    (real, fake), *_ = measured["reference_features"]["FVD"]
    expected = float(((fake.astype(np.float64) - real) ** 2).sum()) - 8e-4
    from benchmarks.reference_scripts import compute_fvd

    assert compute_fvd(fake, real) == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------------------------- vbench
def _small_raft(weights: object = None) -> torch.nn.Module:
    """RAFTLarge's wrapper around torchvision's RAFT-small (same calling convention, ~5x cheaper)."""
    from torchvision.models.optical_flow import raft_small

    from metrics.backbones.raft import RAFTLarge

    net = RAFTLarge(weights=None)
    net.raft = raft_small(weights=None, progress=False)
    return net


def _small_musiq(weights: object = None) -> torch.nn.Module:
    """MUSIQSpaq around a 2-layer pyiqa MUSIQ (same preprocessing and multi-scale patches)."""
    from metrics.backbones.musiq import MUSIQSpaq, musiq_class

    net = MUSIQSpaq(weights=None)
    net.net = musiq_class()(num_class=1, num_layers=2, pretrained=False)
    net.net.training = False
    return net


def test_vbench_ours_equals_vbench_loop_and_reports_per_dimension_times() -> None:
    """Structure and numbers of the vbench benchmark with small members of the network families (DINO, CLIP,
    RAFT-small, 2-layer MUSIQ; AMT-S real) on a 3-frame 128 px clip (speed is not asserted here)."""
    from benchmarks.data import avatar_videos
    from benchmarks.vbench_bench import FP32_TOL, measure, result
    from benchmarks.vbench_reference import DIMENSIONS, VBenchRefs
    from metrics.backbones.aesthetic import aesthetic_head_ref
    from metrics.backbones.amt import amt_s_ref
    from metrics.backbones.cache import BackboneRef
    from metrics.backbones.clip import clip_ref
    from metrics.backbones.dino import dino_ref

    tiny_clip = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 1, "layers": 1},
    }
    refs = VBenchRefs(
        dino=dino_ref(None, embed_dim=48, depth=1, num_heads=3),
        clip_b32=clip_ref(tiny_clip, None),
        clip_l14=clip_ref(tiny_clip, None),
        aesthetic_head=aesthetic_head_ref(None, in_features=32),
        amt=amt_s_ref(None),
        raft=BackboneRef("test_raft_small", _small_raft),
        musiq=BackboneRef("test_musiq_2_layers", _small_musiq),
    )
    _, gen, _ = avatar_videos(1, 3, 128, 136, seed=2)
    measured = measure(gen, 8.0, torch.device("cpu"), rounds=1, refs=refs, warmup=False)
    assert set(measured["times"]) == {"vbench_reference", "ours_fp32"}
    res = result(measured, "quick", torch.device("cpu"), {"videos": 1})
    assert set(res.ratios) == {"speedup"} and res.ratios["speedup"].value > 0
    assert [c.ok for c in res.correctness] == [True], res.correctness
    diffs = res.breakdown["per_dimension_difference_fp32"]
    assert set(diffs) == set(DIMENSIONS) and max(diffs.values()) <= FP32_TOL
    for side in ("vbench_reference", "ours_fp32"):
        assert set(res.breakdown["seconds_per_dimension"][side]) == set(DIMENSIONS)
    ours, theirs = measured["values"]["ours_fp32"], measured["values"]["vbench_reference"]
    # DD: 3 frames at 8 fps -> 2 pairs, scores per pair on both sides; IQ per video on the raw MOS scale
    assert [len(v["dynamic_degree"]["pair_scores"][0]) for v in (theirs, ours)] == [2, 2]
    assert ours["imaging_quality"]["score"] == pytest.approx(theirs["imaging_quality"]["per_video"][0] / 100)
    for dim in DIMENSIONS:
        assert math.isfinite(ours[dim]["score"]) and len(ours[dim]["per_video"]) == 1
