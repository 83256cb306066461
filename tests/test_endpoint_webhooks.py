"""Webhooks and the queue's ttl, as RunPod documents them: a job's end is POSTed to its webhook (what /status
says; 2 more tries 10 s apart if the receiver fails), and a job queued past `policy.ttl` never runs.

The receiver is a real HTTP server on loopback; the endpoint is the real one, in its own process. A loopback
receiver is a private address, so these endpoints run with STUDIO_ALLOW_PRIVATE_URLS=1 (what is refused without
it: tests/test_endpoint_webhook_addresses.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.contract import ErrorCode, JobStatus
from core.settings import Settings
from endpoint import queue as queue_module
from endpoint.queue import JobQueue, job_view
from endpoint.webhooks import ATTEMPTS, RETRY_DELAY_MS, deliver, post_json
from tests.endpoint_server import running_endpoint, wait_for
from tests.webhook_receiver import Receiver

PACED = "tests.endpoint_runners:paced"
PRIVATE_OK = {"STUDIO_ALLOW_PRIVATE_URLS": "1"}


def trusting_post(url: str, body: dict) -> int:
    """post_json for a receiver on loopback, which an operator trusts with STUDIO_ALLOW_PRIVATE_URLS."""
    return post_json(url, body, Settings(allow_private_urls=True))


class Clock:
    """The queue's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(queue_module, "now_ms", made)
    return made


def test_a_finished_job_posts_what_status_says_to_its_webhook_once(tmp_path: Path, receiver: Receiver) -> None:
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path), **PRIVATE_OK}, PACED) as base:
        job_id = requests.post(
            f"{base}/local/run", json={"input": {"chunks": 2, "chunk_s": 0.1}, "webhook": receiver.url}, timeout=10
        ).json()["id"]
        final = wait_for(f"{base}/local/status/{job_id}", lambda body: body["status"] == "COMPLETED")
        calls = receiver.wait(1)
        answered = requests.get(f"{base}/local/status/{job_id}", timeout=10).json()

    assert len(calls) == 1, "acknowledged with 200, so sent once"
    call = calls[0]
    assert call["id"] == job_id and call["status"] == "COMPLETED"
    assert call["output"] == final["output"] == answered["output"]
    assert set(call) == set(answered) and call["delayTime"] == answered["delayTime"]


def test_a_cancelled_or_failed_job_is_posted_too_with_its_error(tmp_path: Path, receiver: Receiver) -> None:
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path), **PRIVATE_OK}, PACED) as base:

        def run(job_input: dict[str, Any]) -> str:
            body = {"input": job_input, "webhook": receiver.url}
            return requests.post(f"{base}/local/run", json=body, timeout=10).json()["id"]

        blocker = run({"chunks": 20, "chunk_s": 0.1})
        queued = run({"chunks": 1})
        requests.post(f"{base}/local/cancel/{queued}", timeout=10)
        requests.post(f"{base}/local/cancel/{blocker}", timeout=10)
        failing = run({"fail": ErrorCode.INPUT_VALIDATION})
        calls = {call["id"]: call for call in receiver.wait(3)}

    assert calls[queued]["status"] == calls[blocker]["status"] == "CANCELLED"
    assert calls[failing]["status"] == "FAILED"
    assert json.loads(calls[failing]["error"])["code"] == ErrorCode.INPUT_VALIDATION


def test_a_webhook_owed_when_the_endpoint_stopped_is_sent_after_it_starts_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    queue = JobQueue(tmp_path / "endpoint" / "queue.db")
    queue.enqueue("ended-while-down", {"chunks": 1}, 60_000, webhook=receiver.url)
    queue.claim_next(worker_pid=1)
    queue.finish("ended-while-down", JobStatus.COMPLETED, output={"status": "success"})

    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path), **PRIVATE_OK}, PACED):
        calls = receiver.wait(1)

    assert calls[0]["id"] == "ended-while-down" and calls[0]["output"] == {"status": "success"}


