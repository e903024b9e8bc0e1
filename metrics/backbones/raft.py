"""RAFT optical flow for VBench's dynamic degree: torchvision ``raft_large`` with the C_T_V1 weights.

VBench runs the original RAFT code with ``raft-things.pth``; torchvision's ``Raft_Large_Weights.C_T_V1`` is
the port of that checkpoint to torchvision's RAFT, so we build ``raft_large(weights=None)`` and load our
registry's ``raft_large_c_t_v1`` file (or any path) strictly. The original checkpoint itself (registry
``raft_things``, or the ``raft_model/models/raft-things.pth`` VBench users already have) loads too: the
architectures are the same layer for layer, so :func:`convert_original_raft_state_dict` only renames its keys
(``module.fnet.conv1.weight`` -> ``feature_encoder.convnormrelu.0.weight``, ...); no tensor is reshaped.
:func:`raft_state_dict` detects the format by its keys, and a checkpoint that fits neither raises a
one-line ValueError naming both expected formats, when the metric is built (:func:`raft_ref`), not at its
first update. What VBench does around the network, and what :class:`RAFTLarge` reproduces:

* Frames are float RGB in **[0, 255]** (VBench feeds decoded uint8 frames as float32); the original RAFT maps
  them to ``2 * (x / 255) - 1`` inside its forward. torchvision's RAFT expects [-1, 1] already
  (``weights.transforms()``), so the mapping happens here, before the network.
* Both frames of a pair are replicate-padded to multiples of 8, centred (RAFT's ``InputPadder`` in
  ``"sintel"`` mode: ``pad = (-size) % 8``, ``pad // 2`` before and the rest after), because RAFT works on a
  1/8 resolution grid. :func:`crop_padding` undoes it; VBench's dynamic degree does NOT crop (it ranks flow
  magnitudes over the padded map), so ``forward(..., crop=False)`` returns the padded flow.
* 20 flow updates (VBench's ``iters=20``; torchvision defaults to 12), the last upsampled flow in pixels
  (``test_mode=True``'s ``flow_up``).

torchvision's correlation pyramid needs feature maps of at least 16 x 16, so padded frames must be at least
128 x 128 (frames of 121 px or more per side); :attr:`RAFTLarge.min_padded_size` states this and
:class:`PaddedFlowNet` raises a ValueError for smaller frames instead of failing deep inside RAFT.

Example:
    >>> import torch
    >>> net = RAFTLarge(weights=None).eval()
    >>> a = torch.rand(1, 3, 124, 130) * 255
    >>> net(a, a, crop=False).shape, net(a, a).shape  # doctest: +SKIP
    (torch.Size([1, 2, 128, 136]), torch.Size([1, 2, 124, 130]))
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metrics._validate import check_positive_int
from metrics.backbones.cache import BackboneRef
from metrics.backbones.precision import (
    check_precision,
    fold_batchnorm,
    inference_precision,
    set_module_layout,
    to_layout,
)
from metrics.backbones.weights import WeightsUnavailableError, load_checkpoint, resolve_weights

__all__ = [
    "VBENCH_NUM_FLOW_UPDATES",
    "PaddedFlowNet",
    "RAFTLarge",
    "check_raft_weights",
    "convert_original_raft_state_dict",
    "crop_padding",
    "original_raft_key",
    "pad_to_multiple",
    "padding_for",
    "raft_ref",
    "raft_state_dict",
]

#: VBench's ``iters=20`` for dynamic degree.
VBENCH_NUM_FLOW_UPDATES = 20

# ------------------------------------------------------------------------------ original RAFT checkpoints
# Original RAFT (princeton-vl/RAFT core/extractor.py, core/update.py, core/raft.py) -> torchvision raft_large
# (torchvision/models/optical_flow/raft.py). Both encoders are conv1/norm1 -> 3 stages of 2 residual blocks
# -> a 1x1 conv; torchvision wraps each conv with its norm in a Conv2dNormActivation (".0" conv, ".1" norm).
# The update block's motion encoder, separable GRU and flow head keep their shapes; the upsampling mask head
# ("update_block.mask", a Sequential conv-ReLU-conv scaled by 0.25 in forward) is torchvision's
# mask_predictor (convrelu + conv, multiplier 0.25). Patterns are applied to keys without "module.".
_ENCODER_RULES: tuple[tuple[str, str], ...] = (
    (r"conv1\.(weight|bias)", r"convnormrelu.0.\1"),
    (r"norm1\.(.+)", r"convnormrelu.1.\1"),
    (r"conv2\.(weight|bias)", r"conv.\1"),
    (r"(layer[123]\.[01])\.conv1\.(weight|bias)", r"\1.convnormrelu1.0.\2"),
    (r"(layer[123]\.[01])\.norm1\.(.+)", r"\1.convnormrelu1.1.\2"),
    (r"(layer[123]\.[01])\.conv2\.(weight|bias)", r"\1.convnormrelu2.0.\2"),
    (r"(layer[123]\.[01])\.norm2\.(.+)", r"\1.convnormrelu2.1.\2"),
    (r"(layer[123]\.0)\.downsample\.([01])\.(.+)", r"\1.downsample.\2.\3"),
)
_UPDATE_RULES: tuple[tuple[str, str], ...] = (
    (r"update_block\.encoder\.convc([12])\.(weight|bias)", r"update_block.motion_encoder.convcorr\1.0.\2"),
    (r"update_block\.encoder\.convf([12])\.(weight|bias)", r"update_block.motion_encoder.convflow\1.0.\2"),
    (r"update_block\.encoder\.conv\.(weight|bias)", r"update_block.motion_encoder.conv.0.\1"),
    (
        r"update_block\.gru\.conv([zrq])([12])\.(weight|bias)",
        r"update_block.recurrent_block.convgru\2.conv\1.\3",
    ),
    (r"update_block\.flow_head\.conv([12])\.(weight|bias)", r"update_block.flow_head.conv\1.\2"),
    (r"update_block\.mask\.0\.(weight|bias)", r"mask_predictor.convrelu.0.\1"),
    (r"update_block\.mask\.2\.(weight|bias)", r"mask_predictor.conv.\1"),
)
_ENCODERS = {"fnet": "feature_encoder", "cnet": "context_encoder"}
# A residual block's downsample norm is also registered as "norm3" in the original code, so the original
# state dict holds it twice (layerN.0.norm3.* and layerN.0.downsample.1.*): an alias, not a parameter.
_NORM3_ALIAS = re.compile(r"(fnet|cnet)\.(layer[123]\.0)\.norm3\.(.+)")
_TORCHVISION_EXAMPLE = "feature_encoder.convnormrelu.0.weight"
_ORIGINAL_EXAMPLE = "module.fnet.conv1.weight"
_EXPECTED_FORMATS = (
    f"expected a torchvision raft_large state_dict (keys like '{_TORCHVISION_EXAMPLE}') or an original RAFT "
    f"(princeton-vl) raft-things.pth state_dict (keys like '{_ORIGINAL_EXAMPLE}')"
)


def original_raft_key(key: str) -> str | None:
    """torchvision ``raft_large`` name of an original RAFT (large) key, or None if it has no counterpart.

    A leading ``module.`` (the checkpoint was saved from ``nn.DataParallel``) is ignored. The ``norm3``
    aliases of the downsample norms map to None (see :func:`convert_original_raft_state_dict`).

    Example:
        >>> original_raft_key("module.update_block.gru.convz1.weight")
        'update_block.recurrent_block.convgru1.convz.weight'
        >>> original_raft_key("module.cnet.layer2.0.norm1.running_var")
        'context_encoder.layer2.0.convnormrelu1.1.running_var'
    """
    name = key.removeprefix("module.")
    head, _, rest = name.partition(".")
    if head in _ENCODERS:
        for pattern, target in _ENCODER_RULES:
            if re.fullmatch(pattern, rest):
                return f"{_ENCODERS[head]}." + re.sub(f"^{pattern}$", target, rest)
        return None
    for pattern, target in _UPDATE_RULES:
        if re.fullmatch(pattern, name):
            return re.sub(f"^{pattern}$", target, name)
    return None


@functools.lru_cache(maxsize=1)
def _raft_large_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of torchvision ``raft_large``'s state dict (what every checkpoint must become)."""
    from torchvision.models.optical_flow import raft_large

    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = raft_large(weights=None, progress=False)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _mismatch(state: Mapping[str, object], expected: Mapping[str, tuple[int, ...]]) -> str:
    """Empty if ``state`` has exactly the expected names and shapes, else a short one-line description."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k!r} {tuple(getattr(state[k], 'shape', ()))} vs {expected[k]}"
        for k in expected
        if k in state and tuple(getattr(state[k], "shape", ())) != expected[k]
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", shapes)):
        if items:
            example = items[0] if label == "of the wrong shape" else repr(items[0])
            parts.append(f"{len(items)} key(s) {label} (e.g. {example})")
    return ", ".join(parts)


def _is_tensor_count(value: object) -> bool:
    return isinstance(value, Tensor) and value.ndim == 0


def convert_original_raft_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an original RAFT-large state dict (e.g. ``raft-things.pth``) to torchvision ``raft_large`` keys.

    Tensors are kept as they are (same shapes in both layouts). The ``norm3`` aliases of the downsample norms
    are dropped after checking that they equal their ``downsample.1`` twins; BatchNorm ``num_batches_tracked``
    counters, absent from checkpoints of old PyTorch versions, are filled with 0 (they are unused in eval
    mode). Keys without a counterpart are kept under their original name, so :func:`raft_state_dict`
    reports them.

    Example:
        >>> import torch
        >>> sorted(convert_original_raft_state_dict({"module.fnet.conv1.bias": torch.zeros(64)}))[:1]
        ['feature_encoder.convnormrelu.0.bias']
    """
    out: dict[str, Tensor] = {}
    aliases: dict[str, Tensor] = {}
    for key, value in state.items():
        alias = _NORM3_ALIAS.fullmatch(key.removeprefix("module."))
        if alias:
            aliases[f"{alias[1]}.{alias[2]}.downsample.1.{alias[3]}"] = value
            continue
        out[original_raft_key(key) or key] = value
    for twin, value in aliases.items():
        target = original_raft_key(twin)
        if target is None or target not in out:
            out[original_raft_key(twin) or twin] = value  # only the alias was saved: it is the parameter
        elif not (isinstance(value, Tensor) and torch.equal(out[target], value)):
            raise ValueError(
                f"original RAFT state_dict: '{twin.replace('downsample.1', 'norm3')}' differs from '{twin}' "
                "(the same module in RAFT); the checkpoint is inconsistent"
            )
    for key in _raft_large_shapes():
        if (
            key.endswith("num_batches_tracked")
            and key not in out
            and key.replace("num_batches_tracked", "running_mean") in out
        ):
            out[key] = torch.zeros((), dtype=torch.int64)
    return out


