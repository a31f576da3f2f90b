"""Issue 16's audit: every entry point refuses what it cannot do with the library's own errors
(ShapeError, DTypeError, ValueError, TypeError) naming the call the user made, what must hold
and what was given, before any work is done; never a NumPy error, an IndexError from inside a
kernel, or a silently wrapped, truncated or dropped value."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, Array3D, NDArray, Scalar
from deeplearn.types import DTypeError, ShapeError


def raises(error: type[BaseException], message: str) -> Any:
    """pytest.raises for an exact message start (the library's "<call>: ..." style)."""
    return pytest.raises(error, match="^" + re.escape(message))


# -- one rule for every construction path --------------------------------------------------------

INT32_PATHS: list[tuple[str, Callable[[Any], NDArray]]] = [
    ("Array1D.new", lambda v: Array1D.new([v], "int32")),
    ("Array2D.new", lambda v: Array2D.new([1, 1], [v], "int32")),
    ("NDArray.make", lambda v: NDArray.make([1], [v], "int32")),
    ("Scalar.new", lambda v: Scalar.new(v, "int32")),
    ("NDArray.from_numpy", lambda v: NDArray.from_numpy(np.array([v]), "int32")),
    ("NDArray.rand", lambda v: NDArray.rand([1], lambda: v, "int32")),
]


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**40])
def test_int32_construction_refuses_integers_that_do_not_fit(where: str, make: Any, value: int) -> None:
    with raises(ValueError, f"{where}: integers must fit in int32; got values from {value} to {value}."):
        make(value)


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
def test_int32_construction_refuses_floats_that_do_not_fit(where: str, make: Any) -> None:
    with raises(ValueError, f"{where}: numbers stored as int32 must fit in int32 after truncation"):
        make(3e9)
    with raises(ValueError, f"{where}: numbers stored as int32 must be finite; got nan."):
        make(float("nan"))


@pytest.mark.parametrize("where, make", INT32_PATHS, ids=[p[0] for p in INT32_PATHS])
def test_int32_construction_keeps_the_extremes_and_truncates_floats(where: str, make: Any) -> None:
    assert make(2**31 - 1).get_values().tolist() == [2**31 - 1]
    assert make(-(2**31)).get_values().tolist() == [-(2**31)]
    assert make(-2.9).get_values().tolist() == [-2]  # toward zero, as deeplearn.js's Int32Array


def test_from_dlpack_refuses_integers_that_do_not_fit_in_int32() -> None:
    with raises(ValueError, "from_dlpack: integers must fit in int32; got values from 1 to 1099511627776."):
        dl.from_dlpack(np.array([1, 2**40]))
    with raises(ValueError, f"from_dlpack: integers must fit in int32; got values from {2**63} to {2**63}."):
        dl.from_dlpack(np.array([2**63], dtype=np.uint64))
    assert dl.from_dlpack(np.array([-(2**31), 2**31 - 1])).get_values().tolist() == [-(2**31), 2**31 - 1]


def test_from_numpy_infers_int32_and_refuses_what_does_not_fit() -> None:
    with raises(ValueError, "NDArray.from_numpy: integers must fit in int32; got values from 0 to 1099511627776."):
        NDArray.from_numpy(np.array([0, 2**40]))
    with raises(ValueError, "Array1D.new: integers must fit in int32"):
        Array1D.new([2**70], "int32")  # beyond int64 too: NumPy keeps Python ints as objects


COMPLEX_PATHS: list[tuple[str, Callable[[], Any]]] = [
    ("Array1D.new", lambda: Array1D.new([1 + 2j])),
    ("Scalar.new", lambda: Scalar.new(1 + 2j)),  # type: ignore[arg-type]
    ("NDArray.make", lambda: NDArray.make([1], np.array([1j]))),
    ("NDArray.from_numpy", lambda: NDArray.from_numpy(np.array([1 + 2j]))),
    ("NDArray.from_numpy", lambda: NDArray.from_numpy(np.array([1 + 2j]), "float32")),
    ("from_dlpack", lambda: dl.from_dlpack(np.array([1 + 2j]))),
]


@pytest.mark.parametrize("where, make", COMPLEX_PATHS, ids=[f"{p[0]}-{i}" for i, p in enumerate(COMPLEX_PATHS)])
def test_complex_values_are_refused_not_cut_to_their_real_part(where: str, make: Any) -> None:
    with raises(DTypeError, f"{where}: values must be real numbers; got complex values"):
        make()


def test_text_values_are_refused() -> None:
    with raises(DTypeError, "Array1D.new: values must be numbers or booleans; got values of dtype <U1."):
        Array1D.new(["1"])


