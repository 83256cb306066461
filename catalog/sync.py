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
from catalog.records import InvalidRecord
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
MAX_BYTES = 1024 * 1024
"""The largest metadata.json read: the worker's are a few KB (params are stored without inline media), so a
bigger object is not one of them, and a JSON bomb of many MB is refused before it is parsed. From a local folder
and from S3 at most this much (plus one byte) is read, whatever the object's size."""
MAX_DEPTH = 32
"""The deepest nesting of objects and lists a metadata file may have (the worker's reach 4). Deeper structures
broke pydantic's serializer at 255 levels and json at about 1000, and would reach History's parameter table."""


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


def _fetch(store: Store, key: str) -> bytes:
    """The object's first MAX_BYTES + 1 bytes: enough to tell that it is too big without holding all of it."""
    path = getattr(store, "path", None)
    client = getattr(store, "client", None)
    if callable(path):  # a local folder: read no further than the limit
        with open(path(key), "rb") as file:
            return file.read(MAX_BYTES + 1)
    if client is not None and hasattr(client, "get_object"):  # S3: a ranged GET
        answer = client.get_object(Bucket=store.bucket, Key=key, Range=f"bytes=0-{MAX_BYTES}")  # type: ignore[attr-defined]
        return answer["Body"].read(MAX_BYTES + 1)
    return store.get(key)


def _path(parts: tuple[Any, ...]) -> str:
    shown = ".".join(str(part) for part in parts[:6])
    return (shown + ".…" if len(parts) > 6 else shown) or "the top level"


def _shape_problem(data: Any) -> str | None:
    """Why the parsed document cannot be catalogued as a whole, or None: nested deeper than MAX_DEPTH, or holding
    a lone surrogate (JSON's `\\ud800` escape decodes to one; SQLite and browsers cannot take it). One walk,
    without recursion, so a deep document cannot exhaust the stack."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict | list):
            if len(where) >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep (at {_path(where)})"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, inner in items:
                if isinstance(name, str) and not _is_text(name):
                    return f"a name in {_path(where)} is not text (a lone surrogate)"
                stack.append(((*where, name), inner))
        elif isinstance(value, str) and not _is_text(value):
            return f"{_path(where)}: not text (a lone surrogate such as \\ud800)"
    return None


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(name: str) -> None:
    """Python's json reads NaN and Infinity, which JSON has not; pydantic would turn them into nulls silently."""
    raise ValueError(f"{name} is not a JSON value")


def _read(store: Store, key: str) -> dict[str, Any] | str:
    """The metadata as a dict, or the reason it cannot be used.

    Every check that can refuse a file happens here or in RunRecord, never in the middle of a write: the bytes are
    bounded, UTF-8, JSON, shallow, the contract's JobMetadata, of a schema this code knows.
    """
    try:
        raw = _fetch(store, key)
    except Exception as error:
        return f"unreadable: {type(error).__name__}: {error}"[:300]
    if len(raw) > MAX_BYTES:
        return f"larger than {MAX_BYTES // 1024} KiB: not a metadata file the worker wrote (those are a few KB)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (byte {error.start} is {raw[error.start : error.start + 1]!r})"
    try:
        data = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        return f"nested more than {MAX_DEPTH} levels deep"
    except ValueError as error:
        return f"unreadable: {type(error).__name__}: {error}"[:300]
    if not isinstance(data, dict) or "schema_version" not in data or "job_id" not in data:
        return "not an InfiniteTalk Studio metadata file (no schema_version / job_id)"
    problem = _shape_problem(data)
    if problem:
        return problem
    if not isinstance(data["schema_version"], int) or data["schema_version"] > SCHEMA_VERSION:
        shown = repr(data["schema_version"])[:40]
        return f"schema_version {shown} is newer than this catalogue understands ({SCHEMA_VERSION})"
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
    skipped with its reason and logged, before anything of it is written (see `_read` and RunRecord); it never
    stops the sync, and the runs beside it are synced. `readers` overrides how many files are fetched at
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
                try:
                    outcome = catalog.upsert_metadata(metadata, key)
                except InvalidRecord as error:
                    report.skipped.append((key, str(error)))
                    log.warning("skipped %s: %s", key, error)
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
    return report
