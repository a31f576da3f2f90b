"""conv2d and its derivatives through cuDNN (``deeplearn/math/backends/cuda_cudnn.py``), on a GPU
with the cuDNN frontend installed: against a float64 NumPy oracle, the same bits on every call,
and cuDNN (not the im2col fallback) is what ran."""

from __future__ import annotations

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_cudnn, cuda_gemm, cuda_timing
from deeplearn.math.ops.conv import (
    Conv2D,
    Conv2DDerFilter,
    Conv2DDerInput,
    DepthwiseConv2D,
    DepthwiseConv2DDerFilter,
    DepthwiseConv2DDerInput,
)

pytestmark = pytest.mark.skipif(
    not (cuda.is_available() and cuda_cudnn.available()), reason="needs a GPU and the cuDNN frontend"
)


@pytest.fixture(autouse=True)
def _cudnn_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run cuDNN's plans: the generic kernel does not compete (where it would win,
    a test would run it instead; ``test_a_generic_kernel_timed_faster_runs_the_geometry`` checks
    that path)."""
    monkeypatch.setattr(cuda_cudnn, "generic_rivals", False)
    # Planned afresh here: an earlier test's process-wide choice may be the generic kernel.
    monkeypatch.setattr(cuda_cudnn, "_PLANS", {})
    monkeypatch.setattr(cuda_cudnn, "plan_log", {})


# (input [b, h, w, c], filter [fH, fW, in, out] (depthwise: [fH, fW, in, multiplier]), strides,
# pad, depthwise)
GEOMETRIES = [
    ((64, 28, 28, 1), (5, 5, 1, 32), 1, "same", False),  # the cnn workload's two layers
    ((64, 14, 14, 32), (5, 5, 32, 64), 1, "same", False),
    ((2, 9, 7, 3), (3, 2, 3, 4), 2, "same", False),  # odd sizes, non-square, asymmetric padding
    ((3, 8, 8, 2), (3, 3, 2, 5), 1, "valid", False),
    ((1, 10, 11, 4), (4, 4, 4, 3), (2, 3), 1, False),
    ((6, 6, 3), (2, 2, 3, 2), 1, 0, False),  # one image, rank 3
    ((8, 14, 14, 16), (3, 3, 16, 1), 1, "same", True),  # MobileNet's depthwise layers
    ((4, 15, 15, 8), (3, 3, 8, 1), 2, "same", True),
    ((2, 9, 8, 3), (3, 2, 3, 2), 1, "valid", True),  # a channel multiplier of 2
    ((8, 8, 4), (2, 2, 4, 3), 2, 1, True),
    ((2, 8, 8, 3), (3, 3, 3, 4), 2, "valid", False),  # windows that leave the last row unread
    ((2, 9, 9, 3), (2, 2, 3, 4), 3, "same", False),  # a filter smaller than the stride
]


def _ids(g: tuple) -> str:
    return f"{'depthwise-' if g[4] else ''}x{g[0]}-f{g[1]}-s{g[2]}-p{g[3]}"


def _planned(kind: str, op: object, geometry: tuple) -> str | None:
    """The name of the kernel kept for ``op`` on ``geometry``: a cuDNN plan's, ``"generic"``
    (the backend's own, timed faster), or None (not planned: cuDNN did not run it)."""
    x_shape, f_shape, depthwise = geometry[0], geometry[1], geometry[4]
    info = op.conv_info((1, *x_shape) if len(x_shape) == 3 else x_shape, f_shape, depthwise)  # type: ignore[attr-defined]
    return cuda_cudnn.plan_log.get(cuda_cudnn._geometry(kind, info, depthwise))


def _ran_cudnn(kind: str, op: object, geometry: tuple) -> bool:
    return _planned(kind, op, geometry) not in (None, "generic")


def _oracle(op: object, *arrays: np.ndarray) -> np.ndarray:
    return op.forward(np, *(a.astype(np.float64) for a in arrays))  # type: ignore[attr-defined]


def _ops(geometry: tuple) -> list[tuple[object, tuple[np.ndarray, ...]]]:
    x_shape, f_shape, strides, pad, depthwise = geometry
    forward, der_input, der_filter = (
        (DepthwiseConv2D, DepthwiseConv2DDerInput, DepthwiseConv2DDerFilter)
        if depthwise
        else (Conv2D, Conv2DDerInput, Conv2DDerFilter)
    )
    rng = np.random.default_rng(sum(x_shape) + sum(f_shape))
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(f_shape).astype(np.float32)
    fwd = forward(strides=strides, pad=pad)
    y = fwd.forward(np, x, w)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    return [
        (fwd, (x, w)),
        (der_input(in_shape=x_shape, strides=strides, pad=pad), (dy, w)),
        (der_filter(filter_shape=f_shape, strides=strides, pad=pad), (x, dy)),
    ]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_ids)
def test_cudnn_convolutions_match_the_float64_oracle_and_repeat_their_bits(geometry: tuple) -> None:
    import cupy

    ops = _ops(geometry)
    for (op, arrays), kind in zip(ops, ("fprop", "dgrad", "wgrad"), strict=True):
        device = [cupy.asarray(a) for a in arrays]
        got = cuda.cuda_kernel(op, *device)
        assert _ran_cudnn(kind, op, geometry), f"{op.name}: cuDNN did not run {geometry}"  # type: ignore[attr-defined]
        want = _oracle(op, *arrays)
        assert got.shape == want.shape and got.dtype == np.float32
        scale = np.abs(want).max() + 1e-30
        err = np.abs(cupy.asnumpy(got) - want).max() / scale
        # fp32 sums of at most fH·fW·in or b·outH·outW products (no TF32: that errs by ~1e-3)
        assert err < 1e-5, f"{op.name} {geometry}: relative error {err:.2e}"  # type: ignore[attr-defined]
        again = cuda.cuda_kernel(op, *device)
        assert np.array_equal(cupy.asnumpy(again), cupy.asnumpy(got)), "the same bits on every call"


