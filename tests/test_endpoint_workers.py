"""The endpoint's worker processes: cancel, timeout, crashes and restarts end every job in a recorded state."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from client.api import StudioClient
from core.contract import ErrorCode
from core.settings import Settings
from tests.endpoint_server import ROOT, running_endpoint, start_endpoint, stop_endpoint, wait_for
from tests.s3server import free_port

PACED = "tests.endpoint_runners:paced"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"STUDIO_DATA_DIR": str(tmp_path / "data"), **extra}


def client_for(base: str, tmp_path: Path) -> StudioClient:
    return StudioClient(Settings(data_dir=tmp_path / "data", endpoint_base_url=base), attempts=2)


def worker_pid(tmp_path: Path, job_id: str) -> int:
    with sqlite3.connect(tmp_path / "data" / "endpoint" / "queue.db") as db:
        (pid,) = db.execute("SELECT worker_pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return int(pid)


def gone(pid: int, timeout_s: float = 15.0) -> bool:
    """Whether the process exits within the timeout (a zombie waiting for its reaper counts as exited)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_cancel_ends_a_queued_job_at_once_and_a_running_one_at_its_next_chunk(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        running = client.submit({"chunks": 50, "chunk_s": 0.2})
        queued = client.submit({"chunks": 1})
        wait_for(f"{base}/local/status/{running}", lambda body: body["status"] == "IN_PROGRESS")

        at_once = client.cancel(queued)
        queued_error = client.status(queued).error
        asked = client.cancel(running)
        began = time.monotonic()
        final = client.wait(running, timeout_s=20)
        stopped_after = time.monotonic() - began

    assert at_once.status == "CANCELLED" and queued_error["code"] == ErrorCode.CANCELLED
    assert asked.status == "IN_PROGRESS", "a running job reports its state truthfully until it stops"
    assert final.status == "CANCELLED" and final.error["code"] == ErrorCode.CANCELLED
    assert final.error["at_stage"] == "generation" and stopped_after < 3.0
    assert final.execution_ms is not None and final.execution_ms < 10_000


def test_a_job_that_ignores_its_cancel_is_stopped_after_the_grace_time_and_its_worker_replaced(
    tmp_path: Path,
) -> None:
    with running_endpoint(env_for(tmp_path), PACED, cancel_grace_s=1.0) as base:
        client = client_for(base, tmp_path)
        stuck = client.submit({"chunks": 200, "chunk_s": 0.1, "ignore_cancel": True})
        wait_for(f"{base}/local/status/{stuck}", lambda body: body["status"] == "IN_PROGRESS")
        pid = worker_pid(tmp_path, stuck)
        client.cancel(stuck)
        final = client.wait(stuck, timeout_s=20)
        after = client.wait(client.submit({"chunks": 1}), timeout_s=60)

    assert final.status == "CANCELLED"
    assert "did not stop within 1 s" in final.error["message"]
    assert gone(pid)
    assert after.status == "COMPLETED", "a fresh worker takes the next job"


def test_a_job_past_its_execution_timeout_is_timed_out_and_its_worker_replaced(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        slow = client.submit({"chunks": 200, "chunk_s": 0.1}, execution_timeout_ms=5000)
        wait_for(f"{base}/local/status/{slow}", lambda body: body["status"] == "IN_PROGRESS")
        pid = worker_pid(tmp_path, slow)
        final = client.wait(slow, timeout_s=30)
        after = client.wait(client.submit({"chunks": 1}), timeout_s=60)

    assert final.status == "TIMED_OUT" and final.error["code"] == ErrorCode.TIMEOUT
    assert "execution timeout of 5 s" in final.error["message"]
    assert 5000 <= final.execution_ms < 8000
    assert gone(pid)
    assert after.status == "COMPLETED"


def test_the_default_execution_timeout_comes_from_settings(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path, STUDIO_EXECUTION_TIMEOUT_S="1.5"), PACED) as base:
        client = client_for(base, tmp_path)
        final = client.wait(client.submit({"chunks": 100, "chunk_s": 0.1}), timeout_s=30)

    assert final.status == "TIMED_OUT" and "execution timeout of 1.5 s" in final.error["message"]


def test_an_endpoint_killed_mid_job_records_that_job_on_restart_and_loses_nothing_else(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    base = f"http://127.0.0.1:{port}/v2"
    process = start_endpoint(env, PACED, port)
    client = client_for(base, tmp_path)
    interrupted = client.submit({"chunks": 100, "chunk_s": 0.2})
    waiting = [client.submit({"chunks": 2}) for _ in range(2)]
    wait_for(f"{base}/local/status/{interrupted}", lambda body: body["status"] == "IN_PROGRESS")
    orphan = worker_pid(tmp_path, interrupted)
    stop_endpoint(process, kill=True)

    process = start_endpoint(env, PACED, port)
    try:
        lost = client.status(interrupted)
        done = [client.wait(job_id, timeout_s=60) for job_id in waiting]
        retried = client.retry(interrupted)
    finally:
        stop_endpoint(process)

    assert lost.status == "FAILED" and lost.error["code"] == ErrorCode.WORKER_LOST and lost.error["retryable"]
    assert f"/retry/{interrupted}" in lost.error["message"]
    assert [state.status for state in done] == ["COMPLETED", "COMPLETED"]
    assert retried.status == "IN_QUEUE"
    assert gone(orphan), "the killed endpoint's worker notices it was orphaned and exits"


def test_a_graceful_stop_mid_job_records_the_job_as_lost_at_once(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    base = f"http://127.0.0.1:{port}/v2"
    process = start_endpoint(env, PACED, port)
    client = client_for(base, tmp_path)
    running = client.submit({"chunks": 100, "chunk_s": 0.2})
    wait_for(f"{base}/local/status/{running}", lambda body: body["status"] == "IN_PROGRESS")
    began = time.monotonic()
    stop_endpoint(process)
    stopped_in = time.monotonic() - began

    with sqlite3.connect(tmp_path / "data" / "endpoint" / "queue.db") as db:
        status, error = db.execute("SELECT status, error FROM jobs WHERE id = ?", (running,)).fetchone()
    assert status == "FAILED" and ErrorCode.WORKER_LOST in error and f"retry it (POST /retry/{running})" in error
    assert stopped_in < 5.0, "the running job stops at its next chunk, not at the stop timeout"


def test_a_second_endpoint_on_the_same_data_dir_exits_with_the_reason(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    with running_endpoint(env, PACED):
        second = subprocess.run(
            [sys.executable, "-m", "studio", "endpoint", "--port", str(free_port())],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert second.returncode == 1
    assert "cannot start the local endpoint: another local endpoint (pid" in second.stderr
    assert "STUDIO_DATA_DIR" in second.stderr and "Traceback" not in second.stderr
