"""Rebuilding the catalogue from the bucket: every `metadata.json` the workers published is a run."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from catalog.catalog import Catalog
from worker.contract import SCHEMA_VERSION, ErrorCode, JobError, JobMetadata
from worker.store import Store

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
    """What a sync did: runs added and updated, metadata files skipped with the reason."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {len(self.skipped)} skipped"


def _read(store: Store, key: str) -> dict[str, Any] | str:
    """The metadata as a dict, or the reason it cannot be used."""
    try:
        data = json.loads(store.get(key))
    except Exception as error:
        return f"unreadable: {type(error).__name__}: {error}"[:300]
    if not isinstance(data, dict) or "schema_version" not in data or "job_id" not in data:
        return "not an InfiniteTalk Studio metadata file (no schema_version / job_id)"
    if not isinstance(data["schema_version"], int) or data["schema_version"] > SCHEMA_VERSION:
        return f"schema_version {data['schema_version']!r} is newer than this catalogue understands ({SCHEMA_VERSION})"
    try:
        return JobMetadata.model_validate(data).model_dump(mode="json")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        return f"does not match the metadata schema: {where}: {first['msg']}"


def _metadata_keys(store: Store, prefix: str) -> list[str]:
    """Every metadata.json key under the prefix; a store that cannot be listed is a JobError naming it."""
    scope = prefix.strip("/") + "/" if prefix.strip("/") else ""
    try:
        return [key for key in store.list(scope) if key.endswith("/metadata.json")]
    except JobError:
        raise
    except Exception as error:
        where = f"under {scope!r}" if scope else "at all"
        raise JobError(ErrorCode.DOWNLOAD_FAILED, f"could not list the store {where}: {error}") from error


def sync(
    catalog: Catalog, store: Store, prefix: str = "", *, full: bool = False, readers: int | None = None
) -> SyncReport:
    """Scan the store (or only `prefix`) for metadata.json files and upsert the runs that are missing or newer.

    A store that cannot be listed raises JobError (E_DOWNLOAD_FAILED) before anything changes.
    A file already taken in by an earlier sync is counted unchanged without being fetched again (the worker
    writes each file once, when its job ends); `full=True` re-reads every file. A corrupt or foreign file is
    skipped with its reason and logged; it never stops the sync. `readers` overrides how many files are fetched at
    once (default: READERS for S3, one for a local folder).
    """
    report = SyncReport()
    known = set() if full else catalog.synced_metadata_keys()
    keys = []
    for key in _metadata_keys(store, prefix):
        if key in known:
            report.unchanged += 1
        else:
            keys.append(key)
    readers = readers or (READERS if store.kind == "s3" else 1)
    with ThreadPoolExecutor(readers) as pool:
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            for key, metadata in zip(batch, pool.map(partial(_read, store), batch), strict=True):
                if isinstance(metadata, str):
                    report.skipped.append((key, metadata))
                    log.warning("skipped %s: %s", key, metadata)
                    continue
                outcome = catalog.upsert_metadata(metadata, key)
                setattr(report, outcome, getattr(report, outcome) + 1)
    return report
