"""Baking the weights into the image (BAKE_WEIGHTS=1) runs `python -m worker weights fetch`, the command a pod
runs, on exactly the modules it imports: the Dockerfile copies that list before the bake step, so a code change
elsewhere reuses the 80 GB layer, and a new import is caught here rather than halfway through a docker build."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.test_dockerfile import instructions

ROOT = Path(__file__).resolve().parent.parent


def bake_step() -> int:
    steps = instructions()
    return next(i for i, (keyword, rest) in enumerate(steps) if keyword == "RUN" and "weights fetch" in rest)


def copied_before_the_bake() -> set[str]:
    files = set()
    for keyword, rest in instructions()[: bake_step()]:
        if keyword == "COPY" and rest.split()[-1].startswith(("/app/worker", "/app/core")):
            files |= set(rest.split()[:-1])
    return files


def fetch_imports(tmp_path: Path) -> set[str]:
    """The worker and core modules `python -m worker weights fetch` imports, run until the Hub is refused."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "worker", "weights", "fetch", "--to", str(tmp_path / "m")],
        cwd=ROOT, env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
             "HF_HUB_OFFLINE": "0"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "weights fetch: listing " in done.stderr, done.stderr[-2000:]
    modules = set(re.findall(r"\|\s+((?:worker|core)(?:\.\w+)*)\s*$", done.stderr, flags=re.MULTILINE))
    files = set()
    for module in modules | {"worker.__main__"}:
        path = Path(*module.split("."))
        files.add(str(path / "__init__.py") if (ROOT / path).is_dir() else f"{path}.py")
    return files


def test_the_bake_step_runs_weights_fetch_into_models_dir() -> None:
    _, rest = instructions()[bake_step()]
    assert 'python -m worker weights fetch --to "${MODELS_DIR}"' in rest
    assert rest.startswith('if [ "${BAKE_WEIGHTS}" = "1" ]; then')


def test_the_files_copied_before_the_bake_are_exactly_what_the_command_imports(tmp_path: Path) -> None:
    imported = fetch_imports(tmp_path)
    assert "worker/engines/infinitetalk_weights.py" in imported and "worker/weights.py" in imported
    assert copied_before_the_bake() == imported


def test_the_whole_worker_and_core_are_copied_after_the_bake() -> None:
    steps = instructions()
    assert steps.index(("COPY", "worker/ /app/worker/")) > bake_step()
    assert steps.index(("COPY", "core/ /app/core/")) > bake_step()
