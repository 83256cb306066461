"""Worker processes for the local endpoint: each takes jobs from the queue and runs them one at a time.

A supervisor thread in the API process keeps `workers` processes alive, and kills and replaces one whose job ran
past its execution timeout (the job ends TIMED_OUT), the way RunPod treats a worker that overstays.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker import logs
from worker.contract import ErrorCode, JobError, JobStatus, Stage
from worker.endpoint.queue import JobQueue, now_ms
from worker.progress import CancelToken
from worker.settings import Settings

DEFAULT_RUNNER = "worker.pipeline:run_job"
IDLE_POLL_S = 0.2
log = logs.get_logger("endpoint.runner")


def load_runner(path: str) -> Callable[..., dict[str, Any]]:
    """Import `module:function`: the job runner (run_job, or a test/benchmark runner with its signature)."""
    module_name, function_name = path.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def final_status(output: dict[str, Any]) -> str:
    """The RunPod status a finished job's output maps to."""
    if output.get("status") != "error":
        return JobStatus.COMPLETED
    code = (output.get("error") or {}).get("code")
    return {ErrorCode.CANCELLED: JobStatus.CANCELLED, ErrorCode.TIMEOUT: JobStatus.TIMED_OUT}.get(
        code, JobStatus.FAILED
    )


def worker_main(queue_path: str, settings: Settings, runner_path: str, stop: Any) -> None:
    """A worker process's loop: claim, run, record; until asked to stop."""
    logs.configure()
    queue = JobQueue(Path(queue_path))
    runner = load_runner(runner_path)
    pid = os.getpid()
    while not stop.is_set():
        job = queue.claim_next(pid)
        if job is None:
            time.sleep(IDLE_POLL_S)
            continue
        job_id = job.id

        def sink(payload: dict[str, Any], job_id: str = job_id) -> None:
            queue.set_progress(job_id, payload)

        cancel = CancelToken(is_set=lambda job_id=job_id: queue.cancel_requested(job_id))
        try:
            output = runner(
                job.input, job_id, settings=settings, sink=sink, cancel=cancel, endpoint_id=settings.endpoint_id
            )
        except Exception as error:  # run_job never raises; a custom runner might
            output = {
                "status": "error",
                "error": JobError(
                    ErrorCode.GENERATION_RUNTIME, f"{type(error).__name__}: {error}", at_stage=Stage.GENERATION
                ).to_dict(),
            }
        queue.finish(job_id, final_status(output), output=output, error=output.get("error"))


class WorkerPool:
    """Keeps N worker processes running and enforces execution timeouts."""

    def __init__(self, settings: Settings, queue: JobQueue, *, workers: int, runner_path: str = DEFAULT_RUNNER) -> None:
        self.settings = settings
        self.queue = queue
        self.size = max(1, workers)
        self.runner_path = runner_path
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def _spawn(self) -> multiprocessing.process.BaseProcess:
        process = self._context.Process(
            target=worker_main,
            args=(str(self.queue.path), self.settings, self.runner_path, self._stop),
            daemon=True,
        )
        process.start()
        return process

    def start(self) -> None:
        """Start the processes and the supervisor."""
        self._processes = [self._spawn() for _ in range(self.size)]
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
        self._thread.start()

    def states(self) -> dict[str, int]:
        """Workers by state, as RunPod's /health reports them."""
        alive = [p for p in self._processes if p.is_alive()]
        busy = {job.worker_pid for job in self.queue.running()}
        running = sum(1 for p in alive if p.pid in busy)
        return {
            "idle": len(alive) - running,
            "initializing": self.size - len(alive),
            "ready": len(alive) - running,
            "running": running,
            "throttled": 0,
            "unhealthy": 0,
        }

    def _supervise(self) -> None:
        while not self._closing.wait(0.5):
            for job in self.queue.running():
                if job.execution_ms > job.timeout_ms:
                    self._timeout(job.id, job.worker_pid)
            for index, process in enumerate(self._processes):
                if not process.is_alive() and not self._closing.is_set():
                    self._lost(process.pid)
                    self._processes[index] = self._spawn()

    def _timeout(self, job_id: str, pid: int | None) -> None:
        error = JobError(
            ErrorCode.TIMEOUT,
            f"the job ran longer than its execution timeout; raise policy.executionTimeout or "
            f"STUDIO_EXECUTION_TIMEOUT_S (now {self.settings.execution_timeout_s:.0f} s)",
            at_stage=Stage.GENERATION,
        ).to_dict()
        if self.queue.finish(job_id, JobStatus.TIMED_OUT, output={"status": "error", "error": error}, error=error):
            log.warning("job timed out", extra={"job_id": job_id})
            for process in self._processes:
                if process.pid == pid and process.is_alive():
                    process.kill()

    def _lost(self, pid: int | None) -> None:
        """A worker process died: its job, if any, fails with a retryable error."""
        error = JobError(
            ErrorCode.WORKER_LOST,
            "the worker process stopped while running this job; submit it again",
            at_stage=Stage.GENERATION,
        ).to_dict()
        for job in self.queue.running():
            if job.worker_pid == pid:
                self.queue.finish(job.id, JobStatus.FAILED, output={"status": "error", "error": error}, error=error)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the workers: they finish nothing new; a running job is killed and recovered at next start."""
        self._closing.set()
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for process in self._processes:
            process.join(max(0.0, min(1.0, deadline - time.monotonic())))
            if process.is_alive():
                process.kill()
                process.join()
        if self._thread is not None:
            self._thread.join(timeout=2)


def retention_cutoff(retention_s: float) -> int:
    """The finish time before which results are forgotten."""
    return now_ms() - int(retention_s * 1000)
