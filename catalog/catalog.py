"""The catalogue: every run, its parameters, status, progress, result, tags and notes, in one SQLite file.

Every read-modify-write is one IMMEDIATE transaction, so two dashboard sessions (or a dashboard and a sync)
updating the same run never lose an update, and a finished run never moves back to an unfinished state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from catalog import bucket
from catalog.records import (
    FINAL_RANK,
    InvalidRecord,
    gpu_columns,
    known_status,
    metadata_row,
    param_columns,
    result_columns,
    run_id_for,
    run_price,
    status_rank,
)
from catalog.schema import connect, rebuild_indexes
from catalog.search import COUNTED, CostTotal, Filters, SearchResult, cost_total, search
from core.contract import ErrorCode, JobError, JobStatus, SplitPlan, output_status, utc_now
from core.prices import PriceTable
from core.store import Store

PROGRESS_EVENTS_KEPT = 200
log = logging.getLogger("studio.catalog")


def clean_tags(tags: list[str]) -> list[str]:
    """Tags trimmed and deduplicated ignoring case, in order, each kept as the user wrote it first ("Demo Reel" stays
    so; searches match tags case-insensitively, issue 29); a comma inside a tag becomes a space."""
    kept: dict[str, str] = {}
    for tag in tags:
        text = tag.strip().replace(",", " ")
        if text:
            kept.setdefault(text.lower(), text)
    return list(kept.values())


def _scoped(sql: str, endpoint_id: str | None, since: str | None) -> tuple[str, list[Any]]:
    """Narrow a runs query to one endpoint and to runs created since a time."""
    args: list[Any] = []
    if endpoint_id:
        sql += " AND endpoint_id = ?"
        args.append(endpoint_id)
    if since:
        sql += " AND created_at >= ?"
        args.append(since)
    return sql, args


SPLIT_SOURCE = "split"
"""The `source` of a split run's row: one run standing for the parts it was rendered as (client/fanout.py)."""


