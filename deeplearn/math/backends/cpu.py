"""MathBackendCPU: NDArray data in host memory as NumPy arrays; kernels are the ops' generic
``forward`` run with ``xp = numpy``, plus overrides keyed by op class where a profile showed
the generic kernel to be the bottleneck (``scaled_array_add``: every optimizer update; ``relu``
and ``sum``: the host cost of an eager op, bench/overhead.py; conv2d, its derivatives and
pooling: the cnn benchmark's step)."""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import functools
from collections.abc import Iterator, Sequence
import importlib
import threading
import types
import typing
from typing import Any

import numpy as np

from deeplearn.math.backends.dispatch import KernelTable
from deeplearn.math.ops.arithmetic import Maximum, Minimum, ScaledArrayAdd
from deeplearn import util
from deeplearn.math.ops.base import Op, Spec
from deeplearn.math.ops.costs import SOFTMAX_CE_EPSILON, SoftmaxCrossEntropyCostDer
from deeplearn.math.ops.elementwise import Clip, LeakyRelu, Relu, Step
from deeplearn.math.ops.reduction import Sum
from deeplearn.math.ops.conv import Conv2D, Conv2DDerFilter, Conv2DDerInput, as_float, batch4, unbatched
from deeplearn.math.ops.conv_util import Conv2DInfo, PadInfo, crop, pad_input, taps
from deeplearn.math.ops.pool import MaxPool, MaxPoolBackprop, MinPool, PoolOp
from deeplearn.types import RawArray

__all__ = ["MathBackendCPU", "cpu_kernel"]

# NaN/inf are values here, as in deeplearn.js, so every kernel runs as in np.errstate(all=
# "ignore"). NumPy 2 keeps that state in a context variable, and entering and leaving an
# np.errstate around each kernel cost ~0.85 µs, setting and resetting the variable by hand
# ~0.3 µs (NumPy 2.4, 2-core Xeon). ``execute`` instead runs each kernel inside a context of its
# own (``contextvars.Context.run``, ~0.04 µs) in which the variable holds the caller's state
# with every error ignored, exactly what np.errstate(all="ignore") would have set: one context
# per thread (a context is entered by one thread at a time), made again when the caller's state
# changes (an np.errstate or np.setbufsize of theirs). Kernels read no other context variable.
# Where a NumPy lacks the variable, np.errstate itself.
_umath = importlib.import_module("numpy._core.umath")
_ERROR_STATE: Any = getattr(_umath, "_extobj_contextvar", None)
_make_error_state: Any = getattr(_umath, "_make_extobj", None)


class _KernelContext(threading.local):
    """Per thread: (the caller's error state it was made from, the context kernels run in)."""

    made: tuple[Any, contextvars.Context | None] = (object(), None)


_KERNEL_CONTEXT = _KernelContext()


def _kernel_context(caller_state: Any) -> contextvars.Context:
    """A context in which NumPy's error state is ``caller_state`` ignoring every error,
    remembered for this thread. A kernel that runs another through ``execute`` (none of ours
    does) gets a context of its own: inside one, the state is never the one it was made for,
    and a context cannot be entered twice."""
    context = contextvars.Context()
    context.run(_ERROR_STATE.set, _make_error_state(all="ignore"))  # made in the caller's state
    _KERNEL_CONTEXT.made = (caller_state, context)
    return context


def _call_ignoring_errors(f: Any, *args: Any) -> Any:
    """``f(*args)`` in this thread's kernel context (np.errstate where NumPy has no variable)."""
    if _ERROR_STATE is None:
        with np.errstate(all="ignore"):
            return f(*args)
    state = _ERROR_STATE.get()
    made_for, context = _KERNEL_CONTEXT.made
    if made_for is not state or context is None:
        context = _kernel_context(state)
    return context.run(f, *args)


@functools.singledispatch
def cpu_kernel(op: Op, *arrays: np.ndarray) -> Any:
    """Runs ``op`` on the CPU. Ops without a CPU-specific kernel use their generic forward."""
    return op.forward(np, *arrays)


@cpu_kernel.register
def _scaled_array_add(
    op: ScaledArrayAdd, c1: np.ndarray, a: np.ndarray, c2: np.ndarray, b: np.ndarray
) -> Any:
    """c1·a + c2·b; with c1 = 1 (SGD's, Momentum's, RMSProp's and Adagrad's updates, w + c·g)
    a pass and a temporary fewer. 1·a is a exactly (NaN, ±inf and -0 included), so the result
    is the generic kernel's bit for bit."""
    if a.dtype == b.dtype == c1.dtype == c2.dtype and a.dtype.kind == "f" and c1.reshape(()) == 1:
        y = c2.reshape(()) * b
        y += a
    else:
        y = op.forward(np, c1, a, c2, b)
    # A 0-d update (a scalar variable's) gives a NumPy scalar: an array, as the engine wants,
    # whichever branch ran (a recorded Program trusts the type its first run saw).
    return y if isinstance(y, np.ndarray) else np.asarray(y)


