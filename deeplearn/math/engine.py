"""Engine: runs one op on one backend — shape rule, kernel, bookkeeping, in that order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeplearn import util
from deeplearn.math.ndarray import NDArray
from deeplearn.math.ops.base import Op, Spec

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend

__all__ = ["Engine"]


class Engine:
    """Runs ops on one backend and wraps their outputs as NDArrays (tracked by the open scope)."""

    def __init__(self, backend: MathBackend) -> None:
        self.backend = backend
        self.debug = False
        # Testing aid: keep float64 results of float32 ops (the float64 gradient checks run the
        # same kernels in double precision). Off in normal use.
        self.keep_float64 = False

    def run(self, op: Op, *inputs: NDArray) -> Any:
        """Runs ``op`` on ``inputs``; returns one NDArray, or a tuple for multi-output ops.

        Arrays that live on another backend are copied here first.
        """
        for x in inputs:
            if not isinstance(x, NDArray):
                raise TypeError(f"{op.name}: inputs must be NDArrays; got {type(x).__name__} {x!r:.80}.")
            x._check_live(op.name)
        spec = op.infer(*(x.spec for x in inputs))  # the one shape check, before any work
        raws = [x.raw if x.backend is self.backend else self.backend.asarray(x.raw) for x in inputs]
        out = self.backend.execute(op, *raws)
        if isinstance(spec, tuple):
            return tuple(self._wrap(op, self._own(o, raws), s) for o, s in zip(out, spec))
        return self._wrap(op, self._own(out, raws), spec)

    def _own(self, out: Any, raws: list[Any]) -> Any:
        """Copies a kernel result that is a view of an input (reshape, transpose, slice kernels
        may return views), so that every NDArray owns its storage: writing to one (``set``,
        ``fill``) or disposing it never changes another."""
        xp = self.backend.xp
        if isinstance(out, xp.ndarray) and any(xp.may_share_memory(out, r) for r in raws):
            return out.copy()
        return out

    def wrap(self, data: Any, dtype: str | None = None) -> NDArray:
        """Wraps a raw array of this backend as an NDArray (for composites that build data)."""
        return NDArray._wrap(data, self.backend, dtype)  # type: ignore[arg-type]

    def _wrap(self, op: Op, data: Any, spec: Spec) -> NDArray:
        xp = self.backend.xp
        want = util.numpy_dtype(spec.dtype)
        if not isinstance(data, xp.ndarray) or data.dtype != want:
            if not (self.keep_float64 and spec.dtype == "float32" and getattr(data, "dtype", None) == xp.float64):
                data = xp.asarray(data, dtype=want)
        if tuple(data.shape) != spec.shape:
            raise AssertionError(
                f"{op.name}: the kernel returned shape {tuple(data.shape)} but the shape rule says {spec.shape}."
            )
        if self.debug and self.backend.has_nan(data):
            raise ValueError(f"The result of the last math.{op.name} has NaNs.")
        return NDArray._wrap(data, self.backend, spec.dtype)
