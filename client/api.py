"""One client for the local endpoint and RunPod's cloud: the same calls, the same shapes.

Used by the dashboard and scripts; imports neither torch nor the pipeline. Requests go straight to the endpoint
API with `requests` rather than through `runpod.Endpoint`: the SDK's session retries only GETs on 408/429 (its
urllib3 Retry is mounted for http:// alone), gives 3 s to /health and /cancel, raises a bare RuntimeError on 401,
and cannot tell a submission that never left from one whose answer was lost. Tests drive the local endpoint with
both, so the two stay interchangeable.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from core.contract import ErrorCode, JobError, JobStatus, Limits, Stage
from core.settings import Settings
from core.store import Store, upload_key

RETRY_STATUSES = {429, 500, 502, 503, 504}
NOT_ACTED_ON_STATUSES = {429, 503}
MAX_BACKOFF_S = 30.0
POLL_START_S = 2.0
POLL_MAX_S = 10.0
LOCAL_POLL_START_S = 0.5


class EndpointError(RuntimeError):
    """The endpoint refused a request or could not be reached; the message says what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class JobState:
    """A job as the endpoint reports it."""

    id: str
    status: str
    progress: dict[str, Any] | None = None
    output: Any = None
    error: Any = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """True once the job reached a final status."""
        return self.status in JobStatus.FINAL

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> JobState:
        """Read RunPod's status shape: `output` is the progress payload while IN_PROGRESS, the result after."""
        status = body.get("status", "")
        output = body.get("output")
        error = body.get("error")
        if isinstance(error, str):
            with contextlib.suppress(json.JSONDecodeError):
                error = json.loads(error)
        if isinstance(output, dict) and isinstance(output.get("error"), dict):
            error = output["error"]
        in_progress = status == JobStatus.IN_PROGRESS
        return cls(
            id=body.get("id", ""),
            status=status,
            progress=output if in_progress and isinstance(output, dict) else None,
            output=None if in_progress else output,
            error=error,
            delay_ms=body.get("delayTime"),
            execution_ms=body.get("executionTime"),
            raw=body,
        )


