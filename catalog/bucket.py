"""What the catalogue keeps in the bucket beside each run, so that nothing it knows lives only on one disk.

Streamlit Community Cloud wipes the dashboard's disk on every restart, and the catalogue is only an index: the
bucket must hold everything needed to rebuild it. Beside the worker's artifacts, in the run's own folder
(`<prefix>/<job_id>[/<item_id>]/`), the catalogue writes three small JSON files through the store interface:

- `curation.json`: tags, favourite and note, each with the time it was last changed. A sync takes each field
  whose time is newer than the catalogue's, so two dashboards on one bucket see each other's curation.
- `request.json`: what the dashboard sent at submit (params with media as keys or plain URLs, never inline media
  or signed queries; the endpoint id; who submitted it; when). A dashboard started on an empty disk finds the
  jobs that have no metadata.json yet, and follows them on Live again.
- `deleted.json`: a tombstone. A sync never brings that run back, and removes it from other catalogues.

Each is read back as hostile input (documents.read_json, then one model here), because anyone who can write to
the bucket can put anything at those keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from catalog.documents import MISSING, not_fetched, read_json, validation_reason
from catalog.records import (
    KEY_TEXT,
    LONG_TEXT,
    SHORT_TEXT,
    InvalidRecord,
    _iso_time,
    check_home,
    run_id_for,
    text_checks,
)
from core.contract import INLINE_MEDIA_NOTE, Defaults, ErrorCode, JobError, storable_params, utc_now
from core.store import Store, artifact_key

log = logging.getLogger("studio.catalog.bucket")

CURATION = "curation.json"
REQUEST = "request.json"
TOMBSTONE = "deleted.json"
FILES = (CURATION, REQUEST, TOMBSTONE)
CURATED = ("tags", "favourite", "note")
"""The curated fields; each has a `<field>_at` column and its own time in curation.json."""
MAX_TAGS = 100
"""The most tags a run holds; with MAX_TAG_CHARS and MAX_NOTE_CHARS, the limits of curation.json's model, which
`check_curation` holds every change to before the catalogue's row is touched (the one place they live)."""
MAX_TAG_CHARS = SHORT_TEXT
MAX_NOTE_CHARS = LONG_TEXT
CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far ahead of this machine's clock a curation time may lie: another dashboard's clock may run a little
fast, but a time further ahead (`9999-12-31`) is taken as now plus this much, or it would win every comparison
and freeze the field: each later edit would silently revert to it."""
READ_RETRY_S = (0.2, 1.0)
"""Pauses before asking the store again for a curation.json it failed to hand over (a network blip, a busy
server), before a write that would replace it is refused."""

Time = Annotated[str, *text_checks(40, AfterValidator(_iso_time))]
Tag = Annotated[str, *text_checks(MAX_TAG_CHARS)]
Email = Annotated[str, *text_checks(320)]
Id = Annotated[str, *text_checks(128)]
ShortText = Annotated[str, *text_checks(SHORT_TEXT)]
LongText = Annotated[str, *text_checks(MAX_NOTE_CHARS)]
Key = Annotated[str, *text_checks(KEY_TEXT)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Literal[1] = 1
    job_id: Id
    item_id: Id | None = None


class StampedTags(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Annotated[list[Tag], Field(max_length=MAX_TAGS)]
    at: Time


class StampedFavourite(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: bool
    at: Time


class StampedNote(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: LongText
    at: Time


class CurationFile(_File):
    """`curation.json`: each curated field with the time it was last changed (the newer change wins)."""

    kind: Literal["studio.curation"] = "studio.curation"
    tags: StampedTags | None = None
    favourite: StampedFavourite | None = None
    note: StampedNote | None = None


class RequestFile(_File):
    """`request.json`: the job as the dashboard sent it, for a catalogue rebuilt before the job finished."""

    kind: Literal["studio.request"] = "studio.request"
    endpoint_id: ShortText
    submitted_by: Email | None = None
    submitted_at: Time
    params: dict[str, Any]
    media: dict[ShortText, Key] = Field(default_factory=dict, max_length=16)

    @field_validator("params")
    @classmethod
    def _no_inline_media(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Inline media (a data: URL, base64) never belongs in the bucket's copy: only keys and plain URLs."""
        if json.dumps(storable_params(params), sort_keys=True) != json.dumps(params, sort_keys=True):
            raise ValueError(f"holds inline media or a signed URL; store media as keys ({INLINE_MEDIA_NOTE!r} is fine)")
        return params


class TombstoneFile(_File):
    """`deleted.json`: the run was deleted for good; a sync never brings it back."""

    kind: Literal["studio.deleted"] = "studio.deleted"
    deleted_at: Time
    deleted_by: Email | None = None


MODELS: dict[str, type[_File]] = {CURATION: CurationFile, REQUEST: RequestFile, TOMBSTONE: TombstoneFile}
WHAT = {CURATION: "curation", REQUEST: "request", TOMBSTONE: "deletion"}


