"""Worker processes for the local endpoint: each takes jobs from the queue and runs them one at a time.

A supervisor thread in the API process keeps `workers` processes alive and enforces what RunPod enforces: a job
queued past its ttl ends TIMED_OUT without running; a job past its execution timeout ends TIMED_OUT and its
worker is killed and replaced; a worker that dies mid-job fails that job with the retryable E_WORKER_LOST. Beyond
RunPod, a running job that ignores a cancel for CANCEL_GRACE_S is stopped the same way, so cancel always ends a
job.

Nothing the API process shares with a worker takes a lock the worker could die holding. multiprocessing's
Event is a Condition underneath: set() waits for every sleeper to acknowledge, and a worker killed while asleep
in wait() never does, so one SIGTERM to the endpoint's process group (or an idle worker killed by the OOM
killer) left the API blocked for ever in the next set(). The stop flag is a plain shared byte and each worker
is woken through its own semaphore, whose post never waits for anyone.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Semaphore
from pathlib import Path
from typing import Any

from core import logs
from core.contract import ErrorCode, JobError, JobFailure, JobStatus, PartialVideoInfo, Stage, output_status
from core.settings import Settings
from core.store import is_partial_key, open_store
from endpoint import worker_logs
from endpoint.queue import RETRY_INPUT_S, JobQueue, QueuedJob, now_ms, stopped_message
from worker.media import probe
from worker.progress import CancelToken

JobRunner = Callable[..., dict[str, Any]]
"""`run_job(raw_input, job_id, *, settings, sink, cancel, endpoint_id) -> dict`, which never raises."""

IDLE_WAIT_S = 0.5
SUPERVISE_S = 0.5
CANCEL_GRACE_S = 30.0
RETENTION_SWEEP_S = 600.0
CHECKPOINT_S = 10.0
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024
"""The supervisor checkpoints the queue's WAL (and cuts it back) when it has grown past this."""
STOP_TIMEOUT_S = 5.0

INITIALIZING, READY, UNHEALTHY = 0, 1, 2
log = logs.get_logger("endpoint.runner")


def error_output(code: str, message: str, at_stage: str = Stage.GENERATION) -> dict[str, Any]:
    """A failed job's output, shaped as run_job shapes it."""
    return JobFailure.of(JobError(code, message, at_stage=at_stage))


def record(queue: JobQueue, job_id: str, output: Any) -> None:
    """Store a finished job's output under its final status."""
    try:
        json.dumps(output)
    except (TypeError, ValueError) as not_json:
        output = error_output(ErrorCode.GENERATION_RUNTIME, f"the job's result is not JSON ({not_json})")
    status = output_status(output)
    error = None
    if status != JobStatus.COMPLETED:
        error = output.get("error") or error_output(ErrorCode.GENERATION_RUNTIME, "the job failed")["error"]
    queue.finish(job_id, status, output=output, error=error)


def run_claimed(
    queue: JobQueue, job: QueuedJob, runner: JobRunner, settings: Settings, leaving: Callable[[], bool]
) -> dict[str, Any]:
    """Run one claimed job: progress into its row, cancel from its row, its output recorded at the end.

    When the endpoint is going away (`leaving`), the job is asked to stop too; if it stops for that reason it is
    recorded as lost (retryable), not as cancelled by the user.
    """

    def sink(payload: dict[str, Any]) -> None:
        queue.set_progress(job.id, payload)

    cancel = CancelToken(is_set=lambda: leaving() or queue.cancel_requested(job.id))
    try:
        output = runner(
            job.input, job.id, settings=settings, sink=sink, cancel=cancel, endpoint_id=settings.endpoint_id
        )
    except Exception as error:  # run_job never raises; another runner might, and the worker must live on
        log.exception("job runner raised", extra={"job_id": job.id})
        output = error_output(ErrorCode.GENERATION_RUNTIME, f"{type(error).__name__}: {error}")
    if output_status(output) == JobStatus.CANCELLED and leaving() and not queue.cancel_requested(job.id):
        # The video so far: as the pipeline kept it on the stop, else as the job last announced it.
        latest = queue.get(job.id)
        partial = output.get("partial_video") or (_announced_partial(latest) if latest is not None else None)
        queue.mark_lost(job.id, stopped_message(job.id), partial)
    else:
        record(queue, job.id, output)
    return output if isinstance(output, dict) else {}


