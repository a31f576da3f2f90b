"""bench/overhead.py's cases and its API floor: each case runs the op it names and frees what it
makes, and the floor's probe leaves no array alive behind it."""

from __future__ import annotations

import numpy as np

import deeplearn as dl
from bench.overhead import api_floor, cases
from deeplearn.math.scope import REGISTRY


def test_every_case_computes_what_the_library_does_and_frees_its_result() -> None:
    math = dl.NDArrayMathCPU()
    table = cases(math, np)
    assert {"add", "relu", "sum", "mat_mul"} <= set(table)
    before = REGISTRY.num_arrays("cpu")
    for name, (ours, theirs) in table.items():
        ours()
        assert REGISTRY.num_arrays("cpu") == before, name  # its result disposed
        assert np.asarray(theirs()).size > 0, name


def test_the_floor_is_a_method_and_a_dispose_and_leaves_nothing_alive() -> None:
    math = dl.NDArrayMathCPU()
    before = REGISTRY.num_arrays("cpu"), REGISTRY.num_bytes("cpu")
    floor = api_floor(math, np, math.backend.synchronize)
    assert set(floor) == {"method", "dispose"}
    assert all(0 <= us < 50 for us in floor.values())
    assert floor["method"] + floor["dispose"] > 0
    assert (REGISTRY.num_arrays("cpu"), REGISTRY.num_bytes("cpu")) == before
