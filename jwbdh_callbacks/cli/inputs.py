"""What ``jwbdh-eval`` reads: video pairs by file name, keypoint files, cache ids, and the decode workers.

:class:`PairDataset` decodes one (generated, reference) pair per item -- and, with ``--pose``, estimates
their keypoints -- so a ``DataLoader`` with ``--workers N`` decodes ahead in N processes while the main
process (and its GPU) scores the previous pair. A pair that cannot be read is returned with its error, never
raised, so one bad file does not stop the loader.

Example:
    >>> pair_videos("missing_dir", "other")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: GENERATED_DIR missing_dir is not a directory
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "VIDEO_EXTENSIONS",
    "PairDataset",
    "feature_cache_dir",
    "load_keypoints",
    "pair_loader",
    "pair_videos",
    "reference_id",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def pair_videos(
    generated_dir: str | os.PathLike, reference_dir: str | os.PathLike
) -> list[tuple[str, Path, Path]]:
    """``[(name, generated_path, reference_path)]`` paired by file stem, sorted by name.

    Raises:
        ValueError: a folder is missing or empty, names are ambiguous, or some videos have no partner
            (all of them are listed).
    """
    found = {}
    for label, folder in (("GENERATED_DIR", generated_dir), ("REFERENCE_DIR", reference_dir)):
        path = Path(folder)
        if not path.is_dir():
            raise ValueError(f"{label} {folder} is not a directory")
        videos: dict[str, Path] = {}
        for f in sorted(path.iterdir()):
            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                if f.stem in videos:
                    raise ValueError(
                        f"{label} has two videos named {f.stem!r}: {videos[f.stem].name}, {f.name}"
                    )
                videos[f.stem] = f
        if not videos:
            raise ValueError(f"{label} {folder} contains no videos ({', '.join(VIDEO_EXTENSIONS)})")
        found[label] = videos
    gen, ref = found["GENERATED_DIR"], found["REFERENCE_DIR"]
    only_gen, only_ref = sorted(set(gen) - set(ref)), sorted(set(ref) - set(gen))
    if only_gen or only_ref:
        parts = [
            f"only in GENERATED_DIR: {', '.join(only_gen)}" if only_gen else "",
            f"only in REFERENCE_DIR: {', '.join(only_ref)}" if only_ref else "",
        ]
        raise ValueError("videos must pair by file name; unpaired: " + "; ".join(p for p in parts if p))
    return [(name, gen[name], ref[name]) for name in sorted(gen)]


def load_keypoints(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{"reference": {name: [T,133,3]}, "generated": {...}}`` from a .pt/.pth or .npz file.

    A flat ``{name: array}`` mapping means reference keypoints (used for both videos). Files written by
    :func:`metrics.pose.keypoints_file.save_keypoints` (``jwbdh-eval --save-keypoints``) read back as written.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--keypoints file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw: dict[str, Any] = {k: torch.from_numpy(data[k]) for k in data.files}
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict):
        raise ValueError(
            f"--keypoints file {path} must hold a mapping name -> [T, 133, 3], got {type(raw).__name__}"
        )
    if set(raw) <= {"reference", "generated"} and raw:
        return {side: {k: torch.as_tensor(v).float() for k, v in raw.get(side, {}).items()} for side in raw}
    return {"reference": {k: torch.as_tensor(v).float() for k, v in raw.items()}}


def feature_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Where ``jwbdh-eval`` caches reference features: ``explicit``, ``$JWBDH_FEATURE_CACHE`` or
    ``~/.cache/jwbdh/features``.

    Example:
        >>> feature_cache_dir("/tmp/f")
        PosixPath('/tmp/f')
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("JWBDH_FEATURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jwbdh" / "features"


def reference_id(path: str | os.PathLike, *tensors_and_settings: Any) -> str:
    """Cache id of a reference video: sha256 of the file's bytes and of everything that shapes its crops.

    Keypoints (they decide the face/hand boxes), the frame limit and the crop settings are hashed with the
    file, so editing any of them gives a new id; the backbone and preprocessing are the cache namespace.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     _ = f.write(b"video"); f.flush()
        ...     reference_id(f.name, None) == reference_id(f.name, None) != reference_id(f.name, 16)
        True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    for item in tensors_and_settings:
        if isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.numpy().tobytes())
        else:
            digest.update(repr(item).encode())
    return digest.hexdigest()


