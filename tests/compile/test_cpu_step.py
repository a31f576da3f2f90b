"""A training Program compiled for the CPU (deeplearn/compile/cpu_step.py) gives exactly what the
kernel-by-kernel run gives, and its writers (deeplearn/math/backends/cpu_writers.py) exactly
what the CPU kernels give. test_replay.py trains every graph op case through it (a Session
compiles its training steps by default) against the batch rules, bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Graph, Scalar, Session
from deeplearn.compile import cpu_step
from deeplearn.compile.cpu_step import CpuStep
from deeplearn.math.backends.cpu import cpu_kernel
from deeplearn.compile.program import Ref, Step
from deeplearn.compile.straight import straight_line
from deeplearn.math.backends.cpu_writers import Writer, elementwise, relu_derivative, source_of, writer
from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import OPS, Op, Spec
from deeplearn.math.ops.elementwise import Relu
from deeplearn.math.ops.fused import Fused
from deeplearn.math.ops.layout import Clone, Gather
from deeplearn.math.ops.linalg import REGULAR, TRANSPOSED, MatMul
from deeplearn.math.ops.reduction import Sum
from tests.graph.helpers import OPTIMIZERS, train_dense

# -- the writers, against the CPU kernels ---------------------------------------------------------

_SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-30, -1e30, 0.5, -2.0, 3.0])


def _values(shape: tuple[int, ...], dtype: str, seed: int, positive: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    flat = x.reshape(-1)
    flat[: min(flat.size, _SPECIAL.size)] = _SPECIAL[: flat.size]
    if positive:
        x = np.abs(x) + 0.1
    return x.astype(dtype)


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(
        got.reshape(-1).view(np.uint8), np.ascontiguousarray(want).reshape(-1).view(np.uint8)
    )


def _write_and_compare(op: Op, arrays: list[np.ndarray], out_into: int | None = None) -> None:
    """``op``'s writer into a fresh array (or into ``arrays[out_into]``) gives the bits of its
    CPU kernel; so does its body as a generated step runs it, where it carries one."""
    with np.errstate(all="ignore"):
        want = cpu_kernel(op, *[a.copy() for a in arrays])
        specs = [Spec(a.shape, str(a.dtype)) for a in arrays]
        result = Spec(want.shape, str(want.dtype))
        write = writer(op, specs, result)
        assert write is not None, op
        copies = [a.copy() for a in arrays]
        out = np.full(want.shape, 7.0, want.dtype) if out_into is None else arrays[out_into]
        write(*arrays, out=out)
        _same_bits(out, want)
        if source_of(write) is not None:
            inlined = np.full(want.shape, 7.0, want.dtype) if out_into is None else copies[out_into]
            _run_inlined(op, write, copies, inlined, result)
            _same_bits(inlined, want)


def _run_inlined(op: Op, write: Writer, arrays: list[np.ndarray], out: np.ndarray, result: Spec) -> None:
    """``write``'s body (``source_of``) run as a generated step runs it (``straight_line``),
    ``arrays`` in, ``out`` written."""
    n = len(arrays)
    step = Step(op, tuple(Ref(i, None) for i in range(n)), (n,), (result,))
    slots: list[Any] = [*arrays, out]  # (out may be one of arrays: written over it)
    straight_line([step], [None], [True], np, lambda *a: None, [write])(slots)


_UFUNC_OPS = sorted((cls for cls in OPS if cls.ufunc is not None), key=lambda c: c.__name__)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", _UFUNC_OPS, ids=lambda c: c.__name__)
def test_an_element_wise_op_is_its_ufunc_written_into_an_array(cls: type[Op], dtype: str) -> None:
    op = cls()
    unary = cls.infer.__code__.co_argcount == 2
    if unary:
        _write_and_compare(op, [_values((4, 5), dtype, 0)])
        _write_and_compare(op, [_values((4, 5), dtype, 1)], out_into=0)  # over its own input
    else:
        _write_and_compare(op, [_values((4, 5), dtype, 0), _values((4, 5), dtype, 1)])
        _write_and_compare(op, [_values((4, 5), dtype, 2), _values((5,), dtype, 3)])  # broadcast
        _write_and_compare(op, [_values((4, 5), dtype, 4), np.asarray(_values((1,), dtype, 5)[0])])


def test_the_ufunc_table_holds_the_arithmetic_and_math_ops_all_element_wise() -> None:
    """The table the test above runs over is not empty: the arithmetic and math ops declare a
    ufunc (which their forward calls), and each may be written over one of its inputs."""
    assert {"Add", "Subtract", "Multiply", "Divide", "Neg", "Square", "Exp", "Log", "Sqrt", "Tanh"} <= {
        c.__name__ for c in _UFUNC_OPS
    }
    for cls in _UFUNC_OPS:
        assert elementwise(cls())


def test_relu_sum_clone_and_products_write_what_their_kernels_give() -> None:
    x = _values((6, 8), "float32", 0)
    _write_and_compare(Relu(), [x])
    for shape in [(3000,), (256, 256), (70000,), (3, 65537)]:  # against zeros, a block at a time past 65,536
        _write_and_compare(Relu(), [_values(shape, "float32", 4)])
        _write_and_compare(Relu(), [_values(shape, "float64", 5)])
    _write_and_compare(Clone(), [x])
    _write_and_compare(Clone(), [np.asarray(np.nan, np.float32)])
    _write_and_compare(Clone(), [np.asarray(-0.0, np.float32)])
    for axis, keep in [((0,), False), ((1,), True), ((0, 1), False), (None, False)]:
        _write_and_compare(Sum(axis, keep), [_values((6, 8), "float32", 1)])
    a, b = _values((5, 3), "float32", 2), _values((3, 4), "float32", 3)
    for oa, ob in [
        (REGULAR, REGULAR),
        (TRANSPOSED, REGULAR),
        (REGULAR, TRANSPOSED),
        (TRANSPOSED, TRANSPOSED),
    ]:
        left = a if oa == REGULAR else np.ascontiguousarray(a.T)
        right = b if ob == REGULAR else np.ascontiguousarray(b.T)
        _write_and_compare(MatMul(oa, ob), [left, right])
    assert not elementwise(MatMul()) and not elementwise(Sum((0,), False))


@pytest.mark.parametrize("c1", [1.0, 0.9, np.nan])
def test_a_scaled_add_writes_its_kernels_bits_into_its_own_first_input(c1: float) -> None:
    """An optimizer's update (c1·a + c2·b) written into ``a`` itself, as a compiled step writes
    it into its variable: for c1 = 1 the kernel's (c2·b) + a, else its generic form."""
    a, b = _values((7, 3), "float32", 0), _values((7, 3), "float32", 1)
    c1_, c2 = np.asarray(c1, np.float32), np.asarray(-0.1, np.float32)
    _write_and_compare(ScaledArrayAdd(), [c1_, a.copy(), c2, b])
    _write_and_compare(ScaledArrayAdd(), [c1_, a.copy(), c2, b], out_into=1)
    _write_and_compare(ScaledArrayAdd(), [c1_.reshape(1), a.copy(), c2.reshape(1, 1), b], out_into=1)
    for av, bv, c2v in [
        (0.5, 0.2, -0.1),
        (np.nan, 1.0, 2.0),
        (np.inf, -1e38, 1e38),
        (-0.0, 0.0, -1.0),
        (3e38, 3e38, 2.0),
    ]:
        scalars = [c1_, np.asarray(av, np.float32), np.asarray(c2v, np.float32), np.asarray(bv, np.float32)]
        _write_and_compare(ScaledArrayAdd(), [x.copy() for x in scalars])  # a scalar variable's update
        _write_and_compare(ScaledArrayAdd(), [x.copy() for x in scalars], out_into=1)


