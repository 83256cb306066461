"""RunPod's REST API v2 (https://api.runpod.io/v2): the endpoint, its workers and their logs, the GPU catalog and
what was billed, as RunPod's OpenAPI document describes them (runpod/docs `api-reference-v2/openapi.json`; the part
the product uses is copied in tests/runpod_v2_openapi_subset.json with its commit).

One small class, shared by `studio deploy`, the dashboard's Endpoint health and the prices. It holds to
the document where the v1 API differed: list answers are wrapped (`{"endpoints": [...]}`) and unwrapped here;
errors are RFC 9457 problem objects, turned into a RunPodRestError whose first line is the `detail` and whose
further lines are the `errors[]` entries, one each; worker logs come as Server-Sent Events and are read up to a
line count, a quiet spell or a deadline. And it treats the server as something that may be hostile or wrong: ids
are quoted into paths (an id like `../../admin?x=` stays one path segment), redirects are never followed (a
redirect to another host would carry the API key there), an answer that is not JSON, not the documented shape or
larger than MAX_ANSWER_BYTES is one clear error rather than a traceback, and text quoted from an answer into an
error loses its control characters and is cut short.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from urllib3.exceptions import HTTPError

REST_API = "https://api.runpod.io/v2"
MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The most of one answer read: the largest documented answer (the GPU catalog) is tens of kilobytes."""
MAX_QUOTED = 300
"""The most characters of server text quoted into one line of an error."""
MAX_ERROR_LINES = 20
"""The most `errors[]` entries of a problem shown; the rest are counted."""
TIMEOUT_S = (10.0, 60.0)
"""Connect and read timeouts of one request."""

Model = TypeVar("Model", bound=BaseModel)


class RunPodRestError(Exception):
    """RunPod refused a request, could not be reached, or answered something the document does not describe.

    `str()` is the whole message, one line per fact: the first says which request and why, each further line is one
    entry of the problem's `errors[]`. `status` is the HTTP status when there was an answer."""

    def __init__(self, summary: str, errors: tuple[str, ...] = (), *, status: int | None = None) -> None:
        self.summary = summary
        self.errors = errors
        self.status = status
        super().__init__("\n".join((summary, *(f"  {line}" for line in errors))))

    @property
    def lines(self) -> list[str]:
        return [self.summary, *self.errors]


def clean(text: object, limit: int = MAX_QUOTED) -> str:
    """Server text made safe to print on one line: control characters (escape sequences, newlines) become
    spaces, runs of spaces one, and it is cut to `limit` characters."""
    flat = re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", str(text))).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def segment(value: str) -> str:
    """An id as one path segment: `/`, `?`, `#` and `%` are quoted, so they cannot change which resource is
    asked for; an empty id, `.` or `..` (which a URL resolves to another path, quoted or not) is refused."""
    if value in {"", ".", ".."}:
        raise RunPodRestError(f"{value!r} is not a RunPod id")
    return quote(value, safe="")


# ------------------------------------------------------------------------------------------------------------
# The answers, as the document's response schemas give them (only the fields the product reads are required
# beyond what the document requires; unknown fields are ignored, so a field RunPod adds breaks nothing).
# ------------------------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class Problem(_Answer):
    """An RFC 9457 problem object (ErrorResponse)."""

    title: str = ""
    status: int | None = None
    detail: str = ""
    errors: list[str] = Field(default_factory=list)


class NetworkVolume(_Answer):
    id: str
    name: str
    size: int
    data_center: str
    type: str | None = None


class EndpointGpu(_Answer):
    """EndpointGpuConfig: the pools workers may run on, minus `excluded_types`, and the CUDA constraint."""

    pools: list[str]
    count: int = 1
    excluded_types: list[str] = Field(default_factory=list)
    allowed_cuda_versions: list[str] = Field(default_factory=list)
    min_cuda_version: str | None = None


class EndpointWorkers(_Answer):
    min: int
    max: int
    idle_timeout: int | None = None


