"""A product of ours whose store runs a fused step's element-wise nodes: ``FusedProduct`` on CUDA.

``deeplearn/compile/products.py`` folds a matrix product and the ``Fused`` step that reads
its result next (a layer's bias and relu) into one ``FusedProduct`` step. Where the
product's geometry runs a plan of ours (``cuda_sgemm``), the step is one kernel here: the
plan's own tile code, whose store hands each finished element of C, at its flat index ``i``,
to the fused nodes' element-wise code (``cuda_fusion.element_code``, the lines of the fused
kernel itself). So the product's result is not read back (and is written only where the step
keeps it: ``FusedProduct.keep``), and the step launches once where it launched twice:

* a plan without a split: the product kernel's store runs the nodes;
* a split added by a second kernel: that kernel runs them on each sum;
* a clustered split: the block that adds an element's parts runs them.

The product is the same float32 ``fmaf`` chain as the plan's own kernel and the parts are
added in the same order; the nodes are compiled, as the fused kernel is, with
``--fmad=false``; so the outputs are the bits of the two kernels run one after the other
(``FusedProduct.forward``'s order). Where the geometry keeps cuBLAS's ``sgemm``, an operand
is not what the plan needs, or the kernel does not compile, ``run`` returns None and the
backend runs the two kernels. ``epilogues = False`` turns folding off (the Session's captured
steps then keep the two kernels).

This module imports CuPy lazily.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from deeplearn.math.backends import cuda_fusion, cuda_gemm, cuda_sgemm
from deeplearn.math.backends.cuda_sgemm import Geometry, Plan
from deeplearn.math.ops.fused import Fused, FusedProduct
from deeplearn.math.ops.linalg import TRANSPOSED, MatMul

__all__ = ["epilogues", "folds", "run", "source"]

_log = logging.getLogger(__name__)

epilogues = True
"""Fold a product and the fused step that reads its result next into one step (``folds``)."""

_REFUSED: set[tuple[Plan, Geometry, FusedProduct]] = set()
"""The epilogue kernels the GPU refused to launch (a cluster it cannot place): not tried again."""


def folds(product: MatMul, fused: Fused, at: int) -> bool:
    """Whether a ``FusedProduct`` of ``product`` and ``fused`` (the product's result its input
    ``at``) may run here as one kernel: folding is on, products run on our cuBLAS handle, and
    ``fused``'s nodes are element-wise over the product's result throughout."""
    if not (epilogues and cuda_gemm.available()):
        return False
    try:
        cuda_fusion.element_code(fused, at)
    except ValueError:
        return False
    return True


def source(plan: Plan, g: Geometry, op: FusedProduct) -> str:
    """The CUDA C of ``plan``'s product of geometry ``g`` with ``op``'s fused nodes as its
    epilogue: the kernel ``dl_product`` and, for a split added by a second kernel,
    ``dl_product_sum``. Their pointers after the product's own: the fused step's other inputs
    and its outputs (``cuda_fusion.element_code``), then, where ``op`` keeps it, the product's
    result (``outp``). Raises ValueError where the fused step has no epilogue."""
    params, lines = cuda_fusion.element_code(op.fused, op.at)
    if op.keep:
        params, lines = [*params, ("float*", "outp")], ["outp[i] = p_;", *lines]
    tiling = plan.tiling
    family, template = tiling.template(g.a_transposed, g.b_transposed)
    rows_strided, cols_strided = (
        tiling.flags(g.a_transposed, g.b_transposed) if tiling.stages else (False, False)
    )
    patch = f"{tiling.bm}, {tiling.bn}, {tiling.tm}, {tiling.tn}"
    strides = f"{str(rows_strided).lower()}, {str(cols_strided).lower()}"
    names = ", ".join(name for _, name in params)
    arguments = "".join(f", {kind} {name}" for kind, name in params)
    put = f"const dl_epilogue put{{{names}}};"
    product = [
        f"float acc[{tiling.tm}][{tiling.tn}];",
        f"{family}_tile<{template}>(A, B, M, N, K, lda, ldb, chunk, acc);",
    ]
    if plan.clustered:
        product += [put, f"deeplearn_cluster_sum<{patch}, {plan.splits}, {strides}>(acc, put, M, N);"]
    elif plan.splits > 1:
        product.append(
            f"deeplearn_store<{patch}, {strides}>(acc, deeplearn_write{{parts + blockIdx.z * (long long)M * N}}, M, N);"
        )
    else:
        product += [put, f"deeplearn_store<{patch}, {strides}>(acc, put, M, N);"]
    cluster = f"__cluster_dims__(1, 1, {plan.splits}) " if plan.clustered else ""
    text = [
        cuda_sgemm.source(),
        "// The fused nodes on element i of the product, whose value is p_.",
        "struct dl_epilogue {",
        *[f"    {kind} {name};" for kind, name in params],
        "    __device__ __forceinline__ void operator()(long long i, float p_) const {",
        "        typedef float T;",
        *[f"        {line}" for line in lines],
        "    }",
        "};",
        "",
        f'extern "C" __global__ void {cluster}__launch_bounds__({tiling.threads})',
        "dl_product(const float* __restrict__ A, const float* __restrict__ B, float* parts, int M, int N, int K,",
        f"           int lda, int ldb, int chunk{arguments}) {{",
        *[f"    {line}" for line in product],
        "}",
    ]
    if plan.splits > 1 and not plan.clustered:
        text += [
            f'extern "C" __global__ void dl_product_sum(const float* __restrict__ parts, long long size, int S{arguments}) {{',
            f"    {put}",
            "    deeplearn_add_parts(parts, size, S, put);",
            "}",
        ]
    return "\n".join(text) + "\n"


@functools.lru_cache(maxsize=64)
def _kernels(plan: Plan, g: Geometry, op: FusedProduct) -> tuple[Any, Any] | None:
    """(``dl_product``, ``dl_product_sum`` or None) compiled, or None, logged, where they do
    not compile."""
    import cupy

    try:
        module = cupy.RawModule(code=source(plan, g, op), options=("-std=c++17", "--fmad=false"))
        product = module.get_function("dl_product")
        total = module.get_function("dl_product_sum") if plan.splits > 1 and not plan.clustered else None
    except Exception as e:  # noqa: BLE001 - no NVRTC, a compiler that refuses it: two kernels
        _log.info("product %s with %s: no epilogue kernel (%s: %s)", g, plan.name, type(e).__name__, e)
        return None
    return product, total


def run(
    op: FusedProduct, a: Any, b: Any, rest: Sequence[Any], targets: Sequence[Any]
) -> tuple[Any, ...] | None:
    """``op`` on the operands ``a``, ``b`` and the fused step's other inputs ``rest``, in one
    kernel (two for a split added by a second kernel), into ``targets`` (an array or None per
    output: None gets a new one); returns the outputs, or None, having run nothing, where it
    cannot (see the module docstring). A launch the GPU refuses is that too; any other error
    is raised."""
    if not epilogues:
        return None
    for x in (a, b):
        if x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous or not x.size:
            return None
    inputs = op.fused_inputs(None, rest)
    for k, (x, spec) in enumerate(zip(inputs, op.fused.inputs, strict=True)):
        if k != op.at and (
            x.shape != spec.shape or x.dtype != _DTYPES[spec.dtype] or not x.flags.c_contiguous
        ):
            return None
    at, bt = op.product.a_orientation == TRANSPOSED, op.product.b_orientation == TRANSPOSED
    g = Geometry.of(a, b, at, bt)
    if op.fused.inputs[op.at].shape != (g.m, g.n):
        return None
    import cupy

    context, plan = cuda_gemm.planned(g, a, b)
    if plan is None:
        return None
    key = (plan, g, op)
    kernels = None if key in _REFUSED else _kernels(*key)
    if kernels is None:
        return None
    specs = [op.fused.spec_of(v) for v in op.fused.outputs]
    if op.keep:
        specs.insert(0, op.fused.inputs[op.at])
    outs = []
    for spec, target in zip(specs, targets, strict=True):
        if target is None:
            target = cupy.empty(spec.shape, np.float32)
        elif target.shape != spec.shape or target.dtype != np.float32 or not target.flags.c_contiguous:
            return None
        outs.append(target)
    # (the product's result, first among the step's outputs, last among the kernel's pointers)
    pointers = [x for i, x in enumerate(inputs) if i != op.at] + outs[op.keep :] + outs[: op.keep]
    product, total = kernels
    parts = cuda_sgemm.parts_for(plan, g, context.held)
    shape = cuda_sgemm.sizes(plan, g, a, b)
    try:
        # (parts: unread without a split added by a second kernel)
        product(
            plan.grid(g),
            (plan.tiling.threads,),
            (a, b, outs[0] if parts is None else parts, *shape, *pointers),
        )
    except cupy.cuda.driver.CUDADriverError as e:
        # A clustered plan's kernel refused at launch, the context sound (a cluster this GPU
        # cannot place: the statuses cuda_sgemm's planning leaves a candidate out for): the two
        # kernels instead, from now on. Anything else is raised: a fault or a bad argument
        # must not pass for a refusal.
        if not plan.clustered or e.status not in cuda_sgemm._REFUSED_CLUSTER:
            raise
        _REFUSED.add(key)
        _log.info("product %s with %s: the epilogue kernel did not launch (%s)", g, plan.name, e)
        return None
    if total is not None:
        total(*cuda_sgemm.sum_grid(g), (parts, np.int64(g.m * g.n), np.int32(plan.splits), *pointers))
    return tuple(outs)


_DTYPES = {"float32": np.dtype(np.float32), "int32": np.dtype(np.int32)}
