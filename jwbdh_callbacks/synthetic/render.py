"""The renderer: anti-aliased signed-distance shapes on the pixel grid (:class:`_Canvas`), evaluated for all
frames at once inside each shape's bounding box, that draw the background (:func:`render_background`)
and the figure (:func:`render_avatar`) from the geometry of :mod:`~jwbdh_callbacks.synthetic.keypoints`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import _S_TEXTURE, _check_size, _rng, _single_thread
from .identity import AvatarIdentity
from .keypoints import (
    _EYE_A,
    _EYE_B,
    _EYE_CX,
    _EYE_CY,
    _LIP,
    _MOUTH_CY,
    _MOUTH_OPEN_MAX,
    _MOUTH_W,
    _camera,
    _Geometry,
    _geometry,
    _rot,
    _with_scores,
)
from .layout import (
    FACE_START,
    LEFT_ANKLE,
    LEFT_ELBOW,
    LEFT_HAND_START,
    LEFT_HIP,
    LEFT_KNEE,
    LEFT_SHOULDER,
    LEFT_WRIST,
    RIGHT_ANKLE,
    RIGHT_ELBOW,
    RIGHT_HAND_START,
    RIGHT_HIP,
    RIGHT_KNEE,
    RIGHT_SHOULDER,
    RIGHT_WRIST,
)
from .motion import AvatarMotion

# Drawing-only sizes (the shared face and hand layout is in keypoints.py): ears in head-local units, finger
# radii and the palm in hand units before ``hand_scale``.
_EAR_X, _EAR_A, _EAR_B = 1.0, 0.17, 0.28
_FINGER_R, _THUMB_R = 1.0, 1.15
_PALM = (4.0, 0.2, 4.4, 3.9)  # centre u, v and semi-axes along u, v


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
