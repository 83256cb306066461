"""The local endpoint's own overhead per job, measured side by side in one run.

1. 50 no-op jobs queued at once on one worker process. The runner is `tests.endpoint_runners:instant` (run_job's
   signature; reports one progress payload and returns at once), so every millisecond measured is the endpoint's:
   submit latency (POST /run), submit → first status (POST /run then GET /status), status poll latency while the
   queue drains, queue delay (delayTime) of a job sent to an idle worker, and the per-job cost of draining the
   queue (wall time minus the jobs' own execution time, over 50).
2. The single-image example with the preview engine, run in-process with run_job and through the endpoint (the
   real default runner, polled every 20 ms), alternately, five times each after a warm-up: the difference is
   the endpoint's overhead on a real job, printed as a ratio to the job's time.

    python bench/bench_endpoint.py [--jobs 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import quantile  # noqa: E402
from client.payloads import load_payload  # noqa: E402
from core.contract import JobStatus  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.endpoint_server import running_endpoint, wait_for  # noqa: E402
from worker.pipeline import run_job  # noqa: E402

EXAMPLES = ROOT / "examples"


def line(label: str, values: list[float]) -> str:
    return f"  {label:<34} p50 {quantile(values, 0.5):7.1f} ms   p95 {quantile(values, 0.95):7.1f} ms"


def until_final(session: requests.Session, url: str, poll_s: float) -> dict[str, Any]:
    while True:
        body = session.get(url, timeout=30).json()
        if body["status"] in JobStatus.FINAL:
            return body
        time.sleep(poll_s)


def no_op_jobs(data_dir: Path, jobs: int) -> dict[str, Any]:
    """Part 1: the endpoint's cost per job with nothing to run."""
    with running_endpoint({"STUDIO_DATA_DIR": str(data_dir)}, "tests.endpoint_runners:instant") as base:
        session = requests.Session()
        wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 1)
        idle_delays = []
        for _ in range(10):
            job_id = session.post(f"{base}/local/run", json={"input": {}}, timeout=30).json()["id"]
            idle_delays.append(float(until_final(session, f"{base}/local/status/{job_id}", 0.01)["delayTime"]))

        submit_ms, first_status_ms, ids = [], [], []
        began_burst = time.perf_counter()
        for index in range(jobs):
            began = time.perf_counter()
            job_id = session.post(f"{base}/local/run", json={"input": {"n": index}}, timeout=30).json()["id"]
            submitted = time.perf_counter()
            session.get(f"{base}/local/status/{job_id}", timeout=30)
            first_status_ms.append((time.perf_counter() - began) * 1000)
            submit_ms.append((submitted - began) * 1000)
            ids.append(job_id)
        poll_ms, executions, drained_at = [], [], 0.0
        pending = set(ids)
        while pending:
            for job_id in list(pending):
                began = time.perf_counter()
                body = session.get(f"{base}/local/status/{job_id}", timeout=30).json()
                poll_ms.append((time.perf_counter() - began) * 1000)
                if body["status"] in JobStatus.FINAL:
                    pending.discard(job_id)
                    executions.append(float(body.get("executionTime", 0)))
                    drained_at = time.perf_counter()
            time.sleep(0.02)
    drain_ms = (drained_at - began_burst) * 1000
    return {
        "submit_ms": submit_ms,
        "first_status_ms": first_status_ms,
        "poll_ms": poll_ms,
        "idle_delay_ms": idle_delays,
        "per_job_ms": (drain_ms - sum(executions)) / jobs,
        "drain_ms": drain_ms,
    }


def preview_side_by_side(data_dir: Path, repeats: int) -> tuple[list[float], list[float]]:
    """Part 2: the single-image preview job in-process and through the endpoint, alternately, wall-clock ms."""
    job_input = load_payload(EXAMPLES / "single_image.json")
    settings = Settings(data_dir=data_dir / "in-process", input_roots=(EXAMPLES,))
    env = {"STUDIO_DATA_DIR": str(data_dir / "endpoint"), "STUDIO_INPUT_ROOTS": str(EXAMPLES)}
    in_process, through_endpoint = [], []
    with running_endpoint(env) as base:
        session = requests.Session()
        wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 1, timeout_s=120)
        # Alternating, after one warm-up run of each, so machine load affects both sides alike.
        for index in range(repeats + 1):
            began = time.perf_counter()
            output = run_job(job_input, f"bench-{index}", settings=settings, sink=lambda _: None)
            assert output["status"] == "success", output
            in_process.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            job_id = session.post(f"{base}/local/run", json={"input": job_input}, timeout=30).json()["id"]
            body = until_final(session, f"{base}/local/status/{job_id}", 0.02)
            assert body["status"] == "COMPLETED", body
            through_endpoint.append((time.perf_counter() - began) * 1000)
    return in_process[1:], through_endpoint[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        no_op = no_op_jobs(Path(tmp) / "no-op", args.jobs)
        in_process, through_endpoint = preview_side_by_side(Path(tmp) / "preview", args.repeats)

    print(f"{args.jobs} no-op jobs (runner tests.endpoint_runners:instant) queued at once, 1 worker process")
    print(line("submit (POST /run)", no_op["submit_ms"]))
    print(line("submit -> first status", no_op["first_status_ms"]))
    print(line("status poll (GET /status)", no_op["poll_ms"]))
    print(line("queue delay, idle worker", no_op["idle_delay_ms"]))
    drained = f"(drained in {no_op['drain_ms']:.0f} ms)"
    print(f"  {'pickup + record, per queued job':<34} {no_op['per_job_ms']:7.1f} ms  {drained}")
    job_ms = statistics.median(in_process)
    endpoint_ms = statistics.median(through_endpoint)
    added = endpoint_ms - job_ms
    print(f"single_image preview job, median of {args.repeats} after a warm-up, side by side")
    spread = f"(runs {min(in_process):.0f}–{max(in_process):.0f} ms)"
    print(f"  {'in-process run_job':<34} {job_ms:7.0f} ms  {spread}")
    spread = f"(runs {min(through_endpoint):.0f}–{max(through_endpoint):.0f} ms)"
    print(f"  {'through the endpoint (submit→done)':<34} {endpoint_ms:7.0f} ms  {spread}")
    print(f"  endpoint overhead per job          {added:7.0f} ms = {added / job_ms:.1%} of the job")
    bookkeeping = statistics.median(no_op["submit_ms"]) + no_op["per_job_ms"] + statistics.median(no_op["poll_ms"])
    print(f"  no-op bookkeeping per job          {bookkeeping:7.1f} ms = {bookkeeping / job_ms:.1%} of the job")


if __name__ == "__main__":
    main()
