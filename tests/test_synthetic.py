"""jwbdh_callbacks.synthetic: procedural avatars, keypoints, speech-like audio, degradations, data loading.

Checks are against what was drawn and synthesised (pixels, spectra, envelopes), not against the module's
own bookkeeping, plus the degradation acceptance of issue 4 on the paired pixel metrics and on per-video
Fréchet distances with a small random backbone (the smoke setting).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from jwbdh_callbacks import synthetic as syn
from jwbdh_callbacks.synthetic import (
    AvatarIdentity,
    SyntheticAvatarDataModule,
    SyntheticAvatarDataset,
    add_noise,
    collate_avatar_batch,
    degrade,
    frame_average,
    frozen_frames,
    gaussian_blur,
    generate_sample,
    identity_change,
    make_speech,
    region_boxes,
    region_mask,
    render_avatar,
    render_background,
    simulate_detector_misses,
    temporal_jitter,
)

FACE = list(range(23, 91))
HANDS = list(range(91, 133))


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """The tensors here are small: intra-op threads only add synchronisation on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def sample() -> syn.AvatarSample:
    return generate_sample(5)


@pytest.fixture(scope="module")
def long_sample() -> syn.AvatarSample:
    """48 frames (~2 s) at twice the default size: enough syllables and pixels for correlations."""
    return generate_sample(11, num_frames=48, height=320, width=256)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-12))


def _pixel(video: torch.Tensor, t: int, x: float, y: float) -> torch.Tensor:
    return video[t, :, round(float(y)), round(float(x))].float()


# ---------------------------------------------------------------------------------------------------------
# Determinism, shapes, dtypes
# ---------------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_tensors(sample: syn.AvatarSample) -> None:
    again = generate_sample(5)
    for name in ("video", "keypoints", "audio", "envelope"):
        assert torch.equal(getattr(sample, name), getattr(again, name)), name
    assert sample.text == again.text and sample.identity == again.identity
    other = generate_sample(6)
    assert not torch.equal(sample.video, other.video)
    assert not torch.equal(sample.audio, other.audio)
    # identity and motion are separate: same motion seed with another identity -> same envelope and text
    same_motion = generate_sample(5, identity=6)
    assert torch.equal(same_motion.envelope, sample.envelope) and same_motion.text == sample.text
    assert not torch.equal(same_motion.video, sample.video)
    # a longer clip from the same seed starts with the shorter one (only the audio's last ms differ)
    longer = generate_sample(5, num_frames=24)
    assert torch.equal(longer.video[:16], sample.video) and torch.equal(
        longer.keypoints[:16], sample.keypoints
    )
    assert torch.allclose(longer.audio[:9600], sample.audio[:9600])


