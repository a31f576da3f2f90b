"""The package type-checks under mypy --strict (docs/design.md §10): the public API stays typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_passes_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extra (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "deeplearn"],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


MISSPELLED = '''\
import deeplearn as dl

math = dl.NDArrayMath("cpu")
a = dl.Array2D.new([2, 2], [1, 2, 3, 4])
math.mat_mul(a, a)
math.matmul(a, a)
'''


def test_mypy_rejects_a_misspelled_math_method(tmp_path: Path) -> None:
    """NDArrayMath has no catch-all ``__getattr__`` for mypy: ``math.matmul`` (for ``mat_mul``)
    is an error, not an untyped call."""
    pytest.importorskip("mypy", reason="mypy comes with the test extra (pip install -e '.[test]')")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(MISSPELLED)
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(snippet)],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1 and len(errors) == 1, result.stdout + result.stderr
    assert errors[0].startswith(f"{snippet}:6:") and '"matmul"' in errors[0], errors[0]
