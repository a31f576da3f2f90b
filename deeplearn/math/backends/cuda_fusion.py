"""One CUDA kernel for a ``Fused`` op (``deeplearn/math/ops/fused.py``).

The kernel is generated from the nodes' own C expressions (``Op.c_expr``, the ones the eager
element-wise kernels are made from), so each node computes what its eager kernel computes, with
the same float32 roundings: the kernel is compiled with ``--fmad=false``, so that ``a * b`` of
one node and ``+ c`` of the next are not contracted into one fused multiply-add, which the
separate eager kernels could not do. Sums are the exception: they add in another order than
CuPy's reduction, so they agree to within a few ulps, not bit for bit.

Two shapes of kernel, by the number ``n`` of elements of the op's element-wise results:

* ``n <= SMALL``: one thread block. Each thread runs the element-wise nodes on elements
  ``i, i + blockDim, ...`` and adds its share of each sum; the block adds the shares in a fixed
  order (so the result is the same every launch), and thread 0 runs the scalar nodes that need
  a sum and writes every one-element result. A training step of a small model (``quad``) is
  then one kernel: forward, backward, gradients and updates.
* otherwise: a grid-stride loop over all the GPU's blocks, with no sums.

A node reads an input the op's results do not have the shape of by broadcasting (a bias row:
``i % 512``), a ``gather`` reads the provider's examples through the row indices where they
lie, and a one-element input is read once per thread. The source and its compiled kernel are
made once per op (a bounded cache: ops that equal share one).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import BinaryOp, Op, Spec, UnaryOp
from deeplearn.math.ops.fused import SMALL, Fused
from deeplearn.math.ops.layout import Clone, Gather
from deeplearn.math.ops.reduction import Sum
from deeplearn.types import Shape

__all__ = ["SCALED_ADD_EXPR", "run", "scalar_code", "source"]

SCALED_ADD_EXPR = "y = __fadd_rn(__fmul_rn(c1, a), __fmul_rn(c2, b))"
"""c1·a + c2·b with each product rounded as on the CPU (no fused multiply-add)."""

_THREADS = 256  # per block of the grid-stride kernel
_MAX_BLOCKS = 4096


def scalar_code(op: Op) -> tuple[tuple[str, ...], str] | None:
    """(the names the C statement reads, the statement) of an element-wise op on float32
    values giving float32, or None where a fused kernel cannot run it.

    Example:
        >>> from deeplearn.math.ops.elementwise import Relu
        >>> scalar_code(Relu())
        (('x',), 'y = x > 0 ? x : (x == x ? (T)0 : x)')
    """
    if isinstance(op, ScaledArrayAdd):
        return ("c1", "a", "c2", "b"), SCALED_ADD_EXPR
    if isinstance(op, Clone):
        return ("x",), "y = x"
    c_expr = op.c_expr
    if c_expr is None or not isinstance(op, (UnaryOp, BinaryOp)):
        return None
    names = ("x",) if isinstance(op, UnaryOp) else ("a", "b")
    if op.infer(*[Spec((), "float32")] * len(names)).dtype != "float32":
        return None  # equal gives bool
    return names, c_expr


def _size(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _broadcast_index(shape: Shape, out: Shape) -> str:
    """The C expression of the flat index into an array of ``shape`` broadcast to ``out``, at
    the flat index ``i`` of ``out`` (both C-ordered)."""
    if _size(shape) == _size(out):
        return "i"
    if _size(shape) == 1:
        return "0"
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    if _size(shape) == _size(out[len(out) - len(shape) :]) and tuple(shape) == tuple(
        out[len(out) - len(shape) :]
    ):
        return f"(i % {_size(shape)}LL)"  # the trailing axes (a bias row)
    terms = []
    out_stride = 1
    in_stride = 1
    for d in range(len(out) - 1, -1, -1):
        if padded[d] != 1:
            terms.append(f"((i / {out_stride}LL) % {out[d]}LL) * {in_stride}LL")
        out_stride *= out[d]
        in_stride *= padded[d]
    return "(" + " + ".join(terms) + ")"


class _Unfusable(Exception):
    """The op has a node this module cannot compile (the caller runs the nodes one by one)."""


def source(op: Fused) -> tuple[str, int, bool]:
    """(the CUDA source of ``op``'s kernel ``dl_fused``, n, whether it runs as one block).
    Raises ValueError where it has no kernel."""
    try:
        return _source(op)
    except _Unfusable as e:
        raise ValueError(f"fused: no CUDA kernel for {e}") from None


def _source(op: Fused) -> tuple[str, int, bool]:
    k = len(op.inputs)
    nodes = op.nodes
    kinds: list[str] = []  # per node: map, pre, reduce, post
    n = 1
    for node in nodes:
        if isinstance(node.op, Sum):
            kinds.append("reduce")
            (arg,) = node.args
            n = max(n, _size(arg.shape or op.spec_of(arg.value).shape))
        elif isinstance(node.op, Gather) or node.spec.size > 1:
            kinds.append("map")
            n = max(n, node.spec.size)
        else:
            after_sum = any(a.value >= k and kinds[a.value - k] in ("reduce", "post") for a in node.args)
            kinds.append("post" if after_sum else "pre")
    small = n <= SMALL
    if "reduce" in kinds and not small:
        raise _Unfusable("a sum of more than SMALL elements")
    outputs = {v: j for j, v in enumerate(op.outputs)}

    def kind_of(value: int) -> str:
        return "input" if value < k else kinds[value - k]

    params = [
        f"const {'int' if spec.dtype == 'int32' else 'float'}* in{v}" for v, spec in enumerate(op.inputs)
    ] + [f"float* out{j}" for j in range(len(op.outputs))]
    pre: list[str] = []
    loop: list[str] = []
    reductions: list[int] = []
    post: list[str] = []
    loaded: set[int] = set()

    def scalar_arg(value: int) -> str:
        if value < k:
            if value not in loaded:
                loaded.add(value)
                pre.append(f"const float s{value} = in{value}[0];")
            return f"s{value}"
        return f"v{value}"

    def arg_expr(value: int, shape: Shape | None, out: Shape, per_element: bool) -> str:
        spec = op.spec_of(value)
        view = shape if shape is not None else spec.shape
        if spec.dtype != "float32":
            raise _Unfusable(f"a {spec.dtype} value read element by element")
        if value >= k:
            if per_element and kind_of(value) == "map" and _size(view) != n:
                raise _Unfusable("a result read broadcast")
            return f"v{value}"
        if not per_element or _size(view) == 1:
            return scalar_arg(value)
        return f"in{value}[{_broadcast_index(view, out)}]"

    for j, (node, kind) in enumerate(zip(nodes, kinds, strict=True)):
        v = k + j
        if kind == "reduce":
            (arg,) = node.args
            reductions.append(v)
            pre.append(f"float acc{v} = 0.f;")
            loop.append(f"acc{v} += {arg_expr(arg.value, arg.shape, (n,), True)};")
            continue
        if isinstance(node.op, Gather):
            statement = _gather(op, node, v)
        else:
            code = scalar_code(node.op)
            if code is None:
                raise _Unfusable(node.op.name)
            names, expression = code
            per_element = kind == "map"
            reads = " ".join(
                f"const T {name} = {arg_expr(a.value, a.shape, node.spec.shape, per_element)};"
                for name, a in zip(names, node.args, strict=True)
            )
            statement = f"float v{v}; {{ {reads} T y; {expression}; v{v} = y; }}"
        (loop if kind == "map" else pre if kind == "pre" else post).append(statement)
        if kind == "map" and v in outputs:
            loop.append(f"out{outputs[v]}[i] = v{v};")
    stores = [f"out{j}[0] = v{v};" for v, j in outputs.items() if kind_of(v) != "map"]
    body: list[str] = [*pre]
    if small:
        body.append(f"for (long long i = threadIdx.x; i < {n}LL; i += blockDim.x) {{")
        body += [f"    {line}" for line in loop]
        body.append("}")
        if reductions:
            body.append(f"__shared__ float red_[{len(reductions)}][32];")
            body.append("const int lane_ = threadIdx.x & 31, warp_ = threadIdx.x >> 5;")
            for r, v in enumerate(reductions):
                body.append(f"{{ float t_ = dl_warp_sum(acc{v}); if (lane_ == 0) red_[{r}][warp_] = t_; }}")
        body.append("__syncthreads();")  # every thread has read what thread 0 writes next
        body.append("if (threadIdx.x != 0) return;")
        for r, v in enumerate(reductions):
            body.append(f"float v{v} = 0.f;")
            body.append(f"for (int w_ = 0; w_ < (int)((blockDim.x + 31) >> 5); ++w_) v{v} += red_[{r}][w_];")
        body += post
        body += stores
    else:
        body.append(
            f"for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < {n}LL; "
            "i += (long long)gridDim.x * blockDim.x) {"
        )
        body += [f"    {line}" for line in loop]
        body.append("}")
        if stores:
            body.append("if (blockIdx.x != 0 || threadIdx.x != 0) return;")
            body += stores
    text = "\n".join(
        [
            "typedef float T;",
            "__device__ __forceinline__ float dl_warp_sum(float v) {",
            "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);",
            "    return v;",
            "}",
            f'extern "C" __global__ void dl_fused({", ".join(params)}) {{',
            *[f"    {line}" for line in body],
            "}",
        ]
    )
    return text + "\n", n, small


def _gather(op: Fused, node: Any, v: int) -> str:
    examples, rows = node.args
    if examples.value >= len(op.inputs) or rows.value >= len(op.inputs):
        raise _Unfusable("a gather of a result")
    shape = op.inputs[examples.value].shape
    width = _size(shape[1:])
    row = "i" if width == 1 else f"i / {width}LL"
    at = "r_" if width == 1 else f"r_ * {width}LL + i % {width}LL"
    return (
        f"float v{v}; {{ const long long r_ = (long long)in{rows.value}[{row}]; "
        f"v{v} = (r_ >= 0 && r_ < {shape[0]}LL) ? in{examples.value}[{at}] : 0.f; }}"
    )


@functools.lru_cache(maxsize=256)
def _kernel(op: Fused) -> tuple[Any, int, bool] | None:
    """The compiled kernel of ``op``, its n and whether it runs as one block; None where it
    has none."""
    try:
        text, n, small = _source(op)
    except _Unfusable:
        return None
    import cupy

    module = cupy.RawModule(code=text, options=("--fmad=false",))
    return module.get_function("dl_fused"), n, small


def run(op: Fused, arrays: Sequence[Any], targets: Sequence[Any]) -> tuple[Any, ...] | None:
    """Runs ``op``'s kernel on ``arrays`` into ``targets`` (an array or None per output: None
    gets a new one); returns the outputs, or None having run nothing where it has no kernel or
    an input is not the C-ordered array of the shape and dtype it was fused for."""
    for x, spec in zip(arrays, op.inputs, strict=True):
        if x.shape != spec.shape or x.dtype != _DTYPES[spec.dtype] or not x.flags.c_contiguous:
            return None
    compiled = _kernel(op)
    if compiled is None:
        return None
    kernel, n, small = compiled
    import cupy

    outs = []
    for v, target in zip(op.outputs, targets, strict=True):
        spec = op.spec_of(v)
        if target is None:
            target = cupy.empty(spec.shape, np.float32)
        elif target.shape != spec.shape or target.dtype != np.float32 or not target.flags.c_contiguous:
            return None
        outs.append(target)
    if small:
        grid, block = 1, min(1024, max(32, (n + 31) // 32 * 32))
    else:
        grid, block = min(_MAX_BLOCKS, (n + _THREADS - 1) // _THREADS), _THREADS
    kernel((grid,), (block,), (*arrays, *outs))
    return tuple(outs)


_DTYPES = {"float32": np.dtype(np.float32), "int32": np.dtype(np.int32)}
