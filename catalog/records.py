"""Turning submissions, status updates, results and metadata.json files into catalogue rows."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationError, create_model

from catalog.schema import RUN_COLUMNS
from core.contract import (
    INLINE_MEDIA_NOTE,
    KEY_PART_RULE,
    JobStatus,
    PartialVideoInfo,
    SplitPart,
    is_key_part,
    output_status,
    storable_params,
    utc_now,
)
from core.prices import PriceTable, run_cost

STATUS_RANK = {JobStatus.IN_QUEUE: 0, JobStatus.IN_PROGRESS: 1} | {status: 2 for status in JobStatus.FINAL}
FINAL_RANK = 2
INT64 = (-(2**63), 2**63 - 1)
"""What an SQLite INTEGER holds: a larger Python int (`total_ms` 10**30) makes the insert raise OverflowError."""


class InvalidRecord(ValueError):
    """A metadata file that cannot become a run; the message names the field in the file and what is wrong."""


def _escaped(part: str) -> str:
    return part.replace("%", "%25").replace(":", "%3A")


def run_id_for(job_id: str, item_id: str | None = None) -> str:
    """The catalogue's id for a run: the job id, or `job_id:item_id` for an item of a batch.

    A ':' or '%' inside either id is percent-escaped, so the id names one run only: job `a:b` is `a%3Ab`, item `b`
    of job `a` is `a:b` (once both were `a:b`, and the second run silently replaced or lost to the first). Ids the
    worker makes (letters, digits, '_', '-', '.') read as before.
    """
    return f"{_escaped(job_id)}:{_escaped(item_id)}" if item_id else _escaped(job_id)


def known_status(status: str) -> str:
    """The status itself, or a ValueError naming the valid ones.

    An unknown status is refused rather than guessed at: taken as final, it would freeze the run for good.
    """
    if status not in STATUS_RANK:
        raise ValueError(f"status {status!r} is not a job status; use one of {', '.join(JobStatus.ALL)}")
    return status


def status_rank(status: str) -> int:
    """Where a status sits in a job's life: queued < running < any final status."""
    return STATUS_RANK[known_status(status)]


def _speech_duration(params: dict[str, Any], inputs: list[dict[str, Any]] | None = None) -> float | None:
    durations = [i.get("duration_s") or 0 for i in inputs or [] if str(i.get("field", "")).startswith("cond_audio")]
    return round(sum(durations), 3) if durations else None


def _speakers(params: dict[str, Any]) -> int:
    audio = params.get("cond_audio") or {}
    if isinstance(audio, dict) and audio.get("person2"):
        return 2
    tts = params.get("tts_audio") or {}
    return 2 if isinstance(tts, dict) and "(s2)" in str(tts.get("text", "")).lower() else 1


def _input_kind(params: dict[str, Any], inputs: list[dict[str, Any]] | None = None) -> str | None:
    for item in inputs or []:
        if item.get("field") == "cond_video":
            return item.get("kind")
    ref = str(params.get("cond_video", "")).lower().split("?")[0]
    if ref.startswith("data:"):
        return "video" if ref.startswith("data:video") else "image"
    if ref.endswith((".mp4", ".webm", ".mov", ".mkv", ".avi")):
        return "video"
    # Inline data already stored as a note says nothing about its kind: leave what the submission knew.
    return "image" if ref and ref != INLINE_MEDIA_NOTE else None


def _typed(value: Any, kind: type) -> Any:
    """The value when it has the column's type and fits it, else None: a foreign file's odd params (a list, a
    string, a seed of 10**30, an infinite scale) never reach a facet or break an insert; the full params keep it."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int | float):
        value = float(value) if -1e308 < value < 1e308 else math.nan
        return value if math.isfinite(value) else None
    if kind is int and isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        return None
    return value if isinstance(value, kind) else None


def param_columns(params: dict[str, Any], inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The main parameters as real columns, for filtering and facets; the full params as JSON."""
    return {
        "prompt": _typed(params.get("prompt"), str),
        "size": _typed(params.get("size"), str),
        "mode": _typed(params.get("mode"), str),
        "sample_steps": _typed(params.get("sample_steps"), int),
        "base_seed": _typed(params.get("base_seed"), int),
        "text_guide_scale": _typed(params.get("sample_text_guide_scale"), float),
        "audio_guide_scale": _typed(params.get("sample_audio_guide_scale"), float),
        "speakers": _speakers(params),
        "input_kind": _input_kind(params, inputs),
        "audio_duration_s": _speech_duration(params, inputs),
        "params": json.dumps(storable_params(params), sort_keys=True),
    }