_ZEROS: dict[Any, Any] = {}
"""The NumPy scalar 0 of each dtype, made once."""

ZERO_BLOCK = 1 << 16
"""Elements in ``zero_block``'s arrays, and in a block of ``against_value`` (256 KiB of float32:
they stay in cache)."""

_ZERO_BLOCKS: dict[Any, np.ndarray] = {}


def zero_block(dtype: Any) -> np.ndarray:
    """``ZERO_BLOCK`` zeros of ``dtype``, read-only, made once: relu's second operand (see
    ``against_value``)."""
    block = _ZERO_BLOCKS.get(dtype)
    if block is None:
        block = np.zeros(ZERO_BLOCK, dtype)
        block.flags.writeable = False
        _ZERO_BLOCKS[dtype] = block  # (keyed as asked: a dtype, or its name)
    return block


def against_value(ufunc: Any, x: np.ndarray, value: Any, out: np.ndarray, value_first: bool = False) -> None:
    """``ufunc(x, value)`` (``np.maximum`` or ``np.minimum``; ``ufunc(value, x)`` with
    ``value_first``) into ``out``, of x's shape and dtype, with ``value`` a NumPy scalar of x's
    dtype that is not NaN. NumPy (2.4, x86) runs these of an array and a scalar without its SIMD
    loop, ~4.5× slower than of two arrays (80 against 18 µs for 64 K float32 on a 2-core AMD
    CPU), with the same bits (NaN payloads and -0 included): so the value goes in as an array,
    zeros from ``zero_block`` (a +0 value), else a block filled for this call, a block at a time
    past ``ZERO_BLOCK`` elements (where x or out is not C-ordered, as a scalar in one pass)."""
    size = x.size
    if value == 0 and (x.dtype.kind != "f" or not np.signbit(value)):  # (+0, not -0: its own block)
        values = zero_block(x.dtype)
    else:
        values = np.full(min(size, ZERO_BLOCK), value, x.dtype)
    if size <= ZERO_BLOCK:
        block = values[:size].reshape(x.shape)
        ufunc(block, x, out=out) if value_first else ufunc(x, block, out=out)
        return
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        ufunc(value, x, out=out) if value_first else ufunc(x, value, out=out)
        return
    flat, into = x.reshape(-1), out.reshape(-1)
    for start in range(0, size, ZERO_BLOCK):
        end = min(start + ZERO_BLOCK, size)
        part = values[: end - start]
        ufunc(part, flat[start:end], out=into[start:end]) if value_first else ufunc(
            flat[start:end], part, out=into[start:end]
        )


def relu_into(x: np.ndarray, out: np.ndarray) -> None:
    """max(x, 0) into ``out`` (of x's shape and dtype), the 0 as ``zero_block``'s zeros
    (``against_value``). The same bits as ``np.maximum(x, 0)``."""
    against_value(np.maximum, x, _zero(x.dtype), out)


_ZEROS_FROM = 2048
_VALUES_FROM = 8192
"""From these sizes on, maximum and minimum against one value run against an array of it
(``against_value``): zeros (relu) from 2,048 elements, any other value (maximum, minimum,
clip), whose block is filled per call, from 8,192. On fewer elements, making the view or the
block costs more than the scalar form's slower loop saves (maximum of 2,048 float32 and a
value: 15.9 µs a kernel call against 9.5, of 16,384: 20.9 against 44.3)."""


def _zero(dtype: Any) -> Any:
    zero = _ZEROS.get(dtype)
    if zero is None:
        zero = _ZEROS[dtype] = np.dtype(dtype).type(0)
    return zero


def _against_values(x: np.ndarray, least: int = _VALUES_FROM) -> bool:
    """Whether an op of ``x`` and one value takes ``against_value``'s form: from ``least``
    elements on, for a C-ordered array of native byte order."""
    return x.size >= least and x.flags.c_contiguous and x.dtype.isnative


