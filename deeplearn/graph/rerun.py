"""The last training call of a Session, kept so that the next identical call can skip finding it.

A training loop calls ``Session.train`` with the same cost, feeds (the same tensors and
providers, as one object or written out anew each time), batch size, optimizer and cost
reduction every step. Once such a call has run as a Program (``deeplearn/compile/``),
everything the Session worked out to get there — the feeds' checks, the plan, the call's
signature, which Program to run and where each of its inputs comes from — holds for the next
call too. A ``Rerun`` keeps it: the next call only draws the batches' row indices, collects
the Program's inputs and runs it (on CUDA: one graph launch), with the per-call checks that
matter (every input still of the shape, dtype and backend recorded) and none of the rest.
When anything it relied on changed, the Session takes its ordinary path, which records again
where it must.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from numbers import Integral
from typing import TYPE_CHECKING, Any

from deeplearn.compile.program import bound_raw
from deeplearn.graph.feeds import EXAMPLES, ROWS, FeedEntry, Feeds, same_feeds
from deeplearn.graph.graph import Node, Tensor
from deeplearn.graph.plan import forget_oldest

if TYPE_CHECKING:
    from collections.abc import Callable

    from deeplearn.compile.program import Program
    from deeplearn.graph.optimizers.optimizer import Optimizer
    from deeplearn.graph.feeds import Rows
    from deeplearn.graph.plan import Plan, Signature
    from deeplearn.math.ndarray import NDArray
    from deeplearn.math.ndarray_math import NDArrayMath
    from deeplearn.types import DType, Shape

__all__ = ["Rerun", "Reruns", "Source", "make_rerun"]

_UNREAD = object()
"""What a binding's last array is before its first read (no array is it)."""


class Source(enum.Enum):
    """Where a Program input comes from on a rerun."""

    NODE = "a variable's or a constant's data"
    BOUND = "one of the optimizer's bound arrays (its scalars, its state)"
    EXAMPLES = "a provider's examples, resident on the backend"
    ROWS = "the row indices of a batch, drawn from its provider"


@dataclass(eq=False)
class Rerun:
    """A training call's work, ready for the next identical call (see the module docstring).

    ``sources`` holds, per Program binding: (Source, what to read it from, the bound shape and
    dtype); ``draws`` holds, per builder: (the builder; per batch drawn from it, its binding's
    index, the provider's input index and the examples the rows index; and the (input index,
    examples) pairs it draws for).
    """

    entries: list[FeedEntry]
    cost: Tensor
    batch_size: int
    optimizer: Optimizer
    reduction: int
    plan: Plan
    step: Signature
    key: tuple[Any, ...]
    program: Program
    sources: list[tuple[Source, Any, Shape, DType]]
    draws: list[tuple[Any, list[tuple[int, int, NDArray]], list[tuple[int, NDArray]]]]
    bound_count: int
    _variables: list[Tensor] = field(default_factory=list)  # the optimizer's, as key[1]

    # Per NODE or BOUND source: (binding, the node or None, the optimizer's key or None).
    _read_from: list[tuple[int, Node | None, Any]] = field(default_factory=list)
    # Per binding, what the last call bound: the raw array (``inputs`` returns this list), and
    # the NDArray it was read from with that array's data then (_UNREAD before the first read).
    _raws: list[Any] = field(default_factory=list)
    _arrays: list[Any] = field(default_factory=list)
    _datas: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._variables = list(self.key[1])
        self._read_from = [
            (k, what, None) if source is Source.NODE else (k, None, what)
            for k, (source, what, _, _) in enumerate(self.sources)
            if source in (Source.NODE, Source.BOUND)
        ]
        # A provider's examples stay the same arrays until disposed (then the draw says so).
        self._raws = [
            bound_raw(what, shape, dtype, what.storage.backend) if source is Source.EXAMPLES else None
            for source, what, shape, dtype in self.sources
        ]
        self._arrays = [_UNREAD] * len(self.sources)
        self._datas = [None] * len(self.sources)

    def inputs(
        self, math: NDArrayMath, node_value: Callable[[Node, str], NDArray], where: str
    ) -> list[Any] | None:
        """This call's Program inputs (backend arrays, in binding order), each checked against
        the shape, dtype and backend recorded, the batches' rows drawn last; None, having drawn
        nothing, when one is not what the Program was recorded with. The optimizer's arrays
        must be this batch's (``before_batch``); ``node_value(node, where)`` gives a variable's
        or a constant's data, checked. The list returned is the Rerun's own, valid until the
        next call."""
        optimizer = self.optimizer
        extra = optimizer.bound_arrays()
        if len(extra) != self.bound_count or optimizer.variables != self._variables:
            return None
        raws, arrays, datas = self._raws, self._arrays, self._datas
        # The same array over the same data as last call (a variable's resident buffer, an
        # unchanged hyperparameter): the same raw array, checked then, still in ``raws``. (A
        # plain loop: this runs every training step.)
        for k, node, key in self._read_from:
            x = extra.get(key) if node is None else node.data  # type: ignore[attr-defined]
            if x is arrays[k] and x.storage.data is datas[k] and not x._disposed:
                continue
            if node is not None:
                x = node_value(node, where)  # checked: live, on this backend (else moved or refused)
            if x is None or not self._read(math, k, x):
                return None
        if len(self.draws) > 1:  # several builders: none draws unless none will refuse
            for builder, _, together in self.draws:
                if not builder._hold(math, together):
                    return None
        for builder, draws, together in self.draws:  # each builder's providers' rows, drawn together
            drawn = builder._draw_indices_together(math, together, self.batch_size, span=True)
            if drawn is None:
                return None
            for (i, _, _), indices in zip(draws, drawn, strict=True):
                raws[i] = indices
        return raws

    def _read(self, math: NDArrayMath, k: int, x: NDArray) -> bool:
        """Whether ``x`` is what binding ``k`` was recorded with (its shape, dtype and backend);
        if so, its raw array is put in the raws, remembered for the next call with ``x``."""
        _, _, shape, dtype = self.sources[k]
        data = x.storage.data
        raw = None if data is None else bound_raw(x, shape, dtype, math.backend)
        if raw is None:
            self._arrays[k] = _UNREAD
            return False
        self._raws[k], self._arrays[k], self._datas[k] = raw, x, data
        return True

    def matches(
        self, cost: Tensor, feeds: Feeds, batch_size: int, optimizer: Optimizer, reduction: int
    ) -> bool:
        """Whether a call with these arguments is this call again."""
        return (
            cost is self.cost
            and optimizer is self.optimizer
            and batch_size == self.batch_size
            and reduction == self.reduction
            and same_feeds(feeds, self.entries)  # (the same feeds, or the same written out anew)
            and self.step.training.get(self.key) is self.program
        )