def test_a_large_scaled_add_written_a_chunk_at_a_time_gives_the_kernels_bits() -> None:
    """A variable larger than a chunk (here 2.3 chunks) is updated a chunk at a time, into
    itself or another array, with the same bits as the kernel; an input not C-ordered still
    gets them (the whole-array form)."""
    shape = (300, 500)  # 150,000 elements: two whole chunks of 65,536 and a part
    a, b = _values(shape, "float32", 2), _values(shape, "float32", 3)
    one, c2 = np.asarray(1.0, np.float32), np.asarray(-0.37, np.float32)
    _write_and_compare(ScaledArrayAdd(), [one, a.copy(), c2, b])
    _write_and_compare(ScaledArrayAdd(), [one, a.copy(), c2, b], out_into=1)
    _write_and_compare(ScaledArrayAdd(), [one, a.copy(), c2, np.asfortranarray(b)], out_into=1)


def test_a_gather_checks_its_indices_unless_they_are_known_to_be_valid() -> None:
    x = _values((5, 3), "float32", 0)
    rows = np.array([4, 0, 0, 2], np.int32)
    _write_and_compare(Gather(), [x, rows])
    specs, result = [Spec((5, 3)), Spec((4,), "int32")], Spec((4, 3))
    out = np.empty((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"gather: every index must be in \[0, 5\).*indices\[1\]=-1"):
        writer(Gather(), specs, result)(x, np.array([1, -1, 0, 0], np.int32), out=out)  # type: ignore[misc]
    trusted = writer(Gather(), specs, result, valid=[False, True])
    assert trusted is not None
    trusted(x, rows, out=out)
    _same_bits(out, x[rows])
    assert source_of(writer(Gather(), specs, result)) is None  # the check is a call's
    _run_inlined(Gather(), trusted, [x, rows], inlined := np.empty((4, 3), np.float32), result)
    _same_bits(inlined, x[rows])


def test_writers_with_a_body_as_source_are_the_short_ones() -> None:
    """The writers a generated step runs in place (``source_of``): those of a line or two."""
    x, s = Spec((4, 3)), Spec(())
    assert source_of(writer(Sum((0,), False), [x], Spec((3,)))) is not None
    assert source_of(writer(Clone(), [s], s)) is not None and source_of(writer(Clone(), [x], x)) is not None
    assert source_of(writer(ScaledArrayAdd(), [s, s, s, s], s)) is not None  # a scalar variable's update
    assert source_of(writer(ScaledArrayAdd(), [s, x, s, x], x)) is None  # chunked: a call


@pytest.mark.parametrize("nan_in_x", [False, True])
@pytest.mark.parametrize("dy_first", [True, False])
def test_relus_backward_in_one_writer_is_step_then_multiply(dy_first: bool, nan_in_x: bool) -> None:
    """multiply(dy, step(x)) written in two passes gives the two kernels' bits: dy's NaN, ±inf
    and -0 included, and x's NaN (then the kernels themselves run)."""
    from deeplearn.math.ops.arithmetic import Multiply
    from deeplearn.math.ops.elementwise import Step

    dy = _values((6, 7), "float32", 0)
    x = np.roll(_values((6, 7), "float32", 1), 3)  # x's NaN where dy is finite
    if not nan_in_x:
        x[np.isnan(x)] = -0.0
    op = relu_derivative(Spec(dy.shape), Spec(x.shape), dy_first)
    write = writer(op, [Spec(dy.shape), Spec(x.shape)], Spec(x.shape))
    assert write is not None
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        step = cpu_kernel(Step(), x)
        want = cpu_kernel(Multiply(), dy, step) if dy_first else cpu_kernel(Multiply(), step, dy)
        write(dy, x, out=out)
    _same_bits(out, want)
    assert writer(op, [Spec((6, 7)), Spec((6, 1))], Spec((6, 7))) is None  # no broadcasting here


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_means_and_the_mean_squared_cost_write_their_kernels_bits(dtype: str) -> None:
    """Mean (np.mean: a sum, then a float64 division by the count) and the mean squared cost
    (½·d·d, then that mean over each example), over every axis, some, none, with keep_dims and
    a broadcast second input, NaN and ±inf among the values."""
    from deeplearn.math.ops.costs import MeanSquaredCost
    from deeplearn.math.ops.reduction import Mean

    x, t = _values((4, 3, 5), dtype, 0), _values((4, 3, 5), dtype, 1)
    for axis in [None, (0,), (1, 2), (-1,), (0, 2)]:
        for keep_dims in (False, True):
            _write_and_compare(Mean(axis, keep_dims), [x])
    for example_rank in [None, 0, 1, 2]:
        _write_and_compare(MeanSquaredCost(example_rank), [x, t])
        _write_and_compare(MeanSquaredCost(example_rank), [x, t[0]])  # one second input for all
    _write_and_compare(MeanSquaredCost(0), [x[:, 0, 0].copy(), t[:, 0, 0].copy()])  # scalar examples
    _write_and_compare(MeanSquaredCost(None), [x[0, 0, 1].copy(), t[0, 0, 1].copy()])  # one scalar
    _write_and_compare(Mean(None, False), [x[0, 0, 1].copy()])
    # Differences whose squares fall among the subnormals, where (½·d)·d and ½·(d·d) differ.
    rng = np.random.default_rng(2)
    tiny = (rng.uniform(1, 2, (8, 16)) * 10.0 ** rng.uniform(-23, -19, (8, 16))).astype(dtype)
    _write_and_compare(MeanSquaredCost(0), [tiny, np.zeros_like(tiny)])  # (a mean would round it away)
    assert writer(Mean((1,), False), [Spec((3, 0), dtype)], Spec((3,), dtype)) is None  # 0/0: the kernel's
    assert writer(MeanSquaredCost(None), [Spec((3,), dtype), Spec((4, 3), dtype)], Spec((), dtype)) is None


def test_no_writer_where_the_kernel_would_change_dtype_or_shape() -> None:
    from deeplearn.math.ops.arithmetic import Add
    from deeplearn.math.ops.elementwise import Step

    assert writer(Add(), [Spec((3,), "int32"), Spec((3,), "int32")], Spec((3,), "int32")) is None
    assert writer(Add(), [Spec((3,), "float32"), Spec((3,), "int32")], Spec((3,))) is None  # a cast first
    assert writer(Step(), [Spec((3,))], Spec((3,))) is None  # a kernel of its own, no writer


# -- whole training steps, compiled against kernel by kernel --------------------------------------


def _tapes(session: Session) -> list[Any]:
    return [
        p for plan in session._plans.values() for step in plan._steps.values() for p in step.training.values()
    ]


def _train_dense(
    compiled: bool,
    make_optimizer: Callable[[], dl.Optimizer],
    steps: int = 12,
    inspect: bool = False,
    fresh_feeds: bool = False,
) -> tuple[list[Any], list[np.ndarray], Session]:
    """``train_dense`` on the CPU: with ``inspect``, every step's fed input's gradient (which reads
    the first layer's old weights) and activations are read too."""
    return train_dense(
        dl.NDArrayMathCPU(),
        dl.InCPUMemoryShuffledInputProviderBuilder,
        compiled,
        make_optimizer,
        steps,
        inspect,
        fresh_feeds,
    )


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray):
        _same_bits(a, b)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("fresh_feeds", [False, True], ids=["rerun", "ordinary"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_compiled_step_equals_the_kernel_by_kernel_step_bit_for_bit(name: str, fresh_feeds: bool) -> None:
    """Every optimizer, through a learning-rate change and a variable the user set between
    calls; the step is compiled (a CpuStep) and the kernel-by-kernel Session's is not. A call
    with the last call's feeds reruns it (rerun.py, rows trusted); with new feeds it takes the
    ordinary path (rows checked)."""
    costs, weights, session = _train_dense(True, OPTIMIZERS[name], fresh_feeds=fresh_feeds)
    (program,) = _tapes(session)
    assert isinstance(program.capture, CpuStep)
    ref_costs, ref_weights, ref = _train_dense(False, OPTIMIZERS[name], fresh_feeds=fresh_feeds)
    assert _tapes(ref)[0].capture is None
    assert costs == ref_costs
    _assert_same(weights, ref_weights)


@pytest.mark.parametrize("doubled", [True, False])
def test_what_inspection_reads_after_a_compiled_step_is_that_steps_values(
    doubled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fed input's gradient reads the first layer's weights from before the update: a
    compiled step double-buffers that variable (from 64 KiB; here made to for any size) or
    copies it first, and either way hands out the kernel-by-kernel step's values, activations
    included."""
    monkeypatch.setattr(cpu_step, "_DOUBLED_BYTES", 0 if doubled else cpu_step._DOUBLED_BYTES)
    seen, weights, session = _train_dense(True, OPTIMIZERS["momentum"], inspect=True)
    (program,) = _tapes(session)
    assert bool(program.capture._other) == doubled, "the first layer's weights are double-buffered"
    assert any(isinstance(s.op, Clone) for s in program.capture._steps) != doubled  # else a copy per step
    assert any(isinstance(s.op, Fused) for s in program.capture._steps)  # relu's backward, in one
    ref_seen, ref_weights, _ = _train_dense(False, OPTIMIZERS["momentum"], inspect=True)
    _assert_same(seen, ref_seen)
    _assert_same(weights, ref_weights)


def _quadratic(math: dl.NDArrayMath) -> tuple[Graph, Any, Any, Any, list[Any]]:
    g = Graph()
    x, label = g.placeholder("x", []), g.placeholder("y", [])
    a, b, c = (g.variable(n, Scalar.new(v, math=math)) for n, v in (("a", 0.3), ("b", -0.2), ("c", 0.1)))
    y = g.add(g.add(g.multiply(a, g.square(x)), g.multiply(b, x)), c)
    return g, x, label, g.mean_squared_cost(y, label), [a, b, c]


def _providers(seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2, 2, 64).astype(np.float32)
    ys = (1.5 * xs * xs - 0.5 * xs + 0.25).astype(np.float32)
    return dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=seed).get_input_providers()


def _quadratic_session(compiled: bool) -> tuple[Session, Any, dict[Any, Any], list[Any]]:
    """A Session over ``_quadratic`` that compiles its training steps or not: (the session, the
    cost, the feeds, the variables)."""
    math = dl.NDArrayMathCPU()
    g, x, label, cost, variables = _quadratic(math)
    xp, yp = _providers()
    session = Session(g, math)
    session.capture_plans = compiled
    return session, cost, {x: xp, label: yp}, variables


@pytest.mark.parametrize("reduction", [CostReduction.MEAN, CostReduction.SUM, CostReduction.NONE])
def test_compiled_scalar_variables_train_as_kernel_by_kernel(reduction: CostReduction) -> None:
    results = []
    for compiled in (True, False):
        math = dl.NDArrayMathCPU()
        g, x, label, cost, variables = _quadratic(math)
        xp, yp = _providers()
        session = Session(g, math)
        session.capture_plans = compiled
        optimizer = dl.AdamOptimizer(0.05, 0.9, 0.999)
        with math.scope() as scope:
            kept = [
                scope.keep(session.train(cost, {x: xp, label: yp}, 8, optimizer, reduction))
                for _ in range(30)
            ]
            costs = [float(c.get()) for c in kept]  # read after every step ran: still their own values
        results.append((costs, [session.eval(v).numpy() for v in variables]))
        assert isinstance(_tapes(session)[0].capture, CpuStep) == compiled
    _assert_same(results[0][1], results[1][1])
    assert results[0][0] == results[1][0]


def test_compiled_steps_keep_the_number_of_arrays_flat() -> None:
    math = dl.NDArrayMathCPU()
    g, x, label, cost, _ = _quadratic(math)
    xp, yp = _providers()
    session, optimizer = Session(g, math), dl.MomentumOptimizer(0.01, 0.9)
    feeds = {x: xp, label: yp}
    for _ in range(5):
        session.train(cost, feeds, 8, optimizer, CostReduction.MEAN)
    (program,) = _tapes(session)
    assert isinstance(program.capture, CpuStep)
    arrays, bytes_ = math.get_num_arrays(), math.get_num_bytes() if hasattr(math, "get_num_bytes") else None
    for _ in range(500):
        with math.scope():
            session.train(cost, feeds, 8, optimizer, CostReduction.MEAN)
    assert math.get_num_arrays() == arrays
    if bytes_ is not None:
        assert math.get_num_bytes() == bytes_


def test_a_view_kept_across_a_compiled_step_keeps_its_values() -> None:
    """A compiled step's values live in arrays the next call overwrites: a view someone keeps
    of one is given a copy first, as after a kernel-by-kernel step."""
    math = dl.NDArrayMathCPU()
    g, x, label, cost, (a, _, _) = _quadratic(math)
    xp, yp = _providers()
    session, feeds, optimizer = Session(g, math), {x: xp, label: yp}, dl.SGDOptimizer(0.05)
    for _ in range(3):
        session.train(cost, feeds, 8, optimizer)
    assert isinstance(_tapes(session)[0].capture, CpuStep)
    view = session.gradient_array_map.get(a).reshape([1])
    kept = view.numpy().copy()
    session.train(cost, feeds, 8, optimizer)
    assert not np.array_equal(session.gradient_array_map.get(a).numpy().reshape(1), kept)  # it moved
    np.testing.assert_array_equal(view.numpy(), kept)


def test_a_variable_held_by_the_user_follows_the_compiled_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable's NDArray is the step's array (or follows it where double-buffered): what a
    user holds of ``node.data`` reads the newest value, as on a captured CUDA step."""
    monkeypatch.setattr(cpu_step, "_DOUBLED_BYTES", 0)
    _, _, session = _train_dense(True, OPTIMIZERS["sgd"], steps=4)
    (program,) = _tapes(session)
    assert program.capture._other  # the double-buffered case is among them
    variables = [n.output for n in session.graph.nodes if isinstance(n, dl.graph.graph.VariableNode)]
    held = [v.node.data for v in variables]
    before = [h.numpy().copy() for h in held]
    with session.math.scope():
        session.train(*session._last_call)  # type: ignore[attr-defined]
    assert len(_tapes(session)) == 1
    for h, b, v in zip(held, before, variables, strict=True):
        assert h is v.node.data
        assert not np.array_equal(h.numpy(), b)
        np.testing.assert_array_equal(h.numpy(), session.eval(v).numpy())


def test_a_compiled_step_ignores_floating_point_errors_and_leaves_the_callers_state() -> None:
    """Overflow and invalid values are values here, as in every CPU kernel: a compiled step run
    under the caller's np.errstate(all="raise") raises nothing and leaves that state as it was."""
    math = dl.NDArrayMathCPU()
    g, x, label, cost, (a, _, _) = _quadratic(math)
    xs = np.array([1e30, -1e30, np.inf, 2.0], np.float32)
    xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, xs], seed=0).get_input_providers()
    session, optimizer = Session(g, math), dl.SGDOptimizer(0.5)
    with np.errstate(all="raise"):
        for _ in range(4):
            session.train(cost, {x: xp, label: yp}, 4, optimizer)
        assert np.geterr() == {"divide": "raise", "over": "raise", "under": "raise", "invalid": "raise"}
    assert isinstance(_tapes(session)[0].capture, CpuStep)
    assert not np.isfinite(session.eval(a).numpy())


def test_a_replayed_eval_ignores_floating_point_errors_and_leaves_the_callers_state() -> None:
    """The same for an inference Program run as its straight-line function (from its second
    run on): an overflow is inf, under the caller's np.errstate(all="raise")."""
    math = dl.NDArrayMathCPU()
    g = dl.Graph()
    x = g.placeholder("x", [2])
    y = g.multiply(g.square(x), g.constant(dl.Array1D.new([1e10, 1.0], math=math)))
    session = Session(g, math)
    with np.errstate(all="raise"):
        for _ in range(3):
            got = session.eval(y, {x: dl.Array1D.new([1e30, 2.0], math=math)}).numpy()
            np.testing.assert_array_equal(got, np.array([np.inf, 4.0], np.float32))
        assert np.geterr() == {"divide": "raise", "over": "raise", "under": "raise", "invalid": "raise"}


@pytest.mark.parametrize("units", [2, 128], ids=["small", "double-buffered"])
def test_a_view_of_a_variable_keeps_its_values_across_compiled_steps(units: int) -> None:
    """``w.node.data.reshape(...)`` taken between steps keeps the values it had, as on the
    ordinary path (where each update is a new array), also for a double-buffered variable;
    the variable itself trains on."""
    snapshots = {}
    for mode in ("compiled", "rules"):
        math = dl.NDArrayMathCPU()
        g = dl.Graph()
        x, label = g.placeholder("x", [units]), g.placeholder("y", [])
        w = g.variable("w", dl.NDArray.from_numpy(np.linspace(-0.5, 0.5, units * units, dtype=np.float32).reshape(units, units), math=math))
        y = g.reduce_sum(g.matmul(g.reshape(x, [1, units]), w))
        cost = g.mean_squared_cost(y, label)
        rng = np.random.default_rng(0)
        xs = rng.uniform(-1, 1, (8, units)).astype(np.float32)
        xp, yp = dl.InCPUMemoryShuffledInputProviderBuilder([xs, xs.sum(1)], seed=0).get_input_providers()
        session, optimizer, feeds = Session(g, math), dl.SGDOptimizer(0.01), {x: xp, label: yp}
        session.replay_plans = mode == "compiled"
        for _ in range(3):
            session.train(cost, feeds, 2, optimizer)
        snap = w.node.data.reshape([units * units])
        before = snap.numpy().copy()
        for _ in range(3):
            session.train(cost, feeds, 2, optimizer)
            session.gradient_array_map.get(x)  # inspection reads the old weights (double-buffered)
        np.testing.assert_array_equal(snap.numpy(), before)
        assert not np.array_equal(w.node.data.numpy().reshape(-1), before)
        snapshots[mode] = (before, w.node.data.numpy())
    for a, b in zip(snapshots["compiled"], snapshots["rules"]):
        np.testing.assert_array_equal(a, b)


class _RowsProvider(dl.InputProvider):
    """A provider of its own that hands out row indices (``get_next_batch_rows``); its third
    batch holds an index out of range."""

    def __init__(self, math: dl.NDArrayMath, data: np.ndarray) -> None:
        self.examples = math.keep(dl.NDArray.from_numpy(data, math=math))
        self.calls = 0

    def get_next_copy(self, math: dl.NDArrayMath) -> dl.NDArray:
        raise AssertionError("the Session asks for rows")

    def dispose_copy(self, math: dl.NDArrayMath, copy: dl.NDArray) -> None:
        pass

    def get_next_batch_rows(self, math: dl.NDArrayMath, batch_size: int) -> tuple[dl.NDArray, dl.NDArray]:
        self.calls += 1
        rows = np.array([0, 9], np.int32) if self.calls == 3 else np.arange(batch_size, dtype=np.int32)
        return self.examples, math.engine.wrap(rows, "int32")


def test_rows_from_a_provider_of_the_users_are_checked_by_a_compiled_step() -> None:
    """Only the library's own providers' rows go unchecked: a row index out of range from any
    other raises the gather's error, compiled as kernel by kernel, before any update."""
    for compiled in (True, False):
        math = dl.NDArrayMathCPU()
        g = Graph()
        x = g.placeholder("x", [2])
        w = g.variable("w", dl.NDArray.from_numpy(np.ones(2, np.float32), math=math))
        session = Session(g, math)
        session.capture_plans = compiled
        provider = _RowsProvider(math, np.arange(8, dtype=np.float32).reshape(4, 2))
        cost = g.reduce_sum(g.multiply(x, w))
        for _ in range(2):
            session.train(cost, {x: provider}, 2, dl.SGDOptimizer(0.1))
        before = session.eval(w).numpy().copy()
        with pytest.raises(ValueError, match=r"gather: every index must be in \[0, 4\).*indices\[1\]=9"):
            session.train(cost, {x: provider}, 2, dl.SGDOptimizer(0.1))
        np.testing.assert_array_equal(session.eval(w).numpy(), before)
        assert isinstance(_tapes(session)[0].capture, CpuStep) == compiled


def test_a_session_keeps_a_few_compiled_steps_and_compiles_others_again() -> None:
    """Each compiled step holds arrays of its own: a Session keeps the three it used last, and a
    step whose compiled form was let go compiles again, training on as before."""
    results = []
    for compiled in (True, False):
        math = dl.NDArrayMathCPU()
        g, x, label, cost, variables = _quadratic(math)
        xp, yp = _providers()
        session, optimizer = Session(g, math), dl.MomentumOptimizer(0.05, 0.9)
        session.capture_plans = compiled
        for batch in (2, 3, 4, 5, 2, 3, 4, 5, 2):
            for _ in range(3):
                session.train(cost, {x: xp, label: yp}, batch, optimizer)
            held = [t for t in _tapes(session) if t.capture]
            assert len(held) <= 3 and (not compiled or held)
        results.append([session.eval(v).numpy() for v in variables])
    _assert_same(results[0], results[1])


def test_the_step_compiled_last_runs_again_until_it_is_found_not_to_compile() -> None:
    """A training loop's Program runs its compiled step again without asking for it anew; once
    that Program is found not to compile (its compiled step let go and refused since), the
    calls run kernel by kernel and train as the uncompiled Session does."""
    from deeplearn.compile.resident import NotCaptured

    results = []
    for compiled in (True, False):
        session, cost, feeds, variables = _quadratic_session(compiled)
        optimizer = dl.SGDOptimizer(0.05)
        for step in range(6):
            if compiled and step == 3:
                (program,) = _tapes(session)
                last = session._last_compiled
                assert last is not None and last() is program and isinstance(program.capture, CpuStep)
                program.capture = NotCaptured("refused since")
            session.train(cost, feeds, 4, optimizer)
        results.append([session.eval(v).numpy() for v in variables])
    _assert_same(results[0], results[1])


def test_compiled_steps_are_let_go_oldest_first_whichever_runs_again_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The step compiled last runs again without being looked up (``_last_compiled``); the
    order in which compiled steps are let go stays the order of their use, also when a
    Program found not to compile (after its step refused a run) was used in between."""
    from deeplearn.compile.resident import NotCaptured

    class Step:  # a compiled step whose next run may refuse (as a CUDA graph whose examples moved)
        def __init__(self) -> None:
            self.refuse = False

        def run(self, raws: Any, drawn: bool) -> Any:
            refused, self.refuse = self.refuse, False
            return None if refused else ["slots"]

    class Program:
        def __init__(self, name: str) -> None:
            self.name, self.capture, self.bindings, self.refuse_next = name, None, [], False

        def run_raw(self, engine: Any, raws: Any) -> Any:
            return ["by kernel"]

    def compile_step(program: Any, engine: Any, raws: Any, rows: Any) -> Any:
        refused, program.refuse_next = program.refuse_next, False
        return NotCaptured("refused") if refused else Step()

    monkeypatch.setattr(cpu_step, "compile_step", compile_step)
    session = Session(Graph(), dl.NDArrayMathCPU())
    p, q, r, s = (Program(n) for n in "pqrs")
    session._execute(p, [], True)
    session._execute(q, [], True)
    p.capture.refuse, p.refuse_next = True, True
    assert session._execute(p, [], True) == (["by kernel"], None)  # refused, then not compiled
    for program in (q, p, q, r, s):
        session._execute(program, [], True)
    assert [x.name for x in session._compiled.values()] == ["q", "r", "s"]  # p, used before q, went
    assert p.capture is None and all(type(x.capture) is Step for x in (q, r, s))


def test_a_compiled_step_keeps_no_input_of_its_first_call() -> None:
    """Only the arrays the step updates are its own; the first call's batch, examples and
    scalars are not held (a disposed builder's examples can go)."""
    math = dl.NDArrayMathCPU()
    g, x, label, cost, _ = _quadratic(math)
    xp, yp = _providers()
    session = Session(g, math)
    for _ in range(3):
        session.train(cost, {x: xp, label: yp}, 8, dl.SGDOptimizer(0.05))
    step = _tapes(session)[0].capture
    assert isinstance(step, CpuStep)
    owned = [a for a in step.inputs if a is not None]
    assert len(owned) == len(step._targets) == 3


def test_a_step_that_cannot_be_compiled_runs_kernel_by_kernel_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no compiling today")

    monkeypatch.setattr(CpuStep, "__init__", refuse)
    costs = []
    for compiled in (True, False):
        session, cost, feeds, _ = _quadratic_session(compiled)
        optimizer = dl.SGDOptimizer(0.05)
        with caplog.at_level("INFO", logger="deeplearn"):
            costs.append(
                [float(session.train(cost, feeds, 8, optimizer, CostReduction.MEAN).get()) for _ in range(4)]
            )
    assert costs[0] == costs[1]
    assert [r.getMessage() for r in caplog.records].count(
        "Session: a training step runs kernel by kernel, not compiled: RuntimeError: no compiling today"
    ) == 1
