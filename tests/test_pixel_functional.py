"""Parity of metrics.functional.pixel with scikit-image (the oracle) and numpy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

skimage_metrics = pytest.importorskip("skimage.metrics")

from metrics.functional.pixel import pixel_cosine_frames, psnr_frames, ssim_frames  # noqa: E402

SSIM_TOL = 1e-5
PSNR_TOL = 1e-6


# ------------------------------------------------------------------------------------------------ helpers
def _jwb_win(h: int, w: int) -> int:
    """The JWB-DH-V1 script rule for skimage's win_size."""
    win = min(7, min(h, w))
    return win - 1 if win % 2 == 0 else win


def _nchw(frames_nhwc: np.ndarray) -> torch.Tensor:
    """Channels-last numpy frames [N, H, W, C] -> torch [N, C, H, W] (a permuted, non-contiguous view)."""
    return torch.from_numpy(frames_nhwc).permute(0, 3, 1, 2)


def _sk_ssim(ref: np.ndarray, gen: np.ndarray, **kwargs) -> np.ndarray:
    return np.array(
        [
            skimage_metrics.structural_similarity(r, g, channel_axis=-1, **kwargs)
            for r, g in zip(ref, gen, strict=True)
        ]
    )


def _sk_ssim_uniform(ref: np.ndarray, gen: np.ndarray, data_range: float = 255.0, win_size=None):
    h, w = ref.shape[1:3]
    win = _jwb_win(h, w) if win_size is None else win_size
    return _sk_ssim(ref, gen, data_range=data_range, win_size=win)


def _sk_ssim_gaussian(ref: np.ndarray, gen: np.ndarray, data_range: float = 255.0):
    return _sk_ssim(
        ref, gen, data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )


