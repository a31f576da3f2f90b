"""Plans: what a Session call needs, worked out once per request and per call signature.

A ``Plan`` is what a request (the tensors asked for, the fed tensors) needs: the nodes to run
in order and the variables. A ``Signature`` is a plan specialised to one call signature (which
fed tensors carry a batch, the batch size): per node, whether it is batched, the shape to
expect, which inputs want gradients; and the Programs recorded for it (``deeplearn/compile/``).
Both are cached, and both caches are bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deeplearn.graph import graph_util
from deeplearn.graph.graph import Graph, Node, Tensor

if TYPE_CHECKING:
    from deeplearn.compile.program import Program

__all__ = ["MAX_SIGNATURES", "Plan", "Signature", "forget_oldest"]

MAX_SIGNATURES = 16  # per plan: one per call signature (a batch size), the oldest forgotten first


@dataclass
class Plan:
    """What a request needs: the nodes to run in order (fed nodes excluded), its variables;
    ``sources``, the nodes among them that hold data rather than compute it (variables and
    constants: no op rule)."""

    nodes: list[Node]
    fed: frozenset[Tensor]
    variables: list[Tensor]
    sources: list[Node] = field(init=False, repr=False)
    _needs_grad: frozenset[Tensor] | None = field(default=None, repr=False)
    _steps: dict[tuple[frozenset[Tensor], int | None], Signature] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.sources = [n for n in self.nodes if graph_util.is_input_node(n)]

    @classmethod
    def of(cls, graph: Graph, tensors: Sequence[Tensor], fed: frozenset[Tensor], where: str) -> Plan:
        """The plan of asking ``graph`` for ``tensors`` with ``fed`` fed, checked: the tensors
        are ``graph``'s, and every placeholder they need is fed.

        Example:
            >>> g = dl.Graph(); x = g.placeholder("x", []); y = g.square(x)
            >>> [n.name for n in Plan.of(g, [y], frozenset([x]), "Session.eval").nodes]
            ['square']
        """
        for t in tensors:
            if not isinstance(t, Tensor):
                raise TypeError(f"{where}: expected Tensors to evaluate; got {t!r}.")
            if t.node.graph is not graph:
                raise ValueError(f"{where}: {t!r} belongs to another Graph than this Session's.")
        needed = graph_util.get_unordered_evaluation_set([t.node for t in tensors], {t.node for t in fed})
        missing = [n for n in graph_util.get_placeholder_nodes(needed) if n.output not in fed]
        if missing:
            names = ", ".join(repr(n.name) for n in missing)
            noun = "placeholder" if len(missing) == 1 else "placeholders"
            verb = "must be fed" if len(missing) == 1 else "must all be fed"
            raise ValueError(f"{where}: {noun} {names} {verb}; got feeds for {sorted(t.name for t in fed)}.")
        ordered = graph_util.get_ordered_evaluation_set(n for n in needed if n.output not in fed)
        variables = [n.output for n in graph_util.get_variable_nodes_from_evaluation_set(ordered)]
        return cls(ordered, fed, variables)

    def needs_grad(self) -> frozenset[Tensor]:
        if self._needs_grad is None:
            fed_nodes = [t.node for t in self.fed]
            ordered = graph_util.get_ordered_evaluation_set([*self.nodes, *fed_nodes])
            self._needs_grad = frozenset(graph_util.tensors_needing_gradient(ordered, self.fed))
        return self._needs_grad

    def step(self, batched_fed: frozenset[Tensor], batch_size: int | None) -> Signature:
        """The plan specialised to which fed tensors carry a batch axis, and the batch size."""
        key = (batched_fed, batch_size)
        step = self._steps.get(key)
        if step is None:
            forget_oldest(self._steps, MAX_SIGNATURES)  # every distinct batch size would keep its recordings
            step = self._steps[key] = Signature(self, batched_fed, batch_size)
        return step


class Signature:
    """A plan specialised to one call signature (which fed tensors are batched, the batch
    size): everything a call would otherwise recompute per node — whether each input is
    batched, the output shape to expect, which inputs want gradients — computed once.

    ``forward`` holds (node, rule, inputs, output, input flags, expected shape), rule None for
    variables and constants; ``backward`` holds (node, rule, inputs, output, input flags,
    wants) for the nodes that send a gradient to at least one input, last node first.
    """

    __slots__ = ("backward", "batched", "forward", "inference", "recordings", "training")

    def __init__(self, plan: Plan, batched_fed: frozenset[Tensor], batch_size: int | None) -> None:
        batched = {t: t in batched_fed for t in plan.fed}
        forward: list[tuple[Any, ...]] = []
        for node in plan.nodes:
            out = node.output
            rule = node.op_rule
            if rule is None:
                batched[out] = False
                forward.append((node, None, (), out, (), out.shape))
                continue
            flags = tuple(batched[t] for t in node.inputs)
            is_batched = any(flags)
            batched[out] = is_batched
            expected = ((batch_size,) if is_batched else ()) + out.shape
            forward.append((node, rule, node.inputs, out, flags, expected))
        self.forward = forward
        self.batched = batched
        needs = plan.needs_grad()
        backward: list[tuple[Any, ...]] = []
        for node in reversed(plan.nodes):
            if node.op_rule is None:
                continue
            wants = tuple(t in needs for t in node.inputs)
            if any(wants):
                flags = tuple(batched[t] for t in node.inputs)
                backward.append((node, node.op_rule, node.inputs, node.output, flags, wants))
        self.backward = backward
        # The recorded Programs (deeplearn/compile/) of its inference calls, and of its training
        # calls per (optimizer class, trained variables, cost reduction): eval_batch(cost) and
        # train(cost) share a step but not a Program.
        self.inference: Program | None = None
        self.training: dict[tuple[Any, ...], Program] = {}
        self.recordings = {False: 0, True: 0}


def forget_oldest(cache: dict[Any, Any], limit: int) -> None:
    """Makes room for one more entry in ``cache`` (insertion-ordered) by dropping the oldest."""
    while len(cache) >= limit:
        del cache[next(iter(cache))]