def make_rerun(
    entries: list[FeedEntry],
    cost: Tensor,
    batch_size: int,
    optimizer: Optimizer,
    reduction: int,
    plan: Plan,
    step: Signature,
    key: tuple[Any, ...],
    program: Program,
    rows: dict[Tensor, tuple[NDArray, NDArray]],
) -> Rerun | None:
    """The Rerun of a training call that just ran ``program``, or None where a rerun could
    not draw its batches alone (a provider of another kind than the in-memory builders')."""
    providers = {e.tensor: e.data for e in entries}
    sources: list[tuple[Source, Any, Shape, DType]] = []
    draws: dict[int, tuple[Any, list[tuple[int, int, NDArray]]]] = {}  # by id(builder)
    bound_count = 0
    for i, binding in enumerate(program.bindings):
        key_ = binding.key
        if isinstance(key_, Tensor):
            if key_ in providers or not hasattr(key_.node, "data"):
                return None  # a batch that was not gathered in the Program
            sources.append((Source.NODE, key_.node, binding.shape, binding.dtype))
        elif key_[0] in (EXAMPLES, ROWS):
            t = key_[1]
            provider = providers.get(t)
            builder = getattr(provider, "builder", None)
            if builder is None or t not in rows or not hasattr(builder, "_draw_indices_together"):
                return None
            examples = rows[t][0]
            if key_[0] == EXAMPLES:
                sources.append((Source.EXAMPLES, examples, binding.shape, binding.dtype))
            else:
                sources.append((Source.ROWS, None, binding.shape, binding.dtype))
                draws.setdefault(id(builder), (builder, []))[1].append((i, provider.input_index, examples))  # type: ignore[union-attr]
        else:
            sources.append((Source.BOUND, key_, binding.shape, binding.dtype))
            bound_count += 1
    return Rerun(
        entries,
        cost,
        batch_size,
        optimizer,
        reduction,
        plan,
        step,
        key,
        program,
        sources,
        [(builder, batches, [(index, x) for _, index, x in batches]) for builder, batches in draws.values()],
        bound_count,
    )


class Reruns:
    """A Session's last training calls, ready to run again, by (cost, optimizer, batch size,
    cost reduction), ``limit`` of them: a GraphRunner alternates NONE with an occasional MEAN,
    and keeps both.

    Example:
        >>> reruns = Reruns()
        >>> reruns.find(None, [], 8, None, 0) is None, len(reruns)
        (True, 0)
    """

    def __init__(self, limit: int = 8) -> None:
        self._limit = limit
        self._by_key: dict[tuple[int, int, int, int], Rerun] = {}
        self._last: Rerun | None = None  # the one found last: a training loop asks for it again

    def __len__(self) -> int:
        return len(self._by_key)

    def find(self, cost: Any, feeds: Feeds, batch_size: Any, optimizer: Any, reduction: Any) -> Rerun | None:
        """The Rerun that a call with these arguments is again, or None."""
        if type(batch_size) is not int:  # a NumPy integer too; not a bool
            if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
                return None  # not the arguments of any call that ran (the checks will say why)
            batch_size = int(batch_size)
        if not isinstance(reduction, int):
            return None
        rerun = self._last
        if rerun is not None and rerun.matches(cost, feeds, batch_size, optimizer, reduction):
            return rerun
        rerun = self._by_key.get((id(cost), id(optimizer), batch_size, int(reduction)))
        if rerun is None or not rerun.matches(cost, feeds, batch_size, optimizer, reduction):
            return None
        self._last = rerun
        return rerun

    def remember(
        self,
        entries: list[FeedEntry],
        cost: Tensor,
        batch_size: int,
        optimizer: Optimizer,
        reduction: int,
        plan: Plan,
        step: Signature,
        rows: Rows,
        fed: bool,
    ) -> None:
        """After a training call that ran a Program: keeps its Rerun (``make_rerun``), or
        forgets an older one of the same key where it cannot have one (``fed``: the call was
        fed arrays, not only batches gathered inside the Program)."""
        # (the reduction as a plain int: an Enum's hash is Python code, and a training loop looks
        # this key up every step)
        key = (type(optimizer), tuple(optimizer.variables), int(reduction))
        program = step.training.get(key)
        rerun = (
            make_rerun(entries, cost, batch_size, optimizer, reduction, plan, step, key, program, rows)
            if program is not None and not fed
            else None
        )
        by_key = (id(cost), id(optimizer), batch_size, int(reduction))
        self._by_key.pop(by_key, None)
        if rerun is not None:
            forget_oldest(self._by_key, self._limit)
            self._by_key[by_key] = rerun
        self._last = rerun

    def clear(self) -> None:
        self._by_key.clear()
        self._last = None
