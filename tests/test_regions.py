"""Regions: the JWB-DH-V1 box recipe against hand computations and a literal per-frame re-implementation of
process_video_hands_videos.py, crops against NumPy slicing + cv2.resize, MTCNN on a real face, DWPose's
pure pre/post-processing, and every ValueError path."""

from __future__ import annotations

import dataclasses
import sys

import cv2
import numpy as np
import pytest
import torch

from metrics.regions import (
    JWBDH_V1_REGIONS,
    REGION_RECIPES,
    DWPoseONNX,
    RegionRecipe,
    affine_matrix,
    bbox_to_center_scale,
    boxes_from_keypoints,
    compact_valid,
    crop_regions,
    first_valid_sizes,
    fix_aspect_ratio,
    keypoints_to_image,
    nms,
    region_boxes,
    region_videos,
    register_region,
    simcc_decode,
    yolox_decode,
    yolox_letterbox,
    yolox_person_boxes,
)

H, W = 240, 320  # frame size of the crafted cases


# ----------------------------------------------------------------------------------- test helpers
def _frame(points: dict[int, tuple[float, float, float]] | None = None) -> np.ndarray:
    """One frame of 133 keypoints, all with score 0 except ``points`` ({index: (x, y, score)})."""
    kp = np.zeros((133, 3), dtype=np.float32)
    for i, p in (points or {}).items():
        kp[i] = p
    return kp


def _spread(indices: range | list[int], x0: float, x1: float, y0: float, y1: float, score: float = 0.9):
    """Points on the diagonal of [x0, x1] x [y0, y1], one per index (first at (x0, y0), last at (x1, y1))."""
    indices = list(indices)
    n = len(indices)
    return {
        i: (x0 + (x1 - x0) * k / (n - 1), y0 + (y1 - y0) * k / (n - 1), score) for k, i in enumerate(indices)
    }


def _run(frames: list[np.ndarray], region: str, size=(H, W)):
    kp = torch.from_numpy(np.stack(frames))[None]
    return region_boxes(kp, size, region)


def _script_region(kps: np.ndarray, height: int, width: int, region: str):
    """process_video_hands_videos.py for one video, frame by frame with Python ints and NumPy slicing.

    Returns ``(crop_bounds, kept)``: per frame the (x1, y1, x2, y2) bounds of the crop the script cuts (None
    if no crop), and the list of frame indices that go into the region video.
    """
    recorded: dict[int, tuple[int, int, int, int]] = {}
    crops: dict[int, tuple[int, int, int, int]] = {}
    for t, kp in enumerate(kps):
        if region == "face":
            pts = kp[24:92][kp[24:92, 2] > 0.3]
        else:
            left = kp[92:113][kp[92:113, 2] > 0.3]
            right = kp[113:134][kp[113:134, 2] > 0.3]
            pts = np.vstack([left, right])
        if len(pts) == 0:
            continue
        min_x = max(0, int(np.min(pts[:, 0])))
        min_y = max(0, int(np.min(pts[:, 1])))
        max_x = min(width, int(np.max(pts[:, 0])))
        max_y = min(height, int(np.max(pts[:, 1])))
        w, h = max_x - min_x, max_y - min_y
        if region == "face":
            min_x, min_y = max(0, min_x - int(w * 0.5)), max(0, min_y - int(h * 0.5))
            max_x, max_y = min(width, max_x + int(w * 0.5)), min(height, max_y + int(h * 0.5))
            if (max_x - min_x) < 50 or (max_y - min_y) < 50:
                cx, cy = (min_x + max_x) // 2, (min_y + max_y) // 2
                min_x, min_y = max(0, cx - 25), max(0, cy - 25)
                max_x, max_y = min(width, cx + 25), min(height, cy + 25)
        else:
            grow = int(max(w, h) * 1.0)
            ex, ey = (grow, grow) if (w < 20 or h < 20) else (int(w * 0.5), int(h * 0.5))
            min_x, min_y = max(0, min_x - ex), max(0, min_y - ey)
            max_x, max_y = min(width, max_x + ex), min(height, max_y + ey)
            if min_x >= max_x or min_y >= max_y:
                continue
        recorded[t] = (min_x, min_y, max_x, max_y)
        xs = slice(min_x, max_x).indices(width)
        ys = slice(min_y, max_y).indices(height)
        if xs[1] > xs[0] and ys[1] > ys[0]:
            crops[t] = (xs[0], ys[0], xs[1], ys[1])
    lo, hi = (2000, 10000) if region == "face" else (2000, 15000)
    kept = [t for t, (a, b, c, d) in recorded.items() if lo <= (c - a) * (d - b) <= hi and t in crops]
    if not kept and recorded:
        kept = [t for t in recorded if t in crops]
    return [crops.get(t) for t in range(len(kps))], kept


# ================================================================================ boxes: crafted cases
def test_face_expansion_truncates_like_int():
    # Kept face points span x 100.9..141.2 and y 60.5..101.99 -> tight (100, 60, 141, 101), w = h = 41,
    # int(41 * 0.5) = 20 on each side -> (80, 40, 161, 121): 81 x 81 = 6561 px², inside [2000, 10000].
    frame = _frame(_spread(range(24, 92), 100.9, 141.2, 60.5, 101.99))
    res = _run([frame], "face")
    assert res.boxes[0, 0].tolist() == [80.0, 40.0, 161.0, 121.0]
    assert res.area[0, 0].item() == 6561 and res.valid.tolist() == [[True]]


