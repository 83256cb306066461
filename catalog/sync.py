"""Rebuilding the catalogue from the bucket: every `metadata.json` the workers published is a run, and the
catalogue's own files beside them (catalog/bucket.py) bring back curation, unfinished jobs and deletions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from catalog import bucket
from catalog.catalog import Catalog
from catalog.documents import MAX_BYTES, MAX_DEPTH, MISSING, read_json, validation_reason  # noqa: F401
from catalog.records import InvalidRecord, check_home, part_job_ids, run_id_for, split_parts, stored_parts
from core.contract import SCHEMA_VERSION, ErrorCode, JobError, JobMetadata, JobStatus, SplitPart, SplitPlan, utc_now
from core.store import Store

log = logging.getLogger("studio.catalog.sync")
READERS = 8
"""Metadata files fetched at once from S3, where a rebuild across a network waits on round trips (bench_sync.py:
with 20 ms per GET, 8 readers are 6.9× one). A local folder has no round trips to overlap: there the readers only
compete with the catalogue's writes for the interpreter (0.7× one reader), so it is read by one."""
BATCH = 256
"""Files read ahead of the catalogue at most: reading outpaces writing, and a rebuild of 100 000 runs must not hold
them all in memory."""


@dataclass
class SyncReport:
    """What a sync did: runs added and updated, metadata files skipped with the reason, and what the catalogue's
    own files in the bucket restored: curation taken, unfinished runs found by their request, runs kept deleted."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    curated: int = 0
    restored: int = 0
    deleted: int = 0
    folded: int = 0
    """Rows of split runs' parts (taken in as runs of their own by older code, or from an endpoint's listing)
    removed: the split run stands for them, its parts listed inside it."""

    def summary(self) -> str:
        """One line for people."""
        line = f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.skipped)} skipped"
        extras = [
            (self.curated, "curated"),
            (self.restored, "unfinished restored"),
            (self.deleted, "kept deleted"),
            (self.folded, "parts folded into their split run"),
        ]
        return line + "".join(f", {count} {what}" for count, what in extras if count)

    def skip(self, key: str, reason: str) -> None:
        """Note a file left out, and why."""
        self.skipped.append((key, reason))
        log.warning("skipped %s: %s", key, reason)


def _read(store: Store, key: str) -> dict[str, Any] | str:
    """The metadata as a dict, or the reason it cannot be used.

    Every check that can refuse a file happens here or in RunRecord, never in the middle of a write: the bytes are
    bounded, UTF-8, JSON, shallow (documents.read_json), the contract's JobMetadata, of a schema this code knows.
    """
    data = read_json(store, key)
    if isinstance(data, str):
        return data
    if not isinstance(data, dict) or "schema_version" not in data or "job_id" not in data:
        return "not an InfiniteTalk Studio metadata file (no schema_version / job_id)"
    if not isinstance(data["schema_version"], int) or data["schema_version"] > SCHEMA_VERSION:
        shown = repr(data["schema_version"])[:40]
        return f"schema_version {shown} is newer than this catalogue understands ({SCHEMA_VERSION})"
    try:
        return JobMetadata.model_validate(data).model_dump(mode="json")
    except ValidationError as error:
        return validation_reason(error, "metadata")


SPLIT_PLAN = "split.json"
PARTS = "parts"
"""A split run's folder holds its plan (`split.json`) and, until the join, its parts' own folders under `parts/`
(docs/split.md): `{prefix}/{run_id}/parts/{job_id}/metadata.json` is a part of that run, never a run of its own."""


@dataclass
class _Listing:
    """The store's keys that a sync reads, by kind, and the folders that hold each kind."""

    metadata: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in bucket.FILES})
    plans: list[str] = field(default_factory=list)
    parts: int = 0
    """Files left out because they are a split run's parts'."""

    def folders(self, kind: str) -> set[str]:
        keys = self.metadata if kind == "metadata.json" else self.files[kind]
        return {bucket.folder_of(key) for key in keys}

    def leave_out_parts(self) -> None:
        """Drop every file lying under a split run's `parts/` (a folder with a split.json, or a deleted run's):
        neither a sync nor a restore of unfinished jobs takes a part in as a run, at any moment of the run."""
        runs = {bucket.folder_of(key) for key in self.plans} | self.folders(bucket.TOMBSTONE)

        def part(key: str) -> bool:
            marker = f"/{PARTS}/"
            at = key.find(marker)
            while at > 0:
                if key[:at] in runs:
                    return True
                at = key.find(marker, at + 1)
            return False

        kept = [key for key in self.metadata if not part(key)]
        files = {name: [key for key in keys if not part(key)] for name, keys in self.files.items()}
        self.parts = len(self.metadata) - len(kept) + sum(len(v) - len(files[k]) for k, v in self.files.items())
        self.plans = [key for key in self.plans if not part(key)]
        self.metadata, self.files = kept, files


