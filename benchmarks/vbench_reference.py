"""VBench v0.1.5's per-video loop for six dimensions, re-implemented as the baseline of ``vbench_bench``.

Every function below follows one piece of VBench v0.1.5 (github.com/Vchitect/VBench, tag ``v0.1.5``; the
file and function are named in each docstring) in what it computes, in what granularity it feeds the
networks and in which order, but calls the networks of OUR backbone cache (:meth:`VBenchNetworks.from_refs`:
the very instances our metrics use), through VBench's calling convention on the bare network:

================== ================================ ===================================================
dimension          frames as VBench gets them       network calls per video
================== ================================ ===================================================
subject_consist.   decord: float32 0-255 [T,3,H,W]  DINO ``model(image)``, one frame at a time
background_cons.   decord: float32 0-255            CLIP ViT-B/32 ``encode_image``, all T frames at once
aesthetic_quality  decord: float32 0-255            CLIP ViT-L/14 ``encode_image`` + LAION head, 32 a time
imaging_quality    decord: float32 0-255            MUSIQ ``model(frame)``, one frame at a time
motion_smoothness  cv2: list of uint8 RGB H x W x 3 AMT-S ``model(in_0, in_1, embt, ...)`` per even pair
dynamic_degree     cv2: list of uint8 RGB H x W x 3 RAFT ``model(im1, im2, iters=20, test_mode=True)``
                                                    per consecutive pair of fps-subsampled frames
================== ================================ ===================================================

Decoding itself (decord / OpenCV reading an mp4) is not part of the loop here: both sides of the benchmark
receive the same in-memory uint8 frames, as ``(T, H, W, 3)`` numpy arrays (what decord's ``asnumpy()``
gives) and as lists of ``H x W x 3`` RGB frames (what ``cv2.VideoCapture`` + ``cvtColor`` give).

What is not reproduced, and why it does not favour our side:

* VBench's CLIP (BC, AQ) runs in float16 on CUDA only; on a CPU openai-clip keeps float32, as here.
* VBench's BC and IQ call their networks outside ``torch.no_grad()`` with trainable parameters, so PyTorch
  records an autograd graph there; with ``autograd_like_vbench=True`` (default) the shared networks'
  parameters are switched to ``requires_grad=True`` for those two calls (and back afterwards), as in VBench.
* Networks are our ports (torchvision RAFT for VBench's vendored RAFT, open_clip's towers for openai-clip,
  our AMT-S and DINO modules, pyiqa's MUSIQ as VBench uses it): same architectures and arithmetic, so the
  per-call cost is the same on both sides.

Example:
    >>> import numpy as np
    >>> nets = VBenchNetworks.from_refs(VBenchRefs.real(), "cpu")  # doctest: +SKIP
    >>> video = np.zeros((8, 256, 256, 3), np.uint8)
    >>> VBenchReference(nets).run([video], fps=[8.0])["subject_consistency"]["score"]  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DIMENSIONS",
    "VBenchNetworks",
    "VBenchReference",
    "VBenchRefs",
    "clip_transform",
    "dino_transform",
    "load_video",
]

#: The six dimensions, in VBench's order of ``evaluate.py --dimension`` lists.
DIMENSIONS = (
    "subject_consistency",
    "background_consistency",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# --------------------------------------------------------------------------------------------- networks
@dataclass
class VBenchNetworks:
    """The bare networks VBench calls, taken from our backbone cache (same instances as our metrics).

    Attributes:
        dino: DINO ViT-B/16 (``model(x)`` -> CLS feature), VBench's ``torch.hub`` ``dino_vitb16``.
        clip_b32, clip_l14: our CLIP image encoders; ``.visual`` is what openai-clip's ``encode_image`` runs.
        aesthetic_head: LAION ``nn.Linear(768, 1)``.
        amt: AMT-S (``model(img0, img1, embt, scale_factor=, eval=True)``).
        raft: torchvision RAFT-large (the inner network of our ``RAFTLarge``; VBench's RAFT maps
            [0, 255] -> [-1, 1] inside its forward, done here before the call).
        musiq: pyiqa's ``MUSIQ`` (the inner network of our ``MUSIQSpaq``), top-level ``training`` False.
    """

    dino: nn.Module
    clip_b32: nn.Module
    clip_l14: nn.Module
    aesthetic_head: nn.Module
    amt: nn.Module
    raft: nn.Module
    musiq: nn.Module

    @classmethod
    def from_refs(cls, refs: VBenchRefs, device: torch.device | str) -> VBenchNetworks:
        """The cached instances behind ``refs`` on ``device`` (the very networks our metrics get).

        Example:
            >>> nets = VBenchNetworks.from_refs(VBenchRefs.real(), "cpu")  # doctest: +SKIP
        """
        device = torch.device(device)
        raft = refs.raft.get(device)
        musiq = refs.musiq.get(device)
        return cls(
            dino=refs.dino.get(device),
            clip_b32=refs.clip_b32.get(device),
            clip_l14=refs.clip_l14.get(device),
            aesthetic_head=refs.aesthetic_head.get(device),
            amt=refs.amt.get(device),
            raft=getattr(raft, "raft", raft),
            musiq=getattr(musiq, "net", musiq),
        )


@dataclass(frozen=True)
class VBenchRefs:
    """Backbone-cache handles of the six dimensions' networks, shared by both sides of the benchmark.

    :meth:`real` gives the real architectures at their real sizes with seeded random init (what our metrics
    build with ``weights=None``); tests pass smaller members of the same families.
    """

    dino: Any
    clip_b32: Any
    clip_l14: Any
    aesthetic_head: Any
    amt: Any
    raft: Any
    musiq: Any

    @classmethod
    def real(cls) -> VBenchRefs:
        """DINO ViT-B/16, CLIP ViT-B/32 and ViT-L/14, LAION head (768), AMT-S, RAFT-large (20 updates), MUSIQ.

        Example:
            >>> VBenchRefs.real().dino.name
            'dino_vitb16'
        """
        from metrics.backbones.aesthetic import aesthetic_head_ref
        from metrics.backbones.amt import amt_s_ref
        from metrics.backbones.clip import clip_ref
        from metrics.backbones.dino import dino_ref
        from metrics.backbones.musiq import musiq_ref
        from metrics.backbones.raft import raft_ref

        return cls(
            dino=dino_ref(None),
            clip_b32=clip_ref("ViT-B-32", None),
            clip_l14=clip_ref("ViT-L-14", None),
            aesthetic_head=aesthetic_head_ref(None),
            amt=amt_s_ref(None),
            raft=raft_ref(None),
            musiq=musiq_ref(None),
        )


@contextmanager
def _trainable(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Parameters ``requires_grad=True`` in the block (as VBench's freshly loaded models), restored after."""
    if not enabled:
        yield
        return
    params = [p for p in module.parameters() if p.is_floating_point()]
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


