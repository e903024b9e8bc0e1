r"""Procedural whole-body talking avatars: video, exact COCO-WholeBody keypoints and speech-like audio.

Everything here is generated, deterministic given integer seeds, and needs no files or network, so tests,
examples and the demo (``examples/train_avatar.py``) can exercise the metrics and callbacks on data whose
content is known exactly.

What a sample contains (:func:`generate_sample`):

* ``video``: ``[T, 3, H, W]`` uint8 RGB frames (default 16 frames of 160x128 at 25 fps) of a standing
  figure facing the camera, rendered in torch with anti-aliased signed-distance masks evaluated on the
  pixel grid for all frames at once: background (gradient, static low-frequency texture, floor and a
  contact shadow), legs and shoes, torso (optionally striped shirt), arms, neck, ears, head, hair, eyebrows,
  eyes that blink, nose, a mouth whose opening follows the speech envelope, and two hands (palm, thumb and
  four fingers of three phalanges) whose gestures and finger curl follow the envelope; the head sways,
  nods and rolls slightly.
* ``keypoints``: ``[T, 133, 3]`` float32 ``(x, y, score)`` in COCO-WholeBody order (0-16 body, 17-22 feet,
  23-90 the 68 iBUG face points, 91-111 left hand, 112-132 right hand; "left" is the person's left, drawn
  on the image's right). They are the very points the drawing is built from (brows, eye lids and corners,
  lips, jaw line, phalanx joints and fingertips lie on the drawn features). Coordinates are pixel-index
  coordinates: the pixel that contains ``(x, y)`` is ``video[..., round(y), round(x)]``. The score is
  1.0 for points inside the frame and 0.0 for points outside it (e.g. legs with ``framing="upper"``);
  :func:`simulate_detector_misses` lowers scores on chosen frames to mimic a pose detector's misses.
* ``audio``: 16 kHz mono float32: harmonics of a jittered f0 (100-220 Hz, voice per identity) shaped by
  vowel formants, a syllable-rate (~4 Hz) amplitude envelope with pauses between words and consonant-like
  noise bursts at syllable onsets. The same envelope (averaged over each frame's time window, ``envelope``)
  drives the mouth, brows, head nods and hand gestures, so audio and video are aligned; ``text`` is the
  sentence being "spoken" (the words of the clip, drawn from a small vocabulary whose syllables set the
  vowels).

Controlled degradations of a rendered video (all deterministic given ``seed``, all optionally restricted to
the face or hands box computed from the keypoints with :func:`region_boxes`): :func:`add_noise`,
:func:`gaussian_blur`, :func:`temporal_jitter`, :func:`frozen_frames` and :func:`identity_change` (the same
motion re-rendered with another identity); :func:`degrade` dispatches on a name.

:class:`SyntheticAvatarDataset` and :class:`SyntheticAvatarDataModule` serve samples as dicts with the keys
of DESIGN s2 (``reference``, ``keypoints``, ``audio``, ``fps``, ``identity``, ``text``, ...).

Example:
    >>> sample = generate_sample(seed=3)
    >>> sample.video.shape, sample.video.dtype, sample.keypoints.shape, sample.audio.shape
    (torch.Size([16, 3, 160, 128]), torch.uint8, torch.Size([16, 133, 3]), torch.Size([10240]))
    >>> noisy = add_noise(sample.video, sigma=10.0, seed=0)
    >>> face_only = gaussian_blur(sample.video, sigma=2.0, region="face", keypoints=sample.keypoints)
"""

from __future__ import annotations

import colorsys
import contextlib
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DEGRADATIONS",
    "FRAMINGS",
    "REGION_KEYPOINTS",
    "AvatarIdentity",
    "AvatarMotion",
    "AvatarSample",
    "SpeechSignal",
    "SyntheticAvatarDataModule",
    "SyntheticAvatarDataset",
    "add_noise",
    "avatar_keypoints",
    "collate_avatar_batch",
    "degrade",
    "frame_average",
    "frozen_frames",
    "gaussian_blur",
    "generate_sample",
    "identity_change",
    "make_motion",
    "make_speech",
    "region_boxes",
    "region_mask",
    "render_avatar",
    "render_background",
    "simulate_detector_misses",
    "temporal_jitter",
    "temporal_jitter_indices",
]

# ----------------------------------------------------------------------------------------------------------
# COCO-WholeBody layout (0-based)
# ----------------------------------------------------------------------------------------------------------
NUM_KEYPOINTS = 133
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 1, 2, 3, 4
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 5, 6, 7, 8, 9, 10
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 11, 12, 13, 14, 15, 16
FEET_START, FACE_START, LEFT_HAND_START, RIGHT_HAND_START = 17, 23, 91, 112

#: Keypoint indices of the regions that the region-restricted degradations and :func:`region_boxes` know.
REGION_KEYPOINTS: dict[str, tuple[int, ...]] = {
    "face": tuple(range(23, 91)),
    "hands": tuple(range(91, 133)),
    "left_hand": tuple(range(91, 112)),
    "right_hand": tuple(range(112, 133)),
    "body": tuple(range(0, 23)),
    "whole_body": tuple(range(0, 133)),
}

#: Camera framings: the visible window of the canonical 128x160 figure canvas (x0, y0, width, height).
FRAMINGS: dict[str, tuple[float, float, float, float]] = {
    "full": (0.0, 0.0, 128.0, 160.0),
    "upper": (28.0, 8.0, 72.0, 90.0),
}

# Seed streams: the same integer seed gives independent draws for each purpose.
_S_IDENTITY, _S_MOTION, _S_SPEECH, _S_TEXTURE, _S_DEGRADE, _S_DATASET = 1, 2, 3, 4, 5, 6


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch single-threaded: the renderer's tensors are small, so intra-op threads only add
    synchronisation (measured ~10x slower wall time with 2 threads on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


def _derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


# ----------------------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, minimum: float, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`{name}` must be a number in [{minimum}, {maximum}], got {value!r}")
    value = float(value)
    if not (minimum <= value <= maximum):
        raise ValueError(f"`{name}` must be in [{minimum}, {maximum}], got {value!r}")
    return value


def _check_seed(name: str, value: Any) -> int:
    return _check_int(name, value, 0)


def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}")
    return value


def _check_video(video: Any, name: str = "video") -> Tensor:
    if not isinstance(video, Tensor):
        raise ValueError(
            f"`{name}` must be a torch.Tensor [T,3,H,W] or [B,T,3,H,W], got {type(video).__name__}"
        )
    if video.ndim not in (4, 5) or video.shape[-3] != 3:
        raise ValueError(f"`{name}` must have shape [T,3,H,W] or [B,T,3,H,W], got {tuple(video.shape)}")
    if video.dtype != torch.uint8 and not video.is_floating_point():
        raise ValueError(f"`{name}` must be uint8 in [0,255] or float in [0,1], got dtype {video.dtype}")
    if video.shape[-4] < 1:
        raise ValueError(f"`{name}` has no frames: shape {tuple(video.shape)}")
    return video


def _check_keypoints_for(video: Tensor, keypoints: Any) -> Tensor:
    if not isinstance(keypoints, Tensor):
        raise ValueError(
            f"`keypoints` must be a torch.Tensor [..., T, 133, 3], got {type(keypoints).__name__}"
        )
    expected = (*video.shape[:-3], NUM_KEYPOINTS, 3)
    if tuple(keypoints.shape) != expected:
        raise ValueError(
            f"`keypoints` must have shape {list(expected)} to match video {list(video.shape)}, "
            f"got {list(keypoints.shape)}"
        )
    return keypoints


# ----------------------------------------------------------------------------------------------------------
# Identity
# ----------------------------------------------------------------------------------------------------------
Color = tuple[float, float, float]

_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 150], [224, 172, 120], [198, 134, 80], [160, 100, 60], [110, 72, 48]],
    dtype=np.float64,
)
_HAIR_COLORS = np.array(
    [[28, 24, 22], [62, 40, 28], [105, 70, 42], [196, 162, 96], [150, 66, 36], [150, 150, 152]],
    dtype=np.float64,
)
_IRIS_COLORS = np.array([[70, 45, 25], [40, 30, 25], [60, 100, 150], [70, 110, 70]], dtype=np.float64)
_HAIR_STYLES = ("short", "long", "bald")
# Fields that move keypoints; ``identity_change(..., keep_geometry=True)`` keeps these from the original.
_GEOMETRY_FIELDS = (
    "head_scale",
    "head_aspect",
    "shoulder_width",
    "hip_width",
    "leg_spread",
    "body_x",
    "body_y",
    "hand_scale",
)


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (255.0 * r, 255.0 * g, 255.0 * b)


def _dist(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


@dataclass(frozen=True)
class AvatarIdentity:
    """Appearance, body proportions and voice of one synthetic person (colours are RGB in 0-255).

    Build one with :meth:`from_seed`; :meth:`blend` interpolates towards another identity.

    Example:
        >>> a = AvatarIdentity.from_seed(0)
        >>> a == AvatarIdentity.from_seed(0), 100.0 <= a.f0 <= 220.0
        (True, True)
    """

    seed: int
    skin: Color
    hair: Color
    iris: Color
    lips: Color
    shirt: Color
    pants: Color
    shoes: Color
    background_top: Color
    background_bottom: Color
    floor: Color
    hair_style: str
    shirt_stripes: float
    long_sleeves: bool
    texture_seed: int
    head_scale: float
    head_aspect: float
    shoulder_width: float
    hip_width: float
    leg_spread: float
    body_x: float
    body_y: float
    hand_scale: float
    f0: float

    @classmethod
    def from_seed(cls, seed: int) -> AvatarIdentity:
        """Draw every parameter from ``seed`` (a non-negative int)."""
        seed = _check_seed("seed", seed)
        rng = _rng(seed, _S_IDENTITY)
        u = rng.uniform(0, len(_SKIN_TONES) - 1)
        i = int(u)
        skin = tuple(
            _SKIN_TONES[i] + (u - i) * (_SKIN_TONES[min(i + 1, len(_SKIN_TONES) - 1)] - _SKIN_TONES[i])
        )
        hair = tuple(_HAIR_COLORS[rng.integers(len(_HAIR_COLORS))] * rng.uniform(0.9, 1.1))
        iris = tuple(_IRIS_COLORS[rng.integers(len(_IRIS_COLORS))])
        lips = tuple(np.array(skin) * np.array([0.78, 0.5, 0.5]) + np.array([30.0, 0.0, 5.0]))
        shirt = _hsv(rng.uniform(), rng.uniform(0.35, 0.8), rng.uniform(0.4, 0.85))
        pants = _hsv(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.2, 0.45))
        shoes = _hsv(rng.uniform(), rng.uniform(0.0, 0.4), rng.uniform(0.1, 0.3))
        # A pastel background that contrasts with the skin (deterministic rejection sampling).
        for _ in range(32):
            hue = rng.uniform()
            top = _hsv(hue, rng.uniform(0.15, 0.45), rng.uniform(0.75, 0.95))
            bottom = _hsv(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.15, 0.5), rng.uniform(0.55, 0.8))
            if min(_dist(top, skin), _dist(bottom, skin)) > 60.0 and _dist(top, shirt) > 50.0:
                break
        floor = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.35), rng.uniform(0.35, 0.6))
        return cls(
            seed=seed,
            skin=_color(skin),
            hair=_color(hair),
            iris=_color(iris),
            lips=_color(lips),
            shirt=_color(shirt),
            pants=_color(pants),
            shoes=_color(shoes),
            background_top=_color(top),
            background_bottom=_color(bottom),
            floor=_color(floor),
            hair_style=_HAIR_STYLES[int(rng.choice(3, p=[0.55, 0.35, 0.10]))],
            shirt_stripes=float(rng.choice([0.0, 0.0, 0.18])),
            long_sleeves=bool(rng.random() < 0.4),
            texture_seed=int(rng.integers(2**31 - 1)),
            head_scale=float(rng.uniform(0.9, 1.1)),
            head_aspect=float(rng.uniform(0.76, 0.88)),
            shoulder_width=float(rng.uniform(17.0, 22.0)),
            hip_width=float(rng.uniform(9.0, 12.0)),
            leg_spread=float(rng.uniform(0.0, 4.0)),
            body_x=float(rng.uniform(-6.0, 6.0)),
            body_y=float(rng.uniform(-3.0, 3.0)),
            hand_scale=float(rng.uniform(1.0, 1.2)),
            f0=float(rng.uniform(110.0, 200.0)),
        )

    def blend(self, other: AvatarIdentity, strength: float, *, keep_geometry: bool = True) -> AvatarIdentity:
        """Interpolate from ``self`` (strength 0) to ``other`` (strength 1).

        Colours and proportions are interpolated linearly, discrete traits (hair style, sleeves, background
        texture) switch at 0.5. ``keep_geometry=True`` keeps every parameter that moves keypoints (so the
        keypoints of a re-render are identical). The voice (``f0``) is always kept: the audio is unchanged.
        """
        t = _check_float("strength", strength, 0.0, 1.0)
        values: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in ("seed", "f0") or (keep_geometry and f.name in _GEOMETRY_FIELDS):
                values[f.name] = a
            elif isinstance(a, tuple):
                values[f.name] = _color(tuple(x + t * (y - x) for x, y in zip(a, b)))
            elif isinstance(a, float):
                values[f.name] = a + t * (b - a)
            else:
                values[f.name] = b if t >= 0.5 else a
        return AvatarIdentity(**values)