def _sk_psnr(ref: np.ndarray, gen: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # skimage divides by zero for identical frames
        return np.array(
            [
                skimage_metrics.peak_signal_noise_ratio(r, g, data_range=data_range)
                for r, g in zip(ref, gen, strict=True)
            ]
        )


def _structured_pair(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[N, H, W, 3] uint8 reference/generated frames: gradients, shapes, noise, shifts, random, flat."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    gradient = np.stack(
        [xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) * 255 / max(h + w - 2, 1)], axis=-1
    )
    shapes = np.full((h, w, 3), 30.0)
    shapes[h // 4 : 3 * h // 4 + 1, w // 5 : w // 2 + 1] = (220, 40, 90)
    disc = (yy - h / 2) ** 2 + (xx - 2 * w / 3) ** 2 <= (min(h, w) / 3) ** 2
    shapes[disc] = (10, 250, 128)
    checker = ((xx // 2 + yy // 2) % 2)[..., None].repeat(3, -1) * 255
    random = rng.integers(0, 256, (h, w, 3)).astype(np.float64)
    bright_flat = rng.integers(238, 256, (h, w, 3)).astype(np.float64)

    refs, gens = [], []

    def add(ref: np.ndarray, gen: np.ndarray) -> None:
        refs.append(np.clip(np.round(ref), 0, 255).astype(np.uint8))
        gens.append(np.clip(np.round(gen), 0, 255).astype(np.uint8))

    for base in (gradient, shapes, checker, random, bright_flat):
        add(base, base + rng.normal(0, 12, base.shape))  # noisy copy
        add(base, np.roll(base, shift=(1, 1), axis=(0, 1)))  # slightly shifted copy
    add(gradient, shapes)
    add(random, rng.integers(0, 256, (h, w, 3)))
    add(shapes, 255 - shapes)
    add(np.zeros((h, w, 3)), np.zeros((h, w, 3)) + 3)
    return np.stack(refs), np.stack(gens)


def _random_pair(n: int, h: int, w: int, seed: int, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    gen = np.clip(ref.astype(np.int64) + rng.integers(-40, 41, ref.shape), 0, 255).astype(np.uint8)
    gen[0] = rng.integers(0, 256, (h, w, c), dtype=np.uint8)  # an unrelated frame
    return ref, gen


SIZES = [(33, 47), (64, 64), (3, 5), (5, 6), (6, 6), (7, 9), (8, 8), (12, 31)]
GAUSS_SIZES = [(11, 11), (12, 31), (33, 47), (64, 64)]


# ------------------------------------------------------------------------------------------- SSIM: uniform
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_ssim_uniform_matches_skimage_random(h: int, w: int) -> None:
    ref, gen = _random_pair(4, h, w, seed=h * 100 + w)
    out = ssim_frames(_nchw(gen), _nchw(ref))
    assert out.dtype == torch.float64 and out.shape == (4,)
    np.testing.assert_allclose(out.numpy(), _sk_ssim_uniform(ref, gen), rtol=0, atol=SSIM_TOL)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_ssim_uniform_matches_skimage_structured(h: int, w: int) -> None:
    ref, gen = _structured_pair(h, w, seed=h + w)
    out = ssim_frames(_nchw(gen), _nchw(ref))
    np.testing.assert_allclose(out.numpy(), _sk_ssim_uniform(ref, gen), rtol=0, atol=SSIM_TOL)


@pytest.mark.parametrize("win_size", [3, 5, 9, 33])
def test_ssim_uniform_explicit_win_size(win_size: int) -> None:
    ref, gen = _structured_pair(33, 47, seed=win_size)
    out = ssim_frames(_nchw(gen), _nchw(ref), win_size=win_size)
    np.testing.assert_allclose(
        out.numpy(), _sk_ssim_uniform(ref, gen, win_size=win_size), rtol=0, atol=SSIM_TOL
    )


def test_ssim_default_window_rule() -> None:
    """win_size=None must equal the JWB rule, e.g. 6x6 -> 5, 8x8 -> 7, 3x5 -> 3, 100x7 -> 7."""
    for h, w, expected in [(6, 6, 5), (8, 8, 7), (3, 5, 3), (4, 40, 3), (100, 7, 7), (50, 60, 7)]:
        assert _jwb_win(h, w) == expected
        ref, gen = _random_pair(2, h, w, seed=h * w)
        out = ssim_frames(_nchw(gen), _nchw(ref))
        explicit = ssim_frames(_nchw(gen), _nchw(ref), win_size=expected)
        torch.testing.assert_close(out, explicit, rtol=0, atol=0)


def test_ssim_grayscale_and_float_inputs() -> None:
    ref, gen = _random_pair(3, 20, 27, seed=7, c=1)
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen), _nchw(ref)).numpy(), _sk_ssim_uniform(ref, gen), rtol=0, atol=SSIM_TOL
    )
    # float frames on a 0..1 scale with data_range=1 (skimage computes float64 for float64 input)
    ref_f, gen_f = ref.astype(np.float64) / 255, gen.astype(np.float64) / 255
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen_f), _nchw(ref_f), data_range=1.0).numpy(),
        _sk_ssim_uniform(ref_f, gen_f, data_range=1.0),
        rtol=0,
        atol=SSIM_TOL,
    )
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen_f), _nchw(ref_f), window="gaussian", data_range=1.0).numpy(),
        _sk_ssim_gaussian(ref_f, gen_f, data_range=1.0),
        rtol=0,
        atol=SSIM_TOL,
    )
    # mixed dtypes are fine: uint8 generated vs float reference on the same scale
    mixed = ssim_frames(_nchw(gen), _nchw(ref).to(torch.float32))
    torch.testing.assert_close(mixed, ssim_frames(_nchw(gen), _nchw(ref)), rtol=0, atol=1e-12)


def test_ssim_custom_constants() -> None:
    ref, gen = _structured_pair(24, 30, seed=3)
    out = ssim_frames(_nchw(gen), _nchw(ref), k1=0.05, k2=0.1)
    oracle = _sk_ssim(ref, gen, data_range=255, win_size=7, K1=0.05, K2=0.1)
    np.testing.assert_allclose(out.numpy(), oracle, rtol=0, atol=SSIM_TOL)