def test_shapes_and_dtypes(sample: syn.AvatarSample) -> None:
    assert sample.video.shape == (16, 3, 160, 128) and sample.video.dtype == torch.uint8
    assert sample.keypoints.shape == (16, 133, 3) and sample.keypoints.dtype == torch.float32
    assert sample.audio.shape == (16 * 16000 // 25,) and sample.audio.dtype == torch.float32
    assert sample.envelope.shape == (16,) and sample.fps == 25.0 and sample.sample_rate == 16000
    assert isinstance(sample.text, str) and sample.text.endswith(".") and sample.text[0].isupper()
    small = generate_sample(2, num_frames=5, height=72, width=96, fps=30.0, sample_rate=8000)
    assert small.video.shape == (5, 3, 72, 96)
    assert small.audio.shape == (round(5 / 30 * 8000),)
    assert small.keypoints.shape == (5, 133, 3)


# ---------------------------------------------------------------------------------------------------------
# Keypoints
# ---------------------------------------------------------------------------------------------------------
def test_keypoints_inside_frame_with_full_scores(sample: syn.AvatarSample) -> None:
    kp = sample.keypoints
    assert torch.isfinite(kp).all()
    assert (kp[..., 0] >= 0).all() and (kp[..., 0] <= 127).all()
    assert (kp[..., 1] >= 0).all() and (kp[..., 1] <= 159).all()
    assert (kp[..., 2] == 1.0).all()
    # COCO-WholeBody sides: the person's left (odd body indices 5, 7, 9 ...) is on the image's right
    assert (kp[:, 5, 0] > kp[:, 6, 0]).all() and (kp[:, 9, 0] > kp[:, 10, 0]).all()
    assert (kp[:, 91, 0] > kp[:, 112, 0]).all()  # left-hand wrist right of the right-hand wrist
    # hand wrists are the body wrists; the body nose is the face's nose tip (iBUG 30)
    assert torch.equal(kp[:, 9, :2], kp[:, 91, :2]) and torch.equal(kp[:, 10, :2], kp[:, 112, :2])
    assert torch.equal(kp[:, 0, :2], kp[:, 23 + 30, :2])
    # anatomy: head above shoulders above hips above knees above ankles; chin (iBUG 8) below the nose
    ys = kp[..., 1]
    assert (ys[:, 0] < ys[:, 5]).all() and (ys[:, 5] < ys[:, 11]).all() and (ys[:, 11] < ys[:, 13]).all()
    assert (ys[:, 13] < ys[:, 15]).all() and (ys[:, 23 + 8] > ys[:, 0]).all()


def test_upper_framing_marks_out_of_frame_points() -> None:
    s = generate_sample(5, framing="upper")
    kp = s.keypoints
    inside = (kp[..., 0] >= -0.5) & (kp[..., 0] <= 127.5) & (kp[..., 1] >= -0.5) & (kp[..., 1] <= 159.5)
    assert torch.equal(kp[..., 2] == 1.0, inside)
    assert (kp[:, [13, 14, 15, 16, *range(17, 23)], 2] == 0).all()  # knees, ankles, feet below the frame
    assert (kp[:, FACE + HANDS, 2] == 1).all()
    # bigger than in the full framing
    full = generate_sample(5)
    assert (kp[:, FACE, 0].amax(1) - kp[:, FACE, 0].amin(1)).mean() > 1.5 * (
        full.keypoints[:, FACE, 0].amax(1) - full.keypoints[:, FACE, 0].amin(1)
    ).mean()


def test_keypoints_lie_on_drawn_features(long_sample: syn.AvatarSample) -> None:
    s = long_sample
    video, kp = s.video, s.keypoints
    background = render_background(s.identity, 320, 256).float()
    dist = (video.float() - background[None]).norm(dim=1)  # [T, H, W] colour distance to the empty scene
    xs, ys = kp[..., 0].round().long(), kp[..., 1].round().long()
    at_kp = dist[torch.arange(kp.shape[0])[:, None], ys, xs]  # [T, 133]
    # every keypoint (body, feet, face, hands) sits on the drawn person, not on the background
    assert (at_kp > 15).float().mean() > 0.98, (at_kp <= 15).nonzero()[:10]
    assert at_kp.median() > 40
    for idx in [0, 1, 2, 23 + 30, 23 + 33, *range(91, 133)]:  # nose, eyes, nostrils, all hand points
        assert (at_kp[:, idx] > 20).all(), idx
    # eyes: the body eye keypoints are on the dark iris when open; near-white sclera vanishes when closed
    open_t = torch.nonzero(s.motion.eye_open == 1).flatten()
    closed_t = torch.nonzero(s.motion.eye_open == 0).flatten()
    assert len(closed_t) >= 1 and len(open_t) >= 10
    skin = torch.tensor(s.identity.skin)
    for eye in (1, 2):
        colours = torch.stack([_pixel(video, int(t), kp[t, eye, 0], kp[t, eye, 1]) for t in open_t])
        assert (colours.mean(1) < skin.mean() - 40).all()
    x0, x1 = int(kp[:, 23 + 36 : 23 + 48, 0].min()) - 2, int(kp[:, 23 + 36 : 23 + 48, 0].max()) + 3
    y0, y1 = int(kp[:, 23 + 36 : 23 + 48, 1].min()) - 4, int(kp[:, 23 + 36 : 23 + 48, 1].max()) + 5
    white = (video[:, :, y0:y1, x0:x1].float() > 215).all(1).flatten(1).sum(1)
    assert white[closed_t].max() < 0.2 * white[open_t].float().mean()


def test_mouth_opening_follows_audio_envelope(long_sample: syn.AvatarSample) -> None:
    s = long_sample
    kp, env = s.keypoints, s.envelope
    assert env.min() >= 0 and env.max() <= 1 and env.max() > 0.5 and env.std() > 0.15
    # lips: distance between the inner upper (iBUG 62) and inner lower (iBUG 66) lip points
    opening = (kp[:, 23 + 66, :2] - kp[:, 23 + 62, :2]).norm(dim=-1)
    assert _pearson(opening, env) > 0.9
    # the drawn mouth: dark interior pixels inside the lip box grow with the envelope
    lips = kp[:, 23 + 48 : 23 + 60]
    x0, x1 = int(lips[..., 0].min()) - 1, int(lips[..., 0].max()) + 2
    y0, y1 = int(lips[..., 1].min()) - 1, int(lips[..., 1].max()) + 2
    crop = s.video[:, :, y0:y1, x0:x1].float()
    dark = ((crop[:, 0] < 110) & (crop[:, 1] < 60) & (crop[:, 2] < 70)).flatten(1).sum(1)
    assert _pearson(dark.float(), env) > 0.8
    # hands gesture with speech: wrists rise (smaller y) when the envelope is high (lagged smoothing)
    wrist_height = -(kp[:, 9, 1] + kp[:, 10, 1])
    assert _pearson(wrist_height, torch.cumsum(env, 0) - torch.cumsum(env, 0).roll(4).clamp(min=0)) > 0.3


# ---------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------
def _autocorr_f0(segment: np.ndarray, sr: int) -> float:
    x = segment - segment.mean()
    spec = np.fft.rfft(x, n=2 * len(x))
    ac = np.fft.irfft(np.abs(spec) ** 2)[: len(x)]
    lo, hi = int(sr / 400), int(sr / 60)
    lag = lo + int(np.argmax(ac[lo:hi]))
    return sr / lag


def test_audio_rms_follows_envelope_and_f0_in_range() -> None:
    sr = 16000
    for seed, f0 in ((1, 110.0), (2, 150.0), (3, 200.0)):
        speech = make_speech(seed, 3.0, sample_rate=sr, f0=f0)
        audio = speech.audio
        assert audio.dtype == torch.float32 and audio.shape == (3 * sr,) and speech.sample_rate == sr
        assert torch.isfinite(audio).all() and audio.abs().max() < 1.0
        # short-time RMS (25 fps windows) follows the envelope; silence is silent
        frames = 75
        rms = frame_average(audio**2, frames, 25.0, sr).sqrt()
        env = frame_average(speech.envelope, frames, 25.0, sr)
        assert _pearson(rms, env) > 0.9
        assert rms[env < 0.01].max() < 0.02 and rms[env > 0.5].min() > 0.05
        # syllable rate ~4-5 Hz while talking, with pauses (>= 0.2 s of silence between phrases)
        rate = len(speech.syllables) / 3.0
        assert 2.5 <= rate <= 6.5, rate
        silent = (speech.envelope == 0).numpy()
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(int), [0]]))))[::2]
        assert runs.max() > 0.2 * sr
        # f0 from the autocorrelation of voiced stretches: in [100, 220] Hz and near the synthesised track
        voiced = speech.envelope.numpy() > 0.6
        starts = np.flatnonzero(np.diff(voiced.astype(int)) == 1) + 1
        checked = 0
        for st in starts:
            if voiced[st : st + 1024].all():
                est = _autocorr_f0(audio.numpy()[st : st + 1024], sr)
                true = float(speech.f0[st : st + 1024].mean())
                assert 95.0 <= est <= 230.0 and abs(est - true) / true < 0.08, (est, true)
                checked += 1
        assert checked >= 2
        assert 100.0 <= float(speech.f0.min()) and float(speech.f0.max()) <= 220.0
        # a voiced spectrum: harmonic peaks, most energy below 4 kHz
        power = np.abs(np.fft.rfft(audio.numpy())) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / sr)
        assert power[freqs < 4000].sum() > 0.9 * power.sum()
        assert speech.text and len(speech.text.split()) == len(speech.words)
        assert [w for w, _, _ in speech.words] == [w.strip(",.").lower() for w in speech.text.split()]


