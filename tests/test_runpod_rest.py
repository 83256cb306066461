"""The REST v2 client (client/runpod_rest.py) reads every route the product uses in the shapes of RunPod's OpenAPI
document, turns each refusal into its RFC 9457 lines, and stays one clear error against a hostile server; the
loopback v2 server holds to the document's schemas (tests/runpod_v2_openapi_subset.json, itself checked against
RunPod's document where a copy is at hand)."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from client.runpod_rest import RunPodRest, RunPodRestError
from tests import runpod_v2_subset
from tests.runpod_rest_server import SAMPLE_ENDPOINT as ENDPOINT
from tests.runpod_rest_server import RunPodV2Server, billing_record, log_line, validate, worker

KEY = "rpa_TESTKEY0123456789abcdef"
MIRROR = Path("/work/.mirror/runpod+docs/repo")


@pytest.fixture
def runpod() -> Iterator[RunPodV2Server]:
    volumes = [{"id": "vol0000aa", "name": "weights", "size": 150, "dataCenter": "EU-RO-1", "type": "STANDARD"}]
    with RunPodV2Server(KEY, volumes=volumes) as server:
        yield server


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from [value] if key == "$ref" else _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_copied_schemas_are_closed_and_say_where_they_come_from() -> None:
    subset = json.loads(runpod_v2_subset.SUBSET.read_text())
    assert subset["x-subset-of"]["commit"] == "a900806e253c4f8c16da27d1a4370e72456da4cb"
    for ref in set(_refs(subset)):
        _, kind, name = ref.removeprefix("#/").split("/")
        assert name in subset["components"][kind], f"{ref} is referenced but not copied"
    for path, method in runpod_v2_subset.OPERATIONS:
        assert method in subset["paths"][path]


@pytest.mark.skipif(not MIRROR.exists(), reason="no copy of runpod/docs here to compare with")
def test_the_copied_schemas_equal_a_fresh_extraction_from_runpods_document() -> None:
    shown = subprocess.run(["git", "-C", str(MIRROR), "show", f"{runpod_v2_subset.SOURCE['commit']}:"
                            f"{runpod_v2_subset.SOURCE['path']}"], capture_output=True, check=True)  # fmt: skip
    fresh = runpod_v2_subset.extract(json.loads(shown.stdout))
    assert list(runpod_v2_subset.differences(json.loads(runpod_v2_subset.SUBSET.read_text()), fresh)) == []


def test_unknown_fields_are_named_as_runpod_names_them() -> None:
    body = {**ENDPOINT, "imageName": "x", "gpu": {"pools": ["ADA_80_PRO"], "gpuTypeIds": ["NVIDIA L40S"]}}
    assert validate("CreateEndpointRequest", body) == [
        "$: additional properties 'imageName' not allowed",
        "$.gpu: additional properties 'gpuTypeIds' not allowed",
    ]
    assert validate("CreateEndpointRequest", ENDPOINT) == []
    assert validate("CreateEndpointRequest", {k: v for k, v in ENDPOINT.items() if k != "scaling"}) == [
        "$: 'scaling' is a required property"
    ]


def test_every_read_the_product_uses_comes_back_typed(runpod: RunPodV2Server) -> None:
    rest = RunPodRest(KEY, runpod.url)
    created = rest.create_endpoint({**ENDPOINT, "networkVolumes": ["vol0000aa"], "flashboot": "FLASHBOOT"})
    assert [e.id for e in rest.endpoints()] == [created.id] and rest.endpoint(created.id).flashboot == "FLASHBOOT"
    assert created.gpu is not None and created.gpu.min_cuda_version == "12.1"
    assert [v.data_center for v in rest.network_volumes()] == ["EU-RO-1"]

    plain, available = rest.gpus(), rest.gpus(availability=True)
    h100 = next(g for g in available if g.id == "NVIDIA H100 80GB HBM3")
    assert (h100.pool, h100.price.serverless, h100.cuda_versions[0].version) == ("ADA_80_PRO", 4.18, "12.1")
    assert all(not g.cuda_versions and g.availability is None for g in plain), "only with include=AVAILABILITY"
    assert runpod.calls[-1].query == {"include": ["AVAILABILITY"], "product": ["SERVERLESS"]}

    runpod.workers[created.id] = [worker("w1", "RUNNING"), worker("w2", "THROTTLED", version=None, gpu=None)]
    assert rest.workers(created.id).summary.total == 2 and not rest.workers(created.id).workers[0].is_stale
    rest.update_endpoint(created.id, {"image": "docker.io/you/infinitetalk-worker:1.1"})
    after = rest.workers(created.id)
    assert after.endpoint_version == 2 and [w.is_stale for w in after.workers] == [True, False]
    releases = rest.releases(created.id)
    assert releases.rollout.in_progress and releases.rollout.workers_on_latest == 0
    assert [(r.version, [d.field for d in r.diff]) for r in releases.releases] == [(2, ["image"]), (1, [])]

    runpod.logs["w1"] = [log_line(f"2026-12-01T10:00:0{i}Z", f"line {i}") for i in range(6)]
    assert [line.line for line in rest.worker_logs(created.id, "w1", tail=3)] == ["line 3", "line 4", "line 5"]
    runpod.logs_stay_open = False
    assert len(rest.worker_logs(created.id, "w1", tail=100)) == 6

    runpod.now = lambda: datetime(2026, 12, 7, 12, tzinfo=UTC)
    runpod.billing = [billing_record(created.id, f"2026-12-0{day}", 2.0, fee=0.2) for day in range(1, 8)]
    runpod.billing.append(billing_record("another", "2026-12-07", 50.0))
    billed = rest.serverless_billing(endpoint_id=created.id, last_n=3)
    assert [r.start_time.day for r in billed.records] == [5, 6, 7]
    assert billed.metadata.totals.total_amount == 6.0 and billed.metadata.query.bucket_size == "day"
    assert runpod.invalid == []


def test_a_refusal_is_its_detail_then_one_line_per_error(runpod: RunPodV2Server) -> None:
    rest = RunPodRest(KEY, runpod.url)
    with pytest.raises(RunPodRestError) as refused:
        rest.create_endpoint({**ENDPOINT, "imageName": "x", "gpuCount": 1})
    assert refused.value.lines == [
        "POST /v2/serverless: RunPod refused it (422 Unprocessable Entity): Request validation failed.",
        "$: additional properties 'gpuCount', 'imageName' not allowed",
    ]
    with pytest.raises(RunPodRestError) as unauthorized:
        RunPodRest("rpa_wrong", runpod.url).endpoints()
    assert str(unauthorized.value) == (
        "GET /v2/serverless: RunPod refused the API key (401 invalid API key); use a key with read/write access"
    )
    with pytest.raises(RunPodRestError, match=r"\(400 Bad Request\): gpu.allowedCudaVersions and gpu.minCuda"):
        rest.create_endpoint({**ENDPOINT, "gpu": {"pools": ["ADA_80_PRO"], "minCudaVersion": "12.1",
                                                  "allowedCudaVersions": ["12.4"]}})  # fmt: skip
    with pytest.raises(RunPodRestError, match="422"):
        rest.request("GET", "/catalog/gpus", params={"include": "AVAILABILITY", "product": "BOATS"})


def test_an_id_stays_one_path_segment(runpod: RunPodV2Server) -> None:
    rest = RunPodRest(KEY, runpod.url)
    with pytest.raises(RunPodRestError, match="404"):
        rest.workers("../../admin?x=")
    assert runpod.calls[-1].path == "/v2/serverless/..%2F..%2Fadmin%3Fx%3D/workers"
    calls = len(runpod.calls)
    for dots in ("..", ".", ""):
        with pytest.raises(RunPodRestError, match=f"^{dots!r} is not a RunPod id$"):
            rest.endpoint(dots)
    assert len(runpod.calls) == calls, "a path a URL would resolve elsewhere is never sent"


class Hostile:
    """A server that answers every request with one canned answer, and records who came."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.seen: list[tuple[str, str | None]] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hostile.seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (200, b"<html>\x1b[31mlogin</html>", {"Content-Type": "text/html"},
         "GET /v2/serverless: RunPod's API answered 200 with text/html, not JSON: '<html> [31mlogin</html>'"),
        (200, b"{not json", {"Content-Type": "application/json"},
         "GET /v2/serverless: RunPod's API answered 200 with text that is not JSON: '{not json'"),
        (200, b'[{"id": "x"}]', {"Content-Type": "application/json"},
         "GET /v2/serverless: RunPod's answer is not the documented EndpointList (the answer: Input should be a "
         "valid dictionary or instance of _EndpointList)"),
        (502, b"Bad gateway\nfrom nginx", {"Content-Type": "text/plain"},
         "GET /v2/serverless: RunPod refused it (502 Bad Gateway): Bad gateway from nginx"),
    ],
    ids=["html", "broken-json", "v1-bare-list", "gateway-text"],
)  # fmt: skip
def test_an_answer_that_is_not_the_documents_is_one_line_not_a_traceback(
    status: int, body: bytes, headers: dict[str, str], message: str
) -> None:
    hostile = Hostile(status, body, headers)
    try:
        with pytest.raises(RunPodRestError) as error:
            RunPodRest(KEY, hostile.url).endpoints()
        assert str(error.value) == message
    finally:
        hostile.close()


def test_a_redirect_to_another_host_is_refused_and_the_key_never_goes_there() -> None:
    elsewhere = Hostile(200, b'{"endpoints": []}', {"Content-Type": "application/json"})
    redirect = Hostile(302, b"", {"Location": elsewhere.url.replace("127.0.0.1", "localhost") + "/serverless"})
    try:
        with pytest.raises(RunPodRestError) as error:
            RunPodRest(KEY, redirect.url).endpoints()
        host = elsewhere.url.split("/")[2].replace("127.0.0.1", "localhost")
        assert str(error.value) == (
            f"GET /v2/serverless: RunPod's API answered 302, a redirect to another host ({host}): not followed, "
            "since the API key would go with it; check --api-url"
        )
        assert elsewhere.seen == [] and redirect.seen == [("/v2/serverless", f"Bearer {KEY}")]
    finally:
        redirect.close()
        elsewhere.close()