def test_ssim_layouts_agree() -> None:
    """Contiguous NCHW, a permuted view of NHWC and channels_last memory format give identical results."""
    ref, gen = _random_pair(3, 33, 47, seed=11)
    view = ssim_frames(_nchw(gen), _nchw(ref))
    contiguous = ssim_frames(_nchw(gen).contiguous(), _nchw(ref).contiguous())
    channels_last = ssim_frames(
        _nchw(gen).contiguous().to(memory_format=torch.channels_last),
        _nchw(ref).contiguous().to(memory_format=torch.channels_last),
    )
    torch.testing.assert_close(view, contiguous, rtol=0, atol=1e-12)
    torch.testing.assert_close(view, channels_last, rtol=0, atol=1e-12)
    # and going back to channels-last numpy reproduces the oracle's input exactly
    assert np.array_equal(_nchw(ref).permute(0, 2, 3, 1).numpy(), ref)


def test_ssim_is_symmetric() -> None:
    ref, gen = _structured_pair(16, 21, seed=5)
    a = ssim_frames(_nchw(gen), _nchw(ref))
    b = ssim_frames(_nchw(ref), _nchw(gen))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------ SSIM: gaussian
@pytest.mark.parametrize(("h", "w"), GAUSS_SIZES)
def test_ssim_gaussian_matches_skimage(h: int, w: int) -> None:
    ref, gen = _structured_pair(h, w, seed=h * w)
    ref_r, gen_r = _random_pair(3, h, w, seed=abs(h - w) + 1)
    ref, gen = np.concatenate([ref, ref_r]), np.concatenate([gen, gen_r])
    out = ssim_frames(_nchw(gen), _nchw(ref), window="gaussian")
    np.testing.assert_allclose(out.numpy(), _sk_ssim_gaussian(ref, gen), rtol=0, atol=SSIM_TOL)
    # win_size=11 explicitly is the same thing
    torch.testing.assert_close(
        ssim_frames(_nchw(gen), _nchw(ref), window="gaussian", win_size=11), out, rtol=0, atol=0
    )


# ------------------------------------------------------------------------- SSIM: exact uint8 path (chunks)
@pytest.mark.parametrize("cap", [40, 200, 5000])
def test_ssim_uint8_chunked_bands_match_skimage(monkeypatch: pytest.MonkeyPatch, cap: int) -> None:
    """Row bands (frames larger than a chunk) and plane groups (smaller) give skimage's numbers."""
    import metrics.functional.pixel as pixel

    monkeypatch.setattr(pixel, "_CPU_CHUNK_PIXELS", cap)
    ref, gen = _structured_pair(29, 37, seed=23)
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen), _nchw(ref)).numpy(), _sk_ssim_uniform(ref, gen), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("win_size", [3, 9, 11, 13, 15])
def test_ssim_uint8_extremes_no_integer_overflow(win_size: int) -> None:
    """Windows of 0 / 255 maximise every integer sum; int32 (win <= 11) and int64 (larger) stay exact."""
    h, w = 40, 44
    yy, xx = np.mgrid[0:h, 0:w]
    checker = (((xx // 3 + yy // 3) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    white = np.full((h, w, 3), 255, np.uint8)
    ref = np.stack([white, checker, white, np.zeros_like(white)])
    gen = np.stack([white, 255 - checker, checker, white])
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen), _nchw(ref), win_size=win_size).numpy(),
        _sk_ssim_uniform(ref, gen, win_size=win_size),
        rtol=0,
        atol=1e-12,
    )


