"""TensorArrayMap and SummedTensorArrayMap: the values (and gradients) a Session holds per Tensor.

Holds no execution logic: the Session fills these maps; optimizers and tests read them. An entry
may be ``Pending``: an array made only when someone asks for it (a replayed Session step hands
out every tensor's value and gradient, and most are never read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from deeplearn.compile.materialize import Pending, resolve

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["Pending", "SummedTensorArrayMap", "TensorArrayMap", "resolve"]


class TensorArrayMap:
    """A mapping Tensor -> NDArray (keyed by tensor identity).

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [])
        >>> m = TensorArrayMap()
        >>> m.set(x, Scalar.new(2))
        >>> m.get(x).get(), m.has(x), len(m)
        (2.0, True, 1)
    """

    def __init__(self) -> None:
        self._entries: dict[Tensor, NDArray | Pending] = {}
        # (fill, args) of fill_later, one attribute: a reader in another thread sees both or neither.
        self._fill: tuple[Callable[..., None], tuple[Any, ...]] | None = None

    @property
    def _dict(self) -> dict[Tensor, NDArray | Pending]:
        """The entries, once ``fill_later``'s function has made them."""
        pending = self._fill
        if pending is not None:
            self._fill = None
            fill, args = pending
            fill(*args, self)
        return self._entries

    def fill_later(self, fill: Callable[..., None], *args: Any) -> None:
        """Empties the map; its entries are ``fill(*args, self)``'s, made when it is first used
        (a compiled Session step hands out every tensor's value and gradient, and most runs
        nobody looks)."""
        self._entries.clear()
        self._fill = (fill, args)

    def fills_from(self, source: Any) -> bool:
        """Whether the map's entries are still to be made by ``fill_later``'s function, whose
        first argument was ``source``: nobody has read or changed the map since."""
        pending = self._fill
        return pending is not None and pending[1][0] is source

    def take_pending(self, source: Any) -> Any:
        """When ``fills_from(source)``: empties the map (its entries were never made, so
        there is nothing to dispose) and returns what ``fill_later`` was given, which
        ``put_pending`` puts back; else None, the map as it was. (A training loop's Session
        empties its maps before each compiled run and fills them again from the same source
        after it: two calls where ``fills_from``, ``dispose`` and ``fill_later`` make three.)

        Example:
            >>> m = TensorArrayMap(); source = object()
            >>> m.fill_later(lambda source, the_map: the_map.set("t", Scalar.new(1)), source)
            >>> pending = m.take_pending(source); len(m)
            0
            >>> m.put_pending(pending); m.get("t").get()
            1.0
        """
        pending = self._fill
        if pending is None or pending[1][0] is not source:
            return None
        self._fill = None  # (its entries are empty: fill_later emptied them, nobody made any)
        return pending

    def put_pending(self, pending: Any) -> None:
        """Makes the map's entries ``pending``'s again (``take_pending``), to be made if read."""
        self._entries.clear()
        self._fill = pending

    def set(self, tensor: Tensor, array: NDArray | Pending) -> None:
        """Maps ``tensor`` to ``array`` (replacing any previous array, which is not disposed);
        a Pending array is made when first read."""
        self._dict[tensor] = array

    def set_all(self, entries: Mapping[Tensor, NDArray | Pending]) -> None:
        """``set`` for each of ``entries``."""
        self._dict.update(entries)

    def get(self, tensor: Tensor, skip_checks_for_tests: bool = False) -> NDArray:
        """The array of ``tensor``; raises KeyError naming the tensor when there is none."""
        try:
            value = self._dict[tensor]
        except KeyError:
            raise KeyError(f"TensorArrayMap.get: no array for {tensor!r}.") from None
        return self._made(tensor, value)

    def get_or_none(self, tensor: Tensor) -> NDArray | None:
        value = self._dict.get(tensor)
        return None if value is None else self._made(tensor, value)

    def entries(self) -> list[tuple[Tensor, NDArray | Pending]]:
        """The entries as stored: Pending arrays stay unmade."""
        return list(self._dict.items())

    def _made(self, tensor: Tensor, value: NDArray | Pending) -> NDArray:
        if type(value) is not Pending:
            return value  # type: ignore[return-value]
        made = value.make()
        if self._dict.get(tensor) is value:  # not if the map was cleared meanwhile (another thread)
            self._dict[tensor] = made
        return made

    def has(self, tensor: Tensor) -> bool:
        return tensor in self._dict

    def delete(self, tensor: Tensor) -> None:
        self._dict.pop(tensor, None)

    def size(self) -> int:
        return len(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __contains__(self, tensor: object) -> bool:
        return tensor in self._dict

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._dict)

    def items(self) -> list[tuple[Tensor, NDArray]]:
        return [(t, self._made(t, v)) for t, v in list(self._dict.items())]

    def clear(self) -> None:
        """Forgets every entry without disposing anything."""
        self._fill = None
        self._entries.clear()

    def dispose(self) -> None:
        """Disposes every array in the map (Pending ones were never made) and empties it."""
        self._fill = None  # never made: nothing to dispose
        entries = self._entries
        if entries:  # (mostly not: a compiled Session step fills its maps later, if asked)
            for array in entries.values():
                if type(array) is not Pending and not array.is_disposed:  # type: ignore[union-attr]
                    array.dispose()  # type: ignore[union-attr]
            entries.clear()


class SummedTensorArrayMap(TensorArrayMap):
    """A TensorArrayMap whose ``add`` sums: the gradient of a tensor used by several nodes is the
    sum of what each consumer sends back.

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [])
        >>> m = SummedTensorArrayMap(math)
        >>> m.add(x, Scalar.new(2)); m.add(x, Scalar.new(3))
        >>> m.get(x).get()
        5.0
    """

    def __init__(self, math: NDArrayMath) -> None:
        super().__init__()
        self.math = math

    def add(self, tensor: Tensor, array: NDArray) -> None:
        """Adds ``array`` to the sum held for ``tensor`` (the first call just stores it)."""
        old = self.get_or_none(tensor)
        self._dict[tensor] = array if old is None else self.math.add(old, array)
