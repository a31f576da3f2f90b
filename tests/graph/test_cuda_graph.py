"""Training steps captured as one CUDA graph (deeplearn/compile/cuda_graph.py) give exactly what
the kernel-by-kernel replay gives, keep memory flat, and hand back costs that stay valid; tapes
that call cuBLAS are replayed instead. test_replay.py compares every graph op case on CUDA,
captured, with the batch rules bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import CostReduction, Graph, Scalar, Session
from deeplearn.compile.cuda_graph import CapturedProgram, NotCaptured, capture
from deeplearn.math.backends import cuda_available
from tests.graph.helpers import OPTIMIZERS, ListProvider, train_dense

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="captures CUDA graphs: needs CuPy and an NVIDIA GPU")


def _tapes(session: Session) -> list[Any]:
    """The recorded Programs of the Session's training steps."""
    return [p for plan in session._plans.values() for step in plan._steps.values() for p in step.training.values()]


def _quadratic(math: dl.NDArrayMath, unbatched_cost: bool = False) -> tuple[Graph, Any, Any, Any, list[Any]]:
    g = Graph()
    x, label = g.placeholder("x", []), g.placeholder("y", [])
    a, b, c = (g.variable(n, Scalar.new(v, math=math)) for n, v in (("a", 0.3), ("b", -0.2), ("c", 0.1)))
    y = g.add(g.add(g.multiply(a, g.square(x)), g.multiply(b, x)), c)
    cost = g.mean_squared_cost(y, label)
    if unbatched_cost:  # a cost that does not depend on the batch: the Session returns it as is
        cost = g.add(g.reduce_sum(g.square(g.add(a, b))), g.multiply(c, c))
    return g, x, label, cost, [a, b, c]


def _providers(seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2, 2, 64).astype(np.float32)
    ys = (1.5 * xs * xs - 0.5 * xs + 0.25).astype(np.float32)
    return dl.InGPUMemoryShuffledInputProviderBuilder([xs, ys], seed=seed).get_input_providers()


def _train(math: dl.NDArrayMath, captured: bool, optimizer: dl.Optimizer, reduction: CostReduction,
           steps: int = 40, unbatched_cost: bool = False,
           fuse: bool = False) -> tuple[list[float], list[np.ndarray], Session]:
    g, x, label, cost, variables = _quadratic(math, unbatched_cost)
    xp, yp = _providers()
    session = Session(g, math)
    session.capture_plans = captured
    session.fuse_kernels = fuse  # fused sums differ in ulps: tests/compile/test_fusion_cuda.py
    costs = []
    kept = []
    with math.scope() as scope:
        for _ in range(steps):
            kept.append(scope.keep(session.train(cost, {x: xp, label: yp}, 8, optimizer, reduction)))
        costs = [float(c.get()) for c in kept]  # read after every step ran: still their own values
    weights = [session.eval(v).numpy() for v in variables]
    return costs, weights, session


@needs_gpu
@pytest.mark.parametrize("reduction", [CostReduction.MEAN, CostReduction.SUM, CostReduction.NONE])
@pytest.mark.parametrize("make_optimizer", [lambda: dl.SGDOptimizer(0.05), lambda: dl.MomentumOptimizer(0.05, 0.9),
                                            lambda: dl.AdamOptimizer(0.05, 0.9, 0.999)],
                         ids=["sgd", "momentum", "adam"])
def test_captured_training_equals_the_replay_bit_for_bit(make_optimizer: Any, reduction: CostReduction) -> None:
    math = dl.NDArrayMathGPU()
    costs, weights, session = _train(math, True, make_optimizer(), reduction)
    (tape,) = _tapes(session)
    assert isinstance(tape.capture, CapturedProgram), tape.capture
    ref_costs, ref_weights, ref = _train(math, False, make_optimizer(), reduction)
    assert _tapes(ref)[0].capture is None
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)


