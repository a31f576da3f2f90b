"""Memory scopes: what is disposed when a scope ends, and proof that loops in scopes do not leak.

Every test keeps Python references to the arrays it counts, so garbage collection cannot hide a
leak: a live-array count only goes down here because a scope (or ``dispose``) freed the data.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import Array1D, NDArray, Scalar
from deeplearn.math.ndarray_math import SAFE_MODE_MESSAGE
from deeplearn.types import DisposedError


@pytest.fixture
def base(math: dl.NDArrayMath) -> Iterator[int]:
    """The live-array count on ``math``'s backend before the test (after a collection, so that
    garbage of earlier tests cannot be freed during this one)."""
    gc.collect()
    yield math.get_num_arrays()


# -- the context-manager form --------------------------------------------------------------------


def test_context_scope_disposes_what_it_created(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([1, -2, 3])
    with math.scope():
        a = Array1D.new([4, 5, 6])  # constructed arrays are tracked too (0.3.14+)
        y = math.relu(x)
        z = math.exp(y)
        assert math.get_num_arrays() == base + 4
    assert math.get_num_arrays() == base + 1
    assert a.is_disposed and y.is_disposed and z.is_disposed
    assert not x.is_disposed
    with pytest.raises(DisposedError):
        z.get(0)


def test_context_scope_keep(math: dl.NDArrayMath, base: int) -> None:
    with math.scope() as scope:
        kept = scope.keep(math.relu(Array1D.new([-1, 2])))
        kept2 = math.keep(math.exp(Scalar.new(0)))
        dropped = math.exp(Scalar.new(1))
    assert math.get_num_arrays() == base + 2
    np.testing.assert_array_equal(kept.get_values(), [0, 2])
    assert kept2.get() == 1.0
    assert dropped.is_disposed
    # A kept array belongs to no scope: an outer scope does not dispose it either.
    with math.scope():
        with math.scope() as inner:
            k = inner.keep(Array1D.new([1]))
    assert not k.is_disposed
    for a in (kept, kept2, k):
        a.dispose()
    assert math.get_num_arrays() == base


def test_scope_disposes_when_the_body_raises(math: dl.NDArrayMath, base: int) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with math.scope():
            y = math.exp(Array1D.new([1, 2]))
            raise RuntimeError("boom")
    assert y.is_disposed
    assert math.get_num_arrays() == base


# -- the callable form ---------------------------------------------------------------------------


def test_callable_scope_returns_an_ndarray(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([0, 1])
    seen: list[NDArray] = []

    def body(keep: Any, track: Any) -> NDArray:
        e = math.exp(x)
        seen.append(e)
        return math.relu(e)

    y = math.scope(body)
    assert isinstance(y, Array1D)
    np.testing.assert_allclose(y.get_values(), [1, np.e], rtol=1e-6)
    assert seen[0].is_disposed
    assert math.get_num_arrays() == base + 2


@pytest.mark.parametrize("form", ["list", "tuple", "dict"])
def test_callable_scope_returns_a_container(math: dl.NDArrayMath, base: int, form: str) -> None:
    x = Array1D.new([1, 2])
    dropped: list[NDArray] = []

    def body(keep: Any, track: Any) -> Any:
        a, b = math.exp(x), math.relu(x)
        dropped.append(math.exp(a))
        if form == "list":
            return [a, b]
        if form == "tuple":
            return (a, b)
        return {"a": a, "b": b}

    result = math.scope(body)
    a, b = (result["a"], result["b"]) if form == "dict" else result
    assert not a.is_disposed and not b.is_disposed
    assert dropped[0].is_disposed
    assert math.get_num_arrays() == base + 3


def test_callable_scope_keep_and_track(math: dl.NDArrayMath, base: int) -> None:
    outside = Array1D.new([1, 2, 3])  # made outside every scope: untracked
    kept: list[NDArray] = []

    def body(keep: Any, track: Any) -> None:
        track(outside)  # now this scope disposes it
        kept.append(keep(math.exp(outside)))
        math.relu(outside)

    assert math.scope(body) is None
    assert outside.is_disposed
    assert not kept[0].is_disposed
    assert math.get_num_arrays() == base + 1
    kept[0].dispose()


def test_coroutine_scope_is_awaitable(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([1, 2])
    inner: list[NDArray] = []

    async def body(keep: Any, track: Any) -> NDArray:
        e = math.exp(x)
        inner.append(e)
        await asyncio.sleep(0)
        values = await e.data()  # reading inside the scope, before it ends
        assert values.shape == (2,)
        return math.relu(e)

    awaitable = math.scope(body)
    assert asyncio.iscoroutine(awaitable)
    y = asyncio.run(awaitable)
    np.testing.assert_allclose(y.get_values(), np.exp([1, 2]), rtol=1e-6)
    assert inner[0].is_disposed
    assert math.get_num_arrays() == base + 2


def test_start_scope_end_scope(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([1, 2])
    math.start_scope()
    e = math.exp(x)
    r = math.relu(e)
    math.end_scope(r)
    assert e.is_disposed and not r.is_disposed
    assert math.get_num_arrays() == base + 2
    with pytest.raises(RuntimeError, match="no scope is open"):
        math.end_scope()


# -- nesting -------------------------------------------------------------------------------------


def test_nested_scopes_move_results_to_the_parent(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([1, 2, 3])
    with math.scope():
        inner = math.scope(lambda keep, track: math.exp(math.relu(x)))
        # the inner relu was disposed; its result now belongs to this (outer) scope
        assert math.get_num_arrays() == base + 2
        assert not inner.is_disposed
    assert inner.is_disposed
    assert math.get_num_arrays() == base + 1


def test_returned_value_survives_every_level(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([1])

    def level(depth: int) -> Any:
        def body(keep: Any, track: Any) -> NDArray:
            y = math.exp(x) if depth == 0 else math.scope(level(depth - 1))
            math.relu(y)  # garbage at every level
            return y

        return body

    y = math.scope(level(3))
    assert y.get(0) == pytest.approx(np.e)
    assert math.get_num_arrays() == base + 2


def test_returned_view_keeps_the_data(math: dl.NDArrayMath, base: int) -> None:
    made: list[NDArray] = []

    def body(keep: Any, track: Any) -> NDArray:
        a = math.exp(Array1D.new([0, 0, 0, 0]))
        made.append(a)
        return a.reshape([2, 2])  # a view of a, which is not returned

    view = math.scope(body)
    assert made[0].is_disposed  # the unreturned view is disposed...
    np.testing.assert_array_equal(view.get_values(), [1, 1, 1, 1])  # ...its data is not
    assert math.get_num_arrays() == base + 1
    view.dispose()
    assert math.get_num_arrays() == base


def test_views_free_the_data_only_when_all_are_disposed(math: dl.NDArrayMath, base: int) -> None:
    a = Array1D.new([1, 2, 3, 4, 5, 6])
    views = [a.reshape([2, 3]), a.reshape([3, 2]), a.as3d(1, 2, 3)]
    assert math.get_num_arrays() == base + 1
    nbytes = dl.memory()["backends"][math.backend.name]["num_bytes"]
    for v in [a, *views[:-1]]:
        v.dispose()
        assert math.get_num_arrays() == base + 1
        assert views[-1].get(0, 1, 2) == 6.0
    views[-1].dispose()
    assert math.get_num_arrays() == base
    assert dl.memory()["backends"][math.backend.name]["num_bytes"] == nbytes - 6 * 4


# -- counting ------------------------------------------------------------------------------------


def test_memory_reports_arrays_and_bytes(math: dl.NDArrayMath, base: int) -> None:
    name = math.backend.name
    before = dl.memory()
    a = NDArray.zeros([10], "float32")
    b = NDArray.zeros([10], "int32")
    c = NDArray.zeros([10], "bool")
    after = dl.memory()
    assert after["num_arrays"] == before["num_arrays"] + 3
    assert after["num_bytes"] == before["num_bytes"] + 40 + 40 + 10
    assert after["backends"][name]["num_arrays"] == base + 3
    for x in (a, b, c):
        x.dispose()
    assert dl.memory()["num_bytes"] == before["num_bytes"]


def test_loop_of_ops_in_a_scope_does_not_leak(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new(np.linspace(-1, 1, 16))
    results: list[NDArray] = []  # references: only disposal can bring the count back down
    for i in range(1000):
        with math.scope():
            y = math.relu(math.exp(x))
            z = math.exp(math.relu(y.reshape([4, 4])))
            results.append(z)
            results.append(Scalar.new(i))
    assert math.get_num_arrays() == base + 1
    assert all(r.is_disposed for r in results)


def test_loop_inside_one_scope_does_not_leak(math: dl.NDArrayMath, base: int) -> None:
    x = Array1D.new([0.5, -0.5])
    results: list[NDArray] = []

    def body(keep: Any, track: Any) -> NDArray:
        y = x
        for _ in range(1000):
            y = math.relu(math.exp(y))
            results.append(y)
        assert math.get_num_arrays() == base + 1 + 2000
        return y

    final = math.scope(body)
    assert math.get_num_arrays() == base + 2
    assert sum(not r.is_disposed for r in results) == 1  # the returned one
    assert not final.is_disposed


# -- safe mode, debug mode, threads --------------------------------------------------------------


def test_safe_mode_requires_a_scope(math: dl.NDArrayMath) -> None:
    safe = dl.NDArrayMath(math.backend, safe_mode=True)
    x = Array1D.new([1, 2])
    with pytest.raises(RuntimeError) as info:
        safe.exp(x)
    assert str(info.value) == SAFE_MODE_MESSAGE
    assert "You are using math in safe mode. Enclose all math.method() calls inside a scope" in SAFE_MODE_MESSAGE
    with pytest.raises(RuntimeError, match="safe mode"):
        safe.keep(x)
    with safe.scope():
        y = safe.keep(safe.exp(x))
    assert y.get(0) == pytest.approx(np.e)
    y.dispose()
    x.dispose()


def test_debug_mode_raises_naming_the_op(math: dl.NDArrayMath) -> None:
    debug = dl.NDArrayMath(math.backend)
    debug.enable_debug_mode()
    with debug.scope():
        ok = debug.relu(Array1D.new([1, -1]))
        np.testing.assert_array_equal(ok.get_values(), [1, 0])
        with pytest.raises(ValueError, match=r"math\.relu has NaNs"):
            debug.relu(Array1D.new([2, float("nan")]))
        debug.disable_debug_mode()
        y = debug.relu(Array1D.new([2, float("nan")]))
        assert np.isnan(y.get(1))


def test_scopes_are_per_thread(math: dl.NDArrayMath, base: int) -> None:
    made_in_thread: list[NDArray] = []
    thread_scope_result: list[bool] = []
    main_array = Array1D.new([1])
    started, finish = threading.Event(), threading.Event()

    def worker() -> None:
        made_in_thread.append(Array1D.new([1, 2]))  # no scope open in this thread
        with math.scope():
            math.exp(Array1D.new([3]))
            started.set()
            finish.wait(5)
        thread_scope_result.append(main_array.is_disposed)

    with math.scope():
        mine = math.exp(main_array)
        t = threading.Thread(target=worker)
        t.start()
        assert started.wait(5)
    # The main scope ended while the thread's scope was open: neither touched the other.
    finish.set()
    t.join(5)
    assert mine.is_disposed
    assert not made_in_thread[0].is_disposed
    assert thread_scope_result == [False]
    assert math.get_num_arrays() == base + 2


def test_coroutine_scopes_gathered_together_keep_their_own_results(math: dl.NDArrayMath, base: int) -> None:
    """Two math.scope(coroutine) under one asyncio.gather interleave at every await: each task
    has its own scope stack (contextvars), so neither disposes what the other made or returns."""

    def scoped(value: float) -> Any:
        async def body() -> NDArray:
            x = Array1D.new([value, value])
            await asyncio.sleep(0)  # the other tasks open their scopes and make arrays here
            y = math.add(x, x)
            await asyncio.sleep(0)  # ... and end their scopes here, before this one does
            return math.multiply(y, x)

        return math.scope(body)

    async def main() -> list[NDArray]:
        return list(await asyncio.gather(scoped(1.0), scoped(2.0), scoped(3.0)))

    results = asyncio.run(main())
    assert [r.is_disposed for r in results] == [False, False, False]
    assert [r.get_values().tolist() for r in results] == [[2.0, 2.0], [8.0, 8.0], [18.0, 18.0]]
    assert math.get_num_arrays() == base + 3  # every intermediate was disposed by its own scope
    for r in results:
        r.dispose()


def test_context_scopes_in_gathered_coroutines_are_independent(math: dl.NDArrayMath, base: int) -> None:
    """The ``with math.scope()`` form and start_scope/end_scope, open across awaits in tasks
    gathered together: each task ends its own scope, not the one another task opened last."""

    async def with_form(value: float) -> NDArray:
        with math.scope() as scope:
            x = Array1D.new([value])
            await asyncio.sleep(0)
            y = scope.keep(math.add(x, x))
            await asyncio.sleep(0)
        assert x.is_disposed
        return y  # type: ignore[no-any-return]

    async def start_end_form(value: float) -> NDArray:
        math.start_scope()
        x = Array1D.new([value])
        await asyncio.sleep(0)
        y = math.multiply(x, x)
        await asyncio.sleep(0)
        math.end_scope(y)
        assert x.is_disposed
        return y

    async def main() -> list[NDArray]:
        return list(await asyncio.gather(with_form(1.0), start_end_form(3.0), with_form(2.0), start_end_form(4.0)))

    results = asyncio.run(main())
    assert [r.get(0) for r in results] == [2.0, 9.0, 4.0, 16.0]
    assert math.get_num_arrays() == base + 4
    for r in results:
        r.dispose()


def test_a_task_started_inside_a_scope_hands_its_result_to_that_scope(math: dl.NDArrayMath, base: int) -> None:
    """A task inherits the scopes open where it was created: its scope's result moves to the
    creator's scope, which disposes it at its end unless it is kept."""

    async def child() -> NDArray:
        async def body() -> NDArray:
            await asyncio.sleep(0)
            return math.exp(Array1D.new([0.0]))

        return await math.scope(body)  # type: ignore[no-any-return]

    async def main() -> tuple[NDArray, NDArray]:
        with math.scope() as scope:
            dropped, kept = await asyncio.gather(child(), child())
            scope.keep(kept)
            assert not dropped.is_disposed
        return dropped, kept

    dropped, kept = asyncio.run(main())
    assert dropped.is_disposed and not kept.is_disposed
    assert kept.get(0) == 1.0
    kept.dispose()
    assert math.get_num_arrays() == base