def test_audio_and_video_share_the_envelope(sample: syn.AvatarSample) -> None:
    rms = frame_average(sample.audio**2, 16, 25.0, 16000).sqrt()
    assert _pearson(rms, sample.envelope) > 0.85
    assert torch.allclose(sample.envelope, frame_average(sample.speech.envelope, 16, 25.0, 16000).clamp(0, 1))


# ---------------------------------------------------------------------------------------------------------
# Degradations
# ---------------------------------------------------------------------------------------------------------
def test_noise_std_matches_sigma_and_is_seeded(sample: syn.AvatarSample) -> None:
    video = sample.video
    for sigma in (2.0, 5.0, 10.0):
        diff = add_noise(video, sigma, seed=1).float() - video.float()
        assert abs(float(diff.std()) - sigma) < 0.08 * sigma + 0.3, (sigma, float(diff.std()))
    assert torch.equal(add_noise(video, 5.0, seed=3), add_noise(video, 5.0, seed=3))
    assert not torch.equal(add_noise(video, 5.0, seed=3), add_noise(video, 5.0, seed=4))
    assert torch.equal(add_noise(video, 0.0), video)
    floats = video.float() / 255
    noisy = add_noise(floats, 10.0, seed=1)
    assert noisy.dtype == torch.float32 and noisy.min() >= 0 and noisy.max() <= 1
    assert abs(float((noisy - floats).std() * 255) - 10.0) < 1.0
    batch = add_noise(video[None].repeat(2, 1, 1, 1, 1), 5.0)
    assert batch.shape == (2, *video.shape)


