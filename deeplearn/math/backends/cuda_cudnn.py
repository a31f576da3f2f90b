"""conv2d, depthwise_conv2d and their derivatives through cuDNN, by NVIDIA's Python frontend (its graph API).

CuPy 14 no longer binds cuDNN, and im2col plus one GEMM copies every input window fH·fW times:
on an H200, the cnn workload's two convolutions and their derivatives took ~570 µs of a step that
way, ~130 µs through cuDNN. The frontend (``nvidia-cudnn-frontend``; the ``cuda12``/``cuda13``
extras install it with cuDNN's libraries) builds a graph of one convolution per geometry, once;
its execution records into a CUDA graph, so a captured training step keeps its convolutions.

Layouts. Images stay NHWC, as deeplearn keeps them: cuDNN reads them through strides. cuDNN's
NHWC engines want the filter as [outDepth, fH, fW, inDepth] (KRSC) and ignore other filter strides
(measured: a filter described with deeplearn's [fH, fW, inDepth, outDepth] strides computed the
wrong convolution), so the filter is transposed into that layout, and a filter gradient out of it:
one small copy each (the filters are the smallest operand of a convolution).

Plans. For each geometry the frontend's heuristics propose engine configurations; those that can
round an fp32 input to a narrower type (TF32 tensor cores, down-converted inputs, reduced-precision
sums) or that add in a varying order (non-deterministic) are left out, so a convolution is as
exact as the im2col product and gives the same bits on every call. The rest are timed on the first
call and the fastest is kept (``plan_log`` says which). A geometry seen first while a stream is
being captured cannot be timed: that call takes the im2col path.

Only float32 inputs go through here; ``available()`` is False without the frontend or cuDNN's
libraries, and the backend then uses im2col (the reason is logged once).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.ops.conv_util import Conv2DInfo

__all__ = ["available", "conv2d", "conv2d_der_filter", "conv2d_der_input", "plan_log"]

_log = logging.getLogger(__name__)

_MAX_GRAPHS = 128  # geometries kept (each holds its plans and their compiled kernels)
_TIMED_RUNS = 5  # launches per candidate plan when choosing one


@functools.cache
def _frontend() -> Any:
    """The ``cudnn`` module, or None (the reason logged once)."""
    try:
        import cudnn

        cudnn.backend_version()  # fails when cuDNN's own library did not load
    except Exception as e:  # noqa: BLE001 - not installed, or its libraries are missing
        _log.info("cuDNN is not available (%s: %s); convolutions run as im2col products", type(e).__name__, e)
        return None
    return cudnn


def available() -> bool:
    """Whether the cuDNN frontend imports and finds cuDNN's libraries (never raises)."""
    return _frontend() is not None


class _Geometry(NamedTuple):
    """What a convolution's graph depends on: the kind, the three NHWC/KRSC shapes, padding and
    strides. ``x``, ``w`` and ``y`` are the image, KRSC filter and output of the forward
    convolution whichever operand the kind computes."""

    kind: str  # "fprop", "dgrad" or "wgrad"
    x: tuple[int, int, int, int]
    w: tuple[int, int, int, int]
    y: tuple[int, int, int, int]
    pre: tuple[int, int]
    post: tuple[int, int]
    stride: tuple[int, int]


class _Plan(NamedTuple):
    graph: Any
    tensors: tuple[Any, Any, Any]  # the two inputs and the output, in the order of the call
    choice: int  # the index of the chosen execution plan
    workspace: int  # bytes


_PLANS: OrderedDict[_Geometry, _Plan | None] = OrderedDict()
_PLANS_LOCK = threading.Lock()
plan_log: dict[_Geometry, str] = {}
"""The engine configuration chosen per geometry (its frontend name), for profiling and tests."""

_LOCAL = threading.local()  # each thread's cuDNN handle and the stream it was last given


def _handle(stream: int) -> Any:
    cudnn = _frontend()
    handle = getattr(_LOCAL, "handle", None)
    if handle is None:
        handle = _LOCAL.handle = cudnn.create_handle()
        _LOCAL.stream = None
    if _LOCAL.stream != stream:
        cudnn.set_stream(handle=handle, stream=stream)
        _LOCAL.stream = stream
    return handle


def _nhwc(shape: Sequence[int]) -> tuple[list[int], list[int]]:
    """cuDNN's dims (always N, C, H, W) and the strides of an NHWC array of ``shape``."""
    n, h, w, c = shape
    return [n, c, h, w], [h * w * c, 1, w * c, c]


def _krsc(shape: Sequence[int]) -> tuple[list[int], list[int]]:
    """cuDNN's filter dims (K, C, R, S) and the strides of a [K, R, S, C] array."""
    k, r, s, c = shape
    return [k, c, r, s], [r * s * c, 1, s * c, c]