@needs_gpu
def test_captured_steps_follow_the_callers_streams() -> None:
    """Steps issued from different CUDA streams (threads, or a user's streams) see each
    other's results: each launch waits for the last one and for the caller's queued work."""
    import cupy

    math = dl.NDArrayMathGPU()
    ref_costs, ref_weights, _ = _train(math, False, dl.SGDOptimizer(0.05), CostReduction.SUM)
    g, x, label, cost, variables = _quadratic(math)
    xp, yp = _providers()
    session = Session(g, math)
    optimizer = dl.SGDOptimizer(0.05)
    streams = [cupy.cuda.Stream(non_blocking=True), cupy.cuda.Stream(non_blocking=True)]
    costs = []
    for step in range(40):
        with streams[step % 2]:
            costs.append(float(session.train(cost, {x: xp, label: yp}, 8, optimizer, CostReduction.SUM).get()))
    assert isinstance(_tapes(session)[0].capture, CapturedProgram)
    assert costs == ref_costs
    for v, w in zip(variables, ref_weights):
        np.testing.assert_array_equal(session.eval(v).numpy(), w)


@needs_gpu
def test_a_returned_unbatched_cost_outlives_the_next_step() -> None:
    """An unbatched cost is returned as its own value: from a captured step, a copy, since the
    next launch overwrites the slot it was computed in."""
    math = dl.NDArrayMathGPU()
    costs, _, _ = _train(math, True, dl.SGDOptimizer(0.05), CostReduction.MEAN, unbatched_cost=True)
    ref_costs, _, _ = _train(math, False, dl.SGDOptimizer(0.05), CostReduction.MEAN, unbatched_cost=True)
    assert costs == ref_costs and len(set(costs)) > 1


def _train_dense(math: dl.NDArrayMath, captured: bool, make_optimizer: Any) -> tuple[list[float], list[np.ndarray], Session]:
    return train_dense(math, dl.InGPUMemoryShuffledInputProviderBuilder, captured, make_optimizer, fresh_feeds=True)


@needs_gpu
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_captured_dense_training_equals_kernel_by_kernel_bit_for_bit(name: str) -> None:
    """With nvmath-python the matrix products are captured too (one cuBLAS call each, the same
    kernel eager and captured): the whole step, optimizer included, is one CUDA graph and gives
    the bits of the kernel-by-kernel run, through a learning-rate change and a variable the
    user set between calls. Without it, the step runs kernel by kernel and says why."""
    from deeplearn.math.backends import cuda_gemm

    math = dl.NDArrayMathGPU()
    costs, weights, session = _train_dense(math, True, OPTIMIZERS[name])
    (program,) = _tapes(session)
    if not cuda_gemm.available():
        assert isinstance(program.capture, NotCaptured) and "mat_mul" in program.capture.why
        return
    assert isinstance(program.capture, CapturedProgram), program.capture
    ref_costs, ref_weights, ref = _train_dense(math, False, OPTIMIZERS[name])
    assert _tapes(ref)[0].capture is None
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights, strict=True):
        np.testing.assert_array_equal(w, r)


@needs_gpu
def test_captured_steps_keep_arrays_and_the_pool_flat() -> None:
    import cupy

    math = dl.NDArrayMathGPU()
    g, x, label, cost, _ = _quadratic(math)
    xp, yp = _providers()
    session, optimizer = Session(g, math), dl.MomentumOptimizer(0.01, 0.9)
    pool = cupy.get_default_memory_pool()
    feeds = {x: xp, label: yp}
    for _ in range(5):
        session.train(cost, feeds, 8, optimizer, CostReduction.MEAN)
    (tape,) = _tapes(session)
    assert isinstance(tape.capture, CapturedProgram)
    arrays, used, graph_pool = math.get_num_arrays(), pool.used_bytes(), tape.capture.pool.total_bytes()
    for _ in range(10_000):  # (a long run: a leak of one array per step would show)
        with math.scope():
            session.train(cost, feeds, 8, optimizer, CostReduction.MEAN)
    assert math.get_num_arrays() == arrays and pool.used_bytes() == used
    assert tape.capture.pool.total_bytes() == graph_pool  # the graph's own memory: fixed


