"""The layering of docs/design.md, checked: every import of every module, against one table of allowed arrows.

The folders say what depends on what only while no module imports across the lines. So this walks each module's
imports with `ast` (at the top and inside functions alike: a lazy import is still an arrow), names the package of
both ends, and fails on any arrow the table below does not allow. The table is data, so that a new arrow is a
visible one-line change here and in docs/design.md rather than an import slipped into a page.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WORKER_INPUT_RULES = frozenset({"worker.inputs", "worker.audio", "worker.geometry", "worker.faces", "worker.media"})
"""The worker's input rules the dashboard applies: before sending a job, Submit checks its media with the rules the
worker will (how a file is classified and fetched, the speech level and voice list, the output size, the faces
the detector finds, ffmpeg for a video's first frame), so an error shows under the field instead of after a
GPU queue. These modules are pure and torch-free (tests/test_dashboard_app.py loads every page without torch)."""

CLIENT_WORKER_RULES = frozenset({"worker.inputs", "worker.media", "worker.clips", "worker.variants", "worker.split"})
"""The worker's rules the client side reads: a payload file's media are classified as the worker will
(`client.payloads`), the estimate counts clips as InfiniteTalk chunks them (`worker.clips`) and probes a
file's duration with the worker's ffprobe (`client.estimate`), deploy writes the weight variables the engine
reads (`client.deploy` → `worker.variants`), and the fan-out cuts long speech as the worker prepares it and
joins the parts' videos with its ffmpeg (`client.fanout` → `worker.split`, issue 30).
Pure modules again: nothing of the pipeline or an engine."""

RULES: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "worker": frozenset({"core"}),
    "endpoint": frozenset({"core", "worker"}),
    "client": frozenset({"core", "catalog"}) | CLIENT_WORKER_RULES,
    "catalog": frozenset({"core"}),
    "dashboard": frozenset({"core", "client", "catalog"}) | WORKER_INPUT_RULES,
    "studio": frozenset({"core", "worker", "endpoint", "client", "catalog", "dashboard"}),
}
"""Package → what its modules may import besides themselves: a package name allows all of it, a dotted module
name that module alone. `client → catalog` is the estimate's history fit, which reads the endpoint's past runs.
`studio` is the command line (issue 31): it starts every program, so it may import each of them, and no program
may import it (none lists it). There is no exemption for a single file: worker/__main__.py, the GPU image's command
line, is held to the worker's row like every other module of the worker."""

OUTSIDE = ("tests", "bench", "tools", ".runpod", ".venv", ".git")
"""Folders that are not programs: tests and benchmarks may import everything (and any `.venv*` environment, such
as the GPU image's stack in `.venv-image`, is not ours)."""


def package_of(module: str) -> str:
    return module.split(".")[0]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for each import in source, top-level or in a function; `from a import b` names `a.b` when
    that is a module of ours, else `a`. Relative imports are resolved against module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if full in known else base


def allowed(source: str, target: str) -> bool:
    source_package, target_package = package_of(source), package_of(target)
    if target_package not in RULES or target_package == source_package:
        return True  # the standard library, a third-party package, or the package itself
    return any(target == rule or target.startswith(f"{rule}.") for rule in RULES[source_package])


def violations(modules: dict[str, str]) -> list[str]:
    """Every arrow against RULES in modules, {path relative to the root: source}, as 'path:line: a -> b'."""
    names = {path: module_name(ROOT / path, ROOT) for path in modules}
    known = {module_name(ROOT / path, ROOT) for path in our_modules()} | set(names.values())
    found = []
    for path, source in sorted(modules.items()):
        module = names[path]
        for line, target in imported(source, module, path.endswith("__init__.py"), known):
            if not allowed(module, target):
                found.append(f"{path}:{line}: {package_of(module)} -> {target}")
    return found


@functools.cache
def our_modules() -> dict[str, str]:
    """Every module of the programs, {path: source}."""
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for path in ROOT.rglob("*.py")
        if path.relative_to(ROOT).parts[0] not in OUTSIDE and not path.relative_to(ROOT).parts[0].startswith(".venv")
    }


def test_every_import_follows_the_layering() -> None:
    found = violations(our_modules())
    assert not found, "arrows against the layering (docs/design.md):\n" + "\n".join(found)