@cpu_kernel.register
def _relu(op: Relu, x: np.ndarray) -> Any:
    """The generic kernel's ``maximum(x, 0)``, against an array of zeros from 2,048 elements on
    (``against_value``: NumPy's faster loop, same bits), and with the scalar zero made once
    (making ``x.dtype.type(0)`` on every call cost ~0.35 µs, most of a relu of 1024 floats)."""
    if _against_values(x, _ZEROS_FROM):
        out = np.empty(x.shape, x.dtype)
        relu_into(x, out)
        return out
    return np.maximum(x, _zero(x.dtype))


def _extremum(ufunc: Any, op: Op, a: np.ndarray, b: np.ndarray) -> Any:
    """``op``'s generic kernel (maximum or minimum of two arrays of one dtype), where one is a
    single value (not NaN) and the other large: against an array of that value
    (``against_value``), the same bits."""
    for big, one, first in ((a, b, False), (b, a, True)):
        if one.size == 1 and one.ndim <= big.ndim and one.dtype == big.dtype and _against_values(big):
            value = one.reshape(())[()]
            if value == value:  # (not NaN: with two NaNs, which one's bits the result keeps is the loop's)
                out = np.empty(big.shape, big.dtype)
                against_value(ufunc, big, value, out, value_first=first)
                return out
    return op.forward(np, a, b)


@cpu_kernel.register
def _maximum(op: Maximum, a: np.ndarray, b: np.ndarray) -> Any:
    return _extremum(np.maximum, op, a, b)


@cpu_kernel.register
def _minimum(op: Minimum, a: np.ndarray, b: np.ndarray) -> Any:
    return _extremum(np.minimum, op, a, b)


@cpu_kernel.register
def _clip(op: Clip, x: np.ndarray) -> Any:
    """The generic kernel's ``minimum(maximum(x, lo), hi)``, from 8,192 float elements on against
    arrays of the bounds (``against_value``), the same bits."""
    if x.dtype.kind != "f" or not _against_values(x):
        return op.forward(np, x)
    kind = x.dtype.type
    out = np.empty(x.shape, x.dtype)
    against_value(np.maximum, x, kind(op.min_value), out)
    against_value(np.minimum, out, kind(op.max_value), out)
    return out


@cpu_kernel.register
def _step(op: Step, x: np.ndarray) -> Any:
    """relu's derivative (alpha 0) of float32 as a comparison: x > 0 written as 1 or +0, then
    NaN where x is NaN, ~3× faster than the generic max(sign(x), 0) (whose values these are,
    bit for bit). Another alpha, of float32 or float64: ``_step_bits``. Other dtypes and 0-d
    arrays: the generic kernel."""
    if x.ndim == 0 or x.dtype not in _FLOATS:
        return op.forward(np, x)  # (a 0-d comparison would give a NumPy scalar)
    if op.alpha != 0:
        return _step_bits(x, op.alpha)
    if x.dtype != np.float32:
        return op.forward(np, x)
    y = np.greater(x, _F32_ZERO).astype(np.float32)
    nan = np.isnan(x)
    if nan.any():
        y[nan] = x[nan]
    return y


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_STEP_BITS: dict[tuple[Any, float], tuple[Any, int, int]] = {}
"""Per (dtype, alpha): the unsigned dtype of its bits, alpha's bits, 1's minus alpha's."""


def _step_bits(x: np.ndarray, alpha: float) -> np.ndarray:
    """The generic step(x, alpha) (1 where x > 0, alpha elsewhere, x where x is NaN, from two
    ``where``s) computed on the values' bits: (x > 0) as 0 or 1 times the difference of the bit
    patterns of 1 and alpha, plus alpha's, in unsigned integers (wrapping), then NaN's own
    bits. NumPy's ``where`` over values of mixed signs mispredicts half its branches: 515
    against ~64 µs on 64 K float32 (2-core AMD CPU)."""
    key = (x.dtype, alpha)
    constants = _STEP_BITS.get(key)
    if constants is None:
        if len(_STEP_BITS) >= 64:  # (many alphas: start over rather than grow)
            _STEP_BITS.clear()
        bits = np.dtype(f"u{x.dtype.itemsize}")
        low, high = np.array([alpha, 1], x.dtype).view(bits).tolist()
        constants = _STEP_BITS[key] = (bits, low, (high - low) % (1 << (8 * bits.itemsize)))
    bits, low, difference = constants
    y = np.greater(x, 0).astype(bits)
    y *= difference
    y += low
    nan = np.isnan(x)
    if nan.any():
        y[nan] = x.view(bits)[nan]
    return y.view(x.dtype)  # type: ignore[no-any-return]


