"""Fréchet metrics against scipy sqrtm, pytorch-fid, torchmetrics and hand computations; DDP; memory."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from metrics.backbones.cache import BackboneRef
from metrics.backbones.i3d import I3DStandIn
from metrics.frechet import FID, FVD, EdgeFID, FrechetDistance
from metrics.functional.edges import edge_maps
from metrics.functional.frechet import (
    frechet_distance,
    gaussian_moments,
    per_video_frechet_distance,
    sqrt_factor,
)
from tests.ddp import run_ddp


def _scipy_frechet(x: np.ndarray, y: np.ndarray, ddof: int = 1) -> float:
    """The reference scripts' route: np.cov + scipy.linalg.sqrtm of the product, real part."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1 = np.cov(x, rowvar=False, ddof=ddof) if len(x) > 1 else np.zeros((x.shape[1],) * 2)
    s2 = np.cov(y, rowvar=False, ddof=ddof) if len(y) > 1 else np.zeros((y.shape[1],) * 2)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def _features(n: int, d: int, shift: float, seed: int) -> np.ndarray:
    """Correlated, non-negative, Inception-like features."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.maximum(rng.standard_normal((n, d)) @ mix + shift, 0.0)


class _Identity(nn.Module):
    """A 'feature extractor' for torchmetrics that returns its input (the features)."""

    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.slow
def test_pooled_fid_matches_pytorch_fid_and_torchmetrics_at_d2048():
    real, fake = _features(2200, 2048, 0.0, 0), _features(2100, 2048, 0.05, 1)
    ours = FrechetDistance(num_features=2048, mode="pooled")
    for chunk in np.array_split(real, 3):
        ours.update(torch.from_numpy(chunk), real=True)
    for chunk in np.array_split(fake, 4):
        ours.update(torch.from_numpy(chunk), real=False)
    value = float(ours.compute())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        expected = calculate_frechet_distance(
            real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False)
        )
    assert value == pytest.approx(expected, rel=1e-6)

    tm = FrechetInceptionDistance(feature=_Identity())
    tm.update(torch.from_numpy(real), real=True)
    tm.update(torch.from_numpy(fake), real=False)
    assert value == pytest.approx(float(tm.compute()), rel=1e-6)


@pytest.mark.slow
def test_per_video_matches_scipy_sqrtm_at_d2048():
    rng = np.random.default_rng(3)
    gen = rng.standard_normal((1, 16, 2048)) * 0.5 + 0.2
    ref = rng.standard_normal((1, 16, 2048))
    value = per_video_frechet_distance(torch.from_numpy(gen), torch.from_numpy(ref))
    assert float(value[0]) == pytest.approx(_scipy_frechet(gen[0], ref[0]), rel=1e-5)


@pytest.mark.parametrize(
    ("n1", "n2", "covariance"), [(16, 16, "unbiased"), (16, 9, "unbiased"), (5, 12, "biased")]
)
def test_per_video_matches_scipy_small(n1, n2, covariance):
    rng = np.random.default_rng(n1 * 100 + n2)
    gen = np.abs(rng.standard_normal((4, n1, 96))) + 0.1 * np.arange(4)[:, None, None]
    ref = np.abs(rng.standard_normal((4, n2, 96)))
    ours = per_video_frechet_distance(torch.from_numpy(gen), torch.from_numpy(ref), covariance)
    ddof = 1 if covariance == "unbiased" else 0
    for i in range(4):
        assert float(ours[i]) == pytest.approx(_scipy_frechet(gen[i], ref[i], ddof), rel=1e-5)


def test_per_video_single_sample_is_squared_feature_distance():
    g = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    r = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)
    assert per_video_frechet_distance(g, r).tolist() == [1.0 + 4.0 + 4.0]


def test_identical_and_degenerate_statistics_are_defined():
    x = torch.from_numpy(_features(300, 32, 0.0, 5))
    mu, sigma = gaussian_moments(x.sum(0), x.T @ x, len(x))
    assert 0.0 <= float(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * float(torch.trace(sigma))
    zero = torch.zeros(32, 32, dtype=torch.float64)  # constant features: zero covariance both sides
    assert float(frechet_distance(mu, zero, mu + 1, zero)) == pytest.approx(32.0)
    same = per_video_frechet_distance(x[None, :16], x[None, :16])
    assert 0.0 <= float(same[0]) < 1e-9


def test_rank_deficient_uses_eigh_and_matches_scipy():
    x, y = _features(40, 128, 0.0, 7), _features(50, 128, 0.1, 8)  # n < d: singular covariances
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    mu1, s1 = gaussian_moments(xt.sum(0), xt.T @ xt, len(x))
    mu2, s2 = gaussian_moments(yt.sum(0), yt.T @ yt, len(y))
    assert int(torch.linalg.cholesky_ex(s1).info) != 0  # the Cholesky route cannot apply here
    factor = sqrt_factor(s1)
    assert torch.allclose(factor @ factor.T, s1, atol=1e-10)
    assert float(frechet_distance(mu1, s1, mu2, s2)) == pytest.approx(_scipy_frechet(x, y), rel=1e-4)


def test_pooled_warnings_and_nan_for_too_few_samples():
    metric = FrechetDistance(num_features=4, mode="pooled")
    metric.update(torch.randn(1, 4), real=True)
    metric.update(torch.randn(5, 4), real=False)
    with pytest.warns(UserWarning, match="at least 2 samples"):
        assert torch.isnan(metric.compute())
    metric = FrechetDistance(num_features=8, mode="pooled")
    metric.update(torch.randn(4, 8), real=True)
    metric.update(torch.randn(4, 8), real=False)
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert torch.isfinite(metric.compute())
    empty = FrechetDistance(num_features=4)
    with pytest.warns(UserWarning, match="no video pairs"):
        assert torch.isnan(empty.compute())


def test_update_forms_and_errors():
    pooled = FrechetDistance(num_features=3, mode="pooled")
    with pytest.raises(ValueError, match="needs update"):
        pooled.update(torch.randn(4, 3))
    with pytest.raises(ValueError, match="not both"):
        pooled.update(torch.randn(4, 3), torch.randn(4, 3), real=True)
    with pytest.raises(ValueError, match="d=3"):
        pooled.update(torch.randn(4, 5), real=True)
    with pytest.raises(ValueError, match="finite"):
        pooled.update(torch.full((4, 3), float("nan")), real=True)
    per_video = FrechetDistance(num_features=3)
    with pytest.raises(ValueError, match="needs pairs"):
        per_video.update(torch.randn(2, 4, 3), real=True)
    with pytest.raises(ValueError, match="same number of videos"):
        per_video.update(torch.randn(2, 4, 3), torch.randn(3, 4, 3))
    for kwargs in ({"mode": "x"}, {"covariance": "x"}, {"num_features": 0}):
        with pytest.raises(ValueError):
            FrechetDistance(**{"num_features": 3, **kwargs})
    with pytest.raises(ValueError, match="protocol"):
        FID(protocol="nope", weights=None)


def test_state_is_fixed_size_and_never_in_state_dict():
    metric = FrechetDistance(num_features=16, mode="pooled")
    nbytes = lambda: sum(t.numel() * t.element_size() for t in metric.metric_state.values())  # noqa: E731
    metric.update(torch.randn(8, 16), real=True)
    before = nbytes()
    for _ in range(200):
        metric.update(torch.randn(8, 16), real=True)
        metric.update(torch.randn(8, 16), real=False)
    assert nbytes() == before
    assert all(isinstance(v, torch.Tensor) for v in metric.metric_state.values())
    assert metric.state_dict() == {}


def test_reference_factor_cache_save_load_and_reset_real(tmp_path):
    torch.manual_seed(0)
    real, fake = torch.randn(400, 12), torch.randn(300, 12) + 0.5
    metric = FrechetDistance(num_features=12, mode="pooled", reset_real_features=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    first = metric.compute()
    factor = metric._factor_cache[2]
    metric.reset()  # keeps the real side
    metric.update(fake, real=False)
    assert torch.allclose(metric.compute(), first)
    assert metric._factor_cache[2] is factor  # reference decomposition reused, not recomputed

    path = tmp_path / "ref.pt"
    metric.save_reference_statistics(path, fingerprint="toy-v1")
    fresh = FrechetDistance(num_features=12, mode="pooled")
    fresh.load_reference_statistics(path, expected_fingerprint="toy-v1")
    fresh.update(fake, real=False)
    assert torch.allclose(fresh.compute(), first)
    with pytest.raises(ValueError, match="fingerprint"):
        fresh.load_reference_statistics(path, expected_fingerprint="other")
    with pytest.raises(ValueError, match="computed with"):
        other = FID(protocol="standard", num_features=12, feature_extractor=_tiny_ref())
        other.load_reference_statistics(path)
    with pytest.raises(RuntimeError, match="pooled"):
        FrechetDistance(num_features=12).save_reference_statistics(path)


# ---------------------------------------------------------------------------------------- video metrics
class _TinyFrameNet(nn.Module):
    """uint8 [N,3,H,W] -> [N,6]: a small deterministic CNN standing in for Inception."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 5, stride=2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(frames.float() / 255.0)).mean(dim=(2, 3))