def _build(g: _Geometry, handle: Any) -> tuple[Any, tuple[Any, Any, Any]]:
    cudnn = _frontend()
    f32 = cudnn.data_type.FLOAT
    graph = cudnn.pygraph(io_data_type=f32, intermediate_data_type=f32, compute_data_type=f32, handle=handle)
    x_dims, x_strides = _nhwc(g.x)
    y_dims, y_strides = _nhwc(g.y)
    w_dims, w_strides = _krsc(g.w)
    geometry = dict(
        pre_padding=list(g.pre),
        post_padding=list(g.post),
        stride=list(g.stride),
        dilation=[1, 1],
        compute_data_type=f32,
    )

    def tensor(name: str, dims: list[int], strides: list[int]) -> Any:
        return graph.tensor(name=name, dim=dims, stride=strides, data_type=f32)

    if g.kind == "fprop":
        a, b = tensor("x", x_dims, x_strides), tensor("w", w_dims, w_strides)
        out, dims, strides = graph.conv_fprop(image=a, weight=b, **geometry), y_dims, y_strides
    elif g.kind == "dgrad":
        a, b = tensor("dy", y_dims, y_strides), tensor("w", w_dims, w_strides)
        out, dims, strides = graph.conv_dgrad(loss=a, filter=b, **geometry), x_dims, x_strides
    else:
        a, b = tensor("x", x_dims, x_strides), tensor("dy", y_dims, y_strides)
        out, dims, strides = graph.conv_wgrad(image=a, loss=b, **geometry), w_dims, w_strides
    out.set_output(True).set_dim(dims).set_stride(strides).set_data_type(f32)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    notes = cudnn.numerical_note
    graph.deselect_numeric_notes(
        [
            notes.TENSOR_CORE,
            notes.DOWN_CONVERT_INPUTS,
            notes.REDUCED_PRECISION_REDUCTION,
            notes.NONDETERMINISTIC,
        ]
    )
    graph.deselect_behavior_notes([cudnn.behavior_note.RUNTIME_COMPILATION])
    graph.check_support()
    graph.build_plans(cudnn.build_plan_policy.ALL)
    return graph, (a, b, out)