def test_face_50px_minimum_is_centred_with_floor_division():
    # tight (200, 100, 221, 131): w 21 -> +-10, h 31 -> +-15 -> (190, 85, 231, 146), 41 px wide < 50:
    # centre ((190 + 231) // 2, (85 + 146) // 2) = (210, 115) -> (185, 90, 235, 140), 2500 px².
    frame = _frame(_spread(range(24, 92), 200.2, 221.7, 100.0, 131.5))
    res = _run([frame], "face")
    assert res.boxes[0, 0].tolist() == [185.0, 90.0, 235.0, 140.0]
    assert res.valid.tolist() == [[True]]


def test_face_clipped_at_the_image_corner():
    # tight (2, 1, 30, 28) -> w 28 (+-14), h 27 (+-13) -> (0, 0, 44, 41) after clipping; 44 < 50 ->
    # centre (22, 20) -> (max(0, -3), max(0, -5), 47, 45) = (0, 0, 47, 45): 2115 px², kept.
    frame = _frame(_spread(range(24, 92), 2.3, 30.8, 1.0, 28.0))
    res = _run([frame], "face")
    assert res.boxes[0, 0].tolist() == [0.0, 0.0, 47.0, 45.0]
    assert res.area[0, 0].item() == 2115 and res.valid.tolist() == [[True]]
    # Bottom-right corner: tight (300, 220, 320, 240) (max clipped to W, H) -> +-10 -> (290, 210, 320, 240),
    # 30 px < 50 -> centre (305, 225) -> (280, 200, 320, 240).
    frame = _frame(_spread(range(24, 92), 300.5, 330.0, 220.5, 250.0))
    assert _run([frame], "face").boxes[0, 0].tolist() == [280.0, 200.0, 320.0, 240.0]


def test_score_threshold_is_strict():
    points = _spread(range(24, 92), 100.9, 141.2, 60.5, 101.99)
    points[30] = (5.0, 5.0, 0.3)  # exactly 0.3: dropped (score > 0.3)
    points[31] = (300.0, 230.0, 0.2)  # low score far away: dropped
    res = _run([_frame(points)], "face")
    assert res.boxes[0, 0].tolist() == [80.0, 40.0, 161.0, 121.0]
    points[30] = (5.0, 5.0, 0.31)  # just above: now it stretches the box
    assert _run([_frame(points)], "face").boxes[0, 0, :2].tolist() == [0.0, 0.0]
    nothing = _frame({i: (100.0, 100.0, 0.3) for i in range(24, 92)})
    res = _run([nothing], "face")
    assert res.detected.tolist() == [[False]] and res.boxes[0, 0].tolist() == [0.0] * 4


def test_small_hand_grows_by_the_larger_side():
    # Both hands' points within (150, 100)-(162, 130): w 12 < 20 -> every side grows by max(12, 30) = 30
    # -> (120, 70, 192, 160): 72 x 90 = 6480 px².
    points = _spread(range(92, 113), 150.4, 162.9, 100.0, 115.0)
    points.update(_spread(range(113, 133), 152.0, 160.0, 115.0, 130.6))
    res = _run([_frame(points)], "hand")
    assert res.boxes[0, 0].tolist() == [120.0, 70.0, 192.0, 160.0]
    assert res.area[0, 0].item() == 6480 and res.valid.tolist() == [[True]]


def test_large_hand_grows_by_half_and_hands_are_pooled():
    # Left hand around x 100..130, right hand around x 140..161: pooled tight box (100, 50, 161, 91),
    # w 61 -> int(30.5) = 30, h 41 -> 20 -> (70, 30, 191, 111): 121 x 81 = 9801 px².
    points = _spread(range(92, 113), 100.5, 130.0, 50.2, 70.0)
    points.update(_spread(range(113, 133), 140.0, 161.9, 70.0, 91.3))
    res = _run([_frame(points)], "hand")
    assert res.boxes[0, 0].tolist() == [70.0, 30.0, 191.0, 111.0]
    # Either hand alone is boxed by itself.
    left_only = _run([_frame(_spread(range(92, 113), 100.5, 130.0, 50.2, 70.0))], "hand")
    assert left_only.boxes[0, 0].tolist() == [85.0, 40.0, 145.0, 80.0]


def test_script_indices_quirk_and_coco_variants():
    # The script slices [24:92] and [92:113] + [113:134] (DWPose's 134-point layout) on 133 raw points:
    # point 91 (COCO left-hand root) counts as FACE, point 23 (first jaw point) is ignored, and point 112
    # (COCO right-hand root) counts as hand.
    face = _spread(range(24, 92), 100.9, 141.2, 60.5, 101.99)
    jaw0 = {23: (10.0, 10.0, 0.9)}
    assert _run([_frame({**face, **jaw0})], "face").boxes[0, 0].tolist() == [80.0, 40.0, 161.0, 121.0]
    assert _run([_frame({**face, **jaw0})], "face_coco").boxes[0, 0, :2].tolist() == [0.0, 0.0]
    assert REGION_RECIPES["face"].indices == tuple(range(24, 92))
    assert REGION_RECIPES["hand"].indices == tuple(range(92, 133))
    assert REGION_RECIPES["left_hand"].indices == tuple(range(91, 112))
    assert REGION_RECIPES["right_hand"].indices == tuple(range(112, 133))
    assert REGION_RECIPES["legs"].indices == tuple(range(11, 23))
    only_91 = _frame({91: (50.0, 50.0, 0.9)})
    assert _run([only_91], "face").detected.tolist() == [[True]]
    assert _run([only_91], "hand").detected.tolist() == [[False]]
    assert _run([only_91], "left_hand").detected.tolist() == [[False]]  # one point: degenerate
    only_112 = _frame(_spread([112, 113], 40.0, 70.0, 40.0, 80.0))
    assert _run([only_112], "hand").detected.tolist() == [[True]]
    assert _run([only_112], "left_hand").detected.tolist() == [[False]]
    assert _run([only_112], "right_hand").detected.tolist() == [[True]]


