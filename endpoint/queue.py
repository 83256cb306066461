"""The local endpoint's durable job queue: one SQLite file, so a restart loses nothing.

Jobs move IN_QUEUE → IN_PROGRESS → COMPLETED | FAILED | CANCELLED | TIMED_OUT. The one way back is /retry, which
puts a FAILED or TIMED_OUT job at the back of the queue again, as RunPod does. Every write is one short IMMEDIATE
transaction, so the API process and its worker processes share the file safely (WAL mode, readers never wait).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import db as sqlite_files
from core.contract import ErrorCode, JobError, JobFailure, JobStatus, Stage

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    progress TEXT,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    timeout_ms INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    retried INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_ms);
"""
ADDED_COLUMNS = {
    "webhook": "TEXT",
    "webhook_due_ms": "INTEGER",
    "webhook_attempts": "INTEGER NOT NULL DEFAULT 0",
    "ttl_ms": "INTEGER",
    "input_bytes": "INTEGER NOT NULL DEFAULT 0",
}
"""Columns newer than the first queue files: added to an existing file by migration 1."""
FINAL_SQL = ", ".join(f"'{status}'" for status in JobStatus.FINAL)
WEBHOOK_SCHEMA = f"""
CREATE INDEX IF NOT EXISTS jobs_webhook_due ON jobs (webhook_due_ms) WHERE webhook_due_ms IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS jobs_webhook_due AFTER UPDATE OF status ON jobs
    WHEN new.webhook IS NOT NULL AND new.status IN ({FINAL_SQL}) AND old.status NOT IN ({FINAL_SQL})
BEGIN
    UPDATE jobs SET webhook_due_ms = COALESCE(new.finished_ms, 0), webhook_attempts = 0 WHERE id = new.id;
END;
"""
"""However a job ends (its worker, a cancel, a timeout, the queue's ttl, a lost worker), its webhook falls due."""
DROP_INPUT_SCHEMA = f"""
CREATE TRIGGER IF NOT EXISTS jobs_drop_input AFTER UPDATE OF status ON jobs
    WHEN new.status IN ('{JobStatus.COMPLETED}', '{JobStatus.CANCELLED}') AND old.status NOT IN ({FINAL_SQL})
BEGIN
    UPDATE jobs SET input = 'null', input_bytes = 0 WHERE id = new.id;
END;
"""
"""A job that can never run again gives up its input when it ends: a /runsync input is up to 20 MB, and the
result is what is kept. FAILED and TIMED_OUT jobs keep theirs for /retry until RETRY_INPUT_S after they end."""
RETRY_INPUT_S = 24 * 3600
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
"""The WAL is cut back to this after each checkpoint; without it, it keeps the size of its busiest moment."""
COLUMNS = (
    "id, status, output, error, progress, created_ms, started_ms, finished_ms, timeout_ms, cancel_requested, "
    "worker_pid, retried, webhook, webhook_attempts, ttl_ms"
)
"""Every column but the input, which only a worker claiming the job reads: /status, /runsync's wait (every
100 ms) and the supervisor (every 500 ms) would otherwise parse up to 20 MB each time."""


def _v1(db: sqlite3.Connection) -> None:
    """The jobs table with every column and trigger of the queue files written before migrations were numbered.

    Those files all have user_version 0, some without the newer columns: this brings each to the same schema
    (CREATE … IF NOT EXISTS, and only the missing columns), so it is safe on an empty file and on any old one.
    """
    sqlite_files.run_script(db, SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for name, kind in ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
    sqlite_files.run_script(db, WEBHOOK_SCHEMA)
    sqlite_files.run_script(db, DROP_INPUT_SCHEMA)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1]
"""The queue file's numbered migrations (core/db.py): a schema change is one more function here."""


class QueueFull(Exception):
    """The queue is at its cap of jobs or of bytes held for queued inputs; the message names the cap and fix."""


RETRYABLE_STATUSES = (JobStatus.FAILED, JobStatus.TIMED_OUT)