@needs_gpu
def test_a_view_kept_across_a_captured_step_keeps_its_values() -> None:
    """A captured step's values live in the graph's memory, which the next launch overwrites:
    a view someone keeps of one is given a copy first, as an eager step's would keep them."""
    math = dl.NDArrayMathGPU()
    g, x, label, cost, (a, _, _) = _quadratic(math)
    xp, yp = _providers()
    session, feeds = Session(g, math), {x: xp, label: yp}
    for _ in range(3):
        session.train(cost, feeds, 8, dl.SGDOptimizer(0.05))
    assert isinstance(_tapes(session)[0].capture, CapturedProgram)
    view = session.gradient_array_map.get(a).reshape([1])
    kept = view.numpy().copy()
    session.train(cost, feeds, 8, dl.SGDOptimizer(0.05))
    assert not np.array_equal(session.gradient_array_map.get(a).numpy().reshape(1), kept)  # it moved
    np.testing.assert_array_equal(view.numpy(), kept)


@needs_gpu
def test_a_new_batch_size_records_and_captures_its_own_step() -> None:
    math = dl.NDArrayMathGPU()
    g, x, label, cost, variables = _quadratic(math)
    xp, yp = _providers()
    session = Session(g, math)
    for batch in (8, 8, 8, 4, 4, 4):
        with math.scope():
            session.train(cost, {x: xp, label: yp}, batch, dl.SGDOptimizer(0.01))
    captures = [t.capture for t in _tapes(session)]
    assert len(captures) == 2 and all(isinstance(c, CapturedProgram) for c in captures)


def test_capture_declines_programs_the_backend_cannot_record_before_touching_the_gpu(
        cpu_math: dl.NDArrayMath) -> None:
    """Runs anywhere: the check needs only the Program's ops and the CUDA backend's can_capture
    (without nvmath-python, a matrix product goes through CuPy's cuBLAS, which refuses capture)."""
    from types import SimpleNamespace

    from deeplearn.math.backends import cuda, cuda_gemm

    if cuda_gemm.available():
        pytest.skip("nvmath-python is installed: mat_mul is captured")
    g = Graph()
    x = g.placeholder("x", [3])
    cost = g.reduce_sum(g.layers.dense("d", x, 2))
    session = Session(g, cpu_math)
    for _ in range(2):
        with cpu_math.scope():
            session.train(cost, {x: ListProvider(np.ones((4, 3)))}, 2, dl.SGDOptimizer(0.1))
    (program,) = _tapes(session)
    engine = SimpleNamespace(backend=SimpleNamespace(can_capture=cuda.can_capture))
    result = capture(program, engine, [], [], [])  # type: ignore[arg-type]
    assert isinstance(result, NotCaptured) and not result and "mat_mul" in result.why
    cpu = capture(program, cpu_math.engine, [], [], [])
    assert isinstance(cpu, NotCaptured) and "captures nothing" in cpu.why


