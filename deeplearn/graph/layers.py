"""GraphLayers: layer helpers that add several nodes at once (``graph.layers.dense``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deeplearn.graph.initializers import Initializer, VarianceScalingInitializer, ZerosInitializer
from deeplearn.math.scope import REGISTRY
from deeplearn.types import ShapeError

if TYPE_CHECKING:
    from deeplearn.graph.graph import Graph, Tensor

__all__ = ["GraphLayers"]


class GraphLayers:
    """The layer helpers of one Graph."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def dense(
        self,
        name: str,
        x: Tensor,
        units: int,
        activation: Callable[[Tensor], Tensor] | None = None,
        use_bias: bool = True,
        kernel_initializer: Initializer | None = None,
        bias_initializer: Initializer | None = None,
    ) -> Tensor:
        """A fully connected layer: ``activation(x·W + b)`` for a vector x.

        Creates the variables ``name-weights`` [x.shape[0], units] (VarianceScalingInitializer
        by default) and ``name-bias`` [units] (zeros by default).

        Example:
            >>> g = dl.Graph()
            >>> h = g.layers.dense("hidden", g.placeholder("x", [4]), 3, lambda t: g.relu(t))
            >>> h.shape, [n.name for n in g.get_nodes() if isinstance(n, dl.graph.VariableNode)]
            ((3,), ['hidden-weights', 'hidden-bias'])
        """
        if x.rank != 1:
            raise ShapeError(f"GraphLayers.dense: x must be 1-D; got x={x!r}.")
        g = self.graph
        kernel_initializer = kernel_initializer or VarianceScalingInitializer()
        bias_initializer = bias_initializer or ZerosInitializer()
        w_data = kernel_initializer.initialize([x.shape[0], units], x.shape[0], units)
        REGISTRY.untrack_everywhere(w_data)  # the graph's weights outlive any open scope
        out = g.matmul(x, g.variable(f"{name}-weights", w_data))
        if use_bias:
            b_data = bias_initializer.initialize([units], x.shape[0], units)
            REGISTRY.untrack_everywhere(b_data)
            out = g.add(out, g.variable(f"{name}-bias", b_data))
        return activation(out) if activation is not None else out