def now_ms() -> int:
    """Wall-clock time in milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class QueuedJob:
    """One row of the queue."""

    id: str
    status: str
    input: Any
    output: Any
    error: Any
    progress: Any
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    timeout_ms: int
    cancel_requested: bool
    worker_pid: int | None
    retried: int
    webhook: str | None = None
    webhook_attempts: int = 0
    ttl_ms: int | None = None

    @property
    def expires_ms(self) -> int | None:
        """When the job times out if it is still queued; None when it may wait for ever."""
        return self.created_ms + self.ttl_ms if self.ttl_ms is not None else None

    @property
    def delay_ms(self) -> int:
        """Time spent waiting in the queue: so far while queued, until it started or was cancelled after."""
        return (self.started_ms or self.finished_ms or now_ms()) - self.created_ms

    @property
    def execution_ms(self) -> int:
        """Time spent running (so far, while in progress); 0 for a job that never started."""
        if self.started_ms is None:
            return 0
        return (self.finished_ms or now_ms()) - self.started_ms


def job_view(job: QueuedJob) -> dict[str, Any]:
    """A job as RunPod's /status returns it.

    `output` is the latest progress payload while IN_PROGRESS and the result once finished. RunPod gives
    `error` as a string, so a failed job's structured error is JSON text there and an object in `output.error`.
    """
    view: dict[str, Any] = {"id": job.id, "status": job.status, "delayTime": job.delay_ms}
    if job.started_ms is not None:
        view["executionTime"] = job.execution_ms
    if job.status == JobStatus.IN_PROGRESS and job.progress is not None:
        view["output"] = job.progress
    elif job.status in JobStatus.FINAL:
        if job.output is not None:
            view["output"] = job.output
        if job.status != JobStatus.COMPLETED and job.error is not None:
            view["error"] = job.error if isinstance(job.error, str) else json.dumps(job.error)
    if job.retried:
        view["retries"] = job.retried
    return view


def _load(text: str | None) -> Any:
    return json.loads(text) if text else None


def _dump(value: Any) -> str | None:
    return json.dumps(value) if value is not None else None


def stopped_message(job_id: str) -> str:
    """Why a job that was running when its endpoint stopped (or died) failed, and how to run it again."""
    return f"the endpoint stopped while this job was running; retry it (POST /retry/{job_id})"


def lost_error(message: str) -> dict[str, Any]:
    """The retryable error of a job whose worker went away mid-run."""
    return JobError(ErrorCode.WORKER_LOST, message, at_stage=Stage.GENERATION).to_dict()


LISTED_INPUT_BYTES = 256 * 1024
"""The most input text the job listing returns per job: what a /run input holds once its media travel by
reference (client.api.prepare_input moves anything bigger to the store). A bigger input (a /runsync body of
inline media, up to 20 MB) is listed by its prompt alone, so a listing never parses megabytes per job."""


@dataclass(frozen=True)
class ListedJob:
    """A queued or running job as the listing shows it: `position` is its place in line (1 next), None once it
    runs; `input` is None when it is over LISTED_INPUT_BYTES (then `prompt` alone is read from it)."""

    id: str
    status: str
    created_ms: int
    started_ms: int | None
    position: int | None
    input: Any
    prompt: str | None
    progress: Any


class JobQueue:
    """The jobs table, shared by the API process and its worker processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file only: freed pages returned
            db.execute("PRAGMA journal_mode=WAL")
            sqlite_files.migrate(db, MIGRATIONS, db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread, kept open: the API answers from a thread pool and a worker writes progress
        # many times a job, and reopening the file each time costs about a millisecond.
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_files.connect(self.path, f"journal_size_limit={JOURNAL_SIZE_LIMIT}")
            db.row_factory = sqlite3.Row
            self._local.db = db
        yield db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _row(row: sqlite3.Row) -> QueuedJob:
        return QueuedJob(
            id=row["id"],
            status=row["status"],
            input=_load(row["input"]) if "input" in row.keys() else None,  # noqa: SIM118 (Row: `in` tests values)
            output=_load(row["output"]),
            error=_load(row["error"]),
            progress=_load(row["progress"]),
            created_ms=row["created_ms"],
            started_ms=row["started_ms"],
            finished_ms=row["finished_ms"],
            timeout_ms=row["timeout_ms"],
            cancel_requested=bool(row["cancel_requested"]),
            worker_pid=row["worker_pid"],
            retried=row["retried"],
            webhook=row["webhook"],
            webhook_attempts=row["webhook_attempts"],
            ttl_ms=row["ttl_ms"],
        )

    def enqueue(
        self,
        job_id: str,
        job_input: Any,
        timeout_ms: int,
        *,
        webhook: str | None = None,
        ttl_ms: int | None = None,
        max_queued: int | None = None,
        max_queued_bytes: int | None = None,
    ) -> QueuedJob:
        """Add a job at the back of the queue; it expires if still queued after ttl_ms, and its end is POSTed to
        the webhook URL, if given. Raises QueueFull when it would take the queue past max_queued jobs or
        max_queued_bytes of inputs (checked in the same transaction as the insert, so concurrent submissions
        cannot overshoot)."""
        text = json.dumps(job_input)
        with self._write() as db:
            if max_queued is not None or max_queued_bytes is not None:
                count, held = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(input_bytes), 0) FROM jobs WHERE status = ?", (JobStatus.IN_QUEUE,)
                ).fetchone()
                if max_queued is not None and count >= max_queued:
                    raise QueueFull(
                        f"the queue already holds {count} jobs, its cap (STUDIO_LOCAL_MAX_QUEUED={max_queued}); "
                        "retry when some have run, or raise the cap"
                    )
                if max_queued_bytes is not None and held + len(text) > max_queued_bytes:
                    raise QueueFull(
                        f"queued inputs already hold {held / 1024 / 1024:.0f} MB and this one is "
                        f"{len(text) / 1024 / 1024:.1f} MB, past the cap (STUDIO_LOCAL_MAX_QUEUED_MB="
                        f"{max_queued_bytes // (1024 * 1024)}); retry when some have run, send media as URLs or "
                        "paths instead of base64, or raise the cap"
                    )
            db.execute(
                "INSERT INTO jobs (id, status, input, input_bytes, created_ms, timeout_ms, webhook, ttl_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, JobStatus.IN_QUEUE, text, len(text), now_ms(), timeout_ms, webhook, ttl_ms),
            )
            row = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(row)

    def get(self, job_id: str) -> QueuedJob | None:
        """One job, or None."""
        with self._connect() as db:
            row = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def expire_queued(self) -> list[str]:
        """Queued jobs past their ttl end TIMED_OUT without running (RunPod's `policy.ttl`); returns their ids."""
        now = now_ms()
        expired = "SELECT id, ttl_ms FROM jobs WHERE status = ? AND created_ms + ttl_ms <= ?"
        with self._connect() as db:
            # Looked for first without the write lock: called every half second, it almost always finds nothing.
            if db.execute(expired + " LIMIT 1", (JobStatus.IN_QUEUE, now)).fetchone() is None:
                return []
        with self._write() as db:
            rows = db.execute(expired, (JobStatus.IN_QUEUE, now)).fetchall()
            for row in rows:
                ttl_s = row["ttl_ms"] / 1000
                error = JobError(
                    ErrorCode.TIMEOUT,
                    f"the job waited in the queue past its ttl of {ttl_s:g} s and never ran; raise policy.ttl (ms) "
                    f"in the request, add workers (STUDIO_LOCAL_WORKERS), or retry it (POST /retry/{row['id']})",
                    at_stage=Stage.VALIDATION_STARTED,
                ).to_dict()
                db.execute(
                    "UPDATE jobs SET status = ?, output = ?, error = ?, finished_ms = ? WHERE id = ?",
                    (
                        JobStatus.TIMED_OUT,
                        json.dumps(JobFailure.of(error)),
                        json.dumps(error),
                        now,
                        row["id"],
                    ),
                )
        return [row["id"] for row in rows]

    def claim_next(self, worker_pid: int) -> QueuedJob | None:
        """Take the oldest queued job for a worker, or None when the queue is empty; expired ones never start."""
        self.expire_queued()
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY created_ms, rowid LIMIT 1", (JobStatus.IN_QUEUE,)
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, started_ms = ?, worker_pid = ? WHERE id = ?",
                (JobStatus.IN_PROGRESS, now_ms(), worker_pid, row["id"]),
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return self._row(claimed)

    def set_progress(self, job_id: str, payload: dict[str, Any]) -> None:
        """Record the latest progress payload of a running job (a finished job's row is left alone)."""
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = ?",
                (json.dumps(payload), job_id, JobStatus.IN_PROGRESS),
            )

    def finish(self, job_id: str, status: str, output: Any = None, error: Any = None) -> bool:
        """Move a running job to a final state; False when it had already ended (nothing changes)."""
        with self._write() as db:
            changed = db.execute(
                "UPDATE jobs SET status = ?, output = ?, error = ?, finished_ms = ?, worker_pid = NULL "
                "WHERE id = ? AND status = ?",
                (status, _dump(output), _dump(error), now_ms(), job_id, JobStatus.IN_PROGRESS),
            ).rowcount
        return changed == 1

    def mark_lost(self, job_id: str, message: str, partial_video: Any = None) -> bool:
        """A running job whose worker went away: FAILED with the retryable E_WORKER_LOST. The video so far it
        last announced (`partial_video`, worker/partial.py) stays its result, as a cancelled job's does, so a
        job cut off by a restart keeps the clips it had finished (issue 29)."""
        error = lost_error(message)
        kept = partial_video if isinstance(partial_video, dict) and partial_video.get("key") else None
        return self.finish(job_id, JobStatus.FAILED, output=JobFailure.of(error, partial_video=kept), error=error)

    def request_cancel(self, job_id: str) -> QueuedJob | None:
        """Cancel a queued job at once; ask a running one to stop at its next stage or chunk boundary."""
        error = JobError(
            ErrorCode.CANCELLED, "the job was cancelled before it started", at_stage=Stage.VALIDATION_STARTED
        ).to_dict()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET status = ?, output = ?, error = ?, finished_ms = ? WHERE id = ? AND status = ?",
                (
                    JobStatus.CANCELLED,
                    json.dumps(JobFailure.of(error)),
                    json.dumps(error),
                    now_ms(),
                    job_id,
                    JobStatus.IN_QUEUE,
                ),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = ?", (job_id, JobStatus.IN_PROGRESS)
            )
            row = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked this job to stop."""
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel_requested"])

    def retry(self, job_id: str) -> tuple[QueuedJob | None, bool]:
        """Put a FAILED or TIMED_OUT job back at the end of the queue, its old output gone (RunPod's /retry).

        Returns the job as it now is, and whether it was re-queued (False for a job in any other state).
        """
        with self._write() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in RETRYABLE_STATUSES or row["input"] == "null":
                return (self._row(row) if row else None), False
            # Deleted and inserted anew rather than updated, so its rowid puts it behind every job queued so far.
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute(
                "INSERT INTO jobs (id, status, input, input_bytes, created_ms, timeout_ms, retried, webhook, ttl_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    JobStatus.IN_QUEUE,
                    row["input"],
                    len(row["input"]),
                    now_ms(),
                    row["timeout_ms"],
                    row["retried"] + 1,
                    row["webhook"],
                    row["ttl_ms"],
                ),
            )
            requeued = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(requeued), True

    def running(self) -> list[QueuedJob]:
        """Jobs in progress."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {COLUMNS} FROM jobs WHERE status = ?", (JobStatus.IN_PROGRESS,)).fetchall()
        return [self._row(row) for row in rows]

    def purge_queue(self) -> int:
        """Remove every job still waiting in the queue (running ones continue); return how many."""
        with self._write() as db:
            return db.execute("DELETE FROM jobs WHERE status = ?", (JobStatus.IN_QUEUE,)).rowcount

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status, and how many retries were asked for."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[dict[str, int], set[int]]:
        """The counts by status and the worker pids of the running jobs, read in one transaction.

        /health shows both: read apart, a job could start or end in between and the answer say 2 workers
        running and 1 job in progress. One WAL read transaction sees one state of the file.
        """
        with self._connect() as db:
            db.execute("BEGIN")
            try:
                rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
                retried = db.execute("SELECT COALESCE(SUM(retried), 0) FROM jobs").fetchone()[0]
                pids = db.execute(
                    "SELECT worker_pid FROM jobs WHERE status = ? AND worker_pid IS NOT NULL", (JobStatus.IN_PROGRESS,)
                ).fetchall()
            finally:
                db.execute("COMMIT")
        counts = dict.fromkeys(JobStatus.ALL, 0)
        counts.update({row["status"]: row["n"] for row in rows})
        counts["retried"] = int(retried)
        return counts, {int(row["worker_pid"]) for row in pids}

    def recover_lost(self) -> list[str]:
        """At start-up: jobs left IN_PROGRESS by an endpoint that died become FAILED with a retryable error."""
        running = self.running()
        for job in running:
            partial = job.progress.get("partial_video") if isinstance(job.progress, dict) else None
            self.mark_lost(job.id, stopped_message(job.id), partial)
        return [job.id for job in running]

    def take_due_webhooks(self, lease_ms: int, limit: int = 16) -> list[QueuedJob]:
        """Finished jobs whose webhook call is due, each leased for lease_ms so no other sender takes it too."""
        now = now_ms()
        with self._connect() as db:
            # Looked for first without the write lock: asked four times a second, it almost always finds nothing.
            if db.execute("SELECT 1 FROM jobs WHERE webhook_due_ms <= ? LIMIT 1", (now,)).fetchone() is None:
                return []
        with self._write() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE webhook_due_ms <= ? ORDER BY webhook_due_ms LIMIT ?", (now, limit)
            ).fetchall()
            db.executemany(
                "UPDATE jobs SET webhook_due_ms = ? WHERE id = ?", [(now + lease_ms, row["id"]) for row in rows]
            )
        return [self._row(row) for row in rows]

    def webhook_attempted(self, job_id: str, *, delivered: bool, retry_in_ms: int | None) -> None:
        """Record a webhook call: delivered, to be tried again in retry_in_ms, or (None) given up."""
        done = delivered or retry_in_ms is None
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET webhook_attempts = webhook_attempts + 1, webhook_due_ms = ? WHERE id = ?",
                (None if done else now_ms() + (retry_in_ms or 0), job_id),
            )

    def forget_finished_before(self, cutoff_ms: int) -> int:
        """Delete jobs that ended before cutoff_ms (results are kept for the retention time)."""
        with self._write() as db:
            return db.execute(
                "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?", (cutoff_ms,)
            ).rowcount

    def drop_retry_inputs_before(self, cutoff_ms: int) -> int:
        """FAILED and TIMED_OUT jobs that ended before cutoff_ms give up their input (no /retry after that)."""
        retryable = ", ".join(f"'{status}'" for status in RETRYABLE_STATUSES)
        with self._write() as db:
            return db.execute(
                f"UPDATE jobs SET input = 'null', input_bytes = 0 WHERE status IN ({retryable}) "
                "AND finished_ms < ? AND input != 'null'",
                (cutoff_ms,),
            ).rowcount

    def checkpoint(self) -> None:
        """Copy the WAL into the database and cut it back (TRUNCATE), then return freed pages to the file system
        (on files made with auto_vacuum): a flood of 20 MB inputs must not leave a file of its size behind."""
        with self._connect() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("PRAGMA incremental_vacuum")

    def unfinished(
        self, input_limit: int = LISTED_INPUT_BYTES, finished_since_ms: int | None = None
    ) -> list[ListedJob]:
        """Every queued or running job, running ones first and queued ones in the order workers will take them;
        with `finished_since_ms`, the jobs that ended since then follow (a job that failed in a second ends
        before anyone looks: it is still listed, so the dashboard shows it with Retry).

        RunPod's job API has no such listing (only /status of a known id); the local endpoint adds one so the
        dashboard shows jobs sent from anywhere (the command line, scripts), each with its place in line.
        """
        ended = f" OR (status IN ({FINAL_SQL}) AND finished_ms >= ?)" if finished_since_ms is not None else ""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, status, created_ms, started_ms, progress, "
                "CASE WHEN input_bytes <= ? THEN input END AS small_input, "
                "CASE WHEN input_bytes > ? THEN json_extract(input, '$.prompt') END AS big_prompt "
                f"FROM jobs WHERE status IN (?, ?){ended} "
                "ORDER BY status = ?, status = ?, created_ms, rowid",
                (
                    input_limit,
                    input_limit,
                    JobStatus.IN_PROGRESS,
                    JobStatus.IN_QUEUE,
                    *([finished_since_ms] if finished_since_ms is not None else []),
                    JobStatus.IN_QUEUE,
                    JobStatus.IN_PROGRESS,
                ),
            ).fetchall()
        listed = []
        place = 0
        for row in rows:
            queued = row["status"] == JobStatus.IN_QUEUE
            place += queued
            job_input = _load(row["small_input"])
            prompt = job_input.get("prompt") if isinstance(job_input, dict) else row["big_prompt"]
            listed.append(
                ListedJob(
                    id=row["id"],
                    status=row["status"],
                    created_ms=row["created_ms"],
                    started_ms=row["started_ms"],
                    position=place if queued else None,
                    input=job_input,
                    prompt=prompt if isinstance(prompt, str) else None,
                    progress=_load(row["progress"]),
                )
            )
        return listed
