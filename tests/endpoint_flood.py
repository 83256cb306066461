"""The /runsync flood, measured: `python -m tests.endpoint_flood [CALLS [MB]]`.

CALLS concurrent /runsync calls (default 30), each a MB-megabyte body (default 19), against a real endpoint with
the no-op runner; prints the API process's RSS before, at its peak and once the calls are answered, and how the
calls were answered. docs/reliability.md quotes its figures; tests/test_endpoint_bounds.py asserts the bound.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.endpoint_server import start_endpoint, stop_endpoint
from tests.s3server import free_port

INSTANT = "tests.endpoint_runners:instant"


def rss_mb(pid: int) -> float:
    """A process's resident set, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flood(calls: int = 30, mb: int = 19, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run the flood against a fresh endpoint; RSS figures in MB and the answers' HTTP statuses."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        process = start_endpoint({"STUDIO_DATA_DIR": data_dir, **(env or {})}, INSTANT, port)
        url = f"http://127.0.0.1:{port}/v2/local/runsync"
        body = json.dumps({"input": {"padding": "A" * (mb * 1024 * 1024 - 100)}}).encode()
        try:
            requests.get(f"http://127.0.0.1:{port}/v2/local/health", timeout=30)
            before = rss_mb(process.pid)
            peak = before
            done = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_mb(process.pid))
                    time.sleep(0.05)

            def call(_: int) -> str:
                try:
                    answer = requests.post(url, data=body, timeout=300)
                except requests.RequestException as error:
                    return type(error).__name__
                return f"{answer.status_code} {answer.json().get('status', '')}".strip()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            began = time.monotonic()
            with ThreadPoolExecutor(calls) as pool:
                answers = Counter(pool.map(call, range(calls)))
            took = time.monotonic() - began
            time.sleep(3)
            done.set()
            watcher.join()
            after = rss_mb(process.pid)
        finally:
            stop_endpoint(process)
    return {
        "before_mb": round(before),
        "peak_mb": round(peak),
        "after_mb": round(after),
        "answers": dict(answers),
        "seconds": round(took, 1),
    }


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    print(json.dumps(flood(*arguments)))