def test_ssim_uint8_path_equals_float_path() -> None:
    """The exact integer form and the float64 filters are two routes to the same number."""
    ref, gen = _structured_pair(31, 45, seed=29)
    exact = ssim_frames(_nchw(gen), _nchw(ref), k1=0.02, k2=0.05, data_range=200.0)
    floats = ssim_frames(_nchw(gen).double(), _nchw(ref).double(), k1=0.02, k2=0.05, data_range=200.0)
    torch.testing.assert_close(exact, floats, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------- SSIM: precision
@pytest.mark.parametrize("window", ["uniform", "gaussian"])
def test_ssim_float32_close_to_float64(window: str) -> None:
    ref, gen = _structured_pair(40, 52, seed=13)
    f64 = ssim_frames(_nchw(gen), _nchw(ref), window=window)
    f32 = ssim_frames(_nchw(gen), _nchw(ref), window=window, compute_dtype=torch.float32)
    assert f32.dtype == torch.float64
    assert (f32 - f64).abs().max().item() < 1e-3


def test_identical_frames() -> None:
    ref, _ = _structured_pair(33, 47, seed=17)
    frames = _nchw(ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning / UserWarning spam
        ssim_u = ssim_frames(frames, frames.clone())
        ssim_g = ssim_frames(frames, frames.clone(), window="gaussian")
        ssim_32 = ssim_frames(frames, frames.clone(), compute_dtype=torch.float32)
        psnr = psnr_frames(frames, frames.clone())
    torch.testing.assert_close(ssim_u, torch.ones_like(ssim_u), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim_g, torch.ones_like(ssim_g), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim_32, torch.ones_like(ssim_32), rtol=0, atol=1e-6)
    assert torch.isposinf(psnr).all()
    assert np.all(np.isposinf(_sk_psnr(ref, ref)))


def test_empty_batch() -> None:
    empty = torch.zeros(0, 3, 16, 16, dtype=torch.uint8)
    for out in (
        ssim_frames(empty, empty),
        ssim_frames(empty, empty, window="gaussian"),
        psnr_frames(empty, empty),
        pixel_cosine_frames(empty, empty),
    ):
        assert out.shape == (0,) and out.dtype == torch.float64
    with pytest.raises(ValueError, match="11x11"):  # sizes are still checked for an empty batch
        ssim_frames(empty[:, :, :8], empty[:, :, :8], window="gaussian")


# ---------------------------------------------------------------------------------------------------- PSNR
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_psnr_matches_skimage(h: int, w: int) -> None:
    ref, gen = _structured_pair(h, w, seed=h * 7 + w)
    ref_r, gen_r = _random_pair(2, h, w, seed=h + 3 * w)
    ref, gen = np.concatenate([ref, ref_r]), np.concatenate([gen, gen_r])
    out = psnr_frames(_nchw(gen), _nchw(ref))
    assert out.dtype == torch.float64 and out.shape == (len(ref),)
    np.testing.assert_allclose(out.numpy(), _sk_psnr(ref, gen), rtol=0, atol=PSNR_TOL)


def test_psnr_float_and_data_range() -> None:
    ref, gen = _random_pair(3, 10, 13, seed=19)
    ref_f, gen_f = ref / 255.0, gen / 255.0
    out = psnr_frames(_nchw(gen_f), _nchw(ref_f), data_range=1.0)
    np.testing.assert_allclose(out.numpy(), _sk_psnr(ref_f, gen_f, data_range=1.0), rtol=0, atol=PSNR_TOL)
    # values are not clamped: out-of-range floats still count
    out_of_range = psnr_frames(_nchw(gen_f) + 2.0, _nchw(ref_f), data_range=1.0)
    np.testing.assert_allclose(
        out_of_range.numpy(), _sk_psnr(ref_f, gen_f + 2.0, data_range=1.0), rtol=0, atol=PSNR_TOL
    )


def test_psnr_mixed_identical_and_different_frames() -> None:
    ref = torch.full((3, 3, 4, 5), 100, dtype=torch.uint8)
    gen = ref.clone()
    gen[1] += 1  # MSE 1
    gen[2, 0, 0, 0] = 110  # MSE 100 / 60
    out = psnr_frames(gen, ref)
    assert torch.isposinf(out[0])
    expected = [10 * np.log10(255.0**2 / 1.0), 10 * np.log10(255.0**2 / (100 / 60))]
    np.testing.assert_allclose(out[1:].numpy(), expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------- pixel CSIM
def _np_cosine(gen: np.ndarray, ref: np.ndarray) -> np.ndarray:
    out = []
    for g, r in zip(gen, ref, strict=True):
        g64, r64 = g.astype(np.float64).ravel(), r.astype(np.float64).ravel()
        ng, nr = np.linalg.norm(g64), np.linalg.norm(r64)
        out.append(0.0 if ng == 0 or nr == 0 else float(np.dot(g64, r64) / (ng * nr)))
    return np.array(out)


def test_pixel_cosine_matches_numpy() -> None:
    ref, gen = _structured_pair(21, 34, seed=23)
    out = pixel_cosine_frames(_nchw(gen), _nchw(ref))
    assert out.dtype == torch.float64 and out.shape == (len(ref),)
    # the numpy version works on the HWC frames: the flattening order does not matter for a cosine
    np.testing.assert_allclose(out.numpy(), _np_cosine(gen, ref), rtol=0, atol=1e-12)


def test_pixel_cosine_special_cases() -> None:
    ref = torch.arange(1, 13, dtype=torch.uint8).view(1, 3, 2, 2).repeat(4, 1, 1, 1)
    gen = ref.clone()
    gen[1] = ref[1] * 2  # parallel -> 1
    gen[2] = 0  # zero norm -> 0
    zero_ref = ref.clone()
    zero_ref[3] = 0
    out = pixel_cosine_frames(gen, zero_ref)
    np.testing.assert_allclose(out.numpy(), [1.0, 1.0, 0.0, 0.0], rtol=0, atol=1e-12)
    both_zero = torch.zeros(2, 1, 3, 3)
    assert pixel_cosine_frames(both_zero, both_zero).tolist() == [0.0, 0.0]
    # signed floats: opposite vectors -> -1, orthogonal -> 0
    a = torch.tensor([1.0, -2.0, 3.0, 0.5]).view(1, 1, 2, 2)
    b = torch.tensor([2.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    np.testing.assert_allclose(pixel_cosine_frames(torch.cat([a, a]), torch.cat([-a, b])), [-1.0, 0.0])


# ---------------------------------------------------------------------------------------------- validation
_GOOD = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
_ALL = [ssim_frames, psnr_frames, pixel_cosine_frames]


@pytest.mark.parametrize("fn", _ALL)
@pytest.mark.parametrize("which", ["generated", "reference"])
@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "4-D"),
        (torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8), "4-D"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.bool), "numeric dtype"),
        (torch.zeros(2, 3, 16, 16, dtype=torch.complex64), "numeric dtype"),
        (torch.zeros(2, 0, 16, 16, dtype=torch.uint8), "C, H, W >= 1"),
        (np.zeros((2, 3, 16, 16), dtype=np.uint8), "torch.Tensor"),
    ],
)
def test_validation_per_argument(fn, which: str, bad, pattern: str) -> None:
    args = (bad, _GOOD) if which == "generated" else (_GOOD, bad)
    with pytest.raises(ValueError, match=rf"`{which}`.*{pattern}"):
        fn(*args)