def _list(store: Store, prefix: str) -> _Listing:
    """Every metadata, curation, request and tombstone key under the prefix, in one listing; a store that cannot be
    listed is a JobError naming it."""
    scope = prefix.strip("/") + "/" if prefix.strip("/") else ""
    listing = _Listing()
    try:
        for key in store.list(scope):
            name = key.rsplit("/", 1)[-1]
            if name == "metadata.json" and "/" in key:
                listing.metadata.append(key)
            elif name in listing.files and "/" in key:
                listing.files[name].append(key)
            elif name == SPLIT_PLAN and "/" in key:
                listing.plans.append(key)
    except JobError:
        raise
    except Exception as error:
        where = f"under {scope!r}" if scope else "at all"
        raise JobError(ErrorCode.DOWNLOAD_FAILED, f"could not list the store {where}: {error}") from error
    listing.leave_out_parts()
    return listing


def _documents(pool: ThreadPoolExecutor, store: Store, keys: list[str]) -> Iterator[tuple[str, Any]]:
    """(key, model or reason) for each of the catalogue's own files, read by the pool, BATCH at a time."""
    yield from _documents_with(pool, store, keys, bucket.read)


@dataclass
class _Deleted:
    """What the bucket's tombstones cover: their folders, and the ids of the runs deleted (with the folder of
    each run's tombstone). A tombstone covers its run id under every prefix: a copy of a deleted run's files
    elsewhere (`evil/<job_id>/metadata.json`) does not bring it back."""

    folders: set[str] = field(default_factory=set)
    runs: dict[str, str] = field(default_factory=dict)

    def __contains__(self, folder: str) -> bool:
        return folder in self.folders

    def reason(self, run_id: str) -> str | None:
        """Why a file about `run_id` is not taken in, when a tombstone covers the run."""
        folder = self.runs.get(run_id)
        if folder is None:
            return None
        return f"run {run_id!r} was deleted ({folder}/{bucket.TOMBSTONE}); a copy is not brought back"


def _tombstones(
    catalog: Catalog, pool: ThreadPoolExecutor, store: Store, listing: _Listing, report: SyncReport
) -> _Deleted:
    """The folders and run ids of deleted runs; each such run still in the catalogue is removed from it.

    A run lives in the first folder the catalogue knew for it: a tombstone elsewhere naming its ids is skipped
    with a warning, and cannot make it disappear. A tombstone for a run the catalogue does not hold covers that
    run id, whatever folder a copy of its files lies in.
    """
    deleted = _Deleted()
    for key, document in _documents(pool, store, listing.files[bucket.TOMBSTONE]):
        if isinstance(document, str):
            report.skip(key, document)
            continue
        folder, run_id = bucket.folder_of(key), bucket.run_id_of(document)
        run = catalog.get(run_id)
        if run is not None and bucket.run_folder(run) != folder:
            report.skip(key, f"job_id: run {run_id!r} lives in {bucket.run_folder(run)}/; this tombstone is not its")
            continue
        deleted.folders.add(folder)
        deleted.runs.setdefault(run_id, folder)
        if run is not None:
            # Counted only when a run goes: History's pick_up reruns the page when a sync changed something, and a
            # tombstone counted on every sync made that an endless rerun after any delete (issue 29).
            catalog.forget(run_id)
            report.deleted += 1
    return deleted


