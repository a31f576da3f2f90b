"""The eager path's shortcuts (issue 13) give what the plain paths gave, and raise what they raised.

Each shortcut is checked against what it replaces: the engine's ``Known`` records (the shape
rule per op and input shapes, and the layout a kernel's output was seen to have), the ops made
once per argument (reductions, matrix orientations), the CPU backend's kernel lookup and its
floating-point context, its relu and sum kernels, safe mode checked by the engine, and the
registry's per-storage live tables.
"""

from __future__ import annotations

import gc
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, Array2D, MatrixOrientation, Scalar
from deeplearn.math.backends.cpu import cpu_kernel
from deeplearn.math.engine import SAFE_MODE_MESSAGE, Engine
from deeplearn.math.ops.base import OPS, Op, Spec, UnaryOp
from deeplearn.math.ops.arithmetic import Add, Maximum, Minimum, ScaledArrayAdd
from deeplearn.math.ops.elementwise import Clip, LeakyRelu, Relu, Step
from deeplearn.math.ops.linalg import MatMul
from deeplearn.math.ops.random import OneHot
from deeplearn.math.ops.reduction import Sum
from deeplearn.types import RawArray, ShapeError

REGULAR, TRANSPOSED = MatrixOrientation.REGULAR, MatrixOrientation.TRANSPOSED


# -- the engine's Known records ------------------------------------------------------------------


def test_ops_that_differ_only_in_their_fields_are_not_confused(math: dl.NDArrayMath) -> None:
    a = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    b = Array2D.new([2, 3], [1, 0, 2, 4, 3, 0])
    for _ in range(2):  # the second time from the engine's records
        assert math.mat_mul(a, b, REGULAR, TRANSPOSED).get_values().tolist() == [7, 10, 16, 31]
        assert math.mat_mul(a, b, TRANSPOSED, REGULAR).shape == (3, 3)
        np.testing.assert_array_equal(math.sum(a, 0).get_values(), [5, 7, 9])
        np.testing.assert_array_equal(math.sum(a, 1).get_values(), [6, 15])
        assert math.sum(a, 1, True).shape == (2, 1)
        assert math.sum(a).shape == ()


def test_an_array_over_all_of_its_storage_holds_the_storages_shape_tuple(math: dl.NDArrayMath) -> None:
    """What lets the engine pass an input's data without comparing shapes (``Storage.shape``):
    an array made whole, by a factory or an op, holds its storage's very tuple; a view of
    another shape does not, and ops on views still see their own shape."""
    a = Array2D.new([2, 3], np.arange(6), math=math)
    y = math.add(a, a)
    assert a.shape is a.storage.shape and y.shape is y.storage.shape
    assert y.storage.shape == tuple(y.storage.data.shape)
    v = y.reshape([3, 2])  # the same storage under another shape
    assert v.shape == (3, 2) and v.shape is not v.storage.shape
    want = np.arange(6, dtype=np.float32).reshape(3, 2) * 4
    np.testing.assert_array_equal(math.add(v, v).numpy(), want)
    np.testing.assert_array_equal(math.relu(v).numpy(), want / 2)
    back = v.reshape([2, 3])  # whole again, through a view: NDArray() gives it the storage's tuple
    np.testing.assert_array_equal(math.multiply(back, y).numpy(), (want / 2).reshape(2, 3) ** 2)


def test_a_remembered_rule_still_raises_for_other_shapes(math: dl.NDArrayMath) -> None:
    good, other = Array2D.new([2, 3], [0] * 6), Array2D.new([3, 2], [0] * 6)
    math.mat_mul(good, other).dispose()
    expected = ""
    try:
        MatMul().infer(good.spec, good.spec)
    except ShapeError as e:
        expected = str(e)
    for _ in range(2):
        with pytest.raises(ShapeError) as info:
            math.mat_mul(good, good)
        assert str(info.value) == expected  # the shape rule's own message, every time
    math.add(Array1D.new([1, 2]), Array1D.new([3, 4])).dispose()
    for _ in range(2):
        with pytest.raises(ShapeError, match="could not be broadcast"):
            math.add(Array1D.new([1, 2]), Array1D.new([1, 2, 3]))


