"""What mypy is told about an op's outputs holds at run time.

Engine.run's overloads type every NDArrayMath method from the kind of op it runs: a
SameRankOp gives back its array input's NDArray class, an op whose shape rule returns a pair of
Specs gives a pair of NDArrays, any other op one NDArray. Nothing checks these at run time, so
this runs every op of the op table and compares.
"""

from __future__ import annotations

import typing

import numpy as np
import pytest

import deeplearn as dl
from deeplearn.math.ops.base import SameRankOp
from tests.conftest import as_ndarray
from tests.op_cases import CASES, OpCase


def _rule_gives_a_pair(op: object) -> bool:
    returns = typing.get_type_hints(type(op).infer)["return"]
    return typing.get_origin(returns) is tuple


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_an_op_gives_what_its_kind_promises(case: OpCase) -> None:
    math = dl.NDArrayMath("cpu")
    inputs = [as_ndarray(math, x) for x in case.inputs(np.random.default_rng(0))]
    with np.errstate(all="ignore"):
        out = math.engine.run(case.op, *inputs)
    if _rule_gives_a_pair(case.op):
        assert isinstance(out, tuple) and len(out) == 2, case.id
        assert all(isinstance(y, dl.NDArray) for y in out), case.id
        return
    assert isinstance(out, dl.NDArray), case.id
    if isinstance(case.op, SameRankOp):
        # The overloads type the result as x (one input) or a (a, b; and c1, a, c2, b of
        # scaled_array_add, whose c1 and c2 are scalars); b has a's rank.
        arrays = inputs[1::2] if len(inputs) == 4 else inputs
        for x in arrays:
            assert type(out) is type(x), f"{case.id}: {type(out).__name__} from {type(x).__name__}"


def test_the_rank_classes_are_distinct() -> None:
    """``type(out) is type(x)`` above compares ranks only because each rank has its own class."""
    math = dl.NDArrayMath("cpu")
    classes = [type(as_ndarray(math, np.zeros((1,) * rank))) for rank in range(5)]
    assert classes == [dl.Scalar, dl.Array1D, dl.Array2D, dl.Array3D, dl.Array4D]
