"""metrics._validate: the shared argument checks accept what they promise and word every rejection alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics._validate import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_interval,
    check_positive_int,
    check_positive_number,
    check_probability,
)


def test_accepted_values_are_returned() -> None:
    assert check_positive_int("n", np.int64(3)) == 3 and type(check_positive_int("n", np.int64(3))) is int
    assert check_positive_int("n", None, allow_none=True) is None
    assert check_int("margin", 0, minimum=0, maximum=9) == 0
    assert check_positive_number("fps", np.float32(12.5)) == 12.5
    assert check_interval("p", 1, 0, 1, low_closed=False) == 1.0
    assert check_probability("p", 0) == 0.0
    assert check_choice("mode", "pooled", ("per_video", "pooled")) == "pooled"
    assert check_bool("flag", False) is False and check_bool("flag", None, allow_none=True) is None
    assert check_instance("x", 3, (int, float)) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_positive_int("batch_size", 0), "`batch_size` must be a positive int, got 0"),
        (lambda: check_positive_int("batch_size", True), "`batch_size` must be a positive int, got True"),
        (lambda: check_positive_int("batch_size", 2.0), "`batch_size` must be a positive int, got 2.0"),
        (
            lambda: check_positive_int("num_frames", 0, allow_none=True, none_means="all frames"),
            "`num_frames` must be a positive int or None (all frames), got 0",
        ),
        (lambda: check_int("num_frames", 2, minimum=3), "`num_frames` must be >= 3, got 2"),
        (lambda: check_int("num_frames", "2", minimum=3), "`num_frames` must be an int >= 3, got '2'"),
        (lambda: check_int("margin", 10, minimum=0, maximum=9), "`margin` must be in [0, 9], got 10"),
        (lambda: check_positive_number("fps", math.inf), "`fps` must be a finite positive number, got inf"),
        (lambda: check_positive_number("fps", math.nan), "`fps` must be a finite positive number, got nan"),
        (
            lambda: check_positive_number("max_psnr", -1, allow_none=True, unit="dB"),
            "`max_psnr` must be None or a finite positive number of dB, got -1",
        ),
        (
            lambda: check_interval("top_fraction", 0, 0, 1, low_closed=False),
            "`top_fraction` must be in (0, 1]",
        ),
        (lambda: check_probability("threshold", 1.5), "`threshold` must be in [0, 1], got 1.5"),
        (lambda: check_choice("mode", "x", ("a", "b")), "`mode` must be one of ('a', 'b'), got 'x'"),
        (
            lambda: check_choice("arch", "x", ("a",), alternative="a config dict"),
            "`arch` must be one of ('a',) or a config dict, got 'x'",
        ),
        (lambda: check_bool("crop_flow", 1), "`crop_flow` must be a bool, got 1"),
        (lambda: check_instance("head", 3, str), "`head` must be a str, got int"),
    ],
)
def test_rejections_name_the_argument_the_expectation_and_the_value(call, message) -> None:
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message)
