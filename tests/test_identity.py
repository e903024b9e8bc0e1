"""Identity CSIM: MTCNN (the wheel's real weights) on a real photograph, FaceNet loading, the metric, DDP.

The only face photograph available offline is scikit-image's ``astronaut.png`` (Eileen Collins, shipped in
the scikit-image wheel). Frames are small (128 x 128) and few, because MTCNN and InceptionResnetV1 run on
a shared 2-core CPU here. The independent oracle is facenet-pytorch itself: ``facenet_pytorch.MTCNN``
called on PIL images / numpy arrays / tensors (each its own crop path) and a separate
``facenet_pytorch.InceptionResnetV1`` carrying the same weights, with the cosine and the averaging done
in numpy.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from metrics.backbones.cache import BackboneRef
from metrics.backbones.facenet import (
    FaceNetEmbedder,
    MTCNNDetector,
    facenet_ref,
    load_facenet_state_dict,
    mtcnn_ref,
    mtcnn_weight_files,
)
from metrics.backbones.weights import WeightsUnavailableError
from metrics.identity import CSIM
from metrics.pixel import PixelCSIM
from tests.ddp import run_ddp

SIZE = 128  # frame side: big enough for a clear face, small enough for CPU MTCNN
ONE_LEVEL = 1.0 / 128.0  # one grey level after fixed_image_standardization
# The faces here are ~45 px wide. Outside the acceptance tests (which keep every default), MTCNN searches
# faces >= 40 px instead of >= 20 px: facenet-pytorch crops each P-Net candidate in a Python loop, and the
# smaller minimum size yields ~10x more candidates on these frames.
FAST = {"min_face_size": 40}


@pytest.fixture(autouse=True, scope="module")
def _no_onednn():
    """oneDNN builds kernels per input shape on first use (seconds per new shape on a small shared CPU);
    PyTorch's reference kernels compute the same values without that start-up cost."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


# ---------------------------------------------------------------------------------------------- data
def _astronaut_256() -> np.ndarray:
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.BILINEAR))


def _face_frames() -> dict[str, torch.Tensor]:
    """uint8 [3, 128, 128] frames: four views of the astronaut's face and two face-free images."""
    img = torch.from_numpy(_astronaut_256().copy()).permute(2, 0, 1)  # face at ~x 90-134, y 31-86
    ramp = torch.linspace(0, 255, SIZE).round().to(torch.uint8)
    return {
        "face": img[:, 0:128, 48:176].contiguous(),
        "shifted": img[:, 10:138, 36:164].contiguous(),
        "flipped": img[:, 0:128, 48:176].flip(-1).contiguous(),
        "dark": (img[:, 0:128, 48:176].float() * 0.6).round().to(torch.uint8),
        "gradient": ramp.view(1, 1, SIZE).expand(3, SIZE, SIZE).contiguous(),  # flat horizontal gradient
        "grey": torch.full((3, SIZE, SIZE), 128, dtype=torch.uint8),
    }


@pytest.fixture(scope="module")
def frames() -> dict[str, torch.Tensor]:
    return _face_frames()


