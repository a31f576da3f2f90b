"""Data: input providers, in-memory datasets and checkpoints (deeplearn.js src/data)."""

from __future__ import annotations

from deeplearn.data.input_provider import (
    InCPUMemoryShuffledInputProviderBuilder,
    InGPUMemoryShuffledInputProviderBuilder,
    InMemoryShuffledInputProviderBuilder,
    InputProvider,
)

__all__ = [
    "InputProvider",
    "InMemoryShuffledInputProviderBuilder",
    "InCPUMemoryShuffledInputProviderBuilder",
    "InGPUMemoryShuffledInputProviderBuilder",
]
