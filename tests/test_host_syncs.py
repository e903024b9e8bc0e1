"""Host syncs and host->device copies of the frame pipeline's hot path, counted on a CPU.

On an accelerator, reading a tensor's value on the host (``.item()``, ``.tolist()``, ``bool(t)``, ``int(t)``,
``torch.equal``, ``.cpu()``, ``nonzero`` and boolean-mask indexing, whose output size depends on the data)
waits for every queued kernel, and building a table on the host then ``.to(device)`` is one small copy each
time. Neither shows on a CPU, where the tests run, so :class:`HostSyncCounter` patches those entry points
and counts the calls by the repository line that made them. ``torch.cuda.set_sync_debug_mode`` is the
ground truth on a GPU; this is its CPU stand-in (H2D counts are an upper bound: a ``.to(device)`` of a
tensor already on the device is counted too).

``python -m tests.test_host_syncs`` prints the counts of the scenario below by source line.

Example:
    >>> import torch
    >>> with HostSyncCounter() as counter:
    ...     _ = torch.ones(3).sum().item()
    >>> counter.syncs
    1
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import Tensor

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Tensor methods that read values on the host (a device->host sync on an accelerator).
_SYNC_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy", "nonzero")
#: torch functions that do the same.
_SYNC_FUNCTIONS = ("equal", "nonzero", "unique", "masked_select")


class HostSyncCounter:
    """Context manager counting host syncs (``syncs``) and host->device copies (``copies``) by call site.

    A call is attributed to the innermost stack frame inside the repository, as ``"path:line"``. Nested
    counted calls (a patched method calling another) count once.

    Example:
        >>> import torch
        >>> with HostSyncCounter() as c:
        ...     _ = bool(torch.zeros(2).any()), torch.arange(3).to("cpu")
        >>> c.syncs, c.copies
        (1, 1)
    """

    def __init__(self) -> None:
        self.sync_sites: collections.Counter[str] = collections.Counter()
        self.copy_sites: collections.Counter[str] = collections.Counter()
        self._saved: list[tuple[Any, str, Any]] = []
        self._local = threading.local()

    @property
    def syncs(self) -> int:
        return sum(self.sync_sites.values())

    @property
    def copies(self) -> int:
        return sum(self.copy_sites.values())

    def by_file(self, kind: str = "syncs") -> dict[str, int]:
        """Counts per source file (``kind``: ``"syncs"`` or ``"copies"``)."""
        sites = self.sync_sites if kind == "syncs" else self.copy_sites
        out: collections.Counter[str] = collections.Counter()
        for site, n in sites.items():
            out[site.rsplit(":", 1)[0]] += n
        return dict(out)

    def _site(self) -> str:
        frame = sys._getframe(2)
        while frame is not None:
            path = os.path.abspath(frame.f_code.co_filename)
            if path.startswith(_ROOT) and os.sep + ".venv" + os.sep not in path:
                return f"{os.path.relpath(path, _ROOT)}:{frame.f_lineno}"
            frame = frame.f_back
        return "<outside the repository>"

    def _wrap(self, original: Callable, counter: collections.Counter, when: Callable[..., bool]) -> Callable:
        local = self._local

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if getattr(local, "busy", False):
                return original(*args, **kwargs)
            local.busy = True
            try:
                if when(*args, **kwargs):
                    counter[self._site()] += 1
                return original(*args, **kwargs)
            finally:
                local.busy = False

        return wrapper

    def _patch(self, owner: Any, name: str, counter: collections.Counter, when: Callable[..., bool]) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))
        setattr(owner, name, self._wrap(original, counter, when))

    def __enter__(self) -> HostSyncCounter:
        always = lambda *a, **k: True  # noqa: E731
        for name in _SYNC_METHODS:
            self._patch(torch.Tensor, name, self.sync_sites, always)
        for name in _SYNC_FUNCTIONS:
            self._patch(torch, name, self.sync_sites, always)
        self._patch(torch.Tensor, "__getitem__", self.sync_sites, _bool_mask_index)
        self._patch(torch.Tensor, "__setitem__", self.sync_sites, _bool_mask_index)
        self._patch(torch.Tensor, "to", self.copy_sites, _to_names_device)
        self._patch(torch.Tensor, "cuda", self.copy_sites, always)
        for name in ("tensor", "as_tensor"):
            self._patch(torch, name, self.copy_sites, _host_data_to_device)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def report(self) -> str:
        """Plain-text table of the counts by site, largest first."""
        lines = [f"host syncs: {self.syncs}   host->device copies (upper bound): {self.copies}"]
        for title, sites in (("syncs", self.sync_sites), ("copies", self.copy_sites)):
            for site, n in sites.most_common():
                lines.append(f"  {title:<7}{n:>6}  {site}")
        return "\n".join(lines)


def _bool_mask_index(tensor: Tensor, index: Any, *rest: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in items)


def _to_names_device(tensor: Tensor, *args: Any, **kwargs: Any) -> bool:
    if "device" in kwargs and kwargs["device"] is not None:
        return True
    return any(isinstance(a, (torch.device, str, Tensor)) for a in args)


def _host_data_to_device(data: Any, *args: Any, **kwargs: Any) -> bool:
    return kwargs.get("device") is not None and not isinstance(data, Tensor)


# ------------------------------------------------------------------------------------------- scenario
@contextmanager
def torch_backends_everywhere() -> Iterator[None]:
    """Take the accelerator's code path on a CPU: ``backend="auto"`` resolves to the torch ports."""
    from metrics.functional import backend

    saved = backend.opencv_available
    backend.opencv_available = lambda: False
    try:
        yield
    finally:
        backend.opencv_available = saved


