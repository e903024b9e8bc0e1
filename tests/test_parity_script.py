"""jwbdh-v1 Fréchet metrics against the benchmark script's own formulas, not against our helpers.

The references below restate the math of JWB-DH-V1's ``FID_calculate.py`` (github.com/deepreasonings/
WholeBodyBenchmark, mirror silent-commit/WholeBodyBenchmark @ c4902bc, the file's lines 245-285:
``calculate_statistics`` + ``calculate_fid`` used for FID and E-FID; lines 329-423: ``compute_stats`` +
``compute_fvd`` used for FVD), keeping their numpy/scipy calls, constants, dtypes and None/NaN paths; only
the logging and try/except scaffolding is left out, and ``sqrtm``'s ``disp=False`` (removed in SciPy 1.18;
it only changed the return form) is not passed.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from metrics.backbones.cache import BackboneRef
from metrics.frechet import FID, FVD, EdgeFID
from metrics.functional.frechet import script_fvd_distance


# ---------------------------------------------------------------- the script's formulas (reference)
def script_calculate_statistics(features: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """FID_calculate.py ``calculate_statistics``: np.cov of one frame is NaN -> (None, None)."""
    if features.size == 0:
        return None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Degrees of freedom <= 0" for one sample
        mu = np.mean(features, axis=0)
        sigma = np.cov(features, rowvar=False)
    if np.isnan(mu).any() or np.isnan(sigma).any():
        return None, None
    return mu, sigma


def script_calculate_fid(mu1, sigma1, mu2, sigma2, eps=1e-6) -> float | None:
    """FID_calculate.py ``calculate_fid`` (called as calculate_fid(mu_gt, sigma_gt, mu_gen, sigma_gen))."""
    if mu1 is None or mu2 is None or sigma1 is None or sigma2 is None:
        return None
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1 + sigma2 - 2 * covmean))


def script_compute_stats(feats: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """FID_calculate.py ``compute_stats``: one sample -> 1e-6 * I instead of a covariance."""
    if feats.size == 0:
        return None, None
    mu = np.mean(feats, axis=0)
    if feats.shape[0] == 1:
        sigma = np.eye(feats.shape[1]) * 1e-6
    else:
        sigma = np.cov(feats, rowvar=False)
    if np.isnan(mu).any() or np.isnan(sigma).any():
        return None, None
    if np.ndim(sigma) == 0:
        sigma = np.array([[sigma]])
    return mu, sigma


def script_compute_fvd(feats_fake: np.ndarray, feats_real: np.ndarray) -> float | None:
    """FID_calculate.py ``compute_fvd``: eps * I always added inside sqrtm, not in the trace."""
    mu_gen, sigma_gen = script_compute_stats(feats_fake)
    mu_real, sigma_real = script_compute_stats(feats_real)
    if mu_gen is None or mu_real is None or sigma_gen is None or sigma_real is None:
        return None
    eps = 1e-6
    sigma_gen_reg = sigma_gen + np.eye(sigma_gen.shape[0]) * eps
    sigma_real_reg = sigma_real + np.eye(sigma_real.shape[0]) * eps
    m = np.square(mu_gen - mu_real).sum()
    sigma_product = np.dot(sigma_gen_reg, sigma_real_reg)
    s = scipy.linalg.sqrtm(sigma_product)
    if np.iscomplexobj(s):
        s = s.real
    trace_term = np.trace(sigma_gen + sigma_real - 2 * s)
    return float(m + trace_term)


# ------------------------------------------------------------------------------------------ helpers
def _videos(b: int, t: int, h: int = 36, w: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, h, w), dtype=torch.uint8, generator=g)


def _i3d_clip(video: torch.Tensor) -> torch.Tensor:
    """FID_calculate.py compute_fvd_for_videos: 16 frames (black-padded), INTER_AREA 224, [0, 1], BCTHW."""
    frames = list(video[:16].permute(0, 2, 3, 1).numpy())
    frames += [np.zeros_like(frames[0])] * (16 - len(frames))
    resized = [cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA) for f in frames]
    return (torch.from_numpy(np.stack(resized)).float() / 255.0).permute(3, 0, 1, 2)[None]


class _FrameNet(nn.Module):
    """uint8 [N,3,H,W] -> [N,8]: a small deterministic CNN standing in for Inception."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5, stride=2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(frames.float() / 255.0)).mean(dim=(2, 3))