def test_every_program_has_a_row_in_the_table() -> None:
    """A new top-level package is one more program: it needs a row, or nothing it imports would be checked."""
    packages = {path.split("/")[0] for path in our_modules() if "/" in path}
    assert packages == set(RULES), f"give {sorted(packages - set(RULES))} a row in RULES (and docs/design.md)"


@pytest.mark.parametrize(
    ("path", "source", "arrow"),
    [
        # what the tree held before the move (issue 20): each of these is reported
        ("dashboard/x.py", "import worker.pipeline\n", "dashboard -> worker.pipeline"),
        ("dashboard/x.py", "from worker import pipeline\n", "dashboard -> worker.pipeline"),
        ("dashboard/x.py", "from worker.client import StudioClient\n", "dashboard -> worker.client"),
        ("catalog/x.py", "from worker.contract import JobStatus\n", "catalog -> worker.contract"),
        ("catalog/x.py", "from client.api import JobState\n", "catalog -> client.api"),
        ("core/x.py", "from worker.media import probe\n", "core -> worker.media"),
        ("core/x.py", "def f():\n    from catalog import Catalog\n", "core -> catalog"),
        ("worker/x.py", "def f():\n    from endpoint import serve\n", "worker -> endpoint"),
        ("worker/x.py", "from client.progress_bar import ProgressBar\n", "worker -> client.progress_bar"),
        ("client/x.py", "from worker.pipeline import run_job\n", "client -> worker.pipeline"),
        ("client/x.py", "from endpoint.queue import JobQueue\n", "client -> endpoint.queue"),
        ("endpoint/x.py", "from dashboard import state\n", "endpoint -> dashboard"),
        ("dashboard/x.py", "from endpoint.app import create_app\n", "dashboard -> endpoint.app"),
        (
            "dashboard/x.py",
            "from worker.engines.infinitetalk import InfiniteTalkEngine\n",
            "dashboard -> worker.engines",
        ),
    ],
)
def test_the_checker_reports_a_cross_import(path: str, source: str, arrow: str) -> None:
    """The check cannot pass vacuously: each of these arrows, in a module of its own, is reported with its line."""
    reported = violations({path: source})
    assert len(reported) == 1 and reported[0].startswith(f"{path}:") and arrow in reported[0], reported


def test_the_allowed_arrows_are_not_reported() -> None:
    """The table's own arrows pass, lazy or not, and a module's imports of its own package are free."""
    modules = {
        "dashboard/x.py": "from client.api import StudioClient\nfrom worker.inputs import classify\nimport catalog\n",
        "endpoint/x.py": "from worker.pipeline import run_job\nfrom endpoint.queue import JobQueue\n",
        "worker/x.py": "def f():\n    from core import logs\n    from worker import media\n",
        "core/x.py": "import json\nimport sqlite3\nfrom core.contract import JobError\n",
    }
    assert violations(modules) == []


def test_the_command_line_package_alone_reaches_every_program() -> None:
    """`studio` imports each program; the worker's own command line, and any program importing `studio`, do not."""
    everything = "from endpoint import serve\nfrom client.submit import main\nfrom dashboard.signin import main\n"
    assert (
        violations({"studio/cli.py": everything + "from catalog.cli import main\nfrom worker.weights import main\n"})
        == []
    )
    assert violations({"worker/__main__.py": "from endpoint import serve\n"}) == [
        "worker/__main__.py:1: worker -> endpoint"
    ]
    assert violations({"worker/__main__.py": "def f():\n    from client.submit import main\n"}) == [
        "worker/__main__.py:2: worker -> client.submit"
    ]
    for package in ("core", "worker", "endpoint", "client", "catalog", "dashboard"):
        assert violations({f"{package}/x.py": "from studio.cli import main\n"}) == [
            f"{package}/x.py:1: {package} -> studio.cli"
        ]


def test_no_file_names_a_module_by_its_old_place() -> None:
    """`tools/relayout.py --check` finds nothing left to move or rewrite: a doc, a test or a Dockerfile line naming
    worker/contract.py or worker.client (the layout before issue 20) would point at a file that is not there."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: relayout lists the files with git ls-files")
    done = subprocess.run(
        [sys.executable, "tools/relayout.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "the tree already has the new layout"