class PairDataset(Dataset):
    """One decoded (generated, reference) pair per item, for a ``DataLoader`` with decode workers.

    Args:
        pairs: ``[(name, generated_path, reference_path)]`` (e.g. this rank's shard of :func:`pair_videos`).
        max_frames: decode at most this many frames per video.
        keypoints: a loaded ``--keypoints`` file (:func:`load_keypoints`), or None.
        pose: ``"mediapipe"`` / ``"dwpose"`` to estimate both videos' keypoints in the worker, or None.
        cache_settings: when not None, the item carries ``video_id`` = :func:`reference_id` of the reference
            file with its keypoints and these settings (hashing the file happens in the worker too).

    Items are dicts: ``name``, ``generated``/``reference`` uint8 ``[T, 3, H, W]``, ``fps``,
    ``keypoints_generated``/``keypoints_reference`` ``[T, 133, 3]`` or None, ``video_id``, and ``error``
    (a message when the pair could not be read: the other fields are then None).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, Path, Path]],
        max_frames: int | None = None,
        keypoints: Mapping[str, Mapping[str, Any]] | None = None,
        pose: str | None = None,
        cache_settings: tuple | None = None,
    ) -> None:
        if pose not in (None, "mediapipe", "dwpose"):
            raise ValueError(f"`pose` must be None, 'mediapipe' or 'dwpose', got {pose!r}")
        self.pairs = list(pairs)
        self.max_frames = max_frames
        self.keypoints = keypoints
        self.pose = pose
        self.cache_settings = cache_settings
        self._estimator: Any = None

    def __len__(self) -> int:
        return len(self.pairs)

    def _estimate(self, video: torch.Tensor) -> torch.Tensor:
        if self._estimator is None:  # built lazily: once per worker process
            self._estimator = pose_estimator(self.pose)
        return self._estimator(video)

    def _cut(self, keypoints: torch.Tensor | None) -> torch.Tensor | None:
        """Keypoints of the whole video cut to the ``max_frames`` decoded (any other mismatch is the suite's
        to reject)."""
        if keypoints is None or self.max_frames is None or keypoints.ndim < 1:
            return keypoints
        return keypoints[: self.max_frames]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from metrics.video import read_video

        name, gen_path, ref_path = self.pairs[index]
        item: dict[str, Any] = {"name": name, "error": None, "video_id": None}
        try:
            gen, _ = read_video(gen_path, max_frames=self.max_frames)
            ref, fps = read_video(ref_path, max_frames=self.max_frames)
        except (ValueError, OSError) as err:
            return {**item, "error": str(err)}
        kp_gen = kp_ref = None
        if self.keypoints is not None:
            kp_ref = self._cut(self.keypoints.get("reference", {}).get(name))
            kp_gen = self._cut(self.keypoints.get("generated", {}).get(name))
        elif self.pose is not None:
            try:
                kp_gen, kp_ref = self._estimate(gen), self._estimate(ref)
            except (ValueError, RuntimeError) as err:
                return {**item, "error": f"{self.pose} keypoints failed: {err}"}
        if self.cache_settings is not None:
            item["video_id"] = reference_id(ref_path, kp_ref, kp_gen, self.cache_settings)
        return {
            **item,
            "generated": gen,
            "reference": ref,
            "fps": fps,
            "keypoints_generated": kp_gen,
            "keypoints_reference": kp_ref,
        }


def pose_estimator(name: str) -> Any:
    """A callable ``uint8 [T, 3, H, W] -> float32 [T, 133, 3]`` COCO-WholeBody keypoints (``--pose``).

    ``mediapipe``: :class:`metrics.pose.mediapipe.MediaPipeWholeBody` (models inside the mediapipe wheel);
    ``dwpose``: :class:`metrics.pose.dwpose.DWPoseONNX` on the registry's ONNX files (the paper's detector).
    """
    if name == "mediapipe":
        from metrics.pose.mediapipe import MediaPipeWholeBody

        return MediaPipeWholeBody()
    if name == "dwpose":
        from metrics.pose.dwpose import DWPoseONNX

        dwpose = DWPoseONNX()
        return lambda video: dwpose(video[None])[0]
    raise ValueError(f"`--pose` must be 'mediapipe' or 'dwpose', got {name!r}")


def _first(item: Any) -> Any:
    return item


def pair_loader(dataset: PairDataset, workers: int) -> DataLoader:
    """Items of ``dataset`` in order, decoded ahead by ``workers`` processes (0: in this process).

    With ``--pose mediapipe`` the workers are spawned, not forked: MediaPipe aborts in a child forked from a
    process that has run it before (e.g. a notebook or test session that used it).
    """
    spawn = workers > 0 and dataset.pose == "mediapipe"
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_first,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
        multiprocessing_context="spawn" if spawn else None,
    )
