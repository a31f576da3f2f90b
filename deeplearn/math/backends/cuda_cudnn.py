"""conv2d, depthwise_conv2d and their derivatives through cuDNN, by NVIDIA's Python frontend (its graph API).

CuPy 14 no longer binds cuDNN, and im2col plus one GEMM copies every input window fH·fW times:
on an H200, the cnn workload's two convolutions and their derivatives took ~570 µs of a step that
way, ~130 µs through cuDNN. The frontend (``nvidia-cudnn-frontend``; the ``cuda12``/``cuda13``
extras install it with cuDNN's libraries) builds a graph of one convolution per geometry, once;
its execution records into a CUDA graph, so a captured training step keeps its convolutions.

Layouts. Images stay NHWC, as deeplearn keeps them: cuDNN reads them through strides. The
filter is copied into cuDNN's [outDepth, fH, fW, inDepth] (KRSC) layout, and a filter gradient
out of it: one small copy each (filters are the smallest operand of a convolution). (On an H200, a
filter described with deeplearn's [fH, fW, inDepth, outDepth] strides was off from the right
result by exactly as much as one described as KRSC: the NHWC engines did not read its strides.)

Plans. For each geometry the frontend's heuristics propose engine configurations, best first.
Those that may round an fp32 input to a narrower type (TF32 tensor cores, down-converted inputs,
reduced-precision sums), add in a varying order (non-deterministic), or use Winograd or FFT
transforms, and those that need more than ``_MAX_WORKSPACE`` of workspace, are left out. The
first call of a geometry runs the rest on random operands against the backend's own kernel for
it (conv2d's im2col product through cuBLAS where nvmath-python is installed, else the op's
generic kernel), and a plan is kept only if its output agrees (to 1e-4 of the largest value: a
plan that read another layout than the one described, or rounded more, is far off). Which one
is kept:

* by default (``benchmark = True``), the plans that agree are timed, each behind a kernel that
  keeps the GPU busy while the host issues the launches (``cuda_timing.hold``), so that the
  host's time is not counted; the first in the heuristics' order whose time is within
  ``cuda_timing.NEAR`` (10 %) of the fastest's is kept (``cuda_timing.pick``). Where the
  backend's own kernel is conv2d's im2col product (not for depthwise convolutions, nor without
  nvmath-python), it is timed last beside them (``generic_rivals``), and where ``pick`` keeps
  it, the geometry runs that (``plan_log`` says ``"generic"``). On an H200 the deterministic plans that agreed for the cnn benchmark's filter
  gradients took 222–268 µs per call, and the step went from 854 to 452 µs. Breaking near ties
  by the heuristics' order, not by the timings' noise, is meant to make processes on the same
  GPU keep the same plans, hence the same bits; it does not always: two processes on an H200
  (timed before ``hold`` was used) kept different kernels for one of those filter gradients;
* with ``benchmark = False``, the first that agrees, untimed: the same plan, hence the same bits,
  in every process on the same GPU and cuDNN (a model saved and loaded trains on bit for bit),
  at the cost of speed.

A choice is kept for the life of the process (a captured CUDA graph may hold its kernels), and
made once even when threads race to it. A geometry seen first while a stream is being captured
cannot be run now: that call takes the generic path. ``plan_log`` names each plan kept.

Only float32 inputs go through here; ``available()`` is False without the frontend or cuDNN's
libraries, or once cuDNN failed to make a handle, and the backend then uses im2col (the reason is
logged once). A plan that fails when run leaves that call to the generic kernel, logged.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from deeplearn.math.backends import cuda_timing
from deeplearn.math.ops.conv import _ConvOp
from deeplearn.math.ops.conv_util import Conv2DInfo

__all__ = [
    "GENERIC",
    "available",
    "benchmark",
    "conv2d",
    "conv2d_der_filter",
    "conv2d_der_input",
    "generic_rivals",
    "plan_log",
]

_log = logging.getLogger(__name__)

_TIMED_RUNS = 3  # timings per candidate plan when ``benchmark`` times them (the least is kept)
_TIMED_LAUNCHES = 4  # launches per timing
_HOLD_S = 0.002  # seconds the GPU is kept busy before a timing at least (``cuda_timing.hold``)
_MAX_WORKSPACE = 64 << 20  # bytes: a plan needing more is no candidate (FFT plans can want GBs)
_ALIGNMENT = 16  # bytes: the frontend declares every operand this aligned
_LEFT_OUT = (  # the numerical notes of the engines left out (those this frontend names)
    "TENSOR_CORE",  # TF32 on float32 data
    "DOWN_CONVERT_INPUTS",
    "REDUCED_PRECISION_REDUCTION",
    "NONDETERMINISTIC",
    "WINOGRAD",
    "WINOGRAD_TILE_4x4",
    "WINOGRAD_TILE_6x6",
    "WINOGRAD_TILE_13x13",
    "FFT",
)
_AGREEMENT = 1e-4  # a candidate's largest difference from the generic kernel, relative to its largest value


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


_DISABLED: list[str] = []  # why cuDNN stopped being used in this process (a handle it could not make)


def available() -> bool:
    """Whether the cuDNN frontend imports and finds cuDNN's libraries, and cuDNN has not failed
    to make a handle in this process (never raises)."""
    return not _DISABLED and _frontend() is not None


def _disable(e: Exception) -> None:
    """cuDNN cannot run here (no handle: a driver too old for its CUDA, an unsupported GPU):
    every convolution takes the generic path from now on (logged once)."""
    if not _DISABLED:
        _DISABLED.append(f"{type(e).__name__}: {e}")
        _log.warning("cuDNN could not make a handle (%s); convolutions run as im2col products", _DISABLED[0])


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


benchmark = True
"""Whether a geometry's plan is chosen by timing those that agree on its first call (``pick``)
rather than the first that agrees in the heuristics' order (see the module docstring)."""

