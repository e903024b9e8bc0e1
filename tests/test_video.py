"""metrics.video: the input contract, conversions, the protocol resizes and PyAV file I/O.

The resizes are checked against the libraries whose pixels they claim to reproduce (Pillow, torchvision on
PIL images, OpenCV, torch-fidelity's TF1 bilinear), on random frames and on natural-looking frames.
Measured with Pillow 13.0.0 and OpenCV 5.0.0 (uint8 unless stated):

* ``resize_pil_bilinear``: identical to Pillow on every shape tried, including those where Pillow 13 runs
  its vertical pass first (tall frames, ``src_h - h > 2 * (src_w - w)``) and random shapes.
* ``resize_opencv_area``: identical on downscales (integer and non-integer factors, 1 to 4 channels),
  upscales, mixed shapes, 1-pixel sides and random shapes.
* ``resize_opencv_bilinear``: identical when the height shrinks; when it is enlarged, the first and last
  output rows can be one grey level too high (99.66-99.92% identical; see
  ``test_opencv_bilinear_exact_on_upscales``).
* float paths within 6e-5 of OpenCV on float32 [0, 1] images; ``resize_tf1_bilinear`` within 5e-5 of
  torch-fidelity at the 0..255 scale.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metrics.video import (
    FLOAT_RANGE_TOLERANCE,
    check_pair,
    check_video,
    first_frames,
    read_video,
    resize_opencv_area,
    resize_opencv_bilinear,
    resize_pil_bilinear,
    resize_tf1_bilinear,
    to_float01,
    to_uint8,
    write_video,
)


# ------------------------------------------------------------------------------------------------ content
def _random_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Uniform noise, uint8 ``[n, h, w, 3]`` (the hardest case for rounding)."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


@lru_cache(maxsize=4)
def _photos() -> tuple[torch.Tensor, ...]:
    """A few natural photographs as float ``[3, H, W]`` tensors (synthetic smooth scenes as a fallback)."""
    try:
        from skimage import data

        images = [data.astronaut(), data.coffee(), data.chelsea()]
    except Exception:  # pragma: no cover - skimage data missing
        y, x = np.mgrid[0:256, 0:320]
        images = [
            np.stack([127 + 100 * np.sin(x / (9 + c) + k) * np.cos(y / (13 + 2 * c)) for c in range(3)], -1)
            for k in range(3)
        ]
    return tuple(torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) for img in images)


@lru_cache(maxsize=32)
def _natural_frames_cached(n: int, h: int, w: int) -> np.ndarray:
    photos = _photos()
    out = []
    for i in range(n):
        img = photos[i % len(photos)][None]
        # a different crop per frame, like a slowly moving camera
        crop = img[..., 4 * i : img.shape[-2] - 4 * i, 6 * i : img.shape[-1] - 2 * i]
        res = F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        out.append(res[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return np.stack(out)


def _natural_frames(n: int, h: int, w: int) -> np.ndarray:
    """Photograph crops resampled to ``h x w`` with torch's bicubic filter, uint8 ``[n, h, w, 3]``."""
    return _natural_frames_cached(n, h, w).copy()


def _frames(kind: str, n: int, h: int, w: int) -> np.ndarray:
    return _random_frames(n, h, w) if kind == "random" else _natural_frames(n, h, w)


def _nchw(frames_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames_nhwc)).permute(0, 3, 1, 2)


def _nhwc(frames_nchw: torch.Tensor) -> np.ndarray:
    return frames_nchw.permute(0, 2, 3, 1).cpu().numpy()


def _diff(ours: torch.Tensor, ref: np.ndarray) -> tuple[int, float]:
    """(max |ours - ref|, fraction of identical values) of uint8 NCHW ``ours`` vs NHWC ``ref``."""
    a = _nhwc(ours).astype(np.int32)
    assert a.shape == ref.shape, (a.shape, ref.shape)
    d = np.abs(a - ref.astype(np.int32))
    return int(d.max()), float((d == 0).mean())


