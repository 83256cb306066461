"""Payload files: a job input in JSON (bare, or wrapped as RunPod's `{"input": {...}}`), with media paths
relative to the file's folder, as the examples in `examples/` are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.contract import ErrorCode, JobError, Stage
from worker.inputs import classify

MEDIA_FIELDS = ("cond_video",)
AUDIO_PEOPLE = ("person1", "person2")


def _absolute(ref: Any, base: Path) -> Any:
    if isinstance(ref, str) and classify(ref) == "path" and not Path(ref).is_absolute():
        return str((base / ref).resolve())
    return ref


def resolve_relative_refs(job_input: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of the input whose relative media paths (also inside a batch) are absolute, under `base`."""
    resolved = dict(job_input)
    if isinstance(resolved.get("batch"), list):
        resolved["batch"] = [
            resolve_relative_refs(item, base) if isinstance(item, dict) else item for item in resolved["batch"]
        ]
        return resolved
    for name in MEDIA_FIELDS:
        if name in resolved:
            resolved[name] = _absolute(resolved[name], base)
    audio = resolved.get("cond_audio")
    if isinstance(audio, dict):
        resolved["cond_audio"] = {
            key: _absolute(value, base) if key in AUDIO_PEOPLE else value for key, value in audio.items()
        }
    return resolved


def load_payload(path: Path) -> dict[str, Any]:
    """Read a payload file and return its job input with media paths made absolute."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{path}: not a readable JSON payload ({error}); see examples/ for the format",
            at_stage=Stage.VALIDATION_STARTED,
        ) from None
    job_input = data.get("input", data) if isinstance(data, dict) else data
    if not isinstance(job_input, dict):
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f'{path}: the payload must be a JSON object (a job input, or {{"input": {{...}}}})',
            at_stage=Stage.VALIDATION_STARTED,
        )
    return resolve_relative_refs(job_input, path.resolve().parent)
