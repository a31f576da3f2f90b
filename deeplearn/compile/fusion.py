"""Fusion: chains of a Program's element-wise kernels become one kernel each.

A recorded training step is mostly small element-wise kernels: the forward pass of ``quad``
is ``square``, two ``multiply`` and two ``add`` over one batch, its backward pass a few more,
each gradient a ``sum``, each update a ``scaled_array_add``. Once a step is one CUDA graph its
time is the sum of its kernels', and a kernel that does one multiplication is mostly launch
and memory traffic. ``fuse`` groups such kernels and replaces each group by one ``Fused`` step
(``deeplearn/math/ops/fused.py``), which a backend that can compiles into one kernel.

What a group holds (``n``: the number of elements of its element-wise results; ``cols``: of
its sums' results), each step in a role (``Role``):

* **map** steps: an element-wise op with a C form (the backend's ``fusible``) whose result has
  ``n`` elements, reading the group's own results element by element and anything else
  broadcast; and ``gather`` (its rows are read through the indices where they lie);
* **pre** steps: an element-wise op on one-element values that needs no sum (a copy of a
  scalar variable, a hyperparameter's arithmetic), which every thread computes first;
* **reduce** steps: a ``sum`` of a map result over its leading axes, to ``cols`` elements (a
  scalar variable's gradient: cols = 1; a bias's: cols = its width), at most ``SMALL`` rows;
* **post** steps: an element-wise op on ``cols``-element values that needs a sum (the update of
  the variable whose gradient it is), computed per column once the sums are done.

A group's kernel runs where its last step was. So a group closes (takes no more steps) when a
step outside it reads one of its results, when a step outside it writes in place a value the
group reads, and a step that would need a sum's result element by element does not join. A
step that writes a bound value in place joins only where no other thread may still read it.
Every result that anything outside the group may read (a later step, a value or gradient the
call hands out, a deferred kernel, an update) stays an output of the Fused step; the others
are never written to memory. Groups without sums that follow one another and neither read nor
overwrite what the others make or read (the updates of several variables) run side by side in
one kernel, each on its own stretch of threads.

This module knows nothing of a backend's kernels: it is given which ops have a C form.
"""

from __future__ import annotations

import dataclasses
from math import prod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from deeplearn.compile.program import Ref, Step
from deeplearn.math.ops.base import Op, Spec
from deeplearn.math.ops.fused import SMALL, Arg, Fused, Node
from deeplearn.math.ops.layout import Gather
from deeplearn.math.ops.reduction import Sum

if TYPE_CHECKING:
    from deeplearn.compile.program import Program
    from deeplearn.types import Shape

__all__ = ["fuse"]

Role = Literal["map", "pre", "reduce", "post"]
"""A step's part in its group: an element-wise result of the group's ``n`` elements (map); a
one-element value that needs no sum, which every thread computes before the loop (pre); a sum
over the leading axes of a map result, to the group's ``cols`` elements (reduce); an element-wise
result of ``cols`` elements that needs a sum, computed per column after them (post)."""


@dataclasses.dataclass(eq=False)
class _Group:
    n: int  # the elements of its map results (1 while it holds only pre steps)
    cols: int = 1  # the elements of its sums' results (1: sums of everything)
    members: list[int] = dataclasses.field(default_factory=list)
    phase: dict[int, Role] = dataclasses.field(default_factory=dict)  # each result slot's
    reads: set[int] = dataclasses.field(default_factory=set)  # slots read from outside
    writes: set[int] = dataclasses.field(default_factory=set)  # bound slots written in place
    # Slots read other than element for element (broadcast, gathered, one element for all):
    # a value written in place must not be one, or a thread could read an element another
    # thread has already written.
    unaligned: set[int] = dataclasses.field(default_factory=set)
    pinned: bool = False  # holds a one-element value written in place: must stay one block
    closed: bool = False

    @property
    def sums(self) -> bool:
        return "reduce" in self.phase.values()

    @property
    def one_block(self) -> bool:
        """Whether it runs as one thread block (a one-element value written at the end is
        then written after every thread read it)."""
        return self.cols == 1 and self.n <= SMALL

    def takes(self, n: int) -> bool:
        """Whether a map step of ``n`` elements fits: one of the group's size, or any while the
        group holds only pre steps (the copies a step starts with)."""
        if n == self.n:
            return True
        pre_only = self.n == 1 and all(p == "pre" for p in self.phase.values())
        return pre_only and (n <= SMALL or not self.pinned)