def _fastest(graph: Any, tensors: tuple[Any, ...], arrays: tuple[Any, ...], handle: Any) -> tuple[int, int]:
    """(index, workspace bytes) of the candidate plan that runs fastest on ``arrays``."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    pack = {t: a.data.ptr for t, a in zip(tensors, arrays, strict=True)}
    best: tuple[float, int, int] | None = None
    for index in range(graph.get_execution_plan_count()):
        try:
            size = graph.get_workspace_size_plan_at_index(index)
            workspace = cupy.empty(max(size, 1), np.uint8)
            graph.execute_plan_at_index(pack, workspace.data.ptr, index, handle=handle)  # warm-up
            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record(stream)
            for _ in range(_TIMED_RUNS):
                graph.execute_plan_at_index(pack, workspace.data.ptr, index, handle=handle)
            stop.record(stream)
            stop.synchronize()
        except Exception as e:  # noqa: BLE001 - a candidate that does not run is not a candidate
            _log.debug("cuDNN plan %d of %s failed: %s", index, graph, e)
            continue
        ms = cupy.cuda.get_elapsed_time(start, stop)
        if best is None or ms < best[0]:
            best = (ms, index, size)
    if best is None:
        raise RuntimeError("no cuDNN plan ran")
    return best[1], best[2]


def _plan(g: _Geometry, arrays: tuple[Any, ...], handle: Any) -> _Plan | None:
    """The cached plan of ``g``; built and timed on ``arrays`` the first time (None if cuDNN has
    no plan for it, or the stream is being captured and it cannot be timed now)."""
    import cupy

    with _PLANS_LOCK:
        if g in _PLANS:
            _PLANS.move_to_end(g)
            return _PLANS[g]
    if cupy.cuda.get_current_stream().is_capturing():
        return None
    try:
        graph, tensors = _build(g, handle)
        index, workspace = _fastest(graph, tensors, arrays, handle)
        plan: _Plan | None = _Plan(graph, tensors, index, workspace)
        plan_log[g] = graph.get_plan_name_at_index(index)
        _log.debug("cuDNN %s %s: plan %s", g.kind, g, plan_log[g])
    except Exception as e:  # noqa: BLE001 - no engine for this geometry: im2col runs it
        _log.info("cuDNN has no plan for %s (%s: %s); it runs as an im2col product", g, type(e).__name__, e)
        plan = None
    with _PLANS_LOCK:
        _PLANS[g] = plan
        while len(_PLANS) > _MAX_GRAPHS:
            _PLANS.popitem(last=False)
    return plan


def _run(g: _Geometry, a: Any, b: Any, out_shape: tuple[int, ...]) -> Any:
    """Runs the convolution ``g`` on the C-contiguous float32 operands ``a`` and ``b``; returns
    its output (a new array of ``out_shape``), or None where cuDNN has no plan for it."""
    import cupy

    out = cupy.empty(out_shape, np.float32)
    handle = _handle(cupy.cuda.get_current_stream().ptr)
    plan = _plan(g, (a, b, out), handle)
    if plan is None:
        return None
    workspace = cupy.empty(max(plan.workspace, 1), np.uint8)
    pack = {t: x.data.ptr for t, x in zip(plan.tensors, (a, b, out), strict=True)}
    plan.graph.execute_plan_at_index(pack, workspace.data.ptr, plan.choice, handle=handle)
    return out


def _geometry(kind: str, info: Conv2DInfo, depthwise: bool) -> _Geometry:
    """A depthwise convolution is a grouped one, a group per input channel: cuDNN reads the
    groups off the filter, [out, fH, fW, 1] against an input of ``in_channels``."""
    pad = info.pad_info
    return _Geometry(
        kind,
        (info.batch_size, info.in_height, info.in_width, info.in_channels),
        (info.out_channels, info.filter_height, info.filter_width, 1 if depthwise else info.in_channels),
        (info.batch_size, info.out_height, info.out_width, info.out_channels),
        (pad.top, pad.left),
        (pad.bottom, pad.right),
        (info.stride_height, info.stride_width),
    )


def _covers(info: Conv2DInfo) -> bool:
    """Whether cuDNN's output size rule, ⌊(in + pads − f) / stride⌋ + 1, gives ``info``'s."""
    pad = info.pad_info
    rows = (info.in_height + pad.top + pad.bottom - info.filter_height) // info.stride_height + 1
    cols = (info.in_width + pad.left + pad.right - info.filter_width) // info.stride_width + 1
    return (rows, cols) == (info.out_height, info.out_width) and min(
        pad.top, pad.left, pad.bottom, pad.right
    ) >= 0


def _to_krsc(filter: Any, depthwise: bool) -> Any:
    """deeplearn's filter in cuDNN's KRSC layout. conv2d's [fH, fW, in, out] is [out, fH, fW, in];
    depthwise_conv2d's [fH, fW, in, multiplier] has output channel c·multiplier + m, as cuDNN's
    groups number them, so it is [fH, fW, out] turned into [out, fH, fW, 1]."""
    import cupy

    if depthwise:
        fh, fw, c, m = filter.shape
        return cupy.ascontiguousarray(filter.reshape(fh, fw, c * m).transpose(2, 0, 1)).reshape(
            c * m, fh, fw, 1
        )
    return cupy.ascontiguousarray(filter.transpose(3, 0, 1, 2))


def conv2d(x: Any, filter: Any, info: Conv2DInfo, depthwise: bool = False) -> Any:
    """conv2d (or ``depthwise`` conv2d) of a float32 [b, h, w, c] batch ``x`` by ``filter``, as
    [b, outH, outW, out]; None where cuDNN cannot run it."""
    if not _covers(info):
        return None
    g = _geometry("fprop", info, depthwise)
    return _run(g, x, _to_krsc(filter, depthwise), g.y)


def conv2d_der_input(dy: Any, filter: Any, info: Conv2DInfo, depthwise: bool = False) -> Any:
    """The gradient in the [b, h, w, c] input of conv2d (or ``depthwise`` conv2d), from its
    [b, outH, outW, out] ``dy``; None where cuDNN cannot run it."""
    if not _covers(info):
        return None
    g = _geometry("dgrad", info, depthwise)
    return _run(g, dy, _to_krsc(filter, depthwise), g.x)


def conv2d_der_filter(x: Any, dy: Any, info: Conv2DInfo, depthwise: bool = False) -> Any:
    """The gradient in the filter of conv2d (or ``depthwise`` conv2d), in deeplearn's layout,
    summed over the batch; None where cuDNN cannot run it."""
    import cupy

    if not _covers(info):
        return None
    g = _geometry("wgrad", info, depthwise)
    krsc = _run(g, x, dy, g.w)
    if krsc is None:
        return None
    if depthwise:  # [out, fH, fW, 1] back to [fH, fW, in, multiplier]
        k, fh, fw, _ = krsc.shape
        return cupy.ascontiguousarray(krsc.reshape(k, fh, fw).transpose(1, 2, 0)).reshape(info.filter_shape)
    return cupy.ascontiguousarray(krsc.transpose(1, 2, 3, 0))