def test_dtypes_are_part_of_the_question(math: dl.NDArrayMath) -> None:
    floats, ints = Array1D.new([1, 2]), Array1D.new([1, 2], "int32")
    assert math.add(floats, floats).dtype == "float32"
    assert math.add(ints, ints).dtype == "int32"
    assert math.sum(Array1D.new([True, True], "bool")).dtype == "int32"
    assert math.sum(Array1D.new([True, True], "bool")).get() == 2


@dataclass(frozen=True)
class _Layout(Op, abstract=True):
    """A test op whose kernel hands back a fresh array: C-ordered or not (``order``), or the
    very input (``order == "same"``)."""

    order: str
    name = "layout"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        if self.order == "same":
            return x
        return xp.array(x + 1, order=self.order)


@pytest.mark.parametrize("order", ["C", "F"])
def test_results_are_c_ordered_and_their_own_on_every_call(math: dl.NDArrayMath, order: str) -> None:
    x = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    for _ in range(3):
        y = math.engine.run(_Layout(order), x)
        assert y.raw.flags.c_contiguous
        np.testing.assert_array_equal(y.get_values(), [2, 3, 4, 5, 6, 7])


def test_a_kernel_returning_its_input_is_copied_on_every_call(math: dl.NDArrayMath) -> None:
    x = Array1D.new([1, 2, 3])
    for _ in range(3):
        y = math.engine.run(_Layout("same"), x)
        y.set(10, 0)
        assert x.get(0) == 1.0 and y.get(0) == 10.0


def test_debug_and_keep_float64_take_the_careful_path(cpu_math: dl.NDArrayMath) -> None:
    x = Array1D.new([1.0, float("nan")])
    cpu_math.relu(x).dispose()  # remembered: the next calls must still look at the values
    cpu_math.enable_debug_mode()
    try:
        with pytest.raises(ValueError, match=r"math\.relu has NaNs"):
            cpu_math.relu(x)
    finally:
        cpu_math.disable_debug_mode()
    assert not cpu_math.engine.debug
    cpu_math.relu(x).dispose()
    wide = dl.NDArray._wrap(np.array([1.5, -2.0]), cpu_math.backend, "float32")
    assert cpu_math.relu(wide).raw.dtype == np.float32
    cpu_math.engine.keep_float64 = True
    try:
        assert cpu_math.relu(wide).raw.dtype == np.float64
    finally:
        cpu_math.engine.keep_float64 = False
    assert cpu_math.relu(wide).raw.dtype == np.float32


# -- ops made once per argument ------------------------------------------------------------------


def test_reduction_arguments_are_checked_whatever_was_made_before(math: dl.NDArrayMath) -> None:
    x = Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    math.sum(x, 1).dispose()
    math.sum(x, 1, True).dispose()
    with pytest.raises(ValueError, match="axis must be None, an integer"):
        math.sum(x, 1.0)  # type: ignore[arg-type]  # equal to 1, and still refused
    with pytest.raises(ValueError, match="axis must be None, an integer"):
        math.sum(x, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_dims must be True or False"):
        math.sum(x, 1, "no")  # type: ignore[arg-type]
    assert math.sum(x, 1, 1).shape == (2, 1)  # type: ignore[arg-type]  # 1 means True
    assert math.sum(x, np.int64(1)).shape == (2,)  # type: ignore[arg-type]
    assert math.sum(x, [0, 1]).shape == ()
    with pytest.raises(ShapeError, match="axis must be in"):
        math.sum(x, 5)


def test_matrix_orientations_take_their_values_or_refuse(math: dl.NDArrayMath) -> None:
    op = MatMul(0, 1)  # type: ignore[arg-type]
    assert op.a_orientation is REGULAR and op.b_orientation is TRANSPOSED
    assert MatMul(0, 1) == MatMul(REGULAR, TRANSPOSED)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="b_orientation must be"):
        MatMul(REGULAR, True)  # type: ignore[arg-type]
    a = Array2D.new([2, 2], [1, 2, 3, 4])
    np.testing.assert_array_equal(math.mat_mul(a, a, 0, 1).get_values(), [5, 11, 11, 25])  # type: ignore[arg-type]


# -- the CPU backend -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReadsState(Op, abstract=True):
    """A test op whose CPU kernel reports NumPy's error state and buffer size as it ran."""

    name = "reads_state"

    def infer(self, x: Spec) -> Spec:
        return Spec((5,), "int32")

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        state = np.geterr()
        ignored = [state[k] == "ignore" for k in ("divide", "over", "under", "invalid")]
        return np.array([*ignored, np.getbufsize()], dtype=np.int32)


