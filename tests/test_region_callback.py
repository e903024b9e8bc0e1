"""JWBDHCallback and RegionalSuite in Lightning: keys, gating, sanity check, resume, DDP, absent regions."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

from jwbdh_callbacks.presets import load_preset, preset_metrics
from jwbdh_callbacks.region_callback import JWBDHCallback
from metrics.regions import boxes_from_keypoints
from metrics.suite import METRIC_KEYS, AvatarBatch, RegionalSuite

H = W = 128
T = 6
FAST_METRICS = ("SC", "BC", "AQ", "IQ", "FID", "FVD", "SSIM", "PSNR", "E-FID", "CSIM")


def _keypoints(t: int, face_center: tuple[float, float], hands: bool) -> torch.Tensor:
    """COCO-WholeBody keypoints: a 40 px face at ``face_center`` and two hands near the bottom corners."""
    kp = torch.zeros(t, 133, 3)
    g = torch.Generator().manual_seed(int(face_center[0]))
    for i in range(23, 91):  # face points (0-based COCO-WholeBody)
        kp[:, i, 0] = face_center[0] + torch.rand(t, generator=g) * 40 - 20
        kp[:, i, 1] = face_center[1] + torch.rand(t, generator=g) * 40 - 20
        kp[:, i, 2] = 0.9
    if hands:
        for i, cx in ((range(91, 112), 30.0), (range(112, 133), 98.0)):
            for j in i:
                kp[:, j, 0] = cx + torch.rand(t, generator=g) * 30 - 15
                kp[:, j, 1] = 100 + torch.rand(t, generator=g) * 30 - 15
                kp[:, j, 2] = 0.9
    return kp


class AvatarClips(Dataset):
    """Reference clips (moving gradient + blob) with keypoints; items 1 and 3 show no hands."""

    def __init__(self, n: int = 4) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        y = torch.linspace(0, 1, H).view(1, 1, H, 1)
        x = torch.linspace(0, 1, W).view(1, 1, 1, W)
        t = torch.arange(T).view(T, 1, 1, 1)
        c = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
        video = 0.5 + 0.4 * torch.sin(5 * x + 3 * y + 0.4 * t + c + i)
        return {
            "index": i,
            "reference": (video * 255).round().to(torch.uint8),
            "keypoints": _keypoints(T, (64.0 + 4 * i, 48.0), hands=i % 2 == 0),
            "fps": torch.tensor(25.0),
        }


class ToyGenerator(pl.LightningModule):
    """'Generates' a degraded copy of the reference; the noise depends only on the item index."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.sanity_updates = 0

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return (self.gain - 1.0).pow(2) + 0.0 * batch["reference"].float().mean()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        noise = torch.stack(
            [
                torch.randn(batch["reference"].shape[1:], generator=torch.Generator().manual_seed(int(i)))
                for i in batch["index"]
            ]
        )
        generated = (batch["reference"].float() / 255 + 0.05 * noise * self.gain).clamp(0, 1)
        if self.trainer.sanity_checking:
            self.sanity_updates += 1
        return {
            "generated": generated,
            "reference": batch["reference"],
            "keypoints_reference": batch["keypoints"],
            "fps": batch["fps"],
        }

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _preset(metrics: tuple[str, ...] = FAST_METRICS):
    cfg = load_preset("smoke")
    cfg.metrics = {k: v for k, v in cfg.metrics.items() if k in metrics}
    return cfg


def _trainer(tmp_path, callbacks, devices=1, epochs=2, logger=False, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        limit_train_batches=1,
        **kwargs,
    )


def _loaders(n: int = 4):
    data = AvatarClips(n)
    return DataLoader(data, batch_size=1), DataLoader(data, batch_size=1)


