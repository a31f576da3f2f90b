"""ENV: the process-wide default NDArrayMath, backend choice and features.

The backend is the ``BACKEND`` feature: ``DEEPLEARN_BACKEND`` ("cpu" or "cuda") when set, else
CUDA when CuPy sees a GPU, else the CPU. ``ENV.math`` is created on first use, so importing
deeplearn never touches the GPU.

Features (deeplearn.js ``ENV.get(feature)``) are evaluated when first asked for and remembered;
``ENV.set_features`` and the ``DEEPLEARN_FLAGS`` environment variable (``"DEBUG:true,BACKEND:cpu"``,
deeplearn.js's ``?dljsflags=`` URL parameter) override them. Values are parsed strictly, per
feature: a boolean feature takes true/false, 1/0 or yes/no (any case), and anything else is an
error rather than a truthy string (``DEBUG:no`` must not turn debug mode on). deeplearn.js's WebGL features keep
their names and answer what is true in Python: there is no WebGL (version 0).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deeplearn.math.backends.backend import MathBackend
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["ENV", "Environment", "FEATURES", "memory"]


def _detected_backend() -> str:
    from deeplearn.math.backends import backend_names, cuda_available

    forced = os.environ.get("DEEPLEARN_BACKEND", "").strip().lower()
    if forced:
        if forced not in backend_names():
            raise ValueError(f"DEEPLEARN_BACKEND must be one of {backend_names()}; got {forced!r}.")
        return forced
    return "cuda" if cuda_available() else "cpu"


def _cuda_available() -> bool:
    from deeplearn.math.backends import cuda_available

    return cuda_available()


def _cuda_device_name() -> str | None:
    if not _cuda_available():
        return None
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def _no_webgl() -> bool:
    return False


FEATURES: dict[str, Callable[[], Any]] = {
    "BACKEND": _detected_backend,  # the backend ENV.math is created on
    "DEBUG": lambda: False,  # whether ENV.math starts in debug mode (NaN checks after every op)
    "CUDA_AVAILABLE": _cuda_available,
    "CUDA_DEVICE_NAME": _cuda_device_name,  # None without a usable GPU
    # deeplearn.js's WebGL features: no WebGL in Python.
    "WEBGL_VERSION": lambda: 0,
    "WEBGL_FLOAT_TEXTURE_ENABLED": _no_webgl,
    "WEBGL_DISJOINT_QUERY_TIMER_EXTENSION_ENABLED": _no_webgl,
    "WEBGL_DISJOINT_QUERY_TIMER_EXTENSION_RELIABLE": _no_webgl,
    "WEBGL_GET_BUFFER_SUB_DATA_ASYNC_EXTENSION_ENABLED": _no_webgl,
}
"""Each feature's name and how its value is found when first asked for."""

_TRUE_WORDS = ("true", "1", "yes")
_FALSE_WORDS = ("false", "0", "no")


def _as_bool(name: str, value: Any, where: str) -> bool:
    """A boolean feature's value: a bool, 0 or 1, or the words true/false, 1/0, yes/no (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    raise ValueError(f"{where}: {name} must be true or false (or 1/0, yes/no); got {name}={value!r}.")


def _as_int(name: str, value: Any, where: str) -> int:
    """An integer feature's value: an int, or its decimal text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{where}: {name} must be an integer; got {name}={value!r}.")