def test_kernels_run_with_every_error_ignored_and_the_callers_buffer_size(cpu_math: dl.NDArrayMath) -> None:
    x = Scalar.new(0)
    before = np.geterr()
    assert cpu_math.engine.run(_ReadsState(), x).get_values().tolist() == [1, 1, 1, 1, np.getbufsize()]
    old = np.setbufsize(16384)
    try:
        with np.errstate(all="raise"):
            assert cpu_math.engine.run(_ReadsState(), x).get_values().tolist() == [1, 1, 1, 1, 16384]
            assert np.geterr()["over"] == "raise"  # the caller's state is theirs again
    finally:
        np.setbufsize(old)
    assert cpu_math.engine.run(_ReadsState(), x).get_values()[-1] == old
    assert np.geterr() == before


def test_nan_and_inf_are_values_without_warnings_or_errors(cpu_math: dl.NDArrayMath) -> None:
    big, zero = Array1D.new([3e38, -3e38]), Array1D.new([0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            assert np.isinf(cpu_math.add(big, big).get_values()).all()
            assert np.isnan(cpu_math.divide(zero, zero).get_values()).all()
            assert np.isnan(cpu_math.sum(Array1D.new([3e38, 3e38, -np.inf])).get())


@dataclass(frozen=True)
class _Fails(Op, abstract=True):
    name = "fails"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        raise RuntimeError("the kernel failed")


def test_a_failing_kernel_leaves_the_callers_state_and_later_ops_alone(cpu_math: dl.NDArrayMath) -> None:
    before = np.geterr()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="the kernel failed"):
            cpu_math.engine.run(_Fails(), Array1D.new([1.0]))
    assert np.geterr() == before
    assert cpu_math.add(Array1D.new([1.0]), Array1D.new([2.0])).get(0) == 3.0


def test_ops_in_many_threads_at_once(cpu_math: dl.NDArrayMath) -> None:
    errors: list[BaseException] = []
    base = cpu_math.get_num_arrays()

    def work(seed: int) -> None:
        try:
            rng = np.random.default_rng(seed)
            for _ in range(200):
                values = rng.standard_normal(16).astype(np.float32)
                with cpu_math.scope():
                    x = Array1D.new(values)
                    y = cpu_math.sum(cpu_math.relu(cpu_math.add(x, x)))
                    assert y.get() == pytest.approx(float(np.maximum(values + values, 0).sum()), rel=1e-5)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert cpu_math.get_num_arrays() == base


@dataclass(frozen=True)
class _Overridden(Op, abstract=True):
    name = "overridden"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return x + 1


def test_a_kernel_registered_after_an_op_ran_is_used(math: dl.NDArrayMath) -> None:
    """The backend remembers each op class's kernel (dispatch.KernelTable); registering one
    later makes it forget, on either backend."""
    if math.backend.name == "cpu":
        kernels: Any = cpu_kernel
    else:
        from deeplearn.math.backends.cuda import cuda_kernel as kernels
    x = Array1D.new([1.0], math=math)
    assert math.engine.run(_Overridden(), x).get(0) == 2.0  # the generic kernel, looked up

    @kernels.register(_Overridden)  # (each backend's dispatcher is its own)
    def _times_ten(op: Any, a: Any) -> Any:
        return a * 10

    assert math.engine.run(_Overridden(), x).get(0) == 10.0


@dataclass(frozen=True)
class _Negated(UnaryOp, abstract=True):
    """An op whose kernel is a ufunc and a C expression: one each backend runs directly."""

    name = "negated"
    c_expr = "y = -x"
    ufunc = "negative"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        return xp.negative(x)


def test_a_kernel_registered_after_a_direct_kernel_was_learnt_is_used(math: dl.NDArrayMath) -> None:
    """The engine calls an op's kernel without the backend's dispatch once it has learnt it
    (``direct_kernel``); registering a kernel for the op's class makes it forget."""
    if math.backend.name == "cpu":
        kernels: Any = cpu_kernel
    else:
        from deeplearn.math.backends.cuda import cuda_kernel as kernels
    x = Array1D.new([1.0], math=math)
    assert math.engine.run(_Negated(), x).get(0) == -1.0
    (known,) = [k for _, _, k in math.engine.learnt(_Negated)]
    assert known.direct is not None and not known.direct_op  # learnt: the ufunc, the C kernel

    @kernels.register(_Negated)
    def _times_ten(op: Any, a: Any) -> Any:
        return a * 10

    assert math.engine.run(_Negated(), x).get(0) == 10.0


_DIRECT_CASES = [
    ("add", [(3, 4), (3, 4)]),
    ("subtract", [(3, 4), (4,)]),  # broadcast, as the op's forward broadcasts
    ("multiply", [(1, 4), (3, 1)]),
    ("divide", [(3, 4), ()]),
    ("exp", [(5,)]),
    ("log", [(2, 3)]),
    ("neg", [(4,)]),
    ("square", [(4,)]),
    ("tanh", [(4,)]),
    ("sqrt", [(3,)]),
]


@pytest.mark.parametrize(("method", "shapes"), _DIRECT_CASES)
def test_direct_kernels_give_the_dispatched_kernels_bits(
    math: dl.NDArrayMath, method: str, shapes: list[tuple[int, ...]]
) -> None:
    """An op the engine runs directly (its ufunc, its generated CUDA kernel) gives what
    ``backend.execute`` gives, bit for bit, NaN, ±inf and −0 included; and it is run directly
    (so that this test compares two paths)."""
    dtype = "float32"  # (float64 data is the gradient checks', under float32 specs: not direct)
    rng = np.random.default_rng(7)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-38, -3.5], dtype)
    raws = []
    for shape in shapes:
        values = rng.normal(size=shape).astype(dtype)
        flat = values.reshape(-1)
        flat[: min(flat.size, specials.size)] = specials[: flat.size]
        raws.append(values)
    xs = [dl.NDArray._wrap(math.backend.asarray(r), math.backend, dtype) for r in raws]  # type: ignore[arg-type]
    with math.scope():
        y = getattr(math, method)(*xs)
        op_class = next(c for c in OPS if c.name == method and math.engine.learnt(c))
        ((_, _, known),) = math.engine.learnt(op_class)
        assert known.direct is not None and not known.direct_op  # (the ufunc, the C kernel)
        expected = math.backend.to_numpy(math.backend.execute(op_class(), *[x.raw for x in xs]))
        got = y.numpy()
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8))


