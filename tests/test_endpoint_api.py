"""The local endpoint answers RunPod's endpoint API: the official SDK and plain HTTP see RunPod's shapes.

Jobs here run `tests.endpoint_runners:paced` (run_job's signature and progress, a controllable length), so each
test can hold a job in the queue or in progress as long as it needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import runpod

from client.api import EndpointError, StudioClient
from core.contract import ErrorCode
from core.settings import Settings
from tests.endpoint_server import running_endpoint, wait_for

PACED = "tests.endpoint_runners:paced"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    return {"STUDIO_DATA_DIR": str(data_dir), **extra}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One endpoint for the tests that look at single jobs: its base URL (…/v2) and data dir."""
    data_dir = tmp_path_factory.mktemp("shared-endpoint")
    with running_endpoint(env_for(data_dir), PACED) as base:
        yield base, data_dir


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the official SDK at an endpoint base URL, as a user switching from RunPod would."""

    def point(base: str, api_key: str = "unused-locally") -> runpod.Endpoint:
        monkeypatch.setattr(runpod, "endpoint_url_base", base)
        monkeypatch.setattr(runpod, "api_key", api_key)
        return runpod.Endpoint("local")

    return point


def post(base: str, route: str, body: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(f"{base}/local/{route}", json=body, timeout=30, **kwargs)


def status(base: str, job_id: str) -> dict[str, Any]:
    return requests.get(f"{base}/local/status/{job_id}", timeout=10).json()


def follow(base: str, job_id: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every /status answer until the job ends."""
    seen = [status(base, job_id)]
    deadline = time.monotonic() + timeout_s
    while seen[-1]["status"] not in FINAL:
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {seen[-1]}"
        time.sleep(0.05)
        seen.append(status(base, job_id))
    return seen


def test_the_official_sdk_sees_a_job_queued_then_running_with_progress_then_completed(tmp_path: Path, sdk: Any) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        endpoint = sdk(base)
        blocker = endpoint.run({"chunks": 8, "chunk_s": 0.2})
        job = endpoint.run({"input": {"chunks": 4, "chunk_s": 0.2}})
        first = job.status()
        seen = follow(base, job.job_id)
        output = job.output()
        blocker.output(timeout=30)

    statuses = [answer["status"] for answer in seen]
    assert first == "IN_QUEUE"
    assert list(dict.fromkeys(statuses)) == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    progress = [answer["output"] for answer in seen if answer["status"] == "IN_PROGRESS" and "output" in answer]
    assert progress and [p["pct"] for p in progress] == sorted(p["pct"] for p in progress)
    assert {p["details"].get("chunk") for p in progress} >= {1, 2, 3}
    assert output == {"status": "success", "job_id": job.job_id, "chunks": 4, "endpoint_id": "local"}


def test_the_official_sdk_runs_sync_reads_health_cancels_and_purges(tmp_path: Path, sdk: Any) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        endpoint = sdk(base)
        sync_output = endpoint.run_sync({"chunks": 1, "chunk_s": 0.05}, timeout=30)
        running = endpoint.run({"chunks": 100, "chunk_s": 0.1})
        queued = [endpoint.run({"chunks": 1}) for _ in range(2)]
        wait_for(f"{base}/local/status/{running.job_id}", lambda body: body["status"] == "IN_PROGRESS")
        health = endpoint.health()
        cancelled = queued[0].cancel()
        purged = endpoint.purge_queue()
        running.cancel()
        final = follow(base, running.job_id)[-1]

    assert sync_output["status"] == "success" and sync_output["chunks"] == 1
    assert health["jobs"] == {"completed": 1, "failed": 0, "inProgress": 1, "inQueue": 2, "retried": 0}
    assert health["workers"]["running"] == 1
    assert cancelled == {"id": queued[0].job_id, "status": "CANCELLED"}
    assert purged == {"removed": 1, "status": "completed"}
    assert final["status"] == "CANCELLED"


def test_status_gives_queue_delay_and_execution_time_in_milliseconds(shared: tuple[str, Path]) -> None:
    base, _ = shared
    job_id = post(base, "run", {"input": {"chunks": 5, "chunk_s": 0.2}}).json()["id"]
    seen = follow(base, job_id)

    running = [answer for answer in seen if answer["status"] == "IN_PROGRESS"]
    assert running and all("executionTime" in answer for answer in running)
    assert [a["executionTime"] for a in running] == sorted(a["executionTime"] for a in running)
    done = seen[-1]
    assert done["status"] == "COMPLETED" and 1000 <= done["executionTime"] < 10_000
    assert 0 <= done["delayTime"] < 5_000
    assert "error" not in done