def _frame_ref() -> BackboneRef:
    return BackboneRef("parity_frame_net", lambda weights: _FrameNet(), None)


# -------------------------------------------------------------------------------------------------- FVD
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_script_fvd_distance_equals_the_script_lines(scale):
    rng = np.random.default_rng(int(scale * 1000))
    gen = (rng.standard_normal((5, 400)) * scale).astype(np.float32)  # I3D features are float32
    ref = (rng.standard_normal((5, 400)) * scale + 0.1 * scale).astype(np.float32)
    ref[4] = gen[4]  # identical clips
    ours = script_fvd_distance(torch.from_numpy(gen), torch.from_numpy(ref))
    expected = [script_compute_fvd(gen[i : i + 1], ref[i : i + 1]) for i in range(5)]
    # the script sums float32 squares, ours float64: they agree to float32 round-off of ||g - r||^2
    squared = ((gen.astype(np.float64) - ref) ** 2).sum(axis=1)
    for i in range(5):
        assert abs(float(ours[i]) - expected[i]) <= 1e-6 * squared[i] + 1e-15, i
    assert float(ours[4]) == pytest.approx(-8e-4, abs=1e-15) and expected[4] == pytest.approx(
        -8e-4, abs=1e-15
    )


def test_fvd_metric_jwbdh_v1_equals_the_script_per_pair_and_mean():
    gen, ref = _videos(3, 12, seed=1), _videos(3, 20, 30, 40, seed=2)  # 12 frames: black-padded to 16
    fvd = FVD(weights=None)
    fvd.update(gen, ref)
    net = fvd.backbone.get("cpu")
    with torch.no_grad():
        values = [
            script_compute_fvd(
                net(_i3d_clip(g), rescale=False, resize=False, return_features=True).numpy(),
                net(_i3d_clip(r), rescale=False, resize=False, return_features=True).numpy(),
            )
            for g, r in zip(gen, ref, strict=True)
        ]
    assert float(fvd.compute()) == pytest.approx(np.mean(values), rel=1e-6, abs=1e-9)
    assert int(fvd.num_pairs) == 3 and int(fvd.num_skipped) == 0


def test_identical_videos_score_minus_8e4_in_jwbdh_v1_and_zero_in_standard():
    videos = _videos(2, 16, 32, 32, seed=3)
    fvd = FVD(weights=None)
    fvd.update(videos, videos.clone())
    net = fvd.backbone.get("cpu")
    with torch.no_grad():
        f = net(_i3d_clip(videos[0]), rescale=False, resize=False, return_features=True).numpy()
    assert script_compute_fvd(f, f) == pytest.approx(-8e-4, abs=1e-15)  # the script's own value
    assert float(fvd.compute()) == pytest.approx(-8e-4, abs=1e-15)

    # standard protocol keeps the textbook value: per video 0 for identical clips, ||f_g - f_r||^2 otherwise
    std = FVD(weights=None, protocol="standard", mode="per_video")
    std.update(videos, videos.clone())
    assert float(std.compute()) == 0.0
    other = _videos(2, 16, 32, 32, seed=4)
    std.reset()
    std.update(videos, other)
    with torch.no_grad():
        feats = [
            net(v[:16].float().permute(1, 0, 2, 3)[None], rescale=True, resize=True, return_features=True)
            for v in (*videos, *other)
        ]
    textbook = np.mean([float((feats[i] - feats[i + 2]).double().square().sum()) for i in range(2)])
    assert float(std.compute()) == pytest.approx(textbook, rel=1e-6)