def test_direct_kernels_of_mixed_dtypes_and_careful_engines(cpu_math: dl.NDArrayMath) -> None:
    """int32 with float32 (promoted by the op's forward) runs the dispatched kernel, not the
    ufunc; an engine in debug mode or keeping float64 goes through ``execute``; switching
    either mode forgets what was learnt."""
    engine = cpu_math.engine
    f = Array1D.new([1.0, 2.0])
    i = Array1D.new([1, 2], "int32")
    assert cpu_math.add(f, i).get_values().tolist() == [2.0, 4.0]
    cpu_math.add(f, f).dispose()
    learnt = {inputs: k for _, inputs, k in engine.learnt(Add)}
    mixed, same = learnt[((2,), "float32", (2,), "int32")], learnt[((2,), "float32", (2,), "float32")]
    assert same.direct.args == (np.add,)  # the ufunc alone
    # the generic kernel execute would run: the op's forward, with NumPy
    assert mixed.direct.args[0].__func__ is Add.forward and mixed.direct.args[1] is np
    engine.keep_float64 = True
    try:
        assert not engine._known
        wide = dl.NDArray._wrap(np.array([1.5, -2.0]), cpu_math.backend, "float32")
        assert cpu_math.add(wide, wide).raw.dtype == np.float64
        assert all(k.direct is None for k in engine._known.values())
    finally:
        engine.keep_float64 = False
    assert not engine._known
    cpu_math.enable_debug_mode()
    try:
        with pytest.raises(ValueError, match=r"math\.add has NaNs"):
            cpu_math.add(Array1D.new([float("nan")]), Array1D.new([1.0]))
    finally:
        cpu_math.disable_debug_mode()