@pytest.mark.parametrize("fn", _ALL)
def test_validation_shape_and_device_mismatch(fn) -> None:
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3, 16, 16\).*\(2, 3, 16, 15\)"):
        fn(_GOOD, _GOOD[..., :15])
    with pytest.raises(ValueError, match="same device"):
        fn(_GOOD, _GOOD.to("meta"))


@pytest.mark.parametrize("fn", [ssim_frames, psnr_frames])
@pytest.mark.parametrize("data_range", [0.0, -1.0, float("nan"), float("inf")])
def test_validation_data_range(fn, data_range: float) -> None:
    with pytest.raises(ValueError, match="data_range"):
        fn(_GOOD, _GOOD, data_range=data_range)


@pytest.mark.parametrize(
    ("shape", "kwargs", "pattern"),
    [
        ((1, 3, 2, 9), {}, "smaller side >= 3"),  # default rule would give w = 1
        ((1, 3, 9, 1), {}, "smaller side >= 3"),
        ((1, 3, 16, 16), {"win_size": 4}, "odd"),
        ((1, 3, 16, 16), {"win_size": 1}, ">= 3"),
        ((1, 3, 16, 16), {"win_size": 17}, "smaller frame side"),
        ((1, 3, 5, 16), {"win_size": 7}, "smaller frame side"),
        ((1, 3, 16, 16), {"win_size": 5.0}, "int"),
        ((1, 3, 16, 16), {"window": "box"}, "uniform"),
        ((1, 3, 10, 16), {"window": "gaussian"}, "11x11"),
        ((1, 3, 16, 16), {"window": "gaussian", "win_size": 7}, "None or 11"),
        ((1, 3, 16, 16), {"k1": -0.01}, "k1"),
        ((1, 3, 16, 16), {"k2": -0.03}, "k2"),
        ((1, 3, 16, 16), {"compute_dtype": torch.float16}, "compute_dtype"),
        ((1, 3, 16, 16), {"compute_dtype": torch.int64}, "compute_dtype"),
    ],
)
def test_validation_ssim_options(shape, kwargs, pattern: str) -> None:
    frames = torch.zeros(shape, dtype=torch.uint8)
    with pytest.raises(ValueError, match=pattern):
        ssim_frames(frames, frames, **kwargs)


