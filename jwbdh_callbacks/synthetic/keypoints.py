"""The figure's geometry: the canonical body, face and hand layout posed by an :class:`AvatarMotion` and
mapped to pixels by the camera framing. It gives the COCO-WholeBody keypoints (:func:`avatar_keypoints`)
and the head and hand frames that :mod:`~jwbdh_callbacks.synthetic.render` draws from, so the drawn
features lie on the keypoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._checks import _check_size
from .identity import AvatarIdentity
from .layout import (
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
from .motion import AvatarMotion

# Head-local face layout (x in units of the head's x radius, y of its y radius; y down).
_EYE_CX, _EYE_CY, _EYE_A, _EYE_B = 0.36, -0.12, 0.22, 0.14
_MOUTH_CY, _MOUTH_W, _MOUTH_OPEN_MAX, _LIP = 0.56, 0.3, 0.3, 0.075
_BROW_X = np.array([-0.64, -0.52, -0.39, -0.26, -0.15])
_BROW_Y = np.array([-0.36, -0.43, -0.46, -0.44, -0.39])
# Hand layout in (u: along the fingers, v: towards the thumb) units, before ``hand_scale``.
_FINGERS = (  # (MCP u, MCP v, spread angle towards the thumb, phalanx lengths)
    (7.2, 2.3, 0.12, (3.0, 1.9, 1.6)),
    (7.7, 0.75, 0.03, (3.3, 2.1, 1.7)),
    (7.3, -0.8, -0.07, (3.1, 2.0, 1.6)),
    (6.5, -2.2, -0.18, (2.4, 1.5, 1.3)),
)
_THUMB_CMC, _THUMB_LENGTHS = (1.6, 1.8), (2.6, 2.0, 1.7)
_CURL_ANGLES = (0.9, 2.0, 2.9)  # cumulative joint bend (rad) at full curl


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
