"""A backend's kernels by op class, looked up once: ``functools.singledispatch`` without its
per-call cost.

Each backend declares its kernels with ``singledispatch`` (``cpu_kernel``, ``cuda_kernel``):
one function per op class, the op's generic ``forward`` for the rest. Calling the dispatcher
looks the class up on every call, ~0.3 µs, which on small arrays is most of an eager op's host
time beside the library call. A ``KernelTable`` remembers each class's kernel in a dict and
forgets them all whenever a kernel is registered (registering later, as a test or a user's
extension may, takes effect at once), and tells the objects that ``watch`` it, so that what
they learnt from it (an Engine's direct kernels) is forgotten too.

Example:
    >>> import functools
    >>> @functools.singledispatch
    ... def kernel(op, *arrays): return "generic"
    >>> table = KernelTable(kernel)
    >>> (table.get(int) or table.learn(int))(0)
    'generic'
    >>> _ = kernel.register(int, lambda op, *arrays: "int's own")
    >>> (table.get(int) or table.learn(int))(0)
    "int's own"
"""

from __future__ import annotations

import weakref
from typing import Any, Protocol

__all__ = ["KernelTable"]


class KernelWatcher(Protocol):
    """What ``KernelTable.watch`` takes: told when the table's kernels change."""

    def kernels_changed(self) -> None: ...


class KernelTable:
    """The kernels of the singledispatch function ``kernel`` by op class (see the module
    docstring), as ``table.get(op_class) or table.learn(op_class)``: ``get`` is the table's
    dict's own (a C call, where a method of this class would add a Python one). It replaces
    ``kernel.register`` by a version that also clears the table."""

    __slots__ = ("_dispatch", "_kernels", "_watchers", "get")

    def __init__(self, kernel: Any) -> None:
        self._kernels: dict[type, Any] = {}
        self._watchers: weakref.WeakSet[Any] = weakref.WeakSet()  # (not kept alive for it)
        self.get = self._kernels.get  # (the same dict for good: cleared, never replaced)
        self._dispatch = kernel.dispatch
        register = kernel.register
        forget = self._forget

        def register_and_forget(cls: Any, func: Any = None) -> Any:
            registered = register(cls, func)
            forget()
            # @kernel.register(SomeOp) (or a union of classes) registers later, through the
            # decorator it returns; the other forms return what they registered.
            if func is None and registered is not cls:
                decorate = registered

                def register_then_forget(f: Any) -> Any:
                    out = decorate(f)
                    forget()
                    return out

                return register_then_forget
            return registered

        kernel.register = register_and_forget

    def watch(self, watcher: KernelWatcher) -> None:
        """Calls ``watcher.kernels_changed()`` whenever a kernel is registered, for as long as
        ``watcher`` lives (the table keeps a weak reference)."""
        self._watchers.add(watcher)

    def _forget(self) -> None:
        self._kernels.clear()
        for watcher in list(self._watchers):
            watcher.kernels_changed()

    def learn(self, op_class: type) -> Any:
        """The kernel of ``op_class`` (called as ``kernel(op, *arrays)``), remembered."""
        kernel = self._kernels[op_class] = self._dispatch(op_class)
        return kernel