def test_generic_kernels_are_bound_to_their_op_only_where_equal_fields_act_alike(
    cpu_math: dl.NDArrayMath,
) -> None:
    """The CPU engine calls an op of no kernel of its own as ``op.forward`` bound to the first op
    it met (MatMul's orientations), but not where equal fields may act differently: one_hot's
    off_value -0.0 equals 0.0, and each gives its own sign of zero."""
    a = Array2D.new([2, 2], [1, 2, 3, 4])
    for _ in range(2):
        assert cpu_math.mat_mul(a, a, REGULAR, TRANSPOSED).get_values().tolist() == [5, 11, 11, 25]
    ((_, _, known),) = cpu_math.engine.learnt(MatMul)
    assert not known.direct_op and known.fresh  # the bound forward, trusted to make new arrays
    indices = Array1D.new([1, 0], "int32")
    for off in (0.0, -0.0, 0.0, -0.0):
        values = cpu_math.one_hot(indices, 2, 1.0, off).get_values()
        assert np.signbit(values).tolist() == [np.signbit(off), False, False, np.signbit(off)]
    # An op built by hand with an int where a float is declared, first (on an engine that has
    # met no one_hot): the next op, equal to it, still gets its own -0.0 (its fields' declared
    # types, not the first op's values, decide).
    engine = dl.NDArrayMathCPU().engine
    engine.run(OneHot(2, 1, 0), indices).dispose()
    values = engine.run(OneHot(2, 1.0, -0.0), indices).get_values()
    assert np.signbit(values).tolist() == [True, False, False, True]


_FRESH_CASES = [
    # (method, input shapes, fresh on the CPU, fresh on CUDA)
    ("add", [(3, 4), (3, 4)], True, True),
    ("multiply", [(1, 4), (3, 1)], True, True),  # broadcast
    ("exp", [(5,)], True, True),
    ("add", [(), ()], False, True),  # NumPy's ufunc gives a scalar for 0-d arrays; CuPy an array
    ("sum", [(6, 4)], False, True),  # the CPU's kernel, which any op's kernel may be; CUDA's launch
    ("mat_mul", [(3, 5), (5, 2)], True, True),  # (Op.new_result: its forward's)
    ("transpose", [(3, 5)], True, True),
    ("clone", [(3, 5)], True, False),  # (CUDA: Op.new_result not trusted yet)
    ("concat", [(2, 5), (3, 5)], True, False),
    (("slice", (0, 0), (3, 5)), [(3, 5)], True, False),  # (method, its other arguments): all of x
    (("tile", (1, 1)), [(3, 5)], True, False),  # reps of ones: still a copy
    (("tile", (2, 1)), [(3, 5)], True, False),
]


@pytest.mark.parametrize(("call", "shapes", "on_cpu", "on_cuda"), _FRESH_CASES)
def test_results_of_fresh_direct_kernels_are_looked_at_once_and_own_their_memory(
    math: dl.NDArrayMath, call: Any, shapes: list[tuple[int, ...]], on_cpu: bool, on_cuda: bool
) -> None:
    """A direct kernel the backend says returns a new array every time (``Known.fresh``) has
    its first result checked as any other, and none after: later calls look at nothing (here,
    at no dtype, which would send them to ``Engine.result``). Their results are still C-ordered arrays of the rule's shape and dtype
    that share no memory with the inputs or with each other."""
    engine = math.engine
    method, *more = (call,) if isinstance(call, str) else call
    rng = np.random.default_rng(3)
    raws = [math.backend.asarray(rng.normal(size=s).astype("float32")) for s in shapes]
    xs = [dl.NDArray._wrap(r, math.backend, "float32") for r in raws]  # type: ignore[arg-type]
    expected = getattr(math, method)(*xs, *more).numpy()  # the first call: checked by Engine.result
    (known,) = [k for c in OPS if c.name == method for _, _, k in engine.learnt(c) if k.direct is not None]
    fresh = on_cpu if math.backend.name == "cpu" else on_cuda
    assert known.fresh is fresh and (known.checked or not fresh)
    # (no dtype is None: a call that looks at its result's dtype now hands it to Engine.result)
    known.numpy_dtype = None

    looked: list[str] = []
    checked = engine.result

    def result(op: Op, *args: Any) -> Any:
        looked.append(op.name)
        return checked(op, *args)

    engine.result = result  # type: ignore[method-assign]
    try:
        ys = [getattr(math, method)(*xs, *more) for _ in range(2)]
    finally:
        del engine.result
    assert looked == ([] if fresh else [method, method])
    inputs = [x.numpy().copy() for x in xs]
    for y in ys:
        raw = y.raw
        assert raw.flags.c_contiguous and raw.shape == expected.shape and raw.dtype == np.float32
        np.testing.assert_array_equal(math.backend.to_numpy(raw), expected)
    ys[0].fill(7.0)  # its own memory: nothing else changes
    assert np.all(ys[0].numpy() == 7.0)
    np.testing.assert_array_equal(ys[1].numpy(), expected)
    for x, before in zip(xs, inputs, strict=True):
        np.testing.assert_array_equal(x.numpy(), before)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bool"])
