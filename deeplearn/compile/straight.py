"""A Program's kernels as one generated Python function, for backends whose kernels are calls.

``Program._run`` walks its steps in a loop: per kernel it unpacks the step, builds the list of
its inputs, looks the kernel up and checks its result. On the CPU that bookkeeping costs about
as much as the NumPy call of a small kernel. Once a first run has shown which kernels' results
need no checking (``Program._run``'s ``final``), the later runs can be one straight-line
function, generated from the steps. Each step's kernel (K2), op (O2), specs (S2) and writer
(W2) is a global of its own in the function's namespace (R: the engine's check), so that a
line costs one global lookup and the call:

    def run(slots):
        slots[6] = O0.forward(xp, slots[2], slots[3])
        slots[11] = K1(O1, slots[6].reshape((20,)))
        r_ = (slots[8], slots[11],)
        y_ = K2(O2, *r_)
        slots[12] = R(O2, y_, r_, S2[0])
        W3(slots[12], slots[13])
        slots[14][()] = slots[9][()]
        ...

one line per kernel: the kernel (the op's own ``forward`` where the backend runs it as it is,
else the backend's kernel) on the slots it reads, into the slot it fills, through the engine's
check of its result where the first run found one needed (a NumPy scalar for an array), or a
writer into the array its slot already holds: a call of it, or its body where the writer
carries it as source (``cpu_writers.Source``; the copy of a scalar on the line above), which
spares a Python call per kernel. It runs exactly the kernels the loop runs, on the same
arrays, in the same order.

Example:
    >>> from deeplearn.compile.program import Program, Ref
    >>> from deeplearn.math.ops.base import Spec
    >>> from deeplearn.math.ops.elementwise import Neg
    >>> p = Program(); x = p.bind("x", (2,), "float32")
    >>> y = p.add_step(Neg(), [Ref(x, None)], [Spec((2,))])[0]
    >>> run = straight_line(p.steps, [None], [True], np, math.engine.result)
    >>> slots = [np.array([1.0, -2.0], np.float32), None]
    >>> run(slots); slots[y]
    array([-1.,  2.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from deeplearn.math.backends.cpu_writers import source_of

if TYPE_CHECKING:
    from deeplearn.compile.program import Step

__all__ = ["straight_line"]


def straight_line(
    steps: Sequence[Step],
    kernels: Sequence[Any],
    final: Sequence[bool],
    xp: Any,
    result: Callable[..., Any],
    writers: Sequence[Callable[..., None] | None] | None = None,
    bound: Sequence[tuple[int, int]] | None = None,
) -> Callable[..., None]:
    """``run(slots)``: ``steps`` one after the other on ``slots``. A kernel of None is the op's
    own ``forward`` with the array module ``xp``, any other is called as ``kernel(op, *inputs)``;
    a result goes through ``result(op, y, inputs, spec)`` (the engine's check) unless ``final``
    says its kernel's single result needs none. A step given a ``writers`` entry ``write`` runs
    as ``write(*inputs, array)`` instead, into the array that its slot already holds (as the
    lines of its ``Source`` where it carries one). Given ``bound`` ((index, slot) pairs, maybe
    none), the function is ``run(slots, raws)`` and first puts each ``raws[index]`` in its
    slot."""
    lines = ["def run(slots):" if bound is None else "def run(slots, raws):"]
    lines += [f"    slots[{slot}] = raws[{i}]" for i, slot in bound or ()]
    namespace: dict[str, Any] = {"R": result, "xp": xp}
    for i, step in enumerate(steps):
        inputs = [
            f"slots[{s}]" if shape is None else f"slots[{s}].reshape({tuple(shape)!r})"
            for s, shape in step.inputs
        ]
        args = ", ".join(inputs)
        write = writers[i] if writers is not None else None
        if write is not None:
            source = source_of(write)
            if source is None:
                namespace[f"W{i}"] = write
                lines.append(f"    W{i}({args}, slots[{step.outputs[0]}])")
                continue
            names = {name: f"{name}_{i}" for name in source.names}  # (globals of this step's own)
            namespace.update({names[name]: value for name, value in source.names.items()})
            written = f"slots[{step.outputs[0]}]"
            lines += ["    " + line.format(*inputs, out=written, **names) for line in source.lines]
            continue
        namespace[f"O{i}"], namespace[f"S{i}"] = step.op, step.specs
        if kernels[i] is None:
            call = "O{i}.forward(xp, {a})"
        else:
            namespace[f"K{i}"] = kernels[i]
            call = "K{i}(O{i}, {a})"
        if len(step.outputs) == 1 and final[i]:
            lines.append(f"    slots[{step.outputs[0]}] = {call.format(i=i, a=args)}")
            continue
        lines.append(f"    r_ = ({args},)")
        lines.append(f"    y_ = {call.format(i=i, a='*r_')}")
        if len(step.outputs) == 1:
            lines.append(f"    slots[{step.outputs[0]}] = R(O{i}, y_, r_, S{i}[0])")
        for j, out in enumerate(step.outputs if len(step.outputs) > 1 else ()):
            lines.append(f"    slots[{out}] = R(O{i}, y_[{j}], r_, S{i}[{j}])")
    lines.append("    return None")
    exec(compile("\n".join(lines), "<deeplearn straight-line program>", "exec"), namespace)  # noqa: S102 - our own text
    return namespace["run"]  # type: ignore[no-any-return]
