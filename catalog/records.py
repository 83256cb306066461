"""Turning submissions, status updates, results and metadata.json files into catalogue rows."""

from __future__ import annotations

import json
from typing import Any

from worker.contract import INLINE_MEDIA_NOTE as INLINE_NOTE
from worker.contract import ErrorCode, JobStatus, storable_params, utc_now

STATUS_RANK = {JobStatus.IN_QUEUE: 0, JobStatus.IN_PROGRESS: 1} | {status: 2 for status in JobStatus.FINAL}
FINAL_RANK = 2


def run_id_for(job_id: str, item_id: str | None = None) -> str:
    """The catalogue's id for a run: the job id, or `job_id:item_id` for an item of a batch."""
    return f"{job_id}:{item_id}" if item_id else job_id


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


def outcome_status(output: dict[str, Any]) -> str:
    """The final status a job's output stands for.

    RunPod reports COMPLETED for whatever the handler returned, and the worker returns its errors rather than
    raising, so the output's own status decides: an error is FAILED, or CANCELLED / TIMED_OUT for those codes
    (the same mapping the local endpoint uses).
    """
    if output.get("status") != "error":
        return JobStatus.COMPLETED
    code = (output.get("error") or {}).get("code")
    return {ErrorCode.CANCELLED: JobStatus.CANCELLED, ErrorCode.TIMEOUT: JobStatus.TIMED_OUT}.get(
        code, JobStatus.FAILED
    )


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
    return "image" if ref and ref != INLINE_NOTE else None


def _typed(value: Any, kind: type) -> Any:
    """The value when it has the column's type, else None: a foreign file's odd params never reach a facet."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int):
        return float(value)
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
    return {key: value for key, value in columns.items() if value is not None}


def metadata_row(metadata: dict[str, Any], metadata_key: str) -> dict[str, Any]:
    """A complete run row from a metadata.json (already validated against JobMetadata)."""
    outputs = metadata.get("outputs") or {}
    video = outputs.get("video") or {}
    error = metadata.get("error") or {}
    return {
        "run_id": run_id_for(metadata["job_id"], metadata.get("item_id")),
        "job_id": metadata["job_id"],
        "item_id": metadata.get("item_id"),
        "endpoint_id": metadata.get("endpoint_id"),
        "engine": (metadata.get("engine") or {}).get("name"),
        "engine_version": (metadata.get("engine") or {}).get("version"),
        "status": outcome_status(metadata),
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
    }
