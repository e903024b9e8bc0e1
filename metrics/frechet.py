r"""Streaming Fréchet metrics of videos: :class:`FID`, :class:`EdgeFID`, :class:`FVD` (and, re-exported from
:mod:`metrics.frechet_statistics`, :class:`FrechetDistance` of features).

Two ways of turning features into a number, chosen by ``mode``:

* ``"per_video"`` (JWB-DH-V1): every ``update(generated, reference)`` computes one exact Fréchet distance
  per video pair from that pair's frames (``functional.frechet.per_video_frechet_distance``) and adds it to
  a float64 sum and an int64 count; ``compute()`` returns the mean over videos, like the benchmark's
  ``all_models_summary.csv``.
* ``"pooled"`` (standard FID/FVD): features of all samples go into float64 ``Σx``, ``Σxxᵀ`` and an int64
  count per side; ``compute()`` fits one Gaussian per side and uses the eigh/Cholesky sandwich.

Every state is a fixed-size tensor reduced with ``"sum"``, so DDP ranks with different numbers of updates
sync without deadlock and memory does not grow with the number of videos. Backbones are shared through
the process-wide cache and are never part of ``state_dict``.

Degenerate inputs give defined results. Per video, :class:`FID` / :class:`EdgeFID` (unbiased covariance)
skip a pair whose generated or reference video has one frame and count it in the ``num_skipped`` state, as
the script gives such a video no score (``np.cov`` of one sample is NaN); :class:`FVD` under ``jwbdh-v1``
keeps the script's single-clip covariances (``-2e-6 * d`` trace term, see
``functional.frechet.script_fvd_distance``); :class:`FrechetDistance` gives a one-sample side zero
covariance. Pooled statistics with fewer than two samples per side, or a metric that saw no data, return
NaN with a warning naming the reason; fewer samples than feature dimensions warn that the estimate is biased.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from metrics._validate import check_choice, check_instance, check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.features import FeatureCache, cached_features
from metrics.frechet_statistics import FrechetDistance, _FrechetStatistics
from metrics.functional.frechet import (
    per_video_frechet_distance,
    script_fvd_distance,
)
from metrics.video import check_pair, check_video, first_frames, to_uint8

__all__ = ["FID", "FVD", "EdgeFID", "FrechetDistance"]


class _VideoFrechet(_FrechetStatistics):
    """Fréchet metrics on videos through a shared backbone."""

    _PROTOCOLS: tuple[str, ...] = ("jwbdh-v1", "standard")

    def __init__(
        self,
        backbone: BackboneRef,
        num_features: int,
        protocol: str,
        mode: str | None,
        covariance: str,
        num_frames: int | None,
        batch_size: int,
        precision: str | None = None,
        channels_last: bool | None = None,
        reference_cache: FeatureCache | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if reference_cache is not None:
            check_instance(
                "reference_cache", reference_cache, FeatureCache, "a metrics.features.FeatureCache or None"
            )
        if isinstance(backbone, BackboneRef):
            backbone = backbone.with_inference(precision, channels_last)
        mode = mode if mode is not None else ("per_video" if protocol == "jwbdh-v1" else "pooled")
        super().__init__(num_features, mode=mode, covariance=covariance, **kwargs)
        check_positive_int("num_frames", num_frames, allow_none=True, none_means="all frames")
        check_positive_int("batch_size", batch_size)
        check_instance("feature_extractor", backbone, BackboneRef)
        self.protocol = protocol
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.backbone = backbone
        #: :class:`~metrics.features.FeatureCache` serving reference features by id (see :meth:`update`).
        self.reference_cache = reference_cache

    @property
    def is_calibrated(self) -> bool:
        """False when the backbone is randomly initialised (smoke runs): numbers are not comparable."""
        return not self.backbone.is_random_init

    def update(
        self,
        generated: Tensor,
        reference: Tensor | None = None,
        *,
        real: bool | None = None,
        reference_ids: Sequence[str] | None = None,
    ) -> None:
        """Add videos ``[B, T, 3, H, W]`` (uint8 or float in [0, 1]).

        ``update(generated, reference)`` adds pairs (both modes); ``update(videos, real=...)`` adds one side
        (pooled mode only). Paired videos may differ in length and size.

        ``reference_ids`` (one str per reference video, with ``reference_cache`` set): reference features are
        taken from the cache where present and stored there otherwise, so a reference set evaluated again
        (every validation epoch, a rerun) is encoded once. The caller guarantees that an id always names the
        same reference content; generated videos are never cached.
        """
        if reference_ids is not None and (reference is None and not real):
            raise ValueError("`reference_ids` name reference videos: pass them with a reference side")

        def features_of(videos: Tensor, is_reference: bool) -> Tensor:
            if not is_reference:
                return self.video_features(videos)
            return cached_features(
                self.reference_cache, self.feature_namespace, reference_ids, videos, self.video_features
            )

        self._route(
            generated,
            reference,
            real,
            features_of,
            lambda g, r: check_pair(g, r, min_frames=self._min_frames),
            lambda v, n: check_video(v, n, min_frames=self._min_frames),
        )

    _min_frames = 1

    @property
    def min_frames(self) -> int:
        """Fewest frames per video for a value: 16 for the standard FVD protocol, 2 for per-video FID / E-FID.

        ``update`` rejects videos below ``_min_frames`` (ValueError) and skips, counting in ``num_skipped``,
        pairs with a side below ``_min_samples_per_video`` (FID / E-FID: a one-frame video has no per-video
        covariance); the regional suite skips region videos shorter than this before calling ``update``.
        """
        return max(self._min_frames, self._min_samples_per_video)

    def video_features(self, videos: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` videos -> ``[B, n, d]`` float features (n frames or clips per video)."""
        raise NotImplementedError

    def _add_per_video(self, generated: Tensor, reference: Tensor) -> None:
        # Features come from our own backbone on validated videos: no per-update NaN scan (a device sync);
        # a non-finite value is counted on the device and reported by compute().
        values = per_video_frechet_distance(generated, reference, self.covariance, check_finite=False)
        self._accumulate_per_video(values)

    @property
    def feature_namespace(self) -> str:
        """What this metric's features depend on besides the video (the reference cache's namespace).

        The statistics key plus the weights' identity: a registry name (checksummed by the registry), or a
        checkpoint path with its size and modification time.
        """
        weights = self.backbone.weights
        if weights is not None and os.path.isfile(os.fspath(weights)):
            stat = os.stat(weights)
            weights = f"{os.path.abspath(os.fspath(weights))}:{stat.st_size}:{stat.st_mtime_ns}"
        key = dict(self.statistics_key(), weights=weights, fingerprint=self.backbone.fingerprint)
        return json.dumps(key, sort_keys=True, default=str)

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(
            backbone=self.backbone.name,
            weights="random-init"
            if self.backbone.weights is None
            else os.path.basename(os.fspath(self.backbone.weights)),
            protocol=self.protocol,
            num_frames=self.num_frames,
        )
        if self.backbone.precision != "fp32" or self.backbone.channels_last:
            key.update(precision=self.backbone.precision, channels_last=self.backbone.channels_last)
        return key

    def _frame_features(self, frames: Tensor, network: nn.Module) -> Tensor:
        """Run uint8 ``[N, 3, H, W]`` frames through ``network`` in chunks of ``batch_size``."""
        out = [network(frames[i : i + self.batch_size]) for i in range(0, frames.shape[0], self.batch_size)]
        return torch.cat(out) if out else frames.new_zeros((0, self.num_features), dtype=torch.float32)


