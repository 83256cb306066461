"""The `studio` command tree: one noun or verb per program, each a thin call into that program.

    studio run                      the local endpoint and the dashboard together (what ./studio.sh starts)
    studio submit PAYLOAD           send a job to the endpoint, follow it, download the video
    studio catalog search "words"   search the catalogue of runs

Commands whose program has its own command line (submit, deploy, weights, selftest, bench-gpu, catalog, password)
hand it the rest of the arguments, with `studio NAME` as the name its help shows; the others are parsed here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio import __version__


def _submit(argv: list[str], prog: str) -> int:
    from client.submit import main

    return main(argv)


def _deploy(argv: list[str], prog: str) -> int:
    from client.deploy import main

    return main(argv)


def _weights(argv: list[str], prog: str) -> int:
    from worker.weights import main

    return main(argv, prog=prog)


def _selftest(argv: list[str], prog: str) -> int:
    from worker.selftest import main

    return main(argv, prog=prog)


def _bench_gpu(argv: list[str], prog: str) -> int:
    from worker.selftest.bench_gpu import main

    return main(argv, prog=prog)


def _catalog(argv: list[str], prog: str) -> int:
    from catalog.cli import main

    return main(argv, prog=prog)


def _password(argv: list[str], prog: str) -> int:
    from dashboard.signin import main

    return main(argv, prog=prog)


@dataclass(frozen=True)
class Program:
    """A command whose program parses its own arguments: its one-line help here, and the call that runs it."""

    help: str
    run: Callable[[list[str], str], int]


PROGRAMS: dict[str, Program] = {
    "submit": Program("submit a payload to the endpoint, follow its progress, download the video", _submit),
    "deploy": Program("create or update the RunPod Serverless endpoint through RunPod's REST API v2", _deploy),
    "weights": Program("check or fetch the GPU engine's weight files (weights check|fetch)", _weights),
    "selftest": Program("run InfiniteTalk's real code through the worker on tiny random weights", _selftest),
    "bench-gpu": Program("InfiniteTalk's speed and memory at full size on random weights (a GPU)", _bench_gpu),
    "catalog": Program("the catalogue of runs: catalog search|sync|stats|reindex|tag|untag|note|favourite", _catalog),
    "password": Program("make the dashboard's shared password (a STUDIO_PASSWORD_HASH line)", _password),
}
"""Commands handed to a program's own command line, by name."""


def _run(args: argparse.Namespace) -> int:
    from client.launcher import main as launch
    from core.settings import Settings

    env = {**os.environ, "STUDIO_LOCAL_PORT": str(args.endpoint_port)} if args.endpoint_port else os.environ
    return launch(Settings.from_env(env), dashboard_port=args.port, host=args.host)


def _endpoint(args: argparse.Namespace) -> int:
    from core import logs
    from core.settings import Settings
    from endpoint import serve

    logs.configure()
    serve(Settings.from_env(), host=args.host, port=args.port)
    return 0


def _job(args: argparse.Namespace) -> int:
    from client.payloads import load_payload
    from client.progress_bar import ProgressBar
    from core.contract import JobError, JobFailure, friendly_error
    from core.settings import Settings
    from worker.pipeline import run_job

    settings = Settings.from_env()
    if args.engine:
        settings = settings.with_(engine=args.engine)
    try:
        job_input = load_payload(Path(args.payload))
    except JobError as error:
        print(json.dumps(JobFailure.of(error), indent=2))
        return 2
    bar = ProgressBar()
    job_id = args.job_id or f"local-{uuid.uuid4().hex[:12]}"
    extra_roots = (Path(args.payload).resolve().parent,)
    output = run_job(job_input, job_id, settings=settings, sink=bar, extra_roots=extra_roots)
    bar.close()
    print(json.dumps(output, indent=2))
    if output.get("status") == "error" and "error" in output:
        info = friendly_error(output["error"]["code"])
        print(f"\n{info['title']}: {output['error']['message']}\n{info['advice']}", file=sys.stderr)
        return 1
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from client.estimate import main as estimate
    from core.settings import Settings

    return estimate(args.payload, Settings.from_env(), gpu=args.gpu)


