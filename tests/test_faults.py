"""Fault injection: broken checkpoints, broken video files and broken loggers never take a run down.

* Weights (DESIGN s5): corrupt, truncated (partial download) and HTML-error-page files, through the resolver
  and through the real loaders; a stale or unreadable ``.sha256`` sidecar; a read-only or unwritable cache;
  concurrent resolution, download and backbone construction of one entry.
* Video files: zero-frame and audio-only containers, header-only files, folders and dangling links named
  ``*.mp4``, odd and 1-px frame sizes, unreadable permissions: ``read_video`` raises ValueError or
  FileNotFoundError only, and ``jwbdh-eval`` reports each broken file and scores the rest.
* Logging (DESIGN s6): W&B not installed, ``WANDB_MODE=offline`` and ``disabled`` with a real
  ``WandbLogger``, loggers that raise: training finishes, scalars are logged, media problems only warn.

tests/test_weights.py and tests/test_video.py cover the plain cases (local server downloads, truncated mp4s
cut at fixed fractions, garbage bytes); this file does not repeat them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.server
import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from jwbdh_callbacks.cli import eval_main, weights_main
from metrics.backbones import weights as W
from metrics.video import read_video, write_video

av = pytest.importorskip("av")

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>quota exceeded</body></html>\n"
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# =========================================================================================== weights
@pytest.fixture
def registry(tmp_path, monkeypatch):
    """An empty cache (no weights dir, offline) and ``add(name, payload, ...)`` for throwaway entries."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("JWBDH_OFFLINE", "1")
    added: list[str] = []

    def add(name: str, payload: bytes, *, strict: bool = True, size: bool = True, url: str = "http://x/f"):
        W.register(
            W.WeightsEntry(
                name=name,
                filename=f"{name}.bin",
                urls=(url,),
                sha256=hashlib.sha256(payload).hexdigest(),
                size=len(payload) if size else None,
                license="test",
                description="fault-injection entry",
                strict_hash=strict,
            )
        )
        added.append(name)
        return W.cache_dir() / f"{name}.bin"

    yield add
    for name in added:
        W.REGISTRY.pop(name, None)


def _payload(n: int = 20_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _bump_mtime(path: Path, seconds: float = 5.0) -> None:
    st = path.stat()
    later = st.st_mtime_ns + int(seconds * 1e9)
    os.utime(path, ns=(later, later))


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        ("flipped_byte", r"sha256 [0-9a-f]{64}, expected"),
        ("truncated", r"size 7000 bytes, expected 20000"),
        ("html_page", r"size \d+ bytes, expected 20000.*HTML error page"),
        ("empty", r"size 0 bytes, expected 20000"),
    ],
)
def test_broken_cached_file_fails_its_checksum(registry, capsys, fault, expect):
    payload = _payload()
    path = registry("toy_fault", payload)
    broken = {
        "flipped_byte": payload[:100] + bytes([payload[100] ^ 0xFF]) + payload[101:],
        "truncated": payload[:7000],  # a partial download left in place
        "html_page": HTML_PAGE,
        "empty": b"",
    }[fault]
    _put(path, broken)
    with pytest.raises(W.WeightsChecksumError, match=expect) as info:
        W.resolve_weights("toy_fault")
    text = str(info.value)
    assert str(path) in text and "toy_fault" in text and "jwbdh-weights download toy_fault" in text
    # the CLI reports the same problem and exits non-zero instead of printing a traceback
    assert weights_main(["verify", "toy_fault"]) == 1
    assert weights_main(["path", "toy_fault"]) == 1
    assert "does not match the registry" in capsys.readouterr().err


def test_broken_file_in_weights_dir_is_not_skipped_for_the_cache(registry, tmp_path, monkeypatch):
    """A corrupt ``$JWBDH_WEIGHTS_DIR`` copy is an error, not silently shadowed by a good cached copy."""
    payload = _payload()
    cached = _put(registry("toy_shadow", payload), payload)
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(tmp_path / "wdir"))
    bad = _put(tmp_path / "wdir" / "toy_shadow.bin", HTML_PAGE)
    with pytest.raises(W.WeightsChecksumError, match=re.escape(str(bad))):
        W.resolve_weights("toy_shadow")
    bad.unlink()
    assert W.resolve_weights("toy_shadow") == cached