def test_a_new_thread_starts_with_no_open_scope(cpu_math: dl.NDArrayMath) -> None:
    """Scopes are per context, and a new thread starts with an empty one: a scope open in the
    main thread does not track what the thread makes."""
    made: list[NDArray] = []
    with cpu_math.scope():
        t = threading.Thread(target=lambda: made.append(Array1D.new([1.0])))
        t.start()
        t.join()
    assert not made[0].is_disposed
    made[0].dispose()


def test_a_returned_array_the_scope_did_not_own_keeps_its_owner(cpu_math: dl.NDArrayMath) -> None:
    """Returning an array made outside the scope, or a kept one, must not hand it to the parent
    scope (which would dispose it)."""
    outside = dl.Array1D.new([1, 2])
    with cpu_math.scope():
        cpu_math.scope(lambda keep, track: outside)
    assert not outside.is_disposed
    with cpu_math.scope():
        kept = cpu_math.scope(lambda keep, track: keep(cpu_math.add(dl.Array1D.new([1.0]), dl.Array1D.new([2.0]))))
    assert not kept.is_disposed
    with cpu_math.scope():
        moved = cpu_math.scope(lambda keep, track: cpu_math.add(dl.Array1D.new([1.0]), dl.Array1D.new([2.0])))
        assert not moved.is_disposed
    assert moved.is_disposed  # owned by the inner scope, so handed to the outer one, which disposed it


