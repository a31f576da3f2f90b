"""PyTorch peers: eager, the whole step captured in one CUDA graph, and torch.compile.

The model is the problem's layer list written with PyTorch functions; the optimizer is
``torch.optim.SGD`` (what a PyTorch user writes). Float32 throughout: TF32 is switched off for
both cuBLAS and cuDNN (cuDNN convolutions default to TF32), so the figures compare like with like.
Convolutions run in PyTorch's native NCHW/OIHW layout: the initial weights are converted once
when copied in, and back when read for the equality check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.peers.base import System, Unavailable
from bench.workloads import XENT_EPSILON, Conv, Dense, Flatten, Pool, Problem, Quad

__all__ = ["TorchCUDAGraph", "TorchCompile", "TorchEager"]


def _import_torch(backend: str) -> Any:
    try:
        import torch
    except ImportError as e:
        raise Unavailable("PyTorch is not installed") from e
    if backend == "cuda" and not torch.cuda.is_available():
        raise Unavailable("PyTorch sees no CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return torch


class _Layout:
    """Converts the problem's HWIO/row-major-(h, w, c) weights to PyTorch's OIHW/(c, h, w) and back."""

    def __init__(self, problem: Problem) -> None:
        self.conv: set[str] = set()
        self.after_flatten: dict[str, tuple[int, int, int]] = {}
        shape: tuple[int, ...] = problem.input_shape
        flat_from: tuple[int, int, int] | None = None
        for layer in problem.layers:
            if isinstance(layer, Conv):
                self.conv.add(f"{layer.name}-weights")
                shape = (shape[0], shape[1], layer.c_out)
            elif isinstance(layer, Pool):
                shape = (shape[0] // 2, shape[1] // 2, shape[2])
            elif isinstance(layer, Flatten):
                flat_from = (shape[0], shape[1], shape[2])
            elif isinstance(layer, Dense) and flat_from is not None:
                self.after_flatten[f"{layer.name}-weights"] = flat_from
                flat_from = None

    def to_torch(self, name: str, a: np.ndarray) -> np.ndarray:
        if name in self.conv:
            return np.ascontiguousarray(a.transpose(3, 2, 0, 1))
        if name in self.after_flatten:
            h, w, c = self.after_flatten[name]
            return np.ascontiguousarray(a.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1))
        return a

    def from_torch(self, name: str, a: np.ndarray) -> np.ndarray:
        if name in self.conv:
            return np.ascontiguousarray(a.transpose(2, 3, 1, 0))
        if name in self.after_flatten:
            h, w, c = self.after_flatten[name]
            return np.ascontiguousarray(a.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1))
        return a


def _loss_fn(torch: Any, problem: Problem) -> Any:
    """loss(params, x, y): the batch mean of the per-example costs."""
    F = torch.nn.functional
    layers, cost = problem.layers, problem.cost

    def loss(params: dict[str, Any], x: Any, y: Any) -> Any:
        if isinstance(layers[0], Quad):
            pred = params["a"] * x * x + params["b"] * x + params["c"]
            return 0.5 * torch.mean((pred - y) ** 2)
        h = x
        for layer in layers:
            if isinstance(layer, Dense):
                h = torch.addmm(params[f"{layer.name}-bias"], h, params[f"{layer.name}-weights"])
                if layer.relu:
                    h = torch.relu(h)
            elif isinstance(layer, Conv):
                h = F.conv2d(
                    h,
                    params[f"{layer.name}-weights"],
                    params[f"{layer.name}-bias"],
                    padding=(layer.field - 1) // 2,
                )
                h = torch.relu(h)
            elif isinstance(layer, Pool):
                h = F.max_pool2d(h, 2, 2)
            elif isinstance(layer, Flatten):
                h = h.reshape(h.shape[0], -1)
        if cost == "mse":
            return 0.5 * torch.mean((h - y) ** 2)
        s = torch.softmax(h, dim=1)
        return -torch.sum(y * torch.log(s + XENT_EPSILON)) / h.shape[0]

    return loss


class TorchEager(System):
    """PyTorch eager: autograd and ``torch.optim.SGD``."""

    id = "torch"
    label = "PyTorch eager"
    backends = ("cpu", "cuda")

    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        self.torch = _import_torch(backend)
        self.device = self.torch.device("cuda" if backend == "cuda" else "cpu")
        if backend == "cuda":
            self.memory_note = "torch.cuda.max_memory_allocated, less what was allocated before"

    # -- setup ---------------------------------------------------------------------------------
    def prepare(self, problem: Problem) -> None:
        torch = self.torch
        self.problem = problem
        if problem.kind == "train":
            self.layout = _Layout(problem)
            self.params = {
                k: torch.tensor(self.layout.to_torch(k, v), device=self.device, requires_grad=True)
                for k, v in problem.init.items()
            }
            x = problem.data["x"]
            if x.ndim == 4:  # NHWC -> NCHW, once, outside the timed steps
                x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            self.x = torch.tensor(x, device=self.device)
            self.y = torch.tensor(problem.data["y"], device=self.device)
            self.opt = torch.optim.SGD(list(self.params.values()), lr=problem.lr)
            self.loss_fn = self.make_loss(_loss_fn(torch, problem))
            self.loss: Any = None
        else:
            self.data = {k: torch.tensor(v, device=self.device) for k, v in problem.data.items()}
            self.op_fn = self.make_op(self._op_fn(problem))
            self.out: dict[str, Any] = {}
        self.after_prepare()

    def make_loss(self, fn: Any) -> Any:
        return fn

    def make_op(self, fn: Any) -> Any:
        return fn

    def after_prepare(self) -> None:
        pass

    @staticmethod
    def _op_fn(problem: Problem) -> Any:
        if problem.workload == "matmul":
            return lambda d: {"out": d["a"] @ d["b"]}
        import torch

        return lambda d: {"relu": torch.relu(d["x"]), "add": d["x"] + d["y"]}

    def restore_initial(self) -> None:
        """Copies the initial weights back into the same parameter tensors (their addresses are
        captured by CUDA graphs, so they are written in place)."""
        torch = self.torch
        with torch.no_grad():
            for k, v in self.problem.init.items():  # type: ignore[union-attr]
                self.params[k].copy_(torch.tensor(self.layout.to_torch(k, v)))

    # -- steps ---------------------------------------------------------------------------------
    def train_step(self) -> Any:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.params, self.x, self.y)
        loss.backward()
        self.opt.step()
        return loss

    def first_step(self) -> float | None:
        assert self.problem is not None
        if self.problem.kind == "train":
            self.loss = self.train_step()
            return float(self.loss.detach().cpu())
        self.run(1)
        return None

    def run(self, n: int) -> None:
        assert self.problem is not None
        if self.problem.kind == "train":
            for _ in range(n):
                self.loss = self.train_step()
        else:
            for _ in range(n):
                self.out = self.op_fn(self.data)

    def sync(self) -> None:
        if self.backend == "cuda":
            self.torch.cuda.synchronize()

    def result(self) -> dict[str, np.ndarray]:
        assert self.problem is not None
        if self.problem.kind == "train":
            return {k: self.layout.from_torch(k, v.detach().cpu().numpy()) for k, v in self.params.items()}
        return {k: v.detach().cpu().numpy() for k, v in self.out.items()}

    # -- memory --------------------------------------------------------------------------------
    def reset_memory_stats(self) -> None:
        if self.backend == "cuda":
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()
            # what earlier systems still hold (compiled-code caches, CUDA-graph pools) is not ours
            self._memory_base = int(self.torch.cuda.memory_allocated())

    def peak_memory(self) -> int | None:
        if self.backend == "cuda":
            return int(self.torch.cuda.max_memory_allocated()) - getattr(self, "_memory_base", 0)
        return None

    def close(self) -> None:
        for attr in ("params", "x", "y", "opt", "loss", "data", "out", "graph", "static"):
            if hasattr(self, attr):
                delattr(self, attr)
        if self.backend == "cuda":
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()


class TorchCUDAGraph(TorchEager):
    """PyTorch with the whole training step (forward, backward, SGD) captured in one CUDA graph
    and replayed, as in PyTorch's "whole-network capture" recipe."""

    id = "torch-cudagraph"
    label = "PyTorch + CUDA graph"
    backends = ("cuda",)

    def __init__(self, backend: str) -> None:
        if backend != "cuda":
            raise Unavailable("CUDA graphs need the GPU")
        super().__init__(backend)

    def after_prepare(self) -> None:
        torch = self.torch
        assert self.problem is not None
        train = self.problem.kind == "train"
        # Warm up on a side stream (lazy initialisation must not happen during capture).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                if train:
                    self.train_step()
                else:
                    self.op_fn(self.data)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        if train:
            self.opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.loss = self.loss_fn(self.params, self.x, self.y)
                self.loss.backward()
                self.opt.step()
            self.restore_initial()
        else:
            with torch.cuda.graph(self.graph):
                self.out = self.op_fn(self.data)
        torch.cuda.synchronize()

    def first_step(self) -> float | None:
        self.graph.replay()
        if self.problem is not None and self.problem.kind == "train":
            return float(self.loss.detach().cpu())
        return None

    def run(self, n: int) -> None:
        replay = self.graph.replay
        for _ in range(n):
            replay()


class TorchCompile(TorchEager):
    """``torch.compile`` of the loss (forward and, through AOTAutograd, backward), then
    ``torch.optim.SGD``; for op workloads the compiled op function."""

    id = "torch-compile"
    label = "torch.compile"
    backends = ("cuda",)

    def make_loss(self, fn: Any) -> Any:
        import warnings

        # Inductor's notes on how it split a reduction are not results
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._inductor")
        return self.torch.compile(fn)

    def make_op(self, fn: Any) -> Any:
        return self.torch.compile(fn)

    def after_prepare(self) -> None:
        # Compile now (the first calls trace and generate code), then restore the weights.
        assert self.problem is not None
        for _ in range(2):
            if self.problem.kind == "train":
                self.train_step()
            else:
                self.op_fn(self.data)
        if self.problem.kind == "train":
            self.restore_initial()
        self.sync()