def test_runsync_returns_the_finished_job_within_its_wait(shared: tuple[str, Path]) -> None:
    base, _ = shared
    answer = post(base, "runsync", {"input": {"chunks": 2, "chunk_s": 0.1}}).json()

    assert answer["status"] == "COMPLETED" and answer["id"].startswith("sync-")
    assert answer["output"]["chunks"] == 2 and "executionTime" in answer and "delayTime" in answer


def test_runsync_answers_with_the_running_job_when_its_wait_runs_out(shared: tuple[str, Path]) -> None:
    base, _ = shared
    began = time.monotonic()
    answer = post(base, "runsync?wait=1000", {"input": {"chunks": 15, "chunk_s": 0.2}}).json()
    waited = time.monotonic() - began

    assert answer["status"] in ("IN_QUEUE", "IN_PROGRESS") and 1.0 <= waited < 3.0
    assert follow(base, answer["id"])[-1]["status"] == "COMPLETED"


def test_runsync_waits_only_as_long_as_runpod_allows(shared: tuple[str, Path]) -> None:
    base, _ = shared
    for wait in (999, 300_001):
        response = post(base, f"runsync?wait={wait}", {"input": {}})
        assert response.status_code == 400
        assert "wait must be from 1000 to 300000 ms" in response.json()["error"]


def test_a_failed_job_carries_runpods_error_string_and_the_structured_error_in_output(
    shared: tuple[str, Path],
) -> None:
    base, _ = shared
    job_id = post(base, "run", {"input": {"fail": ErrorCode.DOWNLOAD_FAILED}}).json()["id"]
    final = follow(base, job_id)[-1]

    assert final["status"] == "FAILED"
    assert isinstance(final["error"], str)
    assert json.loads(final["error"]) == final["output"]["error"]
    assert final["output"]["error"]["code"] == ErrorCode.DOWNLOAD_FAILED
    assert final["output"]["error"]["retryable"] is True


def test_a_runner_that_raises_fails_its_job_and_its_worker_takes_the_next(shared: tuple[str, Path]) -> None:
    base, _ = shared
    broken = post(base, "run", {"input": {"raise": "boom"}}).json()["id"]
    after = post(base, "run", {"input": {"chunks": 1}}).json()["id"]

    failed = follow(base, broken)[-1]
    assert failed["status"] == "FAILED"
    assert failed["output"]["error"]["code"] == ErrorCode.GENERATION_RUNTIME
    assert "RuntimeError: boom" in failed["output"]["error"]["message"]
    assert follow(base, after)[-1]["status"] == "COMPLETED"


def test_retry_runs_a_failed_job_again_under_its_id_and_health_counts_it(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        failed = post(base, "run", {"input": {"fail": ErrorCode.UPLOAD}}).json()["id"]
        follow(base, failed)
        retried = post(base, f"retry/{failed}")
        again = follow(base, failed)
        completed = post(base, "run", {"input": {"chunks": 1}}).json()["id"]
        follow(base, completed)
        refused = post(base, f"retry/{completed}")
        health = requests.get(f"{base}/local/health", timeout=10).json()

    assert retried.status_code == 200 and retried.json() == {"id": failed, "status": "IN_QUEUE"}
    assert again[-1]["status"] == "FAILED" and again[-1]["retries"] == 1
    assert refused.status_code == 400
    assert "only FAILED or TIMED_OUT jobs can be retried" in refused.json()["error"]
    assert health["jobs"]["retried"] == 1 and health["jobs"]["failed"] == 1 and health["jobs"]["completed"] == 1


def test_health_reports_workers_initializing_then_idle_and_running(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path, STUDIO_LOCAL_WORKERS="2"), PACED) as base:
        started = requests.get(f"{base}/local/health", timeout=10).json()["workers"]
        idle = wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 2)["workers"]
        jobs = [post(base, "run", {"input": {"chunks": 30, "chunk_s": 0.1}}).json()["id"] for _ in range(2)]
        busy = wait_for(f"{base}/local/health", lambda body: body["workers"]["running"] == 2)
        for job_id in jobs:
            post(base, f"cancel/{job_id}")

    assert started["initializing"] + started["idle"] == 2
    assert idle == {"idle": 2, "initializing": 0, "ready": 2, "running": 0, "throttled": 0, "unhealthy": 0}
    assert busy["jobs"]["inProgress"] == 2, "two workers run two jobs at once"


def test_purge_removes_waiting_jobs_and_leaves_the_running_one(tmp_path: Path) -> None:
    with running_endpoint(env_for(tmp_path), PACED) as base:
        running = post(base, "run", {"input": {"chunks": 50, "chunk_s": 0.1}}).json()["id"]
        waiting = [post(base, "run", {"input": {"chunks": 1}}).json()["id"] for _ in range(3)]
        wait_for(f"{base}/local/status/{running}", lambda body: body["status"] == "IN_PROGRESS")
        purged = post(base, "purge-queue").json()
        gone = [requests.get(f"{base}/local/status/{job_id}", timeout=10).status_code for job_id in waiting]
        still = status(base, running)["status"]
        post(base, f"cancel/{running}")

    assert purged == {"removed": 3, "status": "completed"}
    assert gone == [404, 404, 404] and still == "IN_PROGRESS"


