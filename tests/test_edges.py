"""Parity tests of ``metrics.functional.edges`` against OpenCV (an independent implementation)."""

from __future__ import annotations

import doctest
import sys

import numpy as np
import pytest
import torch

from metrics.functional import edges as edges_module
from metrics.functional.edges import canny, canny_opencv, edge_maps, rgb_to_gray_opencv

cv2 = pytest.importorskip("cv2")

MIN_IDENTICAL_FRACTION = 0.999


# --------------------------------------------------------------------------------------------- helpers
def _to_nchw(rgb_hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb_hwc)).permute(2, 0, 1).unsqueeze(0).contiguous()


def _cv2_gray_from_rgb(rgb_hwc: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb_hwc[..., ::-1]), cv2.COLOR_BGR2GRAY)


def _torch_canny_np(gray: np.ndarray, low: float = 100, high: float = 200) -> np.ndarray:
    return canny(torch.from_numpy(gray)[None, None], low, high)[0, 0].numpy()


def _identical_fraction(gray: np.ndarray, low: float = 100, high: float = 200) -> float:
    ref = cv2.Canny(gray, low, high)
    out = _torch_canny_np(gray, low, high)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    return float((out == ref).mean())


def _procedural_rgb(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth gradient + filled circles/rectangles + lines + Gaussian noise, then blurred."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            255 * xx / max(w - 1, 1),
            255 * yy / max(h - 1, 1),
            127 + 100 * np.sin(xx / 9.0 + yy / 13.0),
        ],
        axis=-1,
    )
    img = np.ascontiguousarray(base.astype(np.uint8))
    for _ in range(4):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        radius = int(rng.integers(3, max(4, min(h, w) // 3)))
        cv2.circle(img, center, radius, tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    for _ in range(3):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.rectangle(img, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    for _ in range(4):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        thickness = int(rng.integers(1, 4))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), thickness)
    noisy = img.astype(np.float32) + rng.normal(0.0, 12.0, img.shape).astype(np.float32)
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(noisy, (5, 5), 1.2)


def _skimage_grays() -> dict[str, np.ndarray]:
    data = pytest.importorskip("skimage.data")
    images = {}
    for name in ("camera", "astronaut", "coffee"):
        try:
            img = getattr(data, name)()
        except Exception:  # pragma: no cover - bundled images missing / not loadable offline
            continue
        if img.ndim == 3:
            img = _cv2_gray_from_rgb(img[..., :3])
        images[name] = np.ascontiguousarray(img.astype(np.uint8))
    if not images:  # pragma: no cover
        pytest.skip("no scikit-image sample image could be loaded")
    return images


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_torch():
    """Run torch single-threaded here: the many small CPU ops of the hysteresis loop gain nothing from
    intra-op threads, and on a loaded 2-core machine OpenMP spin-waits (also fighting OpenCV's own
    thread pool) made this module 5-10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def single_threaded_cv2():
    """cv::Canny only takes its IPP code path when OpenCV runs single-threaded: test that path too."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


# -------------------------------------------------------------------------------------- gray conversion
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (31, 47), (64, 64), (7, 129)])
def test_gray_bit_exact_random(shape):
    rng = np.random.default_rng(sum(shape))
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = rgb_to_gray_opencv(_to_nchw(rgb))
    assert out.shape == (1, 1, *shape) and out.dtype == torch.uint8
    np.testing.assert_array_equal(out[0, 0].numpy(), _cv2_gray_from_rgb(rgb))


def test_gray_bit_exact_all_rgb_triplets():
    # Every one of the 2**24 RGB values, laid out as a 4096 x 4096 image.
    v = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8)
    rgb = rgb.reshape(4096, 4096, 3)
    out = rgb_to_gray_opencv(_to_nchw(rgb))[0, 0].numpy()
    np.testing.assert_array_equal(out, _cv2_gray_from_rgb(rgb))