def _video(frames: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.stack([frames[n] for n in names])


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return mtcnn_ref().get("cpu")


@pytest.fixture(scope="module")
def embedder() -> FaceNetEmbedder:
    return facenet_ref(None).get("cpu")


# --------------------------------------------------------------------------------------------- MTCNN
def test_mtcnn_loads_the_wheels_weights_strictly(tmp_path):
    files = mtcnn_weight_files()
    sizes = {name: path.stat().st_size for name, path in files.items()}
    assert sizes == {"pnet": 28_570, "rnet": 403_147, "onet": 1_559_269}  # spec/weights.md row 9b
    det = MTCNNDetector()
    for name, path in files.items():
        expected = torch.load(path, weights_only=True)
        got = getattr(det, name).state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)

    # A directory in the same layout loads; one with an extra key or a missing file does not.
    for path in files.values():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    MTCNNDetector(tmp_path)
    state = torch.load(files["onet"], weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "onet.pt")
    with pytest.raises(RuntimeError, match=r"extra\.weight"):
        MTCNNDetector(tmp_path)
    (tmp_path / "rnet.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"rnet\.pt"):
        MTCNNDetector(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"pnet\.pt"):
        MTCNNDetector(tmp_path / "nowhere")


def test_mtcnn_finds_the_astronauts_face_and_nothing_in_a_gradient(frames, detector):
    from facenet_pytorch import MTCNN
    from PIL import Image

    batch = torch.stack([frames["face"], frames["gradient"], frames["grey"]])
    detections = detector.detect(batch)
    assert [d.shape[0] for d in detections] == [1, 0, 0]
    x1, y1, x2, y2, prob = detections[0][0].tolist()
    assert prob > 0.99
    assert 30 <= x1 < x2 <= 100 and 15 <= y1 < y2 <= 100 and 35 <= x2 - x1 <= 70  # around the face

    # The batched tensor path equals facenet-pytorch's own detector on the PIL image.
    ref_boxes, ref_probs = MTCNN().detect(Image.fromarray(frames["face"].permute(1, 2, 0).numpy()))
    np.testing.assert_allclose(detections[0][:, :4].numpy(), ref_boxes.astype(np.float32), atol=1e-3)
    np.testing.assert_allclose(detections[0][:, 4].numpy(), ref_probs.astype(np.float32), atol=1e-6)

    faces, found = detector(batch)
    assert found.tolist() == [True, False, False]
    assert faces.shape == (3, 3, 160, 160) and not faces[1:].any()


def test_face_crops_equal_facenet_pytorch_for_each_input_type(frames, detector):
    """``crop_resize`` reproduces MTCNN.forward / extract_face on PIL images, numpy arrays and tensors."""
    from facenet_pytorch import MTCNN, extract_face, fixed_image_standardization
    from PIL import Image

    frame = frames["shifted"]
    hwc = frame.permute(1, 2, 0).contiguous()
    # End to end with the default settings: facenet_pytorch.MTCNN()(PIL image) vs our detector(frames).
    expected = MTCNN()(Image.fromarray(hwc.numpy()))
    faces, found = detector(frame[None])
    assert found.item() and faces.shape == (1, 3, 160, 160)
    assert (faces[0] - expected).abs().max() <= 1e-6  # the PIL crop-resize emulation is pixel-exact

    # Each crop path against facenet-pytorch's extract_face on the input type it serves, same box.
    boxes, found = detector.locate(frame[None], **FAST)
    inputs = {"pil": Image.fromarray(hwc.numpy()), "opencv": hwc.numpy(), "torch": hwc}
    cases = (("torch", 0, True), ("torch", 24, True), ("opencv", 0, False), ("pil", 32, False))
    for crop_resize, margin, exact in cases:
        ref = fixed_image_standardization(extract_face(inputs[crop_resize], boxes[0].numpy(), 112, margin))
        crops, ok = detector.crop(frame[None], boxes, image_size=112, margin=margin, crop_resize=crop_resize)
        assert ok.item()
        diff = ((crops[0].float() - 127.5) / 128.0 - ref).abs()
        assert diff.max() <= (1e-6 if exact else ONE_LEVEL + 1e-6), (crop_resize, margin)
        assert diff.mean() < 0.02 * ONE_LEVEL, (crop_resize, margin)


def test_selection_and_degenerate_boxes():
    dets = [
        torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.99], [5.0, 5.0, 40.0, 40.0, 0.80]]),
        torch.zeros((0, 5)),
        torch.tensor([[1.0, 2.0, 30.0, 31.0, 0.9]]),
    ]
    boxes, probs, found = MTCNNDetector.select(dets, "largest")
    assert found.tolist() == [True, False, True]
    assert boxes[0].tolist() == [5.0, 5.0, 40.0, 40.0] and boxes[1].tolist() == [0.0] * 4
    boxes, probs, _ = MTCNNDetector.select(dets, "probability")
    assert boxes[0].tolist() == [0.0, 0.0, 10.0, 10.0] and probs[0].item() == pytest.approx(0.99)
    # A box entirely outside the frame clips to nothing: not a face (facenet-pytorch would raise).
    frame = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    crops, ok = MTCNNDetector.crop(frame, torch.tensor([[40.0, 40.0, 60.0, 60.0], [4.0, 4.0, 20.0, 20.0]]))
    assert ok.tolist() == [False, True] and not crops[0].any()


