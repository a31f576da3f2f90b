"""The package type-checks under mypy --strict (STYLE.md 4.7): the public API stays typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_passes_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extra (pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "deeplearn"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
