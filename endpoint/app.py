"""The local endpoint's HTTP API: RunPod's `/v2/{endpoint_id}/…` routes and response shapes.

run, runsync, status, cancel, retry, health, purge-queue: what `runpod.Endpoint`, the studio client and the
dashboard call on RunPod's cloud, answered here by worker processes running the same job code. Two routes of
RunPod's REST API v2 are answered too, for this endpoint's own worker processes, so Endpoint health reads the
same shapes from both: `GET /v2/serverless/{id}/workers` and `GET /v2/serverless/{id}/workers/{workerId}/logs`
(a Server-Sent Events stream). `GET /v2/{id}/jobs`, not RunPod's, lists the queued and running jobs with
their place in line (and those that ended in the last 5 minutes), so the dashboard shows jobs sent from
anywhere. `/files/{key}` serves the local artifact store, for `STUDIO_FILES_BASE_URL`.
"""

from __future__ import annotations

import asyncio
import ctypes
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
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from core.contract import JobError, JobStatus, Limits
from core.settings import Settings
from core.store import LocalStore
from endpoint import worker_logs
from endpoint.lock import DataDirLock
from endpoint.queue import RETRY_INPUT_S, JobQueue, QueuedJob, QueueFull, job_view, now_ms
from endpoint.runner import CANCEL_GRACE_S, JobRunner, WorkerPool
from endpoint.webhooks import WebhookSender, webhook_problem
from worker.workdirs import sweep

RUNSYNC_WAIT_MS = 90_000
RUNSYNC_WAIT_RANGE_MS = (1_000, 300_000)
EXECUTION_TIMEOUT_RANGE_MS = (5_000, 7 * 24 * 3600 * 1000)
TTL_RANGE_MS = (10_000, 7 * 24 * 3600 * 1000)
DEFAULT_TTL_MS = 24 * 3600 * 1000
RUNSYNC_POLL_S = 0.1
LISTED_FINISHED_S = 300
"""GET /jobs lists the jobs that ended this recently too: one that failed in a second still reaches Live."""
RESULT_RETENTION_S = 7 * 24 * 3600
"""RunPod keeps /run results for 30 minutes; locally they stay a week (the catalogue keeps them for good)."""
BODY_BUDGET_BYTES = 2 * Limits.RUNSYNC_PAYLOAD_BYTES
"""Request bodies read, parsed and stored at once, all together. Each held body costs about three times its size
while it is parsed and written; without a budget, 30 concurrent 19 MB /runsync calls took the API process from
87 MB to 2 GB, which it never gave back. A request waits its turn for the budget (its bytes stay in the kernel
meanwhile) up to the body timeout, then gets 429."""


LOG_TAIL_DEFAULT = 100
LOG_TAIL_MAX = 5000
LOG_FOLLOW_S = 0.5
"""How often a log stream looks for new lines of the worker it follows."""
WORKER_STATUSES = ("running", "idle", "initializing", "throttled", "unhealthy")


class Problem(Exception):
    """A refusal of a REST API v2 route, answered as RunPod's v2 answers: an RFC 9457 problem object
    (`{"title", "status", "detail"}`, `application/problem+json`)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The problem object."""
        title = {400: "Bad Request", 404: "Not Found"}.get(self.status, "Error")
        return {"title": title, "status": self.status, "detail": self.detail}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def log_tail(tail: str | None) -> int:
    """The `tail` query parameter: whole lines from 0 to 5000, 100 when absent (RunPod's LogTail)."""
    if tail is None:
        return LOG_TAIL_DEFAULT
    if not tail.isascii() or not tail.isdigit() or int(tail) > LOG_TAIL_MAX:
        raise Problem(400, f"tail must be a whole number of lines from 0 to {LOG_TAIL_MAX}; got {tail[:40]!r}")
    return int(tail)


