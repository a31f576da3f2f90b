"""Engine: runs one op on one backend — shape rule, kernel, bookkeeping, in that order.

``Engine.run`` is the host cost of every eager op and of every node a Session records, so it is
written flat and measured (``bench/overhead.py``; ``bench/RESULTS.md`` says where its
microseconds go). What a call asks that an earlier call with the same op and input shapes and
dtypes already answered (the shape rule's Spec, the result's NDArray class, its dtype as NumPy
names it, the backend's kernel for it where the backend can name one: ``direct_kernel``) is
looked up once, in a ``Known`` record; what depends on the call itself (the inputs
being live, the kernel's output owning its memory, the scope that tracks the result, the
observer) is checked every time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol, overload

import numpy as np

from deeplearn import util
from deeplearn.math.ndarray import _RANK_CLASSES, NDArray, Storage, _fresh
from deeplearn.math.ops.base import A, Op, SameRankOp, Spec, _OneOutput, _TwoOutputs
from deeplearn.math.scope import _SCOPES, REGISTRY

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend
    from deeplearn.types import DType, Shape

__all__ = ["SAFE_MODE_MESSAGE", "Engine", "Known", "OpObserver"]

SAFE_MODE_MESSAGE = (
    "You are using math in safe mode. Enclose all math.method() calls inside a scope: "
    "math.scope(() => {math.method();...}) to avoid memory leaks."
)


class OpObserver(Protocol):
    """What sees every op one thread runs on an Engine (a Program recorder, a gradient tape)."""

    def on_op(self, op: Op, inputs: tuple[NDArray, ...], result: Any) -> None: ...


class Known:
    """What running an op on inputs of given shapes and dtypes gives, whatever their values."""

    __slots__ = (
        "array_class",
        "checked",
        "direct",
        "direct_op",
        "dtype",
        "fresh",
        "numpy_dtype",
        "shape",
        "spec",
    )

    def __init__(self, spec: Any) -> None:
        self.spec: Any = spec
        """The shape rule's answer: a Spec, or a tuple of Specs for an op with several outputs."""
        several = isinstance(spec, tuple)
        self.shape: Shape = () if several else tuple(int(d) for d in spec.shape)
        """``spec.shape`` in Python ints (one output)."""
        self.dtype: DType = "float32" if several else spec.dtype
        """``spec.dtype`` (one output)."""
        self.numpy_dtype: Any = None if several else np.dtype(util.numpy_dtype(spec.dtype))
        """The NumPy dtype of a kernel's output of ``dtype`` (one output)."""
        self.array_class: type[NDArray] | None = (
            None if several else _RANK_CLASSES.get(len(self.shape), NDArray)
        )
        """The NDArray class of the result's rank (one output), None for several outputs."""
        self.direct: Any = None
        """The backend's kernel to call instead of ``backend.execute(op, *raws)``, as
        ``direct(op, *raws)`` or, without ``direct_op``, ``direct(*raws)`` (the backend's
        ``direct_kernel``); None where the engine calls ``execute``."""
        self.direct_op = True
        self.fresh = False
        """Whether ``direct`` returns a new C-ordered array of ``shape`` and ``dtype`` on every
        call, sharing no memory with its inputs (the backend's ``direct_kernel`` says so): once
        the first call's output is seen to be that (``checked``), later calls look at none."""
        self.checked = False
        """Whether a kernel's output for this question was seen to have ``shape`` and C order.
        It keeps them on later calls: the inputs of an eager op are C-ordered arrays of the
        same shapes and dtypes every time, and a kernel's output layout follows from theirs
        (a replayed Program relies on the same)."""


_INFER_CACHE_SIZE = 4096


def _not_an_array(op: Op, x: object) -> None:
    raise TypeError(f"{op.name}: inputs must be NDArrays; got {type(x).__name__} {x!r:.80}.")


