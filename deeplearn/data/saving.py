"""save_model and load_model: a Graph's variables (and an optimizer's state) in one safetensors file.

One call writes every variable of a Graph, by name, to a `safetensors <https://huggingface.co/docs/
safetensors>`_ file, and optionally the state of the optimizer that trains it (its state arrays,
such as Momentum's velocities and Adam's moments, and its host scalars, such as the learning
rate and Adam's β powers), so that training resumes exactly where it stopped. One call reads it
back into a Graph or a Session.

The file (not in deeplearn.js, which had only ``CheckpointLoader``'s folders):

- one tensor per variable, under the variable's name, in its own dtype (float32, int32 or bool);
- one tensor per optimizer state array, under ``optimizer/<state>/<variable>``
  (``optimizer/velocity/w``);
- the header's text metadata: ``format`` (``deeplearn.model``), ``format_version``,
  ``library_version``, ``variables`` (JSON: each variable's name, shape and dtype) and, with an
  optimizer, ``optimizer`` (JSON: its class name, its host scalars and its state tensors).

Other tools read the variables as they read any safetensors file. The ``safetensors`` package is
needed (the ``io`` extra: ``pip install 'deeplearn[io]'``) and imported only when these
functions are called.

Safety (docs/design.md §8): a save writes a temporary file in the target's folder, flushes it to
disk and renames it over the target, so an interrupted save leaves the previous file as it was; a
load reads and checks the whole file (its structure, every name, shape and dtype, the optimizer's
class and scalars) before it changes anything, so a truncated, corrupt or mismatched file raises
and leaves the Graph and the optimizer as they were.
"""

from __future__ import annotations

import contextlib
import json
import math as _math
import os
import re
import stat
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from deeplearn import util
from deeplearn.data.files import folder_lock, write_atomic
from deeplearn.math.ndarray import NDArray
from deeplearn.types import DisposedError

try:
    import fcntl
except ImportError:  # Windows: writers are not serialised, leftovers are not removed
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from deeplearn.graph.graph import Graph, VariableNode
    from deeplearn.graph.optimizers.optimizer import Optimizer
    from deeplearn.graph.session import Session
    from deeplearn.math.ndarray_math import NDArrayMath

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "read_model_metadata", "save_model"]

FORMAT = "deeplearn.model"
"""The ``format`` entry of a model file's metadata."""

FORMAT_VERSION = 1
"""The layout of the metadata this module writes; a file of a later version is refused."""

_DTYPES = ("float32", "int32", "bool")
_STATE_PREFIX = "optimizer/"
_TMP_SUFFIX = ".deeplearn-tmp"  # what a temporary file of a save ends with


# -- public API --------------------------------------------------------------------------------
def save_model(
    path: str | os.PathLike[str], model: Graph | Session, optimizer: Optimizer | None = None
) -> None:
    """Writes every variable of ``model`` (a Graph, or a Session's Graph) to the safetensors file
    ``path``, and with ``optimizer`` its state, so that training can resume exactly.

    Variables are stored under their names (``graph.variable("w", ...)``), which must be unique
    in the Graph, each in its dtype: int32 and bool variables stay int32 and bool. The optimizer's
    state arrays are stored as ``optimizer/<state>/<variable>``, and its class name and host
    scalars (the learning rate, Momentum's momentum, Adam's β1, β2 and their powers
    ``acc_beta1``/``acc_beta2``) in the metadata.

    The write is atomic: the file is written under a temporary name in the same folder, flushed
    to disk and renamed over ``path``. A save that is interrupted (an error, a killed process,
    a power cut) leaves the previous file intact, and the next save into the folder removes
    what a killed one left. Saves into one folder take turns (a lock, where the system has
    ``fcntl``).

    Example:
        >>> import os, tempfile
        >>> g = dl.Graph()
        >>> w = g.variable("w", Array1D.new([1, 2, 3]))
        >>> steps = g.variable("steps", NDArray.make([], 7, "int32"))
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> dl.save_model(path, g)
        >>> dl.read_model_metadata(path)["variables"]
        {'w': {'shape': (3,), 'dtype': 'float32'}, 'steps': {'shape': (), 'dtype': 'int32'}}
    """
    where = "save_model"
    target = _target_file(path, where)
    safetensors = _safetensors_numpy(where)
    graph, session = _graph_of(model, where)
    _check_optimizer_type(optimizer, where)
    with _held(session, optimizer):
        variables = _variable_nodes(graph, where)
        tensors, entries = _variable_tensors(variables, where)
        metadata = _metadata(entries)
        if optimizer is not None:
            metadata["optimizer"] = json.dumps(
                _optimizer_tensors(optimizer, variables, tensors, where), sort_keys=True
            )
    data: bytes = safetensors.save(tensors, metadata)
    _write_atomic(target, data)


