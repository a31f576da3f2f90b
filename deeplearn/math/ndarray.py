"""NDArray, Scalar, Array1D..Array4D: typed, shaped data on a backend (CPU or GPU).

An NDArray is a view (shape, dtype) over a ``Storage`` (the backend's buffer). ``reshape`` and
``as1d``.. return new views of the same storage; the storage is freed when every view of it is
disposed (reference counting, as deeplearn.js 0.3.14+ counts references per data id).
Every NDArray constructed while a scope is open is tracked by that scope (see scope.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from math import prod as _prod
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from deeplearn import util
from deeplearn.math.ops.base import Spec
from deeplearn.math.scope import _SCOPES, REGISTRY
from deeplearn.types import DisposedError, DType, RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Array1D", "Array2D", "Array3D", "Array4D", "NDArray", "Scalar", "Storage", "from_dlpack"]

T = TypeVar("T", bound="NDArray")


class Storage:
    """A backend buffer shared by the views (reshapes) of one array."""

    __slots__ = ("__weakref__", "backend", "data", "nbytes", "refs", "serial")

    def __init__(self, data: RawArray, backend: MathBackend) -> None:
        self.data: RawArray | None = data
        self.backend = backend
        self.nbytes = int(data.nbytes)
        self.refs = 0
        self.serial = next(_STORAGE_SERIALS)  # creation order: tells a recorder what is new
        REGISTRY.register(self)

    def release(self) -> None:
        self.refs -= 1
        if self.refs <= 0 and self.data is not None:
            self.data = None  # drops the buffer: CuPy returns it to its pool
            REGISTRY.release(self)

    def __del__(self) -> None:
        # Garbage-collected without dispose(): its memory is gone, so count it so. A __del__
        # costs nothing per array, where a weakref.finalize cost ~1.3 us to create.
        if self.data is not None:
            self.data = None
            with contextlib.suppress(Exception):  # interpreter shutdown: the registry may be gone
                REGISTRY.release(self)


_STORAGE_SERIALS = itertools.count(1)

DATA_OBSERVERS: list[Any] = []
"""Objects told of every read of an NDArray's data outside the engine (``on_data(x)``) and of
every array drawn from a host random generator (``on_random()``), while they are listed: a
Session recording a plan must know that what it records is not just kernels on arrays."""


def _note_random() -> None:
    for observer in tuple(DATA_OBSERVERS):
        observer.on_random()


def _default_backend(math: NDArrayMath | None) -> MathBackend:
    if math is not None:
        return math.backend
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
        self.shape: Shape = tuple(shape)
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
    def _wrap(cls, data: RawArray, backend: MathBackend, dtype: DType | None = None) -> NDArray:
        """Wraps a raw backend array (already in the right dtype) as the NDArray of its rank."""
        if dtype is None:
            # Foreign arrays (from_dlpack, composites) may be float64/int64: store them in the
            # library's dtypes, copying only when the dtype must change.
            kind = data.dtype.kind
            dtype = "bool" if kind == "b" else "int32" if kind in "iu" else "float32"
            if data.dtype != util.numpy_dtype(dtype):
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
        shape = tuple(data.shape)
        klass = _RANK_CLASSES.get(len(shape), NDArray)
        x = klass.__new__(klass)
        x.storage, x.shape, x.dtype = Storage(data, backend), shape, dtype
        x._disposed, x._spec = False, None
        x.storage.refs += 1
        return x

    @staticmethod
    def make(shape: Sequence[int], data: Any, dtype: DType | str | None = None,
             math: NDArrayMath | None = None) -> NDArray:
        """Builds the NDArray subclass of ``shape``'s rank from flat or nested values.

        Example:
            >>> NDArray.make([2], [1, 2]).get_values()
            array([1., 2.], dtype=float32)
        """
        shape_t = util.as_shape(shape, "NDArray.make")
        dt = util.check_dtype(dtype, "NDArray.make")
        backend = _default_backend(math)
        host = _to_host_values(data, dt)
        if host.size != util.size_from_shape(shape_t):
            raise ShapeError(
                f"NDArray.make: the number of values must match the shape; got {host.size} values "
                f"for shape {shape_t} ({util.size_from_shape(shape_t)} elements)."
            )
        if host.ndim > 1 and tuple(host.shape) != shape_t:
            raise ShapeError(
                f"NDArray.make: the shape of nested values must match the shape; got values of "
                f"shape {tuple(host.shape)} for shape {shape_t}."
            )
        return NDArray._wrap(backend.asarray(host.reshape(shape_t)), backend, dt)

    @staticmethod
    def from_numpy(array: Any, dtype: DType | str | None = None, math: NDArrayMath | None = None) -> NDArray:
        """Copies a NumPy (or array-like) value into a new NDArray; dtype defaults from the array
        (float64 becomes float32, int64 becomes int32).

        Example:
            >>> NDArray.from_numpy(np.arange(3)).dtype
            'int32'
        """
        arr = np.asarray(array)
        if dtype is None:
            dtype = "bool" if arr.dtype == np.bool_ else "int32" if arr.dtype.kind in "iu" else "float32"
        if dtype == "int32" and arr.dtype.kind in "iu" and arr.size and (
                arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            raise ValueError(
                f"NDArray.from_numpy: integers must fit in int32; got values from {arr.min()} to {arr.max()}."
            )
        return NDArray.make(arr.shape, arr, dtype, math)

    @staticmethod
    def zeros(shape: Sequence[int], dtype: DType | str | None = None, math: NDArrayMath | None = None) -> NDArray:
        """An array of zeros."""
        return NDArray._full(shape, 0, dtype, math)

    @staticmethod
    def ones(shape: Sequence[int], dtype: DType | str | None = None, math: NDArrayMath | None = None) -> NDArray:
        """An array of ones."""
        return NDArray._full(shape, 1, dtype, math)

    @staticmethod
    def _full(shape: Sequence[int], value: float, dtype: DType | str | None, math: NDArrayMath | None) -> NDArray:
        shape_t = util.as_shape(shape)
        dt = util.check_dtype(dtype)
        backend = _default_backend(math)
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
    def rand(shape: Sequence[int], fn: Callable[[], float], dtype: DType | str | None = None,
             math: NDArrayMath | None = None) -> NDArray:
        """An array whose every element is a fresh call of ``fn()``."""
        _note_random()
        shape_t = util.as_shape(shape)
        values = [fn() for _ in range(util.size_from_shape(shape_t))]
        return NDArray.make(shape_t, values, dtype, math)

    @staticmethod
    def rand_normal(shape: Sequence[int], mean: float = 0.0, std_dev: float = 1.0,
                    dtype: DType | str | None = None, seed: int | None = None,
                    math: NDArrayMath | None = None) -> NDArray:
        """Samples of N(mean, std_dev²); int32 results are rounded. ``seed`` makes it repeatable."""
        _note_random()
        shape_t = util.as_shape(shape)
        values = np.random.default_rng(seed).normal(mean, std_dev, shape_t)
        return NDArray.make(shape_t, _round_if_int(values, dtype), dtype, math)

    @staticmethod
    def rand_truncated_normal(shape: Sequence[int], mean: float = 0.0, std_dev: float = 1.0,
                              dtype: DType | str | None = None, seed: int | None = None,
                              math: NDArrayMath | None = None) -> NDArray:
        """Samples of N(mean, std_dev²) redrawn until within mean ± 2·std_dev (both tails)."""
        _note_random()
        shape_t = util.as_shape(shape)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal(shape_t)
        bad = np.abs(z) > 2
        while bad.any():
            z[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(z) > 2
        return NDArray.make(shape_t, _round_if_int(mean + std_dev * z, dtype), dtype, math)

    @staticmethod
    def rand_uniform(shape: Sequence[int], a: float, b: float, dtype: DType | str | None = None,
                     seed: int | None = None, math: NDArrayMath | None = None) -> NDArray:
        """Samples of the uniform distribution on [a, b)."""
        _note_random()
        shape_t = util.as_shape(shape)
        values = np.random.default_rng(seed).uniform(a, b, shape_t)
        return NDArray.make(shape_t, _round_if_int(values, dtype), dtype, math)

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
    def loc_to_index(self, locs: Sequence[int]) -> int:
        """Flat row-major index of a location."""
        if len(locs) != self.rank:
            raise ShapeError(f"loc_to_index: need {self.rank} coordinates; got {list(locs)}.")
        index = 0
        for loc, d in zip(locs, self.shape):
            if not 0 <= loc < d:
                raise IndexError(f"loc_to_index: location {list(locs)} is outside shape {self.shape}.")
            index = index * d + int(loc)
        return index

    def index_to_loc(self, index: int) -> list[int]:
        """Location of a flat row-major index."""
        if not 0 <= index < max(self.size, 1):
            raise IndexError(f"index_to_loc: index {index} is outside an array of {self.size} elements.")
        loc = []
        for d in reversed(self.shape):
            loc.append(index % d)
            index //= d
        return list(reversed(loc))

    def get(self, *locs: int) -> float:
        """One element as a Python number (float32 → float, int32 → int, bool → bool)."""
        self._check_live("get")
        flat = self.raw.reshape(-1)
        value = flat[self.loc_to_index(locs)] if self.rank else flat[0]
        return _python_scalar(value)

    def set(self, value: float, *locs: int) -> None:
        """Writes one element."""
        self._check_live("set")
        index = self.loc_to_index(locs) if self.rank else 0
        self.raw.reshape(-1)[index] = value

    def add(self, value: float, *locs: int) -> None:
        """Adds ``value`` to one element in place."""
        self._check_live("add")
        index = self.loc_to_index(locs) if self.rank else 0
        flat = self.raw.reshape(-1)
        flat[index] = flat[index] + value

    def fill(self, value: float) -> None:
        """Sets every element to ``value``."""
        self._check_live("fill")
        self.raw.fill(value)

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
        values = await self.data()
        return _python_scalar(values[self.loc_to_index(locs) if self.rank else 0])

    def numpy(self) -> np.ndarray:
        """A host NumPy copy with this array's shape."""
        return self.data_sync().reshape(self.shape)

    # -- views and conversions -----------------------------------------------------------------
    def reshape(self, new_shape: Sequence[int]) -> NDArray:
        """A view with another shape (one dimension may be -1); shares the data."""
        if self._disposed or self.storage.data is None:
            self._check_live("reshape")
        shape = tuple(new_shape) if type(new_shape) is tuple or type(new_shape) is list else None
        if shape is None or not all(type(d) is int and d >= 0 for d in shape) or _prod(shape) != _prod(self.shape):
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
        """A copy converted to ``dtype``: to int32 truncates toward zero; to bool is
        ``round(v) != 0`` (deeplearn.js)."""
        self._check_live("as_type")
        dt = util.check_dtype(dtype, "as_type")
        xp, raw = self.backend.xp, self.raw
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
        self.storage.release()

    def equals(self, other: NDArray) -> bool:
        """Same dtype, shape and values."""
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
            raise TypeError(f"{where}: only an array of one element converts to a Python number; got shape {self.shape}.")
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
            backend = _default_backend(math)
            host = np.array(value, dtype=np.float32)
            raw = host if backend.xp is np else backend.asarray(host)
            return Scalar(Storage(raw, backend), (), "float32")
        return NDArray.make((), [value], dtype, math)  # type: ignore[return-value]