def _tiny_factory(weights):
    return _TinyFrameNet()


def _tiny_ref() -> BackboneRef:
    return BackboneRef("tiny_frame_net", _tiny_factory, None)


def _videos(b: int, t: int, h: int = 24, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, h, w), dtype=torch.uint8, generator=g)


def test_fid_per_video_equals_functional_on_backbone_features():
    gen, ref = _videos(3, 20, seed=1), _videos(3, 18, 20, 30, seed=2)
    fid = FID(feature_extractor=_tiny_ref(), num_features=6)
    fid.update(gen, ref)
    net = _tiny_ref().get("cpu")
    with torch.no_grad():
        fg = torch.stack([net(v[:16]) for v in gen])
        fr = torch.stack([net(v[:16]) for v in ref])
    expected = np.mean([_scipy_frechet(fg[i].double().numpy(), fr[i].double().numpy()) for i in range(3)])
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-6)
    assert fid.state_dict() == {}


def test_edge_fid_feeds_opencv_canny_edges():
    gen, ref = _videos(2, 4, seed=3), _videos(2, 4, seed=4)
    efid = EdgeFID(feature_extractor=_tiny_ref(), num_features=6)
    efid.update(gen, ref)
    net = _tiny_ref().get("cpu")

    def cv_edges(video: torch.Tensor) -> torch.Tensor:
        out = []
        for frame in video.permute(0, 2, 3, 1).numpy():
            gray = cv2.cvtColor(np.ascontiguousarray(frame[..., ::-1]), cv2.COLOR_BGR2GRAY)
            out.append(np.repeat(cv2.Canny(gray, 100, 200)[None], 3, axis=0))
        return torch.from_numpy(np.stack(out))

    with torch.no_grad():
        vals = [
            _scipy_frechet(net(cv_edges(g)).double().numpy(), net(cv_edges(r)).double().numpy())
            for g, r in zip(gen, ref, strict=True)
        ]
    assert float(efid.compute()) == pytest.approx(np.mean(vals), rel=1e-6)
    assert torch.equal(edge_maps(gen[0], backend="torch"), cv_edges(gen[0]))