@cpu_kernel.register
def _leaky_relu(op: LeakyRelu, x: np.ndarray) -> Any:
    """The generic ``where(x >= 0, x, alpha·x)``, for 0 < alpha < 1 as max(alpha·x, x) and for
    1 < alpha < inf as min(alpha·x, x), the same bits (alpha·x first: where x is NaN both give
    alpha·x's NaN); NumPy's ``where`` over values of mixed signs mispredicts half its
    branches (390 against 28 µs on 64 K float32). Other alphas (0 or below, 1, inf, NaN),
    other dtypes and 0-d arrays: the generic kernel."""
    alpha = op.alpha
    if x.ndim == 0 or x.dtype not in _FLOATS or not (0 < alpha < 1 or 1 < alpha < np.inf):
        return op.forward(np, x)
    scaled = x.dtype.type(alpha) * x
    return (np.maximum if alpha < 1 else np.minimum)(scaled, x, out=scaled)


_F32_ZERO = np.float32(0)


@cpu_kernel.register
def _sum(op: Sum, x: np.ndarray) -> Any:
    """``np.add.reduce``, which is what ``np.sum`` runs, without np.sum's Python wrapper
    (~1.1 µs of a 2 µs sum of 1024 floats). A sum over every axis goes into a 0-d array rather
    than becoming a NumPy scalar that the engine would have to convert."""
    axes = op.axes(x.ndim)
    dtype = np.int32 if x.dtype.kind in "biu" else x.dtype
    if x.ndim == 0 or (len(axes) == x.ndim and not op.keep_dims):
        return _add_reduce(x, axis=axes, dtype=dtype, keepdims=op.keep_dims, out=np.empty((), dtype))
    return _add_reduce(x, axis=axes, dtype=dtype, keepdims=op.keep_dims)


_add_reduce: Any = np.add.reduce


@cpu_kernel.register
def _softmax_cross_entropy_cost_der(
    op: SoftmaxCrossEntropyCostDer, x: np.ndarray, target: np.ndarray, dy: np.ndarray
) -> Any:
    """The generic kernel's operations in its order (so its bits), each written over a
    temporary that nothing reads again, and no final broadcast copies where x, target and
    the result already agree: half its allocations, a third less time on the mlp's [128, 10]
    logits. Any other dtypes or shapes run the generic kernel."""
    shape = x.shape
    if not (x.dtype == target.dtype == dy.dtype == np.float32 and target.shape == shape and x.ndim >= 1):
        return op.forward(np, x, target, dy)
    if x.shape[-1] < 1 or np.broadcast_shapes(shape, dy.shape) != shape:
        return op.forward(np, x, target, dy)
    m = _maximum_reduce(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, _F32_ZERO)  # the stabilising shift, 0 where not finite
    p = np.subtract(x, m)
    np.exp(p, out=p)
    np.divide(p, _add_reduce(p, axis=-1, keepdims=True), out=p)  # the softmax
    q = np.add(p, _F32_EPSILON)
    u = np.divide(target, q)
    s = _add_reduce(np.multiply(u, p), axis=-1, keepdims=True)
    np.subtract(s, u, out=u)
    np.multiply(p, u, out=u)
    np.multiply(u, dy, out=u)  # dx = (p·(s − u))·dy
    np.log(q, out=q)
    np.negative(q, out=q)
    np.multiply(q, dy, out=q)  # dtarget = −log(q)·dy
    return u, q


_maximum_reduce: Any = np.maximum.reduce
_F32_EPSILON = np.asarray(SOFTMAX_CE_EPSILON, np.float32)


_KERNELS = KernelTable(cpu_kernel)
"""``cpu_kernel``'s choice per op class, looked up once (``dispatch.py``)."""


_generic_kernel = cpu_kernel.dispatch(Op)


def _equal_fields_act_alike(op_class: type) -> bool:
    """Whether ops of ``op_class`` whose fields are equal always act alike: every field is
    declared of a type whose equal values are interchangeable (``_interchangeable``). Not so
    for a float field: ``0 == 0.0 == -0.0``, and -0.0 gives another zero.

    Example:
        >>> from deeplearn.math.ops.linalg import MatMul
        >>> from deeplearn.math.ops.random import OneHot
        >>> _equal_fields_act_alike(MatMul), _equal_fields_act_alike(OneHot)
        (True, False)
    """
    alike = _ALIKE.get(op_class)
    if alike is None:
        try:
            hints = typing.get_type_hints(op_class)
            alike = all(_interchangeable(hints[f.name]) for f in dataclasses.fields(op_class))
        except (TypeError, NameError, KeyError):  # not a dataclass, or a type it cannot resolve
            alike = False
        _ALIKE[op_class] = alike
    return alike


