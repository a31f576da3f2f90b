"""Engine: runs one op on one backend — shape rule, kernel, bookkeeping, in that order."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from deeplearn import util
from deeplearn.math.ndarray import _RANK_CLASSES, NDArray, Storage
from deeplearn.math.ops.base import Op, Spec

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend

__all__ = ["Engine", "OpObserver"]


class OpObserver(Protocol):
    """What sees every op one thread runs on an Engine (a Program recorder, a gradient tape)."""

    def on_op(self, op: Op, inputs: tuple[NDArray, ...], result: Any) -> None: ...


_INFER_CACHE_SIZE = 4096


class Engine:
    """Runs ops on one backend and wraps their outputs as NDArrays (tracked by the open scope).

    ``run`` is the host cost of every eager op and of every node a Session runs, so it is
    written flat: one pass over the inputs, the shape rule, the kernel, and a wrap that reuses
    the shape rule's Spec.
    """

    def __init__(self, backend: MathBackend) -> None:
        self.backend = backend
        self.debug = False
        # Testing aid: keep float64 results of float32 ops (the float64 gradient checks run the
        # same kernels in double precision). Off in normal use.
        self.keep_float64 = False
        # What each (op, input specs) inferred: a shape rule is a pure function of the op's
        # fields and the specs, and a Session step asks the same questions every time.
        self._inferred: dict[tuple[Any, ...], Any] = {}
        # Per thread, what sees every op that thread runs (``start_observing``).
        self.recorders: dict[int, OpObserver] = {}

    def start_observing(self, observer: OpObserver) -> bool:
        """Tells ``observer`` of every op the calling thread runs until ``stop_observing``;
        False (and nothing changes) when another observer has this thread already."""
        return self.recorders.setdefault(threading.get_ident(), observer) is observer

    def stop_observing(self, observer: OpObserver) -> None:
        thread = threading.get_ident()
        if self.recorders.get(thread) is observer:
            del self.recorders[thread]

    def run(self, op: Op, *inputs: NDArray) -> Any:
        """Runs ``op`` on ``inputs``; returns one NDArray, or a tuple for multi-output ops.

        Arrays that live on another backend are copied here first.

        Typed Any: a Session or a batching rule holds its ops as plain ``Op`` and cannot know
        their outputs. NDArrayMath's methods get exact types from ``MathMixin._run``'s overloads.
        """
        backend = self.backend
        key: list[Any] = [op]  # the op and every input's shape and dtype: the shape rule's question
        raws = []
        foreign = False
        for x in inputs:
            if not isinstance(x, NDArray):
                raise TypeError(f"{op.name}: inputs must be NDArrays; got {type(x).__name__} {x!r:.80}.")
            storage = x.storage
            data: Any = storage.data
            if x._disposed or data is None:
                x._check_live(op.name)
            shape = x.shape
            key.append(shape)
            key.append(x.dtype)
            raws.append(data if data.shape == shape else data.reshape(shape))
            if storage.backend is not backend:
                foreign = True
        spec = self._infer(op, inputs, tuple(key))  # the one shape check, before any work
        if foreign:
            raws = [x.raw if x.backend is backend else backend.asarray(x.raw) for x in inputs]
        out = backend.execute(op, *raws)
        if isinstance(spec, tuple):
            result: Any = tuple(
                self._wrap(self.result(op, o, raws, s), s) for o, s in zip(out, spec, strict=True)
            )
        else:
            result = self._wrap(self.result(op, out, raws, spec), spec)
        if self.recorders:
            recorder = self.recorders.get(threading.get_ident())
            if recorder is not None:
                recorder.on_op(op, inputs, result)
        return result

    def _infer(self, op: Op, inputs: tuple[NDArray, ...], key: tuple[Any, ...]) -> Any:
        """``op.infer`` of the inputs' specs, remembered per (op, shapes, dtypes); errors are
        never remembered. Keyed by shape tuples rather than Specs, whose hash runs in Python."""
        try:
            spec = self._inferred.get(key)
        except TypeError:  # an op with an unhashable field
            return op.infer(*(x.spec for x in inputs))
        if spec is None:
            spec = op.infer(*(x.spec for x in inputs))
            if len(self._inferred) >= _INFER_CACHE_SIZE:
                self._inferred.clear()  # many distinct shapes: start over rather than grow
            self._inferred[key] = spec
        return spec

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
            self.keep_float64 and dtype == "float32" and getattr(data, "dtype", None) == xp.float64
        ):
            data = xp.asarray(data, dtype=want)
        if data.shape != spec.shape:
            raise AssertionError(
                f"{op.name}: the kernel returned shape {tuple(data.shape)} but the shape rule says {spec.shape}."
            )
        if self.debug and backend.has_nan(data):
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