class Engine:
    """Runs ops on one backend and wraps their outputs as NDArrays (tracked by the open scope)."""

    def __init__(self, backend: MathBackend) -> None:
        self.backend = backend
        self._execute = backend.execute
        self._live = REGISTRY.live_table(backend.name)  # what its results' storages join
        self._array_type: Any = getattr(backend.xp, "ndarray", None)
        self._debug = False
        # Testing aid: keep float64 results of float32 ops (the float64 gradient checks run the
        # same kernels in double precision). Off in normal use.
        self._keep_float64 = False
        # Whether every result takes the careful path (``result``): debug mode reads it for
        # NaNs, keep_float64 lets float64 through. One attribute test per op otherwise.
        self._careful = False
        # What each (op, input shapes and dtypes) gives (``Known``): a shape rule is a pure
        # function of the op's fields and the specs, and a Session step or a training loop
        # asks the same questions every time. Failed rules are never remembered.
        self._known: dict[Any, Known] = {}
        # deeplearn.js's safe mode (set through NDArrayMath.safe_mode): every op must run
        # inside a scope.
        self.safe_mode = False
        # Per thread, what sees every op that thread runs (``start_observing``). Tested once
        # per op: empty unless a Program is being recorded.
        self.recorders: dict[int, OpObserver] = {}
        # The backend's kernel for an op on given specs, called without its dispatch where it
        # has one (``direct_kernel``), remembered in ``Known``: forgotten with the rest of
        # ``_known`` when the backend's kernels change (``kernels_changed``).
        self._direct_kernel = getattr(backend, "direct_kernel", None)
        table = getattr(backend, "kernel_table", None)
        if table is not None:
            table.watch(self)

    # -- modes -----------------------------------------------------------------------------
    @property
    def debug(self) -> bool:
        """Checks every op's result for NaNs (``NDArrayMath.enable_debug_mode``)."""
        return self._debug

    @debug.setter
    def debug(self, on: bool) -> None:
        self._debug = on
        self._careful = bool(on or self._keep_float64)
        self._known.clear()  # (a careful engine learns no direct kernels: see _learn)

    @property
    def keep_float64(self) -> bool:
        """Testing aid: float32 ops keep the float64 their kernels compute from float64 data."""
        return self._keep_float64

    @keep_float64.setter
    def keep_float64(self, on: bool) -> None:
        self._keep_float64 = on
        self._careful = bool(on or self._debug)
        self._known.clear()

    # -- observers -------------------------------------------------------------------------
    def start_observing(self, observer: OpObserver) -> bool:
        """Tells ``observer`` of every op the calling thread runs until ``stop_observing``;
        False (and nothing changes) when another observer has this thread already."""
        return self.recorders.setdefault(threading.get_ident(), observer) is observer

    def stop_observing(self, observer: OpObserver) -> None:
        thread = threading.get_ident()
        if self.recorders.get(thread) is observer:
            del self.recorders[thread]

    # -- running ---------------------------------------------------------------------------
    # What comes back, from the kind of op, so that mypy checks each NDArrayMath method's
    # promised return type (``self.engine.run(_ADD, a, b)``; tests/math/test_op_kinds.py
    # checks that the kinds hold at run time). Only mypy reads the overloads: no cost per op.
    @overload
    def run(self, op: SameRankOp, x: A, /) -> A: ...
    @overload  # b has a's rank (pow_strict's b is an int32 array of a's shape, not a's type)
    def run(self, op: SameRankOp, a: A, b: NDArray, /) -> A: ...
    @overload  # scaled_array_add: c1 and c2 are scalars; b has a's shape
    def run(self, op: SameRankOp, c1: NDArray, a: A, c2: NDArray, b: NDArray, /) -> A: ...
    @overload  # (an op known only as ``Op`` is typed as one output too)
    def run(self, op: _OneOutput, /, *inputs: NDArray) -> NDArray: ...
    @overload
    def run(self, op: _TwoOutputs, /, *inputs: NDArray) -> tuple[NDArray, NDArray]: ...
    def run(self, op: Any, /, *inputs: NDArray) -> Any:
        """Runs ``op`` on ``inputs``; returns one NDArray, or a tuple for multi-output ops.

        Arrays that live on another backend are copied here first. NDArrayMath's methods call
        it directly (``self.engine.run``: no method of theirs between, ~0.2 µs an op), so
        whatever the engine's ``run`` is now runs their ops.
        """
        if self.safe_mode and not _SCOPES.get():
            raise RuntimeError(SAFE_MODE_MESSAGE)
        backend = self.backend
        # The shape rule's question: the op's class and fields (its attributes, in their
        # order; cheaper than the op itself as a key, whose dataclass __hash__ and __eq__ run
        # in Python, ~0.3 µs a lookup) in one item, the class alone for an op without fields,
        # then every input's shape and dtype: one flat tuple, which hashes in C.
        fields = op.__dict__
        n = len(inputs)
        head = (type(op), *fields.values()) if fields else type(op)
        # One or two inputs, written out (most ops): a third cheaper than the loop below.
        if n == 1:
            x = inputs[0]
            if not isinstance(x, NDArray):
                _not_an_array(op, x)
            storage = x.storage
            data: Any = storage.data
            if x._disposed or data is None:
                x._check_live(op.name)
            shape = x.shape
            key: tuple[Any, ...] = (head, shape, x.dtype)
            # An array whose shape is its storage's own tuple is all of the data as it is
            # (``Storage.shape``): no shapes to compare (NumPy and CuPy build theirs per call).
            raws: Any = (data if shape is storage.shape or data.shape == shape else data.reshape(shape),)
            foreign = storage.backend is not backend
        elif n == 2:
            x, y = inputs
            if not isinstance(x, NDArray):
                _not_an_array(op, x)
            storage = x.storage
            data = storage.data
            if x._disposed or data is None:
                x._check_live(op.name)
            if not isinstance(y, NDArray):
                _not_an_array(op, y)
            other = y.storage
            data_y: Any = other.data
            if y._disposed or data_y is None:
                y._check_live(op.name)
            shape, shape_y = x.shape, y.shape
            key = (head, shape, x.dtype, shape_y, y.dtype)
            raws = (
                data if shape is storage.shape or data.shape == shape else data.reshape(shape),
                data_y if shape_y is other.shape or data_y.shape == shape_y else data_y.reshape(shape_y),
            )
            foreign = storage.backend is not backend or other.backend is not backend
        else:
            parts: list[Any] = [head]
            raws = []
            foreign = False
            for x in inputs:
                if not isinstance(x, NDArray):
                    _not_an_array(op, x)
                storage = x.storage
                data = storage.data
                if x._disposed or data is None:
                    x._check_live(op.name)
                shape = x.shape
                parts += (shape, x.dtype)
                raws.append(data if shape is storage.shape or data.shape == shape else data.reshape(shape))
                if storage.backend is not backend:
                    foreign = True
            key = tuple(parts)
        try:
            known = self._known.get(key)
        except TypeError:  # an op with an unhashable field: its rule runs every time
            known = None
            key = ()
        if known is None:
            known = self._learn(op, inputs, key)  # the one shape check, before any work
        if foreign:
            raws = [x.raw if x.backend is backend else backend.asarray(x.raw) for x in inputs]
        direct = known.direct
        if direct is None:
            out = self._execute(op, *raws)
        elif known.direct_op:
            out = direct(op, *raws)
        else:
            out = direct(*raws)
        klass = known.array_class
        if klass is None:  # several outputs
            result: Any = tuple(
                self._wrap(self.result(op, o, raws, s), s) for o, s in zip(out, known.spec, strict=True)
            )
        else:
            if known.fresh and known.checked:
                pass  # a new array, as the first call's was: nothing to look at (``Known.fresh``)
            elif (
                self._careful
                or type(out) is not self._array_type
                or out.base is not None
                or out.dtype is not known.numpy_dtype
                or not known.checked
            ):
                final = self.result(op, out, raws, known.spec)
                # Checked when the kernel's own output needed nothing (a fresh C-ordered
                # array of the rule's shape and dtype): later calls skip the shape and order.
                known.checked = final is out and not self._careful
                out = final
            else:
                for r in raws:  # an array that owns its memory shares it only with its views
                    if r is out or r.base is out:
                        out = out.copy()
                        break
            result = _fresh(klass, out, backend, self._live, known.shape, known.dtype, known.spec)
        if self.recorders:
            recorder = self.recorders.get(threading.get_ident())
            if recorder is not None:
                recorder.on_op(op, inputs, result)
        return result

    def _learn(self, op: Op, inputs: tuple[NDArray, ...], key: tuple[Any, ...]) -> Known:
        """Runs ``op``'s shape rule on the inputs' specs (raising what it raises) and
        remembers what it says under ``key`` (nothing when ``key`` is empty)."""
        specs = [x.spec for x in inputs]
        known = Known(op.infer(*specs))
        if key:
            if self._direct_kernel is not None and known.array_class is not None and not self._careful:
                # (careful: keep_float64 may hand it float64 data under float32 specs)
                found = self._direct_kernel(op, specs, known.spec)
                if found is not None:
                    known.direct, known.direct_op, known.fresh = found
            if len(self._known) >= _INFER_CACHE_SIZE:
                self._known.clear()  # many distinct shapes: start over rather than grow
            self._known[key] = known
        return known

    def learnt(self, op_class: type[Op]) -> list[tuple[tuple[Any, ...], tuple[Any, ...], Known]]:
        """What this engine has learnt about ops of ``op_class``: per question, the op's field
        values, the inputs' shapes and dtypes (``(shape, dtype, shape, dtype, ...)``) and the
        ``Known`` answer. For tests and the curious; ``run`` reads its table directly."""
        found = []
        for key, known in self._known.items():
            head = key[0]
            cls, fields = (head[0], head[1:]) if type(head) is tuple else (head, ())
            if cls is op_class:
                found.append((fields, key[1:], known))
        return found

    def kernels_changed(self) -> None:
        """The backend's kernels changed (one registered): what was learnt from them goes."""
        self._known.clear()

    def _own(self, out: Any, raws: list[Any]) -> Any:
        """Copies a kernel result that is a view of an input (reshape, transpose, slice kernels
        may return views), so that every NDArray owns its storage: writing to one (``set``,
        ``fill``) or disposing it never changes another."""
        base = getattr(out, "base", False)
        if base is None:
            # ``out`` owns its buffer, so an input shares it only by being ``out`` or a view of
            # it (NumPy and CuPy point a view's ``base`` at the owner): cheaper than asking
            # may_share_memory for every input.
            for r in raws:
                if r is out or r.base is out:
                    return out.copy()
            return out
        xp = self.backend.xp
        if isinstance(out, xp.ndarray) and any(xp.may_share_memory(out, r) for r in raws):
            return out.copy()
        return out

    def wrap(self, data: Any, dtype: str | None = None) -> NDArray:
        """Wraps a raw array of this backend as an NDArray (for composites that build data)."""
        return NDArray._wrap(data, self.backend, dtype)  # type: ignore[arg-type]

    def result(self, op: Op, data: Any, raws: list[Any], spec: Spec) -> Any:
        """What a kernel's output ``data`` becomes before it is wrapped: a C-ordered array of
        ``spec``'s dtype that shares no memory with the kernel's inputs ``raws``. Also used by
        the Session's replayed plans, so a replayed kernel's result is the eager one."""
        data = self._own(data, raws)
        backend = self.backend
        xp = backend.xp
        dtype = spec.dtype
        want = util.numpy_dtype(dtype)
        if (not isinstance(data, xp.ndarray) or data.dtype != want) and not (
            self._keep_float64 and dtype == "float32" and getattr(data, "dtype", None) == xp.float64
        ):
            data = xp.asarray(data, dtype=want)
        if data.shape != spec.shape:
            raise AssertionError(
                f"{op.name}: the kernel returned shape {tuple(data.shape)} but the shape rule says {spec.shape}."
            )
        if self._debug and backend.has_nan(data):
            raise ValueError(f"The result of the last math.{op.name} has NaNs.")
        if not data.flags.c_contiguous:
            # Views of the storage (reshape, get/set by flat index) need C order.
            data = xp.ascontiguousarray(data)
        return data

    def _wrap(self, data: Any, spec: Spec) -> NDArray:
        shape = data.shape  # Python ints, whatever the shape rule computed with
        x = _RANK_CLASSES.get(len(shape), NDArray)(Storage(data, self.backend), shape, spec.dtype)
        x._spec = spec
        return x
