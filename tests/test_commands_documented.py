"""Every command of `python -m worker` and `python -m catalog` is in README.md's Commands table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def commands(module: str) -> list[str]:
    """The subcommands `python -m MODULE --help` lists."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = re.search(r"\{([a-z,_-]+)\}", done.stdout)
    assert found, done.stdout
    return found.group(1).split(",")


@pytest.mark.parametrize("module", ["worker", "catalog"])
def test_every_command_has_a_row_in_the_readme(module: str) -> None:
    table = ROOT.joinpath("README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(rf"^\| `python -m {module} ([a-z_-]+)", table, flags=re.MULTILINE)
    listed = commands(module)
    assert listed, module
    missing = [name for name in listed if name not in rows]
    assert not missing, f"README.md's Commands table lacks python -m {module} {', '.join(missing)}"
