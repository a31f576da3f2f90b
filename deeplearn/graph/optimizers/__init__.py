"""The optimizers of Session.train (deeplearn.js src/graph/optimizers)."""

from __future__ import annotations

from deeplearn.graph.optimizers.adadelta_optimizer import AdadeltaOptimizer
from deeplearn.graph.optimizers.adagrad_optimizer import AdagradOptimizer
from deeplearn.graph.optimizers.adam_optimizer import AdamOptimizer
from deeplearn.graph.optimizers.adamax_optimizer import AdamaxOptimizer
from deeplearn.graph.optimizers.momentum_optimizer import MomentumOptimizer
from deeplearn.graph.optimizers.optimizer import Optimizer
from deeplearn.graph.optimizers.rmsprop_optimizer import RMSPropOptimizer
from deeplearn.graph.optimizers.sgd_optimizer import SGDOptimizer

__all__ = [
    "AdadeltaOptimizer",
    "AdagradOptimizer",
    "AdamOptimizer",
    "AdamaxOptimizer",
    "MomentumOptimizer",
    "Optimizer",
    "RMSPropOptimizer",
    "SGDOptimizer",
]
