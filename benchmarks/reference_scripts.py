"""Baselines that reproduce the JWB-DH-V1 reference scripts' own code paths, for the speed benchmarks.

:class:`FIDCalculateLoop` is ``FID_calculate.py``'s per-video loop (spec/jwbdh_v1.md s3), function by
function, with the same batching and library calls (read from github.com/deepreasonings/WholeBodyBenchmark,
mirror silent-commit/WholeBodyBenchmark; written anew here, not copied):

* ``process_video``: for one (generated, ground-truth) pair, FID and E-FID, then FVD, then PSNR / SSIM /
  CSIM, each from its own fresh list of the first 16 frames (the script decodes the two videos three times;
  here the decoded BGR frames are given, so decoding is NOT part of the baseline's time);
* ``get_inception_features`` / ``get_edge_features``: frames in batches of 4; per frame BGR->RGB,
  ``PIL.Image.fromarray``, torchvision ``Resize((299, 299))``, ``ToTensor``, ``Normalize`` (ImageNet
  mean/std) -- for E-FID first ``cv2.cvtColor(BGR2GRAY)``, ``cv2.Canny(gray, 100, 200)``, GRAY2RGB --,
  ``torch.stack``, the Inception-v3 (``fc`` = identity) under ``torch.no_grad()``, ``.cpu().numpy()``,
  ``torch.cuda.empty_cache()`` after every batch when CUDA is available; ground truth first;
* ``calculate_statistics`` (``np.mean`` of the float32 features, ``np.cov(rowvar=False)``) and
  ``calculate_fid(mu_gt, sigma_gt, mu_gen, sigma_gen)``: ``scipy.linalg.sqrtm(sigma1 @ sigma2)``; if not
  finite, both covariances + 1e-6 I and sqrtm again; real part; ``diff @ diff + tr(S1 + S2 - 2 covmean)``;
* ``compute_fvd_for_videos``: black frames appended up to 16, ``cv2.resize(224x224, INTER_AREA)``,
  BGR->RGB, ``np.stack``, ``torch.from_numpy(...).float() / 255``, ``[1, 16, 224, 224, 3]`` permuted to
  ``[1, 3, 16, 224, 224]``; the I3D called with ``rescale=False, resize=False, return_features=True``,
  generated clip first; ``compute_fvd``: a single sample's covariance is ``1e-6 I``, both get another
  ``+ 1e-6 I`` before ``sqrtm(S_gen @ S_real)``, so the trace term is ``-2e-6 d`` (-8e-4 at d = 400);
* ``compute_psnr_ssim_csim``: per frame pair (generated resized to the ground-truth size if they differ)
  skimage ``peak_signal_noise_ratio(gt, gen, data_range=255)``, ``structural_similarity(gt, gen,
  channel_axis=-1, data_range=255, win_size=w)`` (w = 7, or the largest odd size <= the frame's smaller side,
  at least 3), cosine of the flattened float64 pixels; means over the pairs;
* the per-video values are averaged over videos (the summary CSV's figures).

Differences from the script, none of which changes its arithmetic: no decoding (frames are passed in), no
``print`` calls, no CSV files, no ``try``/``except`` fallbacks (a failure raises), and
``scipy.linalg.sqrtm(A)`` is called without ``disp=False``: SciPy 1.18 removed that argument (1.16-1.17
deprecate it); the matrix returned is the same one that ``disp=False`` returned as the first element.

Every step runs under a named :class:`StageTimer` stage, so a benchmark can split the loop's time into the
Fréchet step (``FRECHET_STAGES``: statistics and sqrtm) and everything else.

Example:
    >>> import numpy as np
    >>> calculate_fid(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    2.0
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import scipy.linalg
import torch
from torch import nn

__all__ = [
    "FRECHET_STAGES",
    "FIDCalculateLoop",
    "StageTimer",
    "calculate_fid",
    "calculate_statistics",
    "compute_fvd",
    "imagenet_transform",
]

MAX_FRAMES = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KEYS = ("FID", "E-FID", "FVD", "SSIM", "PSNR", "CSIM")

#: Stages of :class:`FIDCalculateLoop` that make up the Fréchet step (moments and matrix square roots).
FRECHET_STAGES = ("fid_statistics", "fid_sqrtm", "fvd_statistics", "fvd_sqrtm")


class StageTimer:
    """Accumulates wall time per named stage (device-synchronised on CUDA).

    Example:
        >>> timer = StageTimer(torch.device("cpu"))
        >>> with timer("work"):
        ...     _ = sum(range(10))
        >>> list(timer.seconds)
        ['work']
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def reset(self) -> None:
        self.seconds = {}


