"""Every command a user can type is in README.md's Commands table, and each says what it does with an example.

The commands are read from the command lines themselves (`studio`'s tree, with `studio catalog …` and
`studio weights …` one level down, and the GPU image's `python -m worker`), so a command added without a README
row fails here.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio import cli

ROOT = Path(__file__).resolve().parent.parent

NESTED = {"catalog", "weights"}
"""`studio` commands whose program has commands of its own: the README gives each of those a row."""


def readme_rows(command: str) -> list[str]:
    """The command words after `command` in the first cell of each row of README.md's Commands table."""
    table = ROOT.joinpath("README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^\| `{re.escape(command)} ([a-z][a-z_-]*(?: [a-z][a-z_-]*)?)", table, flags=re.MULTILINE)


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    """The names of a parser's subcommands, in its order."""
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    assert len(actions) == 1, parser.prog
    return list(actions[0].choices)


def help_text(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """What `studio ARGV --help` prints; it must exit 0."""
    with pytest.raises(SystemExit) as done:
        cli.main([*argv, "--help"])
    assert done.value.code == 0, argv
    return capsys.readouterr().out


def studio_commands() -> list[str]:
    """Every command of the tree: `run`, `submit`, …, and `catalog search`, `weights check`, …"""
    from catalog.cli import parser as catalog_parser

    nested = {"catalog": subcommands(catalog_parser()), "weights": ["check", "fetch"]}
    names = []
    for name in subcommands(cli.parser()):
        names += [f"{name} {sub}" for sub in nested[name]] if name in NESTED else [name]
    return names


def test_studio_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "studio", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    listed = re.findall(r"^    ([a-z][a-z-]*)", done.stdout, flags=re.MULTILINE)
    assert listed == subcommands(cli.parser())
    assert {"run", "submit", "estimate", "deploy", "weights", "selftest", "endpoint", "catalog", "password"} <= set(
        listed
    ), listed


def test_every_studio_command_has_a_row_in_the_readme() -> None:
    rows = {" ".join(row.split()[:2]) for row in readme_rows("studio")} | {
        row.split()[0] for row in readme_rows("studio")
    }
    missing = [name for name in studio_commands() if name not in rows]
    assert not missing, f"README.md's Commands table lacks studio {', studio '.join(missing)}"


def test_every_gpu_image_command_has_a_row_in_the_readme() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = re.search(r"\{([a-z,_-]+)\}", done.stdout)
    assert found, done.stdout
    listed = found.group(1).split(",")
    assert listed == ["serve", "selftest", "bench-gpu", "weights", "schema"], "the GPU image's commands only"
    rows = {row.split()[0] for row in readme_rows("python -m worker")}
    missing = [name for name in listed if name not in rows]
    assert not missing, f"README.md's Commands table lacks python -m worker {', '.join(missing)}"


def test_the_readme_has_no_row_for_a_command_that_does_not_exist() -> None:
    known = set(studio_commands()) | {name.split()[0] for name in studio_commands()}
    unknown = [row for row in readme_rows("studio") if row not in known and row.split()[0] not in known]
    assert not unknown, f"README.md documents studio {unknown}, which `studio` does not have"


@pytest.mark.parametrize("name", subcommands(cli.parser()))
def test_each_command_says_what_it_does_with_an_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`studio NAME --help` names itself as typed, says what it does, and shows the command in use."""
    text = help_text(capsys, [name])
    assert text.startswith(f"usage: studio {name} "), text[:200]
    description = text.split("\n\n", 2)[1]
    assert len(description.split()) >= 5, f"studio {name} --help says too little about what it does: {description!r}"
    examples = [
        line for line in text.splitlines()[1:] if re.match(rf"^\s*(example: )?(\S+=\S+ )*studio {name} \S", line)
    ]
    assert examples, f"studio {name} --help shows no example of `studio {name} …`"


def test_studio_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    from studio import __version__

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"studio {__version__}\n"
    project = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"], "one version: studio.__version__"
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "studio.__version__"}
    assert project["project"]["scripts"] == {"studio": "studio.cli:main"}
