"""NDArrayMath: the NumPy-like op set on one backend, plus memory scopes.

The op methods live with their ops, in the family mixins of ``deeplearn/math/ops/``; this class
composes them and owns the backend, the engine and the scope API.
"""

from __future__ import annotations

import functools
import inspect
from inspect import CO_VARARGS
import time
from types import FunctionType
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from deeplearn.math.backends import MathBackend, create_backend
from deeplearn.math.engine import SAFE_MODE_MESSAGE, Engine
from deeplearn.math.gradients import value_and_gradients
from deeplearn.math.ndarray import NDArray
from deeplearn.math.ops.arithmetic import ArithmeticMath
from deeplearn.math.ops.conv import ConvMath
from deeplearn.math.ops.costs import CostMath
from deeplearn.math.ops.elementwise import ElementwiseMath
from deeplearn.math.ops.image import ImageMath
from deeplearn.math.ops.layout import LayoutMath
from deeplearn.math.ops.linalg import LinalgMath
from deeplearn.math.ops.pool import PoolMath
from deeplearn.math.ops.random import RandomMath
from deeplearn.math.ops.reduction import ReductionMath
from deeplearn.math.ops.rnn import RNNMath
from deeplearn.math.scope import REGISTRY, Scope, flatten_result

__all__ = ["NDArrayMath", "NDArrayMathCPU", "NDArrayMathGPU"]

T = TypeVar("T")
A = TypeVar("A", bound=NDArray)


