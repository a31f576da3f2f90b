"""A batch's row indices read by the captured step itself, at a position it moves on itself.

A training batch drawn from a GPU input provider is a run of consecutive entries of an index
array the provider uploaded once for many epochs (``InGPUMemoryShuffledInputProviderBuilder``):
epoch after epoch, batch after batch, the step reads the next ``count`` entries. A
``RowSpan`` names such a run without making an array of it. A ``RowCursor`` lets a CUDA graph
read it: the graph's first kernel copies ``count`` indices from the cursor's array at the
cursor's position (both in device memory) into the step's index buffer, and moves the
position on by ``count``. The host keeps the same position in mind, so a training loop's call
finds the span it drew where the device already points and queues nothing but the graph's
launch; only another array (the provider's next block of orders) or another position (a
provider drawn from between steps) costs a small kernel that points the cursor anew.

This module imports CuPy lazily, like ``deeplearn/compile/cuda_graph.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["RowCursor", "RowSpan", "plain_rows"]


class RowSpan:
    """Entries ``start`` .. ``start + count - 1`` of the 1-d int32 backend array ``block``.

    Example:
        >>> import numpy as np
        >>> RowSpan(np.arange(10, dtype=np.int32), 4, 3).indices()
        array([4, 5, 6], dtype=int32)
    """

    __slots__ = ("block", "count", "start")

    def __init__(self, block: Any, start: int, count: int) -> None:
        self.block = block
        self.start = start
        self.count = count

    def indices(self) -> Any:
        """The span as an array (a view of ``block``)."""
        return self.block[self.start : self.start + self.count]

    def __repr__(self) -> str:
        return f"RowSpan(start={self.start}, count={self.count}, of {self.block.size})"


def plain_rows(raws: Sequence[Any]) -> list[Any]:
    """``raws`` with each RowSpan made an array: what a run kernel by kernel binds."""
    return [r.indices() if type(r) is RowSpan else r for r in raws]


_SOURCE = r"""
extern "C" __global__ void rows_at_cursor(long long* cursor, int* out, const int count) {
    // cursor[0]: the address of the indices, cursor[1]: the position in them, cursor[2]: how
    // many there are. A launch the host did not feed (a profiler's launches back to back)
    // starts again from the first rather than read past the last.
    const int* rows = (const int*)cursor[0];
    long long at = cursor[1];
    if (at < 0 || at + count > cursor[2]) at = 0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) out[i] = rows[at + i];
    __syncthreads();  // every thread has read the position before it moves on
    if (threadIdx.x == 0) cursor[1] = at + count;
}

extern "C" __global__ void point_cursor(
    long long* cursor, const long long address, const long long at, const long long size) {
    cursor[0] = address;
    cursor[1] = at;
    cursor[2] = size;
}
"""

_KERNELS: dict[str, Any] = {}


def _kernel(name: str) -> Any:
    kernel = _KERNELS.get(name)
    if kernel is None:
        import cupy

        module = cupy.RawModule(code=_SOURCE)
        for each in ("rows_at_cursor", "point_cursor"):
            _KERNELS[each] = module.get_function(each)
        kernel = _KERNELS[name]
    return kernel


class RowCursor:
    """The device position a captured step reads a binding's ``count`` row indices from (see
    the module docstring). ``out``: the step's index buffer (a 1-d int32 CuPy array).

    ``gather()`` queues the kernel that fills ``out`` and moves the position on (what the
    graph captures); ``feed(raw)``, before each launch, makes sure the device will read
    ``raw`` (a RowSpan, or an index array of ``count`` entries), pointing it anew only where
    the position the last launch left is not ``raw``'s; ``lost()`` when the launch it was
    fed for does not come. Both queue on the current stream.
    """

    __slots__ = ("_source", "_next", "count", "out", "state")

    def __init__(self, out: Any) -> None:
        import cupy

        self.out = out
        self.count = int(out.size)
        self.state = cupy.zeros(3, cupy.int64)  # (address, position, size): see _SOURCE
        self._source: Any = None  # the array the device points at, kept alive while it may read it
        self._next = -1  # where the position stands once every launch queued so far has run

    def gather(self) -> None:
        import cupy

        threads = min(256, max(32, -(-self.count // 32) * 32))
        _kernel("rows_at_cursor")((1,), (threads,), (self.state, self.out, cupy.int32(self.count)))

    def feed(self, raw: Any) -> None:
        if type(raw) is RowSpan:
            if raw.block is self._source and raw.start == self._next:
                self._next += self.count  # where the launch about to be queued leaves it
                return
            source, start = raw.block, raw.start
        else:
            source, start = raw, 0
        self._point(source, start)

    def lost(self) -> None:
        """Where the device stands is no longer known (a launch it was fed for did not come,
        launches it was not fed for ran): the next ``feed`` points it anew."""
        self._next = -1

    def _point(self, source: Any, start: int) -> None:
        import cupy

        if source.dtype != cupy.int32 or not source.flags.c_contiguous:
            source = cupy.ascontiguousarray(source, cupy.int32)
        if source.ndim != 1 or not 0 <= start <= source.size - self.count:
            raise ValueError(
                f"RowCursor: the rows must be {self.count} entries of a 1-d index array; got "
                f"start={start} of an array of shape {source.shape}."
            )
        address, size = cupy.int64(source.data.ptr), cupy.int64(source.size)
        _kernel("point_cursor")((1,), (1,), (self.state, address, cupy.int64(start), size))
        # Kept until the cursor points elsewhere: the launches queued meanwhile read it.
        self._source = source
        self._next = start + self.count