def test_a_scope_used_as_a_decorator_runs_each_call_in_a_scope_of_its_own(cpu_math: dl.NDArrayMath) -> None:
    made: list[NDArray] = []

    @cpu_math.scope()
    def step(value: float) -> float:
        made.append(dl.Scalar.new(value))
        return value * 2

    assert (step(1.0), step(2.0)) == (2.0, 4.0)
    assert len(made) == 2 and all(x.is_disposed for x in made)
    assert step.__name__ == "step"


def test_scope_functions_may_take_fewer_arguments(cpu_math: dl.NDArrayMath) -> None:
    """As in JavaScript, math.scope(() => ...) and math.scope((keep) => ...) work."""
    before = cpu_math.get_num_arrays()
    y = cpu_math.scope(lambda: cpu_math.square(dl.Scalar.new(3)))
    z = cpu_math.scope(lambda keep: keep(cpu_math.square(dl.Scalar.new(4))))
    assert (y.get(), z.get()) == (9.0, 16.0)
    assert cpu_math.get_num_arrays() == before + 2


def _positional_only(a, /, b):  # type: ignore[no-untyped-def]  # (keep, track) by position only
    return None


def _with_keywords(keep, *, flag=True):  # type: ignore[no-untyped-def]
    return None


def _decorated(keep):  # type: ignore[no-untyped-def]
    return None


