"""``jwbdh-eval`` end to end on mp4 files written with PyAV."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from jwbdh_callbacks.cli import eval_main, format_table, pair_videos
from jwbdh_callbacks.synthetic import add_noise, generate_sample
from metrics.video import write_video

PRESET = """
name: cli-test
protocol: jwbdh-v1
calibrated: false
regions: [whole_body, face, hand]
metrics:
  SSIM: {}
  PSNR: {max_psnr: 100.0}
  FID: {feature_extractor: "smoke:image_encoder:16:uint8", num_features: 16}
  SC: {feature_extractor: "smoke:image_encoder:16"}
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    gen_dir, ref_dir = root / "generated", root / "reference"
    gen_dir.mkdir()
    ref_dir.mkdir()
    keypoints = {}
    for i in range(2):
        sample = generate_sample(seed=i, num_frames=8, height=160, width=128)
        write_video(ref_dir / f"clip{i}.mp4", sample.video, fps=25)
        write_video(gen_dir / f"clip{i}.mp4", add_noise(sample.video, 8.0 * (i + 1), seed=i), fps=25)
        keypoints[f"clip{i}"] = sample.keypoints
    torch.save(keypoints, root / "keypoints.pt")
    (root / "preset.yaml").write_text(PRESET)
    return root


def test_end_to_end_csv_and_json(folders, capsys):
    out_csv, out_json = folders / "res.csv", folders / "res.json"
    kp, preset = str(folders / "keypoints.pt"), str(folders / "preset.yaml")
    args = [
        str(folders / "generated"),
        str(folders / "reference"),
        "--keypoints",
        kp,
        "--preset",
        preset,
        "--no-progress",
    ]
    assert eval_main([*args, "--out", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "paper: Step" in printed and "whole_body" in printed and "face" in printed
    rows = list(csv.reader(out_csv.open()))
    assert rows[0][:2] == ["source", "region"] and rows[1][0] == "ours"
    assert eval_main([*args, "--out", str(out_json)]) == 0
    results = json.loads(out_json.read_text())["results"]
    assert set(results) == {"whole_body", "face", "hand"}
    assert 0 < results["whole_body"]["SSIM"] < 1 and results["whole_body"]["PSNR"] > 10


def test_unpaired_videos_are_listed(folders, tmp_path, capsys):
    extra = tmp_path / "gen"
    extra.mkdir()
    for f in (folders / "generated").iterdir():
        (extra / f.name).write_bytes(f.read_bytes())
    (extra / "orphan.mp4").write_bytes((folders / "generated" / "clip0.mp4").read_bytes())
    assert eval_main([str(extra), str(folders / "reference"), "--preset", str(folders / "preset.yaml")]) == 2
    assert "only in GENERATED_DIR: orphan" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a directory"):
        pair_videos(tmp_path / "missing", folders / "reference")


def test_unreadable_video_is_reported_and_others_scored(folders, tmp_path, capsys):
    gen, ref = tmp_path / "g", tmp_path / "r"
    gen.mkdir()
    ref.mkdir()
    for name in ("clip0", "clip1"):
        (gen / f"{name}.mp4").write_bytes((folders / "generated" / f"{name}.mp4").read_bytes())
        (ref / f"{name}.mp4").write_bytes((folders / "reference" / f"{name}.mp4").read_bytes())
    (gen / "broken.mp4").write_bytes(b"not a video at all")
    (ref / "broken.mp4").write_bytes((folders / "reference" / "clip0.mp4").read_bytes())
    code = eval_main([str(gen), str(ref), "--preset", str(folders / "preset.yaml"), "--regions", "whole_body",
                      "--out", str(tmp_path / "o.json"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "skipping broken" in err
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["failures"] and data["results"]["whole_body"]["SSIM"] > 0


def test_format_table_and_bad_out(folders, capsys):
    text = format_table(["a", "b"], [["x", 1.23456], ["y", None]])
    assert "1.235" in text and "-" in text.splitlines()[-1]
    code = eval_main([str(folders / "generated"), str(folders / "reference"), "--out", "x.txt"])
    assert code == 2 and "--out" in capsys.readouterr().err


def test_reference_features_are_cached_on_disk_across_runs(folders, tmp_path, capsys):
    cache_dir = tmp_path / "features"
    kp = str(folders / "keypoints.pt")
    args = [str(folders / "generated"), str(folders / "reference"), "--keypoints", kp,
            "--preset", str(folders / "preset.yaml"), "--no-progress"]  # fmt: skip
    outs = []
    for extra in (
        ["--feature-cache", str(cache_dir)],
        ["--feature-cache", str(cache_dir)],
        ["--no-feature-cache"],
    ):
        out = tmp_path / f"r{len(outs)}.json"
        assert eval_main([*args, *extra, "--out", str(out)]) == 0
        outs.append((json.loads(out.read_text())["results"], capsys.readouterr().err))
    # 2 videos x 3 regions, FID only (the preset's one Fréchet metric): computed once, then reused.
    assert "0 reused, 6 computed" in outs[0][1]
    assert "6 reused, 0 computed" in outs[1][1]
    assert "feature cache" not in outs[2][1]
    assert outs[0][0] == outs[1][0] == outs[2][0]
    # A changed keypoint file changes the ids: nothing stale is reused.
    changed = torch.load(kp)
    changed["clip0"] = changed["clip0"] + 1.0
    torch.save(changed, tmp_path / "kp2.pt")
    args[3] = str(tmp_path / "kp2.pt")
    assert eval_main([*args, "--feature-cache", str(cache_dir)]) == 0
    assert "3 reused, 3 computed" in capsys.readouterr().err


def test_missing_checkpoints_fail_before_any_video_is_decoded(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    gen = tmp_path / "g"
    gen.mkdir()
    for name in ("clip0", "clip1"):
        (gen / f"{name}.mp4").write_bytes(b"not a video: decoding it would be reported as a skipped video")
    code = eval_main([str(gen), str(folders / "reference"), "--preset", "jwbdh-v1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "checkpoint(s) needed are not available" in err
    assert "inception_v3_imagenet" in err and "i3d_torchscript" in err and "dino_vitb16" in err
    assert "jwbdh-weights download" in err and "skipping clip0" not in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-frames", "0", "expected a positive integer"),
        ("--max-frames", "many", "expected a positive integer"),
        ("--regions", "torso", "unknown region(s) ['torso']; expected some of whole_body, face, hand"),
        ("--regions", "face,,", None),
        ("--device", "tpu", "expected cpu or cuda"),
    ],
)
def test_bad_cli_values_are_rejected_by_the_parser(folders, capsys, flag, value, message):
    args = [str(folders / "generated"), str(folders / "reference"), flag, value, "--no-progress"]
    if (
        message is None
    ):  # empty names are dropped, the known one kept: parses fine (fails later for keypoints)
        from jwbdh_callbacks.cli import _regions

        assert _regions(value) == ["face"]
        return
    with pytest.raises(SystemExit) as info:
        eval_main(args)
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_refused_up_front(folders, capsys):
    with pytest.raises(SystemExit) as info:
        eval_main([str(folders / "generated"), str(folders / "reference"), "--device", "cuda"])
    assert info.value.code == 2 and "no CUDA GPU is available here; use cpu" in capsys.readouterr().err


def test_keypoint_frame_count_mismatch_is_reported_and_the_video_skipped(folders, tmp_path, capsys):
    kp = torch.load(folders / "keypoints.pt")
    kp["clip0"] = kp["clip0"][:5]  # 5 rows for an 8-frame video
    torch.save(kp, tmp_path / "short.pt")
    out = tmp_path / "r.json"
    args = [str(folders / "generated"), str(folders / "reference"), "--keypoints", str(tmp_path / "short.pt")]
    code = eval_main([*args, "--preset", str(folders / "preset.yaml"), "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "skipping clip0: `keypoints_reference` has 5 frame(s)" in err
    data = json.loads(out.read_text())
    assert any(f.startswith("clip0:") for f in data["failures"]) and data["results"]["whole_body"]["SSIM"] > 0


def test_detect_faces_reports_a_video_without_a_face(folders, tmp_path, capsys):
    gen, ref = tmp_path / "g", tmp_path / "r"
    gen.mkdir()
    ref.mkdir()
    flat = torch.full((4, 3, 96, 96), 128, dtype=torch.uint8)  # nothing for MTCNN to find
    write_video(ref / "blank.mp4", flat, fps=25)
    write_video(gen / "blank.mp4", flat, fps=25)
    out = tmp_path / "r.json"
    code = eval_main([str(gen), str(ref), "--preset", str(folders / "preset.yaml"), "--detect-faces",
                      "--regions", "whole_body,face", "--no-progress", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "blank: no face found" in err
    assert json.loads(out.read_text())["failures"] == [
        "blank: no face found in the reference video (MTCNN); face not scored"
    ]