def result_columns(result: dict[str, Any]) -> dict[str, Any]:
    """Columns from a job result (JobResult) or an error output."""
    columns: dict[str, Any] = {}
    if result.get("status") == "error" or result.get("error"):
        error = result.get("error") or {}
        columns.update(error_code=error.get("code"), error_message=error.get("message"))
    video = result.get("video") or {}
    if video:
        columns.update(
            video_key=video.get("key"),
            video_duration_s=video.get("duration_s"),
            width=video.get("width"),
            height=video.get("height"),
            frames=video.get("frames"),
        )
    partial = _partial(result.get("partial_video"))
    if not video and partial is not None:
        # A cancelled streaming job keeps the video so far as its result (worker/partial.py): it is the run's video.
        columns.update(video_key=partial.key, video_duration_s=partial.duration_s)
    if result.get("thumbnail"):
        columns["thumb_key"] = result["thumbnail"].get("key")
    if result.get("metadata"):
        columns["metadata_key"] = result["metadata"].get("key")
    if result.get("engine"):
        columns.update(engine=result["engine"].get("name"), engine_version=result["engine"].get("version"))
    if result.get("timings"):
        columns.update(timings=json.dumps(result["timings"]), total_ms=result["timings"].get("total_ms"))
    if result.get("params"):
        columns.update({k: v for k, v in param_columns(result["params"]).items() if v is not None})
    if result.get("warnings") is not None:
        columns["warnings"] = json.dumps(result["warnings"])
    columns.update(gpu_columns(result.get("gpu")))
    return {key: value for key, value in columns.items() if value is not None}


def _partial(payload: Any) -> PartialVideoInfo | None:
    """A result's `partial_video` when it is one (the contract's model, as the worker writes it), else None: an
    endpoint's output is outside input, and a `duration_s` that is not a number must not become the column."""
    try:
        return PartialVideoInfo.model_validate(payload) if payload is not None else None
    except ValidationError:
        return None


def gpu_columns(gpu: Any) -> dict[str, Any]:
    """`gpu_name` and `gpu_count` from a result's or metadata.json's `gpu` ({name, count}); none when absent."""
    if not isinstance(gpu, dict):
        return {}
    return {"gpu_name": _typed(gpu.get("name"), str), "gpu_count": _typed(gpu.get("count"), int)}


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"holds {value[error.start]!r} at {error.start}, a lone surrogate that is not text") from None
    return value


def _iso_time(value: str) -> str:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 time such as 2026-11-20T10:00:00.000Z") from None
    return value


def text_checks(max_length: int, *checks: Any) -> tuple[Any, ...]:
    """The pydantic metadata of a text field: strictly a str, at most `max_length`, valid UTF-8, then `checks`.

    Spelled `Annotated[str, *text_checks(...)]` where a type is written, so the type checker sees a str.
    """
    return (Field(strict=True, max_length=max_length), AfterValidator(_utf8), *checks)


def _text(max_length: int, *checks: Any) -> Any:
    return Annotated[str, *text_checks(max_length, *checks)]


SHORT_TEXT = 256
KEY_TEXT = 1024
LONG_TEXT = 20_000
JSON_TEXT = 256 * 1024
TEXT_LIMITS = {
    "prompt": LONG_TEXT,
    "error_message": LONG_TEXT,
    "note": LONG_TEXT,
    "params": JSON_TEXT,
    "timings": JSON_TEXT,
    "warnings": JSON_TEXT,
    "parts": JSON_TEXT,
    "video_key": KEY_TEXT,
    "thumb_key": KEY_TEXT,
    "metadata_key": KEY_TEXT,
    "run_id": KEY_TEXT,
    "request_key": KEY_TEXT,
}
TIMES = {"created_at", "started_at", "finished_at", "updated_at", "tags_at", "favourite_at", "note_at"}


def _column_type(name: str, kind: type) -> Any:
    if kind is int:
        return Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])]
    if kind is float:
        return Annotated[float, Field(strict=True, allow_inf_nan=False)]
    checks = [AfterValidator(_iso_time)] if name in TIMES else []
    return _text(TEXT_LIMITS.get(name, SHORT_TEXT), *checks)