def test_every_op_whose_cuda_kernel_multiplies_matrices_through_cupy_is_not_captured() -> None:
    """The CUDA backend's can_capture decides what a CUDA-graph capture declines; an op whose
    kernel multiplies matrices through CuPy (its cuBLAS refuses capture) and that it let through
    would make every capture of its Programs fail (then run kernel by kernel). mat_mul, conv2d
    and conv2d's two derivatives have kernels of their own (their products through
    deeplearn/math/backends/cuda_gemm.py) where nvmath-python is installed; the convolutions,
    depthwise ones included, through cuDNN (cuda_cudnn.py) where its frontend is."""
    import inspect

    from deeplearn.math.backends import cuda, cuda_cudnn, cuda_gemm
    from deeplearn.math.ops.base import OPS

    gemm = {"MatMul", "Conv2D", "Conv2DDerInput", "Conv2DDerFilter"}
    depthwise = {"DepthwiseConv2D", "DepthwiseConv2DDerInput", "DepthwiseConv2DDerFilter"}
    names = gemm | depthwise
    own_kernel = {op for op in cuda.cuda_kernel.registry if op is not object and op.__name__ in names}
    assert {op.__name__ for op in own_kernel} == names
    for op in OPS:
        source = inspect.getsource(op.forward) if "forward" in vars(op) else ""
        products = any(k in source for k in (" @ ", "matmul", "einsum", "tensordot", ".dot("))
        if products and op not in own_kernel:
            instance = op.__new__(op)
            assert not cuda.can_capture(instance), f"{op.__name__}: its kernel multiplies matrices through CuPy"
    for op in own_kernel:
        expected = {
            "MatMul": cuda_gemm.available(),
            **dict.fromkeys(gemm - {"MatMul"}, cuda_gemm.available()),
            **dict.fromkeys(depthwise, cuda_cudnn.available()),
        }[op.__name__]
        assert cuda.can_capture(op.__new__(op)) == expected, op.__name__


@needs_gpu
def test_the_batch_is_gathered_inside_the_captured_step() -> None:
    """A GPU provider's batch is a gather in the step's graph: the graph reads the provider's
    examples where they are, and a call copies in only the batch's row indices."""
    math = dl.NDArrayMathGPU()
    _, _, session = _train(math, True, dl.SGDOptimizer(0.05), CostReduction.MEAN, steps=3)
    (tape,) = _tapes(session)
    captured = tape.capture
    assert isinstance(captured, CapturedProgram)
    kinds = {b.key[0]: i for i, b in enumerate(tape.bindings) if isinstance(b.key, tuple)}
    assert {"examples", "rows"} <= set(kinds)
    assert kinds["examples"] in captured.borrowed
    assert sum(type(step.op).__name__ == "Gather" for step in tape.steps) == 2  # x and the label


@needs_gpu
def test_examples_uploaded_again_are_captured_again() -> None:
    """Disposing a GPU builder's examples between calls uploads them again at the next draw:
    the captured step then reads the new copy (a new capture), and training goes on exactly
    as without capture."""
    math = dl.NDArrayMathGPU()

    def run(captured: bool) -> tuple[list[float], list[np.ndarray], list[Any]]:
        g, x, label, cost, variables = _quadratic(math)
        rng = np.random.default_rng(0)
        xs = rng.uniform(-2, 2, 64).astype(np.float32)
        builder = dl.InGPUMemoryShuffledInputProviderBuilder([xs, 2 * xs], seed=0)
        xp, yp = builder.get_input_providers()
        session = Session(g, math)
        session.capture_plans = captured
        session.fuse_kernels = False  # compared bit for bit: fused sums add in another order
        costs, graphs = [], []
        for step in range(12):
            if step == 6:
                builder.dispose()
            with math.scope():
                costs.append(float(session.train(cost, {x: xp, label: yp}, 8, dl.SGDOptimizer(0.05),
                                                 CostReduction.SUM).get()))
            graphs.append(_tapes(session)[0].capture)
        return costs, [session.eval(v).numpy() for v in variables], graphs

    costs, weights, graphs = run(True)
    ref_costs, ref_weights, _ = run(False)
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)
    assert all(isinstance(c, CapturedProgram) for c in graphs[1:])
    assert graphs[5] is graphs[1] and graphs[6] is not graphs[5] and graphs[11] is graphs[6]


