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

Where things live (one step per module; everything is re-exported here):
:mod:`.layout` (COCO-WholeBody indices, regions, framings), :mod:`.identity` (:class:`AvatarIdentity`),
:mod:`.audio` (:func:`make_speech`, :func:`frame_average`), :mod:`.motion` (:func:`make_motion`),
:mod:`.keypoints` (the figure's geometry, :func:`avatar_keypoints`), :mod:`.render` (:func:`render_avatar`,
:func:`render_background`), :mod:`.sample` (:func:`generate_sample`), :mod:`.regions` (:func:`region_boxes`,
:func:`region_mask`, :func:`simulate_detector_misses`), :mod:`.degrade` (the degradations),
:mod:`.dataset` (:class:`SyntheticAvatarDataset`, :func:`collate_avatar_batch`) and :mod:`.datamodule`
(:class:`SyntheticAvatarDataModule`, the only part that needs ``lightning``; it is imported on first use, so
the rest of the package works without Lightning installed).

Example:
    >>> sample = generate_sample(seed=3)
    >>> sample.video.shape, sample.video.dtype, sample.keypoints.shape, sample.audio.shape
    (torch.Size([16, 3, 160, 128]), torch.uint8, torch.Size([16, 133, 3]), torch.Size([10240]))
    >>> noisy = add_noise(sample.video, sigma=10.0, seed=0)
    >>> face_only = gaussian_blur(sample.video, sigma=2.0, region="face", keypoints=sample.keypoints)
"""

from __future__ import annotations

import importlib
from typing import Any

from .audio import SpeechSignal, frame_average, make_speech
from .dataset import SyntheticAvatarDataset, collate_avatar_batch
from .degrade import (
    DEGRADATIONS,
    add_noise,
    degrade,
    frozen_frames,
    gaussian_blur,
    identity_change,
    temporal_jitter,
    temporal_jitter_indices,
)
from .identity import AvatarIdentity, Color  # noqa: F401 (Color: re-exported as before)
from .keypoints import avatar_keypoints
from .layout import (  # noqa: F401 (the COCO-WholeBody indices stay importable from here, outside __all__)
    FACE_START,
    FEET_START,
    FRAMINGS,
    LEFT_ANKLE,
    LEFT_EAR,
    LEFT_ELBOW,
    LEFT_EYE,
    LEFT_HAND_START,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    NOSE,
    NUM_KEYPOINTS,
    REGION_KEYPOINTS,
    RIGHT_ANKLE,
    RIGHT_EAR,
    RIGHT_ELBOW,
    RIGHT_EYE,
    RIGHT_HAND_START,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
)
from .motion import AvatarMotion, make_motion
from .regions import region_boxes, region_mask, simulate_detector_misses
from .render import render_avatar, render_background
from .sample import AvatarSample, generate_sample

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


# Names loaded on first use: the DataModule needs lightning, which the rest of the package does not.
_LAZY = {"SyntheticAvatarDataModule": "jwbdh_callbacks.synthetic.datamodule"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as error:
            if error.name is None or error.name.split(".")[0] != "lightning":
                raise
            raise ImportError(
                f"{name} needs Lightning: pip install 'jwbdh-callbacks[lightning]' (or lightning>=2.2)"
            ) from error
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