def test_degenerate_hand_box_drops_the_frame():
    single = _frame({100: (150.7, 80.2, 0.9)})  # one point: w = h = 0, grows by 0 -> degenerate
    # Right of the frame: tight x (325, 320) (max clipped to W), w = -5; y (10, 12), h = 2 -> grows by
    # max(-5, 2) = 2 -> x (323, 320): degenerate, dropped.
    beyond = _frame(_spread(range(92, 113), W + 5.0, W + 40.0, 10.0, 12.0))
    # Same but 50 px tall: grows by 50 -> (275, 0, 320, 110): the script keeps it.
    rescued = _frame(_spread(range(92, 113), W + 5.0, W + 40.0, 10.0, 60.0))
    line = _frame(_spread(range(92, 113), 100.0, 100.9, 10.0, 60.0))  # w = 0 -> grows by 50 -> kept
    res = _run([single, beyond, rescued, line], "hand")
    assert res.detected.tolist() == [[False, False, True, True]]
    assert res.boxes[0, 2].tolist() == [275.0, 0.0, 320.0, 110.0]
    assert res.boxes[0, 3].tolist() == [50.0, 0.0, 150.0, 110.0]


def test_area_filter_and_fallback():
    ok = _frame(_spread(range(24, 92), 100.9, 141.2, 60.5, 101.99))  # 6561 px²: in range
    big = _frame(_spread(range(24, 92), 50.0, 150.0, 40.0, 140.0))  # (0, 0, 200, 190): too big
    # Clipped at the corner: tight (300, 230, 320, 240) -> (290, 225, 320, 240) -> 50 px box at
    # (305, 232) -> (280, 207, 320, 240): 40 x 33 = 1320 px², too small.
    small = _frame(_spread(range(24, 92), 300.0, 330.0, 230.0, 250.0))
    res = _run([ok, big, small, ok, _frame()], "face")
    assert res.area[0].tolist() == [6561, 200 * 190, 40 * 33, 6561, 0]
    assert res.detected.tolist() == [[True, True, True, True, False]]
    assert res.in_range.tolist() == [[True, False, False, True, False]]
    assert res.valid.tolist() == [[True, False, False, True, False]]
    assert res.used_fallback.tolist() == [False]
    # No frame passes -> every detected frame is used.
    res = _run([big, _frame(), big], "face")
    assert res.in_range.tolist() == [[False, False, False]]
    assert res.valid.tolist() == [[True, False, True]] and res.used_fallback.tolist() == [True]
    # Hand range goes up to 15000: a 121 x 121 = 14641 hand box is kept, 10000 would have dropped it.
    hand = _frame(_spread(range(92, 133), 100.5, 161.9, 50.2, 111.3))
    res = _run([hand, _frame(_spread(range(92, 133), 10.0, 200.0, 10.0, 200.0))], "hand")
    assert res.area[0, 0].item() == 14641 and res.valid.tolist() == [[True, False]]
    boxes, valid = boxes_from_keypoints(torch.from_numpy(np.stack([ok, big]))[None], (H, W), "face")
    assert boxes[0, 1].tolist() == [0.0] * 4 and valid.tolist() == [[True, False]]


def test_face_slice_with_negative_end_wraps_like_numpy():
    # Every face point far left of the frame: min_x clips to 0, max_x = -100; the expanded box is replaced
    # by the 50 px box centred at x = (50 - 150) // 2 = -50 -> x (0, -25); y: (100, 140) -> (80, 160) ->
    # (95, 145). NumPy's img[95:145, 0:-25] is W - 25 wide; the script saves that crop. The recorded area
    # (-25 * 50) is negative: too small, so only the fallback keeps the frame.
    frame = _frame(_spread(range(24, 92), -130.0, -100.0, 100.0, 140.0))
    res = _run([frame], "face")
    assert res.boxes[0, 0].tolist() == [0.0, 95.0, float(W - 25), 145.0]
    assert res.area[0, 0].item() == -1250 and res.valid.tolist() == [[True]] and res.used_fallback.item()
    crops, kept = _script_region(np.stack([frame]), H, W, "face")
    assert crops[0] == (0, 95, W - 25, 145) and kept == [0]


def test_whole_body_and_legs():
    kp = torch.zeros(2, 3, 133, 3)
    boxes, valid = boxes_from_keypoints(kp, (H, W), "whole_body")
    assert valid.all() and boxes[1, 2].tolist() == [0.0, 0.0, float(W), float(H)]
    legs = _frame(_spread(range(11, 23), 100.0, 150.0, 100.0, 230.0))
    # tight (100, 100, 150, 230): +int(5.0) / +int(13.0) -> (95, 87, 155, 240 (clipped)).
    assert _run([legs], "legs").boxes[0, 0].tolist() == [95.0, 87.0, 155.0, 240.0]


