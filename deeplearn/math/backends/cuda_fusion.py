"""One CUDA kernel for a ``Fused`` op (``deeplearn/math/ops/fused.py``).

The kernel is generated from the nodes' own C expressions (``Op.c_expr``, the ones the eager
element-wise kernels are made from), so each node computes what its eager kernel computes, with
the same float32 roundings: the kernel is compiled with ``--fmad=false``, so that ``a * b`` of
one node and ``+ c`` of the next are not contracted into one fused multiply-add, which the
separate eager kernels could not do. Sums are the exception: they add in another order than
CuPy's reduction, so they agree to within a few ulps, not bit for bit.

Three shapes of kernel (``Plan``), by the number ``n`` of elements of the op's element-wise
results and ``cols`` of its sums' results (see ``deeplearn/compile/fusion.py`` for the roles):

* with sums, or ``n <= SMALL``: blocks of columns. Thread (column ``j``, row group ``g``) runs
  the element-wise nodes on the elements of rows ``g, g + G, ...`` of its column and adds its
  share of each sum; the block adds the shares in a fixed order (the same result every launch),
  and the first row group runs the nodes that need the sums and writes the column's results.
  With ``cols == 1`` that is one block of up to 1024 threads (sums by warp shuffles): a small
  model's whole step (``quad``: forward, backward, gradients and updates) is one kernel.
* without sums, ``n > SMALL``: a grid-stride loop over all the GPU's blocks.
* independent parts side by side (``Fused.segments``): one grid-stride loop over all of them,
  each part on its own stretch of the threads (the updates of several variables).

A node reads an input the op's results do not have the shape of by broadcasting (a bias row:
``i % 512``), a ``gather`` reads the provider's examples through the row indices where they
lie, and a one-element input is read once per thread. The source and its compiled kernel are
made once per op (a bounded cache: ops that equal share one).
"""

from __future__ import annotations

import functools
import logging
from math import prod
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.ops.arithmetic import ScaledArrayAdd
from deeplearn.math.ops.base import BinaryOp, Op, Spec, UnaryOp
from deeplearn.math.ops.fused import SMALL, Fused
from deeplearn.math.ops.layout import Clone, Gather
from deeplearn.math.ops.reduction import Sum
from deeplearn.types import Shape

__all__ = ["SCALED_ADD_EXPR", "Plan", "element_code", "run", "scalar_code", "source"]

_LOG = logging.getLogger("deeplearn")
SCALED_ADD_EXPR = "y = __fadd_rn(__fmul_rn(c1, a), __fmul_rn(c2, b))"
"""c1·a + c2·b with each product rounded as on the CPU (no fused multiply-add)."""

_THREADS = 256  # per block of the grid-stride kernel, and at most of a column kernel (cols > 1)
_SHARED_BYTES = 48 << 10  # the static shared memory of a block
_MAX_BLOCKS = 4096
_COLUMN_BLOCKS = 128  # blocks a column kernel aims for: about one per multiprocessor (132 on an H100)
_MIN_COLUMNS = 8  # columns per block at least (a warp reads a 32-byte sector of each of 4 rows)


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


def _broadcast_index(shape: Shape, out: Shape, i: str = "i") -> str:
    """The C expression of the flat index into an array of ``shape`` broadcast to ``out``, at
    the flat index ``i`` of ``out`` (both C-ordered)."""
    if prod(shape) == prod(out):
        return i
    if prod(shape) == 1:
        return "0"
    padded = (1,) * (len(out) - len(shape)) + tuple(shape)
    if prod(shape) == prod(out[len(out) - len(shape) :]) and tuple(shape) == tuple(
        out[len(out) - len(shape) :]
    ):
        return f"({i} % {prod(shape)}LL)"  # the trailing axes (a bias row)
    terms = []
    out_stride = 1
    in_stride = 1
    for d in range(len(out) - 1, -1, -1):
        if padded[d] != 1:
            terms.append(f"(({i} / {out_stride}LL) % {out[d]}LL) * {in_stride}LL")
        out_stride *= out[d]
        in_stride *= padded[d]
    return "(" + " + ".join(terms) + ")"


class _Unfusable(Exception):
    """The op has a node this module cannot compile (the caller runs the nodes one by one)."""