def fuse(program: Program, fusible: Callable[[Op], bool], in_place: Mapping[int, int]) -> int:
    """Replaces ``program.steps`` by the same kernels with the fusible chains grouped into
    ``Fused`` steps; returns how many steps it removed. ``fusible(op)``: whether the backend
    has a C form of the element-wise ``op``; ``in_place``: {result slot: bound slot} for the
    results written straight into a bound buffer (``Program.writable_in_place``)."""
    steps = program.steps
    shapes = program.slot_shapes()
    groups: list[_Group] = []
    owner: dict[int, _Group] = {}  # result slot -> its group
    grouped: dict[int, _Group] = {}  # step index -> its group
    for i, step in enumerate(steps):
        kind = _kind(step, program, shapes, fusible)
        target = in_place.get(step.outputs[0]) if len(step.outputs) == 1 else None
        group, role = _choose(step, kind, groups, owner, target, shapes) if kind is not None else (None, None)
        for other in {owner[r.slot] for r in step.inputs if r.slot in owner}:
            if other is not group:
                other.closed = True  # it runs before this step, which reads it
        if target is not None:
            for other in groups:
                if other is not group and target in other.reads:
                    other.closed = True  # it must read the old value, before this step writes it
        if kind is None or role is None:
            continue
        if group is None:
            group = _Group(kind[1])
            groups.append(group)
        _join(group, i, step, role, kind, owner, target, shapes)
        grouped[i] = group
    exposed = program.exposed_slots()
    readers: dict[int, set[int]] = {}
    for i, step in enumerate(steps):
        for r in step.inputs:
            readers.setdefault(r.slot, set()).add(i)
    # In program order: each step that is in no group, and each group where its last step was.
    placed: list[Step | list[_Group]] = []
    for i, step in enumerate(steps):
        group = grouped.get(i)
        if group is None:
            placed.append(step)
        elif i == group.members[-1]:
            last = placed[-1] if placed else None
            if isinstance(last, list) and _side_by_side(last, group):
                last.append(group)  # one kernel for both (the optimizer's updates of several variables)
            else:
                placed.append([group])
    out: list[Step] = []
    removed = 0
    for entry in placed:
        if isinstance(entry, Step):
            out.append(entry)
            continue
        members = [m for g in entry for m in g.members]
        if len(members) == 1:
            out.append(steps[members[0]])
            continue
        segments = [g.members for g in entry]
        out.append(_fused_step(segments, steps, shapes, program, exposed, readers, in_place))
        removed += len(members) - 1
    program.steps = out
    program.kernels = {}
    return removed


def _side_by_side(run: list[_Group], group: _Group) -> bool:
    """Whether ``group`` can run in the kernel of the groups ``run`` (each its own stretch of
    the threads): none of them sums, none writes in place a one-element value, and ``group``
    neither reads what they make or overwrite nor overwrites what they read."""

    def plain(g: _Group) -> bool:
        return not g.sums and not g.pinned

    if not plain(group) or not all(plain(g) for g in run):
        return False
    made = {s for g in run for s in g.phase}
    read = {s for g in run for s in g.reads}
    written = {s for g in run for s in g.writes}
    return not (group.reads & (made | written)) and not (group.writes & read)


# What a step is to the grouping: ("gather", size), ("elementwise", size) or, for a sum over
# the leading axes, ("reduce", the elements summed, the elements of the result).
_Kind = tuple[str, int] | tuple[str, int, int]


def _kind(
    step: Step, program: Program, shapes: Mapping[int, Shape], fusible: Callable[[Op], bool]
) -> _Kind | None:
    """What the step is to a group, or None: not fusible."""
    op = step.op
    if len(step.outputs) != 1 or step.specs[0].dtype != "float32":
        return None
    dtypes = [program.dtypes[r.slot] for r in step.inputs]
    size = step.specs[0].size
    if isinstance(op, Gather):
        return ("gather", size) if dtypes == ["float32", "int32"] and size > 1 else None
    if dtypes and any(d != "float32" for d in dtypes):
        return None
    if isinstance(op, Sum):
        (ref,) = step.inputs
        shape = ref.shape if ref.shape is not None else shapes[ref.slot]
        axes = op.axes(len(shape))
        n = prod(shape)
        # Over leading axes only: then the sum of column j reads elements j, cols + j, ...
        if axes != tuple(range(len(axes))) or size == 0 or not 2 <= n // size <= SMALL:
            return None
        return ("reduce", n, size)
    if not fusible(op):
        return None
    return ("elementwise", size)


def _choose(
    step: Step,
    kind: _Kind,
    groups: list[_Group],
    owner: Mapping[int, _Group],
    target: int | None,
    shapes: Mapping[int, Shape],
) -> tuple[_Group | None, Role]:
    """The open group ``step`` joins (None: it starts one, or runs alone) and its role there."""
    what, size = kind[0], kind[1]
    open_groups = [g for g in groups if not g.closed]
    sources = list(
        {id(g): g for r in step.inputs if (g := owner.get(r.slot)) is not None and not g.closed}.values()
    )
    role: Role
    if what == "reduce":
        cols = kind[2]  # type: ignore[misc]
        role = "reduce"
        candidates = [g for g in sources if g.n == size and (not g.sums or g.cols == cols)]
    elif what == "elementwise" and size == 1:  # with what it reads, else with the latest group
        role = "pre"
        candidates = sources or open_groups[-1:]
    else:
        after_sums = [g for g in sources if g.sums and g.cols == size and g.n != size]
        if what == "elementwise" and after_sums:
            role, candidates = "post", after_sums
        else:
            role, candidates = "map", [g for g in open_groups if g.takes(size)]
    for group in reversed(candidates):
        if _can_join(group, step, role, owner, target, shapes):
            return group, role
    return None, "map" if role == "post" else role  # (alone, a post step is a map of its own)


