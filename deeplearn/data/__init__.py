"""Data: input providers, in-memory datasets and checkpoints (deeplearn.js src/data)."""

from __future__ import annotations

from deeplearn.data.checkpoint import CheckpointLoader, write_checkpoint
from deeplearn.data.dataset import DataStats, InMemoryDataset
from deeplearn.data.input_provider import (
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    InMemoryShuffledInputProviderBuilder,
    InputProvider,
)

__all__ = [
    "CheckpointLoader",
    "DataStats",
    "InCPUMemoryShuffledInputProviderBuilder",
    "InGPUMemoryShuffledInputProviderBuilder",
    "InMemoryDataset",
    "InMemoryShuffledInputProviderBuilder",
    "InputProvider",
    "write_checkpoint",
]