def _pil_resize(frames_nhwc: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = pytest.importorskip("PIL.Image")
    return np.stack(
        [np.asarray(image.fromarray(f).resize((size[1], size[0]), image.BILINEAR)) for f in frames_nhwc]
    )


def _cv2_resize(frames_nhwc: np.ndarray, size: tuple[int, int], flag: str = "INTER_LINEAR") -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    return np.stack(
        [cv2.resize(f, (size[1], size[0]), interpolation=getattr(cv2, flag)) for f in frames_nhwc]
    )


# --------------------------------------------------------------------------------------- check_video errors
def _video(*shape: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize("name", ["generated", "reference", "my_clip"])
def test_check_video_rejects_non_tensor(name):
    with pytest.raises(ValueError, match=rf"`{name}`.*torch\.Tensor.*got ndarray"):
        check_video(np.zeros((1, 2, 3, 4, 4), np.uint8), name)
    with pytest.raises(ValueError, match=rf"`{name}`.*got list"):
        check_video([[1, 2]], name)
    with pytest.raises(ValueError, match=rf"`{name}`.*got NoneType"):
        check_video(None, name)


def test_check_video_default_name():
    with pytest.raises(ValueError, match="`video`"):
        check_video(_video(2, 3, 4, 4))


@pytest.mark.parametrize("shape", [(3,), (3, 4, 4), (1, 1, 2, 3, 4, 4), ()])
def test_check_video_wrong_ndim(shape):
    with pytest.raises(ValueError, match="5 dimensions") as err:
        check_video(torch.zeros(shape, dtype=torch.uint8), "generated")
    msg = str(err.value)
    assert "`generated`" in msg and f"shape {tuple(shape)}" in msg and "torch.uint8" in msg
    assert "unsqueeze" not in msg  # the 4-D hint only for 4-D input


def test_check_video_4d_hint():
    with pytest.raises(ValueError, match=r"`reference`.*shape \(8, 3, 16, 16\).*unsqueeze\(0\)"):
        check_video(_video(8, 3, 16, 16), "reference")


def test_check_video_channels():
    with pytest.raises(ValueError, match=r"`generated` must be RGB.*shape \(1, 4, 1, 8, 8\)") as err:
        check_video(_video(1, 4, 1, 8, 8), "generated")
    assert "channels-last" not in str(err.value)
    with pytest.raises(ValueError, match=r"C=3.*shape \(2, 4, 4, 8, 8\)"):
        check_video(_video(2, 4, 4, 8, 8), "generated")
    # channels-last input gets the permute hint
    with pytest.raises(ValueError, match=r"`reference`.*shape \(2, 4, 8, 8, 3\).*channels-last.*permute"):
        check_video(_video(2, 4, 8, 8, 3), "reference")


@pytest.mark.parametrize("dtype", [torch.bool, torch.int8, torch.int16, torch.int32, torch.int64])
def test_check_video_rejects_non_uint8_integer_dtypes(dtype):
    with pytest.raises(ValueError, match=rf"`generated` must be uint8.*or float.*{dtype}"):
        check_video(_video(1, 2, 3, 4, 4, dtype=dtype), "generated")


@pytest.mark.parametrize(
    ("lo", "hi", "seen"),
    [
        (0.0, 255.0, "[0, 255]"),  # [0, 255] floats
        (-1.0, 1.0, "[-1, 1]"),  # model outputs in [-1, 1]
        (0.0, 1.0 + 2 * FLOAT_RANGE_TOLERANCE, "[0, 1.002]"),
        (-2 * FLOAT_RANGE_TOLERANCE, 1.0, "[-0.002, 1]"),
    ],
)
def test_check_video_float_range(lo, hi, seen):
    video = torch.full((1, 2, 3, 4, 4), 0.5)
    video[0, 0, 0, 0, 0] = lo
    video[0, 1, 2, 3, 3] = hi
    with pytest.raises(ValueError, match=r"float video with values in") as err:
        check_video(video, "generated")
    msg = str(err.value)
    assert "`generated`" in msg and seen in msg and "[0, 1]" in msg
    assert "(x + 1) / 2" in msg  # tells the user how to fix it


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_video_nan_inf(bad):
    video = torch.rand(2, 3, 3, 4, 4)
    video[1, 2, 1, 0, 3] = bad
    with pytest.raises(ValueError, match=r"`reference` contains NaN or Inf.*shape \(2, 3, 3, 4, 4\)"):
        check_video(video, "reference")


def test_check_video_nan_in_otherwise_valid_range():
    video = torch.full((1, 2, 3, 4, 4), 0.5, dtype=torch.float64)
    video[0, 0, 0, 0, 0] = 0.0
    video[0, 0, 0, 0, 1] = 1.0
    video[0, 1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="`generated` contains NaN or Inf"):
        check_video(video, "generated")


def test_check_video_min_frames():
    with pytest.raises(ValueError, match=r"`generated` needs at least 2 frame\(s\).*shape \(1, 1, 3, 4, 4\)"):
        check_video(_video(1, 1, 3, 4, 4), "generated", min_frames=2)
    with pytest.raises(ValueError, match=r"`clip` needs at least 1 frame.*shape \(3, 0, 3, 4, 4\)"):
        check_video(_video(3, 0, 3, 4, 4), "clip")
    assert check_video(_video(1, 2, 3, 4, 4), "generated", min_frames=2).shape[1] == 2


@pytest.mark.parametrize("shape", [(1, 2, 3, 0, 4), (1, 2, 3, 4, 0), (2, 2, 3, 0, 0)])
def test_check_video_empty_frame_size(shape):
    with pytest.raises(ValueError, match=rf"`generated` has an empty frame size.*{shape[3]}, {shape[4]}\)"):
        check_video(torch.zeros(shape), "generated")


def test_check_video_accepts():
    u8 = torch.randint(0, 256, (2, 3, 3, 5, 7), dtype=torch.uint8)
    assert check_video(u8, "generated") is u8  # returned unchanged, not copied
    edge = torch.rand(1, 2, 3, 4, 4, dtype=torch.float64)
    edge[0, 0, 0, 0, 0] = 1 + 5e-4  # within the tolerance
    edge[0, 0, 0, 0, 1] = -5e-4
    assert check_video(edge, "generated") is edge
    assert torch.equal(edge[0, 0, 0, 0, :2], torch.tensor([1 + 5e-4, -5e-4], dtype=torch.float64))  # no clamp
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        check_video(torch.rand(1, 2, 3, 4, 4).to(dtype), "generated")
    check_video(torch.rand(0, 4, 3, 8, 8), "generated")  # B = 0 is an empty batch, not an error
    check_video(_video(0, 4, 3, 8, 8), "generated")
    check_video(torch.full((1, 1, 3, 2, 2), float("nan"))[:0], "generated")  # no values to check


# ---------------------------------------------------------------------------------------- check_pair errors
def test_check_pair_propagates_names():
    good = _video(2, 3, 3, 8, 8)
    with pytest.raises(ValueError, match=r"`generated`.*unsqueeze"):
        check_pair(_video(3, 3, 8, 8), good)
    with pytest.raises(ValueError, match=r"`reference` must be RGB"):
        check_pair(good, _video(2, 3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"`reference` is a float video.*\[0, 255\]"):
        check_pair(good, torch.full((2, 3, 3, 8, 8), 255.0))
    with pytest.raises(ValueError, match=r"`generated` needs at least 4 frame"):
        check_pair(good, _video(2, 5, 3, 8, 8), min_frames=4)
    with pytest.raises(ValueError, match=r"`reference` needs at least 3 frame"):
        check_pair(good, _video(2, 2, 3, 8, 8), min_frames=3)


def test_check_pair_batch_mismatch():
    with pytest.raises(
        ValueError, match=r"same number of videos.*got 2 and 3.*\(2, 4, 3, 8, 8\).*\(3, 4, 3, 8, 8\)"
    ):
        check_pair(_video(2, 4, 3, 8, 8), _video(3, 4, 3, 8, 8))
    with pytest.raises(ValueError, match="got 0 and 1"):
        check_pair(_video(0, 4, 3, 8, 8), _video(1, 4, 3, 8, 8))


def test_check_pair_frame_size_and_length():
    gen, ref = _video(2, 4, 3, 8, 8), _video(2, 6, 3, 16, 12)
    g, r = check_pair(gen, ref)  # sizes and lengths may differ by default
    assert g is gen and r is ref
    with pytest.raises(ValueError, match=r"same frame size, got \(8, 8\) and \(16, 12\)"):
        check_pair(gen, ref, same_frame_size=True)
    with pytest.raises(ValueError, match="same number of frames, got 4 and 6"):
        check_pair(gen, ref, same_length=True)
    check_pair(gen, _video(2, 4, 3, 8, 8), same_frame_size=True, same_length=True)
    check_pair(gen, _video(2, 9, 3, 8, 8), same_frame_size=True)
    check_pair(gen, _video(2, 4, 3, 5, 5), same_length=True)


def test_check_pair_device_mismatch():
    # uint8 videos skip the value scan, so a meta tensor stands in for "another device" on CPU-only hosts
    with pytest.raises(ValueError, match=r"`generated` is on cpu but `reference` is on meta"):
        check_pair(_video(1, 2, 3, 4, 4), torch.empty((1, 2, 3, 4, 4), dtype=torch.uint8, device="meta"))


def test_check_pair_mixed_dtypes_and_empty_batch():
    check_pair(torch.rand(2, 3, 3, 8, 8), torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8))
    check_pair(torch.rand(0, 3, 3, 8, 8), _video(0, 5, 3, 4, 4))


# -------------------------------------------------------------------------------------------- conversions
def test_to_uint8_rounds_half_to_even():
    halves = torch.tensor([k + 0.5 for k in range(255)], dtype=torch.float32) / 255.0
    scaled = halves * 255.0
    exact = scaled == torch.tensor([k + 0.5 for k in range(255)])  # values landing exactly on .5 in float32
    assert exact.sum() > 100 and bool(exact[0]) and bool(exact[2])  # 0.5/255 and 2.5/255 among them
    expected = torch.tensor([float(np.round(k + 0.5)) for k in range(255)])  # numpy: half to even
    got = to_uint8(halves).float()
    assert torch.equal(got[exact], expected[exact])
    assert to_uint8(torch.tensor([0.5 / 255, 1.5 / 255, 2.5 / 255, 3.5 / 255])).tolist() == [0, 2, 2, 4]
    # elsewhere it matches numpy's round of the float32 product
    x = torch.rand(10_000)
    ref = np.clip(np.round(x.numpy() * np.float32(255.0)), 0, 255).astype(np.uint8)
    assert np.array_equal(to_uint8(x).numpy(), ref)


def test_to_uint8_edges_and_dtypes():
    x = torch.tensor([0.0, 1.0, -5e-4, 1 + 5e-4, 0.25, 254.49 / 255])
    assert to_uint8(x).tolist() == [0, 255, 0, 255, 64, 254]  # tolerated overshoot saturates
    assert to_uint8(x.double()).dtype == torch.uint8
    assert to_uint8(x.half()).tolist() == to_uint8(x.half().float()).tolist()
    u8 = torch.randint(0, 256, (2, 3, 3, 4, 4), dtype=torch.uint8)
    assert to_uint8(u8) is u8
    assert to_uint8(torch.rand(0, 3, 3, 4, 4)).shape == (0, 3, 3, 4, 4)


def test_to_float01():
    u8 = torch.arange(256, dtype=torch.uint8)
    f = to_float01(u8)
    assert f.dtype == torch.float32
    assert torch.allclose(f, torch.arange(256) / 255.0, rtol=0, atol=0)
    assert f[0] == 0 and f[-1] == 1
    assert to_float01(u8, torch.float64).dtype == torch.float64
    assert torch.equal(to_float01(u8, torch.float64), torch.arange(256, dtype=torch.float64) / 255.0)
    x = torch.rand(2, 3)
    assert torch.equal(to_float01(x), x)
    assert to_float01(x, torch.float64).dtype == torch.float64
    assert torch.equal(to_uint8(to_float01(u8)), u8)  # lossless round trip


def test_first_frames():
    video = torch.arange(1, 6, dtype=torch.float32).view(1, 5, 1, 1, 1).expand(2, 5, 3, 2, 2).contiguous()
    out = first_frames(video, 3)
    assert out.shape == (2, 3, 3, 2, 2) and out[:, :, 0, 0, 0].tolist() == [[1, 2, 3]] * 2
    assert first_frames(video, 3, pad_black=True).shape == (2, 3, 3, 2, 2)  # long enough: no padding
    assert torch.equal(first_frames(video, 5), video)
    short = first_frames(video, 8)  # a short video keeps the frames it has
    assert short.shape == (2, 5, 3, 2, 2)
    padded = first_frames(video, 8, pad_black=True)
    assert padded.shape == (2, 8, 3, 2, 2) and padded.dtype == video.dtype
    assert torch.equal(padded[:, :5], video) and not padded[:, 5:].any()
    u8 = torch.full((1, 2, 3, 4, 4), 200, dtype=torch.uint8)
    padded = first_frames(u8, 16, pad_black=True)
    assert padded.dtype == torch.uint8 and padded.shape[1] == 16 and padded[0, 2:].sum() == 0
    assert first_frames(torch.zeros(0, 2, 3, 4, 4), 4, pad_black=True).shape == (0, 4, 3, 4, 4)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="`num_frames` must be >= 1"):
            first_frames(video, bad)


# ------------------------------------------------------------------------------------------ PIL bilinear
PIL_EXACT_SHAPES = [
    ((64, 80), (299, 299)),
    ((37, 53), (299, 299)),
    ((16, 16), (31, 57)),
    ((720, 1280), (299, 299)),
    # Pillow 13 runs the vertical pass first on these: h < src_h and src_h - h > 2 * (src_w - w)
    ((300, 100), (224, 224)),  # tall frames
    ((1280, 720), (299, 299)),  # portrait video
    ((256, 256), (224, 240)),
    ((50, 60), (60, 20)),  # width shrinks more than the height: horizontal first
    ((300, 400), (224, 224)),
    ((480, 832), (224, 388)),  # short side to 224
    ((720, 1280), (224, 398)),
    ((1, 1), (5, 7)),  # 1-pixel sides
    ((1, 50), (3, 7)),
    ((50, 1), (7, 3)),
    ((37, 53), (1, 1)),
]


def _n_frames(src: tuple[int, int]) -> int:
    return 1 if src[0] * src[1] > 200_000 else 2


@pytest.mark.parametrize("kind", ["random", "natural"])
@pytest.mark.parametrize(("src", "dst"), PIL_EXACT_SHAPES)
def test_pil_bilinear_exact(src, dst, kind):
    frames = _frames(kind, _n_frames(src), *src)
    ours = resize_pil_bilinear(_nchw(frames), dst)
    assert ours.dtype == torch.uint8 and ours.shape == (len(frames), 3, *dst)
    assert _diff(ours, _pil_resize(frames, dst)) == (0, 1.0)


@pytest.mark.parametrize(("src", "dst"), [((64, 80), (299, 299)), ((720, 1280), (299, 299))])
def test_pil_bilinear_matches_torchvision_resize_on_pil_images(src, dst):
    """What the JWB-DH-V1 FID script does: transforms.Resize((299, 299)) on a PIL image."""
    transforms = pytest.importorskip("torchvision.transforms")
    image = pytest.importorskip("PIL.Image")
    frames = _natural_frames(1, *src)
    resize = transforms.Resize(dst)
    ref = np.stack([np.asarray(resize(image.fromarray(f))) for f in frames])
    assert _diff(resize_pil_bilinear(_nchw(frames), dst), ref) == (0, 1.0)


@pytest.mark.parametrize("dh", [-1, 0, 1, 2])
@pytest.mark.parametrize(("src_w", "h", "w"), [(40, 40, 40), (100, 40, 60), (93, 20, 17), (30, 64, 45)])
def test_pil_bilinear_pass_order_boundary(src_w, h, w, dh):
    """Both sides of Pillow 13's switch to the vertical pass first, ``src_h - h > 2 * (src_w - w)``."""
    src_h = max(h + 2 * (src_w - w) + dh, h + 1)
    frames = _random_frames(2, src_h, src_w, seed=dh + 7)
    assert _diff(resize_pil_bilinear(_nchw(frames), (h, w)), _pil_resize(frames, (h, w))) == (0, 1.0)


def _random_shapes(
    count: int, seed: int, largest: int = 400
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Random (src, dst) frame sizes: a mix of downscales by non-integer factors, upscales and mixed."""
    rng = np.random.default_rng(seed)
    shapes = []
    for i in range(count):
        src = tuple(int(v) for v in rng.integers(1, largest + 1, 2))
        if i % 3 == 0:  # any sizes: up, down or mixed
            dst = tuple(int(v) for v in rng.integers(1, largest + 1, 2))
        else:  # shrink both axes by non-integer factors between 1 and 5
            dst = tuple(max(1, int(s / rng.uniform(1.0, 5.0))) for s in src)
        shapes.append((src, dst))
    return shapes


@pytest.mark.parametrize(("src", "dst"), _random_shapes(40, seed=11))
def test_pil_bilinear_exact_random_shapes(src, dst):
    frames = _random_frames(1, *src, seed=src[0] * 1000 + dst[1])
    assert _diff(resize_pil_bilinear(_nchw(frames), dst), _pil_resize(frames, dst)) == (0, 1.0)


def test_pil_bilinear_identity_and_one_axis():
    frames = _random_frames(2, 40, 30)
    assert torch.equal(resize_pil_bilinear(_nchw(frames), (40, 30)), _nchw(frames))
    for dst in ((40, 77), (40, 11), (93, 30), (7, 30)):  # a single pass: no order ambiguity
        assert _diff(resize_pil_bilinear(_nchw(frames), dst), _pil_resize(frames, dst)) == (0, 1.0)


def test_pil_backend_is_pillow():
    frames = _random_frames(2, 30, 50)
    out = resize_pil_bilinear(_nchw(frames), (70, 20), backend="pil")
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 70, 20)
    assert np.array_equal(_nhwc(out), _pil_resize(frames, (70, 20)))
    image = pytest.importorskip("PIL.Image")
    gray = torch.from_numpy(frames[..., :1]).permute(0, 3, 1, 2)
    out = resize_pil_bilinear(gray, (70, 20), backend="pil")
    assert out.shape == (2, 1, 70, 20)
    for f, o in zip(frames[..., 0], out[:, 0].numpy(), strict=True):
        assert np.array_equal(o, np.asarray(image.fromarray(f).resize((20, 70), image.BILINEAR)))


# ---------------------------------------------------------------------------------------- OpenCV area
AREA_EXACT_SHAPES = [
    ((448, 448), (224, 224)),  # integer factor
    ((480, 640), (240, 320)),  # integer factor
    ((672, 672), (224, 224)),  # integer factor 3: float32 1/9, round half to even
    ((512, 512), (128, 128)),  # integer factor 4: ties round half to even
    ((600, 900), (200, 300)),
    ((300, 400), (224, 224)),  # non-integer factors
    ((256, 256), (224, 224)),
    ((512, 512), (224, 224)),
    ((37, 53), (20, 31)),
    ((251, 173), (100, 90)),
    ((720, 1280), (224, 398)),  # short side to 224
    ((480, 832), (224, 388)),
    ((720, 1280), (299, 299)),
    ((1280, 720), (299, 299)),
    ((1, 50), (1, 7)),  # 1-pixel sides
    ((50, 1), (7, 1)),
    ((37, 53), (1, 1)),
    ((64, 80), (224, 224)),  # upscales
    ((100, 60), (224, 224)),
    ((1, 1), (5, 7)),
    ((300, 100), (224, 224)),  # mixed: height shrinks, width grows
    ((37, 53), (16, 100)),
]


@pytest.mark.parametrize("kind", ["random", "natural"])
@pytest.mark.parametrize(("src", "dst"), AREA_EXACT_SHAPES)
def test_opencv_area_exact(src, dst, kind):
    frames = _frames(kind, _n_frames(src), *src)
    ours = resize_opencv_area(_nchw(frames), dst, backend="torch")
    assert ours.dtype == torch.uint8 and ours.shape == (len(frames), 3, *dst)
    assert _diff(ours, _cv2_resize(frames, dst, "INTER_AREA")) == (0, 1.0)


@pytest.mark.parametrize("channels", [1, 2, 4])
@pytest.mark.parametrize(
    ("src", "dst"), [((64, 48), (32, 24)), ((90, 60), (30, 20)), ((256, 256), (224, 224))]
)
def test_opencv_area_exact_channels(src, dst, channels):
    """OpenCV's 2x2 fast path rounds half up on 1, 3 or 4 channels only; 2 channels round half to even."""
    frames = _random_frames(2, *src)
    frames = np.concatenate([frames, frames[..., ::-1]], axis=-1)[..., :channels]
    ref = _cv2_resize(frames, dst, "INTER_AREA")
    ref = ref[..., None] if ref.ndim == 3 else ref  # OpenCV drops a singleton channel axis
    assert _diff(resize_opencv_area(_nchw(frames), dst, backend="torch"), ref) == (0, 1.0)


@pytest.mark.parametrize(("src", "dst"), _random_shapes(40, seed=12))
def test_opencv_area_exact_random_shapes(src, dst):
    frames = _random_frames(1, *src, seed=src[1] * 1000 + dst[0])
    ours = resize_opencv_area(_nchw(frames), dst, backend="torch")
    assert _diff(ours, _cv2_resize(frames, dst, "INTER_AREA")) == (0, 1.0)


# ------------------------------------------------------------------------------------ OpenCV bilinear
BILINEAR_SHAPES = [
    ((300, 400), (224, 224)),  # down
    ((448, 448), (224, 224)),
    ((720, 1280), (299, 299)),
    ((64, 80), (224, 224)),  # up
    ((100, 60), (224, 224)),
    ((37, 53), (299, 299)),
    ((4, 4), (9, 9)),
    ((300, 100), (224, 224)),  # mixed
    ((100, 300), (224, 224)),
    ((37, 53), (16, 100)),
    ((5, 7), (23, 9)),
]


@pytest.mark.parametrize("kind", ["random", "natural"])
@pytest.mark.parametrize(("src", "dst"), BILINEAR_SHAPES)
def test_opencv_bilinear_is_opencv_exact(src, dst, kind):
    frames = _frames(kind, _n_frames(src), *src)
    ours = resize_opencv_bilinear(_nchw(frames), dst, backend="torch")
    assert ours.dtype == torch.uint8
    assert _diff(ours, _cv2_resize(frames, dst)) == (0, 1.0)


def test_opencv_bilinear_identity_is_a_copy():
    x = _nchw(_random_frames(1, 8, 8))
    out = resize_opencv_bilinear(x, (8, 8), backend="torch")
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("flag", ["INTER_AREA", "INTER_LINEAR"])
def test_opencv_backend_is_opencv(flag):
    fn = resize_opencv_area if flag == "INTER_AREA" else resize_opencv_bilinear
    frames = _random_frames(2, 33, 47)
    for dst in ((20, 30), (64, 90), (20, 90)):
        out = fn(_nchw(frames), dst, backend="opencv")
        assert out.dtype == torch.uint8 and out.shape == (2, 3, *dst)
        assert np.array_equal(_nhwc(out), _cv2_resize(frames, dst, flag))
    gray = torch.from_numpy(frames[..., :1]).permute(0, 3, 1, 2)  # OpenCV drops singleton channel axes
    out = fn(gray, (20, 30), backend="opencv")
    assert out.shape == (2, 1, 20, 30)
    assert np.array_equal(out[:, 0].numpy(), _cv2_resize(frames, (20, 30), flag)[..., 0])
    with pytest.raises(ValueError, match='uint8 for backend="opencv"'):
        fn(torch.rand(1, 3, 8, 8), (4, 4), backend="opencv")


# ------------------------------------------------------------------------------------------- float paths
FLOAT_SHAPES = [
    ((64, 80), (224, 224)),  # up
    ((300, 400), (224, 224)),  # down, non-integer
    ((96, 128), (48, 64)),  # down, integer
    ((300, 100), (224, 224)),  # mixed
    ((37, 53), (16, 100)),  # mixed
]


@pytest.mark.parametrize("kind", ["random", "natural"])
@pytest.mark.parametrize("flag", ["INTER_AREA", "INTER_LINEAR"])
@pytest.mark.parametrize(("src", "dst"), FLOAT_SHAPES)
def test_opencv_float_paths(src, dst, flag, kind):
    """Float in [0, 1] -> float out, within 1e-4 of OpenCV on float32 images (measured <= 6e-5)."""
    fn = resize_opencv_area if flag == "INTER_AREA" else resize_opencv_bilinear
    if kind == "random":
        frames = np.random.default_rng(3).random((1, *src, 3), dtype=np.float32)
    else:
        frames = _natural_frames(1, *src).astype(np.float32) / np.float32(255.0)
    ref = _cv2_resize(frames, dst, flag)
    ours = fn(_nchw(frames), dst)
    assert ours.dtype == torch.float32 and ours.shape == (1, 3, *dst)
    assert np.abs(_nhwc(ours) - ref).max() <= 1e-4
    ours64 = fn(_nchw(frames).double(), dst)
    assert ours64.dtype == torch.float64
    assert np.abs(_nhwc(ours64) - ref).max() <= 1e-4


# ------------------------------------------------------------------------------------------ TF1 bilinear
@pytest.mark.parametrize("src", [(37, 53), (64, 80), (299, 299), (300, 300), (100, 60), (720, 1280)])
def test_tf1_bilinear_matches_torch_fidelity(src):
    """Within 1e-3 at the 0..255 scale (measured <= 5e-5); positions must be computed in float32 as TF1 does
    (in float64 the deviation reached 0.03 on 720x1280 noise)."""
    tf_compat = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    rng = np.random.default_rng(5)
    for kind in ("random", "natural") if src[0] * src[1] < 200_000 else ("random",):
        if kind == "random":
            x = torch.from_numpy(rng.random((1, 3, *src), dtype=np.float32) * np.float32(255))
        else:
            x = _nchw(_natural_frames(1, *src)).float()
        ours = resize_tf1_bilinear(x, (299, 299))
        ref = tf_compat.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        assert ours.dtype == torch.float32 and ours.shape == (1, 3, 299, 299)
        assert (ours - ref).abs().max() <= 1e-3


def test_tf1_bilinear_hand_values_and_dtypes():
    x = torch.tensor([[[[0.0, 4.0]]]])
    assert resize_tf1_bilinear(x, (1, 4))[0, 0, 0].tolist() == [0.0, 2.0, 4.0, 4.0]  # no half-pixel shift
    assert resize_tf1_bilinear(x.double(), (1, 4)).dtype == torch.float64
    u8 = torch.randint(0, 256, (1, 3, 10, 12), dtype=torch.uint8)
    out = resize_tf1_bilinear(u8, (20, 24))
    assert out.is_floating_point()
    assert torch.allclose(out, resize_tf1_bilinear(u8.float(), (20, 24)))


# ---------------------------------------------------------------------------------------- resize errors
ALL_RESIZES = [resize_pil_bilinear, resize_opencv_area, resize_opencv_bilinear, resize_tf1_bilinear]


@pytest.mark.parametrize("fn", ALL_RESIZES)
@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-3, 4), (10,), (4, 4, 4), 5, "224", (10.5, 3), None])
def test_resize_bad_size(fn, size):
    with pytest.raises(ValueError, match="`size` must be"):
        fn(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), size)