class Refused(Exception):
    """A request the endpoint answers with an HTTP error and RunPod's `{"error": message}` body.

    `close` ends the connection after the answer: the request's body was not read to its end, so the connection
    cannot carry another request.
    """

    def __init__(self, status: int, message: str, *, close: bool = False, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.retry_after_s = retry_after_s


def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc: nothing to tune
        return None


LIBC = _libc()
M_MMAP_THRESHOLD = -3
BIG_BODY_BYTES = 1024 * 1024


def give_memory_back() -> None:
    """Return freed heap memory to the system (glibc keeps it in per-thread arenas otherwise).

    Big bodies are parsed and written on the thread pool's threads; the buffers and SQLite's pages freed after
    each are scattered over many arenas, and glibc hands back only what sits at an arena's top. Called after a
    big request, so the API's size follows what it holds now, not what it once held.
    """
    if LIBC is not None:
        LIBC.malloc_trim(0)


def tune_allocator() -> None:
    """Allocations over 1 MB get their own mapping, returned the moment they are freed. glibc's default raises
    this threshold to the largest block freed so far (up to 32 MB), after which 20 MB bodies come from arenas."""
    if LIBC is not None:
        LIBC.mallopt(M_MMAP_THRESHOLD, BIG_BODY_BYTES)


class BodyBudget:
    """Bytes of request bodies the API holds at once; a request reserves its Content-Length before reading."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._freed = asyncio.Condition()

    @asynccontextmanager
    async def reserve(self, size: int, timeout_s: float) -> AsyncIterator[None]:
        """Hold `size` bytes of the budget for the block, waiting up to timeout_s for them; 429 after that."""
        size = min(size, self.capacity)
        async with self._freed:
            try:
                await asyncio.wait_for(self._freed.wait_for(lambda: self.held + size <= self.capacity), timeout_s)
            except TimeoutError:
                raise Refused(
                    429,
                    f"the endpoint is busy reading {self.held / 1024 / 1024:.0f} MB of other requests; retry in a "
                    "moment, or send media as URLs or paths instead of base64 (client.api.prepare_input)",
                    close=True,
                    retry_after_s=1,
                ) from None
            self.held += size
        try:
            yield
        finally:
            async with self._freed:
                self.held -= size
                self._freed.notify_all()


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


def _too_large(size: float, limit: int, route: str) -> Refused:
    return Refused(
        413,
        f"the request body is {size / 1024 / 1024:.1f} MB; {route} takes at most {limit // (1024 * 1024)} MB. "
        "Upload media to the artifact store and send its URL or path instead of base64 "
        "(client.api.prepare_input does this).",
        close=True,
    )


def declared_length(request: Request) -> int | None:
    """The request's Content-Length, None when it has none (chunked); 400 when it is not a number."""
    header = request.headers.get("content-length")
    if header is None:
        return None
    if not header.strip().isdigit() or len(header) > 20:
        raise Refused(400, f"Content-Length must be a whole number of bytes; got {header[:40]!r}", close=True)
    return int(header)


async def read_body(request: Request, limit: int, route: str, timeout_s: float) -> bytes:
    """The request body, refused with RunPod's limit when it is larger, or with 408 when it arrives too slowly.

    A body whose Content-Length is over the limit is refused before a byte of it is read (the connection is then
    closed); one without a length (chunked) is cut off as soon as it passes the limit. The whole body must arrive
    within timeout_s, so a client that trickles (or stops sending) cannot hold a slot and its memory for ever.
    """
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(declared, limit, route)
    body = bytearray()
    stream = request.stream().__aiter__()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(remaining, 0.001))
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise Refused(
                408,
                f"the request body did not arrive within {timeout_s:g} s ({len(body)} bytes came); send it faster, "
                "or raise STUDIO_LOCAL_BODY_TIMEOUT_S",
                close=True,
            ) from None
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(len(body), limit, route)
    return bytes(body)


def parse_body(body: bytes) -> Any:
    """The JSON body; 400 naming the problem for text that is not JSON, nests too deep or holds a huge number."""
    try:
        return json.loads(body or b"null")
    except RecursionError:
        raise Refused(400, "the request body is not usable JSON: it nests too deep; send a flatter object") from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, and ints past Python's 4300 digits
        raise Refused(400, f"the request body is not JSON: {str(error)[:200]}") from None


