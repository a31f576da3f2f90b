"""Op table: the element-wise binary ops (with broadcast shapes), their strict variants and
scaled_array_add."""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.arithmetic import (
    Add,
    AddStrict,
    Divide,
    DivideStrict,
    Equal,
    EqualStrict,
    Maximum,
    Minimum,
    Multiply,
    MultiplyStrict,
    Pow,
    PowStrict,
    ScaledArrayAdd,
    Subtract,
    SubtractStrict,
)
from tests.op_cases import OpCase

BROADCAST = [((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (2, 3)), ((3, 1), (1, 4))]
SAME = ((3, 4), (3, 4))
INT = "integer inputs: no gradient"
BOOL_OUT = "boolean output: not differentiable"


def _away_from_zero(shapes: tuple[tuple[int, ...], ...]):  # type: ignore[no-untyped-def]
    """Inputs of either sign with |v| in (0.5, 2): safe divisors and pow bases."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [np.asarray(rng.choice([-1.0, 1.0], s) * rng.uniform(0.5, 2.0, s), np.float32) for s in shapes]

    return make


def _pow_inputs(shapes: tuple[tuple[int, ...], ...], int_base: bool = False):  # type: ignore[no-untyped-def]
    def make(rng: np.random.Generator) -> list[np.ndarray]:
        if int_base:
            base = rng.integers(-4, 5, shapes[0]).astype(np.int32)
        else:
            base = np.asarray(
                rng.choice([-1.0, 1.0], shapes[0]) * rng.uniform(0.5, 2.0, shapes[0]), np.float32
            )
        return [base, np.asarray(rng.integers(-3, 4, shapes[1]), np.int32)]

    return make


def _small_ints_as_float(shapes: tuple[tuple[int, ...], ...]):  # type: ignore[no-untyped-def]
    """Values in {0, 1, 2}, so equal sees both outcomes."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        return [np.asarray(rng.integers(0, 3, s), np.float32) for s in shapes]

    return make


def _int_pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer base: float power truncated toward zero (deeplearn.js's Int32Array store)."""
    with np.errstate(divide="ignore"):  # 0 ** -1 = inf, stored as 0
        y = a.astype(np.float64) ** b.astype(np.float64)
    return np.where(np.isfinite(y), np.trunc(y), 0)


def _scaled(c1: np.ndarray, a: np.ndarray, c2: np.ndarray, b: np.ndarray) -> np.ndarray:
    return c1.reshape(()) * a + c2.reshape(()) * b


CASES: list[OpCase] = []
for shapes in [SAME, *BROADCAST]:
    CASES += [
        OpCase(Add(), shapes, lambda a, b: a + b),
        OpCase(Subtract(), shapes, lambda a, b: a - b),
        OpCase(Multiply(), shapes, lambda a, b: a * b),
        OpCase(Divide(), shapes, lambda a, b: a * (1.0 / b), make_inputs=_away_from_zero(shapes)),
        OpCase(Maximum(), shapes, lambda a, b: np.where(a > b, a, b)),
        OpCase(Minimum(), shapes, lambda a, b: np.where(a < b, a, b)),
        OpCase(
            Pow(),
            shapes,
            lambda a, b: np.exp(b * np.log(np.abs(a))) * np.where((a < 0) & (b % 2 == 1), -1, 1),
            make_inputs=_pow_inputs(shapes),
        ),
        OpCase(
            Equal(),
            shapes,
            lambda a, b: np.abs(a - b) == 0,
            make_inputs=_small_ints_as_float(shapes),
            grad=False,
            why_no_grad=BOOL_OUT,
        ),
    ]

CASES += [
    # dtype rules
    OpCase(
        Add(),
        ((4,), (4,)),
        lambda a, b: a + b,
        dtypes=("int32", "int32"),
        low=-9,
        high=9,
        grad=False,
        why_no_grad=INT,
        label="[int32]",
    ),
    OpCase(Add(), ((4,), (4,)), lambda a, b: a + b, dtypes=("int32", "float32"), label="[int32+float32]"),
    OpCase(Multiply(), ((2, 3), ()), lambda a, b: a * b, dtypes=("float32", "bool"), label="[float32*bool]"),
    OpCase(
        Subtract(),
        ((4,), (4,)),
        lambda a, b: a.astype(np.int64) - b.astype(np.int64),
        dtypes=("bool", "bool"),
        grad=False,
        why_no_grad=INT,
        label="[bool-bool]",
    ),
    OpCase(
        Divide(),
        ((4,), (4,)),
        lambda a, b: a * (1.0 / b),
        dtypes=("int32", "int32"),
        low=1,
        high=9,
        grad=False,
        why_no_grad=INT,
        label="[int32]",
    ),
    OpCase(
        Maximum(),
        ((4,), (4,)),
        lambda a, b: np.where(a > b, a, b),
        dtypes=("int32", "int32"),
        low=-9,
        high=9,
        grad=False,
        why_no_grad=INT,
        label="[int32]",
    ),
    OpCase(
        Minimum(),
        ((2, 3), (3,)),
        lambda a, b: np.where(a < b, a, b),
        dtypes=("int32", "int32"),
        low=-9,
        high=9,
        grad=False,
        why_no_grad=INT,
        label="[int32]",
    ),
    OpCase(
        Pow(),
        ((2, 3), (2, 3)),
        _int_pow,
        make_inputs=_pow_inputs(((2, 3), (2, 3)), int_base=True),
        grad=False,
        why_no_grad=INT,
        label="[int32 base]",
    ),
    OpCase(
        Equal(),
        ((4,), ()),
        lambda a, b: a - b == 0,
        dtypes=("int32", "int32"),
        low=0,
        high=2,
        grad=False,
        why_no_grad=BOOL_OUT,
        label="[int32]",
    ),
    # strict variants
    OpCase(AddStrict(), SAME, lambda a, b: a + b),
    OpCase(SubtractStrict(), SAME, lambda a, b: a - b),
    OpCase(MultiplyStrict(), SAME, lambda a, b: a * b),
    OpCase(DivideStrict(), SAME, lambda a, b: a * (1.0 / b), make_inputs=_away_from_zero(SAME)),
    OpCase(PowStrict(), SAME, lambda a, b: a ** b.astype(np.float64), make_inputs=_pow_inputs(SAME)),
    OpCase(
        EqualStrict(),
        SAME,
        lambda a, b: np.abs(a - b) == 0,
        make_inputs=_small_ints_as_float(SAME),
        grad=False,
        why_no_grad=BOOL_OUT,
    ),
    # c1·a + c2·b
    OpCase(ScaledArrayAdd(), ((), (3, 4), (), (3, 4)), _scaled),
    OpCase(ScaledArrayAdd(), ((1,), (2, 3), (1, 1), (2, 3)), _scaled, label="[size-1 c]"),
]