def _can_join(
    group: _Group,
    step: Step,
    role: Role,
    owner: Mapping[int, _Group],
    target: int | None,
    shapes: Mapping[int, Shape],
) -> bool:
    if group.pinned and role == "reduce" and step.specs[0].size > 1:
        return False  # sums by column run over several blocks
    for r in step.inputs:
        if owner.get(r.slot) is not group:
            if r.slot in owner and not owner[r.slot].closed:
                return False  # it reads another open group too: that one runs first
            continue
        phase = group.phase[r.slot]
        if role == "map" and (isinstance(step.op, Gather) or phase in ("reduce", "post")):
            return False  # a gather reads rows where they lie; a sum is known only at the end
        if role == "reduce" and phase != "map":
            return False
        if role == "pre" and phase in ("reduce", "post") and group.cols != 1:
            return False  # one element after sums by column: not a value of this group's shape
    if target is None:
        return True
    # Written in place: safe where each element is read only by the thread that writes it (an
    # element of a map result, a column of a post one), or, for a one-element value, which
    # every thread reads, where it is written after every thread read it: in one block.
    if role == "reduce":
        return target not in group.reads
    if step.specs[0].size == 1 and role in ("pre", "post"):
        return group.one_block
    own = {r.slot for r in step.inputs if not _aligned(r, step, role, group, shapes)}
    return target not in group.unaligned and target not in own


def _aligned(r: Ref, step: Step, role: Role, group: _Group, shapes: Mapping[int, Shape]) -> bool:
    """Whether ``step`` reads ``r`` element for element: a map step a value of its own size, a
    post step one of the group's columns' size (not a gather, not broadcast)."""
    size = prod(r.shape if r.shape is not None else shapes[r.slot])
    if isinstance(step.op, Gather):
        return False
    if role == "map":
        return size == step.specs[0].size
    if role == "post":
        return size == step.specs[0].size == group.cols > 1
    return role == "reduce" and size == group.n


def _join(
    group: _Group,
    i: int,
    step: Step,
    role: Role,
    kind: _Kind,
    owner: dict[int, _Group],
    target: int | None,
    shapes: Mapping[int, Shape],
) -> None:
    phase: Role = role
    if role == "pre" and any(
        group.phase.get(r.slot) in ("reduce", "post") for r in step.inputs if owner.get(r.slot) is group
    ):
        phase = "post"  # a one-element value after a sum of everything
    elif role == "map":
        group.n = kind[1]
    elif role == "reduce":
        group.n, group.cols = kind[1], kind[2]  # type: ignore[misc]
    group.members.append(i)
    group.phase[step.outputs[0]] = phase
    owner[step.outputs[0]] = group
    outside = [r for r in step.inputs if owner.get(r.slot) is not group]
    group.reads.update(r.slot for r in outside)
    group.unaligned.update(r.slot for r in outside if not _aligned(r, step, phase, group, shapes))
    if target is not None:
        group.writes.add(target)
        group.pinned |= step.specs[0].size == 1 and phase in ("pre", "post")


def _fused_step(
    segments: list[list[int]],
    steps: list[Step],
    shapes: Mapping[int, Shape],
    program: Program,
    exposed: set[int],
    readers: Mapping[int, set[int]],
    in_place: Mapping[int, int],
) -> Step:
    """One Fused step for the steps ``segments`` (indices into ``steps``; one list per group
    that runs in the kernel, each on its own threads)."""
    order = [i for segment in segments for i in segment]
    members = set(order)
    inputs: list[Ref] = []
    value_of: dict[tuple[int, Shape | None], int] = {}  # external (slot, view) -> input index
    made: dict[int, int] = {}  # member result slot -> its value
    specs_in: list[Spec] = []
    for i in order:
        for r in steps[i].inputs:
            if r.slot not in made and (r.slot, r.shape) not in value_of:
                value_of[(r.slot, r.shape)] = len(inputs)
                inputs.append(r)
                specs_in.append(
                    Spec(r.shape if r.shape is not None else shapes[r.slot], program.dtypes[r.slot])
                )
        made[steps[i].outputs[0]] = -1  # numbered below, once the inputs are known
    k = len(inputs)
    for j, i in enumerate(order):
        made[steps[i].outputs[0]] = k + j
    nodes = []
    for i in order:
        step = steps[i]
        args = tuple(
            Arg(made[r.slot], r.shape) if r.slot in made else Arg(value_of[(r.slot, r.shape)])
            for r in step.inputs
        )
        nodes.append(Node(step.op, args, step.specs[0]))
    outputs = [
        steps[i].outputs[0]
        for i in order
        if steps[i].outputs[0] in exposed
        or steps[i].outputs[0] in in_place
        or any(j not in members for j in readers.get(steps[i].outputs[0], ()))
    ]
    split = tuple(len(segment) for segment in segments) if len(segments) > 1 else ()
    op = Fused(tuple(specs_in), tuple(nodes), tuple(made[s] for s in outputs), split)
    return Step(op, tuple(inputs), tuple(outputs), tuple(op.spec_of(made[s]) for s in outputs))