@pytest.mark.parametrize(
    "call, where",
    [
        (lambda: NDArray.zeros([2, -1]), "NDArray.zeros"),
        (lambda: NDArray.ones([-3]), "NDArray.ones"),
        (lambda: NDArray.make([-1], []), "NDArray.make"),
        (lambda: Array2D.new([2, -2], [1, 2, 3, 4]), "Array2D.new"),
        (lambda: NDArray.rand_uniform([-1], 0, 1), "NDArray.rand_uniform"),
        (lambda: NDArray.rand_normal([2, -1]), "NDArray.rand_normal"),
    ],
)
def test_negative_dimensions_are_a_shape_error_naming_the_factory(call: Any, where: str) -> None:
    with raises(ShapeError, f"{where}: dimensions must be >= 0; got shape="):
        call()


@pytest.mark.parametrize("dtype", [5, object(), "float64", float, True])
def test_a_dtype_that_is_not_one_of_the_three_is_a_dtype_error(dtype: Any) -> None:
    message = f"NDArray.zeros: dtype must be one of ('float32', 'int32', 'bool'); got {dtype!r}."
    with raises(DTypeError, message):
        NDArray.zeros([2], dtype)
    with raises(DTypeError, "Array1D.new: dtype must be one of"):
        Array1D.new([1], dtype)


def test_numpy_spellings_of_the_three_dtypes_are_accepted() -> None:
    assert NDArray.zeros([1], np.int32).dtype == "int32"
    assert NDArray.zeros([1], np.dtype("float32")).dtype == "float32"
    assert NDArray.zeros([1], bool).dtype == "bool"


def test_random_factories_check_their_arguments_before_drawing() -> None:
    with raises(ValueError, "NDArray.rand_normal: std_dev must be >= 0; got std_dev=-1."):
        NDArray.rand_normal([2], 0, -1)
    with raises(ValueError, "NDArray.rand_truncated_normal: std_dev must be >= 0; got std_dev=nan."):
        NDArray.rand_truncated_normal([2], 0, float("nan"))
    with raises(ValueError, "NDArray.rand_uniform: seed must be None or a non-negative integer; got seed=-1."):
        NDArray.rand_uniform([2], 0, 1, seed=-1)
    with raises(ValueError, "NDArray.rand_uniform: seed must be an integer; got seed=1.5."):
        NDArray.rand_uniform([2], 0, 1, seed=1.5)  # type: ignore[arg-type]
    calls: list[int] = []
    with raises(DTypeError, "NDArray.rand: dtype must be one of"):
        NDArray.rand([3], lambda: calls.append(1) or 0.0, "float64")
    assert calls == []


# -- element access takes integer locations and storable values ----------------------------------


@pytest.mark.parametrize(
    "call, where",
    [
        (lambda x: x.get(1.5), "get"),
        (lambda x: x.get(True), "get"),
        (lambda x: x.set(5, 0.5), "set"),
        (lambda x: x.add(5, "1"), "add"),
        (lambda x: x.loc_to_index([2.5]), "loc_to_index"),
        (lambda x: x.index_to_loc(0.5), "index_to_loc"),
        (lambda x: Scalar.new(1).get(0.5), "get"),
    ],
)
def test_fractional_locations_are_refused_not_truncated(call: Any, where: str) -> None:
    x = Array1D.new([1, 2, 3])
    with raises(ValueError, f"{where}: locations must be integers; got locs="):
        call(x)
    assert x.get(1.0) == 2.0 and x.get(np.int64(2)) == 3.0  # integral values are integers


def test_val_checks_its_location_before_reading() -> None:
    import asyncio

    with raises(ValueError, "val: locations must be integers; got locs=(1.5,)."):
        asyncio.run(Array1D.new([1, 2]).val(1.5))


def test_element_writes_follow_the_construction_rules() -> None:
    x = Array1D.new([1, 2], "int32")
    with raises(ValueError, "set: integers must fit in int32; got values from 2147483648 to 2147483648."):
        x.set(2**31, 0)
    with raises(ValueError, "add: integers must fit in int32"):
        x.add(2**31 - 1, 1)
    with raises(ValueError, "fill: numbers stored as int32 must be finite; got nan."):
        x.fill(float("nan"))
    with raises(DTypeError, "set: values must be real numbers; got complex values"):
        Array1D.new([1.0]).set(1j, 0)  # type: ignore[arg-type]
    assert x.get_values().tolist() == [1, 2]  # nothing was written
    x.set(-3.7, 0)
    assert x.get(0) == -3
