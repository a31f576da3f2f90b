"""Times deeplearn's ops (a matrix product, a convolution, an element-wise op and a reduction) at a
range of sizes on the CPU and, when ``dl.ENV`` says CUDA is available, on the GPU.

Run it with ``python demos/benchmarks/benchmarks.py`` (``--op mat_mul`` for one op; ``--min-size``,
``--max-size`` and ``--repeats`` as below), which prints a table, or live in the browser with
``./scripts/watch-demo demos/benchmarks``, which plots time against size as it measures.

A size is ``n``: the ops work on n × n matrices and n × n images. From the smallest n the sizes
double up to the largest (which is measured too). Each op at each size on each backend is timed the
way ``bench/`` times its workloads, with bench's own code (``bench/harness.py``; bench/README.md,
"How a figure is made"): a warm-up, then ``repeats`` timed repeats of N calls, N chosen so that a
repeat lasts about 20 ms, the device synchronised before and after each repeat; the figure is the
median over the repeats of the time per call, with the fastest and slowest repeat beside it. The
largest n is capped at 1024 so that a whole run takes seconds on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    # `python demos/benchmarks/benchmarks.py` puts this folder on sys.path, not the repository.
    sys.path.insert(0, str(ROOT))

import deeplearn as dl  # noqa: E402
from bench.harness import Settings, summarize, time_repeat, warm_up  # noqa: E402
from bench.peers.base import System  # noqa: E402

__all__ = ["CHANNELS", "MAX_SIZE", "MIN_SIZE", "OPS", "TARGET_S", "Op", "OpSystem", "available_backends",
           "main", "make_math", "measure", "parse_ops", "run_benchmarks", "sizes_between"]

MIN_SIZE = 4       # the smallest n allowed
MAX_SIZE = 1024    # the largest: conv2d at 1024 takes ~0.2 s a call on 2 CPU cores
MIN_REPEATS = 5    # as bench/run.py
MAX_REPEATS = 100
TARGET_S = 0.02    # seconds per timed repeat (bench's default is 0.2: a page wants many points quickly)
CHANNELS = 8       # conv2d: 8 channels in and out, a 3×3 filter, "same" padding


@dataclass(frozen=True)
class Op:
    """One op: the shapes of its inputs for a size n, the call, and the work one call does (in the
    op's unit: FLOPs for a GFLOP/s rate, bytes read and written for a GB/s rate)."""

    name: str
    kind: str
    code: str
    shapes: Callable[[int], list[tuple[int, ...]]]
    call: Callable[[dl.NDArrayMath, list[dl.NDArray]], dl.NDArray]
    work: Callable[[int], float]
    unit: str


OPS: dict[str, Op] = {op.name: op for op in (
    Op("mat_mul", "matrix product", "math.mat_mul(a, b)", lambda n: [(n, n), (n, n)],
       lambda m, x: m.mat_mul(x[0], x[1]), lambda n: 2.0 * n**3, "GFLOP/s"),
    Op("conv2d", "convolution", "math.conv2d(x, w, b, 1, 'same')",
       lambda n: [(n, n, CHANNELS), (3, 3, CHANNELS, CHANNELS), (CHANNELS,)],
       lambda m, x: m.conv2d(x[0], x[1], x[2], 1, "same"), lambda n: 2.0 * 9 * CHANNELS * CHANNELS * n * n, "GFLOP/s"),
    Op("add", "element-wise", "math.add(a, b)", lambda n: [(n, n), (n, n)],
       lambda m, x: m.add(x[0], x[1]), lambda n: 3 * 4.0 * n * n, "GB/s"),       # reads a and b, writes the sum
    Op("sum", "reduction", "math.sum(a)", lambda n: [(n, n)],
       lambda m, x: m.sum(x[0]), lambda n: 4.0 * n * n, "GB/s"),                 # reads a
)}


def parse_ops(text: str) -> list[str]:
    """The ops named in ``text`` (separated by commas or spaces), in the order given, each once.

    Example:
        >>> parse_ops("mat_mul, sum")
        ['mat_mul', 'sum']
        >>> parse_ops("matmul")
        Traceback (most recent call last):
        ...
        ValueError: Unknown op 'matmul'; the ops are: mat_mul, conv2d, add, sum.
    """
    names = [name for name in text.replace(",", " ").split() if name]
    if not names:
        raise ValueError(f"Name at least one op: {', '.join(OPS)}.")
    for name in names:
        if name not in OPS:
            raise ValueError(f"Unknown op {name!r}; the ops are: {', '.join(OPS)}.")
    return list(dict.fromkeys(names))


def sizes_between(smallest: int, largest: int) -> list[int]:
    """The sizes measured: ``smallest``, doubling while below ``largest``, then ``largest``.

    Example:
        >>> sizes_between(16, 128), sizes_between(100, 500), sizes_between(64, 64)
        ([16, 32, 64, 128], [100, 200, 400, 500], [64])
    """
    if not MIN_SIZE <= smallest <= largest <= MAX_SIZE:
        raise ValueError(f"The sizes must satisfy {MIN_SIZE} <= smallest <= largest <= {MAX_SIZE}; "
                         f"got {smallest} and {largest}.")
    sizes = [smallest]
    while sizes[-1] * 2 < largest:
        sizes.append(sizes[-1] * 2)
    return sizes if sizes[-1] == largest else [*sizes, largest]


def available_backends() -> list[str]:
    """"cpu", and "cuda" too when ``dl.ENV`` says CUDA is available (CuPy and a GPU)."""
    return ["cpu", "cuda"] if dl.ENV.get("CUDA_AVAILABLE") else ["cpu"]


def make_math(backend: str) -> dl.NDArrayMath:
    return dl.NDArrayMathGPU() if backend == "cuda" else dl.NDArrayMathCPU()


class OpSystem(System):
    """One op at one size on one NDArrayMath, as a bench system, so that bench's harness drives it
    like any of its own: ``run(k)`` calls the op k times (each result disposed before the next
    call, as bench's op workloads do) and ``sync()`` waits for the device.

    Example:
        >>> system = OpSystem(OPS["add"], 2, dl.NDArrayMathCPU())
        >>> system.run(3); system.sync(); system.result()["out"].shape
        (2, 2)
        >>> system.close()
    """

    def __init__(self, op: Op, n: int, math: dl.NDArrayMath, seed: int = 0) -> None:
        super().__init__(str(math.backend.name))
        self.op, self.n, self.math = op, n, math
        rng = np.random.default_rng(seed)
        self.inputs = [dl.NDArray.from_numpy(rng.standard_normal(shape, dtype=np.float32), "float32", math=math)
                       for shape in op.shapes(n)]
        self.out: dl.NDArray | None = None

    def run(self, n: int) -> None:
        for _ in range(n):
            if self.out is not None:
                self.out.dispose()
            self.out = self.op.call(self.math, self.inputs)

    def sync(self) -> None:
        self.math.backend.synchronize()

    def result(self) -> dict[str, np.ndarray]:
        return {"out": self.out.numpy()} if self.out is not None else {}

    def close(self) -> None:
        for array in [*self.inputs, *([self.out] if self.out is not None else [])]:
            array.dispose()
        self.inputs, self.out = [], None


def measure(op_name: str, n: int, math: dl.NDArrayMath, repeats: int = MIN_REPEATS,
            target_s: float = TARGET_S) -> dict[str, Any]:
    """Times ``op_name`` at size ``n`` on ``math`` with bench's harness; returns what the table and
    the page show: the median µs per call, the fastest and slowest repeat, the spread, the rate.

    Example:
        >>> row = measure("sum", 8, dl.NDArrayMathCPU())
        >>> row["op"], row["n"], row["backend"], row["repeats"], row["us_min"] <= row["us"] <= row["us_max"]
        ('sum', 8, 'cpu', 5, True)
    """
    op = OPS[op_name]
    settings = Settings(repeats=repeats, target_s=target_s, warmup_s=target_s / 2)
    system = OpSystem(op, n, math)
    try:
        steps = warm_up(system, settings)
        samples = [time_repeat(system, steps) for _ in range(repeats)]
    finally:
        system.close()
    timing = summarize(samples, steps)
    us = timing["us_per_step"]
    return {
        "op": op.name, "n": n, "backend": str(math.backend.name),
        "shape": ", ".join("×".join(map(str, shape)) for shape in op.shapes(n)),
        "us": us, "us_min": timing["us_min"], "us_max": timing["us_max"], "spread_pct": timing["spread_pct"],
        "repeats": timing["repeats"], "calls_per_repeat": steps,
        "rate": op.work(n) / (us * 1e-6) / 1e9 if us > 0 else None, "unit": op.unit,
    }


def run_benchmarks(ops: Sequence[str], sizes: Sequence[int], repeats: int = MIN_REPEATS,
                   backends: Sequence[str] | None = None,
                   report: Callable[[dict[str, Any]], None] = lambda row: None) -> list[dict[str, Any]]:
    """Measures every op at every size on every backend (op by op, each size on each backend in
    turn), calling ``report`` with each row as soon as it is measured; returns the rows."""
    maths = {backend: make_math(backend) for backend in (backends or available_backends())}
    rows = []
    for op in ops:
        for n in sizes:
            for math in maths.values():
                row = measure(op, n, math, repeats)
                report(row)
                rows.append(row)
    return rows


def format_row(row: dict[str, Any]) -> str:
    rate = f"{row['rate']:.3g} {row['unit']}" if row["rate"] is not None else "—"
    return (f"{row['op']:<8} {row['n']:>5} {row['backend']:<5} {row['us']:>12.2f} "
            f"{row['us_min']:>10.2f}–{row['us_max']:<10.2f} {row['spread_pct']:>6.1f}%  {rate}")


def main(argv: list[str] | None = None, log: Callable[..., Any] = print) -> int:
    """Command line: measures and prints one line per op, size and backend."""
    parser = argparse.ArgumentParser(description="Times deeplearn's ops at a range of sizes (bench's method).")
    parser.add_argument("--op", action="append", default=None,
                        help=f"an op to time: {', '.join(OPS)} (repeat it, or separate with commas; default all)")
    parser.add_argument("--min-size", type=int, default=32, help="the smallest n (default 32)")
    parser.add_argument("--max-size", type=int, default=512, help=f"the largest n (default 512, at most {MAX_SIZE})")
    parser.add_argument("--repeats", type=int, default=MIN_REPEATS,
                        help=f"timed repeats per figure ({MIN_REPEATS} to {MAX_REPEATS}; default {MIN_REPEATS})")
    args = parser.parse_args(argv)
    try:
        ops = parse_ops(",".join(args.op or OPS))
        sizes = sizes_between(args.min_size, args.max_size)
        if not MIN_REPEATS <= args.repeats <= MAX_REPEATS:
            raise ValueError(f"--repeats must be from {MIN_REPEATS} to {MAX_REPEATS}; got {args.repeats}.")
    except ValueError as e:
        parser.error(str(e))
    log(f"backends: {', '.join(available_backends())}; median of {args.repeats} repeats of ~{TARGET_S * 1e3:g} ms")
    log(f"{'op':<8} {'n':>5} {'where':<5} {'median µs':>12} {'min–max µs':^21} {'spread':>7}  rate")
    run_benchmarks(ops, sizes, args.repeats, report=lambda row: log(format_row(row)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