def _color(c: Sequence[float]) -> Color:
    return (float(np.clip(c[0], 0, 255)), float(np.clip(c[1], 0, 255)), float(np.clip(c[2], 0, 255)))


# ----------------------------------------------------------------------------------------------------------
# Speech
# ----------------------------------------------------------------------------------------------------------
_VOCABULARY = (
    "hel-lo wel-come to-day we will talk a-bout the a-va-tar bo-dy hands mo-tion speech and sig-nal "
    "pic-ture mu-sic vi-de-o lis-ten care-ful-ly ev-ery sin-gle word is clear look at this sim-ple "
    "ex-am-ple peo-ple of-ten move their when they speak yes good morn-ing thank you pa-per num-ber "
    "o-pen win-dow ti-ny ro-bot hap-py gar-den sun-ny af-ter-noon bright yel-low bus rain-bow o-cean "
    "pock-et gui-tar lem-on ta-ble sto-ry qui-et"
).split()
# Vowel -> (F1, F2, F3) in Hz and mouth shape (width factor, opening factor).
_FORMANTS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (300.0, 2250.0, 3000.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (320.0, 870.0, 2240.0),
}
_MOUTH_SHAPES = {"a": (1.0, 1.0), "e": (1.08, 0.85), "i": (1.12, 0.75), "o": (0.86, 0.92), "u": (0.8, 0.8)}
_NEUTRAL_FORMANTS = (500.0, 1500.0, 2500.0)
_FORMANT_GAINS = (1.0, 0.55, 0.28)
_FORMANT_BANDWIDTHS = (90.0, 120.0, 180.0)


def _vowel(syllable: str) -> str:
    for ch in syllable:
        if ch in "aeiou":
            return ch
        if ch == "y":
            return "i"
    return "a"


