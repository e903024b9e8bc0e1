"""RegionalSuite bookkeeping: skip counts as states, caught exceptions, spread of the means, merge and
per-video scalar states (the CLI's rows and resume), NaN scores left out of the means."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from metrics.aggregation import PerVideoMeanMetric, mean_summary
from metrics.suite import AvatarBatch, RegionalSuite

PIXEL = {"SSIM": {"window": "uniform", "num_frames": 4}, "PSNR": {"num_frames": 4}}


def _videos(seed: int, b: int = 3, t: int = 4, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)
    noise = torch.randint(-40, 41, ref.shape, generator=g)
    return (ref.int() + noise).clamp(0, 255).to(torch.uint8), ref


def test_mean_summary_matches_scipy_sem_and_t_interval() -> None:
    x = np.array([21.5, 25.25, 19.0, 30.125, 27.0, 22.75])
    s = mean_summary(x.sum(), (x * x).sum(), x.size)
    low, high = stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.sem == pytest.approx(stats.sem(x), rel=1e-10)
    assert (s.ci_low, s.ci_high) == pytest.approx((low, high), rel=1e-10)
    one = mean_summary(3.0, 9.0, 1)
    assert one.mean == 3.0 and math.isnan(one.sem) and math.isnan(one.ci_low)
    assert math.isnan(mean_summary(0.0, 0.0, 0).mean)
    with pytest.raises(ValueError, match="level"):
        mean_summary(1.0, 1.0, 2, level=1.5)


def test_suite_summaries_equal_scipy_on_the_per_video_scores() -> None:
    gen, ref = _videos(0, b=5)
    suite = RegionalSuite(PIXEL, regions=("whole_body",))
    suite.update(AvatarBatch(generated=gen, reference=ref))
    per_video = []
    for i in range(5):
        one = RegionalSuite(PIXEL, regions=("whole_body",))
        one.update(AvatarBatch(generated=gen[i : i + 1], reference=ref[i : i + 1]))
        per_video.append(one.compute()["whole_body"]["PSNR"])
    summary = suite.summaries()["whole_body"]["PSNR"]
    x = np.array(per_video)
    assert summary.count == 5
    assert summary.mean == pytest.approx(x.mean(), rel=1e-12)
    assert summary.sem == pytest.approx(stats.sem(x), rel=1e-9)


def test_nan_video_scores_are_counted_not_averaged() -> None:
    class Echo(PerVideoMeanMetric):
        def update(self, scores: torch.Tensor) -> None:
            self.add_video_scores(scores)

    m = Echo()
    m.update(torch.tensor([1.0, float("nan"), 3.0, float("inf")]))
    with pytest.warns(UserWarning, match="1 video\\(s\\) gave a NaN score"):
        assert float(m.compute()) == math.inf
    assert int(m.num_nan) == 1 and int(m.num_videos) == 3
    m.reset()
    m.update(torch.tensor([1.0, float("nan"), 3.0]))
    with pytest.warns(UserWarning, match="NaN"):
        assert float(m.compute()) == 2.0


def test_exception_in_one_metric_update_is_a_counted_skip_and_the_rest_is_scored() -> None:
    gen, ref = _videos(1)
    suite = RegionalSuite(PIXEL, regions=("whole_body",))
    ssim = suite.collections["whole_body"]["SSIM"]

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory (simulated)")

    ssim.update = out_of_memory
    with pytest.warns(UserWarning, match="RuntimeError: CUDA out of memory"):
        suite.update(AvatarBatch(generated=gen, reference=ref))
    assert suite.skip_counts()["whole_body/SSIM"] == 3  # the batch failed, then each video on its own
    assert suite.skipped_metric == {"whole_body/SSIM": 3}
    assert [why for _, why in suite.last_update.skips] == ["RuntimeError: CUDA out of memory (simulated)"] * 3
    reference = RegionalSuite({"PSNR": PIXEL["PSNR"]}, regions=("whole_body",))
    reference.update(AvatarBatch(generated=gen, reference=ref))
    assert suite.compute()["whole_body"]["PSNR"] == reference.compute()["whole_body"]["PSNR"]


def test_merge_of_per_pair_suites_equals_one_suite_and_scalar_states_round_trip() -> None:
    gen, ref = _videos(2, b=4)
    whole = RegionalSuite(PIXEL, regions=("whole_body",))
    whole.update(AvatarBatch(generated=gen, reference=ref))
    total = RegionalSuite(PIXEL, regions=("whole_body",))
    resumed = RegionalSuite(PIXEL, regions=("whole_body",))
    scratch = RegionalSuite(PIXEL, regions=("whole_body",), sync_on_compute=False)
    for i in range(4):
        scratch.reset()
        scratch.update(AvatarBatch(generated=gen[i : i + 1], reference=ref[i : i + 1]))
        total.merge(scratch)
        resumed.merge_scalar_states(scratch.scalar_states())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = whole.compute()["whole_body"]
        assert total.compute()["whole_body"] == pytest.approx(expected, rel=1e-12)
        assert resumed.compute()["whole_body"] == pytest.approx(expected, rel=1e-12)
    assert resumed.summaries()["whole_body"]["SSIM"].count == 4
    with pytest.raises(ValueError, match="names no metric"):
        resumed.merge_scalar_states({"face/SSIM": {}})


def test_region_skips_and_frames_kept_are_reported() -> None:
    gen, ref = _videos(3, b=2, t=3, size=64)
    kp = torch.zeros(2, 3, 133, 3)
    kp[..., 0] = 20.0 + torch.arange(133.0) % 7  # a small face box ...
    kp[..., 1] = 20.0 + torch.arange(133.0) % 5
    kp[0, :2, :, 2] = 0.9  # ... seen in 2 of the 3 frames of video 0 only
    suite = RegionalSuite({"PSNR": {}}, regions=("whole_body", "face"))
    suite.update(AvatarBatch(generated=gen, reference=ref, keypoints_reference=kp))
    report = suite.last_update
    assert report.frames["whole_body"] == [(3, 3), (3, 3)]
    assert report.frames["face"][0] == (2, 2) and report.frames["face"][1] == (0, 0)
    assert suite.skip_counts()["face"] == 1 and ("face", "0 frame(s) kept") in report.skips


def test_shared_boxes_cover_a_shorter_generated_clip_and_refuse_other_frame_sizes() -> None:
    gen, ref = _videos(4, b=1, t=6, size=64)
    boxes = torch.tensor([8.0, 8.0, 40.0, 48.0]).expand(1, 6, 4).clone()
    valid = torch.ones(1, 6, dtype=torch.bool)
    suite = RegionalSuite({"PSNR": {}}, regions=("face",))
    # MTCNN boxes of a 6-frame reference used for a 4-frame generated clip (was an internal shape error)
    suite.update(
        AvatarBatch(generated=gen[:, :4], reference=ref, boxes={"face": boxes}, valid={"face": valid})
    )
    assert suite.last_update.frames["face"] == [(4, 6)]
    assert "generated videos have 4 frame(s), references 6" in suite.last_update.notes[0]
    small = gen[..., :32, :32]
    with pytest.raises(ValueError, match="give per-side keypoints"):
        suite.update(
            AvatarBatch(generated=small, reference=ref, boxes={"face": boxes}, valid={"face": valid})
        )
    with pytest.raises(ValueError, match="covering every frame"):
        suite.update(
            AvatarBatch(
                generated=gen, reference=ref, boxes={"face": boxes[:, :3]}, valid={"face": valid[:, :3]}
            )
        )


def test_frame_size_difference_is_noted_once_per_update() -> None:
    gen, ref = _videos(5, b=1, t=3, size=32)
    suite = RegionalSuite({"PSNR": {}}, regions=("whole_body",))
    with pytest.warns(UserWarning, match="resize"):
        suite.update(AvatarBatch(generated=gen[..., :24, :28], reference=ref))
    assert any("28x24, references 32x32" in n for n in suite.last_update.notes)
