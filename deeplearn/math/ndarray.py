"""NDArray, Scalar, Array1D..Array4D: typed, shaped data on a backend (CPU or GPU).

An NDArray is a view (shape, dtype) over a ``Storage`` (the backend's buffer). ``reshape`` and
``as1d``.. return new views of the same storage; the storage is freed when every view of it is
disposed (reference counting, as deeplearn.js 0.3.14+ counts references per data id).
Every NDArray constructed while a scope is open is tracked by that scope (see scope.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from math import prod as _prod
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from deeplearn import util
from deeplearn.math.ops.base import Spec
from deeplearn.math.scope import _SCOPES, REGISTRY
from deeplearn.types import DisposedError, DType, DTypeError, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Array1D", "Array2D", "Array3D", "Array4D", "NDArray", "Scalar", "Storage", "from_dlpack"]

T = TypeVar("T", bound="NDArray")


class Storage:
    """A backend buffer shared by the views (reshapes) of one array."""

    __slots__ = ("__weakref__", "_live", "backend", "data", "nbytes", "refs", "serial", "shape")

    def __init__(self, data: RawArray, backend: MathBackend) -> None:
        self.data: RawArray | None = data
        self.shape: Shape = tuple(data.shape)
        """``data``'s shape. An NDArray whose ``shape`` is this very tuple is a view of all of
        ``data`` as it is (the engine then needs no reshape, nor to compare the shapes)."""
        self.backend = backend
        self.nbytes = nbytes = int(data.nbytes)
        self.refs = 0
        self.serial = next(_STORAGE_SERIALS)  # creation order: tells a recorder what is new
        # The registry's table of this backend's live storages (scope.py), held so that
        # leaving it is one dict operation.
        self._live = live = _LIVE.get(backend.name) or REGISTRY.live_table(backend.name)
        live[id(self)] = nbytes

    def release(self) -> None:
        self.refs -= 1
        if self.refs <= 0 and self.data is not None:
            self.data = None  # drops the buffer: CuPy returns it to its pool
            self._live.pop(id(self), None)

    def __del__(self) -> None:
        # Garbage-collected without dispose(): its memory is gone, so count it so. A __del__
        # costs nothing per array, where a weakref.finalize cost ~1.3 us to create.
        if self.data is not None:
            self.data = None
            try:  # (not contextlib.suppress: making one costs ~0.3 µs, most of this method)
                self._live.pop(id(self), None)
            except Exception:  # noqa: BLE001, S110 - interpreter shutdown: the registry may be gone
                pass


_STORAGE_SERIALS = itertools.count(1)
_LIVE = REGISTRY._live
_new_object = object.__new__


def _fresh(
    klass: type[T],
    data: RawArray,
    backend: MathBackend,
    live: dict[int, int],
    shape: Shape,
    dtype: DType,
    spec: Spec | None,
    now: bool = True,
) -> T:
    """Internal: a new ``klass`` over ``data`` (C-ordered, ``dtype``, of ``shape``, Python
    ints) with a storage of its own in ``live`` (its backend's table), tracked by the open
    scope: what ``NDArray.__init__`` and ``Storage.__init__`` make, written out, since the two
    calls cost more than the assignments on the paths that make an array per call (an eager
    op's result, ``Session.train``'s zero Scalar). With ``now`` False the array is made ahead
    of its use: neither counted live nor tracked (nor given its serial) until ``_hand_out``."""
    storage = _new_object(Storage)
    storage.data = data
    storage.shape = shape
    storage.backend = backend
    storage.nbytes = data.nbytes
    storage.refs = 1
    storage._live = live
    x = _new_object(klass)
    x.storage = storage
    x.shape = shape
    x.dtype = dtype
    x._disposed = False
    x._spec = spec
    if now:  # _hand_out, written out: every eager op's result comes here
        storage.serial = next(_STORAGE_SERIALS)
        live[id(storage)] = storage.nbytes
        stack = _SCOPES.get()
        if stack:
            stack[-1]._tracked[id(x)] = x
    return x


def _hand_out(x: T) -> T:
    """Internal: ``x``, made by ``_fresh(..., now=False)``, as ``_fresh`` makes it now: counted
    live, given the serial of an array made now, tracked by the open scope."""
    storage = x.storage
    storage.serial = next(_STORAGE_SERIALS)
    storage._live[id(storage)] = storage.nbytes
    stack = _SCOPES.get()
    if stack:  # the innermost open scope of this thread or task tracks every new array
        stack[-1]._tracked[id(x)] = x
    return x


DATA_OBSERVERS: list[Any] = []
"""Objects told of every read of an NDArray's data outside the engine (``on_data(x)``) and of
every array drawn from a host random generator (``on_random()``), while they are listed: a
Session recording a plan must know that what it records is not just kernels on arrays."""


def _note_random() -> None:
    for observer in tuple(DATA_OBSERVERS):
        observer.on_random()


def _factory_arguments(
    shape: Sequence[int], dtype: DType | str | None, math: NDArrayMath | None, where: str
) -> tuple[Shape, DType, MathBackend]:
    """A factory's shape, dtype and backend, checked (errors name ``where``)."""
    return util.check_shape(shape, where), util.check_dtype(dtype, where), _default_backend(math, where)


def _default_backend(math: NDArrayMath | None, where: str = "NDArray") -> MathBackend:
    if math is not None:
        backend = getattr(math, "backend", None)
        if backend is None:  # a number or a string passed positionally where math goes
            raise TypeError(
                f"{where}: math must be an NDArrayMath or None; got {type(math).__name__} {math!r:.80}."
            )
        return backend  # type: ignore[no-any-return]
    from deeplearn.environment import ENV

    return ENV.math.backend


class NDArray:
    """An n-dimensional array of float32, int32 or bool on a backend.

    Create one with a rank class (``Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])``), a factory
    (``NDArray.zeros``), ``NDArray.from_numpy``, or as the result of an NDArrayMath op.

    Example:
        >>> a = Array2D.new([2, 2], [1, 2, 3, 4])
        >>> a.shape, a.get(1, 0)
        ((2, 2), 3.0)
    """

    __slots__ = ("__weakref__", "_disposed", "_spec", "dtype", "shape", "storage")

    def __init__(self, storage: Storage, shape: Shape, dtype: DType) -> None:
        """Internal: use ``NDArray.make`` or the rank classes' factories."""
        self.storage = storage
        shape = tuple(shape)
        self.shape: Shape = storage.shape if shape == storage.shape else shape
        self.dtype: DType = dtype
        self._disposed = False
        self._spec: Spec | None = None  # made on first use; the engine sets it from the shape rule
        storage.refs += 1
        stack = _SCOPES.get()
        if stack:  # the innermost open scope of this thread or task tracks every new array
            stack[-1]._tracked[id(self)] = self

    # -- construction --------------------------------------------------------------------------
    @staticmethod
    def _class_for_rank(rank: int) -> type[NDArray]:
        return _RANK_CLASSES.get(rank, NDArray)

    @classmethod
    def _wrap(
        cls, data: RawArray, backend: MathBackend, dtype: DType | None = None, where: str = "NDArray"
    ) -> NDArray:
        """Wraps a raw backend array (already in the right dtype) as the NDArray of its rank.

        Without ``dtype``, a foreign array (from_dlpack, composites) may be float64/int64: it is
        stored in the library's dtype of its kind, by the rules of ``make`` (refusing what that
        dtype cannot hold; ``where`` names the caller), copying only when the dtype must change.
        """
        if dtype is None:
            dtype = _default_dtype(data.dtype)
            if data.dtype != util.numpy_dtype(dtype):
                _check_convertible(backend.xp, data, dtype, where)
                data = data.astype(util.numpy_dtype(dtype))
        if not data.flags.c_contiguous:
            # Views of the storage (reshape, get/set by flat index) need C order.
            data = backend.xp.ascontiguousarray(data)
        shape = tuple(data.shape)
        return _RANK_CLASSES.get(len(shape), NDArray)(Storage(data, backend), shape, dtype)

    @classmethod
    def _untracked(cls, data: RawArray, backend: MathBackend, dtype: DType) -> NDArray:
        """Internal: an NDArray of its rank over ``data`` (C-ordered, already ``dtype``) with a
        storage of its own, tracked by no scope: the caller owns it (a Session's replayed and
        captured values, ``deeplearn/compile/``)."""
        storage = Storage(data, backend)
        shape = storage.shape
        klass = _RANK_CLASSES.get(len(shape), NDArray)
        x = klass.__new__(klass)
        x.storage, x.shape, x.dtype = storage, shape, dtype
        x._disposed, x._spec = False, None
        x.storage.refs += 1
        return x

    @staticmethod
    def make(
        shape: Sequence[int], data: Any, dtype: DType | str | None = None, math: NDArrayMath | None = None
    ) -> NDArray:
        """Builds the NDArray subclass of ``shape``'s rank from flat or nested values.

        Every construction path (the rank classes' ``new``, ``from_numpy``, ``from_dlpack``, the
        random factories) follows its rules: values must be real numbers or booleans (complex
        values raise DTypeError rather than losing their imaginary part), and int32 values must
        fit in int32 (ValueError rather than wrapping around); floats stored as int32 truncate
        toward zero, as deeplearn.js's Int32Array.

        Example:
            >>> NDArray.make([2], [1, 2]).get_values()
            array([1., 2.], dtype=float32)
        """
        return NDArray._make(shape, data, dtype, math, "NDArray.make")

    @staticmethod
    def _make(
        shape: Sequence[int], data: Any, dtype: DType | str | None, math: NDArrayMath | None, where: str
    ) -> NDArray:
        """``make``, its errors naming ``where`` (the factory the user called)."""
        shape_t, dt, backend = _factory_arguments(shape, dtype, math, where)
        host = _to_host_values(_as_host_array(data, where), dt, where)
        if host.size != util.size_from_shape(shape_t):
            raise ShapeError(
                f"{where}: the number of values must match the shape; got {host.size} values "
                f"for shape {shape_t} ({util.size_from_shape(shape_t)} elements)."
            )
        if host.ndim > 1 and tuple(host.shape) != shape_t:
            raise ShapeError(
                f"{where}: the shape of nested values must match the shape; got values of "
                f"shape {tuple(host.shape)} for shape {shape_t}."
            )
        return NDArray._wrap(backend.asarray(host.reshape(shape_t)), backend, dt)

    @staticmethod
    def from_numpy(array: Any, dtype: DType | str | None = None, math: NDArrayMath | None = None) -> NDArray:
        """Copies a NumPy (or array-like) value into a new NDArray; dtype defaults from the array
        (float64 becomes float32, int64 becomes int32: its values must fit, see ``make``).

        Example:
            >>> NDArray.from_numpy(np.arange(3)).dtype
            'int32'
        """
        where = "NDArray.from_numpy"
        arr = _as_host_array(array, where)
        if dtype is None:
            _check_kind(arr, where)
            dtype = _default_dtype(arr.dtype)
        return NDArray._make(arr.shape, arr, dtype, math, where)

    @staticmethod
    def zeros(
        shape: Sequence[int], dtype: DType | str | None = None, math: NDArrayMath | None = None
    ) -> NDArray:
        """An array of zeros."""
        return NDArray._full(shape, 0, dtype, math, "NDArray.zeros")

    @staticmethod
    def ones(
        shape: Sequence[int], dtype: DType | str | None = None, math: NDArrayMath | None = None
    ) -> NDArray:
        """An array of ones."""
        return NDArray._full(shape, 1, dtype, math, "NDArray.ones")

    @staticmethod
    def _full(
        shape: Sequence[int], value: float, dtype: DType | str | None, math: NDArrayMath | None, where: str
    ) -> NDArray:
        shape_t, dt, backend = _factory_arguments(shape, dtype, math, where)
        return NDArray._wrap(backend.xp.full(shape_t, value, dtype=util.numpy_dtype(dt)), backend, dt)

    @staticmethod
    def zeros_like(x: NDArray) -> NDArray:
        """Zeros of ``x``'s shape and dtype, on ``x``'s backend."""
        x._check_live("zeros_like")
        b = x.storage.backend
        return NDArray._wrap(b.xp.zeros(x.shape, dtype=util.numpy_dtype(x.dtype)), b, x.dtype)

    @staticmethod
    def ones_like(x: NDArray) -> NDArray:
        """Ones of ``x``'s shape and dtype, on ``x``'s backend."""
        x._check_live("ones_like")
        b = x.storage.backend
        return NDArray._wrap(b.xp.ones(x.shape, dtype=util.numpy_dtype(x.dtype)), b, x.dtype)

    @staticmethod
    def like(x: NDArray) -> NDArray:
        """A copy of ``x`` (same shape, dtype, values and backend)."""
        x._check_live("like")
        b = x.storage.backend
        return NDArray._wrap(b.xp.array(x.raw, copy=True), b, x.dtype)

    @staticmethod
    def rand(
        shape: Sequence[int],
        fn: Callable[[], float],
        dtype: DType | str | None = None,
        math: NDArrayMath | None = None,
    ) -> NDArray:
        """An array whose every element is a fresh call of ``fn()``."""
        where = "NDArray.rand"
        shape_t = util.check_shape(shape, where)
        util.check_dtype(dtype, where)  # before fn runs once per element
        if not callable(fn):
            raise TypeError(f"{where}: fn must be a function; got {type(fn).__name__} {fn!r:.80}.")
        _note_random()
        values = [fn() for _ in range(util.size_from_shape(shape_t))]
        return NDArray._make(shape_t, values, dtype, math, where)

    @staticmethod
    def rand_normal(
        shape: Sequence[int],
        mean: float = 0.0,
        std_dev: float = 1.0,
        dtype: DType | str | None = None,
        seed: int | None = None,
        math: NDArrayMath | None = None,
    ) -> NDArray:
        """Samples of N(mean, std_dev²); int32 results are rounded. ``seed`` makes it repeatable."""
        where = "NDArray.rand_normal"
        shape_t, rng = _random_args(shape, dtype, seed, where, mean=mean, std_dev=std_dev)
        values = rng.normal(mean, std_dev, shape_t)
        return NDArray._make(shape_t, _round_if_int(values, dtype), dtype, math, where)

    @staticmethod
    def rand_truncated_normal(
        shape: Sequence[int],
        mean: float = 0.0,
        std_dev: float = 1.0,
        dtype: DType | str | None = None,
        seed: int | None = None,
        math: NDArrayMath | None = None,
    ) -> NDArray:
        """Samples of N(mean, std_dev²) redrawn until within mean ± 2·std_dev (both tails)."""
        where = "NDArray.rand_truncated_normal"
        shape_t, rng = _random_args(shape, dtype, seed, where, mean=mean, std_dev=std_dev)
        z = rng.standard_normal(shape_t)
        bad = np.abs(z) > 2
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2
        return NDArray._make(shape_t, _round_if_int(mean + std_dev * z, dtype), dtype, math, where)

    @staticmethod
    def rand_uniform(
        shape: Sequence[int],
        a: float,
        b: float,
        dtype: DType | str | None = None,
        seed: int | None = None,
        math: NDArrayMath | None = None,
    ) -> NDArray:
        """Samples of the uniform distribution on [a, b)."""
        where = "NDArray.rand_uniform"
        shape_t, rng = _random_args(shape, dtype, seed, where, a=a, b=b)
        values = rng.uniform(a, b, shape_t)
        return NDArray._make(shape_t, _round_if_int(values, dtype), dtype, math, where)

    # -- properties ----------------------------------------------------------------------------
    @property
    def raw(self) -> RawArray:
        """The backend array (NumPy or CuPy) viewed with this NDArray's shape. Internal."""
        data = self.storage.data
        if self._disposed or data is None:
            raise DisposedError("NDArray is disposed.")
        if DATA_OBSERVERS:
            for observer in tuple(DATA_OBSERVERS):  # a snapshot: other threads add and remove
                observer.on_data(self)
        return data if data.shape == self.shape else data.reshape(self.shape)

    @property
    def spec(self) -> Spec:
        spec = self._spec
        if spec is None:
            spec = self._spec = Spec(self.shape, self.dtype)
        return spec

    @property
    def size(self) -> int:
        return util.size_from_shape(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def strides(self) -> list[int]:
        """Row-major strides in elements, without the last (implicit 1), as deeplearn.js."""
        out, acc = [], 1
        for d in reversed(self.shape[1:]):
            acc *= d
            out.append(acc)
        return list(reversed(out))

    @property
    def backend(self) -> MathBackend:
        return self.storage.backend

    @property
    def is_disposed(self) -> bool:
        return self._disposed or self.storage.data is None

    def _check_live(self, where: str) -> None:
        if self.is_disposed:
            raise DisposedError(f"{where}: NDArray is disposed; got a disposed array of shape {self.shape}.")

    # -- element access ------------------------------------------------------------------------
    def loc_to_index(self, locs: Sequence[int], where: str = "loc_to_index") -> int:
        """Flat row-major index of a location (integers; 2.0 passes, 1.5 is refused)."""
        if len(locs) != self.rank:
            raise ShapeError(f"{where}: need {self.rank} coordinates; got {list(locs)}.")
        index = 0
        for loc, d in zip(locs, self.shape, strict=True):
            if type(loc) is not int:
                loc = _as_index(loc, locs, where)
            if not 0 <= loc < d:
                raise IndexError(f"{where}: location {list(locs)} is outside shape {self.shape}.")
            index = index * d + loc
        return index

    def index_to_loc(self, index: int) -> list[int]:
        """Location of a flat row-major index."""
        if type(index) is not int:
            index = _as_index(index, [index], "index_to_loc")
        if not 0 <= index < max(self.size, 1):
            raise IndexError(f"index_to_loc: index {index} is outside an array of {self.size} elements.")
        loc = []
        for d in reversed(self.shape):
            loc.append(index % d)
            index //= d
        return list(reversed(loc))

    def _flat_index(self, locs: Sequence[int], where: str) -> int:
        """The flat index of ``locs``; a Scalar takes any integer coordinates (deeplearn.js's
        Scalar.get ignores them) but never fractional ones."""
        if self.rank:
            return self.loc_to_index(locs, where)
        for loc in locs:
            if type(loc) is not int:
                _as_index(loc, locs, where)
        return 0

    def get(self, *locs: int) -> float:
        """One element as a Python number (float32 → float, int32 → int, bool → bool)."""
        self._check_live("get")
        return _python_scalar(self.raw.reshape(-1)[self._flat_index(locs, "get")])

    def set(self, value: float, *locs: int) -> None:
        """Writes one element (int32: a number that fits in int32, truncated toward zero)."""
        self._check_live("set")
        index = self._flat_index(locs, "set")
        self.raw.reshape(-1)[index] = _element_value(value, self.dtype, "set")

    def add(self, value: float, *locs: int) -> None:
        """Adds ``value`` to one element in place."""
        self._check_live("add")
        index = self._flat_index(locs, "add")
        flat = self.raw.reshape(-1)
        total = _python_scalar(flat[index]) + _element_value(value, "float32", "add")
        flat[index] = _element_value(total, self.dtype, "add")

    def fill(self, value: float) -> None:
        """Sets every element to ``value``."""
        self._check_live("fill")
        self.raw.fill(_element_value(value, self.dtype, "fill"))

    # -- reading -------------------------------------------------------------------------------
    def data_sync(self) -> np.ndarray:
        """A flat host NumPy copy of the values (blocks until the GPU is done)."""
        self._check_live("data_sync")
        return np.array(self.backend.to_numpy(self.raw), copy=True).reshape(-1)

    def get_values(self) -> np.ndarray:
        """A flat host NumPy copy of the values (deeplearn.js ``getValues``, same as ``data_sync``)."""
        return self.data_sync()

    async def data(self) -> np.ndarray:
        """Awaitable flat copy of the values; waits for the GPU without blocking the event loop."""
        self._check_live("data")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.data_sync)

    async def val(self, *locs: int) -> float:
        """Awaitable value of one element."""
        index = self._flat_index(locs, "val")  # before the copy: a bad location costs nothing
        values = await self.data()
        return _python_scalar(values[index])

    def numpy(self) -> np.ndarray:
        """A host NumPy copy with this array's shape."""
        return self.data_sync().reshape(self.shape)

    # -- views and conversions -----------------------------------------------------------------
    def reshape(self, new_shape: Sequence[int]) -> NDArray:
        """A view with another shape (one dimension may be -1); shares the data."""
        if self._disposed or self.storage.data is None:
            self._check_live("reshape")
        shape = tuple(new_shape) if type(new_shape) is tuple or type(new_shape) is list else None
        if (
            shape is None
            or not all(type(d) is int and d >= 0 for d in shape)
            or _prod(shape) != _prod(self.shape)
        ):
            # -1, NumPy integers, mismatched sizes: the general rule and its messages
            shape = util.infer_from_implicit_shape(util.as_shape(new_shape, "reshape"), self.size, "reshape")
        if shape == self.shape:
            return self
        return NDArray._class_for_rank(len(shape))(self.storage, shape, self.dtype)

    def _view(self, tracked: bool = True, shape: Shape | None = None) -> NDArray:
        """Internal: another view of the same storage, with this shape or ``shape`` (of the
        same size; disposing one view leaves the other alive). ``tracked=False`` makes one that
        no scope tracks, which the caller owns (cheaper than a tracked view then kept)."""
        shape = self.shape if shape is None else shape
        klass = _RANK_CLASSES.get(len(shape), NDArray)
        if tracked:
            return klass(self.storage, shape, self.dtype)
        view = klass.__new__(klass)
        view.storage, view.shape, view.dtype = self.storage, shape, self.dtype
        view._disposed = False
        view._spec = self._spec if shape == self.shape else None
        self.storage.refs += 1
        return view

    def as_scalar(self) -> Scalar:
        if self.size != 1:
            raise ShapeError(f"as_scalar: the array must have exactly 1 element; got shape {self.shape}.")
        return self.reshape(())  # type: ignore[return-value]

    def as1d(self) -> Array1D:
        return self.reshape((self.size,))  # type: ignore[return-value]

    def as2d(self, rows: int, columns: int) -> Array2D:
        return self.reshape((rows, columns))  # type: ignore[return-value]

    def as3d(self, rows: int, columns: int, depth: int) -> Array3D:
        return self.reshape((rows, columns, depth))  # type: ignore[return-value]

    def as4d(self, rows: int, columns: int, depth: int, depth2: int) -> Array4D:
        return self.reshape((rows, columns, depth, depth2))  # type: ignore[return-value]

    def flatten(self) -> Array1D:
        return self.as1d()

    def as_type(self, dtype: DType | str) -> NDArray:
        """A copy converted to ``dtype``: to int32 truncates toward zero (values must fit in
        int32, as for every array made: ValueError, not a wrapped value); to bool is
        ``round(v) != 0`` (deeplearn.js)."""
        self._check_live("as_type")
        dt = util.check_dtype(dtype, "as_type")
        xp, raw = self.backend.xp, self.raw
        if dt == "int32" and self.dtype == "float32":
            _check_convertible(xp, raw, dt, "as_type")
        with np.errstate(all="ignore"):
            if dt == "bool" and self.dtype == "float32":
                out = _js_round(xp, raw) != 0
            else:
                out = raw.astype(util.numpy_dtype(dt))
        return NDArray._wrap(out, self.backend, dt)

    def dispose(self) -> None:
        """Frees this view; the data goes back to the backend once no view uses it.
        Disposing twice is harmless."""
        if self._disposed:
            return
        self._disposed = True
        storage = self.storage  # Storage.release, inlined: every op's result comes here
        storage.refs -= 1
        if storage.refs <= 0 and storage.data is not None:
            storage.data = None  # drops the buffer: CuPy returns it to its pool
            storage._live.pop(id(storage), None)

    def equals(self, other: NDArray) -> bool:
        """Same dtype, shape and values."""
        if not isinstance(other, NDArray):
            raise TypeError(f"equals: other must be an NDArray; got {type(other).__name__} {other!r:.80}.")
        if self.dtype != other.dtype or self.shape != other.shape:
            return False
        return bool(np.array_equal(self.data_sync(), other.data_sync()))

    # -- Python protocols ----------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False and self.backend.name != "cpu":
            raise ValueError("NDArray.__array__: a GPU array cannot be viewed without a copy.")
        self._check_live("__array__")
        arr = self.backend.to_numpy(self.raw)
        if copy:
            arr = np.array(arr, copy=True)
        return arr if dtype is None else arr.astype(dtype)

    def __dlpack__(self, **kwargs: Any) -> Any:
        self._check_live("__dlpack__")
        return self.raw.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        self._check_live("__dlpack_device__")
        return self.raw.__dlpack_device__()  # type: ignore[no-any-return]

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a Scalar")
        return self.shape[0]

    def _item(self, where: str) -> Any:
        if self.size != 1:
            raise TypeError(
                f"{where}: only an array of one element converts to a Python number; got shape {self.shape}."
            )
        return self.get(*([0] * self.rank))

    def __float__(self) -> float:
        return float(self._item("float()"))

    def __int__(self) -> int:
        return int(self._item("int()"))

    def __bool__(self) -> bool:
        return bool(self._item("bool()"))

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.is_disposed:
            return f"{name}(<disposed>, shape={self.shape}, dtype={self.dtype})"
        body = np.array2string(self.numpy(), separator=", ", prefix=f"{name}(")
        return f"{name}({body}, dtype={self.dtype})"


class Scalar(NDArray):
    """A rank-0 NDArray."""

    __slots__ = ()

    @staticmethod
    def new(value: float | bool, dtype: DType | str | None = None, math: NDArrayMath | None = None) -> Scalar:
        """A scalar. Example: ``Scalar.new(3).get() == 3.0``."""
        if (dtype is None or dtype == "float32") and (
            (type(value) is float and -_FLOAT32_MAX <= value <= _FLOAT32_MAX)  # not NaN, inf or overflow
            or (type(value) is int and -_EXACT_INT <= value <= _EXACT_INT)
        ):
            # The common case (optimizers, costs, seeds make several per step): a Python number
            # as float32, what make() computes, without its general conversions.
            backend = _default_backend(math, "Scalar.new")
            host = np.array(value, dtype=np.float32)
            raw = host if backend.xp is np else backend.asarray(host)
            return Scalar(Storage(raw, backend), (), "float32")
        return NDArray._make((), [value], dtype, math, "Scalar.new")  # type: ignore[return-value]


class Array1D(NDArray):
    """A rank-1 NDArray."""

    __slots__ = ()

    @staticmethod
    def new(values: Any, dtype: DType | str | None = None, math: NDArrayMath | None = None) -> Array1D:
        """A vector from a flat list or array. Example: ``Array1D.new([0, 1, 2])``."""
        shape = util.infer_shape(values)
        if len(shape) != 1:
            raise ShapeError(f"Array1D.new: values must be 1-D; got values of shape {shape}.")
        return NDArray._make(shape, values, dtype, math, "Array1D.new")  # type: ignore[return-value]


class _RankedNew(NDArray):
    __slots__ = ()
    _rank = 0

    @classmethod
    def new(
        cls,
        shape: Sequence[int],
        values: Any,
        dtype: DType | str | None = None,
        math: NDArrayMath | None = None,
    ) -> Any:
        """An array of this rank from flat values, or nested values of exactly ``shape``."""
        where = f"{cls.__name__}.new"
        return NDArray._make(_check_rank(shape, cls._rank, where), values, dtype, math, where)


class Array2D(_RankedNew):
    """A rank-2 NDArray (matrix). Example: ``Array2D.new([2, 3], [10, 20, 30, 40, 50, 60])``."""

    __slots__ = ()
    _rank = 2


class Array3D(_RankedNew):
    """A rank-3 NDArray (an image: rows, columns, depth)."""

    __slots__ = ()
    _rank = 3


class Array4D(_RankedNew):
    """A rank-4 NDArray (a batch of images, or a convolution filter)."""

    __slots__ = ()
    _rank = 4


_EXACT_INT = 2**53  # Python ints up to this convert to float32 the same way through float64
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger floats warn of overflow when cast

_RANK_CLASSES: dict[int, type[NDArray]] = {0: Scalar, 1: Array1D, 2: Array2D, 3: Array3D, 4: Array4D}


def from_dlpack(obj: object, math: NDArrayMath | None = None) -> NDArray:
    """Wraps a DLPack-capable array (PyTorch, JAX, CuPy, NumPy) as an NDArray on ``math``'s
    backend (default ``ENV.math``), without a copy where the devices and dtypes agree.

    Example:
        >>> from_dlpack(np.arange(3.0, dtype=np.float32)).get_values()
        array([0., 1., 2.], dtype=float32)
    """
    backend = _default_backend(math, "from_dlpack")
    return NDArray._wrap(backend.asarray(obj), backend, where="from_dlpack")


def _check_rank(shape: Sequence[int], rank: int, where: str) -> Shape:
    shape_t = util.check_shape(shape, where)
    if len(shape_t) != rank:
        raise ShapeError(f"{where}: shape must have rank {rank}; got shape {shape_t}.")
    return shape_t


def _as_host_array(data: Any, where: str) -> np.ndarray:
    """Flat or nested values (lists, NumPy, CuPy, NDArray, DLPack) as a host NumPy array, in
    the dtype NumPy infers (ShapeError for ragged or non-numeric nesting)."""
    if isinstance(data, NDArray):
        data = data.numpy()
    elif hasattr(data, "get") and hasattr(data, "__cuda_array_interface__"):
        data = data.get()
    try:
        values = np.asarray(data)
    except ValueError as e:  # ragged nested lists
        raise ShapeError(
            f"{where}: nested values must form a rectangular array; got {data!r:.80} ({e})."
        ) from e
    if values.dtype == object:
        if values.size and all(type(v) is int for v in values.flat):  # beyond int64: NumPy gave up
            lo, hi = min(values.flat), max(values.flat)
            raise ValueError(f"{where}: integers must fit in int32; got values from {lo} to {hi}.")
        raise ShapeError(f"{where}: values must be numbers in a rectangular array; got {data!r:.80}.")
    return values


def _to_host_values(values: np.ndarray, dtype: DType, where: str) -> np.ndarray:
    """Host ``values`` converted to ``dtype``, refusing what it cannot hold (``make``'s rules)."""
    kind = values.dtype.kind
    if (dtype == "int32" and kind in "fiu") or kind not in "biuf":  # else any value converts
        _check_convertible(np, values, dtype, where)
    with np.errstate(all="ignore"):
        if dtype == "bool" and values.dtype.kind == "f":
            return cast(np.ndarray, _js_round(np, values) != 0)
        return values.astype(util.numpy_dtype(dtype))


def _default_dtype(numpy_dtype: Any) -> DType:
    """The library dtype that stores values of a NumPy dtype: bool, int32 for integers, else
    float32."""
    kind = numpy_dtype.kind
    return "bool" if kind == "b" else "int32" if kind in "iu" else "float32"


def _check_kind(values: RawArray, where: str) -> None:
    """Values must be real numbers or booleans: a cast would drop the imaginary part of complex
    values with only a warning, and read strings as numbers."""
    kind = values.dtype.kind
    if kind == "c":
        raise DTypeError(
            f"{where}: values must be real numbers; got complex values (dtype {values.dtype}), "
            "whose imaginary part would be lost."
        )
    if kind not in "biuf":
        raise DTypeError(f"{where}: values must be numbers or booleans; got values of dtype {values.dtype}.")


_INT32_MIN, _INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)


