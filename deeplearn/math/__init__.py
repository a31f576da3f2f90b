"""Eager arrays and kernels (deeplearn.js ``src/math``)."""

from __future__ import annotations

from deeplearn.math.ndarray import Array1D, Array2D, Array3D, Array4D, NDArray, Scalar
from deeplearn.math.ndarray_math import NDArrayMath, NDArrayMathCPU, NDArrayMathGPU

__all__ = [
    "NDArray",
    "Scalar",
    "Array1D",
    "Array2D",
    "Array3D",
    "Array4D",
    "NDArrayMath",
    "NDArrayMathCPU",
    "NDArrayMathGPU",
]