@pytest.mark.parametrize("fn", ALL_RESIZES)
def test_resize_accepts_lists_and_integral_floats(fn):
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    assert fn(x, [4, 6]).shape == (1, 3, 4, 6)
    assert fn(x, (4.0, 6)).shape == (1, 3, 4, 6)


@pytest.mark.parametrize("size", [(None, 3), (float("inf"), 3), (float("nan"), 3), (True, 3), (2.5, 3)])
def test_resize_non_numeric_size_is_value_error_with_message(size):
    with pytest.raises(ValueError, match="`size` must be"):
        resize_opencv_area(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), size)


@pytest.mark.parametrize("fn", ALL_RESIZES)
def test_resize_bad_frames(fn):
    with pytest.raises(ValueError, match=r"\[N, C, H, W\] tensor, got shape \(3, 8, 8\)"):
        fn(torch.zeros(3, 8, 8, dtype=torch.uint8), (4, 4))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\] tensor, got ndarray"):
        fn(np.zeros((1, 3, 8, 8), np.uint8), (4, 4))
    for dtype in (torch.int32, torch.int64, torch.bool, torch.int8):
        with pytest.raises(ValueError, match=rf"uint8 or floating point, got dtype {dtype}"):
            fn(torch.zeros(1, 3, 8, 8, dtype=dtype), (4, 4))
    with pytest.raises(ValueError, match="empty frame size"):
        fn(torch.zeros(1, 3, 0, 8, dtype=torch.uint8), (4, 4))


