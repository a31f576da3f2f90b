"""What every benchmarked system implements, and the errors that say why one cannot run."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.workloads import Problem

__all__ = ["System", "Unavailable"]


class Unavailable(Exception):
    """The system cannot run on this machine (a package or the GPU is missing): reported as
    skipped with this message, never as a figure."""


class System:
    """One way of running the workloads (deeplearn Session, PyTorch eager, JAX jit, ...).

    The harness drives every system the same way::

        s = SystemClass(backend)      # raises Unavailable when it cannot run here
        s.prepare(problem)            # data and initial weights on the device; compile/capture;
                                      # leaves the weights at their initial values
        cost = s.first_step()         # one step from the initial weights (cost for "train")
        s.sync(); s.result()          # parameters after that step (or the op outputs)
        s.run(n); s.sync()            # timed: n more steps
        s.peak_memory(); s.close()

    Attributes:
        id: short stable name used in results files ("torch-cudagraph").
        label: what tables show ("PyTorch + CUDA graph").
        backends: the backends ("cpu", "cuda") it runs on by default.
    """

    id: ClassVar[str] = ""
    label: ClassVar[str] = ""
    backends: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    memory_note: ClassVar[str | None] = None

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.problem: Problem | None = None

    # -- the protocol --------------------------------------------------------------------------
    def prepare(self, problem: Problem) -> None:
        raise NotImplementedError

    def first_step(self) -> float | None:
        """One step from the initial weights; returns the step's cost (batch mean) for training
        workloads, None for op workloads."""
        self.run(1)
        return None

    def run(self, n: int) -> None:
        """Runs ``n`` steps; may return before the device has finished (see ``sync``)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Waits until the device has finished all work issued so far."""

    def result(self) -> dict[str, np.ndarray]:
        """Parameters by name (training; same names and layouts as ``problem.init``) or outputs
        by name (op workloads), as host arrays."""
        raise NotImplementedError

    def reset_memory_stats(self) -> None:
        """Clears the peak-memory counter before ``prepare`` where the library allows."""

    def peak_memory(self) -> int | None:
        """Peak device memory in bytes since ``reset_memory_stats``, or None where unreadable."""
        return None

    def close(self) -> None:
        """Drops this system's arrays so the next system starts with free device memory."""

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def host(a: Any) -> np.ndarray:
        """A host NumPy copy of a NumPy/CuPy array."""
        if hasattr(a, "get") and not isinstance(a, np.ndarray):
            return np.asarray(a.get())
        return np.asarray(a)
