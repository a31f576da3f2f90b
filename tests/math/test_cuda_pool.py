"""The pooling kernels of ``deeplearn/math/backends/cuda_pool.py``, on a GPU: bit for bit what the
generic forwards compute with CuPy (``op.forward(cupy, ...)``) over 3-D and 4-D images, windows,
strides and pads, on data with NaN, ±inf, ties and -0.0; close to the NumPy forwards; recorded
into a CUDA graph; and None where a kernel does not apply."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_pool
from deeplearn.math.ops.conv import unbatched
from deeplearn.math.ops.pool import AvgPool, AvgPoolBackprop, MaxPool, MaxPoolBackprop, MinPool, PoolOp
from deeplearn.types import ShapeError

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda.is_available(), reason="needs CuPy and an NVIDIA GPU"),
]

FORWARDS = [(MaxPool, cuda_pool.max_pool), (MinPool, cuda_pool.min_pool), (AvgPool, cuda_pool.avg_pool)]
BACKPROPS = [
    (MaxPoolBackprop, cuda_pool.max_pool_backprop),
    (AvgPoolBackprop, cuda_pool.avg_pool_backprop),
]
KERNELS = FORWARDS + BACKPROPS
DTYPES = ["float32", "float64"]
KINDS = ["random", "special", "hollow"]


def _name(value: Any) -> str:
    return value.__name__ if hasattr(value, "__name__") else str(value)


def _valid(shape: tuple[int, ...], f: Any, s: Any, pad: Any) -> bool:
    try:
        MaxPool(filter_size=f, strides=s, pad=pad).pool_info(shape)
    except (ShapeError, ValueError):
        return False
    return True


# (x shape, filter_size, strides, pad): every combination the geometry rules accept (~460):
# rank 3 and 4, square and non-square windows, overlapping (stride < window) and gapped (stride >
# window) ones, numeric pads that leave whole windows in the padding, 'same' with its extra pixel.
GEOMETRIES = [
    g
    for g in itertools.product(
        [(5, 5, 3), (4, 7, 2), (2, 6, 6, 3), (3, 7, 5, 2), (1, 1, 1, 1), (2, 1, 4, 1)],
        [1, 2, 3, (2, 3), (3, 1)],
        [1, 2, 3, (1, 2), (3, 2)],
        [0, 1, 2, "same", "valid"],
    )
    if _valid(*g)
]


def _data(shape: tuple[int, ...], dtype: str, kind: str, seed: int) -> np.ndarray:
    """``random``: normal values. ``special``: small integers (many ties), +0.0 and -0.0, NaN,
    -inf, +inf. ``hollow``: mostly -inf and NaN (windows with nothing above -inf, NaN-only windows),
    a few values."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.standard_normal(shape).astype(dtype)
    pick = rng.random(shape)
    if kind == "special":
        x = rng.integers(-2, 3, size=shape).astype(dtype)
        x[pick < 0.25] = -0.0
        x[pick < 0.15] = np.inf
        x[pick < 0.12] = -np.inf
        x[pick < 0.06] = np.nan
        return x
    x = np.full(shape, -np.inf, dtype=dtype)
    x[pick < 0.3] = np.nan
    x[pick > 0.85] = rng.integers(-1, 2, size=int((pick > 0.85).sum()))
    x[pick > 0.95] = -0.0
    return x


def _inputs(op: PoolOp, shape: tuple[int, ...], dtype: str, kind: str, seed: int) -> list[np.ndarray]:
    """[x] for a forward, [dy, x] for a backprop (dy of the pooled shape, the same kind of data)."""
    x = _data(shape, dtype, kind, seed)
    if not isinstance(op, (MaxPoolBackprop, AvgPoolBackprop)):
        return [x]
    dy_shape = unbatched(op.pool_info(shape).out_shape, len(shape))
    return [_data(dy_shape, dtype, kind, seed + 10_000), x]


def _assert_same_bits(got: Any, want: Any, what: str) -> None:
    """The same values, NaN where NaN, and the same sign of every non-NaN (so of zeros)."""
    import cupy

    assert got is not None, f"{what}: the kernel did not apply"
    assert isinstance(got, cupy.ndarray), what
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} {got.dtype}"
    g, w = cupy.asnumpy(got), cupy.asnumpy(want)
    differ = ~((g == w) | (np.isnan(g) & np.isnan(w)))
    assert not differ.any(), (
        f"{what}: at {np.argwhere(differ)[:4].tolist()}, {g[differ][:4]} != {w[differ][:4]}"
    )
    nan = np.isnan(w)
    signs = np.signbit(g[~nan]) != np.signbit(w[~nan])
    assert not signs.any(), f"{what}: the signs of {signs.sum()} zeros differ"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op_class, kernel", KERNELS, ids=[_name(c) for c, _ in KERNELS])
def test_kernel_gives_the_bits_of_the_generic_forward(
    op_class: type[PoolOp], kernel: Callable[..., Any], kind: str, dtype: str
) -> None:
    import cupy

    for seed, (shape, f, s, pad) in enumerate(GEOMETRIES):
        op = op_class(filter_size=f, strides=s, pad=pad)
        arrays = [cupy.asarray(a) for a in _inputs(op, shape, dtype, kind, seed)]
        what = f"{op.name} {kind} {dtype} x{shape} f={f} s={s} pad={pad!r}"
        _assert_same_bits(kernel(op, *arrays), op.forward(cupy, *arrays), what)


