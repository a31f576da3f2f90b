"""CPU kernels that write into an array they are given: what a compiled CPU step runs.

A compiled training step (``deeplearn/compile/cpu_step.py``) keeps one buffer per kernel result
and the variables in arrays of their own, so that a step allocates nothing and an optimizer's
update lands in the variable itself. For that a kernel must write where it is told: NumPy's
``out=``. ``writer(op, inputs, result)`` gives, for an op on inputs of known shapes and dtypes, a
function ``write(*arrays, out)`` that does (``out`` may be passed by position, as the
generated step does: cheaper), or None where the op has no such form here (then the step calls
the op's ordinary kernel and keeps what it returns).

A writer whose body is a line or two may carry it as source too (``Source``, read with
``source_of``): a generated step (``deeplearn/compile/straight.py``) then runs those lines in
place of a call of the writer, which on a small step's arrays costs about as much as the NumPy
call inside it.

Every writer computes what ``cpu_kernel`` computes for the op, in the same operations and order,
so the same bits: an element-wise op's ``ufunc`` with ``out=``, the kernels of ``cpu.py``
(relu, sum, the scaled add of an update) with ``out=``, a matrix product, the batch's gather
and a copy. ``tests/compile/test_cpu_step.py`` checks each against its kernel.

Example:
    >>> from deeplearn.math.ops.arithmetic import Multiply
    >>> from deeplearn.math.ops.base import Spec
    >>> write = writer(Multiply(), [Spec((2,)), Spec(())], Spec((2,)))
    >>> out = np.empty(2, np.float32)
    >>> _ = write(np.array([1, 2], np.float32), np.array(3, np.float32), out=out); out
    array([3., 6.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.backends.cpu import ZERO_BLOCK, cpu_kernel, relu_into, zero_block
from deeplearn.math.ops.arithmetic import Multiply, ScaledArrayAdd
from deeplearn.math.ops.base import Op, Spec
from deeplearn.math.ops.elementwise import Relu, Step
from deeplearn.math.ops.fused import Arg, Fused, Node
from deeplearn.math.ops.layout import Clone, Gather
from deeplearn.math.ops.linalg import TRANSPOSED, MatMul
from deeplearn.math.ops.costs import MeanSquaredCost
from deeplearn.math.ops.reduction import Mean, Sum, example_axes

__all__ = ["Scratch", "Source", "elementwise", "relu_derivative", "source_of", "writer"]

Writer = Callable[..., None]


class _Context(NamedTuple):
    """What ``writer`` passes every writer's maker besides the op and the shapes: which inputs
    need no check (``valid``) and where a temporary may go (``scratch``)."""

    valid: Sequence[bool]
    scratch: Scratch


_generic = cpu_kernel.dispatch(Op)


class Source(NamedTuple):
    """A writer's body as Python statements (see the module docstring): ``lines`` over ``{0}``,
    ``{1}``, ... (its inputs, as the caller writes them), ``{out}`` (the array it writes) and
    ``{name}`` for each of ``names`` (the objects the lines read, which the caller puts in the
    generated function's globals under names of its own). A line's leading spaces are its
    indentation relative to the first."""

    lines: tuple[str, ...]
    names: dict[str, Any]


def _with_source(write: Writer, *lines: str, **names: Any) -> Writer:
    """``write``, carrying its body as ``Source``: the same operations, in the same order."""
    write.source = Source(lines, names)  # type: ignore[attr-defined]
    return write


def source_of(write: Writer) -> Source | None:
    """The body of ``write`` as ``Source``, or None where it has none (then it is called)."""
    return getattr(write, "source", None)


class Scratch:
    """Memory for the temporaries of a step's writers, one array for all of them: they run one
    at a time, so each may use all of it, and what one leaves in cache the next one reuses
    (where each writer's own temporary would be memory of its own, cold by its next call).

    ``array(shape, dtype)``, called while the writers are made, returns a function giving a
    view of that shape, made on its first call, once every writer has said what it needs.

    Example:
        >>> scratch = Scratch()
        >>> small, large = scratch.array((2,), np.float32), scratch.array((3, 4), np.float32)
        >>> np.shares_memory(small(), large())
        True
    """

    def __init__(self) -> None:
        self._nbytes = 0
        self._buffer = np.empty(0, np.uint8)

    def array(self, shape: tuple[int, ...], dtype: Any) -> Callable[[], np.ndarray]:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._nbytes = max(self._nbytes, nbytes)
        view: np.ndarray | None = None

        def get() -> np.ndarray:
            nonlocal view
            if view is None:
                if self._buffer.nbytes < self._nbytes:
                    self._buffer = np.empty(self._nbytes, np.uint8)
                view = self._buffer[:nbytes].view(dtype).reshape(shape)
            return view

        return get


def writer(
    op: Op, inputs: Sequence[Spec], result: Spec, valid: Sequence[bool] = (), scratch: Scratch | None = None
) -> Writer | None:
    """``write(*arrays, out)`` for ``op`` on arrays of ``inputs``' shapes and dtypes into an
    array of ``result``'s, or None (see the module docstring). Only floating results are written:
    an integer or boolean result keeps the kernel's own dtype rules. ``valid`` says, per input,
    whether its values are known to be ones the op accepts (row indices a provider drew), so
    that the writer need not check them; ``scratch`` is where it may keep a temporary (shared
    with the step's other writers)."""
    dtype = np.dtype(result.dtype)
    # Every array input of the result's dtype (a gather's indices are int32 whatever it takes).
    arrays = inputs[:1] if type(op) is Gather else inputs
    if dtype.kind != "f" or any(np.dtype(s.dtype) != dtype for s in arrays):
        return None
    if op.ufunc is not None and cpu_kernel.dispatch(type(op)) is _generic:
        if np.broadcast_shapes(*(s.shape for s in inputs)) != result.shape:
            return None
        return getattr(np, op.ufunc)  # type: ignore[no-any-return]  # called as ufunc(*arrays, out)
    make = _WRITERS.get(type(op))
    return None if make is None else make(op, inputs, result, _Context(valid, scratch or Scratch()))


def elementwise(op: Op) -> bool:
    """Whether ``op``'s writer reads each element of its inputs only to write the same element
    of its result, so that its result may be written over one of its inputs."""
    return op.ufunc is not None or type(op) in (Relu, ScaledArrayAdd, Clone)


def _relu(op: Relu, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer:
    """cpu.py's relu: max(x, 0), NaN kept, against an array of zeros (``zero_block``: NumPy's
    faster loop), made once for the result's shape, or a block at a time for a larger one."""
    size = int(np.prod(result.shape, dtype=np.int64))
    if size > ZERO_BLOCK:
        return relu_into
    zeros = zero_block(result.dtype)[:size].reshape(result.shape)
    maximum = np.maximum

    def write(x: np.ndarray, out: np.ndarray) -> None:
        maximum(x, zeros, out=out)

    return _with_source(write, "{maximum}({0}, {zeros}, out={out})", maximum=maximum, zeros=zeros)


def _sum(op: Sum, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer:
    axes, keep_dims, dtype = op.axes(len(inputs[0].shape)), op.keep_dims, np.dtype(result.dtype)
    reduce = np.add.reduce  # cpu.py's _sum: np.add.reduce over the op's axes

    def write(x: np.ndarray, out: np.ndarray) -> None:
        reduce(x, axis=axes, dtype=dtype, keepdims=keep_dims, out=out)

    return _with_source(
        write,
        "{reduce}({0}, {axes}, {dtype}, {out}, {keep})",
        reduce=reduce,
        axes=axes,
        dtype=dtype,
        keep=keep_dims,
    )


def _mean_of(x_shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool) -> Writer | None:
    """``np.mean(x, axis=axes)`` of a float array into ``out``, with its bits: NumPy sums in
    the array's dtype, then divides by the count as an ``intp``, which makes the division a
    float64 one rounded to the result's dtype. None where a reduced axis is empty (0/0: the
    kernels' own NaN and warning rules)."""
    count = 1
    for a in axes:
        count *= x_shape[a]
    if count == 0:
        return None
    reduce, divide, n = np.add.reduce, np.true_divide, np.intp(count)

    def write(x: np.ndarray, out: np.ndarray) -> None:
        reduce(x, axis=axes, out=out, keepdims=keep_dims)
        divide(out, n, out=out, casting="unsafe")

    return _with_source(
        write,
        "{reduce}({0}, axis={axes}, out={out}, keepdims={keep})",
        "{divide}({out}, {n}, out={out}, casting='unsafe')",
        reduce=reduce,
        axes=axes,
        keep=keep_dims,
        divide=divide,
        n=n,
    )


def _mean(op: Mean, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer | None:
    """reduction.py's Mean of a float array (its ``np.mean``), into ``out``."""
    return _mean_of(inputs[0].shape, op.axes(len(inputs[0].shape)), op.keep_dims)


def _mean_squared_cost(
    op: MeanSquaredCost, inputs: Sequence[Spec], result: Spec, context: _Context
) -> Writer | None:
    """costs.py's mean of ½(x1 − x2)² per example of float inputs: the difference, ½ times it,
    times it again (``0.5 * d * d``), then ``np.mean`` over each example's axes, the
    temporaries in the step's scratch."""
    shape = np.broadcast_shapes(inputs[0].shape, inputs[1].shape)
    if shape != inputs[0].shape:
        return None
    mean = _mean_of(shape, example_axes(len(shape), op.example_rank), False)
    if mean is None:
        return None
    temporaries = context.scratch.array((2, *shape), result.dtype)  # d, and ½·d·d
    half = np.dtype(result.dtype).type(0.5)  # (0.5 * d: a Python float, taken as d's dtype)
    subtract, multiply = np.subtract, np.multiply

    def write(x1: np.ndarray, x2: np.ndarray, out: np.ndarray) -> None:
        pair = temporaries()
        d, square = pair[0, ...], pair[1, ...]  # (arrays, 0-d ones included)
        subtract(x1, x2, out=d)
        multiply(half, d, out=square)
        multiply(square, d, out=square)
        mean(square, out)

    return write


def _scaled_array_add(
    op: ScaledArrayAdd, inputs: Sequence[Spec], result: Spec, context: _Context
) -> Writer | None:
    """c1·a + c2·b. With c1 = 1 (every optimizer but Adadelta's and Adam's moments), cpu.py's
    kernel computes (c2·b) + a; here c2·b goes into a temporary of the result's shape first
    first, since the result is usually ``a`` itself (an update written into its variable)."""
    if inputs[1].shape != result.shape or inputs[3].shape != result.shape:
        return None
    multiply, add, copyto = np.multiply, np.add, np.copyto
    if all(spec.shape == () for spec in inputs):
        # A scalar variable's update: the same two float roundings on NumPy scalars, ~0.2 µs
        # where two ufunc calls on 0-d arrays cost ~0.8.
        def write_scalar(
            c1: np.ndarray, a: np.ndarray, c2: np.ndarray, b: np.ndarray, out: np.ndarray
        ) -> None:
            if c1.item() == 1:
                out[()] = c2[()] * b[()] + a[()]
            else:
                copyto(out, op.forward(np, c1, a, c2, b))

        return _with_source(
            write_scalar,
            "if {0}.item() == 1:",
            "    {out}[()] = {2}[()] * {3}[()] + {1}[()]",
            "else:",
            "    {copyto}({out}, {forward}({np}, {0}, {1}, {2}, {3}))",
            copyto=copyto,
            forward=op.forward,
            np=np,
        )
    size = result.size
    chunk = min(size, _CHUNK)
    temporary = context.scratch.array((chunk,), result.dtype)
    c2_shape = inputs[2].shape  # c1 and c2 have one value each: the op's shape rule

    def write(c1: np.ndarray, a: np.ndarray, c2: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        if c1.item() != 1:  # (NaN is not 1, as with the kernel's NumPy comparison)
            copyto(out, op.forward(np, c1, a, c2, b))
            return
        t, c = temporary(), c2 if c2_shape == () else c2.reshape(())
        if chunk == size:
            t = t.reshape(result.shape)
            multiply(c, b, out=t)
            add(t, a, out=out)
            return
        if not (a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous):
            add(multiply(c, b), a, out=out)  # (not a step's own arrays: not met in practice)
            return
        # A chunk at a time, its product in a temporary that stays in cache: a large
        # variable's update then reads and writes each array once from memory rather than
        # the product's array twice more (~0.7× the time for a 1.6 MB variable).
        a, b, out = a.reshape(-1), b.reshape(-1), out.reshape(-1)
        for start in range(0, size, chunk):
            end = min(start + chunk, size)
            part = t[: end - start]
            multiply(c, b[start:end], out=part)
            add(part, a[start:end], out=out[start:end])

    return write


_CHUNK = 1 << 16
"""Elements per chunk of a large update (256 KiB of float32: a temporary that stays in L2)."""


def _mat_mul(op: MatMul, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer:
    ta, tb = op.a_orientation == TRANSPOSED, op.b_orientation == TRANSPOSED
    matmul = np.matmul

    def write(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        matmul(a.T if ta else a, b.T if tb else b, out=out)

    line = "{matmul}({0}" + (".T" if ta else "") + ", {1}" + (".T" if tb else "") + ", out={out})"
    return _with_source(write, line, matmul=matmul)


def _gather(op: Gather, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer:
    """The rows of x at the indices, checked as the op's forward checks them unless the context
    says they are known to be in range. ``take`` into an array with mode="raise" would copy
    through a buffer first: the indices are in range by then, so "clip" takes the same rows
    straight into it."""
    forward = op.forward
    checked = not (len(context.valid) == 2 and context.valid[1])

    def write(x: np.ndarray, indices: np.ndarray, out: np.ndarray) -> None:
        if checked and indices.size and (int(indices.min()) < 0 or int(indices.max()) >= x.shape[0]):
            forward(np, x, indices)  # raises the op's own error
        x.take(indices, 0, out, "clip")

    return write if checked else _with_source(write, "{0}.take({1}, 0, {out}, 'clip')")


def relu_derivative(dy: Spec, x: Spec, dy_first: bool) -> Fused:
    """dy · step(x), relu's backward (``multiply(dy, step(x))``, or with the factors the other
    way round), as one Fused op: what a compiled CPU step runs in two passes and no temporary
    (``_relu_derivative``) where the two ops would take four passes and two arrays."""
    product = (Arg(0), Arg(2)) if dy_first else (Arg(2), Arg(0))
    spec = Spec(x.shape, x.dtype)
    return Fused(
        inputs=(dy, x), nodes=(Node(Step(), (Arg(1),), spec), Node(Multiply(), product, spec)), outputs=(3,)
    )


def _relu_derivative(op: Fused, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer | None:
    """The Fused op of ``relu_derivative``: x > 0 written as 1 or +0, then dy times it. That is
    ``step`` (CPU kernel: 1, +0, or NaN for NaN) times dy exactly wherever x is not NaN, the
    factors' order mattering for nothing but NaN payloads, which only dy can then carry. Where
    x holds a NaN (x·x is NaN) the two kernels run as they are."""
    dy_first = op.nodes[1].args[0] == Arg(0)
    if op != relu_derivative(inputs[0], inputs[1], dy_first):
        return None
    if not inputs[0].shape == inputs[1].shape == result.shape:
        return None
    zero = np.dtype(result.dtype).type(0)
    greater, multiply, isnan, dot = np.greater, np.multiply, np.isnan, np.dot
    step_kernel = cpu_kernel.dispatch(Step)

    def write(dy: np.ndarray, x: np.ndarray, out: np.ndarray) -> None:
        flat = x.reshape(-1)
        # x·x is NaN exactly when x holds a NaN (its terms are ≥ 0 or NaN: ±inf and overflow
        # give +inf, never NaN), and BLAS finds it sooner than a max reduction (0.28 against
        # 0.37 ms for the cnn's 1.6 M values on a 2-core CPU).
        if x.size and isnan(dot(flat, flat)):
            s = step_kernel(Step(), x)
            multiply(dy, s, out=out) if dy_first else multiply(s, dy, out=out)
            return
        greater(x, zero, out=out)
        multiply(dy, out, out=out)

    return write


def _clone(op: Clone, inputs: Sequence[Spec], result: Spec, context: _Context) -> Writer:
    if result.shape == ():

        def write_scalar(x: np.ndarray, out: np.ndarray) -> None:
            out[()] = x[()]

        return _with_source(write_scalar, "{out}[()] = {0}[()]")
    copyto = np.copyto

    def write(x: np.ndarray, out: np.ndarray) -> None:
        copyto(out, x)

    return _with_source(write, "{copyto}({out}, {0})", copyto=copyto)


_WRITERS: dict[type, Callable[[Any, Sequence[Spec], Spec, _Context], Writer | None]] = {
    Relu: _relu,
    Sum: _sum,
    ScaledArrayAdd: _scaled_array_add,
    MatMul: _mat_mul,
    Gather: _gather,
    Clone: _clone,
    Fused: _relu_derivative,
    Mean: _mean,
    MeanSquaredCost: _mean_squared_cost,
}
"""The ops whose CPU kernel has a form that writes into a given array, beyond the ufuncs."""