def _high_frequency_energy(video: torch.Tensor) -> float:
    x = video.float()
    return float(((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., 1:] - x[..., :-1]) ** 2).mean())


def test_blur_lowers_high_frequency_energy(sample: syn.AvatarSample) -> None:
    energies = [_high_frequency_energy(gaussian_blur(sample.video, s)) for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in itertools.pairwise(energies)), energies
    assert energies[-1] < 0.2 * energies[0]
    blurred = gaussian_blur(sample.video, 2.0)
    assert abs(float(blurred.float().mean() - sample.video.float().mean())) < 1.0  # brightness preserved
    assert torch.equal(gaussian_blur(sample.video, 0.0), sample.video)


def test_frozen_frames_have_zero_motion_over_the_span(sample: syn.AvatarSample) -> None:
    video = sample.video
    out, (start, n) = frozen_frames(video, 0.5, seed=2, return_span=True)
    assert n == 8 and 0 <= start <= 8
    step = (out[1:].float() - out[:-1].float()).abs().flatten(1).amax(1)
    assert (step[start : start + n - 1] == 0).all()
    original_step = (video[1:].float() - video[:-1].float()).abs().flatten(1).amax(1)
    assert (original_step > 0).all()  # the avatar moves in every frame
    keep = [t for t in range(16) if not start < t < start + n]
    assert torch.equal(out[keep], video[keep])
    assert torch.equal(frozen_frames(video, 0.5, seed=2), out)
    whole = frozen_frames(video, 1.0)
    assert (whole == video[0]).all()


def test_temporal_jitter_permutes_frames_without_changing_the_set(sample: syn.AvatarSample) -> None:
    video = sample.video
    out, idx = temporal_jitter(video, 0.5, seed=4, return_indices=True)
    assert sorted(idx.tolist()) == list(range(16)) and (idx != torch.arange(16)).sum() == 8
    assert ((idx - torch.arange(16)).abs() <= 2).all()
    assert torch.equal(out, video[idx])
    # the multiset of frames is unchanged, the order is not
    key = lambda v: sorted(v.flatten(1).float().mul(torch.arange(v[0].numel()) % 251).sum(1).tolist())  # noqa: E731
    assert key(out) == key(video) and not torch.equal(out, video)
    assert torch.equal(temporal_jitter(video, 0.5, seed=4), out)
    assert torch.equal(temporal_jitter(video, 0.0), video)
    dup, didx = temporal_jitter(video, 0.5, seed=4, mode="duplicate", return_indices=True)
    assert len(set(didx.tolist())) < 16 and torch.equal(dup, video[didx])


