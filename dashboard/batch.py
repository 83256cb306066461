"""Reading a batch of jobs from a CSV, JSONL or JSON file, each line checked with the worker's contract.

JSONL: one job input per line, bare or wrapped as `{"input": {...}}` (the payload files' shape).
JSON: one batch input, bare (`{"batch": [...]}`) or a payload file as it is (`{"input": {"batch": [...]}}`, like
`examples/batch.json`); the batch's shared fields (`output_config`) go to every item that does not set its own.
CSV: one job per row; a column is a job field, dotted for nested ones (`cond_audio.person1`,
`tts_audio.text`); a cell holding JSON (`[10, 20, 300, 400]`) is read as JSON; empty cells are left out.
Media are given as URLs or paths the worker may read; the worker checks them again when it runs.
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
from dashboard.forms import media_refs, validate
from worker.inputs import classify

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
    "{ref} is relative to the batch file, and an uploaded file's folder is not known here; give an absolute "
    "path inside an allowed folder, a URL, or a stored path"
)
"""Why a relative media path cannot be used: a payload file's paths are relative to where it lies, which the
browser does not send with an upload (examples/batch.json names media/portrait.jpg beside it)."""


def relative_errors(job: dict[str, Any]) -> dict[str, str]:
    """{field: RELATIVE_NOTE} for each medium a job names by a relative path."""
    return {
        name: RELATIVE_NOTE.format(ref=ref)
        for name, ref in media_refs(job)
        if classify(ref) == "path" and not Path(ref).is_absolute()
    }


def read_batch(name: str, data: bytes, settings: Settings | None = None) -> list[BatchLine]:
    """Read and check a batch file (`.csv`, `.jsonl`, `.ndjson` or `.json`) with the contract and, given the
    settings, the worker's path rule; a relative media path is named as such (see RELATIVE_NOTE) rather than
    looked up beside the dashboard. BatchFileError when the file cannot be used."""
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
    return [BatchLine(line, job, validate(job, settings) | relative_errors(job)) for line, job in jobs]