def create_app(
    settings: Settings, *, runner: JobRunner | None = None, cancel_grace_s: float = CANCEL_GRACE_S
) -> FastAPI:
    """The FastAPI app over the queue in settings.data_dir, with its worker pool.

    `runner` is what workers call for each job (default: the pipeline's run_job with the configured engine). It
    must be importable by name (a module-level function), since workers are spawned processes. Creating the app
    takes the data dir's lock, records jobs a dead endpoint left running, and forgets results past retention.
    """
    tune_allocator()
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
    budget = BodyBudget(BODY_BUDGET_BYTES)

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
        headers = {"Connection": "close"} if error.close else {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(error.retry_after_s)
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    @app.exception_handler(Problem)
    async def _problem(_: Request, error: Problem) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status, media_type="application/problem+json")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        # Whatever slipped past the checks still answers in RunPod's shape, not as a plain-text 500.
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the endpoint's log"}, 500)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": problems}, status_code=400)

    @app.middleware("http")
    async def _authorise(request: Request, call_next: Any) -> Any:
        # Every route, /docs, /openapi.json and /files/ included: with a key set, nothing is served without it.
        guarded = bool(settings.api_key)
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
        timeout_s = settings.local_body_timeout_s
        declared = declared_length(request)
        if declared is not None and declared > limit:
            raise _too_large(declared, limit, route)
        size = limit if declared is None else declared
        try:
            async with budget.reserve(size, timeout_s):
                body = await read_body(request, limit, route, timeout_s)
                payload = await run_in_threadpool(parse_body, body)
                del body
                return await enqueue(payload, prefix)
        finally:
            if size > BIG_BODY_BYTES:
                payload = None
                await run_in_threadpool(give_memory_back)

    async def enqueue(payload: Any, prefix: str) -> QueuedJob:
        if not isinstance(payload, dict) or "input" not in payload:
            raise Refused(400, 'send {"input": {...}} as the request body')
        webhook = payload.get("webhook")
        if webhook is not None:
            problem = await run_in_threadpool(webhook_problem, webhook, settings)
            if problem:
                raise Refused(400, problem)
            webhook = webhook.strip()
        policy = job_policy(payload, settings)
        try:
            job = await run_in_threadpool(
                partial(
                    queue.enqueue,
                    webhook=webhook,
                    ttl_ms=policy.ttl_ms,
                    max_queued=settings.local_max_queued,
                    max_queued_bytes=settings.local_max_queued_mb * 1024 * 1024,
                ),
                f"{prefix}{uuid.uuid4()}",
                payload["input"],
                policy.execution_timeout_ms,
            )
        except QueueFull as error:
            raise Refused(429, str(error), retry_after_s=5) from None
        except (RecursionError, ValueError) as error:  # nesting json.loads took but json.dumps does not
            problem = f"the job input cannot be stored ({type(error).__name__}); send a flatter object"
            raise Refused(400, problem) from None
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
            latest = await run_in_threadpool(queue.get, job.id)
            current = latest or current
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
        if not retried and job.status in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise Refused(
                400,
                f"job {job_id!r} ended more than {RETRY_INPUT_S // 3600} h ago and its input is no longer kept; "
                "submit it again",
            )
        if not retried:
            raise Refused(400, f"only FAILED or TIMED_OUT jobs can be retried; job {job_id!r} is {job.status}")
        pool.notify()
        return {"id": job.id, "status": job.status}

    @app.get("/v2/{endpoint_id}/jobs")
    def jobs(endpoint_id: str) -> dict[str, Any]:
        # Not in RunPod's API, which lists no jobs: here the dashboard learns of jobs sent from anywhere.
        known(endpoint_id)
        return {
            "jobs": [
                {
                    "id": job.id,
                    "status": job.status,
                    "position": job.position,
                    "createdMs": job.created_ms,
                    "startedMs": job.started_ms,
                    "prompt": job.prompt,
                    "input": job.input,
                }
                for job in queue.unfinished(finished_since_ms=now_ms() - LISTED_FINISHED_S * 1000)
            ]
        }

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

    def serverless(endpoint_id: str) -> None:
        if endpoint_id != settings.endpoint_id:
            raise Problem(404, f"serverless endpoint {endpoint_id!r} not found; this one is {settings.endpoint_id!r}")

    @app.get("/v2/serverless/{endpoint_id}/workers")
    def workers(endpoint_id: str) -> dict[str, Any]:
        """RunPod's ListEndpointWorkersResponse for this endpoint's worker processes: no GPU and no image (they
        run this machine's code, so none is ever stale), the data center `local`."""
        serverless(endpoint_id)
        now = time.time()
        views = pool.describe()
        summary = {name: sum(1 for v in views if v.status == name.upper()) for name in WORKER_STATUSES}
        return {
            "endpointVersion": 1,
            "summary": {**summary, "total": len(views)},
            "workers": [
                {
                    "id": str(view.pid),
                    "status": view.status,
                    "isStale": False,
                    "version": 1,
                    "gpuCount": 0,
                    "image": None,
                    "uptimeSeconds": max(0, int(now - view.started)),
                    "gpuTypeId": None,
                    "dataCenterId": "local",
                    "startedAt": _iso(view.started),
                }
                for view in views
            ],
        }

    @app.get("/v2/serverless/{endpoint_id}/workers/{worker_id}/logs")
    async def worker_log(
        endpoint_id: str,
        worker_id: str,
        request: Request,
        source: str | None = None,
        tail: str | None = None,
        since: str | None = None,
    ) -> StreamingResponse:
        """A worker's log as RunPod streams it: Server-Sent Events, each `id: <ts>/<seq>` and `data: {"ts",
        "source": "container", "line"}`, first the last `tail` lines (or those after `since` / Last-Event-ID),
        then each new line as the worker writes it, until the client goes, the worker is gone or the endpoint
        stops. The lines are the worker's structured log (core/logs.py), as it writes them to stderr."""
        serverless(endpoint_id)
        if source not in (None, "container", "system"):
            raise Problem(400, f"source must be container or system; got {str(source)[:40]!r}")
        count = log_tail(tail)
        cursor_text = request.headers.get("last-event-id") or since
        cursor = worker_logs.parse_time(cursor_text) if cursor_text else None
        if cursor_text and cursor is None:
            raise Problem(400, f"since / Last-Event-ID must be an RFC 3339 time; got {cursor_text[:40]!r}")
        folder = worker_logs.folder_for(queue.path)
        path = worker_logs.path_for(folder, int(worker_id)) if worker_id.isascii() and worker_id.isdigit() else None
        if path is None or (int(worker_id) not in pool.pids() and not path.exists()):
            raise Problem(404, f"worker {worker_id[:40]!r} not found on endpoint {endpoint_id!r}")
        pid = int(worker_id)

        async def events() -> AsyncIterator[str]:
            if source == "system":  # the local endpoint keeps no host log apart from the worker's own
                return
            lines, offset = await run_in_threadpool(worker_logs.backlog, path, tail=count, since=cursor)
            seq = lines[-1].seq if lines else 0
            for line in lines:
                yield f"id: {line.event_id}\ndata: {line.data()}\n\n"
            while not pool.stopping and pid in pool.pids() and not await request.is_disconnected():
                await asyncio.sleep(LOG_FOLLOW_S)
                texts, offset = await run_in_threadpool(worker_logs.read_lines, path, offset)
                for text in texts:
                    seq += 1
                    line = worker_logs.LogLine(worker_logs.time_of(text), text, seq)
                    yield f"id: {line.event_id}\ndata: {line.data()}\n\n"

        headers = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.get("/files/{key:path}")
    def files(key: str) -> FileResponse:
        if "\x00" in key:
            raise Refused(400, "a file key cannot hold a NUL byte")
        try:
            path = LocalStore(settings.artifact_dir).path(key)
        except (JobError, ValueError, OSError):
            raise Refused(404, f"no file {key!r} in the local store") from None
        if not path.is_file() or path.name.endswith(".partial"):
            raise Refused(404, f"no file {key!r} in the local store")
        return FileResponse(path)

    return app