def test_an_update_is_written_in_place_only_where_nothing_later_reads_the_old_value() -> None:
    """Program.writable_in_place: an update's kernel may write into the variable's buffer when
    no later kernel reads the old value; a later reader keeps the copy at the end."""
    from deeplearn.compile.program import Program, Ref, Update
    from deeplearn.math.ops.arithmetic import ScaledArrayAdd
    from deeplearn.math.ops.base import Spec
    from deeplearn.math.ops.elementwise import Relu

    def program(read_after: bool) -> Program:
        p = Program()
        w, g, c = p.bind("w", (3,), "float32"), p.bind("g", (3,), "float32"), p.bind("c", (), "float32")
        new = p.add_step(ScaledArrayAdd(), [Ref(c, None), Ref(w, None), Ref(c, None), Ref(g, None)],
                         [Spec((3,), "float32")])[0]
        if read_after:
            p.add_step(Relu(), [Ref(w, None)], [Spec((3,), "float32")])
        p.updates.append(Update("w", w, new))
        p.prepare_in_place_updates()
        return p

    assert program(False).writable_in_place() == {3: 0}
    assert program(True).writable_in_place() == {}


@needs_gpu
@pytest.mark.parametrize("make_optimizer", [lambda: dl.SGDOptimizer(0.05), lambda: dl.MomentumOptimizer(0.05, 0.9),
                                            lambda: dl.AdamOptimizer(0.05, 0.9, 0.999)],
                         ids=["sgd", "momentum", "adam"])
def test_a_captured_step_writes_its_updates_into_the_variables(make_optimizer: Any) -> None:
    """Each variable's and state's new value is written by its update kernel straight into the
    bound buffer: no copies are left for after the kernels (and the results are the replay's,
    test_captured_training_equals_the_replay_bit_for_bit)."""
    math = dl.NDArrayMathGPU()
    _, _, session = _train(math, True, make_optimizer(), CostReduction.MEAN, steps=3)
    (tape,) = _tapes(session)
    assert isinstance(tape.capture, CapturedProgram)
    assert tape.updates and tape.capture._targets == []


@needs_gpu
def test_a_convolutional_step_is_captured_and_equals_the_replay_bit_for_bit() -> None:
    """conv2d's products go through our cuBLAS handle (nvmath-python), so a step with conv2d,
    relu and max_pool is one CUDA graph; it trains exactly as the kernel-by-kernel replay."""
    from deeplearn.math.backends import cuda_gemm

    if not cuda_gemm.available():
        pytest.skip("conv2d is captured only where nvmath-python gives it a cuBLAS handle")
    math = dl.NDArrayMathGPU()

    def run(captured: bool) -> tuple[list[float], list[np.ndarray], Session]:
        rng = np.random.default_rng(0)
        g = Graph()
        x, label = g.placeholder("x", [8, 8, 1]), g.placeholder("y", [3])
        w = g.variable("w", dl.NDArray.from_numpy(rng.normal(0, 0.3, (3, 3, 1, 4)).astype(np.float32), math=math))
        b = g.variable("b", dl.Array1D.new([0.1, 0.0, -0.1, 0.2], math=math))
        h = g.max_pool(g.relu(g.conv2d(x, w, b, 3, 4, 1, 1)), 2, 2, 0)
        dense_w = rng.normal(0, 0.2, (4 * 4 * 4, 3)).astype(np.float32)
        logits = g.layers.dense("d", g.reshape(h, [4 * 4 * 4]), 3, None, True,
                                dl.NDArrayInitializer(dl.NDArray.from_numpy(dense_w, math=math)),
                                dl.ZerosInitializer())
        cost = g.softmax_cross_entropy_cost(logits, label)
        xs = rng.uniform(-1, 1, (32, 8, 8, 1)).astype(np.float32)
        ys = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
        xp, yp = dl.InGPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
        session = Session(g, math)
        session.capture_plans = captured
        session.fuse_kernels = False  # compared bit for bit: fused sums add in another order
        optimizer = dl.MomentumOptimizer(0.05, 0.9)
        costs = []
        for _ in range(12):
            with math.scope():
                costs.append(float(session.train(cost, {x: xp, label: yp}, 8, optimizer, CostReduction.MEAN).get()))
        return costs, [session.eval(v).numpy() for v in (w, b)], session

    costs, weights, session = run(True)
    (tape,) = _tapes(session)
    assert isinstance(tape.capture, CapturedProgram), tape.capture
    ref_costs, ref_weights, _ = run(False)
    assert costs == ref_costs
    for got, want in zip(weights, ref_weights):
        np.testing.assert_array_equal(got, want)