def load_model(
    path: str | os.PathLike[str],
    model: Graph | Session,
    optimizer: Optimizer | None = None,
    *,
    math: NDArrayMath | None = None,
) -> None:
    """Reads a file written by ``save_model`` into ``model`` (a Graph, or a Session's Graph),
    and with ``optimizer`` the optimizer's state too.

    The file's variables and the Graph's must have the same names, shapes and dtypes; a
    ValueError lists every difference. With ``optimizer``, the file must hold the state of an
    optimizer of the same class; the optimizer's state arrays and host scalars (learning rate,
    β powers, ...) become the file's, and state the file does not hold is dropped, so training
    continues exactly as the saved run would have.

    Everything is read and checked first: a missing, truncated or corrupt file, or one that
    does not match, raises and changes nothing.

    Args:
        path: the file.
        model: a Graph, or a Session (its Graph; the arrays are made on its math).
        optimizer: the optimizer whose state to restore; None loads the variables only.
        math: where a Graph's arrays are made (default: ``dl.ENV.math``); a Session uses its own.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
        >>> g = dl.Graph(); w = g.variable("w", Array1D.new([1, 2, 3]))
        >>> dl.save_model(path, g)
        >>> fresh = dl.Graph(); w2 = fresh.variable("w", Array1D.new([0, 0, 0]))
        >>> dl.load_model(path, fresh)
        >>> dl.Session(fresh, math).eval(w2).get_values()
        array([1., 2., 3.], dtype=float32)
    """
    where = "load_model"
    target = Path(os.fspath(path))
    safetensors = _safetensors_numpy(where)
    graph, session = _graph_of(model, where)
    _check_optimizer_type(optimizer, where)
    on = _math_for(session, math, where)
    contents = _read_model(target, safetensors, where)
    with _held(session, optimizer):
        variables = _variable_nodes(graph, where)
        _check_variables(contents, variables, target, where)
        state: dict[tuple[str, str], np.ndarray] = {}
        scalars: dict[str, float] = {}
        if optimizer is not None:
            state, scalars = _check_optimizer(contents, optimizer, variables, target, where)
        arrays = _upload(
            {("variable", n): contents.tensors[n] for n in variables}
            | {("state", *k): v for k, v in state.items()},
            on,
        )
        # Nothing below can fail: the Graph and the optimizer change together or not at all.
        for name, node in variables.items():
            _set_variable(node, arrays[("variable", name)])
        if optimizer is not None:
            _set_optimizer(optimizer, variables, {k: arrays[("state", *k)] for k in state}, scalars)