def test_gray_batched():
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(rng.integers(0, 256, (5, 3, 9, 11), dtype=np.uint8))
    out = rgb_to_gray_opencv(frames)
    assert out.shape == (5, 1, 9, 11)
    for i in range(5):
        ref = _cv2_gray_from_rgb(frames[i].permute(1, 2, 0).numpy())
        np.testing.assert_array_equal(out[i, 0].numpy(), ref)


# ----------------------------------------------------------------------------------------- canny parity
def test_canny_natural_images():
    for name, gray in _skimage_grays().items():
        for low, high in [(100, 200), (50, 150)]:
            frac = _identical_fraction(gray, low, high)
            print(f"skimage {name} {gray.shape} thr=({low},{high}): identical fraction {frac:.6f}")
            assert frac >= MIN_IDENTICAL_FRACTION, name


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thresholds", [(100, 200), (30, 90), (100.7, 200.3)])
def test_canny_procedural_frames_exact(seed, thresholds):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(40, 130)), int(rng.integers(40, 170))
    gray = _cv2_gray_from_rgb(_procedural_rgb(rng, h, w))
    frac = _identical_fraction(gray, *thresholds)
    print(f"procedural seed={seed} {gray.shape} thr={thresholds}: identical fraction {frac:.6f}")
    assert frac >= MIN_IDENTICAL_FRACTION
    np.testing.assert_array_equal(_torch_canny_np(gray, *thresholds), cv2.Canny(gray, *thresholds))


@pytest.mark.parametrize("seed", range(4))
def test_canny_random_noise_exact(seed):
    rng = np.random.default_rng(100 + seed)
    gray = rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90))), dtype=np.uint8)
    for low, high in [(100, 200), (300, 600), (0, 50)]:
        frac = _identical_fraction(gray, low, high)
        print(f"noise seed={seed} {gray.shape} thr=({low},{high}): identical fraction {frac:.6f}")
        assert frac >= MIN_IDENTICAL_FRACTION
        np.testing.assert_array_equal(_torch_canny_np(gray, low, high), cv2.Canny(gray, low, high))


@pytest.mark.parametrize("value", [0, 1, 128, 255])
def test_canny_constant_images(value):
    gray = np.full((17, 23), value, dtype=np.uint8)
    out = _torch_canny_np(gray)
    np.testing.assert_array_equal(out, cv2.Canny(gray, 100, 200))
    assert not out.any()


