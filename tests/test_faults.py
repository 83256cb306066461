"""Faults lose nothing: a store that dies mid-upload, a worker killed mid-job, an API that answers 429/500."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from client.api import EndpointError, StudioClient
from core.contract import ErrorCode
from core.settings import Settings
from core.store import open_store
from tests.conftest import SHORT_JOB
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import running_s3
from worker.engines.preview import PreviewEngine
from worker.pipeline import run_job
from worker.prepared import PreparedJob
from worker.progress import CancelToken, Reporter

JOB = {**SHORT_JOB, "output_config": {"store": "s3"}}


class StopsStoreWhenDone(PreviewEngine):
    """The preview engine, which stops the S3 server the moment its last frame is out: a store dying mid-job."""

    def __init__(self, settings: Settings, stop: Any) -> None:
        super().__init__(settings)
        self.stop = stop

    def generate(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> Iterator[np.ndarray]:
        yield from super().generate(job, report, cancel)
        self.stop()


def test_a_store_that_dies_mid_job_gives_a_retryable_upload_error_and_keeps_the_video(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.pipeline.UPLOAD_BACKOFF_S", 0.05)
    with running_s3(tmp_path / "s3") as server:
        s3 = settings.with_(
            store="s3",
            s3_endpoint_url=server.endpoint_url,
            s3_bucket="dying",
            s3_access_key=server.access_key,
            s3_secret_key=server.secret_key,
        )
        open_store(s3).ensure_bucket()  # type: ignore[attr-defined]
        engine = StopsStoreWhenDone(s3, lambda: (server.process.kill(), server.process.wait()))
        engine.load()
        output = run_job(JOB, "dying-store", settings=s3, sink=lambda _: None, engine=engine)

    assert output["error"]["code"] == ErrorCode.UPLOAD and output["error"]["retryable"] is True
    assert "after 3 attempts" in output["error"]["message"]
    kept = settings.data_dir / "unpublished" / "dying-store" / "video.mp4"
    assert kept.is_file() and str(kept.parent) in output["error"]["message"]
    assert list(settings.work_root.iterdir()) == []


def test_a_worker_process_killed_mid_job_fails_that_job_retryably_and_a_new_worker_takes_the_next(
    tmp_path: Path,
) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data")}
    with running_endpoint(env, "tests.endpoint_runners:paced") as base:
        client = StudioClient(Settings(data_dir=tmp_path / "data", endpoint_base_url=base))
        doomed = client.submit({"chunks": 100, "chunk_s": 0.2})
        nxt = client.submit({"chunks": 1})
        wait_for(f"{base}/local/status/{doomed}", lambda body: body["status"] == "IN_PROGRESS")
        with sqlite3.connect(tmp_path / "data" / "endpoint" / "queue.db") as db:
            (pid,) = db.execute("SELECT worker_pid FROM jobs WHERE id = ?", (doomed,)).fetchone()
        os.kill(pid, signal.SIGKILL)
        lost = client.wait(doomed, timeout_s=20)
        done = client.wait(nxt, timeout_s=60)

    assert lost.status == "FAILED" and lost.error["code"] == ErrorCode.WORKER_LOST and lost.error["retryable"]
    assert done.status == "COMPLETED"


class FlakyApi(BaseHTTPRequestHandler):
    """RunPod's API as seen on a bad day, following its documented shapes: scripted answers per route."""

    script: ClassVar[dict[str, list[tuple[int, Any]]]] = {}
    calls: ClassVar[dict[str, int]] = {}
    delay_s: ClassVar[float] = 0.0

    def _answer(self) -> None:
        route = self.path.split("?")[0].rsplit("/", 1)[0] if "/status/" in self.path else self.path
        self.calls[route] = self.calls.get(route, 0) + 1
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        steps = self.script.get(route, [(404, {"error": "no"})])
        status, body = steps.pop(0) if len(steps) > 1 else steps[0]
        if body == "SLOW":
            time.sleep(self.delay_s)
            status, body = 200, {"id": "late", "status": "IN_QUEUE"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError):  # the client gave up waiting, as the test intends
            self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def flaky_api() -> Iterator[str]:
    FlakyApi.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2"
    server.shutdown()


def flaky_client(base: str, tmp_path: Path) -> StudioClient:
    settings = Settings(data_dir=tmp_path, endpoint_base_url=base, endpoint_id="ep1", api_key="rp-key")
    return StudioClient(settings, attempts=4)


def test_the_client_backs_off_through_429_and_500_and_submits_once(
    flaky_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    FlakyApi.script = {
        "/v2/ep1/run": [(429, {"error": "slow down"}), (200, {"id": "j1", "status": "IN_QUEUE"})],
        "/v2/ep1/status": [
            (500, {"error": "oops"}),
            (502, {}),
            (200, {"id": "j1", "status": "COMPLETED", "output": {"status": "success"}}),
        ],
    }
    client = flaky_client(flaky_api, tmp_path)

    assert client.submit({"prompt": "x"}) == "j1"
    assert client.status("j1").status == "COMPLETED"
    assert FlakyApi.calls["/v2/ep1/run"] == 2 and FlakyApi.calls["/v2/ep1/status"] == 3


def test_a_500_on_run_is_not_retried_so_no_duplicate_job_is_made(flaky_api: str, tmp_path: Path) -> None:
    FlakyApi.script = {"/v2/ep1/run": [(500, {"error": "internal"})]}
    with pytest.raises(EndpointError, match="HTTP 500"):
        flaky_client(flaky_api, tmp_path).submit({"prompt": "x"})
    assert FlakyApi.calls["/v2/ep1/run"] == 1


def test_a_run_that_times_out_is_reported_not_resubmitted(
    flaky_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FlakyApi.script = {"/v2/ep1/run": [(200, "SLOW")]}
    FlakyApi.delay_s = 1.5
    client = flaky_client(flaky_api, tmp_path)
    original = client.session.request
    monkeypatch.setattr(client.session, "request", lambda *a, **k: original(*a, **{**k, "timeout": (2, 0.5)}))

    with pytest.raises(EndpointError, match="may have been queued"):
        client.submit({"prompt": "x"})
    assert FlakyApi.calls["/v2/ep1/run"] == 1


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    client = flaky_client("http://127.0.0.1:9/v2", tmp_path)
    with pytest.raises(EndpointError, match="cannot reach the endpoint"):
        client.health()
