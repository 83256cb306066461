"""The local endpoint's HTTP API: RunPod's `/v2/{endpoint_id}/…` routes and response shapes.

run, runsync, status, cancel, retry, health, purge-queue: what `runpod.Endpoint`, the studio client and the
dashboard call on RunPod's cloud, answered here by worker processes running the same job code. `/files/{key}`
serves the local artifact store, for `STUDIO_FILES_BASE_URL`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from worker.contract import JobError, JobStatus, Limits
from worker.endpoint.lock import DataDirLock
from worker.endpoint.queue import JobQueue, QueuedJob, job_view, now_ms
from worker.endpoint.runner import CANCEL_GRACE_S, JobRunner, WorkerPool
from worker.endpoint.webhooks import WebhookSender, webhook_problem
from worker.settings import Settings
from worker.store import LocalStore
from worker.workdirs import sweep

RUNSYNC_WAIT_MS = 90_000
RUNSYNC_WAIT_RANGE_MS = (1_000, 300_000)
EXECUTION_TIMEOUT_RANGE_MS = (5_000, 7 * 24 * 3600 * 1000)
TTL_RANGE_MS = (10_000, 7 * 24 * 3600 * 1000)
DEFAULT_TTL_MS = 24 * 3600 * 1000
RUNSYNC_POLL_S = 0.1
RESULT_RETENTION_S = 7 * 24 * 3600
"""RunPod keeps /run results for 30 minutes; locally they stay a week (the catalogue keeps them for good)."""


class Refused(Exception):
    """A request the endpoint answers with an HTTP error and RunPod's `{"error": message}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authorised(header: str, api_key: str) -> bool:
    """Whether an Authorization header carries the key, as `Bearer <key>` or the bare key (RunPod takes both)."""
    scheme, _, rest = header.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header.strip()
    return hmac.compare_digest(token.encode(), api_key.encode())


@dataclass(frozen=True)
class Policy:
    """RunPod's per-request execution policy, checked: all times in milliseconds."""

    execution_timeout_ms: int
    ttl_ms: int


def _whole_ms(policy: dict[str, Any], name: str, default: int, allowed: tuple[int, int]) -> int:
    value = policy.get(name)
    if value is None:
        return default
    low, high = allowed
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(400, f"policy.{name} must be whole milliseconds from {low} to {high} (7 days); got {value!r}")
    return value


def job_policy(payload: dict[str, Any], settings: Settings) -> Policy:
    """The job's policy: `policy.executionTimeout` (else STUDIO_EXECUTION_TIMEOUT_S), `policy.ttl` (the longest
    it may wait in the queue, RunPod's default 24 h), each checked against RunPod's rules. `policy.lowPriority` is
    checked and has no effect: on RunPod it holds back worker scaling, and one machine has none to hold back.
    """
    policy = payload.get("policy")
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise Refused(400, 'policy must be an object, e.g. {"executionTimeout": 600000, "ttl": 3600000}')
    low_priority = policy.get("lowPriority", False)
    if not isinstance(low_priority, bool):
        raise Refused(400, f"policy.lowPriority must be true or false; got {low_priority!r}")
    return Policy(
        execution_timeout_ms=_whole_ms(
            policy, "executionTimeout", int(settings.execution_timeout_s * 1000), EXECUTION_TIMEOUT_RANGE_MS
        ),
        ttl_ms=_whole_ms(policy, "ttl", DEFAULT_TTL_MS, TTL_RANGE_MS),
    )


async def read_body(request: Request, limit: int, route: str) -> bytes:
    """The request body, refused with RunPod's limit when it is larger.

    An oversized body is still read to its end (and dropped), so the client gets the 413 answer rather than a
    connection reset halfway through its upload.
    """
    body = bytearray()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            body.extend(chunk)
    if size > limit:
        raise Refused(
            413,
            f"the request body is {size / 1024 / 1024:.1f} MB; {route} takes at most {limit // (1024 * 1024)} MB. "
            "Upload media to the artifact store and send its URL or path instead of base64 "
            "(worker.client.prepare_input does this).",
        )
    return bytes(body)