def test_recipe_engine_matches_the_script_on_random_videos():
    """Random videos that hit every branch (both expansions, the 50 px box, clipping, degenerate boxes,
    empty slices, the area filter and the fallback) agree with the literal re-implementation."""
    rng = np.random.default_rng(0)
    b, t, height, width = 24, 12, 150, 200
    kps = np.zeros((b, t, 133, 3), dtype=np.float32)
    for v in range(b):
        scale = rng.choice([5.0, 25.0, 60.0, 140.0])  # per video, so some videos never pass the filter
        for f in range(t):
            centre = rng.uniform([-60, -60], [width + 60, height + 60])
            spread = rng.uniform(0, scale, size=2)
            pts = centre + (rng.uniform(-0.5, 0.5, size=(133, 2)) * spread)
            kps[v, f, :, :2] = pts
            kps[v, f, :, 2] = rng.uniform(0, 1, 133) * (rng.uniform() > 0.15)
    torch_kp = torch.from_numpy(kps)
    seen = {"fallback": 0, "filtered": 0, "empty": 0}
    for region in ("face", "hand"):
        res = region_boxes(torch_kp, (height, width), region)
        for v in range(b):
            crops, kept = _script_region(kps[v], height, width, region)
            assert res.valid[v].nonzero().flatten().tolist() == kept, (region, v)
            for f in range(t):
                assert bool(res.detected[v, f]) == (crops[f] is not None), (region, v, f)
                if crops[f] is not None:
                    assert tuple(int(c) for c in res.boxes[v, f].tolist()) == crops[f], (region, v, f)
            seen["fallback"] += int(res.used_fallback[v])
            seen["filtered"] += int((res.detected[v] & ~res.valid[v]).any())
            seen["empty"] += int((~res.detected[v]).any())
    assert min(seen.values()) > 0, seen


# ====================================================================================== crops
def _cv2_crop(frame_chw: np.ndarray, box, size) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = np.ascontiguousarray(frame_chw.transpose(1, 2, 0)[y1:y2, x1:x2])
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)


def _random_boxes(rng, b, t, height, width, min_side=4):
    x1 = rng.integers(0, width - min_side, (b, t))
    y1 = rng.integers(0, height - min_side, (b, t))
    x2 = x1 + rng.integers(min_side, width - x1 + 1)
    y2 = y1 + rng.integers(min_side, height - y1 + 1)
    return torch.from_numpy(np.stack([x1, y1, x2, y2], -1).astype(np.float32))


@pytest.mark.parametrize("size", [(12, 14), (37, 50), (80, 96)])
def test_crops_match_slicing_plus_cv2_resize(size):
    """uint8: at most one grey level from OpenCV's fixed-point INTER_LINEAR; float32: 1e-4."""
    rng = np.random.default_rng(1)
    b, t, height, width = 2, 5, 48, 64
    video = torch.from_numpy(rng.integers(0, 256, (b, t, 3, height, width), dtype=np.uint8))
    boxes = _random_boxes(rng, b, t, height, width)
    valid = torch.from_numpy(rng.uniform(size=(b, t)) > 0.3)
    crops, out_valid = crop_regions(video, boxes, valid, size=size)
    assert crops.shape == (b, t, 3, *size) and crops.dtype == torch.uint8
    assert torch.equal(out_valid, valid)
    as_float, _ = crop_regions(video.float() / 255, boxes, valid, size=size)
    assert as_float.dtype == torch.float32
    for v in range(b):
        for f in range(t):
            if not valid[v, f]:
                assert not crops[v, f].any() and not as_float[v, f].any()
                continue
            ref = _cv2_crop(video[v, f].numpy(), boxes[v, f], size)
            assert np.abs(crops[v, f].numpy().astype(int) - ref).max() <= 1
            ref_f = _cv2_crop(video[v, f].numpy().astype(np.float32) / 255, boxes[v, f], size)
            np.testing.assert_allclose(as_float[v, f].numpy(), ref_f, atol=1e-4)


def test_plain_roi_align_differs_only_at_enlarged_borders():
    rng = np.random.default_rng(2)
    video = torch.from_numpy(rng.integers(0, 256, (1, 1, 3, 60, 80), dtype=np.uint8))
    boxes, valid = torch.tensor([[[10.0, 5.0, 50.0, 45.0]]]), torch.ones(1, 1, dtype=torch.bool)
    ref = _cv2_crop(video[0, 0].numpy(), boxes[0, 0], (80, 90)).astype(int)
    plain = crop_regions(video, boxes, valid, size=(80, 90), exact_borders=False)[0][0, 0].numpy().astype(int)
    exact = crop_regions(video, boxes, valid, size=(80, 90))[0][0, 0].numpy().astype(int)
    assert np.abs(exact - ref).max() <= 1
    assert np.abs(plain - ref)[:, 1:-1, 1:-1].max() <= 1  # 2x enlargement: only the outer ring blends
    assert np.abs(plain - ref).max() > 10


def test_first_valid_size_and_exact_first_crop():
    rng = np.random.default_rng(3)
    video = torch.from_numpy(rng.integers(0, 256, (1, 4, 3, 50, 70), dtype=np.uint8))
    boxes = torch.tensor([[[0, 0, 9, 9], [5.0, 6.0, 35.0, 26.0], [0.0, 0.0, 70.0, 50.0], [10, 10, 20, 30]]])
    valid = torch.tensor([[False, True, True, True]])
    crops, _ = crop_regions(video, boxes, valid, size="first_valid")
    assert crops.shape == (1, 4, 3, 20, 30)
    assert torch.equal(crops[0, 1], video[0, 1, :, 6:26, 5:35])  # same size: the plain slice, exactly
    assert not crops[0, 0].any()
    assert first_valid_sizes(boxes, valid).tolist() == [[20, 30]]
    none, _ = crop_regions(video, boxes, torch.zeros(1, 4, dtype=torch.bool), size="first_valid")
    assert none.shape == (1, 4, 3, 0, 0)


def test_first_valid_needs_one_size_per_batch():
    video = torch.zeros(2, 2, 3, 40, 40, dtype=torch.uint8)
    boxes = torch.tensor([[[0.0, 0, 10, 10]] * 2, [[0.0, 0, 20, 10]] * 2])
    valid = torch.ones(2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="region_videos"):
        crop_regions(video, boxes, valid, size="first_valid")
    valid[1] = False  # the second video has nothing: no conflict
    assert crop_regions(video, boxes, valid, size="first_valid")[0].shape == (2, 2, 3, 10, 10)


