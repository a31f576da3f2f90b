"""Small helpers shared by math/ and graph/: shape arithmetic and argument checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from deeplearn.types import DType, DTYPES, DTypeError, Shape, ShapeError

__all__ = [
    "size_from_shape",
    "as_int",
    "as_float",
    "as_bool",
    "as_seed",
    "as_shape",
    "check_shape",
    "infer_from_implicit_shape",
    "check_dtype",
    "numpy_dtype",
    "infer_shape",
    "shuffle",
    "create_shuffled_indices",
    "clamp",
    "dist_squared",
    "assert_shapes_match",
    "arrays_equal",
    "flatten",
    "size_to_squarish_shape",
]

_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def size_from_shape(shape: Iterable[int]) -> int:
    """Number of elements of an array of this shape (1 for a scalar).

    Example:
        >>> size_from_shape((2, 3))
        6
    """
    size = 1
    for d in shape:
        size *= d if type(d) is int else as_int(d, "size_from_shape", "dimension")  # 2.5 is no size
    return size


def as_int(value: Any, where: str, name: str) -> int:
    """``value`` as an int: ints, NumPy integers and integral floats (2.0) pass; 2.5, strings
    and None raise ValueError naming the argument, instead of being truncated.

    Example:
        >>> as_int(3.0, "top_k", "k")
        3
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {name} must be an integer; got {name}={value!r}.")
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise ValueError(f"{where}: {name} must be an integer; got {name}={value!r}.")
    return int(value)