def test_cpu_relu_and_sum_are_the_generic_kernels_bit_for_bit(dtype: str) -> None:
    rng = np.random.default_rng(1)
    for shape in [(), (7,), (3, 4), (2, 3, 4), (0, 3)]:
        x = (rng.standard_normal(shape) * 100).astype(dtype)
        if dtype.startswith("float") and x.size:
            x.flat[0] = np.nan
        want, got = Relu().forward(np, x), cpu_kernel(Relu(), x)
        assert want.dtype == got.dtype and np.array_equal(want, got, equal_nan=dtype.startswith("float"))
        axes: list[Any] = (
            [None, (0,), (-1,), (0, 1)] if len(shape) >= 2 else [None, (0,)] if shape else [None]
        )
        for axis in axes:
            for keep_dims in (False, True):
                op = Sum(axis, keep_dims)
                want, got = np.asarray(op.forward(np, x)), cpu_kernel(op, x)
                assert isinstance(got, np.ndarray)
                assert want.dtype == got.dtype and want.shape == got.shape
                assert np.array_equal(want, got, equal_nan=dtype.startswith("float"))


def _same_bits(want: np.ndarray, got: np.ndarray) -> None:
    assert want.dtype == got.dtype and want.shape == got.shape and got.flags.c_contiguous
    width = np.dtype(f"u{want.dtype.itemsize}")
    assert np.array_equal(np.ascontiguousarray(want).view(width), got.view(width))


