"""Data: input providers, in-memory datasets, checkpoints (deeplearn.js src/data) and model files."""

from __future__ import annotations

from deeplearn.data.checkpoint import CheckpointLoader, write_checkpoint
from deeplearn.data.dataset import DataStats, InMemoryDataset
from deeplearn.data.download import DownloadError
from deeplearn.data.in_order import InOrderInputProvider
from deeplearn.data.input_provider import (
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    InMemoryShuffledInputProviderBuilder,
    InputProvider,
)
from deeplearn.data.saving import load_model, read_model_metadata, save_model

__all__ = [
    "CheckpointLoader",
    "DataStats",
    "DownloadError",
    "InCPUMemoryShuffledInputProviderBuilder",
    "InGPUMemoryShuffledInputProviderBuilder",
    "InMemoryDataset",
    "InMemoryShuffledInputProviderBuilder",
    "InOrderInputProvider",
    "InputProvider",
    "load_model",
    "read_model_metadata",
    "save_model",
    "write_checkpoint",
]
