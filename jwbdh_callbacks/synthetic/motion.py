"""Speech-driven motion: :func:`make_motion` turns a per-frame speech envelope into an :class:`AvatarMotion`
(mouth opening, blinks, brows, gaze, head and body sway, wrist gestures, hand tilt and finger curl).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._checks import _S_MOTION, _check_float, _check_seed, _rng


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