def read_model_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a file written by ``save_model`` holds, read and checked as ``load_model`` reads it:
    ``{"library_version": str, "variables": {name: {"shape": tuple, "dtype": str}},
    "optimizer": None | {"class": str, "scalars": {name: float}, "state": [(state, variable), ...]}}``.

    Example:
        >>> import os, tempfile
        >>> g = dl.Graph(); w = g.variable("w", Scalar.new(1))
        >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> dl.save_model(path, g, dl.MomentumOptimizer(0.1, 0.9))
        >>> info = dl.read_model_metadata(path)
        >>> info["optimizer"]["class"], info["optimizer"]["scalars"]
        ('MomentumOptimizer', {'learning_rate': 0.1, 'momentum': 0.9})
    """
    where = "read_model_metadata"
    target = Path(os.fspath(path))
    contents = _read_model(target, _safetensors_numpy(where), where)
    optimizer = None
    if contents.optimizer is not None:
        optimizer = {
            "class": contents.optimizer.cls,
            "scalars": dict(contents.optimizer.scalars),
            "state": sorted(contents.optimizer.state),
        }
    return {
        "library_version": contents.library_version,
        "variables": {n: {"shape": s, "dtype": d} for n, (s, d) in contents.variables.items()},
        "optimizer": optimizer,
    }


# -- the model: its variables and its optimizer --------------------------------------------------
def _safetensors_numpy(where: str) -> ModuleType:
    """``safetensors.numpy``, imported when first needed (the optional ``io`` extra)."""
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            f"{where}: needs the safetensors package, which the 'io' extra installs: "
            f"pip install 'deeplearn[io]' (or pip install safetensors)."
        ) from None
    return safetensors.numpy


def _graph_of(model: Any, where: str) -> tuple[Graph, Session | None]:
    from deeplearn.graph.graph import Graph
    from deeplearn.graph.session import Session

    if isinstance(model, Session):
        return model.graph, model
    if isinstance(model, Graph):
        return model, None
    raise TypeError(f"{where}: model must be a Graph or a Session; got {type(model).__name__}.")


def _check_optimizer_type(optimizer: Any, where: str) -> None:
    from deeplearn.graph.optimizers.optimizer import Optimizer

    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"{where}: optimizer must be an Optimizer (SGDOptimizer(0.1), ...) or None; got {type(optimizer).__name__}."
        )


def _math_for(session: Session | None, math: NDArrayMath | None, where: str) -> NDArrayMath:
    """Where the loaded arrays are made: the Session's math, else ``math``, else ENV.math."""
    if session is not None:
        if math is not None and math is not session.math:
            raise ValueError(
                f"{where}: math is for a Graph (a Session loads onto its own math); got a Session and math={math!r}."
            )
        return session.math
    if math is not None:
        return math
    from deeplearn.environment import ENV

    return ENV.math


@contextlib.contextmanager
def _held(session: Session | None, optimizer: Optimizer | None) -> Iterator[None]:
    """Holds the Session's and the optimizer's locks, in the order ``Session.train`` takes
    them: no training step runs while variables and state are read or replaced."""
    with contextlib.ExitStack() as stack:
        if session is not None:
            stack.enter_context(session._lock)
        if optimizer is not None:
            stack.enter_context(optimizer.lock)
        yield


def _variable_nodes(graph: Graph, where: str) -> dict[str, VariableNode]:
    """The Graph's variables by name; names must be unique, as the file knows them by name."""
    from deeplearn.graph.graph import VariableNode

    nodes = [n for n in graph.get_nodes() if isinstance(n, VariableNode)]
    out: dict[str, VariableNode] = {}
    for node in nodes:
        if node.name in out:
            count = sum(n.name == node.name for n in nodes)
            raise ValueError(
                f"{where}: variable names must be unique in the graph (the file knows variables by name); "
                f"got {count} variables named {node.name!r}."
            )
        out[node.name] = node
    return out


