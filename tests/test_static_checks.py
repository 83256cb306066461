"""The product type-checks and lints clean, so `./studio.sh test` fails on a type error as on a failing test.

mypy runs with pyproject.toml's `[tool.mypy]` (the packages, and `warn_unused_ignores`: a `# type: ignore` that no
longer hides an error fails too, so the ones left stay checked); ruff with its `[tool.ruff]` lint rules and
formatting. Each runs as a subprocess of this interpreter, exactly as a developer would run it by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=540, check=False
    )


def test_mypy_finds_no_type_errors_in_the_product() -> None:
    done = _run("mypy", "--config-file", str(ROOT / "pyproject.toml"))
    report = done.stdout + done.stderr
    assert done.returncode == 0, (
        "mypy found problems: fix the code (a `# type: ignore[code]` only where a library's stubs are wrong, with a"
        f" comment saying why):\n{report}"
    )
    assert re.search(r"Success: no issues found in [1-9][0-9]* source files", report), f"checked nothing?\n{report}"


def test_ruff_lints_and_formatting_are_clean() -> None:
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, f"ruff check:\n{lint.stdout}{lint.stderr}"
    formatting = _run("ruff", "format", "--check", ".")
    assert formatting.returncode == 0, (
        f"ruff format --check (run `ruff format .`):\n{formatting.stdout}{formatting.stderr}"
    )
