"""The live run behind http://localhost:8080/demos/benchmarks/: times deeplearn's ops at a range of
sizes on the CPU and, where there is one, the GPU, and streams each figure as it is measured.

The server (demos/server.py) calls :func:`parse_params` on the page's query string and then
:func:`run`, which reports through ``emit(event, payload)``; the page plots it. The measuring is
``benchmarks.py`` beside this file (the plain script), which times with bench/'s own harness; this
file takes the ops, the sizes and the number of repeats from the page. (watch-demo re-imports this
file when it changes; after editing the script, restart watch-demo.)

Events, in order: ``start`` (the ops, the sizes, the backends and how many figures to expect),
``backend``, one ``point`` per op, size and backend (median µs per call, fastest and slowest
repeat, spread, rate), and ``done``.

Example:
    >>> events = []
    >>> run(parse_params({"ops": "add,sum", "min_size": "8", "max_size": "16"}), lambda e, p: events.append(e))
    >>> events[:2], events.count("point") == 4 * len(available_backends()), events[-1]
    (['start', 'backend'], True, 'done')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from demos.benchmarks.benchmarks import (
    MAX_REPEATS,
    MAX_SIZE,
    MIN_REPEATS,
    MIN_SIZE,
    OPS,
    TARGET_S,
    available_backends,
    make_math,
    parse_ops,
    run_benchmarks,
    sizes_between,
)
from demos.server import backend_info, check_known, int_param

PARAMS = frozenset({"ops", "min_size", "max_size", "repeats"})


@dataclass(frozen=True)
class Params:
    """What the page may choose."""

    ops: tuple[str, ...] = tuple(OPS)
    min_size: int = 32
    max_size: int = 512
    repeats: int = MIN_REPEATS


def parse_params(query: Mapping[str, str]) -> Params:
    """Validates the page's query; raises ValueError with a message the page shows as it is.

    Example:
        >>> parse_params({"ops": "sum mat_mul", "max_size": "64"}).ops
        ('sum', 'mat_mul')
        >>> parse_params({"min_size": "256", "max_size": "128"})
        Traceback (most recent call last):
        ...
        ValueError: The smallest size (256) must not be larger than the largest (128).
    """
    check_known(query, PARAMS)
    params = Params(
        ops=tuple(parse_ops(query.get("ops", ",".join(Params.ops)))),
        min_size=int_param(query, "min_size", "Smallest size n", Params.min_size, low=MIN_SIZE, high=MAX_SIZE),
        max_size=int_param(query, "max_size", "Largest size n", Params.max_size, low=MIN_SIZE, high=MAX_SIZE),
        repeats=int_param(query, "repeats", "Repeats", Params.repeats, low=MIN_REPEATS, high=MAX_REPEATS),
    )
    if params.min_size > params.max_size:
        raise ValueError(f"The smallest size ({params.min_size}) must not be larger than the largest "
                         f"({params.max_size}).")
    return params


def run(params: Params, emit: Callable[[str, Mapping[str, Any]], None]) -> None:
    """Measures every op at every size on every backend, reporting each figure through ``emit``."""
    backends = available_backends()
    sizes = sizes_between(params.min_size, params.max_size)
    infos = [backend_info(make_math(name)) for name in backends]
    emit("start", {
        "params": asdict(params), "sizes": sizes, "backends": infos, "target_ms": TARGET_S * 1e3,
        "ops": [{"name": name, "kind": OPS[name].kind, "code": OPS[name].code, "unit": OPS[name].unit}
                for name in params.ops],
        "points": len(params.ops) * len(sizes) * len(backends),
    })
    emit("backend", {"label": " and ".join(info["label"] for info in infos),
                     "device": infos[-1].get("device", "no GPU: dl.ENV says CUDA is not available")})
    started = time.perf_counter()
    rows = run_benchmarks(params.ops, sizes, params.repeats, backends, report=lambda row: emit("point", row))
    emit("done", {"points": len(rows), "seconds": time.perf_counter() - started})
