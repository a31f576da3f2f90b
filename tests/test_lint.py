"""The code passes the linter and the library is formatted (ruff, configured in pyproject.toml):
unused imports and names, undefined names and zip() calls that would silently truncate fail the
suite, and the formatter leaves deeplearn/ as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["deeplearn", "tests", "bench", "demos", "examples", "conftest.py"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("ruff", reason="ruff comes with the test extra (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "ruff", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_code_passes_ruff_check() -> None:
    result = _ruff("check", "--no-cache", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_library_is_formatted() -> None:
    result = _ruff("format", "--check", "--no-cache", "deeplearn")
    assert result.returncode == 0, "run: ruff format deeplearn\n" + result.stdout + result.stderr
