"""Registry of every pretrained checkpoint the metrics use, and the offline-first resolver (DESIGN s5).

Resolution order for ``resolve_weights(spec)``:

1. ``spec`` is an existing file path -> that file (checked against the registry entry when one is given).
2. ``$JWBDH_WEIGHTS_DIR/<filename>``.
3. the cache, ``$XDG_CACHE_HOME/jwbdh`` (default ``~/.cache/jwbdh``).
4. a download into the cache, when allowed (not when ``JWBDH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set, or
   ``allow_download=False``).
5. otherwise :class:`WeightsUnavailableError`, naming the file, the URLs, the sha256 and the
   ``jwbdh-weights download NAME`` command.

Every resolved registry file is checked against its sha256 (full hash, or the 8-hex prefix published in
the file name). Entries whose hash comes from a single third-party report (confidence "C" in
spec/weights.md) only warn on a mismatch; the others raise :class:`WeightsChecksumError`. A verified hash
is remembered in a ``<file>.sha256`` sidecar keyed by size and modification time, so a 900 MB file is
hashed once, not on every start.

Example:
    >>> from metrics.backbones.weights import REGISTRY, resolve_weights
    >>> REGISTRY["inception_v3_imagenet"].filename
    'inception_v3_google-0cc3c7bd.pth'
    >>> path = resolve_weights("inception_v3_imagenet")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "REGISTRY",
    "WeightsChecksumError",
    "WeightsEntry",
    "WeightsUnavailableError",
    "cache_dir",
    "check_weights",
    "download_weights",
    "load_checkpoint",
    "register",
    "resolve_weights",
    "torch_load",
    "verify_file",
]


class WeightsUnavailableError(FileNotFoundError):
    """A checkpoint is neither on disk nor downloadable (offline, or the download failed)."""


class WeightsChecksumError(ValueError):
    """A checkpoint file does not match the sha256 recorded in the registry."""


@dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint file.

    Attributes:
        name: registry key, used by ``weights="..."`` arguments and the CLI.
        filename: file name on disk (in ``$JWBDH_WEIGHTS_DIR`` or the cache).
        urls: download URLs, primary first.
        sha256: full hex digest, or its prefix when only a prefix is published.
        size: size in bytes if known (a cheap first check), else None.
        license: licence of the weights.
        non_commercial: True when the licence forbids commercial use.
        strict_hash: False for hashes reported by a single third party: a mismatch warns instead of failing.
        description: what the file is and which metric uses it.
        archive_member: for a zip download, the member holding the weights.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int | None
    license: str
    description: str
    non_commercial: bool = False
    strict_hash: bool = True
    archive_member: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


REGISTRY: dict[str, WeightsEntry] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Add an entry (later issues and users register their own checkpoints this way)."""
    if len(entry.sha256) < 8 or any(c not in "0123456789abcdef" for c in entry.sha256):
        raise ValueError(f"`entry.sha256` must be at least 8 lowercase hex digits, got {entry.sha256!r}")
    REGISTRY[entry.name] = entry
    return entry