def test_cudnn_convolution_records_into_a_cuda_graph() -> None:
    import cupy

    (fwd, (x, w)), *_ = _ops(GEOMETRIES[1])
    x_d, w_d = cupy.asarray(x), cupy.asarray(w)
    pool = cupy.cuda.MemoryPool()  # as a captured Program has: the capture allocates from its cache
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        eager = cuda.cuda_kernel(fwd, x_d, w_d)  # plans the geometry (timing cannot be captured)
        assert _ran_cudnn("fprop", fwd, GEOMETRIES[1])
        del eager
        eager = cuda.cuda_kernel(fwd, x_d, w_d)
        stream.begin_capture()
        captured = cuda.cuda_kernel(fwd, x_d, w_d)
        graph = stream.end_capture()
        captured.fill(0)
        graph.launch(stream)
    stream.synchronize()
    assert np.array_equal(cupy.asnumpy(captured), cupy.asnumpy(eager))


def test_a_view_at_any_address_is_copied_to_one_cudnn_accepts() -> None:
    import cupy

    (fwd, (x, w)), *_ = _ops(GEOMETRIES[2])
    buffer = cupy.zeros(x.size + 1, np.float32)
    buffer[1:] = cupy.asarray(x).reshape(-1)
    view = buffer[1:].reshape(x.shape)  # 4 bytes past an aligned address
    assert view.data.ptr % 16
    got = cuda.cuda_kernel(fwd, view, cupy.asarray(w))
    assert np.array_equal(
        cupy.asnumpy(got), cupy.asnumpy(cuda.cuda_kernel(fwd, cupy.asarray(x), cupy.asarray(w)))
    )


def test_threads_that_meet_a_new_geometry_together_keep_one_plan() -> None:
    import threading

    import cupy

    x = cupy.asarray(np.random.default_rng(5).standard_normal((5, 13, 11, 6)).astype(np.float32))
    w = cupy.asarray(np.random.default_rng(6).standard_normal((3, 3, 6, 7)).astype(np.float32))
    fwd = Conv2D(strides=1, pad="same")
    results: list[np.ndarray] = []

    def call() -> None:
        y = cuda.cuda_kernel(fwd, x, w)
        cupy.cuda.get_current_stream().synchronize()
        results.append(cupy.asnumpy(y))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, results[0]) for r in results)
    assert _ran_cudnn("fprop", fwd, ((5, 13, 11, 6), (3, 3, 6, 7), 1, "same", False))


@pytest.mark.parametrize("timed", [False, True], ids=["first-that-agrees", "timed"])
def test_either_rule_keeps_a_plan_that_matches_the_oracle(
    timed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``benchmark`` False keeps the first plan that agrees, True times them (``cuda_timing.pick``): both
    keep one whose filter gradient is right, on a geometry no other test planned."""
    import cupy

    geometry = ((16, 12, 12, 8), (3, 3, 8, 16), 1, "same", False)
    monkeypatch.setattr(cuda_cudnn, "benchmark", timed)
    monkeypatch.setattr(cuda_cudnn, "_PLANS", {})  # planned afresh, then forgotten
    monkeypatch.setattr(cuda_cudnn, "plan_log", {})
    op, (x, dy) = _ops(geometry)[2]
    got = cupy.asnumpy(cuda.cuda_kernel(op, cupy.asarray(x), cupy.asarray(dy)))
    assert _ran_cudnn("wgrad", op, geometry)
    want = _oracle(op, x, dy)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-5


@pytest.mark.skipif(not cuda_gemm.available(), reason="the im2col product (the rival) needs nvmath-python")
def test_a_generic_kernel_timed_faster_runs_the_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where timing keeps the backend's own kernel (``GENERIC``), the geometry runs that: the
    right result, and ``plan_log`` says so."""
    import cupy

    geometry = ((16, 12, 12, 8), (3, 3, 8, 16), 1, "same", False)
    monkeypatch.setattr(cuda_cudnn, "generic_rivals", True)
    monkeypatch.setattr(cuda_cudnn, "benchmark", True)
    monkeypatch.setattr(cuda_cudnn, "_PLANS", {})
    monkeypatch.setattr(cuda_cudnn, "plan_log", {})
    timed: list[list[tuple[int, float]]] = []

    def generic_wins(candidates: list[tuple[int, float]]) -> int:
        timed.append(list(candidates))
        return cuda_cudnn.GENERIC

    monkeypatch.setattr(cuda_timing, "pick", generic_wins)
    for (op, arrays), kind in zip(_ops(geometry), ("fprop", "dgrad", "wgrad"), strict=True):
        got = cupy.asnumpy(cuda.cuda_kernel(op, *(cupy.asarray(a) for a in arrays)))
        assert _planned(kind, op, geometry) == "generic"
        want = _oracle(op, *arrays)
        assert np.abs(got - want).max() / np.abs(want).max() < 1e-5
    # each geometry timed its plans and, last, the generic kernel
    assert len(timed) == 3 and all(t[-1][0] == cuda_cudnn.GENERIC and len(t) > 1 for t in timed)
