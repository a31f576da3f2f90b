"""save_model / load_model (issue 15): a round trip resumes training bit for bit, optimizer state
included, on every backend; dtypes survive; mismatches are listed; writes are atomic (a killed
writer leaves the old file, and the next save removes its leftovers); a truncated or corrupt
file is a ValueError naming it, and nothing is half-loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from tests.graph.helpers import OPTIMIZERS
from deeplearn import NDArray, load_model, read_model_metadata, save_model
from deeplearn.data import files, saving
from deeplearn.graph.graph import VariableNode

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ROOT = Path(__file__).resolve().parents[2]

# Other hyperparameters than OPTIMIZERS': what a load must overwrite.
OTHER_OPTIMIZERS: dict[str, Callable[[], dl.Optimizer]] = {
    "sgd": lambda: dl.SGDOptimizer(3.0),
    "momentum": lambda: dl.MomentumOptimizer(3.0, 0.1),
    "rmsprop": lambda: dl.RMSPropOptimizer(3.0, 0.1),
    "adagrad": lambda: dl.AdagradOptimizer(3.0),
    "adadelta": lambda: dl.AdadeltaOptimizer(3.0, 0.1),
    "adam": lambda: dl.AdamOptimizer(3.0, 0.1, 0.2),
    "adamax": lambda: dl.AdamaxOptimizer(3.0, 0.1, 0.2),
}


class Model:
    """A two-layer network with an int32 and a bool variable beside it (which no cost reaches)."""

    def __init__(self, math: dl.NDArrayMath, seed: int) -> None:
        rng = np.random.default_rng(seed)
        g = self.graph = dl.Graph()
        self.x = g.placeholder("x", [3])
        self.label = g.placeholder("label", [2])
        self.w1 = g.variable("dense1/w", NDArray.from_numpy(rng.normal(size=(3, 4)).astype(np.float32), math=math))
        self.b1 = g.variable("dense1/b", NDArray.from_numpy(rng.normal(size=4).astype(np.float32), math=math))
        self.w2 = g.variable("dense2/w", NDArray.from_numpy(rng.normal(size=(4, 2)).astype(np.float32), math=math))
        self.steps = g.variable("steps", NDArray.make([], int(rng.integers(0, 100)), "int32", math=math))
        self.mask = g.variable("mask", NDArray.make([3], rng.random(3) < 0.5, "bool", math=math))
        hidden = g.relu(g.add(g.matmul(self.x, self.w1), self.b1))
        self.cost = g.mean_squared_cost(g.matmul(hidden, self.w2), self.label)
        self.session = dl.Session(g, math)

    def train(self, optimizer: dl.Optimizer, steps: int, start: int) -> None:
        data = np.random.default_rng(7)
        xs, ys = data.normal(size=(40, 3)).astype(np.float32), data.normal(size=(40, 2)).astype(np.float32)
        feeds = [dl.FeedEntry(self.x, dl.InOrderInputProvider(xs, start=start)),
                 dl.FeedEntry(self.label, dl.InOrderInputProvider(ys, start=start))]
        for _ in range(steps):
            self.session.train(self.cost, feeds, 4, optimizer, dl.CostReduction.MEAN)

    def values(self) -> dict[str, np.ndarray]:
        return {n.name: n.data.numpy() for n in self.graph.get_nodes() if isinstance(n, VariableNode)}


def _state(optimizer: dl.Optimizer) -> dict[tuple[str, str], np.ndarray]:
    return {(s, t.node.name): a.numpy() for (s, t), a in optimizer._state.items()}


def _assert_bitwise(a: dict[Any, np.ndarray], b: dict[Any, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


# -- the bar: a round trip resumes training exactly ---------------------------------------------
@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("target", ["graph", "session"])
def test_resumed_training_equals_an_uninterrupted_run_bit_for_bit(math: dl.NDArrayMath, tmp_path: Path,
                                                                  kind: str, target: str) -> None:
    first, later = 3, 4
    straight, straight_opt = Model(math, seed=1), OPTIMIZERS[kind]()
    straight.train(straight_opt, first + later, start=0)

    before, before_opt = Model(math, seed=1), OPTIMIZERS[kind]()
    before.train(before_opt, first, start=0)
    path = tmp_path / "model.safetensors"
    save_model(path, before.session if target == "session" else before.graph, before_opt)

    resumed, resumed_opt = Model(math, seed=2), OTHER_OPTIMIZERS[kind]()  # other weights, other hyperparameters
    load_model(path, resumed.session if target == "session" else resumed.graph, resumed_opt)
    resumed.train(resumed_opt, later, start=first * 4)

    _assert_bitwise(resumed.values(), straight.values())
    _assert_bitwise(_state(resumed_opt), _state(straight_opt))
    assert saving._host_scalars(resumed_opt) == saving._host_scalars(straight_opt)  # Adam's β powers too


def test_without_the_optimizer_state_training_does_not_resume_exactly(cpu_math: dl.NDArrayMath,
                                                                     tmp_path: Path) -> None:
    """The bar above is sensitive: loading the weights alone gives other weights."""
    straight, straight_opt = Model(cpu_math, seed=1), OPTIMIZERS["adam"]()
    straight.train(straight_opt, 5, start=0)
    before, before_opt = Model(cpu_math, seed=1), OPTIMIZERS["adam"]()
    before.train(before_opt, 2, start=0)
    save_model(tmp_path / "m.safetensors", before.graph, before_opt)
    resumed, resumed_opt = Model(cpu_math, seed=2), OPTIMIZERS["adam"]()
    load_model(tmp_path / "m.safetensors", resumed.graph)
    resumed.train(resumed_opt, 3, start=8)
    assert not np.array_equal(resumed.values()["dense1/w"], straight.values()["dense1/w"])


def test_the_file_is_plain_safetensors_with_the_metadata(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    model, optimizer = Model(cpu_math, seed=1), OPTIMIZERS["momentum"]()
    model.train(optimizer, 2, start=0)
    path = tmp_path / "m.safetensors"
    save_model(path, model.session, optimizer)
    tensors = safetensors_numpy.load_file(path)
    assert set(tensors) == {"dense1/w", "dense1/b", "dense2/w", "steps", "mask", "optimizer/velocity/dense1/w",
                            "optimizer/velocity/dense1/b", "optimizer/velocity/dense2/w"}
    _assert_bitwise({k: tensors[k] for k in model.values()}, model.values())
    np.testing.assert_array_equal(tensors["optimizer/velocity/dense2/w"], _state(optimizer)[("velocity", "dense2/w")])
    info = read_model_metadata(path)
    assert info["library_version"] == dl.__version__
    assert info["variables"]["dense1/w"] == {"shape": (3, 4), "dtype": "float32"}
    assert info["variables"]["steps"] == {"shape": (), "dtype": "int32"}
    assert info["optimizer"] == {"class": "MomentumOptimizer", "scalars": {"learning_rate": 0.05, "momentum": 0.9},
                                 "state": [("velocity", "dense1/b"), ("velocity", "dense1/w"),
                                           ("velocity", "dense2/w")]}


def test_int32_and_bool_stay_what_they_are(math: dl.NDArrayMath, tmp_path: Path) -> None:
    g = dl.Graph()
    g.variable("big", NDArray.make([3], [16777217, -(2**31), 2**31 - 1], "int32", math=math))
    g.variable("flags", NDArray.make([2, 2], [True, False, False, True], "bool", math=math))
    g.variable("empty", NDArray.zeros([0, 3], math=math))
    save_model(tmp_path / "m.safetensors", g)
    fresh = dl.Graph()
    big = fresh.variable("big", NDArray.zeros([3], "int32", math=math))
    flags = fresh.variable("flags", NDArray.zeros([2, 2], "bool", math=math))
    empty = fresh.variable("empty", NDArray.ones([0, 3], math=math))
    load_model(tmp_path / "m.safetensors", fresh, math=math)
    for t, want in ((big, [16777217, -(2**31), 2**31 - 1]), (flags, [[True, False], [False, True]])):
        data = t.node.data  # type: ignore[attr-defined]
        assert data.dtype == t.dtype and data.backend is math.backend
        assert data.numpy().tolist() == want
    assert empty.node.data.shape == (0, 3)  # type: ignore[attr-defined]


def test_loading_again_frees_what_the_graph_owned(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    model, optimizer = Model(cpu_math, seed=1), OPTIMIZERS["adam"]()
    model.train(optimizer, 2, start=0)
    save_model(tmp_path / "m.safetensors", model.session, optimizer)
    load_model(tmp_path / "m.safetensors", model.session, optimizer)
    count = cpu_math.get_num_arrays()
    for _ in range(3):
        load_model(tmp_path / "m.safetensors", model.session, optimizer)
    assert cpu_math.get_num_arrays() == count
    assert all(n.owns_data for n in model.graph.get_nodes() if isinstance(n, VariableNode))


# -- what must match ------------------------------------------------------------------------------
def _graph(**variables: NDArray) -> dl.Graph:
    g = dl.Graph()
    for name, data in variables.items():
        g.variable(name, data)
    return g


def _snapshot(g: dl.Graph) -> dict[str, tuple[Any, list[Any]]]:
    return {n.name: (n.data, n.data.numpy().tolist()) for n in g.get_nodes() if isinstance(n, VariableNode)}


def _unchanged(g: dl.Graph, before: dict[str, tuple[Any, list[Any]]]) -> bool:
    now = {n.name: n for n in g.get_nodes() if isinstance(n, VariableNode)}
    return now.keys() == before.keys() and all(
        now[k].data is array and now[k].data.numpy().tolist() == values for k, (array, values) in before.items())


def test_different_names_are_listed_both_ways(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(w=dl.Array1D.new([1, 2]), w2=dl.Scalar.new(3)))
    g = _graph(w=dl.Array1D.new([0, 0]), b=dl.Scalar.new(0))
    before = _snapshot(g)
    message = (f"load_model: the file has variables the graph lacks: ['w2']; and the graph has variables the file "
               f"lacks: ['b']; got file '{path}'.")
    with pytest.raises(ValueError) as e:
        load_model(path, g)
    assert str(e.value) == message
    assert _unchanged(g, before)


def test_different_shapes_and_dtypes_are_listed(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(a=NDArray.zeros([2, 3]), b=NDArray.zeros([2], "int32"), c=dl.Scalar.new(1)))
    g = _graph(a=NDArray.zeros([3, 2]), b=NDArray.zeros([2]), c=dl.Scalar.new(5))
    before = _snapshot(g)
    with pytest.raises(ValueError, match=r"load_model: the file's variables must have the graph's shapes and "
                                         r"dtypes; got 'a': file float32 \(2, 3\), graph float32 \(3, 2\); 'b': file "
                                         r"int32 \(2,\), graph float32 \(2,\) in file '.*m.safetensors'\."):
        load_model(path, g)
    assert _unchanged(g, before)


def test_duplicate_variable_names_are_refused(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    g = dl.Graph()
    g.variable("w", dl.Scalar.new(1))
    g.variable("w", dl.Scalar.new(2))
    with pytest.raises(ValueError, match="save_model: variable names must be unique in the graph .*; got 2 "
                                         "variables named 'w'"):
        save_model(tmp_path / "m.safetensors", g)
    assert not (tmp_path / "m.safetensors").exists()
    save_model(tmp_path / "m.safetensors", _graph(w=dl.Scalar.new(1)))
    with pytest.raises(ValueError, match="load_model: variable names must be unique"):
        load_model(tmp_path / "m.safetensors", g)


def test_the_optimizer_must_be_of_the_saved_class(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    model, optimizer = Model(cpu_math, seed=1), OPTIMIZERS["adam"]()
    model.train(optimizer, 2, start=0)
    path = tmp_path / "m.safetensors"
    save_model(path, model.graph, optimizer)
    fresh, other = Model(cpu_math, seed=2), OPTIMIZERS["adamax"]()
    fresh.train(other, 1, start=0)
    before, state = _snapshot(fresh.graph), _state(other)
    with pytest.raises(ValueError, match=r"load_model: the optimizer must be of the class whose state the file "
                                         r"holds, AdamOptimizer; got optimizer=AdamaxOptimizer and file"):
        load_model(path, fresh.graph, other)
    assert _unchanged(fresh.graph, before)
    _assert_bitwise(_state(other), state)


def test_a_file_without_optimizer_state_cannot_restore_one(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(w=dl.Scalar.new(1)))
    g = _graph(w=dl.Scalar.new(0))
    with pytest.raises(ValueError, match=r"load_model: the file holds no optimizer state \(save it with "
                                         r"save_model\(path, model, optimizer\)\); got optimizer=SGDOptimizer"):
        load_model(path, g, dl.SGDOptimizer(0.1))
    assert g.get_nodes()[0].data.get() == 0  # type: ignore[attr-defined]
    load_model(path, g)  # the variables alone load
    assert g.get_nodes()[0].data.get() == 1  # type: ignore[attr-defined]


def test_state_the_file_lacks_is_dropped(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    model, optimizer = Model(cpu_math, seed=1), dl.MomentumOptimizer(0.05, 0.9, [])
    model.train(optimizer, 1, start=0)  # trains nothing: no state
    path = tmp_path / "m.safetensors"
    save_model(path, model.graph, optimizer)
    fresh, used = Model(cpu_math, seed=2), OPTIMIZERS["momentum"]()
    fresh.train(used, 2, start=0)
    assert used._state
    load_model(path, fresh.graph, used)
    assert used._state == {}


def test_state_of_another_graphs_variable_is_refused(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    model, optimizer = Model(cpu_math, seed=1), OPTIMIZERS["momentum"]()
    model.train(optimizer, 1, start=0)
    with pytest.raises(ValueError, match="save_model: the optimizer holds state of a variable this graph lacks"):
        save_model(tmp_path / "m.safetensors", Model(cpu_math, seed=1).graph, optimizer)
    assert list(tmp_path.iterdir()) == []


def test_arguments_are_checked(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    g = _graph(w=dl.Scalar.new(1))
    with pytest.raises(TypeError, match="save_model: model must be a Graph or a Session; got dict"):
        save_model(tmp_path / "m.safetensors", {}, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="save_model: optimizer must be an Optimizer"):
        save_model(tmp_path / "m.safetensors", g, "adam")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="save_model: the folder of path must exist"):
        save_model(tmp_path / "nowhere" / "m.safetensors", g)
    with pytest.raises(ValueError, match="save_model: path must name a file; got the folder"):
        save_model(tmp_path, g)
    with pytest.raises(FileNotFoundError, match="load_model: no such file; got file '.*missing.safetensors'"):
        load_model(tmp_path / "missing.safetensors", g)
    save_model(tmp_path / "m.safetensors", g)
    with pytest.raises(ValueError, match="load_model: math is for a Graph"):
        load_model(tmp_path / "m.safetensors", dl.Session(g, cpu_math), math=dl.NDArrayMathCPU())


def test_a_missing_safetensors_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"save_model: needs the safetensors package, which the 'io' extra "
                                          r"installs: pip install 'deeplearn\[io\]'"):
        save_model(tmp_path / "m.safetensors", dl.Graph())


# -- atomic writes --------------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(cpu_math: dl.NDArrayMath, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(w=dl.Array1D.new([1, 2, 3])))
    old = path.read_bytes()

    def half_then_fail(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "_write_chunks", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_model(path, _graph(w=dl.Array1D.new([4, 5, 6])))
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    g = _graph(w=dl.Array1D.new([0, 0, 0]))
    load_model(path, g)
    assert g.get_nodes()[0].data.get_values().tolist() == [1, 2, 3]  # type: ignore[attr-defined]


def test_a_writer_killed_midway_leaves_the_old_file(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(w=NDArray.zeros([1000, 1000])))
    old = path.read_bytes()
    # The child writes half of a 4 MB file, says so, and waits to be killed.
    script = textwrap.dedent(f"""
        import os, sys, time
        import deeplearn as dl
        from deeplearn.data import files, saving
        def half_then_wait(fd, data):
            os.write(fd, data[: len(data) // 2])
            os.fsync(fd)
            print("half", flush=True)
            time.sleep(120)
        files._write_chunks = half_then_wait
        g = dl.Graph()
        g.variable("w", dl.NDArray.ones([1000, 1000], math=dl.NDArrayMathCPU()))
        saving.save_model({str(path)!r}, g)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "DEEPLEARN_BACKEND": "cpu"})
    try:
        assert child.stdout is not None and child.stdout.readline() == "half\n"
        leftovers = [p for p in tmp_path.iterdir() if p.name != "m.safetensors"]
        assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the child's temporary file
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == old
    g = _graph(w=NDArray.ones([1000, 1000]))
    load_model(path, g)
    assert not g.get_nodes()[0].data.numpy().any()  # type: ignore[attr-defined]
    assert len(list(tmp_path.iterdir())) == 2  # the killed writer's temporary file is still there
    save_model(path, _graph(w=dl.Scalar.new(1)))  # the next save removes it
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_an_overwritten_file_keeps_its_permissions(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _graph(w=dl.Scalar.new(1)))
    path.chmod(0o640)
    save_model(path, _graph(w=dl.Scalar.new(2)))
    assert path.stat().st_mode & 0o777 == 0o640


