"""The local endpoint answers RunPod's REST API v2 worker routes for its own worker processes (issue 26):
`GET /v2/serverless/{id}/workers` in ListEndpointWorkersResponse's shape, and a worker's log as the Server-Sent
Events stream `GET /v2/serverless/{id}/workers/{workerId}/logs` sends (`id: <ts>/<seq>`, `data: {ts, source,
line}`), so Endpoint health reads one shape from RunPod and from the embedded default."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.dashboard_support import EXAMPLES, example_job
from tests.endpoint_server import running_endpoint, wait_for
from tests.runpod_rest_server import validate


def _events(response: requests.Response) -> Iterator[dict[str, Any]]:
    """SSE events as RunPod's document gives them: an `id:` line and a JSON `data:` line, a blank line between."""
    event: dict[str, Any] = {}
    for raw in response.iter_lines(decode_unicode=True):
        if raw == "":
            if event:
                yield event
            event = {}
        elif raw.startswith("id: "):
            event["id"] = raw[4:]
        elif raw.startswith("data: "):
            event["data"] = json.loads(raw[6:])


def _log(base: str, worker: str, **params: Any) -> requests.Response:
    root = base.removesuffix("/v2")
    return requests.get(
        f"{root}/v2/serverless/local/workers/{worker}/logs", params=params, stream=True, timeout=(5, 60)
    )


def _until(base: str, worker: str, words: str, **params: Any) -> list[dict[str, Any]]:
    """The stream's events up to the first whose line holds `words` (the stream itself goes on following)."""
    with _log(base, worker, **params) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = []
        for event in _events(response):
            events.append(event)
            if words in event["data"]["line"]:
                return events
    raise AssertionError(f"the stream ended without {words!r}: {events}")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_INPUT_ROOTS": str(EXAMPLES), **extra}


def test_the_worker_list_has_runpods_shape_and_the_log_tail_holds_the_workers_own_lines(tmp_path: Path) -> None:
    with running_endpoint(_env(tmp_path)) as base:
        wait_for(f"{base}/local/health", lambda h: h["workers"]["idle"] >= 1, timeout_s=60)
        listing = requests.get(f"{base}/serverless/local/workers", timeout=10).json()
        assert validate("ListEndpointWorkersResponse", listing) == [], "RunPod's v2 document's own schema"
        assert set(listing) == {"endpointVersion", "summary", "workers"}
        assert listing["summary"] == {
            "running": 0, "idle": 1, "initializing": 0, "throttled": 0, "unhealthy": 0, "total": 1,
        }  # fmt: skip
        (worker,) = listing["workers"]
        assert worker["status"] == "IDLE" and worker["isStale"] is False and worker["gpuCount"] == 0
        assert worker["dataCenterId"] == "local" and worker["gpuTypeId"] is None
        assert isinstance(worker["uptimeSeconds"], int) and worker["startedAt"].endswith("Z")
        assert worker["id"].isdigit()

        job = requests.post(f"{base}/local/run", json={"input": example_job("log me")}, timeout=10).json()
        wait_for(f"{base}/local/status/{job['id']}", lambda s: s["status"] == "COMPLETED", timeout_s=120)
        everything = _until(base, worker["id"], '"job completed"', tail=100)
        lines = [json.loads(e["data"]["line"]) for e in everything]
        assert [line["msg"] for line in lines[:2]] == ["worker started; loading the engine", "engine loaded"]
        assert lines[-1]["job_id"] == job["id"]
        assert all(e["data"]["source"] == "container" for e in everything)
        assert all(e["id"].startswith(e["data"]["ts"] + "/") for e in everything)
        last_two = _until(base, worker["id"], '"job completed"', tail=2)
        assert last_two[-1] == everything[-1] and len(last_two) <= 2, "tail=2 backfills the last two lines"


