"""The local endpoint's HTTP API: RunPod's `/v2/{endpoint_id}/…` routes and response shapes.

run, runsync, status, cancel, health, purge-queue — what `runpod.Endpoint`, the studio client and the dashboard
call on RunPod's cloud, answered here by worker processes running the same handler.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from worker.contract import JobStatus, Limits
from worker.endpoint.queue import JobQueue, QueuedJob
from worker.endpoint.runner import WorkerPool, retention_cutoff
from worker.settings import Settings

RUNSYNC_WAIT_S = 90.0
RESULT_RETENTION_S = 7 * 24 * 3600
"""RunPod keeps /run results for 30 minutes; locally they stay a week (the catalogue keeps them for good)."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def job_view(job: QueuedJob) -> dict[str, Any]:
    """A job as RunPod's /status returns it."""
    view: dict[str, Any] = {"id": job.id, "status": job.status, "delayTime": job.delay_ms}
    if job.started_ms is not None:
        view["executionTime"] = job.execution_ms
    if job.status == JobStatus.IN_PROGRESS and job.progress is not None:
        view["output"] = job.progress
    elif job.status in JobStatus.FINAL:
        if job.output is not None:
            view["output"] = job.output
        if job.status != JobStatus.COMPLETED and job.error is not None:
            # RunPod gives `error` as a string; the structured error stays in output.error.
            view["error"] = job.error if isinstance(job.error, str) else json.dumps(job.error)
    return view


def create_app(settings: Settings, *, runner_path: str | None = None, start_workers: bool = True) -> FastAPI:
    """The FastAPI app, its queue under settings.data_dir and its worker pool."""
    queue = JobQueue(settings.data_dir / "endpoint" / "queue.db")
    queue.recover_lost()
    queue.forget_finished_before(retention_cutoff(RESULT_RETENTION_S))
    pool = WorkerPool(
        settings, queue, workers=settings.local_workers, **({"runner_path": runner_path} if runner_path else {})
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            pool.start()
        try:
            yield
        finally:
            pool.stop()

    app = FastAPI(title="InfiniteTalk Studio local endpoint", docs_url="/docs", lifespan=lifespan)
    app.state.queue = queue
    app.state.pool = pool

    @app.middleware("http")
    async def _authorise(request: Request, call_next: Any) -> Any:
        if settings.api_key and request.url.path.startswith("/v2/"):
            given = request.headers.get("authorization", "")
            token = given.removeprefix("Bearer ").strip()
            if token != settings.api_key:
                return _error(401, "Unauthorized: send the endpoint's API key as `Authorization: Bearer <key>`")
        return await call_next(request)

    def _known(endpoint_id: str) -> JSONResponse | None:
        if endpoint_id != settings.endpoint_id:
            return _error(404, f"endpoint {endpoint_id!r} not found; this local endpoint is {settings.endpoint_id!r}")
        return None

    async def _submit(endpoint_id: str, request: Request, limit: int) -> QueuedJob | JSONResponse:
        if (missing := _known(endpoint_id)) is not None:
            return missing
        body = await request.body()
        if len(body) > limit:
            return _error(
                413,
                f"payload is {len(body) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB — upload media to the "
                "artifact store and send URLs or paths instead of base64",
            )
        try:
            payload = json.loads(body or b"{}")
        except json.JSONDecodeError as error:
            return _error(400, f"the request body is not JSON: {error}")
        if not isinstance(payload, dict) or "input" not in payload:
            return _error(400, 'send {"input": {...}} as the request body')
        timeout_ms = int(settings.execution_timeout_s * 1000)
        policy = payload.get("policy") or {}
        if (
            isinstance(policy, dict)
            and isinstance(policy.get("executionTimeout"), int)
            and policy["executionTimeout"] > 0
        ):
            timeout_ms = policy["executionTimeout"]
        job_id = f"local-{uuid.uuid4().hex}"
        return queue.enqueue(job_id, payload["input"], timeout_ms)

    @app.post("/v2/{endpoint_id}/run")
    async def run(endpoint_id: str, request: Request) -> Any:
        job = await _submit(endpoint_id, request, Limits.RUN_PAYLOAD_BYTES)
        if isinstance(job, JSONResponse):
            return job
        return {"id": job.id, "status": job.status}

    @app.post("/v2/{endpoint_id}/runsync")
    async def runsync(endpoint_id: str, request: Request, wait: int | None = None) -> Any:
        job = await _submit(endpoint_id, request, Limits.RUNSYNC_PAYLOAD_BYTES)
        if isinstance(job, JSONResponse):
            return job
        waited = 0.0
        limit = min(RUNSYNC_WAIT_S, wait / 1000) if wait else RUNSYNC_WAIT_S
        current: QueuedJob | None = job
        while current is not None and current.status not in JobStatus.FINAL and waited < limit:
            await asyncio.sleep(0.2)
            waited += 0.2
            current = queue.get(job.id)
        return job_view(current or job)

    @app.get("/v2/{endpoint_id}/status/{job_id}")
    @app.post("/v2/{endpoint_id}/status/{job_id}")
    def status(endpoint_id: str, job_id: str) -> Any:
        if (missing := _known(endpoint_id)) is not None:
            return missing
        job = queue.get(job_id)
        if job is None:
            return _error(404, f"job {job_id!r} not found (finished results are kept for 7 days)")
        return job_view(job)

    @app.post("/v2/{endpoint_id}/cancel/{job_id}")
    def cancel(endpoint_id: str, job_id: str) -> Any:
        if (missing := _known(endpoint_id)) is not None:
            return missing
        job = queue.request_cancel(job_id)
        if job is None:
            return _error(404, f"job {job_id!r} not found")
        return {"id": job.id, "status": job.status}

    @app.get("/v2/{endpoint_id}/health")
    def health(endpoint_id: str) -> Any:
        if (missing := _known(endpoint_id)) is not None:
            return missing
        counts = queue.counts()
        return {
            "jobs": {
                "completed": counts[JobStatus.COMPLETED],
                "failed": counts[JobStatus.FAILED] + counts[JobStatus.TIMED_OUT],
                "inProgress": counts[JobStatus.IN_PROGRESS],
                "inQueue": counts[JobStatus.IN_QUEUE],
                "retried": counts["retried"],
            },
            "workers": pool.states(),
        }

    @app.post("/v2/{endpoint_id}/purge-queue")
    def purge(endpoint_id: str) -> Any:
        if (missing := _known(endpoint_id)) is not None:
            return missing
        return {"removed": queue.purge_queue(), "status": "completed"}

    return app