def test_leftover_part_file_is_never_used(registry):
    payload = _payload()
    path = registry("toy_part", payload)
    _put(path.with_name("toy_part.bin.abc123.part"), payload)  # an interrupted download's temp file
    with pytest.raises(W.WeightsUnavailableError, match="downloads are disabled"):
        W.resolve_weights("toy_part")


def test_weak_hash_entry_warns_on_html_page(registry):
    path = _put(registry("toy_weak", _payload(), strict=False, size=False), HTML_PAGE)
    with pytest.warns(UserWarning, match="not enforced"):
        assert W.resolve_weights("toy_weak") == path


# -------------------------------------------------------------------------------- stale / broken sidecars
def test_stale_sidecar_is_rehashed_after_the_file_changes(registry):
    payload = _payload()
    path = _put(registry("toy_stale", payload), payload)
    sidecar = path.with_name(path.name + ".sha256")
    assert W.resolve_weights("toy_stale") == path
    recorded = json.loads(sidecar.read_text())
    assert recorded["sha256"] == hashlib.sha256(payload).hexdigest()

    corrupt = bytes(b ^ 0x55 for b in payload[:64]) + payload[64:]  # same size, new content
    path.write_bytes(corrupt)
    _bump_mtime(path)
    with pytest.raises(W.WeightsChecksumError, match="sha256"):
        W.resolve_weights("toy_stale")
    assert json.loads(sidecar.read_text())["sha256"] == hashlib.sha256(corrupt).hexdigest()

    path.write_bytes(payload)  # repaired: the sidecar of the corrupt file must not stick either
    _bump_mtime(path, 10)
    assert W.resolve_weights("toy_stale") == path


@pytest.mark.parametrize(
    "sidecar_text",
    [
        "{not json",
        "[1, 2, 3]",
        "null",
        '{"key": "1:2"}',
        '{"sha256": "00"}',
        "",
    ],
)
def test_unreadable_sidecar_is_ignored(registry, sidecar_text):
    payload = _payload()
    path = _put(registry("toy_sidecar", payload), payload)
    path.with_name(path.name + ".sha256").write_text(sidecar_text)
    assert W.resolve_weights("toy_sidecar") == path


def test_forged_sidecar_with_a_stale_key_does_not_hide_corruption(registry):
    payload = _payload()
    path = _put(registry("toy_forged", payload), HTML_PAGE + b"\0" * (len(payload) - len(HTML_PAGE)))
    stat = path.stat()
    wrong_key = f"{stat.st_size}:{stat.st_mtime_ns - 1}"
    good = hashlib.sha256(payload).hexdigest()
    path.with_name(path.name + ".sha256").write_text(json.dumps({"key": wrong_key, "sha256": good}))
    with pytest.raises(W.WeightsChecksumError):
        W.resolve_weights("toy_forged")


def test_sidecar_that_cannot_be_written_only_costs_a_rehash(registry):
    """A directory where the sidecar should be (as root, the portable stand-in for a read-only dir)."""
    payload = _payload()
    path = _put(registry("toy_nosidecar", payload), payload)
    path.with_name(path.name + ".sha256").mkdir()
    for _ in range(2):
        assert W.resolve_weights("toy_nosidecar") == path


@pytest.mark.skipif(ROOT_USER, reason="root ignores directory permissions")
def test_read_only_cache_dir_still_resolves_verified_files(registry):  # pragma: no cover - non-root only
    payload = _payload()
    path = _put(registry("toy_ro", payload), payload)
    os.chmod(path.parent, 0o555)
    try:
        assert W.resolve_weights("toy_ro") == path
        assert not path.with_name(path.name + ".sha256").exists()
    finally:
        os.chmod(path.parent, 0o755)


