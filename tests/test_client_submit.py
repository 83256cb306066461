"""`studio submit`: a payload file in, progress on the terminal, the video downloaded, honest exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from getpass import getuser
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from catalog import Catalog, bucket
from catalog.sync import restore_unfinished
from client.api import StudioClient
from client.submit import main as submit_main
from client.submit import videos
from core.contract import JobStatus
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES
from tests.dashboard_support import OUTSIDE_SETTINGS
from tests.endpoint_server import ROOT, running_endpoint
from tests.media_tools import ffprobe
from tests.s3server import S3Server, free_port
from tests.test_client_requests import ScriptedApi
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local endpoint running the real pipeline (preview engine); yields the environment that points at it."""
    data_dir = tmp_path_factory.mktemp("submit-endpoint")
    port = free_port()
    # The webhook receiver is on loopback, which an endpoint refuses unless its operator allows private URLs.
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_ALLOW_PRIVATE_URLS": "1"}
    with running_endpoint(env, port=port):
        yield env


def submit(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", "submit", *args],
        cwd=cwd,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_a_payload_is_submitted_followed_and_its_video_downloaded(endpoint: dict[str, str], tmp_path: Path) -> None:
    payload = tmp_path / "job" / "single_image.json"
    shutil.copytree(EXAMPLES / "media", payload.parent / "media")
    shutil.copy(EXAMPLES / "single_image.json", payload)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = submit(endpoint, str(payload), "--download", str(tmp_path / "videos"), cwd=elsewhere)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert "submitted" in done.stderr and "generation" in done.stderr and "100.0% completed" in done.stderr
    saved = list((tmp_path / "videos").iterdir())
    assert [path.name for path in saved] == [f"{result['job_id']}_video.mp4"]
    assert saved[0].stat().st_size == result["video"]["bytes"]
    assert float(ffprobe(saved[0])["format"]["duration"]) > 1.0


def test_a_failed_job_exits_1_with_the_friendly_error_and_the_fix(endpoint: dict[str, str], tmp_path: Path) -> None:
    payload = tmp_path / "missing_media.json"
    speech = str(EXAMPLES / "media" / "speech_1.wav")
    payload.write_text(
        json.dumps({"input": {"prompt": "p", "cond_video": "media/nowhere.jpg", "cond_audio": {"person1": speech}}})
    )

    failed = submit(endpoint, str(payload), cwd=tmp_path)

    assert failed.returncode == 1
    assert json.loads(failed.stdout)["error"]["code"] == "E_INPUT_VALIDATION"
    assert "FAILED: The job's input is not valid: cond_video:" in failed.stderr
    assert "Fix the field named in the message and submit again." in failed.stderr


def test_webhook_gets_the_end_and_a_too_short_ttl_is_refused_naming_it(
    endpoint: dict[str, str], tmp_path: Path, receiver: Receiver
) -> None:
    payload = tmp_path / "missing_media.json"
    speech = str(EXAMPLES / "media" / "speech_1.wav")
    job = {"prompt": "p", "cond_video": "media/nowhere.jpg", "cond_audio": {"person1": speech}}
    payload.write_text(json.dumps(job))

    failed = submit(endpoint, str(payload), "--webhook", receiver.url, "--ttl", "60", cwd=tmp_path)
    refused = submit(endpoint, str(payload), "--ttl", "2", cwd=tmp_path)

    call = receiver.wait(1)[0]
    assert failed.returncode == 1 and call["status"] == "FAILED"
    assert call["id"] == json.loads(failed.stdout)["job_id"]
    assert refused.returncode == 2 and "policy.ttl must be whole milliseconds from 10000" in refused.stderr


def test_no_wait_prints_only_the_job_id(endpoint: dict[str, str], tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"prompt": "p", "cond_video": "https://example.com/p.jpg"}))

    queued = submit(endpoint, str(payload), "--no-wait", cwd=tmp_path)

    assert queued.returncode == 0, queued.stderr
    job_id = queued.stdout.strip()
    assert job_id and job_id in queued.stderr and "\n" not in job_id


@pytest.mark.slow  # the client gives an unreachable endpoint about 15 s of backoff before it gives up
def test_an_unreadable_payload_or_an_unreachable_endpoint_exits_2_saying_which(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"prompt": "p", "cond_video": "https://example.com/p.jpg"}))
    nowhere = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_LOCAL_PORT": str(free_port())}

    unreadable = submit(nowhere, str(broken), cwd=tmp_path)
    unreachable = submit(nowhere, str(good), cwd=tmp_path)

    assert unreadable.returncode == 2 and "not a readable JSON payload" in unreadable.stderr
    assert unreachable.returncode == 2 and "could not submit: cannot reach the endpoint" in unreachable.stderr
    assert "start it with `studio endpoint`" in unreachable.stderr
    assert "Traceback" not in unreadable.stderr + unreachable.stderr