_ALIKE: dict[type, bool] = {}
"""``_equal_fields_act_alike``'s answers, by op class (it reads the class's annotations)."""


def _interchangeable(hint: Any) -> bool:
    """Whether equal values of the declared type ``hint`` are interchangeable: an int, a bool, a
    string, None, an enum, tuples and unions of them."""
    if hint in (int, bool, str, type(None)) or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return True
    if typing.get_origin(hint) in (tuple, typing.Union, types.UnionType):
        return all(arg is Ellipsis or _interchangeable(arg) for arg in typing.get_args(hint))
    return False


def _of_declared_kind(value: object) -> bool:
    """Whether a field's value is of a type ``_interchangeable`` accepts, or a tuple of such
    values (an op built with a float where its field is declared an int is bound to nothing)."""
    if type(value) is tuple:
        return all(_of_declared_kind(v) for v in value)
    return _interchangeable(type(value))


class MathBackendCPU:
    """Host memory and NumPy kernels."""

    name = "cpu"
    xp = np
    # A recorded Program runs as one generated function (deeplearn/compile/straight.py), the
    # ops this backend has no kernel of its own for as their forward with NumPy.
    straight_line = True
    generic_kernel = staticmethod(_generic_kernel)

    def execute(self, op: Op, *arrays: RawArray) -> Any:
        kernel = _KERNELS.get(type(op)) or _KERNELS.learn(type(op))
        if kernel is _generic_kernel:
            kernel, arrays = op.forward, (np, *arrays)  # what it does, without its call
        else:
            arrays = (op, *arrays)
        return _call_ignoring_errors(kernel, *arrays)

    kernel_table = _KERNELS
    """The kernels ``execute`` runs, by op class (an Engine watches it: ``direct_kernel``)."""

    def direct_kernel(self, op: Op, inputs: Sequence[Spec], result: Spec) -> tuple[Any, bool, bool] | None:
        """``(direct, with_op, fresh)``: what ``execute(op, *arrays)`` does on arrays of
        ``inputs``' shapes and dtypes, as ``direct(op, *arrays)`` (``with_op``) or
        ``direct(*arrays)``, for an Engine to call without the dispatch (~0.7 µs of an eager
        ``add``'s ~4 on a 2-core CPU, ~0.3 of a ``relu``'s). An op whose kernel is its
        ``ufunc`` (``Op.ufunc``: its generic kernel, on inputs that all have the result's
        floating dtype) gets the ufunc itself, any other its kernel; each in the
        floating-point-error context ``execute`` gives it; an op without a kernel of its own
        gets its ``forward`` bound to it and to NumPy. ``fresh``: the call returns a new
        C-ordered array of ``result``'s shape and dtype every time (``Known.fresh``), as a
        ufunc does on C-ordered arrays, but for a 0-d result (a NumPy scalar), and as an op
        whose forward makes a new array says (``Op.new_result``); a kernel may return a view
        of its input. None for a subclass with an ``execute`` of its own."""
        if type(self).execute is not MathBackendCPU.execute:
            return None
        kernel = _KERNELS.get(type(op)) or _KERNELS.learn(type(op))
        if kernel is not _generic_kernel:
            return functools.partial(_call_ignoring_errors, kernel), True, False
        name = op.ufunc
        if name is not None:
            if np.dtype(util.numpy_dtype(result.dtype)).kind == "f":
                if all(spec.dtype == result.dtype for spec in inputs):
                    ufunc = functools.partial(_call_ignoring_errors, getattr(np, name))
                    return ufunc, False, result.shape != ()
        if _equal_fields_act_alike(type(op)) and all(_of_declared_kind(v) for v in op.__dict__.values()):
            # The generic kernel is ``op.forward(np, ...)``: that call bound to this op, a Python
            # call fewer. (The Engine asks once for all ops equal to it, which must then act
            # alike: not so for equal floats, 0.0 and -0.0.)
            return functools.partial(_call_ignoring_errors, op.forward, np), False, op.new_result
        return functools.partial(_call_ignoring_errors, kernel), True, op.new_result

    def kernel_for(self, op: Op) -> Any:
        """The kernel ``execute`` would run for ``op``, called as ``kernel(op, *arrays)``, without
        the per-call floating-point guard: for callers that run many kernels inside one
        ``errors_ignored()`` block (a replayed Session plan)."""
        return cpu_kernel.dispatch(type(op))

    def errors_ignored(self) -> Any:
        """The floating-point guard ``execute`` puts around each kernel."""
        return np.errstate(all="ignore")

    call_ignoring_errors = staticmethod(_call_ignoring_errors)
    """``call_ignoring_errors(f, *args)``: ``f(*args)`` with every floating-point error ignored,
    in the context ``execute`` runs a kernel in (~0.1 µs, where ``errors_ignored()`` costs
    ~0.85): how a compiled step (``deeplearn/compile/cpu_step.py``) runs all of its kernels.
    The function itself, not a method calling it: a Python call fewer per step."""

    def asarray(self, values: Any, dtype: Any = None) -> np.ndarray:
        if hasattr(values, "__cuda_array_interface__") and hasattr(values, "get"):
            values = values.get()  # a CuPy array: copy to the host
        elif not isinstance(values, np.ndarray) and hasattr(values, "__dlpack__"):
            try:
                values = np.from_dlpack(values)
            except (RuntimeError, BufferError, TypeError):
                values = np.asarray(values)
        with np.errstate(all="ignore"):
            return np.asarray(values, dtype=dtype)

    def gather_rows(self, data: RawArray, rows: RawArray) -> RawArray:
        """``data[rows]`` along the first axis."""
        return np.take(data, rows, axis=0)

    def to_numpy(self, data: RawArray) -> np.ndarray:
        return np.asarray(data)

    def synchronize(self) -> None:
        return None

    def has_nan(self, data: RawArray) -> bool:
        return bool(data.dtype.kind == "f" and np.isnan(data).any())


