"""Write the keypoint file that ``jwbdh-eval --keypoints`` reads.

Two formats, chosen by the suffix:

- ``.pt`` / ``.pth``: ``torch.save`` of ``{"reference": {name: [T, 133, 3]}, "generated": {...}}`` (float32
  CPU tensors; either side may be absent), loadable with ``torch.load(..., weights_only=True)``.
- ``.npz``: one flat ``{name: [T, 133, 3]}`` array archive, which ``jwbdh-eval`` reads as REFERENCE keypoints
  (used for both videos of a pair). An ``.npz`` file cannot hold generated-side keypoints; use ``.pt``.

``name`` is the video's file stem, as ``jwbdh-eval`` pairs videos by stem. The file is written to a temporary
name in the same folder and renamed, so an interrupted run never leaves a truncated file behind.

Example:
    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "kp.pt")
    >>> save_keypoints(path, {"reference": {"clip": torch.zeros(4, 133, 3)}})
    >>> torch.load(path, weights_only=True)["reference"]["clip"].shape
    torch.Size([4, 133, 3])
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["KEYPOINT_SIDES", "save_keypoints"]

KEYPOINT_SIDES = ("reference", "generated")
_TORCH_SUFFIXES = (".pt", ".pth")


def _check_array(value: Any, where: str) -> Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise ValueError(f"{where} must be real numbers, got dtype {value.dtype}")
        value = torch.from_numpy(np.asarray(value, dtype=np.float32))
    if not isinstance(value, Tensor):
        raise ValueError(f"{where} must be a tensor or array [T, 133, 3], got {type(value).__name__}")
    if value.ndim != 3 or value.shape[1:] != (133, 3):
        raise ValueError(f"{where} must have shape [T, 133, 3] (x, y, score), got {tuple(value.shape)}")
    if value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"{where} must be real numbers, got dtype {value.dtype}")
    out = value.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{where} has NaN or infinite values")
    return out


def _check_side(side: str, mapping: Any) -> dict[str, Tensor]:
    if not isinstance(mapping, Mapping):
        raise ValueError(
            f'`keypoints["{side}"]` must be a mapping video name -> [T, 133, 3], got {type(mapping).__name__}'
        )
    out: dict[str, Tensor] = {}
    for name, value in mapping.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f'`keypoints["{side}"]` keys must be non-empty video names (str), got {name!r}')
        out[name] = _check_array(value, f'`keypoints["{side}"][{name!r}]`')
    return out


def save_keypoints(path: str | os.PathLike, keypoints: Mapping[str, Mapping[str, Any]]) -> None:
    """Save per-video COCO-WholeBody keypoints in the format ``jwbdh-eval --keypoints`` reads.

    Args:
        path: destination ending in ``.pt``, ``.pth`` or ``.npz`` (see the module docstring). Its folder
            must exist; an existing file is replaced.
        keypoints: ``{"reference": {name: kp}, "generated": {name: kp}}`` with ``kp`` a float tensor or
            array ``[T, 133, 3]`` of ``(x, y, score)`` in pixels; a side may be omitted. ``.npz`` accepts only
            ``"reference"``.

    Raises:
        ValueError: unknown suffix or side, a missing folder, a non-[T, 133, 3] or non-finite array, a bad
            name, generated keypoints for ``.npz``, or (``.npz``) video names that ``jwbdh-eval`` would
            mistake for side names.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "kp.npz")
        >>> save_keypoints(path, {"reference": {"clip": np.zeros((2, 133, 3))}})
        >>> sorted(np.load(path).files)
        ['clip']
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (*_TORCH_SUFFIXES, ".npz"):
        raise ValueError(f"`path` must end in .pt, .pth or .npz, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"`path`'s folder {str(path.parent)!r} does not exist")
    if not isinstance(keypoints, Mapping):
        raise ValueError(
            f'`keypoints` must be a mapping {{"reference": ..., "generated": ...}}, '
            f"got {type(keypoints).__name__}"
        )
    unknown = [k for k in keypoints if k not in KEYPOINT_SIDES]
    if unknown:
        raise ValueError(f"`keypoints` keys must be among {KEYPOINT_SIDES}, got {unknown}")
    sides = {side: _check_side(side, keypoints[side]) for side in KEYPOINT_SIDES if side in keypoints}
    if suffix == ".npz":
        if sides.get("generated"):
            raise ValueError(
                "an .npz keypoint file holds reference keypoints only (jwbdh-eval reads a flat name -> array "
                "archive as reference); save generated keypoints to a .pt file"
            )
        reference = sides.get("reference", {})
        if reference and set(reference) <= set(KEYPOINT_SIDES):
            raise ValueError(
                f"video names {sorted(reference)} would be read back as side names from an .npz file; "
                "save to a .pt file"
            )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if suffix == ".npz":
                # np.savez's layout (one NAME.npy per array, stored), written by hand so that any video name
                # works, including "file" or "allow_pickle", which np.savez's keywords would swallow.
                with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                    for name, array in sides.get("reference", {}).items():
                        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                            np.lib.format.write_array(member, array.numpy(), allow_pickle=False)
            else:
                torch.save(sides, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