def imagenet_transform() -> Callable:
    """The script's ``transform_pipeline``: Resize((299, 299)), ToTensor, Normalize(ImageNet mean/std)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize((299, 299)),
            transforms.ToTensor(),
            transforms.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)),
        ]
    )


def calculate_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(np.mean(features, 0), np.cov(features, rowvar=False))`` (the mean keeps the features' dtype)."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def calculate_fid(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """The script's ``calculate_fid``: sqrtm of ``sigma1 @ sigma2`` with the ``+ eps I`` retry, real part."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # "Matrix is singular ...": expected at rank <= 15
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1 + sigma2 - 2 * covmean))


def _fvd_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = np.mean(feats, axis=0)
    sigma = np.eye(feats.shape[1]) * 1e-6 if feats.shape[0] == 1 else np.cov(feats, rowvar=False)
    return mu, sigma


def compute_fvd(feats_fake: np.ndarray, feats_real: np.ndarray, timer: StageTimer | None = None) -> float:
    """The script's ``compute_fvd`` (single-sample covariance ``1e-6 I``, then ``+ 1e-6 I`` again)."""
    timer = timer or StageTimer(torch.device("cpu"))
    with timer("fvd_statistics"):
        mu_gen, sigma_gen = _fvd_stats(feats_fake)
        mu_real, sigma_real = _fvd_stats(feats_real)
        eps = 1e-6
        sigma_gen_reg = sigma_gen + np.eye(sigma_gen.shape[0]) * eps
        sigma_real_reg = sigma_real + np.eye(sigma_real.shape[0]) * eps
        m = np.square(mu_gen - mu_real).sum()
    with timer("fvd_sqrtm"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = scipy.linalg.sqrtm(np.dot(sigma_gen_reg, sigma_real_reg))
        if np.iscomplexobj(s):
            s = s.real
        trace_term = np.trace(sigma_gen + sigma_real - 2 * s)
    return float(m + trace_term)


def _cosine_similarity(img1: np.ndarray, img2: np.ndarray) -> float:
    a = img1.flatten().astype(np.float64)
    b = img2.flatten().astype(np.float64)
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return float(np.dot(a, b) / (norm_a * norm_b))


class FIDCalculateLoop:
    """FID_calculate.py's per-video loop over decoded frames (see the module docstring), with stage timers.

    Args:
        inception: the script's ``inception_model``: torchvision Inception-v3 with ``fc`` = identity, eval
            mode, taking ImageNet-normalised float ``[N, 3, 299, 299]`` and returning ``[N, 2048]``.
        i3d: the I3D network, called as the script calls the TorchScript file.
        device: where both networks live (the script's ``device``).

    Example:
        >>> loop = FIDCalculateLoop(inception, i3d, torch.device("cpu"))  # doctest: +SKIP
        >>> loop.run(generated_bgr_videos, ground_truth_bgr_videos)  # doctest: +SKIP
        {'FID': ..., 'E-FID': ..., 'FVD': ..., 'SSIM': ..., 'PSNR': ..., 'CSIM': ...}
    """

    def __init__(self, inception: nn.Module, i3d: nn.Module, device: torch.device) -> None:
        self.inception = inception
        self.i3d = i3d
        self.device = device
        self.transform = imagenet_transform()
        self.timer = StageTimer(device)
        #: The last run's per-video feature arrays ``{"FID": [(gt, gen), ...], "E-FID": ..., "FVD": ...}``.
        self.features: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}

    # ------------------------------------------------------------------------------ FID and E-FID
    def _features(self, frames: list[np.ndarray], edges: bool, batch_size: int = 4) -> np.ndarray:
        """``get_inception_features`` (``edges=False``) / ``get_edge_features`` (``edges=True``)."""
        import cv2
        from PIL import Image

        features = []
        self.inception.eval()
        with torch.no_grad():
            for i in range(0, len(frames), batch_size):
                with self.timer("edges_cv2" if edges else "fid_preprocess_pil"):
                    batch_images = []
                    for frame in frames[i : i + batch_size]:
                        if edges:
                            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                            edge_map = cv2.Canny(gray, 100, 200)
                            pil_img = Image.fromarray(cv2.cvtColor(edge_map, cv2.COLOR_GRAY2RGB))
                        else:
                            pil_img = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                        batch_images.append(self.transform(pil_img))
                with self.timer("inception_forward"):
                    batch_tensor = torch.stack(batch_images).to(self.device)
                    features.append(self.inception(batch_tensor).cpu().numpy())
                    del batch_tensor
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
        return np.concatenate(features, axis=0)

    def compute_fid_efid(
        self, gen_frames: list[np.ndarray], gt_frames: list[np.ndarray]
    ) -> tuple[float, float]:
        values = []
        for edges in (False, True):
            gt_features = self._features(gt_frames, edges)
            gen_features = self._features(gen_frames, edges)
            self.features.setdefault("E-FID" if edges else "FID", []).append((gt_features, gen_features))
            with self.timer("fid_statistics"):
                mu_gt, sigma_gt = calculate_statistics(gt_features)
                mu_gen, sigma_gen = calculate_statistics(gen_features)
            with self.timer("fid_sqrtm"):
                values.append(calculate_fid(mu_gt, sigma_gt, mu_gen, sigma_gen))
        return values[0], values[1]

    # ----------------------------------------------------------------------------------------- FVD
    def _clip(self, frames: list[np.ndarray]) -> torch.Tensor:
        import cv2

        with self.timer("fvd_preprocess_cv2"):
            if len(frames) < MAX_FRAMES:
                black_frame = np.zeros_like(frames[0])
                while len(frames) < MAX_FRAMES:
                    frames.append(black_frame.copy())
            frames = frames[:MAX_FRAMES]
            resized = [
                cv2.cvtColor(cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                for f in frames
            ]
            tensor = torch.from_numpy(np.stack(resized)).float() / 255.0
            return tensor.unsqueeze(0)  # [1, 16, 224, 224, 3]

    def compute_fvd_for_videos(self, gen_frames: list[np.ndarray], gt_frames: list[np.ndarray]) -> float:
        fake_tensor, real_tensor = self._clip(gen_frames), self._clip(gt_frames)
        with self.timer("i3d_forward"), torch.no_grad():
            kwargs = {"rescale": False, "resize": False, "return_features": True}
            videos_fake = fake_tensor.permute(0, 4, 1, 2, 3).to(self.device)
            videos_real = real_tensor.permute(0, 4, 1, 2, 3).to(self.device)
            feats_fake = self.i3d(videos_fake, **kwargs).cpu().numpy()
            feats_real = self.i3d(videos_real, **kwargs).cpu().numpy()
            del videos_fake, videos_real
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        self.features.setdefault("FVD", []).append((feats_real, feats_fake))
        return compute_fvd(feats_fake, feats_real, self.timer)

    # --------------------------------------------------------------------------- PSNR, SSIM, CSIM
    def compute_psnr_ssim_csim(
        self, gen_frames: list[np.ndarray], gt_frames: list[np.ndarray]
    ) -> tuple[float, float, float]:
        import cv2
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        psnr_list, ssim_list, csim_list = [], [], []
        for i in range(min(len(gen_frames), len(gt_frames))):
            gt_frame, gen_frame = gt_frames[i], gen_frames[i]
            if gt_frame.shape != gen_frame.shape:
                gen_frame = cv2.resize(gen_frame, (gt_frame.shape[1], gt_frame.shape[0]))
            with self.timer("psnr_skimage"):
                psnr_list.append(peak_signal_noise_ratio(gt_frame, gen_frame, data_range=255))
            with self.timer("ssim_skimage"):
                min_dim = min(gt_frame.shape[0], gt_frame.shape[1])
                win_size = min_dim if min_dim % 2 == 1 else min_dim - 1
                win_size = max(min(win_size, 7), 3)
                ssim_list.append(
                    structural_similarity(
                        gt_frame, gen_frame, channel_axis=-1, data_range=255, win_size=win_size
                    )
                )
            with self.timer("csim_numpy"):
                csim_list.append(_cosine_similarity(gt_frame, gen_frame))
        return float(np.mean(psnr_list)), float(np.mean(ssim_list)), float(np.mean(csim_list))

    # ------------------------------------------------------------------------------------- the loop
    def process_video(self, gen_frames: list[np.ndarray], gt_frames: list[np.ndarray]) -> dict[str, float]:
        """All six metrics of one pair; every step gets its own copy of the first 16 frames, as if decoded."""

        def decoded(frames: list[np.ndarray]) -> list[np.ndarray]:
            return list(frames[:MAX_FRAMES])

        fid, efid = self.compute_fid_efid(decoded(gen_frames), decoded(gt_frames))
        fvd = self.compute_fvd_for_videos(decoded(gen_frames), decoded(gt_frames))
        psnr, ssim, csim = self.compute_psnr_ssim_csim(decoded(gen_frames), decoded(gt_frames))
        return {"FID": fid, "E-FID": efid, "FVD": fvd, "SSIM": ssim, "PSNR": psnr, "CSIM": csim}

    def run(
        self, generated: Sequence[list[np.ndarray]], ground_truth: Sequence[list[np.ndarray]]
    ) -> dict[str, float]:
        """Mean over videos of each metric (BGR uint8 ``H x W x 3`` frames per video)."""
        if len(generated) != len(ground_truth) or not generated:
            raise ValueError(
                f"`generated` and `ground_truth` must hold the same positive number of videos, got "
                f"{len(generated)} and {len(ground_truth)}"
            )
        self.features = {}
        per_video = [self.process_video(g, r) for g, r in zip(generated, ground_truth, strict=True)]
        return {k: float(np.mean([v[k] for v in per_video])) for k in KEYS}