def test_unwritable_cache_through_a_real_loader_is_a_clear_error(tmp_path, monkeypatch):
    """Downloads allowed, but the cache lies under a regular file: the loader says so, no network needed."""
    from metrics.backbones.aesthetic import aesthetic_head_ref

    blocker = _put(tmp_path / "not_a_dir", b"a regular file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("JWBDH_OFFLINE", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(W.WeightsUnavailableError, match=r"not writable.*jwbdh-weights download"):
        aesthetic_head_ref("laion_aesthetic_vitl14").get("cpu")


# ------------------------------------------------------------------------------ real loaders, bad files
def _real_loader(name: str):
    from metrics.backbones.aesthetic import aesthetic_head_ref
    from metrics.backbones.amt import amt_s_ref
    from metrics.backbones.clip import clip_ref
    from metrics.backbones.dino import dino_ref
    from metrics.backbones.facenet import facenet_ref
    from metrics.backbones.i3d import i3d_ref
    from metrics.backbones.inception import fid_inception_ref, imagenet_inception_ref
    from metrics.backbones.musiq import musiq_ref
    from metrics.backbones.raft import raft_ref

    return {
        "inception_v3_imagenet": imagenet_inception_ref,
        "fid_inception_v3": fid_inception_ref,
        "i3d_torchscript": i3d_ref,
        "dino_vitb16": lambda w: dino_ref(w, embed_dim=48, depth=1, num_heads=3),
        "clip_vitb32_openai": lambda w: clip_ref("ViT-B-32", w),
        "laion_aesthetic_vitl14": aesthetic_head_ref,
        "musiq_spaq": musiq_ref,
        "raft_large_c_t_v1": raft_ref,
        "amt_s": amt_s_ref,
        "facenet_vggface2": facenet_ref,
    }[name]


def _bad_checkpoint(kind: str) -> bytes:
    if kind == "html_page":
        return HTML_PAGE
    if kind == "empty":
        return b""
    if kind == "random":
        return _payload(4096, seed=7)
    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]  # "truncated": a partial download


_LOADER_CASES = [
    pytest.param(
        name,
        "html_page",
        marks=(),
        id=f"{name}-html_page",
    )
    for name in (
        "inception_v3_imagenet",
        "fid_inception_v3",
        "i3d_torchscript",
        "dino_vitb16",
        "clip_vitb32_openai",
        "laion_aesthetic_vitl14",
        "musiq_spaq",
        "raft_large_c_t_v1",
        "amt_s",
        "facenet_vggface2",
    )
] + [
    pytest.param(
        name,
        kind,
        marks=(),
        id=f"{name}-{kind}",
    )
    for name in ("laion_aesthetic_vitl14", "i3d_torchscript")
    for kind in ("truncated", "empty", "random")
]


@pytest.mark.parametrize(("name", "kind"), _LOADER_CASES)
def test_explicit_bad_checkpoint_path_gives_a_value_error_naming_it(tmp_path, name, kind):
    """``weights="/path/ckpt.pth"`` skips the registry checksum; a broken file must still fail clearly."""
    path = _put(tmp_path / f"{name}-{kind}.pth", _bad_checkpoint(kind))
    with pytest.raises(ValueError) as info:
        _real_loader(name)(str(path)).get("cpu")
    assert str(path) in str(info.value)