def _check_convertible(xp: Any, values: RawArray, dtype: DType, where: str) -> None:
    """Raises unless every value of ``values`` can be stored as ``dtype``: the one rule of every
    construction path. A NumPy/CuPy cast to int32 wraps or saturates out-of-range values
    silently, so they are refused; floats are checked after truncation toward zero, the
    conversion deeplearn.js's Int32Array makes."""
    _check_kind(values, where)
    if dtype != "int32" or values.size == 0 or values.dtype.kind == "b":
        return
    if values.dtype.kind in "iu":
        info = np.iinfo(values.dtype)
        if info.min >= _INT32_MIN and info.max <= _INT32_MAX:
            return  # int8, int16, uint16: every value fits, nothing to read
        lo, hi = int(values.min()), int(values.max())
        if lo < _INT32_MIN or hi > _INT32_MAX:
            raise ValueError(f"{where}: integers must fit in int32; got values from {lo} to {hi}.")
        return
    finite = xp.isfinite(values)
    if not bool(xp.all(finite)):
        bad = float(values[~finite].reshape(-1)[0])
        raise ValueError(f"{where}: numbers stored as int32 must be finite; got {bad}.")
    lo_f, hi_f = float(values.min()), float(values.max())
    if lo_f <= _INT32_MIN - 1 or hi_f >= _INT32_MAX + 1:
        raise ValueError(
            f"{where}: numbers stored as int32 must fit in int32 after truncation; got values from "
            f"{lo_f:g} to {hi_f:g}."
        )