def _requests(
    catalog: Catalog,
    pool: ThreadPoolExecutor,
    store: Store,
    listing: _Listing,
    report: SyncReport,
    deleted: _Deleted,
    full: bool,
) -> None:
    """Take in request files not seen before: a job with no metadata.json yet becomes a queued run (Live asks the
    endpoint about it), and every run learns who submitted it."""
    known = set() if full else catalog.request_keys()
    finished = listing.folders("metadata.json")
    keys = [k for k in listing.files[bucket.REQUEST] if k not in known and bucket.folder_of(k) not in deleted]
    for key, document in _documents(pool, store, keys):
        if isinstance(document, str):
            report.skip(key, document)
            continue
        gone = deleted.reason(bucket.run_id_of(document))
        if gone:
            report.skip(key, gone)
            continue
        try:
            outcome = catalog.record_request(document, key, restore=bucket.folder_of(key) not in finished)
        except InvalidRecord as error:
            report.skip(key, str(error))
            continue
        if outcome == "restored":
            report.restored += 1


def _curations(
    catalog: Catalog, pool: ThreadPoolExecutor, store: Store, listing: _Listing, report: SyncReport, deleted: _Deleted
) -> None:
    """Take each curated field whose time in the bucket is newer than the catalogue's.

    Curation files change, so each is read at every sync (only curated runs have one). A file for a run the
    catalogue does not hold yet waits for the sync that brings the run.
    """
    keys = [k for k in listing.files[bucket.CURATION] if bucket.folder_of(k) not in deleted]
    for key, document in _documents(pool, store, keys):
        if isinstance(document, str):
            report.skip(key, document)
            continue
        run = catalog.get(bucket.run_id_of(document))
        if run is None:
            continue
        if bucket.run_folder(run) != bucket.folder_of(key):
            report.skip(key, f"job_id: run {run['run_id']!r} lives in {bucket.run_folder(run)}/; this file is not its")
            continue
        if catalog.apply_curation(run["run_id"], bucket.file_stamps(document)):
            report.curated += 1


def _read_plan(store: Store, key: str) -> SplitPlan | str:
    """A split run's split.json as the contract's SplitPlan, or why it cannot be used: read as hostile input
    (bounded, JSON, shallow), and lying in the folder of the run it names (`…/{run_id}/split.json`)."""
    data = read_json(store, key)
    if isinstance(data, str):
        return data
    try:
        plan = SplitPlan.model_validate(data)
        check_home(plan.run_id, None, key)
    except ValidationError as error:
        return validation_reason(error, "split plan")
    except InvalidRecord as error:
        return str(error)
    if plan.plan_key != key:
        return f"prefix: the plan of {plan.run_id!r} names {plan.folder}/ as its folder, not {bucket.folder_of(key)}/"
    return plan


def _fold(catalog: Catalog, run_id: str, parts: list[SplitPart]) -> int:
    """Remove the rows of a split run's parts' jobs (every attempt's), so History lists the run once; the run's
    own row keeps the parts in its `parts` column. Returns how many rows went."""
    jobs = [job for job in part_job_ids(parts) if job != run_id]
    if not jobs:
        return 0
    marks = ", ".join("?" * len(jobs))
    rows = catalog.conn.execute(f"SELECT run_id FROM runs WHERE job_id IN ({marks}) AND run_id != ?", [*jobs, run_id])
    return sum(catalog.forget(row_id) for (row_id,) in rows.fetchall())