def test_published_fvds_carry_the_minus_8e4_term():
    """FIDres/1-hand-score.csv (first rows): each value + 0.0008 is a float32 number, i.e. the script's
    float32 ||f_g - f_r||^2 plus the -8e-4 trace term; our formula on that squared distance gives it back."""
    published = [860.9863826171875, 1729.44109453125, 2016.751153125, 1745.7764216796875, 1555.689873828125]
    for value in published:
        m = value + 0.0008
        assert float(np.float32(m)) == m and float(np.float32(value)) != value
        g = torch.tensor([[np.sqrt(m), 0.0]], dtype=torch.float64)  # ||g - 0||^2 = m (d = 400 below)
        features = torch.cat([g, torch.zeros(1, 398, dtype=torch.float64)], dim=1)
        ours = float(script_fvd_distance(features, torch.zeros_like(features)))
        assert ours == pytest.approx(value, abs=1e-9)


# -------------------------------------------------------------------------------- one-frame videos
def test_one_frame_videos_get_no_fid_score_and_are_counted_as_skipped():
    net = _frame_ref().get("cpu")

    def script_fid(g: torch.Tensor, r: torch.Tensor) -> float | None:
        with torch.no_grad():
            gen_feat, gt_feat = net(g[:16]).double().numpy(), net(r[:16]).double().numpy()
        mu_gt, sigma_gt = script_calculate_statistics(gt_feat)
        mu_gen, sigma_gen = script_calculate_statistics(gen_feat)
        return script_calculate_fid(mu_gt, sigma_gt, mu_gen, sigma_gen)

    long_gen, long_ref = _videos(2, 16, seed=5), _videos(2, 18, seed=6)
    one_ref, one_gen = _videos(2, 1, seed=7), _videos(1, 1, seed=8)
    # the script: no value for a pair with a one-frame side (written as an empty CSV cell, and the
    # summary's pandas mean skips it): nanmean over the rows
    rows = [script_fid(g, r) for g, r in zip(long_gen, long_ref, strict=True)]
    rows += [script_fid(g, r) for g, r in zip(long_gen, one_ref, strict=True)]
    rows += [script_fid(one_gen[0], long_ref[0])]
    assert rows[2] is None and rows[3] is None and rows[4] is None and None not in rows[:2]
    expected = np.nanmean([np.nan if v is None else v for v in rows])

    fid = FID(feature_extractor=_frame_ref(), num_features=8)
    assert fid.min_frames == 2  # what the regional suite reads to skip one-frame region videos itself
    with pytest.warns(UserWarning, match="skipped 2 video pair"):
        fid.update(long_gen, one_ref)  # reference side has one frame, generated 16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per metric, not per update
        fid.update(one_gen, long_ref[:1])  # generated side has one frame
        fid.update(long_gen, long_ref)
    assert int(fid.num_skipped) == 3 and int(fid.num_pairs) == 2
    assert float(fid.compute()) == pytest.approx(expected, rel=1e-6)

    # only skipped pairs: NaN, and the warning says why
    only = EdgeFID(feature_extractor=_frame_ref(), num_features=8)
    assert only.min_frames == 2
    with pytest.warns(UserWarning, match="skipped"):
        only.update(one_gen, one_gen)
    with pytest.warns(UserWarning, match=r"no video pairs to score \(1 skipped"):
        assert np.isnan(float(only.compute()))
    only.reset()
    assert int(only.num_skipped) == 0


def test_one_frame_videos_still_get_an_fvd_and_pooled_fid_accepts_them():
    # FVD: the script pads a one-frame video with black frames and scores it; so do we
    one = _videos(1, 1, 32, 32, seed=9)
    ref = _videos(1, 16, 32, 32, seed=10)
    fvd = FVD(weights=None)
    assert fvd.min_frames == 1
    fvd.update(one, ref)
    net = fvd.backbone.get("cpu")
    with torch.no_grad():
        expected = script_compute_fvd(
            net(_i3d_clip(one[0]), rescale=False, resize=False, return_features=True).numpy(),
            net(_i3d_clip(ref[0]), rescale=False, resize=False, return_features=True).numpy(),
        )
    assert int(fvd.num_skipped) == 0 and float(fvd.compute()) == pytest.approx(expected, rel=1e-6)
    # pooled FID has no per-video covariance: one-frame videos are ordinary samples
    pooled = FID(protocol="standard", feature_extractor=_frame_ref(), num_features=8)
    assert pooled.min_frames == 1
    pooled.update(_videos(3, 1, seed=11), _videos(3, 1, seed=12))
    assert int(pooled.real_count) == 3
