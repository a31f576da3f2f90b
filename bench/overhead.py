"""Per-op host overhead of eager NDArrayMath against the backend library called directly
(NumPy on the CPU, CuPy on the GPU), on arrays small enough that launching is all there is.

Usage: python bench/overhead.py [--backend cpu|cuda] [--profile OP]
Prints µs per call (median of 7 repeats) for each op, for deeplearn and for the library by hand,
and their ratio; the bar for the GPU (bench/README.md) is deeplearn ≤ 1.2 × CuPy.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import deeplearn as dl


def _time(fn: Callable[[], Any], sync: Callable[[], None], calls: int = 2000) -> float:
    fn()
    sync()
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        runs.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(runs)


def cases(math: dl.NDArrayMath, xp: Any) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    a_h = np.linspace(-1, 1, 1024, dtype=np.float32)
    m_h = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    a, b = dl.Array1D.new(a_h, math=math), dl.Array1D.new(a_h[::-1].copy(), math=math)
    m = dl.Array2D.new([64, 64], m_h, math=math)
    ra, rb, rm = xp.asarray(a_h), xp.asarray(a_h[::-1].copy()), xp.asarray(m_h)

    def dl_op(f: Callable[[], dl.NDArray]) -> Callable[[], None]:
        return lambda: f().dispose()

    return {
        "add": (dl_op(lambda: math.add(a, b)), lambda: xp.add(ra, rb)),
        "relu": (dl_op(lambda: math.relu(a)), lambda: xp.maximum(ra, 0)),
        "exp": (dl_op(lambda: math.exp(a)), lambda: xp.exp(ra)),
        "sum": (dl_op(lambda: math.sum(a)), lambda: xp.sum(ra)),
        "mat_mul": (dl_op(lambda: math.mat_mul(m, m)), lambda: xp.matmul(rm, rm)),
        "transpose": (dl_op(lambda: math.transpose(m)), lambda: xp.ascontiguousarray(rm.T)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default=None)
    p.add_argument("--profile", default=None, help="also cProfile this op's deeplearn call")
    args = p.parse_args()
    math = dl.NDArrayMath(args.backend) if args.backend else dl.ENV.math
    xp = math.backend.xp
    sync = math.backend.synchronize
    print(f"backend {math.backend.name}; µs per call, median of 7 repeats of 2000 calls")
    print(f"{'op':<10} {'deeplearn':>10} {'by hand':>10} {'ratio':>7}")
    table = cases(math, xp)
    for name, (ours, theirs) in table.items():
        t_ours, t_theirs = _time(ours, sync), _time(theirs, sync)
        print(f"{name:<10} {t_ours:>10.2f} {t_theirs:>10.2f} {t_ours / t_theirs:>7.2f}")
    if args.profile:
        ours = table[args.profile][0]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(20000):
            ours()
        sync()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
