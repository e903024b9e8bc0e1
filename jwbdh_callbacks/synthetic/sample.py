"""One rendered clip: :func:`generate_sample` chains speech, motion and rendering from one seed into an
:class:`AvatarSample` (video, keypoints, audio and everything that produced them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ._checks import _check_float, _check_int, _check_seed, _check_size
from .audio import SpeechSignal, frame_average, make_speech
from .identity import AvatarIdentity
from .motion import AvatarMotion, make_motion
from .render import render_avatar


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