class FID(_VideoFrechet):
    r"""Fréchet Inception Distance on video frames.

    ``protocol="jwbdh-v1"`` (default) reproduces FID_calculate.py: the first 16 frames of each video,
    torchvision ImageNet Inception-v3 (PIL-bilinear 299, ImageNet normalisation), one exact Fréchet
    distance per (generated, reference) video pair, averaged over videos. NOT comparable to standard FID.
    ``protocol="standard"``: the TF FID Inception (TF1-bilinear resize, (x-128)/128), all frames of all
    videos pooled per side, unbiased covariance (torch-fidelity / TTUR).

    As input to ``update``: ``generated`` and ``reference`` videos ``[B, T, 3, H, W]``, uint8 or float [0, 1]
    (see :meth:`update`). As output of ``compute``: float64 scalar, lower is better, >= 0.

    Args:
        protocol: ``"jwbdh-v1"`` or ``"standard"``; sets the defaults of the arguments left as None.
        weights: Inception checkpoint (registry name or path); None = random init (smoke, uncalibrated);
            ``"default"`` = the protocol's network.
        mode: ``"per_video"`` or ``"pooled"`` (default from the protocol).
        num_frames: frames per video (jwbdh-v1: 16; standard: None = all).
        covariance: ``"unbiased"`` or ``"biased"``.
        feature_extractor: a :class:`~metrics.backbones.cache.BackboneRef` replacing the Inception (any
            ``uint8 [N,3,H,W] -> [N,d]`` network); ``num_features`` must then be given.
        batch_size: frames per backbone call.
        precision: backbone inference ``"fp32"`` (default for the built-in networks: parity), ``"tf32"`` or
            ``"bf16"`` (see :mod:`metrics.backbones.precision`); None keeps ``feature_extractor``'s own.
        channels_last: NHWC backbone layout (faster with cuDNN / oneDNN); None keeps the extractor's own.
        kwargs: ``reset_real_features`` and torchmetrics ``Metric`` keyword arguments.

    Example:
        >>> import torch
        >>> fid = FID(weights=None)  # doctest: +SKIP
        >>> videos = torch.randint(0, 256, (2, 16, 3, 64, 64), dtype=torch.uint8)  # doctest: +SKIP
        >>> fid.update(videos, videos.flip(1)); fid.compute()  # doctest: +SKIP
    """

    def __init__(
        self,
        protocol: str = "jwbdh-v1",
        weights: str | os.PathLike | None = "default",
        mode: str | None = None,
        num_frames: int | str | None = "default",
        covariance: str = "unbiased",
        feature_extractor: BackboneRef | None = None,
        num_features: int = 2048,
        batch_size: int = 64,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if feature_extractor is None:
            from metrics.backbones.inception import fid_inception_ref, imagenet_inception_ref

            if protocol == "jwbdh-v1":
                feature_extractor = imagenet_inception_ref(
                    "inception_v3_imagenet" if weights == "default" else weights
                )
            else:
                feature_extractor = fid_inception_ref("fid_inception_v3" if weights == "default" else weights)
        if num_frames == "default":
            num_frames = 16 if protocol == "jwbdh-v1" else None
        super().__init__(
            feature_extractor,
            num_features,
            protocol,
            mode,
            covariance,
            num_frames,
            batch_size,
            precision=precision,
            channels_last=channels_last,
            **kwargs,
        )

    def frame_transform(self, frames: Tensor) -> Tensor:
        """Per-frame preprocessing before the backbone (identity for FID; edge maps for E-FID)."""
        return frames

    @property
    def _min_samples_per_video(self) -> int:
        # Per video with np.cov's unbiased covariance, one frame gives NaN statistics and the script then
        # writes no FID/E-FID for that video (calculate_statistics -> None): such pairs are skipped.
        return 2 if self.mode == "per_video" and self.covariance == "unbiased" else 1

    def video_features(self, videos: Tensor) -> Tensor:
        clip = videos if self.num_frames is None else first_frames(videos, self.num_frames)
        b, t = clip.shape[:2]
        frames = self.frame_transform(to_uint8(clip).flatten(0, 1))
        feats = self._frame_features(frames, self.backbone.get(videos.device))
        return feats.reshape(b, t, -1)


class EdgeFID(FID):
    r"""E-FID ("Edge-FID" in the JWB-DH-V1 repository, "Enhanced FID" in the paper).

    Each frame -> grayscale (OpenCV's BGR2GRAY weights) -> ``cv2.Canny(gray, 100, 200)`` -> three equal
    channels -> the same Inception and Fréchet computation as :class:`FID`. The Canny runs in torch on the
    input's device and matches OpenCV pixel for pixel (tests/test_edges.py); CPU tensors go to OpenCV itself
    when it is installed (``edge_backend="auto"``).

    Args:
        edge_backend: ``"auto"`` (default: OpenCV's Canny for CPU tensors when OpenCV is installed, our
            identical torch Canny otherwise, e.g. on a GPU), ``"torch"`` or ``"opencv"``.
        low_threshold, high_threshold: Canny hysteresis thresholds (jwbdh-v1: 100, 200).
        kwargs: as :class:`FID`.

    Example:
        >>> efid = EdgeFID(weights=None)  # doctest: +SKIP
    """

    def __init__(
        self,
        *args: Any,
        edge_backend: str = "auto",
        low_threshold: float = 100.0,
        high_threshold: float = 200.0,
        **kwargs: Any,
    ) -> None:
        check_choice("edge_backend", edge_backend, ("auto", "torch", "opencv"))
        if not 0 <= low_threshold <= high_threshold:
            raise ValueError(
                f"`low_threshold` and `high_threshold` must satisfy 0 <= low <= high, got {low_threshold}, "
                f"{high_threshold}"
            )
        super().__init__(*args, **kwargs)
        self.edge_backend = edge_backend
        self.low_threshold = low_threshold
        self.high_threshold = high_threshold

    def frame_transform(self, frames: Tensor) -> Tensor:
        from metrics.functional.edges import edge_maps

        return edge_maps(
            frames,
            backend=self.edge_backend,
            low_threshold=self.low_threshold,
            high_threshold=self.high_threshold,
        )

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(edges=(self.low_threshold, self.high_threshold))
        return key


class FVD(_VideoFrechet):
    r"""Fréchet Video Distance with the I3D Kinetics-400 TorchScript network (400-d logits as features).

    ``protocol="jwbdh-v1"`` (default) reproduces FID_calculate.py, quirks included: the first 16 frames
    (black frames appended to shorter videos), ``cv2.resize(..., (224, 224), INTER_AREA)``, values in [0, 1]
    passed with ``rescale=False, resize=False`` (the network expects [-1, 1]; the script feeds [0, 1]), one
    clip per video and the script's per-video distance ``‖f_gen - f_ref‖² - 2e-6 * 400``: its single-clip
    covariances are ``1e-6·I`` and its sqrtm adds another ``1e-6·I``, so the trace term is -8e-4, not zero
    (identical videos score -0.0008; see ``functional.frechet.script_fvd_distance``). Averaged over videos.
    With ``mode="per_video"`` under ``protocol="standard"`` the textbook value ``‖f_gen - f_ref‖²`` is used.
    ``protocol="standard"`` (StyleGAN-V ``fvd2048_16f``): the first 16 frames as uint8 values with
    ``rescale=True, resize=True`` (the network maps them to [-1, 1] and resizes to 224 itself), clips pooled
    per side; ``covariance="biased"`` reproduces StyleGAN-V, the default "unbiased" the original TF FVD.
    Videos shorter than 16 frames are rejected in this protocol rather than padded.

    Args:
        protocol: ``"jwbdh-v1"`` or ``"standard"``.
        weights: ``"i3d_torchscript"`` (default), a path to a TorchScript file, or None for a randomly
            initialised stand-in with the same calling convention (smoke runs only: it is not I3D).
        mode, covariance, batch_size, precision, channels_last, kwargs: as :class:`FID`; ``batch_size``
            counts clips.

    Example:
        >>> fvd = FVD(weights=None)  # doctest: +SKIP
    """

    CLIP_LENGTH = 16

    def __init__(
        self,
        protocol: str = "jwbdh-v1",
        weights: str | os.PathLike | None = "i3d_torchscript",
        mode: str | None = None,
        covariance: str = "unbiased",
        feature_extractor: BackboneRef | None = None,
        num_features: int = 400,
        batch_size: int = 8,
        precision: str | None = None,
        channels_last: bool | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("protocol", protocol, self._PROTOCOLS)
        if feature_extractor is None:
            from metrics.backbones.i3d import i3d_ref

            feature_extractor = i3d_ref(weights)
        super().__init__(
            feature_extractor,
            num_features,
            protocol,
            mode,
            covariance,
            self.CLIP_LENGTH,
            batch_size,
            precision=precision,
            channels_last=channels_last,
            **kwargs,
        )
        self._min_frames = self.CLIP_LENGTH if protocol == "standard" else 1

    def video_features(self, videos: Tensor) -> Tensor:
        from metrics.functional.resize import resize_opencv_area

        network = self.backbone.get(videos.device)
        b = videos.shape[0]
        if self.protocol == "jwbdh-v1":
            clip = first_frames(to_uint8(videos), self.CLIP_LENGTH, pad_black=True)
            frames = resize_opencv_area(clip.flatten(0, 1), (224, 224)).float() / 255.0
            x = frames.reshape(b, self.CLIP_LENGTH, 3, 224, 224).permute(0, 2, 1, 3, 4)
            rescale = resize = False
        else:
            clip = to_uint8(first_frames(videos, self.CLIP_LENGTH))
            x = clip.float().permute(0, 2, 1, 3, 4)
            rescale = resize = True
        chunks = [
            network(x[i : i + self.batch_size], rescale=rescale, resize=resize, return_features=True)
            for i in range(0, b, self.batch_size)
        ]
        return torch.cat(chunks).float().reshape(b, 1, -1)

    def _add_per_video(self, generated: Tensor, reference: Tensor) -> None:
        if self.protocol != "jwbdh-v1":
            super()._add_per_video(generated, reference)
            return
        # One clip per video: the script's 1e-6*I covariances and sqrtm regularisation (-2e-6 * d).
        self._accumulate_per_video(script_fvd_distance(generated[:, 0], reference[:, 0], check_finite=False))

    def statistics_key(self) -> dict[str, Any]:
        key = super().statistics_key()
        key.update(clip_length=self.CLIP_LENGTH)
        return key
