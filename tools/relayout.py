"""Move the tree to the layout of issue 20: one shared core, one package per program (docs/design.md, "Layout").

    python tools/relayout.py          # in a clean checkout: git mv the modules, rewrite every reference
    python tools/relayout.py --check  # print what is still to move or rewrite; exit 1 if anything is

`worker/` was four things at once: the shared core, the GPU job, the local endpoint and the consumer side, so an
import of `worker.x` said nothing about what it really needed. This script does the move mechanically, so that it
can be run again on the final tree rather than merged by hand: it `git mv`s each module to its new home, then
rewrites every import and every textual reference to it (Python, Dockerfile.worker's COPY lines, .dockerignore,
studio.sh, .ci, pyproject.toml, README.md, docs, tests, .runpod/, .streamlit, examples). No shim is left at the old
paths: a shim would hide the very arrows tests/test_layering.py checks.

It is idempotent: a module already moved is not moved again, and a reference already rewritten matches no old
name. Standard library only; when ruff is installed beside this Python it re-sorts the import blocks it touched
(`ruff check --select I --fix`), since `worker.contract` becoming `core.contract` changes their order.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULES: dict[str, str] = {
    # the shared core: every program imports it, it imports none of them
    "worker.contract": "core.contract",
    "worker.settings": "core.settings",
    "worker.store": "core.store",
    "worker.logs": "core.logs",
    "worker.prices": "core.prices",
    # the local RunPod-compatible endpoint (a package: its submodules follow it)
    "worker.endpoint": "endpoint",
    # the consumer side
    "worker.client": "client.api",
    "worker.submit": "client.submit",
    "worker.studio": "client.launcher",
    "worker.payloads": "client.payloads",
    "worker.progress_bar": "client.progress_bar",
    "worker.deploy": "client.deploy",
    "worker.estimate": "client.estimate",
}
"""Old module → new module. Everything else under worker/ stays: it is what the GPU image runs."""

NEW_PACKAGES: dict[str, str] = {
    "core/__init__.py": (
        '"""The shared core: the job contract, settings, the artifact store, logs, prices and the SQLite helper.\n\n'
        "Every program (worker, endpoint, client, catalog, dashboard) imports it and it imports none of them\n"
        '(tests/test_layering.py), so that what it holds means the same thing everywhere."""\n'
    ),
    "client/__init__.py": (
        '"""The consumer side of an endpoint: the API client, `submit`, the studio launcher, payload files, deploy\n'
        "and the estimate.\n\nIt talks to RunPod's cloud or the local endpoint over HTTP and never runs a job itself: "
        'it imports the core\nand only the few pure rules of the worker that tests/test_layering.py lists."""\n'
    ),
}
"""Packages the move creates, with the docstring that says what belongs there."""

SKIP = {"tools/relayout.py", "tests/test_layering.py"}
"""Files that name the old layout on purpose."""

TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".sh", ".yml", ".yaml", ".cfg", ".ini", ".example", ""}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def moves() -> list[tuple[str, str]]:
    """(old path, new path) for each module, file or folder, as git sees them."""
    pairs = []
    for old, new in MODULES.items():
        old_base, new_base = Path(*old.split(".")), Path(*new.split("."))
        if old == "worker.endpoint" or (ROOT / old_base).is_dir() or (ROOT / new_base).is_dir():
            pairs.append((str(old_base), str(new_base)))
        else:
            pairs.append((f"{old_base}.py", f"{new_base}.py"))
    return pairs


