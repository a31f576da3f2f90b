"""Eager gradients: ``math.gradients(f, x)`` and ``math.value_and_gradients(f, x)``.

deeplearn.js 0.3.16 added these as an experimental tape over eager ops. Here the tape is a
recorder on the Engine (the hook a Session uses to record its plans): while ``f`` runs, every op
is noted with its inputs and output; then the ops' own ``backward`` methods run in reverse
order. Gradients are keyed by storage, so they flow through ``reshape`` views, which share their
array's storage and run no op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from deeplearn.math.ndarray import NDArray
from deeplearn.math.scope import REGISTRY
from deeplearn.types import ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath
    from deeplearn.math.ops.base import Op

__all__ = ["value_and_gradients"]


class _Tape:
    """The ops one thread ran on an engine while ``f`` ran, in order."""

    def __init__(self) -> None:
        self.entries: list[tuple[Op, tuple[NDArray, ...], Any]] = []

    def on_op(self, op: Op, inputs: tuple[NDArray, ...], result: Any) -> None:
        self.entries.append((op, inputs, result))


def value_and_gradients(
    math: NDArrayMath, f: Callable[[], NDArray], x: NDArray | Mapping[str, NDArray]
) -> tuple[NDArray, Any]:
    """``(f(), d f()/d x)`` for a scalar ``f``; ``x`` is an NDArray or a ``{name: NDArray}``.

    Intermediate arrays are disposed; the value and the gradients survive into the caller's
    scope. An input ``f`` does not depend on gets a zero gradient.
    """
    where = "value_and_gradients"
    named = dict(x) if isinstance(x, Mapping) else {"": x}
    for name, v in named.items():
        if not isinstance(v, NDArray):
            raise TypeError(
                f"{where}: x must be an NDArray or a mapping of NDArrays; got {type(v).__name__} for {name!r}."
            )
        v._check_live(where)
    engine = math.engine
    tape = _Tape()
    if not engine.start_observing(tape):
        raise RuntimeError(f"{where}: another gradient tape or plan recording is running in this thread.")
    REGISTRY.start_scope()
    result: Any = None
    try:
        try:
            y = f()
        finally:
            engine.stop_observing(tape)
        if not isinstance(y, NDArray) or y.size != 1:
            shape = getattr(y, "shape", type(y).__name__)
            raise ShapeError(
                f"{where}: Cannot compute gradient of non-scalar y output; got y of shape {shape}."
            )
        grads = _backprop(math, tape, y)
        out = {name: _gradient_of(math, grads, v) for name, v in named.items()}
        result = (y, out[""] if not isinstance(x, Mapping) else out)
    finally:
        REGISTRY.end_scope(result)
    return result  # type: ignore[no-any-return]


def _backprop(math: NDArrayMath, tape: _Tape, y: NDArray) -> dict[int, NDArray]:
    grads: dict[int, NDArray] = {id(y.storage): NDArray.ones_like(y)}
    for op, inputs, out in reversed(tape.entries):
        if isinstance(out, tuple):
            continue  # multi-output ops (top_k) have no gradient
        dy = grads.get(id(out.storage))
        if dy is None:
            continue
        dxs = op.backward(math, dy.reshape(out.shape), *inputs, out)
        for inp, dx in zip(inputs, dxs, strict=True):
            if dx is None:
                continue
            key = id(inp.storage)
            previous = grads.get(key)
            grads[key] = dx if previous is None else math.add(previous.reshape(dx.shape), dx)
    return grads


def _gradient_of(math: NDArrayMath, grads: dict[int, NDArray], x: NDArray) -> NDArray:
    g = grads.get(id(x.storage))
    if g is None:
        return NDArray.zeros_like(x)
    return math.clone(g.reshape(x.shape))  # its own array: never an alias of an intermediate
