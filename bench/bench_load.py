"""Load: N preview jobs queued at once on the local endpoint — all complete, memory stays flat.

Queues `--jobs` (default 200) short real jobs (portrait + 3.5 s of speech, one 25-frame clip, preview engine),
follows them to the end, samples the worker process's resident memory as it goes, and prints completion counts,
throughput and RSS over the run. Every run is also recorded in a catalogue the way the dashboard does (submission,
then each status poll), and the catalogue's counts are checked against the endpoint's.

    python bench/bench_load.py [--jobs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402
from tests.conftest import EXAMPLES, SHORT_JOB  # noqa: E402
from tests.endpoint_server import running_endpoint  # noqa: E402

JOB = {**SHORT_JOB, "prompt": "load test"}


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {"STUDIO_DATA_DIR": str(data), "STUDIO_INPUT_ROOTS": str(EXAMPLES)}
        with running_endpoint(env) as base:
            session = requests.Session()
            began = time.perf_counter()
            catalog = Catalog(Path(tmp) / "catalog.db")
            ids = []
            for _ in range(args.jobs):
                job_id = session.post(f"{base}/local/run", json={"input": JOB}, timeout=10).json()["id"]
                catalog.record_submission(job_id, JOB, endpoint_id="local")
                ids.append(job_id)
            samples: list[tuple[int, float]] = []
            statuses: dict[str, str] = {}
            while len(statuses) < len(ids):
                for job_id in ids:
                    if job_id in statuses:
                        continue
                    body = session.get(f"{base}/local/status/{job_id}", timeout=10).json()
                    catalog.apply_status(
                        job_id,
                        body["status"],
                        progress=body.get("output") if body["status"] == "IN_PROGRESS" else None,
                        output=body.get("output"),
                        delay_ms=body.get("delayTime"),
                        execution_ms=body.get("executionTime"),
                    )
                    if body["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
                        statuses[job_id] = body["status"]
                with sqlite3.connect(data / "endpoint" / "queue.db") as db:
                    row = db.execute("SELECT worker_pid FROM jobs WHERE worker_pid IS NOT NULL LIMIT 1").fetchone()
                if row:
                    with contextlib.suppress(FileNotFoundError):
                        samples.append((len(statuses), rss_mb(row[0])))
                time.sleep(1.0)
            elapsed = time.perf_counter() - began
            health = session.get(f"{base}/local/health", timeout=10).json()
            catalogued = catalog.search("", per_page=1).facets["status"]
    completed = sum(1 for status in statuses.values() if status == "COMPLETED")
    third = max(1, len(samples) // 3)
    print(f"{args.jobs} preview jobs queued at once on 1 worker")
    print(
        f"  completed {completed}/{args.jobs}; health says completed={health['jobs']['completed']} "
        f"failed={health['jobs']['failed']}"
    )
    agrees = catalogued.get("COMPLETED", 0) == health["jobs"]["completed"] and sum(catalogued.values()) == args.jobs
    print(f"  catalogue: {dict(catalogued)} — {'agrees' if agrees else 'DISAGREES'} with the endpoint")
    print(f"  wall {elapsed:.1f} s, {args.jobs / elapsed:.2f} jobs/s")
    if samples:
        first = sum(mb for _, mb in samples[:third]) / third
        last = sum(mb for _, mb in samples[-third:]) / third
        print(
            f"  worker RSS: first third {first:.0f} MB, last third {last:.0f} MB, "
            f"max {max(mb for _, mb in samples):.0f} MB, growth {last / first - 1:+.1%}"
        )


if __name__ == "__main__":
    main()
