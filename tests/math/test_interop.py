"""Zero-copy interop with PyTorch and JAX through DLPack, on every backend: an NDArray and the
peer's array share one buffer (same address) in both directions. NumPy and CuPy are covered in
test_ndarray.py and test_cuda_backend.py. Skipped where the peer is not installed."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import deeplearn as dl

# JAX would otherwise reserve most of the GPU's memory at its first use, starving CuPy's pool.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


_XLA_CPU_ALIGNMENT = 64  # XLA shares a host buffer only at this alignment, else it copies


def _address(x: dl.NDArray) -> int:
    raw = x.raw
    return int(raw.data.ptr) if x.backend.name == "cuda" else int(raw.ctypes.data)


def _torch_device(math: dl.NDArrayMath) -> str:
    return "cuda" if math.backend.name == "cuda" else "cpu"


def test_torch_reads_an_ndarray_without_a_copy(math: dl.NDArrayMath) -> None:
    torch = pytest.importorskip("torch")
    x = dl.Array2D.new([2, 3], [1, 2, 3, 4, 5, 6])
    t = torch.from_dlpack(x)
    assert t.device.type == _torch_device(math)
    assert t.data_ptr() == _address(x)
    t[0, 0] = 10.0  # one buffer: the write shows through the NDArray
    assert x.get(0, 0) == 10.0


def test_an_ndarray_wraps_a_torch_tensor_without_a_copy(math: dl.NDArrayMath) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32, device=_torch_device(math)).reshape(2, 3)
    x = dl.from_dlpack(t)
    assert x.shape == (2, 3) and x.dtype == "float32"
    assert _address(x) == t.data_ptr()
    t[1, 2] = -1.0
    assert x.get(1, 2) == -1.0
    np.testing.assert_array_equal(math.relu(x).numpy(), np.maximum(t.cpu().numpy(), 0))


def test_torch_int64_tensors_become_int32_arrays(math: dl.NDArrayMath) -> None:
    """Different dtypes cannot share a buffer: int64 is stored as the library's int32 (a copy)."""
    torch = pytest.importorskip("torch")
    t = torch.arange(4, device=_torch_device(math))
    x = dl.from_dlpack(t)
    assert x.dtype == "int32" and x.get_values().tolist() == [0, 1, 2, 3]


def _jax_device(jax: Any, math: dl.NDArrayMath) -> Any:
    platform = "gpu" if math.backend.name == "cuda" else "cpu"
    try:
        return jax.devices(platform)[0]
    except RuntimeError:
        pytest.skip(f"JAX has no {platform} device here")


def test_jax_reads_an_ndarray_without_a_copy(math: dl.NDArrayMath) -> None:
    jax = pytest.importorskip("jax")
    device = _jax_device(jax, math)
    x = dl.Array1D.new(np.arange(64, dtype=np.float32))
    j = jax.dlpack.from_dlpack(x)
    assert j.devices() == {device}
    if math.backend.name == "cuda" or _address(x) % _XLA_CPU_ALIGNMENT == 0:
        assert j.unsafe_buffer_pointer() == _address(x)
    # else: XLA copies a host buffer that is not 64-byte aligned (NumPy aligns small ones to 16)
    np.testing.assert_array_equal(np.asarray(j * 2), np.arange(64) * 2)


def test_an_ndarray_wraps_a_jax_array_without_a_copy(math: dl.NDArrayMath) -> None:
    jax = pytest.importorskip("jax")
    device = _jax_device(jax, math)
    j = jax.device_put(jax.numpy.arange(12, dtype=jax.numpy.float32).reshape(3, 4), device)
    x = dl.from_dlpack(j)
    assert x.shape == (3, 4)
    assert _address(x) == j.unsafe_buffer_pointer()
    np.testing.assert_array_equal(math.sum(x).get(), 66.0)
