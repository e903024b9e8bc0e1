"""Weights registry and resolver: local files, checksums, offline errors, downloads from a local server."""

from __future__ import annotations

import hashlib
import http.server
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import pytest

from jwbdh_callbacks.cli import weights_main
from metrics.backbones import weights as W

SPEC_CHECKPOINTS = {
    "dino_vitb16",
    "clip_vitb32_openai",
    "clip_vitl14_openai",
    "laion_aesthetic_vitl14",
    "musiq_spaq",
    "raft_large_c_t_v1",
    "raft_things",
    "amt_s",
    "fid_inception_v3",
    "inception_v3_imagenet",
    "i3d_torchscript",
    "facenet_vggface2",
    "whisper_tiny_en",
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache and weights dir; downloads allowed only where a test says so."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("JWBDH_OFFLINE", "1")
    added: list[str] = []

    def add(
        name: str, payload: bytes, strict: bool = True, sha: str | None = None, url: str = "http://x/f"
    ) -> bytes:
        W.register(
            W.WeightsEntry(
                name=name,
                filename=f"{name}.bin",
                urls=(url,),
                sha256=sha or hashlib.sha256(payload).hexdigest(),
                size=None,
                license="test",
                description="test entry",
                strict_hash=strict,
            )
        )
        added.append(name)
        return payload

    yield add
    for name in added:
        W.REGISTRY.pop(name, None)


def test_registry_covers_every_spec_checkpoint():
    assert SPEC_CHECKPOINTS <= set(W.REGISTRY)
    for entry in W.REGISTRY.values():
        assert entry.urls and entry.urls[0].startswith("https://")
        assert len(entry.sha256) in (8, 64)
    assert {n for n, e in W.REGISTRY.items() if e.non_commercial} >= {
        "musiq_spaq",
        "amt_s",
        "i3d_torchscript",
    }


def test_explicit_path_env_dir_and_cache(isolated, tmp_path, monkeypatch):
    payload = isolated("toy_ok", b"weights-bytes")
    explicit = tmp_path / "explicit.bin"
    explicit.write_bytes(payload)
    assert W.resolve_weights(explicit) == explicit
    env_dir = tmp_path / "envdir"
    env_dir.mkdir()
    (env_dir / "toy_ok.bin").write_bytes(payload)
    monkeypatch.setenv("JWBDH_WEIGHTS_DIR", str(env_dir))
    assert W.resolve_weights("toy_ok") == env_dir / "toy_ok.bin"
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR")
    cached = W.cache_dir() / "toy_ok.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(payload)
    assert W.resolve_weights("toy_ok") == cached
    assert (cached.parent / "toy_ok.bin.sha256").exists()  # verified hash remembered


def test_wrong_sha256_fails_clearly_and_weak_hash_warns(isolated):
    isolated("toy_strict", b"", sha="0" * 64)
    isolated("toy_weak", b"", sha="1" * 64, strict=False)
    W.cache_dir().mkdir(parents=True)
    (W.cache_dir() / "toy_strict.bin").write_bytes(b"corrupt")
    (W.cache_dir() / "toy_weak.bin").write_bytes(b"other")
    with pytest.raises(
        W.WeightsChecksumError, match=r"toy_strict.*sha256.*jwbdh-weights download toy_strict"
    ):
        W.resolve_weights("toy_strict")
    with pytest.warns(UserWarning, match="not enforced"):
        assert W.resolve_weights("toy_weak") == W.cache_dir() / "toy_weak.bin"


def test_missing_offline_names_file_url_and_command(isolated):
    isolated("toy_missing", b"abc", url="https://example.org/toy_missing.bin")
    with pytest.raises(W.WeightsUnavailableError) as info:
        W.resolve_weights("toy_missing")
    text = str(info.value)
    assert "toy_missing.bin" in text and "https://example.org/toy_missing.bin" in text
    assert "jwbdh-weights download toy_missing" in text and hashlib.sha256(b"abc").hexdigest() in text
    with pytest.raises(W.WeightsUnavailableError, match="not found"):
        W.resolve_weights("/no/such/file.pth")
    with pytest.raises(ValueError, match="registry name"):
        W.resolve_weights("not-a-name")


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes, int | None]]] = {}

    def do_GET(self) -> None:
        status, body, declared = self.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(declared if declared is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _server(routes: dict[str, tuple[int, bytes, int | None]]) -> Iterator[str]:
    _Handler.routes = routes
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_local_server_verifies_and_is_atomic(isolated, monkeypatch):
    payload = os.urandom(50_000)
    html = b"<html>quota exceeded</html>"
    with _server(
        {"/ok": (200, payload, None), "/html": (200, html, None), "/short": (200, payload[:100], 50_000)}
    ) as base:
        isolated("toy_dl", payload, url=f"{base}/ok")
        monkeypatch.setenv("JWBDH_OFFLINE", "0")
        path = W.resolve_weights("toy_dl")
        assert path.read_bytes() == payload

        isolated("toy_html", payload, url=f"{base}/html")
        with pytest.raises(W.WeightsChecksumError):
            W.download_weights("toy_html")
        assert not (W.cache_dir() / "toy_html.bin").exists()

        isolated("toy_partial", payload, url=f"{base}/short")
        with pytest.raises((W.WeightsUnavailableError, W.WeightsChecksumError)):
            W.download_weights("toy_partial", timeout=5)
        assert not (W.cache_dir() / "toy_partial.bin").exists()
        assert not list(W.cache_dir().glob("*.part"))

        isolated("toy_404", payload, url=f"{base}/missing")
        with pytest.raises(W.WeightsUnavailableError, match="download failed"):
            W.download_weights("toy_404")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_cache_dir_gives_unavailable_error(
    isolated, monkeypatch
):  # pragma: no cover - non-root only
    isolated("toy_ro", b"x")
    W.cache_dir().parent.mkdir(parents=True, exist_ok=True)
    os.chmod(W.cache_dir().parent, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(W.WeightsUnavailableError, match="not writable"):
            W.download_weights("toy_ro")
    finally:
        os.chmod(W.cache_dir().parent, stat.S_IRWXU)


def test_unwritable_cache_path_gives_unavailable_error(isolated, monkeypatch, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    isolated("toy_blocked", b"x")
    with pytest.raises(W.WeightsUnavailableError, match="not writable"):
        W.download_weights("toy_blocked")


def test_cli_list_path_verify(isolated, capsys):
    payload = isolated("toy_cli", b"cli-bytes")
    assert weights_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "amt_s" in out and "NON-COMMERCIAL" in out and "toy_cli" in out
    assert weights_main(["path", "toy_cli"]) == 1
    assert "jwbdh-weights download toy_cli" in capsys.readouterr().err
    W.cache_dir().mkdir(parents=True)
    (W.cache_dir() / "toy_cli.bin").write_bytes(payload)
    assert weights_main(["verify", "toy_cli"]) == 0
    assert "ok" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        weights_main(["download"])
    with pytest.raises(SystemExit):
        weights_main(["path", "no_such_name"])


def test_check_weights_names_every_missing_checkpoint_in_one_message(isolated, tmp_path):
    isolated("toy_a", b"a-bytes")
    isolated("toy_b", b"b-bytes")
    payload = isolated("toy_present", b"present")
    W.cache_dir().mkdir(parents=True)
    (W.cache_dir() / "toy_present.bin").write_bytes(payload)
    own = tmp_path / "own.pth"
    own.write_bytes(b"x")
    found = W.check_weights(["toy_present", str(own), "facenet-pytorch"])  # a package's own weights: skipped
    assert found == {"toy_present": W.cache_dir() / "toy_present.bin", str(own): own}
    with pytest.raises(W.WeightsUnavailableError) as info:
        W.check_weights(["toy_a", "toy_present", "toy_b", "toy_a", str(tmp_path / "gone.pth")])
    text = str(info.value)
    assert text.startswith("3 checkpoint(s) needed are not available (downloads disabled: JWBDH_OFFLINE=1)")
    assert "toy_a (toy_a.bin, missing" in text and "toy_b (toy_b.bin, missing" in text and "gone.pth" in text
    assert text.count("jwbdh-weights download") == 1 and "`jwbdh-weights download toy_a toy_b`" in text


def test_offline_message_names_the_real_reason(isolated, monkeypatch):
    isolated("toy_reason", b"r")
    with pytest.raises(W.WeightsUnavailableError, match=r"downloads are disabled \(JWBDH_OFFLINE=1 set\)"):
        W.resolve_weights("toy_reason")
    monkeypatch.delenv("JWBDH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(W.WeightsUnavailableError) as info:
        W.resolve_weights("toy_reason", allow_download=False)
    assert "allow_download=False" in str(info.value) and "JWBDH_OFFLINE" not in str(info.value).split(".")[0]


def test_cli_verify_fails_when_a_checkpoint_is_missing(isolated, capsys):
    payload = isolated("toy_here", b"here")
    isolated("toy_gone", b"gone")
    W.cache_dir().mkdir(parents=True)
    (W.cache_dir() / "toy_here.bin").write_bytes(payload)
    assert weights_main(["verify", "toy_here"]) == 0
    assert weights_main(["verify", "toy_here", "toy_gone"]) == 1
    captured = capsys.readouterr()
    assert "toy_gone: missing" in captured.out
    assert "1 of 2 checkpoint(s) missing; `jwbdh-weights download toy_gone`" in captured.err
    assert weights_main(["verify"]) == 1  # everything in the registry: the real checkpoints are absent here


def test_cli_preset_stands_for_every_checkpoint_of_the_preset(isolated, capsys):
    from jwbdh_callbacks.cli import preset_weights
    from jwbdh_callbacks.cli import weights_main as cli_weights

    names = preset_weights("jwbdh-v1")
    assert len(names) == 9 and {"inception_v3_imagenet", "i3d_torchscript", "raft_large_c_t_v1"} <= set(names)
    assert cli_weights(["verify", "--preset", "jwbdh-v1"]) == 1
    out, err = capsys.readouterr()
    assert all(f"{n}: missing" in out for n in names) and "9 of 9 checkpoint(s) missing" in err
    assert cli_weights(["download", "--preset", "jwbdh-v1"]) == 1  # offline here: every one named, none fatal
    assert "jwbdh-weights download" in capsys.readouterr().err
    assert cli_weights(["download", "--preset", "smoke"]) == 0
    assert "loads no registry checkpoint" in capsys.readouterr().out
    assert cli_weights(["download", "--preset"]) == 2
    assert cli_weights(["verify", "--preset", "no-such-preset"]) == 2


def test_weights_command_directly(isolated, monkeypatch, capsys):
    """The CLI's new home (jwbdh_callbacks.weights_cli): every sub-command, exit codes and exact lines."""
    from jwbdh_callbacks.weights_cli import weights_command

    payload = os.urandom(4_000)
    with _server({"/w": (200, payload, None), "/gone": (404, b"", None)}) as base:
        isolated("toy_cmd", payload, url=f"{base}/w")
        isolated("toy_cmd404", payload, url=f"{base}/gone")
        isolated("toy_cmdweak", b"", sha="2" * 64, strict=False)
        isolated("toy_cmdbad", b"", sha="3" * 64)
        target = W.cache_dir() / "toy_cmd.bin"

        assert weights_command(["path", "toy_cmd"]) == 1  # offline and absent: path never downloads
        assert "jwbdh-weights download toy_cmd" in capsys.readouterr().err
        monkeypatch.setenv("JWBDH_OFFLINE", "0")
        assert weights_command(["download", "toy_cmd", "toy_cmd404"]) == 1  # a failure stops no other
        out, err = capsys.readouterr()
        assert out == f"toy_cmd: {target}\n" and target.read_bytes() == payload
        assert err.startswith("toy_cmd404: weights 'toy_cmd404'") and "download failed" in err

    assert weights_command(["path", "toy_cmd"]) == 0
    assert capsys.readouterr().out == f"toy_cmd: {target}\n"
    (W.cache_dir() / "toy_cmdweak.bin").write_bytes(b"not the registered bytes")
    (W.cache_dir() / "toy_cmdbad.bin").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="not enforced"):
        assert weights_command(["verify", "toy_cmd", "toy_cmdweak"]) == 0  # a weak hash only warns
    assert capsys.readouterr().out == (
        f"toy_cmd: ok {target}\ntoy_cmdweak: MISMATCH (warning only) {W.cache_dir() / 'toy_cmdweak.bin'}\n"
    )
    assert weights_command(["verify", "toy_cmdbad"]) == 1
    assert "does not match the registry" in capsys.readouterr().err

    assert weights_command(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * len(W.REGISTRY)  # two lines per entry
    row = lines.index(next(line for line in lines if line.startswith("toy_cmd ")))
    assert lines[row].split() == ["toy_cmd", "toy_cmd.bin", "test"]
    assert lines[row + 1].strip() == f"test entry; local: {target}"
    assert any(line.startswith("amt_s ") and line.endswith("[NON-COMMERCIAL]") for line in lines)

    for argv, message in (
        (["download"], "`download` needs at least one NAME"),
        (["path", "toy_cmd", "nope"], "unknown NAME(s): nope"),
        ([], "required"),
    ):
        with pytest.raises(SystemExit) as stop:
            weights_command(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err

    assert not hasattr(W, "main")  # metrics/ carries no command line any more (issue 12)