def _as_index(loc: Any, locs: Sequence[Any], where: str) -> int:
    """One coordinate as an int: integral numbers pass, 1.5 (which indexing would truncate),
    booleans and strings raise ValueError naming the call."""
    try:
        return util.as_int(loc, where, "locs")
    except ValueError:
        raise ValueError(f"{where}: locations must be integers; got locs={tuple(locs)!r}.") from None


def _element_value(value: Any, dtype: DType, where: str) -> Any:
    """``value`` checked for storing into one element of ``dtype`` by the rules of ``make``:
    a real number or boolean (complex would lose its imaginary part), within int32 for int32."""
    if isinstance(value, (bool, int, float)) and not (dtype == "int32" and type(value) is not bool):
        return value  # the common case: nothing a float32 or bool element cannot take
    values = np.asarray(value)
    if values.ndim != 0:
        raise ShapeError(f"{where}: value must be one number; got value of shape {values.shape}.")
    if values.dtype == object:
        raise DTypeError(f"{where}: value must be a real number or a boolean; got value={value!r}.")
    _check_convertible(np, values, dtype, where)
    return value


def _random_args(
    shape: Sequence[int],
    dtype: DType | str | None,
    seed: int | None,
    where: str,
    std_dev: float | None = None,
    **numbers: float,
) -> tuple[Shape, np.random.Generator]:
    """The checked shape and a Generator for a random factory; checks come before the draws.
    ``numbers`` (mean, a, b) must be numbers; ``std_dev`` also >= 0."""
    shape_t = util.check_shape(shape, where)
    util.check_dtype(dtype, where)
    for name, value in numbers.items():
        util.as_float(value, where, name)
    if std_dev is not None and not util.as_float(std_dev, where, "std_dev") >= 0:  # NaN too
        raise ValueError(f"{where}: std_dev must be >= 0; got std_dev={std_dev!r}.")
    rng = np.random.default_rng(util.as_seed(seed, where))
    _note_random()
    return shape_t, rng


def _js_round(xp: Any, values: RawArray) -> RawArray:
    """JavaScript's Math.round: halves round up (0.5 -> 1, -0.5 -> -0), unlike NumPy's
    round-half-to-even (0.5 -> 0)."""
    # deeplearn.js: bool conversion is Math.round(v) !== 0, so 0.5 converts to true.
    return xp.floor(values + 0.5)


def _round_if_int(values: np.ndarray, dtype: DType | str | None) -> np.ndarray:
    return np.round(values) if dtype == "int32" else values


def _python_scalar(value: Any) -> float:
    """A NumPy/CuPy scalar as a Python number (float, or int/bool for int32/bool data)."""
    return cast(float, value.item() if hasattr(value, "item") else value)
