"""NumPy (CPU) and CuPy (GPU) by hand: forward, backward and SGD written out for each layer kind.

One implementation over ``xp`` serves three roles: the "NumPy by hand" peer, the "CuPy by hand"
peer, and, in float64, the oracle that deeplearn itself is checked against. It is the code a
careful user would write without a framework: matrix products through BLAS/cuBLAS, convolution
as im2col plus one matrix product, no fusion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.peers.base import System, Unavailable
from bench.workloads import XENT_EPSILON, Conv, Dense, Flatten, Pool, Problem, Quad

__all__ = ["CuPyPeer", "HandModel", "NumPyPeer", "oracle_step"]


def _import_cupy() -> Any:
    try:
        import cupy
    except ImportError as e:
        raise Unavailable("CuPy is not installed") from e
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise Unavailable("CuPy sees no GPU")
    except Exception as e:
        raise Unavailable(f"CuPy sees no GPU ({e})") from e
    return cupy


class HandModel:
    """A training problem's model written by hand over ``xp`` in ``dtype``.

    Example:
        >>> from bench.workloads import make_problem
        >>> m = HandModel(np, make_problem("quad", "cpu", quick=True), np.float64)
        >>> cost = m.step()
        >>> cost > 0
        True
    """

    def __init__(self, xp: Any, problem: Problem, dtype: Any = np.float32) -> None:
        self.xp = xp
        self.problem = problem
        self.dtype = dtype
        self.lr = problem.lr
        self.x = xp.array(problem.data["x"], dtype=dtype)
        self.y = xp.array(problem.data["y"], dtype=dtype)
        # copies: the update below writes in place
        self.params: dict[str, Any] = {k: xp.array(v, dtype=dtype) for k, v in problem.init.items()}
        self._as_strided = xp.lib.stride_tricks.as_strided
        self._last_cost: Any = None

    def reset(self) -> None:
        for k, v in self.problem.init.items():
            self.params[k][...] = self.xp.asarray(v, dtype=self.dtype)

    # -- one SGD step --------------------------------------------------------------------------
    def step(self, want_cost: bool = True) -> float | None:
        """One SGD step on the batch mean of the per-example costs; returns the cost (before the
        update) when ``want_cost``."""
        p = self.params
        if isinstance(self.problem.layers[0], Quad):
            grads, cost = self._quad_grads()
        else:
            out, caches = self._forward(self.x)
            cost, dout = self._cost(out)
            grads = self._backward(dout, caches)
        for k, g in grads.items():
            p[k] -= self.lr * g
        self._last_cost = cost
        return float(cost) if want_cost else None

    def _quad_grads(self) -> tuple[dict[str, Any], Any]:
        xp, p, x = self.xp, self.params, self.x
        x2 = x * x
        d = p["a"] * x2 + p["b"] * x + p["c"] - self.y
        cost = 0.5 * xp.mean(d * d)
        g = d / d.size
        return {"a": xp.sum(g * x2), "b": xp.sum(g * x), "c": xp.sum(g)}, cost

    def _forward(self, x: Any) -> tuple[Any, list[Any]]:
        xp, p = self.xp, self.params
        caches: list[Any] = []
        h = x
        for layer in self.problem.layers:
            if isinstance(layer, Dense):
                z = h @ p[f"{layer.name}-weights"] + p[f"{layer.name}-bias"]
                out = xp.maximum(z, 0) if layer.relu else z
                caches.append((h, out if layer.relu else None))
                h = out
            elif isinstance(layer, Conv):
                z, cols = self._conv_forward(h, p[f"{layer.name}-weights"], p[f"{layer.name}-bias"])
                h = xp.maximum(z, 0)
                caches.append((h.shape[:-1] + (layer.c_in,), cols, h))
            elif isinstance(layer, Pool):
                h, cache = self._pool_forward(h)
                caches.append(cache)
            elif isinstance(layer, Flatten):
                caches.append(h.shape)
                h = h.reshape(h.shape[0], -1)
        return h, caches

    def _cost(self, out: Any) -> tuple[Any, Any]:
        xp, y = self.xp, self.y
        batch = out.shape[0]
        if self.problem.cost == "mse":
            d = out - y
            return 0.5 * xp.mean(d * d), d / d.size
        # per example -Σ t·log(softmax + ε), batch mean; its exact gradient through the softmax
        e = xp.exp(out - out.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
        cost = -xp.sum(y * xp.log(s + XENT_EPSILON)) / batch
        gs = -y / (s + XENT_EPSILON) / batch
        return cost, s * (gs - xp.sum(gs * s, axis=1, keepdims=True))

    def _backward(self, dout: Any, caches: list[Any]) -> dict[str, Any]:
        p = self.params
        grads: dict[str, Any] = {}
        dh = dout
        layers = self.problem.layers
        for i in range(len(layers) - 1, -1, -1):
            layer, cache = layers[i], caches[i]
            first = i == 0
            if isinstance(layer, Dense):
                h_in, h_out = cache
                if h_out is not None:
                    dh = dh * (h_out > 0)
                grads[f"{layer.name}-weights"] = h_in.T @ dh
                grads[f"{layer.name}-bias"] = dh.sum(axis=0)
                dh = None if first else dh @ p[f"{layer.name}-weights"].T
            elif isinstance(layer, Conv):
                in_shape, cols, h_out = cache
                dz = dh * (h_out > 0)
                dw, db, dh = self._conv_backward(dz, cols, p[f"{layer.name}-weights"], in_shape, not first)
                grads[f"{layer.name}-weights"], grads[f"{layer.name}-bias"] = dw, db
            elif isinstance(layer, Pool):
                dh = self._pool_backward(dh, cache)
            elif isinstance(layer, Flatten):
                dh = dh.reshape(cache)
        return grads

    # -- convolution as im2col + one matrix product ---------------------------------------------
    def _conv_forward(self, x: Any, w: Any, b: Any) -> tuple[Any, Any]:
        xp = self.xp
        f, _, c, o = w.shape
        pad = (f - 1) // 2  # 'same' for odd fields, stride 1
        batch, h, wd, _ = x.shape
        xpad = xp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        s = xpad.strides
        windows = self._as_strided(xpad, (batch, h, wd, f, f, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
        cols = windows.reshape(batch * h * wd, f * f * c)  # copies the windows
        z = cols @ w.reshape(f * f * c, o) + b
        return z.reshape(batch, h, wd, o), cols

    def _conv_backward(
        self, dz: Any, cols: Any, w: Any, in_shape: tuple[int, ...], need_dx: bool
    ) -> tuple[Any, Any, Any]:
        xp = self.xp
        f, _, c, o = w.shape
        pad = (f - 1) // 2
        batch, h, wd, _ = in_shape
        dz2 = dz.reshape(-1, o)
        dw = (cols.T @ dz2).reshape(w.shape)
        db = dz2.sum(axis=0)
        if not need_dx:
            return dw, db, None
        dcols = (dz2 @ w.reshape(f * f * c, o).T).reshape(batch, h, wd, f, f, c)
        dxpad = xp.zeros((batch, h + 2 * pad, wd + 2 * pad, c), dtype=dz.dtype)
        for i in range(f):  # one slice-add per filter tap (f² of them), not per pixel
            for j in range(f):
                dxpad[:, i : i + h, j : j + wd, :] += dcols[:, :, :, i, j, :]
        return dw, db, dxpad[:, pad : pad + h, pad : pad + wd, :]

    # -- max-pool 2×2 stride 2 ------------------------------------------------------------------
    def _pool_forward(self, x: Any) -> tuple[Any, Any]:
        batch, h, w, c = x.shape
        win = (
            x.reshape(batch, h // 2, 2, w // 2, 2, c)
            .transpose(0, 1, 3, 5, 2, 4)
            .reshape(batch, h // 2, w // 2, c, 4)
        )
        idx = win.argmax(axis=-1)  # the first maximum of each window, as deeplearn.js
        return win.max(axis=-1), (x.shape, idx)

    def _pool_backward(self, dy: Any, cache: Any) -> Any:
        xp = self.xp
        shape, idx = cache
        batch, h, w, c = shape
        dwin = (xp.arange(4) == idx[..., None]) * dy[..., None]
        return dwin.reshape(batch, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(shape)


def _op_outputs(xp: Any, problem: Problem, data: dict[str, Any]) -> dict[str, Any]:
    if problem.workload == "matmul":
        return {"out": data["a"] @ data["b"]}
    return {"relu": xp.maximum(data["x"], 0), "add": data["x"] + data["y"]}


def oracle_step(problem: Problem, xp: Any = np) -> tuple[dict[str, np.ndarray], float | None]:
    """The float64 result of one step (training: parameters after one SGD step and the cost;
    op workloads: the outputs), computed by hand with ``xp`` (NumPy, or CuPy on the GPU)."""
    if problem.kind == "train":
        model = HandModel(xp, problem, np.float64)
        cost = model.step()
        return {k: System.host(v) for k, v in model.params.items()}, cost
    data = {k: xp.asarray(v, dtype=np.float64) for k, v in problem.data.items()}
    return {k: System.host(v) for k, v in _op_outputs(xp, problem, data).items()}, None


class NumPyPeer(System):
    """NumPy written by hand, float32, on the CPU."""

    id = "numpy"
    label = "NumPy by hand"
    backends = ("cpu",)

    xp: Any = np

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        if backend != "cpu":
            raise Unavailable("NumPy runs on the CPU only")

    def prepare(self, problem: Problem) -> None:
        self.problem = problem
        if problem.kind == "train":
            self.model = HandModel(self.xp, problem, np.float32)
        else:
            self.data = {k: self.xp.asarray(v) for k, v in problem.data.items()}
            self.out: dict[str, Any] = {}

    def first_step(self) -> float | None:
        if self.problem is not None and self.problem.kind == "train":
            return self.model.step(want_cost=True)
        self.run(1)
        return None

    def run(self, n: int) -> None:
        assert self.problem is not None
        if self.problem.kind == "train":
            for _ in range(n):
                self.model.step(want_cost=False)
        else:
            for _ in range(n):
                self.out = _op_outputs(self.xp, self.problem, self.data)

    def result(self) -> dict[str, np.ndarray]:
        assert self.problem is not None
        if self.problem.kind == "train":
            return {k: self.host(v) for k, v in self.model.params.items()}
        return {k: self.host(v) for k, v in self.out.items()}

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        self.data, self.out = {}, {}


class CuPyPeer(NumPyPeer):
    """CuPy written by hand, float32, on the GPU (the same code as the NumPy peer)."""

    id = "cupy"
    label = "CuPy by hand"
    backends = ("cuda",)
    memory_note = "CuPy memory pool: bytes it grew by"

    def __init__(self, backend: str) -> None:
        System.__init__(self, backend)
        if backend != "cuda":
            raise Unavailable("CuPy runs on the GPU only")
        self.xp = _import_cupy()

    def sync(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def reset_memory_stats(self) -> None:
        pool = self.xp.get_default_memory_pool()
        pool.free_all_blocks()
        self._pool_base = int(pool.total_bytes())  # what other systems still hold

    def peak_memory(self) -> int | None:
        return int(self.xp.get_default_memory_pool().total_bytes()) - getattr(self, "_pool_base", 0)

    def close(self) -> None:
        super().close()
        self.xp.get_default_memory_pool().free_all_blocks()
