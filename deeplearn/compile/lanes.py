"""Which kernels of a Program may run side by side: a plan of lanes (streams) for a capture.

A captured step's small matrix products fill a few of a GPU's multiprocessors each. Run one
after another, as a single stream records them, a weight's gradient waits for the previous
layer's input gradient although neither reads the other. A ``LanePlan`` spreads a Program's
steps over a few lanes so that a CUDA graph captured from them holds only the dependencies the
data has: a step goes on the lane of the step it reads that ran last, where that lane has run
nothing since (a chain continues), else on a lane whose work it follows anyway, else on an
idle lane; it waits for what it reads from other lanes. A step that writes into a bound buffer
in place (a variable's update) also waits for every earlier step that reads that buffer, and
for its earlier writer: only for those, so that the last layers' updates run beside the first
layer's weight gradient (on an H200 an mlp's six updates had run one after another at the end of
the step). Every kernel result in a Program owns its memory (``Engine.result`` copies a view),
so a bound buffer is read only through its own slot, or through the result an update wrote
into it.

The plan is data only (step indices); ``deeplearn/compile/cuda_graph.py`` turns it into streams
and events.

Example:
    >>> # steps 1 and 2 both read step 0's result; step 3 reads both
    >>> plan = plan_lanes([(), (0,), (0,), (1, 2)], lanes=2)
    >>> plan.lane, plan.waits, plan.joins
    ([0, 0, 1, 1], [(), (), (0,), (1,)], (3,))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deeplearn.compile.program import Step

__all__ = ["LanePlan", "plan_lanes", "step_dependencies"]


@dataclass(frozen=True)
class LanePlan:
    """``lane[i]``: the lane step ``i`` runs on (0 is the stream the capture starts on);
    ``waits[i]``: the steps on other lanes it waits for first; ``joins``: the last step of each
    other lane, which lane 0 waits for at the end; ``records``: the steps someone waits for."""

    lane: list[int]
    waits: list[tuple[int, ...]]
    joins: tuple[int, ...]
    records: frozenset[int]

    @property
    def lanes_used(self) -> int:
        return max(self.lane, default=0) + 1


def step_dependencies(steps: Sequence[Step], in_place: Mapping[int, int]) -> list[tuple[int, ...]]:
    """For each step, the earlier steps it must follow: those whose results it reads (by slot);
    and for a step that writes a result into a bound buffer (``in_place``: {result slot: bound
    slot}; it then counts as making that bound slot), the earlier steps that read the bound
    slot or wrote it.

    Example:
        >>> from deeplearn.compile.program import Ref, Step
        >>> step = lambda read, made: Step(None, (Ref(read, None),), (made,), ())
        >>> steps = [step(0, 5), step(5, 6), step(6, 7)]  # step 2 writes bound slot 0 (read by step 0)
        >>> step_dependencies(steps, {7: 0})
        [(), (0,), (0, 1)]
    """
    producer: dict[int, int] = {}
    readers: dict[int, list[int]] = {}  # per slot, the steps that read it since it was last made
    deps: list[tuple[int, ...]] = []
    for i, step in enumerate(steps):
        before = {producer[r.slot] for r in step.inputs if r.slot in producer}
        bounds = [in_place[out] for out in step.outputs if out in in_place]
        for bound in bounds:  # (readers holds earlier steps only: this step's reads come next)
            before.update(readers.get(bound, ()))
            if bound in producer:
                before.add(producer[bound])
        deps.append(tuple(sorted(before)))
        for r in step.inputs:  # a result written into a bound buffer is that buffer: read as it
            readers.setdefault(in_place.get(r.slot, r.slot), []).append(i)
        for out in step.outputs:
            producer[out] = i
        for bound in bounds:
            producer[bound] = i
            readers[bound] = []
    return deps


def plan_lanes(deps: Sequence[Sequence[int]], lanes: int) -> LanePlan:
    """A plan of ``lanes`` lanes for steps with dependencies ``deps`` (each step's earlier
    steps it must follow)."""
    lanes = max(1, lanes)
    lane_of: list[int] = []
    waits: list[tuple[int, ...]] = []
    last: list[int | None] = [None] * lanes  # the last step each lane ran
    # seen[l][m]: the latest step of lane m that lane l has waited for (or ran itself), so a
    # wait already implied by an earlier one is not made again.
    seen: list[list[int]] = [[-1] * lanes for _ in range(lanes)]
    clock_at: list[list[int]] = []  # a copy of seen[lane] just after each step
    for i, before in enumerate(deps):
        lane = _choose(before, last, lane_of, clock_at)
        waits.append(_wait_for(before, lane, seen[lane], lane_of, clock_at))
        seen[lane][lane] = i
        lane_of.append(lane)
        last[lane] = i
        clock_at.append(list(seen[lane]))
    joins = _wait_for([s for s in last[1:] if s is not None], 0, seen[0], lane_of, clock_at)
    records = frozenset(d for w in waits for d in w) | frozenset(joins)
    return LanePlan(lane_of, waits, joins, records)


def _wait_for(
    wanted: Sequence[int],
    lane: int,
    mine: list[int],
    lane_of: Sequence[int],
    clock_at: Sequence[Sequence[int]],
) -> tuple[int, ...]:
    """The steps among ``wanted`` that ``lane`` must wait for: those on other lanes that its
    clock ``mine`` (updated here) does not cover already."""
    wait: list[int] = []
    for d in sorted(wanted, reverse=True):  # latest first: its clock covers earlier ones
        other = lane_of[d]
        if other == lane or mine[other] >= d:
            continue
        wait.append(d)
        mine[:] = [max(a, b) for a, b in zip(mine, clock_at[d], strict=True)]
    return tuple(sorted(wait))


def _choose(
    before: Sequence[int],
    last: Sequence[int | None],
    lane_of: Sequence[int],
    clock_at: Sequence[Sequence[int]],
) -> int:
    """The lane for a step that reads ``before``: the lane of the latest of them, if that lane
    ran nothing since; else a lane whose last step those already follow (no order added);
    else a lane that ran nothing yet; else the lane idle the longest."""
    for d in sorted(before, reverse=True):
        if last[lane_of[d]] == d:
            return lane_of[d]
    for lane, end in enumerate(last):
        if end is not None and any(clock_at[d][lane] >= end for d in before):
            return lane
    for lane, end in enumerate(last):
        if end is None:
            return lane
    return min(range(len(last)), key=lambda lane: last[lane])  # type: ignore[arg-type, return-value]
