"""Op table: the element-wise unary ops, prelu and prelu_der.

Each reference is the textbook formula written with NumPy in float64, independent of the kernels
(which use where/expm1/arcsin...). int32 rows check the dtype rules through the same oracle.
"""

from __future__ import annotations

import numpy as np

from deeplearn.math.ops.elementwise import (
    Abs,
    Acos,
    Asin,
    Atan,
    Ceil,
    Clip,
    Cos,
    Cosh,
    Elu,
    EluDer,
    Exp,
    Floor,
    LeakyRelu,
    Log,
    Neg,
    Prelu,
    PreluDer,
    Relu,
    Selu,
    Sigmoid,
    Sin,
    Sinh,
    Sqrt,
    Square,
    Step,
    Tan,
    Tanh,
)
from tests.op_cases import OpCase

S = ((3, 4),)
INT = "integer input: no gradient"


def _int_case(op: object, reference: object, low: float = -5, high: float = 5) -> OpCase:
    return OpCase(
        op,
        ((6,),),
        reference,
        low=low,
        high=high,
        dtypes=("int32",),  # type: ignore[arg-type]
        grad=False,
        why_no_grad=INT,
        label="[int32]",
    )


def _selu(x: np.ndarray) -> np.ndarray:
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    return np.array([scale * v if v >= 0 else scale * alpha * (np.exp(v) - 1) for v in x.ravel()]).reshape(
        x.shape
    )


def _two_signed(rng: np.random.Generator) -> list[np.ndarray]:
    """x away from 0 (the kinks) on both sides, and alpha in (0, 1)."""
    x = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.05, 2.0, (3, 4))
    return [x.astype(np.float32), rng.uniform(0.05, 1.0, (3, 4)).astype(np.float32)]


CASES = [
    OpCase(Neg(), S, lambda x: 0 - x),
    _int_case(Neg(), lambda x: 0 - x),
    OpCase(Exp(), S, lambda x: np.e**x),
    _int_case(Exp(), lambda x: np.e ** x.astype(np.float64)),
    OpCase(Log(), S, np.log, low=0.1, high=2.0),
    OpCase(Sqrt(), S, lambda x: x**0.5, low=0.1, high=2.0),
    _int_case(Sqrt(), lambda x: x.astype(np.float64) ** 0.5, low=0, high=9),
    OpCase(Square(), S, lambda x: x * x),
    _int_case(Square(), lambda x: x * x),
    OpCase(Abs(), S, lambda x: np.where(x < 0, -x, x)),
    _int_case(Abs(), lambda x: np.where(x < 0, -x, x)),
    OpCase(Ceil(), S, lambda x: -np.floor(-x), low=-3, high=3),
    _int_case(Ceil(), lambda x: x),
    OpCase(Floor(), S, lambda x: x - np.mod(x, 1.0), low=-3, high=3),
    OpCase(Relu(), S, lambda x: x * (x > 0)),
    _int_case(Relu(), lambda x: x * (x > 0)),
    OpCase(Elu(), S, lambda x: np.where(x >= 0, x, np.exp(x) - 1)),
    OpCase(EluDer(), S, lambda x: np.where(x >= 0, 1.0, np.exp(x))),
    OpCase(Selu(), S, _selu),
    OpCase(LeakyRelu(), S, lambda x: np.where(x >= 0, x, 0.2 * x), label="[alpha=0.2]"),
    OpCase(LeakyRelu(0.05), S, lambda x: np.where(x >= 0, x, 0.05 * x), label="[alpha=0.05]"),
    OpCase(Prelu(), ((3, 4), (3, 4)), lambda x, a: np.where(x >= 0, x, a * x), make_inputs=_two_signed),
    OpCase(PreluDer(), ((3, 4), (3, 4)), lambda x, a: np.where(x > 0, 1.0, a), make_inputs=_two_signed),
    OpCase(Sigmoid(), S, lambda x: 1 / (1 + np.e ** (-x)), low=-6, high=6),
    OpCase(Tanh(), S, lambda x: (np.e**x - np.e**-x) / (np.e**x + np.e**-x)),
    _int_case(Sigmoid(), lambda x: 1 / (1 + np.e ** (-x.astype(np.float64)))),
    OpCase(Sin(), S, np.sin, low=-4, high=4),
    OpCase(Cos(), S, np.cos, low=-4, high=4),
    _int_case(Cos(), lambda x: np.cos(x.astype(np.float64))),
    OpCase(Tan(), S, lambda x: np.sin(x) / np.cos(x), low=-1.2, high=1.2),
    OpCase(Asin(), S, np.arcsin, low=-0.9, high=0.9),
    OpCase(Acos(), S, lambda x: np.pi / 2 - np.arcsin(x), low=-0.9, high=0.9),
    OpCase(Atan(), S, np.arctan, low=-3, high=3),
    OpCase(Sinh(), S, lambda x: (np.e**x - np.e**-x) / 2),
    OpCase(Cosh(), S, lambda x: (np.e**x + np.e**-x) / 2),
    OpCase(Step(), S, lambda x: (x > 0).astype(np.float64), label="[alpha=0]"),
    OpCase(Step(0.3), S, lambda x: np.where(x > 0, 1.0, 0.3), label="[alpha=0.3]"),
    _int_case(Step(), lambda x: (x > 0).astype(np.float64)),
    OpCase(Clip(-0.5, 0.8), S, lambda x: np.where(x < -0.5, -0.5, np.where(x > 0.8, 0.8, x))),
    _int_case(Clip(-2, 3), lambda x: np.where(x < -2, -2, np.where(x > 3, 3, x)).astype(np.float64)),
]