def test_a_failing_receiver_is_tried_twice_more_ten_seconds_apart_then_given_up(
    tmp_path: Path, receiver: Receiver, clock: Clock
) -> None:
    receiver.answers = [500, 503, 502, 500]
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue("job", {}, 60_000, webhook=receiver.url)
    queue.claim_next(worker_pid=1)
    queue.finish("job", JobStatus.COMPLETED, output={"status": "success"})

    attempts = 0
    while due := queue.take_due_webhooks(lease_ms=15_000):
        assert not deliver(queue, due[0], trusting_post)
        attempts += 1
        assert queue.take_due_webhooks(lease_ms=15_000) == [], "not again before the delay"
        clock.now += RETRY_DELAY_MS

    assert attempts == ATTEMPTS == 3 and len(receiver.calls) == 3
    assert queue.get("job").webhook_attempts == 3  # type: ignore[union-attr]


def test_a_receiver_that_recovers_gets_the_call_on_a_later_try(
    tmp_path: Path, receiver: Receiver, clock: Clock
) -> None:
    receiver.answers = [502]
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue("job", {}, 60_000, webhook=receiver.url)
    queue.claim_next(worker_pid=1)
    queue.finish("job", JobStatus.COMPLETED, output={"status": "success"})

    assert not deliver(queue, queue.take_due_webhooks(lease_ms=15_000)[0], trusting_post)
    clock.now += RETRY_DELAY_MS
    assert deliver(queue, queue.take_due_webhooks(lease_ms=15_000)[0], trusting_post)
    clock.now += RETRY_DELAY_MS

    assert queue.take_due_webhooks(lease_ms=15_000) == [] and len(receiver.calls) == 2
    assert receiver.calls[1] == job_view(queue.get("job")), "the body is what /status answers"  # type: ignore[arg-type]


def test_a_job_queued_past_its_ttl_times_out_without_running(tmp_path: Path, clock: Clock) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue("patient", {}, 60_000, ttl_ms=60_000)
    queue.enqueue("hurried", {}, 60_000, ttl_ms=10_000)
    clock.now += 10_000

    claimed = queue.claim_next(worker_pid=1)

    assert claimed is not None and claimed.id == "patient"
    expired = queue.get("hurried")
    assert expired is not None and expired.status == JobStatus.TIMED_OUT and expired.started_ms is None
    assert expired.error["code"] == ErrorCode.TIMEOUT and "ttl of 10 s" in expired.error["message"]
    assert "policy.ttl" in expired.error["message"]
    requeued, retried = queue.retry("hurried")
    assert retried and requeued is not None and requeued.expires_ms == clock.now + 10_000, "a retry gets a new ttl"


def test_the_supervisor_expires_a_queued_job_while_the_worker_is_busy(tmp_path: Path) -> None:
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path), **PRIVATE_OK}, PACED) as base:
        requests.post(f"{base}/local/run", json={"input": {"chunks": 60, "chunk_s": 0.25}}, timeout=10)
        waiting = requests.post(
            f"{base}/local/run", json={"input": {"chunks": 1}, "policy": {"ttl": 10_000}}, timeout=10
        ).json()["id"]
        ended = wait_for(f"{base}/local/status/{waiting}", lambda body: body["status"] != "IN_QUEUE", timeout_s=20)

    assert ended["status"] == "TIMED_OUT" and "executionTime" not in ended
    assert json.loads(ended["error"])["code"] == ErrorCode.TIMEOUT


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"webhook": "ftp://example.com/hook"}, "webhook must be an http:// or https:// URL"),
        ({"webhook": 42}, "webhook must be a URL string"),
        ({"webhook": "https://" + "a" * 3000}, "a URL of at most 2048"),
        ({"policy": {"ttl": 5_000}}, "policy.ttl must be whole milliseconds from 10000"),
        ({"policy": {"ttl": "1h"}}, "policy.ttl must be whole milliseconds"),
        ({"policy": {"lowPriority": "yes"}}, "policy.lowPriority must be true or false"),
    ],
)
def test_a_bad_webhook_or_policy_gets_400_naming_the_field(endpoint_base: str, body: dict, problem: str) -> None:
    response = requests.post(f"{endpoint_base}/local/run", json={"input": {}, **body}, timeout=10)

    assert response.status_code == 400
    assert problem in response.json()["error"]


@pytest.fixture(scope="module")
def endpoint_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("policy"))}, PACED) as base:
        yield base
