"""The arrays a compiled training step keeps its variables and optimizer states in (and why a
step could not be compiled).

A compiled step (a CUDA graph, ``deeplearn/compile/cuda_graph.py``; a CPU step,
``deeplearn/compile/cpu_step.py``) writes each update into one array of its own per bound
value, the same array every call. The Session makes that array the variable's data (or the
optimizer state's), so the next call binds it again and nothing is copied in. Whoever holds it
when the step is given another value instead (the user set the variable) keeps its values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeplearn.math.ndarray import NDArray, Storage

if TYPE_CHECKING:
    from deeplearn.compile.program import Program
    from deeplearn.math.engine import Engine

__all__ = ["NotCaptured", "Resident"]


class NotCaptured:
    """Why a Program runs kernel by kernel rather than compiled (falsy, so ``if program.capture:``
    reads well)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NotCaptured({self.why!r})"


class Resident:
    """The resident arrays of a compiled step: ``inputs`` holds one backend array per binding
    (the step's own where it updates the binding). ``settled``: whether the last run's update
    targets were all their resident arrays already, so that the caller has nothing to hand
    back (the arrays it holds are the ones updated)."""

    program: Program
    engine: Engine
    inputs: list[Any]

    def __init__(self) -> None:
        self._resident: dict[int, NDArray] = {}
        self.settled = False

    def resident(self, index: int) -> NDArray:
        """An NDArray over binding ``index``'s array, the same one every call: what a variable
        or an optimizer state becomes, so that the next call copies nothing in."""
        x = self._resident.get(index)
        if x is None or x.storage.data is None:
            binding = self.program.bindings[index]
            x = self._resident[index] = NDArray._untracked(
                self.inputs[index], self.engine.backend, binding.dtype
            )
        return x

    def keep_views(self) -> None:
        """Before a run: views someone made of a resident NDArray (``w.node.data.reshape(...)``,
        which share its storage) keep the values they have now, as they do on the ordinary
        path, where each update is a new array: they get a copy, and the resident NDArray a
        storage of its own over the step's array. (A view is what raises a storage's
        reference count past one; the step's own reads make none.)"""
        for index, x in self._resident.items():
            storage = x.storage
            if storage.refs > 1 and storage.data is self.inputs[index]:
                own = Storage(storage.data, storage.backend)
                own.refs, x.storage = 1, own
                storage.refs -= 1
                storage.data = storage.data.copy()

    def _detach(self, index: int) -> None:
        """Binding ``index`` is given another value than its resident array (the user set a
        variable, another optimizer's state is bound): whoever still holds the resident array
        keeps its value, in memory of its own, before the array is overwritten."""
        x = self._resident.pop(index, None)
        if x is not None and x.storage.data is self.inputs[index]:
            x.storage.data = self.inputs[index].copy()