def test_logged_keys_gating_sanity_and_csv(tmp_path, monkeypatch):
    import jwbdh_callbacks.region_callback as region_callback
    from jwbdh_callbacks.logging import MediaLogger

    built = []
    monkeypatch.setattr(region_callback, "side_by_side", lambda *a, **k: built.append(1))
    fake_wandb = type("WandbLogger", (), {})()
    assert MediaLogger([fake_wandb]).logs_media and not MediaLogger([]).logs_media
    cb = JWBDHCallback(preset=_preset(), every_n_epochs=2, num_media_samples=1)
    model = ToyGenerator()
    logger = CSVLogger(tmp_path, name="csv")
    trainer = _trainer(tmp_path, [cb], epochs=1, logger=logger, num_sanity_val_steps=1)
    trainer.fit(model, *_loaders())
    assert model.sanity_updates == 1  # the sanity check ran validation_step ...
    assert not any(
        k.startswith("val/jwbdh") for k in trainer.callback_metrics
    )  # ... but no evaluation, epoch 0 gated
    assert cb.last_evaluated_epoch is None

    trainer = _trainer(tmp_path, [cb], epochs=2, logger=logger, num_sanity_val_steps=0)
    trainer.fit(model, *_loaders())
    keys = {k for k in trainer.callback_metrics if k.startswith("val/jwbdh_uncalibrated/")}
    expected = {
        f"val/jwbdh_uncalibrated/{r}/{m}" for r in ("whole_body", "face", "hand") for m in FAST_METRICS
    }
    assert keys == expected
    sem = {k for k in trainer.callback_metrics if k.startswith("val/jwbdh_uncalibrated_sem/")}
    assert sem == {k.replace("uncalibrated/", "uncalibrated_sem/") for k in expected}  # all per-video means
    spread = cb.last_summaries["face"]["SSIM"]
    logged = float(trainer.callback_metrics["val/jwbdh_uncalibrated_sem/face/SSIM"])
    assert logged == pytest.approx(spread.sem, rel=1e-6) and spread.ci_low < spread.mean < spread.ci_high
    assert cb.last_evaluated_epoch == 1
    values = {k: float(trainer.callback_metrics[k]) for k in keys}
    assert all(math.isfinite(v) for v in values.values())
    assert 0.0 < values["val/jwbdh_uncalibrated/face/SSIM"] < 1.0
    tables = list((tmp_path / "csv").rglob("jwbdh_table_step*.csv"))
    assert tables and "paper: Step" in tables[0].read_text()
    assert not built  # a CSV logger takes no videos: sample videos are never built


def test_resume_restores_callback_state(tmp_path):
    cb = JWBDHCallback(preset=_preset(("SSIM", "PSNR")), num_media_samples=0)
    trainer = _trainer(tmp_path, [cb], epochs=1, num_sanity_val_steps=0)
    trainer.fit(ToyGenerator(), *_loaders(2))
    state = cb.state_dict()
    assert state["last_evaluated_epoch"] == 0 and "whole_body" in state["last_results"]
    fresh = JWBDHCallback(preset=_preset(("SSIM", "PSNR")), num_media_samples=0)
    fresh.load_state_dict(state)
    assert fresh.last_evaluated_epoch == 0 and fresh.last_results == state["last_results"]
    assert fresh.state_key == cb.state_key


def test_pooled_reference_is_frozen_after_first_epoch_and_survives_resume(tmp_path):
    cfg = _preset(("FID",))
    cfg.metrics["FID"] = {
        "protocol": "standard",
        "feature_extractor": "smoke:image_encoder:8:uint8",
        "num_features": 8,
    }
    cb = JWBDHCallback(preset=cfg, regions=("whole_body",), num_media_samples=0)
    trainer = _trainer(tmp_path, [cb], epochs=2, num_sanity_val_steps=0)
    trainer.fit(ToyGenerator(), *_loaders(4))
    first, second = cb.last_results, None
    stats = cb.state_dict()["reference_statistics"]
    assert stats["whole_body"]["FID"][2] == 4 * T  # 4 reference videos of T frames, counted once
    resumed = JWBDHCallback(preset=cfg, regions=("whole_body",), num_media_samples=0)
    resumed.load_state_dict(cb.state_dict())
    trainer = _trainer(tmp_path, [resumed], epochs=1, num_sanity_val_steps=0)
    trainer.fit(ToyGenerator(), *_loaders(4))
    second = resumed.last_results
    assert second["whole_body"]["FID"] == pytest.approx(first["whole_body"]["FID"], rel=1e-9)


def test_reference_features_cached_across_epochs_give_the_same_numbers(tmp_path):
    cfg = _preset(("FID", "E-FID", "FVD", "SSIM"))
    runs = {}
    for cached in (False, True):
        cb = JWBDHCallback(
            preset=cfg, regions=("whole_body", "face"), num_media_samples=0, cache_reference_features=cached
        )
        history, lookups = [], []
        for _ in range(2):
            trainer = _trainer(tmp_path, [cb], epochs=1, num_sanity_val_steps=0)
            trainer.fit(ToyGenerator(), *_loaders(4))
            history.append(cb.last_results)
            if cached:
                lookups.append((cb.suite.reference_cache.misses, cb.suite.reference_cache.hits))
        if cached:
            # Epoch 0 encodes every scored reference (4 whole frames x 3 Fréchet metrics, plus the face
            # videos long enough to score); epoch 1 reuses all of them and encodes nothing.
            (miss0, hit0), (miss1, hit1) = lookups
            assert miss0 >= 12 and hit0 == 0 and miss1 == miss0 and hit1 == miss0
        runs[cached] = history
    assert runs[True] == runs[False]
    assert JWBDHCallback(preset="smoke").suite is None  # off by default: nothing to build before setup
    with pytest.raises(ValueError, match="`cache_reference_features` must be a bool"):
        JWBDHCallback(preset="smoke", cache_reference_features="yes")