def _plan_columns(plan: SplitPlan, run: dict[str, Any]) -> dict[str, Any]:
    """What a split run's plan says of its row beyond its parts: failed (naming the failed parts, as
    client.fanout says it) or cancelled once every part has ended, unless the row says so already; in progress
    while parts run."""
    failed = [p.index + 1 for p in plan.parts if p.state in JobStatus.FINAL and p.state != JobStatus.COMPLETED]
    if run["status"] == {"failed": JobStatus.FAILED, "cancelled": JobStatus.CANCELLED}.get(plan.state):
        return {}  # already so: what the driver that ended it wrote (its own words for the failure) stays
    if plan.state == "failed" and failed:
        names = ", ".join(str(index) for index in failed)
        return {
            "status": JobStatus.FAILED,
            "error_code": ErrorCode.GENERATION_RUNTIME,
            "error_message": f"part(s) {names} failed: retry them",
            "finished_at": run.get("finished_at") or utc_now(),
        }
    if plan.state == "cancelled":
        return {
            "status": JobStatus.CANCELLED,
            "error_code": ErrorCode.CANCELLED,
            "finished_at": run.get("finished_at") or utc_now(),
        }
    if plan.state == "running" and run["status"] == JobStatus.IN_QUEUE:
        return {"status": JobStatus.IN_PROGRESS}
    return {}


def _plans(
    catalog: Catalog, pool: ThreadPoolExecutor, store: Store, listing: _Listing, report: SyncReport, deleted: _Deleted
) -> None:
    """Bring split runs in from their split.json (docs/split.md), one run each with its parts listed inside it.

    A joined run is its metadata.json's (read by the metadata pass): its plan is only read again when its row
    lacks its parts (a catalogue from before runs.parts). An unjoined run's plan is read at every sync, as its
    parts change: a run the catalogue lacks is restored in progress, failed or cancelled as the plan says, a run
    retried from elsewhere is reopened, and every row its parts' jobs made is folded into it (_fold).
    """
    joined = listing.folders("metadata.json")
    wanted: list[str] = []
    for key in listing.plans:
        folder = bucket.folder_of(key)
        if folder in deleted:
            continue
        run = catalog.get(folder.rsplit("/", 1)[-1])
        if folder in joined and (run is None or run.get("parts")):
            continue
        wanted.append(key)
    for key, plan in _documents_with(pool, store, wanted, _read_plan):
        folder = bucket.folder_of(key)
        run_id = folder.rsplit("/", 1)[-1]
        if isinstance(plan, str):
            report.skip(key, plan)
            continue
        gone = deleted.reason(run_id)
        if gone:
            report.skip(key, gone)
            continue
        run = catalog.get(run_id)
        if run is not None and bucket.run_folder(run) != folder:
            report.skip(key, f"job_id: run {run_id!r} lives in {bucket.run_folder(run)}/; this plan is not its")
            continue
        if folder in joined:
            metadata = _read(store, f"{folder}/metadata.json")
            parts: list[Any] = (metadata.get("parts") or []) if isinstance(metadata, dict) else []
            if run is None or not parts:
                continue
            report.updated += catalog.record_parts(run_id, stored_parts(parts))
        else:
            restored = run is None
            if run is None:
                catalog.record_split(plan)
                report.restored += 1
                run = catalog.get(run_id)
                assert run is not None
            elif plan.state == "running" and run["status"] in JobStatus.FAILURES:
                # A failed part retried from elsewhere (`studio submit --resume … --retry-failed`).
                catalog.reopen(run_id)
                run = catalog.get(run_id) or run
            parts = plan.parts
            changed = catalog.record_parts(run_id, stored_parts(parts), **_plan_columns(plan, run))
            report.updated += changed and not restored
        report.folded += _fold(catalog, run_id, split_parts({"parts": stored_parts(parts)}))


def _documents_with(pool: ThreadPoolExecutor, store: Store, keys: list[str], reader: Any) -> Iterator[tuple[str, Any]]:
    """(key, what `reader` made of it) for each key, read by the pool, BATCH at a time."""
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        yield from zip(batch, pool.map(partial(reader, store), batch), strict=True)


