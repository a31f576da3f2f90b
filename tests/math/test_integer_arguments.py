"""Sizes, counts and indices must be integers: 2.5 is refused with the argument's name, never
truncated to 2."""

from __future__ import annotations

import re
from typing import Any

import pytest

import deeplearn as dl



@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda m, x: m.top_k(x, 1.5), ValueError, "top_k: k must be an integer; got k=1.5"),
        (lambda m, x: m.one_hot(dl.Array1D.new([0, 1], "int32"), 2.5), ValueError, "one_hot: depth must be an integer"),
        (lambda m, x: m.slice1d(x, 0.5, 1), dl.ShapeError, "slice1d: begin must be a sequence of integers"),
        (lambda m, x: m.resize_bilinear3d(dl.Array3D.new([1, 1, 1], [1]), [2.5, 2]), dl.ShapeError,
         "resize_bilinear3d: a shape must be a sequence of integers"),
        (lambda m, x: dl.NDArray.zeros([2.5]), dl.ShapeError, "a shape must be a sequence of integers"),
    ],
)
def test_fractional_sizes_are_refused_not_truncated(call: Any, error: type, fragment: str) -> None:
    math = dl.NDArrayMathCPU()
    with pytest.raises(error, match=re.escape(fragment)):
        call(math, dl.Array1D.new([3.0, 1.0, 2.0]))


@pytest.mark.parametrize("axis", [1.0, "0", True, [0, 0.5]])
def test_axis_must_be_integers(axis: Any) -> None:
    math = dl.NDArrayMathCPU()
    with pytest.raises(ValueError, match=re.escape(f"sum: axis must be None, an integer or a sequence of integers; got axis={axis!r}")):
        math.sum(dl.Array2D.new([2, 2], [1, 2, 3, 4]), axis)