def pipeline_runner(settings: Settings) -> tuple[JobRunner, bool]:
    """run_job, with the engine loaded now (the worker's cold start) rather than in its first job.

    Returns the runner and whether the engine loaded; when it did not, each job reports E_PIPELINE_LOAD with the
    missing path, as on RunPod.
    """
    from worker.engines import load_engine
    from worker.pipeline import run_job
    from worker.workdirs import sweep

    sweep(settings.work_root)  # job folders a killed worker left behind
    try:
        engine = load_engine(settings)
    except JobError as error:
        log.error("engine failed to load", extra={"code": error.code, "error": error.message})
        return run_job, False
    log.info("engine loaded", extra={"engine": engine.name})
    return run_job, True


def worker_main(
    queue_path: str,
    settings: Settings,
    runner: JobRunner | None,
    stop: Synchronized,
    wake: Semaphore,
    state: ctypes.c_int,
    parent_pid: int,
) -> None:
    """A worker process: warm up, then claim, run and record jobs until told to stop or orphaned.

    An idle worker sleeps on `wake`, which the API posts on every submission, so a job starts within
    milliseconds; the wait's timeout is how an idle worker notices a stop or its endpoint's death.
    """
    asked_to_leave = False

    def leave(signum: int, _: object) -> None:
        # SIGTERM or SIGHUP, to the worker alone or to the whole group: stop like a graceful endpoint stop (the
        # job ends at its next boundary and is recorded as lost), and exit for sure soon after even if it does
        # not (the alarm's default action ends the process).
        nonlocal asked_to_leave
        asked_to_leave = True
        signal.alarm(int(STOP_TIMEOUT_S) + 2)

    # Ctrl-C reaches the whole process group; the API process decides when and how its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)
    logs.configure()
    logs.register_secrets(settings.secrets())
    worker_logs.capture(worker_logs.path_for(worker_logs.folder_for(Path(queue_path)), os.getpid()))
    log.info("worker started; loading the engine", extra={"pid": os.getpid(), "engine": settings.engine})
    queue = JobQueue(Path(queue_path))
    if runner is None:
        runner, healthy = pipeline_runner(settings)
        state.value = READY if healthy else UNHEALTHY
    else:
        state.value = READY

    def leaving() -> bool:
        # An endpoint killed with SIGKILL cannot stop its workers: they notice they were orphaned instead.
        return bool(stop.value) or asked_to_leave or os.getppid() != parent_pid

    while not leaving():
        # Drained before looking, so a submission that lands after the look still wakes the wait below.
        while wake.acquire(block=False):
            pass
        job = queue.claim_next(os.getpid())
        if job is None:
            wake.acquire(timeout=IDLE_WAIT_S)
            continue
        output = run_claimed(queue, job, runner, settings, leaving)
        failed_to_load = (output.get("error") or {}).get("code") == ErrorCode.PIPELINE_LOAD
        state.value = UNHEALTHY if failed_to_load else READY


def _announced_partial(job: QueuedJob) -> Any:
    """The video so far a running job last announced in its progress (worker/partial.py), if any: a worker that
    is killed cannot tidy up, so it stays the job's result."""
    return job.progress.get("partial_video") if isinstance(job.progress, dict) else None


def _partial_number(key: str) -> int:
    return int(key.rsplit("/", 1)[-1][len("partial-") : -len(".mp4")])


def settle_partials(settings: Settings, job: QueuedJob, announced: Any) -> Any:
    """After a job's worker was killed: the partial video to name as its result, and no other partial left.

    The worker keeps the partial it announced and its predecessor (a viewer may still be fetching it), and may
    have written a newer one it had not announced yet; killed, it tidies nothing, and those stayed in the store
    named by nothing until a retry replaced them (issue 27). The announcement in the job's row can also trail
    the worker's own deletions (it rides on the next progress payload), naming an object already gone. So the
    store decides: the announced partial when it is still there, else the newest one there (probed for its
    duration), named from the announcement's folder; every other partial in that folder is deleted. Best
    effort: a store that cannot be read leaves the announcement as it was, with a log line."""
    if not isinstance(announced, dict) or not isinstance(announced.get("key"), str) or "/" not in announced["key"]:
        return announced
    folder = announced["key"].rsplit("/", 1)[0]
    config = job.input.get("output_config") if isinstance(job.input, dict) else None
    config = config if isinstance(config, dict) else {}
    kind = config.get("store") if config.get("store") in ("s3", "volume") else None
    bucket = config.get("bucket") if isinstance(config.get("bucket"), str) else None
    try:
        store = open_store(settings, kind, bucket)
        there = sorted((key for key in store.list(folder + "/") if is_partial_key(key)), key=_partial_number)
        kept: Any = announced if announced["key"] in there else None
        if kept is None and there:
            newest = there[-1]
            with tempfile.TemporaryDirectory(prefix="lost-partial-") as scratch:
                copy = store.download(newest, Path(scratch) / "partial.mp4")
                info = probe(copy, field="partial_video")
                kept = PartialVideoInfo(
                    url=store.url(newest),
                    key=newest,
                    duration_s=round(info.duration_s or 0.0, 3),
                    clips_done=_partial_number(newest),
                    clips_total=max(_partial_number(newest), int(announced.get("clips_total") or 0), 1),
                    bytes=copy.stat().st_size,
                ).model_dump()
        for key in there:
            if kept is None or key != kept["key"]:
                store.delete(key)
        return kept
    except Exception:  # the store or the file let us down: the announcement stays, as before
        log.exception("could not settle a lost job's partial videos", extra={"job_id": job.id})
        return announced


