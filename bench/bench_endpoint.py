"""The local endpoint's own overhead per job, measured against a no-op job runner.

Starts the endpoint (one worker process, `tests.endpoint_runners:instant` as the runner, which reports once and
returns), queues 50 jobs at once, and prints per job: submit latency (POST /run), queue delay (delayTime), status
poll latency (GET /status), and — side by side, from the same run — the endpoint's overhead as a ratio to the
execution time of a typical preview job (the single-image example, measured here too).

    python bench/bench_endpoint.py [--jobs 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.endpoint_server import running_endpoint  # noqa: E402
from worker.payloads import load_payload  # noqa: E402
from worker.pipeline import run_job  # noqa: E402
from worker.settings import Settings  # noqa: E402


def pct(values: list[float], q: float) -> float:
    """The q-th quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def preview_job_ms(data_dir: Path) -> float:
    """Execution time of the single-image example with the preview engine (warm, median of 2)."""
    settings = Settings(data_dir=data_dir, input_roots=(ROOT / "examples",))
    job_input = load_payload(ROOT / "examples" / "single_image.json")
    times = []
    for index in range(3):
        began = time.perf_counter()
        run_job(job_input, f"bench-{index}", settings=settings, sink=lambda _: None)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"STUDIO_DATA_DIR": str(Path(tmp) / "endpoint")}
        with running_endpoint(env, "tests.endpoint_runners:instant") as base:
            session = requests.Session()
            session.get(f"{base}/local/health", timeout=10)
            submit_ms, ids = [], []
            for index in range(args.jobs):
                began = time.perf_counter()
                ids.append(session.post(f"{base}/local/run", json={"input": {"n": index}}, timeout=10).json()["id"])
                submit_ms.append((time.perf_counter() - began) * 1000)
            poll_ms, delays, executions, first_status_ms = [], [], [], []
            pending = set(ids)
            while pending:
                for job_id in list(pending):
                    began = time.perf_counter()
                    body = session.get(f"{base}/local/status/{job_id}", timeout=10).json()
                    poll_ms.append((time.perf_counter() - began) * 1000)
                    if body["status"] == "COMPLETED":
                        pending.discard(job_id)
                        delays.append(body["delayTime"])
                        executions.append(body.get("executionTime", 0))
                time.sleep(0.05)
            began = time.perf_counter()
            job_id = session.post(f"{base}/local/run", json={"input": {}}, timeout=10).json()["id"]
            session.get(f"{base}/local/status/{job_id}", timeout=10)
            first_status_ms.append((time.perf_counter() - began) * 1000)
        job_ms = preview_job_ms(Path(tmp) / "preview")

    # With one worker, the last job waits for all before it; the per-job pickup cost is what the endpoint adds.
    pickup_ms = (max(delays) + executions[-1]) / args.jobs
    overhead_ms = statistics.median(submit_ms) + pickup_ms + statistics.median(poll_ms)
    print(f"{args.jobs} no-op jobs queued at once, 1 worker process")
    print(f"  submit (POST /run)        p50 {pct(submit_ms, 0.5):7.1f} ms   p95 {pct(submit_ms, 0.95):7.1f} ms")
    print(f"  status poll (GET /status) p50 {pct(poll_ms, 0.5):7.1f} ms   p95 {pct(poll_ms, 0.95):7.1f} ms")
    print(f"  submit → first status     {first_status_ms[0]:7.1f} ms")
    print(f"  queue delay (delayTime)   p50 {pct(delays, 0.5):7.1f} ms   max {max(delays):7.1f} ms")
    print(f"  pickup + run per job      {pickup_ms:7.1f} ms  (queue drained in {max(delays) + executions[-1]:.0f} ms)")
    print(f"preview job (single_image) {job_ms:7.0f} ms")
    print(f"endpoint overhead per job  {overhead_ms:7.1f} ms = {overhead_ms / job_ms:.2%} of a preview job")


if __name__ == "__main__":
    main()
