"""The look of one synthetic person: :class:`AvatarIdentity` (skin, hair, eye and clothing colours, hair
style, background, body proportions and voice pitch), drawn from an integer seed and blendable towards
another identity (what :func:`~jwbdh_callbacks.synthetic.identity_change` renders).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ._checks import _S_IDENTITY, _check_float, _check_seed, _rng

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