class Catalog:
    """Record, update, search and curate runs.

    Each thread gets its own connection, so one Catalog can serve every thread of a server (Streamlit runs
    each session's script in a thread of its own) and SQLite's locks order their writes.
    """

    def __init__(self, path: Path, prices: PriceTable | None = None) -> None:
        self.path = path
        self.prices = prices or PriceTable()
        """What a second on each GPU costs: a finished run's `cost_usd` is priced with it when it is written."""
        self._local = threading.local()
        # Create and migrate the file now, so a bad path fails here rather than in the middle of a page.
        self._local.db = connect(path)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        return db

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's raw sqlite3 connection."""
        return self.db.conn

    def close(self) -> None:
        """Close this thread's connection (another use opens a new one)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _row(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return rows[0] if rows else None

    @staticmethod
    def _update(conn: sqlite3.Connection, run_id: str, columns: dict[str, Any]) -> bool:
        """Set columns of one run; returns whether the run exists."""
        assignments = ", ".join(f"{name} = ?" for name in columns)
        return conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*columns.values(), run_id]).rowcount > 0

    def record_split(self, plan: SplitPlan, submitted_by: str | None = None) -> str:
        """Record a split run as in progress from its plan (idempotent), the one way every writer records it:
        Submit, `studio submit` (SplitRun.record_start) and a sync restoring it from its split.json."""
        return self.record_submission(
            plan.run_id,
            {**plan.params, "prompt": plan.prompt},
            endpoint_id=plan.endpoint_id,
            status=JobStatus.IN_PROGRESS,
            created_at=plan.created_at,
            submitted_by=submitted_by,
            source=SPLIT_SOURCE,
        )

    def record_submission(
        self,
        job_id: str,
        params: dict[str, Any],
        *,
        endpoint_id: str,
        status: str = JobStatus.IN_QUEUE,
        created_at: str | None = None,
        item_id: str | None = None,
        engine: str | None = None,
        submitted_by: str | None = None,
        request_key: str | None = None,
        source: str = "submit",
        retry_of: str | None = None,
    ) -> str:
        """Record a job just sent to an endpoint (idempotent: a second call changes nothing); return its run id.

        `submitted_by` is the signed-in user who sent it; `request_key` the request file written to the bucket for
        it (bucket.write_request); `source` is `request` for a run a sync restored from that file, `endpoint` for
        one the dashboard found in the local endpoint's queue (sent from the command line or a script);
        `retry_of` the run this one resubmits (Retry on RunPod, where a failed job cannot run again under its id).
        """
        run_id = run_id_for(job_id, item_id)
        row = {
            "run_id": run_id,
            "job_id": job_id,
            "item_id": item_id,
            "endpoint_id": endpoint_id,
            "status": known_status(status),
            "created_at": created_at or utc_now(),
            "updated_at": utc_now(),
            "engine": engine,
            "source": source,
            "progress_pct": 0.0,
            "favourite": 0,
            "submitted_by": submitted_by,
            "request_key": request_key,
            "retry_of": retry_of,
            **param_columns(params),
        }
        with self._write() as conn:
            names = ", ".join(row)
            conn.execute(
                f"INSERT OR IGNORE INTO runs ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
        return run_id

    def apply_status(
        self,
        run_id: str,
        status: str,
        *,
        progress: dict[str, Any] | None = None,
        output: Any = None,
        delay_ms: int | None = None,
        execution_ms: int | None = None,
        error: Any = None,
    ) -> bool:
        """Apply a status poll's answer; returns whether the run changed.

        Applying the same answer twice changes nothing, and a finished run never moves back: late or repeated
        polls after the end are ignored. A COMPLETED answer whose output is an error is recorded as a failure.
        """
        rank = status_rank(status)
        if status == JobStatus.COMPLETED and isinstance(output, dict):
            status = output_status(output)
        with self._write() as conn:
            current = self._row(run_id)
            if current is None or status_rank(current["status"]) == FINAL_RANK or rank < status_rank(current["status"]):
                return False
            columns: dict[str, Any] = {"status": status}
            if delay_ms is not None:
                columns["delay_ms"] = delay_ms
            if execution_ms is not None:
                columns["execution_ms"] = execution_ms
            if status == JobStatus.IN_PROGRESS and current["status"] != JobStatus.IN_PROGRESS:
                columns["started_at"] = utc_now()
            if progress:
                columns.update(progress_pct=progress.get("pct"), progress_stage=progress.get("stage"))
                self._progress_event(conn, run_id, progress)
            if rank == FINAL_RANK:
                columns.update(self._final_columns(status, output, error))
            if rank == FINAL_RANK:
                columns["cost_usd"] = run_price({**current, **columns}, self.prices)
            changes = {name: value for name, value in columns.items() if current.get(name) != value}
            if changes:
                self._update(conn, run_id, {**changes, "updated_at": utc_now()})
        return bool(changes)

    def _price(self, conn: sqlite3.Connection, run_id: str) -> None:
        """Set a finished run's cost from its GPU, engine and times as they now stand."""
        run = self._row(run_id)
        if run is not None and run.get("finished_at"):
            cost = run_price(run, self.prices)
            if cost != run.get("cost_usd"):
                self._update(conn, run_id, {"cost_usd": cost})

    def record_parts(self, run_id: str, parts: str, **columns: Any) -> bool:
        """Set a split run's parts (records.stored_parts) and what its plan says of the run (`status`, `error_*`,
        `finished_at`), pricing it as its parts' sum once it has ended (records.run_price); returns whether the
        row changed. catalog.sync calls it with the bucket's split.json or metadata.json (issue 30)."""
        with self._write() as conn:
            current = self._row(run_id)
            if current is None:
                return False
            wanted = {**columns, "parts": parts}
            merged = {**current, **wanted}
            if merged.get("finished_at"):
                wanted["cost_usd"] = run_price(merged, self.prices)
            changes = {name: value for name, value in wanted.items() if current.get(name) != value}
            if changes:
                self._update(conn, run_id, {**changes, "updated_at": utc_now()})
        return bool(changes)

    def reopen(self, run_id: str) -> bool:
        """Put a failed or timed-out run back in the queue under its own id, as the local endpoint's /retry
        does with the job: its outcome is cleared, its params and curation stay. False when it did not fail."""
        failures = tuple(sorted(JobStatus.FAILURES))
        with self._write() as conn:
            current = self._row(run_id)
            if current is None or current["status"] not in failures:
                return False
            cleared = dict.fromkeys(("error_code", "error_message", "finished_at", "started_at", "progress_stage"))
            self._update(
                conn,
                run_id,
                {
                    **cleared,
                    "status": JobStatus.IN_QUEUE,
                    "progress_pct": 0.0,
                    "retries": (current.get("retries") or 0) + 1,
                    "updated_at": utc_now(),
                },
            )
        return True

    def retried_as(self, run_id: str) -> list[str]:
        """The runs that resubmitted this one (Retry on RunPod), oldest first: its card says "Retried as …"."""
        rows = self.conn.execute("SELECT run_id FROM runs WHERE retry_of = ? ORDER BY created_at", (run_id,)).fetchall()
        return [row[0] for row in rows]

    def recently_finished(self, endpoint_id: str | None, since: str, limit: int = 5) -> list[dict[str, Any]]:
        """Runs (and batches, not their items) that ended at or after `since`, newest first: Live's "Just
        finished", read from here so that a reload, another tab or another user's session sees the same list."""
        sql = "SELECT * FROM runs WHERE finished_at >= ? AND item_id IS NULL"
        args: list[Any] = [since]
        if endpoint_id:
            sql += " AND endpoint_id = ?"
            args.append(endpoint_id)
        rows = self._rows(sql + " ORDER BY finished_at DESC LIMIT ?", [*args, limit])
        return [self._decoded(row) for row in rows]

    @staticmethod
    def _final_columns(status: str, output: Any, error: Any) -> dict[str, Any]:
        columns: dict[str, Any] = {"finished_at": utc_now()}
        if isinstance(output, dict):
            columns.update(result_columns(output))
        if status == JobStatus.COMPLETED:
            columns.update(progress_pct=100.0, progress_stage="completed")
        if isinstance(error, dict) and "error_code" not in columns:
            columns.update(error_code=error.get("code"), error_message=error.get("message"))
        elif isinstance(error, str) and "error_message" not in columns:
            columns["error_message"] = error
        return columns

    def attach_result(self, job_id: str, output: dict[str, Any]) -> list[str]:
        """Record a finished job's output; a batch's items become runs of their own. Returns the run ids.

        The batch itself stays as their container: it carries the job's status and queue and execution times,
        for the Live page and latency figures, but search, facets and totals count its items instead.
        """
        container = run_id_for(job_id)
        items = output.get("items") if isinstance(output.get("items"), list) else None
        if items is None:
            self.apply_status(container, output_status(output), output=output, error=output.get("error"))
            return [container]
        parent = self.get(container) or {}
        ids: list[str] = []
        for item in items:
            item_id = item.get("item_id") or f"item-{len(ids):03d}"
            run_id = self.record_submission(
                job_id,
                item.get("params") or {},
                endpoint_id=parent.get("endpoint_id") or "",
                status=JobStatus.IN_PROGRESS,
                created_at=parent.get("created_at"),
                item_id=item_id,
            )
            self.apply_status(run_id, output_status(item), output=item, error=item.get("error"))
            ids.append(run_id)
        summary = {key: value for key, value in output.items() if key != "items"}
        self.apply_status(container, output_status(summary), output=summary, error=output.get("error"))
        with self._write() as conn:
            self._update(conn, container, {"batch_items": len(ids)})
        return ids

    @staticmethod
    def _progress_event(conn: sqlite3.Connection, run_id: str, payload: dict[str, Any]) -> None:
        gpu = gpu_columns(payload.get("gpu"))
        if gpu.get("gpu_name"):  # the worker names its GPU on every payload: a run cancelled on RunPod (no result)
            # is still priced from it when it ends (core.prices.run_cost); a result's own GPU replaces it.
            conn.execute(
                "UPDATE runs SET gpu_name = ?, gpu_count = ? WHERE run_id = ? AND gpu_name IS NULL",
                (gpu["gpu_name"], gpu["gpu_count"], run_id),
            )
        last = conn.execute(
            "SELECT stage, pct FROM progress_events WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
        ).fetchone()
        if last and last[0] == payload.get("stage") and (last[1] or 0) >= (payload.get("pct") or 0):
            return
        conn.execute(
            "INSERT INTO progress_events (run_id, at, stage, pct, payload) VALUES (?, ?, ?, ?, ?)",
            (run_id, utc_now(), payload.get("stage"), payload.get("pct"), json.dumps(payload)),
        )
        conn.execute(
            "DELETE FROM progress_events WHERE run_id = ? AND id NOT IN "
            "(SELECT id FROM progress_events WHERE run_id = ? ORDER BY id DESC LIMIT ?)",
            (run_id, run_id, PROGRESS_EVENTS_KEPT),
        )

    def record_progress(self, run_id: str, payload: dict[str, Any]) -> bool:
        """Keep a progress payload (`{stage, pct, details}`) as an event and as the run's current progress.

        Repeats of the same stage and percentage make no new event; a finished or unknown run is left alone.
        Returns whether the payload was taken.
        """
        with self._write() as conn:
            current = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if current is None or status_rank(current[0]) == FINAL_RANK:
                return False
            self._progress_event(conn, run_id, payload)
            progress = {"progress_pct": payload.get("pct"), "progress_stage": payload.get("stage")}
            self._update(conn, run_id, {**progress, "updated_at": utc_now()})
        return True

    def progress_events(self, run_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The latest progress payloads of a run, oldest first."""
        rows = self.conn.execute(
            "SELECT at, payload FROM progress_events WHERE run_id = ? ORDER BY id DESC LIMIT ?", (run_id, limit)
        ).fetchall()
        return [{"at": at, **json.loads(payload)} for at, payload in reversed(rows)]

    @staticmethod
    def _decoded(row: dict[str, Any]) -> dict[str, Any]:
        for name in ("params", "timings", "warnings"):
            row[name] = json.loads(row[name]) if row.get(name) else ({} if name != "warnings" else [])
        row["tag_list"] = [t for t in (row.get("tags") or "").split(",") if t]
        return row

    def get(self, run_id: str) -> dict[str, Any] | None:
        """One run, with params, timings and warnings decoded and its tags as `tag_list`."""
        row = self._row(run_id)
        return self._decoded(row) if row else None

    def search(
        self, query: str = "", *, sort: str = "newest", page: int = 1, per_page: int = 24, **filters: Any
    ) -> SearchResult:
        """Full-text search with filters (column=value or [values], created_from/to, tag) and facet counts."""
        return search(self.conn, query, Filters.of(**filters), sort=sort, page=page, per_page=per_page)

    def cost_total(self, query: str = "", **filters: Any) -> CostTotal:
        """What every run matching a search (the same query and filters as `search`) cost together."""
        return cost_total(self.conn, query, Filters.of(**filters))

    def unfinished(self, endpoint_id: str | None = None) -> list[dict[str, Any]]:
        """Runs still queued or running, oldest first: what the Live page follows."""
        sql = "SELECT * FROM runs WHERE status IN (?, ?)"
        args: list[Any] = [JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS]
        if endpoint_id:
            sql += " AND endpoint_id = ?"
            args.append(endpoint_id)
        return [self._decoded(row) for row in self._rows(sql + " ORDER BY created_at", args)]

    def curate(
        self,
        run_id: str,
        *,
        tags: list[str] | None = None,
        favourite: bool | None = None,
        note: str | None = None,
        store: Store | None = None,
    ) -> dict[str, Any] | None:
        """Change a run's tags, favourite and/or note (None leaves one as it is); return the run, or None when it
        no longer exists (another session may have deleted it).

        Each field that changes gets the time of the change (`tags_at`…). With a store, the run's curation.json is
        written through (push_curation), so a catalogue rebuilt from the bucket, or another dashboard's, gets it.
        A field saved unchanged keeps its old time: saving a form must not make a stale value win over a newer
        one another dashboard wrote.
        """
        now = utc_now()
        wanted: dict[str, Any] = {}
        cleaned = clean_tags(tags) if tags is not None else None
        if note is not None:
            note = note.strip()
        # The bucket's file must be able to hold what the row will: its limits are checked before the row changes.
        bucket.check_curation(tags=cleaned, note=note)
        if cleaned is not None:
            wanted["tags"] = ",".join(cleaned)
        if favourite is not None:
            wanted["favourite"] = int(favourite)
        if note is not None:
            wanted["note"] = note
        with self._write() as conn:
            current = self._row(run_id)
            if current is None:
                return None
            changed = [name for name, value in wanted.items() if (current.get(name) or type(value)()) != value]
            if changed:
                columns = {name: wanted[name] for name in changed} | {f"{name}_at": now for name in changed}
                self._update(conn, run_id, {**columns, "updated_at": now})
        if store is not None:
            self.push_curation(run_id, store, edited=changed)
        return self.get(run_id)

    def push_curation(self, run_id: str, store: Store, *, edited: Collection[str] = ()) -> str | None:
        """Write the run's curation to `<run folder>/curation.json`, merged with what the file already holds.

        Per field the newer change wins, on both sides: a field another dashboard changed later than this
        catalogue is taken into the row rather than overwritten. The fields in `edited` were just changed here by
        a person, who saw the value they replaced: they win, with a time just after the file's when the file's is
        later (a fast clock elsewhere, or a time from the future clamped to now plus bucket.CLOCK_SKEW), so an
        edit never silently reverts. Two dashboards writing the same file in the same instant can still lose one
        change (a store has no compare-and-swap); a later save of either restores it. A file the store fails to
        hand over is never overwritten (bucket.current_curation). A store that refuses the read or the write is a
        JobError saying the change is kept here but not in the bucket. Returns the key, or None when the run no
        longer exists.
        """
        run = self._row(run_id)
        if run is None:
            return None
        key = f"{bucket.run_folder(run)}/{bucket.CURATION}"
        try:
            existing = bucket.current_curation(store, key)
            theirs = bucket.file_stamps(existing) if existing is not None else {}
            mine = bucket.stamped(run)
            for name in [name for name in edited if name in theirs and name in mine]:
                after = bucket.stamp_time(theirs.pop(name)[1]) + dt.timedelta(milliseconds=1)
                if after > bucket.stamp_time(mine[name][1]):
                    theirs[name] = (mine[name][0], utc_now(after))
            if self.apply_curation(run_id, theirs):
                run = self._row(run_id) or run
            return bucket.write_curation(store, run, bucket.newest(bucket.stamped(run), theirs))
        except JobError as error:
            raise JobError(
                error.code, f"saved in the catalogue but not in the bucket (save again to retry): {error.message}"
            ) from error

    def apply_curation(self, run_id: str, stamps: dict[str, tuple[Any, str]]) -> bool:
        """Take each curated field `{name: (value, at)}` whose time is newer than the row's; returns whether any
        was taken. A run with no time for a field (never curated, or curated before times were kept) takes it."""
        with self._write() as conn:
            current = self._row(run_id)
            if current is None:
                return False
            columns: dict[str, Any] = {}
            for name, (value, at) in stamps.items():
                if bucket.stamp_time(current.get(f"{name}_at")) >= bucket.stamp_time(at):
                    continue
                if name == "tags":
                    value = ",".join(clean_tags(value))
                elif name == "favourite":
                    value = int(value)
                columns.update({name: value, f"{name}_at": at})
            if columns:
                self._update(conn, run_id, {**columns, "updated_at": utc_now()})
        return bool(columns)

    def set_tags(self, run_id: str, tags: list[str], store: Store | None = None) -> bool:
        """Replace a run's tags (see clean_tags); with a store, written through to the bucket (curate).

        Returns whether the run exists (another session may have deleted it).
        """
        return self.curate(run_id, tags=tags, store=store) is not None

    def set_favourite(self, run_id: str, favourite: bool, store: Store | None = None) -> bool:
        """Mark or unmark a run as a favourite; returns whether the run exists."""
        return self.curate(run_id, favourite=favourite, store=store) is not None

    def set_note(self, run_id: str, note: str, store: Store | None = None) -> bool:
        """Set a run's free-text note (searchable); returns whether the run exists."""
        return self.curate(run_id, note=note, store=store) is not None

    def delete(self, run_id: str, store: Store | None = None, *, deleted_by: str | None = None) -> None:
        """Forget a run; with a store, also delete its files from it and leave a tombstone (`deleted.json`).

        The files are the video, thumbnail and metadata the row names, and everything else directly in the run's
        folder (request, curation, and a metadata.json the row never learnt of: a failed run's). The metadata
        goes last, then the tombstone, and the row only after both: if the store fails part way (JobError
        E_UPLOAD), the run is still listed and deleting again finishes the job. The tombstone keeps every later
        sync, here or in another catalogue on the bucket, from bringing the run back (a job still running may
        write its metadata.json after this). Without a store only the row goes, and a sync finds it again.
        """
        run = self._row(run_id)
        if run is None:
            return
        if store is not None:
            folder = bucket.run_folder(run)
            try:
                for key in (run["video_key"], run["thumb_key"]):
                    if key:
                        store.delete(key)
                listed = [key for key in store.list(folder + "/") if bucket.folder_of(key) == folder]
                named = [*listed, run["metadata_key"], f"{folder}/metadata.json"]
                gone = {run["video_key"], run["thumb_key"], f"{folder}/{bucket.TOMBSTONE}"}
                keys = [key for key in dict.fromkeys(named) if key and key not in gone]
                keys.sort(key=lambda key: key.endswith("/metadata.json"))  # metadata last: until then, sync finds it
                for key in keys:
                    store.delete(key)
            except JobError:
                raise
            except Exception as error:
                message = f"could not delete {run_id}'s files from the store: {error}"
                raise JobError(ErrorCode.UPLOAD, message) from error
            try:
                bucket.write_tombstone(store, run, deleted_by)
            except JobError as error:
                # A folder the key rule refuses (an item id with a space, from before the rule) cannot hold a
                # tombstone, and needs none: sync refuses that run's metadata.json for the same rule.
                if error.code != ErrorCode.INPUT_VALIDATION:
                    raise
        self.forget(run_id)

    def forget(self, run_id: str) -> bool:
        """Remove a run's row and progress events, leaving the store alone; returns whether it was there."""
        with self._write() as conn:
            conn.execute("DELETE FROM progress_events WHERE run_id = ?", (run_id,))
            return conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount > 0

    def record_request(self, request: bucket.RequestFile, key: str, *, restore: bool) -> str:
        """Take in a request file from the bucket; returns `restored`, `updated` or `unchanged`.

        A run the catalogue lacks is recorded as queued when `restore` (its folder has no metadata.json yet: the
        job may still be running, and Live will ask the endpoint). A run it has learns who submitted it, which
        metadata.json does not say, once. A request lying anywhere but in the folder its params name, and the
        run's own, is InvalidRecord: a copy under another prefix cannot restore or relabel a run.
        """
        run_id = bucket.run_id_of(request)
        current = self._row(run_id)
        if bucket.folder_of(key) != bucket.request_folder(request):
            raise InvalidRecord(
                f"job_id: a request for {run_id!r} belongs in {bucket.request_folder(request)}/, where its params put "
                f"the job, not in {bucket.folder_of(key)}/"
            )
        if current is not None:
            self._check_folder(current, key)
        if current is None:
            if not restore:
                return "unchanged"
            self.record_submission(
                request.job_id,
                request.params,
                endpoint_id=request.endpoint_id,
                created_at=request.submitted_at,
                submitted_by=request.submitted_by,
                request_key=key,
                source="request",
            )
            return "restored"
        columns: dict[str, Any] = {"request_key": key}
        if current.get("request_key") is None and current.get("submitted_by") is None and request.submitted_by:
            # Only a run that never took a request in learns who sent it (a sync from metadata.json, which does
            # not say). A run recorded at submit knows, even when it is no one (a shared password): a request file
            # rewritten in the bucket later cannot name someone else.
            columns["submitted_by"] = request.submitted_by
        changes = {name: value for name, value in columns.items() if current.get(name) != value}
        if not changes:
            return "unchanged"
        with self._write() as conn:
            self._update(conn, run_id, changes)
        return "updated"

    @staticmethod
    def _check_folder(run: dict[str, Any], key: str) -> None:
        """A run lives in one folder, the first the catalogue knew for it (bucket.run_folder: where its
        metadata.json is, or where the params it was sent with put it): a file about the same run in another
        folder (`evil/<job_id>/metadata.json`) is InvalidRecord, so it cannot repoint the run's video elsewhere."""
        home, folder = bucket.run_folder(run), bucket.folder_of(key)
        if folder != home:
            raise InvalidRecord(
                f"job_id: run {run['run_id']!r} lives in {home}/; this copy in {folder}/ is not the same run's"
            )

    def request_keys(self) -> set[str]:
        """The request.json keys the catalogue already took in (at submit or by a sync)."""
        return {key for (key,) in self.conn.execute("SELECT request_key FROM runs WHERE request_key IS NOT NULL")}

    def upsert_metadata(self, metadata: dict[str, Any], metadata_key: str) -> str:
        """Insert or refresh a run from its metadata.json; returns `added`, `updated` or `unchanged`.

        The file is the source of truth: it replaces what polling recorded (a run closed as lost becomes the
        success its file reports), and a newer file replaces an older one. Tags, favourite and note are kept.
        """
        row = metadata_row(metadata, metadata_key)
        with self._write() as conn:
            current = self._row(row["run_id"])
            if current is not None:
                self._check_folder(current, metadata_key)
            existing = (current["source"], current["finished_at"]) if current is not None else None
            if existing is None:
                names = ", ".join(row)
                conn.execute(
                    f"INSERT INTO runs ({names}, favourite) VALUES ({', '.join('?' * len(row))}, 0)",
                    list(row.values()),
                )
                self._price(conn, row["run_id"])
                return "added"
            source, finished_at = existing
            if source == "sync" and (finished_at or "") >= (row["finished_at"] or ""):
                return "unchanged"
            self._update(conn, row["run_id"], {k: v for k, v in row.items() if v is not None and k != "run_id"})
            self._price(conn, row["run_id"])
            return "updated"

    def reindex(self) -> None:
        """Rebuild the full-text index and facet combinations from the runs (after a VACUUM or a hand edit)."""
        with self._write():
            rebuild_indexes(self.db)

    def synced_metadata_keys(self) -> set[str]:
        """The metadata.json keys whose contents the catalogue already holds."""
        return {key for (key,) in self.conn.execute("SELECT metadata_key FROM runs WHERE source = 'sync'")}

    def urls(self, run: dict[str, Any], store: Store) -> dict[str, str]:
        """Fresh URLs (presigned for S3) for a run's artifacts: keys are stored, never expiring URLs."""
        keys = {"video": run.get("video_key"), "thumbnail": run.get("thumb_key"), "metadata": run.get("metadata_key")}
        return {name: store.url(key) for name, key in keys.items() if key}

    def record_health_sample(self, endpoint_id: str, health: dict[str, Any], at: str | None = None) -> None:
        """Store one /health answer, for the health page's charts."""
        jobs = health.get("jobs") or {}
        workers = health.get("workers") or {}
        idle = int(workers.get("idle") or 0)
        running = int(workers.get("running") or 0)
        other = sum(int(v or 0) for k, v in workers.items() if k not in ("idle", "running", "ready"))
        self.db.table("health_samples").insert(
            {
                "endpoint_id": endpoint_id,
                "at": at or utc_now(),
                "in_queue": jobs.get("inQueue", 0),
                "in_progress": jobs.get("inProgress", 0),
                "completed": jobs.get("completed", 0),
                "failed": jobs.get("failed", 0),
                "retried": jobs.get("retried", 0),
                "workers_idle": idle,
                "workers_running": running,
                "workers_other": other,
                "payload": json.dumps(health),
            }
        )

    def health_samples(self, endpoint_id: str, since: str | None = None) -> list[dict[str, Any]]:
        """Stored health samples of an endpoint, oldest first."""
        sql = "SELECT * FROM health_samples WHERE endpoint_id = ?"
        args: list[Any] = [endpoint_id]
        if since:
            sql += " AND at >= ?"
            args.append(since)
        return list(self.db.query(sql + " ORDER BY at", args))

    def latency_stats(self, endpoint_id: str | None = None, since: str | None = None) -> dict[str, float | None]:
        """p50/p95 of queue delay, execution time and total latency of finished runs, in ms."""
        sql, args = _scoped(
            "SELECT delay_ms, execution_ms FROM runs WHERE finished_at IS NOT NULL AND execution_ms IS NOT NULL",
            endpoint_id,
            since,
        )
        rows = self.conn.execute(sql, args).fetchall()

        def quantile(values: list[float], q: float) -> float | None:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        delays = [float(d or 0) for d, _ in rows]
        executions = [float(e or 0) for _, e in rows]
        totals = [d + e for d, e in zip(delays, executions, strict=True)]
        return {
            "count": float(len(rows)),
            "delay_p50": quantile(delays, 0.5),
            "delay_p95": quantile(delays, 0.95),
            "execution_p50": quantile(executions, 0.5),
            "execution_p95": quantile(executions, 0.95),
            "total_p50": quantile(totals, 0.5),
            "total_p95": quantile(totals, 0.95),
        }

    def failure_counts_by_code(self, endpoint_id: str | None = None, since: str | None = None) -> dict[str, int]:
        """How many finished runs failed with each error code (a cancel is the user's stop, not a failure)."""
        failures = ", ".join(f"'{status}'" for status in sorted(JobStatus.FAILURES))
        sql, args = _scoped(
            f"SELECT error_code, COUNT(*) FROM runs WHERE error_code IS NOT NULL AND status IN ({failures}) "
            f"AND {COUNTED}",
            endpoint_id,
            since,
        )
        return dict(self.conn.execute(sql + " GROUP BY error_code ORDER BY 2 DESC", args).fetchall())

    def stats(self) -> dict[str, Any]:
        """Totals: runs, runs by status and by engine, favourites, seconds of video made, dollars spent."""
        by_status = dict(self.conn.execute(f"SELECT status, COUNT(*) FROM runs WHERE {COUNTED} GROUP BY status"))
        by_engine = dict(self.conn.execute(f"SELECT engine, COUNT(*) FROM runs WHERE {COUNTED} GROUP BY engine"))
        total, favourites, video_s, spent = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(favourite), 0), COALESCE(SUM(video_duration_s), 0), "
            f"COALESCE(SUM(cost_usd), 0) FROM runs WHERE {COUNTED}"
        ).fetchone()
        return {
            "runs": total,
            "by_status": by_status,
            "by_engine": by_engine,
            "favourites": favourites,
            "video_seconds": round(video_s, 1),
            "cost_usd": round(spent, 4),
        }
