"""Graph traversal helpers: which nodes a request needs, in which order, and which tensors get
gradients. Pure functions over Nodes; no NDArrays, no math."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deeplearn.graph.graph import Node, Tensor

__all__ = [
    "get_ordered_evaluation_set",
    "get_placeholder_nodes",
    "get_unordered_evaluation_set",
    "get_variable_nodes_from_evaluation_set",
    "is_input_node",
    "should_backprop",
    "tensors_needing_gradient",
]


def get_unordered_evaluation_set(nodes: Iterable[Node], terminating_nodes: Collection[Node]) -> set[Node]:
    """Every node needed to compute ``nodes``: a flood fill over inputs that stops at (and
    includes) ``terminating_nodes`` — the fed tensors, whose inputs are then not needed.

    Example:
        >>> g = dl.Graph()
        >>> x = g.placeholder("x", [2]); sq = g.square(x); y = g.add(sq, g.constant(3))
        >>> sorted(n.name for n in get_unordered_evaluation_set([y.node], {sq.node}))
        ['Constant', 'add', 'square']
    """
    terminating = set(terminating_nodes)
    seen: set[Node] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in terminating:
            continue
        stack.extend(t.node for t in node.inputs)
    return seen


def get_ordered_evaluation_set(unordered: Iterable[Node]) -> list[Node]:
    """The nodes in an order where every node comes after its inputs.

    A node can only be built from tensors that already exist, so creation order (node ids) is a
    topological order; sorting by id is enough, and it is deterministic.
    """
    return sorted(unordered, key=lambda n: n.id)


def get_variable_nodes_from_evaluation_set(nodes: Iterable[Node]) -> list[Node]:
    """The VariableNodes among ``nodes``, in creation order."""
    from deeplearn.graph.graph import VariableNode

    return sorted((n for n in nodes if isinstance(n, VariableNode)), key=lambda n: n.id)


def get_placeholder_nodes(nodes: Iterable[Node]) -> list[Node]:
    """The PlaceholderNodes among ``nodes``, in creation order."""
    from deeplearn.graph.graph import PlaceholderNode

    return sorted((n for n in nodes if isinstance(n, PlaceholderNode)), key=lambda n: n.id)


def is_input_node(node: Node) -> bool:
    """Whether ``node`` has no inputs of its own (placeholder, variable or constant)."""
    return node.op_rule is None


def should_backprop(tensor: Tensor) -> bool:
    """Whether gradients flow into ``tensor``: every tensor except constants."""
    from deeplearn.graph.graph import ConstantNode

    return not isinstance(tensor.node, ConstantNode)


def tensors_needing_gradient(ordered: list[Node], fed: Collection[Tensor]) -> set[Tensor]:
    """The tensors of an evaluation set that receive gradients in training.

    As deeplearn.js: every tensor that is not a constant and not computed from constants only
    (placeholders and fed tensors included, so their gradients can be inspected).
    """
    fed_set = set(fed)
    out: set[Tensor] = set()
    for node in ordered:  # inputs first, so each node sees its inputs' verdicts
        t = node.output
        if t in fed_set or is_input_node(node):
            if should_backprop(t):
                out.add(t)
        elif any(i in out for i in node.inputs) and t.dtype == "float32":
            out.add(t)
    return out
