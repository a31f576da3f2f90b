"""The op table: one OpCase per op configuration, gathered from one module per op family.

Each family module (``tests/op_cases/<family>.py``) defines ``CASES: list[OpCase]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeplearn.math.ops.base import Op
from deeplearn.types import Shape

FAMILIES = ["elementwise", "arithmetic", "reduction", "linalg", "layout", "conv", "image", "rnn",
            "random", "costs"]


@dataclass(frozen=True)
class OpCase:
    """One configuration of one op, with an independent NumPy oracle.

    reference: computes the expected output(s) from float64 copies of the inputs (int/bool inputs
        stay as they are). It must not call the op's own kernel.
    low/high: range of the uniform random float inputs.
    dtypes: per-input dtype ("float32" default; "int32" inputs are random integers in [low, high]).
    make_inputs: a custom input generator, rng -> list of NumPy arrays (overrides the above).
    grad: whether the float64 finite-difference gradient check applies; if not, why_no_grad says why.
    """

    op: Op
    shapes: tuple[Shape, ...]
    reference: Callable[..., Any]
    low: float = -2.0
    high: float = 2.0
    dtypes: tuple[str, ...] | None = None
    make_inputs: Callable[[np.random.Generator], list[np.ndarray]] | None = None
    grad: bool = True
    why_no_grad: str = ""
    rtol: float = 1e-5
    atol: float = 1e-5
    grad_rtol: float = 1e-5
    grad_atol: float = 1e-6
    label: str = field(default="")

    @property
    def id(self) -> str:
        return f"{self.op.name}{self.label}{list(self.shapes)}"

    def inputs(self, rng: np.random.Generator, float_dtype: type = np.float32) -> list[np.ndarray]:
        if self.make_inputs is not None:
            made = self.make_inputs(rng)
            return [x.astype(float_dtype) if x.dtype.kind == "f" else x for x in made]
        dtypes = self.dtypes or ("float32",) * len(self.shapes)
        out = []
        for shape, dt in zip(self.shapes, dtypes):
            if dt == "int32":
                out.append(rng.integers(int(self.low), int(self.high) + 1, shape).astype(np.int32))
            elif dt == "bool":
                out.append(rng.random(shape) < 0.5)
            else:
                out.append(rng.uniform(self.low, self.high, shape).astype(float_dtype))
        return out


def all_cases() -> list[OpCase]:
    cases: list[OpCase] = []
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"tests.op_cases.{family}")
        except ModuleNotFoundError as e:
            if e.name != f"tests.op_cases.{family}":
                raise
            continue
        cases.extend(module.CASES)
    return cases


CASES = all_cases()