def create_app(
    settings: Settings, *, runner: JobRunner | None = None, cancel_grace_s: float = CANCEL_GRACE_S
) -> FastAPI:
    """The FastAPI app over the queue in settings.data_dir, with its worker pool.

    `runner` is what workers call for each job (default: the pipeline's run_job with the configured engine). It
    must be importable by name (a module-level function), since workers are spawned processes. Creating the app
    takes the data dir's lock, records jobs a dead endpoint left running, and forgets results past retention.
    """
    folder = settings.data_dir / "endpoint"
    lock = DataDirLock(folder / "endpoint.lock")
    lock.acquire()
    queue = JobQueue(folder / "queue.db")
    queue.recover_lost()
    sweep(settings.work_root)  # the job folders of workers that died with the last endpoint
    queue.forget_finished_before(now_ms() - RESULT_RETENTION_S * 1000)
    pool = WorkerPool(
        settings,
        queue,
        workers=settings.local_workers,
        runner=runner,
        retention_s=RESULT_RETENTION_S,
        cancel_grace_s=cancel_grace_s,
    )

    webhooks = WebhookSender(queue, settings=settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        pool.start()
        webhooks.start()
        try:
            yield
        finally:
            await run_in_threadpool(pool.stop)
            await run_in_threadpool(webhooks.stop)
            lock.release()

    app = FastAPI(title="InfiniteTalk Studio local endpoint", lifespan=lifespan)
    app.state.queue = queue
    app.state.pool = pool

    @app.exception_handler(Refused)
    async def _refused(_: Request, error: Refused) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": problems}, status_code=400)

    @app.middleware("http")
    async def _authorise(request: Request, call_next: Any) -> Any:
        guarded = settings.api_key and request.url.path.startswith("/v2/")
        if guarded and not authorised(request.headers.get("authorization", ""), settings.api_key or ""):
            return JSONResponse(
                {"error": "Unauthorized: send the endpoint's API key as `Authorization: Bearer <key>`"},
                status_code=401,
            )
        return await call_next(request)

    def known(endpoint_id: str) -> None:
        if endpoint_id != settings.endpoint_id:
            raise Refused(404, f"endpoint {endpoint_id!r} not found; this local endpoint is {settings.endpoint_id!r}")

    def found(job: QueuedJob | None, job_id: str) -> QueuedJob:
        if job is None:
            raise Refused(404, f"job {job_id!r} not found (results are kept for {RESULT_RETENTION_S // 86400} days)")
        return job

    async def submit(endpoint_id: str, request: Request, limit: int, route: str, prefix: str) -> QueuedJob:
        known(endpoint_id)
        body = await read_body(request, limit, route)
        try:
            payload = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise Refused(400, f"the request body is not JSON: {error}") from None
        if not isinstance(payload, dict) or "input" not in payload:
            raise Refused(400, 'send {"input": {...}} as the request body')
        webhook = payload.get("webhook")
        if webhook is not None:
            problem = await run_in_threadpool(webhook_problem, webhook, settings)
            if problem:
                raise Refused(400, problem)
            webhook = webhook.strip()
        policy = job_policy(payload, settings)
        job = await run_in_threadpool(
            partial(queue.enqueue, webhook=webhook, ttl_ms=policy.ttl_ms),
            f"{prefix}{uuid.uuid4()}",
            payload["input"],
            policy.execution_timeout_ms,
        )
        pool.notify()
        return job

    @app.post("/v2/{endpoint_id}/run")
    async def run(endpoint_id: str, request: Request) -> dict[str, Any]:
        job = await submit(endpoint_id, request, Limits.RUN_PAYLOAD_BYTES, "/run", "")
        return {"id": job.id, "status": job.status}

    @app.post("/v2/{endpoint_id}/runsync")
    async def runsync(endpoint_id: str, request: Request, wait: int = RUNSYNC_WAIT_MS) -> dict[str, Any]:
        low, high = RUNSYNC_WAIT_RANGE_MS
        if not low <= wait <= high:
            raise Refused(400, f"wait must be from {low} to {high} ms; got {wait}")
        job = await submit(endpoint_id, request, Limits.RUNSYNC_PAYLOAD_BYTES, "/runsync", "sync-")
        deadline = time.monotonic() + wait / 1000
        current = job
        while current.status not in JobStatus.FINAL and time.monotonic() < deadline:
            await asyncio.sleep(RUNSYNC_POLL_S)
            current = await run_in_threadpool(queue.get, job.id) or current
        return job_view(current)

    @app.get("/v2/{endpoint_id}/status/{job_id}")
    @app.post("/v2/{endpoint_id}/status/{job_id}")
    def status(endpoint_id: str, job_id: str) -> dict[str, Any]:
        known(endpoint_id)
        return job_view(found(queue.get(job_id), job_id))

    @app.post("/v2/{endpoint_id}/cancel/{job_id}")
    def cancel(endpoint_id: str, job_id: str) -> dict[str, Any]:
        known(endpoint_id)
        job = found(queue.request_cancel(job_id), job_id)
        return {"id": job.id, "status": job.status}

    @app.post("/v2/{endpoint_id}/retry/{job_id}")
    def retry(endpoint_id: str, job_id: str) -> dict[str, Any]:
        known(endpoint_id)
        requeued, retried = queue.retry(job_id)
        job = found(requeued, job_id)
        if not retried:
            raise Refused(400, f"only FAILED or TIMED_OUT jobs can be retried; job {job_id!r} is {job.status}")
        pool.notify()
        return {"id": job.id, "status": job.status}

    @app.get("/v2/{endpoint_id}/health")
    def health(endpoint_id: str) -> dict[str, Any]:
        known(endpoint_id)
        counts, busy = queue.snapshot()  # one read for both halves, so they describe the same instant
        return {
            "jobs": {
                "completed": counts[JobStatus.COMPLETED],
                "failed": counts[JobStatus.FAILED] + counts[JobStatus.TIMED_OUT],
                "inProgress": counts[JobStatus.IN_PROGRESS],
                "inQueue": counts[JobStatus.IN_QUEUE],
                "retried": counts["retried"],
            },
            "workers": pool.states(busy),
        }

    @app.post("/v2/{endpoint_id}/purge-queue")
    def purge(endpoint_id: str) -> dict[str, Any]:
        known(endpoint_id)
        return {"removed": queue.purge_queue(), "status": "completed"}

    @app.get("/files/{key:path}")
    def files(key: str) -> FileResponse:
        try:
            path = LocalStore(settings.artifact_dir).path(key)
        except JobError:
            raise Refused(404, f"no file {key!r} in the local store") from None
        if not path.is_file() or path.name.endswith(".partial"):
            raise Refused(404, f"no file {key!r} in the local store")
        return FileResponse(path)

    return app
