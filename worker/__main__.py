"""`python -m worker run|serve|endpoint|studio|submit|selftest|bench-gpu|estimate|weights|deploy|schema`: the
product's command line.

It is the one module allowed to reach every program (tests/test_layering.py): each command imports the endpoint or
the client side inside its own function, so the GPU image, which holds only worker/ and core/, runs `serve` and
`weights` without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

from core import logs
from core.contract import JobError, JobFailure, friendly_error, job_input_schema, metadata_schema
from core.settings import Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.engine:
        settings = settings.with_(engine=args.engine)
    from client.payloads import load_payload
    from client.progress_bar import ProgressBar

    try:
        job_input = load_payload(Path(args.payload))
    except JobError as error:
        print(json.dumps(JobFailure.of(error), indent=2))
        return 2
    from worker.pipeline import run_job

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


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(metadata_schema() if args.metadata else job_input_schema(), indent=2))
    return 0


def _estimate(args: argparse.Namespace, settings: Settings) -> int:
    from client.estimate import main as estimate_main

    return estimate_main(args.payload, settings, gpu=args.gpu)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from worker.handler import serve

    serve(settings)
    return 0


def _endpoint(args: argparse.Namespace, settings: Settings) -> int:
    from endpoint import serve

    logs.configure()
    serve(settings, host=args.host, port=args.port)
    return 0


def _studio(args: argparse.Namespace, settings: Settings) -> int:
    from client.launcher import main as studio_main

    if args.endpoint_port:
        settings = Settings.from_env({**os.environ, "STUDIO_LOCAL_PORT": str(args.endpoint_port)})
    return studio_main(settings, dashboard_port=args.port, host=args.host)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["submit"]:
        from client.submit import main as submit_main

        return submit_main(argv[1:])
    if argv[:1] == ["selftest"]:
        from worker.selftest import main as selftest_main

        return selftest_main(argv[1:])
    if argv[:1] == ["bench-gpu"]:
        from worker.selftest.bench_gpu import main as bench_gpu_main

        return bench_gpu_main(argv[1:])
    if argv[:1] == ["weights"]:
        from worker.weights import main as weights_main

        return weights_main(argv[1:])
    if argv[:1] == ["deploy"]:
        from client.deploy import main as deploy_main

        return deploy_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one job here and print its result JSON")
    run.add_argument("payload", help="a payload JSON file, e.g. examples/single_image.json")
    run.add_argument("--engine", choices=["preview", "infinitetalk"], help="override STUDIO_ENGINE")
    run.add_argument("--job-id", help="job id (default: a new one)")
    run.set_defaults(func=_run)
    serve = commands.add_parser("serve", help="start the RunPod Serverless worker (runpod.serverless.start)")
    serve.set_defaults(func=_serve)
    endpoint = commands.add_parser("endpoint", help="start the local RunPod-compatible endpoint")
    endpoint.add_argument("--host", default="127.0.0.1")
    endpoint.add_argument("--port", type=int, default=None)
    endpoint.set_defaults(func=_endpoint)
    studio = commands.add_parser("studio", help="start the local endpoint and the dashboard together")
    studio.add_argument("--port", type=int, help="the dashboard's port (default STUDIO_DASHBOARD_PORT or 8501)")
    studio.add_argument(
        "--endpoint-port", type=int, help="the local endpoint's port (default STUDIO_LOCAL_PORT or 8799)"
    )
    studio.add_argument(
        "--host",
        help="the address the dashboard listens on (default 127.0.0.1, or every interface when sign-in is configured)",
    )
    studio.set_defaults(func=_studio)
    commands.add_parser("submit", help="submit a payload to the endpoint (see `submit --help`)")
    commands.add_parser("selftest", help="run InfiniteTalk's real code on tiny random weights (see `selftest --help`)")
    commands.add_parser(
        "bench-gpu", help="InfiniteTalk's speed and memory at full size on random weights (see `bench-gpu --help`)"
    )
    commands.add_parser("weights", help="check or fetch the GPU engine's weight files (see `weights --help`)")
    commands.add_parser("deploy", help="create or update the RunPod Serverless endpoint (see `deploy --help`)")
    estimate = commands.add_parser("estimate", help="print a job's expected GPU time, band and cost as JSON")
    estimate.add_argument("payload", help="a payload JSON file, e.g. examples/single_image.json")
    estimate.add_argument("--gpu", help="the GPU to estimate for, e.g. 'H100 PRO' or 4090 (default: the endpoint's)")
    estimate.set_defaults(func=_estimate)
    schema = commands.add_parser("schema", help="print the job input JSON Schema")
    schema.add_argument("--metadata", action="store_true", help="print metadata.json's schema instead")
    schema.set_defaults(func=_schema)
    args = parser.parse_args(argv)
    return int(args.func(args, Settings.from_env()))


if __name__ == "__main__":
    sys.exit(main())
