"""`python -m worker serve|selftest|bench-gpu|weights|schema`: what the GPU image runs.

The image holds worker/ and core/ alone, so this command line imports nothing else. The product's own command line is
`studio` (studio/); the commands that once lived here too (`run`, `studio`, `submit`, `estimate`, `endpoint`,
`deploy`) still work for scripts already written: each says its new name once on stderr and becomes that `studio`
command in this same process (os.execv), with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from core.contract import job_input_schema, metadata_schema
from core.settings import Settings

MOVED = {
    "run": "job",
    "studio": "run",
    "submit": "submit",
    "estimate": "estimate",
    "endpoint": "endpoint",
    "deploy": "deploy",
}
"""Old command → its `studio` command. They run the endpoint, the dashboard or the client side, which the worker
may not import (tests/test_layering.py): so the alias replaces this process with `python -m studio …` rather than
import it, the same process boundary by which the launcher starts the endpoint. In the GPU image, which has no
studio/, it says that instead of failing on an import."""


def _moved(old: str, argv: list[str]) -> int:
    new = ["studio", MOVED[old], *argv]
    print(f"note: `python -m worker {old}` is now `{shlex.join(new)}`", file=sys.stderr)
    from importlib.util import find_spec

    if find_spec("studio") is None:
        print(
            f"error: `{new[0]} {new[1]}` is not part of the GPU image (it holds worker/ and core/ only)",
            file=sys.stderr,
        )
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", *new])  # returns only by raising OSError


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(metadata_schema() if args.metadata else job_input_schema(), indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from worker.handler import serve

    serve(Settings.from_env())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in MOVED:
        return _moved(argv[0], argv[1:])
    if argv[:1] == ["selftest"]:
        from worker.selftest import main as selftest_main

        return selftest_main(argv[1:])
    if argv[:1] == ["bench-gpu"]:
        from worker.selftest.bench_gpu import main as bench_gpu_main

        return bench_gpu_main(argv[1:])
    if argv[:1] == ["weights"]:
        from worker.weights import main as weights_main

        return weights_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description=__doc__.split("\n\n")[0] + " Everything else is `studio` (studio --help).",
        epilog="example:\n  python -m worker weights check --dir /runpod-volume/models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the RunPod Serverless worker (runpod.serverless.start)")
    serve.set_defaults(func=_serve)
    commands.add_parser("selftest", help="run InfiniteTalk's real code on tiny random weights (see `selftest --help`)")
    commands.add_parser(
        "bench-gpu", help="InfiniteTalk's speed and memory at full size on random weights (see `bench-gpu --help`)"
    )
    commands.add_parser("weights", help="check or fetch the GPU engine's weight files (see `weights --help`)")
    schema = commands.add_parser("schema", help="print the job input JSON Schema")
    schema.add_argument("--metadata", action="store_true", help="print metadata.json's schema instead")
    schema.set_defaults(func=_schema)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
