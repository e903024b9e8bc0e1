"""Reference-feature cache (metrics/features.py), its use by the Fréchet metrics and the suite, and the
one-pass canonical batch (metrics.video.canonical_pair)."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from metrics import FID, FVD
from metrics.backbones.cache import BackboneRef
from metrics.features import FeatureCache, cached_features
from metrics.suite import AvatarBatch, RegionalSuite
from metrics.video import canonical_pair, to_uint8

D = 6


class CountingEncoder(nn.Module):
    """uint8 [N, 3, H, W] -> [N, D] (a fixed random projection of 4x4 pooled pixels); counts frames seen."""

    frames_seen = 0

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 16, D)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        CountingEncoder.frames_seen += frames.shape[0]
        x = nn.functional.adaptive_avg_pool2d(frames.float() / 255.0, 4).flatten(1)
        return torch.tanh(self.proj(x) * 3)


def _encoder_ref() -> BackboneRef:
    return BackboneRef("test_counting_encoder", lambda weights: CountingEncoder())


def _videos(seed: int, b: int = 3, t: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, 16, 16), generator=g, dtype=torch.uint8)


def test_cache_memory_and_disk_roundtrip_and_corrupt_files_are_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    feats = torch.randn(2, 4, D)
    cache.store("ns", ["a", "b"], feats)
    fresh = FeatureCache(tmp_path)  # a rerun: nothing in memory, everything on disk
    got = fresh.lookup("ns", ["a", "b", "c"])
    assert torch.equal(got[0], feats[0]) and torch.equal(got[1], feats[1]) and got[2] is None
    assert (fresh.hits, fresh.misses, fresh.rejected) == (2, 1, 0)
    assert fresh.lookup("other-namespace", ["a"]) == [None]
    # Corrupt one file: it is ignored (counted), never an exception.
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert len(files) == 2
    for path in files:
        with open(path, "wb") as fh:
            fh.write(b"not a torch file")
    again = FeatureCache(tmp_path)
    assert again.lookup("ns", ["a", "b"]) == [None, None] and again.rejected == 2


def test_cached_features_encodes_only_missing_videos_in_order():
    cache = FeatureCache()
    seen = []

    def encode(v):
        seen.append(v[:, 0, 0, 0, 0].tolist())
        return v.float().mean(dim=(2, 3, 4))[..., None]

    v = torch.arange(4).float().view(4, 1, 1, 1, 1).expand(4, 2, 3, 2, 2).contiguous()
    first = cached_features(cache, "ns", ["a", "b", "c", "d"], v, encode)
    mixed = cached_features(cache, "ns", ["x", "b", "y", "d"], v, encode)
    assert seen == [[0, 1, 2, 3], [0, 2]]  # second call: only rows 0 and 2 (ids x, y) are new
    assert torch.equal(mixed, first)


@pytest.mark.parametrize("mode", ["per_video", "pooled"])
def test_fid_with_reference_ids_equals_uncached_and_encodes_references_once(mode):
    gen1, gen2, ref = _videos(1), _videos(2), _videos(3)
    ids = ["v0", "v1", "v2"]
    plain = FID(feature_extractor=_encoder_ref(), num_features=D, mode=mode, num_frames=None)
    cached = FID(
        feature_extractor=_encoder_ref(),
        num_features=D,
        mode=mode,
        num_frames=None,
        reference_cache=FeatureCache(),
    )
    for gen in (gen1, gen2):  # two "epochs" over the same references
        plain.update(gen, ref)
        before = CountingEncoder.frames_seen
        cached.update(gen, ref, reference_ids=ids)
        encoded = CountingEncoder.frames_seen - before
        expected = 2 * 15 if gen is gen1 else 15  # generated always; references only the first time
        assert encoded == expected
    assert torch.equal(cached.compute(), plain.compute())
    assert cached.reference_cache.hits == 3 and cached.reference_cache.misses == 3


def test_reference_ids_are_validated():
    fid = FID(feature_extractor=_encoder_ref(), num_features=D, reference_cache=FeatureCache())
    with pytest.raises(ValueError, match="`reference_ids` must hold one non-empty str id per video"):
        fid.update(_videos(1), _videos(2), reference_ids=["a", "b"])
    with pytest.raises(ValueError, match=r"`reference_cache` must be a metrics\.features\.FeatureCache"):
        FID(feature_extractor=_encoder_ref(), num_features=D, reference_cache={})
    pooled = FVD(weights=None, mode="pooled")
    with pytest.raises(ValueError, match="`reference_ids` name reference videos"):
        pooled.update(_videos(1), real=False, reference_ids=["a", "b", "c"])


def test_feature_namespace_separates_metrics_and_precisions():
    a = FID(feature_extractor=_encoder_ref(), num_features=D)
    b = FID(feature_extractor=_encoder_ref(), num_features=D, precision="bf16")
    c = FID(feature_extractor=_encoder_ref(), num_features=D, num_frames=4)
    assert len({a.feature_namespace, b.feature_namespace, c.feature_namespace}) == 3


def test_suite_reference_cache_second_evaluation_is_identical_and_skips_reference_encoding():
    metrics = {"FID": {"feature_extractor": _encoder_ref(), "num_features": D, "num_frames": None}}
    gen, ref = _videos(4, b=2, t=6), _videos(5, b=2, t=6)
    plain = RegionalSuite(metrics, regions=("whole_body",))
    cache = FeatureCache()
    suite = RegionalSuite(metrics, regions=("whole_body",), reference_cache=cache)
    results = []
    for _ in range(2):
        plain.update(AvatarBatch(generated=gen, reference=ref))
        before = CountingEncoder.frames_seen
        suite.update(AvatarBatch(generated=gen, reference=ref, video_ids=["clip-a", "clip-b"]))
        results.append(CountingEncoder.frames_seen - before)
        assert suite.compute() == plain.compute()
        suite.reset()
        plain.reset()
    assert results == [24, 12] and len(cache) == 2
    with pytest.raises(ValueError, match="`video_ids`"):
        suite.update(AvatarBatch(generated=gen, reference=ref, video_ids=["only-one"]))


def test_canonical_pair_validates_once_and_quantises_like_every_metric():
    g = torch.rand(2, 3, 3, 8, 8)
    r = torch.rand(2, 3, 3, 8, 8)
    cg, cr = canonical_pair(g, r)
    assert cg.dtype == cr.dtype == torch.uint8
    assert torch.equal(cg, to_uint8(g)) and torch.equal(cr, to_uint8(r))
    # Independent quantisation: round half to even of x * 255.
    assert torch.equal(cg, torch.round(g * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="`reference` is a float video with values in"):
        canonical_pair(g, r * 2 + 0.5)


class NaNForBrightVideos(nn.Module):
    """Features that are NaN for frames brighter than mid-grey (a stand-in for a backbone overflow)."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        mean = frames.float().mean(dim=(1, 2, 3), keepdim=False)[:, None]
        feats = torch.cat([mean / 255, (mean / 255) ** 2, torch.sin(mean)], dim=1)
        return torch.where(mean > 128, torch.full_like(feats, float("nan")), feats)


def test_non_finite_pair_values_are_counted_on_the_device_and_left_out():
    ref = BackboneRef("test_nan_for_bright", lambda weights: NaNForBrightVideos())
    fid = FID(feature_extractor=ref, num_features=3, num_frames=None)
    g = torch.Generator().manual_seed(0)
    dark = torch.randint(0, 100, (2, 4, 3, 8, 8), generator=g, dtype=torch.uint8)
    bright = torch.randint(200, 256, (1, 4, 3, 8, 8), generator=g, dtype=torch.uint8)
    ref_videos = torch.randint(0, 100, (3, 4, 3, 8, 8), generator=g, dtype=torch.uint8)
    fid.update(torch.cat([dark, bright]), ref_videos)  # no exception: the bright pair is counted
    assert int(fid.num_nonfinite) == 1 and int(fid.num_pairs) == 2
    expected = FID(feature_extractor=ref, num_features=3, num_frames=None)
    expected.update(dark, ref_videos[:2])
    with pytest.warns(UserWarning, match="1 video pair\\(s\\) gave a non-finite distance"):
        value = fid.compute()
    assert torch.equal(value, expected.compute())