@dataclass(frozen=True)
class SpeechSignal:
    """Speech-like audio and the signals that drive the avatar (see :func:`make_speech`).

    ``audio``, ``envelope``, ``f0`` are ``[S]`` float32 at ``sample_rate``; ``mouth_shape`` is ``[S, 2]``
    (mouth width factor, opening factor of the current vowel); ``words`` lists ``(word, start_s, end_s)``;
    ``syllables`` lists ``(start_s, end_s, vowel, stress)``.
    """

    audio: Tensor
    envelope: Tensor
    f0: Tensor
    mouth_shape: Tensor
    sample_rate: int
    text: str
    words: tuple[tuple[str, float, float], ...]
    syllables: tuple[tuple[float, float, str, float], ...]


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along axis 0 with edge padding."""
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    pad = width // 2
    cols = x.reshape(x.shape[0], -1)
    out = np.empty_like(cols)
    for j in range(cols.shape[1]):
        padded = np.pad(cols[:, j], (pad, width - 1 - pad), mode="edge")
        out[:, j] = np.convolve(padded, kernel, mode="valid")
    return out.reshape(x.shape)


def make_speech(
    seed: int, duration: float, *, sample_rate: int = 16000, f0: float = 150.0, num_samples: int | None = None
) -> SpeechSignal:
    """Speech-like audio: voiced harmonics, vowel formants, a syllable envelope with pauses, onset bursts.

    The script is a sequence of phrases of 2-5 words from a small vocabulary; each syllable lasts
    0.16-0.27 s (about 4-5 syllables per second while talking), words are separated by 20-80 ms gaps and
    phrases by 0.22-0.45 s pauses (a comma in ``text``). The envelope of a syllable is
    ``stress * sin(pi * tau) ** 0.6``. The voiced carrier is a sum of harmonics of an f0 track (``f0`` times a
    slow intonation, per-syllable accents and smooth jitter, clipped to [100, 220] Hz) weighted by a spectral
    tilt and three formant resonances of the syllable's vowel, normalised to unit RMS, so the audio's
    short-time RMS is ``0.2 * envelope`` plus small consonant-like noise bursts at syllable onsets.

    Args:
        seed: non-negative int; the same seed gives identical output.
        duration: seconds (> 0); ``num_samples`` overrides ``round(duration * sample_rate)``.
        sample_rate: Hz (>= 4000).
        f0: the voice's base pitch in Hz, in [100, 220].
        num_samples: exact length in samples (overrides ``duration``), e.g. to match a video's frames.

    Example:
        >>> speech = make_speech(0, 1.0)
        >>> speech.audio.shape, speech.sample_rate, speech.audio.dtype
        (torch.Size([16000]), 16000, torch.float32)
    """
    seed = _check_seed("seed", seed)
    duration = _check_float("duration", duration, 1e-3, 3600.0)
    sample_rate = _check_int("sample_rate", sample_rate, 4000)
    f0 = _check_float("f0", f0, 100.0, 220.0)
    n = round(duration * sample_rate) if num_samples is None else _check_int("num_samples", num_samples, 1)
    n = max(n, 1)
    duration = n / sample_rate
    # One stream per quantity, so that a longer clip from the same seed begins like a shorter one.
    rng = _rng(seed, _S_SPEECH, 0)  # the script
    rng_f0, rng_jitter, rng_noise = (_rng(seed, _S_SPEECH, i) for i in (1, 2, 3))

    # --- script: phrases of 2-5 words -> words -> syllables; a pause (and a comma) ends each phrase
    t = float(rng.uniform(0.0, 0.12))
    syllables: list[tuple[float, float, str, float]] = []
    words: list[tuple[str, float, float]] = []
    tokens: list[str] = []
    phrase_left = int(rng.integers(2, 6))
    while t < duration:
        word = _VOCABULARY[int(rng.integers(len(_VOCABULARY)))]
        start = t
        for k, syl in enumerate(word.split("-")):
            d = float(rng.uniform(0.16, 0.27))
            stress = float(rng.uniform(0.75, 1.0) if k == 0 else rng.uniform(0.55, 0.9))
            syllables.append((t, t + d, _vowel(syl), stress))
            t += d
        words.append((word.replace("-", ""), start, t))
        tokens.append(word.replace("-", ""))
        t += float(rng.uniform(0.02, 0.08))
        phrase_left -= 1
        if phrase_left == 0:
            t += float(rng.uniform(0.22, 0.45))
            phrase_left = int(rng.integers(2, 6))
            if t < duration:
                tokens[-1] += ","
    text = " ".join(tokens)
    text = text[:1].upper() + text[1:] + "."

    # --- envelope, vowel tracks, onset bursts
    ts = np.arange(n, dtype=np.float64) / sample_rate
    env = np.zeros(n)
    formants = np.tile(np.asarray(_NEUTRAL_FORMANTS), (n, 1))
    shape = np.ones((n, 2))
    accent = np.zeros(n)
    burst = np.zeros(n)
    for s0, s1, vowel, stress in syllables:
        lo, hi = int(max(0, math.floor(s0 * sample_rate))), int(min(n, math.ceil(s1 * sample_rate)))
        if hi > lo:
            tau = np.clip((ts[lo:hi] - s0) / (s1 - s0), 0.0, 1.0)
            bump = np.sin(np.pi * tau) ** 0.6
            env[lo:hi] = np.maximum(env[lo:hi], stress * bump)
            accent[lo:hi] = np.maximum(accent[lo:hi], 0.04 * stress * bump)
            formants[lo:hi] = _FORMANTS[vowel]
            shape[lo:hi] = _MOUTH_SHAPES[vowel]
        b_lo, b_hi = int(max(0, (s0 - 0.01) * sample_rate)), int(min(n, (s0 + 0.06) * sample_rate))
        if b_hi > b_lo:
            burst[b_lo:b_hi] = np.maximum(
                burst[b_lo:b_hi], stress * np.exp(-np.abs(ts[b_lo:b_hi] - s0 - 0.005) / 0.015)
            )
    smooth = max(1, int(0.015 * sample_rate))
    formants = _smooth(formants, smooth)
    shape = _smooth(shape, smooth)

    # --- f0 track: intonation + accents + smooth jitter, clipped to [100, 220] Hz
    ctrl_rate = 40.0
    ctrl_t = np.arange(int(duration * ctrl_rate) + 2) / ctrl_rate
    jitter = np.interp(ts, ctrl_t, rng_jitter.normal(0.0, 0.012, size=ctrl_t.shape))
    phrase = 0.05 * np.sin(2 * np.pi * rng_f0.uniform(0.4, 0.9) * ts + rng_f0.uniform(0, 2 * np.pi))
    micro = _rng(seed, _S_SPEECH, 4).normal(0.0, 0.002, n)
    f0_track = np.clip(f0 * (1.0 + phrase + accent + jitter + micro), 100.0, 220.0)

    # --- voiced carrier: harmonics weighted by tilt and formant resonances. The weights change slowly, so
    # they are computed every ``hop`` samples and interpolated; the sines run in float32 (torch).
    phase = 2 * np.pi * np.cumsum(f0_track) / sample_rate
    top = min(0.47 * sample_rate, 7600.0)
    k = np.arange(1, int(top // 100.0) + 1, dtype=np.float64)[:, None]
    k_phase = rng_f0.uniform(0, 2 * np.pi, size=k.shape)
    hop = 32
    ctrl_idx = np.minimum(np.arange(0, n + hop, hop), n - 1)
    freqs = k * f0_track[None, ctrl_idx]
    gain = np.full_like(freqs, 0.05)
    for i in range(3):
        half_bw = _FORMANT_BANDWIDTHS[i] / 2
        gain += _FORMANT_GAINS[i] / (1.0 + ((freqs - formants[None, ctrl_idx, i]) / half_bw) ** 2)
    amp = gain * k**-0.7 * (freqs < top)
    amp /= np.sqrt(0.5 * (amp**2).sum(0, keepdims=True) + 1e-12)  # unit RMS carrier
    amp_t = torch.from_numpy(amp.astype(np.float32))  # [K, C]
    carrier_t = torch.zeros(n)
    kt, k_phase_t = torch.from_numpy(k), torch.from_numpy(k_phase)
    with _single_thread():
        for c0 in range(0, n, 8192):
            c1 = min(n, c0 + 8192)
            pos = torch.arange(c0, c1, dtype=torch.float32) / hop
            lo = pos.floor().long()
            w = pos - lo
            a = amp_t[:, lo] * (1 - w) + amp_t[:, torch.clamp(lo + 1, max=amp_t.shape[-1] - 1)] * w
            ph = torch.remainder(kt * torch.from_numpy(phase[None, c0:c1]) + k_phase_t, 2 * np.pi)
            carrier_t[c0:c1] = (a * torch.sin(ph.float())).sum(0)
    carrier = carrier_t.double().numpy()
    noise = rng_noise.standard_normal(n)
    hp = np.concatenate([noise[:1], noise[1:] - 0.9 * noise[:-1]])
    audio = 0.2 * env * carrier + 0.03 * burst * hp + 5e-4 * _rng(seed, _S_SPEECH, 5).standard_normal(n)
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio *= 0.99 / peak
    return SpeechSignal(
        audio=torch.from_numpy(audio.astype(np.float32)),
        envelope=torch.from_numpy(env.astype(np.float32)),
        f0=torch.from_numpy(f0_track.astype(np.float32)),
        mouth_shape=torch.from_numpy(shape.astype(np.float32)),
        sample_rate=sample_rate,
        text=text,
        words=tuple(words),
        syllables=tuple(syllables),
    )


def frame_average(signal: Tensor, num_frames: int, fps: float, sample_rate: int) -> Tensor:
    """Average an audio-rate signal ``[S, ...]`` over each video frame's window -> ``[num_frames, ...]``.

    Frame ``t`` shows time ``t / fps``; its window is ``[t - 1/2, t + 1/2) / fps`` (clipped to the signal).

    Example:
        >>> frame_average(torch.ones(16000), 25, 25.0, 16000).shape
        torch.Size([25])
    """
    num_frames = _check_int("num_frames", num_frames, 1)
    fps = _check_float("fps", fps, 1e-3)
    if not isinstance(signal, Tensor) or signal.ndim < 1 or signal.shape[0] < 1:
        raise ValueError(f"`signal` must be a non-empty tensor [S, ...], got {signal!r:.60}")
    x = signal.double()
    n = x.shape[0]
    csum = torch.cat([torch.zeros_like(x[:1]), x.cumsum(0)])
    centres = torch.arange(num_frames, dtype=torch.float64) / fps * sample_rate
    half = sample_rate / (2 * fps)
    lo = (centres - half).round().clamp(0, n).long()
    hi = (centres + half).round().clamp(0, n).long()
    hi = torch.maximum(hi, (lo + 1).clamp(max=n))
    lo = torch.minimum(lo, hi - 1).clamp(min=0)
    count = (hi - lo).clamp(min=1).reshape(-1, *([1] * (x.ndim - 1)))
    return ((csum[hi] - csum[lo]) / count).to(signal.dtype)


# ----------------------------------------------------------------------------------------------------------
# Motion
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AvatarMotion:
    """Per-frame motion of the avatar (all float32 tensors with ``T`` rows; lengths in canonical units).

    The canonical figure canvas is 128 x 160 units (see :data:`FRAMINGS`); head-local quantities are in
    fractions of the head's radii. Hand index 0 is the person's left hand, 1 the right.
    """

    fps: float
    envelope: Tensor  # [T] speech envelope per frame, 0..1
    mouth_open: Tensor  # [T] lip opening, 0..1 of the maximum
    mouth_width: Tensor  # [T] width factor
    eye_open: Tensor  # [T] 1 open, 0 closed
    brow_raise: Tensor  # [T] head-local units
    gaze: Tensor  # [T, 2] iris offset, head-local units
    head_offset: Tensor  # [T, 2]
    head_roll: Tensor  # [T] radians
    body_offset: Tensor  # [T, 2]
    shoulder_raise: Tensor  # [T]
    wrist_offset: Tensor  # [T, 2, 2]
    hand_tilt: Tensor  # [T, 2] radians between the fingers' direction and vertical, towards the midline
    finger_curl: Tensor  # [T, 2] 0 straight .. 1 fist

    @property
    def num_frames(self) -> int:
        return int(self.envelope.shape[0])


def _ema(x: np.ndarray, fps: float, tau: float) -> np.ndarray:
    alpha = 1.0 - math.exp(-1.0 / (fps * tau))
    out = np.empty_like(x)
    acc = x[0] if len(x) else 0.0
    for i, v in enumerate(x):
        acc = acc + alpha * (v - acc)
        out[i] = acc
    return out


def make_motion(seed: int, envelope: Tensor, fps: float, mouth_shape: Tensor | None = None) -> AvatarMotion:
    """Speech-driven motion for ``T = len(envelope)`` frames.

    Mouth opening = envelope x the vowel's opening factor; brows and a small head nod follow a fast
    smoothing of the envelope; each hand's raise, outward swing, tilt and finger opening follow a slower,
    lagged smoothing (beat gestures; a random dominant hand gestures more); head sway/roll, body sway,
    breathing and gaze drift are slow sinusoids or splines; blinks (4-5 frames at 25 fps) start 0.12-0.5 s
    into the clip and repeat every 1.5-4 s.

    Args:
        seed: non-negative int.
        envelope: ``[T]`` per-frame speech envelope in [0, 1] (e.g. :func:`frame_average` of
            :attr:`SpeechSignal.envelope`).
        fps: frames per second.
        mouth_shape: optional ``[T, 2]`` per-frame (width, opening) factors; neutral if None.
    """
    seed = _check_seed("seed", seed)
    fps = _check_float("fps", fps, 1e-3)
    if not isinstance(envelope, Tensor) or envelope.ndim != 1 or envelope.numel() < 1:
        raise ValueError(
            f"`envelope` must be a non-empty 1-D tensor [T], got {getattr(envelope, 'shape', envelope)}"
        )
    env = envelope.double().clamp(0, 1).numpy()
    T = len(env)
    if mouth_shape is None:
        shape = np.ones((T, 2))
    else:
        if not isinstance(mouth_shape, Tensor) or tuple(mouth_shape.shape) != (T, 2):
            raise ValueError(
                f"`mouth_shape` must be a tensor [{T}, 2], got {getattr(mouth_shape, 'shape', None)}"
            )
        shape = mouth_shape.double().numpy()
    rng = _rng(seed, _S_MOTION, 0)  # scalars only: their number does not depend on T
    rng_blink, rng_gaze = _rng(seed, _S_MOTION, 1), _rng(seed, _S_MOTION, 2)
    t = np.arange(T) / fps

    def wave(freq_lo: float, freq_hi: float) -> np.ndarray:
        return np.sin(2 * np.pi * rng.uniform(freq_lo, freq_hi) * t + rng.uniform(0, 2 * np.pi))

    fast = _ema(env, fps, 0.06)
    dominant = int(rng.integers(2))
    amps = [1.0, float(rng.uniform(0.35, 0.7))]
    if dominant == 1:
        amps.reverse()
    wrist = np.zeros((T, 2, 2))
    tilt = np.zeros((T, 2))
    curl = np.zeros((T, 2))
    for h, out in enumerate((1.0, -1.0)):
        lag = int(rng.integers(0, 3))
        lagged = np.concatenate([np.full(lag, env[0]), env[: T - lag]]) if lag else env
        g = amps[h] * _ema(lagged, fps, 0.16)
        wrist[:, h, 0] = out * (7.0 * g + 1.2 * wave(0.2, 0.6))
        wrist[:, h, 1] = -(16.0 * g + 1.5 * (1.0 + wave(0.3, 0.8)) / 2)
        tilt[:, h] = 0.45 - 0.5 * g + 0.06 * wave(0.3, 0.9)
        curl[:, h] = np.clip(0.55 - 0.6 * g + 0.08 * wave(0.4, 1.0), 0.0, 1.0)

    eye_open = np.ones(T)
    tb = float(rng_blink.uniform(0.12, 0.5))
    half_width = 0.09
    while tb < t[-1] + half_width:
        tb_frame = round(tb * fps) / fps
        eye_open = np.minimum(eye_open, np.clip(np.abs(t - tb_frame) / half_width, 0.0, 1.0))
        tb += float(rng_blink.uniform(1.5, 4.0))

    ctrl = np.arange(int(t[-1] / 0.5) + 3) * 0.5
    gaze = np.stack(
        [
            np.interp(t, ctrl, rng_gaze.uniform(-0.05, 0.05, ctrl.shape)),
            np.interp(t, ctrl, _rng(seed, _S_MOTION, 3).uniform(-0.03, 0.03, ctrl.shape)),
        ],
        axis=-1,
    )
    head = np.stack([1.3 * wave(0.2, 0.5) + 0.4 * (fast - 0.3), 1.0 * fast - 0.3 + 0.4 * wave(0.3, 0.7)], -1)
    roll = 0.05 * wave(0.15, 0.4) + 0.03 * (wrist[:, 1, 1] - wrist[:, 0, 1]) / 16.0
    body = np.stack([0.8 * wave(0.15, 0.35), 0.5 * wave(0.2, 0.35)], -1)

    def as_t(x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    return AvatarMotion(
        fps=float(fps),
        envelope=as_t(env),
        mouth_open=as_t(np.clip(env * shape[:, 1], 0, 1)),
        mouth_width=as_t(1.0 + (shape[:, 0] - 1.0) * env),
        eye_open=as_t(eye_open),
        brow_raise=as_t(0.07 * fast),
        gaze=as_t(gaze),
        head_offset=as_t(head),
        head_roll=as_t(roll),
        body_offset=as_t(body),
        shoulder_raise=as_t(0.8 * fast),
        wrist_offset=as_t(wrist),
        hand_tilt=as_t(tilt),
        finger_curl=as_t(curl),
    )


# ----------------------------------------------------------------------------------------------------------
# Geometry: canonical figure -> keypoints and drawing primitives in pixels
# ----------------------------------------------------------------------------------------------------------
# Head-local face layout (x in units of the head's x radius, y of its y radius; y down).
_EYE_CX, _EYE_CY, _EYE_A, _EYE_B = 0.36, -0.12, 0.22, 0.14
_MOUTH_CY, _MOUTH_W, _MOUTH_OPEN_MAX, _LIP = 0.56, 0.3, 0.3, 0.075
_BROW_X = np.array([-0.64, -0.52, -0.39, -0.26, -0.15])
_BROW_Y = np.array([-0.36, -0.43, -0.46, -0.44, -0.39])
_EAR_X, _EAR_A, _EAR_B = 1.0, 0.17, 0.28
# Hand layout in (u: along the fingers, v: towards the thumb) units, before ``hand_scale``.
_FINGERS = (  # (MCP u, MCP v, spread angle towards the thumb, phalanx lengths)
    (7.2, 2.3, 0.12, (3.0, 1.9, 1.6)),
    (7.7, 0.75, 0.03, (3.3, 2.1, 1.7)),
    (7.3, -0.8, -0.07, (3.1, 2.0, 1.6)),
    (6.5, -2.2, -0.18, (2.4, 1.5, 1.3)),
)
_THUMB_CMC, _THUMB_LENGTHS = (1.6, 1.8), (2.6, 2.0, 1.7)
_CURL_ANGLES = (0.9, 2.0, 2.9)  # cumulative joint bend (rad) at full curl
_FINGER_R, _THUMB_R = 1.0, 1.15
_PALM = (4.0, 0.2, 4.4, 3.9)  # centre u, v and semi-axes along u, v


@dataclass
class _Geometry:
    keypoints: Tensor  # [T, 133, 2] pixels
    scale: float  # pixels per canonical unit
    head_c: Tensor  # [T, 2]
    head_r: tuple[float, float]  # pixels
    roll: Tensor  # [T]
    hand_u: Tensor  # [T, 2, 2]
    hand_v: Tensor  # [T, 2, 2]
    hand_scale: float
    ground_y: float  # pixels
    motion: AvatarMotion


def _camera(height: int, width: int, framing: str) -> tuple[float, float, float]:
    vx, vy, vw, vh = FRAMINGS[framing]
    s = min(width / vw, height / vh)
    ox = (width - vw * s) / 2 - vx * s - 0.5
    oy = (height - vh * s) / 2 - vy * s - 0.5
    return s, ox, oy


def _rot(v: Tensor, angle: Tensor) -> Tensor:
    """Rotate ``[T, ..., 2]`` vectors by ``[T]`` angles (image coordinates)."""
    c = torch.cos(angle).reshape(-1, *([1] * (v.ndim - 2)))
    s = torch.sin(angle).reshape(-1, *([1] * (v.ndim - 2)))
    return torch.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def _face_local(motion: AvatarMotion) -> Tensor:
    """The 68 iBUG points in head-local units, ``[T, 68, 2]``."""
    T = motion.num_frames
    pts = torch.zeros(T, 68, 2)
    a = torch.linspace(math.pi + 0.15, -0.15, 17)
    pts[:, 0:17, 0] = 0.97 * torch.cos(a)
    pts[:, 0:17, 1] = 0.97 * torch.sin(a)
    brow_x = torch.tensor(_BROW_X, dtype=torch.float32)
    brow_y = torch.tensor(_BROW_Y, dtype=torch.float32)[None] - motion.brow_raise[:, None]
    pts[:, 17:22, 0] = brow_x
    pts[:, 17:22, 1] = brow_y
    pts[:, 22:27, 0] = -brow_x.flip(0)
    pts[:, 22:27, 1] = brow_y.flip(1)
    pts[:, 27:31, 1] = torch.tensor([-0.2, -0.05, 0.1, 0.24])
    pts[:, 31:36, 0] = torch.tensor([-0.17, -0.09, 0.0, 0.09, 0.17])
    pts[:, 31:36, 1] = torch.tensor([0.29, 0.31, 0.33, 0.31, 0.29])
    # eyes: corners on the white ellipse, lids at +-0.07 from the centre
    b = _EYE_B * motion.eye_open  # [T]
    lid = b * math.sqrt(1 - (0.07 / _EYE_A) ** 2)
    for first, centre in ((36, -_EYE_CX), (42, _EYE_CX)):
        # iBUG order: left corner, upper lid left->right, right corner, lower lid right->left
        xs = [centre - _EYE_A, centre - 0.07, centre + 0.07, centre + _EYE_A, centre + 0.07, centre - 0.07]
        sign = [0.0, -1.0, -1.0, 0.0, 1.0, 1.0]
        for j in range(6):
            pts[:, first + j, 0] = xs[j]
            pts[:, first + j, 1] = _EYE_CY + sign[j] * lid
    # mouth: outer lip ellipse (semi-axes w, o/2 + lip) and inner ellipse (0.85 w, o/2)
    w = _MOUTH_W * motion.mouth_width  # [T]
    half_open = 0.5 * _MOUTH_OPEN_MAX * motion.mouth_open
    outer_b = half_open + _LIP
    outer_f = torch.tensor([-1.0, -0.6, -0.25, 0.0, 0.25, 0.6, 1.0, 0.6, 0.25, 0.0, -0.25, -0.6])
    outer_s = torch.tensor([0.0, -1, -1, -1, -1, -1, 0, 1, 1, 1, 1, 1])
    pts[:, 48:60, 0] = outer_f[None] * w[:, None]
    pts[:, 48:60, 1] = _MOUTH_CY + outer_s[None] * outer_b[:, None] * torch.sqrt(1 - outer_f**2)[None]
    inner_f = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 0.5, 0.0, -0.5])
    inner_s = torch.tensor([0.0, -1, -1, -1, 0, 1, 1, 1])
    pts[:, 60:68, 0] = inner_f[None] * 0.85 * w[:, None]
    pts[:, 60:68, 1] = _MOUTH_CY + inner_s[None] * half_open[:, None] * torch.sqrt(1 - inner_f**2)[None]
    pts[:, 60, 0] = pts[:, 60, 0] * 0.97
    pts[:, 64, 0] = pts[:, 64, 0] * 0.97
    return pts


def _hand_points(wrist: Tensor, u: Tensor, v: Tensor, curl: Tensor, scale: float) -> Tensor:
    """21 hand points ``[T, 21, 2]`` for one hand: wrist, thumb CMC..tip, index/middle/ring/pinky MCP..tip."""
    T = wrist.shape[0]
    local = torch.zeros(T, 21, 2)
    c = curl[:, None]
    # thumb: swings towards the palm as it curls
    psi = 1.0 - 0.55 * curl
    pos = torch.tensor(_THUMB_CMC).expand(T, 2).clone()
    local[:, 1] = pos
    bends = (0.0, 0.3, 0.55)
    for j, (length, bend) in enumerate(zip(_THUMB_LENGTHS, bends)):
        ang = psi - bend - 0.5 * bend * curl
        pos = pos + length * (1.0 - 0.25 * curl[:, None] * (j > 0)) * torch.stack(
            [torch.cos(ang), torch.sin(ang)], -1
        )
        local[:, 2 + j] = pos
    for f, (mu, mv, spread, lengths) in enumerate(_FINGERS):
        base = 5 + 4 * f
        pos = torch.tensor([mu, mv]).expand(T, 2).clone()
        local[:, base] = pos
        d = torch.tensor([math.cos(spread), math.sin(spread)])
        for j, length in enumerate(lengths):
            proj = length * torch.cos(_CURL_ANGLES[j] * c)  # foreshortening of a finger bending to the palm
            pos = pos + proj * d
            local[:, base + 1 + j] = pos
    local = local * scale
    return wrist[:, None] + local[..., :1] * u[:, None] + local[..., 1:] * v[:, None]


def _geometry(
    identity: AvatarIdentity, motion: AvatarMotion, height: int, width: int, framing: str
) -> _Geometry:
    T = motion.num_frames
    m = motion
    cx = 64.0 + identity.body_x + m.body_offset[:, 0]
    by = identity.body_y + m.body_offset[:, 1]
    sw, hw = identity.shoulder_width, identity.hip_width
    can = torch.zeros(T, NUM_KEYPOINTS, 2)
    sh_y = 54.0 + by - m.shoulder_raise
    for idx, out in ((LEFT_SHOULDER, 1.0), (RIGHT_SHOULDER, -1.0)):
        can[:, idx, 0] = cx + out * sw
        can[:, idx, 1] = sh_y
    ground = 148.0 + identity.body_y
    for h, (out, hip, knee, ankle, elbow, wrist) in enumerate(
        (
            (1.0, LEFT_HIP, LEFT_KNEE, LEFT_ANKLE, LEFT_ELBOW, LEFT_WRIST),
            (-1.0, RIGHT_HIP, RIGHT_KNEE, RIGHT_ANKLE, RIGHT_ELBOW, RIGHT_WRIST),
        )
    ):
        hip_xy = torch.stack(
            [64.0 + identity.body_x + 0.5 * m.body_offset[:, 0] + out * hw, 98.0 + by * 0.5], -1
        )
        ankle_x = 64.0 + identity.body_x + out * (hw + 1.5 + identity.leg_spread)
        ankle_xy = torch.stack([torch.full((T,), ankle_x), torch.full((T,), ground)], -1)
        knee_xy = 0.5 * (hip_xy + ankle_xy) + torch.tensor([out * 0.3 * identity.leg_spread, 0.0])
        can[:, hip], can[:, knee], can[:, ankle] = hip_xy, knee_xy, ankle_xy
        feet = FEET_START + (0 if out > 0 else 3)  # big toe, small toe, heel
        can[:, feet] = ankle_xy + torch.tensor([-out * 1.5, 5.0])
        can[:, feet + 1] = ankle_xy + torch.tensor([out * 6.5, 4.5])
        can[:, feet + 2] = ankle_xy + torch.tensor([out * 1.5, 2.2])
        off = m.wrist_offset[:, h]
        can[:, elbow, 0] = cx + out * (sw + 4.0) + 0.4 * off[:, 0]
        can[:, elbow, 1] = sh_y + 24.0 + 0.35 * off[:, 1]
        can[:, wrist, 0] = cx + out * (sw - 4.0) + off[:, 0]
        can[:, wrist, 1] = sh_y + 34.0 + off[:, 1]

    # head frame
    ry = 15.0 * identity.head_scale
    rx = ry * identity.head_aspect
    head_c = torch.stack([cx + m.head_offset[:, 0], sh_y - 9.0 - 0.92 * ry + m.head_offset[:, 1]], -1)
    roll = m.head_roll
    face = _face_local(m) * torch.tensor([rx, ry])
    can[:, FACE_START : FACE_START + 68] = head_c[:, None] + _rot(face, roll)
    can[:, NOSE] = can[:, FACE_START + 30]
    eye_local = torch.tensor([[_EYE_CX * rx, _EYE_CY * ry], [-_EYE_CX * rx, _EYE_CY * ry]]).expand(T, 2, 2)
    can[:, [LEFT_EYE, RIGHT_EYE]] = head_c[:, None] + _rot(eye_local, roll)
    ear_local = torch.tensor([[1.04 * rx, 0.0], [-1.04 * rx, 0.0]]).expand(T, 2, 2)
    can[:, [LEFT_EAR, RIGHT_EAR]] = head_c[:, None] + _rot(ear_local, roll)

    # hands
    us, vs = [], []
    for h, (out, wrist, start) in enumerate(
        ((1.0, LEFT_WRIST, LEFT_HAND_START), (-1.0, RIGHT_WRIST, RIGHT_HAND_START))
    ):
        beta = m.hand_tilt[:, h]
        u = torch.stack([-out * torch.sin(beta), -torch.cos(beta)], -1)
        v = out * torch.stack([u[:, 1], -u[:, 0]], -1)
        pts = _hand_points(can[:, wrist], u, v, m.finger_curl[:, h], identity.hand_scale)
        can[:, start : start + 21] = pts
        us.append(u)
        vs.append(v)

    s, ox, oy = _camera(height, width, framing)
    px = can * s + torch.tensor([ox, oy])
    return _Geometry(
        keypoints=px,
        scale=s,
        head_c=head_c * s + torch.tensor([ox, oy]),
        head_r=(rx * s, ry * s),
        roll=roll,
        hand_u=torch.stack(us, 1),
        hand_v=torch.stack(vs, 1),
        hand_scale=identity.hand_scale,
        ground_y=ground * s + oy,
        motion=m,
    )


def _with_scores(points: Tensor, height: int, width: int) -> Tensor:
    inside = (
        (points[..., 0] >= -0.5)
        & (points[..., 0] <= width - 0.5)
        & (points[..., 1] >= -0.5)
        & (points[..., 1] <= height - 0.5)
    )
    return torch.cat([points, inside.to(points.dtype)[..., None]], -1)


def avatar_keypoints(
    identity: AvatarIdentity, motion: AvatarMotion, height: int = 160, width: int = 128, framing: str = "full"
) -> Tensor:
    """COCO-WholeBody keypoints ``[T, 133, 3]`` (x, y, score) of the avatar, without rendering it."""
    height, width, framing = _check_size(height, width, framing)
    return _with_scores(_geometry(identity, motion, height, width, framing).keypoints, height, width)


def _check_size(height: int, width: int, framing: str) -> tuple[int, int, str]:
    return (
        _check_int("height", height, 32),
        _check_int("width", width, 32),
        _check_choice("framing", framing, tuple(FRAMINGS)),
    )


# ----------------------------------------------------------------------------------------------------------
# Rasterisation: signed distances on the pixel grid, evaluated for all frames at once inside a bounding box
# ----------------------------------------------------------------------------------------------------------
def _col(c: Sequence[float], factor: float = 1.0) -> Tensor:
    return (torch.tensor(c, dtype=torch.float32) * factor).clamp(0, 255)


def _alpha(sdf: Tensor) -> Tensor:
    return (0.5 - sdf).clamp(0.0, 1.0)


def _ellipse_sdf(X: Tensor, Y: Tensor, cx: Tensor, cy: Tensor, rx: Tensor, ry: Tensor, ang: Tensor) -> Tensor:
    """Approximate signed distance (pixels) to rotated ellipses; parameters ``[T]``, result ``[T, h, w]``."""
    e = (slice(None), None, None)
    c, s = torch.cos(ang)[e], torch.sin(ang)[e]
    dx, dy = X - cx[e], Y - cy[e]
    xr, yr = c * dx + s * dy, -s * dx + c * dy
    rx, ry = rx.clamp(min=1e-3)[e], ry.clamp(min=1e-3)[e]
    k = torch.sqrt((xr / rx) ** 2 + (yr / ry) ** 2)
    grad = torch.sqrt((xr / rx**2) ** 2 + (yr / ry**2) ** 2) + 1e-9
    return (k - 1.0) * k / grad


def _capsule_sdf(X: Tensor, Y: Tensor, a: Tensor, b: Tensor, r: Tensor | float) -> Tensor:
    """Signed distance to the union of capsules ``a`` -> ``b`` (``[T, N, 2]``) of radius ``r`` (``[N]``)."""
    e = (slice(None), slice(None), None, None)
    ax, ay, bx, by = a[..., 0][e], a[..., 1][e], b[..., 0][e], b[..., 1][e]
    pax, pay = X[None] - ax, Y[None] - ay
    bax, bay = bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-9)).clamp(0.0, 1.0)
    d = torch.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2)
    r = torch.as_tensor(r, dtype=d.dtype)
    if r.ndim == 1:
        r = r[None, :, None, None]
    return (d - r).amin(1)


def _convex_polygon_sdf(X: Tensor, Y: Tensor, verts: Tensor) -> Tensor:
    """Signed distance (exact inside and along edges) to convex polygons ``[T, K, 2]``."""
    edges = torch.roll(verts, -1, dims=1) - verts
    normal = torch.stack([edges[..., 1], -edges[..., 0]], -1)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    centroid = verts.mean(1, keepdim=True)
    inward = ((centroid - verts) * normal).sum(-1, keepdim=True)
    normal = torch.where(inward > 0, -normal, normal)
    e = (slice(None), slice(None), None, None)
    d = (X[None] - verts[..., 0][e]) * normal[..., 0][e] + (Y[None] - verts[..., 1][e]) * normal[..., 1][e]
    return d.amax(1)


class _Canvas:
    def __init__(self, frames: Tensor) -> None:
        self.frames = frames  # [T, 3, H, W] float32 in 0..255
        self.T, _, self.H, self.W = frames.shape

    def box(self, points: Tensor, margin: float) -> tuple[int, int, int, int] | None:
        """Pixel box ``(y0, y1, x0, x1)`` around ``points [..., 2]`` (all frames) grown by ``margin``."""
        pts = points.reshape(-1, 2)
        x0 = max(0, math.floor(float(pts[:, 0].min()) - margin - 1))
        x1 = min(self.W, math.ceil(float(pts[:, 0].max()) + margin + 2))
        y0 = max(0, math.floor(float(pts[:, 1].min()) - margin - 1))
        y1 = min(self.H, math.ceil(float(pts[:, 1].max()) + margin + 2))
        if x1 <= x0 or y1 <= y0:
            return None
        return y0, y1, x0, x1

    @staticmethod
    def grid(box: tuple[int, int, int, int]) -> tuple[Tensor, Tensor]:
        y0, y1, x0, x1 = box
        Y = torch.arange(y0, y1, dtype=torch.float32)[None, :, None]
        X = torch.arange(x0, x1, dtype=torch.float32)[None, None, :]
        return X, Y

    def paint(self, box: tuple[int, int, int, int], alpha: Tensor, color: Tensor) -> None:
        """Composite ``color`` ([3] or [T|1, 3, h, w]) with coverage ``alpha`` [T, h, w] inside ``box``."""
        y0, y1, x0, x1 = box
        if color.ndim == 1:
            color = color[None, :, None, None]
        region = self.frames[:, :, y0:y1, x0:x1]
        a = alpha[:, None]
        self.frames[:, :, y0:y1, x0:x1] = region + a * (color - region)

    def capsules(self, a: Tensor, b: Tensor, r: float | Tensor, color: Tensor, shade: float = 0.0) -> None:
        rmax = float(torch.as_tensor(r).max())
        box = self.box(torch.cat([a, b], 1), rmax)
        if box is None:
            return
        X, Y = self.grid(box)
        sdf = _capsule_sdf(X, Y, a, b, r)
        col = color
        if shade:
            depth = (-sdf / max(rmax, 1e-3)).clamp(0.0, 1.0)
            col = color[None, :, None, None] * (1.0 - shade * (1.0 - depth))[:, None]
        self.paint(box, _alpha(sdf), col)

    def ellipse(
        self,
        c: Tensor,
        rx: Tensor,
        ry: Tensor,
        ang: Tensor,
        color: Tensor,
        shade: float = 0.0,
        opacity: float = 1.0,
        clip: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> None:
        rmax = float(torch.maximum(rx, ry).max())
        box = self.box(c, rmax)
        if box is None:
            return
        X, Y = self.grid(box)
        sdf = _ellipse_sdf(X, Y, c[:, 0], c[:, 1], rx, ry, ang)
        # coverage of ellipses thinner than a pixel
        alpha = _alpha(sdf) * (2.0 * torch.minimum(rx, ry)).clamp(0.0, 1.0)[:, None, None] * opacity
        if clip is not None:
            alpha = alpha * clip(X, Y)
        col = color
        if shade:
            depth = (-sdf / torch.minimum(rx, ry).clamp(min=1e-3)[:, None, None]).clamp(0.0, 1.0)
            col = color[None, :, None, None] * (1.0 - shade * (1.0 - depth.sqrt()))[:, None]
        self.paint(box, alpha, col)


def _background(identity: AvatarIdentity, height: int, width: int, ground_y: float, scale: float) -> Tensor:
    """Static background ``[3, H, W]``: vertical gradient, low-frequency texture, floor below ``ground_y``."""
    rng = _rng(identity.texture_seed, _S_TEXTURE)
    y = torch.linspace(0.0, 1.0, height)[:, None]
    x = torch.linspace(0.0, 1.0, width)[None, :]
    top, bottom = _col(identity.background_top), _col(identity.background_bottom)
    ramp = (0.85 * y + 0.15 * x).clamp(0, 1)
    bg = top[:, None, None] + ramp[None] * (bottom - top)[:, None, None]
    coarse = torch.from_numpy(rng.normal(0.0, 1.0, (1, 1, 6, 5)).astype(np.float32))
    tex = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0, 0]
    fine = torch.from_numpy(
        rng.normal(0.0, 1.0, (1, 1, max(2, height // 4), max(2, width // 4))).astype(np.float32)
    )
    fine = F.interpolate(fine, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    bg = bg + 5.0 * tex[None] + 2.0 * fine[None]
    horizon = ground_y - 9.0 * scale
    floor_alpha = torch.sigmoid((torch.arange(height, dtype=torch.float32)[:, None] - horizon) / 0.7)
    floor = _col(identity.floor)[:, None, None] * (1.0 - 0.15 * (1 - y))[None] + 3.0 * fine[None]
    bg = bg + floor_alpha[None] * (floor - bg)
    return bg.clamp(0, 255)


def render_background(
    identity: AvatarIdentity, height: int = 160, width: int = 128, framing: str = "full"
) -> Tensor:
    """The static background (without the person) ``[3, H, W]`` uint8 that :func:`render_avatar` draws on."""
    if not isinstance(identity, AvatarIdentity):
        raise ValueError(f"`identity` must be an AvatarIdentity, got {type(identity).__name__}")
    height, width, framing = _check_size(height, width, framing)
    s, _, oy = _camera(height, width, framing)
    ground = (148.0 + identity.body_y) * s + oy
    return _background(identity, height, width, ground, s).round().clamp(0, 255).to(torch.uint8)


def _render(identity: AvatarIdentity, geo: _Geometry, height: int, width: int) -> Tensor:
    m = geo.motion
    T = m.num_frames
    s = geo.scale
    kp = geo.keypoints
    canvas = _Canvas(_background(identity, height, width, geo.ground_y, s)[None].repeat(T, 1, 1, 1))
    skin = _col(identity.skin)
    zeros = torch.zeros(T)

    def full(v: float) -> Tensor:
        return torch.full((T,), float(v))

    # contact shadow and legs
    feet_c = 0.5 * (kp[:, LEFT_ANKLE] + kp[:, RIGHT_ANKLE]) + torch.tensor([0.0, 6.0 * s])
    half_span = 0.5 * (kp[:, LEFT_ANKLE, 0] - kp[:, RIGHT_ANKLE, 0]).abs() + 9.0 * s
    canvas.ellipse(feet_c, half_span, full(2.5 * s), zeros, torch.zeros(3), opacity=0.3)
    pants = _col(identity.pants)
    a = kp[:, [LEFT_HIP, LEFT_KNEE, RIGHT_HIP, RIGHT_KNEE]]
    b = kp[:, [LEFT_KNEE, LEFT_ANKLE, RIGHT_KNEE, RIGHT_ANKLE]]
    canvas.capsules(a, b, torch.tensor([5.4, 4.8, 5.4, 4.8]) * s, pants, shade=0.25)
    shoes = _col(identity.shoes)
    for out, ankle in ((1.0, LEFT_ANKLE), (-1.0, RIGHT_ANKLE)):
        c = kp[:, ankle] + torch.tensor([out * 2.5 * s, 3.5 * s])
        canvas.ellipse(c, full(6.0 * s), full(3.2 * s), zeros, shoes, shade=0.3)

    rx, ry = geo.head_r
    head_c, roll = geo.head_c, geo.roll

    def local(lx: float, ly: float | Tensor) -> Tensor:
        """Head-local (fractions of the radii) -> pixels, ``[T, 2]``."""
        v = torch.stack(
            [torch.full((T,), lx * rx), torch.as_tensor(ly, dtype=torch.float32).expand(T) * ry], -1
        )
        return head_c + _rot(v[:, None], roll)[:, 0]

    hair = _col(identity.hair)
    if identity.hair_style == "long":
        canvas.ellipse(local(0.0, 0.5), full(1.22 * rx), full(1.45 * ry), roll, hair, shade=0.2)

    # torso: trapezoid + rounded shoulders, optional stripes
    shirt = _col(identity.shirt)
    shoulders = kp[:, [LEFT_SHOULDER, RIGHT_SHOULDER]]
    hips = kp[:, [LEFT_HIP, RIGHT_HIP]]
    verts = torch.stack(
        [
            shoulders[:, 0] + torch.tensor([2.0 * s, -1.0 * s]),
            hips[:, 0] + torch.tensor([3.5 * s, 2.0 * s]),
            hips[:, 1] + torch.tensor([-3.5 * s, 2.0 * s]),
            shoulders[:, 1] + torch.tensor([-2.0 * s, -1.0 * s]),
        ],
        1,
    )
    box = canvas.box(verts, 2.0)
    if box is not None:
        X, Y = canvas.grid(box)
        sdf = _convex_polygon_sdf(X, Y, verts)
        centre_x = 0.5 * (shoulders[:, 0, 0] + shoulders[:, 1, 0])[:, None, None]
        half_w = 0.5 * (shoulders[:, 0, 0] - shoulders[:, 1, 0]).abs()[:, None, None] + 2.0 * s
        side = ((X - centre_x).abs() / half_w).clamp(0, 1)
        factor = 1.0 - 0.22 * side**3
        if identity.shirt_stripes > 0:
            phase = (Y - shoulders[:, 0, 1][:, None, None]) / (5.0 * s)
            factor = factor * (
                1.0 - identity.shirt_stripes * torch.sigmoid(4.0 * torch.sin(2 * math.pi * phase))
            )
        canvas.paint(box, _alpha(sdf), shirt[None, :, None, None] * factor[:, None])
    canvas.capsules(shoulders[:, :1], shoulders[:, 1:], 4.5 * s, _col(identity.shirt, 0.97))

    # neck, ears, head, hair cap
    neck_top = local(0.0, 0.55)
    neck_bottom = 0.5 * (shoulders[:, 0] + shoulders[:, 1]) + torch.tensor([0.0, -1.0 * s])
    canvas.capsules(neck_top[:, None], neck_bottom[:, None], 0.36 * rx, _col(identity.skin, 0.88), shade=0.2)
    ear_r = (full(_EAR_A * rx), full(_EAR_B * ry))
    for side_x in (-_EAR_X, _EAR_X):
        canvas.ellipse(local(side_x, -0.02), *ear_r, roll, _col(identity.skin, 0.9), shade=0.25)
    canvas.ellipse(head_c, full(rx), full(ry), roll, skin, shade=0.18)
    if identity.hair_style != "bald":
        cap_c = local(0.0, -0.08)
        hairline = -0.5 if identity.hair_style == "short" else -0.42

        def cap_clip(X: Tensor, Y: Tensor) -> Tensor:
            e = (slice(None), None, None)
            c, sn = torch.cos(roll)[e], torch.sin(roll)[e]
            dx, dy = X - head_c[:, 0][e], Y - head_c[:, 1][e]
            xr, yr = c * dx + sn * dy, -sn * dx + c * dy
            limit = ry * (hairline + 0.35 * (xr / rx) ** 2)
            return _alpha(yr - limit)

        canvas.ellipse(cap_c, full(1.07 * rx), full(1.04 * ry), roll, hair, shade=0.25, clip=cap_clip)

    # brows
    face = kp[:, FACE_START : FACE_START + 68]
    brow_idx_a = [17, 18, 19, 20, 22, 23, 24, 25]
    brow_idx_b = [18, 19, 20, 21, 23, 24, 25, 26]
    brow_r = max(0.065 * ry, 0.7)
    canvas.capsules(face[:, brow_idx_a], face[:, brow_idx_b], brow_r, _col(identity.hair, 0.8))

    # eyes: dark outline, white, iris clipped to the white, pupil
    eye_b = _EYE_B * ry * m.eye_open
    line = max(0.05 * ry, 0.45)
    for cxl in (-_EYE_CX, _EYE_CX):
        c = local(cxl, _EYE_CY)
        canvas.ellipse(c, full(_EYE_A * rx + line), eye_b + line, roll, torch.tensor([45.0, 30.0, 30.0]))
        canvas.ellipse(c, full(_EYE_A * rx), eye_b, roll, torch.tensor([240.0, 238.0, 232.0]))
        eye_rx, eye_ry = full(_EYE_A * rx), eye_b

        def eye_clip(
            X: Tensor, Y: Tensor, c: Tensor = c, eye_rx: Tensor = eye_rx, eye_ry: Tensor = eye_ry
        ) -> Tensor:
            return _alpha(_ellipse_sdf(X, Y, c[:, 0], c[:, 1], eye_rx, eye_ry, roll))

        iris_c = c + _rot((m.gaze * torch.tensor([rx, ry]))[:, None], roll)[:, 0]
        iris_r = full(0.11 * rx)
        canvas.ellipse(iris_c, iris_r, iris_r, roll, _col(identity.iris), clip=eye_clip)
        canvas.ellipse(
            iris_c, 0.5 * iris_r, 0.5 * iris_r, roll, torch.tensor([15.0, 12.0, 12.0]), clip=eye_clip
        )

    # nose: bridge, base, nostrils
    nose_col = _col(identity.skin, 0.8)
    canvas.capsules(
        face[:, [27, 28, 29]], face[:, [28, 29, 30]], max(0.055 * rx, 0.6), _col(identity.skin, 0.88)
    )
    canvas.ellipse(local(0.0, 0.28), full(0.2 * rx), full(0.075 * ry), roll, nose_col)
    for nx in (-0.08, 0.08):
        canvas.ellipse(local(nx, 0.3), full(0.05 * rx), full(0.035 * ry), roll, _col(identity.skin, 0.45))

    # mouth: lips, dark interior, upper teeth clipped to the interior, closed-lip line
    w = _MOUTH_W * m.mouth_width * rx
    half_open = 0.5 * _MOUTH_OPEN_MAX * m.mouth_open * ry
    mouth_c = local(0.0, _MOUTH_CY)
    canvas.ellipse(mouth_c, w, half_open + _LIP * ry, roll, _col(identity.lips), shade=0.15)
    inner_rx, inner_ry = 0.85 * w, half_open

    def mouth_clip(X: Tensor, Y: Tensor) -> Tensor:
        return _alpha(_ellipse_sdf(X, Y, mouth_c[:, 0], mouth_c[:, 1], inner_rx, inner_ry, roll))

    canvas.ellipse(mouth_c, inner_rx, inner_ry, roll, torch.tensor([70.0, 18.0, 24.0]))
    teeth_c = mouth_c + _rot(torch.stack([zeros, -half_open], -1)[:, None], roll)[:, 0]
    canvas.ellipse(
        teeth_c, 0.6 * w, 0.55 * half_open, roll, torch.tensor([235.0, 232.0, 220.0]), clip=mouth_clip
    )
    corners = face[:, [48]], face[:, [54]]
    canvas.capsules(corners[0], corners[1], max(0.02 * ry, 0.3), _col(identity.lips, 0.55))

    # arms: upper arm in the shirt, forearm in skin (short sleeves) or shirt
    arm_a = kp[:, [LEFT_SHOULDER, RIGHT_SHOULDER]]
    arm_b = kp[:, [LEFT_ELBOW, RIGHT_ELBOW]]
    canvas.capsules(arm_a, arm_b, 4.3 * s, shirt, shade=0.25)
    fore = _col(identity.shirt) if identity.long_sleeves else _col(identity.skin, 0.95)
    canvas.capsules(arm_b, kp[:, [LEFT_WRIST, RIGHT_WRIST]], 3.3 * s, fore, shade=0.25)

    # hands: palm ellipse, then fingers (union of phalanx capsules, shaded so that fingers stay distinct)
    hs = geo.hand_scale * s
    pu, pv, pa, pb = _PALM
    for h, start in enumerate((LEFT_HAND_START, RIGHT_HAND_START)):
        u, v = geo.hand_u[:, h], geo.hand_v[:, h]
        wrist = kp[:, start]
        palm_c = wrist + hs * (pu * u + pv * v)
        ang = torch.atan2(u[:, 1], u[:, 0])
        canvas.ellipse(palm_c, full(pa * hs), full(pb * hs), ang, skin, shade=0.2)
        hand = kp[:, start : start + 21]
        seg_a = [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]
        seg_b = [2, 3, 4, 6, 7, 8, 10, 11, 12, 14, 15, 16, 18, 19, 20]
        radii = torch.tensor([_THUMB_R] * 3 + [_FINGER_R] * 12) * hs
        canvas.capsules(hand[:, seg_a], hand[:, seg_b], radii, skin, shade=0.45)
    return canvas.frames.round().clamp(0, 255).to(torch.uint8)


def render_avatar(
    identity: AvatarIdentity,
    motion: AvatarMotion,
    height: int = 160,
    width: int = 128,
    framing: str = "full",
) -> tuple[Tensor, Tensor]:
    """Render ``motion`` with ``identity`` -> (video uint8 ``[T, 3, H, W]``, keypoints ``[T, 133, 3]``).

    Example:
        >>> speech = make_speech(0, 0.4)
        >>> env = frame_average(speech.envelope, 10, 25.0, 16000)
        >>> video, kps = render_avatar(AvatarIdentity.from_seed(1), make_motion(0, env, 25.0), 64, 64)
        >>> video.shape, kps.shape
        (torch.Size([10, 3, 64, 64]), torch.Size([10, 133, 3]))
    """
    if not isinstance(identity, AvatarIdentity):
        raise ValueError(f"`identity` must be an AvatarIdentity, got {type(identity).__name__}")
    if not isinstance(motion, AvatarMotion):
        raise ValueError(f"`motion` must be an AvatarMotion, got {type(motion).__name__}")
    height, width, framing = _check_size(height, width, framing)
    with torch.no_grad(), _single_thread():
        geo = _geometry(identity, motion, height, width, framing)
        video = _render(identity, geo, height, width)
    return video, _with_scores(geo.keypoints, height, width)


# ----------------------------------------------------------------------------------------------------------
# Samples
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AvatarSample:
    """One rendered clip with everything that produced it (see :func:`generate_sample`)."""

    video: Tensor  # [T, 3, H, W] uint8
    keypoints: Tensor  # [T, 133, 3] float32 (x, y, score) pixels
    audio: Tensor  # [S] float32
    sample_rate: int
    fps: float
    envelope: Tensor  # [T] per-frame speech envelope (what drives the mouth and gestures)
    text: str
    identity: AvatarIdentity
    motion: AvatarMotion
    speech: SpeechSignal
    seed: int
    framing: str

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    def to_item(self) -> dict[str, Any]:
        """The dataset item: ``reference``, ``audio``, ``keypoints``, ``fps``, ``identity``, ``text``, ..."""
        return {
            "reference": self.video,
            "audio": self.audio,
            "keypoints": self.keypoints,
            "fps": self.fps,
            "identity": self.identity.seed,
            "text": self.text,
            "envelope": self.envelope,
            "sample_rate": self.sample_rate,
        }


def generate_sample(
    seed: int,
    *,
    identity: int | AvatarIdentity | None = None,
    num_frames: int = 16,
    height: int = 160,
    width: int = 128,
    fps: float = 25.0,
    sample_rate: int = 16000,
    framing: str = "full",
) -> AvatarSample:
    """Speech, motion and a rendered clip from ``seed`` (identity from ``identity``, default ``seed``).

    The audio has ``round(num_frames / fps * sample_rate)`` samples and covers the same time span as the
    frames. Same arguments -> bit-identical tensors.

    Example:
        >>> s = generate_sample(7, identity=2, num_frames=8, height=64, width=64)
        >>> s.video.shape, s.identity.seed, s.audio.shape
        (torch.Size([8, 3, 64, 64]), 2, torch.Size([5120]))
    """
    seed = _check_seed("seed", seed)
    num_frames = _check_int("num_frames", num_frames, 1)
    fps = _check_float("fps", fps, 1.0, 1000.0)
    sample_rate = _check_int("sample_rate", sample_rate, 4000)
    height, width, framing = _check_size(height, width, framing)
    if identity is None:
        ident = AvatarIdentity.from_seed(seed)
    elif isinstance(identity, AvatarIdentity):
        ident = identity
    else:
        ident = AvatarIdentity.from_seed(_check_seed("identity", identity))
    n_audio = max(1, round(num_frames / fps * sample_rate))
    speech = make_speech(
        seed, n_audio / sample_rate, sample_rate=sample_rate, f0=ident.f0, num_samples=n_audio
    )
    env = frame_average(speech.envelope, num_frames, fps, sample_rate).clamp(0, 1)
    shape = frame_average(speech.mouth_shape, num_frames, fps, sample_rate)
    motion = make_motion(seed, env, fps, shape)
    video, keypoints = render_avatar(ident, motion, height, width, framing)
    return AvatarSample(
        video=video,
        keypoints=keypoints,
        audio=speech.audio,
        sample_rate=sample_rate,
        fps=fps,
        envelope=env,
        text=speech.text,
        identity=ident,
        motion=motion,
        speech=speech,
        seed=seed,
        framing=framing,
    )


def simulate_detector_misses(
    keypoints: Tensor, region: str = "hands", fraction: float = 0.25, *, seed: int = 0, score: float = 0.1
) -> Tensor:
    """Copy of ``keypoints`` with the scores of ``region``'s points set to ``score`` on a random
    ``fraction`` of the frames (like a pose detector that missed them; the jwbdh-v1 recipe drops scores
    <= 0.3). Works on ``[T, 133, 3]`` or ``[B, T, 133, 3]``; ``fraction=1`` hides the region everywhere.
    """
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    fraction = _check_float("fraction", fraction, 0.0, 1.0)
    score = _check_float("score", score, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    if (
        not isinstance(keypoints, Tensor)
        or keypoints.ndim not in (3, 4)
        or tuple(keypoints.shape[-2:]) != (133, 3)
    ):
        raise ValueError(
            f"`keypoints` must be [T,133,3] or [B,T,133,3], got {getattr(keypoints, 'shape', keypoints)}"
        )
    out = keypoints.clone()
    flat = out.reshape(-1, *out.shape[-3:])
    g = torch.Generator().manual_seed(_derive_seed(seed, _S_DEGRADE, 7))
    idx = torch.tensor(REGION_KEYPOINTS[region])
    T = flat.shape[1]
    n = round(fraction * T)
    for b in range(flat.shape[0]):
        frames = torch.randperm(T, generator=g)[:n]
        if n:
            sub = flat[b, frames]
            sub[:, idx, 2] = score
            flat[b, frames] = sub
    return out


# ----------------------------------------------------------------------------------------------------------
# Regions (a simple min/max box with a margin; the official jwbdh-v1 recipe is metrics/regions.py)
# ----------------------------------------------------------------------------------------------------------
def region_boxes(
    keypoints: Tensor,
    region: str,
    *,
    margin: float = 0.25,
    min_score: float = 0.3,
    height: int | None = None,
    width: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-frame boxes ``[..., T, 4]`` (x1, y1, x2, y2 pixels, inclusive) around ``region``'s keypoints.

    The box is the min/max of the points with score > ``min_score``, grown by ``margin`` x its width and
    height on each side (and by at least 2 px), clipped to the frame when ``height``/``width`` are given.
    Returns ``(boxes, valid)``; frames without any kept point are invalid (their box is all zeros).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> boxes, valid = region_boxes(s.keypoints, "face")
        >>> boxes.shape, bool(valid.all())
        (torch.Size([4, 4]), True)
    """
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    margin = _check_float("margin", margin, 0.0)
    if not isinstance(keypoints, Tensor) or keypoints.ndim < 3 or tuple(keypoints.shape[-2:]) != (133, 3):
        raise ValueError(
            f"`keypoints` must be [..., T, 133, 3], got {getattr(keypoints, 'shape', keypoints)}"
        )
    pts = keypoints[..., list(REGION_KEYPOINTS[region]), :].float()
    keep = pts[..., 2] > min_score
    big = torch.tensor(1e9)
    x1 = torch.where(keep, pts[..., 0], big).amin(-1)
    y1 = torch.where(keep, pts[..., 1], big).amin(-1)
    x2 = torch.where(keep, pts[..., 0], -big).amax(-1)
    y2 = torch.where(keep, pts[..., 1], -big).amax(-1)
    valid = keep.any(-1)
    mx = torch.clamp(margin * (x2 - x1), min=2.0)
    my = torch.clamp(margin * (y2 - y1), min=2.0)
    boxes = torch.stack([x1 - mx, y1 - my, x2 + mx, y2 + my], -1)
    if width is not None:
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, width - 1)
    if height is not None:
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, height - 1)
    boxes = torch.where(valid[..., None], boxes, torch.zeros_like(boxes))
    return boxes, valid