def _variable_tensors(
    variables: Mapping[str, VariableNode], where: str
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Each variable's values on the host, by name, and its metadata entry."""
    tensors: dict[str, np.ndarray] = {}
    entries: list[dict[str, Any]] = []
    for name, node in variables.items():
        data: NDArray = node.data
        if data.is_disposed:
            raise DisposedError(
                f"{where}: the data of variable {name!r} is disposed; was it created inside a math.scope that "
                f"has ended? Create it outside, or keep() it."
            )
        tensors[name] = np.asarray(data.numpy(), order="C")
        entries.append({"name": name, "shape": list(data.shape), "dtype": data.dtype})
    return tensors, entries


def _metadata(entries: list[dict[str, Any]]) -> dict[str, str]:
    from deeplearn import __version__

    return {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "library_version": __version__,
        "variables": json.dumps(entries),
    }


def _host_scalars(optimizer: Optimizer) -> dict[str, float]:
    """The optimizer's numbers kept on the host: the learning rate and every public number it
    holds (momentum, beta1, beta2, gamma, and the β powers acc_beta1/acc_beta2 that Adam and
    Adamax advance every batch)."""
    out: dict[str, float] = {"learning_rate": optimizer.learning_rate}
    for name, value in vars(optimizer).items():
        if not name.startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out


def _optimizer_tensors(
    optimizer: Optimizer, variables: Mapping[str, VariableNode], tensors: dict[str, np.ndarray], where: str
) -> dict[str, Any]:
    """Adds the optimizer's state arrays to ``tensors``; returns its metadata entry."""
    state: list[dict[str, str]] = []
    for (state_name, tensor), array in sorted(
        optimizer._state.items(), key=lambda kv: (kv[0][1].node.name, kv[0][0])
    ):
        if array.is_disposed:
            continue  # the optimizer makes it anew (zeros) when next used
        name = tensor.node.name
        if variables.get(name) is not tensor.node:
            raise ValueError(
                f"{where}: the optimizer holds state of a variable this graph lacks (was it trained on another "
                f"Graph?); got state {state_name!r} of {tensor!r}."
            )
        key = f"{_STATE_PREFIX}{state_name}/{name}"
        if key in tensors:
            raise ValueError(
                f"{where}: the name of state {state_name!r} of variable {name!r} must not be a variable's name; got "
                f"a variable named {key!r} (rename it)."
            )
        tensors[key] = np.asarray(array.numpy(), order="C")
        state.append({"key": key, "state": state_name, "variable": name})
    scalars = _host_scalars(optimizer)
    for name, value in scalars.items():
        if not _math.isfinite(value):
            raise ValueError(f"{where}: the optimizer's {name} must be finite; got {name}={value!r}.")
    return {"class": type(optimizer).__name__, "scalars": scalars, "state": state}


# -- reading and checking a file -----------------------------------------------------------------
@dataclass(frozen=True)
class _OptimizerRecord:
    cls: str
    scalars: dict[str, float]
    state: dict[tuple[str, str], str]  # (state name, variable name) -> tensor key


@dataclass(frozen=True)
class _Contents:
    tensors: dict[str, np.ndarray]
    variables: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype)
    library_version: str
    optimizer: _OptimizerRecord | None


def _read_model(file: Path, safetensors: ModuleType, where: str) -> _Contents:
    """The whole file, its structure and metadata checked: a truncated or corrupt file, or a
    safetensors file save_model did not write, is a ValueError naming the file."""
    data = _read_bytes(file, where)
    try:
        tensors: dict[str, np.ndarray] = safetensors.load(data)
    except Exception as e:  # safetensors' SafetensorError, and whatever else a damaged file provokes
        raise ValueError(
            f"{where}: the file must be a complete safetensors file; got file {str(file)!r}, which is truncated "
            f"or corrupt ({e})."
        ) from e
    metadata = _header_metadata(data)
    contents = _parse_metadata(metadata, tensors, file, where)
    _check_tensors(contents, file, where)
    return contents


