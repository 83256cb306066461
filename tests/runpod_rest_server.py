"""RunPod's REST API for tests: a real HTTP server on loopback following the shapes RunPod's OpenAPI document gives
for /templates, /endpoints and /networkvolumes (https://rest.runpod.io/v1, runpod/docs api-reference/openapi.json).

What it holds to, as RunPod does: a Bearer API key or 401; TemplateCreateInput needs `name` and `imageName`, and a
template name is taken once; EndpointCreateInput needs `templateId` and takes only the documented `gpuTypeIds`;
PATCH bodies take only the Update inputs' fields (an unknown field is a 400); `GET /templates` leaves out templates
bound to an endpoint unless `includeEndpointBoundTemplates=true`; an endpoint's `version` goes up when it changes;
the Endpoint object has no `flashboot` field. Every request is recorded, bodies included.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from client.deploy import GPU_TYPE_IDS

TEMPLATE_CREATE = {"category", "containerDiskInGb", "containerRegistryAuthId", "dockerEntrypoint", "dockerStartCmd",
                   "env", "imageName", "isPublic", "isServerless", "name", "ports", "readme", "volumeInGb",
                   "volumeMountPath"}  # fmt: skip
TEMPLATE_UPDATE = TEMPLATE_CREATE - {"category", "isServerless"}
ENDPOINT_CREATE = {"allowedCudaVersions", "computeType", "cpuFlavorIds", "dataCenterIds", "executionTimeoutMs",
                   "flashboot", "gpuCount", "gpuTypeIds", "idleTimeout", "minCudaVersion", "name", "networkVolumeId",
                   "networkVolumeIds", "scalerType", "scalerValue", "templateId", "vcpuCount", "workersMax",
                   "workersMin"}  # fmt: skip
ENDPOINT_UPDATE = ENDPOINT_CREATE - {"computeType"}


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


@dataclass
class RunPodRest:
    """A RunPod account with `api_key`, some network volumes, and the templates and endpoints made through it."""

    api_key: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = 0
        rest = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = rest._handle(self, raw)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _do

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> RunPodRest:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.method != "GET"]

    # --------------------------------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:08d}"

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, Any]:
        url = urlsplit(handler.path)
        body = json.loads(raw) if raw else None
        with self._lock:
            self.calls.append(
                Call(handler.command, url.path, parse_qs(url.query), body, handler.headers.get("Authorization"))
            )
            if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
                return 401, {"error": "Unauthorized"}
            return self._route(handler.command, url.path.removeprefix("/v1"), parse_qs(url.query), body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        item = re.fullmatch(r"/(templates|endpoints)/([^/]+)", path)
        if (method, path) == ("GET", "/networkvolumes"):
            return 200, self.volumes
        if (method, path) == ("GET", "/templates"):
            bound = {endpoint["templateId"] for endpoint in self.endpoints.values()}
            with_bound = query.get("includeEndpointBoundTemplates") == ["true"]
            return 200, [t for t in self.templates.values() if with_bound or t["id"] not in bound]
        if (method, path) == ("POST", "/templates"):
            return self._create_template(body)
        if (method, path) == ("GET", "/endpoints"):
            return 200, [self._endpoint_view(e) for e in self.endpoints.values()]
        if (method, path) == ("POST", "/endpoints"):
            return self._create_endpoint(body)
        if item and method == "PATCH":
            return self._update(item.group(1), item.group(2), body)
        return 404, {"error": f"no route {method} {path}"}

    def _unknown(self, body: dict[str, Any], allowed: set[str]) -> tuple[int, Any] | None:
        unknown = sorted(set(body) - allowed)
        return (400, {"error": f"unknown fields: {', '.join(unknown)}"}) if unknown else None

    def _create_template(self, body: dict[str, Any]) -> tuple[int, Any]:
        if problem := self._unknown(body, TEMPLATE_CREATE):
            return problem
        if not body.get("name") or not body.get("imageName"):
            return 400, {"error": "name and imageName are required"}
        if any(t["name"] == body["name"] for t in self.templates.values()):
            return 400, {"error": f"Template name must be unique: {body['name']}"}
        template = {"category": "NVIDIA", "containerDiskInGb": 50, "dockerEntrypoint": [], "dockerStartCmd": [],
                    "env": {}, "isPublic": False, "isRunpod": False, "isServerless": False, "ports": [], "readme": "",
                    "volumeInGb": 20, "volumeMountPath": "/workspace", **body, "id": self._new_id("tpl")}  # fmt: skip
        self.templates[template["id"]] = template
        return 200, template

    def _check_endpoint(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        bad = [gpu for gpu in body.get("gpuTypeIds", []) if gpu not in GPU_TYPE_IDS]
        if bad:
            return 400, {"error": f"invalid gpuTypeIds: {bad}"}
        if "templateId" in body and body["templateId"] not in self.templates:
            return 400, {"error": f"template {body['templateId']} not found"}
        if "networkVolumeId" in body and body["networkVolumeId"] not in {v["id"] for v in self.volumes}:
            return 400, {"error": f"network volume {body['networkVolumeId']} not found"}
        return None

    def _create_endpoint(self, body: dict[str, Any]) -> tuple[int, Any]:
        if problem := self._unknown(body, ENDPOINT_CREATE) or self._check_endpoint(body):
            return problem
        if not body.get("templateId"):
            return 400, {"error": "templateId is required"}
        endpoint = {"computeType": "GPU", "gpuCount": 1, "gpuTypeIds": ["NVIDIA GeForce RTX 4090"], "idleTimeout": 5,
                    "executionTimeoutMs": 600000, "scalerType": "QUEUE_DELAY", "scalerValue": 4, "workersMax": 3,
                    "workersMin": 0, "flashboot": True, **body, "id": self._new_id("ep"), "version": 0,
                    "userId": "user_test"}  # fmt: skip
        self.endpoints[endpoint["id"]] = endpoint
        return 200, self._endpoint_view(endpoint)

    def _endpoint_view(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """The Endpoint object as the API returns it: its schema has no flashboot; env comes from the template."""
        view = {k: v for k, v in endpoint.items() if k != "flashboot"}
        view["env"] = self.templates[endpoint["templateId"]]["env"]
        return view

    def _update(self, kind: str, item_id: str, body: dict[str, Any]) -> tuple[int, Any]:
        store = self.templates if kind == "templates" else self.endpoints
        if item_id not in store:
            return 404, {"error": f"{kind[:-1]} {item_id} not found"}
        allowed = TEMPLATE_UPDATE if kind == "templates" else ENDPOINT_UPDATE
        if problem := self._unknown(body, allowed) or (self._check_endpoint(body) if kind == "endpoints" else None):
            return problem
        store[item_id].update(body)
        if kind == "endpoints":
            store[item_id]["version"] += 1
            return 200, self._endpoint_view(store[item_id])
        for endpoint in self.endpoints.values():
            if endpoint["templateId"] == item_id:
                endpoint["version"] += 1
        return 200, store[item_id]
