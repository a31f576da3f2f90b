"""Matrix products by kernels of our own (``deeplearn/math/backends/cuda_sgemm.py``).

On any machine: the candidate plans cover the inner dimension exactly, with grids in range;
every tiling divides its loads evenly among its threads; the kernels compile with nvcc where it
is installed. On a GPU: every candidate plan, for every transposition and ragged shapes, against
a float64 NumPy oracle; a clustered split gives the bits of the same split added by a second
kernel; the plan kept for a geometry gives the same bits on every call; a kept plan of ours runs
inside a captured CUDA graph; sgemm where timing is off, for geometries outside the range, and
for a geometry first seen while a stream is captured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deeplearn.math.backends import cuda, cuda_gemm, cuda_sgemm, cuda_timing
from deeplearn.math.backends.cuda_sgemm import Geometry, Plan, candidates

gpu = pytest.mark.skipif(
    not (cuda.is_available() and cuda_gemm.available()), reason="needs a GPU and nvmath-python"
)

# (m, k, n): mlp's products (128 rows, k of 784, 512 and 10), a tall one, ragged odd sizes, one row.
SHAPES = [
    (128, 784, 512),
    (128, 512, 10),
    (128, 10, 512),
    (784, 128, 512),
    (77, 300, 45),
    (1, 1000, 300),
    (100, 300, 44),  # ragged edges, rows of whole 16-byte pieces: the pipelined kernels too
    (132, 1000, 8),
]
TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]


def _geometry(m: int, k: int, n: int, at: bool = False, bt: bool = False) -> Geometry:
    return Geometry(m, n, k, at, bt)


@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_every_candidate_covers_the_inner_dimension_once_in_a_grid_of_sensible_size(
    m: int, k: int, n: int
) -> None:
    plans = candidates(_geometry(m, k, n), pipelined=True, clustered=True)
    for plan in plans:
        if plan.clustered:  # a cluster of 2 to 8 blocks, of a tiling that has such kernels
            assert 2 <= plan.splits <= cuda_sgemm.MAX_CLUSTER and cuda_sgemm.clusterable(plan.tiling), plan
            assert plan._replace(clustered=False) in plans, "every clustered plan has its two-kernel twin"
        assert plan.chunk % plan.tiling.bk == 0, plan
        # splits chunks reach k, and the last one is not empty
        assert (plan.splits - 1) * plan.chunk < k <= plan.splits * plan.chunk, plan
        gx, gy, gz = plan.grid(_geometry(m, k, n))
        assert gx * plan.tiling.bn >= n and gy * plan.tiling.bm >= m and gz == plan.splits
        assert cuda_sgemm._MIN_BLOCKS <= gx * gy * gz <= cuda_sgemm._MAX_BLOCKS
    assert len(set(plans)) == len(plans)


def test_mlp_s_largest_product_has_candidates_of_every_tiling_and_split_only_where_k_allows() -> None:
    assert {p.tiling for p in candidates(_geometry(128, 784, 512))} == set(cuda_sgemm.TILINGS)
    plans = candidates(_geometry(128, 784, 512), pipelined=True)
    assert {p.tiling for p in plans} == set(cuda_sgemm.TILINGS + cuda_sgemm.PIPELINED)
    # a chunk is at least one bk-deep slice: k = 10 splits in two only where bk is 8
    shallow = {(p.tiling.bk, p.splits) for p in candidates(_geometry(128, 10, 512))}
    assert shallow == {(8, 1), (8, 2), (16, 1), (32, 1)}
    # clustered twins only where asked (a GPU with clusters), of every split from 2 to 8
    assert not any(p.clustered for p in plans)
    clustered = [p for p in candidates(_geometry(128, 512, 512), True, True) if p.clustered]
    assert {p.splits for p in clustered} == set(range(2, cuda_sgemm.MAX_CLUSTER + 1))
    assert {p.tiling for p in clustered} == {
        t for t in cuda_sgemm.TILINGS + cuda_sgemm.PIPELINED if cuda_sgemm.clusterable(t)
    }


def test_every_tiling_shares_its_loads_evenly_among_its_threads() -> None:
    for t in cuda_sgemm.TILINGS:
        assert t.bm % t.tm == 0 and t.bn % t.tn == 0
        assert t.threads <= 1024 and t.threads % 32 == 0, t
        assert (t.bm * t.bk) % t.threads == 0 and (t.bn * t.bk) % t.threads == 0, t
    for t in cuda_sgemm.PIPELINED:  # 16-byte copies and reads: 4 floats at a time
        assert t.stages >= 2 and t.bk % 4 == 0 and t.tm % 4 == 0 and t.tn % 4 == 0, t
        assert t.threads <= 1024 and t.threads % 32 == 0, t
    for t in cuda_sgemm.TILINGS + cuda_sgemm.PIPELINED:
        assert t.shared_bytes() <= 48 * 1024, f"{t}: more static shared memory than a block may have"
    # a clustered block also holds its tile of C; the two tilings that won split plans have one
    assert cuda_sgemm.clusterable(cuda_sgemm.Tiling(32, 32, 16, 2, 2))
    assert cuda_sgemm.clusterable(cuda_sgemm.Tiling(32, 32, 32, 4, 4, 3))
    for t in filter(cuda_sgemm.clusterable, cuda_sgemm.TILINGS + cuda_sgemm.PIPELINED):
        assert t.shared_bytes(True) == t.shared_bytes() + 4 * t.bm * t.bn <= 48 * 1024, t


def test_shared_memory_of_a_tiling_counts_its_slices_as_stored() -> None:
    # plain: two [bk][rows + 4] buffers per operand; pipelined: stages of [rows][bk + 4] or
    # [bk][rows + 4], whichever is larger (the kernel picks by layout: the larger bounds both)
    assert cuda_sgemm.Tiling(32, 32, 16, 2, 2).shared_bytes() == 4 * 2 * 16 * (36 + 36)
    assert cuda_sgemm.Tiling(32, 32, 32, 4, 4, 3).shared_bytes() == 4 * 3 * 2 * 32 * 36
    assert cuda_sgemm.Tiling(64, 32, 16, 4, 4, 4).shared_bytes() == 4 * 4 * (64 * 20 + 32 * 20)


class _Stub:
    """What ``vectorizable`` reads of a CuPy array: its address."""

    def __init__(self, address: int) -> None:
        self.data = type("Memory", (), {"ptr": address})()


@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_the_pipelined_kernels_need_whole_16_byte_rows_and_aligned_operands(at: bool, bt: bool) -> None:
    # each operand's leading dimension (A: k, or m transposed; B: n, or k transposed) must be a
    # multiple of 4 floats; the other dimensions may be anything
    assert cuda_sgemm.whole_pieces(
        _geometry(12 if at else 13, 8, 20, at, bt)
    )  # m is free unless A is transposed
    odd_a = _geometry(128, 10, 512, at, bt) if not at else _geometry(10, 512, 512, at, bt)
    odd_b = _geometry(128, 512, 10, at, bt) if not bt else _geometry(128, 10, 512, at, bt)
    assert not cuda_sgemm.whole_pieces(odd_a) and not cuda_sgemm.whole_pieces(odd_b)
    g = _geometry(128, 512, 512, at, bt)
    assert cuda_sgemm.vectorizable(g, _Stub(512), _Stub(256 + 16))
    assert not cuda_sgemm.vectorizable(g, _Stub(512 + 4), _Stub(256))
    assert not cuda_sgemm.vectorizable(g, _Stub(512), _Stub(256 + 8))
    plan = Plan(cuda_sgemm.PIPELINED[0], 1, 512)
    assert cuda_sgemm.runs(plan, g, _Stub(512), _Stub(256)) and not cuda_sgemm.runs(
        plan, g, _Stub(4), _Stub(256)
    )
    assert cuda_sgemm.runs(plan._replace(tiling=cuda_sgemm.TILINGS[0]), g, _Stub(4), _Stub(256))


def test_only_products_in_the_range_are_timed() -> None:
    assert cuda_sgemm.eligible(_geometry(128, 784, 512))
    assert cuda_sgemm.eligible(_geometry(128, 10, 512))  # 655,360 multiply-adds
    assert not cuda_sgemm.eligible(_geometry(3, 5, 7))
    assert not cuda_sgemm.eligible(_geometry(4096, 4096, 4096))


def test_a_plan_is_named_by_its_tiling_and_split() -> None:
    plan = Plan(cuda_sgemm.TILINGS[0], 4, 208)
    assert plan.name == "tiles 64x32x16/4x2, split 4"
    assert cuda_sgemm.TILINGS[0].kernel(True, False) == "deeplearn_sgemm<64, 32, 16, 4, 2, true, true>"
    staged = Plan(cuda_sgemm.PIPELINED[0], 1, 784)
    assert staged.name == "tiles 64x64x16/4x4, 3 stages, split 1"
    # the flags: which operands run along k (A not transposed, B transposed)
    assert staged.tiling.kernel(False, True) == "deeplearn_sgemm_async<64, 64, 16, 4, 4, 3, true, true>"
    clustered = Plan(cuda_sgemm.Tiling(32, 32, 16, 2, 2), 6, 144, clustered=True)
    assert clustered.name == "tiles 32x32x16/2x2, split 6 in a cluster"
    assert clustered.kernel(False, False) == "deeplearn_sgemm_cluster<32, 32, 16, 2, 2, false, true, 6>"
    assert clustered._replace(clustered=False).kernel(False, False) == (
        "deeplearn_sgemm<32, 32, 16, 2, 2, false, true>"
    )


def _nvcc(tmp_path: Path, instances: list[str], output: str) -> Path:
    """The kernels' source with ``instances`` compiled by nvcc for sm_90 (``output``: --ptx or
    -cubin); the file it wrote."""
    src = tmp_path / "sgemm.cu"
    src.write_text(cuda_sgemm.source() + "\n" + "\n".join(instances) + "\n")
    out = tmp_path / ("sgemm.ptx" if output == "--ptx" else "sgemm.cubin")
    result = subprocess.run(
        ["nvcc", output, "-std=c++17", "-arch=sm_90", "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
    return out


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_every_kernel_instance_compiles_with_nvcc(tmp_path: Path) -> None:
    signature = "(const float*, const float*, float*, float*, int, int, int, int, int, int);"
    instances = [
        f"template __global__ void {name}{signature}"
        for at, bt in TRANSPOSES
        for pipelined in (False, True)
        for clustered in (False, True)
        for name in cuda_sgemm._family(at, bt, pipelined, clustered)
    ]
    ptx = _nvcc(tmp_path, instances, "--ptx").read_text()
    assert ptx.count(".entry") == len(instances) + 1
    assert "ld.shared.v4.f32" in ptx, "a thread's patch of a shared slice is read 16 bytes at a time"
    assert "cp.async.cg.shared.global" in ptx, "the pipelined kernels copy slices without registers"
    # clustered kernels: launched as clusters, their parts read from the other blocks' shared memory
    assert ptx.count(".reqnctapercluster") == sum("_cluster<" in i for i in instances) > 0
    assert "ld.shared::cluster.f32" in ptx and "barrier.cluster.arrive.release" in ptx


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed on this machine")
def test_the_clustered_kernels_assemble_for_hopper(tmp_path: Path) -> None:
    """ptxas accepts their inline cluster instructions (barrier.cluster, mapa, ld.shared::cluster),
    which a PTX-only compile does not check: one tiling of each family, every cluster size."""
    signature = "(const float*, const float*, float*, float*, int, int, int, int, int, int);"
    sizes = cuda_sgemm.MAX_CLUSTER - 1
    names = [
        n for pipelined in (False, True) for n in cuda_sgemm._family(False, True, pipelined, True)[:sizes]
    ]
    _nvcc(tmp_path, [f"template __global__ void {n}{signature}" for n in names], "-cubin")


# On a GPU.


def _keep_our_fastest(timed: list[tuple[int, float]], near: float = cuda_sgemm.NEAR) -> int:
    """``cuda_timing.pick`` that keeps our fastest plan, whatever sgemm's time."""
    ours = [(i, t) for i, t in timed if i >= 0]
    return min(ours, key=lambda it: it[1])[0] if ours else -1