def test_resize_bad_backend_and_pil_float():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"`backend` must be one of \('torch', 'pil'\), got 'opencv'"):
        resize_pil_bilinear(x, (4, 4), backend="opencv")
    for fn in (resize_opencv_area, resize_opencv_bilinear):
        with pytest.raises(
            ValueError, match=r"`backend` must be one of \('auto', 'torch', 'opencv'\), got 'cv2'"
        ):
            fn(x, (4, 4), backend="cv2")
        with pytest.raises(ValueError, match="`backend` must be one of"):
            fn(x, (4, 4), backend="pil")
    with pytest.raises(ValueError, match=r"must be uint8 for a PIL-exact resize, got dtype torch\.float32"):
        resize_pil_bilinear(torch.rand(1, 3, 8, 8), (4, 4))


def test_resize_empty_batch_and_channels():
    for fn in ALL_RESIZES:
        assert fn(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), (4, 5)).shape == (0, 3, 4, 5)
    frames = _random_frames(1, 30, 40)
    four = torch.cat([_nchw(frames), _nchw(frames)[:, :1]], dim=1)  # any channel count, per channel
    for fn in (resize_pil_bilinear, resize_opencv_area, resize_opencv_bilinear):
        out = fn(four, (17, 23))
        assert torch.equal(out[:, :3], fn(_nchw(frames), (17, 23)))
        assert torch.equal(out[:, 3], out[:, 0])