# ----------------------------------------------------------------------------------------- decoding, IO
def load_video(frames_thwc: np.ndarray) -> Tensor:
    """``vbench/utils.py`` ``load_video`` after decord: ``torch.Tensor(buffer).permute(0, 3, 1, 2)``.

    ``torch.Tensor`` of a uint8 array is a float32 copy; the permute leaves it channels-last in memory, as
    in VBench (the transforms and, for SC, DINO's first convolution see that layout).
    """
    if not isinstance(frames_thwc, np.ndarray) or frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3:
        raise ValueError(
            f"`frames_thwc` must be a (T, H, W, 3) numpy array, got {type(frames_thwc).__name__}"
        )
    return torch.Tensor(frames_thwc).permute(0, 3, 1, 2)


def dino_transform(n_px: int) -> Any:
    """``vbench/utils.py`` ``dino_transform``: Resize(n_px, bilinear, no antialias), /255, ImageNet norm."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(size=n_px, antialias=False),
            transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD),
        ]
    )


def clip_transform(n_px: int) -> Any:
    """``vbench/utils.py`` ``clip_transform``: Resize(n_px, bicubic, no antialias), crop, /255, CLIP norm."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(n_px, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
            transforms.CenterCrop(n_px),
            transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize(_CLIP_MEAN, _CLIP_STD),
        ]
    )


def _iq_transform(images: Tensor, preprocess_mode: str = "longer") -> Tensor:
    """``vbench/imaging_quality.py`` ``transform`` ('longer' is VBench's default mode)."""
    from torchvision import transforms

    if preprocess_mode != "longer":
        raise ValueError(
            f"only VBench's default preprocess_mode 'longer' is reproduced, got {preprocess_mode!r}"
        )
    _, _, h, w = images.size()
    if max(h, w) > 512:
        scale = 512.0 / max(h, w)
        images = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(images)
    return images / 255.0


