"""Speech-like audio: :func:`make_speech` synthesises a sentence from a small vocabulary (voiced harmonics,
vowel formants, a syllable envelope with pauses, onset noise bursts) as a :class:`SpeechSignal` together
with the envelope and mouth shapes that drive the avatar; :func:`frame_average` brings such audio-rate
signals to the video frame rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._checks import _S_SPEECH, _check_float, _check_int, _check_seed, _rng, _single_thread

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
