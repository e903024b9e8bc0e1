"""WAV for the judges: :func:`encode_wav` (16 kHz mono 16-bit PCM), :func:`decode_wav`, :func:`read_wav`.

Standard library ``wave`` only. Judges receive both clips as 16 kHz mono 16-bit WAV, as EmergentTTS-Eval
sends them (``shared/spec/tts.md`` s2); baseline renderings are read from ``{id}.wav`` files with
:func:`read_wav`.

Example:
    >>> import torch
    >>> data = encode_wav(0.25 * torch.ones(800), sample_rate=16_000)
    >>> wav, rate = decode_wav(data)
    >>> rate, tuple(wav.shape), round(wav.mean().item(), 3)
    (16000, (800,), 0.25)
"""

from __future__ import annotations

import io
import os
import wave
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metrics.functional.speech import JUDGE_SAMPLE_RATE, as_mono_waveform, resample_audio

__all__ = ["decode_wav", "encode_wav", "read_wav"]


def encode_wav(waveform: Any, sample_rate: int, target_sample_rate: int = JUDGE_SAMPLE_RATE) -> bytes:
    """Encode audio as a mono 16-bit PCM WAV file (bytes) at ``target_sample_rate`` (16 kHz by default).

    Channels are averaged, the signal is resampled with a band-limited filter, clipped to [-1, 1] (the
    reference scales by 32767 without a guard, which wraps around on overs) and rounded to int16.
    """
    x = as_mono_waveform(waveform, "waveform")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    x = resample_audio(x, int(sample_rate), int(target_sample_rate))
    pcm = (x.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).numpy().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(target_sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def decode_wav(data: bytes) -> tuple[Tensor, int]:
    """Decode PCM WAV bytes (8/16/24/32-bit) to float32 ``[T]`` (mono) or ``[channels, T]``, and the rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as err:
        raise ValueError(f"data must be a PCM WAV file: {err}") from err
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    else:  # pragma: no cover - the wave module rejects other widths
        raise ValueError(f"data has an unsupported sample width of {width} bytes")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if channels > 1:
        t = t.reshape(-1, channels).T.contiguous()
    return t, rate


def read_wav(path: str | os.PathLike[str]) -> tuple[Tensor, int]:
    """Read a PCM WAV file; see :func:`decode_wav`."""
    with open(path, "rb") as fh:
        return decode_wav(fh.read())
