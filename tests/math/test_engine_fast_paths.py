"""The engine's and NDArray's cheap host paths give what the plain paths gave.

Engine.run remembers shape rules per (op, input specs), decides whether a kernel result shares
an input's memory from ``base`` before asking ``may_share_memory``, and Storage counts an array
garbage-collected without ``dispose`` through ``__del__``. Each shortcut is checked here against
what it replaces.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, NDArray
from deeplearn.math.ops.base import Op, Spec
from deeplearn.types import RawArray, ShapeError


@dataclass(frozen=True)
class _Echo(Op, abstract=True):
    """A test op whose kernel hands back a view of (or the very) input: ``how`` picks which."""

    how: str
    name = "echo"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        if self.how == "same":
            return x
        if self.how == "view":
            return x.reshape(x.shape)[...]
        return x.copy()


@dataclass(frozen=True)
class _Counted(Op, abstract=True):
    """A test op that counts how often its shape rule runs (``calls`` is shared on purpose)."""

    calls: list[int]
    name = "counted"

    def infer(self, x: Spec) -> Spec:
        self.calls.append(1)
        if x.rank != 1:
            raise ShapeError(f"counted: x must be rank 1; got x.shape={x.shape}.")
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return x + 1


@pytest.mark.parametrize("how", ["same", "view", "copy"])
def test_results_never_share_an_inputs_memory(math: dl.NDArrayMath, how: str) -> None:
    x = Array1D.new([1, 2, 3])
    y = math.engine.run(_Echo(how), x)
    y.set(10, 0)  # writing to the result must leave the input alone
    assert x.get(0) == 1.0
    assert y.get_values().tolist() == [10.0, 2.0, 3.0]


def test_results_of_a_reshaped_input_are_copied_when_they_alias_it(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 2], [1, 2, 3, 4])
    flat = x.as1d()  # a view: its raw array is a NumPy/CuPy view of the storage
    y = math.engine.run(_Echo("same"), flat)
    y.set(-1, 3)
    assert x.get(1, 1) == 4.0


def test_shape_rules_are_remembered_per_op_and_specs(math: dl.NDArrayMath) -> None:
    calls: list[int] = []
    op = _Counted(calls)
    # a list field makes the op unhashable: the rule runs every time, and still gives the result
    for _ in range(3):
        assert math.engine.run(op, Array1D.new([1, 2])).get_values().tolist() == [2.0, 3.0]
    assert len(calls) == 3


def test_shape_rule_cache_gives_the_same_specs_as_infer(math: dl.NDArrayMath) -> None:
    a, b = Array2D.new([2, 1], [1, 2]), Array1D.new([10, 20, 30])
    first = math.add(a, b)
    second = math.add(a, b)  # from the cache
    assert first.shape == second.shape == (2, 3)
    assert first.spec == second.spec == Spec((2, 3), "float32")
    assert math.equal(Array1D.new([1], "int32"), Array1D.new([1], "int32")).dtype == "bool"
    np.testing.assert_array_equal(first.get_values(), second.get_values())


def test_shape_errors_are_raised_every_time(math: dl.NDArrayMath) -> None:
    for _ in range(2):  # a failed rule is not remembered
        with pytest.raises(ShapeError):
            math.add(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))


def test_spec_follows_the_view(math: dl.NDArrayMath) -> None:
    x = math.add(Array2D.new([2, 3], [1, 2, 3, 4, 5, 6]), Array2D.new([2, 3], [0] * 6))
    assert x.spec == Spec((2, 3), "float32")
    assert x.reshape((3, 2)).spec == Spec((3, 2), "float32")
    assert x.as1d().spec == Spec((6,), "float32")


def test_result_shapes_are_python_ints(math: dl.NDArrayMath) -> None:
    y = math.sum(Array2D.new([2, 3], [1, 2, 3, 4, 5, 6]), 0)
    assert y.shape == (3,) and all(type(d) is int for d in y.shape)


def _count_after_collect(math: dl.NDArrayMath) -> int:
    gc.collect()
    return math.get_num_arrays()


def test_garbage_collected_arrays_stop_counting(math: dl.NDArrayMath) -> None:
    base = _count_after_collect(math)
    x: Any = math.relu(Array1D.new([1, -2]))  # the input is garbage as soon as relu returns
    view: Any = x.reshape((2, 1))
    other: Any = Array1D.new([3])
    assert math.get_num_arrays() == base + 2
    nbytes = dl.memory()["num_bytes"]
    del x
    assert _count_after_collect(math) == base + 2  # the view still holds the relu's storage
    del view
    assert _count_after_collect(math) == base + 1
    assert dl.memory()["num_bytes"] == nbytes - 8
    del other
    assert _count_after_collect(math) == base


def test_dispose_then_collect_counts_once(math: dl.NDArrayMath) -> None:
    base = _count_after_collect(math)
    x: Any = Array1D.new([1, 2, 3])
    x.dispose()
    assert math.get_num_arrays() == base
    del x
    assert _count_after_collect(math) == base  # not released a second time


def test_arrays_made_in_a_scope_are_tracked_by_it(math: dl.NDArrayMath) -> None:
    with math.scope() as scope:
        y = math.exp(Array1D.new([0.0]))
        z = NDArray.zeros([2])
        assert scope.num_tracked == 3
    assert y.is_disposed and z.is_disposed