class NDArrayMath(
    # Families that build on others come first: Python's method order puts a class before the
    # classes it inherits (RNNMath inherits ElementwiseMath, whose sigmoid it calls).
    RNNMath,
    ImageMath,
    ConvMath,
    ReductionMath,
    ElementwiseMath,
    ArithmeticMath,
    LinalgMath,
    LayoutMath,
    PoolMath,
    RandomMath,
    CostMath,
):
    """NumPy-like ops on NDArrays, run on one backend ("cpu" or "cuda").

    Example:
        >>> math = NDArrayMath("cpu")
        >>> math.add(Array1D.new([1, 2]), Array1D.new([3, 4])).get_values()
        array([4., 6.], dtype=float32)
    """

    def __init__(self, backend: str | MathBackend = "cpu", safe_mode: bool = False) -> None:
        self.backend: MathBackend = create_backend(backend) if isinstance(backend, str) else backend
        self.engine = Engine(self.backend)
        self.safe_mode = safe_mode

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("safe_mode", "engine") and hasattr(self, "engine") and hasattr(self, "safe_mode"):
            self.engine.safe_mode = self.safe_mode  # the engine checks it, first thing in run

    def _check_safe_mode(self) -> None:
        """In safe mode, math outside every scope is an error (deeplearn.js's message)."""
        if self.safe_mode and not REGISTRY.stack:
            raise RuntimeError(SAFE_MODE_MESSAGE)

    # -- scopes --------------------------------------------------------------------------------
    def scope(self, fn: Callable[..., Any] | None = None) -> Any:
        """Opens a memory scope: NDArrays created inside are disposed when it ends.

        Two forms:

        * ``with math.scope() as scope: ...`` — ``scope.keep(x)`` keeps ``x`` alive afterwards.
        * ``math.scope(fn)`` — calls ``fn(keep, track)``; its returned NDArray (or list/dict of
          them) survives into the enclosing scope. A coroutine function gives an awaitable that
          ends the scope when it completes.

        Example:
            >>> with math.scope():
            ...     y = math.square(Scalar.new(3))
            >>> y.is_disposed
            True
        """
        if fn is None:
            return self._scope_context()
        _check_callable(fn, "scope")
        if inspect.iscoroutinefunction(fn):
            return self._scope_async(fn)
        REGISTRY.start_scope()
        result = None
        try:
            result = fn(*self._scope_args(fn))
        finally:
            REGISTRY.end_scope(result)
        return result

    def _scope_args(self, fn: Callable[..., Any]) -> tuple[Any, ...]:
        """(keep, track), cut to the parameters ``fn`` takes: JavaScript ignores extra arguments,
        so ported code passes ``() => ...`` and ``(keep) => ...`` too."""
        if type(fn) is FunctionType and not fn.__dict__:
            # A plain function or lambda (no __wrapped__ or __signature__ for inspect to
            # follow): its code says it, ~0.1 µs where inspect.signature took ~5.
            code = fn.__code__
            if code.co_flags & CO_VARARGS:
                return (self.keep, self.track)
            return (self.keep, self.track)[: code.co_argcount]
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: pass both
            return (self.keep, self.track)
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return (self.keep, self.track)
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return (self.keep, self.track)[: len(positional)]

    def _scope_context(self) -> _ScopeBlock:
        return _ScopeBlock()

    async def _scope_async(self, fn: Callable[..., Awaitable[T]]) -> T:
        REGISTRY.start_scope()
        result: Any = None
        try:
            result = await fn(*self._scope_args(fn))
        finally:
            REGISTRY.end_scope(result)
        return result  # type: ignore[no-any-return]

    def start_scope(self) -> Scope:
        """Opens a scope without a closure; pair with ``end_scope``."""
        return REGISTRY.start_scope()

    def end_scope(self, result: Any = None) -> None:
        """Ends the innermost scope; ``result``'s arrays survive into the enclosing scope."""
        REGISTRY.end_scope(result)

    def keep(self, x: T) -> T:
        """Keeps ``x`` (an NDArray or a list/dict of them) alive when the open scopes end.

        A kept array belongs to no scope; dispose it yourself when done.
        """
        self._check_safe_mode()
        return REGISTRY.keep(x)  # type: ignore[no-any-return]

    def track(self, x: T) -> T:
        """Makes the innermost scope dispose ``x`` at its end. Arrays are tracked when created
        (deeplearn.js 0.3.14+), so this is only needed for arrays made outside every scope."""
        self._check_safe_mode()
        stack = REGISTRY.stack
        if stack:
            for a in flatten_result(x):
                stack[-1].track(a)
        return x

    def gradients(self, f: Callable[[], NDArray], x: Any) -> Any:
        """The gradient of the scalar ``f()`` with respect to ``x`` (an NDArray, or a
        ``{name: NDArray}`` mapping, giving a mapping), by the ops' own backward rules.

        Example:
            >>> x = Array1D.new([1.0, 2.0])
            >>> math.gradients(lambda: math.sum(math.square(x)), x).get_values()
            array([2., 4.], dtype=float32)
        """
        return value_and_gradients(self, f, x)[1]

    def value_and_gradients(self, f: Callable[[], NDArray], x: Any) -> tuple[NDArray, Any]:
        """``(f(), gradients(f, x))`` in one pass (see ``gradients``).

        Example:
            >>> x = Scalar.new(3.0)
            >>> value, grad = math.value_and_gradients(lambda: math.square(x), x)
            >>> value.get(), grad.get()
            (9.0, 6.0)
        """
        return value_and_gradients(self, f, x)

    def gradients_scope(self, fn: Callable[..., Any]) -> Any:
        """deeplearn.js's scope for gradient code: here the same as ``scope(fn)``."""
        return self.scope(fn)

    def get_num_arrays(self) -> int:
        """Number of live arrays (distinct buffers) on this math's backend."""
        return REGISTRY.num_arrays(self.backend.name)

    def enable_debug_mode(self) -> None:
        """Checks every op's result for NaNs and raises naming the op (slow: reads every result)."""
        self.engine.debug = True

    def disable_debug_mode(self) -> None:
        self.engine.debug = False

    def time(self, fn: Callable[[], Any]) -> float:
        """Milliseconds ``fn()`` takes, with the device synchronised before and after."""
        _check_callable(fn, "time")
        self.backend.synchronize()
        start = time.perf_counter()
        fn()
        self.backend.synchronize()
        return (time.perf_counter() - start) * 1e3

    def dispose(self) -> None:
        """Releases this math's resources (nothing to release for the built-in backends)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend.name!r})"


class _ScopeBlock:
    """``with math.scope() as scope:``: a scope for the block (a class, not a
    ``contextmanager`` generator, which cost ~1 µs more per block). As a decorator,
    ``@math.scope()`` runs each call of the function in a scope of its own."""

    __slots__ = ()

    def __enter__(self) -> Scope:
        return REGISTRY.start_scope()

    def __exit__(self, *exc: object) -> None:
        REGISTRY.end_scope(None)

    def __call__(self, fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def scoped(*args: Any, **kwargs: Any) -> T:
            with self:
                return fn(*args, **kwargs)

        return scoped


def _check_callable(fn: object, where: str) -> None:
    if not callable(fn):
        raise TypeError(f"{where}: fn must be a function; got {type(fn).__name__} {fn!r:.80}.")


class NDArrayMathCPU(NDArrayMath):
    """NDArrayMath on the CPU (NumPy)."""

    def __init__(self, safe_mode: bool = False) -> None:
        super().__init__("cpu", safe_mode)


class NDArrayMathGPU(NDArrayMath):
    """NDArrayMath on an NVIDIA GPU (CuPy). Raises RuntimeError saying what to install when CuPy
    or a GPU is missing."""

    def __init__(self, safe_mode: bool = False) -> None:
        super().__init__("cuda", safe_mode)
