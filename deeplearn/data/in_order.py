"""InOrderInputProvider: examples handed out in the order given, wrapping around.

For feeding ``Session.eval_batch`` (the i-th result belongs to the i-th example) and for training
on a known sequence of batches. The shuffled providers of ``input_provider.py`` are for training
on a fresh order every epoch. deeplearn.js had no such provider in the library; its demos each
wrote one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.data.input_provider import InputProvider, check_count
from deeplearn.math.ndarray import NDArray
from deeplearn.math.scope import REGISTRY
from deeplearn.types import DType, DTypeError, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["InOrderInputProvider"]

_INT32 = np.iinfo(np.int32)


class InOrderInputProvider(InputProvider):
    """Hands out its examples in order, from example ``start`` on, back to the first after the
    last.

    Args:
        examples: a list of NDArrays (one per example, all of one shape and dtype), or an array
            (an NDArray, a NumPy array or nested lists) whose first axis indexes the examples.
            They are copied: changing the array afterwards does not change what is handed out.
            A NumPy array's floats become float32, its integers int32 (they must fit) and its
            booleans bool, as in ``NDArray.from_numpy``.
        start: the index of the first example handed out (a non-negative int; taken modulo
            the number of examples).

    The examples are uploaded to a backend the first time it asks for a batch and stay there
    (one copy per backend) until ``dispose()``; each batch is one gather there. A Session gathers
    the batch inside its recorded step (``get_next_batch_rows``), so a replayed step moves only
    the row indices.

    Example:
        >>> provider = dl.InOrderInputProvider(np.array([[1, 2], [3, 4], [5, 6]]))
        >>> provider.get_next_batch(math, 2).numpy().tolist()
        [[1, 2], [3, 4]]
        >>> provider.get_next_batch(math, 2).numpy().tolist()  # wraps around
        [[5, 6], [1, 2]]
        >>> copy = provider.get_next_copy(math); copy.numpy().tolist()
        [3, 4]
        >>> provider.dispose_copy(math, copy)
    """

    def __init__(self, examples: Sequence[NDArray] | NDArray | Any, start: int = 0) -> None:
        where = "InOrderInputProvider"
        start = check_count(start, where, "start", minimum=0)
        host, dtype = _host_examples(examples, where)
        self._host = host
        self.dtype: DType = dtype
        """The examples' dtype."""
        self.num_examples: int = len(host)
        """How many examples there are (one pass over them hands each out once)."""
        self._position = start % self.num_examples  # the index of the next example
        # Per backend: the examples resident there, and the indices 0..n-1 twice over, so that
        # any batch of at most n examples is a slice of them (no upload per batch).
        self._resident: dict[Any, tuple[NDArray, Any]] = {}
        self._lock = threading.Lock()  # a draw reads and moves the position: one at a time

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example."""
        return tuple(self._host.shape[1:])

    @property
    def position(self) -> int:
        """The index of the example handed out next."""
        return self._position

    def get_next_copy(self, math: NDArrayMath) -> NDArray:
        """The next example, as a new NDArray on ``math``'s backend (release it with
        ``dispose_copy``)."""
        batch = self.get_next_batch(math, 1)
        copy = batch.reshape(self.example_shape)
        batch.dispose()  # the copy's view keeps the data; disposing the copy frees it
        return copy

    def dispose_copy(self, math: NDArrayMath, copy: NDArray) -> None:
        """Releases an array returned by ``get_next_copy``."""
        copy.dispose()

    def get_next_batch(self, math: NDArrayMath, batch_size: int) -> NDArray:
        """The next ``batch_size`` (>= 1) examples stacked along a new leading axis, gathered
        in one op."""
        where = "InOrderInputProvider.get_next_batch"
        batch_size = check_count(batch_size, where, "batch_size")
        with self._lock:
            examples, rows = self._rows(math, batch_size)
            try:
                batch = math.gather(examples, rows)
            finally:
                rows.dispose()
            self._move(batch_size)
        return batch

    def get_next_batch_rows(self, math: NDArrayMath, batch_size: int) -> tuple[NDArray, NDArray]:
        """The next ``batch_size`` examples as (the examples, resident on ``math``'s backend;
        the batch's int32 row indices among them), the position moved on as by
        ``get_next_batch``: ``math.gather(examples, indices)`` is the batch. The examples stay
        the provider's (do not dispose them); the indices are the caller's."""
        where = "InOrderInputProvider.get_next_batch_rows"
        batch_size = check_count(batch_size, where, "batch_size")
        with self._lock:
            drawn = self._rows(math, batch_size)
            self._move(batch_size)
        return drawn

    def dispose(self) -> None:
        """Frees the copies of the examples uploaded to backends (a later draw uploads again)."""
        with self._lock:
            for examples, _ in self._resident.values():
                examples.dispose()
            self._resident.clear()

    def _rows(self, math: NDArrayMath, batch_size: int) -> tuple[NDArray, NDArray]:
        """The examples on ``math``'s backend and the next ``batch_size`` row indices (a new
        NDArray); the position is left as it is."""
        examples, cycle = self._examples(math)
        n, start = self.num_examples, self._position
        if batch_size <= n:
            rows = cycle[start : start + batch_size]
        else:  # more than one pass in one batch: rare, so its indices are uploaded
            host = (np.arange(start, start + batch_size, dtype=np.int64) % n).astype(np.int32)
            rows = math.backend.asarray(host)
        return examples, math.engine.wrap(rows, "int32")

    def _move(self, count: int) -> None:
        self._position = (self._position + count) % self.num_examples

    def _examples(self, math: NDArrayMath) -> tuple[NDArray, Any]:
        """The examples resident on ``math``'s backend, and the raw cycle of row indices there."""
        backend = math.backend
        resident = self._resident.get(backend)
        if resident is None or resident[0].is_disposed:
            examples = NDArray.from_numpy(self._host, self.dtype, math=math)
            REGISTRY.keep(examples)  # the provider's until dispose(), whatever scope is open
            cycle = np.tile(np.arange(self.num_examples, dtype=np.int32), 2)
            resident = self._resident[backend] = (examples, backend.asarray(cycle))
        return resident

    def __repr__(self) -> str:
        return (
            f"<InOrderInputProvider of {self.num_examples} examples of shape {self.example_shape} "
            f"({self.dtype}), next {self._position}>"
        )


