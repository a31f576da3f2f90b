"""InputProvider and the in-memory shuffled provider builders (the seed's training data path).

An InputProvider hands out one example per ``get_next_copy`` (deeplearn.js's interface) and, for
batched training, ``get_next_batch``: ``batch_size`` examples stacked along a leading axis. The
builders keep their providers paired — provider i's k-th example always belongs with provider
j's k-th example — and reshuffle at every epoch.
"""

from __future__ import annotations

import abc
import itertools
import operator
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.compile.rows import RowSpan
from deeplearn.math.ndarray import NDArray
from deeplearn.math.scope import REGISTRY
from deeplearn.types import DType, DTypeError, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = [
    "InCPUMemoryShuffledInputProviderBuilder",
    "InGPUMemoryShuffledInputProviderBuilder",
    "InMemoryShuffledInputProviderBuilder",
    "InputProvider",
    "check_count",
    "next_batch",
    "next_batch_rows",
]


def check_count(value: Any, where: str, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is a whole count of at least ``minimum``, else a ValueError.

    ints and NumPy integers pass; bools, floats (2.0 too: a count is never a measurement),
    strings and None do not. Callers check before they change any state, so a refused count
    leaves a provider or runner exactly as it was.

    Example:
        >>> check_count(3, "Thing.draw", "count")
        3
        >>> check_count(-1, "Thing.draw", "count")
        Traceback (most recent call last):
        ValueError: Thing.draw: count must be a positive int; got count=-1.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < minimum:
        what = (
            "a positive int"
            if minimum == 1
            else "a non-negative int"
            if minimum == 0
            else f"an int >= {minimum}"
        )
        raise ValueError(f"{where}: {name} must be {what}; got {name}={value!r}.")
    return int(value)


class InputProvider(abc.ABC):
    """A source of examples for one Tensor.

    Subclasses implement ``get_next_copy`` and ``dispose_copy``; ``get_next_batch`` stacks
    copies unless overridden with something faster. Any object with ``get_next_copy`` and
    ``dispose_copy`` counts as an InputProvider (``isinstance`` checks the methods).

    Example:
        >>> class Twos(dl.InputProvider):
        ...     def get_next_copy(self, math): return Array1D.new([2, 4], math=math)
        ...     def dispose_copy(self, math, copy): copy.dispose()
        >>> Twos().get_next_batch(math, 3).shape
        (3, 2)
    """

    @abc.abstractmethod
    def get_next_copy(self, math: NDArrayMath) -> NDArray:
        """The next example, as a new NDArray on ``math``'s backend."""

    @abc.abstractmethod
    def dispose_copy(self, math: NDArrayMath, copy: NDArray) -> None:
        """Releases an array returned by ``get_next_copy``."""

    def get_next_batch(self, math: NDArrayMath, batch_size: int) -> NDArray:
        """The next ``batch_size`` (>= 1) examples stacked along a new leading axis."""
        batch_size = check_count(batch_size, f"{type(self).__name__}.get_next_batch", "batch_size")
        return _stack_copies(self, math, batch_size)

    @classmethod
    def __subclasshook__(cls, other: type) -> bool | Any:
        methods = ("get_next_copy", "dispose_copy")
        if cls is InputProvider and all(any(m in base.__dict__ for base in other.__mro__) for m in methods):
            return True
        return NotImplemented


def _stack_copies(provider: Any, math: NDArrayMath, batch_size: int) -> NDArray:
    """``batch_size`` copies from ``provider`` stacked on the host (the generic path)."""
    copies = [provider.get_next_copy(math) for _ in range(batch_size)]
    try:
        host = np.stack([c.numpy() for c in copies])
        dtype = copies[0].dtype
    finally:
        for c in copies:
            provider.dispose_copy(math, c)
    if host.dtype != util.numpy_dtype(dtype):  # copies of mixed dtypes: convert as make() does
        return NDArray.make(host.shape, host, dtype, math=math)
    return math.engine.wrap(math.backend.asarray(host), dtype)  # the stacked array is the batch


def next_batch(provider: Any, math: NDArrayMath, batch_size: int) -> NDArray:
    """``provider.get_next_batch`` when it has one, else ``batch_size`` stacked copies (for
    providers written against deeplearn.js's two-method interface). ``batch_size`` is checked
    first: a provider of someone else's making may not check it before it moves on."""
    batch_size = check_count(batch_size, "next_batch", "batch_size")
    get = getattr(provider, "get_next_batch", None)
    return get(math, batch_size) if get is not None else _stack_copies(provider, math, batch_size)


def next_batch_rows(provider: Any, math: NDArrayMath, batch_size: int) -> tuple[NDArray, NDArray] | None:
    """The next ``batch_size`` examples of ``provider`` as (its examples, resident on
    ``math``'s backend; the int32 indices of the batch's rows among them), the provider's
    position moved on as by ``get_next_batch``: ``math.gather(examples, indices)`` is the
    batch. None, having drawn nothing, for a provider whose examples are not resident there.

    A Session gathers the batch inside its recorded step, so a captured step moves only the
    indices, not the batch."""
    draw = getattr(provider, "get_next_batch_rows", None)
    return draw(math, check_count(batch_size, "next_batch_rows", "batch_size")) if draw is not None else None


_EPOCHS_AHEAD = 64  # a builder draws (and a GPU builder uploads) the orders of up to this many epochs at once
_ORDERS_AHEAD = 1 << 16  # and of at most this many examples in all


def _forget_stale(orders: dict[Any, Any], in_use: set[int], epoch_of: Callable[[Any], int]) -> None:
    """Drops from ``orders`` (epoch orders, by a key ``epoch_of`` reads the epoch from) those of
    the epochs no provider is in, except the ones drawn ahead of the leading provider."""
    first, last = min(in_use), max(in_use)
    if first == last and len(orders) <= 2 * _EPOCHS_AHEAD:
        # Providers in step (the usual case, at every epoch's end): orders are made in rising
        # epochs, so those behind the providers come first in the dict.
        for key in list(itertools.takewhile(lambda k: epoch_of(k) < first, orders)):
            del orders[key]
        return
    for key in [
        k for k in orders if epoch_of(k) not in in_use and not last < epoch_of(k) < last + _EPOCHS_AHEAD
    ]:
        del orders[key]


class InMemoryShuffledInputProviderBuilder(abc.ABC):
    """Builds one InputProvider per input over examples held in memory, shuffled together.

    Args:
        inputs: one entry per input: a list of NDArrays (one per example, all of one shape), or
            an array (NDArray or NumPy) whose leading axis indexes the examples.
        seed: seeds the shuffling (a non-negative int; None: a fresh random order every run).

    Pairing holds by construction: each provider keeps its own position, and every position
    maps to an example through one order per epoch that all providers share (a function of the
    seed and the epoch number only). So the k-th example any provider returns is the same
    example for all of them, however their calls interleave and whatever batch sizes they ask
    for: draw the same counts from every provider (as ``Session.train`` does) and their batches
    pair. A provider that draws more than the others (an extra ``get_next_copy``, inference on a
    training provider) is ahead by those examples until the others draw as many; its batches
    then pair with the others' later batches, not with their batches of the same step.

    The order is reshuffled at every epoch; deeplearn.js shuffled once at construction and then
    repeated that order (docs/design.md §4).
    """

    _spans = False
    """Whether ``_held_span`` may give a RowSpan (asked only then: a draw runs every step)."""

    def __init__(self, inputs: Sequence[Any], seed: int | None = None) -> None:
        where = type(self).__name__
        if seed is not None:
            check_count(seed, where, "seed", minimum=0)
        if len(inputs) == 0:
            raise ValueError(f"{where}: inputs must hold at least one input; got an empty list.")
        stacks = [_stack_input(x, i, where) for i, x in enumerate(inputs)]
        counts = [len(s) for s, _ in stacks]
        if len(set(counts)) != 1:
            raise ShapeError(f"{where}: every input must have the same number of examples; got {counts}.")
        if counts[0] == 0:
            raise ValueError(f"{where}: inputs must hold at least one example; got 0 examples.")
        self.num_examples = counts[0]
        self._host = [s for s, _ in stacks]
        self._dtypes = [d for _, d in stacks]
        # Epoch e's order is an argsort of the n uniform draws at position e*n of one random
        # stream: it can be computed for any epoch, alone or with its neighbours in one
        # vectorised call, and is the same whichever provider asks first.
        self._bits = np.random.PCG64(None if seed is None else int(seed))
        self._start_state = self._bits.state
        self._keys = np.random.Generator(self._bits)
        self._stream_epoch = 0  # the epoch whose draws the stream is at
        self._orders: dict[int, np.ndarray] = {}  # the orders of the epochs in use and drawn ahead
        self._positions = [0] * len(inputs)
        # The last indices drawn for one provider alone: (start, count, backend, span), indices
        self._drawn_alone: tuple[tuple[int, int, Any, bool], Any] | None = None
        # How many epochs' orders one draw makes (and how many are held before a look for
        # finished ones): a block of about _ORDERS_AHEAD indices, at most _EPOCHS_AHEAD epochs.
        self._block_epochs = max(1, min(_EPOCHS_AHEAD, _ORDERS_AHEAD // self.num_examples))
        self._lock = threading.RLock()  # a draw reads and moves a position: one at a time
        self._providers = [_BuilderProvider(self, i) for i in range(len(inputs))]

    def get_input_providers(self) -> list[InputProvider]:
        """One provider per input, in the order of ``inputs`` (the same objects every call)."""
        return list(self._providers)

    def get_epoch(self) -> int:
        """How many full passes over the examples every provider has completed."""
        return min(self._positions) // self.num_examples

    def example_shape(self, input_index: int) -> tuple[int, ...]:
        """The shape of one example of input ``input_index``."""
        where = f"{type(self).__name__}.example_shape"
        index = check_count(input_index, where, "input_index", minimum=0)
        if index >= len(self._host):
            raise ValueError(
                f"{where}: input_index must be in [0, {len(self._host)}); got input_index={input_index!r}."
            )
        return tuple(self._host[index].shape[1:])

    def _draw(self, math: NDArrayMath, input_index: int, count: int) -> NDArray:
        """The next ``count`` examples of input ``input_index``; its position moves only once
        the batch exists, so a draw that fails leaves the providers paired."""
        with self._lock:
            batch = self._gather(math, input_index, self._batch_indices(math, input_index, count))
            self._move(input_index, count)
            return batch

    def _draw_rows(self, math: NDArrayMath, input_index: int, count: int) -> tuple[NDArray, NDArray] | None:
        """The next ``count`` examples of input ``input_index`` as (the examples resident on
        ``math``'s backend, the batch's int32 row indices): see ``next_batch_rows``."""
        with self._lock:
            examples = self._examples(math, input_index)
            if examples is None:
                return None
            indices = self._draw_indices(math, input_index, count, examples)
            return examples, math.engine.wrap(indices, "int32")  # the caller's, like a batch

    def _draw_indices(self, math: NDArrayMath, input_index: int, count: int, examples: NDArray) -> Any:
        """The next ``count`` row indices of input ``input_index`` into ``examples`` (a backend
        array), the position moved on; None, having drawn nothing, where the examples resident
        on ``math``'s backend are no longer ``examples`` (disposed, uploaded again).

        What a Session running its last training step again asks for: it binds the examples
        it read last time and copies in only the indices."""
        drawn = self._draw_indices_together(math, [(input_index, examples)], count)
        return None if drawn is None else drawn[0]

    def _draw_indices_together(
        self, math: NDArrayMath, inputs: Sequence[tuple[int, NDArray]], count: int, span: bool = False
    ) -> list[Any] | None:
        """``_draw_indices`` for each of ``inputs`` ((input index, its examples)), but for
        providers in step (the inputs of one training call) one array for all, drawn once;
        None, having drawn nothing, where one's examples are no longer resident. With
        ``span``, indices already on the backend may come as a ``RowSpan`` of the array they
        are in (``deeplearn/compile/rows.py``: what a captured step reads where it is)."""
        with self._lock:
            if not self._hold(math, inputs):
                return None
            positions = self._positions
            start = positions[inputs[0][0]]
            in_step = True
            for index, _ in inputs:  # (loops, not all() and generators: a step's host time)
                if positions[index] != start:
                    in_step = False
            if not in_step:
                drawn = [self._indices_on(math, index, count) for index, _ in inputs]
                for index, _ in inputs:  # (a position's indices depend on no other: moved after)
                    self._move(index, count)
                return drawn
            # In step: one draw, and one look for finished epochs (as _move, for all at once).
            n = self.num_examples
            end = start + count
            epoch, offset = divmod(start, n)
            alone = self._drawn_alone
            if len(inputs) == 1 and alone is not None and alone[0] == (start, count, math.backend, span):
                # Paired providers drawn one after the other (a Session's first call): the
                # indices the other drew, the same array, which a captured step binds once.
                indices = alone[1]
            else:
                indices = self._held_span(math, start, count) if span and self._spans else None
                if indices is None:
                    # Within one epoch whose order is held on the math's backend: _indices_on's
                    # slice of it, taken here (the calls down to it cost more than the slice).
                    order = self._held_order(math, epoch) if 0 < count <= n - offset else None
                    if order is not None:
                        indices = order if count == n else order[offset : offset + count]
                    else:
                        indices = self._indices_on(math, inputs[0][0], count)
                self._drawn_alone = (
                    ((start, count, math.backend, span), indices) if len(inputs) == 1 else None
                )
            for index, _ in inputs:
                positions[index] = end
            if epoch != end // n:
                self._forget_unused_epochs()
            return [indices] * len(inputs)

    def _hold(self, math: NDArrayMath, inputs: Sequence[tuple[int, NDArray]]) -> bool:
        """Whether each of ``inputs`` ((input index, examples)) is still that input's examples
        resident on ``math``'s backend (not disposed, not uploaded again): what
        ``_draw_indices_together`` checks before it draws, and a caller drawing from several
        builders checks of all of them before any draws.

        An input's examples stay the ones resident until they are disposed (``_examples``
        makes new ones only then; ``dispose`` disposes them), so a look at each is enough,
        with no lookup: this runs every training step."""
        for _, examples in inputs:
            if examples._disposed or examples.storage.data is None:
                return False
        return True

    def _held_order(self, math: NDArrayMath, epoch: int) -> Any:
        """Epoch ``epoch``'s order as ``_indices_on`` slices it for ``math``'s backend, if it is
        held already; else None (then ``_indices_on`` makes it). Here: the host order, for the
        CPU (on another backend ``_indices_on`` copies a batch's slice of it)."""
        return self._orders.get(epoch) if math.backend.name == "cpu" else None

    def _held_span(self, math: NDArrayMath, start: int, count: int) -> RowSpan | None:
        """The ``count`` row indices from position ``start`` as a RowSpan of an array held on
        ``math``'s backend, or None where they are not one (here: never)."""
        return None

    def _indices_on(self, math: NDArrayMath, input_index: int, count: int) -> Any:
        """The next ``count`` row indices of input ``input_index``, on ``math``'s backend."""
        indices = self._batch_indices(math, input_index, count)
        if isinstance(indices, np.ndarray) and math.backend.name != "cpu":  # across epochs
            indices = math.backend.asarray(indices)
        return indices

    def _move(self, input_index: int, count: int) -> None:
        """Moves provider ``input_index`` on by ``count`` examples, dropping the epoch orders
        no provider needs any more when it leaves an epoch."""
        n = self.num_examples
        start = self._positions[input_index]
        self._positions[input_index] = start + count
        if start // n != (start + count) // n:
            self._forget_unused_epochs()

    def _examples(self, math: NDArrayMath, input_index: int) -> NDArray | None:
        """Input ``input_index``'s examples, resident on ``math``'s backend, or None where they
        are not (a subclass that keeps them elsewhere)."""
        return None

    def _next_indices(self, input_index: int, count: int, order: Callable[[int], Any] | None = None) -> Any:
        """The next ``count`` example indices of provider ``input_index`` (across epochs); the
        position is left as it is (``_draw`` moves it).

        ``order(epoch)``, when given, is the epoch's order as the caller wants it (a copy on the
        GPU): a batch within one epoch is a slice of it. Otherwise, and for a batch that spans
        epochs, a host array.
        """
        n = self.num_examples
        start = self._positions[input_index]
        first, offset = divmod(start, n)
        last = (start + count - 1) // n
        if first == last:
            whole = self._order(first) if order is None else order(first)
            return whole if count == n else whole[offset : offset + count]  # (a slice costs a GPU array)
        # Across epochs: the first and last (partial) epochs' orders, kept for the providers
        # in them, and the whole epochs between in one vectorised call, so the cost is linear
        # in count (one permutation per epoch crossed, however large the batch).
        whole = self._draw_orders(first + 1, last - first - 1)
        rows = np.concatenate([self._order(first)[None], whole, self._order(last)[None]])
        return rows.reshape(-1)[offset : offset + count]

    def _order(self, epoch: int) -> np.ndarray:
        order = self._orders.get(epoch)
        if order is None:
            # The next epochs' orders too, in one vectorised call: with few examples an epoch is
            # a batch or two, and a call per epoch would cost more host time than the step.
            count = self._block_epochs
            block = self._draw_orders(epoch, count)
            for k in range(count):
                self._orders.setdefault(epoch + k, block[k])
            order = self._orders[epoch]
        return order

    def _draw_orders(self, first_epoch: int, count: int) -> np.ndarray:
        """The orders of epochs ``first_epoch`` .. ``first_epoch + count - 1``, one per row."""
        n = self.num_examples
        if first_epoch != self._stream_epoch:  # not where the last draw left the stream
            self._bits.state = self._start_state
            self._bits.advance(first_epoch * n)  # skip the draws of the epochs before
        keys = self._keys.random((count, n))
        self._stream_epoch = first_epoch + count  # one 64-bit draw per key: the next epoch's start
        # A uniform permutation per row (ties between 53-bit keys: ~n²/2⁵⁴, and harmless), as
        # int32: what math.gather takes.
        return np.argsort(keys, axis=1).astype(np.int32)

    def _forget_unused_epochs(self) -> None:
        """Drops the orders of the epochs no provider is in, but those drawn ahead of the
        leading one, once more than a block of them (``_block_epochs``) is held: one per
        provider and at most a block ahead are kept, however far one provider runs ahead of
        another (a dropped order is computed again, the same, if a lagging provider reaches
        its epoch)."""
        block = self._block_epochs  # (one epoch where epochs are large)
        if len(self._orders) <= block and self._epochs_held() <= block:
            return  # a block's worth at most: not worth a look (most epochs' ends, when batches are epochs)
        in_use = {p // self.num_examples for p in self._positions}
        _forget_stale(self._orders, in_use, int)
        self._forget_epochs_except(in_use)

    def _epochs_held(self) -> int:
        """How many epochs' orders a subclass keeps (GPU copies)."""
        return 0

    def _forget_epochs_except(self, in_use: set[int]) -> None:
        """Drops what a subclass keeps for the epochs not in ``in_use`` (a GPU copy of the order)."""

    def _batch_indices(self, math: NDArrayMath, input_index: int, count: int) -> Any:
        """The next batch's example indices, as ``_gather`` takes them (host indices here)."""
        return self._next_indices(input_index, count)

    @abc.abstractmethod
    def _gather(self, math: NDArrayMath, input_index: int, indices: np.ndarray) -> NDArray:
        """The examples at ``indices`` of input ``input_index``, stacked, on ``math``'s backend."""


class _BuilderProvider(InputProvider):
    """The provider of one input of a builder."""

    def __init__(self, builder: InMemoryShuffledInputProviderBuilder, input_index: int) -> None:
        self.builder = builder
        self.input_index = input_index

    def get_next_copy(self, math: NDArrayMath) -> NDArray:
        batch = self.builder._draw(math, self.input_index, 1)
        return batch.reshape(batch.shape[1:])

    def dispose_copy(self, math: NDArrayMath, copy: NDArray) -> None:
        copy.dispose()

    def get_next_batch(self, math: NDArrayMath, batch_size: int) -> NDArray:
        """The next ``batch_size`` (>= 1) examples of this input, stacked."""
        # The name users know from deeplearn.js: InCPUMemoryShuffledInputProvider.
        where = f"{type(self.builder).__name__.removesuffix('Builder')}.get_next_batch"
        return self.builder._draw(math, self.input_index, check_count(batch_size, where, "batch_size"))

    def get_next_batch_rows(self, math: NDArrayMath, batch_size: int) -> tuple[NDArray, NDArray] | None:
        """The next ``batch_size`` (>= 1) examples as (examples, row indices): see
        ``next_batch_rows``."""
        where = f"{type(self.builder).__name__.removesuffix('Builder')}.get_next_batch_rows"
        return self.builder._draw_rows(math, self.input_index, check_count(batch_size, where, "batch_size"))

    def __repr__(self) -> str:
        return f"<InputProvider {self.input_index} of {type(self.builder).__name__}>"


class InCPUMemoryShuffledInputProviderBuilder(InMemoryShuffledInputProviderBuilder):
    """Shuffled providers over examples kept in host memory; each batch is copied to the math's
    backend when asked for.

    Example:
        >>> xs = [Scalar.new(v) for v in (1, 2, 3)]
        >>> ys = [Scalar.new(10 * v) for v in (1, 2, 3)]
        >>> x_provider, y_provider = dl.InCPUMemoryShuffledInputProviderBuilder([xs, ys], seed=0).get_input_providers()
        >>> x = x_provider.get_next_batch(math, 3); y = y_provider.get_next_batch(math, 3)
        >>> bool((y.get_values() == 10 * x.get_values()).all())
        True
    """

    def __init__(self, inputs: Sequence[Any], seed: int | None = None) -> None:
        super().__init__(inputs, seed)
        self._on_cpu: dict[tuple[int, Any], NDArray] = {}  # (input, backend) -> its examples there

    def _examples(self, math: NDArrayMath, input_index: int) -> NDArray | None:
        # On the CPU the host copy is the backend's memory: an array over it, nothing copied.
        if math.backend.name != "cpu":
            return None
        key = (input_index, math.backend)
        data = self._on_cpu.get(key)
        if data is None or data.is_disposed:  # someone disposed the examples handed out: again
            dtype: DType = self._dtypes[input_index]  # type: ignore[assignment]  # checked by _stack_input
            data = self._on_cpu[key] = NDArray._untracked(self._host[input_index], math.backend, dtype)
        return data

    def _gather(self, math: NDArrayMath, input_index: int, indices: np.ndarray) -> NDArray:
        # One gather into a fresh array that already has the input's dtype: it becomes the
        # batch's storage as is (CPU) or in one copy to the device.
        host = self._host[input_index][indices]
        return math.engine.wrap(math.backend.asarray(host), self._dtypes[input_index])


class InGPUMemoryShuffledInputProviderBuilder(InMemoryShuffledInputProviderBuilder):
    """Shuffled providers over examples uploaded once to the math's backend (GPU memory on
    CUDA); batches are gathered there.

    Example:
        >>> xs = [Array1D.new([v, v]) for v in (1, 2, 3)]
        >>> (p,) = dl.InGPUMemoryShuffledInputProviderBuilder([xs], seed=0).get_input_providers()
        >>> p.get_next_batch(math, 2).shape
        (2, 2)
    """

    _spans = True

    def __init__(self, inputs: Sequence[Any], seed: int | None = None) -> None:
        super().__init__(inputs, seed)
        self._resident: dict[tuple[int, int], NDArray] = {}
        # (epoch, backend) -> (its order there, the flat block of orders uploaded with it, where
        # the order starts in the block)
        self._device_orders: dict[tuple[int, Any], tuple[Any, Any, int]] = {}
        # ((position, count, backend), indices) of the last slice of an order handed out
        self._last_slice: tuple[tuple[int, int, Any], Any] | None = None

    def _batch_indices(self, math: NDArrayMath, input_index: int, count: int) -> Any:
        # A slice of the epoch's order, uploaded once per epoch: uploading each batch's indices
        # would make every batch wait for the GPU to finish its queued work. Paired providers
        # ask for the same slice in turn: it is made once.
        key = (self._positions[input_index], count, math.backend)
        last = self._last_slice
        if last is not None and last[0] == key:
            return last[1]
        indices = self._next_indices(input_index, count, lambda epoch: self._device_order(math, epoch))
        self._last_slice = (key, indices)
        return indices

    def _device_order(self, math: NDArrayMath, epoch: int) -> Any:
        return self._device_entry(math, epoch)[0]

    def _device_entry(self, math: NDArrayMath, epoch: int) -> tuple[Any, Any, int]:
        key = (epoch, math.backend)
        entry = self._device_orders.get(key)
        if entry is None:
            # The orders of the next epochs too, in one upload: with few examples an epoch is
            # a batch or two, and an upload per epoch would cost more host time than the step.
            # Drawn for the backend alone: the host keeps no copy of them (an order is the same
            # whoever draws it, so a batch across epochs draws its host orders again).
            count = self._block_epochs
            n = self.num_examples
            flat = math.backend.asarray(self._draw_orders(epoch, count).reshape(-1))
            for k in range(count):
                self._device_orders[(epoch + k, math.backend)] = (flat[k * n : (k + 1) * n], flat, k * n)
            entry = self._device_orders[key]
        return entry

    def _held_order(self, math: NDArrayMath, epoch: int) -> Any:
        # (its batches' indices are slices of its orders uploaded to the backend)
        entry = self._device_orders.get((epoch, math.backend))
        return None if entry is None else entry[0]

    def _held_span(self, math: NDArrayMath, start: int, count: int) -> RowSpan | None:
        # Where a captured step reads a RowSpan where it is (CUDA: ``reads_row_spans``): a run
        # of one uploaded block, across epochs too, since a block holds consecutive epochs'
        # orders end to end.
        if not getattr(math.backend, "reads_row_spans", False):
            return None
        n = self.num_examples
        first, last = start // n, (start + count - 1) // n
        _, flat, at = self._device_entry(math, first)
        if last != first:
            end = self._device_orders.get((last, math.backend))
            if end is None or end[1] is not flat:
                return None
        return RowSpan(flat, at + start - first * n, count)

    def _epochs_held(self) -> int:
        return len(self._device_orders)

    def _forget_epochs_except(self, in_use: set[int]) -> None:
        # Kept as on the host: the epochs some provider is in, and those uploaded ahead of the
        # leading one. A lagging provider gets its epoch's order again when it reaches it. The
        # last slice handed out may be a view of a block let go: not kept alive for a draw
        # that will not come again. (_drawn_alone is kept: the paired provider's draw, in the
        # same call, may be still to come; a draw for providers together lets it go.)
        _forget_stale(self._device_orders, in_use, operator.itemgetter(0))
        self._last_slice = None

    def _examples(self, math: NDArrayMath, input_index: int) -> NDArray:
        key = (input_index, id(math.backend))
        data = self._resident.get(key)
        if data is None or data.is_disposed:
            data = NDArray.make(
                self._host[input_index].shape, self._host[input_index], self._dtypes[input_index], math=math
            )
            REGISTRY.untrack_everywhere(data)  # resident for the builder's life, whatever scope is open
            self._resident[key] = data
        return data

    def _gather(self, math: NDArrayMath, input_index: int, indices: np.ndarray) -> NDArray:
        data = self._examples(math, input_index)
        # Data movement, not math: a gather of rows by index, on the backend (a registered
        # backend of someone else's making may not have one: then the array module's take).
        backend = math.backend
        gather = getattr(backend, "gather_rows", None)
        index = backend.asarray(indices)
        rows = gather(data.raw, index) if gather is not None else backend.xp.take(data.raw, index, axis=0)
        return math.engine.wrap(rows, self._dtypes[input_index])

    def dispose(self) -> None:
        """Frees the uploaded examples. A Session training step captured as a CUDA graph reads
        them where they are and keeps them until it is captured again (at its next call, over
        the examples uploaded anew) or the Session is disposed."""
        for data in self._resident.values():
            data.dispose()
        self._resident.clear()
        self._device_orders.clear()
        self._last_slice = None
        self._drawn_alone = None


def _stack_input(x: Any, index: int, where: str) -> tuple[np.ndarray, str]:
    """One input's examples as a host array with a leading example axis, and its dtype."""
    if isinstance(x, NDArray):
        return x.numpy(), x.dtype
    if isinstance(x, np.ndarray):
        dtype = "bool" if x.dtype == np.bool_ else "int32" if x.dtype.kind in "iu" else "float32"
        return x.astype(util.numpy_dtype(dtype)), dtype  # type: ignore[arg-type]
    examples = list(x)
    arrays = []
    for j, e in enumerate(examples):
        if not isinstance(e, NDArray):
            raise TypeError(
                f"{where}: input {index} must be a list of NDArrays or an array; got {e!r} at example {j}."
            )
        if e.shape != examples[0].shape:
            raise ShapeError(
                f"{where}: the examples of input {index} must all have one shape; got {examples[0].shape} "
                f"(example 0) and {e.shape} (example {j})."
            )
        if e.dtype != examples[0].dtype:
            raise DTypeError(
                f"{where}: the examples of input {index} must all have one dtype; got {examples[0].dtype} "
                f"(example 0) and {e.dtype} (example {j})."
            )
        arrays.append(e.numpy())
    if not arrays:
        return np.zeros((0,), np.float32), "float32"
    return np.stack(arrays), examples[0].dtype
