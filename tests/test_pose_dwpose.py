"""DWPoseONNX through the weights registry: default registry names, offline errors, path arguments, and the
lazy re-exports of the DWPose names from ``metrics.pose`` and ``metrics.regions`` (no network, no models:
onnxruntime is replaced by a recorder)."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import types

import numpy as np
import pytest
import torch

from metrics.backbones import weights as W
from metrics.pose.dwpose import DWPOSE_WEIGHTS, DWPoseONNX


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """Empty cache and weights dir, downloads disabled."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("JWBDH_OFFLINE", "1")
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


class _Io:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


class _RecordingOrt(types.ModuleType):
    """Stands in for onnxruntime: records the model paths and returns sessions with the right inputs."""

    def __init__(self):
        super().__init__("onnxruntime")
        self.paths = []

    def get_available_providers(self):
        return ["CPUExecutionProvider"]

    def InferenceSession(self, path, providers):
        self.paths.append((path, tuple(providers)))
        shape = [1, 3, 384, 288] if path.endswith("dw-ll_ucoco_384.onnx") else [1, 3, 640, 640]
        return types.SimpleNamespace(get_inputs=lambda: [_Io("input", shape)])


def test_registry_entries_name_dwposes_files():
    det, pose = (W.REGISTRY[name] for name in DWPOSE_WEIGHTS)
    assert det.filename == "yolox_l.onnx" and pose.filename == "dw-ll_ucoco_384.onnx"
    for entry in (det, pose):
        assert entry.urls[0] == f"https://huggingface.co/yzd-v/DWPose/resolve/main/{entry.filename}"
        assert len(entry.sha256) == 64 and entry.strict_hash and entry.size > 100_000_000


def test_missing_registry_file_names_the_download_command(offline_cache):
    with pytest.raises(W.WeightsUnavailableError) as info:
        DWPoseONNX()
    text = str(info.value)
    assert "jwbdh-weights download dwpose-yolox-l" in text and "yolox_l.onnx" in text
    assert "JWBDH_OFFLINE=1" in text and str(offline_cache) in text
    with pytest.raises(W.WeightsUnavailableError, match=r"allow_download=False"):
        DWPoseONNX(allow_download=False)
    # the detector present, the pose model missing: the error is about the pose model
    det = W.REGISTRY[DWPOSE_WEIGHTS[0]]
    payload = b"not really yolox"
    (offline_cache / det.filename).write_bytes(payload)
    fake = dataclasses.replace(det, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(W.REGISTRY, det.name, fake)
        with pytest.raises(W.WeightsUnavailableError, match="jwbdh-weights download dwpose-ll-ucoco-384"):
            DWPoseONNX()


def test_wrong_registry_file_is_refused(offline_cache):
    (offline_cache / "yolox_l.onnx").write_bytes(b"<html>error page</html>")
    with pytest.raises(W.WeightsChecksumError, match="dwpose-yolox-l"):
        DWPoseONNX()


def test_registry_files_found_offline_are_loaded(offline_cache, monkeypatch):
    for name in DWPOSE_WEIGHTS:
        entry = W.REGISTRY[name]
        payload = f"stand-in for {entry.filename}".encode()
        (offline_cache / entry.filename).write_bytes(payload)
        stand_in = dataclasses.replace(entry, sha256=hashlib.sha256(payload).hexdigest(), size=None)
        monkeypatch.setitem(W.REGISTRY, name, stand_in)
    ort = _RecordingOrt()
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    model = DWPoseONNX()
    assert ort.paths == [
        (str(offline_cache / "yolox_l.onnx"), ("CPUExecutionProvider",)),
        (str(offline_cache / "dw-ll_ucoco_384.onnx"), ("CPUExecutionProvider",)),
    ]
    assert model.input_size == (288, 384)  # read from the pose session's input shape (w, h)


def test_paths_still_work_and_missing_paths_say_what_to_pass(tmp_path, monkeypatch):
    det, pose = tmp_path / "det.onnx", tmp_path / "pose.onnx"
    with pytest.raises(FileNotFoundError, match=r"person detector model not found.*'dwpose-yolox-l'"):
        DWPoseONNX(det, pose)
    det.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"pose model not found.*'dwpose-ll-ucoco-384'"):
        DWPoseONNX(det, pose)
    pose.write_bytes(b"x")
    ort = _RecordingOrt()
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    DWPoseONNX(str(det), pose, providers=["CPUExecutionProvider"])
    assert [p for p, _ in ort.paths] == [str(det), str(pose)]
    with pytest.raises(ValueError, match="registry name or a path"):
        DWPoseONNX(3, pose)


def test_dwpose_names_are_reexported_lazily():
    import metrics.pose
    import metrics.pose.dwpose as dwpose
    import metrics.regions

    for name in ("DWPoseONNX", "simcc_decode", "yolox_person_boxes", "nms", "DWPOSE_INPUT_SIZE"):
        assert getattr(metrics.regions, name) is getattr(dwpose, name)
        assert getattr(metrics.pose, name) is getattr(dwpose, name)
        assert name in metrics.regions.__all__ and name in metrics.pose.__all__
    assert "MediaPipeWholeBody" in metrics.pose.__all__
    with pytest.raises(AttributeError):
        metrics.regions.no_such_name  # noqa: B018


def test_call_runs_on_every_frame_with_stand_in_sessions():
    class Det:
        def get_inputs(self):
            return [_Io("images", [1, 3, 640, 640])]

        def run(self, names, feed):
            return [np.zeros((1, 8400, 85), np.float32)]  # no person: the whole frame is the box

    class Pose:
        calls = 0

        def get_inputs(self):
            return [_Io("input", [1, 3, 384, 288])]

        def run(self, names, feed):
            Pose.calls += 1
            sx, sy = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)
            sx[..., 288], sy[..., 384] = 0.5, 0.7  # every point at the input centre, score 0.5
            return [sx, sy]

    model = DWPoseONNX.from_sessions(Det(), Pose())
    kp = model(torch.zeros(2, 3, 3, 40, 30, dtype=torch.uint8))
    assert kp.shape == (2, 3, 133, 3) and Pose.calls == 6
    # whole-frame box (0, 0, 30, 40): centre (15, 20); the input centre maps back to it
    np.testing.assert_allclose(kp[..., 0].numpy(), 15.0, rtol=1e-6)
    np.testing.assert_allclose(kp[..., 1].numpy(), 20.0, rtol=1e-6)
    np.testing.assert_allclose(kp[..., 2].numpy(), 0.5)
