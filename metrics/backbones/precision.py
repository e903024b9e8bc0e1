"""Numeric precision and memory layout of backbone inference: ``precision`` and ``channels_last``.

Three precisions, chosen per metric (and so per backbone instance in the shared cache):

* ``"fp32"`` (default, the parity setting): IEEE float32 everywhere. On CUDA this also turns OFF cuDNN's
  TF32 convolutions for the duration of the call (PyTorch enables them by default), so GPU numbers match the
  reference scripts' float32 to float32 rounding, as the parity tests require.
* ``"tf32"``: CUDA matmuls and convolutions in TensorFloat-32 (10-bit mantissa inputs, float32 accumulate);
  about 1e-3 relative on features. On a CPU it is the same as ``"fp32"`` (no TF32 units).
* ``"bf16"``: ``torch.autocast`` to bfloat16 (8-bit mantissa) on CUDA or CPU (fast on CPUs with AVX512-BF16
  or AMX); about 1e-2 relative on features. Outputs are returned as float32.

``channels_last=True`` stores the network's conv weights and its image inputs in NHWC (NDHWC for 3-D convs),
the layout cuDNN and oneDNN prefer. It changes the order of floating-point sums only (~1e-7 relative in
float32). For ``"tf32"`` and ``"bf16"`` the BatchNorm layers that follow convolutions are folded into them
(one kernel instead of two; in float32 the folding moves values by ~1e-7 relative, far below the
precision's own error; ``"fp32"`` never folds, so that its numbers are the reference's).

Preprocessing (the PIL/OpenCV-exact resizes) always runs outside the autocast region in the backbone
wrappers, so pixel-exact steps stay exact whatever the precision.

Example:
    >>> import torch
    >>> runner = InferenceRunner(torch.nn.Conv2d(3, 4, 3), precision="bf16", channels_last=True)
    >>> runner(torch.rand(1, 3, 8, 8)).dtype
    torch.float32
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from metrics._validate import check_bool, check_choice

__all__ = [
    "PRECISIONS",
    "InferenceRunner",
    "check_precision",
    "fold_batchnorm",
    "inference_precision",
    "set_module_layout",
    "to_layout",
]

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: object, channels_last: object = False) -> None:
    """Raise ``ValueError`` naming the argument when ``precision`` or ``channels_last`` is not valid.

    Example:
        >>> check_precision("bf16", True)
    """
    problems = []  # both arguments are checked, so that one message names every bad one
    for check in (
        lambda: check_choice("precision", precision, PRECISIONS),
        lambda: check_bool("channels_last", channels_last),
    ):
        try:
            check()
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ValueError("; ".join(problems))


@contextlib.contextmanager
def inference_precision(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the enclosed network calls at ``precision`` on ``device`` (see the module docstring).

    Example:
        >>> with inference_precision("bf16", "cpu"):
        ...     y = torch.nn.Linear(2, 2)(torch.ones(1, 2))
        >>> y.dtype
        torch.bfloat16
    """
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "bf16":
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
        return
    if device_type != "cuda":
        yield
        return
    allow = precision == "tf32"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_layout(x: Any, channels_last: bool) -> Any:
    """``x`` in channels-last layout if it is a 4-D/5-D floating tensor and ``channels_last`` is set."""
    if not channels_last or not isinstance(x, Tensor) or not x.is_floating_point():
        return x
    if x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.ndim == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def _to_float32(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, tuple):
        return tuple(_to_float32(o) for o in out)
    if isinstance(out, list):
        return [_to_float32(o) for o in out]
    if isinstance(out, dict):
        return {k: _to_float32(v) for k, v in out.items()}
    return out


def set_module_layout(net: nn.Module) -> nn.Module:
    """Convert 4-D parameters to channels_last and 5-D ones to channels_last_3d (in place)."""
    for param in net.parameters():
        if param.ndim == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)
        elif param.ndim == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return net


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold eval-mode BatchNorm layers into the convolutions before them (torch.fx), if the net is traceable.

    Returns a new module computing the same function up to float rounding; networks that torch.fx cannot
    trace symbolically (TorchScript, data-dependent control flow) are returned unchanged.
    """
    from torch.fx.experimental.optimization import fuse

    if isinstance(net, torch.jit.ScriptModule):
        return net
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fuse(net)
    except Exception:  # symbolic tracing fails on data-dependent Python control flow: keep the net as is
        return net


class InferenceRunner(nn.Module):
    """Wraps a network: runs it at ``precision``, in ``channels_last`` layout, and returns float32 outputs.

    Tensor arguments (positional or keyword) of 4 or 5 dimensions are converted to the layout; everything
    else passes through. Attribute access falls through to the wrapped network, so methods such as CLIP's
    ``encode_image`` stay reachable (they then run without the precision context: call the runner).

    Args:
        net: the network (eval mode).
        precision: ``"fp32"``, ``"tf32"`` or ``"bf16"``.
        channels_last: store weights and inputs NHWC / NDHWC.
    """

    def __init__(self, net: nn.Module, precision: str = "fp32", channels_last: bool = False) -> None:
        super().__init__()
        check_precision(precision, channels_last)
        if precision != "fp32":
            net = fold_batchnorm(net)
        if channels_last:
            net = set_module_layout(net)
        self.net = net
        self.precision = precision
        self.channels_last = channels_last

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        device = next((a.device for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), "cpu")
        args = tuple(to_layout(a, self.channels_last) for a in args)
        kwargs = {k: to_layout(v, self.channels_last) for k, v in kwargs.items()}
        with inference_precision(self.precision, device):
            out = self.net(*args, **kwargs)
        return _to_float32(out) if self.precision != "fp32" else out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)