def test_missing_checkpoints_fail_in_setup_before_training(tmp_path, monkeypatch):
    from metrics.backbones.weights import WeightsUnavailableError

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("JWBDH_WEIGHTS_DIR", raising=False)
    model = ToyGenerator()
    steps = []
    model.on_train_batch_start = lambda *a, **k: steps.append(1)
    cb = JWBDHCallback(preset="jwbdh-v1", every_n_epochs=2, num_media_samples=0)
    trainer = _trainer(tmp_path, [cb], epochs=2, num_sanity_val_steps=0)
    with pytest.raises(WeightsUnavailableError) as info:
        trainer.fit(model, *_loaders(2))
    text = str(info.value)
    assert text.startswith("9 checkpoint(s) needed are not available") and not steps
    assert text.count("jwbdh-weights download") == 1


def _fit_metrics(devices: int, tmp_path) -> dict[str, float]:
    cb = JWBDHCallback(preset=_preset(("SSIM", "PSNR", "FID", "SC", "CSIM")), num_media_samples=0)
    trainer = _trainer(tmp_path, [cb], devices=devices, epochs=1, num_sanity_val_steps=0)
    trainer.fit(ToyGenerator(), *_loaders(4))
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/jwbdh")}


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_two_processes_log_the_same_as_one_and_handless_rank_does_not_hang(tmp_path):
    single = _fit_metrics(1, tmp_path / "one")
    double = _fit_metrics(2, tmp_path / "two")  # rank 1 gets items 1 and 3: no hands at all
    assert set(single) == set(double) and "val/jwbdh_uncalibrated/hand/SSIM" in single
    means = {k: v for k, v in single.items() if "_sem/" not in k and "_ci_" not in k}
    assert {k: double[k] for k in means} == pytest.approx(means, rel=1e-6)
    # the spread comes from float64 sums of squares: summed in another order on 2 ranks, it keeps ~1e-16 *
    # mean^2 / variance of relative precision (smoke FIDs of ~1e-7 that differ little: ~1e-4)
    spread = {k: v for k, v in single.items() if k not in means}
    assert spread and {k: double[k] for k in spread} == pytest.approx(spread, rel=1e-3)


def test_suite_all_twelve_metrics_on_three_regions_smoke():
    data = AvatarClips(1)[0]
    ref = data["reference"][None]
    gen = (ref.float() / 255 * 0.9).clamp(0, 1)
    suite = RegionalSuite(preset_metrics(load_preset("smoke")))
    with pytest.warns(UserWarning, match="skipped"):  # 1-frame face crops: SC/BC/DD need 2 frames, counted
        suite.update(
            AvatarBatch(generated=gen, reference=ref, keypoints_reference=data["keypoints"][None], fps=[25.0])
        )
    results = suite.compute()
    assert set(results) == {"whole_body", "face", "hand"}
    for region in results:
        assert set(results[region]) == set(METRIC_KEYS)
    assert all(math.isfinite(v) for v in results["whole_body"].values())
    assert suite.skipped_metric.get("face/DD", 0) == 1 and math.isnan(results["face"]["DD"])
    assert math.isfinite(results["hand"]["DD"])  # block-matching flow (smoke) runs on small crops
    assert not suite.is_calibrated


def test_raft_on_small_crops_is_skipped_and_counted():
    data = AvatarClips(2)[1]  # no hands: a normal ~60 px face box on every frame
    ref = data["reference"][None]
    batch = AvatarBatch(generated=ref, reference=ref, keypoints_reference=data["keypoints"][None], fps=[25.0])
    raft = RegionalSuite({"DD": {"weights": None, "num_flow_updates": 1}}, regions=("face",))
    with pytest.warns(UserWarning, match="DD skipped"):
        raft.update(batch)  # torchvision RAFT needs >= 121 px frames
    assert raft.skipped_metric["face/DD"] == 1


def test_grouped_updates_equal_per_video_updates_and_skip_only_the_bad_video():
    """Videos of one shape go to each metric as one batch; a rejection caused by one video's content (fps 0
    for DD) is retried video by video, so only that video is skipped and counted."""
    torch.manual_seed(0)
    videos = torch.randint(0, 256, (3, 6, 3, 40, 48), dtype=torch.uint8)
    shifted = videos.roll(1, dims=-1)
    metrics = {"DD": {"flow_model": "smoke:block_matching_flow"}, "SSIM": {}, "PSNR": {}}
    grouped = RegionalSuite(metrics, regions=("whole_body",))
    with pytest.warns(UserWarning, match="DD skipped"):
        grouped.update(AvatarBatch(generated=shifted, reference=videos, fps=[25.0, 0.0, 25.0]))
    assert grouped.skipped_metric == {"whole_body/DD": 1}
    one_by_one = RegionalSuite(metrics, regions=("whole_body",))
    for i in (0, 2):
        one_by_one.update(AvatarBatch(generated=shifted[i : i + 1], reference=videos[i : i + 1], fps=[25.0]))
    dd_grouped, dd_single = (
        grouped.collections["whole_body"]["DD"],
        one_by_one.collections["whole_body"]["DD"],
    )
    assert float(dd_grouped.compute()) == float(dd_single.compute())
    assert int(dd_grouped.num_videos) == 2
    ssim = grouped.collections["whole_body"]["SSIM"]
    assert int(ssim.num_videos) == 3  # the other metrics took all three videos in one call


