"""MathBackendCUDA: NDArray data in NVIDIA GPU memory through CuPy.

The only module of the eager library that imports CuPy, and only lazily, so that importing
deeplearn works on machines without CuPy or a GPU. Kernels are the ops' generic ``forward`` run
with ``xp = cupy``; element-wise ops that declare a ``c_expr`` run as a CuPy ElementwiseKernel
generated from it (one launch, no temporaries), or on large float32 arrays as ``cuda_vector``'s
kernel, which moves 16 bytes per thread and operand; other overrides are keyed by op class in
``cuda_kernel``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from deeplearn import util
from deeplearn.math.backends import (
    cuda_costs,
    cuda_cudnn,
    cuda_epilogue,
    cuda_fusion,
    cuda_gemm,
    cuda_pool,
    cuda_reduce,
    cuda_sgemm,
    cuda_vector,
)
from deeplearn.math.backends.dispatch import KernelTable
from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import Op, Spec, UnaryOp
from deeplearn.math.ops.conv import (
    Conv2D,
    Conv2DDerFilter,
    Conv2DDerInput,
    DepthwiseConv2D,
    DepthwiseConv2DDerFilter,
    DepthwiseConv2DDerInput,
    _ConvOp,
    batch4,
    col2im,
    im2col,
    unbatched,
)
from deeplearn.math.ops.conv_util import Conv2DInfo
from deeplearn.math.ops.fused import Fused, FusedProduct
from deeplearn.math.ops.costs import SoftmaxCrossEntropyCost, SoftmaxCrossEntropyCostDer
from deeplearn.math.ops.layout import Gather, Transpose
from deeplearn.math.ops.linalg import MatMul, MatrixOrientation
from deeplearn.math.ops.pool import AvgPool, AvgPoolBackprop, MaxPool, MaxPoolBackprop, MinPool
from deeplearn.math.ops.reduction import Sum
from deeplearn.types import RawArray

__all__ = [
    "MathBackendCUDA",
    "cuda_kernel",
    "is_available",
    "INSTALL_HINT",
    "kernel_source",
    "standalone_cuda_source",
    "pool_usage",
]

INSTALL_HINT = (
    "install CuPy for your CUDA version with pip install 'deeplearn[cuda12]' or "
    "'deeplearn[cuda13]' (from a clone: pip install -e '.[cuda12]'), on a machine with an NVIDIA GPU"
)


def _import_cupy() -> ModuleType:
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(f"NDArrayMathGPU needs CuPy, which is not installed: {INSTALL_HINT}.") from e
    module: ModuleType = cupy
    return module


@functools.cache
def is_available() -> bool:
    """Whether CuPy imports and sees at least one CUDA device (never raises)."""
    try:
        cupy = _import_cupy()
        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # noqa: BLE001 - any failure (no CuPy, no driver, no device) means "no"
        return False


def kernel_source(op: Op) -> tuple[str, str, str]:
    """(in_params, out_params, body) of the CuPy ElementwiseKernel of an op with a ``c_expr``.

    Unary ops read ``x``, binary ops ``a`` and ``b``, all of type ``T``; the result ``y`` has
    type ``T`` too, unless the op's shape rule gives another dtype (``equal``: bool). Kept free
    of CuPy so a CPU test can compile the same body with nvcc.
    """
    if op.c_expr is None:
        raise ValueError(f"kernel_source: {op.name} declares no c_expr.")
    unary = isinstance(op, UnaryOp)
    in_params = "T x" if unary else "T a, T b"
    out_dtype = op.infer(*[Spec((), "float32")] * (1 if unary else 2)).dtype
    out_type = "T" if out_dtype == "float32" else np.dtype(util.numpy_dtype(out_dtype)).name
    return in_params, f"{out_type} y", op.c_expr


def standalone_cuda_source(op: Op, t: str = "float", y: str = "float") -> str:
    """A self-contained CUDA C++ translation unit running ``op.c_expr`` over flat arrays of
    C type ``t`` (output ``y``): what CuPy generates, in a form nvcc can compile on its own."""
    _, _, body = kernel_source(op)
    args = "const T* x_" if isinstance(op, UnaryOp) else "const T* a_, const T* b_"
    loads = "T x = x_[i];" if isinstance(op, UnaryOp) else "T a = a_[i]; T b = b_[i];"
    return (
        "#include <cuda_runtime.h>\n"
        f"typedef {t} T;\ntypedef {y} Y;\n"
        f'extern "C" __global__ void dl_{op.name}({args}, Y* y_, int n) {{\n'
        "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
        "  if (i >= n) return;\n"
        f"  {loads}\n  Y y;\n  {body};\n  y_[i] = y;\n}}\n"
    )


_ELEMENTWISE: dict[tuple[type, str], Any] = {}
"""The generated kernel of each (op class, C expression): an op's fields can change its
expression (``step``'s alpha), and keying by both avoids hashing the op on every call."""


def _elementwise_kernel(op: Op, c_expr: str) -> Any:
    key = (type(op), c_expr)
    kernel = _ELEMENTWISE.get(key)
    if kernel is None:
        in_params, out_params, body = kernel_source(op)
        kernel = _ELEMENTWISE[key] = _import_cupy().ElementwiseKernel(
            in_params, out_params, body, f"dl_{op.name}"
        )
    return kernel


_VECTOR_NAMES: dict[tuple[type, str], tuple[str, ...] | None] = {}
"""Per (op class, C expression): the names its expression reads where it writes float32 from
float32 (``cuda_vector`` runs it on large arrays), else None."""


def _vector_names(op: Op, c_expr: str) -> tuple[str, ...] | None:
    key = (type(op), c_expr)
    try:
        return _VECTOR_NAMES[key]
    except KeyError:
        pass
    in_params, out_params, _ = kernel_source(op)
    names = tuple(p.split()[1] for p in in_params.split(", ")) if out_params == "T y" else None
    _VECTOR_NAMES[key] = names
    return names


def _vectorized(op: Op, c_expr: str, arrays: tuple[Any, ...], out: Any = None) -> Any:
    """``op`` on large float32 arrays by ``cuda_vector``'s kernel (16 bytes per thread and
    operand); None where that kernel does not apply (``cuda_vector.run`` checks the arrays)."""
    names = _vector_names(op, c_expr)
    return None if names is None else cuda_vector.run(c_expr, names, arrays, out)


@functools.singledispatch
def cuda_kernel(op: Op, *arrays: Any) -> Any:
    """Runs ``op`` on the GPU: its generated kernel when it declares ``c_expr`` and the inputs
    share one floating dtype (on float32 arrays of one shape from ``cuda_vector.MIN_ELEMENTS``
    elements on, ``cuda_vector``'s), else the generic forward with ``xp = cupy``.

    The generated kernel allocates its output (the inputs' broadcast shape): the Engine has
    already checked the shapes with the op's shape rule, so none is asked here.
    """
    c_expr = op.c_expr
    if c_expr is not None:
        dtype = arrays[0].dtype
        if dtype.kind == "f" and (len(arrays) == 1 or arrays[1].dtype == dtype):
            if arrays[0].size >= cuda_vector.MIN_ELEMENTS:
                out = _vectorized(op, c_expr, arrays)
                if out is not None:
                    return out
            return _elementwise_kernel(op, c_expr)(*arrays)
    return op.forward(_import_cupy(), *arrays)


_KERNELS = KernelTable(cuda_kernel)
"""``cuda_kernel``'s choice per op class, looked up once (``dispatch.py``): ``execute`` skips
singledispatch's own lookup (~0.3 µs a call)."""

_GENERIC_KERNEL = cuda_kernel.dispatch(Op)
"""``cuda_kernel`` itself, as the table gives it for an op class with no kernel of its own."""


def _scaled_add_kernel() -> Any:
    """c1·a + c2·b as the fused kernels write it (``cuda_fusion.SCALED_ADD_EXPR``: no fused
    multiply-add, so each product rounds as on the CPU)."""
    expr = cuda_fusion.SCALED_ADD_EXPR
    kernel = _ELEMENTWISE.get((ScaledArrayAdd, expr))
    if kernel is None:
        kernel = _ELEMENTWISE[(ScaledArrayAdd, expr)] = _import_cupy().ElementwiseKernel(
            "float32 c1, float32 a, float32 c2, float32 b", "float32 y", expr, "dl_scaled_array_add"
        )
    return kernel


@cuda_kernel.register
def _scaled_array_add(op: ScaledArrayAdd, c1: Any, a: Any, c2: Any, b: Any) -> Any:
    """c1·a + c2·b in one kernel (the generic forward launches three): every optimizer update
    runs it, once or more per variable and step."""
    if a.dtype == b.dtype == c1.dtype == c2.dtype == np.float32:
        return _scaled_add_kernel()(c1.reshape(()), a, c2.reshape(()), b)
    return op.forward(_import_cupy(), c1, a, c2, b)


def write_into(op: Op, targets: list[Any], *arrays: Any) -> tuple[Any, ...] | None:
    """Runs ``op``'s kernel with ``targets`` (one array or None per result) as its output
    arrays, when that kernel can: a fused kernel (``cuda_fusion``), or one generated
    element-wise kernel whose output would have the target's shape and dtype. Returns the
    results (the targets where given), or None having run nothing. The same kernels as
    ``cuda_kernel``'s, so the same bits: what a captured training step uses to write an update
    straight into the variable's buffer. An input whose memory overlaps a target only in part
    is copied first, as NumPy does: no kernel reads a value another thread already wrote."""
    arrays = tuple(
        x.copy() if any(t is not None and cuda_vector.overlaps_in_part(x, t) for t in targets) else x
        for x in arrays
    )
    if isinstance(op, Fused):
        return cuda_fusion.run(op, arrays, targets)
    (out,) = targets
    if not arrays or not all(x.dtype == out.dtype for x in arrays) or out.dtype != np.float32:
        return None
    if np.broadcast_shapes(*(x.shape for x in arrays)) != out.shape:
        return None
    if isinstance(op, ScaledArrayAdd):
        c1, a, c2, b = arrays
        _scaled_add_kernel()(c1.reshape(()), a, c2.reshape(()), b, out)
        return (out,)
    c_expr = op.c_expr
    if c_expr is None or cuda_kernel.dispatch(type(op)) is not cuda_kernel.dispatch(Op):
        return None  # no generated kernel, or a kernel of its own
    if _vectorized(op, c_expr, arrays, out) is None:
        _elementwise_kernel(op, c_expr)(*arrays, out)
    return (out,)


@cuda_kernel.register
def _fused(op: Fused, *arrays: Any) -> Any:
    """One kernel for the whole chain where ``cuda_fusion`` can compile it, else its nodes one
    by one, each by its own CUDA kernel."""
    outs = cuda_fusion.run(op, arrays, [None] * len(op.outputs))
    if outs is None:
        return op.run_nodes(cuda_kernel, arrays)
    return outs if len(outs) != 1 else outs[0]


@cuda_kernel.register
def _fused_product(op: FusedProduct, a: Any, b: Any, *rest: Any) -> Any:
    """One product kernel of ours whose store runs the fused nodes (``cuda_epilogue``) where
    the geometry's plan is ours, else the product and the fused kernel one after the other."""
    outs = cuda_epilogue.run(op, a, b, rest, [None] * (len(op.fused.outputs) + op.keep))
    if outs is not None:
        return outs if len(outs) != 1 else outs[0]
    return op.run_parts(cuda_kernel, a, b, rest)


def fusible(op: Op) -> bool:
    """Whether a fused kernel can run ``op`` element by element (``cuda_fusion.scalar_code``)."""
    return cuda_fusion.scalar_code(op) is not None


@cuda_kernel.register
def _mat_mul(op: MatMul, a: Any, b: Any) -> Any:
    """One cuBLAS call through nvmath-python (``cuda_gemm``), which a CUDA graph can record;
    CuPy's matmul where nvmath-python is missing or the operands are not non-empty float32."""
    if (
        a.dtype == b.dtype == np.float32
        and a.size
        and b.size
        and a.flags.c_contiguous
        and b.flags.c_contiguous
        and cuda_gemm.available()
    ):
        return cuda_gemm.gemm(
            a,
            b,
            op.a_orientation == MatrixOrientation.TRANSPOSED,
            op.b_orientation == MatrixOrientation.TRANSPOSED,
        )
    return op.forward(_import_cupy(), a, b)


# conv2d, depthwise_conv2d and their derivatives: through cuDNN (``cuda_cudnn``) where it is
# installed; else conv2d's as the im2col product through our cuBLAS handle (``cuda_gemm``), as a
# matrix product goes, and depthwise's as their generic einsums. cuDNN's and our cuBLAS calls can
# be recorded into a CUDA graph (CuPy's matmul and einsum refuse capture).
def _float32_operands(*arrays: Any) -> bool:
    return all(a.dtype == np.float32 and a.size for a in arrays)


def _gemm_operands(op: _ConvOp, *arrays: Any) -> bool:
    return not op.depthwise and cuda_gemm.available() and _float32_operands(*arrays)


def _cudnn_operands(*arrays: Any) -> bool:
    return cuda_cudnn.available() and _float32_operands(*arrays)


@cuda_kernel.register(Conv2D)
@cuda_kernel.register(DepthwiseConv2D)
def _conv2d(op: _ConvOp, x: Any, filter: Any) -> Any:
    cupy = _import_cupy()
    info = op.conv_info(x.shape, filter.shape, op.depthwise)
    gemm = _gemm_operands(op, x, filter)
    if _cudnn_operands(x, filter):
        y = cuda_cudnn.conv2d(op, batch4(x), filter, info, _conv2d_gemm if gemm else None)
        if y is not None:
            return y.reshape(unbatched(info.out_shape, x.ndim))
    if not gemm:
        return op.forward(cupy, x, filter)
    return _conv2d_gemm(batch4(x), filter, info).reshape(unbatched(info.out_shape, x.ndim))


@cuda_kernel.register(Conv2DDerInput)
@cuda_kernel.register(DepthwiseConv2DDerInput)
def _conv2d_der_input(op: Conv2DDerInput | DepthwiseConv2DDerInput, dy: Any, filter: Any) -> Any:
    cupy = _import_cupy()
    info = op.conv_info(op.in_shape, filter.shape, op.depthwise)
    gemm = _gemm_operands(op, dy, filter)
    if _cudnn_operands(dy, filter):
        dx = cuda_cudnn.conv2d_der_input(
            op, batch4(dy), filter, info, _conv2d_der_input_gemm if gemm else None
        )
        if dx is not None:
            return dx.reshape(op.in_shape)
    if not gemm:
        return op.forward(cupy, dy, filter)
    return _conv2d_der_input_gemm(batch4(dy), filter, info).reshape(op.in_shape)


@cuda_kernel.register(Conv2DDerFilter)
@cuda_kernel.register(DepthwiseConv2DDerFilter)
def _conv2d_der_filter(op: Conv2DDerFilter | DepthwiseConv2DDerFilter, x: Any, dy: Any) -> Any:
    cupy = _import_cupy()
    info = op.conv_info(x.shape, op.filter_shape, op.depthwise)
    gemm = _gemm_operands(op, x, dy)
    if _cudnn_operands(x, dy):
        dw = cuda_cudnn.conv2d_der_filter(
            op, batch4(x), batch4(dy), info, _conv2d_der_filter_gemm if gemm else None
        )
        if dw is not None:
            return dw
    if not gemm:
        return op.forward(cupy, x, dy)
    return _conv2d_der_filter_gemm(batch4(x), batch4(dy), info)


# The im2col products: conv2d's kernels where cuDNN is absent or has no plan, and the rival that
# cuDNN's timed plans must beat (``cuda_cudnn``: an im2col product won the cnn benchmark's large
# filter gradient on an H200). Operands are [b, h, w, c] batches and deeplearn's filter layout.
def _conv2d_gemm(x: Any, filter: Any, info: Conv2DInfo) -> Any:
    cupy = _import_cupy()
    cols = cupy.ascontiguousarray(im2col(cupy, x, info))
    return cuda_gemm.gemm(cols, cupy.ascontiguousarray(filter.reshape(-1, info.out_channels)), False, False)


def _conv2d_der_input_gemm(dy: Any, filter: Any, info: Conv2DInfo) -> Any:
    cupy = _import_cupy()
    w = cupy.ascontiguousarray(filter.reshape(-1, info.out_channels))
    cols = cuda_gemm.gemm(cupy.ascontiguousarray(dy).reshape(-1, info.out_channels), w, False, True)
    return col2im(cupy, cols, info)


def _conv2d_der_filter_gemm(x: Any, dy: Any, info: Conv2DInfo) -> Any:
    cupy = _import_cupy()
    cols = cupy.ascontiguousarray(im2col(cupy, x, info))
    dw = cuda_gemm.gemm(cols, cupy.ascontiguousarray(dy).reshape(-1, info.out_channels), True, False)
    return dw.reshape(info.filter_shape)


def can_capture(op: Op) -> bool:
    """Whether ``op``'s CUDA kernel can be recorded into a CUDA graph. CuPy refuses cuBLAS calls
    while a stream captures. Every convolution goes through cuDNN where its frontend is installed
    (recorded); a geometry cuDNN has no plan for falls back to conv2d's im2col product through
    nvmath-python's cuBLAS bindings on a handle of our own (recorded, as matrix products are),
    and to depthwise's einsum through CuPy (not: such a capture fails, and the Program runs
    kernel by kernel, the reason logged)."""
    if isinstance(op, (MatMul, FusedProduct)):
        return cuda_gemm.available()
    if isinstance(op, _ConvOp):
        return cuda_cudnn.available() if op.depthwise else cuda_gemm.available()
    return True


_STAGED_BYTES = 16 << 20  # uploads up to this size go through pinned staging buffers


class _PinnedUploads:
    """Host-to-device copies that do not make the host wait for the GPU.

    A copy from ordinary (pageable) host memory is ordered on the stream and returns only once
    it has run, i.e. once every kernel queued before it has finished: a shuffled input
    provider's upload of an epoch's order would make each training step wait for the last one.
    Staged through page-locked memory, the copy is queued like a kernel and the host moves on.
    Each staging buffer is reused once the copy that read it has run (an event says so).
    """

    _MAX_BUFFERS = 8

    def __init__(self) -> None:
        self._buffers: list[tuple[Any, Any]] = []  # (pinned memory, event of the copy that read it)
        self._lock = threading.Lock()  # threads share the buffers

    def upload(self, host: np.ndarray) -> Any:
        cupy = _import_cupy()
        host = np.ascontiguousarray(host).reshape(host.shape)  # (ascontiguousarray makes a 0-d array 1-d)
        with self._lock:
            memory, event = self._buffer(cupy, host.nbytes)
        np.frombuffer(memory, host.dtype, host.size)[:] = host.reshape(-1)
        out = cupy.empty(host.shape, host.dtype)
        stream = cupy.cuda.get_current_stream()
        cupy.cuda.runtime.memcpyAsync(out.data.ptr, memory.ptr, host.nbytes, _HOST_TO_DEVICE, stream.ptr)
        event.record(stream)
        with self._lock:
            self._buffers.append((memory, event))
        return out

    def _buffer(self, cupy: Any, nbytes: int) -> tuple[Any, Any]:
        """A free staging buffer of at least ``nbytes`` and its event."""
        for i, (memory, event) in enumerate(self._buffers):
            if memory.size() >= nbytes and event.done:
                return self._buffers.pop(i)
        if len(self._buffers) >= self._MAX_BUFFERS:  # all busy, or all too small: the oldest one
            memory, event = self._buffers.pop(0)
            event.synchronize()
            if memory.size() >= nbytes:
                return memory, event
        return cupy.cuda.alloc_pinned_memory(max(nbytes, 4096)), cupy.cuda.Event(disable_timing=True)


_UPLOADS = _PinnedUploads()
_HOST_TO_DEVICE = 1  # cudaMemcpyHostToDevice


@functools.cache
def _gather_rows_kernel() -> Any:
    return _import_cupy().ElementwiseKernel(
        "raw T x, raw I rows, int64 width, int64 n",
        "T y",
        # A row out of [0, n) reads as zeros: checking would mean reading the indices back.
        "ptrdiff_t r = (ptrdiff_t)rows[i / width]; y = (r >= 0 && r < n) ? x[r * width + i % width] : (T)0",
        "dl_gather_rows",
    )


def gather_rows(data: Any, rows: Any) -> Any:
    """``data[rows]`` along the first axis, in one kernel (CuPy's take works out the same in
    Python first: a batch drawn from a GPU provider paid ~20 µs of host time for it)."""
    out = _import_cupy().empty((len(rows), *data.shape[1:]), dtype=data.dtype)
    if out.size:
        _gather_rows_kernel()(data, rows, out.size // len(rows), data.shape[0], out)
    return out


@cuda_kernel.register
def _gather(op: Gather, x: Any, indices: Any) -> Any:
    return gather_rows(x, indices)


# Kernels of their own that return None where they do not apply (dtypes, layouts), and then the
# generic forward runs: pooling, one kernel per op instead of one CuPy op per window tap
# (``cuda_pool``); the softmax cross-entropy and its derivative, a warp per row (``cuda_costs``).
_OWN_OR_GENERIC: dict[type, Any] = {
    MaxPool: cuda_pool.max_pool,
    MinPool: cuda_pool.min_pool,
    AvgPool: cuda_pool.avg_pool,
    MaxPoolBackprop: cuda_pool.max_pool_backprop,
    AvgPoolBackprop: cuda_pool.avg_pool_backprop,
    SoftmaxCrossEntropyCost: cuda_costs.softmax_cross_entropy_cost,
    SoftmaxCrossEntropyCostDer: cuda_costs.softmax_cross_entropy_cost_der,
}


def _own_or_generic(op: Op, *arrays: Any) -> Any:
    y = _OWN_OR_GENERIC[type(op)](op, *arrays)
    return op.forward(_import_cupy(), *arrays) if y is None else y


for _op_class in _OWN_OR_GENERIC:
    cuda_kernel.register(_op_class)(_own_or_generic)


def _transposed(perm: tuple[int, ...], x: Any) -> Any:
    """Transpose's forward, its permutation worked out once (``direct_kernel``)."""
    return x.transpose(perm).copy()


_SUM_KERNEL_SIZE = 1 << 16  # below, ours only where it is one launch (cuda_reduce.sum_small)


@cuda_kernel.register
def _sum(op: Sum, x: Any) -> Any:
    """A float32 sum over leading axes in kernels of fixed order (``cuda_reduce``) where the
    array is large (a bias's gradient) or the sum is one launch (a small array's total: on an
    H100 at 9f96831, an eager ``sum`` of 1,024 floats took 14.8 µs this way and 15.4 through
    CuPy's sum); CuPy's sum otherwise."""
    leading = _leading_axes(op, x.ndim)
    if leading is not None:
        if x.size < _SUM_KERNEL_SIZE:
            y = cuda_reduce.sum_small(x, leading)
        else:
            y = cuda_reduce.sum_leading(x, leading) if cuda_reduce.applies(x, leading) else None
        if y is not None:
            return y.reshape((1,) * leading + y.shape) if op.keep_dims else y  # (kept axes: ones)
    return op.forward(_import_cupy(), x)


def _leading_axes(op: Sum, rank: int) -> int | None:
    """How many leading axes ``op`` sums over on an array of ``rank`` dimensions; None where
    its axes are not the first ones (``cuda_reduce`` sums leading axes only)."""
    axes = op.axes(rank)
    return len(axes) if axes == tuple(range(len(axes))) else None


class MathBackendCUDA:
    """GPU memory and CuPy kernels. Raises RuntimeError with an install hint if CuPy or a GPU
    is missing."""

    name = "cuda"
    # A captured training step reads a batch's row indices where a GPU provider keeps them, as
    # RowSpans of its uploaded orders (deeplearn/compile/rows.py), rather than as copies.
    reads_row_spans = True

    def __init__(self) -> None:
        self.xp = _import_cupy()
        if not is_available():
            raise RuntimeError(
                "NDArrayMathGPU needs an NVIDIA GPU, but CuPy sees none (check the driver and "
                f"CUDA_VISIBLE_DEVICES); otherwise {INSTALL_HINT}."
            )

    def execute(self, op: Op, *arrays: RawArray) -> Any:
        kernel = _KERNELS.get(type(op)) or _KERNELS.learn(type(op))
        return kernel(op, *arrays)

    kernel_table = _KERNELS
    """The kernels ``execute`` runs, by op class (an Engine watches it: ``direct_kernel``)."""

    def direct_kernel(self, op: Op, inputs: Sequence[Spec], result: Spec) -> tuple[Any, bool, bool] | None:
        """``(direct, with_op, fresh)``: what ``execute(op, *arrays)`` does on arrays of
        ``inputs``' shapes and dtypes, as ``direct(op, *arrays)`` (``with_op``) or
        ``direct(*arrays)``, for an Engine to call without the dispatch; None for a subclass
        with an ``execute`` of its own. ``fresh``: the call returns a new C-ordered array of
        ``result``'s shape and dtype every time (``Known.fresh``), as each launch below does
        (its fallbacks too: CuPy's kernels); an op's own kernel may return a view.

        * An op without fields that has a ``c_expr``, on inputs of one floating dtype below
          ``cuda_vector.MIN_ELEMENTS``: on float32 inputs all of the result's shape,
          ``cuda_vector.launcher``'s launch of the op's expression (the kernel ``execute`` runs
          on large arrays; the same bits as CuPy's but for which NaN a NaN is); else the
          generated kernel ``cuda_kernel`` would choose. Only an op without fields: they may
          change its expression, and the Engine asks once for every op equal to it, where
          ``Step(0.0)`` equals ``Step(-0.0)``.
        * A float32 ``sum`` over leading axes that is one launch: ``cuda_reduce``'s launch,
          worked out once (``small_sum_launcher``), the kernel ``_sum`` runs.
        * A float32 ``mat_mul`` through nvmath-python: ``cuda_gemm.launcher``, its geometry
          worked out once; ``transpose``: its copy, the permutation worked out once.
        * Any other op: its kernel. (``Op.new_result`` is not read here yet: trusting it on
          CUDA waits for a GPU run of the tests that check it.)
        """
        if type(self).execute is not MathBackendCUDA.execute:
            return None
        kernel = _KERNELS.get(type(op)) or _KERNELS.learn(type(op))
        c_expr = op.c_expr
        if kernel is _GENERIC_KERNEL and c_expr is not None and not op.__dict__ and inputs:
            dtype = inputs[0].dtype
            if np.dtype(util.numpy_dtype(dtype)).kind == "f" and (
                len(inputs) == 1 or inputs[1].dtype == dtype
            ):
                if inputs[0].size < cuda_vector.MIN_ELEMENTS:  # (else cuda_vector's, which checks per call)
                    generated = _elementwise_kernel(op, c_expr)
                    names = _vector_names(op, c_expr)
                    if (
                        dtype == "float32"
                        and names is not None
                        and all(x.shape == result.shape for x in inputs)
                    ):
                        launch = cuda_vector.launcher(c_expr, names, result.shape, generated)
                        if launch is not None:
                            return launch, False, True
                    return generated, False, True
        if isinstance(op, MatMul) and kernel is _mat_mul and cuda_gemm.available():
            a, b = inputs
            if a.dtype == b.dtype == "float32" and a.size and b.size and a.rank == b.rank == 2:
                geometry = cuda_sgemm.Geometry.of(
                    a,
                    b,
                    op.a_orientation == MatrixOrientation.TRANSPOSED,
                    op.b_orientation == MatrixOrientation.TRANSPOSED,
                )
                return cuda_gemm.launcher(geometry, functools.partial(_mat_mul, op)), False, True
        if isinstance(op, Transpose) and kernel is _GENERIC_KERNEL:
            return functools.partial(_transposed, op._perm(inputs[0].rank)), False, True
        if (
            isinstance(op, Sum)
            and kernel is _sum
            and inputs[0].dtype == "float32"
            and inputs[0].size < _SUM_KERNEL_SIZE
        ):
            leading = _leading_axes(op, inputs[0].rank)
            if leading is not None:
                launch = cuda_reduce.small_sum_launcher(
                    inputs[0].shape, leading, result.shape, functools.partial(_sum, op)
                )
                if launch is not None:
                    return launch, False, True
        return kernel, True, False

    def kernel_for(self, op: Op) -> Any:
        """The kernel ``execute`` would run for ``op``, called as ``kernel(op, *arrays)``: looked
        up once by a replayed Session plan rather than on every call."""
        return cuda_kernel.dispatch(type(op))

    def write_into(self, op: Op, targets: list[Any], *arrays: RawArray) -> tuple[Any, ...] | None:
        """Runs ``op`` into ``targets`` where its kernel allows (``write_into``)."""
        return write_into(op, targets, *arrays)

    def fusible(self, op: Op) -> bool:
        """Whether a fused kernel can run ``op`` element by element (``fusible``)."""
        return fusible(op)

    def can_capture(self, op: Op) -> bool:
        """Whether a CUDA graph can record ``op``'s kernel (``can_capture``)."""
        return can_capture(op)

    def folds(self, product: MatMul, fused: Fused, at: int) -> bool:
        """Whether a product and the fused step that reads its result next run as one kernel
        here (``cuda_epilogue.folds``)."""
        return cuda_epilogue.folds(product, fused, at)

    def asarray(self, values: Any, dtype: Any = None) -> RawArray:
        cupy = self.xp
        if not isinstance(values, (cupy.ndarray, np.ndarray)) and hasattr(values, "__dlpack__"):
            try:
                values = cupy.from_dlpack(values)  # zero-copy for device producers (torch, JAX)
            except Exception:  # noqa: BLE001 - a host-only producer: go through NumPy
                values = np.from_dlpack(values)
        if isinstance(values, np.ndarray) and 0 < values.nbytes <= _STAGED_BYTES:
            # One queued copy of the bytes (the scalars of costs, seeds, feeds; a batch's rows):
            # the host does not wait, and -0.0 keeps its sign (CuPy's copy of a 0-d array lost it).
            with np.errstate(all="ignore"):
                return _UPLOADS.upload(values if dtype is None else values.astype(dtype, copy=False))
        return cupy.asarray(values, dtype=dtype)

    def gather_rows(self, data: RawArray, rows: RawArray) -> RawArray:
        """``data[rows]`` along the first axis, in one kernel (``gather_rows``)."""
        return gather_rows(data, rows)

    def to_numpy(self, data: RawArray) -> np.ndarray:
        return self.xp.asnumpy(data)  # type: ignore[no-any-return]

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def has_nan(self, data: RawArray) -> bool:
        return bool(data.dtype.kind == "f" and self.xp.isnan(data).any())


def pool_usage() -> dict[str, int]:
    """Bytes CuPy's default memory pool has in use and holds in total."""
    pool = _import_cupy().get_default_memory_pool()
    return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}
