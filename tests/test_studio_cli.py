"""`studio`, the one command line (issue 31), and the forms it replaced, which still work for scripts already written.

Each old form (`python -m worker studio|run|submit|estimate|endpoint|deploy`, `python -m catalog …`,
`python -m dashboard.signin`) says its `studio` command once on stderr and then does exactly what that command
does; the GPU image, which holds worker/ and core/ alone, still runs its own commands and says plainly that the
others are not part of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def python(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` as a user runs it, in the checkout unless told otherwise."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env={**os.environ, **(env or {})}, input=input, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["worker", "studio"], "studio run"),
        (["worker", "run"], "studio job"),
        (["worker", "submit"], "studio submit"),
        (["worker", "estimate"], "studio estimate"),
        (["worker", "endpoint"], "studio endpoint"),
        (["worker", "deploy"], "studio deploy"),
    ],
)
def test_an_old_worker_command_names_its_studio_command_once_and_becomes_it(old: list[str], new: str) -> None:
    done = python("-m", *old, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {new} "), done.stdout[:200]
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: `python -m {' '.join(old)}` is now `{new} --help`"], done.stderr


def test_the_old_run_command_runs_the_job_as_studio_job_does(tmp_path: Path) -> None:
    """`python -m worker run PAYLOAD` (./studio.sh example before issue 31): one real preview job, result JSON."""
    done = python("-m", "worker", "run", str(EXAMPLES / "single_image.json"), env={"STUDIO_DATA_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "success" and result["engine"]["name"] == "preview"
    assert (tmp_path / "artifacts" / result["video"]["key"]).stat().st_size == result["video"]["bytes"]
    assert done.stderr.startswith("note: `python -m worker run` is now `studio job ")


def test_the_old_catalog_command_still_answers(tmp_path: Path) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_CATALOG": str(tmp_path / "catalog.db")}
    old = python("-m", "catalog", "stats", "--json", env=env)
    new = python("-m", "studio", "catalog", "stats", "--json", env=env)
    assert old.returncode == new.returncode == 0, old.stderr + new.stderr
    assert json.loads(old.stdout) == json.loads(new.stdout) and json.loads(new.stdout)["runs"] == 0
    assert old.stderr == "note: this is now `studio catalog stats --json`\n" and new.stderr == ""


def test_the_old_password_command_still_makes_a_hash() -> None:
    old = python("-m", "dashboard.signin", input="a long enough password\n")
    assert old.returncode == 0, old.stderr
    assert old.stdout.startswith('STUDIO_PASSWORD_HASH = "') and "note: this is now `studio password`" in old.stderr


def test_the_gpu_image_runs_its_commands_and_names_the_others(tmp_path: Path) -> None:
    """worker/ and core/ alone, as Dockerfile.worker copies them: `schema` works (nothing else is imported), and
    `submit` says it is not part of the image instead of failing on an import. The checkout's own `studio` is
    hidden from the image's Python (an editable install of it would otherwise be found through site-packages)."""
    for package in ("worker", "core"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    image = (
        "import runpy, sys;"
        f"sys.path[:] = ['.', *(p for p in sys.path if p not in ('', {str(ROOT)!r}))];"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')];"
        "sys.argv[0] = 'worker'; runpy.run_module('worker', run_name='__main__', alter_sys=True)"
    )
    schema = python("-c", image, "schema", cwd=tmp_path)
    assert schema.returncode == 0, schema.stderr
    assert json.loads(schema.stdout)["title"]
    submit = python("-c", image, "submit", "payload.json", cwd=tmp_path)
    assert submit.returncode == 2 and submit.stdout == ""
    assert submit.stderr.splitlines() == [
        "note: `python -m worker submit` is now `studio submit payload.json`",
        "error: `studio submit` is not part of the GPU image (it holds worker/ and core/ only)",
    ]
