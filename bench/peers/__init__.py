"""The systems the benchmark compares, in the order they run (deeplearn first: its Session's
result is what every peer's step is checked against).

Peer libraries (CuPy, PyTorch, JAX) are imported only when their system is created, and a
missing one makes its system "skipped", never an error.
"""

from __future__ import annotations

from bench.peers.base import System, Unavailable
from bench.peers.deeplearn_peer import DeeplearnEager, DeeplearnSession
from bench.peers.handwritten import CuPyPeer, NumPyPeer
from bench.peers.jax_peer import JaxJit
from bench.peers.torch_peer import TorchCompile, TorchCUDAGraph, TorchEager

__all__ = ["SYSTEMS", "System", "Unavailable", "systems_for"]

SYSTEMS: list[type[System]] = [
    DeeplearnSession,
    DeeplearnEager,
    NumPyPeer,
    CuPyPeer,
    TorchEager,
    TorchCUDAGraph,
    TorchCompile,
    JaxJit,
]


def systems_for(backend: str, only: list[str] | None = None) -> list[type[System]]:
    """The systems that run on ``backend`` by default, or exactly ``only`` (by id, in the
    standard order) when given.

    Example:
        >>> [s.id for s in systems_for("cpu")]
        ['deeplearn-session', 'deeplearn-eager', 'numpy', 'torch', 'jax']
    """
    if only:
        known = {s.id for s in SYSTEMS}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise ValueError(f"unknown systems {unknown}; known: {sorted(known)}")
        return [s for s in SYSTEMS if s.id in only]
    return [s for s in SYSTEMS if backend in s.backends]