def _readers(store: Store, readers: int | None) -> int:
    return readers or (READERS if store.kind == "s3" else 1)


def restore_unfinished(catalog: Catalog, store: Store, prefix: str = "") -> SyncReport:
    """Only what Live needs after a start on an empty disk: jobs sent but not finished, found by their request
    files (and deleted runs kept out). Cheaper than a sync: no metadata or curation file is read."""
    report = SyncReport()
    listing = _list(store, prefix)
    with ThreadPoolExecutor(_readers(store, None)) as pool:
        deleted = _tombstones(catalog, pool, store, listing, report)
        _plans(catalog, pool, store, listing, report, deleted)
        _requests(catalog, pool, store, listing, report, deleted, full=False)
    return report


def sync(
    catalog: Catalog, store: Store, prefix: str = "", *, full: bool = False, readers: int | None = None
) -> SyncReport:
    """Scan the store (or only `prefix`) for metadata.json files and upsert the runs that are missing or newer;
    then the catalogue's own files beside them (catalog/bucket.py): tombstones first, so a deleted run is never
    brought back and is removed here too, then request files (queued runs, who submitted), then curation.

    A store that cannot be listed raises JobError (E_DOWNLOAD_FAILED) before anything changes.
    A metadata file already taken in by an earlier sync is counted unchanged without being fetched again (the
    worker writes each file once, when its job ends), and so is a request file; `full=True` re-reads every file.
    A corrupt or foreign file is skipped with its reason and logged, before anything of it is written (see
    `_read`, RunRecord and bucket.read); it never stops the sync, and the runs beside it are synced. `readers`
    overrides how many files are fetched at once (default: READERS for S3, one for a local folder).
    """
    report = SyncReport()
    listing = _list(store, prefix)
    with ThreadPoolExecutor(_readers(store, readers)) as pool:
        deleted = _tombstones(catalog, pool, store, listing, report)
        known = set() if full else catalog.synced_metadata_keys()
        keys = []
        for key in listing.metadata:
            if bucket.folder_of(key) in deleted:
                continue
            if key in known:
                report.unchanged += 1
            else:
                keys.append(key)
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            for key, metadata in zip(batch, pool.map(partial(_read, store), batch), strict=True):
                if isinstance(metadata, str):
                    report.skip(key, metadata)
                    continue
                gone = deleted.reason(run_id_for(metadata["job_id"], metadata.get("item_id")))
                if gone:
                    report.skip(key, gone)
                    continue
                try:
                    outcome = catalog.upsert_metadata(metadata, key)
                except InvalidRecord as error:
                    report.skip(key, str(error))
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
                if metadata.get("parts"):
                    run_id = run_id_for(metadata["job_id"], metadata.get("item_id"))
                    report.folded += _fold(catalog, run_id, split_parts({"parts": stored_parts(metadata["parts"])}))
        _plans(catalog, pool, store, listing, report, deleted)
        _requests(catalog, pool, store, listing, report, deleted, full)
        _curations(catalog, pool, store, listing, report, deleted)
    return report


def settle(catalog: Catalog, store: Store, run: dict[str, Any]) -> str | None:
    """Close a run the endpoint no longer knows from its metadata.json, if the worker wrote one: RunPod keeps
    /run results for 30 minutes, the bucket keeps the file. Returns the run's status then, or None when there is
    no usable file (or the run was deleted meanwhile)."""
    folder = bucket.run_folder(run)
    if store.exists(f"{folder}/{bucket.TOMBSTONE}"):
        return None
    key = f"{folder}/metadata.json"
    metadata = _read(store, key)
    if isinstance(metadata, str):
        if metadata != MISSING:
            log.warning("cannot settle %s from %s: %s", run["run_id"], key, metadata)
        return None
    try:
        catalog.upsert_metadata(metadata, key)
    except InvalidRecord as error:
        log.warning("cannot settle %s from %s: %s", run["run_id"], key, error)
        return None
    settled = catalog.get(run["run_id"])
    return settled["status"] if settled else None
