"""The client's requests: backoff without duplicate jobs, adaptive polling, clear errors, RunPod's shapes read right.

RunPod's cloud cannot be reached from tests, so a scripted stand-in answers with the shapes and statuses RunPod
documents (429 with Retry-After, 5xx, dropped connections); everything local runs for real.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from client.api import EndpointError, JobState, StudioClient
from core.contract import ErrorCode
from core.settings import Settings

DROP = "DROP"


class ScriptedApi(BaseHTTPRequestHandler):
    """Answers each route from a script of (status, body) steps; the last step repeats. DROP closes the
    connection after reading the request, as a proxy or a crashing server would."""

    script: ClassVar[dict[str, list[tuple[int, Any]]]] = {}
    calls: ClassVar[dict[str, int]] = {}
    headers_seen: ClassVar[list[dict[str, str]]] = []
    extra_headers: ClassVar[dict[str, str]] = {}

    def _answer(self) -> None:
        route = self.path.split("?")[0]
        self.calls[route] = self.calls.get(route, 0) + 1
        self.headers_seen.append(dict(self.headers))
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        steps = self.script.get(route, [(404, {"error": f"no route {route}"})])
        status, body = steps.pop(0) if len(steps) > 1 else steps[0]
        if body == DROP:
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    ScriptedApi.script, ScriptedApi.calls, ScriptedApi.headers_seen, ScriptedApi.extra_headers = {}, {}, [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause the client takes, instead of taking it."""
    taken: list[float] = []
    monkeypatch.setattr("client.api.time.sleep", taken.append)
    return taken


def client_for(base: str, tmp_path: Path, attempts: int = 4) -> StudioClient:
    settings = Settings(data_dir=tmp_path, endpoint_base_url=base, endpoint_id="ep1", api_key="rp-key")
    return StudioClient(settings, attempts=attempts)


def queued(job_id: str = "j1") -> tuple[int, dict[str, Any]]:
    return 200, {"id": job_id, "status": "IN_QUEUE"}


def test_every_request_carries_the_api_key_as_a_bearer_token(api: str, tmp_path: Path) -> None:
    ScriptedApi.script = {"/v2/ep1/health": [(200, {"jobs": {}, "workers": {}})]}
    client_for(api, tmp_path).health()
    assert ScriptedApi.headers_seen[0]["Authorization"] == "Bearer rp-key"


def test_a_submission_whose_connection_drops_after_sending_is_reported_not_sent_again(
    api: str, tmp_path: Path, sleeps: list[float]
) -> None:
    ScriptedApi.script = {"/v2/ep1/run": [(200, DROP), queued()]}

    with pytest.raises(EndpointError, match="may have been queued, so it was not sent again"):
        client_for(api, tmp_path).submit({"prompt": "x"})
    assert ScriptedApi.calls["/v2/ep1/run"] == 1


def test_a_status_poll_whose_connection_drops_is_simply_asked_again(
    api: str, tmp_path: Path, sleeps: list[float]
) -> None:
    ScriptedApi.script = {"/v2/ep1/status/j1": [(200, DROP), (200, {"id": "j1", "status": "IN_PROGRESS"})]}

    assert client_for(api, tmp_path).status("j1").status == "IN_PROGRESS"
    assert ScriptedApi.calls["/v2/ep1/status/j1"] == 2 and sleeps == [1.0]


def test_a_submission_the_endpoint_did_not_act_on_is_retried_with_backoff(
    api: str, tmp_path: Path, sleeps: list[float]
) -> None:
    ScriptedApi.script = {"/v2/ep1/run": [(429, {"error": "slow down"}), (503, {"error": "busy"}), queued("j7")]}

    assert client_for(api, tmp_path).submit({"prompt": "x"}) == "j7"
    assert ScriptedApi.calls["/v2/ep1/run"] == 3 and sleeps == [1.0, 2.0]


def test_retry_after_is_honoured(api: str, tmp_path: Path, sleeps: list[float]) -> None:
    ScriptedApi.script = {"/v2/ep1/health": [(429, {"error": "slow down"}), (200, {"jobs": {}})]}
    ScriptedApi.extra_headers = {"Retry-After": "7"}

    client_for(api, tmp_path).health()
    assert sleeps == [7.0]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_submission_that_may_have_been_acted_on_is_never_repeated(
    api: str, tmp_path: Path, sleeps: list[float], status: int
) -> None:
    ScriptedApi.script = {"/v2/ep1/run": [(status, {"error": "upstream trouble"}), queued()]}

    with pytest.raises(EndpointError, match=f"HTTP {status}: upstream trouble"):
        client_for(api, tmp_path).submit({"prompt": "x"})
    assert ScriptedApi.calls["/v2/ep1/run"] == 1 and sleeps == []


def test_reads_keep_trying_through_server_errors_and_then_say_what_the_server_said(
    api: str, tmp_path: Path, sleeps: list[float]
) -> None:
    ScriptedApi.script = {"/v2/ep1/status/j1": [(500, {"error": "database is locked"})]}

    with pytest.raises(EndpointError, match="HTTP 500: database is locked") as raised:
        client_for(api, tmp_path, attempts=4).status("j1")
    assert raised.value.status == 500
    assert ScriptedApi.calls["/v2/ep1/status/j1"] == 4 and sleeps == [1.0, 2.0, 4.0]


