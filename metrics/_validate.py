"""Argument checks shared by the metrics and backbones (one wording everywhere).

Every check raises ``ValueError("`name` must be ..., got value")`` naming the argument, what was expected
and what was passed, and returns the value (as the checked type) so that it can be used inline. ``bool``
is never accepted where a number is expected (``True`` is an ``int`` in Python, but never a batch size).

Example:
    >>> check_positive_int("batch_size", 8)
    8
    >>> check_choice("mode", "pooled", ("per_video", "pooled"))
    'pooled'
    >>> check_positive_int("batch_size", 0)
    Traceback (most recent call last):
    ...
    ValueError: `batch_size` must be a positive int, got 0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

__all__ = [
    "check_bool",
    "check_choice",
    "check_instance",
    "check_int",
    "check_interval",
    "check_positive_int",
    "check_positive_number",
    "check_probability",
]

T = TypeVar("T")


def _or_none(allow_none: bool, none_means: str | None) -> str:
    if not allow_none:
        return ""
    return f" or None ({none_means})" if none_means else " or None"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    allow_none: bool = False,
    none_means: str | None = None,
    why: str = "",
) -> int | None:
    """An int (not a bool) in ``[minimum, maximum]`` (either bound optional), or None if ``allow_none``.

    ``why`` is appended to the requirement, e.g. ``"(InceptionResnetV1's smallest input)"``.

    Example:
        >>> check_int("num_frames", 3, minimum=3, allow_none=True, none_means="all frames")
        3
        >>> check_int("image_size", 64, minimum=75, why="(InceptionResnetV1's smallest input)")
        Traceback (most recent call last):
        ...
        ValueError: `image_size` must be >= 75 (InceptionResnetV1's smallest input), got 64
    """
    if value is None and allow_none:
        return None
    is_int = _is_int(value)
    if is_int and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return int(value)
    if minimum is not None and maximum is not None:
        bound = f"in [{minimum}, {maximum}]"
    elif minimum is not None:
        bound = f">= {minimum}"
    elif maximum is not None:
        bound = f"<= {maximum}"
    else:
        bound = ""
    # an int out of range reads "must be >= 1"; anything else "must be an int >= 1"
    need = bound if is_int else f"an int {bound}".rstrip()
    tail = f" {why}" if why else ""
    raise ValueError(f"`{name}` must be {need}{tail}{_or_none(allow_none, none_means)}, got {value!r}")


def check_positive_int(
    name: str, value: Any, *, allow_none: bool = False, none_means: str | None = None
) -> int | None:
    """An int >= 1 (not a bool), or None if ``allow_none`` (``none_means`` says what None stands for).

    Example:
        >>> check_positive_int("num_frames", None, allow_none=True, none_means="all frames") is None
        True
    """
    if value is None and allow_none:
        return None
    if not (_is_int(value) and value >= 1):
        raise ValueError(f"`{name}` must be a positive int{_or_none(allow_none, none_means)}, got {value!r}")
    return int(value)


def check_positive_number(
    name: str, value: Any, *, allow_none: bool = False, unit: str = "", finite: bool = True
) -> float | None:
    """A real number > 0 (finite unless ``finite=False``; not a bool), returned as float.

    ``unit`` names what the number counts, e.g. ``"dB"`` or ``"pixels"``.

    Example:
        >>> check_positive_number("fps", 25)
        25.0
    """
    if value is None and allow_none:
        return None
    if not (_is_real(value) and value > 0 and (not finite or math.isfinite(value))):
        what = "a finite positive number" if finite else "a positive number"
        of = f" of {unit}" if unit else ""
        none = "None or " if allow_none else ""
        raise ValueError(f"`{name}` must be {none}{what}{of}, got {value!r}")
    return float(value)


def check_interval(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_closed: bool = True,
    high_closed: bool = True,
    why: str = "",
) -> float:
    """A real number (not a bool) in the interval from ``low`` to ``high`` (each end open or closed).

    Example:
        >>> check_interval("top_fraction", 0.05, 0, 1, low_closed=False)
        0.05
        >>> check_interval("factor", 1.0, 0, 1, low_closed=False, high_closed=False)
        Traceback (most recent call last):
        ...
        ValueError: `factor` must be in (0, 1), got 1.0
    """
    ok = _is_real(value) and (
        (low <= value if low_closed else low < value) and (value <= high if high_closed else value < high)
    )
    if not ok:
        interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
        tail = f" {why}" if why else ""
        raise ValueError(f"`{name}` must be in {interval}{tail}, got {value!r}")
    return float(value)


def check_probability(name: str, value: Any) -> float:
    """A probability: a real number in [0, 1].

    Example:
        >>> check_probability("threshold", 0.7)
        0.7
    """
    return check_interval(name, value, 0.0, 1.0)


def check_choice(
    name: str, value: Any, allowed: Iterable[Any], *, alternative: str = "", expected: str | None = None
) -> Any:
    """One of ``allowed``.

    ``alternative`` describes another accepted form named in the message (checked by the caller);
    ``expected`` replaces the default ``one of (...)`` wording, e.g. ``"torch.float32 or torch.float64"``.

    Example:
        >>> check_choice("window", "box", ("uniform", "gaussian"))
        Traceback (most recent call last):
        ...
        ValueError: `window` must be one of ('uniform', 'gaussian'), got 'box'
    """
    allowed = tuple(allowed)
    try:
        ok = value in allowed
    except Exception:  # e.g. a tensor compared to strings
        ok = False
    if not ok:
        need = expected if expected is not None else f"one of {allowed}"
        other = f" or {alternative}" if alternative else ""
        raise ValueError(f"`{name}` must be {need}{other}, got {value!r}")
    return value


def check_bool(name: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """``True`` or ``False`` (or None if ``allow_none``); 0/1 are not accepted.

    Example:
        >>> check_bool("crop_flow", True)
        True
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool{_or_none(allow_none, None)}, got {value!r}")
    return value


def check_instance(name: str, value: Any, cls: type[T] | tuple[type, ...], what: str | None = None) -> T:
    """An instance of ``cls``; ``what`` names the expected kind (default: the class name).

    Example:
        >>> check_instance("feature_extractor", 3, str)
        Traceback (most recent call last):
        ...
        ValueError: `feature_extractor` must be a str, got int
    """
    if not isinstance(value, cls):
        if what is None:
            names = [c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,))]
            what = "a " + " or ".join(names)
        raise ValueError(f"`{name}` must be {what}, got {type(value).__name__}")
    return value