class Plan(NamedTuple):
    """A Fused op's kernel: its CUDA source (the kernel ``dl_fused``), how many elements its
    element-wise results have (``n``) and its sums' results (``cols``), and its launch."""

    source: str
    n: int
    cols: int
    grid: int
    block: int


def source(op: Fused) -> Plan:
    """``op``'s kernel (see the module docstring); ValueError where it has none."""
    try:
        return _plan(op)
    except _Unfusable as e:
        raise ValueError(f"fused: no CUDA kernel for {e}") from None


def _roles(op: Fused, start: int = 0, end: int | None = None) -> tuple[list[str], int, int]:
    """The role of each of the nodes ``start:end`` (map, pre, reduce, post: see
    ``deeplearn/compile/fusion.py``), and their n and cols."""
    k = len(op.inputs)
    part = op.nodes[start:end]
    sums = [node for node in part if isinstance(node.op, Sum)]
    if len({node.spec.size for node in sums}) > 1:
        raise _Unfusable("sums to results of different sizes")
    cols = sums[0].spec.size if sums else 1
    summed = [prod(a.shape or op.spec_of(a.value).shape) for node in sums for a in node.args]
    others = [node.spec.size for node in part if not isinstance(node.op, Sum)]
    n = max([1, *summed, *(size for size in others if size not in (1, cols))])
    roles: list[str] = []
    for node in part:
        if any(k <= a.value < k + start for a in node.args):
            raise _Unfusable("a part that reads another")
        after_sum = any(a.value >= k and roles[a.value - k - start] in ("reduce", "post") for a in node.args)
        size = node.spec.size
        if isinstance(node.op, Sum):
            roles.append("reduce")
        elif isinstance(node.op, Gather) or (size == n and n > 1 and not after_sum):
            roles.append("map")
        elif size == 1 and not after_sum:
            roles.append("pre")
        elif size == cols and after_sum:
            roles.append("post")
        else:
            raise _Unfusable(f"{node.op.name} of {size} elements in a kernel of {n} by {cols}")
    if sums and n // cols > SMALL:
        raise _Unfusable("sums of more than SMALL rows")
    return roles, n, cols


class _Writer:
    """The C lines of a Fused op's nodes: ``pre`` (before the loop, every thread), ``loop``
    (per element ``i``), ``post`` (per column ``j``, after the sums), the sums' values."""

    def __init__(self, op: Fused, given: int | None = None) -> None:
        self.op = op
        self.given = given  # an input read from the float p_ (a product's value), not from memory
        self.k = len(op.inputs)
        self.outputs = {v: j for j, v in enumerate(op.outputs)}
        self.pre: list[str] = []
        self.loop: list[str] = []
        self.post: list[str] = []
        self.reductions: list[int] = []
        self.roles: dict[int, str] = {}  # value -> role
        self._loaded: set[int] = set()

    def arg(self, value: int, shape: Shape | None, out: Shape, index: str | None) -> str:
        """What a node reads: at flat ``index`` of a result of shape ``out`` (i: a map
        element, j: a column), or one element (None)."""
        spec = self.op.spec_of(value)
        view = shape if shape is not None else spec.shape
        if spec.dtype != "float32":
            raise _Unfusable(f"a {spec.dtype} value read element by element")
        if value >= self.k:
            return f"v{value}"
        if value == self.given:
            if index != "i" or prod(view) != prod(out) or prod(out) != prod(spec.shape):
                raise _Unfusable("a product's value read other than element for element")
            return "p_"
        if index is None or prod(view) == 1:
            if value not in self._loaded:
                self._loaded.add(value)
                self.pre.append(f"const float s{value} = in{value}[0];")
            return f"s{value}"
        return f"in{value}[{_broadcast_index(view, out, index)}]"

    def write(self, start: int, roles: list[str], n: int, cols: int) -> list[str]:
        """The lines of nodes ``start, start + 1, ...`` (of ``roles``); returns the loop's."""
        loop: list[str] = []
        for j, role in enumerate(roles):
            node, v = self.op.nodes[start + j], self.k + start + j
            self.roles[v] = role
            if role == "reduce":
                (arg,) = node.args
                self.reductions.append(v)
                self.pre.append(f"float acc{v} = 0.f;")
                loop.append(f"acc{v} += {self.arg(arg.value, arg.shape, (n,), 'i')};")
                continue
            if isinstance(node.op, Gather):
                if any(a.value == self.given for a in node.args):
                    raise _Unfusable("a gather of a product")
                statement = _gather(self.op, node, v)
            else:
                code = scalar_code(node.op)
                if code is None:
                    raise _Unfusable(node.op.name)
                names, expression = code
                index = {"map": "i", "post": "j" if cols > 1 else None, "pre": None}[role]
                reads = " ".join(
                    f"const T {name} = {self.arg(a.value, a.shape, node.spec.shape, index)};"
                    for name, a in zip(names, node.args, strict=True)
                )
                statement = f"float v{v}; {{ {reads} T y; {expression}; v{v} = y; }}"
            (loop if role == "map" else self.pre if role == "pre" else self.post).append(statement)
            if role == "map" and v in self.outputs:
                loop.append(f"out{self.outputs[v]}[i] = v{v};")
        return loop

    def stores(self, roles: tuple[str, ...], index: str) -> list[str]:
        return [f"out{o}[{index}] = v{v};" for v, o in self.outputs.items() if self.roles[v] in roles]

    def params(self) -> str:
        return ", ".join(f"{kind} {name}" for kind, name in self.parameters())

    def parameters(self) -> list[tuple[str, str]]:
        """(C type, name) of each pointer the kernel reads or writes: the inputs (but
        ``given``) as ``in<v>``, the outputs as ``out<j>``."""
        ins = [
            (f"const {'int' if s.dtype == 'int32' else 'float'}*", f"in{v}")
            for v, s in enumerate(self.op.inputs)
            if v != self.given
        ]
        return ins + [("float*", f"out{j}") for j in range(len(self.op.outputs))]


