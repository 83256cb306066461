"""The local endpoint behaves like a RunPod Serverless endpoint, for the official SDK and for our client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import runpod

from tests.conftest import EXAMPLES
from tests.endpoint_server import running_endpoint, start_endpoint, stop_endpoint, wait_for
from tests.s3server import free_port
from worker.client import EndpointError, StudioClient, prepare_input
from worker.payloads import load_payload
from worker.settings import Settings
from worker.store import open_store

PACED = "tests.endpoint_runners:paced"


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_INPUT_ROOTS": str(EXAMPLES), **extra}


def client_for(base: str, tmp_path: Path, api_key: str | None = None) -> StudioClient:
    settings = Settings(data_dir=tmp_path / "data", endpoint_base_url=base, api_key=api_key)
    return StudioClient(settings, attempts=2)


def test_the_official_sdk_sees_queue_progress_and_the_real_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_endpoint(env_for(tmp_path)) as base:
        monkeypatch.setattr(runpod, "endpoint_url_base", base)
        monkeypatch.setattr(runpod, "api_key", "unused-locally")
        endpoint = runpod.Endpoint("local")
        job = endpoint.run(load_payload(EXAMPLES / "single_image.json"))

        seen = set()
        progress = []
        for _ in range(600):
            status = job.status()
            seen.add(status)
            body = requests.get(f"{base}/local/status/{job.job_id}", timeout=5).json()
            if status == "IN_PROGRESS" and body.get("output"):
                progress.append(body["output"]["pct"])
            if status in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.1)
        output = job.output()

    assert {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"} <= seen or {"IN_PROGRESS", "COMPLETED"} <= seen
    assert progress and progress == sorted(progress)
    assert output["status"] == "success" and output["engine"]["name"] == "preview"
    assert Path(output["video"]["url"].removeprefix("file://")).is_file()


def test_status_carries_progress_then_the_result_with_timings(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        job_id = client.submit({"chunks": 5, "chunk_s": 0.3})
        states = []
        final = client.wait(job_id, states.append)

    assert final.status == "COMPLETED" and final.output["chunks"] == 5
    assert any(state.progress and state.progress["stage"] == "generation" for state in states)
    assert final.delay_ms is not None and final.execution_ms >= 1000


def test_cancel_stops_queued_jobs_at_once_and_running_ones_at_a_chunk_boundary(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        running = client.submit({"chunks": 50, "chunk_s": 0.2})
        queued = client.submit({"chunks": 1})
        wait_for(f"{base}/local/status/{running}", lambda body: body["status"] == "IN_PROGRESS")

        assert client.cancel(queued).status == "CANCELLED"
        client.cancel(running)
        final = client.wait(running, timeout_s=20)

    assert final.status == "CANCELLED"
    assert final.error["code"] == "E_CANCELLED"


def test_a_job_past_its_execution_timeout_is_timed_out_and_the_worker_replaced(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        slow = client.submit({"chunks": 100, "chunk_s": 0.2}, execution_timeout_ms=1000)
        final = client.wait(slow, timeout_s=30)
        after = client.wait(client.submit({"chunks": 1}), timeout_s=60)

    assert final.status == "TIMED_OUT" and final.error["code"] == "E_TIMEOUT"
    assert after.status == "COMPLETED", "a fresh worker takes the next job"


def test_a_restart_mid_job_records_that_job_and_loses_nothing_else(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path)
    process = start_endpoint(env, PACED, port)
    base = f"http://127.0.0.1:{port}/v2"
    client = client_for(base, tmp_path)
    interrupted = client.submit({"chunks": 100, "chunk_s": 0.2})
    waiting = client.submit({"chunks": 2})
    wait_for(f"{base}/local/status/{interrupted}", lambda body: body["status"] == "IN_PROGRESS")
    stop_endpoint(process, kill=True)

    process = start_endpoint(env, PACED, port)
    try:
        lost = client.status(interrupted)
        done = client.wait(waiting, timeout_s=60)
    finally:
        stop_endpoint(process)

    assert lost.status == "FAILED" and lost.error["code"] == "E_WORKER_LOST" and lost.error["retryable"] is True
    assert done.status == "COMPLETED"


def test_purge_removes_only_queued_jobs_and_health_counts_them(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        client = client_for(base, tmp_path)
        running = client.submit({"chunks": 20, "chunk_s": 0.2})
        for _ in range(3):
            client.submit({"chunks": 1})
        wait_for(f"{base}/local/status/{running}", lambda body: body["status"] == "IN_PROGRESS")
        health = client.health()
        purged = client.purge_queue()
        after = client.health()
        client.cancel(running)

    assert health["jobs"]["inQueue"] == 3 and health["jobs"]["inProgress"] == 1
    assert health["workers"]["running"] == 1
    assert purged == {"removed": 3, "status": "completed"}
    assert after["jobs"]["inQueue"] == 0


def test_a_wrong_api_key_gets_401_and_the_right_one_works(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path, RUNPOD_API_KEY="sekret-key-1"), PACED) as base:
        assert requests.get(f"{base}/local/health", timeout=5).status_code == 401
        with pytest.raises(EndpointError, match="API key"):
            client_for(base, tmp_path, api_key="wrong-key").health()
        assert "jobs" in client_for(base, tmp_path, api_key="sekret-key-1").health()


def test_an_oversized_payload_is_refused_with_the_limit_and_the_fix(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        body = json.dumps({"input": {"cond_video": "A" * (11 * 1024 * 1024)}})
        response = requests.post(f"{base}/local/run", data=body, timeout=30)

    assert response.status_code == 413
    assert "10 MB" in response.json()["error"] and "upload media" in response.json()["error"]


def test_prepare_input_moves_local_media_into_the_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    job_input = load_payload(EXAMPLES / "single_image.json")
    prepared = prepare_input(job_input, open_store(settings))

    assert prepared["cond_video"].startswith(str(settings.artifact_dir / "uploads"))
    assert Path(prepared["cond_video"]).read_bytes() == (EXAMPLES / "media" / "portrait.jpg").read_bytes()
    assert len(json.dumps(prepared)) < 2000