# ----------------------------------------------------------------------------------------------- file I/O
def _smooth_video(t: int, h: int, w: int) -> torch.Tensor:
    """Slowly moving smooth pattern, uint8 ``[t, 3, h, w]`` (mpeg4 keeps such content close)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = [
        np.stack([128 + 90 * np.sin(x / (9 + c) + i / 3) * np.cos(y / (11 + c)) for c in range(3)], 0)
        for i in range(t)
    ]
    return torch.from_numpy(np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def mp4_10x64x48(tmp_path_factory) -> tuple[str, torch.Tensor]:
    pytest.importorskip("av")
    path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
    video = _smooth_video(10, 48, 64)
    write_video(path, video, fps=25)
    return path, video


def test_write_read_roundtrip(mp4_10x64x48):
    path, video = mp4_10x64x48
    frames, fps = read_video(path)
    assert frames.shape == (10, 3, 48, 64) and frames.dtype == torch.uint8
    assert frames.is_contiguous()
    assert fps == 25.0
    err = (frames.float() - video.float()).abs().mean()
    assert err < 10, err  # lossy codec; measured ~4.9 grey levels
    # frame order is preserved: each decoded frame is closest to its own source frame
    dists = (frames.float()[:, None] - video.float()[None]).abs().mean(dim=(2, 3, 4))
    assert torch.equal(dists.argmin(dim=1), torch.arange(10))


def test_read_max_frames(mp4_10x64x48):
    path, _ = mp4_10x64x48
    full, _ = read_video(path)
    for n in (1, 4, 10, 16):
        frames, fps = read_video(path, max_frames=n)
        assert frames.shape[0] == min(n, 10) and fps == 25.0
        assert torch.equal(frames, full[: min(n, 10)])
    for bad in (0, -2):
        with pytest.raises(ValueError, match="`max_frames` must be >= 1"):
            read_video(path, max_frames=bad)


def test_read_accepts_pathlike(mp4_10x64x48):
    from pathlib import Path

    frames, _ = read_video(Path(mp4_10x64x48[0]), max_frames=2)
    assert frames.shape == (2, 3, 48, 64)


@pytest.mark.parametrize("fps", [30.0, 29.97, 12.5])
def test_write_fps(tmp_path, fps):
    pytest.importorskip("av")
    path = tmp_path / "x.mp4"
    write_video(path, _smooth_video(6, 16, 16), fps=fps)
    frames, got = read_video(path)
    assert frames.shape == (6, 3, 16, 16)
    assert got == pytest.approx(fps, rel=1e-3)


def test_odd_frame_size(tmp_path):
    """yuv420p needs even sizes: the writer repeats the last row/column, so 33x47 comes back as 34x48."""
    pytest.importorskip("av")
    video = _smooth_video(5, 33, 47)
    path = tmp_path / "odd.mp4"
    write_video(path, video, fps=30)
    frames, fps = read_video(path)
    assert frames.shape == (5, 3, 34, 48) and fps == 30.0
    assert (frames[..., :33, :47].float() - video.float()).abs().mean() < 10
    # the padding repeats the edge: the extra row/column is close to the last real one
    assert (frames[..., 33, :47].float() - video[..., 32, :].float()).abs().mean() < 12
    assert (frames[..., :33, 47].float() - video[..., :, 46].float()).abs().mean() < 12


def test_read_missing_file(tmp_path):
    pytest.importorskip("av")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_video(tmp_path / "missing.mp4")


@pytest.mark.parametrize("content", [b"", b"not a video at all", None])
def test_read_garbage(tmp_path, content):
    pytest.importorskip("av")
    path = tmp_path / "garbage.mp4"
    if content is None:
        content = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"garbage\.mp4"):
        read_video(path)


def _write_with_pyav(path: str, frames: torch.Tensor, container_options: dict | None = None) -> None:
    av = pytest.importorskip("av")
    arr = frames.permute(0, 2, 3, 1).numpy()
    with av.open(path, mode="w", options=container_options or {}) as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = arr.shape[2], arr.shape[1], "yuv420p"
        for img in arr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("plain.mp4", None),
        ("faststart.mp4", {"movflags": "faststart"}),
        ("clip.mkv", None),
        ("clip.avi", None),
    ],
)
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_read_truncated(tmp_path, name, options, keep):
    """A cut file yields the frames decoded before the damage, or ValueError -- never another exception."""
    video = torch.from_numpy(_random_frames(20, 48, 64)).permute(0, 3, 1, 2).contiguous()
    full_path = str(tmp_path / name)
    _write_with_pyav(full_path, video, options)
    full, _ = read_video(full_path)
    assert full.shape == (20, 3, 48, 64)
    data = open(full_path, "rb").read()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[: int(keep * len(data))])
    try:
        frames, fps = read_video(cut)
    except ValueError as err:
        assert cut.name in str(err)
        return
    assert 1 <= frames.shape[0] < 20 and frames.shape[1:] == (3, 48, 64) and frames.dtype == torch.uint8
    assert fps == 25.0
    # the frames before the damage decode as in the intact file (the last one may be partly damaged)
    n = frames.shape[0] - 1
    assert torch.equal(frames[:n], full[:n])


def test_read_truncated_default_writer_at_60_percent(tmp_path):
    pytest.importorskip("av")
    path = tmp_path / "w.mp4"
    write_video(path, _smooth_video(10, 48, 64))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(0.6 * len(data))])
    try:
        frames, _ = read_video(cut)
    except ValueError:
        return
    assert 1 <= frames.shape[0] <= 10


@pytest.mark.parametrize(
    ("frames", "seen"),
    [
        (np.zeros((2, 3, 8, 8), np.uint8), "ndarray"),
        (torch.zeros(2, 3, 8, 8), "torch.float32"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.int64), "torch.int64"),
        (torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8), r"\(1, 2, 3, 8, 8\)"),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), r"\(3, 8, 8\)"),
        (torch.zeros(2, 8, 8, 3, dtype=torch.uint8), r"\(2, 8, 8, 3\)"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), r"\(2, 1, 8, 8\)"),
    ],
)
def test_write_video_bad_input(tmp_path, frames, seen):
    pytest.importorskip("av")
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=rf"`frames` must be a uint8 \[T, 3, H, W\] tensor, got .*{seen}"):
        write_video(path, frames)
    assert not path.exists()


def test_write_video_no_frames(tmp_path):
    pytest.importorskip("av")
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "empty.mp4", torch.zeros(0, 3, 8, 8, dtype=torch.uint8))
    assert not os.path.exists(tmp_path / "empty.mp4")


def test_auto_backend_is_opencv_for_cpu_uint8_and_torch_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "auto" gives OpenCV's own pixels on a CPU and the torch port for float frames or without OpenCV."""
    import metrics.functional.backend as backend_mod

    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    dst = (23, 29)  # a non-integer downscale
    reference = np.stack([cv2.resize(f, (dst[1], dst[0]), interpolation=cv2.INTER_AREA) for f in frames])
    auto = resize_opencv_area(_nchw(frames), dst)
    assert np.array_equal(auto.permute(0, 2, 3, 1).numpy(), reference)
    assert backend_mod.resolve_backend("auto", _nchw(frames)) == "opencv"
    assert backend_mod.resolve_backend("auto", _nchw(frames).float()) == "torch"
    # more than 4 channels: OpenCV's INTER_AREA cannot, "auto" keeps the (exact) torch port
    five = torch.from_numpy(rng.integers(0, 256, (1, 5, 17, 23), dtype=np.uint8))
    assert backend_mod.resolve_backend("auto", five, max_channels=4) == "torch"
    per_channel = [resize_opencv_area(five[:, i : i + 1], (5, 7)) for i in range(5)]
    assert torch.equal(resize_opencv_area(five, (5, 7)), torch.cat(per_channel, 1))
    monkeypatch.setattr(backend_mod, "opencv_available", lambda: False)
    assert backend_mod.resolve_backend("auto", _nchw(frames)) == "torch"
    torch.testing.assert_close(
        resize_opencv_area(_nchw(frames), dst), resize_opencv_area(_nchw(frames), dst, backend="torch")
    )


@pytest.mark.parametrize("size", [(37, 29), (1, 1), (90, 130), (200, 10)])
def test_opencv_linear_crops_equal_cv2_on_each_slice(size: tuple[int, int]) -> None:
    """Batched per-frame crops (each its own source size, 1-pixel boxes included) = cv2.resize per slice."""
    from metrics.functional.resize import opencv_linear_crops

    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    h, w = 90, 130
    frames = rng.integers(0, 256, (40, 3, h, w), dtype=np.uint8)
    boxes = []
    for _ in range(40):
        x1, y1 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        boxes.append([x1, y1, int(rng.integers(x1 + 1, w + 1)), int(rng.integers(y1 + 1, h + 1))])
    boxes[0] = [5, 7, 6, 8]  # a single pixel
    expected = np.stack(
        [
            cv2.resize(np.ascontiguousarray(f.transpose(1, 2, 0)[y1:y2, x1:x2]), (size[1], size[0]))
            for f, (x1, y1, x2, y2) in zip(frames, boxes, strict=True)
        ]
    ).reshape(40, size[0], size[1], 3)
    out = opencv_linear_crops(torch.from_numpy(frames), torch.tensor(boxes), size)
    assert out.dtype == torch.uint8 and out.shape == (40, 3, *size)
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