def face_hand_frame_path(
    num_videos: int = 4, num_frames: int = 16, size: int = 512, counter: HostSyncCounter | None = None
) -> HostSyncCounter:
    """Count one batch through the jwbdh-v1 frame pipeline's preprocessing for the face and hand regions.

    ``canonical_pair`` on float videos, keypoint boxes, region crops (torch path), then per region video the
    FID input (PIL-bilinear 299), the E-FID input (Canny edges, then PIL-bilinear 299) and the FVD input
    (INTER_AREA 224), as the metrics do on a GPU. Networks are left out: this is the path we own.
    """
    from benchmarks.data import avatar_videos
    from metrics.functional.edges import edge_maps
    from metrics.functional.resize import resize_opencv_area, resize_pil_bilinear
    from metrics.regions import boxes_from_keypoints, region_videos
    from metrics.video import canonical_pair

    ref, gen, kps = avatar_videos(num_videos, num_frames, size, size)
    gen_f, ref_f = gen.float() / 255.0, ref.float() / 255.0
    counter = counter or HostSyncCounter()
    with torch_backends_everywhere(), counter:
        g, r = canonical_pair(gen_f, ref_f)
        for region in ("face", "hand"):
            for videos in (g, r):
                boxes, valid = boxes_from_keypoints(kps, (size, size), region)
                for clip in region_videos(videos, boxes, valid):
                    if clip.shape[0] == 0:
                        continue
                    resize_pil_bilinear(clip, (299, 299))
                    resize_pil_bilinear(edge_maps(clip), (299, 299))
                    resize_opencv_area(clip, (224, 224))
    return counter


# ---------------------------------------------------------------------------------------------- tests
def test_counter_counts_each_kind_once():
    x = torch.arange(6.0)
    with HostSyncCounter() as c:
        x.sum().item()
        x.tolist()
        bool(x.any())
        int(x[0])
        float(x[1])
        torch.equal(x, x)
        x[x > 2]
        x.nonzero()
        x.to("cpu")
        torch.tensor([1, 2], device="cpu")
        x.to(torch.int32)  # a dtype change: no device named, not counted
        torch.tensor([1, 2])  # host tensor, not counted
    assert c.syncs == 8 and c.copies == 2
    assert all(site.startswith("tests/test_host_syncs.py") for site in c.sync_sites)
    assert torch.Tensor.item is not None and bool(torch.ones(1))  # patches undone