def raft_state_dict(state: Mapping[str, object], source: str = "checkpoint") -> dict[str, Tensor]:
    """A torchvision ``raft_large`` state dict from ``state`` in torchvision or original RAFT layout.

    The format is recognised by the keys: torchvision names load as they are; original names (with or
    without ``module.``) go through :func:`convert_original_raft_state_dict`. The result must then have
    exactly raft_large's names and shapes.

    Raises:
        ValueError: one line naming ``source``, both accepted formats and what did not fit (e.g. a RAFT-small
            checkpoint, another network, or a truncated key set).

    Example:
        >>> from torchvision.models.optical_flow import raft_large
        >>> len(raft_state_dict(raft_large(weights=None).state_dict())) > 100
        True
    """
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"{source}: {_EXPECTED_FORMATS}; got a {type(state).__name__}")
    expected = _raft_large_shapes()
    torchvision_hits = sum(k in expected for k in state)
    original_hits = sum(original_raft_key(k) is not None for k in state)
    if torchvision_hits >= original_hits and torchvision_hits:
        candidate, layout = dict(state), "torchvision"
    elif original_hits:
        candidate, layout = convert_original_raft_state_dict(state), "original RAFT"  # type: ignore[arg-type]
    else:
        examples = ", ".join(repr(k) for k in list(state)[:3])
        raise ValueError(f"{source}: {_EXPECTED_FORMATS}; got {len(state)} key(s) like {examples}")
    problem = _mismatch(candidate, expected)
    if problem or not all(isinstance(v, Tensor) for v in candidate.values()):
        problem = problem or "non-tensor values"
        raise ValueError(f"{source}: {_EXPECTED_FORMATS}; read as {layout} layout it has {problem}")
    return candidate  # type: ignore[return-value]