@dataclass(frozen=True)
class ListedJob:
    """A queued or running job as the local endpoint's listing gives it (see StudioClient.jobs)."""

    id: str
    status: str
    position: int | None
    created_ms: int | None
    prompt: str | None
    input: dict[str, Any] | None

    @classmethod
    def from_response(cls, body: Any) -> ListedJob | None:
        """One entry of `GET /jobs`, or None for an entry without an id and a status (it is skipped)."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("status"), str):
            return None
        position, created = body.get("position"), body.get("createdMs")
        return cls(
            id=body["id"],
            status=body["status"],
            position=position if isinstance(position, int) and not isinstance(position, bool) else None,
            created_ms=created if isinstance(created, int) and not isinstance(created, bool) else None,
            prompt=body["prompt"] if isinstance(body.get("prompt"), str) else None,
            input=body["input"] if isinstance(body.get("input"), dict) else None,
        )


class StudioClient:
    """Submit, follow, cancel and inspect jobs on the configured endpoint."""

    def __init__(self, settings: Settings, *, session: requests.Session | None = None, attempts: int = 5) -> None:
        self.settings = settings
        self.base = f"{settings.endpoint_base_url}/{settings.endpoint_id}"
        self.session = session or requests.Session()
        self.attempts = attempts

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _request(self, method: str, path: str, *, body: Any = None, submits: bool = False) -> dict[str, Any]:
        """One API call, with backoff on 429, 5xx and connection failures.

        A call that creates something (`submits`) is repeated only when the endpoint surely did not act on it: the
        connection could not be made, or it answered 429 or 503. A read timeout or a connection dropped after the
        request went out could mean the job was queued, so it is reported, not resent.
        """
        delay = 1.0
        data = json.dumps(body) if body is not None else None
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = self.session.request(
                    method, f"{self.base}{path}", data=data, headers=self._headers(), timeout=(5, 30)
                )
            except requests.ConnectionError as error:
                if submits and not _never_sent(error):
                    raise EndpointError(self._maybe_queued("dropped the connection")) from None
                if last:
                    raise EndpointError(self._unreachable(error)) from None
            except requests.Timeout:
                if submits:
                    raise EndpointError(self._maybe_queued("did not answer in time")) from None
                if last:
                    raise EndpointError(f"the endpoint at {self.base} did not answer in time") from None
            else:
                if response.status_code < 400:
                    return self._json(response)
                retry_ok = response.status_code in RETRY_STATUSES and (
                    not submits or response.status_code in NOT_ACTED_ON_STATUSES
                )
                if not retry_ok or last:
                    raise EndpointError(self._explain(response), response.status_code)
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _unreachable(self, error: requests.ConnectionError) -> str:
        hint = " (is it running? start it with `studio endpoint`)" if self.settings.is_local_endpoint else ""
        return f"cannot reach the endpoint at {self.base}{hint}: {_reason(error)}"

    def _maybe_queued(self, what: str) -> str:
        return (
            f"the endpoint at {self.base} {what} after the request was sent; the job may have been queued, so it "
            "was not sent again: check the endpoint's jobs before submitting it again"
        )

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise EndpointError(
                f"{self.base} answered HTTP {response.status_code} with something other than a JSON object "
                f"({response.text[:80]!r}): is RUNPOD_ENDPOINT_BASE_URL an endpoint API?",
                response.status_code,
            )
        return body

    @staticmethod
    def _explain(response: requests.Response) -> str:
        try:
            answer = response.json()
            detail = answer.get("error") if isinstance(answer, dict) else None
        except ValueError:
            detail = None
        detail = str(detail or response.text or response.reason)[:300]
        if response.status_code == 401:
            return "the endpoint refused the API key (401): check RUNPOD_API_KEY"
        if response.status_code == 404:
            return f"not found (404): {detail} — check RUNPOD_ENDPOINT_ID and the job id"
        if response.status_code == 413:
            return f"the request is too large (413): {detail}"
        if response.status_code == 429:
            return "the endpoint is rate limiting requests (429); try again in a minute"
        return f"the endpoint answered HTTP {response.status_code}: {detail}"

    def submit(
        self,
        job_input: dict[str, Any],
        *,
        execution_timeout_ms: int | None = None,
        ttl_ms: int | None = None,
        webhook: str | None = None,
    ) -> str:
        """Queue a job with /run and return its id.

        `execution_timeout_ms` and `ttl_ms` (the longest it may wait in the queue) become RunPod's `policy`;
        `webhook` is a URL the endpoint POSTs the job's final /status answer to.
        """
        body: dict[str, Any] = {"input": job_input}
        policy = {"executionTimeout": execution_timeout_ms, "ttl": ttl_ms}
        if any(policy.values()):
            body["policy"] = {name: value for name, value in policy.items() if value}
        if webhook:
            body["webhook"] = webhook
        size = len(json.dumps(body))
        if size > Limits.RUN_PAYLOAD_BYTES:
            raise EndpointError(
                f"the job is {size / 1e6:.1f} MB, over the {Limits.RUN_PAYLOAD_BYTES / 1e6:.0f} MB /run limit: "
                "upload media with prepare_input() first"
            )
        return str(self._request("POST", "/run", body=body, submits=True)["id"])

    def status(self, job_id: str) -> JobState:
        """The job's status, latest progress payload or result."""
        return JobState.from_response(self._request("GET", f"/status/{job_id}"))

    def cancel(self, job_id: str) -> JobState:
        """Cancel a job: at once when queued, at the next stage or chunk boundary when running."""
        return JobState.from_response(self._request("POST", f"/cancel/{job_id}"))

    def retry(self, job_id: str) -> JobState:
        """Run a FAILED or TIMED_OUT job again under the same id (RunPod's /retry)."""
        return JobState.from_response(self._request("POST", f"/retry/{job_id}", submits=True))

    def jobs(self) -> list[ListedJob] | None:
        """Every queued and running job on the endpoint, queued ones with their place in line; None for RunPod.

        RunPod's job API has no way to list jobs (only /status of an id already known), so there the dashboard
        knows the jobs it or a request file in the bucket recorded; the local endpoint lists its queue.
        """
        if not self.settings.is_local_endpoint:
            return None
        listed = self._request("GET", "/jobs").get("jobs")
        if not isinstance(listed, list):
            raise EndpointError(f"{self.base}/jobs answered without a `jobs` list: is this the local endpoint?")
        return [job for job in map(ListedJob.from_response, listed) if job is not None]

    def health(self) -> dict[str, Any]:
        """Workers by state and jobs by status."""
        return self._request("GET", "/health")

    def purge_queue(self) -> dict[str, Any]:
        """Drop every job still waiting in the queue."""
        return self._request("POST", "/purge-queue")

    def wait(
        self, job_id: str, on_update: Callable[[JobState], None] | None = None, *, timeout_s: float | None = None
    ) -> JobState:
        """Poll until the job finishes: every 2 s (0.5 s locally), backing off to 10 s while nothing changes."""
        start = LOCAL_POLL_START_S if self.settings.is_local_endpoint else POLL_START_S
        interval = start
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last: Any = None
        while True:
            state = self.status(job_id)
            if on_update is not None:
                on_update(state)
            if state.finished:
                return state
            marker = (state.status, json.dumps(state.progress, sort_keys=True))
            interval = start if marker != last else min(interval * 1.5, POLL_MAX_S)
            last = marker
            if deadline is not None and time.monotonic() + interval > deadline:
                return state
            time.sleep(interval)