def _schema(args: argparse.Namespace) -> int:
    from core.contract import job_input_schema, metadata_schema

    print(json.dumps(metadata_schema() if args.metadata else job_input_schema(), indent=2))
    return 0


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, what: str, example: str
) -> argparse.ArgumentParser:
    """A command parsed here: its help says what it does, and shows one example."""
    return commands.add_parser(
        name,
        help=what,
        description=textwrap.fill(what[0].upper() + what[1:] + ".", width=100),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parser() -> argparse.ArgumentParser:
    """The whole tree, for `studio --help` and the commands parsed here."""
    root = argparse.ArgumentParser(
        prog="studio",
        description="InfiniteTalk Studio: lip-synced talking videos on RunPod Serverless or a local endpoint.\n"
        "`studio COMMAND --help` says what a command does, with an example.",
        epilog="examples:\n  studio run\n  studio submit examples/single_image.json\n  studio catalog search portrait",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"studio {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(
        commands,
        "run",
        "start the local endpoint and the dashboard together (what ./studio.sh runs); with RUNPOD_ENDPOINT_ID set, "
        "the dashboard alone, on RunPod's endpoint",
        "studio run --port 8600 --endpoint-port 8800",
    )
    run.add_argument("--port", type=int, help="the dashboard's port (default STUDIO_DASHBOARD_PORT or 8501)")
    run.add_argument("--endpoint-port", type=int, help="the local endpoint's port (default STUDIO_LOCAL_PORT or 8799)")
    run.add_argument(
        "--host",
        help="the address the dashboard listens on (default 127.0.0.1, or every interface when sign-in is configured)",
    )
    run.set_defaults(func=_run)
    endpoint = _command(
        commands,
        "endpoint",
        "start the local RunPod-compatible endpoint alone (docs/endpoint.md)",
        "studio endpoint --port 8799",
    )
    endpoint.add_argument("--host", default="127.0.0.1", help="the address it listens on (default 127.0.0.1)")
    endpoint.add_argument("--port", type=int, default=None, help="its port (default STUDIO_LOCAL_PORT or 8799)")
    endpoint.set_defaults(func=_endpoint)
    job = _command(
        commands,
        "job",
        "run one job in this process, without an endpoint, and print its result JSON",
        "studio job examples/single_image.json",
    )
    job.add_argument("payload", help="a payload JSON file; its media paths are relative to it")
    job.add_argument("--engine", choices=["preview", "infinitetalk"], help="override STUDIO_ENGINE")
    job.add_argument("--job-id", help="job id (default: a new one)")
    job.set_defaults(func=_job)
    for name, program in PROGRAMS.items():
        commands.add_parser(name, help=program.help, add_help=False)
        if name == "submit":  # keep `studio --help` in the order a newcomer meets the commands
            estimate = _command(
                commands,
                "estimate",
                "print a job's expected GPU time, band and cost as one JSON object (docs/estimates.md)",
                "studio estimate examples/single_image.json --gpu H100",
            )
            estimate.add_argument("payload", help="a payload JSON file")
            estimate.add_argument(
                "--gpu", help="the GPU to estimate for, e.g. 'H100 PRO' or 4090 (default: the endpoint's)"
            )
            estimate.set_defaults(func=_estimate)
    schema = _command(
        commands, "schema", "print the job input's JSON Schema (or metadata.json's)", "studio schema --metadata"
    )
    schema.add_argument("--metadata", action="store_true", help="print metadata.json's schema instead")
    schema.set_defaults(func=_schema)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status is the program's."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PROGRAMS:
        return PROGRAMS[argv[0]].run(argv[1:], f"studio {argv[0]}")
    args = parser().parse_args(argv)
    return int(args.func(args))
