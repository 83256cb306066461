"""The metadata.json written beside every video: resolved params, input descriptors, outputs, timings, error."""

from __future__ import annotations

import sys
from typing import Any

from core.contract import GpuInfo, InputDescriptor, JobMetadata, JobParams, storable_params, utc_now

NO_GPU = GpuInfo(name="cpu", count=0)


def gpu_info(engine_name: str) -> GpuInfo:
    """The GPU this worker runs jobs on, for the run's cost: CUDA's first device name and the device count.

    The preview engine never uses a GPU (`cpu`, 0). torch is only looked at when an engine already imported it:
    this module must not pull torch into a process (the local endpoint on the preview engine has none).
    """
    torch = sys.modules.get("torch")
    if engine_name == "preview" or torch is None:
        return NO_GPU
    try:
        if not torch.cuda.is_available():
            return NO_GPU
        return GpuInfo(name=str(torch.cuda.get_device_name(0))[:128], count=int(torch.cuda.device_count()))
    except Exception:  # a broken driver reads as no GPU: the run is still recorded, only not priced
        return NO_GPU


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
    gpu: GpuInfo | None = None,
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
        gpu=gpu,
    )
