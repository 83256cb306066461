"""The metadata.json written beside every video: resolved params, input descriptors, outputs, timings, error."""

from __future__ import annotations

from typing import Any

from worker.contract import InputDescriptor, JobMetadata, JobParams, storable_params, utc_now


def resolved_params(params: JobParams, seed: int) -> dict[str, Any]:
    """The job's parameters with defaults filled, the seed and sample_shift resolved and raw data removed."""
    data = storable_params(params.model_dump(mode="json", exclude_none=False))
    data["base_seed"] = seed
    data["sample_shift"] = params.resolved_sample_shift()
    return data


def build_metadata(
    *,
    job_id: str,
    item_id: str | None,
    endpoint_id: str | None,
    engine: dict[str, str],
    params: JobParams,
    resolved: dict[str, Any],
    inputs: list[InputDescriptor],
    outputs: dict[str, dict[str, Any]],
    timings: dict[str, int],
    created_at: str,
    started_at: str,
    error: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> JobMetadata:
    """Assemble a validated metadata record."""
    return JobMetadata(
        job_id=job_id,
        item_id=item_id,
        endpoint_id=endpoint_id,
        status="error" if error else "success",
        engine=engine,
        prompt=params.prompt,
        params=resolved,
        inputs=inputs,
        outputs=outputs,
        timings=timings,
        created_at=created_at,
        started_at=started_at,
        finished_at=utc_now(),
        error=error,
        warnings=warnings or [],
    )