def element_code(op: Fused, given: int) -> tuple[list[tuple[str, str]], list[str]]:
    """What a product's epilogue (``cuda_epilogue``) runs on each element of its result: the C
    lines of ``op``'s nodes at flat index ``i``, with ``op``'s input ``given`` (the product)
    read from the float ``p_``, writing ``op``'s outputs there; and the pointers they read and
    write ((C type, name): ``in<v>`` for the other inputs, ``out<j>`` for the outputs). The
    lines are those of ``op``'s own kernel, so the same float32 operations. ValueError where
    ``op`` is not element-wise over the product's shape throughout (a sum, a result of another
    size, the product read broadcast).

    Example:
        >>> from deeplearn.math.ops.arithmetic import Add
        >>> from deeplearn.math.ops.elementwise import Relu
        >>> from deeplearn.math.ops.fused import Arg, Node
        >>> f = Fused(
        ...     inputs=(Spec((4, 3)), Spec((3,))),
        ...     nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((4, 3))), Node(Relu(), (Arg(2),), Spec((4, 3)))),
        ...     outputs=(3,),
        ... )
        >>> params, lines = element_code(f, 0)
        >>> params
        [('const float*', 'in1'), ('float*', 'out0')]
        >>> lines[0]
        'float v2; { const T a = p_; const T b = in1[(i % 3LL)]; T y; y = a + b; v2 = y; }'
    """
    try:
        w = _Writer(op, given)
        roles, n, cols = _roles(op)
        if op.segments or cols != 1 or not set(roles) <= {"map", "pre"}:
            raise _Unfusable("a sum, or parts side by side")
        if n != op.inputs[given].size or op.inputs[given].dtype != "float32":
            raise _Unfusable("results of another size than the product")
        loop = w.write(0, roles, n, cols)
        if any(w.roles[v] != "map" for v in op.outputs):
            raise _Unfusable("a one-element output")
    except _Unfusable as e:
        raise ValueError(f"fused: no epilogue for {e}") from None
    return w.parameters(), [*w.pre, *loop]