def test_two_updates_of_one_value_are_not_written_in_place() -> None:
    """Two bound inputs updated to the same value: the kernel can write into one buffer only,
    so both keep the copy at the end (writing one in place would leave the other behind)."""
    from deeplearn.compile.program import Program, Ref, Update
    from deeplearn.math.ops.arithmetic import ScaledArrayAdd
    from deeplearn.math.ops.base import Spec

    p = Program()
    v, w, c = p.bind("v", (3,), "float32"), p.bind("w", (3,), "float32"), p.bind("c", (), "float32")
    new = p.add_step(ScaledArrayAdd(), [Ref(c, None), Ref(v, None), Ref(c, None), Ref(w, None)],
                     [Spec((3,), "float32")])[0]
    p.updates += [Update("v", v, new), Update("w", w, new)]
    p.prepare_in_place_updates()
    assert p.writable_in_place() == {}


@needs_gpu
@pytest.mark.parametrize("between", [False, True], ids=["in-step", "drawn-between-steps"])
def test_the_rows_cursor_follows_the_providers_across_epochs_and_blocks(between: bool, monkeypatch: Any) -> None:
    """A captured step reads each batch's row indices where its cursor points, and moves it on
    (``deeplearn/compile/rows.py``). Over 2.5 blocks of uploaded epoch orders, with batches
    across epochs and across blocks (12 examples, batches of 7), and with batches drawn from
    the providers between steps, training equals the replay bit for bit, with no step queued
    on a host sync; in a training loop the cursor is pointed anew only where the draw left it
    (a new block, a batch across two, a draw between steps), not at every step."""
    from deeplearn.compile.rows import RowCursor
    from deeplearn.data import input_provider

    points: list[int] = []
    point = RowCursor._point
    monkeypatch.setattr(RowCursor, "_point", lambda self, source, start: (points.append(start), point(self, source, start))[1])
    math = dl.NDArrayMathGPU()
    n, batch = 12, 7
    steps = int(2.5 * input_provider._EPOCHS_AHEAD * n / batch)
    extra = range(5, steps, 37) if between else range(0)

    def run(captured: bool) -> tuple[list[float], list[np.ndarray], set[int]]:
        g, x, label, cost, variables = _quadratic(math)
        xs = np.random.default_rng(3).uniform(-2, 2, n).astype(np.float32)
        xp, yp = dl.InGPUMemoryShuffledInputProviderBuilder([xs, 1.5 * xs * xs - 0.5 * xs], seed=3).get_input_providers()
        session = Session(g, math)
        session.capture_plans = captured
        session.fuse_kernels = False  # compared bit for bit
        optimizer = dl.SGDOptimizer(0.02)
        graphs = set()
        with math.scope() as scope:
            kept = []
            for step in range(steps):
                if step in extra:  # both providers, so they stay paired: the next draw is 3 on
                    with math.scope():
                        xp.get_next_batch(math, 3), yp.get_next_batch(math, 3)
                kept.append(scope.keep(session.train(cost, {x: xp, label: yp}, batch, optimizer, CostReduction.MEAN)))
                if step:
                    graphs.add(id(_tapes(session)[0].capture))
            costs = [float(c.get()) for c in kept]
        return costs, [session.eval(v).numpy() for v in variables], graphs

    costs, weights, graphs = run(True)
    assert len(graphs) == 1  # one capture, run every step after the first
    pointed = len(points)
    ref_costs, ref_weights, _ = run(False)
    assert len(points) == pointed  # (the replay has no cursor)
    assert costs == ref_costs
    for w, r in zip(weights, ref_weights):
        np.testing.assert_array_equal(w, r)
    # The capture and its first run (the first call's arrays), the first rerun's span, then per
    # block boundary a batch across it and the new block, and a draw between steps.
    assert pointed <= 3 + 2 * 2 + 2 * len(extra), points