def test_a_wrong_or_missing_api_key_gets_401_and_the_key_works_bare_or_as_bearer(tmp_path: Path, sdk: Any) -> None:
    key = "sekret-key-1"
    with running_endpoint(env_for(tmp_path, RUNPOD_API_KEY=key), PACED) as base:
        missing = requests.get(f"{base}/local/health", timeout=10)
        wrong = requests.get(f"{base}/local/health", headers={"Authorization": "Bearer nope"}, timeout=10)
        bearer = requests.get(f"{base}/local/health", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        bare = requests.get(f"{base}/local/health", headers={"Authorization": key}, timeout=10)
        with pytest.raises(RuntimeError, match="401 Unauthorized"):
            sdk(base, "wrong-key").health()
        sdk_health = sdk(base, key).health()
        client = StudioClient(Settings(data_dir=tmp_path, endpoint_base_url=base, api_key="wrong"), attempts=1)
        with pytest.raises(EndpointError, match=r"refused the API key .*RUNPOD_API_KEY"):
            client.health()

    assert missing.status_code == wrong.status_code == 401
    assert "Authorization: Bearer <key>" in missing.json()["error"]
    assert bearer.status_code == bare.status_code == 200
    assert "jobs" in sdk_health


def test_oversized_bodies_are_refused_with_runpods_limits_and_the_fix(shared: tuple[str, Path]) -> None:
    base, _ = shared
    eleven_mb = {"input": {"chunks": 1, "padding": "A" * (11 * 1024 * 1024)}}
    too_big_for_run = post(base, "run", eleven_mb)
    fits_runsync = post(base, "runsync", eleven_mb)
    too_big_for_runsync = post(base, "runsync", {"input": {"padding": "A" * (21 * 1024 * 1024)}})

    assert too_big_for_run.status_code == 413
    message = too_big_for_run.json()["error"]
    assert "/run takes at most 10 MB" in message and "send its URL or path instead of base64" in message
    assert fits_runsync.status_code == 200 and fits_runsync.json()["status"] == "COMPLETED"
    assert too_big_for_runsync.status_code == 413
    assert "/runsync takes at most 20 MB" in too_big_for_runsync.json()["error"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "the request body is not JSON"),
        (b'{"prompt": "no input key"}', 'send {"input": {...}}'),
        (b'{"input": {}, "policy": {"executionTimeout": 1000}}', "policy.executionTimeout must be whole milliseconds"),
        (b'{"input": {}, "policy": {"executionTimeout": "10m"}}', "from 5000 to 604800000"),
        (b'{"input": {}, "policy": 5}', "policy must be an object"),
    ],
)
def test_malformed_submissions_get_400_naming_the_problem(shared: tuple[str, Path], body: bytes, problem: str) -> None:
    base, _ = shared
    response = requests.post(f"{base}/local/run", data=body, timeout=10)

    assert response.status_code == 400
    assert problem in response.json()["error"]


def test_unknown_jobs_endpoints_and_routes_get_404_with_runpods_error_shape(shared: tuple[str, Path]) -> None:
    base, _ = shared
    no_job = requests.get(f"{base}/local/status/not-a-job", timeout=10)
    no_endpoint = requests.get(f"{base}/abc123/health", timeout=10)
    no_route = requests.get(f"{base}/local/nothing-here", timeout=10)

    assert no_job.status_code == 404 and "job 'not-a-job' not found" in no_job.json()["error"]
    assert no_endpoint.status_code == 404 and "this local endpoint is 'local'" in no_endpoint.json()["error"]
    assert no_route.status_code == 404 and "error" in no_route.json()


def test_files_serves_the_local_store_and_nothing_outside_it(shared: tuple[str, Path]) -> None:
    base, data_dir = shared
    video = data_dir / "artifacts" / "outputs" / "job-1" / "video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 video bytes")
    root = base.removesuffix("/v2")

    served = requests.get(f"{root}/files/outputs/job-1/video.mp4", timeout=10)
    ranged = requests.get(f"{root}/files/outputs/job-1/video.mp4", headers={"Range": "bytes=4-7"}, timeout=10)
    escape = requests.get(f"{root}/files/..%2Fendpoint%2Fqueue.db", timeout=10)
    missing = requests.get(f"{root}/files/outputs/job-1/none.mp4", timeout=10)

    assert served.status_code == 200 and served.content == video.read_bytes()
    assert served.headers["content-type"] == "video/mp4"
    assert ranged.status_code == 206 and ranged.content == b"ftyp"
    assert escape.status_code == 404 and missing.status_code == 404