def _read_bytes(file: Path, where: str) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below as not a file).
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(file, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file; got file {str(file)!r}.") from None
    except IsADirectoryError:  # Windows; Linux opens a folder, refused below
        raise ValueError(f"{where}: path must be a file; got the folder {str(file)!r}.") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError(f"{where}: path must be a file; got the folder {str(file)!r}.")
        if not stat.S_ISREG(mode):
            raise ValueError(f"{where}: path must be a regular file; got {str(file)!r}.")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _header_metadata(data: bytes) -> Any:
    """The ``__metadata__`` of a safetensors file whose structure safetensors has checked."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]).get("__metadata__")


def _parse_metadata(metadata: Any, tensors: dict[str, np.ndarray], file: Path, where: str) -> _Contents:
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(
            f"{where}: the file must be a model written by save_model (its metadata names format {FORMAT!r}); "
            f"got file {str(file)!r}, a safetensors file of another kind."
        )
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"{where}: the file must be of format version {FORMAT_VERSION}; got version "
            f"{metadata.get('format_version')!r} in file {str(file)!r} (written by deeplearn "
            f"{metadata.get('library_version')!r}: a newer version reads it)."
        )
    try:
        variables = _parse_variables(json.loads(metadata["variables"]))
        optimizer = (
            None if "optimizer" not in metadata else _parse_optimizer(json.loads(metadata["optimizer"]))
        )
        version = metadata["library_version"]
        if not isinstance(version, str):
            raise TypeError(version)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ValueError(
            f"{where}: the file's metadata must describe its variables and optimizer as save_model writes them; "
            f"got file {str(file)!r}, whose metadata is corrupt ({type(e).__name__}: {e})."
        ) from None
    return _Contents(tensors, variables, version, optimizer)


def _parse_variables(entries: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for entry in entries:
        name, shape, dtype = entry["name"], entry["shape"], entry["dtype"]
        if not isinstance(name, str) or name in out or dtype not in _DTYPES or not _is_shape(shape):
            raise ValueError(f"bad variable entry {entry!r:.200}")
        out[name] = (tuple(shape), dtype)
    return out


def _parse_optimizer(entry: Any) -> _OptimizerRecord:
    cls, scalars = entry["class"], entry["scalars"]
    if not isinstance(cls, str) or not isinstance(scalars, dict):
        raise ValueError(f"bad optimizer entry {entry!r:.200}")
    for name, value in scalars.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _math.isfinite(value):
            raise ValueError(f"bad optimizer scalar {name}={value!r}")
    state: dict[tuple[str, str], str] = {}
    for item in entry["state"]:
        key, state_name, variable = item["key"], item["state"], item["variable"]
        if (
            not all(isinstance(s, str) for s in (key, state_name, variable))
            or (state_name, variable) in state
        ):
            raise ValueError(f"bad optimizer state entry {item!r:.200}")
        state[(state_name, variable)] = key
    return _OptimizerRecord(cls, scalars, state)


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    )


def _check_tensors(contents: _Contents, file: Path, where: str) -> None:
    """The tensors are exactly those the metadata names, each of its shape and dtype."""
    expected = dict(contents.variables)
    if contents.optimizer is not None:
        for (state_name, variable), key in contents.optimizer.state.items():
            if variable not in contents.variables or key in expected:
                raise ValueError(
                    f"{where}: the file's optimizer state must be of its variables; got state {state_name!r} of "
                    f"{variable!r} under {key!r} in file {str(file)!r} (corrupt metadata)."
                )
            expected[key] = contents.variables[variable]
    if set(expected) != set(contents.tensors):
        raise ValueError(
            f"{where}: the file's tensors must be those its metadata names; got tensors "
            f"{sorted(contents.tensors)!r:.300} and names {sorted(expected)!r:.300} in file {str(file)!r} (corrupt)."
        )
    for key, (shape, dtype) in expected.items():
        array = contents.tensors[key]
        if array.shape != shape or array.dtype != util.numpy_dtype(dtype):  # type: ignore[arg-type]
            raise ValueError(
                f"{where}: tensor {key!r} must be {dtype} of shape {shape}, as the metadata says; got "
                f"{array.dtype} of shape {array.shape} in file {str(file)!r} (corrupt)."
            )
        if dtype == "bool" and array.size and array.view(np.uint8).max() > 1:
            raise ValueError(
                f"{where}: bool tensor {key!r} must hold bytes 0 and 1 only; got {int(array.view(np.uint8).max())} "
                f"in file {str(file)!r} (corrupt)."
            )


def _check_variables(
    contents: _Contents, variables: Mapping[str, VariableNode], file: Path, where: str
) -> None:
    """The file's variables are the Graph's: the same names, shapes and dtypes."""
    extra = sorted(set(contents.variables) - set(variables))
    missing = sorted(set(variables) - set(contents.variables))
    if extra or missing:
        parts = []
        if extra:
            parts.append(f"the file has variables the graph lacks: {extra}")
        if missing:
            parts.append(f"the graph has variables the file lacks: {missing}")
        raise ValueError(f"{where}: {'; and '.join(parts)}; got file {str(file)!r}.")
    differ = [
        f"{name!r}: file {dtype} {shape}, graph {node.output.dtype} {node.output.shape}"
        for name, node in variables.items()
        for shape, dtype in [contents.variables[name]]
        if (shape, dtype) != (node.output.shape, node.output.dtype)
    ]
    if differ:
        raise ValueError(
            f"{where}: the file's variables must have the graph's shapes and dtypes; got {'; '.join(differ)} "
            f"in file {str(file)!r}."
        )


def _check_optimizer(
    contents: _Contents, optimizer: Optimizer, variables: Mapping[str, VariableNode], file: Path, where: str
) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, float]]:
    """The file's optimizer record fits ``optimizer``; returns its state arrays, by (state,
    variable), and its host scalars."""
    from deeplearn.graph.optimizers.optimizer import check_hyperparameter

    record = contents.optimizer
    kind = type(optimizer).__name__
    if record is None:
        raise ValueError(
            f"{where}: the file holds no optimizer state (save it with save_model(path, model, optimizer)); "
            f"got optimizer={kind} and file {str(file)!r}."
        )
    if record.cls != kind:
        raise ValueError(
            f"{where}: the optimizer must be of the class whose state the file holds, {record.cls}; got "
            f"optimizer={kind} and file {str(file)!r}."
        )
    wanted = set(_host_scalars(optimizer))
    if set(record.scalars) != wanted:
        raise ValueError(
            f"{where}: the file's optimizer scalars must be the optimizer's, {sorted(wanted)}; got "
            f"{sorted(record.scalars)} in file {str(file)!r}."
        )
    check_hyperparameter(record.scalars["learning_rate"], where, "learning_rate")
    unknown = sorted(s for s, _ in record.state if s not in type(optimizer).state_names)
    if unknown:
        raise ValueError(
            f"{where}: the file's optimizer state must be among {kind}'s {list(type(optimizer).state_names)}; got "
            f"{unknown} in file {str(file)!r}."
        )
    return {k: contents.tensors[key] for k, key in record.state.items()}, dict(record.scalars)


# -- changing the Graph and the optimizer ---------------------------------------------------------
def _upload(host: Mapping[tuple[str, ...], np.ndarray], math: NDArrayMath) -> dict[tuple[str, ...], NDArray]:
    """Every array on ``math``'s backend, kept by no scope; if one cannot be made (out of
    memory), those made are freed and nothing else has changed."""
    from deeplearn.math.scope import REGISTRY

    made: dict[tuple[str, ...], NDArray] = {}
    try:
        for key, values in host.items():
            dtype = (
                "float32" if values.dtype == np.float32 else "int32" if values.dtype == np.int32 else "bool"
            )
            # A copy of its own: the loaded values are read-only views of the file's bytes.
            raw = math.backend.asarray(np.array(values, dtype=values.dtype, order="C", copy=True))
            made[key] = REGISTRY.keep(NDArray._wrap(raw, math.backend, dtype))  # type: ignore[arg-type]
    except BaseException:
        for array in made.values():
            array.dispose()
        raise
    return made


def _set_variable(node: VariableNode, value: NDArray) -> None:
    """Makes ``value`` the variable's data, owned by the graph (as ``Session._assign`` does)."""
    old, owned = node.data, node.owns_data
    node.data, node.owns_data = value, True
    if owned and old is not value:
        old.dispose()