def _never_sent(error: requests.ConnectionError) -> bool:
    """Whether a failed request surely never reached the server: no connection could be made at all."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    cause = error.args[0] if error.args else None
    return isinstance(getattr(cause, "reason", cause), NewConnectionError)


def _reason(error: requests.ConnectionError) -> str:
    cause = error.args[0] if error.args else error
    return str(getattr(cause, "reason", cause))[:200]


def _is_local_file(ref: Any) -> bool:
    if not isinstance(ref, str) or len(ref) > 4096 or "://" in ref[:16] or ref.startswith("data:"):
        return False
    try:
        return Path(ref).is_file()
    except (OSError, ValueError):
        return False


def _decode_base64(ref: str) -> bytes | None:
    """The bytes of a data: URL or bare base64 (either alphabet, any padding), or None when it is neither."""
    payload = ref.split(",", 1)[1] if ref.startswith("data:") and "," in ref else ref
    payload = "".join(payload.split())
    try:
        return base64.b64decode(
            payload + "=" * (-len(payload) % 4),
            altchars=b"-_" if "-" in payload or "_" in payload else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        return None


def upload_media(store: Store, data: bytes, name: str) -> str:
    """Put media in the artifact store under uploads/{sha256}/{name}; return a reference a worker can fetch.

    The local folder store gives a path under its root (an allowed root for the local endpoint's workers when
    they share the data dir); S3 gives a presigned URL.
    """
    key = upload_key(data, name)
    if not store.exists(key):
        store.put_bytes(key, data)
    local = store.local_path(key)
    return str(local) if local is not None else store.url(key)


def prepare_input(
    job_input: dict[str, Any], store: Store, *, remote_worker: bool = False, inline_limit: int = 256 * 1024
) -> dict[str, Any]:
    """A copy of the input with local files and large base64 media moved to the store and sent by reference.

    Keeps /run payloads far below RunPod's 10 MB limit however big the media are. URLs, paths that are not files
    here (a worker's /runpod-volume paths) and small base64 stay as they are. With `remote_worker` (a RunPod
    endpoint) the store must be one that worker can reach: a local folder is refused, naming the fix.
    """
    if isinstance(job_input.get("batch"), list):
        return {
            **job_input,
            "batch": [
                prepare_input(item, store, remote_worker=remote_worker, inline_limit=inline_limit)
                if isinstance(item, dict)
                else item
                for item in job_input["batch"]
            ],
        }
    prepared = dict(job_input)

    def upload(field: str, data: bytes, name: str) -> str:
        if remote_worker and store.kind == "volume":
            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                f"{field}: media on this machine must be uploaded for a RunPod worker to read it, and the artifact "
                "store is a local folder; set S3_BUCKET and the S3_* keys, or give an https URL",
                at_stage=Stage.VALIDATION_STARTED,
            )
        return upload_media(store, data, name)

    def convert(ref: Any, field: str, name: str) -> Any:
        if _is_local_file(ref):
            path = Path(ref)
            return upload(field, path.read_bytes(), path.name)
        if isinstance(ref, str) and len(ref) > inline_limit and "://" not in ref[:16]:
            data = _decode_base64(ref)
            # Not base64 after all: sent as it is, so the worker names the field and the fix.
            return ref if data is None else upload(field, data, name)
        return ref

    if "cond_video" in prepared:
        prepared["cond_video"] = convert(prepared["cond_video"], "cond_video", "cond_video")
    if isinstance(prepared.get("cond_audio"), dict):
        prepared["cond_audio"] = {
            key: convert(value, f"cond_audio.{key}", key) if key in ("person1", "person2") else value
            for key, value in prepared["cond_audio"].items()
        }
    return prepared
