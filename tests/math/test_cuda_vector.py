"""Element-wise kernels over float4 lanes (``deeplearn/math/backends/cuda_vector.py``): every op's
C expression compiles in that kernel (nvcc, no GPU needed); on a GPU, it gives the bits of CuPy's
kernel for the same expression, lanes and tail alike; ``cuda_kernel`` and ``write_into`` take it
for non-empty aligned float32 arrays of one shape, large and small, and CuPy's kernel for
everything else; an eager op's launch of it on small arrays (``launcher``) gives CuPy's bits."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_vector
from deeplearn.math.ops.arithmetic import Add
from deeplearn.math.ops.base import OPS, Op, UnaryOp

needs_gpu = pytest.mark.skipif(not cuda.is_available(), reason="needs CuPy and an NVIDIA GPU")

FLOAT_OPS = [op for op in OPS if op.c_expr is not None and cuda.kernel_source(op())[1] == "T y"]
N = 2 * (1 << 18) + 3  # float4 lanes over a grid of many blocks, and a tail of 3


def _names(op: Op) -> tuple[str, ...]:
    return ("x",) if isinstance(op, UnaryOp) else ("a", "b")


def test_the_float_ops_are_the_element_wise_family() -> None:
    names = {op.__name__ for op in FLOAT_OPS}
    assert {"Add", "Multiply", "Relu", "Exp"} <= names and "Equal" not in names


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
@pytest.mark.parametrize("op_class", FLOAT_OPS, ids=lambda c: c.__name__)
def test_every_expression_compiles_in_the_vector_kernel(op_class: type, tmp_path: Path) -> None:
    op = op_class()
    src = tmp_path / "k.cu"
    src.write_text(cuda_vector.source(op.c_expr, _names(op)))
    result = subprocess.run(
        ["nvcc", "--ptx", "-o", str(tmp_path / "k.ptx"), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"nvcc failed for {op.name}:\n{result.stderr}\n{src.read_text()}"


def test_the_backend_reads_each_expression_with_its_names() -> None:
    """The names ``cuda_kernel`` hands the vector kernel are those the expression reads; an op
    that writes another type than float32 (equal) has none."""
    from deeplearn.math.ops.arithmetic import Equal

    for op_class in FLOAT_OPS:
        op = op_class()
        assert cuda._vector_names(op, op.c_expr) == _names(op), op.name
    assert cuda._vector_names(Equal(), Equal().c_expr) is None


def _inputs(op: Op, n: int, seed: int = 0) -> list[np.ndarray]:
    """Half in (0.05, 0.95), where every op is defined (asin, log, sqrt), half wide and signed,
    with a NaN, infinities and zeros of both signs among them."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in _names(op):
        x = np.concatenate([rng.uniform(0.05, 0.95, n - n // 2), rng.standard_normal(n // 2) * 3])
        x[[1, 2, 3, 4, 5]] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
        arrays.append(x.astype(np.float32))
    return arrays


def _same_bits(got: object, want: object) -> None:
    """The same bits, element by element, and NaN where ``want`` has a NaN (which NaN is the
    compiler's choice: relu's select gave the input's in CuPy's kernel, 0x7fffffff in ours)."""
    import cupy

    got_np, want_np = cupy.asnumpy(got), cupy.asnumpy(want)
    np.testing.assert_array_equal(np.isnan(got_np), np.isnan(want_np))
    numbers = ~np.isnan(want_np)
    np.testing.assert_array_equal(got_np[numbers].view(np.uint32), want_np[numbers].view(np.uint32))


@needs_gpu
@pytest.mark.parametrize("op_class", FLOAT_OPS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("n", [N, N + 1], ids=["tail", "whole_lanes"])
def test_the_vector_kernel_gives_cupys_bits(op_class: type, n: int) -> None:
    import cupy

    op = op_class()
    arrays = [cupy.asarray(a) for a in _inputs(op, n)]
    got = cuda_vector.run(op.c_expr, _names(op), arrays)
    assert got is not None, "large aligned float32 arrays of one shape take the vector kernel"
    _same_bits(got, cuda._elementwise_kernel(op, op.c_expr)(*arrays))


@needs_gpu
def test_threads_that_loop_over_the_grid_cover_every_element(monkeypatch: pytest.MonkeyPatch) -> None:
    import cupy

    from deeplearn.math.ops.elementwise import Neg

    monkeypatch.setattr(cuda_vector, "_MAX_BLOCKS", 3)  # each thread then does ~170 float4s
    (x,) = _inputs(Neg(), N)
    got = cuda_vector.run(Neg().c_expr, ("x",), [cupy.asarray(x)])
    _same_bits(got, -x)


@needs_gpu
def test_cuda_kernel_and_write_into_take_it_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    import cupy

    from deeplearn.math.ops.arithmetic import Add
    from deeplearn.math.ops.elementwise import Relu

    ran: list[int] = []
    vector_run = cuda_vector.run

    def counted(*args: object, **kwargs: object) -> object:
        out = vector_run(*args, **kwargs)  # type: ignore[arg-type]
        if out is not None:
            ran.append(1)
        return out

    monkeypatch.setattr(cuda_vector, "run", counted)

    def case(op: Op, *arrays: np.ndarray, vector: bool) -> None:
        ran.clear()
        device = [cupy.asarray(a) for a in arrays]
        got = cuda.cuda_kernel(op, *device)
        want = cuda._elementwise_kernel(op, op.c_expr)(*device)
        assert bool(ran) == vector, (op.name, [a.shape for a in arrays], [a.dtype for a in arrays])
        np.testing.assert_array_equal(cupy.asnumpy(got), cupy.asnumpy(want))

    x, y = _inputs(Add(), N)
    case(Relu(), x, vector=True)
    case(Add(), x, y, vector=True)
    for n in (1, 3, 4, 1027):  # small: the tail alone, one float4, one block
        case(Add(), x[:n], y[:n], vector=False)  # eager: CuPy's call costs the host less
        case(Relu(), x[:n], vector=False)
        small = cupy.empty(n, np.float32)  # a captured step's kernel: the vector one at any size
        ran.clear()
        (out,) = cuda.write_into(Add(), [small], cupy.asarray(x[:n]), cupy.asarray(y[:n]))
        assert out is small and ran
        _same_bits(small, x[:n] + y[:n])
    assert cuda_vector.MIN_ELEMENTS <= N
    case(Add(), x[:0], y[:0], vector=False)  # empty
    case(Add(), x, np.float32(2.0) * np.ones(1, np.float32), vector=False)  # broadcast
    case(Add(), x.astype(np.float64), y.astype(np.float64), vector=False)  # float64
    ran.clear()
    big = cupy.asarray(np.concatenate([[0.0], x]).astype(np.float32))
    off = big[1:]  # C-ordered, 4 bytes past an aligned address
    got = cuda.cuda_kernel(Relu(), off)
    assert not ran
    np.testing.assert_array_equal(cupy.asnumpy(got), np.maximum(x, 0))

    buffer = cupy.zeros(N + 4, np.float32)
    # A misaligned target runs CuPy's kernel; an input overlapping the target in part is copied
    # first (then the aligned target takes the vector kernel), else threads would read values
    # other threads had already written.
    for target, overlapping in ((buffer[1:], None), (buffer[4:], buffer[:N])):
        inputs = [cupy.asarray(x), cupy.asarray(y)] if overlapping is None else [overlapping, cupy.asarray(y)]
        want = cupy.asnumpy(inputs[0]) + y
        ran.clear()
        (out,) = cuda.write_into(Add(), [target[:N]], *inputs)
        assert bool(ran) == (overlapping is not None) and out is not None
        _same_bits(target[:N], want)

    target = cupy.empty(N, np.float32)
    ran.clear()
    (out,) = cuda.write_into(Add(), [target], cupy.asarray(x), cupy.asarray(y))
    assert out is target and ran
    np.testing.assert_array_equal(cupy.asnumpy(target), x + y)
    in_place = cupy.asarray(x)
    ran.clear()
    (out,) = cuda.write_into(Add(), [in_place], in_place, cupy.asarray(y))  # an update in place
    assert out is in_place and ran
    np.testing.assert_array_equal(cupy.asnumpy(in_place), x + y)


@needs_gpu
def test_a_scaled_add_into_a_target_that_overlaps_an_input_reads_the_input_first() -> None:
    """An optimizer's update ``c1·a + c2·b`` whose target overlaps ``a`` in part: ``a`` is
    copied first, so every element reads ``a`` as it was (as NumPy's ufuncs do)."""
    import cupy

    from deeplearn.math.ops.arithmetic import ScaledArrayAdd

    n = 4096
    buffer = cupy.asarray(np.arange(n + 8, dtype=np.float32))
    a, target = buffer[:n], buffer[8:]
    b = cupy.asarray(np.linspace(-1, 1, n, dtype=np.float32))
    c1, c2 = cupy.asarray(np.float32(0.5)), cupy.asarray(np.float32(2.0))
    want = np.float32(0.5) * cupy.asnumpy(a) + np.float32(2.0) * cupy.asnumpy(b)
    (out,) = cuda.write_into(ScaledArrayAdd(), [target], c1, a, c2, b)
    assert out is target
    np.testing.assert_array_equal(cupy.asnumpy(target), want)


def _refused(*arrays: object) -> object:
    raise AssertionError("C-ordered float32 arrays of the launcher's shape take its launch")


@needs_gpu
@pytest.mark.parametrize("op_class", FLOAT_OPS, ids=lambda c: c.__name__)
def test_the_launcher_gives_cupys_bits_on_small_arrays(op_class: type) -> None:
    """An eager op's launch (the kernel's tail code, one element a thread) against CuPy's
    kernel, which ``execute`` runs on arrays this small."""
    import cupy

    op = op_class()
    for n in (1, 5, 1027):
        arrays = [cupy.asarray(a) for a in _inputs(op, max(n, 6))]
        arrays = [a[:n] for a in arrays]
        launch = cuda_vector.launcher(op.c_expr, _names(op), (n,), _refused)
        got = launch(*arrays)
        assert got.shape == (n,) and got.dtype == np.float32
        _same_bits(got, cuda._elementwise_kernel(op, op.c_expr)(*arrays))


@needs_gpu
def test_the_launcher_takes_any_address_and_hands_other_layouts_to_its_fallback() -> None:
    import cupy

    from deeplearn.math.ops.elementwise import Neg

    x = np.linspace(-1, 1, 13, dtype=np.float32)
    launch = cuda_vector.launcher(Neg().c_expr, ("x",), (12,), _refused)
    off = cupy.asarray(x)[1:]  # C-ordered, 4 bytes past an aligned address: no float4 is asked
    np.testing.assert_array_equal(cupy.asnumpy(launch(off)), -x[1:])
    handed: list[object] = []
    matrix = cuda_vector.launcher(Neg().c_expr, ("x",), (3, 4), lambda *a: handed.append(a) or "fallback")
    assert matrix(cupy.asarray(x[:12]).reshape(4, 3).T) == "fallback" and len(handed) == 1
    np.testing.assert_array_equal(
        cupy.asnumpy(matrix(cupy.asarray(x[:12]).reshape(3, 4))), -x[:12].reshape(3, 4)
    )
    assert cuda_vector.launcher(Neg().c_expr, ("x",), (0, 4), _refused) is None  # empty: nothing to launch
    # Two operands (written out apart from one): either one not C-ordered goes to the fallback.
    pair = cuda_vector.launcher("y = a - b", ("a", "b"), (3, 4), lambda *a: handed.append(a) or "fallback")
    m, t = cupy.asarray(x[:12]).reshape(3, 4), cupy.asarray(x[:12]).reshape(4, 3).T
    assert pair(t, m) == "fallback" and pair(m, t) == "fallback" and len(handed) == 3
    np.testing.assert_array_equal(
        cupy.asnumpy(pair(m, m[::-1].copy())), x[:12].reshape(3, 4) - x[:12].reshape(3, 4)[::-1]
    )


@needs_gpu
def test_eager_ops_on_small_arrays_of_one_shape_take_the_launcher() -> None:
    """The engine learns the launch for same-shape float32 inputs, and CuPy's kernel for a
    broadcast or float64: each gives what ``execute`` gives."""
    import cupy

    import deeplearn as dl
    from deeplearn import Array1D, Array2D

    math = dl.NDArrayMathGPU()
    a, b = Array2D.new([3, 4], np.arange(12), math=math), Array2D.new([3, 4], np.arange(12) - 5.5, math=math)
    row = Array1D.new(np.arange(4), math=math)
    with math.scope():
        for got, want in (
            (math.add(a, b), np.arange(12).reshape(3, 4) * 2 - 5.5),
            (math.add(a, row), np.arange(12).reshape(3, 4) + np.arange(4)),
        ):
            np.testing.assert_array_equal(got.numpy(), want.astype(np.float32))
    kinds = {inputs: known.direct for _, inputs, known in math.engine.learnt(Add)}
    same, broadcast = (
        kinds[((3, 4), "float32", (3, 4), "float32")],
        kinds[((3, 4), "float32", (4,), "float32")],
    )
    assert same.__name__ == "launch_two" and isinstance(broadcast, cupy.ElementwiseKernel)