def test_compact_valid_keeps_order_and_lengths():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).view(2, 5, 2)
    valid = torch.tensor([[False, True, False, True, True], [False] * 5])
    out, lengths = compact_valid(x, valid)
    assert lengths.tolist() == [3, 0]
    assert out[0, :3].tolist() == x[0, [1, 3, 4]].tolist() and not out[0, 3:].any() and not out[1].any()


@pytest.mark.parametrize("backend", ["torch", "auto", "opencv"])
def test_region_videos_reproduce_the_script_end_to_end(backend: str):
    """keypoints -> kept frames -> crops at the first kept crop's size, as the script writes its region
    videos (cv2.resize of each NumPy slice to the first one's size), per video: identical pixels with the
    batched torch path (OpenCV's fixed-point taps) and with the script's own loop (the CPU default)."""
    tolerance = 0
    rng = np.random.default_rng(4)
    b, t, height, width = 3, 6, 120, 160
    video = torch.from_numpy(rng.integers(0, 256, (b, t, 3, height, width), dtype=np.uint8))
    kps = np.zeros((b, t, 133, 3), dtype=np.float32)
    for v in range(b):
        for f in range(t):
            cx, cy, s = rng.uniform(40, 120), rng.uniform(30, 90), rng.uniform(20, 45)
            kps[v, f, :, :2] = [cx, cy] + rng.uniform(-0.5, 0.5, (133, 2)) * s
            kps[v, f, :, 2] = 0.9 if (v, f) != (1, 0) else 0.0  # video 1 misses its first frame
    kps[2, :, :, 2] = 0.0  # video 2 has no face at all
    boxes, valid = boxes_from_keypoints(torch.from_numpy(kps), (height, width), "face")
    clips = region_videos(video, boxes, valid, backend=backend)
    assert len(clips) == b and clips[2].shape == (0, 3, 0, 0)
    for v in range(2):
        crops, kept = _script_region(kps[v], height, width, "face")
        first = crops[kept[0]]
        size = (first[3] - first[1], first[2] - first[0])
        assert clips[v].shape == (len(kept), 3, *size)
        for j, f in enumerate(kept):
            ref = _cv2_crop(video[v, f].numpy(), crops[f], size)
            assert np.abs(clips[v][j].numpy().astype(int) - ref).max() <= tolerance, (v, f)
    # One video's region video does not depend on the batch it came in.
    alone = region_videos(video[1:2], boxes[1:2], valid[1:2], backend=backend)[0]
    assert torch.equal(alone, clips[1])


def test_roi_align_fallback_stays_within_one_grey_level_of_opencv():
    """Fractional boxes or exact_borders=False take roi_align: OpenCV's filter up to float rounding."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(8)
    video = torch.from_numpy(rng.integers(0, 256, (1, 4, 3, 60, 80), dtype=np.uint8))
    boxes = torch.tensor(
        [[[10, 5, 41, 30], [12, 6, 40, 33], [0, 0, 80, 60], [70, 50, 80, 60]]], dtype=torch.float32
    )
    valid = torch.ones(1, 4, dtype=torch.bool)
    crops, _ = crop_regions(video, boxes, valid, size=(19, 23), exact_borders=True)
    loose, _ = crop_regions(video.float() / 255, boxes, valid, size=(19, 23))
    for f in range(4):
        x1, y1, x2, y2 = boxes[0, f].long().tolist()
        ref = cv2.resize(np.ascontiguousarray(video[0, f].permute(1, 2, 0).numpy()[y1:y2, x1:x2]), (23, 19))
        assert np.array_equal(crops[0, f].permute(1, 2, 0).numpy(), ref)  # exact path
        diff = loose[0, f].permute(1, 2, 0).numpy() * 255 - ref.astype(np.float64)
        assert np.abs(diff).max() <= 1.0 + 1e-4  # float roi_align path


def test_region_videos_opencv_backend_needs_whole_pixel_boxes_inside_the_frame():
    video = torch.zeros(1, 2, 3, 20, 20, dtype=torch.uint8)
    valid = torch.ones(1, 2, dtype=torch.bool)
    fractional = torch.tensor([[[1.5, 2.0, 9.0, 8.0], [1.0, 2.0, 9.0, 8.0]]])
    outside = torch.tensor([[[1.0, 2.0, 9.0, 8.0], [-1.0, 2.0, 9.0, 8.0]]])
    for boxes in (fractional, outside):
        with pytest.raises(ValueError, match='backend="opencv" needs'):
            region_videos(video, boxes, valid, backend="opencv")
        # "auto" falls back to roi_align for such boxes
        auto = region_videos(video, boxes, valid)[0]
        assert torch.equal(auto, region_videos(video, boxes, valid, backend="torch")[0])
    whole = torch.tensor([[[1.0, 2.0, 9.0, 8.0]] * 2])
    for bad in (
        {"videos": video.float() / 255},  # float videos
        {"exact_borders": False},  # OpenCV always clamps at the crop's edge
    ):
        args = {"videos": video, "boxes": whole, "valid": valid, "backend": "opencv", **bad}
        with pytest.raises(ValueError, match='backend="opencv" needs'):
            region_videos(**args)
    with pytest.raises(ValueError, match="x2 > x1"):
        region_videos(video, torch.tensor([[[5.0, 2.0, 5.0, 8.0]] * 2]), valid, backend="opencv")
    with pytest.raises(ValueError, match="`backend` must be one of"):
        region_videos(video, fractional, valid, backend="cv2")


def test_batched_crops_read_the_host_once_per_call():
    """On a GPU every value read on the host waits for the queue: the crop path reads one small tensor per
    call (box checks, sizes, frame counts, exact-path flags) and copies nothing to the device."""
    from tests.test_host_syncs import HostSyncCounter

    rng = np.random.default_rng(11)
    b, t, height, width = 4, 5, 128, 128
    video = torch.from_numpy(rng.integers(0, 256, (b, t, 3, height, width), dtype=np.uint8))
    kps = np.zeros((b, t, 133, 3), dtype=np.float32)
    for v in range(b):
        cx, cy, s = 64.0, 64.0, 20.0 + 8 * v  # a different face / hand size per video
        kps[v, :, :, :2] = [cx, cy] + rng.uniform(-0.5, 0.5, (t, 133, 2)) * s
        kps[v, :, :, 2] = 0.9
    for region in ("face", "hand"):
        boxes, valid = boxes_from_keypoints(torch.from_numpy(kps), (height, width), region)
        with HostSyncCounter() as counter:
            clips = region_videos(video, boxes, valid, backend="torch")
        assert counter.syncs == 1 and counter.copies == 0, counter.report()
        assert len({tuple(c.shape[-2:]) for c in clips}) == b  # four sizes: four crop groups, still one read
        with HostSyncCounter() as counter:
            crop_regions(video, boxes, valid, size=(32, 32))
        assert counter.syncs == 1 and counter.copies == 0, counter.report()


def test_mixed_batches_crop_each_video_as_if_alone():
    """Videos sharing a size are cropped together, but the exact/roi_align choice and the result are each
    video's own; a bad box is reported with its index in the whole batch."""
    rng = np.random.default_rng(12)
    video = torch.from_numpy(rng.integers(0, 256, (3, 2, 3, 40, 40), dtype=np.uint8))
    boxes = torch.tensor(
        [
            [[2.5, 3.0, 22.5, 13.0], [0.0, 0.0, 20.0, 10.0]],  # fractional: roi_align, size (10, 20)
            [[5.0, 5.0, 15.0, 30.0], [1.0, 1.0, 30.0, 39.0]],  # whole pixels, size (25, 10)
            [[4.0, 6.0, 24.0, 16.0], [0.0, 0.0, 40.0, 40.0]],  # whole pixels, size (10, 20) like video 0
        ]
    )
    valid = torch.ones(3, 2, dtype=torch.bool)
    together = region_videos(video, boxes, valid, backend="torch")
    for v in range(3):
        alone = region_videos(video[v : v + 1], boxes[v : v + 1], valid[v : v + 1], backend="torch")[0]
        assert torch.equal(together[v], alone), v
    # video 2 alone takes the exact path: OpenCV's pixels
    x1, y1, x2, y2 = (int(c) for c in boxes[2, 1].tolist())
    ref = cv2.resize(np.ascontiguousarray(video[2, 1, :, y1:y2, x1:x2].permute(1, 2, 0).numpy()), (20, 10))
    assert np.array_equal(together[2][1].permute(1, 2, 0).numpy(), ref)
    bad = boxes.clone()
    bad[2, 1, 2] = bad[2, 1, 0]  # x2 == x1
    with pytest.raises(ValueError, match="video 2 frame 1"):
        region_videos(video, bad, valid, backend="torch")