def test_suite_crops_follow_the_keypoint_recipe():
    # item 1 shows no hands: the jwbdh-v1 face recipe also reads keypoint 91 (the left-hand root, a quirk of
    # the benchmark's slicing, see metrics/regions.py), which would otherwise stretch the face box
    data = AvatarClips(2)[1]
    ref = data["reference"][None]
    suite = RegionalSuite({"PSNR": {"max_psnr": 100.0}}, regions=("face",))
    gen = ref.clone()
    boxes, _ = boxes_from_keypoints(data["keypoints"][None], (H, W), "face")
    x1, y1, x2, y2 = (int(v) for v in boxes[0, 0])
    assert 20 < x2 - x1 < 100 and 20 < y2 - y1 < 100
    gen[0, :, :, y1:y2, x1:x2] = 0  # destroy only the face: face PSNR drops, a disjoint region would not
    suite.update(AvatarBatch(generated=gen, reference=ref, keypoints_reference=data["keypoints"][None]))
    assert suite.compute()["face"]["PSNR"] < 20.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="every_n_epochs"):
        JWBDHCallback(preset="smoke", every_n_epochs=0)
    with pytest.raises(ValueError, match="max_batches"):
        JWBDHCallback(preset="smoke", max_batches=0)
    with pytest.raises(ValueError, match="preset"):
        JWBDHCallback(preset="nope")
    with pytest.raises(ValueError, match="no argument"):
        JWBDHCallback(preset="smoke", overrides=["metrics.SSIM.windw=uniform"])
    with pytest.raises(ValueError, match="generated"):
        AvatarBatch.from_dict({"reference": torch.zeros(1)})


def test_main_classes_are_exported_from_the_package_lazily():
    import subprocess
    import sys

    code = (
        "import sys, jwbdh_callbacks; assert 'lightning' not in sys.modules, 'eager lightning import'; "
        "from jwbdh_callbacks import JWBDHCallback, TTSWinRateCallback, load_preset; "
        "from jwbdh_callbacks.region_callback import JWBDHCallback as A; "
        "from jwbdh_callbacks.tts_callback import TTSWinRateCallback as B; "
        "assert JWBDHCallback is A and TTSWinRateCallback is B and load_preset('smoke').name == 'smoke'; "
        "assert {'JWBDHCallback', 'TTSWinRateCallback', 'load_preset'} <= set(dir(jwbdh_callbacks))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import jwbdh_callbacks

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        jwbdh_callbacks.Nope  # noqa: B018


def test_keypoints_must_match_their_videos_frame_count():
    suite = RegionalSuite({"SSIM": {}, "PSNR": {"max_psnr": 100.0}}, regions=("whole_body", "face"))
    video = (AvatarClips(1)[0]["reference"])[None]  # [1, T, 3, H, W]
    kp = _keypoints(T, (64.0, 48.0), hands=False)[None]
    suite.update(AvatarBatch(generated=video, reference=video, keypoints_reference=kp))  # consistent: fine
    counted = [int(m.num_videos) for c in suite.collections.values() for m in c.values()]
    for bad in (kp[:, :2], torch.cat([kp, kp], 1)):
        with pytest.raises(ValueError, match=rf"`keypoints_reference` has {bad.shape[1]} frame\(s\)"):
            suite.update(AvatarBatch(generated=video, reference=video, keypoints_reference=bad))
    with pytest.raises(ValueError, match=r"must be \[B, T, 133, 3\]"):
        suite.update(AvatarBatch(generated=video, reference=video, keypoints_reference=kp[..., :2]))
    # rejected batches changed no state, not even the whole-body metrics (keypoints are checked first)
    assert [int(m.num_videos) for c in suite.collections.values() for m in c.values()] == counted
    # the other side's keypoints serve a SHORTER generated clip (cut to it), never a longer video
    short = video[:, : T - 2]
    suite.update(AvatarBatch(generated=short, reference=video, keypoints_reference=kp))
    with pytest.raises(
        ValueError, match=r"`keypoints_generated` has 4 frame\(s\), used for reference videos"
    ):
        suite.update(AvatarBatch(generated=short, reference=video, keypoints_generated=kp[:, : T - 2]))