def _host_examples(examples: Any, where: str) -> tuple[np.ndarray, DType]:
    """``examples`` as a C-ordered host array with a leading example axis (a copy), and its
    dtype; the errors name ``where``."""
    if isinstance(examples, NDArray):
        examples._check_live(where)
        if examples.rank == 0:
            raise ShapeError(
                f"{where}: examples must have a first axis that indexes the examples; got a scalar "
                f"NDArray (shape ())."
            )
        host, dtype = examples.numpy(), examples.dtype
    elif isinstance(examples, (list, tuple)) and any(isinstance(e, NDArray) for e in examples):
        host, dtype = _stack_ndarrays(examples, where)
    else:
        host, dtype = _from_array_like(examples, where)
    if len(host) == 0:
        raise ValueError(f"{where}: examples must hold at least one example; got 0 (shape {host.shape}).")
    return np.array(host, dtype=util.numpy_dtype(dtype), order="C"), dtype  # a copy of our own


def _stack_ndarrays(examples: Sequence[Any], where: str) -> tuple[np.ndarray, DType]:
    first = examples[0]
    for j, e in enumerate(examples):
        if not isinstance(e, NDArray):
            raise TypeError(
                f"{where}: examples given as a list must all be NDArrays; got {type(e).__name__} "
                f"at index {j}."
            )
        e._check_live(where)
        if e.shape != first.shape:
            raise ShapeError(
                f"{where}: every example must have one shape; got {first.shape} (example 0) and "
                f"{e.shape} (example {j})."
            )
        if e.dtype != first.dtype:
            raise DTypeError(
                f"{where}: every example must have one dtype; got {first.dtype} (example 0) and "
                f"{e.dtype} (example {j})."
            )
    return np.stack([e.numpy() for e in examples]), first.dtype


def _from_array_like(examples: Any, where: str) -> tuple[np.ndarray, DType]:
    if examples is None or isinstance(examples, (str, bytes, dict, set)):
        raise TypeError(
            f"{where}: examples must be a list of NDArrays or an array whose first axis indexes "
            f"the examples; got {type(examples).__name__}."
        )
    try:
        host = np.asarray(examples)
    except ValueError as e:  # ragged nesting
        raise ShapeError(
            f"{where}: examples must form a rectangular array; got {examples!r:.80} ({e})."
        ) from e
    kind = host.dtype.kind
    if kind not in "biuf":
        raise DTypeError(
            f"{where}: examples must be real numbers or booleans; got values of dtype {host.dtype}."
        )
    if host.ndim == 0:
        raise ShapeError(
            f"{where}: examples must have a first axis that indexes the examples; got a scalar "
            f"({examples!r:.40})."
        )
    dtype: DType = "bool" if kind == "b" else "int32" if kind in "iu" else "float32"
    if dtype == "int32" and host.size and (host.min() < _INT32.min or host.max() > _INT32.max):
        raise ValueError(
            f"{where}: integer examples must fit in int32; got values from {host.min()} to {host.max()}."
        )
    return host, dtype