def _kernel_text(params: str, body: list[str], block: int) -> str:
    # __launch_bounds__: the compiler keeps to the registers that ``block`` threads may have
    # (a large fused step held more, and a block of 1024 could not launch).
    return "\n".join(
        [
            "typedef float T;",
            "__device__ __forceinline__ float dl_warp_sum(float v) {",
            "    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);",
            "    return v;",
            "}",
            f'extern "C" __global__ void __launch_bounds__({block}) dl_fused({params}) {{',
            *[f"    {line}" for line in body],
            "}",
            "",
        ]
    )


def _grid_loop(total: str) -> str:
    return (
        f"for (long long t_ = (long long)blockIdx.x * blockDim.x + threadIdx.x; t_ < {total}LL; "
        "t_ += (long long)gridDim.x * blockDim.x) {"
    )


def _plan(op: Fused) -> Plan:
    if op.segments:
        return _side_by_side_plan(op)
    w = _Writer(op)
    roles, n, cols = _roles(op)
    rows = n // cols
    loop = w.write(0, roles, n, cols)
    body: list[str] = []
    if not w.reductions and n > SMALL:  # element-wise only, over every block of the GPU
        grid, block = min(_MAX_BLOCKS, -(-n // _THREADS)), _THREADS
        body += w.pre
        body.append(_grid_loop(str(n)))
        body.append("    const long long i = t_;")
        body += [f"    {line}" for line in loop]
        body.append("}")
        scalars = w.stores(("pre",), "0")
        if scalars:
            body.append("if (blockIdx.x != 0 || threadIdx.x != 0) return;")
            body += scalars
        return Plan(_kernel_text(w.params(), body, block), n, cols, grid, block)
    # Blocks of columns: each block sums its columns over every row, in a fixed order.
    per = 1 if cols == 1 else _columns_per_block(cols, rows)
    groups = min(1024, max(32, -(-rows // 32) * 32)) if cols == 1 else min(rows, max(1, _THREADS // per))
    grid, block = -(-cols // per), per * groups
    body.append(f"const int c_ = threadIdx.x % {per}, g_ = threadIdx.x / {per};")
    body.append(f"const long long j = (long long)blockIdx.x * {per} + c_;")
    body.append(f"const bool live_ = j < {cols}LL;")
    body += w.pre
    # (unrolled: a thread's rows are independent loads, in flight together)
    body.append("#pragma unroll 4")
    body.append(f"for (long long r_ = live_ ? g_ : {rows}LL; r_ < {rows}LL; r_ += {groups}) {{")
    body.append(f"    const long long i = r_ * {cols}LL + j;")
    body += [f"    {line}" for line in loop]
    body.append("}")
    sums = w.reductions
    if sums and cols == 1:  # a warp's sum by shuffles, then the warps' in order
        body.append(f"__shared__ float red_[{len(sums)}][32];")
        for r, v in enumerate(sums):
            body.append(
                f"{{ float t_ = dl_warp_sum(acc{v}); if ((threadIdx.x & 31) == 0) red_[{r}][threadIdx.x >> 5] = t_; }}"
            )
    elif sums:  # each column's rows, in order
        if len(sums) * block * 4 > _SHARED_BYTES:
            raise _Unfusable(f"{len(sums)} sums by column: more shared memory than a block has")
        body.append(f"__shared__ float red_[{len(sums)}][{block}];")
        body += [f"red_[{r}][threadIdx.x] = acc{v};" for r, v in enumerate(sums)]
    body.append("__syncthreads();")  # every thread has read what the first row writes next
    body.append("if (g_ != 0 || !live_) return;")
    for r, v in enumerate(sums):
        body.append(f"float v{v} = 0.f;")
        if cols == 1:
            body.append(f"for (int w_ = 0; w_ < {-(-block // 32)}; ++w_) v{v} += red_[{r}][w_];")
        else:
            body.append(f"for (int w_ = 0; w_ < {groups}; ++w_) v{v} += red_[{r}][w_ * {per} + c_];")
    body += w.post
    body += w.stores(("reduce", "post"), "j")
    scalars = w.stores(("pre",), "0")
    if scalars:
        body.append("if (j != 0) return;")
        body += scalars
    return Plan(_kernel_text(w.params(), body, block), n, cols, grid, block)


def _columns_per_block(cols: int, rows: int) -> int:
    """How many columns a block of a column kernel takes: 32 (a warp then reads 128 bytes of a
    row), halved while that leaves fewer than ``_COLUMN_BLOCKS`` blocks and the rows can fill
    the threads it frees, down to ``_MIN_COLUMNS``. mlp's bias gradients (512 columns, 128
    rows) ran as 16 blocks whose threads each walked 16 rows one load after another: 9 µs
    apiece on an H100 for 256 KB.

    Example:
        >>> [_columns_per_block(c, r) for c, r in ((512, 128), (4096, 128), (10, 128), (64, 8))]
        [8, 32, 10, 32]
    """
    per = min(cols, 32)
    while per // 2 >= _MIN_COLUMNS and -(-cols // per) < _COLUMN_BLOCKS and rows > _THREADS // per:
        per //= 2
    return per


def _side_by_side_plan(op: Fused) -> Plan:
    """Independent element-wise parts (``op.segments``) in one grid-stride kernel: threads
    ``0 .. n₁ - 1`` run the first part, the next n₂ the second, and so on."""
    w = _Writer(op)
    parts: list[tuple[int, list[str]]] = []
    start = 0
    for count in op.segments:
        roles, n, cols = _roles(op, start, start + count)
        if cols != 1 or not set(roles) <= {"map", "pre"}:
            raise _Unfusable("a sum in a part run side by side")
        parts.append((n, w.write(start, roles, n, cols)))
        start += count
    total = sum(n for n, _ in parts)
    body = [*w.pre, _grid_loop(str(total))]
    offset = 0
    for p, (n, loop) in enumerate(parts):
        body.append(f"    {'if' if p == 0 else 'else if'} (t_ < {offset + n}LL) {{")
        body.append(f"        const long long i = t_ - {offset}LL;")
        body += [f"        {line}" for line in loop]
        body.append("    }")
        offset += n
    body.append("}")
    scalars = w.stores(("pre",), "0")
    if scalars:
        body.append("if (blockIdx.x != 0 || threadIdx.x != 0) return;")
        body += scalars
    grid = min(_MAX_BLOCKS, -(-total // _THREADS))
    return Plan(_kernel_text(w.params(), body, _THREADS), total, 1, grid, _THREADS)


def _gather(op: Fused, node: Any, v: int) -> str:
    examples, rows = node.args
    if examples.value >= len(op.inputs) or rows.value >= len(op.inputs):
        raise _Unfusable("a gather of a result")
    shape = op.inputs[examples.value].shape
    width = prod(shape[1:])
    row = "i" if width == 1 else f"i / {width}LL"
    at = "r_" if width == 1 else f"r_ * {width}LL + i % {width}LL"
    return (
        f"float v{v}; {{ const long long r_ = (long long)in{rows.value}[{row}]; "
        f"v{v} = (r_ >= 0 && r_ < {shape[0]}LL) ? in{examples.value}[{at}] : 0.f; }}"
    )


@functools.lru_cache(maxsize=256)
def _kernel(op: Fused) -> tuple[Any, Plan] | None:
    """The compiled kernel of ``op`` and its plan; None where it has none."""
    try:
        plan = _plan(op)
    except _Unfusable:
        return None
    import cupy

    try:
        module = cupy.RawModule(code=plan.source, options=("--fmad=false",))
        return module.get_function("dl_fused"), plan
    except cupy.cuda.compiler.CompileException:  # (more shared memory than a block has, ...)
        _LOG.info("fused: kept as separate kernels, the fused one did not compile:\n%s", plan.source)
        return None


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
    kernel, plan = compiled
    import cupy

    outs = []
    for v, target in zip(op.outputs, targets, strict=True):
        spec = op.spec_of(v)
        if target is None:
            target = cupy.empty(spec.shape, np.float32)
        elif target.shape != spec.shape or target.dtype != np.float32 or not target.flags.c_contiguous:
            return None
        outs.append(target)
    try:
        kernel((plan.grid,), (plan.block,), (*arrays, *outs))
    except cupy.cuda.driver.CUDADriverError as e:  # (too many registers for its block, ...)
        _LOG.info("fused: kept as separate kernels, the fused one did not launch (%s)", e)
        return None
    return tuple(outs)


_DTYPES = {"float32": np.dtype(np.float32), "int32": np.dtype(np.int32)}