def test_files_of_other_saves_are_left_alone(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    keep = [".m.safetensors.notes", ".other.safetensors.0123456789ab.deeplearn-tmp", "m.safetensors.bak"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    save_model(tmp_path / "m.safetensors", _graph(w=dl.Scalar.new(1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "m.safetensors"])


# -- truncated and corrupt files -------------------------------------------------------------------
def _saved(tmp_path: Path) -> tuple[Path, bytes, dl.Graph]:
    path = tmp_path / "m.safetensors"
    model, optimizer = Model(dl.NDArrayMathCPU(), seed=1), OPTIMIZERS["adam"]()
    model.train(optimizer, 1, start=0)
    save_model(path, model.graph, optimizer)
    return path, path.read_bytes(), Model(dl.NDArrayMathCPU(), seed=2).graph


def test_a_truncated_file_is_refused_and_nothing_is_loaded(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    path, data, g = _saved(tmp_path)
    header = 8 + int.from_bytes(data[:8], "little")
    optimizer = OPTIMIZERS["adam"]()
    before = _snapshot(g)
    for cut in (0, 3, 8, 40, header - 1, header, header + 10, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=f"load_model: the file must be a complete safetensors file; got file "
                                             f"'{path}', which is truncated or corrupt"):
            load_model(path, g, optimizer)
        assert _unchanged(g, before) and optimizer._state == {} and optimizer.learning_rate == 0.01


@pytest.mark.parametrize("damage", ["header", "bool", "metadata", "format", "foreign", "extra tensor",
                                    "declared shape", "state name", "scalar"])
def test_a_corrupt_file_is_refused_and_nothing_is_loaded(cpu_math: dl.NDArrayMath, tmp_path: Path,
                                                         damage: str) -> None:
    path, data, g = _saved(tmp_path)
    tensors = safetensors_numpy.load(data)
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8:8 + size])["__metadata__"]
    message = "must be a model written by save_model|metadata is corrupt|corrupt"
    if damage == "header":
        path.write_bytes(data[:8] + b"[" + data[9:])
        message = "the file must be a complete safetensors file"
    elif damage == "bool":
        raw = bytearray(data)
        at = 8 + size + json.loads(data[8:8 + size])["mask"]["data_offsets"][0]
        raw[at] = 7
        path.write_bytes(bytes(raw))
        message = "bool tensor 'mask' must hold bytes 0 and 1 only; got 7"
    else:
        if damage == "metadata":
            metadata["variables"] = metadata["variables"][:-3]
        elif damage == "format":
            metadata["format_version"] = "2"
            message = "the file must be of format version 1; got version '2'"
        elif damage == "foreign":
            metadata = {}
            message = "a safetensors file of another kind"
        elif damage == "extra tensor":
            tensors["stowaway"] = np.zeros(2, np.float32)
            message = "the file's tensors must be those its metadata names"
        elif damage == "declared shape":
            entries = json.loads(metadata["variables"])
            entries[0]["shape"] = [4, 3]
            metadata["variables"] = json.dumps(entries)
            message = r"tensor 'dense1/w' must be float32 of shape \(4, 3\), as the metadata says"
        elif damage == "state name":
            record = json.loads(metadata["optimizer"])
            record["state"][0]["state"] = "velocity"
            metadata["optimizer"] = json.dumps(record)
            message = r"the file's optimizer state must be among AdamOptimizer's \['m', 'v'\]; got \['velocity'\]"
        elif damage == "scalar":
            record = json.loads(metadata["optimizer"])
            record["scalars"]["acc_beta1"] = "0.5"
            metadata["optimizer"] = json.dumps(record)
            message = "metadata is corrupt"
        path.write_bytes(safetensors_numpy.save(tensors, metadata))
    optimizer = OPTIMIZERS["adam"]()
    before = _snapshot(g)
    with pytest.raises(ValueError, match=message) as e:
        load_model(path, g, optimizer)
    assert str(path) in str(e.value)
    assert _unchanged(g, before) and optimizer._state == {} and optimizer.acc_beta1 == 0.9  # type: ignore[attr-defined]


def test_a_folder_or_a_fifo_is_no_model_file(cpu_math: dl.NDArrayMath, tmp_path: Path) -> None:
    g = _graph(w=dl.Scalar.new(1))
    with pytest.raises(ValueError, match="load_model: path must be a file; got the folder"):
        load_model(tmp_path, g)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="load_model: path must be a regular file"):
            load_model(tmp_path / "fifo", g)
