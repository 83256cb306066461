"""One client for the local endpoint and RunPod's cloud: the same calls, the same shapes.

Used by the dashboard and scripts; imports neither torch nor the pipeline. Requests go straight to the endpoint
API with `requests` rather than through `runpod.Endpoint`, because the SDK gives no control over retries, backoff
or which failures may be retried without submitting a job twice; tests check that both speak to the local
endpoint identically.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from worker.contract import JobStatus, Limits
from worker.settings import Settings
from worker.store import Store

RETRY_STATUSES = {429, 500, 502, 503, 504}
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
        """One API call with backoff on 429/5xx and connection failures.

        A submission is retried only when the endpoint surely did not take it: a refused connection or a 429/503
        answer. A read timeout after sending /run could mean the job was queued, so it is not resubmitted.
        """
        delay = 1.0
        data = json.dumps(body) if body is not None else None
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.session.request(
                    method, f"{self.base}{path}", data=data, headers=self._headers(), timeout=(5, 30)
                )
            except requests.ConnectionError as error:
                if attempt == self.attempts:
                    raise EndpointError(f"cannot reach the endpoint at {self.base}: {type(error).__name__}") from None
            except requests.Timeout:
                if submits or attempt == self.attempts:
                    raise EndpointError(
                        f"the endpoint at {self.base} did not answer in time"
                        + (
                            "; the job may have been queued, check the endpoint before submitting again"
                            if submits
                            else ""
                        )
                    ) from None
            else:
                retry_ok = response.status_code in RETRY_STATUSES and (
                    not submits or response.status_code in (429, 503)
                )
                if response.status_code < 400:
                    return response.json()
                if not retry_ok or attempt == self.attempts:
                    raise EndpointError(self._explain(response), response.status_code)
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise EndpointError(f"the endpoint at {self.base} kept failing")

    @staticmethod
    def _explain(response: requests.Response) -> str:
        try:
            detail = response.json().get("error") or response.text
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            return "the endpoint refused the API key (401): check RUNPOD_API_KEY"
        if response.status_code == 404:
            return f"not found (404): {detail} — check RUNPOD_ENDPOINT_ID"
        if response.status_code == 429:
            return "the endpoint is rate limiting requests (429); try again in a minute"
        return f"the endpoint answered HTTP {response.status_code}: {str(detail)[:300]}"

    def submit(self, job_input: dict[str, Any], *, execution_timeout_ms: int | None = None) -> str:
        """Queue a job with /run and return its id."""
        body: dict[str, Any] = {"input": job_input}
        if execution_timeout_ms:
            body["policy"] = {"executionTimeout": execution_timeout_ms}
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


def _is_local_file(ref: Any) -> bool:
    if not isinstance(ref, str) or len(ref) > 4096 or "://" in ref[:16] or ref.startswith("data:"):
        return False
    try:
        return Path(ref).is_file()
    except OSError:
        return False


def upload_media(store: Store, data: bytes, name: str) -> str:
    """Put media in the artifact store under uploads/{sha256}/{name}; return a reference a worker can fetch."""
    digest = hashlib.sha256(data).hexdigest()
    key = f"uploads/{digest}/{Path(name).name or 'media'}"
    if not store.exists(key):
        store.put_bytes(key, data)
    if store.kind == "volume":
        return str(store.path(key))  # type: ignore[attr-defined]
    return store.url(key)


def prepare_input(job_input: dict[str, Any], store: Store, *, inline_limit: int = 256 * 1024) -> dict[str, Any]:
    """A copy of the input with local files and large base64 media moved to the store and sent by reference.

    Keeps /run payloads far below RunPod's 10 MB limit however big the media are.
    """
    if isinstance(job_input.get("batch"), list):
        return {
            **job_input,
            "batch": [prepare_input(item, store, inline_limit=inline_limit) for item in job_input["batch"]],
        }
    prepared = dict(job_input)

    def convert(ref: Any, name: str) -> Any:
        if _is_local_file(ref):
            path = Path(ref)
            return upload_media(store, path.read_bytes(), path.name)
        if isinstance(ref, str) and len(ref) > inline_limit and "://" not in ref[:16]:
            payload = ref.split(",", 1)[1] if ref.startswith("data:") else ref
            try:
                data = base64.b64decode(payload, validate=False)
            except ValueError:
                return ref  # not base64 after all: the worker reports it clearly
            return upload_media(store, data, name)
        return ref

    if "cond_video" in prepared:
        prepared["cond_video"] = convert(prepared["cond_video"], "cond_video")
    if isinstance(prepared.get("cond_audio"), dict):
        prepared["cond_audio"] = {
            key: convert(value, f"{key}.audio") if key in ("person1", "person2") else value
            for key, value in prepared["cond_audio"].items()
        }
    return prepared