@needs_gpu
def test_launches_the_rows_cursor_was_not_fed_for_stay_within_its_rows() -> None:
    """A profiler launches a captured graph back to back, without the Session
    (``bench/profiling.py``): the cursor starts again from the first row rather than read
    past the last, and once told it is lost, the next call points it anew where its draw is."""
    import cupy

    math = dl.NDArrayMathGPU()
    g, x, label, cost, _ = _quadratic(math)
    xp, yp = _providers()
    session = Session(g, math)
    optimizer = dl.SGDOptimizer(0.01)
    for _ in range(3):
        session.train(cost, {x: xp, label: yp}, 8, optimizer)
    (tape,) = _tapes(session)
    captured = tape.capture
    ((_, cursor),) = captured._cursors
    size = int(cursor.state[2].get())
    stream = cupy.cuda.get_current_stream()
    for _ in range(3 * size // 8 + 5):
        captured.graph.launch(stream)
    _, at, size_after = (int(v) for v in cursor.state.get())
    assert size_after == size and 0 < at <= size
    cursor.lost()
    session.train(cost, {x: xp, label: yp}, 8, optimizer)
    start = xp.builder._positions[0] - 8
    flat = next(iter(xp.builder._device_orders.values()))[1]
    assert cursor._source is flat and int(cursor.state[1].get()) == start + 8  # (in the first block)


@needs_gpu
def test_a_collection_during_a_capture_cannot_break_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage that only the collector frees, whose freeing waits for the device (a dropped
    Session's memory pool, its cuBLAS handle), made just as a capture begins, with the
    collector set to run at every allocation: the capture holds it off, so the step is still
    captured (without that, the wait inside the capture failed it)."""
    import gc

    import cupy

    class _WaitsForTheDevice:
        def __init__(self) -> None:
            self.cycle = self  # only the collector frees it

        def __del__(self) -> None:
            cupy.cuda.runtime.deviceSynchronize()

    begin = cupy.cuda.Stream.begin_capture

    def begin_among_garbage(self: Any, *args: Any) -> Any:
        out = begin(self, *args)
        for _ in range(20):
            _WaitsForTheDevice()
        return out

    monkeypatch.setattr(cupy.cuda.Stream, "begin_capture", begin_among_garbage)
    math = dl.NDArrayMathGPU()
    g, x, label, cost, _ = _quadratic(math)
    xp, yp = _providers()
    session, optimizer = Session(g, math), dl.SGDOptimizer(0.01)
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        for _ in range(3):
            session.train(cost, {x: xp, label: yp}, 8, optimizer, CostReduction.MEAN)
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    (tape,) = _tapes(session)
    assert isinstance(tape.capture, CapturedProgram), tape.capture
    assert gc.isenabled()


def test_captures_collect_first_and_hold_the_collector_off_until_they_end() -> None:
    """``_no_collection``, which every capture runs in: garbage in reference cycles is freed on
    entry, no collection starts inside, and the collector is as it was afterwards (disabled if
    the caller had disabled it), an exception included."""
    import gc

    from deeplearn.compile.cuda_graph import _no_collection

    freed: list[bool] = []

    class _Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            freed.append(True)

    assert gc.isenabled()
    _Cycle()
    with _no_collection():
        assert freed == [True] and not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), _no_collection():
        raise RuntimeError("a failed capture")
    assert gc.isenabled()
    gc.disable()
    try:
        with _no_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