def region_mask(
    keypoints: Tensor, region: str, height: int, width: int, *, margin: float = 0.25, min_score: float = 0.3
) -> Tensor:
    """Boolean ``[..., T, H, W]`` mask of the pixels inside :func:`region_boxes` (False on invalid frames)."""
    height, width = _check_int("height", height, 1), _check_int("width", width, 1)
    boxes, valid = region_boxes(keypoints, region, margin=margin, min_score=min_score)
    ys = torch.arange(height, dtype=boxes.dtype, device=boxes.device)[:, None]
    xs = torch.arange(width, dtype=boxes.dtype, device=boxes.device)[None, :]
    b = boxes[..., None, None, :]
    inside = (xs >= b[..., 0]) & (xs <= b[..., 2]) & (ys >= b[..., 1]) & (ys <= b[..., 3])
    return inside & valid[..., None, None]


def _restrict(
    original: Tensor, degraded: Tensor, region: str | None, keypoints: Tensor | None, margin: float
) -> Tensor:
    if region is None:
        return degraded
    _check_choice("region", region, tuple(REGION_KEYPOINTS))
    if keypoints is None:
        raise ValueError(f"`keypoints` are required when `region` is given (region={region!r})")
    kps = _check_keypoints_for(original, keypoints)
    mask = region_mask(kps, region, original.shape[-2], original.shape[-1], margin=margin).to(original.device)
    return torch.where(mask.unsqueeze(-3), degraded, original)