def run_folder(run: dict[str, Any]) -> str:
    """The folder of a run's artifacts: where its metadata.json is, or where the worker will write it.

    The worker writes `<output_config.prefix>/<job_id>[/<item_id>]/`; until a result names metadata.json, the
    prefix comes from the params the run was submitted with (the contract's default, `jobs`, when none).
    """
    if run.get("metadata_key") and "/" in run["metadata_key"]:
        return run["metadata_key"].rsplit("/", 1)[0]
    params = run.get("params")
    if isinstance(params, str):
        params = json.loads(params or "{}")
    config = (params or {}).get("output_config") if isinstance(params, dict) else None
    prefix = config.get("prefix") if isinstance(config, dict) and isinstance(config.get("prefix"), str) else None
    job = "/".join(part for part in (run["job_id"], run.get("item_id")) if part)
    return artifact_key(prefix or Defaults.STORE_PREFIX, job, "")


def folder_of(key: str) -> str:
    """The folder a key lies in."""
    return key.rsplit("/", 1)[0] if "/" in key else ""


def read(store: Store, key: str) -> _File | str:
    """The file at key (curation, request or tombstone, by its name) as its model, or the reason it is refused:
    too big, not JSON, not the model, or not in the folder of the run it names."""
    name = key.rsplit("/", 1)[-1]
    data = read_json(store, key)
    if isinstance(data, str):
        return data
    try:
        document = MODELS[name].model_validate(data)
        check_home(document.job_id, document.item_id, key)
    except ValidationError as error:
        return validation_reason(error, WHAT[name])
    except InvalidRecord as error:
        return str(error)
    return document


def _dump(document: BaseModel) -> bytes:
    return json.dumps(document.model_dump(mode="json"), indent=1, sort_keys=True).encode()


def stamp_time(text: str | None, now: dt.datetime | None = None) -> dt.datetime:
    """A curation time as an aware UTC datetime, for comparing: no time (or one that does not parse) is the
    oldest there is, a time without a zone is UTC, and a time further ahead than CLOCK_SKEW is now + CLOCK_SKEW.

    Times are compared as datetimes, not as text: `2026-12-07T10:00:00+02:00` is earlier than
    `2026-12-07T09:00:00Z`, which text order gets wrong, and a bare date is midnight.
    """
    ceiling = (now or dt.datetime.now(dt.UTC)) + CLOCK_SKEW
    try:
        moment = dt.datetime.fromisoformat(text or "")
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    try:
        moment = moment.astimezone(dt.UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is past the last year a datetime holds
        return ceiling
    return min(moment, ceiling)


def sane_time(text: str, now: dt.datetime | None = None) -> str:
    """A curation time as the catalogue writes times (utc_now's form), clamped as stamp_time says."""
    return utc_now(stamp_time(text, now))


def _sane(stamps: dict[str, tuple[Any, str]], now: dt.datetime | None) -> dict[str, tuple[Any, str]]:
    return {name: (value, sane_time(at, now)) for name, (value, at) in stamps.items()}


def stamped(run: dict[str, Any], now: dt.datetime | None = None) -> dict[str, tuple[Any, str]]:
    """A catalogue row's curated fields that have a time, as {field: (value, at)}, times clamped (sane_time): a
    row that took a far-future time before times were clamped does not carry it on into the bucket."""
    values = {
        "tags": [t for t in (run.get("tags") or "").split(",") if t],
        "favourite": bool(run.get("favourite")),
        "note": run.get("note") or "",
    }
    return _sane({name: (values[name], run[f"{name}_at"]) for name in CURATED if run.get(f"{name}_at")}, now)


def file_stamps(document: CurationFile, now: dt.datetime | None = None) -> dict[str, tuple[Any, str]]:
    """A curation file's fields as {field: (value, at)}, each time clamped (sane_time)."""
    fields = {name: field for name in CURATED if (field := getattr(document, name)) is not None}
    return _sane({name: (field.value, field.at) for name, field in fields.items()}, now)


def newest(*sides: dict[str, tuple[Any, str]]) -> dict[str, tuple[Any, str]]:
    """Per field, the change with the latest time (compared as datetimes, stamp_time); on a tie the earlier side
    (the catalogue's) stays."""
    merged: dict[str, tuple[Any, str]] = {}
    for side in sides:
        for name, (value, at) in side.items():
            if name not in merged or stamp_time(at) > stamp_time(merged[name][1]):
                merged[name] = (value, at)
    return merged


def _limit_line(error: ValidationError, field: str, value: Any) -> str:
    """The model's first complaint about a curated value as one line naming the limit and the fix."""
    first = error.errors()[0]
    where = first["loc"][1:] if first["loc"][:1] == ("value",) else first["loc"]
    limit = (first.get("ctx") or {}).get("max_length")
    if field == "tags" and first["type"] == "too_long":
        return f"tags: a run holds at most {limit} tags (this would be {len(value)}); remove some"
    if field == "tags" and first["type"] == "string_too_long" and where:
        tag = value[int(where[0])]
        return f"tags: a tag is at most {limit} characters (tag {int(where[0]) + 1}, {tag[:20]!r}…, has {len(tag)})"
    if first["type"] == "string_too_long":
        return f"{field}: at most {limit} characters (this one has {len(value)}); shorten it"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field}{''.join(f'[{part}]' for part in where)}: {message}"