generic_rivals = True
"""Whether the backend's own kernel (an im2col product) is timed beside the plans, when
``benchmark``, and runs a geometry where it is faster (see the module docstring)."""

GENERIC = -1
"""``pick``'s index for the backend's own kernel: ``plan_log`` names it ``"generic"``."""

_PLANS: dict[_Geometry, _Plan | None] = {}  # (read and written with the handle's lock held)
plan_log: dict[_Geometry, str] = {}
"""The engine configuration kept per geometry (its frontend name), for profiling and tests."""


class _Handle:
    """The process's cuDNN handle and the stream it was last given. One for every thread: calls
    into cuDNN hold the GIL anyway, and a plan runs on the handle it was built with."""

    def __init__(self) -> None:
        self.handle: Any = None
        self.stream: int | None = None
        self.lock = threading.Lock()

    def on(self, stream: int) -> Any:
        """The handle, set to run on ``stream`` (call with ``lock`` held)."""
        cudnn = _frontend()
        if self.handle is None:
            self.handle = cudnn.create_handle()
        if self.stream != stream:
            cudnn.set_stream(handle=self.handle, stream=stream)
            self.stream = stream
        return self.handle


_HANDLE = _Handle()


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
    graph.deselect_numeric_notes([getattr(notes, name) for name in _LEFT_OUT if hasattr(notes, name)])
    graph.deselect_workspace_greater_than(_MAX_WORKSPACE)
    graph.deselect_behavior_notes([cudnn.behavior_note.RUNTIME_COMPILATION])
    graph.check_support()
    if not hasattr(graph, "build_plan_at_index"):  # (a frontend without it: every plan, now)
        graph.build_plans(cudnn.build_plan_policy.ALL)
    return graph, (a, b, out)


class _NoPlan(RuntimeError):
    """cuDNN has no plan that runs and agrees with the generic kernel for a geometry."""