def test_fvd_jwbdh_v1_quirks_by_hand(tmp_path):
    gen, ref = _videos(2, 10, 40, 30, seed=5), _videos(2, 20, 40, 30, seed=6)
    fvd = FVD(weights=None)
    fvd.update(gen, ref)
    net = FVD(weights=None).backbone.get("cpu")

    def clip(video: torch.Tensor) -> torch.Tensor:
        frames = [
            cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA)
            for f in video[:16].permute(0, 2, 3, 1).numpy()
        ]
        frames += [np.zeros((224, 224, 3), np.uint8)] * (16 - len(frames))  # black padding
        x = torch.from_numpy(np.stack(frames)).float() / 255.0
        return x.permute(3, 0, 1, 2)[None]

    with torch.no_grad():
        diffs = [
            (
                net(clip(g), rescale=False, resize=False, return_features=True)
                - net(clip(r), rescale=False, resize=False, return_features=True)
            )
            .double()
            .square()
            .sum()
            for g, r in zip(gen, ref, strict=True)
        ]
    # the script's single-clip trace term tr(1e-6 I + 1e-6 I - 2 sqrtm(2e-6 I @ 2e-6 I)) = -2e-6 * 400
    expected = float(torch.stack(diffs).mean()) - 8e-4
    assert float(fvd.compute()) == pytest.approx(expected, rel=1e-6, abs=1e-9)

    # the TorchScript loading path with a file written here
    path = tmp_path / "i3d_toy.pt"
    torch.jit.script(net).save(str(path))
    scripted = FVD(weights=str(path))
    scripted.update(gen, ref)
    assert torch.allclose(scripted.compute(), fvd.compute(), rtol=1e-6)


