"""The request file every submit leaves in the store: one rule for the dashboard's Submit and `studio submit`.

A job's request (its params without inline media, the store keys of the media it reads, its endpoint, who sent it
and when; catalog/bucket.py's RequestFile) is written into the job's folder as soon as the job is sent. Any
dashboard then finds the job before its metadata.json lands: Live follows it after a start on an empty disk
(catalog.sync.restore_unfinished), and History says who sent it, whichever program sent it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from catalog import bucket
from core.settings import Settings
from core.store import UPLOADS_PREFIX, Store


def stored_key(ref: str, store: Store, settings: Settings) -> str | None:
    """The store key behind a reference to an earlier upload (a presigned URL or a stored path), if it is one."""
    if store.kind == "s3":
        match = re.search(rf"/{re.escape(settings.s3_bucket or '')}/({UPLOADS_PREFIX}/[0-9a-f]{{64}}/[^?]+)", ref)
        return match.group(1) if match else None
    try:
        path = Path(ref).resolve()
    except (OSError, ValueError):
        return None
    root = settings.artifact_dir.resolve()
    if not path.is_relative_to(root / UPLOADS_PREFIX):
        return None
    return path.relative_to(root).as_posix()


def media_keys(job_input: dict[str, Any], store: Store, settings: Settings) -> dict[str, str]:
    """The store keys of the media a job reads from earlier uploads (`cond_video`, `cond_audio.person1`…): the
    request file keeps keys, which never expire, rather than presigned URLs, which do."""
    refs = {"cond_video": job_input.get("cond_video")}
    audio = job_input.get("cond_audio")
    if isinstance(audio, dict):
        refs |= {f"cond_audio.{person}": ref for person, ref in audio.items()}
    keys = {name: stored_key(ref, store, settings) for name, ref in refs.items() if isinstance(ref, str)}
    return {name: key for name, key in keys.items() if key}


def write_request_file(
    store: Store,
    job_id: str,
    job_input: dict[str, Any],
    *,
    endpoint_id: str,
    submitted_by: str | None,
    settings: Settings | None,
) -> tuple[bucket.RequestFile, str]:
    """Write the request file of a job just sent to `endpoint_id` as `job_input` (a single job or a batch, its
    media already uploaded); returns the document and its key.

    Raises JobError when the store refuses the write and ValueError (pydantic's ValidationError) for a request
    the file cannot hold. The job is already on its way by then: callers log either and go on, never failing
    the submission for it.
    """
    media = media_keys(job_input, store, settings) if settings is not None else {}
    document = bucket.request_document(
        job_id, job_input, endpoint_id=endpoint_id, submitted_by=submitted_by, media=media
    )
    return document, bucket.write_request(store, document)