Reference = Callable[[Any, Any], Any]
"""The generic kernel of a convolution, on cuDNN's operands and in cuDNN's output layout."""


def _choose(
    graph: Any,
    tensors: tuple[Any, ...],
    operands: tuple[Any, Any],
    want: Any,
    handle: Any,
    rival: Callable[[], Any] | None,
) -> tuple[int, int]:
    """(index, workspace bytes) of the plan to keep among the candidates whose output on
    ``operands`` agrees with ``want``, the generic kernel's: the first, or with ``benchmark``
    the one ``pick`` keeps of them and ``rival`` (the generic kernel on ``operands``, last in
    the order: ``GENERIC`` if kept) timed."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    out = cupy.empty(want.shape, np.float32)
    pack = {t: a.data.ptr for t, a in zip(tensors, (*operands, out), strict=True)}
    tolerance = _AGREEMENT * float(cupy.abs(want).max()) + _AGREEMENT
    timed: list[tuple[int, float]] = []
    sizes: dict[int, int] = {}
    one_by_one = hasattr(graph, "build_plan_at_index")

    def timed_ms(launch: Callable[[], Any]) -> float:
        # Behind a busy GPU, so the events time its work alone, as in a captured step (the
        # generic kernel is many launches, which a host may issue slower than the GPU runs them).
        return cuda_timing.best_ms(launch, stream, _TIMED_LAUNCHES, _TIMED_RUNS, _HOLD_S)

    for index in range(graph.get_execution_plan_count()):
        try:
            if one_by_one:  # built when reached: untimed, the first that agrees is usually the first
                graph.build_plan_at_index(index)
            size = graph.get_workspace_size_plan_at_index(index)
            if size > _MAX_WORKSPACE:  # (cuDNN before 9.2 builds plans the frontend set aside for it)
                continue
            workspace = cupy.empty(max(size, 1), np.uint8)
            out.fill(np.nan)
            graph.execute_plan_at_index(pack, workspace.data.ptr, index, handle=handle)
            if not float(cupy.abs(out - want).max()) <= tolerance:  # (NaN: a cell it did not write)
                _log.info(
                    "cuDNN plan %s disagrees with the generic kernel: not used",
                    graph.get_plan_name_at_index(index),
                )
                continue
            if not benchmark:
                return index, size
            ms = timed_ms(lambda: graph.execute_plan_at_index(pack, workspace.data.ptr, index, handle=handle))
        except cupy.cuda.memory.OutOfMemoryError:
            raise  # not this geometry's fault: planned again on a later call
        except Exception as e:  # noqa: BLE001 - a candidate that does not run is not a candidate
            _log.debug("cuDNN plan %d of %s failed: %s", index, graph, e)
            continue
        timed.append((index, ms))
        sizes[index] = size
    if not timed:
        raise _NoPlan("no cuDNN plan ran and agreed with the generic kernel")
    if rival is not None:
        timed.append((GENERIC, timed_ms(rival)))
        sizes[GENERIC] = 0
    index = cuda_timing.pick(timed)
    _log.debug("cuDNN plans timed (index, ms per %d launches): %s; kept %d", _TIMED_LAUNCHES, timed, index)
    return index, sizes[index]


def _plan(g: _Geometry, handle: Any, reference: Reference, rivals: bool) -> _Plan | None:
    """The plan kept for ``g``, chosen on its first call (``_choose``; call with the handle's
    lock held); None if cuDNN has none for it, the generic kernel (``reference``, where
    ``rivals``) was timed faster, or the stream is being captured and the candidates cannot be
    run now."""
    import cupy

    if g in _PLANS:
        return _PLANS[g]
    if cupy.cuda.get_current_stream().is_capturing():
        return None
    try:
        graph, tensors = _build(g, handle)
    except Exception as e:  # noqa: BLE001 - no engine for this geometry: the generic kernel runs it
        _log.info("cuDNN has no plan for %s (%s: %s); it runs as the generic kernel", g, type(e).__name__, e)
        _PLANS[g] = None
        return None
    # The operands, the reference's temporaries and the candidates' workspaces come from CuPy's
    # default pool: not from a captured Program's own pool, which would keep them for its life.
    with cupy.cuda.using_allocator(cupy.get_default_memory_pool().malloc):
        try:
            shapes = {"fprop": (g.x, g.w), "dgrad": (g.y, g.w), "wgrad": (g.x, g.y)}[g.kind]
            rng = cupy.random.default_rng(0)
            operands = (
                rng.standard_normal(shapes[0], np.float32),
                rng.standard_normal(shapes[1], np.float32),
            )
            want = cupy.ascontiguousarray(reference(*operands), np.float32)
            rival = (lambda: reference(*operands)) if rivals and generic_rivals else None
            index, workspace = _choose(graph, tensors, operands, want, handle, rival)
        except _NoPlan as e:
            _log.info("cuDNN has no plan for %s (%s); it runs as the generic kernel", g, e)
            _PLANS[g] = None
            return None
        except Exception as e:  # noqa: BLE001 - out of memory, say: not this geometry's fault
            _log.info(
                "cuDNN could not plan %s now (%s: %s); this call runs the generic kernel",
                g,
                type(e).__name__,
                e,
            )
            return None
    if index == GENERIC:
        _PLANS[g] = None
        plan_log[g] = "generic"
        _log.info("cuDNN's plans for %s were slower than the generic kernel: it runs that", g)
        return None
    plan = _PLANS[g] = _Plan(graph, tensors, index, workspace)
    plan_log[g] = graph.get_plan_name_at_index(index)
    _log.debug("cuDNN %s %s: plan %s", g.kind, g, plan_log[g])
    return plan


def _aligned(x: Any) -> Any:
    """``x`` C-contiguous and at an address cuDNN accepts (a view may start anywhere)."""
    import cupy

    x = cupy.ascontiguousarray(x)
    return x.copy() if x.data.ptr % _ALIGNMENT else x


def _run(g: _Geometry, a: Any, b: Any, out_shape: tuple[int, ...], reference: Reference, rivals: bool) -> Any:
    """Runs the convolution ``g`` on the float32 operands ``a`` and ``b``; returns its output (a
    new array of ``out_shape``), or None where cuDNN has no plan for it or ``reference`` (the
    backend's own kernel where ``rivals``) was timed faster."""
    import cupy

    a, b = _aligned(a), _aligned(b)
    stream = cupy.cuda.get_current_stream()
    with _HANDLE.lock:
        if _HANDLE.handle is None and stream.is_capturing():
            return None  # making a handle allocates: not while a stream is being captured
        try:
            handle = _HANDLE.on(stream.ptr)
        except Exception as e:  # noqa: BLE001 - see _disable
            _disable(e)
            return None
        plan = _plan(g, handle, reference, rivals)
        if plan is None:
            return None
        out = cupy.empty(out_shape, np.float32)
        workspace = cupy.empty(max(plan.workspace, 1), np.uint8)
        pack = {t: x.data.ptr for t, x in zip(plan.tensors, (a, b, out), strict=True)}
        try:
            plan.graph.execute_plan_at_index(pack, workspace.data.ptr, plan.choice, handle=handle)
        except Exception as e:  # noqa: BLE001 - the plan stays (a captured graph may hold it)
            _log.warning("cuDNN plan %s failed (%s); this call runs the generic kernel", plan_log.get(g), e)
            return None
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
    """deeplearn's filter in cuDNN's KRSC layout, a C-ordered copy (of a NumPy or CuPy array).
    conv2d's [fH, fW, in, out] is [out, fH, fW, in]; depthwise_conv2d's [fH, fW, in, multiplier]
    has output channel c·multiplier + m, as cuDNN's groups number them, so it is [fH, fW, out]
    turned into [out, fH, fW, 1]."""
    if depthwise:
        fh, fw, c, m = filter.shape
        return filter.reshape(fh, fw, c * m).transpose(2, 0, 1).copy().reshape(c * m, fh, fw, 1)
    return filter.transpose(3, 0, 1, 2).copy()


def _from_krsc(krsc: Any, depthwise: bool, filter_shape: tuple[int, ...]) -> Any:
    """A filter (or its gradient) in cuDNN's KRSC layout back in deeplearn's ``filter_shape``,
    a C-ordered copy."""
    if depthwise:  # [out, fH, fW, 1] back to [fH, fW, in, multiplier]
        k, fh, fw, _ = krsc.shape
        return krsc.reshape(k, fh, fw).transpose(1, 2, 0).copy().reshape(filter_shape)
    return krsc.transpose(1, 2, 3, 0).copy()


Generic = Callable[[Any, Any, Conv2DInfo], Any]
"""The backend's own kernel for a convolution (an im2col product), on a [b, h, w, c] batch and
deeplearn's filter layout: the reference a plan must agree with, and the rival it must beat."""


def _runs_generic(g: _Geometry) -> bool:
    """Whether ``g`` was planned and cuDNN does not run it (no plan, or the generic kernel was
    timed faster): then a call makes none of the copies cuDNN's layouts need. (A read of the
    dict without the lock: a geometry is planned once, and a stale miss only plans it.)"""
    return g in _PLANS and _PLANS[g] is None


def _by_filter(kind: str, op: _ConvOp, a: Any, filter: Any, info: Conv2DInfo, generic: Generic | None) -> Any:
    """``op`` of ``a`` (x for "fprop", dy for "dgrad") and ``filter``; None where cuDNN cannot."""
    if not _covers(info):
        return None
    import cupy

    g = _geometry(kind, info, op.depthwise)
    if _runs_generic(g):
        return None
    out_shape = g.y if kind == "fprop" else g.x

    def reference(a: Any, b: Any) -> Any:
        b = _from_krsc(b, op.depthwise, filter.shape)
        return (op.forward(cupy, a, b) if generic is None else generic(a, b, info)).reshape(out_shape)

    return _run(g, a, _to_krsc(filter, op.depthwise), out_shape, reference, generic is not None)


def conv2d(op: _ConvOp, x: Any, filter: Any, info: Conv2DInfo, generic: Generic | None = None) -> Any:
    """``op`` (conv2d or depthwise_conv2d) of a float32 [b, h, w, c] batch ``x`` by ``filter``,
    as [b, outH, outW, out]; None where cuDNN cannot run it, or ``generic``, the backend's own
    kernel, was timed faster."""
    return _by_filter("fprop", op, x, filter, info, generic)


def conv2d_der_input(
    op: _ConvOp, dy: Any, filter: Any, info: Conv2DInfo, generic: Generic | None = None
) -> Any:
    """``op`` (the input gradient of conv2d or depthwise_conv2d) as [b, h, w, c], from the
    [b, outH, outW, out] ``dy``; None where cuDNN cannot run it, or ``generic`` was faster."""
    return _by_filter("dgrad", op, dy, filter, info, generic)


def conv2d_der_filter(op: _ConvOp, x: Any, dy: Any, info: Conv2DInfo, generic: Generic | None = None) -> Any:
    """``op`` (the filter gradient of conv2d or depthwise_conv2d), summed over the batch, in
    deeplearn's filter layout; None where cuDNN cannot run it, or ``generic`` was faster."""
    if not _covers(info):
        return None
    import cupy

    g = _geometry("wgrad", info, op.depthwise)
    if _runs_generic(g):
        return None

    def reference(a: Any, b: Any) -> Any:
        return _to_krsc(op.forward(cupy, a, b) if generic is None else generic(a, b, info), op.depthwise)

    krsc = _run(g, x, dy, g.w, reference, generic is not None)
    return None if krsc is None else _from_krsc(krsc, op.depthwise, info.filter_shape)
