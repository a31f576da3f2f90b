"""deeplearn: hardware-accelerated NDArrays and trainable Graphs, after deeplearn.js 0.3.

Public names only; no logic. ``import deeplearn as dl``.
"""

from __future__ import annotations

from deeplearn.data import (
    CheckpointLoader,
    DataStats,
    DownloadError,
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    InMemoryDataset,
    InOrderInputProvider,
    InputProvider,
    load_model,
    read_model_metadata,
    save_model,
    write_checkpoint,
)
from deeplearn.environment import ENV, Environment, memory
from deeplearn.export import export_onnx
from deeplearn.graph import (
    AdadeltaOptimizer,
    AdagradOptimizer,
    AdamaxOptimizer,
    AdamOptimizer,
    ConstantInitializer,
    CostReduction,
    FeedEntry,
    Graph,
    Initializer,
    MomentumOptimizer,
    NDArrayInitializer,
    OnesInitializer,
    Optimizer,
    RandomNormalInitializer,
    RandomTruncatedNormalInitializer,
    RandomUniformInitializer,
    RMSPropOptimizer,
    Session,
    SGDOptimizer,
    Tensor,
    VarianceScalingInitializer,
    ZerosInitializer,
)
from deeplearn.graph_runner import GraphRunner, GraphRunnerEventObserver, MetricReduction, TensorBoardLogger
from deeplearn.math.backends import MathBackend, MathBackendCPU
from deeplearn.math.ndarray import Array1D, Array2D, Array3D, Array4D, NDArray, Scalar, from_dlpack
from deeplearn.math.ndarray_math import NDArrayMath, NDArrayMathCPU, NDArrayMathGPU
from deeplearn.math.ops.linalg import MatrixOrientation
from deeplearn.math.ops import conv_util
from deeplearn.types import DisposedError, DTypeError, ShapeError
from deeplearn import models, util

__version__ = "0.1.0"
version = __version__


__all__ = [
    "util",
    "models",
    "conv_util",
    "ENV",
    "Environment",
    "memory",
    "from_dlpack",
    "MathBackend",
    "MathBackendCPU",
    "NDArray",
    "Scalar",
    "Array1D",
    "Array2D",
    "Array3D",
    "Array4D",
    "NDArrayMath",
    "NDArrayMathCPU",
    "NDArrayMathGPU",
    "MatrixOrientation",
    "ShapeError",
    "DTypeError",
    "DisposedError",
    "version",
    "Graph",
    "Tensor",
    "Session",
    "FeedEntry",
    "CostReduction",
    "Optimizer",
    "SGDOptimizer",
    "MomentumOptimizer",
    "RMSPropOptimizer",
    "AdagradOptimizer",
    "AdadeltaOptimizer",
    "AdamOptimizer",
    "AdamaxOptimizer",
    "InputProvider",
    "InCPUMemoryShuffledInputProviderBuilder",
    "InGPUMemoryShuffledInputProviderBuilder",
    "InOrderInputProvider",
    "InMemoryDataset",
    "DataStats",
    "CheckpointLoader",
    "DownloadError",
    "write_checkpoint",
    "save_model",
    "load_model",
    "read_model_metadata",
    "export_onnx",
    "GraphRunner",
    "GraphRunnerEventObserver",
    "MetricReduction",
    "TensorBoardLogger",
    "Initializer",
    "VarianceScalingInitializer",
    "ZerosInitializer",
    "OnesInitializer",
    "ConstantInitializer",
    "NDArrayInitializer",
    "RandomNormalInitializer",
    "RandomTruncatedNormalInitializer",
    "RandomUniformInitializer",
]