def test_batched_crop_taps_equal_scalar_taps():
    # The per-frame taps of the exact crops are computed on the device; they must be the scalar loop's.
    from metrics.functional.resize import _linear_int_taps_batched, _opencv_linear_int_taps

    lengths = torch.arange(1, 701)[:, None]
    for dst in (1, 2, 7, 112, 299):
        for rows in (False, True):
            got = _linear_int_taps_batched(lengths, dst, rows)
            ref = [_opencv_linear_int_taps(n, dst, rows) for n in range(1, 701)]
            for k, tensor in enumerate(got):
                expected = torch.stack([r[k] for r in ref])
                assert tensor.dtype == expected.dtype
                assert torch.equal(tensor, expected), (dst, rows, k)


def test_device_table_cache_gives_fresh_outputs_and_is_bounded():
    from metrics.functional import resize as rs

    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8, generator=gen)
    calls = [
        lambda: rs.resize_pil_bilinear(frames, (29, 61)),
        lambda: rs.resize_opencv_area(frames, (20, 30), backend="torch"),  # float32 area tables
        lambda: rs.resize_opencv_area(frames, (50, 70), backend="torch"),  # enlarging: linear taps
        lambda: rs.resize_opencv_bilinear(frames, (31, 17), backend="torch"),
        lambda: rs.resize_opencv_bilinear(frames.float() / 255, (31, 17), backend="torch"),
        lambda: rs.resize_tf1_bilinear(frames.float(), (11, 13)),
    ]
    saved = rs.DEVICE_TABLES
    try:
        rs.DEVICE_TABLES = rs.DeviceTableCache(max_entries=3)  # smaller than the tables of these calls
        first = [call() for call in calls]
        with HostSyncCounter() as counter:
            again = [call() for call in calls]  # a mix of hits and rebuilt (evicted) tables
        assert len(rs.DEVICE_TABLES) == 3
        rs.DEVICE_TABLES = rs.DeviceTableCache()
        fresh = [call() for call in calls]
        hits_before = rs.DEVICE_TABLES.hits
        cached = [call() for call in calls]
        assert rs.DEVICE_TABLES.hits - hits_before == len(rs.DEVICE_TABLES)  # every table reused
    finally:
        rs.DEVICE_TABLES = saved
    for a, b, c, d in zip(first, again, fresh, cached, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    assert counter.syncs == 0
    # The tables themselves: what the cache returns is what the host builders give.
    cache = rs.DeviceTableCache()
    got = cache.get(("pil", 37, 29), torch.device("cpu"), lambda: rs._pil_bilinear_coeffs(37, 29))
    assert torch.equal(got, rs._pil_bilinear_coeffs(37, 29))


def test_device_table_cache_evicts_least_recent_and_bounds_bytes():
    from metrics.functional.resize import DeviceTableCache

    cpu = torch.device("cpu")
    cache = DeviceTableCache(max_entries=2, max_bytes=1000)
    a = cache.get(("a",), cpu, lambda: torch.zeros(10))  # 40 bytes
    cache.get(("b",), cpu, lambda: torch.zeros(10))
    assert cache.get(("a",), cpu, lambda: torch.ones(10)) is a  # hit: "a" is now the most recent
    cache.get(("c",), cpu, lambda: torch.zeros(10))  # evicts "b", the least recently used
    assert len(cache) == 2 and cache.get(("a",), cpu, lambda: torch.ones(10)) is a
    assert torch.equal(cache.get(("b",), cpu, lambda: torch.ones(10)), torch.ones(10))  # rebuilt
    big = cache.get(("big",), cpu, lambda: torch.zeros(300))  # 1200 bytes > budget: returned, not kept
    assert big.shape == (300,) and len(cache) == 2 and cache.nbytes <= 1000
    cache.get(("d",), cpu, lambda: torch.zeros(245))  # 980 bytes: the others go to stay within budget
    assert cache.nbytes <= 1000 and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    with pytest.raises(ValueError, match="max_entries"):
        DeviceTableCache(max_entries=0)
    with pytest.raises(ValueError, match="max_bytes"):
        DeviceTableCache(max_bytes=True)


def test_cached_features_keep_batch_order_with_one_copy():
    from metrics.features import FeatureCache, cached_features

    def encode(v: Tensor) -> Tensor:  # a distinct row per video: its mean value and its index-free sum
        return torch.stack([v.float().mean(dim=(1, 2, 3, 4)), v.float().sum(dim=(1, 2, 3, 4))], 1)[:, None]

    gen = torch.Generator().manual_seed(1)
    videos = torch.randint(0, 256, (5, 2, 3, 4, 4), dtype=torch.uint8, generator=gen)
    ids = [f"v{i}" for i in range(5)]
    cache = FeatureCache()
    cached_features(cache, "ns", [ids[1], ids[3]], videos[[1, 3]], encode)  # two of five known
    mixed = cached_features(cache, "ns", ids, videos, encode)  # hits at 1, 3; misses at 0, 2, 4
    assert torch.equal(mixed, encode(videos))
    with HostSyncCounter() as counter:
        again = cached_features(cache, "ns", ids[::-1], videos.flip(0), encode)  # every row a hit
    assert torch.equal(again, encode(videos.flip(0)))
    assert counter.copies <= 1 and counter.syncs == 0  # one copy of the stacked rows, not one per video


def test_frame_path_syncs_stay_few():
    # The accelerator's code path, counted on a CPU: canonical_pair, face and hand crops, FID / E-FID / FVD
    # resizes and Canny. The second pass finds every resize table cached.
    first = face_hand_frame_path(num_videos=2, num_frames=6, size=256)
    second = face_hand_frame_path(num_videos=2, num_frames=6, size=256)
    for counter in (first, second):
        syncs = counter.by_file("syncs")
        assert syncs.get("metrics/functional/resize.py", 0) == 0, counter.report()
        assert syncs.get("metrics/video.py", 0) == 1, counter.report()  # one range scan for the pair
        # Canny: region clips converge in well under 120 dilation steps: at most 4 checks per edge_maps call
        edge_calls = 8  # 2 videos x 2 sides x 2 regions
        assert syncs.get("metrics/functional/edges.py", 0) <= 4 * edge_calls, counter.report()
    assert second.by_file("copies").get("metrics/functional/resize.py", 0) == 0, second.report()


def frame_pipeline_update(
    num_videos: int = 4, num_frames: int = 16, size: int = 256, cached_references: bool = False
) -> HostSyncCounter:
    """Count one :class:`~metrics.suite.RegionalSuite` update of the jwbdh-v1 frame pipeline (FID, E-FID,
    FVD, SSIM, PSNR, CSIM; whole body, face, hand) with the smoke preset's small networks, after a warm-up
    update (networks built, tables cached): what ``python -m benchmarks.profile --device cuda`` times.

    With ``cached_references`` the suite has a :class:`~metrics.features.FeatureCache` and the batch names
    its videos: the counted update is a second evaluation, reference features served from the cache."""
    import warnings

    from benchmarks.profile import _batches, _metric_config, _suite
    from metrics.features import FeatureCache

    cfg, metrics = _metric_config(
        "smoke", "preset", ["FID", "E-FID", "FVD", "SSIM", "PSNR", "CSIM"], "fp32", False
    )
    device = torch.device("cpu")
    counter = HostSyncCounter()
    with torch_backends_everywhere(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite = _suite(cfg, metrics, False, device, FeatureCache() if cached_references else None)
        (batch,) = _batches(num_videos, num_frames, (size, size), num_videos, device)
        if not cached_references:
            batch = dataclasses.replace(batch, video_ids=None)
        suite.update(batch)
        with counter:
            suite.update(batch)
    return counter


if __name__ == "__main__":
    if "--suite" in sys.argv:
        print(frame_pipeline_update(cached_references="--cached" in sys.argv).report())
    else:
        print("first pass (resize tables not yet on the device):")
        print(face_hand_frame_path().report())
        print("second pass (the same sizes again):")
        print(face_hand_frame_path().report())