def test_the_videos_of_a_batch_are_every_successful_items_video() -> None:
    single = {"status": "success", "video": {"key": "outputs/j/video.mp4"}}
    batch = {
        "status": "partial",
        "items": [
            {"status": "success", "video": {"key": "outputs/j/a/video.mp4"}},
            {"status": "error", "error": {"code": "E_FFMPEG"}},
            {"status": "success", "video": {"key": "outputs/j/c/video.mp4"}},
        ],
    }

    assert videos(single) == [single["video"]]
    assert [video["key"] for video in videos(batch)] == ["outputs/j/a/video.mp4", "outputs/j/c/video.mp4"]
    assert videos({"status": "error"}) == [] and videos(None) == []


@pytest.fixture
def runpod_and_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """`studio submit`'s environment for a RunPod endpoint (RunPod's job API scripted as RunPod documents it:
    /run answers `{id, status: IN_QUEUE}`, /status what the test says) and a real S3 store (SeaweedFS)."""
    ScriptedApi.script, ScriptedApi.calls, ScriptedApi.headers_seen, ScriptedApi.extra_headers = {}, {}, [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    for name in OUTSIDE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env = {
        "STUDIO_DATA_DIR": str(tmp_path / "cli-data"),
        "RUNPOD_ENDPOINT_ID": "ep1",
        "RUNPOD_API_KEY": "rp-key",
        "RUNPOD_ENDPOINT_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v2",
        "S3_ENDPOINT_URL": s3_server.endpoint_url,
        "S3_BUCKET": "c-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40],
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield Settings.from_env()
    server.shutdown()
    server.server_close()


def test_a_job_sent_to_runpod_from_the_command_line_is_found_by_a_dashboard_on_the_same_store(
    runpod_and_s3: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29 item 3: `studio submit` leaves the request file the dashboard's Submit leaves, so a dashboard
    started on an empty disk (Streamlit Cloud) follows the job on Live long before its metadata.json lands."""
    settings = runpod_and_s3
    ScriptedApi.script = {
        "/v2/ep1/run": [(200, {"id": "rp-single", "status": "IN_QUEUE"}),
                        (200, {"id": "rp-batch", "status": "IN_QUEUE"})],
        "/v2/ep1/status/rp-single": [(200, {"id": "rp-single", "status": "IN_PROGRESS", "delayTime": 900,
                                            "output": {"stage": "generation", "pct": 35.0, "job_id": "rp-single"}})],
    }  # fmt: skip
    for name in ("single_image.json", "batch.json"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copytree(EXAMPLES / "media", tmp_path / "media")
    assert submit_main([str(tmp_path / "single_image.json"), "--no-wait"]) == 0
    assert submit_main([str(tmp_path / "batch.json"), "--no-wait"]) == 0
    assert capsys.readouterr().out.split() == ["rp-single", "rp-batch"]

    dashboard = Catalog(tmp_path / "dashboard" / "catalog.db")
    store = open_store(settings)
    report = restore_unfinished(dashboard, store)
    assert report.restored == 2
    single, batch = dashboard.get("rp-single"), dashboard.get("rp-batch")
    assert single is not None and batch is not None
    assert {run["run_id"] for run in dashboard.unfinished("ep1")} == {"rp-single", "rp-batch"}, "Live follows both"
    for run in (single, batch):
        assert (run["status"], run["source"], run["submitted_by"]) == (JobStatus.IN_QUEUE, "request", getuser())
    request = bucket.read(store, single["request_key"])
    assert isinstance(request, bucket.RequestFile)
    assert set(request.media) == {"cond_video", "cond_audio.person1"}, "media kept as keys, which never expire"
    assert all(store.exists(key) for key in request.media.values())
    assert batch["request_key"].startswith("batches/"), "beside where the batch's output_config puts its videos"

    state = StudioClient(settings).status("rp-single")  # Live's next poll
    dashboard.apply_status("rp-single", state.status, progress=state.progress, delay_ms=state.delay_ms)
    assert dashboard.get("rp-single")["status"] == JobStatus.IN_PROGRESS


def test_a_store_refusing_the_request_file_is_said_but_the_job_stays_sent(
    runpod_and_s3: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("S3_SECRET_KEY", "not-the-secret")
    ScriptedApi.script = {"/v2/ep1/run": [(200, {"id": "rp-sent", "status": "IN_QUEUE"})]}
    payload = tmp_path / "urls.json"
    media = {"cond_video": "https://example.com/p.jpg", "cond_audio": {"person1": "https://example.com/s.wav"}}
    payload.write_text(json.dumps({"input": {"prompt": "p", **media}}))

    assert submit_main([str(payload), "--no-wait"]) == 0, "the job was sent: that is what the exit status says"
    said = capsys.readouterr()
    assert said.out.split() == ["rp-sent"]
    assert "rp-sent was sent, but its request file is not in the store (dashboards show the job when it finishes)" in (
        said.err
    )
    assert "not-the-secret" not in said.err