def _specials(shape: tuple[int, ...], dtype: str, seed: int) -> np.ndarray:
    """Random values of ``shape`` with, for floats, NaN (payloads too), ±0, ±inf and subnormals."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
    if dtype.startswith("float"):
        flat = x.reshape(-1)
        flat[:7] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-45, -1e-45]
        if dtype == "float32" and flat.size > 103:
            flat[100:103] = np.array([0x7FC00001, 0xFFC00002, 0x7F800001], np.uint32).view(np.float32)
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_cpu_relu_against_zero_arrays_keeps_the_generic_bits(dtype: str) -> None:
    """From 2048 elements on, relu's maximum runs against an array of zeros (a block at a time
    past 65,536), not the scalar 0: the same bits, NaN payloads and -0 included, strided
    inputs too."""
    for shape in [(2047,), (2048,), (3, 1000), (65536,), (70000,), (2, 65537), (5, 40000)]:
        x = _specials(shape, dtype, 2)
        flat = x.reshape(-1)
        flat[-7:] = flat[:7]  # (the specials in the last block too)
        for value in (x, x[..., ::2]):  # (a strided view: the scalar form)
            _same_bits(Relu().forward(np, value), cpu_kernel(Relu(), value))


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_cpu_maximum_minimum_and_clip_against_one_value_keep_the_generic_bits(dtype: str) -> None:
    """maximum and minimum of a large array and one value (either side, any rank of size one)
    and clip run against an array of that value: the generic kernels' bits, a NaN value and
    small arrays the generic way."""
    for shape in [(100,), (2048,), (3, 1000), (70000,), (2, 65537)]:
        x = _specials(shape, dtype, 3)
        values = [0.0, -0.0, 1.5, -3.25, np.inf, np.nan] if dtype != "int32" else [0, 7, -3]
        for value in values:
            for one in (np.asarray(value, dtype), np.full((1,) * len(shape), value, dtype)):
                for op in (Maximum(), Minimum()):
                    _same_bits(op.forward(np, x, one), cpu_kernel(op, x, one))
                    _same_bits(op.forward(np, one, x), cpu_kernel(op, one, x))
        if dtype != "int32":
            for lo, hi in [(-1.0, 1.0), (0.0, np.inf), (-np.inf, -0.0), (2.0, 2.0)]:
                _same_bits(Clip(lo, hi).forward(np, x), cpu_kernel(Clip(lo, hi), x))
    x = _specials((5000,), dtype, 4)
    _same_bits(Maximum().forward(np, x[::2], x[:1]), cpu_kernel(Maximum(), x[::2], x[:1]))  # strided


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cpu_step_and_leaky_relu_of_any_alpha_keep_the_generic_bits(dtype: str) -> None:
    """step(x, alpha) computed on the values' bits and leaky_relu as max or min of alpha·x and
    x: the generic kernels' bits for every alpha, NaN payloads, ±0, infinities, subnormals and
    overflow included; alphas they do not serve (0 or below, 1, inf, NaN) the generic way."""
    x = _specials((3000,), dtype, 5)
    flat = x.reshape(-1)
    big = 3e38 if dtype == "float32" else 1.7e308
    flat[7:9] = [big, -big]
    if dtype == "float64":
        payloads = np.array([0x7FF8000000000001, 0xFFF0000000000002, 0x7FF0000000000003], np.uint64)
        flat[100:103] = payloads.view(np.float64)
    with np.errstate(all="ignore"):
        for alpha in [0.01, 0.2, 0.5, 0.99, 1.0, 1.5, 2.0, 10.0, 1e-30, 0.0, -0.3, -2.0, np.inf, np.nan]:
            for value in (x, x.reshape(30, 100), x[::3]):
                _same_bits(Step(alpha).forward(np, value), cpu_kernel(Step(alpha), value))
                _same_bits(LeakyRelu(alpha).forward(np, value), cpu_kernel(LeakyRelu(alpha), value))


@pytest.mark.parametrize("alpha", [0.0, 0.25])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_cpu_step_is_the_generic_kernel_bit_for_bit(dtype: str, alpha: float) -> None:
    """relu's derivative as a comparison (float32, alpha 0): 1, +0 for x <= 0 and -0, NaN kept
    with its sign; anything else through the generic kernel."""
    values = [-1.0, -0.0, 0.0, 1e-30, 2.0, np.nan, -np.nan, -np.inf, np.inf]
    x = np.array(values if dtype == "float32" else [-3, 0, 5], dtype)
    inputs = [x, x.reshape(1, x.size)] + [np.array(v, dtype) for v in x]  # 0-d ones too (a NaN scalar)
    for value in inputs:
        want, got = Step(alpha).forward(np, value), cpu_kernel(Step(alpha), value)
        assert np.shape(want) == np.shape(got) and np.asarray(want).dtype == np.asarray(got).dtype
        assert np.array_equal(want, got, equal_nan=True)
        assert np.array_equal(np.signbit(want), np.signbit(got))


@pytest.mark.parametrize("c1", [1.0, 0.5])
def test_cpu_scaled_add_of_scalars_is_an_array_whatever_c1_is(c1: float) -> None:
    """A recorded Program trusts the type of a kernel's result that its first run saw: the
    scaled add of 0-d arrays gives a 0-d array on both of its paths (c1 = 1 or not)."""
    f32 = np.float32
    y = cpu_kernel(
        ScaledArrayAdd(), np.array(c1, f32), np.array(2.0, f32), np.array(-0.5, f32), np.array(4.0, f32)
    )
    assert isinstance(y, np.ndarray) and y.shape == () and y == f32(c1) * f32(2.0) + f32(-0.5) * f32(4.0)


def test_the_cpu_backends_generic_kernel_is_what_kernel_for_finds_for_an_op_of_no_kernel() -> None:
    """What lets a straight-line Program (deeplearn/compile/straight.py) call an op's forward."""
    from deeplearn.math.ops.elementwise import Neg

    backend = dl.NDArrayMathCPU().backend
    assert backend.kernel_for(Neg()) is backend.generic_kernel  # type: ignore[attr-defined]


# -- safe mode, and the engine's run as what op methods call -------------------------------------


def test_safe_mode_can_be_switched_after_construction(math: dl.NDArrayMath) -> None:
    m = dl.NDArrayMath(math.backend)
    x = Array1D.new([1.0])
    m.exp(x).dispose()
    m.safe_mode = True
    with pytest.raises(RuntimeError) as info:
        m.exp(x)
    assert str(info.value) == SAFE_MODE_MESSAGE
    with m.scope():
        m.exp(x)
    m.engine = Engine(m.backend)  # a new engine takes the math's mode
    with pytest.raises(RuntimeError, match="safe mode"):
        m.exp(x)
    m.safe_mode = False
    assert m.exp(Scalar.new(0)).get() == 1.0


