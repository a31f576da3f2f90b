"""Matrix products through the algorithm each geometry keeps (``deeplearn/math/backends/cuda_gemm_lt.py``),
on a GPU with nvmath-python: against a float64 NumPy oracle for every transposition, whichever of
sgemm and cuBLASLt is kept; the same bits on every call; cuBLASLt's path itself (forced); sgemm
where the geometry is first seen while a stream is captured, where timing is off, and for an
operand off the algorithms' alignment."""

from __future__ import annotations

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_gemm, cuda_gemm_lt, cuda_timing

pytestmark = pytest.mark.skipif(
    not (cuda.is_available() and cuda_gemm.available()), reason="needs a GPU and nvmath-python"
)

# (m, k, n): mlp's products (128 rows), a tall one, odd sizes, one row, one column.
SHAPES = [(128, 784, 512), (128, 512, 10), (784, 128, 512), (1000, 37, 3), (3, 5, 7), (1, 64, 33), (65, 1, 1)]
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]


@pytest.fixture(autouse=True)
def _fresh_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test plans its geometries afresh (the choices are process-wide)."""
    monkeypatch.setattr(cuda_gemm_lt, "_PLANS", {})
    monkeypatch.setattr(cuda_gemm_lt, "plan_log", {})


def _operands(m: int, k: int, n: int, at: bool, bt: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if at else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if bt else (k, n)).astype(np.float32)
    return a, b


def _oracle(a: np.ndarray, b: np.ndarray, at: bool, bt: bool) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if at else a64) @ (b64.T if bt else b64)


def _check(got: np.ndarray, want: np.ndarray, k: int) -> None:
    # float32 products of k terms: a few ulps per term of the largest |a|·|b| sum.
    scale = float(np.abs(want).max()) + 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * k * np.finfo(np.float32).eps * scale)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_products_equal_the_oracle_and_keep_their_bits(m: int, k: int, n: int, at: bool, bt: bool) -> None:
    import cupy

    a, b = _operands(m, k, n, at, bt)
    da, db = cupy.asarray(a), cupy.asarray(b)
    first = cuda_gemm.gemm(da, db, at, bt).get()
    _check(first, _oracle(a, b, at, bt), k)
    g = cuda_gemm_lt.Geometry(m, n, k, at, bt)
    assert g in cuda_gemm_lt.plan_log, "the first product plans its geometry"
    for _ in range(3):  # the kept algorithm runs every later call: the same bits
        np.testing.assert_array_equal(cuda_gemm.gemm(da, db, at, bt).get(), first)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES[:4])
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_a_kept_cublaslt_algorithm_computes_the_product(
    monkeypatch: pytest.MonkeyPatch, m: int, k: int, n: int, at: bool, bt: bool
) -> None:
    """Whatever the timings say, cuBLASLt's own path must be right: keep its fastest candidate."""
    import cupy

    def fastest_of_cublaslt(timed: list[tuple[int, float]], near: float = 1.1) -> int:
        lt = [(i, t) for i, t in timed if i >= 0]
        return min(lt, key=lambda it: it[1])[0] if lt else -1

    monkeypatch.setattr(cuda_timing, "pick", fastest_of_cublaslt)
    a, b = _operands(m, k, n, at, bt, seed=1)
    da, db = cupy.asarray(a), cupy.asarray(b)
    got = cuda_gemm.gemm(da, db, at, bt).get()
    g = cuda_gemm_lt.Geometry(m, n, k, at, bt)
    assert cuda_gemm_lt.plan_log[g].startswith("cublasLt"), cuda_gemm_lt.plan_log[g]
    _check(got, _oracle(a, b, at, bt), k)
    np.testing.assert_array_equal(cuda_gemm.gemm(da, db, at, bt).get(), got)


def test_without_timing_every_geometry_runs_sgemm(monkeypatch: pytest.MonkeyPatch) -> None:
    import cupy

    monkeypatch.setattr(cuda_gemm_lt, "benchmark", False)
    a, b = _operands(128, 512, 512, False, False)
    got = cuda_gemm.gemm(cupy.asarray(a), cupy.asarray(b), False, False).get()
    assert cuda_gemm_lt.plan_log == {cuda_gemm_lt.Geometry(128, 512, 512, False, False): "sgemm"}
    _check(got, _oracle(a, b, False, False), 512)


def test_a_geometry_first_seen_in_a_capture_keeps_sgemm() -> None:
    import cupy

    a, b = _operands(128, 784, 512, False, True)
    da, db = cupy.asarray(a), cupy.asarray(b)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        cuda_gemm.gemm(da[:1, :1].copy(), db[:1, :1].copy(), False, True)  # the context's own first call
        stream.begin_capture()
        out = cuda_gemm.gemm(da, db, False, True)
        graph = stream.end_capture()
        graph.launch(stream)
        stream.synchronize()
    assert cuda_gemm_lt.plan_log[cuda_gemm_lt.Geometry(128, 512, 784, False, True)] == "sgemm"
    _check(out.get(), _oracle(a, b, False, True), 784)


def test_an_operand_off_the_alignment_runs_sgemm_and_is_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misaligned operand neither plans its geometry nor reaches a kept cuBLASLt algorithm."""
    import cupy

    def cublaslt(timed: list[tuple[int, float]], near: float = 1.1) -> int:
        return next((i for i, _ in timed if i >= 0), -1)

    monkeypatch.setattr(cuda_timing, "pick", cublaslt)
    ran: list[bool] = []
    lt_run = cuda_gemm_lt.run
    monkeypatch.setattr(cuda_gemm_lt, "run", lambda *args: ran.append(True) or lt_run(*args))
    a, b = _operands(128, 512, 64, False, False)
    flat = cupy.zeros(a.size + 1, np.float32)
    flat[1:] = cupy.asarray(a).ravel()
    off = flat[1:].reshape(a.shape)  # 4 bytes past an aligned address: C-ordered, not 16-byte aligned
    assert off.flags.c_contiguous and off.data.ptr % 16
    db = cupy.asarray(b)
    g = cuda_gemm_lt.Geometry(128, 64, 512, False, False)
    _check(cuda_gemm.gemm(off, db, False, False).get(), _oracle(a, b, False, False), 512)
    assert g not in cuda_gemm_lt.plan_log
    aligned = cuda_gemm.gemm(cupy.asarray(a), db, False, False).get()  # plans: cuBLASLt kept
    assert cuda_gemm_lt.plan_log[g].startswith("cublasLt")
    ran.clear()
    _check(cuda_gemm.gemm(off, db, False, False).get(), _oracle(a, b, False, False), 512)
    assert not ran
    _check(aligned, _oracle(a, b, False, False), 512)
