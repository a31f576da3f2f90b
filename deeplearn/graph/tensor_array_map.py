"""TensorArrayMap and SummedTensorArrayMap: the values (and gradients) a Session holds per Tensor.

Holds no execution logic: the Session fills these maps; optimizers and tests read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplearn.graph.graph import Tensor
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["SummedTensorArrayMap", "TensorArrayMap"]


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
        self._dict: dict[Tensor, NDArray] = {}

    def set(self, tensor: Tensor, array: NDArray) -> None:
        """Maps ``tensor`` to ``array`` (replacing any previous array, which is not disposed)."""
        self._dict[tensor] = array

    def get(self, tensor: Tensor, skip_checks_for_tests: bool = False) -> NDArray:
        """The array of ``tensor``; raises KeyError naming the tensor when there is none."""
        try:
            return self._dict[tensor]
        except KeyError:
            raise KeyError(f"TensorArrayMap.get: no array for {tensor!r}.") from None

    def get_or_none(self, tensor: Tensor) -> NDArray | None:
        return self._dict.get(tensor)

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
        return list(self._dict.items())

    def clear(self) -> None:
        """Forgets every entry without disposing anything."""
        self._dict.clear()

    def dispose(self) -> None:
        """Disposes every array in the map and empties it."""
        for array in self._dict.values():
            if not array.is_disposed:
                array.dispose()
        self._dict.clear()


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
        old = self._dict.get(tensor)
        self._dict[tensor] = array if old is None else self.math.add(old, array)