def test_op_methods_call_whatever_the_engine_runs_now(math: dl.NDArrayMath) -> None:
    seen: list[str] = []
    run = math.engine.run

    def recording(op: Op, *inputs: dl.NDArray) -> Any:
        seen.append(op.name)
        return run(op, *inputs)

    math.engine.run = recording  # type: ignore[method-assign]
    try:
        math.relu(math.add(Array1D.new([1.0]), Array1D.new([2.0])))
    finally:
        del math.engine.run
    math.relu(Array1D.new([1.0]))
    assert seen == ["add", "relu"]


# -- the registry ---------------------------------------------------------------------------------


def test_counts_and_bytes_follow_arrays_made_and_freed_in_threads(cpu_math: dl.NDArrayMath) -> None:
    gc.collect()  # earlier tests' garbage goes now, not during the count
    base = dl.memory()["backends"].get("cpu", {"num_arrays": 0, "num_bytes": 0})
    kept: list[dl.NDArray] = []
    lock = threading.Lock()

    def work() -> None:
        for i in range(300):
            x = Array1D.new([1.0, 2.0])
            y = cpu_math.add(x, x)
            x.dispose()
            if i % 100 == 0:
                with lock:
                    kept.append(y)
            else:
                del y  # garbage: its count goes with it

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now = dl.memory()["backends"]["cpu"]
    assert now["num_arrays"] == base["num_arrays"] + len(kept) == base["num_arrays"] + 12
    assert now["num_bytes"] == base["num_bytes"] + 8 * len(kept)
    for y in kept:
        y.dispose()
        y.dispose()  # twice: counted once
    assert dl.memory()["backends"]["cpu"] == base


@dataclass(frozen=True)
class _Nested(Op, abstract=True):
    """A test op whose CPU kernel runs another op's kernel through the backend."""

    name = "nested"

    def infer(self, x: Spec) -> Spec:
        return x

    def forward(self, xp: ModuleType, x: RawArray) -> RawArray:
        from deeplearn.math.backends.cpu import MathBackendCPU

        inner = MathBackendCPU().execute(_ReadsState(), x)
        return x + inner[:4].sum() + (xp.float32(3e38) * xp.float32(10) - xp.inf)


def test_a_kernel_may_run_kernels_itself(cpu_math: dl.NDArrayMath) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = cpu_math.engine.run(_Nested(), Array1D.new([1.0]))
        assert np.isnan(y.get(0))  # inf - inf, ignored inside both kernels
        assert cpu_math.engine.run(_Nested(), Array1D.new([1.0])).shape == (1,)
    assert cpu_math.add(Array1D.new([1.0]), Array1D.new([2.0])).get(0) == 3.0


@pytest.mark.parametrize("shape", [(128, 10), (5, 3), (7,), (2, 3, 4), (4, 1)])
def test_cpu_softmax_cross_entropy_derivative_is_the_generic_kernel_bit_for_bit(
    shape: tuple[int, ...],
) -> None:
    """The CPU kernel writes the generic kernel's operations over its own temporaries: the
    same bits for logits with NaN, ±inf and -0, any targets, a per-example or a whole dy;
    other dtypes and broadcast shapes through the generic kernel."""
    from deeplearn.math.ops.costs import SoftmaxCrossEntropyCostDer

    op, rng = SoftmaxCrossEntropyCostDer(), np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[: min(4, x.size)] = [np.nan, np.inf, -np.inf, -0.0][: min(4, x.size)]
    target = rng.random(shape).astype(np.float32)
    cases = [
        (x, target, np.full(shape[:-1] + (1,), 0.25, np.float32)),
        (x, target, rng.standard_normal(shape).astype(np.float32)),
        (x, target[..., :1] if shape[-1] > 1 else target, np.float32(2).reshape(())),
        (x.astype(np.float64), target, np.ones(1)),
    ]
    with np.errstate(all="ignore"):
        for args in cases:
            want, got = op.forward(np, *args), cpu_kernel(op, *args)
            for w, g in zip(want, got, strict=True):
                assert w.dtype == g.dtype and w.shape == g.shape
                assert w.tobytes() == g.tobytes()