# -- convolutions and pooling (issue 12) -------------------------------------------------------
#
# The generic kernels (im2col of the whole batch, then one matrix product; col2im by strided
# adds; pooling folded tap by tap) are right for CuPy but leave a 2-core CPU waiting on memory:
# the patches of the cnn benchmark's second convolution are 40 MB. Measured on its shapes
# (bench/RESULTS.md, "CPU convolutions (issue 12)"), these are faster: patches built a block of
# images at a time, sized to stay in cache, each block fed straight to the product; for a thin
# input, patches built tap by tap; with stride 1, the input gradient as the convolution of dy
# with the turned filter (no col2im); and pooling windows that tile the image (stride = window,
# the usual case) reduced through a reshaped view.

_PATCH_BLOCK_BYTES = 8 << 20
"""About how many bytes of im2col patches one block of images makes."""


def _block_images(info: Conv2DInfo, itemsize: int) -> int:
    """How many images of ``info``'s batch one block of patches holds (at least one)."""
    per_image = info.out_height * info.out_width * info.filter_height * info.filter_width
    per_image *= info.in_channels * itemsize
    return max(1, min(info.batch_size, _PATCH_BLOCK_BYTES // max(1, per_image)))


def _block_patches(padded: np.ndarray, info: Conv2DInfo, dtype: Any) -> Iterator[tuple[int, int, np.ndarray]]:
    """For each block of images [start, stop) of the padded input: (start, stop, its patches as a
    [rows, fH·fW·inDepth] matrix), built in one buffer that the next block reuses.

    Patches are copied window by window (``as_strided``), each a run of fW·inDepth values; where
    an output row is longer than that (a thin input, such as one channel), tap by tap instead,
    each tap a plane of outW-long runs, into the transposed layout [fH·fW·inDepth, rows]."""
    fh, fw, c = info.filter_height, info.filter_width, info.in_channels
    oh, ow, sh, sw = info.out_height, info.out_width, info.stride_height, info.stride_width
    step = _block_images(info, np.dtype(dtype).itemsize)
    k, rows = fh * fw * c, oh * ow
    buffer = np.empty(step * rows * k, dtype)
    by_tap = c * fw < ow
    # channels first, [c, b, H, W], so that a tap's plane is whole rows of the input
    planes = np.ascontiguousarray(padded.transpose(3, 0, 1, 2)) if by_tap else padded
    for start in range(0, info.batch_size, step):
        stop = min(start + step, info.batch_size)
        n = stop - start
        if by_tap:
            out = buffer[: n * rows * k].reshape(fh, fw, c, n, oh, ow)
            for i in range(fh):
                for j in range(fw):
                    out[i, j] = planes[
                        :, start:stop, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw
                    ]
            yield start, stop, out.reshape(k, n * rows).T
        else:
            out = buffer[: n * rows * k].reshape(n, oh, ow, fh, fw, c)
            sb, s_h, s_w, sc = padded.strides
            strides = (sb, s_h * sh, s_w * sw, s_h, s_w, sc)
            np.copyto(
                out, np.lib.stride_tricks.as_strided(padded[start:stop], out.shape, strides, writeable=False)
            )
            yield start, stop, out.reshape(n * rows, k)


def _float_inputs(*arrays: np.ndarray) -> tuple[list[np.ndarray], Any]:
    """The arrays as floats (integers as float32) and the dtype of their product."""
    floats = [as_float(np, a) for a in arrays]
    return floats, np.result_type(*floats)


def _correlate(padded: np.ndarray, w2: np.ndarray, info: Conv2DInfo) -> np.ndarray:
    """The convolution of ``info`` of an input padded already, with the filter as a
    [fH·fW·inDepth, outDepth] matrix: [b·outH·outW, outDepth], block by block."""
    rows = info.out_height * info.out_width
    y = np.empty((info.batch_size * rows, w2.shape[1]), w2.dtype)
    for start, stop, cols in _block_patches(padded, info, w2.dtype):
        np.matmul(cols, w2, out=y[start * rows : stop * rows])
    return y


@cpu_kernel.register
def _conv2d(op: Conv2D, x: np.ndarray, filter: np.ndarray) -> Any:
    """Patches of a block of images times the filter, block by block."""
    info = op.conv_info(x.shape, filter.shape)
    (x4, w), dtype = _float_inputs(batch4(x), filter)
    y = _correlate(pad_input(np, x4, info), w.reshape(-1, info.out_channels).astype(dtype, copy=False), info)
    return y.reshape(unbatched(info.out_shape, x.ndim))


@cpu_kernel.register
def _conv2d_der_filter(op: Conv2DDerFilter, x: np.ndarray, dy: np.ndarray) -> Any:
    """Σ over blocks of patchesᵀ · dy: the filter gradient accumulated block by block."""
    info = op.conv_info(x.shape, op.filter_shape)
    (x4, d), dtype = _float_inputs(batch4(x), batch4(dy))
    padded = pad_input(np, x4, info)
    d2 = d.reshape(-1, info.out_channels).astype(dtype, copy=False)
    rows = info.out_height * info.out_width
    dw = part = None
    for start, stop, cols in _block_patches(padded, info, dtype):
        if dw is None:
            dw = cols.T @ d2[start * rows : stop * rows]
            part = np.empty_like(dw)
        else:
            np.matmul(cols.T, d2[start * rows : stop * rows], out=part)
            dw += part
    assert dw is not None  # a batch has at least one image
    return dw.reshape(op.filter_shape)


def _transposed_info(info: Conv2DInfo) -> Conv2DInfo | None:
    """For a stride-1 convolution of ``info``: the convolution that computes its input gradient,
    dy padded so that the filter turned by 180° (with its depths swapped) slides over it giving
    the input's size; None when the forward padding exceeds fH - 1 or fW - 1 (a crop, not a pad)."""
    p = info.pad_info
    top, left = info.filter_height - 1 - p.top, info.filter_width - 1 - p.left
    bottom = info.in_height + info.filter_height - 1 - info.out_height - top
    right = info.in_width + info.filter_width - 1 - info.out_width - left
    if (info.stride_height, info.stride_width) != (1, 1) or min(top, left, bottom, right) < 0:
        return None
    return Conv2DInfo(
        info.batch_size,
        info.out_height,
        info.out_width,
        info.out_channels,
        info.in_height,
        info.in_width,
        info.in_channels,
        info.filter_height,
        info.filter_width,
        1,
        1,
        PadInfo(top, left, bottom, right),
    )


@cpu_kernel.register
def _conv2d_der_input(op: Conv2DDerInput, dy: np.ndarray, filter: np.ndarray) -> Any:
    """Stride 1: the convolution of dy, padded, with the filter turned by 180° and its depths
    swapped (patches of dy times one matrix, block by block). Other strides: dy · filterᵀ gives a
    block's patch gradients, which col2im adds into the padded input (one strided add per tap)."""
    info = op.conv_info(op.in_shape, filter.shape)
    (d, w), dtype = _float_inputs(batch4(dy), filter)
    transposed = _transposed_info(info)
    if transposed is not None:
        turned = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, info.in_channels).astype(dtype, copy=False)
        return _correlate(pad_input(np, d, transposed), turned, transposed).reshape(op.in_shape)
    wt = w.reshape(-1, info.out_channels).T.astype(dtype, copy=False)
    d2 = d.reshape(-1, info.out_channels)
    rows = info.out_height * info.out_width
    dx = np.zeros(info.padded_shape, dtype)
    step = _block_images(info, np.dtype(dtype).itemsize)
    buffer = np.empty((step, *info.window_shape[1:]), dtype)
    for start in range(0, info.batch_size, step):
        stop = min(start + step, info.batch_size)
        cols = buffer[: stop - start]
        np.matmul(d2[start * rows : stop * rows], wt, out=cols.reshape(-1, wt.shape[1]))
        for i, j, view in taps(dx[start:stop], info):
            view += cols[:, :, :, i, j, :]
    return crop(dx, info).reshape(op.in_shape)


def _tiles(padded: np.ndarray, info: Conv2DInfo) -> np.ndarray:
    """For a window that tiles the input (stride = window): the padded input as the view
    [b, outH, fH, outW, fW, c], window (r, s) at [:, r, :, s, :, :] (cells past the last whole
    window, which 'valid' leaves out, are dropped)."""
    fh, fw = info.filter_height, info.filter_width
    whole = padded[:, : info.out_height * fh, : info.out_width * fw, :]
    return whole.reshape(info.batch_size, info.out_height, fh, info.out_width, fw, info.in_channels)


def _tiled(op: PoolOp) -> bool:
    return tuple(op.strides) == tuple(op.filter_size)


def _fold_tiles(tiles: np.ndarray, combine: Any) -> np.ndarray:
    """``combine`` folded over each window of the tile view: first across, then down."""
    rows = tiles[:, :, :, :, 0, :]
    for j in range(1, tiles.shape[4]):
        rows = combine(rows, tiles[:, :, :, :, j, :])
    y = rows[:, :, 0]
    for i in range(1, tiles.shape[2]):
        y = combine(y, rows[:, :, i])
    # A 1x1 window folds nothing: y is a view of the input then.
    return y.copy() if tiles.shape[2] * tiles.shape[4] == 1 else np.ascontiguousarray(y)


def _pool_forward(op: PoolOp, x: np.ndarray, fill: float, combine: Any) -> Any:
    if not _tiled(op):
        return op.forward(np, x)
    info = op.pool_info(x.shape)
    y = _fold_tiles(_tiles(pad_input(np, as_float(np, batch4(x)), info, fill), info), combine)
    return y.reshape(unbatched(info.out_shape, x.ndim))


@cpu_kernel.register
def _max_pool(op: MaxPool, x: np.ndarray) -> Any:
    """Windows that tile the image: np.maximum over a reshaped view (NaN propagates)."""
    return _pool_forward(op, x, float("-inf"), np.maximum)


@cpu_kernel.register
def _min_pool(op: MinPool, x: np.ndarray) -> Any:
    return _pool_forward(op, x, float("inf"), np.minimum)


@cpu_kernel.register
def _max_pool_backprop(op: MaxPoolBackprop, dy: np.ndarray, x: np.ndarray) -> Any:
    """Windows that tile the image: each window's dy goes to its first cell equal to the
    window's largest value, NaN left out (what the generic kernel's running strict > finds);
    a window with nothing above -inf drops its dy. Overlapping windows: the generic kernel."""
    if not _tiled(op):
        return op.forward(np, dy, x)
    info = op.pool_info(x.shape)
    (d, x4), dtype = _float_inputs(batch4(dy), batch4(x))
    padded = pad_input(np, x4, info, float("-inf"))
    tiles = _tiles(padded, info)
    best = _fold_tiles(tiles, np.fmax)  # fmax: the largest value that is not NaN
    best[best == float("-inf")] = np.nan  # equal to nothing: the window's dy is dropped
    winner = tiles == best[:, :, None, :, None, :]
    fh, fw = info.filter_height, info.filter_width
    if fh * fw > 1:  # ties: only the first equal cell, in row-major order, wins
        found = np.zeros(best.shape, dtype=bool)
        for k in range(fh * fw):
            cell = winner[:, :, k // fw, :, k % fw, :]
            if k:
                cell &= ~found
            if k < fh * fw - 1:
                found |= cell
    # np.where(winner, dy, 0) without its slow broadcasting path: dy's bits times 1 or 0.
    bits = np.dtype(f"i{dtype.itemsize}")
    d = d.astype(dtype, copy=False).view(bits)[:, :, None, :, None, :]
    dx_tiles = np.multiply(d, winner, dtype=bits).view(dtype)
    whole = dx_tiles.reshape(info.batch_size, info.out_height * fh, info.out_width * fw, -1)
    if whole.shape == padded.shape and padded.shape == x4.shape:
        return whole.reshape(x.shape)
    dx = np.zeros(padded.shape, dtype)
    dx[:, : whole.shape[1], : whole.shape[2], :] = whole
    return crop(dx, info).reshape(x.shape)
