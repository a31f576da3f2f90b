"""Where the host time of a repeated ``Session.train`` call goes: each piece of the call replaced,
one after another, by a stub that returns what it returned last, and the step timed at each
stage in one process.

A training loop's repeated call (``deeplearn/graph/rerun.py``) is a chain of small Python pieces
around one compiled step (a CPU step's kernels, or one CUDA graph launch). Timed alone, a piece
costs a fraction of what it costs inside the loop, where the others run around it; so this
probe times the whole loop each time, with one more piece stubbed out than the stage before, and
reports what each removed. Stages are interleaved over the rounds (so that a busy neighbour slows
them alike) and each figure is the fastest round. Stubs keep the step running the same kernels
on the same slots: the figures say what each piece costs, not what the step computes.

Usage: python bench/host_probe.py [--backend cpu|cuda] [--workload quad] [--steps 2000] [--rounds 9]

Example:
    >>> rows = breakdown("cpu", "quad", steps=20, rounds=1)
    >>> [name for name, _ in rows][:3]
    ['the whole call', 'zero Scalar', 'row draw']
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__" or str(ROOT) not in sys.path:
    # `python bench/host_probe.py` puts bench/ first on sys.path; import everything as the bench package.
    if sys.path and Path(sys.path[0]).resolve() == ROOT / "bench":
        sys.path.pop(0)
    sys.path.insert(0, str(ROOT))

from bench.peers.deeplearn_peer import DeeplearnSession
from deeplearn.compile.rows import RowSpan
from bench.workloads import make_problem

__all__ = ["breakdown"]


class _Same:
    """A stand-in for the Session's ZeroScalars that hands out one Scalar every time."""

    def __init__(self, scalar: Any) -> None:
        self.scalar = scalar

    def next(self, math: Any) -> Any:
        return self.scalar


def _moving_on(values: list[Any]) -> Callable[[], list[Any]]:
    """What returns ``values`` again at each call, but with each RowSpan among them (a GPU
    provider's rows, ``deeplearn/compile/rows.py``) the next one of its block, as a training
    loop's draws are: a captured step finds each where its cursor already points."""
    out = list(values)
    spans = [k for k, v in enumerate(out) if type(v) is RowSpan]
    if not spans:
        return lambda: values

    def next_values() -> list[Any]:
        moved: dict[int, RowSpan] = {}  # one span given to paired inputs stays one
        for k in spans:
            span = out[k]
            if id(span) not in moved:
                start = span.start + span.count
                moved[id(span)] = RowSpan(
                    span.block, start if start + span.count <= span.block.size else 0, span.count
                )
            out[k] = moved[id(span)]
        return list(out)

    return next_values


def _stages(system: DeeplearnSession) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
    """(what is stubbed, apply the stub, take it back) for each piece, in the order they pile up."""
    session, math, optimizer = system.session, system.math, system.optimizer
    rerun = session._reruns._last
    if rerun is None or not rerun.program.capture:
        raise RuntimeError("the step did not run compiled as a rerun: nothing to break down")
    captured = rerun.program.capture
    builder, _, together = rerun.draws[0]
    raws = rerun.inputs(math, session._input_value, "host_probe")
    slots = captured.run(raws, True)
    drawn = builder._draw_indices_together(math, together, rerun.batch_size, span=True)
    next_raws, next_drawn = _moving_on(raws), _moving_on(drawn)
    zeros, zero = session._zeros, session._zeros.next(math)

    def attribute(obj: Any, name: str, value: Any) -> tuple[Callable[[], None], Callable[[], None]]:
        if not callable(getattr(obj, name, None)):  # (renamed: a stub would silently stub nothing)
            raise RuntimeError(f"{type(obj).__name__} has no {name} to stand in for")
        return (lambda: setattr(obj, name, value)), (lambda: obj.__dict__.pop(name, None))

    def swap_zeros(value: Any) -> Callable[[], None]:
        return lambda: setattr(session, "_zeros", value)

    stages = [
        ("zero Scalar", swap_zeros(_Same(zero)), swap_zeros(zeros)),
        ("row draw", *attribute(builder, "_draw_indices_together", lambda *a, **k: next_drawn())),
        ("the inputs' checks", *attribute(rerun, "inputs", lambda *a: next_raws())),
        ("the compiled step (kernels or launch)", *attribute(captured, "run", lambda *a: slots)),
        ("releasing the last call's values", *attribute(session, "_release_unread", lambda p: None)),
        ("the step's end (maps, optimizer, cost)", *attribute(session, "_finish_training", lambda *a: zero)),
        ("before_batch", *attribute(optimizer, "before_batch", lambda *a: None)),
        ("finding the rerun", *attribute(session._reruns, "find", lambda *a: rerun)),
    ]
    return stages


def breakdown(backend: str, workload: str, steps: int = 2000, rounds: int = 9) -> list[tuple[str, float]]:
    """[(piece, µs a step it takes inside the loop)], the first row the whole call's µs a step
    and the last the rest (the lock, the safe-mode check, the benchmark's own loop)."""
    system = DeeplearnSession(backend)
    system.prepare(make_problem(workload, backend))
    try:
        system.first_step()
        system.run(10)
        system.sync()
        stages = _stages(system)
        times: list[list[float]] = [[] for _ in range(len(stages) + 1)]
        for _ in range(rounds):
            for level in range(len(stages) + 1):
                for _, apply, _ in stages[:level]:
                    apply()
                t0 = time.perf_counter()
                system.run(steps)
                system.sync()
                times[level].append((time.perf_counter() - t0) / steps * 1e6)
                for _, _, undo in stages[:level]:
                    undo()
        best = [min(t) for t in times]
        rows = [("the whole call", best[0])]
        rows += [(name, best[k] - best[k + 1]) for k, (name, _, _) in enumerate(stages)]
        rows.append(("the rest", best[-1]))
        return rows
    finally:
        system.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workload", default="quad")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rows = breakdown(args.backend, args.workload, args.steps, args.rounds)
    print(
        f"{args.workload} on {args.backend}: µs a step (fastest of {args.rounds} rounds of {args.steps} steps)"
    )
    for name, us in rows:
        print(f"  {name:42s} {us:8.2f}")


if __name__ == "__main__":
    main()
