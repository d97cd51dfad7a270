"""The project's own style gate: ruff check and ruff format stay clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> str:
    candidate = Path(sys.executable).with_name("ruff")
    found = str(candidate) if candidate.exists() else shutil.which("ruff")
    if not found:
        pytest.skip("ruff is not installed (it comes with the dev extras)")
    return found


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args: list[str]) -> None:
    result = subprocess.run([ruff(), *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