def move_files(check: bool) -> list[str]:
    todo = []
    for old, new in moves():
        if (ROOT / old).exists() and not (ROOT / new).exists():
            todo.append(f"git mv {old} {new}")
            if not check:
                (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
                git("mv", old, new)
    for path, text in NEW_PACKAGES.items():
        if not (ROOT / path).exists():
            todo.append(f"create {path}")
            if not check:
                (ROOT / path).write_text(text)
                git("add", path)
    return todo


# --- rewriting references --------------------------------------------------------------------------------------

_NAMES = "|".join(sorted((old.removeprefix("worker.") for old in MODULES), key=len, reverse=True))
DOTTED = re.compile(rf"(?<![\w.]){re.escape('worker')}\.({_NAMES})(?![\w])")
"""`worker.contract`, `worker.endpoint.queue`, "worker.client.time.sleep": a dotted name, not `x.worker.contract`."""
SLASHED = re.compile(rf"(?<![\w./-])worker/({_NAMES})(\.py|/|(?![\w.]))")
"""`worker/contract.py`, `worker/endpoint/`, `worker/endpoint`: a path from the repository root (not `/app/worker/`)."""


def _dotted(match: re.Match[str]) -> str:
    return MODULES[f"worker.{match.group(1)}"]


def _slashed(match: re.Match[str]) -> str:
    return MODULES[f"worker.{match.group(1)}"].replace(".", "/") + match.group(2)


def rewrite_from_worker_imports(source: str) -> str:
    """`from worker import logs, media` → `from core import logs` + `from worker import media`.

    The one form a dotted-name rewrite cannot reach: the moved module is an imported *name* of the package.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module == "worker" and node.level == 0):
            continue
        moved = [alias for alias in node.names if f"worker.{alias.name}" in MODULES]
        if not moved:
            continue
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
        statements = []
        kept = [alias for alias in node.names if alias not in moved]
        if kept:
            statements.append("from worker import " + ", ".join(_alias(a.name, a.asname) for a in kept))
        for alias in moved:
            package, _, name = MODULES[f"worker.{alias.name}"].rpartition(".")
            bound = alias.asname or alias.name
            if package:
                statements.append(f"from {package} import {_alias(name, None if bound == name else bound)}")
            else:
                statements.append(f"import {_alias(name, None if bound == name else bound)}")
        edits.append((node.lineno, node.end_lineno, "".join(f"{indent}{s}\n" for s in statements)))
    for start, end, text in sorted(edits, reverse=True):
        lines[start - 1 : end] = [text]
    return "".join(lines)


def _alias(name: str, asname: str | None) -> str:
    return f"{name} as {asname}" if asname else name


def rewrite_dockerfile(text: str) -> str:
    """Split each COPY of worker files into /app/worker/ by where the files now live.

    The image runs the worker and the core only: core files go to /app/core/, worker files stay, and the whole-tree
    copy of worker/ gets a copy of core/ beside it. Files of the client and the endpoint leave the image's lists:
    the worker's command line imports them only inside the commands that need them.
    """
    out = []
    for instruction in re.split(r"(?<=\n)(?=COPY )", text):
        match = re.match(r"COPY ((?:[^\n]|\\\n)*?) (/app/worker/\S*)\n", instruction)
        if not match:
            out.append(instruction)
            continue
        sources, dest = match.group(1).replace("\\\n", " ").split(), match.group(2)
        rest = instruction[match.end() :]
        if sources == ["worker/"]:
            copy_core = "COPY core/ /app/core/\n"
            out.append(("" if copy_core in text else copy_core) + instruction)
            continue
        if not any(SLASHED.search(source) for source in sources):
            out.append(instruction)  # nothing of it moved (or it was split already): left as written
            continue
        groups: dict[str, list[str]] = {}
        for source in sources:
            new = SLASHED.sub(_slashed, source)
            top = new.split("/")[0]
            if top in ("client", "endpoint"):
                continue
            groups.setdefault(top, []).append(new)
        if "core" in groups and "core/__init__.py" not in groups["core"]:
            groups["core"].insert(0, "core/__init__.py")
        lines = []
        for top, files in sorted(groups.items(), key=lambda item: item[0] != "core"):
            target = dest if top == "worker" else f"/app/{top}/"
            lines.append(_copy_line(files, target))
        out.append("".join(lines) + rest)
    return "".join(out)


def _copy_line(files: list[str], dest: str, width: int = 116) -> str:
    words, lines, line = [*files, dest], [], "COPY"
    for word in words:
        if len(line) + 1 + len(word) > width and line.strip() not in ("COPY", ""):
            lines.append(line + " \\")
            line = "    "
        line += " " + word
    lines.append(line)
    return "\n".join(lines) + "\n"


def rewrite_dockerignore(text: str) -> str:
    if "!worker/" in text and "!core/" not in text:
        text = text.replace("!worker/\n", "!worker/\n!core/\n")
    return text.replace("needs only the worker's code and its pinned", "needs only worker/, core/ and the pinned")


def rewrite(path: str, text: str) -> str:
    if path == "Dockerfile.worker":
        text = rewrite_dockerfile(text)
    if path == ".dockerignore":
        return rewrite_dockerignore(text)
    if path.endswith(".py"):
        text = rewrite_from_worker_imports(text)
    text = SLASHED.sub(_slashed, text)
    return DOTTED.sub(_dotted, text)


def text_files() -> list[str]:
    paths = []
    for path in git("ls-files", "-z").split("\0"):
        if not path or path in SKIP or path.startswith(("docs/images/", "examples/media/", "test-artifacts/")):
            continue
        full = ROOT / path
        if full.is_symlink():
            continue  # .runpod/Dockerfile is Dockerfile.worker: rewritten once, under its own name
        if full.is_file() and (full.suffix in TEXT_SUFFIXES or path in ("Dockerfile.worker", ".dockerignore")):
            paths.append(path)
    return paths


def rewrite_files(check: bool) -> list[str]:
    changed = []
    for path in text_files():
        full = ROOT / path
        try:
            text = full.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite(path, text)
        if new != text:
            changed.append(path)
            if not check:
                full.write_text(new)
    return changed


def sort_imports(paths: list[str]) -> None:
    python = [p for p in paths if p.endswith(".py")]
    if not python:
        return
    ruff = [sys.executable, "-m", "ruff"]
    if subprocess.run([*ruff, "--version"], capture_output=True, check=False).returncode != 0:
        print("ruff is not installed here: run `ruff check --select I --fix .` to re-sort the imports", file=sys.stderr)
        return
    subprocess.run([*ruff, "check", "--quiet", "--select", "I", "--fix", *python], cwd=ROOT, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/relayout.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is left to do")
    args = parser.parse_args(argv)
    moved = move_files(args.check)
    if args.check and moved:
        # the rewrites are only meaningful on the moved tree
        print("\n".join(moved))
        return 1
    changed = rewrite_files(args.check)
    if not args.check:
        sort_imports(changed)
    for line in moved:
        print(line)
    for path in changed:
        print(f"{'would rewrite' if args.check else 'rewrote'} {path}")
    if not moved and not changed:
        print("the tree already has the new layout")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