def test_identity_change_keeps_motion_changes_colours(sample: syn.AvatarSample) -> None:
    other = identity_change(sample, 1.0, seed=1234)
    new_identity = sample.identity.blend(AvatarIdentity.from_seed(1234), 1.0)
    video, kps = render_avatar(new_identity, sample.motion)
    assert torch.equal(video, other)
    assert torch.equal(kps, sample.keypoints)  # same geometry and motion: identical keypoints
    assert new_identity.skin != sample.identity.skin and new_identity.shirt != sample.identity.shirt
    assert (other.float() - sample.video.float()).abs().mean() > 15
    # the motion survives: frame-to-frame changes happen at the same places in time
    motion_a = (sample.video[1:].float() - sample.video[:-1].float()).abs().flatten(1).mean(1)
    motion_b = (other[1:].float() - other[:-1].float()).abs().flatten(1).mean(1)
    assert _pearson(motion_a, motion_b) > 0.5
    # strength interpolates, 0 leaves the video unchanged
    assert torch.equal(identity_change(sample, 0.0, seed=1234), sample.video)
    half = (identity_change(sample, 0.5, seed=1234).float() - sample.video.float()).abs().mean()
    assert 0 < half < (other.float() - sample.video.float()).abs().mean()
    # keep_geometry=False: other proportions, same motion (keypoint displacements strongly correlated)
    reshaped = sample.identity.blend(AvatarIdentity.from_seed(1234), 1.0, keep_geometry=False)
    _, kps2 = render_avatar(reshaped, sample.motion)
    assert not torch.equal(kps2, sample.keypoints)
    d1 = sample.keypoints[:, HANDS, :2] - sample.keypoints[:1, HANDS, :2]
    d2 = kps2[:, HANDS, :2] - kps2[:1, HANDS, :2]
    assert _pearson(d1, d2) > 0.9


@pytest.mark.parametrize("kind, strength", [("noise", 12.0), ("blur", 2.0), ("frozen_frames", 0.75)])
def test_region_restricted_degradation_leaves_outside_untouched(
    sample: syn.AvatarSample, kind: str, strength: float
) -> None:
    out = degrade(sample, kind, strength, seed=1, region="face")
    mask = region_mask(sample.keypoints, "face", 160, 128)[:, None].expand_as(sample.video)
    assert torch.equal(out[~mask], sample.video[~mask])
    assert not torch.equal(out[mask], sample.video[mask])
    # and the hands box is untouched by a face degradation
    hands = region_mask(sample.keypoints, "hands", 160, 128)[:, None].expand_as(sample.video)
    assert torch.equal(out[hands & ~mask], sample.video[hands & ~mask])


def test_region_restricted_identity_change_and_boxes(sample: syn.AvatarSample) -> None:
    out = degrade(sample, "identity_change", 1.0, region="hands")
    mask = region_mask(sample.keypoints, "hands", 160, 128)[:, None].expand_as(sample.video)
    assert torch.equal(out[~mask], sample.video[~mask]) and not torch.equal(out[mask], sample.video[mask])
    boxes, valid = region_boxes(sample.keypoints, "face", margin=0.0)
    face = sample.keypoints[:, FACE]
    assert valid.all()
    assert torch.allclose(boxes[:, 0], face[..., 0].amin(1) - 2.0)  # margin 0 -> the 2 px minimum
    assert torch.allclose(boxes[:, 3], face[..., 1].amax(1) + 2.0)
    # simulated detector misses invalidate the region on exactly those frames
    missed = simulate_detector_misses(sample.keypoints, "hands", 0.25, seed=0)
    _, hand_valid = region_boxes(missed, "hands")
    assert int((~hand_valid).sum()) == 4 and torch.equal(missed[..., :2], sample.keypoints[..., :2])
    assert not region_mask(missed, "hands", 160, 128)[~hand_valid].any()


def test_degrade_dispatch_and_batched_videos(sample: syn.AvatarSample) -> None:
    batch = torch.stack([sample.video, generate_sample(6).video])
    kps = torch.stack([sample.keypoints, generate_sample(6).keypoints])
    for kind in ("noise", "blur", "temporal_jitter", "frozen_frames"):
        out = degrade(
            batch,
            kind,
            0.5 if kind in ("temporal_jitter", "frozen_frames") else 3.0,
            region="face",
            keypoints=kps,
        )
        assert out.shape == batch.shape and out.dtype == torch.uint8
        assert not torch.equal(out, batch)
    assert set(syn.DEGRADATIONS) == {"noise", "blur", "temporal_jitter", "identity_change", "frozen_frames"}