class _InputPadder:
    """Replicate padding to a multiple of ``divisor``, centred (odd pixel after), as the ``InputPadder`` of
    ``vbench/third_party/amt/utils/utils.py`` (divisor 16) and ``third_party/RAFT/core/utils_core/utils.py``
    (divisor 8, 'sintel' mode) compute it."""

    def __init__(self, dims: Sequence[int], divisor: int) -> None:
        h, w = dims[-2:]
        pad_h = ((h // divisor + 1) * divisor - h) % divisor
        pad_w = ((w // divisor + 1) * divisor - w) % divisor
        self.pads = [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2]

    def pad(self, *inputs: Tensor) -> list[Tensor]:
        return [F.pad(x, self.pads, mode="replicate") for x in inputs]

    def unpad(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return x[..., self.pads[2] : h - self.pads[3], self.pads[0] : w - self.pads[1]]


# ------------------------------------------------------------------------------------------- the loop
class VBenchReference:
    """VBench v0.1.5's six per-video loops on in-memory frames, with wall time per dimension.

    Args:
        networks: the bare networks (:meth:`VBenchNetworks.from_refs`).
        device: where VBench moves frames (``.to(device)``) and the networks live.
        autograd_like_vbench: record autograd graphs in BC and IQ as VBench does (see the module docstring).

    :meth:`run` returns, per dimension, ``{"score": aggregate as VBench's single process reports it,
    "per_video": [...]}`` plus ``"pair_scores"`` (per video, the top-5% flow means) for dynamic_degree.
    """

    def __init__(
        self, networks: VBenchNetworks, device: torch.device | str = "cpu", autograd_like_vbench: bool = True
    ) -> None:
        self.nets = networks
        self.device = torch.device(device)
        self.autograd_like_vbench = autograd_like_vbench
        self.seconds: dict[str, float] = {}

    # --------------------------------------------------------------------------------- SC (DINO)
    def subject_consistency(self, frames_thwc: np.ndarray) -> tuple[float, float, int]:
        """``vbench/subject_consistency.py`` ``subject_consistency``, one video (read_frame=False).

        Returns ``(per-video score, sum of pair scores, number of pairs)``.
        """
        images = dino_transform(224)(load_video(frames_thwc))
        video_sim, count = 0.0, 0
        first = former = None
        for i in range(len(images)):
            with torch.no_grad():
                image = images[i].unsqueeze(0).to(self.device)
                features = F.normalize(self.nets.dino(image), dim=-1, p=2)
                if i == 0:
                    first = features
                else:
                    sim_pre = max(0.0, F.cosine_similarity(former, features).item())
                    sim_fir = max(0.0, F.cosine_similarity(first, features).item())
                    video_sim += (sim_pre + sim_fir) / 2
                    count += 1
            former = features
        return video_sim / (len(images) - 1), video_sim, count

    # --------------------------------------------------------------------------------- BC (CLIP B/32)
    def background_consistency(self, frames_thwc: np.ndarray) -> tuple[float, float, int]:
        """``vbench/background_consistency.py`` ``background_consistency``, one video (read_frame=False).

        All frames through ``encode_image`` in one batch, outside ``no_grad`` (as VBench).
        """
        images = clip_transform(224)(load_video(frames_thwc)).to(self.device)
        visual = self.nets.clip_b32.visual
        with _trainable(visual, self.autograd_like_vbench):
            features = visual(images.type(visual.conv1.weight.dtype))  # openai-clip encode_image
            features = F.normalize(features, dim=-1, p=2)
            video_sim, count = 0.0, 0
            first = former = None
            for i in range(len(features)):
                feature = features[i].unsqueeze(0)
                if i == 0:
                    first = feature
                else:
                    sim_pre = max(0.0, F.cosine_similarity(former, feature).item())
                    sim_fir = max(0.0, F.cosine_similarity(first, feature).item())
                    video_sim += (sim_pre + sim_fir) / 2
                    count += 1
                former = feature
        return video_sim / (len(features) - 1), video_sim, count

    # --------------------------------------------------------------------------------- AQ (CLIP L/14)
    def aesthetic_quality(self, frames_thwc: np.ndarray, batch_size: int = 32) -> float:
        """``vbench/aesthetic_quality.py`` ``laion_aesthetic``, one video: batches of 32 raw frames, each
        transformed, encoded, L2-normalised and rated; per video the mean rating / 10."""
        images = load_video(frames_thwc)
        transform = clip_transform(224)
        visual = self.nets.clip_l14.visual
        scores = []
        for i in range(0, len(images), batch_size):
            batch = transform(images[i : i + batch_size]).to(self.device)
            with torch.no_grad():
                feats = visual(batch.type(visual.conv1.weight.dtype)).to(torch.float32)
                feats = F.normalize(feats, dim=-1, p=2)
                scores.append(self.nets.aesthetic_head(feats).squeeze(dim=-1))
        normalized = torch.cat(scores, dim=0) / 10
        return torch.mean(normalized, dim=0, keepdim=True).item()

    # --------------------------------------------------------------------------------- IQ (MUSIQ)
    def imaging_quality(self, frames_thwc: np.ndarray) -> float:
        """``vbench/imaging_quality.py`` ``technical_quality``, one video: 'longer' resize, /255, MUSIQ per
        frame outside ``no_grad``; per video the mean raw MOS."""
        images = _iq_transform(load_video(frames_thwc), "longer")
        total = 0.0
        with _trainable(self.nets.musiq, self.autograd_like_vbench):
            for i in range(len(images)):
                frame = images[i].unsqueeze(0).to(self.device)
                total += float(self.nets.musiq(frame))
        return total / len(images)

    # --------------------------------------------------------------------------------- MS (AMT-S)
    def motion_smoothness(self, frames_rgb: Sequence[np.ndarray]) -> float:
        """``vbench/motion_smoothness.py`` ``MotionSmoothness.motion_score``, one video (niters = 1).

        Even frames -> ``img2tensor`` (``[1, 3, H, W]`` / 255), the VRAM scale with the CPU constants (the
        ``device == 'cuda'`` test is always False), InputPadder(16 / scale), AMT-S per consecutive pair at
        ``embt = 0.5``, outputs unpadded and ``tensor2img``'d (x255, clip, truncating uint8 cast), then
        ``vfi_score``: mean ``cv2.absdiff`` of the odd original frames and the odd outputs.
        """
        import cv2

        inputs = [
            torch.tensor(frames_rgb[i]).permute(2, 0, 1).unsqueeze(0).to(self.device) / 255.0
            for i in range(0, len(frames_rgb), 2)
        ]
        if len(inputs) <= 1:
            raise ValueError(f"motion smoothness needs at least 3 frames, got {len(frames_rgb)}")
        if len({tuple(t.shape[2:]) for t in inputs}) > 1:  # check_dim_and_resize
            size = tuple(inputs[0].shape[2:])
            inputs = [F.interpolate(t, size=size, mode="bilinear") for t in inputs]
        h, w = inputs[0].shape[-2:]
        anchor_resolution, anchor_memory, bias, vram = 8192 * 8192, 1, 0, 1
        scale = anchor_resolution / (h * w) * np.sqrt((vram - bias) / anchor_memory)
        scale = 1 if scale > 1 else scale
        scale = 1 / np.floor(1 / np.sqrt(scale) * 16) * 16
        padder = _InputPadder(inputs[0].shape, int(16 / scale))
        inputs = padder.pad(*inputs)
        embt = torch.tensor(1 / 2).float().view(1, 1, 1, 1).to(self.device)
        outputs = [inputs[0]]
        for in_0, in_1 in itertools.pairwise(inputs):
            with torch.no_grad():
                pred = self.nets.amt(in_0, in_1, embt, scale_factor=scale, eval=True)["imgt_pred"]
            outputs += [pred.cpu(), in_1.cpu()]
        images = [
            (padder.unpad(out) * 255.0)
            .detach()
            .squeeze(0)
            .permute(1, 2, 0)
            .cpu()
            .numpy()
            .clip(0, 255)
            .astype(np.uint8)
            for out in outputs
        ]
        originals = [frames_rgb[i] for i in range(1, len(frames_rgb), 2)]
        predicted = [images[i] for i in range(1, len(images), 2)]
        diffs = [np.mean(cv2.absdiff(originals[i], predicted[i])) for i in range(len(predicted))]
        return (255.0 - float(np.mean(np.array(diffs)))) / 255.0

    # --------------------------------------------------------------------------------- DD (RAFT)
    def dynamic_degree(self, frames_rgb: Sequence[np.ndarray], fps: float) -> tuple[bool, list[float]]:
        """``vbench/dynamic_degree.py`` ``DynamicDegree.infer`` on frames as ``get_frames`` builds them.

        Every frame -> float32 ``[1, 3, H, W]`` on the device; keep every ``max(1, round(fps / 8))``-th;
        ``thres = 6 * min(H, W) / 256``, ``count_num = round(4 * N / 16)``; per consecutive pair: InputPadder
        (8, 'sintel'), RAFT with 20 iterations (test mode: the last upsampled flow), ``get_score`` (numpy:
        mean of the top 5% flow magnitudes of the padded map); ``check_move``. Returns the decision and the
        pair scores.
        """
        frame_list = [
            torch.from_numpy(f.astype(np.uint8)).permute(2, 0, 1).float()[None].to(self.device)
            for f in frames_rgb
        ]
        interval = max(1, round(fps / 8))
        frames = [frame_list[i] for i in range(0, len(frame_list), interval)]
        thres = 6.0 * (min(list(frames[0].shape)[-2:]) / 256.0)
        count_num = round(4 * (len(frames) / 16.0))
        scores: list[float] = []
        with torch.no_grad():
            for image1, image2 in itertools.pairwise(frames):
                image1, image2 = _InputPadder(image1.shape, 8).pad(image1, image2)
                # RAFT.forward's input mapping, then 20 updates; the last prediction is test mode's flow_up
                x1 = (2 * (image1 / 255.0) - 1.0).contiguous()
                x2 = (2 * (image2 / 255.0) - 1.0).contiguous()
                flow_up = self.nets.raft(x1, x2, num_flow_updates=20)[-1]
                flo = flow_up[0].permute(1, 2, 0).cpu().numpy()
                rad = np.sqrt(np.square(flo[:, :, 0]) + np.square(flo[:, :, 1]))
                h, w = rad.shape
                cut_index = int(h * w * 0.05)
                scores.append(np.mean(abs(np.sort(-rad.flatten()))[:cut_index]).item())
        count = 0
        moving = False
        for score in scores:  # check_move, early exit included
            if score > thres:
                count += 1
            if count >= count_num:
                moving = True
                break
        return moving, scores

    # --------------------------------------------------------------------------------- driver
    def run(
        self,
        videos_thwc: Sequence[np.ndarray],
        frames_rgb: Sequence[Sequence[np.ndarray]] | None = None,
        fps: Sequence[float] | None = None,
        dimensions: Sequence[str] = DIMENSIONS,
    ) -> dict[str, dict[str, Any]]:
        """Score every video on ``dimensions`` as VBench's ``evaluate.py`` would, one dimension at a time.

        Args:
            videos_thwc: per video a uint8 ``(T, H, W, 3)`` RGB array (decord's output; SC, BC, AQ, IQ).
            frames_rgb: per video a list of uint8 ``H x W x 3`` RGB frames (OpenCV's; MS, DD). Default: the
                frames of ``videos_thwc`` as separate contiguous arrays.
            fps: per video the frame rate (``CAP_PROP_FPS``; DD's subsampling). Required for DD.
            dimensions: which of :data:`DIMENSIONS` to run.

        Wall time per dimension is added to :attr:`seconds`.
        """
        unknown = [d for d in dimensions if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"`dimensions` must be among {DIMENSIONS}, got {unknown}")
        if frames_rgb is None:
            frames_rgb = [[np.ascontiguousarray(f) for f in v] for v in videos_thwc]
        if "dynamic_degree" in dimensions and (fps is None or len(fps) != len(videos_thwc)):
            raise ValueError("`fps` must give one frame rate per video for dynamic_degree")
        out: dict[str, dict[str, Any]] = {}
        for dim in dimensions:
            start = time.perf_counter()
            if dim in ("subject_consistency", "background_consistency"):
                fn = self.subject_consistency if dim == "subject_consistency" else self.background_consistency
                results = [fn(v) for v in videos_thwc]
                total = sum(r[1] for r in results)
                pairs = sum(r[2] for r in results)
                out[dim] = {"score": total / pairs, "per_video": [r[0] for r in results]}
            elif dim == "aesthetic_quality":
                per_video = [self.aesthetic_quality(v) for v in videos_thwc]
                out[dim] = {"score": sum(per_video) / len(per_video), "per_video": per_video}
            elif dim == "imaging_quality":
                per_video = [self.imaging_quality(v) for v in videos_thwc]
                out[dim] = {"score": sum(per_video) / len(per_video) / 100.0, "per_video": per_video}
            elif dim == "motion_smoothness":
                per_video = [self.motion_smoothness(f) for f in frames_rgb]
                out[dim] = {"score": float(np.mean(per_video)), "per_video": per_video}
            else:
                assert fps is not None
                decided = [self.dynamic_degree(f, r) for f, r in zip(frames_rgb, fps, strict=True)]
                per_video = [d[0] for d in decided]
                out[dim] = {
                    "score": float(np.mean(per_video)),
                    "per_video": per_video,
                    "pair_scores": [d[1] for d in decided],
                }
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[dim] = self.seconds.get(dim, 0.0) + time.perf_counter() - start
        if not all(math.isfinite(float(v["score"])) for v in out.values()):
            raise RuntimeError(
                f"VBench reference produced a non-finite score: { {k: v['score'] for k, v in out.items()} }"
            )
        return out