@pytest.fixture(autouse=True)
def _fresh_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test plans its geometries afresh (the choices are process-wide)."""
    monkeypatch.setattr(cuda_sgemm, "_PLANS", {})
    monkeypatch.setattr(cuda_sgemm, "plan_log", {})


def _operands(m: int, k: int, n: int, at: bool, bt: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if at else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if bt else (k, n)).astype(np.float32)
    return a, b


def _oracle(a: np.ndarray, b: np.ndarray, at: bool, bt: bool) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64.T if at else a64) @ (b64.T if bt else b64)


def _check(got: np.ndarray, want: np.ndarray, k: int) -> None:
    # float32 sums of k products, in any order: each within k ulps of the largest |a|·|b| sum.
    scale = float(np.abs(want).max()) + 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * k * np.finfo(np.float32).eps * scale)


@gpu
@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_every_candidate_plan_computes_the_product(m: int, k: int, n: int, at: bool, bt: bool) -> None:
    import cupy

    a, b = _operands(m, k, n, at, bt)
    want = _oracle(a, b, at, bt)
    da, db = cupy.asarray(a), cupy.asarray(b)
    g = _geometry(m, k, n, at, bt)
    plans = candidates(g, cuda_sgemm.vectorizable(g, da, db), cuda_sgemm._clusters())
    assert plans, g
    for plan in plans:
        out = cupy.full((m, n), np.nan, np.float32)  # a cell the plan misses stays NaN
        cuda_sgemm.run(plan, g, da, db, out)
        _check(out.get(), want, k)


@gpu
@pytest.mark.parametrize(("m", "k", "n"), [(128, 784, 512), (128, 512, 10), (77, 300, 45), (100, 300, 44)])
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_a_clustered_split_gives_the_bits_of_the_same_split_added_by_a_second_kernel(
    m: int, k: int, n: int, at: bool, bt: bool
) -> None:
    """The blocks of a cluster add the parts in layer order, as deeplearn_sgemm_sum does."""
    import cupy

    if not cuda_sgemm._clusters():
        pytest.skip("this GPU has no thread block clusters (compute capability < 9.0)")
    a, b = _operands(m, k, n, at, bt, seed=9)
    da, db = cupy.asarray(a), cupy.asarray(b)
    g = _geometry(m, k, n, at, bt)
    clustered = [p for p in candidates(g, cuda_sgemm.vectorizable(g, da, db), True) if p.clustered]
    assert clustered, g
    for plan in clustered:
        want = cupy.full((m, n), np.nan, np.float32)
        cuda_sgemm.run(plan._replace(clustered=False), g, da, db, want)
        for _ in range(5):  # (a race between the cluster's barriers would show by chance)
            got = cupy.full((m, n), np.nan, np.float32)
            cuda_sgemm.run(plan, g, da, db, got)
            np.testing.assert_array_equal(got.get(), want.get(), err_msg=plan.name)


@gpu
@pytest.mark.parametrize(("m", "k", "n"), SHAPES[:4])
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
@pytest.mark.parametrize("ours", [False, True])
def test_the_kept_product_is_right_and_keeps_its_bits(
    monkeypatch: pytest.MonkeyPatch, m: int, k: int, n: int, at: bool, bt: bool, ours: bool
) -> None:
    """Whichever the timings keep (``ours``: our fastest plan, whatever sgemm's time)."""
    import cupy

    if ours:
        monkeypatch.setattr(cuda_timing, "pick", _keep_our_fastest)

    a, b = _operands(m, k, n, at, bt, seed=1)
    da, db = cupy.asarray(a), cupy.asarray(b)
    first = cuda_gemm.gemm(da, db, at, bt).get()
    _check(first, _oracle(a, b, at, bt), k)
    name = cuda_sgemm.plan_log[_geometry(m, k, n, at, bt)]  # the first product plans its geometry
    assert name.startswith("tiles") if ours else name, name
    for _ in range(3):
        np.testing.assert_array_equal(cuda_gemm.gemm(da, db, at, bt).get(), first)


@gpu
@pytest.mark.parametrize(("at", "bt"), TRANSPOSES)
def test_a_kept_plan_of_ours_runs_in_place_of_sgemm(
    monkeypatch: pytest.MonkeyPatch, at: bool, bt: bool
) -> None:
    import cupy

    monkeypatch.setattr(cuda_timing, "pick", _keep_our_fastest)
    a, b = _operands(128, 784, 512, at, bt, seed=2)
    da, db = cupy.asarray(a), cupy.asarray(b)
    ran: list[Plan] = []
    ours = cuda_sgemm.run
    monkeypatch.setattr(cuda_sgemm, "run", lambda plan, *args: ran.append(plan) or ours(plan, *args))
    got = cuda_gemm.gemm(da, db, at, bt).get()
    name = cuda_sgemm.plan_log[_geometry(128, 784, 512, at, bt)]
    assert name.startswith("tiles"), name
    ran.clear()
    again = cuda_gemm.gemm(da, db, at, bt).get()
    assert [p.name for p in ran] == [name]
    _check(got, _oracle(a, b, at, bt), 784)
    np.testing.assert_array_equal(again, got)


@gpu
@pytest.mark.parametrize(("stages", "clustered"), [(0, False), (3, False), (0, True), (3, True)])
@pytest.mark.parametrize("private_pool", [True, False])
def test_a_split_plan_of_ours_replays_in_a_captured_graph(
    monkeypatch: pytest.MonkeyPatch, stages: int, clustered: bool, private_pool: bool
) -> None:
    """Each replay reads the operands anew (new values copied into them) and adds the parts
    again. The parts' buffer stays the graph's: a CapturedProgram's private pool keeps it, and
    on CuPy's default pool (a user's own capture) the thread's context holds it, so arrays made
    after the capture (filled with NaN here) never get its memory. A clustered split has no
    such buffer."""
    import cupy

    if clustered and not cuda_sgemm._clusters():
        pytest.skip("this GPU has no thread block clusters (compute capability < 9.0)")
    g = _geometry(128, 784, 512)
    split = next(
        p
        for p in candidates(g, True, clustered)
        if p.splits > 1 and p.tiling.stages == stages and p.clustered == clustered
    )
    monkeypatch.setattr(cuda_sgemm, "_choose", lambda *args: split)
    ran: list[Plan] = []
    ours = cuda_sgemm.run
    monkeypatch.setattr(cuda_sgemm, "run", lambda plan, *args: ran.append(plan) or ours(plan, *args))
    a, b = _operands(128, 784, 512, False, False, seed=3)
    da, db = cupy.asarray(a), cupy.asarray(b)
    pool = cupy.cuda.MemoryPool() if private_pool else cupy.get_default_memory_pool()
    stream = cupy.cuda.Stream(non_blocking=True)
    with cupy.cuda.using_allocator(pool.malloc), stream:
        cuda_gemm.gemm(da, db, False, False)  # plans (uncaptured), as a Program's first run does
        held = len(cuda_gemm._context().held)
        stream.begin_capture()
        out = cuda_gemm.gemm(da, db, False, False)
        graph = stream.end_capture()
        assert ran == [split, split], "the split plan ran, uncaptured and captured"
        assert len(cuda_gemm._context().held) == held + (0 if clustered else 1)
        others = [cupy.full((split.splits, 128, 512), np.nan, np.float32) for _ in range(3)]
        for seed in (4, 5, 6):
            a, b = _operands(128, 784, 512, False, False, seed=seed)
            da.set(a)
            db.set(b)
            out.fill(np.nan)
            graph.launch(stream)
            stream.synchronize()
            _check(out.get(), _oracle(a, b, False, False), 784)
        assert all(bool(cupy.isnan(o).all()) for o in others), "a replay wrote into another array"
    assert cuda_sgemm.plan_log[g] == split.name


@gpu
def test_the_first_product_plans_on_operands_of_its_own_not_the_caller_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A NaN in the caller's first operands makes every candidate disagree with sgemm on them;
    planned on random operands, our plan is still kept, and the NaN reaches its row alone."""
    import cupy

    monkeypatch.setattr(cuda_timing, "pick", _keep_our_fastest)
    a, b = _operands(128, 784, 512, False, False, seed=8)
    a[5, 7] = np.nan
    got = cuda_gemm.gemm(cupy.asarray(a), cupy.asarray(b), False, False).get()
    assert cuda_sgemm.plan_log[_geometry(128, 784, 512)].startswith("tiles")
    assert np.isnan(got[5]).all() and not np.isnan(np.delete(got, 5, axis=0)).any()
    _check(np.delete(got, 5, axis=0), np.delete(_oracle(a, b, False, False), 5, axis=0), 784)


@gpu
def test_a_candidate_the_gpu_refuses_to_launch_is_left_out_and_the_others_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cupy

    if not cuda_sgemm._clusters():
        pytest.skip("thread block clusters need compute capability 9.0")
    monkeypatch.setattr(cuda_timing, "pick", _keep_our_fastest)
    g = _geometry(128, 784, 512)
    ours = cuda_sgemm.run
    refused: list[Plan] = []

    def refusing(plan: Plan, *args: object) -> None:
        if plan.splits > 1:  # as a GPU that cannot place a cluster refuses its launch
            refused.append(plan)
            raise cupy.cuda.driver.CUDADriverError(912)  # CUDA_ERROR_INVALID_CLUSTER_SIZE
        ours(plan, *args)

    monkeypatch.setattr(cuda_sgemm, "run", refusing)
    monkeypatch.setattr(
        cuda_sgemm,
        "candidates",
        lambda g, pipelined, clustered: [
            p for p in candidates(g, pipelined, True) if p.clustered or p.splits == 1
        ],
    )
    cuda_sgemm.plan_for(g, cuda_gemm._context().sgemm)
    assert refused and all(p.clustered for p in refused), "the clustered candidates were tried"
    assert cuda_sgemm.plan_log[g].endswith("split 1"), cuda_sgemm.plan_log[g]


@gpu
def test_any_other_error_of_a_candidate_is_raised_not_taken_for_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(A fault would leave the context broken: every later candidate would fail too.) Planning
    then keeps sgemm for the geometry, logged, and the product is right."""
    import cupy

    def faulting(plan: Plan, *args: object) -> None:
        raise cupy.cuda.driver.CUDADriverError(700)  # CUDA_ERROR_ILLEGAL_ADDRESS

    monkeypatch.setattr(cuda_sgemm, "run", faulting)
    g = _geometry(128, 784, 512)
    with pytest.raises(cupy.cuda.driver.CUDADriverError):
        cuda_sgemm._choose(g, cuda_gemm._context().sgemm, cupy.cuda.get_current_stream())
    assert cuda_sgemm.plan_for(g, cuda_gemm._context().sgemm) is None
    assert cuda_sgemm.plan_log[g] == "sgemm"


@gpu
def test_without_timing_and_outside_the_range_products_run_sgemm(monkeypatch: pytest.MonkeyPatch) -> None:
    import cupy

    for m, k, n in [(3, 5, 7), (128, 784, 512)]:
        if (m, k, n) == (128, 784, 512):
            monkeypatch.setattr(cuda_sgemm, "benchmark", False)
        a, b = _operands(m, k, n, False, False)
        _check(
            cuda_gemm.gemm(cupy.asarray(a), cupy.asarray(b), False, False).get(),
            _oracle(a, b, False, False),
            k,
        )
    assert cuda_sgemm.plan_log == {}


@gpu
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
    assert cuda_sgemm.plan_log[_geometry(128, 784, 512, False, True)] == "sgemm"
    _check(out.get(), _oracle(a, b, False, True), 784)


@gpu
def test_a_kept_pipelined_plan_gives_way_to_sgemm_on_a_misaligned_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later product of the same geometry on an operand 4 bytes off 16-byte alignment runs
    sgemm (the pipelined kernel's 16-byte copies would fault), and is right."""
    import cupy

    g = _geometry(128, 512, 512)
    staged = next(p for p in candidates(g, True) if p.tiling.stages)
    monkeypatch.setattr(cuda_sgemm, "_choose", lambda *args: staged)
    ran: list[Plan] = []
    ours = cuda_sgemm.run
    monkeypatch.setattr(cuda_sgemm, "run", lambda plan, *args: ran.append(plan) or ours(plan, *args))
    a, b = _operands(128, 512, 512, False, False, seed=7)
    db = cupy.asarray(b)
    _check(cuda_gemm.gemm(cupy.asarray(a), db, False, False).get(), _oracle(a, b, False, False), 512)
    assert ran == [staged]
    flat = cupy.zeros(a.size + 1, np.float32)
    flat[1:] = cupy.asarray(a).ravel()
    off = flat[1:].reshape(a.shape)
    assert off.flags.c_contiguous and off.data.ptr % 16
    _check(cuda_gemm.gemm(off, db, False, False).get(), _oracle(a, b, False, False), 512)
    assert ran == [staged], "the misaligned product ran sgemm"