@functools.wraps(_decorated)
def _wrapper(*args):  # type: ignore[no-untyped-def]  # inspect follows __wrapped__: one parameter
    return None


class _Callable:
    def __call__(self, keep):  # type: ignore[no-untyped-def]
        return None


@pytest.mark.parametrize(
    "fn",
    [
        lambda: None,
        lambda keep: None,
        lambda keep, track: None,
        lambda keep, track, extra=1: None,
        lambda *args: None,
        lambda keep, *rest: None,
        _positional_only,
        _with_keywords,
        _wrapper,
        _Callable(),
        _Callable().__call__,
        functools.partial(lambda keep, track: None),
        print,
    ],
)
def test_the_arguments_a_scope_function_gets_are_those_its_signature_takes(
    cpu_math: dl.NDArrayMath, fn: Any
) -> None:
    """(keep, track) cut to the function's positional parameters, read from its code for a
    plain function and from inspect.signature otherwise: both ways agree."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
        varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        count = len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    except (TypeError, ValueError):
        varargs, count = True, 2
    want = (cpu_math.keep, cpu_math.track) if varargs else (cpu_math.keep, cpu_math.track)[:count]
    assert cpu_math._scope_args(fn) == want


def test_an_array_collected_while_the_registry_is_locked_does_not_deadlock(cpu_math: dl.NDArrayMath) -> None:
    """A garbage collection can start at any allocation, also inside the registry's locked
    sections; a Storage it frees releases its count under the same lock (reentrant)."""
    import gc
    import threading

    from deeplearn.math.scope import REGISTRY

    def collect_under_the_lock() -> None:
        cycle: list[object] = [dl.Array1D.new([1.0, 2.0])]
        cycle.append(cycle)  # only the cyclic collector frees it
        del cycle
        with REGISTRY._lock:
            gc.collect()

    worker = threading.Thread(target=collect_under_the_lock, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "the registry deadlocked on a collection inside its lock"


def test_scopes_and_training_make_no_reference_cycles(math: dl.NDArrayMath) -> None:
    """Arrays are freed when the last reference goes, never left for the garbage collector
    (which would hold GPU memory and make the collector run often): eager math in scopes,
    keep(), and Session.train leave nothing unreachable behind."""

    g = dl.Graph()
    x = g.placeholder("x", [3])
    label = g.placeholder("label", [2])
    cost = g.mean_squared_cost(g.layers.dense("d", x, 2, lambda t: g.relu(t)), label)
    data = np.random.default_rng(0)
    xs, ys = dl.InCPUMemoryShuffledInputProviderBuilder(
        [data.standard_normal((8, 3)), data.standard_normal((8, 2))], seed=0).get_input_providers()
    session, optimizer = dl.Session(g, math), dl.MomentumOptimizer(0.1, 0.9)
    a = dl.Array1D.new([1.0, 2.0, 3.0])
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            with math.scope() as scope:
                scope.keep(math.add(a, a)).dispose()
                math.scope(lambda keep, track: [math.relu(a), {"y": math.exp(a)}])
                session.train(cost, {x: xs, label: ys}, 4, optimizer, dl.CostReduction.MEAN).get()
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        leaked = sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, f"unreachable objects left for the garbage collector: {leaked}"