def test_html_page_cached_for_a_weak_hash_entry_is_a_clear_error(registry):
    path = _put(W.cache_dir() / W.REGISTRY["dino_vitb16"].filename, HTML_PAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the "not enforced" checksum warning
        with pytest.raises(ValueError, match=re.escape(str(path))):
            _real_loader("dino_vitb16")("dino_vitb16").get("cpu")


def test_html_page_cached_for_a_strict_entry_fails_before_loading(registry):
    path = _put(W.cache_dir() / W.REGISTRY["laion_aesthetic_vitl14"].filename, HTML_PAGE)
    with pytest.raises(W.WeightsChecksumError, match=r"size \d+ bytes, expected 4071"):
        _real_loader("laion_aesthetic_vitl14")("laion_aesthetic_vitl14").get("cpu")
    assert path.exists()  # reported, not deleted behind the user's back


# ---------------------------------------------------------------------------------------- concurrency
def _together(n: int, fn) -> list[Any]:
    """Run ``fn()`` in ``n`` threads released at the same moment; exceptions are returned, not raised."""
    barrier = threading.Barrier(n)

    def call():
        barrier.wait()
        try:
            return fn()
        except Exception as err:  # collected and checked by the caller
            return err

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def test_concurrent_resolution_of_one_entry(registry):
    payload = _payload(300_000)
    path = _put(registry("toy_race", payload), payload)
    results = _together(8, lambda: W.resolve_weights("toy_race"))
    assert results == [path] * 8
    assert json.loads(path.with_name(path.name + ".sha256").read_text())["sha256"] == (
        hashlib.sha256(payload).hexdigest()
    )
    path.write_bytes(HTML_PAGE)  # every thread sees the corruption, none a half-written sidecar
    _bump_mtime(path)
    results = _together(8, lambda: W.resolve_weights("toy_race"))
    assert all(isinstance(r, W.WeightsChecksumError) for r in results), results


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        for start in range(0, len(self.body), 16_384):  # trickle, so that downloads overlap
            self.wfile.write(self.body[start : start + 16_384])
            time.sleep(0.002)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _server(body: bytes) -> Iterator[str]:
    _SlowHandler.body = body
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/weights"
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_downloads_of_one_entry_are_atomic(registry, monkeypatch):
    payload = _payload(200_000, seed=3)
    with _server(payload) as url:
        path = registry("toy_dl_race", payload, url=url)
        monkeypatch.setenv("JWBDH_OFFLINE", "0")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        results = _together(6, lambda: W.resolve_weights("toy_dl_race"))
    assert results == [path] * 6, results
    assert path.read_bytes() == payload
    assert not list(path.parent.glob("*.part")) and not list(path.parent.glob("*.member"))


def test_download_leaves_only_the_file_and_its_sidecar(registry, monkeypatch):
    payload = _payload(50_000, seed=4)
    with _server(payload) as url:
        path = registry("toy_dl_litter", payload, url=url)
        monkeypatch.setenv("JWBDH_OFFLINE", "0")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        assert W.resolve_weights("toy_dl_litter") == path
    assert {p.name for p in path.parent.iterdir()} <= {path.name, path.name + ".sha256"}


def test_concurrent_backbone_construction_builds_one_instance():
    from metrics.backbones.cache import BackboneRef

    calls = []

    def factory(weights):
        calls.append(weights)
        time.sleep(0.02)
        return torch.nn.Linear(3, 2)

    ref = BackboneRef("fault_test_race_linear", factory, None)
    nets = _together(8, lambda: ref.get("cpu"))
    assert len(calls) == 1 and all(net is nets[0] for net in nets)


# ======================================================================================== video files
def _frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _write_lossless(path: Path, frames: np.ndarray, codec: str = "ffv1", pix_fmt: str = "bgr0") -> Path:
    """Exact frames of any size (odd, 1 px) with a lossless RGB codec; ``write_video`` pads to even sizes."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())
    return path


def _write_zero_frames(path: Path) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
    container.start_encoding()
    container.close()
    return path


def _write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=16_000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16_000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _mp4_bytes(tmp_path: Path, t: int = 8) -> bytes:
    path = tmp_path / "source.mp4"
    write_video(path, torch.from_numpy(_frames(t, 32, 32)).permute(0, 3, 1, 2).contiguous(), fps=25)
    return path.read_bytes()


BROKEN_VIDEOS = (
    "zero_frames.mp4",
    "zero_frames.mkv",
    "zero_frames.avi",
    "zero_frames.mov",
    "audio_only.mkv",
    "audio_only.avi",
    "header_only.mp4",
    "first_kb.mp4",
    "html_page.mp4",
    "folder.mp4",
    "dangling_link.mp4",
)


def _make_broken(folder: Path, name: str, source: bytes) -> Path:
    path = folder / name
    kind = name.rsplit(".", 1)[0]
    if kind == "zero_frames":
        return _write_zero_frames(path)
    if kind == "audio_only":
        return _write_audio_only(path)
    if kind == "header_only":
        return _put(path, source[:48])  # the ftyp box and a little more
    if kind == "first_kb":
        return _put(path, source[:1024])
    if kind == "html_page":
        return _put(path, HTML_PAGE)
    if kind == "folder":
        path.mkdir()
        return path
    os.symlink(folder / "does_not_exist.mp4", path)
    return path


@pytest.mark.parametrize("name", BROKEN_VIDEOS)
def test_read_video_broken_files_raise_value_or_file_not_found(tmp_path, name):
    path = _make_broken(tmp_path, name, _mp4_bytes(tmp_path))
    expected = FileNotFoundError if name.startswith("dangling") else ValueError
    with pytest.raises(expected) as info:
        read_video(path)
    assert type(info.value) in (ValueError, FileNotFoundError), type(info.value)
    assert str(path) in str(info.value)


@pytest.mark.skipif(ROOT_USER, reason="root reads files without read permission")
def test_read_video_unreadable_permissions(tmp_path):  # pragma: no cover - non-root only
    path = tmp_path / "locked.mp4"
    path.write_bytes(_mp4_bytes(tmp_path))
    os.chmod(path, 0)
    try:
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            read_video(path)
        assert type(info.value) in (ValueError, FileNotFoundError) and str(path) in str(info.value)
    finally:
        os.chmod(path, 0o644)


@pytest.mark.parametrize(
    ("container", "codec", "pix_fmt", "h", "w"),
    [
        ("mkv", "ffv1", "bgr0", 7, 9),
        ("avi", "rawvideo", "bgr24", 5, 3),  # AVI's raw RGB is BGR by definition
        ("mkv", "ffv1", "bgr0", 1, 1),
        ("mkv", "ffv1", "bgr0", 2, 301),
    ],
)
def test_read_video_odd_sizes_are_exact(tmp_path, container, codec, pix_fmt, h, w):
    frames = _frames(3, h, w, seed=h * 1000 + w)
    path = _write_lossless(tmp_path / f"odd.{container}", frames, codec, pix_fmt)
    video, fps = read_video(path)
    assert video.shape == (3, 3, h, w) and video.dtype == torch.uint8 and fps == 25.0
    assert np.array_equal(video.permute(0, 2, 3, 1).numpy(), frames)  # RGB order, nothing padded


EVAL_PRESET = """
name: faults
protocol: jwbdh-v1
calibrated: false
regions: [whole_body]
metrics:
  SSIM: {}
  PSNR: {max_psnr: 100.0}
  FID: {feature_extractor: "smoke:image_encoder:16:uint8", num_features: 16}
  SC: {feature_extractor: "smoke:image_encoder:16"}
"""


@pytest.fixture
def eval_folders(tmp_path):
    gen, ref = tmp_path / "generated", tmp_path / "reference"
    gen.mkdir()
    ref.mkdir()
    (tmp_path / "preset.yaml").write_text(EVAL_PRESET)
    return tmp_path, gen, ref


def _eval(root: Path, *extra: str) -> int:
    folders = [str(root / "generated"), str(root / "reference")]
    options = ["--preset", str(root / "preset.yaml"), "--no-progress", "--out", str(root / "out.json")]
    return eval_main([*folders, *options, *extra])


def test_eval_reports_broken_files_and_scores_the_rest(eval_folders, capsys):
    root, gen, ref = eval_folders
    source = _mp4_bytes(root)
    for i in range(2):  # two good pairs
        clip = torch.from_numpy(_frames(6, 32, 32, seed=i)).permute(0, 3, 1, 2).contiguous()
        write_video(ref / f"good{i}.mp4", clip, fps=25)
        write_video(gen / f"good{i}.mp4", clip.flip(-1), fps=25)
    # folders and dangling links are not files: pair_videos ignores them (tests/test_properties.py)
    broken = [n for n in BROKEN_VIDEOS if n.endswith(".mp4") and not n.startswith(("folder", "dangling"))]
    for name in broken:  # broken on the generated side, fine on the reference side ...
        _make_broken(gen, name, source)
        _put(ref / name, source)
    _put(gen / "swapped.mp4", source)  # ... and the other way round
    _put(ref / "swapped.mp4", HTML_PAGE)
    _write_lossless(gen / "odd.mkv", _frames(4, 7, 9, seed=5))  # odd sizes, and different on each side
    _write_lossless(ref / "odd.mkv", _frames(4, 9, 7, seed=6))
    _write_lossless(gen / "tiny.mkv", _frames(3, 1, 1, seed=7))  # too small for SSIM: skipped, not fatal
    _write_lossless(ref / "tiny.mkv", _frames(3, 1, 1, seed=8))
    _write_lossless(gen / "still.mkv", _frames(1, 16, 16, seed=9))  # one frame: SC needs two
    _write_lossless(ref / "still.mkv", _frames(1, 16, 16, seed=10))

    assert _eval(root) == 1
    err = capsys.readouterr().err
    stems = [n.rsplit(".", 1)[0] for n in broken] + ["swapped"]
    for stem in stems:
        assert f"skipping {stem}:" in err, err
    assert "Traceback" not in err
    data = json.loads((root / "out.json").read_text())
    assert sorted(f.split(":", 1)[0] for f in data["failures"]) == sorted(stems)
    values = data["results"]["whole_body"]
    assert 0 < values["SSIM"] < 1 and values["PSNR"] > 0 and values["FID"] >= 0 and 0 < values["SC"] <= 1


def test_eval_with_only_broken_files_still_answers(eval_folders, capsys):
    root, gen, ref = eval_folders
    for name in ("a.mp4", "b.mp4"):
        _put(gen / name, HTML_PAGE)
        _put(ref / name, b"")
    assert _eval(root) == 1
    err = capsys.readouterr().err
    assert "skipping a:" in err and "skipping b:" in err and "2 problem(s)" in err
    data = json.loads((root / "out.json").read_text())
    assert len(data["failures"]) == 2


def test_eval_json_output_is_strict_json(eval_folders):
    root, gen, ref = eval_folders
    _write_lossless(gen / "still.mkv", _frames(1, 16, 16, seed=1))  # SC needs 2 frames -> no SC value
    _write_lossless(ref / "still.mkv", _frames(1, 16, 16, seed=2))
    assert _eval(root) == 0

    def reject(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    json.loads((root / "out.json").read_text(), parse_constant=reject)


# =========================================================================================== logging
class _Avatar(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(_frames(4, 24, 24, seed=i)).permute(0, 3, 1, 2).contiguous()


def _module():
    import lightning.pytorch as pl

    class Generator(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.gain = torch.nn.Parameter(torch.ones(()))

        def training_step(self, batch, batch_idx):
            return (self.gain - 1.0).pow(2) + 0.0 * batch.float().mean()

        def validation_step(self, batch, batch_idx):
            generated = (batch.float() / 255 * 0.9 * self.gain).clamp(0, 1)
            return {"generated": generated, "reference": batch}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Generator()


def _fit(tmp_path: Path, logger: Any) -> dict[str, float]:
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from jwbdh_callbacks.presets import load_preset
    from jwbdh_callbacks.region_callback import JWBDHCallback

    cfg = load_preset("smoke", overrides=["regions=[whole_body]"])
    cfg.metrics = {k: v for k, v in cfg.metrics.items() if k in ("SSIM", "PSNR", "FID")}
    callback = JWBDHCallback(preset=cfg, num_media_samples=1)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=logger,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        limit_train_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    loader = DataLoader(_Avatar(), batch_size=1)
    trainer.fit(_module(), loader, loader)
    values = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/jwbdh_uncalibrated/")
    }
    assert set(values) == {f"val/jwbdh_uncalibrated/whole_body/{m}" for m in ("SSIM", "PSNR", "FID")}
    assert all(math.isfinite(v) for v in values.values())
    return values


def _media_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jwbdh_callbacks.logging"]


RESULTS = {"whole_body": {"SSIM": 0.5, "PSNR": 20.0, "FID": 3.0}, "face": {"SSIM": 0.4}}
SAMPLES = [torch.zeros(3, 3, 8, 16, dtype=torch.uint8)]


def test_training_without_wandb_installed(tmp_path, monkeypatch, caplog):
    from lightning.pytorch.loggers import CSVLogger

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    caplog.set_level(logging.WARNING)
    _fit(tmp_path, CSVLogger(tmp_path, name="csv"))
    assert list((tmp_path / "csv").rglob("jwbdh_table_step*.csv"))
    assert not _media_warnings(caplog)


def test_media_logger_with_a_wandb_logger_but_no_wandb_module(monkeypatch, caplog):
    """A W&B-style logger whose module is missing: the table still goes out, the videos only warn."""
    from jwbdh_callbacks.logging import MediaLogger

    monkeypatch.setitem(sys.modules, "wandb", None)
    calls: list[str] = []

    class WandbLogger:  # the adapter dispatches on the class name, as for Lightning's WandbLogger
        experiment = type("Run", (), {"dir": None, "log": lambda self, *a, **k: calls.append("log")})()

        def log_table(self, **kwargs):
            calls.append("table")

        def log_image(self, **kwargs):
            calls.append("image")

    caplog.set_level(logging.WARNING)
    media = MediaLogger([WandbLogger()])
    media.log_results(RESULTS, step=1)
    media.log_samples(SAMPLES, step=1)
    assert "table" in calls
    warnings = _media_warnings(caplog)
    assert len(warnings) == 1 and "sample videos" in warnings[0]


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_training_with_a_real_wandb_logger(tmp_path, monkeypatch, caplog, mode):
    wandb = pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", mode)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    caplog.set_level(logging.WARNING)
    try:
        _fit(tmp_path, WandbLogger(save_dir=str(tmp_path), project="jwbdh-faults"))
    finally:
        wandb.finish()
        if hasattr(wandb, "teardown"):  # forget this test's settings (W&B keeps a process-wide singleton)
            wandb.teardown()
    assert not _media_warnings(caplog)
    if mode == "offline":
        runs = list((tmp_path / "wandb").glob("offline-run-*"))
        assert len(runs) == 1
        media = runs[0] / "files" / "media"
        assert list(media.rglob("*.table.json")) and list(media.rglob("*.mp4")) and list(media.rglob("*.png"))


def test_media_logger_whose_loggers_raise_on_every_call_only_warns(tmp_path, caplog):
    from jwbdh_callbacks.logging import MediaLogger

    class WandbLogger:
        def __getattr__(self, name):
            raise RuntimeError(f"wandb is down ({name})")

    class TensorBoardLogger:
        @property
        def experiment(self):
            raise RuntimeError("tensorboard writer closed")

    class FilesLogger:  # a log_dir that cannot be created: under a regular file
        log_dir = str(_put(tmp_path / "blocker", b"x") / "logs")

    caplog.set_level(logging.WARNING)
    media = MediaLogger([WandbLogger(), TensorBoardLogger(), FilesLogger()])
    media.log_results(RESULTS, step=3)
    media.log_samples(SAMPLES, step=3)
    warnings = _media_warnings(caplog)
    assert len(warnings) == 5, warnings  # 3 tables + 2 sample logs (files loggers take no videos)
    assert all("could not log" in w for w in warnings)


def test_media_logger_with_a_logger_whose_attributes_raise(caplog):
    from jwbdh_callbacks.logging import MediaLogger

    class Broken:
        def __getattr__(self, name):
            raise RuntimeError(f"connection lost ({name})")

    caplog.set_level(logging.WARNING)
    media = MediaLogger([Broken()])
    media.log_results(RESULTS, step=1)
    media.log_samples(SAMPLES, step=1)
    assert _media_warnings(caplog)


def test_training_survives_a_logger_whose_log_dir_raises(tmp_path):
    from lightning.pytorch.loggers import Logger

    class FlakyLogger(Logger):
        @property
        def name(self):
            return "flaky"

        @property
        def version(self):
            return 0

        @property
        def log_dir(self):
            raise RuntimeError("log_dir unavailable: storage is offline")

        @property
        def experiment(self):
            return object()

        def log_metrics(self, metrics, step=None):
            pass

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    _fit(tmp_path, FlakyLogger())
