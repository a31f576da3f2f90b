"""Fused: several kernels of a recorded step run as one (``deeplearn/compile/fusion.py``).

A ``Fused`` op is a small program of other ops over *values*: values ``0 .. len(inputs) - 1``
are its inputs, and node ``j`` makes value ``len(inputs) + j``. ``outputs`` names the values it
hands back. Nothing in NDArrayMath makes one: the fusion pass of a recorded Program builds them
from chains of element-wise ops, the gathers that feed them and the sums that end them, and a
backend that can compile the chain into one kernel does (the CUDA backend:
``deeplearn/math/backends/cuda_fusion.py``). Everywhere else ``forward`` runs the nodes one by
one, which is the definition of what the one kernel computes.

Example:
    >>> from deeplearn.math.ops.elementwise import Neg, Square
    >>> f = Fused(
    ...     inputs=(Spec((3,)),),
    ...     nodes=(Node(Square(), (Arg(0),), Spec((3,))), Node(Neg(), (Arg(1),), Spec((3,)))),
    ...     outputs=(2,),
    ... )
    >>> f.forward(np, np.array([1.0, 2.0, 3.0], np.float32))
    array([-1., -4., -9.], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from deeplearn.math.ops.base import Op, Spec
from deeplearn.types import RawArray, Shape, ShapeError

if TYPE_CHECKING:
    from deeplearn.math.ops.linalg import MatMul

__all__ = ["SMALL", "Arg", "Fused", "FusedProduct", "Node"]

SMALL = 8192
"""A Fused op whose element-wise results have at most this many elements may end in sums (of
all its elements, to one value) and the scalar ops that use them: a backend runs it as one
block of threads, which can add in a fixed order and wait for the sum. Larger ones have none."""


class Arg(NamedTuple):
    """A node's input: value ``value``, viewed with ``shape`` (None: as it was made)."""

    value: int
    shape: Shape | None = None


class Node(NamedTuple):
    """One op of a Fused op: ``op`` on ``args``, making a value of ``spec``."""

    op: Op
    args: tuple[Arg, ...]
    spec: Spec


@dataclass(frozen=True)
class Fused(Op, abstract=True):
    """The nodes ``nodes`` over ``inputs``, handing out the values ``outputs`` (see the module
    docstring). Abstract for the op table: it is no NDArrayMath method, only a Program's."""

    name = "fused"
    inputs: tuple[Spec, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    # How many nodes each independent part has (empty: one part), where several groups of
    # element-wise nodes that do not read one another run side by side, each on its own
    # threads (the updates of several variables).
    segments: tuple[int, ...] = ()

    def spec_of(self, value: int) -> Spec:
        k = len(self.inputs)
        return self.inputs[value] if value < k else self.nodes[value - k].spec

    def infer(self, *specs: Spec) -> tuple[Spec, ...]:
        if tuple(specs) != self.inputs:
            raise ShapeError(f"fused: the inputs must be {self.inputs}; got {tuple(specs)}.")
        return tuple(self.spec_of(v) for v in self.outputs)

    def forward(self, xp: ModuleType, *arrays: RawArray) -> Any:
        """The outputs (a tuple when there are several), each node run by its own kernel."""
        return self.run_nodes(lambda op, *args: op.forward(xp, *args), arrays)

    def run_nodes(self, kernel: Callable[..., Any], arrays: Sequence[RawArray]) -> Any:
        """The outputs (a tuple when there are several), each node run as ``kernel(op, *args)``."""
        values: list[Any] = list(arrays)
        for node in self.nodes:
            args = [
                values[a.value] if a.shape is None else values[a.value].reshape(a.shape) for a in node.args
            ]
            values.append(kernel(node.op, *args))
        outs = tuple(values[v] for v in self.outputs)
        return outs if len(outs) != 1 else outs[0]


@dataclass(frozen=True)
class FusedProduct(Op, abstract=True):
    """A matrix product and the ``Fused`` op that reads its result element by element next (a
    layer's bias and relu after its weights' product), as one step: ``product`` on the first
    two inputs, then ``fused`` with the product's result as its input ``at`` and the remaining
    inputs, in order, as its others. Its outputs are ``fused``'s, after the product's result
    itself where ``keep`` (something else reads it, or a call may hand it out). ``forward``
    runs the two one after the other, which is the definition; a backend whose product kernel
    can run the element-wise nodes on each element as it writes it does (the CUDA backend:
    ``deeplearn/math/backends/cuda_epilogue.py``): one kernel, where there were two, and the
    product's result not read back. ``deeplearn/compile/products.py`` makes these, never
    NDArrayMath.

    Example:
        >>> from deeplearn.math.ops.arithmetic import Add
        >>> from deeplearn.math.ops.elementwise import Relu
        >>> from deeplearn.math.ops.linalg import MatMul
        >>> bias_relu = Fused(
        ...     inputs=(Spec((1, 2)), Spec((2,))),
        ...     nodes=(Node(Add(), (Arg(0), Arg(1)), Spec((1, 2))), Node(Relu(), (Arg(2),), Spec((1, 2)))),
        ...     outputs=(3,),
        ... )
        >>> op = FusedProduct(MatMul(), bias_relu, 0, keep=False)
        >>> x, w, b = np.ones((1, 3), np.float32), np.ones((3, 2), np.float32), np.array([-4, 1], np.float32)
        >>> op.forward(np, x, w, b)
        array([[0., 4.]], dtype=float32)
    """

    name = "fused_product"
    product: MatMul
    fused: Fused
    at: int
    keep: bool

    def fused_inputs(self, c: Any, rest: Sequence[Any]) -> list[Any]:
        """``fused``'s inputs: ``rest`` with the product's result ``c`` put in place ``at``."""
        inputs = list(rest)
        inputs.insert(self.at, c)
        return inputs

    def infer(self, a: Spec, b: Spec, *rest: Spec) -> tuple[Spec, ...]:
        c = self.product.infer(a, b)
        return ((c,) if self.keep else ()) + self.fused.infer(*self.fused_inputs(c, rest))

    def forward(self, xp: ModuleType, a: RawArray, b: RawArray, *rest: RawArray) -> Any:
        """The product, then the fused nodes on it (a tuple when there are several outputs)."""
        return self.run_parts(lambda op, *args: op.forward(xp, *args), a, b, rest)

    def run_parts(
        self, kernel: Callable[..., Any], a: RawArray, b: RawArray, rest: Sequence[RawArray]
    ) -> Any:
        """The outputs (a tuple when there are several), the product and the fused op each run
        as ``kernel(op, *args)``."""
        c = kernel(self.product, a, b)
        outs = kernel(self.fused, *self.fused_inputs(c, rest))
        if not self.keep:
            return outs
        return (c, *(outs if isinstance(outs, tuple) else (outs,)))