# ================================================================================== bad input
def test_bad_inputs_raise_clear_errors():
    kp = torch.zeros(1, 2, 133, 3)
    with pytest.raises(ValueError, match="unknown region 'nose'"):
        boxes_from_keypoints(kp, (H, W), "nose")
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        boxes_from_keypoints(kp[0], (H, W), "face")
    with pytest.raises(ValueError, match="OpenPose-remapped"):
        boxes_from_keypoints(torch.zeros(1, 2, 134, 3), (H, W), "face")
    with pytest.raises(ValueError, match="floating point"):
        boxes_from_keypoints(kp.long(), (H, W), "face")
    with pytest.raises(ValueError, match="image_size"):
        boxes_from_keypoints(kp, (0, W), "face")
    with pytest.raises(ValueError, match="indices"):
        RegionRecipe("bad", (5, 140))
    with pytest.raises(ValueError, match="even"):
        RegionRecipe("bad", (1, 2), min_side=25)
    with pytest.raises(ValueError, match="already registered"):
        register_region(REGION_RECIPES["face"])
    custom = register_region(
        dataclasses.replace(REGION_RECIPES["hand"], name="hand_strict", score_threshold=0.6)
    )
    try:
        assert boxes_from_keypoints(kp, (H, W), "hand_strict")[1].shape == (1, 2)
    finally:
        del REGION_RECIPES[custom.name]
    assert set(JWBDH_V1_REGIONS) <= set(REGION_RECIPES)

    video = torch.zeros(1, 2, 3, 20, 20, dtype=torch.uint8)
    boxes, valid = torch.tensor([[[0.0, 0, 5, 5]] * 2]), torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"`boxes` must be a float \[B, T, 4\]"):
        crop_regions(video, boxes[:, :1], valid)
    with pytest.raises(ValueError, match="`valid` must be a bool"):
        crop_regions(video, boxes, valid.float())
    with pytest.raises(ValueError, match="x2 > x1"):
        crop_regions(video, torch.tensor([[[0.0, 0, 5, 5], [5.0, 0, 5, 5]]]), valid)
    with pytest.raises(ValueError, match="`size`"):
        crop_regions(video, boxes, valid, size=(0, 4))
    with pytest.raises(ValueError, match="`size`"):
        crop_regions(video, boxes, valid, size="largest")
    with pytest.raises(ValueError, match="C=3"):
        crop_regions(video[:, :, :1], boxes, valid)
    with pytest.raises(ValueError, match="matching `valid`"):
        compact_valid(torch.zeros(1, 3), valid)