def test_bad_arguments_raise_named_value_errors(sample: syn.AvatarSample) -> None:
    v = sample.video
    cases = [
        (lambda: add_noise(v, -1.0), "sigma"),
        (lambda: gaussian_blur(v, float("nan")), "sigma"),
        (lambda: frozen_frames(v, 1.5), "fraction"),
        (lambda: frozen_frames(v, 0.5, start=12), "start"),
        (lambda: temporal_jitter(v, 0.5, mode="shuffle"), "mode"),
        (lambda: add_noise(v, 1.0, region="face"), "keypoints"),
        (lambda: add_noise(v, 1.0, region="torso", keypoints=sample.keypoints), "region"),
        (lambda: add_noise(v, 1.0, region="face", keypoints=sample.keypoints[:3]), "keypoints"),
        (lambda: add_noise(v[0, 0], 1.0), "video"),
        (lambda: add_noise(v.int(), 1.0), "video"),
        (lambda: degrade(v, "identity_change", 1.0), "AvatarSample"),
        (lambda: degrade(v, "pixelate", 1.0), "kind"),
        (lambda: identity_change(sample, 1.0, seed=sample.identity.seed), "seed"),
        (lambda: generate_sample(-1), "seed"),
        (lambda: generate_sample(0, num_frames=0), "num_frames"),
        (lambda: generate_sample(0, framing="close"), "framing"),
        (lambda: generate_sample(0, height=8), "height"),
        (lambda: make_speech(0, 1.0, f0=300.0), "f0"),
        (lambda: SyntheticAvatarDataset(0), "num_samples"),
        (lambda: SyntheticAvatarDataModule(batch_size=0), "batch_size"),
        (lambda: SyntheticAvatarDataModule(num_frame=4), "num_frame"),
        (lambda: collate_avatar_batch([]), "items"),
    ]
    for fn, word in cases:
        with pytest.raises((ValueError, TypeError), match=word):
            fn()


# ---------------------------------------------------------------------------------------------------------
# Dataset and DataModule
# ---------------------------------------------------------------------------------------------------------
def test_dataset_items_are_deterministic() -> None:
    ds = SyntheticAvatarDataset(6, seed=3, num_identities=2, num_frames=4, cache=False)
    item = ds[1]
    assert set(item) >= {"reference", "audio", "keypoints", "fps", "identity", "text", "envelope"}
    assert item["reference"].shape == (4, 3, 160, 128) and item["reference"].dtype == torch.uint8
    assert item["keypoints"].shape == (4, 133, 3) and item["audio"].shape == (2560,)
    assert item["fps"] == 25.0 and isinstance(item["fps"], float) and isinstance(item["text"], str)
    again = SyntheticAvatarDataset(6, seed=3, num_identities=2, num_frames=4)[1]
    assert all(torch.equal(item[k], again[k]) for k in ("reference", "audio", "keypoints"))
    assert [ds[i]["identity"] for i in range(4)] == [0, 1, 0, 1]
    assert not torch.equal(ds[0]["reference"], ds[2]["reference"])  # same identity, other motion
    with pytest.raises(IndexError):
        ds[6]
    degraded = SyntheticAvatarDataset(2, num_frames=4, degradation="noise", degradation_strength=5.0)[0]
    assert degraded["generated"].shape == degraded["reference"].shape
    assert not torch.equal(degraded["generated"], degraded["reference"])


def test_datamodule_batches() -> None:
    dm = SyntheticAvatarDataModule(num_train=5, num_val=3, batch_size=2, num_frames=4, height=64, width=64)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    val = list(dm.val_dataloader())
    assert [b["reference"].shape[0] for b in train] == [2, 2, 1] and len(val) == 2
    batch = val[0]
    assert batch["reference"].shape == (2, 4, 3, 64, 64) and batch["reference"].dtype == torch.uint8
    assert batch["keypoints"].shape == (2, 4, 133, 3) and batch["audio"].shape == (2, 2560)
    assert batch["fps"].shape == (2,) and batch["fps"].dtype == torch.float32
    assert batch["identity"].dtype == torch.int64 and isinstance(batch["text"], list)
    # validation clips differ from training clips; two setups give the same data
    train_refs = torch.cat([b["reference"] for b in train])
    assert not any(torch.equal(v, t) for v in batch["reference"] for t in train_refs)
    dm2 = SyntheticAvatarDataModule(num_train=5, num_val=3, batch_size=2, num_frames=4, height=64, width=64)
    assert torch.equal(next(iter(dm2.val_dataloader()))["reference"], batch["reference"])
    assert torch.equal(
        torch.cat([b["reference"] for b in dm2.train_dataloader()]).sort(0).values, train_refs.sort(0).values
    )