def _set_optimizer(
    optimizer: Optimizer,
    variables: Mapping[str, VariableNode],
    state: Mapping[tuple[str, str], NDArray],
    scalars: Mapping[str, float],
) -> None:
    """The optimizer's state becomes the file's: its arrays (any others are freed) and scalars."""
    for array in optimizer._state.values():
        array.dispose()
    optimizer._state.clear()
    for (state_name, variable), array in state.items():
        optimizer.set_bound(("state", state_name, variables[variable].output), array)
    for name, value in scalars.items():
        setattr(optimizer, name, value)


# -- writing a file atomically --------------------------------------------------------------------
def _target_file(path: str | os.PathLike[str], where: str) -> Path:
    """``path`` as a Path, checked before anything is computed: its folder exists and it is no
    folder itself."""
    target = Path(os.fspath(path))
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{where}: the folder of path must exist; got path {str(target)!r}.")
    if target.is_dir():
        raise ValueError(f"{where}: path must name a file; got the folder {str(target)!r}.")
    return target


def _write_atomic(target: Path, data: bytes) -> None:
    """Writes ``data`` over ``target`` atomically (``files.write_atomic``), the folder's writers
    taking turns; the temporary files of earlier saves that were killed go first."""
    folder = target.parent
    with folder_lock(folder):
        _remove_leftovers(target)
        write_atomic(target, data, tmp=folder / f".{target.name}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")


def _remove_leftovers(target: Path) -> None:
    """Removes the temporary files of saves of ``target`` that were killed. Runs under the
    folder's lock, which every live save holds, so no live save owns one; without ``fcntl``
    nothing is removed (a concurrent save's file might be)."""
    if fcntl is None:
        return
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{12}}{re.escape(_TMP_SUFFIX)}")
    for entry in os.listdir(target.parent):
        if pattern.fullmatch(entry):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(target.parent / entry).st_mode):
                    os.unlink(target.parent / entry)