def _as_text(name: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {name} must be a string; got {name}={value!r}.")
    return value.strip()


def _as_optional_text(name: str, value: Any, where: str) -> str | None:
    return None if value is None else _as_text(name, value, where)


_PARSERS: dict[str, Callable[[str, Any, str], Any]] = {
    "BACKEND": _as_text,
    "DEBUG": _as_bool,
    "CUDA_AVAILABLE": _as_bool,
    "CUDA_DEVICE_NAME": _as_optional_text,
    "WEBGL_VERSION": _as_int,
    "WEBGL_FLOAT_TEXTURE_ENABLED": _as_bool,
    "WEBGL_DISJOINT_QUERY_TIMER_EXTENSION_ENABLED": _as_bool,
    "WEBGL_DISJOINT_QUERY_TIMER_EXTENSION_RELIABLE": _as_bool,
    "WEBGL_GET_BUFFER_SUB_DATA_ASYNC_EXTENSION_ENABLED": _as_bool,
}
"""How a value set for a built-in feature (by ``set_features`` or ``DEEPLEARN_FLAGS``) is checked
and converted. A feature registered in FEATURES without a parser takes any value as given."""


def _feature_value(name: str, value: Any, where: str) -> Any:
    parse = _PARSERS.get(name)
    return value if parse is None else parse(name, value, where)


class Environment:
    """Holds the default math (``ENV.math``), the features, and answers which backends exist."""

    def __init__(self) -> None:
        self._math: NDArrayMath | None = None
        self._features: dict[str, Any] = {}
        self._flags_read = False
        self._lock = threading.Lock()

    # -- features --------------------------------------------------------------------------
    def get(self, feature: str) -> Any:
        """The value of ``feature``, found on first use and remembered.

        Example:
            >>> dl.ENV.get("WEBGL_VERSION")
            0
        """
        self._read_flags()
        if feature not in self._features:
            if feature not in FEATURES:
                raise ValueError(f"ENV.get: feature must be one of {sorted(FEATURES)}; got {feature!r}.")
            self._features[feature] = FEATURES[feature]()
        return self._features[feature]

    def set_features(self, features: dict[str, Any]) -> None:
        """Sets features, replacing every value found or set before (deeplearn.js
        ``ENV.setFeatures``); the others are found again when asked for. Takes effect for
        ``ENV.math`` when it is next created (``ENV.reset()`` forgets the current one).

        Example:
            >>> env = dl.Environment()
            >>> env.set_features({"BACKEND": "cpu", "DEBUG": True})
            >>> env.math.backend.name, env.math.engine.debug
            ('cpu', True)
        """
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise ValueError(f"ENV.set_features: features must be among {sorted(FEATURES)}; got {unknown}.")
        parsed = {name: _feature_value(name, value, "ENV.set_features") for name, value in features.items()}
        self._flags_read = True  # explicit features replace the environment variable's too
        self._features = parsed

    def _read_flags(self) -> None:
        """Applies ``DEEPLEARN_FLAGS`` once (until the next reset)."""
        if self._flags_read:
            return
        text = os.environ.get("DEEPLEARN_FLAGS", "").strip()
        flags: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition(":")
            name = name.strip()
            if not sep or name not in FEATURES:
                raise ValueError(
                    f"DEEPLEARN_FLAGS: each flag must be NAME:VALUE with NAME among {sorted(FEATURES)}; got {item!r}."
                )
            raw = raw.strip()
            flags[name] = (
                _feature_value(name, raw, "DEEPLEARN_FLAGS") if name in _PARSERS else _flag_value(raw)
            )
        # Read only once every flag parsed: a bad flag raises again at the next ``get`` instead
        # of leaving the features half set.
        self._features.update(flags)
        self._flags_read = True

    def get_best_backend(self) -> str:
        """The ``BACKEND`` feature: ``DEEPLEARN_BACKEND`` when set, else "cuda" when CuPy sees a
        GPU, else "cpu"."""
        from deeplearn.math.backends import backend_names

        name = self.get("BACKEND")
        if name not in backend_names():
            raise ValueError(f"ENV: the BACKEND feature must be one of {backend_names()}; got {name!r}.")
        return str(name)

    @staticmethod
    def register_backend(name: str, factory: Callable[[], MathBackend]) -> None:
        """Registers a backend factory under ``name`` (deeplearn.js ``ENV.registerBackend``)."""
        from deeplearn.math.backends import register_backend

        register_backend(name, factory)

    def get_backend(self, name: str) -> MathBackend:
        """The backend of ``ENV.math`` when it is called ``name``, else a new one.

        Example:
            >>> dl.ENV.get_backend("cpu").name
            'cpu'
        """
        from deeplearn.math.backends import create_backend

        if self._math is not None and self._math.backend.name == name:
            return self._math.backend
        return create_backend(name)

    @property
    def math(self) -> NDArrayMath:
        """The default NDArrayMath, created on first use on the best backend."""
        if self._math is None:
            with self._lock:
                if self._math is None:
                    from deeplearn.math.ndarray_math import NDArrayMath

                    math = NDArrayMath(self.get_best_backend())
                    if self.get("DEBUG"):
                        math.enable_debug_mode()
                    self._math = math
        return self._math

    def set_math(self, math: NDArrayMath) -> None:
        """Makes ``math`` the default (factories create arrays on its backend)."""
        self._math = math

    def reset(self) -> None:
        """Forgets the default math and the features; the next ``ENV.math`` makes a new one."""
        self._math = None
        self._features = {}
        self._flags_read = False


def _flag_value(raw: str) -> Any:
    """A DEEPLEARN_FLAGS value of a feature with no parser: true/false, an integer, or the text."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(raw)
    except ValueError:
        return raw


ENV = Environment()


def memory() -> dict[str, Any]:
    """Live arrays and bytes, in total and per backend (the backend's pool too, on CUDA).

    Example:
        >>> sorted(memory())
        ['backends', 'num_arrays', 'num_bytes']
    """
    from deeplearn.math.scope import REGISTRY

    backends: dict[str, Any] = {}
    for name in REGISTRY.backends():
        backends[name] = {"num_arrays": REGISTRY.num_arrays(name), "num_bytes": REGISTRY.num_bytes(name)}
        if name == "cuda":
            from deeplearn.math.backends.cuda import pool_usage

            backends[name].update(pool_usage())
    return {"num_arrays": REGISTRY.num_arrays(), "num_bytes": REGISTRY.num_bytes(), "backends": backends}
