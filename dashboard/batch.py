"""Reading a batch of jobs from a CSV, JSONL or JSON file, each line checked with the worker's contract.

JSONL: one job input per line, bare or wrapped as `{"input": {...}}` (the payload files' shape).
JSON: one batch input, bare (`{"batch": [...]}`) or a payload file as it is (`{"input": {"batch": [...]}}`, like
`examples/batch.json`); the batch's shared fields (`output_config`) go to every item that does not set its own.
CSV: one job per row; a column is a job field, dotted for nested ones (`cond_audio.person1`,
`tts_audio.text`); a cell holding JSON (`[10, 20, 300, 400]`) is read as JSON; empty cells are left out.

Every parameter a job leaves out takes the Submit form's value (its `mode` is streaming, the contract's clip:
a CSV row without `mode` ran 3 s of a 121 s speech, issue 29). Media are URLs, paths the worker may read, or
file names: a name (or a path's last part, like examples/batch.json's `media/portrait.jpg`) matching a file
uploaded with the batch, or picked from earlier uploads, is sent as that file. Each job is checked by the worker's
own rules, not a copy: the contract (core.contract.parse_job_input, via forms.validate) and the worker's path rule
(worker.inputs.path_refusal), with no exception for a file that happens to lie on the dashboard's disk.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contract import Limits
from core.settings import Settings
from core.store import UPLOADS_PREFIX, Store
from dashboard.forms import PARAM_NAMES, media_refs, validate
from worker.inputs import classify, path_refusal

MAX_JOBS = Limits.MAX_BATCH_ITEMS


@dataclass
class BatchLine:
    """One job of a batch file: where it was, what it asks for, and what is wrong with it."""

    line: int
    job: dict[str, Any]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        """True when the contract accepts the job."""
        return not self.errors


class BatchFileError(ValueError):
    """The file as a whole cannot be read; the message says why and what to do."""


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise BatchFileError(f"column {dotted!r} nests inside a column that already holds a value")
    target[parts[-1]] = value


def _cell(text: str) -> Any:
    text = text.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def read_csv(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Jobs from CSV rows, with the line each starts on."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not any(name and name.strip() for name in reader.fieldnames):
        raise BatchFileError("the CSV has no header row: name the columns, e.g. prompt,cond_video,cond_audio.person1")
    jobs = []
    for row in reader:
        if None in row:
            raise BatchFileError(f"line {reader.line_num}: more cells than the header has columns")
        job: dict[str, Any] = {}
        for column, cell in row.items():
            if column and column.strip() and cell is not None and cell.strip():
                _set(job, column.strip(), _cell(cell))
        if job:
            jobs.append((reader.line_num, job))
    return jobs


def _job_input(value: Any) -> Any:
    """A job input given bare or as a payload (`{"input": {...}}`, what RunPod's /run takes)."""
    return value["input"] if isinstance(value, dict) and isinstance(value.get("input"), dict) else value


def read_jsonl(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Jobs from JSON lines, with their line numbers; blank lines are skipped."""
    jobs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise BatchFileError(f"line {number} is not JSON ({error.msg}); put one job object per line") from None
        value = _job_input(value)
        if not isinstance(value, dict):
            raise BatchFileError(f"line {number}: each line must be a JSON object (one job input)")
        jobs.append((number, value))
    return jobs


def read_json(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Jobs from one batch input or payload file, numbered by their place in its `batch` list (1 first)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BatchFileError(f"the file is not JSON ({error.msg} at line {error.lineno})") from None
    value = _job_input(value)
    items = value.get("batch") if isinstance(value, dict) else None
    if not isinstance(items, list):
        raise BatchFileError('a .json batch holds {"batch": [...]} or a payload {"input": {"batch": [...]}}')
    shared = {key: item for key, item in value.items() if key != "batch"}
    jobs = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise BatchFileError(f"batch item {number} must be a JSON object (one job input)")
        jobs.append((number, {**shared, **item}))
    return jobs


RELATIVE_NOTE = (
    "{ref} is relative to the batch file, whose folder an upload does not tell: add {name} under "
    "“Media for this batch” (or pick it from earlier uploads), or give a URL or an absolute path inside an "
    "allowed folder"
)
"""Why a relative media path cannot be used as it is: a payload file's paths are relative to where it lies, which
the browser does not send with an upload (examples/batch.json names media/portrait.jpg beside it)."""
REFUSED_NOTE = "{ref}: the worker refuses it ({refusal}); add {name} under “Media for this batch”, or give a URL"
MAX_EARLIER = 500
"""Earlier uploads offered by name at most: the store lists them by content hash, not by time."""


def _with_media(job: dict[str, Any], media: dict[str, str]) -> dict[str, Any]:
    """The job with each medium named by a file name (or a path ending in one) in `media` replaced by that
    file's reference."""
    if not media:
        return job
    job = {**job}

    def resolved(ref: Any) -> Any:
        if not isinstance(ref, str) or classify(ref) != "path":
            return ref
        return media.get(ref) or media.get(Path(ref).name) or ref

    if "cond_video" in job:
        job["cond_video"] = resolved(job["cond_video"])
    if isinstance(job.get("cond_audio"), dict):
        job["cond_audio"] = {key: resolved(value) for key, value in job["cond_audio"].items()}
    return job


def worker_errors(job: dict[str, Any], settings: Settings | None, attached: frozenset[str]) -> dict[str, str]:
    """What the worker would refuse in this job, in its own words: the contract, the voices and the path rule
    (forms.validate), then worker.inputs.path_refusal on every path not attached with the batch, even one that
    is a file on this machine (Submit's form uploads those; a batch does not, so the worker would refuse it)."""
    errors = validate(job, settings, attached)
    for field_name, ref in media_refs(job):
        if classify(ref) != "path" or ref in attached:
            continue
        name = Path(ref).name or ref
        if not Path(ref).is_absolute():
            errors[field_name] = RELATIVE_NOTE.format(ref=ref, name=name)
        elif settings is not None and (refusal := path_refusal(ref, settings.allowed_roots)):
            errors[field_name] = REFUSED_NOTE.format(ref=ref, refusal=refusal, name=name)
    return errors


def with_defaults(job: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The job with every generation parameter it leaves out taken from `defaults` (the form's values)."""
    return {**{k: v for k, v in defaults.items() if k in PARAM_NAMES and v not in (None, "")}, **job}


def earlier_uploads(store: Store) -> dict[str, str]:
    """{file name: store key} of media uploaded before (uploads/{sha256}/{name}), for a batch to name; when two
    uploads share a name, the name carries the first 8 characters of each one's hash."""
    keys = []
    for key in store.list(UPLOADS_PREFIX):
        keys.append(key)
        if len(keys) >= MAX_EARLIER:
            break
    names: dict[str, list[str]] = {}
    for key in keys:
        names.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    found = {}
    for name, held in names.items():
        for key in held:
            found[name if len(held) == 1 else f"{name} ({key.split('/')[1][:8]})"] = key
    return found


def read_batch(
    name: str,
    data: bytes,
    settings: Settings | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    media: dict[str, str] | None = None,
) -> list[BatchLine]:
    """Read and check a batch file (`.csv`, `.jsonl`, `.ndjson` or `.json`) with the worker's rules (see
    worker_errors); parameters a job leaves out come from `defaults` (the form's), and media named by a file
    name in `media` ({name: reference}) become that reference. BatchFileError when the file cannot be used."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchFileError(f"{name} is not UTF-8 text; save it as UTF-8 CSV, JSONL or JSON") from None
    lowered = name.lower()
    if lowered.endswith(".csv"):
        jobs = read_csv(text)
    elif lowered.endswith((".jsonl", ".ndjson")):
        jobs = read_jsonl(text)
    elif lowered.endswith(".json"):
        jobs = read_json(text)
    else:
        raise BatchFileError(f"{name}: upload a .csv, .jsonl or .json file")
    if not jobs:
        raise BatchFileError(f"{name} holds no jobs")
    if len(jobs) > MAX_JOBS:
        raise BatchFileError(f"{name} holds {len(jobs)} jobs; send at most {MAX_JOBS} at a time")
    attached = frozenset((media or {}).values())
    lines = []
    for line, job in jobs:
        ready = _with_media(with_defaults(job, defaults or {}), media or {})
        lines.append(BatchLine(line, ready, worker_errors(ready, settings, attached)))
    return lines