def check_curation(*, tags: list[str] | None = None, note: str | None = None) -> None:
    """Hold a curation change to curation.json's model before anything is written: a value the bucket's file
    cannot take (101 tags, a 300-character tag, a 25 000-character note, a lone surrogate) is JobError
    E_INPUT_VALIDATION, one line naming the limit, and the catalogue's row is left as it was."""
    now = utc_now()
    for field, model, value in (("tags", StampedTags, tags), ("note", StampedNote, note)):
        if value is None:
            continue
        try:
            model.model_validate({"value": value, "at": now})
        except ValidationError as error:
            raise JobError(ErrorCode.INPUT_VALIDATION, _limit_line(error, field, value)) from None


def write_curation(store: Store, run: dict[str, Any], stamps: dict[str, tuple[Any, str]]) -> str:
    """Write the run's curation.json (every field with its time); returns the key. A value the file cannot take
    (a row curated before check_curation held changes to its limits) is one line, JobError E_INPUT_VALIDATION."""
    folder = run_folder(run)
    for name, (value, _) in stamps.items():
        if name != "favourite":
            check_curation(**{name: value})
    document = CurationFile.model_validate(
        {
            "job_id": run["job_id"],
            "item_id": run.get("item_id"),
            **{name: {"value": value, "at": at} for name, (value, at) in stamps.items()},
        }
    )
    key = f"{folder}/{CURATION}"
    store.put_bytes(key, _dump(document), within=folder)
    return key


def current_curation(store: Store, key: str) -> CurationFile | None:
    """The curation.json a write is about to replace, to merge with; None when there is none, or when what is
    there is not a curation file (it is replaced, with a warning in the log).

    A store that fails to hand it over (documents.not_fetched) is asked again after each READ_RETRY_S pause; if it
    still fails, JobError E_DOWNLOAD_FAILED, and nothing is written: the file may hold another dashboard's newer
    change, which a blind write would lose.
    """
    for pause in (*READ_RETRY_S, None):
        existing = read(store, key)
        if not (isinstance(existing, str) and not_fetched(existing)):
            break
        if pause is None:
            raise JobError(
                ErrorCode.DOWNLOAD_FAILED,
                f"{key} could not be read to merge with ({existing}); it was left as it was, since it may hold "
                "another dashboard's newer change",
            )
        time.sleep(pause)
    if isinstance(existing, CurationFile):
        return existing
    if isinstance(existing, str) and existing != MISSING:
        log.warning("replacing %s: %s", key, existing)
    return None


def request_document(
    job_id: str,
    job_input: dict[str, Any],
    *,
    endpoint_id: str,
    submitted_by: str | None,
    media: dict[str, str] | None = None,
    submitted_at: str | None = None,
) -> RequestFile:
    """The request file for a job just sent: its params made storable (inline media become a note, signed URLs
    lose their query), the keys of media uploaded to the store, the endpoint, who and when."""
    return RequestFile(
        job_id=job_id,
        endpoint_id=endpoint_id,
        submitted_by=submitted_by,
        submitted_at=submitted_at or utc_now(),
        params=storable_params(job_input),
        media=dict(media or {}),
    )


def request_folder(document: RequestFile) -> str:
    """The folder a request file belongs in: the job's, under the prefix its params' output_config names."""
    return run_folder({"job_id": document.job_id, "item_id": document.item_id, "params": document.params})


def write_request(store: Store, document: RequestFile) -> str:
    """Write request.json into the job's folder (the prefix its output_config names); returns the key."""
    folder = request_folder(document)
    key = f"{folder}/{REQUEST}"
    store.put_bytes(key, _dump(document), within=folder)
    return key


def write_tombstone(store: Store, run: dict[str, Any], deleted_by: str | None = None) -> str:
    """Write deleted.json into the run's folder; returns the key."""
    folder = run_folder(run)
    document = TombstoneFile(
        job_id=run["job_id"], item_id=run.get("item_id"), deleted_at=utc_now(), deleted_by=deleted_by
    )
    key = f"{folder}/{TOMBSTONE}"
    store.put_bytes(key, _dump(document), within=folder)
    return key


def run_id_of(document: _File) -> str:
    """The catalogue id of the run a file is about."""
    return run_id_for(document.job_id, document.item_id)