class Endpoint(_Answer):
    """A serverless endpoint (the Endpoint schema): its container settings sit on it, not on a template."""

    id: str
    name: str
    type: str | None = None
    image: str | None = None
    args: str | None = None
    disk: int | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list)
    registry: str | None = None
    gpu: EndpointGpu | None = None
    workers: EndpointWorkers
    scaling: dict[str, Any]
    data_center_ids: list[str]
    network_volumes: list[str]
    timeout: int
    flashboot: str
    created_at: datetime


class CudaVersion(_Answer):
    version: str
    available: bool


class GpuPrice(_Answer):
    """Dollars per hour for one GPU: `serverless` is its pool's rate, absent when not in a pool for the caller."""

    secure: float
    community: float
    serverless: float | None = None


class DataCenterAvailability(_Answer):
    id: str
    name: str
    availability: str


class GpuType(_Answer):
    """One GPU type of the catalog. `pool` is the serverless pool id endpoints take (None: no serverless pool);
    `availability`, `data_centers` and `cuda_versions` are there only when asked for (`availability=True`)."""

    id: str
    name: str
    pool: str | None
    manufacturer: str
    memory: int
    secure: bool
    community: bool
    price: GpuPrice
    availability: str | None = None
    data_centers: list[DataCenterAvailability] = Field(default_factory=list)
    cuda_versions: list[CudaVersion] = Field(default_factory=list)


WorkerStatus = Literal["RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY"]


class Worker(_Answer):
    """One active worker: `is_stale` is RunPod's own flag for a worker still on an older configuration."""

    id: str
    status: WorkerStatus
    is_stale: bool
    gpu_count: int
    version: int | None = None
    image: str | None = None
    uptime_seconds: int | None = None
    gpu_type_id: str | None = None
    data_center_id: str | None = None
    started_at: datetime | None = None


class WorkerSummary(_Answer):
    running: int
    idle: int
    initializing: int
    throttled: int
    unhealthy: int
    total: int


class Workers(_Answer):
    """ListEndpointWorkersResponse: only active workers; scaled-down ones are not listed."""

    workers: list[Worker]
    summary: WorkerSummary
    endpoint_version: int | None = None


class LogLine(_Answer):
    """One line of a worker's log (an SSE event's `data`): `source` is `container` or `system`."""

    ts: datetime
    source: str
    line: str


class ReleaseDiff(_Answer):
    field: str
    old: Any = None
    new: Any = None


class Release(_Answer):
    id: str
    source: str
    created_at: datetime
    worker_count: int
    diff: list[ReleaseDiff]
    version: int | None = None
    build_id: str | None = None
    created_by_user_id: str | None = None


class Rollout(_Answer):
    in_progress: bool
    workers_on_latest: int
    workers_total: int
    percent_on_latest: int


class Releases(_Answer):
    """ListEndpointReleasesResponse: releases newest first and how far the latest has rolled out."""

    rollout: Rollout
    releases: list[Release]
    endpoint_version: int | None = None


class ServerlessAmounts(_Answer):
    """Dollars for one bucket (or the totals): GPU, CPU, disk and RunPod's platform fee."""

    total_amount: float
    gpu_amount: float
    cpu_amount: float
    disk_amount: float
    fee_amount: float


class ServerlessBillingRecord(ServerlessAmounts):
    start_time: datetime
    end_time: datetime
    serverless_id: str


class ServerlessBillingQuery(_Answer):
    start_time: datetime
    end_time: datetime
    bucket_size: str
    serverless_id: str | None = None


class ServerlessBillingMetadata(_Answer):
    query: ServerlessBillingQuery
    record_count: int
    unique_serverless_count: int
    totals: ServerlessAmounts


class ServerlessBilling(_Answer):
    """ListServerlessBillingResponse: what RunPod billed, per endpoint per time bucket [start_time, end_time)."""

    records: list[ServerlessBillingRecord]
    metadata: ServerlessBillingMetadata