# ===================================================================================== MTCNN
def test_mtcnn_finds_the_astronaut_face():
    pytest.importorskip("facenet_pytorch")
    from skimage.data import astronaut

    from metrics.regions import MTCNNFaceBoxes

    # scikit-image's 512 x 512 astronaut (shipped with it), halved with a 2x2 box average to keep MTCNN fast.
    image = torch.from_numpy(cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)).permute(
        2, 0, 1
    )
    video = torch.stack([image, torch.zeros_like(image)])[None]  # the face, then a black frame
    faces = MTCNNFaceBoxes()
    raw, found = faces.raw_boxes(video)  # one detection run, refined two ways below
    assert found.tolist() == [[True, False]]
    # Hand-labelled face (brows to chin, cheek to cheek) and landmarks, from looking at the full image.
    face = torch.tensor([185.0, 75.0, 265.0, 170.0]) / 2
    box = raw[0, 0]
    inter = (torch.minimum(box[2:], face[2:]) - torch.maximum(box[:2], face[:2])).clamp(min=0).prod()
    union = (box[2:] - box[:2]).prod() + (face[2:] - face[:2]).prod() - inter
    assert inter / union > 0.6, box.tolist()
    for x, y in [(200, 100), (245, 100), (222, 145)]:  # eyes and mouth inside the box
        assert box[0] < x / 2 < box[2] and box[1] < y / 2 < box[3]
    plain = MTCNNFaceBoxes(recipe=None).refine(raw, found, (256, 256))
    assert plain.valid.tolist() == [[True, False]] and torch.equal(plain.boxes[0, 0], box.clamp(0, 256))
    # jwbdh-v1 face rules on the MTCNN box: truncated, expanded by int(w / 2), int(h / 2) per side.
    res = faces.refine(raw, found, (256, 256))
    x1, y1, x2, y2 = (int(v) for v in box.tolist())
    w, h = x2 - x1, y2 - y1
    expected = [max(0, x1 - w // 2), max(0, y1 - h // 2), min(256, x2 + w // 2), min(256, y2 + h // 2)]
    assert res.boxes[0, 0].tolist() == [float(v) for v in expected]
    assert res.valid.tolist() == [[True, False]]
    area = (expected[2] - expected[0]) * (expected[3] - expected[1])
    assert res.used_fallback.item() == (not 2000 <= area <= 10000)


def test_mtcnn_import_error_names_the_extra(monkeypatch):
    from metrics.regions import MTCNNFaceBoxes

    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    with pytest.raises(ImportError, match=r"jwbdh-callbacks\[face\]"):
        MTCNNFaceBoxes()


# ===================================================================================== DWPose
def test_dwpose_missing_files_and_missing_onnxruntime(tmp_path, monkeypatch):
    det, pose = tmp_path / "yolox_l.onnx", tmp_path / "dw-ll_ucoco_384.onnx"
    with pytest.raises(FileNotFoundError, match=r"yolox_l\.onnx"):
        DWPoseONNX(det, pose)
    det.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"dw-ll_ucoco_384\.onnx"):
        DWPoseONNX(det, pose)
    pose.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"jwbdh-callbacks\[pose\]"):
        DWPoseONNX(det, pose)


def test_simcc_decoding():
    k, wx, wy = 4, 576, 768
    sx, sy = np.zeros((1, k, wx), np.float32), np.zeros((1, k, wy), np.float32)
    sx[0, 0, 100], sy[0, 0, 300] = 0.9, 0.7  # score = min of the two maxima
    sx[0, 1, 5], sy[0, 1, 7] = 0.4, 0.8
    sx[0, 2, [10, 20]] = 0.5  # tie: the first maximum
    sy[0, 2, 30] = 0.6
    # keypoint 3: all zeros -> score 0 -> location -1 / 2 on both axes
    locs, scores = simcc_decode(sx, sy, 2.0)
    np.testing.assert_allclose(locs[0], [[50.0, 150.0], [2.5, 3.5], [5.0, 15.0], [-0.5, -0.5]])
    np.testing.assert_allclose(scores[0], [0.7, 0.4, 0.5, 0.0])


def test_box_to_affine_and_back():
    box = np.array([40.0, 30.0, 140.0, 330.0])  # 100 x 300 person
    center, scale = bbox_to_center_scale(box, 1.25)
    np.testing.assert_allclose(center, [90.0, 180.0])
    np.testing.assert_allclose(scale, [125.0, 375.0])
    fixed = fix_aspect_ratio(scale, 288 / 384)  # too narrow for 3:4 -> widened to 281.25 x 375
    np.testing.assert_allclose(fixed, [281.25, 375.0])
    np.testing.assert_allclose(fix_aspect_ratio(np.array([400.0, 100.0]), 0.75), [400.0, 400 / 0.75])
    m = affine_matrix(center, fixed, (288, 384))
    s = 288 / 281.25
    np.testing.assert_allclose(m, [[s, 0, 144 - s * 90], [0, s, 192 - s * 180]], atol=1e-9)
    np.testing.assert_allclose(
        m, cv2.getAffineTransform(*_dwpose_points(center, fixed, (288, 384))).astype(np.float64), atol=1e-4
    )
    corners = np.array([[90 - 281.25 / 2, 180 - 375 / 2, 1.0], [90 + 281.25 / 2, 180 + 375 / 2, 1.0]])
    np.testing.assert_allclose(corners @ m.T, [[0.0, 0.0], [288.0, 384.0]], atol=1e-6)
    # Model-input pixels back to the image: the inverse of the warp.
    pts = np.array([[0.0, 0.0], [144.0, 192.0], [288.0, 384.0]])
    np.testing.assert_allclose(
        keypoints_to_image(pts, (288, 384), center, fixed), [[-50.625, -7.5], [90.0, 180.0], [230.625, 367.5]]
    )