def test_an_endpoint_that_is_not_listening_is_retried_then_named(tmp_path: Path, sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = client_for(f"http://127.0.0.1:{port}/v2", tmp_path, attempts=3)

    with pytest.raises(EndpointError) as raised:
        client.submit({"prompt": "x"})
    assert str(raised.value).startswith(f"cannot reach the endpoint at http://127.0.0.1:{port}/v2/ep1 (is it running?")
    assert "studio endpoint" in str(raised.value) and "refused" in str(raised.value)
    assert sleeps == [1.0, 2.0], "a refused connection never reached the endpoint, so even /run is retried"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": "Unauthorized"}, "refused the API key (401): check RUNPOD_API_KEY"),
        (404, {"error": "endpoint not found"}, "not found (404): endpoint not found — check RUNPOD_ENDPOINT_ID"),
        (413, {"error": "/run takes at most 10 MB"}, "too large (413): /run takes at most 10 MB"),
        (400, {"error": "bad input"}, "HTTP 400: bad input"),
    ],
)
def test_refusals_become_one_clear_error(
    api: str, tmp_path: Path, sleeps: list[float], status: int, body: dict[str, str], message: str
) -> None:
    ScriptedApi.script = {"/v2/ep1/run": [(status, body)]}

    with pytest.raises(EndpointError, match=re.escape(message)):
        client_for(api, tmp_path).submit({"prompt": "x"})
    assert ScriptedApi.calls["/v2/ep1/run"] == 1


def test_an_answer_that_is_not_a_json_object_is_named_as_such(api: str, tmp_path: Path) -> None:
    ScriptedApi.script = {"/v2/ep1/health": [(200, "<html>captive portal</html>")]}

    with pytest.raises(EndpointError, match=r"something other than a JSON object .*RUNPOD_ENDPOINT_BASE_URL"):
        client_for(api, tmp_path).health()


def test_a_job_over_the_run_limit_is_refused_before_anything_is_sent(api: str, tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match=r"over the 10 MB /run limit: upload media with prepare_input\(\)"):
        client_for(api, tmp_path).submit({"cond_video": "A" * (10 * 1024 * 1024)})
    assert ScriptedApi.calls == {}


def test_polling_starts_fast_and_backs_off_to_ten_seconds_while_nothing_changes(
    api: str, tmp_path: Path, sleeps: list[float]
) -> None:
    ScriptedApi.script = {
        "/v2/ep1/status/j1": [(200, {"id": "j1", "status": "IN_QUEUE"})] * 12
        + [(200, {"id": "j1", "status": "IN_PROGRESS", "output": {"stage": "generation", "pct": 40.0}})] * 2
        + [(200, {"id": "j1", "status": "COMPLETED", "output": {"status": "success"}})]
    }
    updates: list[JobState] = []

    final = client_for(api, tmp_path).wait("j1", updates.append)

    queued_waits = [min(0.5 * 1.5**n, 10.0) for n in range(12)]
    assert sleeps == [*queued_waits, 0.5, 0.75]
    assert sleeps[11] == 10.0, "the interval is capped at 10 s"
    assert final.status == "COMPLETED" and final.output == {"status": "success"}
    assert [state.status for state in updates].count("IN_PROGRESS") == 2
    assert updates[12].progress == {"stage": "generation", "pct": 40.0} and updates[12].output is None


def test_a_wait_with_a_timeout_returns_the_job_as_it_last_was(api: str, tmp_path: Path, sleeps: list[float]) -> None:
    ScriptedApi.script = {"/v2/ep1/status/j1": [(200, {"id": "j1", "status": "IN_QUEUE"})]}

    state = client_for(api, tmp_path).wait("j1", timeout_s=0.0)

    assert state.status == "IN_QUEUE" and not state.finished and sleeps == []


def test_job_states_read_runpods_shapes_from_the_cloud_and_the_local_endpoint() -> None:
    progress = {"stage": "generation", "pct": 55.0, "details": {"chunk": 2, "chunks": 4}}
    running = JobState.from_response(
        {"id": "a", "status": "IN_PROGRESS", "delayTime": 120, "executionTime": 900, "output": progress}
    )
    assert running.progress == progress and running.output is None and not running.finished
    assert (running.delay_ms, running.execution_ms) == (120, 900)

    error = {"code": ErrorCode.OOM, "message": "CUDA out of memory", "retryable": False, "at_stage": "generation"}
    # RunPod's worker SDK pops `error` out of a handler's output dict, so the cloud shows it only as `error`.
    cloud = JobState.from_response({"id": "b", "status": "FAILED", "error": json.dumps(error), "output": {}})
    local = JobState.from_response(
        {"id": "c", "status": "FAILED", "error": json.dumps(error), "output": {"status": "error", "error": error}}
    )
    assert cloud.error == error and local.error == error and cloud.finished

    crashed = JobState.from_response({"id": "d", "status": "FAILED", "error": "handler: worker exited"})
    assert crashed.error == "handler: worker exited"

    done = JobState.from_response({"id": "e", "status": "COMPLETED", "output": {"status": "success"}})
    assert done.output == {"status": "success"} and done.error is None and done.progress is None
