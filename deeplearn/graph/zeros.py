"""The zero Scalars that ``Session.train`` returns for ``CostReduction.NONE``.

A NONE call reads no cost, and returns a zero Scalar of its own (deeplearn.js's contract): the
caller may keep it, dispose it, or write into it. Making each one is an allocation and a fill,
which on a GPU cost more host time than a captured training step's launch; a ``ZeroScalars``
makes them a block at a time (one allocation, one fill) and hands out one element of the block
per call, each with a storage of its own, so that disposing one, or writing into it, touches no
other. The block's memory goes back once every element of it has been disposed. The Scalars
themselves are made with the block, in one loop, and each is counted live and tracked by the
caller's scope only when handed out: a training loop's call then does little more than that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deeplearn.math.ndarray import Scalar, _fresh, _hand_out

if TYPE_CHECKING:
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["ZeroScalars"]


class ZeroScalars:
    """Fresh float32 zero Scalars on a math's backend, cut from blocks of ``block``.

    Example:
        >>> zeros = ZeroScalars()
        >>> a, b = zeros.next(math), zeros.next(math)
        >>> a.set(5.0); (a.get(), b.get())
        (5.0, 0.0)
    """

    __slots__ = ("_backend", "_block", "_left")

    def __init__(self, block: int = 256) -> None:
        self._block = block
        self._left: list[Scalar] = []  # the block's Scalars not handed out yet, last one first
        self._backend: Any = None

    def next(self, math: NDArrayMath) -> Scalar:
        """A zero Scalar tracked by the open scope, as any array a method returns."""
        backend = math.backend
        if not self._left or self._backend is not backend:
            block = backend.xp.zeros(self._block, backend.xp.float32)
            live = math.engine._live
            # Each a 0-d C-ordered float32 view: wrapped as it is (no dtype or layout to check).
            self._left = [
                _fresh(Scalar, block[i, ...], backend, live, (), "float32", None, now=False)
                for i in range(self._block - 1, -1, -1)
            ]
            self._backend = backend
        return _hand_out(self._left.pop())
