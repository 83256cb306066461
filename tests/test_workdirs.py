"""Job folders a killed worker leaves are swept when a worker or the endpoint starts; live jobs' never are."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from client.api import StudioClient
from core.contract import ErrorCode
from core.settings import Settings
from tests.conftest import EXAMPLES, SHORT_JOB
from tests.endpoint_server import running_endpoint, wait_for
from worker.pipeline import run_job
from worker.workdirs import LOCK_NAME, UNLOCKED_GRACE_S, job_dir, sweep

ROOT = Path(__file__).resolve().parent.parent
HOLD = """
import sys, time
from pathlib import Path
from worker.workdirs import job_dir
with job_dir(Path(sys.argv[1]), sys.argv[2]) as folder:
    (folder / "download.bin").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    time.sleep(600)
"""


def holder(work_root: Path, name: str) -> tuple[subprocess.Popen[str], Path]:
    """A real process running a 'job' in its folder; returns it and the folder."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(work_root), name], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_jobs_folder_is_swept_and_a_running_jobs_folder_is_kept(tmp_path: Path) -> None:
    live, live_folder = holder(tmp_path, "live")
    dead, dead_folder = holder(tmp_path, "dead")
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert dead_folder.exists(), "kill -9 skips the job's own cleanup"

        assert sweep(tmp_path) == 1
        assert not dead_folder.exists()
        assert (live_folder / "download.bin").exists(), "a job still running in another process is left alone"
    finally:
        live.kill()
        live.wait(timeout=30)
    assert sweep(tmp_path) == 1 and not live_folder.exists()


def test_a_folder_without_its_lock_is_swept_only_once_it_is_old(tmp_path: Path) -> None:
    fresh, old = tmp_path / "job-fresh-1", tmp_path / "job-old-1"
    fresh.mkdir()
    old.mkdir()
    past = time.time() - UNLOCKED_GRACE_S - 5
    os.utime(old, (past, past))
    (tmp_path / "not-a-job").mkdir()
    assert sweep(tmp_path) == 1
    assert fresh.exists() and not old.exists() and (tmp_path / "not-a-job").exists()
    assert sweep(tmp_path / "missing") == 0


def test_a_job_folder_is_locked_while_it_runs_and_gone_after_even_on_error(tmp_path: Path) -> None:
    try:
        with job_dir(tmp_path, "../../evil id") as folder:
            assert folder.parent == tmp_path and folder.name.startswith("job-______evil_id-")
            assert (folder / LOCK_NAME).exists()
            assert sweep(tmp_path) == 0, "this process holds the lock"
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_endpoints_next_worker_sweeps_what_a_killed_worker_left(tmp_path: Path) -> None:
    """A real preview job, its worker killed with SIGKILL mid-job: the replacement worker removes the folder."""
    data = tmp_path / "data"
    work_root = data / "tmp"
    long_job = {
        "prompt": "a long take",
        "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
        "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_1.wav")},
        "mode": "streaming",
        "size": "infinitetalk-720",
    }
    env = {"STUDIO_DATA_DIR": str(data), "STUDIO_INPUT_ROOTS": str(EXAMPLES)}
    with running_endpoint(env) as base:
        client = StudioClient(Settings(data_dir=data, endpoint_base_url=base))
        doomed = client.submit(long_job)
        wait_for(
            f"{base}/local/status/{doomed}",
            lambda body: body["status"] == "IN_PROGRESS" and any(work_root.glob("job-*")),
            timeout_s=120,
        )
        left = list(work_root.glob("job-*"))
        with sqlite3.connect(data / "endpoint" / "queue.db") as db:
            (pid,) = db.execute("SELECT worker_pid FROM jobs WHERE id = ?", (doomed,)).fetchone()
        os.kill(pid, signal.SIGKILL)
        lost = client.wait(doomed, timeout_s=60)
        assert lost.error is not None and lost.error["code"] == ErrorCode.WORKER_LOST
        after = client.wait(client.submit({**long_job, "mode": "clip", "frame_num": 25}), timeout_s=120)
        assert after.status == "COMPLETED"
    assert left and not any(folder.exists() for folder in left)
    assert list(work_root.glob("job-*")) == []


def test_an_unwritable_data_dir_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """The endpoint and a job each say which folder and which setting, instead of a traceback."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    env = {**os.environ, "STUDIO_DATA_DIR": str(not_a_dir / "data")}
    endpoint = subprocess.run(
        [sys.executable, "-m", "studio", "endpoint", "--port", "1"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert endpoint.returncode != 0 and "Traceback" not in endpoint.stderr
    assert endpoint.stderr.strip().splitlines() == [
        f"cannot start the local endpoint: the worker cannot write {not_a_dir / 'data'} (Not a directory): free "
        "space there or make it writable, or point STUDIO_TMP_DIR or STUDIO_DATA_DIR at a folder on a disk with room"
    ]
    output = run_job(SHORT_JOB, "job-1", settings=Settings(data_dir=not_a_dir / "data"), sink=lambda _: None)
    assert output["error"]["code"] == ErrorCode.PIPELINE_LOAD
    assert "STUDIO_DATA_DIR" in output["error"]["message"] and "Traceback" not in output["error"]["message"]


def test_a_full_disk_mid_job_is_named_as_such(tmp_path: Path) -> None:
    from worker.pipeline import _unexpected

    error = _unexpected(OSError(errno.ENOSPC, "No space left on device"), "generation", tmp_path)
    assert error.message.startswith(f"the worker cannot write {tmp_path} (the disk is full)")
    assert "STUDIO_TMP_DIR" in error.message