class Array1D(NDArray):
    """A rank-1 NDArray."""

    __slots__ = ()

    @staticmethod
    def new(values: Any, dtype: DType | str | None = None, math: NDArrayMath | None = None) -> Array1D:
        """A vector from a flat list or array. Example: ``Array1D.new([0, 1, 2])``."""
        shape = util.infer_shape(values)
        if len(shape) != 1:
            raise ShapeError(f"Array1D.new: values must be 1-D; got values of shape {shape}.")
        return NDArray.make(shape, values, dtype, math)  # type: ignore[return-value]


class _RankedNew(NDArray):
    __slots__ = ()
    _rank = 0

    @classmethod
    def new(cls, shape: Sequence[int], values: Any, dtype: DType | str | None = None,
            math: NDArrayMath | None = None) -> Any:
        """An array of this rank from flat values, or nested values of exactly ``shape``."""
        return NDArray.make(_check_rank(shape, cls._rank, f"{cls.__name__}.new"), values, dtype, math)


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
    backend = _default_backend(math)
    return NDArray._wrap(backend.asarray(obj), backend)

def _check_rank(shape: Sequence[int], rank: int, where: str) -> Shape:
    shape_t = util.as_shape(shape, where)
    if len(shape_t) != rank:
        raise ShapeError(f"{where}: shape must have rank {rank}; got shape {shape_t}.")
    return shape_t


def _to_host_values(data: Any, dtype: DType) -> np.ndarray:
    """Flat or nested values (lists, NumPy, CuPy, NDArray, DLPack) → a host NumPy array of dtype."""
    if isinstance(data, NDArray):
        data = data.numpy()
    elif hasattr(data, "get") and hasattr(data, "__cuda_array_interface__"):
        data = data.get()
    with np.errstate(all="ignore"):
        try:
            values = np.asarray(data)
        except ValueError as e:  # ragged nested lists
            raise ShapeError(f"NDArray.make: nested values must form a rectangular array; got {data!r:.80} ({e}).") from e
        if values.dtype == object:
            raise ShapeError(f"NDArray.make: values must be numbers in a rectangular array; got {data!r:.80}.")
        if dtype == "bool" and values.dtype.kind == "f":
            return cast(np.ndarray, _js_round(np, values) != 0)
        return values.astype(util.numpy_dtype(dtype))


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