def test_fvd_standard_pooled_biased_covariance():
    gen, ref = _videos(5, 16, 32, 32, seed=7), _videos(6, 17, 32, 32, seed=8)
    fvd = FVD(weights=None, protocol="standard", covariance="biased")
    fvd.update(gen, real=False)
    fvd.update(ref, real=True)
    net = I3DStandIn()
    net.load_state_dict(fvd.backbone.get("cpu").state_dict())
    with torch.no_grad():
        f = lambda v: net(v[:, :16].float().permute(0, 2, 1, 3, 4), True, True, True).double().numpy()  # noqa: E731
        fg, fr = f(gen), f(ref)
    mu1, mu2 = fr.mean(0), fg.mean(0)
    s1, s2 = np.cov(fr, rowvar=False, ddof=0), np.cov(fg, rowvar=False, ddof=0)
    expected = (
        ((mu1 - mu2) ** 2).sum()
        + np.trace(s1)
        + np.trace(s2)
        - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    )
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert float(fvd.compute()) == pytest.approx(expected, rel=1e-4, abs=1e-9)
    with pytest.raises(ValueError, match="at least 16 frame"):
        fvd.update(_videos(1, 8), real=True)


# ------------------------------------------------------------------------------------------------ DDP
def _ddp_worker(rank: int, world_size: int, batches: list) -> dict:
    pooled = FrechetDistance(num_features=6, mode="pooled")
    per_video = FrechetDistance(num_features=6)
    fid = FID(feature_extractor=_tiny_ref(), num_features=6)
    for i, (real, fake, gen_v, ref_v) in enumerate(batches):
        take = (i < 2 * world_size and i % world_size == rank) or (i >= 2 * world_size and rank == 0)
        if not take:
            continue  # uneven: rank 0 also takes every batch past the first 2 * world_size
        pooled.update(real, real=True)
        pooled.update(fake, real=False)
        per_video.update(fake.view(-1, 4, 6), real.view(-1, 4, 6))
        fid.update(gen_v, ref_v)
    return {"pooled": pooled.compute(), "per_video": per_video.compute(), "fid": fid.compute()}


def _ddp_batches() -> list:
    g = torch.Generator().manual_seed(11)
    batches = []
    for i in range(7):
        n = 8 * (i + 1)
        batches.append(
            (
                torch.randn(n, 6, generator=g, dtype=torch.float64),
                torch.randn(n, 6, generator=g, dtype=torch.float64) + 0.3,
                _videos(i % 2 + 1, 5, seed=20 + i),
                _videos(i % 2 + 1, 6, seed=40 + i),
            )
        )
    return batches


@pytest.mark.ddp
def test_ddp_uneven_updates_equal_single_process():
    batches = _ddp_batches()
    single = _ddp_worker(0, 1, batches)
    results = run_ddp(_ddp_worker, world_size=2, args=(batches,))
    for rank_result in results:
        for key, value in single.items():
            assert torch.allclose(rank_result[key], value, rtol=1e-9), key


def test_pooled_pair_update_is_all_or_nothing():
    """A rejected reference side leaves the generated side's states untouched too (no half-added pair)."""
    m = FrechetDistance(num_features=4, mode="pooled")
    with pytest.raises(ValueError, match="`reference` must be finite"):
        m.update(torch.randn(5, 4), torch.full((5, 4), float("nan")))
    assert int(m.fake_count) == 0 and int(m.real_count) == 0 and float(m.fake_sum.abs().sum()) == 0.0
    m.update(torch.randn(5, 4), torch.randn(5, 4))
    assert int(m.fake_count) == 5 and int(m.real_count) == 5
