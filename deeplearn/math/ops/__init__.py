"""THE op declarations: one class per op, grouped by family. Importing this package registers
every op in ``OPS``."""

from __future__ import annotations

from deeplearn.math.ops import (  # noqa: F401 - imported so every op registers
    arithmetic,
    conv,
    costs,
    elementwise,
    image,
    layout,
    linalg,
    pool,
    random,
    reduction,
    rnn,
)
from deeplearn.math.ops.base import OPS, BinaryOp, Op, Spec, UnaryOp

__all__ = ["OPS", "Op", "Spec", "UnaryOp", "BinaryOp"]