# Field definitions are (type, default) pairs built at run time; create_model's stubs type its ** parameter
# against its other keyword parameters too (__module__: str...), so the pairs are declared as what they are, Any.
_RUN_FIELDS: dict[str, Any] = {name: (_column_type(name, kind) | None, None) for name, kind in RUN_COLUMNS.items()}
RunRecord = create_model("RunRecord", __config__=ConfigDict(extra="forbid"), **_RUN_FIELDS)
"""A row of `runs` as SQLite and every page can take it: the one check a record from a metadata.json passes
before it is written. Each column has its type, strictly (a string is not a number, a bool not an int); integers
fit 64 bits, reals are finite, text is valid UTF-8 of a bounded length, times are ISO 8601. A row that passed
cannot make an insert raise, nor History's formatting of a duration."""

FILE_FIELDS = {
    "engine": "engine.name",
    "engine_version": "engine.version",
    "video_key": "outputs.video.key",
    "video_duration_s": "outputs.video.duration_s",
    "width": "outputs.video.width",
    "height": "outputs.video.height",
    "frames": "outputs.video.frames",
    "thumb_key": "outputs.thumbnail.key",
    "total_ms": "timings.total_ms",
    "error_code": "error.code",
    "error_message": "error.message",
    "audio_duration_s": "inputs.duration_s",
    "gpu_name": "gpu.name",
    "gpu_count": "gpu.count",
}
"""Where in metadata.json each derived column comes from, so a refusal names the field to fix in the file."""


def checked_record(row: dict[str, Any]) -> dict[str, Any]:
    """The row as RunRecord validates it, or InvalidRecord naming the first bad field (as the file spells it)."""
    try:
        return RunRecord.model_validate(row).model_dump(exclude_unset=True)
    except ValidationError as error:
        first = error.errors()[0]
        column = str(first["loc"][0])
        value = repr(first.get("input"))
        shown = value if len(value) <= 60 else value[:57] + "..."
        message = first["msg"].removeprefix("Value error, ")
        raise InvalidRecord(f"{FILE_FIELDS.get(column, column)}: {message} (got {shown})") from None


def check_home(job_id: Any, item_id: Any, key: str) -> str:
    """The run folder `…/<job_id>[/<item_id>]` that a file at `key` must lie directly in; InvalidRecord otherwise.

    Every file the catalogue reads from the bucket (metadata.json, and its own curation, request and deletion
    files) names the run it is about, and must lie in that run's folder: a file elsewhere would let one bucket
    object stand in for another run, and deleting it "with its files" would delete someone else's video.
    """
    for name, value in (("job_id", job_id), ("item_id", item_id)):
        if value is not None and not (isinstance(value, str) and is_key_part(value)):
            raise InvalidRecord(f"{name}: {KEY_PART_RULE} (got {str(value)[:60]!r})")
    folder = "/".join(part for part in (job_id, item_id) if part)
    file = key.rsplit("/", 1)[-1]
    if key != f"{folder}/{file}" and not key.endswith(f"/{folder}/{file}"):
        raise InvalidRecord(f"job_id: the file of run {folder!r} must be {folder}/{file} under a prefix")
    return key.rsplit("/", 1)[0]


def _check_location(metadata: dict[str, Any], metadata_key: str) -> None:
    """A file describes the run whose folder holds it (check_home), and its artifacts lie beside it.

    The worker writes `<prefix>/<job_id>[/<item_id>]/{video.mp4,thumb.jpg,metadata.json}`.
    """
    home = check_home(metadata["job_id"], metadata.get("item_id"), metadata_key)
    for name, artifact in (metadata.get("outputs") or {}).items():
        key = artifact.get("key")
        if key is not None and (not isinstance(key, str) or key.rsplit("/", 1)[0] != home):
            raise InvalidRecord(f"outputs.{name}.key: must lie beside the file, in {home}/ (got {str(key)[:60]!r})")