def test_a_log_stream_follows_the_worker_and_resumes_after_an_event_id(tmp_path: Path) -> None:
    with running_endpoint(_env(tmp_path)) as base:
        wait_for(f"{base}/local/health", lambda h: h["workers"]["idle"] >= 1, timeout_s=60)
        (worker,) = requests.get(f"{base}/serverless/local/workers", timeout=10).json()["workers"]
        backfill = _until(base, worker["id"], "engine loaded", tail=100)
        with _log(base, worker["id"], tail=0) as response:
            job = requests.post(f"{base}/local/run", json={"input": example_job("follow")}, timeout=10).json()
            followed = []
            for event in _events(response):  # nothing backfilled: the lines come as the worker writes them
                followed.append(json.loads(event["data"]["line"]))
                if followed[-1]["msg"] == "job completed":
                    break
        assert all(line["job_id"] == job["id"] for line in followed)
        resumed = requests.get(
            f"{base.removesuffix('/v2')}/v2/serverless/local/workers/{worker['id']}/logs",
            headers={"Last-Event-ID": backfill[-1]["id"]},
            stream=True,
            timeout=(5, 60),
        )
        with resumed:
            first = next(_events(resumed))
        assert first["data"]["ts"] >= backfill[-1]["data"]["ts"]
        assert first["data"]["line"] != backfill[-1]["data"]["line"]


def test_a_cold_start_stuck_on_missing_weights_is_an_unhealthy_worker_whose_log_names_the_file(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, STUDIO_ENGINE="infinitetalk", CKPT_DIR=str(tmp_path / "no-weights"))
    with running_endpoint(env) as base:
        wait_for(f"{base}/local/health", lambda h: h["workers"]["unhealthy"] >= 1, timeout_s=60)
        listing = requests.get(f"{base}/serverless/local/workers", timeout=10).json()
        assert listing["summary"]["unhealthy"] == 1 and listing["workers"][0]["status"] == "UNHEALTHY"
        events = _until(base, listing["workers"][0]["id"], "engine failed to load")
        failed = json.loads(events[-1]["data"]["line"])
        assert failed["msg"] == "engine failed to load" and failed["level"] == "error"
        assert str(tmp_path / "no-weights") in failed["error"]


def test_refusals_are_rfc_9457_problems(tmp_path: Path) -> None:
    with running_endpoint(_env(tmp_path)) as base:
        wait_for(f"{base}/local/health", lambda h: h["workers"]["idle"] >= 1, timeout_s=60)
        (worker,) = requests.get(f"{base}/serverless/local/workers", timeout=10).json()["workers"]
        cases = [
            (f"{base}/serverless/other/workers", 404, "'other' not found"),
            (f"{base}/serverless/local/workers/999999999/logs", 404, "worker '999999999' not found"),
            (f"{base}/serverless/local/workers/..queue.db/logs", 404, "not found"),
            (f"{base}/serverless/local/workers/{worker['id']}/logs?tail=5001", 400, "from 0 to 5000"),
            (f"{base}/serverless/local/workers/{worker['id']}/logs?tail=%D9%A3", 400, "whole number"),
            (f"{base}/serverless/local/workers/{worker['id']}/logs?source=kernel", 400, "container or system"),
            (f"{base}/serverless/local/workers/{worker['id']}/logs?since=yesterday", 400, "RFC 3339"),
        ]
        for url, status, words in cases:
            response = requests.get(url, timeout=10)
            assert response.status_code == status, url
            assert response.headers["content-type"] == "application/problem+json", url
            problem = response.json()
            assert validate("ErrorResponse", problem) == [], url
            assert problem["status"] == status and problem["title"] and words in problem["detail"], url


def test_a_killed_workers_replacement_is_listed_and_the_dead_ones_log_stays_readable(tmp_path: Path) -> None:
    with running_endpoint(_env(tmp_path)) as base:
        wait_for(f"{base}/local/health", lambda h: h["workers"]["idle"] >= 1, timeout_s=60)
        (old,) = requests.get(f"{base}/serverless/local/workers", timeout=10).json()["workers"]
        os.kill(int(old["id"]), signal.SIGKILL)
        listing = wait_for(
            f"{base}/serverless/local/workers",
            lambda body: (
                [w["id"] for w in body["workers"]] not in ([old["id"]], []) and body["workers"][0]["status"] == "IDLE"
            ),
            timeout_s=60,
        )
        assert listing["summary"]["total"] == 1
        with _log(base, old["id"]) as response:  # a gone worker's stream ends after its last line
            lines = [json.loads(e["data"]["line"])["msg"] for e in _events(response)]
        assert lines == ["worker started; loading the engine", "engine loaded"]
