"""Every stop signal ends the endpoint and its workers within seconds, and the job they were running is recorded.

Service managers (systemd's default KillMode, supervisord's stopasgroup, a terminal closing) signal the whole
process group, so the workers get the signal too. With multiprocessing Events between the API and its workers, a
worker killed while idle left the API blocked for ever in the next Event.set(): a SIGTERM to the group hung the
endpoint, and a SIGKILLed idle worker hung the next submission. SIGHUP killed the API on the spot, leaving its
running job IN_PROGRESS until the next start. Real processes, real signals, loopback only.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import requests

from core.contract import ErrorCode
from tests.endpoint_server import start_endpoint, stop_endpoint, wait_for
from tests.s3server import free_port

PACED = "tests.endpoint_runners:paced"
ENDED_WITHIN_S = 20.0
"""The design bound is about 7 s (2 s for requests, 5 s for workers); the rest is slack for a loaded machine."""


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (its workers and multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


def job_row(data_dir: Path, job_id: str) -> tuple[str, str | None]:
    with sqlite3.connect(data_dir / "endpoint" / "queue.db") as db:
        return db.execute("SELECT status, error FROM jobs WHERE id = ?", (job_id,)).fetchone()


def two_workers_one_busy(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, str, list[int]]:
    """An endpoint in its own process group with two ready workers, one running a long job, one asleep idle."""
    port = free_port()
    base = f"http://127.0.0.1:{port}/v2"
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_LOCAL_WORKERS": "2"}
    process = start_endpoint(env, PACED, port, new_session=True)
    wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 2, timeout_s=60)
    job_id = requests.post(f"{base}/local/run", json={"input": {"chunks": 600, "chunk_s": 0.1}}, timeout=30).json()[
        "id"
    ]
    wait_for(f"{base}/local/status/{job_id}", lambda body: body["status"] == "IN_PROGRESS", timeout_s=60)
    time.sleep(1.0)  # the other worker is back asleep in its idle wait
    return process, base, job_id, children(process.pid)


@pytest.mark.parametrize("to_group", [False, True], ids=["process", "group"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_a_stop_signal_ends_the_endpoint_and_its_workers_and_records_the_running_job_as_lost(
    tmp_path: Path, signum: int, to_group: bool
) -> None:
    process, _, job_id, family = two_workers_one_busy(tmp_path)
    assert len(family) >= 2, f"expected two workers under {process.pid}, found {family}"
    began = time.monotonic()
    (os.killpg if to_group else os.kill)(process.pid, signum)
    try:
        process.wait(timeout=ENDED_WITHIN_S)
    except subprocess.TimeoutExpired:
        stop_endpoint(process, kill=True)
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the endpoint did not end within {ENDED_WITHIN_S:g} s of {signal.Signals(signum).name}")
    ended_in = time.monotonic() - began
    left = wait_gone(family, timeout_s=ENDED_WITHIN_S)

    status, error = job_row(tmp_path / "data", job_id)
    assert left == [], "no worker outlives its endpoint"
    assert status == "FAILED" and ErrorCode.WORKER_LOST in (error or ""), "the running job is recorded as lost"
    assert ended_in < ENDED_WITHIN_S


def test_an_idle_worker_killed_outright_does_not_hang_the_next_submission(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/v2"
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_LOCAL_WORKERS": "2"}
    process = start_endpoint(env, PACED, port, new_session=True)
    try:
        wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 2, timeout_s=60)
        time.sleep(1.0)  # both asleep in their idle wait
        victim = children(process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_gone([victim], timeout_s=10)
        answers = []
        for _ in range(3):
            job_id = requests.post(f"{base}/local/run", json={"input": {"chunks": 1}}, timeout=20).json()["id"]
            answers.append(wait_for(f"{base}/local/status/{job_id}", lambda b: b["status"] == "COMPLETED")["status"])
        health = wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 2, timeout_s=60)
    finally:
        began = time.monotonic()
        stop_endpoint(process)
        stopped_in = time.monotonic() - began

    assert answers == ["COMPLETED"] * 3 and health["workers"]["idle"] == 2, "the dead worker was replaced"
    assert stopped_in < ENDED_WITHIN_S
