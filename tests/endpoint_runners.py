"""Job runners with run_job's signature, for endpoint tests and the endpoint benchmark.

`paced` stands in for the pipeline where a test needs control over a job's length: it reports progress chunk by
chunk through the same sink, honours the same cancel token, and returns a result of the same shape.
"""

from __future__ import annotations

import time
from typing import Any

from core.contract import JobError, Stage
from core.settings import Settings
from worker.progress import CancelToken, ProgressSink, Reporter


def paced(
    raw_input: Any,
    job_id: str,
    *,
    settings: Settings,
    sink: ProgressSink,
    cancel: CancelToken | None = None,
    endpoint_id: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """`{"chunks": n, "chunk_s": s}` runs n chunks of s seconds; `{"fail": "E_..."}` fails with that code.

    `{"ignore_cancel": true}` never looks at the cancel token, like a job stuck inside one long step;
    `{"raise": "text"}` raises instead of returning, as run_job never does but another runner might;
    `{"partial_video": {...}}` announces that partial video before the chunks, as a streaming job does.
    """
    cancel = cancel or CancelToken()
    report = Reporter(sink, job_id)
    chunks = int(raw_input.get("chunks", 3))
    if raw_input.get("raise"):
        raise RuntimeError(raw_input["raise"])
    try:
        if raw_input.get("fail"):
            raise JobError(raw_input["fail"], "asked to fail", at_stage=Stage.GENERATION)
        if raw_input.get("partial_video"):
            report.partial(raw_input["partial_video"])
        report.stage(Stage.GENERATION_STARTED)
        for chunk in range(chunks):
            if not raw_input.get("ignore_cancel"):
                cancel.check(Stage.GENERATION)
            time.sleep(float(raw_input.get("chunk_s", 0.2)))
            report.generation(chunk + 1, chunks, {"chunk": chunk + 1, "chunks": chunks})
        report.stage(Stage.COMPLETED)
    except JobError as error:
        return {"status": "error", "job_id": job_id, "error": error.to_dict()}
    return {"status": "success", "job_id": job_id, "chunks": chunks, "endpoint_id": endpoint_id}


def instant(raw_input: Any, job_id: str, *, settings: Settings, sink: ProgressSink, **_: Any) -> dict[str, Any]:
    """A no-op job: one progress report and a result, for measuring the endpoint's own overhead."""
    sink({"stage": Stage.COMPLETED, "pct": 100.0, "job_id": job_id, "details": {}})
    return {"status": "success", "job_id": job_id}
