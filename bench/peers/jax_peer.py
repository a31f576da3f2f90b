"""JAX peer: the whole training step (value_and_grad and the SGD update) in one ``jax.jit``.

Float32 matrix products and convolutions at full precision (``jax_default_matmul_precision =
"float32"``; JAX's default lets the GPU use TF32). The harness sets
``XLA_PYTHON_CLIENT_PREALLOCATE=false`` before JAX is imported, so JAX does not take most of the
GPU's memory from the other systems.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bench.peers.base import System, Unavailable
from bench.workloads import XENT_EPSILON, Conv, Dense, Flatten, Pool, Problem, Quad

__all__ = ["JaxJit"]


def _import_jax(backend: str) -> tuple[Any, Any]:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import jax
    except ImportError as e:
        raise Unavailable("JAX is not installed") from e
    jax.config.update("jax_default_matmul_precision", "float32")
    try:
        device = jax.devices("gpu" if backend == "cuda" else "cpu")[0]
    except RuntimeError as e:
        raise Unavailable(f"JAX has no {'GPU' if backend == 'cuda' else 'CPU'} device ({e})") from e
    return jax, device


def _loss_fn(jax: Any, problem: Problem) -> Any:
    jnp = jax.numpy
    layers, cost = problem.layers, problem.cost

    def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        if isinstance(layers[0], Quad):
            pred = params["a"] * x * x + params["b"] * x + params["c"]
            return 0.5 * jnp.mean((pred - y) ** 2)
        h = x
        for layer in layers:
            if isinstance(layer, Dense):
                h = h @ params[f"{layer.name}-weights"] + params[f"{layer.name}-bias"]
                if layer.relu:
                    h = jax.nn.relu(h)
            elif isinstance(layer, Conv):
                pad = (layer.field - 1) // 2
                h = jax.lax.conv_general_dilated(
                    h,
                    params[f"{layer.name}-weights"],
                    (1, 1),
                    ((pad, pad), (pad, pad)),
                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                )
                h = jax.nn.relu(h + params[f"{layer.name}-bias"])
            elif isinstance(layer, Pool):
                h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            elif isinstance(layer, Flatten):
                h = h.reshape(h.shape[0], -1)
        if cost == "mse":
            return 0.5 * jnp.mean((h - y) ** 2)
        s = jax.nn.softmax(h, axis=1)
        return -jnp.sum(y * jnp.log(s + XENT_EPSILON)) / h.shape[0]

    return loss


class JaxJit(System):
    """JAX with the whole step under ``jax.jit`` (parameters donated on the GPU)."""

    id = "jax"
    label = "JAX jit"
    backends = ("cpu", "cuda")

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        self.jax, self.device = _import_jax(backend)
        if backend == "cuda":
            self.memory_note = "JAX peak_bytes_in_use since the process started"

    def prepare(self, problem: Problem) -> None:
        jax = self.jax
        self.problem = problem
        put = lambda a: jax.device_put(a, self.device)
        if problem.kind == "train":
            loss = _loss_fn(jax, problem)
            lr = problem.lr

            def step(params: dict[str, Any], x: Any, y: Any) -> tuple[dict[str, Any], Any]:
                value, grads = jax.value_and_grad(loss)(params, x, y)
                return jax.tree.map(lambda p, g: p - lr * g, params, grads), value

            # Donating the parameters lets XLA update them in place; the CPU client ignores it.
            donate = (0,) if self.backend == "cuda" else ()
            self.step = jax.jit(step, donate_argnums=donate)
            self.x, self.y = put(problem.data["x"]), put(problem.data["y"])
            self.params = {k: put(v) for k, v in problem.init.items()}
            # Compile now, on a copy, so the first checked step starts from the initial weights.
            compiled, _ = self.step({k: put(v) for k, v in problem.init.items()}, self.x, self.y)
            jax.block_until_ready(compiled)
            self.value: Any = None
        else:
            jnp = jax.numpy
            if problem.workload == "matmul":
                self.op = jax.jit(lambda d: {"out": d["a"] @ d["b"]})
            else:
                self.op = jax.jit(lambda d: {"relu": jax.nn.relu(d["x"]), "add": d["x"] + d["y"]})
            self.data = {k: put(v) for k, v in problem.data.items()}
            self.out = self.op(self.data)
            jax.block_until_ready(self.out)
            del jnp

    def first_step(self) -> float | None:
        assert self.problem is not None
        if self.problem.kind == "train":
            self.params, self.value = self.step(self.params, self.x, self.y)
            return float(self.value)
        self.run(1)
        return None

    def run(self, n: int) -> None:
        assert self.problem is not None
        if self.problem.kind == "train":
            step, params = self.step, self.params
            for _ in range(n):
                params, self.value = step(params, self.x, self.y)
            self.params = params
        else:
            for _ in range(n):
                self.out = self.op(self.data)

    def sync(self) -> None:
        assert self.problem is not None
        self.jax.block_until_ready(self.params if self.problem.kind == "train" else self.out)

    def result(self) -> dict[str, np.ndarray]:
        assert self.problem is not None
        src = self.params if self.problem.kind == "train" else self.out
        return {k: np.asarray(v) for k, v in src.items()}

    def peak_memory(self) -> int | None:
        if self.backend != "cuda":
            return None
        stats = self.device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return int(peak) if peak is not None else None

    def close(self) -> None:
        for attr in ("params", "x", "y", "value", "data", "out", "step", "op"):
            if hasattr(self, attr):
                delattr(self, attr)
