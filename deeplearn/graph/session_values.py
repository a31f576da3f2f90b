"""What a Session call reads and leaves behind: the values of variables and constants on the
Session's backend, a variable's new value, and the arrays kept for inspection until the next call
(``activation_array_map``, ``gradient_array_map``), including those that live in a captured CUDA
graph's memory. The base of ``Session`` (``deeplearn/graph/session.py``), which holds the state."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from deeplearn.compile.materialize import Materializer, Pending
from deeplearn.graph.graph import Node, PlaceholderNode, Tensor, VariableNode
from deeplearn.graph.tensor_array_map import SummedTensorArrayMap, TensorArrayMap
from deeplearn.math.ndarray import NDArray, Storage
from deeplearn.types import DisposedError

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["SessionValues"]

NOTHING: frozenset[int] = frozenset()


class SessionValues:
    """The values a Session call reads (``_input_value``) and writes (``_assign``), and what it
    keeps for inspection (``_retain``, ``_release_retained``)."""

    math: NDArrayMath
    activation_array_map: TensorArrayMap
    gradient_array_map: SummedTensorArrayMap
    _converted: dict[Tensor, NDArray]  # constants copied to this math's backend
    # The arrays of the last call when it ran compiled (they live in its memory:
    # _release_retained), else None.
    _borrowed: Materializer | None
    _owned: set[int] | frozenset[int]  # see _retain
    _lent: list[weakref.ref[Storage]]  # returned costs in a captured graph's memory

    def _input_value(self, node: Node, where: str) -> NDArray:
        live: NDArray | None = getattr(node, "data", None)
        if (
            live is not None
            and not live._disposed
            and live.storage.data is not None
            and live.storage.backend is self.math.backend
        ):
            return live  # the usual case: live, on this backend
        if isinstance(node, PlaceholderNode):  # a plan never keeps an unfed placeholder
            raise AssertionError(f"{where}: placeholder {node.name!r} has no value.")  # noqa: TRY004
        data: NDArray = node.data  # type: ignore[attr-defined]
        if data.is_disposed:
            kind = "variable" if isinstance(node, VariableNode) else "constant"
            raise DisposedError(
                f"{where}: the data of {kind} {node.name!r} is disposed; was it created inside a "
                f"math.scope that has ended? Create it outside, or keep() it."
            )
        if data.backend is self.math.backend:
            return data
        if isinstance(node, VariableNode):  # move it once; the copy belongs to the graph
            node.data, node.owns_data = (
                self.math.keep(
                    NDArray._wrap(self.math.backend.asarray(data.numpy()), self.math.backend, data.dtype)
                ),
                True,
            )
            return node.data
        converted = self._converted.get(node.output)
        if converted is None:
            converted = self.math.keep(
                NDArray._wrap(self.math.backend.asarray(data.numpy()), self.math.backend, data.dtype)
            )
            self._converted[node.output] = converted
        return converted

    def _assign(self, variable: Tensor, value: NDArray, untracked: bool = False) -> None:
        """Makes ``value`` the variable's data; the graph owns it from now on. ``untracked``:
        no scope tracks ``value`` (a Program's result), so there is nothing to keep it from."""
        node = variable.node
        assert isinstance(node, VariableNode)
        old, owned = node.data, node.owns_data
        if old is value:
            return  # updated in place (a captured step): already the graph's
        node.data, node.owns_data = value if untracked else self.math.keep(value), True
        if owned and old is not value:
            old.dispose()

    # -- what a call leaves for inspection -------------------------------------------------
    def _retain(
        self, values: Mapping[Tensor, NDArray | Pending], gradients: SummedTensorArrayMap | None
    ) -> None:
        # Views that no scope tracks: the maps own them until the next call. A replayed
        # inference call's arrays are untracked already (made.owned), and its Pending ones are
        # made untracked: they go in as they are. (A replayed training call fills the maps
        # itself: fill_later; the gradients here are an eager call's, all made.)
        owned, self._owned = self._owned, NOTHING
        entries: dict[Tensor, NDArray | Pending] = {}
        for t, v in values.items():
            if type(v) is Pending or id(v) in owned:
                entries[t] = v
            elif not v.is_disposed:  # type: ignore[union-attr]
                entries[t] = v._view(tracked=False)  # type: ignore[union-attr]
        self.activation_array_map.set_all(entries)  # (one call: an eval's host time)
        if gradients is not None:
            for t, g in gradients.items():
                self.gradient_array_map.set(t, g._view(tracked=False))

    def _release_retained(self) -> None:
        self._owned = NOTHING
        self.activation_array_map.dispose()
        self.gradient_array_map.dispose()
        lent = self._lent
        if lent:
            self._lent = []
            for ref in lent:  # a returned cost that someone still holds: its own copy, as above
                storage = ref()
                if storage is not None and storage.data is not None and storage.refs > 0:
                    storage.data = storage.data.copy()
        made, self._borrowed = self._borrowed, None
        if made is not None and made.made:
            # The last call was a captured graph's, whose next launch overwrites the memory its
            # values live in. A view of one that someone still holds (the maps' own arrays are
            # disposed by now) gets a copy, as it would have kept its values after an eager call.
            for x in made.made.values():
                storage = x.storage
                if storage.data is not None and storage.refs > 0:
                    storage.data = storage.data.copy()