@pytest.mark.parametrize("op_class, kernel", KERNELS, ids=[_name(c) for c, _ in KERNELS])
def test_kernel_on_large_and_strided_inputs(op_class: type[PoolOp], kernel: Callable[..., Any]) -> None:
    """The cnn workload's shape; one image of more elements than the grid's x has threads, and
    more images than its y has blocks (so both grid-stride loops run more than once); and inputs
    that are not C-ordered (views)."""
    import cupy

    cases = [
        ((64, 28, 28, 32), 2, 2, 0),
        ((64, 28, 28, 32), 3, 1, "same"),
        ((1, 512, 512, 80), 2, 1, "same"),
        ((70_000, 3, 2, 1), 2, 1, "same"),
    ]
    for seed, (shape, f, s, pad) in enumerate(cases):
        op = op_class(filter_size=f, strides=s, pad=pad)
        arrays = [cupy.asarray(a) for a in _inputs(op, shape, "float32", "special", seed)]
        _assert_same_bits(kernel(op, *arrays), op.forward(cupy, *arrays), f"{op.name} x{shape} f={f} s={s}")
    op = op_class(filter_size=(2, 3), strides=(1, 2), pad="same")
    host = _inputs(op, (3, 6, 7, 4), "float64", "special", 99)
    views = [cupy.asarray(np.concatenate([a, a], axis=-1))[..., ::2] for a in host]  # strided channels
    assert not views[-1].flags.c_contiguous
    _assert_same_bits(kernel(op, *views), op.forward(cupy, *views), f"{op.name} on strided views")


@pytest.mark.parametrize("op_class, kernel", KERNELS, ids=[_name(c) for c, _ in KERNELS])
def test_kernel_matches_the_numpy_forward(op_class: type[PoolOp], kernel: Callable[..., Any]) -> None:
    import cupy

    for seed, (shape, f, s, pad) in enumerate([((2, 9, 7, 3), (3, 2), (2, 1), "same"), ((6, 5, 2), 2, 1, 1)]):
        op = op_class(filter_size=f, strides=s, pad=pad)
        host = _inputs(op, shape, "float32", "random", seed)
        got = kernel(op, *(cupy.asarray(a) for a in host))
        want = op.forward(np, *host)
        assert got.shape == want.shape and got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-6, atol=1e-7, err_msg=op.name)


@pytest.mark.parametrize("op_class, kernel", KERNELS, ids=[_name(c) for c, _ in KERNELS])
def test_kernel_does_not_apply_to_other_inputs(op_class: type[PoolOp], kernel: Callable[..., Any]) -> None:
    """int32 (the generic forward computes it in float32), mixed dtypes, rank 2, empty: None."""
    import cupy

    op = op_class(filter_size=2, strides=1, pad=0)
    backprop = op_class in (MaxPoolBackprop, AvgPoolBackprop)

    def run(x: Any, dy_dtype: Any = None) -> Any:
        if not backprop:
            return kernel(op, x)
        dy_shape = unbatched(op.pool_info(x.shape).out_shape, x.ndim) if x.ndim in (3, 4) else (1,)
        return kernel(op, cupy.ones(dy_shape, dtype=dy_dtype or x.dtype), x)

    assert run(cupy.ones((4, 4, 2), dtype=cupy.int32)) is None
    assert run(cupy.ones((2, 4, 4, 2), dtype=cupy.float16)) is None
    assert run(cupy.ones((4, 4), dtype=cupy.float32)) is None
    assert run(cupy.ones((0, 4, 4, 2), dtype=cupy.float32)) is None
    if backprop:
        assert run(cupy.ones((4, 4, 2), dtype=cupy.float32), cupy.float64) is None
        assert run(cupy.ones((4, 4, 2), dtype=cupy.float32), cupy.int32) is None
        assert kernel(op, cupy.ones((2, 2), cupy.float32), cupy.ones((3, 3, 1), cupy.float32)) is None
    assert run(cupy.ones((4, 4, 2), dtype=cupy.float32)) is not None


@pytest.mark.parametrize("op_class, kernel", KERNELS, ids=[_name(c) for c, _ in KERNELS])
def test_kernel_records_into_a_cuda_graph(op_class: type[PoolOp], kernel: Callable[..., Any]) -> None:
    import cupy

    op = op_class(filter_size=2, strides=2, pad="same")
    arrays = [cupy.asarray(a) for a in _inputs(op, (4, 9, 9, 8), "float32", "special", 7)]
    pool = cupy.cuda.MemoryPool()  # as a captured Program has: the capture allocates from its cache
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        eager = kernel(op, *arrays)  # compiles and loads the kernel, fills the pool
        del eager
        eager = kernel(op, *arrays)
        stream.begin_capture(cupy.cuda.runtime.streamCaptureModeRelaxed)  # as cuda_graph.py does
        captured = kernel(op, *arrays)
        graph = stream.end_capture()
        captured.fill(0)
        graph.launch(stream)
    stream.synchronize()
    _assert_same_bits(captured, eager, f"{op.name} replayed from a graph")