@pytest.mark.parametrize("shape", [(31, 47), (7, 5), (3, 3), (2, 2), (1, 1), (1, 9), (9, 1), (2, 17)])
def test_canny_odd_sizes_exact(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    cases = {
        "noise": rng.integers(0, 256, shape, dtype=np.uint8),
        "binary": (rng.integers(0, 2, shape) * 255).astype(np.uint8),
        "procedural": _cv2_gray_from_rgb(_procedural_rgb(rng, *shape)),
    }
    for kind, gray in cases.items():
        frac = _identical_fraction(gray)
        print(f"odd size {shape} {kind}: identical fraction {frac:.6f}")
        np.testing.assert_array_equal(_torch_canny_np(gray), cv2.Canny(gray, 100, 200), err_msg=kind)


def test_canny_checkerboard_diagonal_ties():
    # A 2x2 checkerboard puts equal magnitudes along the diagonals: OpenCV's diagonal NMS uses two strict
    # comparisons, so a diagonal tie suppresses both pixels (unlike the axis-aligned `>` / `>=` sectors).
    for pattern in (np.array([[0, 255], [255, 0]]), np.kron(np.indices((4, 4)).sum(0) % 2, np.ones((3, 3)))):
        gray = (pattern * 255 if pattern.max() == 1 else pattern).astype(np.uint8)
        np.testing.assert_array_equal(_torch_canny_np(gray, 10, 20), cv2.Canny(gray, 10, 20))


# 5x5 images (found by a random search) holding a pixel whose gradient ratio |dy| / |dx| lies within
# ~1e-5 of tan(22.5 deg) or tan(67.5 deg): the sector, hence the output, flips if TG22 is off by one
# (13572 or 13574 instead of 13573) or if the 67.5-degree bound is perturbed.
_SECTOR_BOUNDARY_IMAGES = [
    [
        [238, 80, 199, 153, 67],
        [156, 147, 93, 3, 44],
        [217, 42, 236, 18, 211],
        [38, 151, 66, 121, 22],
        [191, 197, 239, 62, 123],
    ],
    [
        [69, 0, 102, 155, 185],
        [28, 76, 179, 244, 46],
        [4, 143, 199, 14, 233],
        [24, 32, 108, 39, 67],
        [142, 159, 90, 166, 229],
    ],
    [
        [8, 87, 85, 138, 123],
        [220, 143, 55, 76, 30],
        [2, 250, 107, 209, 79],
        [65, 136, 131, 43, 140],
        [246, 95, 102, 249, 178],
    ],
]


@pytest.mark.parametrize("index", range(len(_SECTOR_BOUNDARY_IMAGES)))
def test_canny_fixed_point_sector_boundaries(index):
    gray = np.array(_SECTOR_BOUNDARY_IMAGES[index], dtype=np.uint8)
    np.testing.assert_array_equal(_torch_canny_np(gray, 10, 20), cv2.Canny(gray, 10, 20))


def test_canny_long_hysteresis_chain():
    # A step edge whose contrast ramps from weak to strong along a 400-pixel zig-zag: the whole weak part
    # is reachable only through a long 8-connected chain from the strong end (many dilation rounds).
    h, w = 60, 400
    cols = np.arange(w)
    boundary = 30 + np.round(6 * np.sin(cols / 15.0)).astype(int)
    contrast = np.linspace(20, 80, w)
    gray = np.zeros((h, w), dtype=np.float64)
    for c in range(w):
        gray[boundary[c] :, c] = contrast[c]
    gray = gray.astype(np.uint8)
    ref = cv2.Canny(gray, 60, 250)
    assert ref.any()
    np.testing.assert_array_equal(_torch_canny_np(gray, 60, 250), ref)


def _grow_by_flood_fill(strong: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Independent reference for hysteresis: breadth-first search over 8-connected candidate pixels."""
    out = strong & candidate
    queue = list(zip(*np.nonzero(out), strict=True))
    h, w = strong.shape
    while queue:
        y, x = queue.pop()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and candidate[yy, xx] and not out[yy, xx]:
                    out[yy, xx] = True
                    queue.append((yy, xx))
    return out


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("length", [1, 7, 8, 9, 10, 24, 25, 26, 57, 58, 300])
def test_hysteresis_chunks_reach_the_fixed_point_with_few_checks(length, pooled, monkeypatch):
    # A diagonal-and-straight chain of `length` candidate pixels grown from a strong pixel at one end needs
    # `length - 1` dilation steps; the chunk boundaries (8, 24, 56, 120, ...) must not cut it short, and the
    # convergence checks (host syncs) grow like log2(length), not length / 8.
    h, w = 12, 320
    candidate = np.zeros((h, w), dtype=bool)
    ys = 4 + np.abs((np.arange(length) // 3) % 6 - 3)  # a zig-zag (rows 4..7): some steps are diagonal
    candidate[ys, np.arange(length)] = True
    candidate[9, 5:200:2] = True  # dotted candidates never connected to a strong pixel: must stay out
    strong = np.zeros_like(candidate)
    strong[ys[0], 0] = True
    checks = []
    real_equal = torch.equal
    monkeypatch.setattr(torch, "equal", lambda a, b: checks.append(1) or real_equal(a, b))
    got = edges_module._hysteresis(
        torch.from_numpy(strong)[None], torch.from_numpy(candidate)[None], pooled=pooled
    )  # pooled=True: the accelerator's max-pool steps, run here on the CPU
    np.testing.assert_array_equal(got[0].numpy(), _grow_by_flood_fill(strong, candidate))
    assert int(got.sum()) == length
    steps_to_converge = length  # length - 1 growing steps, then one that changes nothing
    cumulative, expected = 0, 0
    chunk = 8
    while cumulative < steps_to_converge:
        cumulative += chunk
        expected += 1
        chunk = min(2 * chunk, 256)
    assert len(checks) == expected


def test_hysteresis_pooled_steps_match_bitwise_steps_on_frames():
    # The accelerator's step (float16 max-pool times the mask) against the CPU's bitwise step, on rendered
    # frames whose hysteresis needs many steps and many separate components.
    rng = np.random.default_rng(3)
    gray = np.stack([_cv2_gray_from_rgb(_procedural_rgb(rng, 96, 128)) for _ in range(4)])
    img = torch.from_numpy(gray).to(torch.int32)
    dx, dy = edges_module._sobel_replicate(img)
    mag = dx.abs() + dy.abs()
    candidate = edges_module._non_max_suppression(dx, dy, mag) & (mag > 30)
    strong = candidate & (mag > 200)
    bitwise = edges_module._hysteresis(strong, candidate, pooled=False)
    pooled = edges_module._hysteresis(strong, candidate, pooled=True)
    assert bitwise.dtype == pooled.dtype == torch.bool and bitwise.shape == strong.shape
    assert torch.equal(bitwise, pooled) and bitwise.sum() > strong.sum()
    for i in range(4):
        np.testing.assert_array_equal(
            bitwise[i].numpy(), _grow_by_flood_fill(strong[i].numpy(), candidate[i].numpy())
        )


def test_canny_threshold_semantics_exact():
    rng = np.random.default_rng(7)
    gray = _cv2_gray_from_rgb(_procedural_rgb(rng, 64, 80))
    for low, high in [(0, 0), (50, 50), (99.99, 100.01), (1e9, 1e9), (-5, 10)]:
        np.testing.assert_array_equal(_torch_canny_np(gray, low, high), cv2.Canny(gray, low, high))


def test_canny_ipp_path_single_thread(single_threaded_cv2):
    rng = np.random.default_rng(11)
    gray = _cv2_gray_from_rgb(_procedural_rgb(rng, 72, 96))
    frac = _identical_fraction(gray)
    print(f"single-threaded cv2 (IPP path): identical fraction {frac:.6f}")
    np.testing.assert_array_equal(_torch_canny_np(gray), cv2.Canny(gray, 100, 200))
    for name, natural in _skimage_grays().items():
        frac = _identical_fraction(natural)
        print(f"single-threaded cv2 skimage {name}: identical fraction {frac:.6f}")
        assert frac >= MIN_IDENTICAL_FRACTION


def test_canny_batch_matches_per_frame():
    rng = np.random.default_rng(21)
    grays = [_cv2_gray_from_rgb(_procedural_rgb(rng, 48, 64)) for _ in range(5)]
    grays.append(np.full((48, 64), 77, dtype=np.uint8))
    grays.append(rng.integers(0, 256, (48, 64), dtype=np.uint8))
    batch = torch.from_numpy(np.stack(grays))[:, None]
    out = canny(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= {0, 255}
    for i, gray in enumerate(grays):
        np.testing.assert_array_equal(out[i, 0].numpy(), cv2.Canny(gray, 100, 200))
    torch.testing.assert_close(canny_opencv(batch), out, rtol=0, atol=0)


def test_canny_empty_batch():
    out = canny(torch.zeros(0, 1, 8, 8, dtype=torch.uint8))
    assert out.shape == (0, 1, 8, 8) and out.dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_canny_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    frames = torch.from_numpy(np.stack([_procedural_rgb(rng, 64, 96) for _ in range(3)])).permute(0, 3, 1, 2)
    cpu = edge_maps(frames.contiguous(), backend="torch")
    gpu = edge_maps(frames.contiguous().cuda(), backend="torch")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)


# -------------------------------------------------------------------------------------------- edge_maps
def test_edge_maps_shape_dtype_replication_and_pipeline():
    rng = np.random.default_rng(31)
    rgbs = [_procedural_rgb(rng, 50, 70) for _ in range(3)]
    frames = torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).contiguous()
    maps = edge_maps(frames, backend="torch")
    assert maps.shape == (3, 3, 50, 70) and maps.dtype == torch.uint8
    assert torch.equal(maps[:, 0], maps[:, 1]) and torch.equal(maps[:, 0], maps[:, 2])
    for i, rgb in enumerate(rgbs):
        # The E-FID script: frame -> gray -> cv2.Canny(gray, 100, 200) -> 3 channels.
        ref = cv2.Canny(_cv2_gray_from_rgb(rgb), 100, 200)
        np.testing.assert_array_equal(maps[i].permute(1, 2, 0).numpy(), np.repeat(ref[..., None], 3, -1))


def test_edge_maps_backends_agree():
    rng = np.random.default_rng(41)
    frames = torch.from_numpy(rng.integers(0, 256, (4, 3, 33, 45), dtype=np.uint8))
    for low, high in [(100, 200), (20, 60)]:
        a = edge_maps(frames, backend="torch", low_threshold=low, high_threshold=high)
        b = edge_maps(frames, backend="opencv", low_threshold=low, high_threshold=high)
        assert b.shape == a.shape and b.dtype == torch.uint8 and b.device == frames.device
        assert torch.equal(a, b)
        # the default ("auto") is OpenCV for CPU tensors; a permuted (non-contiguous) view works too
        assert torch.equal(edge_maps(frames, low_threshold=low, high_threshold=high), a)
        view = frames.permute(0, 1, 3, 2)
        assert torch.equal(edge_maps(view), edge_maps(view.contiguous(), backend="torch"))


# ---------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(1, 3, 4, 4, dtype=torch.float32),
        torch.zeros(1, 3, 4, 4, dtype=torch.int32),
        torch.zeros(3, 4, 4, dtype=torch.uint8),
        torch.zeros(1, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(1, 4, 4, 3, dtype=torch.uint8),
        np.zeros((1, 3, 4, 4), dtype=np.uint8),
    ],
)
def test_gray_rejects_bad_input(frames):
    with pytest.raises(ValueError, match="frames"):
        rgb_to_gray_opencv(frames)
    with pytest.raises(ValueError, match="frames"):
        edge_maps(frames)


@pytest.mark.parametrize("fn", [canny, canny_opencv])
@pytest.mark.parametrize(
    "gray",
    [
        torch.zeros(1, 1, 4, 4, dtype=torch.float32),
        torch.zeros(1, 1, 4, 4, dtype=torch.int16),
        torch.zeros(1, 4, 4, dtype=torch.uint8),
        torch.zeros(4, 4, dtype=torch.uint8),
        torch.zeros(1, 3, 4, 4, dtype=torch.uint8),
    ],
)
def test_canny_rejects_bad_input(fn, gray):
    with pytest.raises(ValueError, match="gray"):
        fn(gray)


@pytest.mark.parametrize("fn", [canny, canny_opencv])
def test_canny_rejects_bad_thresholds(fn):
    gray = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="low_threshold"):
        fn(gray, 200, 100)
    with pytest.raises(ValueError, match="low_threshold"):
        fn(gray, float("nan"), 100)
    with pytest.raises(ValueError, match="high_threshold"):
        fn(gray, 100, float("nan"))
    with pytest.raises(ValueError, match="high_threshold"):
        fn(gray, 100, "200")
    frames = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="low_threshold"):
        edge_maps(frames, low_threshold=150, high_threshold=50)


@pytest.mark.parametrize("backend", ["cv2", "cuda", "", "Torch", None])
def test_edge_maps_rejects_bad_backend(backend):
    with pytest.raises(ValueError, match="backend"):
        edge_maps(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), backend=backend)


def test_canny_opencv_missing_cv2_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "jwbdh-callbacks\[opencv\]"'):
        canny_opencv(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))


def test_docstring_examples():
    torch.manual_seed(0)
    result = doctest.testmod(edges_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