def test_small_frames_accepted() -> None:
    """3 px is the smallest side the default rule accepts; skimage agrees on such frames."""
    ref, gen = _random_pair(2, 3, 3, seed=29)
    np.testing.assert_allclose(
        ssim_frames(_nchw(gen), _nchw(ref)).numpy(), _sk_ssim_uniform(ref, gen), rtol=0, atol=SSIM_TOL
    )


def test_ssim_exact_path_equals_skimage_on_random_shapes_and_windows() -> None:
    """Property: for any uint8 frames (random sizes, channels, windows, constants) the exact integer path
    gives skimage's value (hypothesis draws the cases; skimage is the oracle)."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
    @hypothesis.given(
        h=st.integers(3, 24),
        w=st.integers(3, 24),
        c=st.integers(1, 4),
        n=st.integers(1, 3),
        win_pick=st.integers(0, 5),
        k=st.sampled_from([(0.01, 0.03), (0.05, 0.1), (0.001, 0.002)]),
        data_range=st.sampled_from([255.0, 100.0, 1000.0]),
        seed=st.integers(0, 2**16),
        contrast=st.sampled_from(["random", "extreme", "flat"]),
    )
    def check(h, w, c, n, win_pick, k, data_range, seed, contrast):
        rng = np.random.default_rng(seed)
        if contrast == "extreme":
            ref = rng.choice(np.array([0, 255], np.uint8), (n, h, w, c))
            gen = rng.choice(np.array([0, 255], np.uint8), (n, h, w, c))
        elif contrast == "flat":
            ref = np.full((n, h, w, c), rng.integers(0, 256), np.uint8)
            gen = np.clip(ref.astype(int) + rng.integers(-2, 3, ref.shape), 0, 255).astype(np.uint8)
        else:
            ref = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
            gen = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        odd = [v for v in range(3, min(h, w) + 1, 2)]
        win = odd[win_pick % len(odd)]
        ours = ssim_frames(_nchw(gen), _nchw(ref), win_size=win, k1=k[0], k2=k[1], data_range=data_range)
        theirs = _sk_ssim(ref, gen, win_size=win, K1=k[0], K2=k[1], data_range=data_range)
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-11)

    check()