# ------------------------------------------------------------------------------------------- FaceNet
@pytest.fixture(scope="module")
def vggface2_layout_checkpoint(tmp_path_factory):
    """Shaped like 20180402-114759-vggface2.pt: the embedding network plus logits for 8631 classes."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(7)
    source = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631).eval()
    for m in source.modules():  # non-trivial BN statistics, so that embeddings differ between inputs
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.05)
            m.running_var.uniform_(0.002, 0.02)
    state = source.state_dict()
    assert state["logits.weight"].shape == (8631, 512) and state["logits.bias"].shape == (8631,)
    folder = tmp_path_factory.mktemp("facenet")
    path = folder / "20180402-114759-vggface2.pt"  # the registry's file name
    torch.save(state, path)
    source.classify = False  # from here on the source computes normalised embeddings
    return path, source


def test_vggface2_layout_checkpoint_loads_strictly(vggface2_layout_checkpoint, frames, monkeypatch, tmp_path):
    path, source = vggface2_layout_checkpoint
    by_path = FaceNetEmbedder(weights=path).eval()
    assert by_path.num_pretrain_classes == 8631 and not hasattr(by_path.net, "logits")
    faces = (torch.stack([frames["face"], frames["dark"]])[..., 16:112, 16:112].float() - 127.5) / 128.0
    with torch.no_grad():
        assert torch.allclose(by_path(faces), source(faces), atol=1e-6)

    # By registry name from $JWBDH_WEIGHTS_DIR (the hash is unpublished: mismatch warns, does not fail).
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(path.parent))
    with pytest.warns(UserWarning, match="does not match the registry"):
        by_name = FaceNetEmbedder(weights="facenet_vggface2")
    assert all(
        torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), by_path.state_dict().values())
    )
    # Offline without the file: a clear error, never a download.
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="jwbdh-weights download facenet_vggface2"):
        FaceNetEmbedder(weights="facenet_vggface2")


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
def test_facenet_loading_is_strict(vggface2_layout_checkpoint):
    from facenet_pytorch import InceptionResnetV1

    full = vggface2_layout_checkpoint[1].state_dict()  # with logits.weight [8631, 512] and logits.bias
    with torch.device("meta"):  # keys and shapes are checked as usual; copying values into meta is a no-op
        net = InceptionResnetV1(pretrained=None)
    no_logits = {k: v for k, v in full.items() if not k.startswith("logits.")}
    assert load_facenet_state_dict(net, no_logits) is None  # a classify=False checkpoint
    assert load_facenet_state_dict(net, full) == 8631 and not hasattr(net, "logits")
    with pytest.raises(RuntimeError, match=r"last_bn\.running_var"):
        load_facenet_state_dict(net, {k: v for k, v in full.items() if k != "last_bn.running_var"})
    with pytest.raises(RuntimeError, match="Unexpected"):
        load_facenet_state_dict(net, {**full, "fc.weight": torch.zeros(2)})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_facenet_state_dict(net, {**full, "last_linear.weight": torch.zeros(512, 1024)})
    with pytest.raises(ValueError, match="logits"):
        load_facenet_state_dict(net, {k: v for k, v in full.items() if k != "logits.bias"})
    with pytest.raises(ValueError, match="8631"):
        load_facenet_state_dict(net, {**full, "logits.weight": torch.zeros(8631, 256)})
    assert not hasattr(net, "logits")


# ---------------------------------------------------------------------------------------------- CSIM
def _oracle(gen: torch.Tensor, ref: torch.Tensor, embedder: FaceNetEmbedder, image_size: int):
    """facenet-pytorch end to end on PIL images, numpy cosine and averaging: (video scores, no-face pairs)."""
    from facenet_pytorch import MTCNN, InceptionResnetV1
    from PIL import Image

    mtcnn = MTCNN(image_size=image_size, **FAST)
    net = InceptionResnetV1(pretrained=None).eval()
    net.load_state_dict(embedder.net.state_dict())
    cache: dict[bytes, np.ndarray | None] = {}

    def embed(frame: torch.Tensor) -> np.ndarray | None:
        key = frame.numpy().tobytes()
        if key not in cache:
            face = mtcnn(Image.fromarray(frame.permute(1, 2, 0).numpy()))
            if face is None:
                cache[key] = None
            else:
                with torch.no_grad():
                    cache[key] = net(face[None])[0].double().numpy()
        return cache[key]

    scores, frames_without_face = [], 0
    for g_video, r_video in zip(gen, ref):
        t = min(len(g_video), len(r_video))
        values = []
        for g, r in zip(g_video[:t], r_video[:t]):
            eg, er = embed(g), embed(r)
            if eg is None or er is None:
                frames_without_face += 1
                continue
            values.append(float(eg @ er / (np.linalg.norm(eg) * np.linalg.norm(er))))
        if values:
            scores.append(np.mean(values))
    return scores, frames_without_face


def test_csim_of_a_video_with_itself_is_one(frames):
    video = _video(frames, ["shifted", "gradient"])[None]
    csim = CSIM(mode="identity", weights=None)  # every default: MTCNN settings, 160 px crops
    csim.update(video, video)
    assert float(csim.compute()) == pytest.approx(1.0, abs=1e-6)
    assert csim.face_counts() == {
        "num_videos": 1,
        "num_frame_pairs": 2,
        "num_frames_without_face": 1,
        "num_generated_frames_without_face": 1,
        "num_reference_frames_without_face": 1,
        "num_videos_without_face": 0,
    }
    assert csim.is_random_init and csim.state_dict() == {}  # no network weights in the metric's state


def test_identity_cosine_matches_facenet_pytorch_oracle(frames, embedder):
    """Frames without a face are counted and excluded; a video without any scored pair is excluded."""
    # video 0: 4 generated vs 3 reference frames (the first 3 pairs count), one generated frame face-free.
    # video 1: no reference frame has a face -> counted, excluded from the mean over videos.
    gen1 = torch.stack(
        [
            _video(frames, ["shifted", "gradient", "dark", "face"]),
            _video(frames, ["face", "flipped", "dark", "face"]),
        ]
    )
    ref1 = torch.stack(
        [_video(frames, ["face", "face", "flipped"]), _video(frames, ["grey", "gradient", "grey"])]
    )
    # update 2: a generated frame of another size, as float -> detected and cropped at its own size.
    gen2 = _video(frames, ["flipped"])[None, :, :, 8:120, 8:120].float() / 255.0
    ref2 = _video(frames, ["shifted"])[None]

    size = 80  # face crops (InceptionResnetV1 runs from 75 px; 160 costs 4x more CPU)
    csim = CSIM(
        mode="identity", weights=None, image_size=size, batch_size=3, **FAST
    )  # 3 frames/faces per call
    csim.update(gen1, ref1)
    csim.update(gen2, ref2)
    s1, nf1 = _oracle(gen1, ref1, embedder, size)
    s2, nf2 = _oracle((gen2 * 255).round().to(torch.uint8), ref2, embedder, size)

    counts = csim.face_counts()
    assert counts["num_frame_pairs"] == 7 and counts["num_frames_without_face"] == nf1 + nf2 == 4
    assert (
        counts["num_generated_frames_without_face"] == 1 and counts["num_reference_frames_without_face"] == 3
    )
    assert counts["num_videos"] == len(s1 + s2) == 2 and counts["num_videos_without_face"] == 1
    expected = float(np.mean(s1 + s2))
    assert expected < 0.999  # different views: not the trivial value 1
    # Crops are PIL-exact up to one grey level on a few pixels in some shapes (see the crop test; identical
    # here), and the batch composition changes float summation order: agreement to 1e-5.
    assert float(csim.compute()) == pytest.approx(expected, abs=1e-5)


def test_num_frames_tiny_frames_and_no_face_at_all(frames):
    csim = CSIM(mode="identity", weights=None, image_size=80, num_frames=1, **FAST)
    video = _video(frames, ["face", "face"])[None]
    csim.update(video, video)
    assert int(csim.num_frame_pairs) == 1
    empty = CSIM(mode="identity", weights=None, image_size=80)
    tiny = torch.full((2, 3, 3, 16, 16), 200, dtype=torch.uint8)  # smaller than min_face_size: no pyramid
    empty.update(tiny, tiny)
    empty.update(tiny[:0], tiny[:0])  # an empty batch is a no-op
    with pytest.warns(UserWarning, match="no video had a frame pair with a face"):
        assert torch.isnan(empty.compute())
    assert int(empty.num_videos_without_face) == 2 and int(empty.num_frames_without_face) == 6


def test_pixel_mode_is_pixel_csim():
    g = torch.Generator().manual_seed(0)
    gen = torch.randint(0, 256, (2, 5, 3, 20, 24), dtype=torch.uint8, generator=g)
    ref = torch.rand(2, 4, 3, 16, 16, generator=g)
    ours, theirs = CSIM(), PixelCSIM()
    assert ours.mode == "pixel"  # the jwbdh-v1 default
    for m in (ours, theirs):
        m.update(gen, ref)
        m.update(ref[:1], ref[:1])
    assert torch.equal(ours.compute(), theirs.compute())
    assert ours.face_counts()["num_frames_without_face"] == 0


def test_bad_arguments_and_inputs(monkeypatch):
    csim = CSIM(mode="identity", weights=None)
    ok = torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="`generated`"):
        csim.update(ok[0], ok)
    with pytest.raises(ValueError, match="`reference`"):
        csim.update(ok, ok.float() + 2.0)
    with pytest.raises(ValueError, match="same number of videos"):
        csim.update(ok, torch.cat([ok, ok]))
    for kwargs in (
        {"mode": "arcface"},
        {"image_size": 64},
        {"margin": -1},
        {"thresholds": (0.6, 0.7)},
        {"factor": 1.2},
        {"selection": "center"},
        {"crop_resize": "cv2"},
        {"batch_size": 0},
        {"num_frames": 0},
        {"min_face_size": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            CSIM(**{"mode": "identity", **kwargs})
    with pytest.raises(ValueError, match="uint8"):
        MTCNNDetector.crop(ok[0].float(), torch.zeros(2, 4))
    # Without facenet-pytorch, identity mode says how to install it; pixel mode does not need it.
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(ImportError, match=r'pip install "jwbdh-callbacks\[face\]"'):
        CSIM(mode="identity")
    CSIM(mode="pixel")


# ----------------------------------------------------------------------------------------------- DDP
def _ddp_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    f = _face_frames()
    return [
        (_video(f, ["face", "gradient"])[None], _video(f, ["shifted", "face"])[None]),
        (_video(f, ["dark"])[None], _video(f, ["flipped"])[None]),
        (_video(f, ["grey"])[None], _video(f, ["face"])[None]),  # no generated face at all
    ]


def _ddp_worker(rank: int, world_size: int, batches: list) -> dict:
    torch.backends.mkldnn.enabled = False  # see _no_onednn
    csim = CSIM(mode="identity", weights=None, image_size=80, **FAST)
    for i, (gen, ref) in enumerate(batches):
        if world_size == 1 or (i != 1) == (rank == 0):  # uneven: rank 0 gets batches 0 and 2, rank 1 gets 1
            csim.update(gen, ref)
    return {"value": csim.compute(), "counts": csim.face_counts()}


@pytest.mark.ddp
def test_ddp_uneven_updates_equal_single_process():
    batches = _ddp_batches()
    single = _ddp_worker(0, 1, batches)
    assert single["counts"]["num_videos"] == 2 and single["counts"]["num_videos_without_face"] == 1
    for result in run_ddp(_ddp_worker, world_size=2, args=(batches,)):
        assert torch.allclose(result["value"], single["value"], rtol=1e-6, atol=1e-7)
        assert result["counts"] == single["counts"]


def test_backbone_refs_are_cached_handles():
    ref = facenet_ref(None)
    assert isinstance(ref, BackboneRef) and ref.is_random_init
    assert ref.get("cpu") is facenet_ref(None).get("cpu")
    assert mtcnn_ref().get("cpu") is mtcnn_ref().get("cpu")
    assert list(CSIM(mode="identity").children()) == []  # handles, never submodules