class _EndpointList(_Answer):
    endpoints: list[Endpoint]


class _VolumeList(_Answer):
    network_volumes: list[NetworkVolume]


class _GpuList(_Answer):
    gpus: list[GpuType]


# ------------------------------------------------------------------------------------------------------------
# The client
# ------------------------------------------------------------------------------------------------------------


class RunPodRest:
    """RunPod's REST API v2 with one API key. Reads and writes return the document's models; every failure is a
    RunPodRestError."""

    def __init__(self, api_key: str, base: str = REST_API, *, session: requests.Session | None = None) -> None:
        self.api_key = api_key
        self.base = base.rstrip("/")
        self.session = session or requests.Session()

    def display(self, path: str) -> str:
        """How a request is named in messages: the path as the server sees it (`/v2/serverless`), no host."""
        return urlsplit(self.base).path.rstrip("/") + path

    # --- the transport ---------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None) -> Any:
        """One call; the JSON answer (None for an empty one). `path` is relative to the base, ids already quoted."""
        where = f"{method} {self.display(path)}"
        with self._send(method, path, where, params=params, body=body) as response:
            data = self._read(response, where)
        if response.status_code >= 400:
            raise self._refusal(response, data, where)
        if not data:
            return None
        if "json" not in response.headers.get("Content-Type", "").lower():
            kind = clean(response.headers.get("Content-Type") or "no content type", 80)
            raise RunPodRestError(
                f"{where}: RunPod's API answered {response.status_code} with {kind}, not JSON: "
                f"{clean(data.decode('utf-8', 'replace'), 80)!r}",
                status=response.status_code,
            )
        try:
            return json.loads(data)
        except ValueError:
            raise RunPodRestError(
                f"{where}: RunPod's API answered {response.status_code} with text that is not JSON: "
                f"{clean(data.decode('utf-8', 'replace'), 80)!r}",
                status=response.status_code,
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        where: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: tuple[float, float] = TIMEOUT_S,
    ) -> requests.Response:
        try:
            response = self.session.request(
                method, self.base + path, params=params, json=body, timeout=timeout, allow_redirects=False,
                stream=True, headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                                      **(headers or {})},
            )  # fmt: skip
        except requests.RequestException as error:
            raise RunPodRestError(f"{where}: cannot reach RunPod's API at {self.base}: {type(error).__name__}: "
                                  f"{clean(error, 200)}") from None  # fmt: skip
        if 300 <= response.status_code < 400:
            response.close()
            target = urljoin(self.base + path, response.headers.get("Location", ""))
            own, there = urlsplit(self.base), urlsplit(target)
            if (there.scheme, there.netloc) != (own.scheme, own.netloc):
                raise RunPodRestError(f"{where}: RunPod's API answered {response.status_code}, a redirect to another "
                                      f"host ({clean(there.netloc or '?', 80)}): not followed, since the API key "
                                      "would go with it; check --api-url", status=response.status_code)  # fmt: skip
            raise RunPodRestError(f"{where}: RunPod's API answered {response.status_code}, a redirect to "
                                  f"{clean(there.path, 80)}: not followed; check --api-url",
                                  status=response.status_code)  # fmt: skip
        return response

    @staticmethod
    def _read(response: requests.Response, where: str) -> bytes:
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise RunPodRestError(f"{where}: RunPod's API answered more than {MAX_ANSWER_BYTES >> 20} MiB; "
                                          "not read further", status=response.status_code)  # fmt: skip
                chunks.append(chunk)
        except requests.RequestException as error:
            raise RunPodRestError(f"{where}: the answer broke off: {type(error).__name__}: {clean(error, 200)}",
                                  status=response.status_code) from None  # fmt: skip
        return b"".join(chunks)

    @staticmethod
    def _refusal(response: requests.Response, data: bytes, where: str) -> RunPodRestError:
        """An RFC 9457 problem as lines: its detail (or title) first, then each `errors[]` entry."""
        status = response.status_code
        try:
            problem = Problem.model_validate(json.loads(data)) if data else Problem()
        except (ValueError, ValidationError):
            problem = Problem(detail=data.decode("utf-8", "replace"))
        what = clean(problem.detail or problem.title or response.reason or "no detail", MAX_QUOTED)
        if status == 401:
            summary = f"{where}: RunPod refused the API key (401 {what}); use a key with read/write access"
        elif status == 403:
            summary = f"{where}: the API key may not do this (403 {what}); use a key with read/write access"
        elif status == 429:
            wait = response.headers.get("Retry-After", "")
            summary = f"{where}: rate limited (429 {what})" + (
                f"; try again in {wait} s" if wait.isdigit() else "; try again in a minute"
            )
        else:
            title = clean(problem.title or response.reason or "", 60)
            summary = f"{where}: RunPod refused it ({status}{' ' + title if title else ''}): {what}"
        errors = [clean(line) for line in problem.errors[:MAX_ERROR_LINES]]
        if len(problem.errors) > MAX_ERROR_LINES:
            errors.append(f"… and {len(problem.errors) - MAX_ERROR_LINES} more")
        return RunPodRestError(summary, tuple(errors), status=status)

    def _model(self, model: type[Model], method: str, path: str, data: Any) -> Model:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            at = ".".join(str(part) for part in first["loc"]) or "the answer"
            raise RunPodRestError(
                f"{method} {self.display(path)}: RunPod's answer is not the documented {model.__name__.lstrip('_')}"
                f" ({clean(at, 80)}: {clean(first['msg'], 120)})"
            ) from None

    def _get(self, model: type[Model], path: str, params: dict[str, str] | None = None) -> Model:
        return self._model(model, "GET", path, self.request("GET", path, params=params))

    # --- serverless endpoints ----------------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """GET /v2/serverless: every endpoint of the account."""
        return self._get(_EndpointList, "/serverless").endpoints

    def endpoint(self, endpoint_id: str) -> Endpoint:
        """GET /v2/serverless/{id}."""
        return self._get(Endpoint, f"/serverless/{segment(endpoint_id)}")

    def create_endpoint(self, body: dict[str, Any]) -> Endpoint:
        """POST /v2/serverless with a CreateEndpointRequest."""
        return self._model(Endpoint, "POST", "/serverless", self.request("POST", "/serverless", body=body))

    def update_endpoint(self, endpoint_id: str, body: dict[str, Any]) -> Endpoint:
        """PATCH /v2/serverless/{id} with an UpdateEndpointRequest: only the fields in it change."""
        path = f"/serverless/{segment(endpoint_id)}"
        return self._model(Endpoint, "PATCH", path, self.request("PATCH", path, body=body))

    def workers(self, endpoint_id: str) -> Workers:
        """GET /v2/serverless/{id}/workers: the active workers and a count by status."""
        return self._get(Workers, f"/serverless/{segment(endpoint_id)}/workers")

    def releases(self, endpoint_id: str) -> Releases:
        """GET /v2/serverless/{id}/releases: the configuration history, newest first, and the rollout."""
        return self._get(Releases, f"/serverless/{segment(endpoint_id)}/releases")

    def worker_logs(self, endpoint_id: str, worker_id: str, *, tail: int = 100, source: str | None = None,
                    quiet_s: float = 2.0, max_s: float = 15.0) -> list[LogLine]:  # fmt: skip
        """A worker's last `tail` log lines (oldest first), from GET /v2/serverless/{id}/workers/{workerId}/logs.

        The route is a Server-Sent Events stream that sends up to `tail` old lines and then stays open for new
        ones, so the read stops at `tail` lines, after `quiet_s` seconds without a line, or after `max_s` seconds
        in all, whichever comes first. `source` is `container` or `system` (None: both)."""
        if not 0 <= tail <= 5000:
            raise ValueError("tail: 0 to 5000 lines (the document's bounds)")
        path = f"/serverless/{segment(endpoint_id)}/workers/{segment(worker_id)}/logs"
        where = f"GET {self.display(path)}"
        params = {"tail": str(tail), **({"source": source} if source else {})}
        lines: list[LogLine] = []
        if tail == 0:
            return lines
        response = self._send("GET", path, where, params=params, headers={"Accept": "text/event-stream"},
                              timeout=(TIMEOUT_S[0], quiet_s))  # fmt: skip
        with response:
            if response.status_code >= 400:
                raise self._refusal(response, self._read(response, where), where)
            kind = response.headers.get("Content-Type", "")
            if "text/event-stream" not in kind.lower():
                raise RunPodRestError(f"{where}: RunPod's API answered {clean(kind or 'no content type', 80)}, "
                                      "not an event stream", status=response.status_code)  # fmt: skip
            deadline = time.monotonic() + max_s
            for data in _sse_data(response, where, deadline):
                try:
                    lines.append(LogLine.model_validate_json(data))
                except ValidationError:
                    raise RunPodRestError(f"{where}: a log event is not the documented {{ts, source, line}}: "
                                          f"{clean(data, 80)!r}") from None  # fmt: skip
                if len(lines) >= tail:
                    break
        return lines

    # --- storage, catalog, billing ---------------------------------------------------------------------------

    def network_volumes(self) -> list[NetworkVolume]:
        """GET /v2/network-volumes."""
        return self._get(_VolumeList, "/network-volumes").network_volumes

    def gpus(self, *, availability: bool = False) -> list[GpuType]:
        """GET /v2/catalog/gpus: each GPU type with its serverless pool and prices; with `availability`, also
        serverless stock and the CUDA versions its machines offer (include=AVAILABILITY&product=SERVERLESS)."""
        params = {"include": "AVAILABILITY", "product": "SERVERLESS"} if availability else None
        return self._get(_GpuList, "/catalog/gpus", params).gpus

    def serverless_billing(self, *, endpoint_id: str | None = None, bucket_size: str = "day",
                           last_n: int | None = None, start: datetime | None = None,
                           end: datetime | None = None) -> ServerlessBilling:  # fmt: skip
        """GET /v2/billing/serverless: what RunPod billed per endpoint per bucket. Give `last_n` buckets or a
        `start`/`end` window (RunPod's default: the last 30 days); `bucket_size` is hour, day, week, month or
        year."""
        if last_n is not None and (start or end):
            raise ValueError("last_n or start/end, not both (the document makes them exclusive)")
        params = {"bucketSize": bucket_size}
        if endpoint_id:
            params["serverlessId"] = endpoint_id
        if last_n is not None:
            params["lastN"] = str(last_n)
        if start:
            params["startTime"] = start.isoformat().replace("+00:00", "Z")
        if end:
            params["endTime"] = end.isoformat().replace("+00:00", "Z")
        return self._get(ServerlessBilling, "/billing/serverless", params)


def _sse_data(response: requests.Response, where: str, deadline: float) -> Iterator[str]:
    """The `data` of each Server-Sent Event (its `data:` lines joined), until the stream ends, goes quiet for the
    read timeout, or the deadline passes. Bytes are taken as they arrive (`read1`): a read of a fixed size would
    hold the last events back until the quiet spell ends it."""
    data: list[str] = []
    pending, size = b"", 0
    try:
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise RunPodRestError(f"{where}: the log stream passed {MAX_ANSWER_BYTES >> 20} MiB; not read further")
            *lines, pending = re.split(rb"\r\n|\r|\n", pending + chunk)
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if not line and data:
                    yield "\n".join(data)
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if time.monotonic() > deadline:
                return
    except (OSError, HTTPError):
        pass  # a quiet stream (the read timed out) or a closed one: every event sent so far is in
    if data:
        yield "\n".join(data)