def as_float(value: Any, where: str, name: str) -> float:
    """``value`` as a float: ints, floats and NumPy numbers pass; strings, None, booleans,
    complex numbers and sequences raise ValueError naming the argument (``float()`` would parse
    "0.5", drop an imaginary part, or fail with a message that names nothing).

    Example:
        >>> as_float(1, "leaky_relu", "alpha")
        1.0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {name} must be a number; got {name}={value!r}.")
    return float(value)


def as_bool(value: Any, where: str, name: str) -> bool:
    """``value`` as a bool: True, False (NumPy's too) and the integers 0 and 1 pass; anything
    else raises ValueError naming the argument, rather than counting as true ("no", 1.5).

    Example:
        >>> as_bool(0, "sum", "keep_dims")
        False
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{where}: {name} must be True or False; got {name}={value!r}.")


def as_shape(shape: Iterable[int] | int, where: str = "shape", name: str | None = None) -> Shape:
    """Normalises a list/tuple of dimension sizes into a tuple of ints (ShapeError otherwise,
    naming the argument ``name`` when given).

    Negative sizes pass (``reshape`` reads -1 as "infer this one"); ``check_shape`` refuses them.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        return (int(shape),)
    try:
        return tuple(as_int(d, where, "shape") for d in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError) as e:
        if name is None:
            raise ShapeError(f"{where}: a shape must be a sequence of integers; got {shape!r}.") from e
        raise ShapeError(f"{where}: {name} must be a sequence of integers; got {name}={shape!r}.") from e


def check_shape(shape: Iterable[int] | int, where: str, name: str = "shape") -> Shape:
    """``as_shape`` for the shape of an array to be made: every size must be >= 0.

    Example:
        >>> check_shape([2, 3.0], "NDArray.zeros")
        (2, 3)
    """
    shape_t = as_shape(shape, where, None if name == "shape" else name)
    if any(d < 0 for d in shape_t):
        raise ShapeError(f"{where}: dimensions must be >= 0; got {name}={shape_t}.")
    return shape_t


def infer_from_implicit_shape(shape: Sequence[int], size: int, where: str = "reshape") -> Shape:
    """Replaces one ``-1`` in ``shape`` by the size that makes the element counts match.

    Example:
        >>> infer_from_implicit_shape((2, -1), 6)
        (2, 3)
    """
    shape = as_shape(shape, where)
    if shape.count(-1) > 1:
        raise ShapeError(f"{where}: at most one dimension can be -1; got shape {shape}.")
    if any(d < -1 for d in shape):
        raise ShapeError(f"{where}: dimensions must be >= 0 or -1; got shape {shape}.")
    if -1 in shape:
        known = size_from_shape(d for d in shape if d != -1)
        if known == 0 or size % known != 0:
            raise ShapeError(
                f"{where}: new shape and old shape must have the same number of elements; "
                f"cannot infer -1 in {shape} for {size} elements."
            )
        shape = tuple(size // known if d == -1 else d for d in shape)
    if size_from_shape(shape) != size:
        raise ShapeError(
            f"{where}: new shape and old shape must have the same number of elements; "
            f"got new shape {shape} ({size_from_shape(shape)} elements) for {size} elements."
        )
    return shape


def check_dtype(dtype: Any, where: str = "dtype") -> DType:
    """Returns ``dtype`` as one of the strings "float32", "int32", "bool", or raises DTypeError.

    NumPy spellings of those three (``np.float32``, ``np.dtype("int32")``, ``bool``) are accepted.

    Example:
        >>> check_dtype(np.int32, "NDArray.zeros")
        'int32'
    """
    if dtype is None:
        return "float32"
    name: str | None = dtype if isinstance(dtype, str) else None
    if name is None:
        try:
            name = np.dtype(dtype).name
        except (TypeError, ValueError):  # 5, object(): not a dtype at all
            pass
    if name not in DTYPES:
        raise DTypeError(f"{where}: dtype must be one of {DTYPES}; got {dtype!r}.")
    return name  # type: ignore[return-value]


def numpy_dtype(dtype: DType) -> type:
    """The NumPy scalar type that stores ``dtype``."""
    return _NUMPY_DTYPES[dtype]


def infer_shape(values: Any) -> Shape:
    """Shape of a (possibly nested) list of numbers, as NumPy would see it.

    Example:
        >>> infer_shape([[1, 2, 3], [4, 5, 6]])
        (2, 3)
    """
    if isinstance(values, (list, tuple)):
        if len(values) == 0:
            return (0,)
        return (len(values),) + infer_shape(values[0])
    if hasattr(values, "shape"):
        return tuple(int(d) for d in values.shape)
    return ()


# -- deeplearn.js ``util`` helpers that users called directly ------------------------------------


def as_seed(seed: Any, where: str) -> int | None:
    """A seed for NumPy's Generator: None, or a non-negative integer (2.0 passes); ValueError
    naming ``where`` otherwise (NumPy's own errors name nothing).

    Example:
        >>> as_seed(7.0, "shuffle")
        7
    """
    if seed is None:
        return None
    value = as_int(seed, where, "seed")
    if value < 0:
        raise ValueError(f"{where}: seed must be None or a non-negative integer; got seed={seed!r}.")
    return value


def shuffle(array: list[Any], seed: int | None = None) -> None:
    """Shuffles ``array`` in place (Fisher–Yates).

    Example:
        >>> a = [1, 2, 3]; shuffle(a, seed=0); sorted(a)
        [1, 2, 3]
    """
    rng = np.random.default_rng(as_seed(seed, "shuffle"))
    for i in range(len(array) - 1, 0, -1):
        j = int(rng.integers(0, i + 1))
        array[i], array[j] = array[j], array[i]


def create_shuffled_indices(n: int, seed: int | None = None) -> np.ndarray:
    """A random permutation of ``0 .. n-1`` as int32.

    Example:
        >>> sorted(create_shuffled_indices(4, seed=1).tolist())
        [0, 1, 2, 3]
    """
    n = as_int(n, "create_shuffled_indices", "n")
    if n < 0:
        raise ValueError(f"create_shuffled_indices: n must be >= 0; got n={n}.")
    return np.random.default_rng(as_seed(seed, "create_shuffled_indices")).permutation(n).astype(np.int32)


def clamp(lo: float, x: float, hi: float) -> float:
    """``x`` limited to ``[lo, hi]`` (deeplearn.js argument order).

    Example:
        >>> clamp(0, 5, 3)
        3
    """
    return max(lo, min(x, hi))


def dist_squared(a: Sequence[float], b: Sequence[float]) -> float:
    """Squared Euclidean distance of two equally long sequences.

    Example:
        >>> dist_squared([0, 0], [3, 4])
        25.0
    """
    if len(a) != len(b):
        raise ShapeError(f"dist_squared: the inputs must have the same length; got {len(a)} and {len(b)}.")
    return float(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


def assert_shapes_match(a: Sequence[int], b: Sequence[int], prefix: str = "") -> None:
    """Raises ShapeError unless the two shapes are equal."""
    if tuple(a) != tuple(b):
        raise ShapeError(f"{prefix}shapes {tuple(a)} and {tuple(b)} must match.")


def arrays_equal(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Element-wise equality of two flat sequences of the same length.

    Example:
        >>> arrays_equal([1, 2], (1, 2))
        True
    """
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def flatten(values: Any) -> list[Any]:
    """The leaves of nested lists/tuples, in row-major order.

    Example:
        >>> flatten([[1, 2], [3, [4]]])
        [1, 2, 3, 4]
    """
    if isinstance(values, (list, tuple)):
        return [leaf for v in values for leaf in flatten(v)]
    return [values]


def size_to_squarish_shape(size: int) -> tuple[int, int]:
    """A (rows, columns) pair with rows·columns >= size, as square as possible.

    Example:
        >>> size_to_squarish_shape(10)
        (4, 3)
    """
    size = as_int(size, "size_to_squarish_shape", "size")
    if size < 0:
        raise ValueError(f"size_to_squarish_shape: size must be >= 0; got size={size}.")
    width = int(np.ceil(np.sqrt(size)))
    return width, int(np.ceil(size / width)) if width else 0