@functools.lru_cache(maxsize=16)
def _checked_file(path: str, size: int, mtime_ns: int) -> None:
    raft_state_dict(load_checkpoint(path), source=f"RAFT checkpoint {path}")


def check_raft_weights(weights: str | os.PathLike | None) -> None:
    """Fail now, with :func:`raft_state_dict`'s one-line ValueError, if a local checkpoint cannot load.

    ``None`` (random init) passes; a registry name whose file is not on disk yet is left to the first use
    (which downloads it or raises :class:`~metrics.backbones.weights.WeightsUnavailableError`). Each file is
    read once per process (keyed by path, size and modification time).
    """
    if weights is None:
        return
    try:
        path = resolve_weights(weights, allow_download=False)
    except WeightsUnavailableError:
        return
    stat = os.stat(path)
    _checked_file(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def padding_for(height: int, width: int, multiple: int = 8) -> tuple[int, int, int, int]:
    """RAFT ``InputPadder`` ("sintel" mode) padding ``(left, right, top, bottom)`` up to ``multiple``.

    Example:
        >>> padding_for(121, 126)
        (1, 1, 3, 4)
    """
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


def pad_to_multiple(images: Tensor, multiple: int = 8) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Replicate-pad float ``[N, C, H, W]`` images (centred) to multiples of ``multiple``.

    Returns the padded images and the ``(left, right, top, bottom)`` padding for :func:`crop_padding`.
    """
    pads = padding_for(images.shape[-2], images.shape[-1], multiple)
    if not any(pads):
        return images, pads
    return F.pad(images, pads, mode="replicate"), pads


def crop_padding(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Remove ``(left, right, top, bottom)`` padding from the last two dimensions (``InputPadder.unpad``)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class PaddedFlowNet(nn.Module):
    """Base of flow networks used by :class:`~metrics.dynamic_degree.DynamicDegree`.

    ``forward(image1, image2, crop=True)`` takes two float ``[N, 3, H, W]`` batches in [0, 255], pads them
    with :func:`pad_to_multiple`, calls :meth:`flow_padded` and returns the ``[N, 2, H', W']`` flow in pixels
    (``u`` = x displacement, ``v`` = y displacement), cropped back to ``H x W`` unless ``crop=False``.
    Subclasses implement :meth:`flow_padded`; tests use this to inject known flow fields.
    :meth:`pair_flows` computes the flows of many frame pairs chunk by chunk (subclasses may share work
    between pairs that have a frame in common). :meth:`flow_padded` runs at the ``precision`` set by
    :meth:`configure_inference`; padding and the returned flow are float32.
    """

    #: padding multiple of the network's input
    multiple: int = 8
    #: smallest padded height/width the network accepts
    min_padded_size: int = 1
    #: inference precision and layout (:meth:`configure_inference`; the backbone cache sets them)
    precision: str = "fp32"
    channels_last: bool = False

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """Run :meth:`flow_padded` at ``precision`` (see :mod:`metrics.backbones.precision`), with 4-D
        weights and the padded frames in ``channels_last`` layout."""
        check_precision(precision, channels_last)
        self.precision, self.channels_last = precision, channels_last
        if channels_last:
            set_module_layout(self)

    def flow_padded(self, image1: Tensor, image2: Tensor) -> Tensor:
        """Flow ``[N, 2, Hp, Wp]`` between padded float [0, 255] frames."""
        raise NotImplementedError

    def min_frame_size(self) -> int:
        """Smallest unpadded frame side the network accepts."""
        return max(1, self.min_padded_size - self.multiple + 1)

    def forward(self, image1: Tensor, image2: Tensor, crop: bool = True) -> Tensor:
        self._check_frames(image1, image2)
        pair = torch.cat([image1, image2])
        padded, pads = pad_to_multiple(pair, self.multiple)
        first, second = padded.chunk(2)
        with inference_precision(self.precision, first.device):
            flow = self.flow_padded(
                to_layout(first, self.channels_last), to_layout(second, self.channels_last)
            )
        flow = flow.float()
        return crop_padding(flow, pads) if crop else flow

    def pair_flows(
        self,
        frames_at: Callable[[Tensor], Tensor],
        first: Tensor,
        second: Tensor,
        batch_size: int = 4,
        crop: bool = True,
    ) -> Iterator[Tensor]:
        """Flows from frame ``first[i]`` to frame ``second[i]``, ``batch_size`` pairs per yielded tensor.

        Args:
            frames_at: ``frames_at(indices)`` returns those frames as float ``[n, 3, H, W]`` in [0, 255]
                (so a caller never converts more frames than one chunk needs).
            first, second: int64 ``[P]`` frame indices.
            batch_size: pairs per network call.
            crop: as in :meth:`forward`.

        Yields:
            float32 ``[n, 2, H', W']`` flows of consecutive chunks of pairs, in order. This base version calls
            :meth:`forward` per chunk; :class:`RAFTLarge` encodes each frame once.
        """
        for start in range(0, first.numel(), batch_size):
            stop = start + batch_size
            yield self(frames_at(first[start:stop]), frames_at(second[start:stop]), crop=crop)

    def _check_frames(self, image1: Tensor, image2: Tensor) -> None:
        if image1.ndim != 4 or image1.shape != image2.shape or image1.shape[1] != 3:
            raise ValueError(
                f"flow inputs must be two [N, 3, H, W] batches of the same shape, got {tuple(image1.shape)} "
                f"and {tuple(image2.shape)}"
            )
        if not image1.is_floating_point():
            raise ValueError(f"flow inputs must be float frames in [0, 255], got dtype {image1.dtype}")
        h, w = image1.shape[-2:]
        if min(h, w) < self.min_frame_size():
            raise ValueError(
                f"{type(self).__name__} needs frames of at least {self.min_frame_size()} px per side (padded "
                f"to a multiple of {self.multiple}: >= {self.min_padded_size}), got {h}x{w}"
            )


class RAFTLarge(PaddedFlowNet):
    """torchvision RAFT-large with VBench's input handling (see the module docstring).

    Args:
        weights: registry name (``"raft_large_c_t_v1"``, or ``"raft_things"`` for the original file),
            checkpoint path (a torchvision ``raft_large`` state dict or the original RAFT ``raft-things.pth``,
            see :func:`raft_state_dict`), or None for a seeded random initialisation (smoke runs: flows are
            meaningless).
        num_flow_updates: recurrent refinement steps (VBench: 20).

    Example:
        >>> import torch
        >>> net = RAFTLarge(weights=None).eval()
        >>> x = torch.rand(1, 3, 128, 128) * 255
        >>> net(x, x).shape  # doctest: +SKIP
        torch.Size([1, 2, 128, 128])
    """

    min_padded_size = 128  # torchvision: feature maps of >= 16 px for the 4-level correlation pyramid

    def __init__(
        self,
        weights: str | os.PathLike | None = "raft_large_c_t_v1",
        num_flow_updates: int = VBENCH_NUM_FLOW_UPDATES,
    ) -> None:
        super().__init__()
        check_positive_int("num_flow_updates", num_flow_updates)
        from torchvision.models.optical_flow import raft_large

        net = raft_large(weights=None, progress=False)
        if weights is not None:
            state = raft_state_dict(load_checkpoint(weights), source=f"RAFT checkpoint {os.fspath(weights)}")
            net.load_state_dict(state, strict=True)
        self.raft = net
        self.num_flow_updates = num_flow_updates

    def configure_inference(self, precision: str, channels_last: bool) -> None:
        """As :meth:`PaddedFlowNet.configure_inference`; off float32 the context encoder's BatchNorms are
        also folded into its convolutions (the feature encoder's instance norms cannot be)."""
        check_precision(precision, channels_last)
        if precision != "fp32":
            self.raft.context_encoder = fold_batchnorm(self.raft.context_encoder)
        super().configure_inference(precision, channels_last)

    def _normalise(self, padded: Tensor) -> Tensor:
        """Padded [0, 255] frames -> RAFT's input ``2 * (x / 255) - 1`` in the network's dtype."""
        return (2.0 * (padded / 255.0) - 1.0).to(next(self.raft.parameters()).dtype)

    def _refine(self, image1: Tensor, fmap1: Tensor, fmap2: Tensor) -> Tensor:
        """torchvision ``raft_large.forward`` after its feature encoder; returns the last upsampled flow.

        The network's own submodules and the same operations in the same order (correlation pyramid, context
        encoder on ``image1``, ``num_flow_updates`` GRU updates), except that the mask predictor and the
        convex upsampling run once, after the last update: torchvision computes them after every update to
        return all intermediate flows, of which VBench uses only the last.
        """
        from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

        raft = self.raft
        n, _, h, w = image1.shape
        raft.corr_block.build_pyramid(fmap1, fmap2)
        context_out = raft.context_encoder(image1)
        hidden_size = raft.update_block.hidden_state_size
        hidden, context = torch.split(context_out, [hidden_size, context_out.shape[1] - hidden_size], dim=1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        coords0 = make_coords_grid(n, h // 8, w // 8).to(fmap1.device)
        coords1 = make_coords_grid(n, h // 8, w // 8).to(fmap1.device)
        for _ in range(self.num_flow_updates):
            corr = raft.corr_block.index_pyramid(centroids_coords=coords1)
            hidden, delta = raft.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta
        up_mask = None if raft.mask_predictor is None else raft.mask_predictor(hidden)
        return upsample_flow(flow=coords1 - coords0, up_mask=up_mask)

    def flow_padded(self, image1: Tensor, image2: Tensor) -> Tensor:
        """[0, 255] padded frames -> ``2 * (x / 255) - 1`` -> RAFT -> last upsampled flow."""
        x1, x2 = self._normalise(image1), self._normalise(image2)
        fmap1, fmap2 = torch.chunk(self.raft.feature_encoder(torch.cat([x1, x2], dim=0)), 2, dim=0)
        return self._refine(x1, fmap1, fmap2).float()

    def pair_flows(
        self,
        frames_at: Callable[[Tensor], Tensor],
        first: Tensor,
        second: Tensor,
        batch_size: int = 4,
        crop: bool = True,
    ) -> Iterator[Tensor]:
        """As :meth:`PaddedFlowNet.pair_flows`, with each frame through the feature encoder only once.

        torchvision's forward encodes ``cat([image1, image2])``, so along a video every inner frame is
        encoded twice (second frame of one pair, first of the next). Here a chunk encodes only the frames
        the previous chunk has not (its features are kept for one chunk), the context encoder runs on each
        pair's first frame as in RAFT, and the updates run per pair (:meth:`_refine`). In float32 the flow
        equals the per-pair forward's up to the rounding of batched convolutions.
        """
        encoded: dict[int, tuple[Tensor, Tensor]] = {}  # frame index -> (network input, feature map)
        firsts, seconds = first.tolist(), second.tolist()
        pads = (0, 0, 0, 0)
        for start in range(0, len(firsts), batch_size):
            idx1, idx2 = firsts[start : start + batch_size], seconds[start : start + batch_size]
            needed = list(dict.fromkeys(idx1 + idx2))
            missing = [i for i in needed if i not in encoded]
            if missing:
                frames = frames_at(torch.tensor(missing, device=first.device))
                self._check_frames(frames, frames)
                padded, pads = pad_to_multiple(frames, self.multiple)
                with inference_precision(self.precision, padded.device):
                    x = self._normalise(to_layout(padded, self.channels_last))
                    fmaps = self.raft.feature_encoder(x)
                encoded.update(zip(missing, zip(x.unbind(0), fmaps.unbind(0), strict=True), strict=True))
            encoded = {i: encoded[i] for i in needed}  # the next chunk starts where this one ends
            image1 = to_layout(torch.stack([encoded[i][0] for i in idx1]), self.channels_last)
            fmap1 = torch.stack([encoded[i][1] for i in idx1])
            fmap2 = torch.stack([encoded[i][1] for i in idx2])
            with inference_precision(self.precision, image1.device):
                flow = self._refine(image1, fmap1, fmap2).float()
            yield crop_padding(flow, pads) if crop else flow


def raft_ref(
    weights: str | os.PathLike | None = "raft_large_c_t_v1",
    num_flow_updates: int = VBENCH_NUM_FLOW_UPDATES,
) -> BackboneRef:
    """Shared-cache handle for :class:`RAFTLarge` (one cache entry per number of flow updates).

    A local checkpoint is checked here (:func:`check_raft_weights`), so a wrong file fails when the metric is
    built rather than at its first update.
    """
    check_raft_weights(weights)
    if num_flow_updates == VBENCH_NUM_FLOW_UPDATES:
        return BackboneRef("raft_large", RAFTLarge, weights)
    factory = functools.partial(RAFTLarge, num_flow_updates=num_flow_updates)
    return BackboneRef(f"raft_large_{num_flow_updates}upd", factory, weights)
