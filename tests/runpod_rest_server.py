"""RunPod's REST API v2 for tests: a real HTTP server on loopback that holds to RunPod's OpenAPI document
(runpod/docs `api-reference-v2/openapi.json`, the part used copied in tests/runpod_v2_openapi_subset.json).

Every request body is validated against the document's request schema with `jsonschema` (2020-12, so
`unevaluatedProperties: false` rejects an unknown field by name, as RunPod does), every query parameter against
its parameter schema, and every answer this server gives against the response schema, so a test's seeded data
cannot drift from the document either. Refusals are RFC 9457 problem objects (`application/problem+json`): 401
without the Bearer key, 422 for a body the schema refuses (each failure one `errors[]` line), 400 for the rules the
document states in words (exactly one of `gpu`/`cpu`; `allowedCudaVersions` beside `minCudaVersion`;
`excludedTypes` outside the chosen pools; unknown pools or volumes), 404 for an unknown id. Lists are wrapped.

Routes: GET/POST /v2/serverless, GET/PATCH /v2/serverless/{id} (a change makes a new release and bumps the
endpoint's version, so seeded workers on the old version become `isStale`), GET /v2/serverless/{id}/workers,
GET /v2/serverless/{id}/workers/{workerId}/logs (Server-Sent Events: the backfill, then the stream stays open
like RunPod's unless `logs_stay_open` is False), GET /v2/serverless/{id}/releases, GET /v2/network-volumes,
GET /v2/catalog/gpus (availability and CUDA versions only with include=AVAILABILITY&product=...),
GET /v2/billing/serverless (filtered by serverlessId and the time window, totals computed). Anything else: 404.

Test hooks (plain attributes, set them before or between requests):
    server.volumes = [{"id", "name", "size", "dataCenter", "type"}]     NetworkVolume
    server.gpus = [gpu_type(...), ...]                                  GpuType (default: DEFAULT_GPUS)
    server.workers[endpoint_id] = [worker("w1", "RUNNING"), ...]       Worker (isStale derived if left out)
    server.logs[worker_id] = [log_line("2026-12-01T10:00:00Z", "Worker ready."), ...]
    server.billing = [billing_record(endpoint_id, "2026-12-01", 8.9), ...]
    server.now = lambda: datetime(...)                                  the clock of billing's default windows
    server.refusals[("POST", "/v2/serverless")] = (400, "detail", ["error line"])   a route refuses
    server.calls / server.writes() / server.invalid                     what was sent; bodies the schema refused
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SUBSET = Path(__file__).with_name("runpod_v2_openapi_subset.json")
BASE_URI = "urn:runpod-v2-openapi"


# ------------------------------------------------------------------------------------------------------------
# The document's schemas
# ------------------------------------------------------------------------------------------------------------


@cache
def document() -> dict[str, Any]:
    return json.loads(SUBSET.read_text())  # type: ignore[no-any-return]


@cache
def _registry() -> Registry[Any]:
    return Registry().with_resource(BASE_URI, Resource.from_contents(document(), default_specification=DRAFT202012))


@cache
def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{BASE_URI}#{pointer}"}, registry=_registry())


def _declared(schema: Any, seen: frozenset[int] = frozenset()) -> set[str]:
    """Every property name a schema defines, through $ref, allOf/anyOf/oneOf and if/then/else."""
    if not isinstance(schema, dict) or id(schema) in seen:
        return set()
    seen |= {id(schema)}
    names = set(schema.get("properties", {}))
    if "$ref" in schema:
        ref = schema["$ref"]
        target = _registry().resolver(BASE_URI).lookup(ref if ":" in ref.split("#")[0] else BASE_URI + ref)
        names |= _declared(target.contents, seen)
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            names |= _declared(part, seen)
    for key in ("if", "then", "else"):
        names |= _declared(schema.get(key), seen)
    return names


def validate(schema: str, instance: Any) -> list[str]:
    """The document's verdict on an instance of a named schema (`CreateEndpointRequest`, `Endpoint`, ...): one
    line per failure, `[]` when valid. An unknown field is named as RunPod's example names it (`$: additional
    properties 'bogus' not allowed`), and only the truly unknown ones: 2020-12 also lists the known fields of a
    branch that failed for another reason."""
    lines = []
    for error in sorted(_validator(f"/components/schemas/{schema}").iter_errors(instance), key=lambda e: e.json_path):
        if error.validator == "unevaluatedProperties" and isinstance(error.instance, dict):
            unknown = sorted(set(error.instance) - _declared(error.schema))
            if unknown:
                lines.append(f"{error.json_path}: additional properties {', '.join(map(repr, unknown))} not allowed")
            continue
        lines.append(f"{error.json_path}: {error.message}")
    return lines


def operation(path: str, method: str) -> dict[str, Any]:
    return document()["paths"][path][method]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------------------
# Seed data helpers (test data in the document's shapes; pools and CUDA versions follow RunPod's GPU pages,
# runpod/docs references/gpu-types.mdx and flash/configuration/gpu-types.mdx; prices are test values)
# ------------------------------------------------------------------------------------------------------------

CUDA_MODERN = ("12.1", "12.2", "12.4", "12.6", "12.8")
CUDA_BLACKWELL = ("12.8", "12.9")


def gpu_type(id: str, name: str, pool: str | None, memory: int, serverless: float | None,
             cuda: tuple[str, ...] = CUDA_MODERN, *, manufacturer: str = "NVIDIA",
             data_centers: tuple[str, ...] = ("EU-RO-1", "US-KS-2")) -> dict[str, Any]:  # fmt: skip
    """A GpuType with its availability fields (served only with include=AVAILABILITY)."""
    pod = serverless or 2.0
    price: dict[str, Any] = {"secure": round(pod * 0.7, 2), "community": round(pod * 0.5, 2)}
    if serverless is not None and pool is not None:
        price["serverless"] = serverless
    gpu: dict[str, Any] = {
        "id": id, "name": name, "pool": pool, "manufacturer": manufacturer, "memory": memory, "secure": True,
        "community": True, "price": price, "maxCount": {"secure": 8, "community": 4}, "availability": "HIGH",
        "dataCenters": [{"id": dc, "name": dc, "availability": "HIGH"} for dc in data_centers],
    }  # fmt: skip
    if cuda:
        gpu["cudaVersions"] = [{"version": version, "available": True} for version in cuda]
    return gpu


def default_gpus() -> list[dict[str, Any]]:
    """A catalog like RunPod's: the serverless pools of its GPU pages, Blackwell types offering CUDA 12.8+ only, an
    AMD type with no CUDA and no pool."""
    return [
        gpu_type("NVIDIA RTX A4000", "RTX A4000", "AMPERE_16", 16, 0.58),
        gpu_type("NVIDIA L4", "L4", "AMPERE_24", 24, 0.68),
        gpu_type("NVIDIA RTX A5000", "RTX A5000", "AMPERE_24", 24, 0.68),
        gpu_type("NVIDIA GeForce RTX 3090", "RTX 3090", "AMPERE_24", 24, 0.68),
        gpu_type("NVIDIA GeForce RTX 4090", "RTX 4090", "ADA_24", 24, 1.10),
        gpu_type("NVIDIA RTX A6000", "RTX A6000", "AMPERE_48", 48, 1.22),
        gpu_type("NVIDIA A40", "A40", "AMPERE_48", 48, 1.22),
        gpu_type("NVIDIA L40S", "L40S", "ADA_48_PRO", 48, 1.91),
        gpu_type("NVIDIA L40", "L40", "ADA_48_PRO", 48, 1.91),
        gpu_type("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", "ADA_48_PRO", 48, 1.91),
        gpu_type("NVIDIA A100 80GB PCIe", "A100 PCIe", "AMPERE_80", 80, 2.74),
        gpu_type("NVIDIA A100-SXM4-80GB", "A100 SXM", "AMPERE_80", 80, 2.74),
        gpu_type("NVIDIA H100 80GB HBM3", "H100 SXM", "ADA_80_PRO", 80, 4.18),
        gpu_type("NVIDIA H100 PCIe", "H100 PCIe", "ADA_80_PRO", 80, 4.18),
        gpu_type("NVIDIA H100 NVL", "H100 NVL", "ADA_80_PRO", 94, 4.18),
        gpu_type("NVIDIA H200", "H200 SXM", "HOPPER_141", 141, 5.58),
        gpu_type("NVIDIA GeForce RTX 5090", "RTX 5090", "ADA_32_PRO", 32, 1.58, CUDA_BLACKWELL),
        gpu_type(
            "NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000", "BLACKWELL_96", 96, 3.4, CUDA_BLACKWELL
        ),
        gpu_type(
            "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
            "RTX PRO 6000 WK",
            "BLACKWELL_96",
            96,
            3.4,
            CUDA_BLACKWELL,
        ),
        gpu_type("NVIDIA B200", "B200", "BLACKWELL_180", 180, 8.64, CUDA_BLACKWELL),
        gpu_type("AMD Instinct MI300X OAM", "MI300X", None, 192, None, (), manufacturer="AMD"),
    ]


def worker(id: str, status: str = "IDLE", *, version: int | None = 1, gpu: str | None = "NVIDIA H100 80GB HBM3",
           data_center: str | None = "EU-RO-1", image: str | None = "docker.io/you/infinitetalk-worker:1.0",
           started_at: str | None = "2026-12-01T10:00:00Z", uptime_s: int | None = 600,
           is_stale: bool | None = None) -> dict[str, Any]:  # fmt: skip
    """A Worker; `is_stale` None lets the server derive it from `version` as RunPod does."""
    item: dict[str, Any] = {"id": id, "status": status, "version": version, "gpuCount": 1, "image": image,
                            "uptimeSeconds": uptime_s, "gpuTypeId": gpu, "dataCenterId": data_center,
                            "startedAt": started_at}  # fmt: skip
    if is_stale is not None:
        item["isStale"] = is_stale
    return item


def log_line(ts: str, line: str, source: str = "container") -> dict[str, str]:
    """One worker log event's data."""
    return {"ts": ts, "source": source, "line": line}


def billing_record(endpoint_id: str, day: str, total: float, *, gpu: float | None = None, disk: float = 0.0,
                   fee: float = 0.0, hours: int = 24) -> dict[str, Any]:  # fmt: skip
    """A ServerlessBillingRecord for the bucket starting at midnight UTC of `day` (a day unless `hours` says)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return {"startTime": _z(start), "endTime": _z(start + timedelta(hours=hours)), "serverlessId": endpoint_id,
            "totalAmount": total, "gpuAmount": total - disk - fee if gpu is None else gpu, "cpuAmount": 0.0,
            "diskAmount": disk, "feeAmount": fee}  # fmt: skip


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------------------

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", r"/v2/serverless", "/v2/serverless"),
    ("POST", r"/v2/serverless", "/v2/serverless"),
    ("GET", r"/v2/serverless/(?P<id>[^/]+)", "/v2/serverless/{id}"),
    ("PATCH", r"/v2/serverless/(?P<id>[^/]+)", "/v2/serverless/{id}"),
    ("GET", r"/v2/serverless/(?P<id>[^/]+)/workers", "/v2/serverless/{id}/workers"),
    (
        "GET",
        r"/v2/serverless/(?P<id>[^/]+)/workers/(?P<workerId>[^/]+)/logs",
        "/v2/serverless/{id}/workers/{workerId}/logs",
    ),
    ("GET", r"/v2/serverless/(?P<id>[^/]+)/releases", "/v2/serverless/{id}/releases"),
    ("GET", r"/v2/network-volumes", "/v2/network-volumes"),
    ("GET", r"/v2/catalog/gpus", "/v2/catalog/gpus"),
    ("GET", r"/v2/billing/serverless", "/v2/billing/serverless"),
)
CONTAINER_FIELDS = ("image", "args", "disk", "ports", "env", "registry")
STATUSES = ("RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY")


SAMPLE_ENDPOINT = {
    "name": "studio",
    "type": "QUEUE",
    "image": "docker.io/you/infinitetalk-worker:1.0",
    "gpu": {"pools": ["ADA_80_PRO"], "minCudaVersion": "12.1"},
    "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
    "workers": {"min": 0, "max": 2, "idleTimeout": 60},
}
"""A smallest valid CreateEndpointRequest body, which the client and Health tests create."""


class Problem(Exception):
    """An RFC 9457 answer."""

    TITLES: ClassVar[dict[int, str]] = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        422: "Unprocessable Entity",
        429: "Too Many Requests",
    }

    def __init__(self, status: int, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.body: dict[str, Any] = {"title": self.TITLES.get(status, "Error"), "status": status, "detail": detail}
        if errors:
            self.body["errors"] = errors
        self.status = status


@dataclass
class Call:
    method: str
    path: str
    """The path as sent, still quoted (`/v2/serverless/..%2Fx`)."""
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


class RunPodV2Server:
    """A RunPod account with `api_key`: its network volumes, endpoints, workers, logs, releases and billing."""

    def __init__(self, api_key: str, *, volumes: list[dict[str, Any]] | None = None,
                 gpus: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        self.api_key = api_key
        self.volumes: list[dict[str, Any]] = list(volumes or [])
        self.gpus: list[dict[str, Any]] = default_gpus() if gpus is None else gpus
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.releases: dict[str, list[dict[str, Any]]] = {}
        self.workers: dict[str, list[dict[str, Any]]] = {}
        self.logs: dict[str, list[dict[str, str]]] = {}
        self.billing: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        self.invalid: list[str] = []
        """One line per request the document's schemas refused (method, path, failures)."""
        self.logs_stay_open = True
        self.refusals: dict[tuple[str, str], tuple[int, str, list[str]]] = {}
        """(method, route template) → (status, detail, errors): that route refuses as RunPod would (no capacity,
        a rule this server does not model) after the request is checked."""
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _do(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = server._handle(self, raw)
                if isinstance(payload, _Stream):
                    payload.send(self, server)
                    return
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _do

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def __enter__(self) -> RunPodV2Server:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method != "GET"]

    def version(self, endpoint_id: str) -> int:
        return self.versions[endpoint_id]

    # --- dispatch ------------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._ids += 1
        return f"ep{self._ids:06d}x"

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, Any]:
        url = urlsplit(handler.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.calls.append(Call(handler.command, url.path, query, body, handler.headers.get("Authorization")))
            try:
                if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
                    raise Problem(401, "missing bearer token" if not handler.headers.get("Authorization")
                                  else "invalid API key")  # fmt: skip
                return self._route(handler.command, url.path, query, body)
            except Problem as problem:
                return problem.status, problem.body

    def _route(self, method: str, raw_path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        for route_method, pattern, template in ROUTES:
            found = re.fullmatch(pattern, raw_path)
            if found and route_method == method:
                ids = {key: unquote(value) for key, value in found.groupdict().items()}
                spec = operation(template, method.lower())
                self._check_query(spec, query, f"{method} {template}")
                if "requestBody" in spec:
                    self._check_body(spec, body, f"{method} {template}")
                if refusal := self.refusals.get((method, template)):
                    raise Problem(*refusal)
                name = spec["operationId"]
                status, answer = getattr(self, f"_{name}")(query=query, body=body, **ids)
                if not isinstance(answer, _Stream):
                    self._check_answer(spec, status, answer, name)
                return status, answer
        raise Problem(404, f"no route {method} {raw_path}")

    def _check_query(self, spec: dict[str, Any], query: dict[str, list[str]], where: str) -> None:
        """Each query parameter against its schema in the document (form style: an array is comma-separated)."""
        known: dict[str, Draft202012Validator] = {}
        for param in spec.get("parameters", []):
            if "$ref" in param:
                name = param["$ref"].rsplit("/", 1)[1]
                param = document()["components"]["parameters"][name]
                check = _validator(f"/components/parameters/{name}/schema")
            else:
                check = Draft202012Validator(param["schema"])
            if param["in"] == "query":
                known[param["name"]] = check
        errors = [f"query: unknown parameter {name!r}" for name in query if name not in known]
        for name, values in query.items():
            if name in known:
                value: Any = values[-1]
                kind = known[name].schema
                if "$ref" in kind:
                    kind = _registry().resolver(BASE_URI).lookup(kind["$ref"]).contents
                if kind.get("type") == "array":
                    value = value.split(",")
                elif kind.get("type") == "integer" and re.fullmatch(r"-?\d+", value):
                    value = int(value)
                errors += [f"query {name}: {error.message}" for error in known[name].iter_errors(value)]
        if errors:
            self.invalid.append(f"{where}: {'; '.join(errors)}")
            raise Problem(422, "Request validation failed.", errors)

    def _check_body(self, spec: dict[str, Any], body: Any, where: str) -> None:
        schema = spec["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        errors = validate(schema, body) if isinstance(body, dict) else ["$: the body is not a JSON object"]
        if errors:
            self.invalid.append(f"{where}: {'; '.join(errors)}")
            raise Problem(422, "Request validation failed.", errors)

    def _check_answer(self, spec: dict[str, Any], status: int, answer: Any, name: str) -> None:
        """The server's own answer must be what the document promises: a wrong seed fails loudly (500)."""
        content = spec["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        errors = validate(content.rsplit("/", 1)[1], answer)
        if errors:
            raise Problem(500, f"test server: the {name} answer breaks the document: {'; '.join(errors)}")

    # --- serverless ------------------------------------------------------------------------------------------

    def _endpoint(self, id: str) -> dict[str, Any]:
        """The endpoint; one a test put into `endpoints` directly starts at version 1 with one release."""
        if id not in self.endpoints:
            raise Problem(404, "endpoint not found")
        if id not in self.versions:
            self.versions[id] = 1
            self.releases[id] = [self._release(id, [])]
        return self.endpoints[id]

    def _listEndpoints(self, **_: Any) -> tuple[int, Any]:
        return 200, {"endpoints": list(self.endpoints.values())}

    def _getEndpoint(self, id: str, **_: Any) -> tuple[int, Any]:
        return 200, self._endpoint(id)

    def _check_compute(self, body: dict[str, Any], existing: dict[str, Any] | None) -> None:
        if existing is None and ("gpu" in body) == ("cpu" in body):
            raise Problem(400, "specify exactly one of gpu or cpu")
        if existing is not None and "gpu" in body and "cpu" in body:
            raise Problem(400, "gpu and cpu are mutually exclusive")
        if existing is not None and "cpu" in body and existing.get("gpu"):
            raise Problem(400, "compute family is immutable: this is a GPU endpoint")
        gpu = body.get("gpu") or {}
        if gpu.get("allowedCudaVersions") and gpu.get("minCudaVersion"):
            raise Problem(400, "gpu.allowedCudaVersions and gpu.minCudaVersion are mutually exclusive")
        pools = gpu.get("pools")
        known = {g["pool"] for g in self.gpus if g["pool"]}
        if pools and (unknown := [pool for pool in pools if pool not in known]):
            raise Problem(400, f"unknown GPU pool(s): {', '.join(unknown)}")
        in_pools = {g["id"] for g in self.gpus if g["pool"] in (pools or [])}
        if bad := [t for t in gpu.get("excludedTypes", []) if t.strip() not in in_pools]:
            raise Problem(400, f"gpu.excludedTypes: not a GPU type in the selected pools: {', '.join(bad)}")
        volumes = {v["id"] for v in self.volumes}
        if bad := [v for v in body.get("networkVolumes", []) if v not in volumes]:
            raise Problem(400, f"network volume not found: {', '.join(bad)}")
        if "templateId" in body:
            raise Problem(404, f"template {body['templateId']} not found")

    def _createEndpoint(self, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        self._check_compute(body, None)
        endpoint_id = self._new_id()
        gpu = body["gpu"]
        endpoint = {
            "id": endpoint_id, "name": body["name"], "type": body["type"],
            "requestUrls": {key: f"https://api.runpod.ai/v2/{endpoint_id}/{tail}" for key, tail in (
                ("run", "run"), ("runSync", "runsync"), ("status", "status/{job_id}"), ("stream", "stream/{job_id}"),
                ("cancel", "cancel/{job_id}"), ("retry", "retry/{job_id}"), ("purgeQueue", "purge-queue"),
                ("health", "health"))},
            "image": body["image"], "args": body.get("args", ""), "disk": body.get("disk", 20),
            "ports": body.get("ports", []), "env": body.get("env", {}), "registry": body.get("registry"),
            "gpu": {"pools": gpu["pools"], "count": gpu.get("count", 1),
                    "allowedCudaVersions": gpu.get("allowedCudaVersions", []),
                    "minCudaVersion": gpu.get("minCudaVersion"),
                    **({"excludedTypes": gpu["excludedTypes"]} if gpu.get("excludedTypes") else {})},
            "workers": {"min": 0, "max": 3, "idleTimeout": 10, **body.get("workers", {})},
            "scaling": body["scaling"], "dataCenterIds": body.get("dataCenterIds", []),
            "networkVolumes": body.get("networkVolumes", []), "timeout": body.get("timeout", 300000),
            "flashboot": body.get("flashboot", "OFF"), "createdAt": _z(self.now()),
        }  # fmt: skip
        self.endpoints[endpoint_id] = endpoint
        self.versions[endpoint_id] = 1
        self.releases[endpoint_id] = [self._release(endpoint_id, [])]
        return 201, endpoint

    def _updateEndpoint(self, id: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        endpoint = self._endpoint(id)
        self._check_compute(body, endpoint)
        before = json.loads(json.dumps(endpoint))
        for key, value in body.items():
            if key == "gpu":
                gpu = endpoint["gpu"]
                if "pools" in value:
                    gpu.pop("excludedTypes", None)  # sending pools replaces the selection, exclusions included
                for field, given in value.items():
                    gpu[field] = (None if given == "" else given) if field == "minCudaVersion" else given
                if not gpu.get("excludedTypes"):
                    gpu.pop("excludedTypes", None)
            elif key == "workers":
                endpoint["workers"] = {**endpoint["workers"], **value}
            else:
                endpoint[key] = value
        diff = [{"field": f, "old": o, "new": n} for f, o, n in _diff(before, endpoint)]
        if diff:
            self.versions[id] += 1
            self.releases[id].insert(0, self._release(id, diff))
        return 200, endpoint

    def _release(self, endpoint_id: str, diff: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": f"rel{endpoint_id}v{self.versions[endpoint_id]}", "version": self.versions[endpoint_id],
                "source": "MANUAL", "buildId": None, "createdByUserId": "user_test", "workerCount": 0,
                "createdAt": _z(self.now()), "diff": diff}  # fmt: skip

    def _workers_of(self, id: str) -> list[dict[str, Any]]:
        self._endpoint(id)
        version = self.versions[id]
        return [{"isStale": item.get("version") not in (None, version), **item} for item in self.workers.get(id, [])]

    def _listEndpointWorkers(self, id: str, **_: Any) -> tuple[int, Any]:
        items = self._workers_of(id)
        summary = {status.lower(): sum(item["status"] == status for item in items) for status in STATUSES}
        return 200, {"endpointVersion": self.versions[id], "summary": {**summary, "total": len(items)},
                     "workers": items}  # fmt: skip

    def _listEndpointReleases(self, id: str, **_: Any) -> tuple[int, Any]:
        items = self._workers_of(id)
        latest = sum(item.get("version") == self.versions[id] for item in items)
        releases = [{**release, "workerCount": sum(item.get("version") == release["version"] for item in items)}
                    for release in self.releases[id]]  # fmt: skip
        rollout = {
            "inProgress": any(item["isStale"] for item in items),
            "workersOnLatest": latest,
            "workersTotal": len(items),
            "percentOnLatest": round(100 * latest / len(items)) if items else 0,
        }
        return 200, {"endpointVersion": self.versions[id], "rollout": rollout, "releases": releases}

    def _getWorkerLogs(self, id: str, workerId: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        if workerId not in {item["id"] for item in self._workers_of(id)}:
            raise Problem(404, "worker not found")
        lines = list(self.logs.get(workerId, []))
        if source := query.get("source", [None])[-1]:
            lines = [line for line in lines if line["source"] == source]
        if since := query.get("since", [None])[-1]:
            lines = [line for line in lines if _time(line["ts"]) >= _time(since)]
        else:
            tail = int(query.get("tail", ["100"])[-1])
            lines = lines[-tail:] if tail else []
        return 200, _Stream(lines)

    # --- storage, catalog, billing ---------------------------------------------------------------------------

    def _listNetworkVolumes(self, **_: Any) -> tuple[int, Any]:
        return 200, {"networkVolumes": self.volumes}

    def _listGpuTypes(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        include = "include" in query
        needs_include = {"product", "count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion"}
        if include != ("product" in query) or (not include and needs_include & set(query)):
            raise Problem(400, "include=AVAILABILITY requires product, and product and the availability filters "
                          "are valid only with it")  # fmt: skip
        if "cudaVersions" in query and "minCudaVersion" in query:
            raise Problem(400, "cudaVersions and minCudaVersion are mutually exclusive")
        gpus = []
        for gpu in self.gpus:
            item = {k: v for k, v in gpu.items() if include or k not in ("availability", "dataCenters", "cudaVersions")}
            if include and "cudaVersions" in item:
                exact = query.get("cudaVersions", [""])[-1].split(",") if "cudaVersions" in query else None
                floor = _cuda(query["minCudaVersion"][-1]) if "minCudaVersion" in query else None
                item["cudaVersions"] = [c for c in item["cudaVersions"] if (exact is None or c["version"] in exact)
                                        and (floor is None or _cuda(c["version"]) >= floor)]  # fmt: skip
            gpus.append(item)
        return 200, {"gpus": gpus}

    def _listServerlessBilling(self, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        one = {key: values[-1] for key, values in query.items()}
        if "lastN" in one and ("startTime" in one or "endTime" in one):
            raise Problem(400, "lastN is mutually exclusive with startTime/endTime")
        bucket = one.get("bucketSize", "day")
        now = self.now()
        if "lastN" in one:
            end = _bucket_end(now, bucket)
            start = end
            for _ in range(int(one["lastN"])):
                start = _bucket_start(start - timedelta(seconds=1), bucket)
        else:
            start = _bucket_start(_time(one["startTime"]) if "startTime" in one else now - timedelta(days=30), bucket)
            end = _bucket_end(_time(one["endTime"]), bucket) if "endTime" in one else _bucket_end(now, bucket)
        wanted = one.get("serverlessId")
        records = [r for r in self.billing if (wanted is None or r["serverlessId"] == wanted)
                   and start <= _time(r["startTime"]) < end]  # fmt: skip
        amounts = ("totalAmount", "gpuAmount", "cpuAmount", "diskAmount", "feeAmount")
        totals = {key: round(sum(r[key] for r in records), 6) for key in amounts}
        query_echo = {"startTime": _z(start), "endTime": _z(end), "bucketSize": bucket, "serverlessId": wanted}
        return 200, {"records": records, "metadata": {
            "query": query_echo, "recordCount": len(records), "totals": totals,
            "uniqueServerlessCount": len({r["serverlessId"] for r in records})}}  # fmt: skip


class _Stream:
    """A worker-log answer: Server-Sent Events, then (like RunPod) held open until the client leaves."""

    def __init__(self, lines: list[dict[str, str]]) -> None:
        self.lines = lines

    def send(self, handler: BaseHTTPRequestHandler, server: RunPodV2Server) -> None:
        """The headers the document lists, the events in HTTP/1.1 chunks, and the stream held open."""
        handler.send_response(200)
        for key, value in (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                           ("Connection", "keep-alive"), ("X-Accel-Buffering", "no"),
                           ("Transfer-Encoding", "chunked")):  # fmt: skip
            handler.send_header(key, value)
        handler.end_headers()
        try:
            for line in self.lines:
                event = f"id: {line['ts']}\ndata: {json.dumps(line)}\n\n".encode()
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            handler.wfile.flush()
            if server.logs_stay_open:
                server._closing.wait(60)
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        handler.close_connection = True


def _cuda(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def _bucket_start(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    if bucket == "year":
        return day.replace(month=1, day=1)
    return day


def _bucket_end(moment: datetime, bucket: str) -> datetime:
    start = _bucket_start(moment, bucket)
    if start == moment:
        return moment
    if bucket == "hour":
        return start + timedelta(hours=1)
    if bucket == "week":
        return start + timedelta(days=7)
    if bucket == "month":
        return (start + timedelta(days=32)).replace(day=1)
    if bucket == "year":
        return start.replace(year=start.year + 1)
    return start + timedelta(days=1)


def _diff(old: Any, new: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, old, new) for each leaf that changed; env and lists are compared whole."""
    if isinstance(old, dict) and isinstance(new, dict) and where != "env":
        found = []
        for key in sorted(set(old) | set(new)):
            if key not in ("requestUrls", "createdAt"):
                found += _diff(old.get(key), new.get(key), f"{where}.{key}" if where else key)
        return found
    return [] if old == new else [(where, old, new)]