# ----------------------------------------------------------------------------------------------------------
# Degradations
# ----------------------------------------------------------------------------------------------------------
def _to_float255(video: Tensor) -> Tensor:
    return video.float() if video.dtype == torch.uint8 else video.float() * 255.0


def _from_float255(x: Tensor, like: Tensor) -> Tensor:
    if like.dtype == torch.uint8:
        return x.round().clamp(0, 255).to(torch.uint8)
    return (x / 255.0).clamp(0.0, 1.0).to(like.dtype)


def add_noise(
    video: Tensor,
    sigma: float,
    *,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Additive Gaussian noise of standard deviation ``sigma`` grey levels (0-255 scale, also for float
    videos), rounded and clipped to the valid range (as a sensor would saturate).

    Example:
        >>> v = generate_sample(0, num_frames=2).video
        >>> (add_noise(v, 8.0).float() - v.float()).std().round()
        tensor(8.)
    """
    video = _check_video(video)
    sigma = _check_float("sigma", sigma, 0.0)
    seed = _check_seed("seed", seed)
    g = torch.Generator().manual_seed(_derive_seed(seed, _S_DEGRADE, 1))
    x = _to_float255(video)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
    out = _from_float255(x + sigma * noise.to(x.device), video)
    return _restrict(video, out, region, keypoints, margin)


def _gaussian_kernel(sigma: float) -> Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(
    video: Tensor,
    sigma: float,
    *,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Separable Gaussian blur of standard deviation ``sigma`` pixels (radius ceil(3 sigma), edges
    replicated) applied to every frame; ``sigma=0`` returns an unchanged copy.

    Example:
        >>> v = generate_sample(0, num_frames=2).video
        >>> gaussian_blur(v, 1.5).shape == v.shape
        True
    """
    video = _check_video(video)
    sigma = _check_float("sigma", sigma, 0.0)
    if sigma == 0.0:
        return _restrict(video, video.clone(), region, keypoints, margin)
    x = _to_float255(video)
    shape = x.shape
    frames = x.reshape(-1, 3, shape[-2], shape[-1])
    k = _gaussian_kernel(sigma).to(x.device)
    r = (k.numel() - 1) // 2
    frames = F.pad(frames, (r, r, 0, 0), mode="replicate")
    frames = F.conv2d(frames, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    frames = F.pad(frames, (0, 0, r, r), mode="replicate")
    frames = F.conv2d(frames, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    out = _from_float255(frames.reshape(shape), video)
    return _restrict(video, out, region, keypoints, margin)


def temporal_jitter_indices(
    num_frames: int, strength: float, *, seed: int = 0, max_offset: int = 2
) -> Tensor:
    """Frame order ``[T]`` for :func:`temporal_jitter` in ``"swap"`` mode: a permutation made of
    ``round(strength * T / 2)`` disjoint swaps of frames at most ``max_offset`` apart (as many as fit)."""
    num_frames = _check_int("num_frames", num_frames, 1)
    strength = _check_float("strength", strength, 0.0, 1.0)
    max_offset = _check_int("max_offset", max_offset, 1)
    rng = _rng(_check_seed("seed", seed), _S_DEGRADE, 2)
    order = np.arange(num_frames)
    free = np.ones(num_frames, dtype=bool)
    wanted = round(strength * num_frames / 2)
    done = 0
    for i in rng.permutation(num_frames):
        if done >= wanted:
            break
        if not free[i]:
            continue
        cands = [
            j
            for j in range(max(0, i - max_offset), min(num_frames, i + max_offset + 1))
            if j != i and free[j]
        ]
        if not cands:
            continue
        j = int(cands[int(rng.integers(len(cands)))])
        order[i], order[j] = order[j], order[i]
        free[i] = free[j] = False
        done += 1
    return torch.from_numpy(order)


def temporal_jitter(
    video: Tensor,
    strength: float,
    *,
    seed: int = 0,
    mode: str = "swap",
    max_offset: int = 2,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Local temporal disorder: ``strength`` in [0, 1] is the fraction of frames displaced.

    ``mode="swap"`` permutes the frames (disjoint swaps of frames at most ``max_offset`` apart, so the set of
    frames is unchanged); ``mode="duplicate"`` replaces the displaced frames by a copy of a neighbour within
    ``max_offset`` (a stutter: some frames are lost). Each video of a batch gets its own draw. With
    ``return_indices=True`` also returns the source frame index ``[..., T]`` of every output frame.

    Example:
        >>> v = generate_sample(0, num_frames=8).video
        >>> out, idx = temporal_jitter(v, 0.5, seed=1, return_indices=True)
        >>> sorted(idx.tolist()) == list(range(8))
        True
    """
    video = _check_video(video)
    strength = _check_float("strength", strength, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    _check_choice("mode", mode, ("swap", "duplicate"))
    max_offset = _check_int("max_offset", max_offset, 1)
    batch = video.reshape(-1, *video.shape[-4:])
    T = batch.shape[1]
    orders = []
    for b in range(batch.shape[0]):
        sub_seed = _derive_seed(seed, b)
        if mode == "swap":
            order = temporal_jitter_indices(T, strength, seed=sub_seed, max_offset=max_offset)
        else:
            rng = _rng(sub_seed, _S_DEGRADE, 3)
            order = np.arange(T)
            for i in rng.permutation(T)[: round(strength * T)]:
                offsets = [o for o in range(-max_offset, max_offset + 1) if o != 0 and 0 <= i + o < T]
                if offsets:
                    order[i] = i + offsets[int(rng.integers(len(offsets)))]
            order = torch.from_numpy(order)
        orders.append(order)
    idx = torch.stack(orders)
    out = torch.stack([batch[b, idx[b].to(batch.device)] for b in range(batch.shape[0])]).reshape(video.shape)
    out = _restrict(video, out, region, keypoints, margin)
    idx = idx.reshape(*video.shape[:-4], T)
    return (out, idx) if return_indices else out


def frozen_frames(
    video: Tensor,
    fraction: float,
    *,
    start: int | None = None,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
    return_span: bool = False,
) -> Tensor | tuple[Tensor, tuple[int, int]]:
    """Hold one frame: frames ``start .. start + n - 1`` show frame ``start``, ``n = round(fraction * T)``.

    ``start`` defaults to a seeded random position where the span fits. With ``return_span=True`` also
    returns ``(start, n)``. The same span is used for every video of a batch.

    Example:
        >>> v = generate_sample(0, num_frames=8).video
        >>> out, (start, n) = frozen_frames(v, 0.5, start=2, return_span=True)
        >>> bool((out[2:6] == v[2]).all()), (start, n)
        (True, (2, 4))
    """
    video = _check_video(video)
    fraction = _check_float("fraction", fraction, 0.0, 1.0)
    seed = _check_seed("seed", seed)
    T = video.shape[-4]
    n = round(fraction * T)
    if start is None:
        start = int(_rng(seed, _S_DEGRADE, 4).integers(0, T - n + 1)) if n < T else 0
    else:
        start = _check_int("start", start, 0)
        if start + n > T:
            raise ValueError(f"`start` + frozen length must be <= T={T}, got start={start}, length={n}")
    idx = torch.arange(T)
    idx[start : start + n] = start
    out = video.index_select(video.ndim - 4, idx.to(video.device))
    out = _restrict(video, out, region, keypoints, margin)
    return (out, (start, n)) if return_span else out


def identity_change(
    sample: AvatarSample,
    strength: float = 1.0,
    *,
    seed: int | None = None,
    keep_geometry: bool = True,
    region: str | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Re-render ``sample``'s motion with another identity blended in by ``strength`` (0 = unchanged).

    The new identity is :meth:`AvatarIdentity.from_seed` of ``seed`` (default: a seed derived from the
    sample's identity). ``keep_geometry=True`` keeps the original proportions and positions, so the
    keypoints are exactly the original ones and only colours, hair and textures change; ``False`` also
    blends the body proportions (the motion is the same, the keypoints move with the new body).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> other = identity_change(s, 1.0, seed=99)
        >>> other.shape == s.video.shape, bool((other != s.video).any())
        (True, True)
    """
    if not isinstance(sample, AvatarSample):
        raise ValueError(
            f"`sample` must be an AvatarSample (identity_change re-renders), got {type(sample).__name__}"
        )
    strength = _check_float("strength", strength, 0.0, 1.0)
    new_seed = (
        _derive_seed(sample.identity.seed, _S_DEGRADE, 5) if seed is None else _check_seed("seed", seed)
    )
    if new_seed == sample.identity.seed:
        raise ValueError(
            f"`seed` must differ from the sample's identity seed ({new_seed}) to change identity"
        )
    blended = sample.identity.blend(AvatarIdentity.from_seed(new_seed), strength, keep_geometry=keep_geometry)
    video, _ = render_avatar(
        blended, sample.motion, sample.video.shape[-2], sample.video.shape[-1], sample.framing
    )
    return _restrict(sample.video, video, region, sample.keypoints, margin)


#: Name -> what ``strength`` means, for :func:`degrade`.
DEGRADATIONS: dict[str, str] = {
    "noise": "Gaussian noise sigma in grey levels (0-255)",
    "blur": "Gaussian blur sigma in pixels",
    "temporal_jitter": "fraction of frames displaced by local swaps, in [0, 1]",
    "identity_change": "blend towards another identity, in [0, 1]",
    "frozen_frames": "fraction of the video held on one frame, in [0, 1]",
}


def degrade(
    video_or_sample: Tensor | AvatarSample,
    kind: str,
    strength: float,
    *,
    seed: int = 0,
    region: str | None = None,
    keypoints: Tensor | None = None,
    margin: float = 0.25,
) -> Tensor:
    """Apply the degradation ``kind`` (a key of :data:`DEGRADATIONS`) of ``strength`` to a video.

    Accepts a video tensor (``[T,3,H,W]`` / ``[B,T,3,H,W]``) or an :class:`AvatarSample`
    (``identity_change`` needs the sample; its keypoints are used for ``region`` when ``keypoints`` is None).

    Example:
        >>> s = generate_sample(0, num_frames=4)
        >>> degrade(s, "blur", 2.0, region="face").shape
        torch.Size([4, 3, 160, 128])
    """
    _check_choice("kind", kind, tuple(DEGRADATIONS))
    sample = video_or_sample if isinstance(video_or_sample, AvatarSample) else None
    video = sample.video if sample is not None else _check_video(video_or_sample)
    if keypoints is None and sample is not None:
        keypoints = sample.keypoints
    common = {"region": region, "keypoints": keypoints, "margin": margin}
    if kind == "noise":
        return add_noise(video, strength, seed=seed, **common)
    if kind == "blur":
        return gaussian_blur(video, strength, **common)
    if kind == "temporal_jitter":
        return temporal_jitter(video, strength, seed=seed, **common)  # type: ignore[return-value]
    if kind == "frozen_frames":
        return frozen_frames(video, strength, seed=seed, **common)  # type: ignore[return-value]
    if sample is None:
        raise ValueError(
            "`video_or_sample` must be an AvatarSample for kind='identity_change' (it re-renders)"
        )
    new_seed = _derive_seed(sample.identity.seed, _S_DEGRADE, 5, seed)
    if new_seed == sample.identity.seed:
        new_seed += 1
    return identity_change(sample, strength, seed=new_seed, region=region, margin=margin)


# ----------------------------------------------------------------------------------------------------------
# Dataset and DataModule
# ----------------------------------------------------------------------------------------------------------
class SyntheticAvatarDataset(Dataset):
    """Deterministic synthetic talking avatars: item ``i`` is always the same clip.

    Item ``i`` uses motion/speech seed ``derive(seed, index_offset + i)`` and identity
    ``identity_offset + (index_offset + i) % num_identities`` (its seed derived from ``seed``). Items are
    dicts:

    * ``reference``: uint8 ``[T, 3, H, W]``; ``keypoints``: float32 ``[T, 133, 3]``; ``audio``: ``[S]``
    * ``fps`` (float), ``sample_rate`` (int), ``identity`` (int), ``index`` (int), ``text`` (str)
    * ``envelope``: float32 ``[T]`` per-frame speech envelope (a convenient conditioning signal)
    * ``generated``: only with ``degradation``: the reference degraded by :func:`degrade`.

    ``cache=True`` keeps rendered items in memory (about 1 MB per default item).

    Example:
        >>> ds = SyntheticAvatarDataset(4, num_frames=8)
        >>> item = ds[0]
        >>> item["reference"].shape, item["keypoints"].shape, item["audio"].shape, item["fps"]
        (torch.Size([8, 3, 160, 128]), torch.Size([8, 133, 3]), torch.Size([5120]), 25.0)
    """

    def __init__(
        self,
        num_samples: int = 64,
        *,
        seed: int = 0,
        num_identities: int = 8,
        num_frames: int = 16,
        height: int = 160,
        width: int = 128,
        fps: float = 25.0,
        sample_rate: int = 16000,
        framing: str = "full",
        degradation: str | None = None,
        degradation_strength: float = 0.0,
        degradation_region: str | None = None,
        index_offset: int = 0,
        identity_offset: int = 0,
        cache: bool = True,
    ) -> None:
        self.num_samples = _check_int("num_samples", num_samples, 1)
        self.seed = _check_seed("seed", seed)
        self.num_identities = _check_int("num_identities", num_identities, 1)
        self.num_frames = _check_int("num_frames", num_frames, 1)
        self.height, self.width, self.framing = _check_size(height, width, framing)
        self.fps = _check_float("fps", fps, 1.0, 1000.0)
        self.sample_rate = _check_int("sample_rate", sample_rate, 4000)
        if degradation is not None:
            _check_choice("degradation", degradation, tuple(DEGRADATIONS))
        self.degradation = degradation
        self.degradation_strength = _check_float("degradation_strength", degradation_strength, 0.0)
        if degradation_region is not None:
            _check_choice("degradation_region", degradation_region, tuple(REGION_KEYPOINTS))
        self.degradation_region = degradation_region
        self.index_offset = _check_int("index_offset", index_offset, 0)
        self.identity_offset = _check_int("identity_offset", identity_offset, 0)
        self.cache = bool(cache)
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self.num_samples

    def identity_of(self, index: int) -> int:
        """The identity id of item ``index``."""
        return self.identity_offset + (self.index_offset + index) % self.num_identities

    def sample(self, index: int) -> AvatarSample:
        """The full :class:`AvatarSample` behind item ``index``."""
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not -len(self) <= index < len(self)
        ):
            raise IndexError(f"index {index!r} out of range for SyntheticAvatarDataset of length {len(self)}")
        index = int(index) % len(self)
        ident = AvatarIdentity.from_seed(_derive_seed(self.seed, _S_DATASET, 1, self.identity_of(index)))
        return generate_sample(
            _derive_seed(self.seed, _S_DATASET, 2, self.index_offset + index),
            identity=ident,
            num_frames=self.num_frames,
            height=self.height,
            width=self.width,
            fps=self.fps,
            sample_rate=self.sample_rate,
            framing=self.framing,
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if (
            isinstance(index, (int, np.integer))
            and not isinstance(index, bool)
            and -len(self) <= index < len(self)
        ):
            index = int(index) % len(self)
        if index in self._cache:
            return dict(self._cache[index])
        sample = self.sample(index)
        item = sample.to_item()
        item["identity"] = self.identity_of(index)
        item["index"] = index
        if self.degradation is not None:
            item["generated"] = degrade(
                sample,
                self.degradation,
                self.degradation_strength,
                seed=_derive_seed(self.seed, _S_DATASET, 3, self.index_offset + index),
                region=self.degradation_region,
            )
        if self.cache:
            self._cache[index] = item
        return dict(item)


def collate_avatar_batch(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch: tensors -> ``[B, ...]``, numbers -> ``[B]`` tensors (float32 /
    int64), strings -> lists. Every item must have the same keys and tensor shapes.

    Example:
        >>> ds = SyntheticAvatarDataset(2, num_frames=4)
        >>> batch = collate_avatar_batch([ds[0], ds[1]])
        >>> batch["reference"].shape, batch["fps"].dtype, batch["text"][0] == ds[0]["text"]
        (torch.Size([2, 4, 3, 160, 128]), torch.float32, True)
    """
    if len(items) == 0:
        raise ValueError("`items` must be a non-empty sequence of dataset items")
    keys = set(items[0])
    for i, item in enumerate(items):
        if set(item) != keys:
            raise ValueError(f"item {i} has keys {sorted(item)}, expected {sorted(keys)}")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(f"cannot stack `{key}`: different shapes {sorted(shapes)}")
            batch[key] = torch.stack(values)
        elif isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.bool)
        elif isinstance(first, (int, np.integer)):
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif isinstance(first, (float, np.floating)):
            batch[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        else:
            batch[key] = list(values)
    return batch


class SyntheticAvatarDataModule(L.LightningDataModule):
    """Train/val splits of :class:`SyntheticAvatarDataset` with :func:`collate_avatar_batch`.

    The validation clips never repeat training clips (their seeds follow the training indices); their
    identities are the training ones (``val_identities="shared"``) or unseen ones (``"disjoint"``).
    ``test_dataloader`` serves the validation split. Extra keyword arguments go to the datasets
    (``num_frames``, ``height``, ``width``, ``fps``, ``framing``, ``degradation``, ...).

    Example:
        >>> dm = SyntheticAvatarDataModule(num_train=4, num_val=2, batch_size=2, num_frames=4)
        >>> dm.setup("fit")
        >>> next(iter(dm.val_dataloader()))["reference"].shape
        torch.Size([2, 4, 3, 160, 128])
    """

    def __init__(
        self,
        num_train: int = 64,
        num_val: int = 16,
        batch_size: int = 8,
        num_workers: int = 0,
        *,
        seed: int = 0,
        num_identities: int = 8,
        val_identities: str = "shared",
        shuffle: bool = True,
        **dataset_kwargs: Any,
    ) -> None:
        super().__init__()
        self.num_train = _check_int("num_train", num_train, 1)
        self.num_val = _check_int("num_val", num_val, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_seed("seed", seed)
        self.num_identities = _check_int("num_identities", num_identities, 1)
        self.val_identities = _check_choice("val_identities", val_identities, ("shared", "disjoint"))
        self.shuffle = bool(shuffle)
        allowed = set(inspect.signature(SyntheticAvatarDataset).parameters) - {
            "num_samples",
            "seed",
            "num_identities",
            "index_offset",
            "identity_offset",
        }
        for key in dataset_kwargs:
            if key not in allowed:
                raise ValueError(
                    f"`{key}` is not an argument of SyntheticAvatarDataModule; dataset arguments are "
                    f"{sorted(allowed)}"
                )
        # Validate the dataset arguments now (a typo fails here, not in setup()).
        SyntheticAvatarDataset(1, seed=self.seed, num_identities=self.num_identities, **dataset_kwargs)
        self.dataset_kwargs = dict(dataset_kwargs)
        self.save_hyperparameters()
        self.train_set: SyntheticAvatarDataset | None = None
        self.val_set: SyntheticAvatarDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        common = {"seed": self.seed, "num_identities": self.num_identities, **self.dataset_kwargs}
        if self.train_set is None:
            self.train_set = SyntheticAvatarDataset(self.num_train, index_offset=0, **common)
        if self.val_set is None:
            offset = self.num_identities if self.val_identities == "disjoint" else 0
            self.val_set = SyntheticAvatarDataset(
                self.num_val, index_offset=self.num_train, identity_offset=offset, **common
            )

    def _loader(self, dataset: SyntheticAvatarDataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_avatar_batch,
            generator=generator,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self._loader(self.train_set, self.shuffle)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            self.setup("validate")
        assert self.val_set is not None
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
