"""Replays the math cases of tests/data/conformance_cases.json (numbers read from deeplearn.js's
own tests) on every backend.

Each case runs through its adapter (tests/conformance_adapters.py) or is skipped with the
documented departure that explains it (``SKIPS``, listed in docs/differences.md). Cases of the
graph, Session, training, GraphRunner, input providers, datasets and checkpoints are replayed by
the graph tests. Tolerances are absolute, as in the JSON, plus a relative 1e-6 for float32
rounding; ``{"error": true}`` means the call must raise ShapeError, DTypeError or ValueError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deeplearn as dl
from deeplearn import NDArray
from deeplearn.types import DTypeError
from tests.conformance_adapters import (
    ADAPTERS,
    ALL_CASES,
    CHECKED,
    SKIPS,
    Same,
    case_params,
    decode_values,
    is_math_case,
)

ROOT = Path(__file__).resolve().parent.parent
CASES = [c for c in ALL_CASES if is_math_case(c)]
DIFFERENCES = ROOT / "docs/differences.md"


def _dtype_name(a: np.ndarray) -> str:
    return "bool" if a.dtype == np.bool_ else a.dtype.name


def check_tensor(got: Any, spec: dict[str, Any], case: dict[str, Any], where: str) -> None:
    """``got`` (an NDArray or a NumPy array) has the shape, dtype and values of ``spec``."""
    assert got is not None, f"{where}: no result"
    if isinstance(got, NDArray):
        shape, dtype, values = got.shape, got.dtype, got.get_values()
    else:
        arr = np.asarray(got)
        shape, dtype, values = arr.shape, _dtype_name(arr), arr.reshape(-1)
    assert shape == tuple(spec["shape"]), f"{where}: shape {shape}, expected {tuple(spec['shape'])}"
    # 0.1.0 cases document the 0.1.0 API (float results everywhere); we give 0.3.17's dtypes.
    if case["tag"] != "v0.1.0":
        want_dtype = spec.get("dtype", "float32")
        assert dtype == want_dtype, f"{where}: dtype {dtype}, expected {want_dtype}"
    if "values" not in spec or isinstance(spec["values"], str):
        return
    want = decode_values(spec["values"])
    have = np.asarray(values, dtype=np.float64)
    assert have.shape == want.shape, f"{where}: {have.size} values, expected {want.size}"
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(have), nan, err_msg=f"{where}: NaN positions differ; got {have}")
    np.testing.assert_allclose(have[~nan], want[~nan], rtol=1e-6, atol=case["tolerance"],
                               err_msg=f"{where}: got {have}, expected {want}")


def check(result: Any, case: dict[str, Any]) -> None:
    expected = case["expected"]
    if result is CHECKED:
        return
    if isinstance(result, Same):
        for i, r in enumerate(result):
            check_tensor(r, expected, case, f"{case['id']} (result {i})")
    elif "shape" in expected:
        check_tensor(result, expected, case, case["id"])
    else:
        assert isinstance(result, dict), f"{case['id']}: adapter returned {type(result).__name__}"
        missing = set(expected) - set(result)
        assert not missing, f"{case['id']}: the adapter does not check {sorted(missing)}"
        for key, spec in expected.items():
            if isinstance(spec, (int, float)):  # a count (live arrays) or other number
                assert result[key] == spec, f"{case['id']}[{key}]: got {result[key]}, expected {spec}"
            elif isinstance(spec, list):
                assert len(result[key]) == len(spec), f"{case['id']}[{key}]"
                for i, (r, s) in enumerate(zip(result[key], spec)):
                    check_tensor(r, s, case, f"{case['id']}[{key}][{i}]")
            else:
                check_tensor(result[key], spec, case, f"{case['id']}[{key}]")


@pytest.mark.parametrize("case", case_params(CASES, SKIPS))
def test_conformance_case(case: dict[str, Any], math: dl.NDArrayMath) -> None:
    adapter = ADAPTERS[case["op"]]
    with math.scope():  # everything a case creates is freed when it ends
        if case["expected"] == {"error": True}:
            with pytest.raises((ValueError, DTypeError)):  # ShapeError is a ValueError
                adapter(math, case)
        else:
            check(adapter(math, case), case)


def test_every_math_case_has_an_adapter() -> None:
    missing = sorted({c["op"] for c in CASES if c["op"] not in ADAPTERS and c["id"] not in SKIPS})
    assert not missing, f"no adapter for {missing}"


def test_every_skip_names_an_existing_case_and_is_documented() -> None:
    ids = {c["id"] for c in CASES}
    assert set(SKIPS) <= ids, sorted(set(SKIPS) - ids)
    text = DIFFERENCES.read_text()
    for case_id, reason in SKIPS.items():
        assert "departure" in reason, (case_id, reason)
        assert f"`{case_id}`" in text, f"docs/differences.md does not list {case_id}"