def _dwpose_points(center, scale, size):
    """The three float32 point pairs of DWPose's get_warp_matrix (rotation 0), for cv2.getAffineTransform."""
    w, h = size
    c = np.asarray(center, np.float32)
    src = np.array([c, c + np.array([0, -scale[0] / 2]), c - scale[0] / 2], np.float32)
    dst = np.array([[w / 2, h / 2], [w / 2, h / 2 - w / 2], [0, h / 2 - w / 2]], np.float32)
    return src, dst


def _yolox_raw(boxes_scores: list[tuple[int, float, float, float, float, float]]) -> np.ndarray:
    """A YOLOX output [8400, 85] with given anchors set: (anchor, cx, cy, w, h, person score) in input px."""
    raw = np.zeros((8400, 85), np.float32)
    grid = []
    for stride in (8, 16, 32):
        n = 640 // stride
        grid += [(x, y, stride) for y in range(n) for x in range(n)]
    for anchor, cx, cy, w, h, score in boxes_scores:
        gx, gy, stride = grid[anchor]
        raw[anchor, :4] = [cx / stride - gx, cy / stride - gy, np.log(w / stride), np.log(h / stride)]
        raw[anchor, 4], raw[anchor, 5] = 1.0, score
    return raw


def test_yolox_letterbox_decode_and_nms():
    image = np.full((480, 320, 3), 200, np.uint8)
    x, ratio = yolox_letterbox(image)
    assert x.shape == (3, 640, 640) and x.dtype == np.float32 and ratio == pytest.approx(640 / 480)
    assert x[:, :, :426].min() == 200 and x[:, :, 427:].max() == 114  # image top-left, grey 114 padding
    # Anchor 6400 is the first stride-16 cell: decode round-trips its box.
    boxes, scores = yolox_decode(_yolox_raw([(6400, 100.0, 200.0, 60.0, 120.0, 0.8)]))
    np.testing.assert_allclose(boxes[6400], [70.0, 140.0, 130.0, 260.0], rtol=1e-5)
    assert scores[6400, 0] == pytest.approx(0.8) and scores[0, 0] == 0
    # NMS (+1 pixel areas): the overlapping weaker box goes, the disjoint one stays; > 0.3 afterwards.
    raw = _yolox_raw(
        [
            (6400, 100.0, 200.0, 60.0, 120.0, 0.8),
            (6401, 102.0, 202.0, 60.0, 120.0, 0.9),
            (100, 400.0, 300.0, 50.0, 100.0, 0.6),
            (200, 500.0, 500.0, 50.0, 100.0, 0.2),  # candidate (> 0.1) but below 0.3
        ]
    )
    people = yolox_person_boxes(raw, ratio=2.0)
    np.testing.assert_allclose(people, [[36.0, 71.0, 66.0, 131.0], [187.5, 125.0, 212.5, 175.0]], rtol=1e-5)
    assert nms(
        np.array([[0, 0, 9, 9], [0, 0, 9, 10], [20, 20, 30, 30]]), np.array([0.5, 0.9, 0.1]), 0.45
    ) == [
        1,
        2,
    ]


class _Io:
    def __init__(self, name, shape):
        self.name, self.shape = name, shape


class _FakeDet:
    """Stands in for yolox_l.onnx: one person at image box (40, 30, 140, 330) of a 480 x 360 frame."""

    def get_inputs(self):
        return [_Io("images", [1, 3, 640, 640])]

    def run(self, names, feed):
        (x,) = feed.values()
        assert x.shape == (1, 3, 640, 640) and x.dtype == np.float32
        r = 640 / 480
        return [_yolox_raw([(6400, 90.0 * r, 180.0 * r, 100.0 * r, 300.0 * r, 0.95)])[None]]


class _FakePose:
    """Stands in for dw-ll_ucoco_384.onnx: SimCC peaks at model-input pixel (144 + k / 2, 192) for point k,
    and records the input it was given."""

    def get_inputs(self):
        return [_Io("input", [1, 3, 384, 288])]

    def run(self, names, feed):
        (x,) = feed.values()
        self.seen = x
        sx, sy = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)
        for k in range(133):
            sx[0, k, 288 + k], sy[0, k, 384] = 0.8, 0.9
        return [sx, sy]


def test_dwpose_pipeline_with_stand_in_sessions():
    pose = _FakePose()
    model = DWPoseONNX.from_sessions(_FakeDet(), pose)
    assert model.input_size == (288, 384)
    frame = np.zeros((480, 360, 3), np.uint8)
    frame[..., 0] = 255  # pure red in RGB
    kp = model(torch.from_numpy(frame).permute(2, 0, 1)[None, None])
    assert kp.shape == (1, 1, 133, 3) and kp.dtype == torch.float32
    # Person box (40, 30, 140, 330) -> centre (90, 180), scale (281.25, 375): input pixel (144, 192) is the
    # centre, and one input pixel is 281.25 / 288 image pixels.
    k = np.arange(133)
    np.testing.assert_allclose(kp[0, 0, :, 0].numpy(), 90 + (k / 2) * 281.25 / 288, rtol=1e-5)
    np.testing.assert_allclose(kp[0, 0, :, 1].numpy(), 180.0, rtol=1e-5)
    np.testing.assert_allclose(kp[0, 0, :, 2].numpy(), 0.8)
    # BGR input normalised with DWPose's constants: red lands in channel 2.
    centre = pose.seen[0, :, 192, 144]
    np.testing.assert_allclose(
        centre, [-123.675 / 58.395, -116.28 / 57.12, (255 - 103.53) / 57.375], rtol=1e-5
    )