@dataclass
class _Worker:
    process: BaseProcess
    state: ctypes.c_int
    wake: Semaphore
    started: float = 0.0
    """When the process was started (time.time()), for the uptime /v2/serverless/{id}/workers reports."""

    def notify(self) -> None:
        # Posted only when not already pending, so a busy worker's count stays at 1 however many jobs arrive.
        try:
            if self.wake.get_value() == 0:
                self.wake.release()
        except (OSError, ValueError):  # a semaphore at its maximum is awake enough
            pass


@dataclass(frozen=True)
class WorkerView:
    """One worker process as the endpoint reports it."""

    pid: int
    status: str
    """RunPod's WorkerStatus: RUNNING, IDLE, INITIALIZING or UNHEALTHY (a local worker is never THROTTLED)."""
    started: float


class WorkerPool:
    """Keeps N worker processes running; enforces execution timeouts, cancels and result retention."""

    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        *,
        workers: int,
        runner: JobRunner | None = None,
        retention_s: float,
        cancel_grace_s: float = CANCEL_GRACE_S,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.size = max(1, workers)
        self.runner = runner
        self.retention_s = retention_s
        self.cancel_grace_s = cancel_grace_s
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Value("b", 0, lock=False)
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._cancel_seen: dict[str, float] = {}

    def _spawn(self) -> _Worker:
        state = self._context.Value("i", INITIALIZING, lock=False)
        wake = self._context.Semaphore(0)
        process = self._context.Process(
            target=worker_main,
            args=(str(self.queue.path), self.settings, self.runner, self._stop, wake, state, os.getpid()),
            name="studio-endpoint-worker",
            daemon=True,
        )
        process.start()
        return _Worker(process, state, wake, started=time.time())

    def start(self) -> None:
        """Start the processes and the supervisor."""
        with self._lock:
            self._workers = [self._spawn() for _ in range(self.size)]
            worker_logs.prune(worker_logs.folder_for(self.queue.path), self.pids(locked=False))
        self._thread = threading.Thread(target=self._supervise, name="endpoint-supervisor", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Wake idle workers: a job was queued. Never blocks (it runs on the API's event loop)."""
        for worker in list(self._workers):  # no lock: the supervisor holds it while it spawns a worker
            worker.notify()

    def states(self, busy: set[int] | None = None) -> dict[str, int]:
        """Workers by state, in RunPod's /health terms: a ready worker is idle until it takes a job.

        `busy` is the worker pids of the running jobs, from the same snapshot as /health's job counts.
        """
        if busy is None:
            busy = self.queue.snapshot()[1]
        with self._lock:
            workers = list(self._workers)
        alive = [w for w in workers if w.process.is_alive()]
        running = sum(1 for w in alive if w.process.pid in busy)
        ready = sum(1 for w in alive if w.state.value == READY and w.process.pid not in busy)
        unhealthy = sum(1 for w in alive if w.state.value == UNHEALTHY and w.process.pid not in busy)
        return {
            "idle": ready,
            "initializing": len(workers) - len(alive) + sum(1 for w in alive if w.state.value == INITIALIZING),
            "ready": ready,
            "running": running,
            "throttled": 0,
            "unhealthy": unhealthy,
        }

    @property
    def stopping(self) -> bool:
        """True once the pool was told to stop (a log stream that follows a worker ends then)."""
        return self._closing.is_set()

    def pids(self, *, locked: bool = True) -> list[int]:
        """The worker processes' ids (`locked=False` from code that already holds the pool's lock)."""
        if not locked:
            return [w.process.pid for w in self._workers if w.process.pid is not None]
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def describe(self, busy: set[int] | None = None) -> list[WorkerView]:
        """Each worker as RunPod's worker list shows one: its id (the process id), its state in RunPod's words
        (the same rules as states()), and when it started. `busy` is the running jobs' worker pids."""
        if busy is None:
            busy = self.queue.snapshot()[1]
        with self._lock:
            workers = list(self._workers)
        views = []
        for worker in workers:
            pid = worker.process.pid or 0
            if not worker.process.is_alive():
                status = "INITIALIZING"  # dead, about to be replaced: /health counts it initializing too
            elif pid in busy:
                status = "RUNNING"
            else:
                status = {READY: "IDLE", UNHEALTHY: "UNHEALTHY"}.get(worker.state.value, "INITIALIZING")
            views.append(WorkerView(pid, status, worker.started))
        return views

    def _supervise(self) -> None:
        last_sweep = last_checkpoint = 0.0
        wal = self.queue.path.with_name(self.queue.path.name + "-wal")
        while not self._closing.wait(SUPERVISE_S):
            try:
                self.queue.expire_queued()
                self._enforce(self.queue.running())
                self._replace_dead()
                if time.monotonic() - last_sweep > RETENTION_SWEEP_S:
                    self.queue.forget_finished_before(now_ms() - int(self.retention_s * 1000))
                    self.queue.drop_retry_inputs_before(now_ms() - RETRY_INPUT_S * 1000)
                    last_sweep = time.monotonic()
                if time.monotonic() - last_checkpoint > CHECKPOINT_S:
                    last_checkpoint = time.monotonic()
                    if wal.exists() and wal.stat().st_size > CHECKPOINT_WAL_BYTES:
                        self.queue.checkpoint()
            except Exception:  # a locked or full disk must not end supervision for good
                log.exception("endpoint supervisor failed; trying again")

    def _enforce(self, running: list[QueuedJob]) -> None:
        """End jobs past their execution timeout, and cancelled jobs that ignore the cancel."""
        now = time.monotonic()
        self._cancel_seen = {job.id: self._cancel_seen.get(job.id, now) for job in running if job.cancel_requested}
        for job in running:
            if job.execution_ms > job.timeout_ms:
                message = (
                    f"the job ran past its execution timeout of {job.timeout_ms / 1000:g} s; raise "
                    "policy.executionTimeout (ms) in the request or STUDIO_EXECUTION_TIMEOUT_S"
                )
                self._end(job, JobStatus.TIMED_OUT, error_output(ErrorCode.TIMEOUT, message))
            elif job.id in self._cancel_seen and now - self._cancel_seen[job.id] > self.cancel_grace_s:
                message = f"the job was cancelled and did not stop within {self.cancel_grace_s:g} s, so its worker was"
                self._end(job, JobStatus.CANCELLED, error_output(ErrorCode.CANCELLED, f"{message} stopped"))

    def _end(self, job: QueuedJob, status: str, output: dict[str, Any]) -> None:
        partial = _announced_partial(job)
        if partial:
            # The worker is killed, so it cannot tidy up: the video so far it last announced becomes the result,
            # as a cancelled job's does (worker/partial.py), instead of an object nothing names.
            output = {**output, "partial_video": partial}
        if self.queue.finish(job.id, status, output=output, error=output["error"]):
            log.warning("job ended by the endpoint", extra={"job_id": job.id, "status": status})
            with self._lock:
                for worker in self._workers:
                    if worker.process.pid == job.worker_pid and worker.process.is_alive():
                        worker.process.kill()

    def _replace_dead(self) -> None:
        with self._lock:
            for index, worker in enumerate(self._workers):
                if worker.process.is_alive() or self._closing.is_set():
                    continue
                worker.process.join()
                for job in self.queue.running():
                    if job.worker_pid == worker.process.pid:
                        message = "the worker process stopped while running this job; retry it"
                        kept = settle_partials(self.settings, job, _announced_partial(job))
                        self.queue.mark_lost(job.id, message, kept)
                self._workers[index] = self._spawn()
                worker_logs.prune(worker_logs.folder_for(self.queue.path), self.pids(locked=False))

    def begin_stop(self) -> None:
        """Tell the workers to take no more jobs and stop the running ones at their next boundary, at once.

        Safe in a signal handler: it only sets flags and posts semaphores, none of which waits. Called when the
        endpoint is signalled, before it stops serving, so no worker replaced meanwhile takes a queued job.
        """
        self._closing.set()
        self._stop.value = 1
        self.notify()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the workers: running jobs are asked to stop at their next boundary and recorded as lost."""
        self.begin_stop()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            workers = list(self._workers)
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        pids = {w.process.pid for w in workers}
        for job in self.queue.running():
            if job.worker_pid in pids:
                kept = settle_partials(self.settings, job, _announced_partial(job))
                self.queue.mark_lost(job.id, stopped_message(job.id), kept)
