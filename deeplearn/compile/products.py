"""Product epilogues: a matrix product and the fused step that reads its result next, as one step.

After fusion (``fusion.py``), a dense layer's forward pass is two kernels: the product x·W, then
one ``Fused`` kernel that adds the bias and applies the activation, element by element. The
second reads the product's whole result back from memory, and in a captured step it is one
more launch on the critical path. ``fold_products`` replaces each such pair by one
``FusedProduct`` step (``deeplearn/math/ops/fused.py``), which a backend that can runs as a
product kernel whose store computes the fused nodes on each element
(``deeplearn/math/backends/cuda_epilogue.py``), and any other backend as the two kernels.

A pair folds when the fused step comes right after the product and reads its result once,
whole (so nothing runs between them, and moving the product into the fused step changes no
order of reads and writes); when neither writes in place into a bound buffer (an update:
those keep kernels of their own); and when the backend says it can
(``folds(product, fused, at)``). Where anything else may read the product's result (another
step, a deferred kernel, a value a call hands out: a Session's activation map can hand out
every tensor's), the folded step still writes it, as its first output (``keep``).

This module knows nothing of a backend's kernels.

Example:
    >>> from deeplearn.compile.program import Program, Ref
    >>> from deeplearn.math.ops.arithmetic import Add
    >>> from deeplearn.math.ops.elementwise import Relu
    >>> from deeplearn.math.ops.fused import Arg, Fused, Node
    >>> from deeplearn.math.ops.linalg import MatMul
    >>> p = Program()
    >>> x, w, b = p.bind("x", (2, 3), "float32"), p.bind("w", (3, 4), "float32"), p.bind("b", (4,), "float32")
    >>> (c,) = p.add_step(MatMul(), [Ref(x, None), Ref(w, None)], [Spec((2, 4))])
    >>> bias_relu = Fused(
    ...     inputs=(Spec((2, 4)), Spec((4,))),
    ...     nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((2, 4))), Node(Relu(), (Arg(2),), Spec((2, 4)))),
    ...     outputs=(3,),
    ... )
    >>> (y,) = p.add_step(bias_relu, [Ref(c, None), Ref(b, None)], [Spec((2, 4))])
    >>> p.needed = [y]
    >>> fold_products(p, lambda product, fused, at: True, {})
    1
    >>> [(type(step.op).__name__, step.op.keep) for step in p.steps]
    [('FusedProduct', False)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from deeplearn.compile.program import Step
from deeplearn.math.ops.base import Spec
from deeplearn.math.ops.fused import Fused, FusedProduct
from deeplearn.math.ops.linalg import MatMul

if TYPE_CHECKING:
    from deeplearn.compile.program import Program

__all__ = ["fold_products"]

Folds = Callable[[MatMul, Fused, int], bool]
"""``folds(product, fused, at)``: whether the backend runs ``fused`` (the product's result its
input ``at``) in ``product``'s kernel."""


def fold_products(program: Program, folds: Folds, in_place: Mapping[int, int]) -> int:
    """Replaces each product whose result the next step, a ``Fused`` one, reads (see the module
    docstring) by a ``FusedProduct`` step with both; returns how many it folded.
    ``in_place``: {result slot: bound slot} of the results written straight into a bound
    buffer (``Program.writable_in_place``)."""
    steps = program.steps
    exposed = program.exposed_slots()
    readers: dict[int, int] = {}
    for step in steps:
        for ref in step.inputs:
            readers[ref.slot] = readers.get(ref.slot, 0) + 1
    out: list[Step] = []
    folded = 0
    i = 0
    while i < len(steps):
        step = steps[i]
        after = steps[i + 1] if i + 1 < len(steps) else None
        at = _read_next(step, after, in_place)
        if after is not None and at is not None and folds(step.op, after.op, at):  # type: ignore[arg-type]
            rest = tuple(ref for k, ref in enumerate(after.inputs) if k != at)
            (result,) = step.outputs
            keep = result in exposed or readers[result] > 1
            op = FusedProduct(step.op, after.op, at, keep)  # type: ignore[arg-type]
            outputs, specs = after.outputs, after.specs
            if keep:
                outputs, specs = step.outputs + outputs, step.specs + specs
            out.append(Step(op, step.inputs + rest, outputs, specs))
            folded += 1
            i += 2
            continue
        out.append(step)
        i += 1
    if folded:
        program.steps = out
        program.kernels = {}
    return folded


def _read_next(step: Step, after: Step | None, in_place: Mapping[int, int]) -> int | None:
    """Which input of ``after`` is ``step``'s result, where ``step`` is a float32 product and
    ``after`` a Fused step, writing nothing in place, that reads the result once and whole;
    else None."""
    if after is None or type(step.op) is not MatMul or not isinstance(after.op, Fused):
        return None
    if len(step.outputs) != 1 or step.specs[0].dtype != "float32":
        return None
    (result,) = step.outputs
    if result in in_place or any(o in in_place for o in after.outputs):
        return None  # (a result written into a bound buffer must stay its step's one output)
    uses = [k for k, ref in enumerate(after.inputs) if ref.slot == result]
    if len(uses) != 1:
        return None
    ref = after.inputs[uses[0]]
    if ref.shape is not None and tuple(ref.shape) != tuple(step.specs[0].shape):
        return None
    if after.op.inputs[uses[0]] != Spec(step.specs[0].shape, "float32"):
        return None
    return uses[0]