for _entry in (
    WeightsEntry(
        "inception_v3_imagenet",
        "inception_v3_google-0cc3c7bd.pth",
        ("https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",),
        "0cc3c7bd75056d25e46cba549dc184522069b81e9787eff6df84f397bd52a5ef",
        108_949_747,
        "BSD-3-Clause",
        "torchvision Inception-v3 IMAGENET1K_V1: JWB-DH-V1 FID / E-FID features (not the standard FID net)",
    ),
    WeightsEntry(
        "fid_inception_v3",
        "pt_inception-2015-12-05-6726825d.pth",
        (
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        ),
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        95_628_359,
        "Apache-2.0",
        "TF 2015-12-05 FID Inception (pytorch-fid port): standard FID",
    ),
    WeightsEntry(
        "i3d_torchscript",
        "i3d_torchscript.pt",
        (
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
            "https://huggingface.co/flateon/FVD-I3D-torchscript/resolve/main/i3d_torchscript.pt",
        ),
        "bec6519f66ea534e953026b4ae2c65553c17bf105611c746d904657e5860a5e2",
        None,
        "TF-Hub I3D weights (Apache-2.0); StyleGAN-V TorchScript port, possibly NVIDIA licence",
        "I3D Kinetics-400 TorchScript (StyleGAN-V): FVD",
        non_commercial=True,
        strict_hash=False,
    ),
    WeightsEntry(
        "dino_vitb16",
        "dino_vitbase16_pretrain.pth",
        ("https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",),
        "bf34ad0f424b9029b593e8dc3ed553bf26e88bcba0d32bf3e62a6209cb64c85e",
        None,
        "Apache-2.0",
        "DINO ViT-B/16: VBench subject consistency (SC)",
        strict_hash=False,
    ),
    WeightsEntry(
        "clip_vitb32_openai",
        "ViT-B-32.pt",
        (
            "https://openaipublic.azureedge.net/clip/models/"
            "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        ),
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        None,
        "MIT",
        "OpenAI CLIP ViT-B/32 (TorchScript): VBench background consistency (BC)",
    ),
    WeightsEntry(
        "clip_vitl14_openai",
        "ViT-L-14.pt",
        (
            "https://openaipublic.azureedge.net/clip/models/"
            "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        ),
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        None,
        "MIT",
        "OpenAI CLIP ViT-L/14 (TorchScript): VBench aesthetic quality (AQ) features",
    ),
    WeightsEntry(
        "laion_aesthetic_vitl14",
        "sa_0_4_vit_l_14_linear.pth",
        ("https://raw.githubusercontent.com/LAION-AI/aesthetic-predictor/main/sa_0_4_vit_l_14_linear.pth",),
        "2cd4e60f4f24ae3bcd57b847b13c1f3ba27edc28cc1a7f9ce74ee9f421243cba",
        4_071,
        "MIT",
        "LAION aesthetic predictor V1 linear head on CLIP ViT-L/14: VBench aesthetic quality (AQ)",
    ),
    WeightsEntry(
        "musiq_spaq",
        "musiq_spaq_ckpt-358bb6af.pth",
        (
            "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/musiq_spaq_ckpt-358bb6af.pth",
            "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
        ),
        "358bb6af",
        None,
        "CC BY-NC-SA 4.0 (weights); pyiqa code PolyForm-Noncommercial-1.0.0",
        "MUSIQ trained on SPAQ (pyiqa): VBench imaging quality (IQ)",
        non_commercial=True,
    ),
    WeightsEntry(
        "raft_large_c_t_v1",
        "raft_large_C_T_V1-22a6c225.pth",
        ("https://download.pytorch.org/models/raft_large_C_T_V1-22a6c225.pth",),
        "22a6c225",
        None,
        "BSD-3-Clause",
        "torchvision RAFT-large C_T_V1 (port of raft-things): VBench dynamic degree (DD)",
    ),
    WeightsEntry(
        "raft_things",
        "raft-things.pth",
        ("https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip",),
        "fcfa4125d6418f4de95d84aec20a3c5f4e205101715a79f193243c186ac9a7e1",
        None,
        "BSD-3-Clause",
        "original RAFT-things checkpoint (inside models.zip), VBench's DD file: keys converted to "
        "torchvision raft_large on load",
        archive_member="models/raft-things.pth",
    ),
    WeightsEntry(
        "amt_s",
        "amt-s.pth",
        ("https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth",),
        "07e7e03405c213fe4405678db9b42d05671e48c56faf6a441b99bb0047d3cf77",
        12_038_359,
        "CC BY-NC 4.0",
        "AMT-S frame interpolation: VBench motion smoothness (MS)",
        non_commercial=True,
    ),
    WeightsEntry(
        "facenet_vggface2",
        "20180402-114759-vggface2.pt",
        ("https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",),
        "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
        None,
        "MIT (VGGFace2 data terms apply)",
        "FaceNet InceptionResnetV1 (VGGFace2): identity CSIM",
        strict_hash=False,
    ),
    WeightsEntry(
        "whisper_tiny_en",
        "tiny.en.pt",
        (
            "https://openaipublic.azureedge.net/main/whisper/models/"
            "d3dd57d32accea0b295c96e26691aa14d8822fac7d9d27d5dc00b4ca2826dd03/tiny.en.pt",
        ),
        "d3dd57d32accea0b295c96e26691aa14d8822fac7d9d27d5dc00b4ca2826dd03",
        75_571_315,
        "MIT",
        "Whisper tiny.en: ASR for WER",
    ),
    # DWPose's ONNX files as its authors publish them (huggingface.co/yzd-v/DWPose, commit f7c16a3 "support
    # all dwpose models"); sha256 and size are the Git LFS pointers of that commit.
    WeightsEntry(
        "dwpose-yolox-l",
        "yolox_l.onnx",
        ("https://huggingface.co/yzd-v/DWPose/resolve/main/yolox_l.onnx",),
        "7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411",
        216_746_733,
        "Apache-2.0",
        "YOLOX-L person detector (ONNX) of DWPose: person boxes for DWPoseONNX (--pose dwpose)",
    ),
    WeightsEntry(
        "dwpose-ll-ucoco-384",
        "dw-ll_ucoco_384.onnx",
        ("https://huggingface.co/yzd-v/DWPose/resolve/main/dw-ll_ucoco_384.onnx",),
        "724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843",
        134_399_116,
        "Apache-2.0",
        "DWPose dw-ll_ucoco_384 whole-body pose model (ONNX): 133 COCO-WholeBody keypoints for DWPoseONNX",
    ),
):
    register(_entry)


def load_checkpoint(weights: str | os.PathLike) -> dict[str, Tensor]:
    """Resolve ``weights`` (registry name or path) and load its tensors on the CPU (``weights_only``).

    A ``{"state_dict": {...}}`` wrapper (Lightning-style checkpoints) is unwrapped.

    Example:
        >>> load_checkpoint("/nonexistent/net.pth")  # doctest: +SKIP
    """
    path = resolve_weights(weights)
    state = torch_load(path, weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} does not hold a state dict (got {type(state).__name__})")
    return state


def torch_load(path: str | os.PathLike, *, weights_only: bool = True) -> object:
    """``torch.load`` on the CPU with clear errors for broken files.

    A truncated, empty, HTML or otherwise corrupt file raises ``ValueError`` naming the file. When
    ``weights_only=True`` refuses a well-formed pickle that references non-tensor globals, the
    ``pickle.UnpicklingError`` is re-raised unchanged so that callers can decide whether a full unpickle is
    safe (only for a checksum-verified registry file).
    """
    import pickle

    import torch

    hint = "delete it and download it again"
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:
        text = str(err)
        if weights_only and "unsupported global" in text.lower():  # a real pickle holding non-tensor objects
            raise
        raise ValueError(
            f"cannot read checkpoint {path}: {text}. It looks corrupt or is not a checkpoint; {hint}"
        ) from err
    except (
        EOFError,
        RuntimeError,
        UnicodeDecodeError,
        OSError,
        ValueError,
        AttributeError,
        ImportError,
    ) as err:
        kind = type(err).__name__
        raise ValueError(
            f"cannot read checkpoint {path} ({kind}: {err}). It may be truncated or corrupt; {hint}"
        ) from err


def cache_dir() -> Path:
    """The download cache: ``$XDG_CACHE_HOME/jwbdh`` or ``~/.cache/jwbdh``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jwbdh"


def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip() not in ("", "0") for var in ("JWBDH_OFFLINE", "HF_HUB_OFFLINE")
    )


def _download_command(entry: WeightsEntry) -> str:
    return f"jwbdh-weights download {entry.name}"


def _sha256_of(path: Path) -> str:
    """sha256 of a file, remembered in a ``.sha256`` sidecar keyed by size and mtime."""
    stat = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    key = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        cached = json.loads(sidecar.read_text())
        if cached.get("key") == key:
            return cached["sha256"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    try:
        sidecar.write_text(json.dumps({"key": key, "sha256": value}))
    except OSError:
        pass  # a read-only weights dir only costs a re-hash next time
    return value


def verify_file(path: str | os.PathLike, entry: WeightsEntry) -> bool:
    """Check ``path`` against ``entry``'s size and sha256.

    Returns True when it matches. On a mismatch raises :class:`WeightsChecksumError`, or warns and returns
    False for entries with ``strict_hash=False``.
    """
    path = Path(path)
    problems = []
    if entry.size is not None and path.stat().st_size != entry.size:
        problems.append(f"size {path.stat().st_size} bytes, expected {entry.size}")
    actual = _sha256_of(path)
    if not actual.startswith(entry.sha256):
        problems.append(f"sha256 {actual}, expected {entry.sha256}{'...' if len(entry.sha256) < 64 else ''}")
    if not problems:
        return True
    message = (
        f"checkpoint {path} for '{entry.name}' does not match the registry: {'; '.join(problems)}. "
        "The file may be truncated, corrupt or an HTML error page; "
        f"delete it and run `{_download_command(entry)}`."
    )
    if entry.strict_hash:
        raise WeightsChecksumError(message)
    warnings.warn(
        message + " (this registry hash comes from a single third-party report, so it is not enforced)",
        stacklevel=3,
    )
    return False


def _candidates(entry: WeightsEntry) -> list[Path]:
    paths = []
    env_dir = os.environ.get("JWBDH_WEIGHTS_DIR")
    if env_dir:
        paths.append(Path(env_dir) / entry.filename)
    paths.append(cache_dir() / entry.filename)
    return paths


def resolve_weights(spec: str | os.PathLike, *, allow_download: bool | None = None) -> Path:
    """Turn a registry name or a file path into a verified local checkpoint path.

    Args:
        spec: a registry name (see ``jwbdh-weights list``) or a path to a checkpoint file.
        allow_download: None = download unless ``JWBDH_OFFLINE``/``HF_HUB_OFFLINE`` is set.

    Raises:
        WeightsUnavailableError: not found locally and not downloadable.
        WeightsChecksumError: the file found does not match the registry's sha256.
        ValueError: ``spec`` is neither an existing file nor a registry name.
    """
    spec_str = os.fspath(spec)
    if spec_str not in REGISTRY:
        path = Path(spec_str).expanduser()
        if path.is_file():
            return path
        if os.sep in spec_str or spec_str.endswith((".pt", ".pth", ".bin", ".safetensors")):
            raise WeightsUnavailableError(f"checkpoint file not found: {spec_str}")
        raise ValueError(
            f"`weights` must be a registry name ({', '.join(sorted(REGISTRY))}), a checkpoint path or None; "
            f"got {spec_str!r}"
        )
    entry = REGISTRY[spec_str]
    for candidate in _candidates(entry):
        if candidate.is_file():
            verify_file(candidate, entry)
            return candidate
    if allow_download is None:
        allow_download = not _offline()
        why = f"downloads are disabled ({' and '.join(_offline_variables())} set)"
    else:
        why = "this lookup does not download (allow_download=False)"
    if allow_download:
        return download_weights(entry.name)
    raise _unavailable(entry, why)


def _offline_variables() -> list[str]:
    return [
        f"{var}={os.environ[var]}"
        for var in ("JWBDH_OFFLINE", "HF_HUB_OFFLINE")
        if os.environ.get(var, "").strip() not in ("", "0")
    ]


def check_weights(
    specs: Iterable[str | os.PathLike], *, allow_download: bool | None = None
) -> dict[str, Path]:
    """Resolve every checkpoint in ``specs`` NOW, failing once for all of them (fail early, DESIGN s5).

    Registry names and checkpoint paths are resolved (and downloaded where allowed, as a metric would at its
    first update); anything else (e.g. weights a package ships) is left to its loader. Returns
    ``{spec: path}``.

    Raises:
        WeightsUnavailableError: one message naming EVERY missing or corrupt checkpoint, with the single
            ``jwbdh-weights download ...`` command that fetches the registry ones.

    Example:
        >>> check_weights([])
        {}
    """
    found: dict[str, Path] = {}
    problems: list[str] = []
    missing_names: list[str] = []
    for spec in dict.fromkeys(os.fspath(s) for s in specs):
        if spec not in REGISTRY and os.sep not in spec and not spec.endswith((".pt", ".pth", ".bin")):
            continue
        try:
            found[spec] = resolve_weights(spec, allow_download=allow_download)
        except (WeightsUnavailableError, WeightsChecksumError) as err:
            if spec in REGISTRY:
                missing_names.append(spec)
                entry = REGISTRY[spec]
                where = ", ".join(str(p) for p in _candidates(entry))
                kind = "corrupt" if isinstance(err, WeightsChecksumError) else "missing"
                problems.append(f"{spec} ({entry.filename}, {kind}; searched {where})")
            else:
                problems.append(f"{spec} ({err})")
    if problems:
        command = f" Run `jwbdh-weights download {' '.join(missing_names)}`" if missing_names else ""
        offline = _offline_variables()
        note = f" (downloads disabled: {', '.join(offline)})" if offline and allow_download is None else ""
        raise WeightsUnavailableError(
            f"{len(problems)} checkpoint(s) needed are not available{note}: "
            + "; ".join(problems)
            + "."
            + (
                f"{command} on a machine with internet access, or put the files in $JWBDH_WEIGHTS_DIR."
                if command
                else ""
            )
        )
    return found


def _unavailable(entry: WeightsEntry, why: str) -> WeightsUnavailableError:
    searched = ", ".join(str(p) for p in _candidates(entry))
    return WeightsUnavailableError(
        f"weights '{entry.name}' ({entry.filename}) are not available: {why}. Searched: {searched}. "
        f"Download from {entry.urls[0]} (sha256 {entry.sha256}) into {cache_dir()} or $JWBDH_WEIGHTS_DIR, "
        f"or run `{_download_command(entry)}` on a machine with internet access."
    )


def download_weights(name: str, *, timeout: float = 60.0) -> Path:
    """Download a registry entry into the cache (atomically: temp file, verify, rename) and return its path.

    Raises:
        WeightsUnavailableError: every URL failed (network error, HTTP error).
        WeightsChecksumError: the downloaded bytes do not match (e.g. an HTML error page).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown weights name {name!r}; known: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    target = cache_dir() / entry.filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unavailable(entry, f"the cache directory {target.parent} is not writable ({err})") from err
    errors = []
    for url in entry.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=entry.filename + ".", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out, length=1 << 20)
            if entry.archive_member:
                tmp = _extract_member(tmp, entry.archive_member)
            verify_file(tmp, entry)
            os.replace(tmp, target)
            sidecar = tmp.with_name(tmp.name + ".sha256")
            if sidecar.exists():  # keep the verified hash with the file (size and mtime are unchanged)
                os.replace(sidecar, target.with_name(target.name + ".sha256"))
            return target
        except WeightsChecksumError:
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".sha256").unlink(missing_ok=True)
            raise
        except Exception as err:  # network and HTTP errors: try the next mirror
            errors.append(f"{url}: {err}")
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".sha256").unlink(missing_ok=True)
    raise _unavailable(entry, "download failed (" + "; ".join(errors) + ")")


def _extract_member(archive: Path, member: str) -> Path:
    import zipfile

    out = archive.with_suffix(".member")
    with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    archive.unlink()
    return out
