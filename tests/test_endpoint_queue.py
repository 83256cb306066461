"""The endpoint's durable queue: a real SQLite file shared by processes, the states RunPod reports, nothing lost."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.contract import ErrorCode, JobStatus, Stage
from endpoint.lock import DataDirLock, EndpointBusy
from endpoint.queue import SCHEMA, JobQueue, now_ms


@pytest.fixture
def queue(tmp_path: Path) -> JobQueue:
    return JobQueue(tmp_path / "endpoint" / "queue.db")


def claim_all(path: str, claimed: list[str]) -> None:
    """A worker-like process: claim until the queue is empty, finishing each job."""
    queue = JobQueue(Path(path))
    while (job := queue.claim_next(os.getpid())) is not None:
        claimed.append(job.id)
        queue.finish(job.id, JobStatus.COMPLETED, output={"status": "success"})


def test_a_job_goes_from_queued_to_running_to_completed_and_never_back(queue: JobQueue) -> None:
    queue.enqueue("j1", {"prompt": "hi"}, 60_000)
    claimed = queue.claim_next(worker_pid=4242)
    assert claimed is not None and claimed.id == "j1" and claimed.status == JobStatus.IN_PROGRESS
    assert claimed.worker_pid == 4242 and claimed.input == {"prompt": "hi"}

    queue.set_progress("j1", {"stage": Stage.GENERATION, "pct": 40.0})
    assert queue.get("j1").progress == {"stage": Stage.GENERATION, "pct": 40.0}  # type: ignore[union-attr]
    assert queue.finish("j1", JobStatus.COMPLETED, output={"status": "success"}) is True

    assert queue.finish("j1", JobStatus.FAILED, error={"code": "E_X"}) is False
    queue.set_progress("j1", {"stage": "late"})
    done = queue.get("j1")
    assert done is not None and done.status == JobStatus.COMPLETED and done.output == {"status": "success"}
    assert done.error is None and done.worker_pid is None and done.progress["stage"] == Stage.GENERATION
    assert queue.claim_next(worker_pid=4242) is None


def test_jobs_are_claimed_oldest_first(queue: JobQueue) -> None:
    for name in ("first", "second", "third"):
        queue.enqueue(name, {}, 60_000)
    assert [queue.claim_next(1).id for _ in range(3)] == ["first", "second", "third"]  # type: ignore[union-attr]


def test_workers_in_separate_processes_never_claim_the_same_job(queue: JobQueue) -> None:
    for index in range(60):
        queue.enqueue(f"job-{index:02d}", {"n": index}, 60_000)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        claimed = manager.list()
        workers = [context.Process(target=claim_all, args=(str(queue.path), claimed)) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        ids = list(claimed)

    assert sorted(ids) == [f"job-{index:02d}" for index in range(60)]
    assert queue.counts()[JobStatus.COMPLETED] == 60


def test_cancelling_a_queued_job_ends_it_at_once_and_its_wait_stops_counting(queue: JobQueue) -> None:
    queue.enqueue("waiting", {}, 60_000)
    cancelled = queue.request_cancel("waiting")

    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert cancelled.error["code"] == ErrorCode.CANCELLED and cancelled.output["status"] == "error"
    frozen = cancelled.delay_ms
    time.sleep(0.05)
    assert queue.get("waiting").delay_ms == frozen  # type: ignore[union-attr]
    assert queue.claim_next(1) is None


def test_cancelling_a_running_job_only_asks_it_to_stop(queue: JobQueue) -> None:
    queue.enqueue("busy", {}, 60_000)
    queue.claim_next(1)
    assert queue.cancel_requested("busy") is False

    still = queue.request_cancel("busy")

    assert still is not None and still.status == JobStatus.IN_PROGRESS
    assert queue.cancel_requested("busy") is True
    assert queue.request_cancel("no-such-job") is None


def test_a_reopened_queue_has_every_job_and_fails_the_ones_left_running(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    first = JobQueue(path)
    first.enqueue("running", {}, 60_000)
    first.enqueue("queued", {}, 60_000)
    first.claim_next(1)

    reopened = JobQueue(path)
    lost = reopened.recover_lost()

    assert lost == ["running"]
    failed = reopened.get("running")
    assert failed is not None and failed.status == JobStatus.FAILED
    assert failed.error["code"] == ErrorCode.WORKER_LOST and failed.error["retryable"] is True
    assert "/retry/running" in failed.error["message"]
    assert reopened.get("queued").status == JobStatus.IN_QUEUE  # type: ignore[union-attr]


def test_retry_requeues_failed_and_timed_out_jobs_at_the_back_without_their_old_output(queue: JobQueue) -> None:
    queue.enqueue("failed", {"n": 1}, 60_000)
    queue.enqueue("timed-out", {"n": 2}, 60_000)
    queue.claim_next(1)
    queue.claim_next(1)
    queue.finish("failed", JobStatus.FAILED, output={"status": "error"}, error={"code": "E_X"})
    queue.finish("timed-out", JobStatus.TIMED_OUT, error={"code": ErrorCode.TIMEOUT})
    queue.enqueue("newer", {}, 60_000)

    job, requeued = queue.retry("failed")
    queue.retry("timed-out")

    assert requeued and job is not None and job.status == JobStatus.IN_QUEUE
    assert job.output is None and job.error is None and job.started_ms is None and job.input == {"n": 1}
    assert [queue.claim_next(1).id for _ in range(3)] == ["newer", "failed", "timed-out"]  # type: ignore[union-attr]
    assert queue.counts()["retried"] == 2


def test_only_failed_or_timed_out_jobs_can_be_retried(queue: JobQueue) -> None:
    queue.enqueue("ok", {}, 60_000)
    queue.claim_next(1)
    queue.finish("ok", JobStatus.COMPLETED, output={"status": "success"})

    job, requeued = queue.retry("ok")

    assert not requeued and job is not None and job.status == JobStatus.COMPLETED
    assert queue.retry("missing") == (None, False)


def test_purge_removes_only_waiting_jobs(queue: JobQueue) -> None:
    queue.enqueue("running", {}, 60_000)
    queue.claim_next(1)
    for index in range(3):
        queue.enqueue(f"waiting-{index}", {}, 60_000)

    assert queue.purge_queue() == 3
    counts = queue.counts()
    assert counts[JobStatus.IN_QUEUE] == 0 and counts[JobStatus.IN_PROGRESS] == 1


def test_results_past_retention_are_forgotten_and_unfinished_jobs_never_are(queue: JobQueue) -> None:
    queue.enqueue("old", {}, 60_000)
    queue.enqueue("waiting", {}, 60_000)
    queue.claim_next(1)
    queue.finish("old", JobStatus.COMPLETED, output={})

    assert queue.forget_finished_before(now_ms() - 60_000) == 0
    assert queue.forget_finished_before(now_ms() + 1) == 1
    assert queue.get("old") is None and queue.get("waiting") is not None


def test_a_second_endpoint_on_the_same_data_dir_is_refused_until_the_first_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "endpoint" / "endpoint.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from endpoint.lock import DataDirLock; "
            "lock = DataDirLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(EndpointBusy, match=rf"pid {holder.pid}\) already serves .*STUDIO_DATA_DIR"):
            DataDirLock(path).acquire()
    finally:
        holder.kill()
        holder.wait()

    after_crash = DataDirLock(path)
    after_crash.acquire()
    after_crash.release()


def test_a_queue_file_from_before_webhooks_and_ttl_opens_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA)
        old.execute(
            "INSERT INTO jobs (id, status, input, created_ms, timeout_ms) VALUES ('old', 'IN_QUEUE', '{}', 1, 60000)"
        )
    old.close()

    queue = JobQueue(path)

    job = queue.claim_next(worker_pid=1)
    assert job is not None and job.id == "old" and job.webhook is None and job.expires_ms is None
    assert queue.finish("old", JobStatus.COMPLETED, output={"status": "success"})
    assert queue.take_due_webhooks(lease_ms=1000) == [], "no webhook, nothing to call"
