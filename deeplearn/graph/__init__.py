"""Delayed execution: Graph, Tensor, Session, optimizers and initializers (deeplearn.js src/graph)."""

from __future__ import annotations

from deeplearn.graph.graph import ConstantNode, Graph, Node, OpNode, PlaceholderNode, Tensor, VariableNode
from deeplearn.graph.initializers import (
    ConstantInitializer,
    Initializer,
    NDArrayInitializer,
    OnesInitializer,
    RandomNormalInitializer,
    RandomTruncatedNormalInitializer,
    RandomUniformInitializer,
    VarianceScalingInitializer,
    ZerosInitializer,
)
from deeplearn.graph.optimizers import (
    AdadeltaOptimizer,
    AdagradOptimizer,
    AdamaxOptimizer,
    AdamOptimizer,
    MomentumOptimizer,
    Optimizer,
    RMSPropOptimizer,
    SGDOptimizer,
)
from deeplearn.graph.session import CostReduction, FeedEntry, Session

__all__ = [
    "AdadeltaOptimizer",
    "AdagradOptimizer",
    "AdamOptimizer",
    "AdamaxOptimizer",
    "ConstantInitializer",
    "ConstantNode",
    "CostReduction",
    "FeedEntry",
    "Graph",
    "Initializer",
    "MomentumOptimizer",
    "NDArrayInitializer",
    "Node",
    "OnesInitializer",
    "OpNode",
    "Optimizer",
    "PlaceholderNode",
    "RMSPropOptimizer",
    "RandomNormalInitializer",
    "RandomTruncatedNormalInitializer",
    "RandomUniformInitializer",
    "SGDOptimizer",
    "Session",
    "Tensor",
    "VariableNode",
    "VarianceScalingInitializer",
    "ZerosInitializer",
]
