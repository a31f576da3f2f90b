"""deeplearn itself: eager NDArrayMath written by hand, and the Graph + ``Session.train`` path.

The eager system is what a user writes with NDArrayMath alone: the batched forward pass, the
backward pass written out op by op, and the SGD update with ``scaled_array_add``, one memory
scope per step. The Session system builds the per-example Graph of the workload (placeholders,
``graph.layers.dense``, ``graph.conv2d``, ``graph.max_pool``, ``graph.reshape`` and the cost),
feeds it through the library's in-memory shuffled input providers and calls ``Session.train``
with ``SGDOptimizer``. The dataset is exactly one batch, so whatever order the shuffled provider
gives, every step trains on the same examples as the peers do.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.peers.base import System, Unavailable
from bench.workloads import XENT_EPSILON, Conv, Dense, Flatten, Pool, Problem, Quad

__all__ = ["DeeplearnEager", "DeeplearnSession"]

_ROOT = Path(__file__).resolve().parents[2]


def _import_deeplearn() -> Any:
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import deeplearn

    return deeplearn


def _make_math(dl: Any, backend: str) -> Any:
    if backend == "cuda":
        from deeplearn.math.backends import cuda_available

        if not cuda_available():
            raise Unavailable("deeplearn's CUDA backend needs CuPy and a GPU")
    return dl.NDArrayMath(backend)


class _DeeplearnBase(System):
    memory_note = "CuPy memory pool: bytes it grew by"

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        self.dl = _import_deeplearn()
        self.math = _make_math(self.dl, backend)
        self._previous_math: Any = None

    def _array(self, a: np.ndarray) -> Any:
        return self.dl.NDArray.from_numpy(a, "float32", math=self.math)

    def install_math(self) -> None:
        # Factories with no math argument (used inside the library) allocate on ENV.math.
        from deeplearn.environment import ENV

        self._previous_math = ENV._math
        ENV.set_math(self.math)

    def sync(self) -> None:
        self.math.backend.synchronize()

    def _cupy_pool(self) -> Any:
        if self.backend != "cuda":
            return None
        import cupy

        return cupy.get_default_memory_pool()

    def reset_memory_stats(self) -> None:
        pool = self._cupy_pool()
        if pool is not None:
            pool.free_all_blocks()
            self._pool_base = int(pool.total_bytes())  # what other systems still hold

    def peak_memory(self) -> int | None:
        pool = self._cupy_pool()
        return int(pool.total_bytes()) - getattr(self, "_pool_base", 0) if pool is not None else None

    def close(self) -> None:
        from deeplearn.environment import ENV

        if ENV._math is self.math:
            ENV._math = self._previous_math
        self.release()
        pool = self._cupy_pool()
        if pool is not None:
            self.math.backend.synchronize()
            pool.free_all_blocks()

    def release(self) -> None:
        pass


class DeeplearnEager(_DeeplearnBase):
    """deeplearn eager: NDArrayMath ops called by hand, forward and backward."""

    id = "deeplearn-eager"
    label = "deeplearn eager"

    def prepare(self, problem: Problem) -> None:
        self.problem = problem
        self.install_math()
        m, dl = self.math, self.dl
        self.arrays: list[Any] = []  # everything made here, disposed by close()

        def keep(a: Any) -> Any:
            self.arrays.append(a)
            return a

        self.data = {k: keep(self._array(v)) for k, v in problem.data.items()}
        self.out: dict[str, Any] = {}
        if problem.kind != "train":
            return
        self.params = {k: self._array(v) for k, v in problem.init.items()}
        self.one = keep(dl.Scalar.new(1.0, math=m))
        self.minus_lr = keep(dl.Scalar.new(-problem.lr, math=m))
        self.eps = keep(dl.Scalar.new(XENT_EPSILON, math=m))
        n_out = problem.data["y"].size
        self.inv_n = keep(dl.Scalar.new(1.0 / n_out, math=m))  # mse: mean over every element
        self.minus_inv_b = keep(dl.Scalar.new(-1.0 / problem.batch, math=m))
        self.half = keep(dl.Scalar.new(0.5, math=m))
        self.regular = dl.MatrixOrientation.REGULAR
        self.transposed = dl.MatrixOrientation.TRANSPOSED

    # -- one step --------------------------------------------------------------------------
    def _train_step(self, want_cost: bool) -> float | None:
        m = self.math
        m.start_scope()
        new: dict[str, Any] = {}
        cost_value = None
        try:
            if isinstance(self.problem.layers[0], Quad):  # type: ignore[union-attr]
                grads, cost = self._quad(want_cost)
            else:
                out, caches = self._forward()
                cost, dout = self._cost(out, want_cost)
                grads = self._backward(dout, caches)
            for k, g in grads.items():
                new[k] = m.scaled_array_add(self.one, self.params[k], self.minus_lr, g)
            if cost is not None:
                cost_value = float(cost.get())
        finally:
            m.end_scope(list(new.values()))
        for k, a in new.items():
            m.keep(a)
            self.params[k].dispose()
            self.params[k] = a
        return cost_value

    def _quad(self, want_cost: bool) -> tuple[dict[str, Any], Any]:
        m, p, x, y = self.math, self.params, self.data["x"], self.data["y"]
        x2 = m.square(x)
        pred = m.add(m.add(m.multiply(p["a"], x2), m.multiply(p["b"], x)), p["c"])
        d = m.subtract(pred, y)
        g = m.multiply(d, self.inv_n)
        grads = {"a": m.sum(m.multiply(g, x2)), "b": m.sum(m.multiply(g, x)), "c": m.sum(g)}
        cost = m.multiply(self.half, m.mean(m.square(d))) if want_cost else None
        return grads, cost

    def _forward(self) -> tuple[Any, list[Any]]:
        m, p = self.math, self.params
        h = self.data["x"]
        caches: list[Any] = []
        for layer in self.problem.layers:  # type: ignore[union-attr]
            if isinstance(layer, Dense):
                z = m.add(m.mat_mul(h, p[f"{layer.name}-weights"]), p[f"{layer.name}-bias"])
                out = m.relu(z) if layer.relu else z
                caches.append((h, out if layer.relu else None))
                h = out
            elif isinstance(layer, Conv):
                pad = (layer.field - 1) // 2
                out = m.relu(m.conv2d(h, p[f"{layer.name}-weights"], p[f"{layer.name}-bias"], 1, pad))
                caches.append((h, out))
                h = out
            elif isinstance(layer, Pool):
                caches.append(h)
                h = m.max_pool(h, 2, 2, 0)
            elif isinstance(layer, Flatten):
                caches.append(h.shape)
                h = h.reshape((h.shape[0], -1))
        return h, caches

    def _cost(self, out: Any, want_cost: bool) -> tuple[Any, Any]:
        m, y = self.math, self.data["y"]
        if self.problem.cost == "mse":  # type: ignore[union-attr]
            d = m.subtract(out, y)
            cost = m.multiply(self.half, m.mean(m.square(d))) if want_cost else None
            return cost, m.multiply(d, self.inv_n)
        s = m.softmax(out)
        s_eps = m.add(s, self.eps)
        cost = None
        if want_cost:
            cost = m.multiply(self.minus_inv_b, m.sum(m.multiply(y, m.log(s_eps))))
        gs = m.multiply(m.divide(y, s_eps), self.minus_inv_b)  # d cost / d softmax
        inner = m.sum(m.multiply(gs, s), 1, True)
        return cost, m.multiply(s, m.subtract(gs, inner))

    def _backward(self, dout: Any, caches: list[Any]) -> dict[str, Any]:
        m, p = self.math, self.params
        grads: dict[str, Any] = {}
        dh = dout
        layers = self.problem.layers  # type: ignore[union-attr]
        for i in range(len(layers) - 1, -1, -1):
            layer, cache = layers[i], caches[i]
            if isinstance(layer, Dense):
                h_in, h_out = cache
                if h_out is not None:
                    dh = m.multiply(dh, m.step(h_out))
                w = p[f"{layer.name}-weights"]
                grads[f"{layer.name}-weights"] = m.mat_mul(h_in, dh, self.transposed, self.regular)
                grads[f"{layer.name}-bias"] = m.sum(dh, 0)
                dh = None if i == 0 else m.mat_mul(dh, w, self.regular, self.transposed)
            elif isinstance(layer, Conv):
                h_in, h_out = cache
                pad = (layer.field - 1) // 2
                dz = m.multiply(dh, m.step(h_out))
                w = p[f"{layer.name}-weights"]
                grads[f"{layer.name}-weights"] = m.conv2d_der_filter(h_in, dz, w.shape, 1, pad)
                grads[f"{layer.name}-bias"] = m.conv2d_der_bias(dz)
                dh = None if i == 0 else m.conv2d_der_input(h_in.shape, dz, w, 1, pad)
            elif isinstance(layer, Pool):
                dh = m.max_pool_backprop(dh, cache, 2, 2, 0)
            elif isinstance(layer, Flatten):
                dh = dh.reshape(cache)
        # the gradients come out in reverse layer order; keep the parameters' order
        return {k: grads[k] for k in self.params}

    def _op_step(self) -> None:
        m = self.math
        for a in self.out.values():
            a.dispose()
        if self.problem.workload == "matmul":  # type: ignore[union-attr]
            self.out = {"out": m.mat_mul(self.data["a"], self.data["b"])}
        else:
            self.out = {"relu": m.relu(self.data["x"]), "add": m.add(self.data["x"], self.data["y"])}

    # -- the protocol --------------------------------------------------------------------------
    def first_step(self) -> float | None:
        if self.problem.kind == "train":  # type: ignore[union-attr]
            return self._train_step(want_cost=True)
        self._op_step()
        return None

    def run(self, n: int) -> None:
        if self.problem.kind == "train":  # type: ignore[union-attr]
            for _ in range(n):
                self._train_step(want_cost=False)
        else:
            for _ in range(n):
                self._op_step()

    def result(self) -> dict[str, np.ndarray]:
        src = self.params if self.problem.kind == "train" else self.out  # type: ignore[union-attr]
        return {k: a.numpy() for k, a in src.items()}

    def release(self) -> None:
        for a in [*getattr(self, "arrays", []), *getattr(self, "params", {}).values(), *self.out.values()]:
            a.dispose()
        self.arrays, self.params, self.out = [], {}, {}


class DeeplearnSession(_DeeplearnBase):
    """deeplearn Graph + ``Session.train`` (training) or ``Session.eval`` (op workloads)."""

    id = "deeplearn-session"
    label = "deeplearn Session"

    def prepare(self, problem: Problem) -> None:
        self.problem = problem
        self.install_math()
        dl, m = self.dl, self.math
        self.graph = dl.Graph()
        self.variables: dict[str, Any] = {}
        self.out: dict[str, Any] = {}
        g = self.graph
        if problem.kind == "train":
            self._build_model(problem)
            xs = [self._array(v) for v in problem.data["x"]]
            ys = [self._array(v) for v in problem.data["y"]]
            self.examples = xs + ys
            builder = (
                dl.InGPUMemoryShuffledInputProviderBuilder
                if self.backend == "cuda"
                else dl.InCPUMemoryShuffledInputProviderBuilder
            )
            x_provider, y_provider = builder([xs, ys]).get_input_providers()
            self.feeds = [{"tensor": self.x, "data": x_provider}, {"tensor": self.label, "data": y_provider}]
            self.optimizer = dl.SGDOptimizer(problem.lr)
        else:
            self.inputs = {k: g.variable(k, self._array(v)) for k, v in problem.data.items()}
            if problem.workload == "matmul":
                self.targets = {"out": g.matmul(self.inputs["a"], self.inputs["b"])}
            else:
                self.targets = {
                    "relu": g.relu(self.inputs["x"]),
                    "add": g.add(self.inputs["x"], self.inputs["y"]),
                }
        self.session = dl.Session(g, m)

    def _variable(self, name: str) -> Any:
        t = self.graph.variable(name, self._array(self.problem.init[name]))  # type: ignore[union-attr]
        self.variables[name] = t
        return t

    def _build_model(self, problem: Problem) -> None:
        dl, g = self.dl, self.graph
        self.x = g.placeholder("x", list(problem.input_shape))
        h = self.x
        for layer in problem.layers:
            if isinstance(layer, Quad):
                a, b, c = self._variable("a"), self._variable("b"), self._variable("c")
                h = g.add(g.add(g.multiply(a, g.square(h)), g.multiply(b, h)), c)
            elif isinstance(layer, Dense):
                # graph.layers.dense with the problem's initial weights, through initializers
                w0, b0 = problem.init[f"{layer.name}-weights"], problem.init[f"{layer.name}-bias"]
                h = g.layers.dense(
                    layer.name,
                    h,
                    layer.n_out,
                    (lambda t: g.relu(t)) if layer.relu else None,
                    True,
                    dl.NDArrayInitializer(self._array(w0)),
                    dl.NDArrayInitializer(self._array(b0)),
                )
                for suffix in ("weights", "bias"):
                    name = f"{layer.name}-{suffix}"
                    self.variables[name] = _find_variable(g, name)
            elif isinstance(layer, Conv):
                w, b = self._variable(f"{layer.name}-weights"), self._variable(f"{layer.name}-bias")
                h = g.relu(g.conv2d(h, w, b, layer.field, layer.c_out, 1, (layer.field - 1) // 2))
            elif isinstance(layer, Pool):
                h = g.max_pool(h, 2, 2, 0)
            elif isinstance(layer, Flatten):
                h = g.reshape(h, [int(np.prod(h.shape))])
        self.label = g.placeholder("label", list(problem.data["y"].shape[1:]))
        if problem.cost == "mse":
            self.cost = g.mean_squared_cost(self.label, h)
        else:
            self.cost = g.softmax_cross_entropy_cost(h, self.label)

    # -- the protocol --------------------------------------------------------------------------
    def _train(self, reduction: Any) -> Any:
        batch = self.problem.batch  # type: ignore[union-attr]
        return self.session.train(self.cost, self.feeds, batch, self.optimizer, reduction)

    def first_step(self) -> float | None:
        m = self.math
        if self.problem.kind == "train":  # type: ignore[union-attr]
            with m.scope():
                return float(self._train(self.dl.CostReduction.MEAN).get())
        self.run(1)
        return None

    def run(self, n: int) -> None:
        m = self.math
        if self.problem.kind == "train":  # type: ignore[union-attr]
            none = self.dl.CostReduction.NONE
            with m.scope():  # as a user's training loop: one scope around the steps
                for _ in range(n):
                    self._train(none)
        else:
            targets = list(self.targets.values())
            for _ in range(n):
                for a in self.out.values():
                    a.dispose()
                values = self.session.eval_all(targets, [])
                for a in values:
                    m.keep(a)
                self.out = dict(zip(self.targets, values))

    def result(self) -> dict[str, np.ndarray]:
        if self.problem.kind != "train":  # type: ignore[union-attr]
            return {k: a.numpy() for k, a in self.out.items()}
        with self.math.scope():
            return {k: self.session.eval(t, []).numpy() for k, t in self.variables.items()}

    def release(self) -> None:
        for a in self.out.values():
            a.dispose()
        self.out = {}
        session = getattr(self, "session", None)
        if session is not None and hasattr(session, "dispose"):
            session.dispose()
        for a in getattr(self, "examples", []):
            a.dispose()
        self.examples = []


def _find_variable(graph: Any, name: str) -> Any:
    for node in graph.get_nodes():
        if getattr(node, "name", None) == name:
            return node.output
    raise KeyError(f"no graph node named {name!r}")