@pytest.mark.filterwarnings("ignore:.*LeafSpec")
def test_datamodule_drives_a_lightning_fit() -> None:
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(1, 3)
            self.seen: list[tuple[int, ...]] = []

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            self.seen.append(tuple(batch["reference"].shape))
            colour = batch["reference"].float().mean((1, 3, 4)) / 255
            return ((self.head(batch["envelope"].mean(1, keepdim=True)) - colour) ** 2).mean()

        def validation_step(self, batch: dict, batch_idx: int) -> None:
            self.log("val/audio", batch["audio"].abs().mean(), batch_size=batch["audio"].shape[0])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = SyntheticAvatarDataModule(num_train=4, num_val=2, batch_size=2, num_frames=4, height=48, width=48)
    model = Tiny()
    trainer = L.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    trainer.fit(model, dm)
    assert model.seen == [(2, 4, 3, 48, 48)] * 2 and "val/audio" in trainer.callback_metrics
    assert dm.hparams["num_frames"] == 4


# ---------------------------------------------------------------------------------------------------------
# Degradation acceptance (issue 4): metrics respond monotonically to the controlled degradations
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:PSNR.*identical:UserWarning")
def test_stronger_noise_and_blur_lower_psnr_and_ssim(sample: syn.AvatarSample) -> None:
    from metrics.pixel import PSNR, SSIM

    ref = sample.video[None]

    def scores(video: torch.Tensor) -> tuple[float, float]:
        psnr, ssim = PSNR(), SSIM()
        psnr.update(video[None], ref)
        ssim.update(video[None], ref)
        return float(psnr.compute()), float(ssim.compute())

    for fn, strengths in ((add_noise, (2.0, 6.0, 15.0)), (gaussian_blur, (0.7, 1.5, 3.0))):
        values = [scores(fn(sample.video, s)) for s in strengths]
        psnrs, ssims = [v[0] for v in values], [v[1] for v in values]
        assert all(a > b for a, b in itertools.pairwise(psnrs)), (fn.__name__, psnrs)
        assert all(a > b for a, b in itertools.pairwise(ssims)), (fn.__name__, ssims)
    # per-region: degrading only the face lowers face-crop PSNR, the hands crop stays identical
    out = degrade(sample, "noise", 10.0, region="face")
    for region, identical in (("face", False), ("hands", True)):
        boxes, _ = region_boxes(sample.keypoints, region)
        x0, y0 = int(boxes[..., 0].min()), int(boxes[..., 1].min())
        x1, y1 = int(boxes[..., 2].max()) + 1, int(boxes[..., 3].max()) + 1
        psnr = PSNR()
        psnr.update(out[None, :, :, y0:y1, x0:x1], ref[..., y0:y1, x0:x1])
        assert math.isinf(float(psnr.compute())) == identical, region


class _TinyFeatures(nn.Module):
    """A fixed random conv net ``uint8 [N,3,H,W] -> [N,32]`` (a stand-in independent of metrics/backbones)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 16, 3, stride=2)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float() / 127.5 - 1.0
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return x.mean((2, 3)).double()


def _tiny_factory(weights: object) -> nn.Module:
    return _TinyFeatures()


def _feature_extractor(kind: str) -> tuple[object, int]:
    from metrics.backbones.cache import BackboneRef

    if kind == "local":
        return BackboneRef("test_synthetic_tiny", _tiny_factory), 32
    smoke = pytest.importorskip("metrics.backbones.smoke", reason="the smoke backbones are not available")
    return smoke.tiny_image_encoder_ref(64, uint8_input=True), 64


@pytest.mark.parametrize("backbone", ["smoke", "local"])
def test_stronger_degradation_raises_fid_and_edge_fid_with_a_smoke_backbone(backbone: str) -> None:
    from metrics.frechet import FID, EdgeFID

    ref, dim = _feature_extractor(backbone)
    clips = torch.stack([generate_sample(s, num_frames=16, height=96, width=96).video for s in (1, 2)])

    def value(cls: type, video: torch.Tensor) -> float:
        metric = cls(feature_extractor=ref, num_features=dim)
        metric.update(video, clips)
        return float(metric.compute())

    for fn, strengths in ((add_noise, (3.0, 10.0, 30.0)), (gaussian_blur, (0.7, 1.5, 3.0))):
        for cls in (FID, EdgeFID):
            values = [value(cls, fn(clips, s, **({"seed": 0} if fn is add_noise else {}))) for s in strengths]
            assert all(a < b for a, b in itertools.pairwise(values)), (fn.__name__, cls.__name__, values)