def metadata_row(metadata: dict[str, Any], metadata_key: str) -> dict[str, Any]:
    """A complete run row from a metadata.json (already validated against JobMetadata), checked as RunRecord.

    Raises InvalidRecord, before anything is written, when the file is not in its run's folder or a value does
    not fit its column: a hostile file is skipped, and the runs beside it are synced as usual.
    """
    _check_location(metadata, metadata_key)
    outputs = metadata.get("outputs") or {}
    video = outputs.get("video") or {}
    error = metadata.get("error") or {}
    row = {
        "run_id": run_id_for(metadata["job_id"], metadata.get("item_id")),
        "job_id": metadata["job_id"],
        "item_id": metadata.get("item_id"),
        "endpoint_id": metadata.get("endpoint_id"),
        "engine": (metadata.get("engine") or {}).get("name"),
        "engine_version": (metadata.get("engine") or {}).get("version"),
        "status": output_status(metadata),
        "created_at": metadata["created_at"],
        "started_at": metadata.get("started_at"),
        "finished_at": metadata.get("finished_at"),
        "updated_at": utc_now(),
        **param_columns(metadata.get("params") or {}, metadata.get("inputs")),
        "prompt": metadata.get("prompt"),
        "video_key": video.get("key"),
        "video_duration_s": video.get("duration_s"),
        "width": video.get("width"),
        "height": video.get("height"),
        "frames": video.get("frames"),
        "thumb_key": (outputs.get("thumbnail") or {}).get("key"),
        "metadata_key": metadata_key,
        "timings": json.dumps(metadata.get("timings") or {}),
        "total_ms": (metadata.get("timings") or {}).get("total_ms"),
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "warnings": json.dumps(metadata.get("warnings") or []),
        "progress_pct": 100.0 if metadata["status"] == "success" else None,
        "source": "sync",
        **gpu_columns(metadata.get("gpu")),
    }
    if metadata.get("parts"):
        row["parts"] = stored_parts(metadata["parts"])
    return checked_record(row)


PART_ERROR_CHARS = 2000
"""How much of a part's error message the catalogue keeps: the endpoint's text is outside input, and the row's
`parts` column is bounded (TEXT_LIMITS) so that a split run of many failed parts still fits it."""


def _part(part: SplitPart | dict[str, Any]) -> SplitPart:
    model = part if isinstance(part, SplitPart) else SplitPart.model_validate(part)
    error = model.error
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        error = {
            "code": str(code)[:64] if code is not None else None,
            "message": str(message)[:PART_ERROR_CHARS] if message is not None else None,
        }
    return model.model_copy(update={"job_input": {}, "error": error})


def stored_parts(parts: list[SplitPart] | list[dict[str, Any]]) -> str:
    """A split run's parts as the `parts` column holds them: each part's span, job ids, state, GPU time, cost,
    engine and GPU, and its error cut to PART_ERROR_CHARS; never the part's job input (the run's own params are
    the run's, as Reuse fills them), so a run of many parts stays small."""
    return json.dumps([_part(part).model_dump(mode="json", exclude={"job_input"}) for part in parts], sort_keys=True)


def split_parts(run: dict[str, Any]) -> list[SplitPart]:
    """A run's parts from its `parts` column (a split run, docs/split.md), in order; [] for a run rendered as one
    job, and for a column a hand edit broke (the run still shows, without its parts)."""
    value = run.get("parts")
    if not value:
        return []
    try:
        items = json.loads(value) if isinstance(value, str) else value
        parts = [SplitPart.model_validate(item) for item in items]
    except (ValueError, TypeError):
        return []
    return sorted(parts, key=lambda part: part.index)


def split_cost(parts: list[SplitPart]) -> float | None:
    """What a split run cost: the sum of its parts' costs, each priced on the GPU that ran it (parts of one run
    may run on different GPUs); None while any part's cost is unknown (not finished, or an unpriced GPU), never
    a partial sum passed off as the whole."""
    costs = [part.cost_usd for part in parts]
    if not costs or any(cost is None for cost in costs):
        return None
    return round(sum(cost for cost in costs if cost is not None), 6)


def run_price(run: dict[str, Any], prices: PriceTable) -> float | None:
    """A finished run's cost: a split run's is its parts' sum (split_cost), any other run's its billed seconds on
    its GPU (core.prices.run_cost)."""
    parts = split_parts(run)
    return split_cost(parts) if parts else run_cost(run, prices)


def part_job_ids(parts: list[SplitPart]) -> list[str]:
    """Every job a split run's parts ran as, earlier attempts included: none of them is a run of its own."""
    return [job for part in parts for job in (*part.earlier_job_ids, *([part.job_id] if part.job_id else []))]
