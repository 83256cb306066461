"""Webhooks follow the media URLs' address rule, and no log line carries a webhook's query (where tokens go).

A webhook is called from inside the operator's network to a URL the job's sender chose: without the rule, one
`/run` can make the endpoint POST to loopback services, the LAN or the cloud metadata address. The rule is
worker.inputs.open_checked, shared with media fetching: refused at submission (400 naming the field and the
fix), checked again at every call, and the call connects only to the addresses just checked.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core import logs
from core.contract import JobStatus
from core.settings import Settings
from endpoint.queue import JobQueue
from endpoint.webhooks import ATTEMPTS, deliver, post_json
from tests.endpoint_server import running_endpoint
from tests.s3server import free_port
from tests.webhook_receiver import Receiver

PACED = "tests.endpoint_runners:paced"
TOKEN = "tok3n-in-the-query"


@pytest.fixture(scope="module")
def strict_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An endpoint with the default rule: nothing private is trusted."""
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path_factory.mktemp("strict"))}, PACED) as base:
        yield base


@pytest.mark.parametrize(
    ("webhook", "problem"),
    [
        ("http://127.0.0.1:{port}/hooks", "points at a private or internal address"),
        ("http://localhost:{port}/hooks", "points at a private or internal address"),
        ("http://10.1.2.3/hooks", "points at a private or internal address"),
        ("http://192.168.0.10:8080/hooks", "points at a private or internal address"),
        ("http://169.254.169.254/latest/meta-data/", "points at a private or internal address"),
        ("http://[::1]:{port}/hooks", "points at a private or internal address"),
        ("http://[::ffff:127.0.0.1]/hooks", "points at a private or internal address"),
        ("http://[::127.0.0.1]/hooks", "points at a private or internal address"),
        ("http://[64:ff9b::a9fe:a9fe]/hooks", "points at a private or internal address"),
        ("http://[fec0::1]/hooks", "points at a private or internal address"),
        ("http://127.0.0.1:{port}\\@1.1.1.1/hooks", "backslash"),
        ("http://user@1.1.1.1/hooks", "user name or password"),
    ],
)
def test_a_webhook_to_a_private_address_is_refused_at_submission_naming_the_fix(
    strict_base: str, webhook: str, problem: str
) -> None:
    url = webhook.format(port=strict_base.split(":")[2].split("/")[0])
    response = requests.post(f"{strict_base}/local/run", json={"input": {}, "webhook": url}, timeout=30)

    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith("webhook: ") and problem in message
    if "private" in problem:
        assert "STUDIO_TRUSTED_HOSTS" in message


@pytest.mark.parametrize("webhook", ["http://1.1.1.1/hooks?token=x", "https://no-such-host.invalid/hooks"])
def test_a_public_or_not_yet_resolvable_webhook_is_accepted(strict_base: str, webhook: str) -> None:
    """Submission connects to nothing; a name that does not resolve now is checked again at each call."""
    body = {"input": {"chunks": 1}, "webhook": webhook}
    response = requests.post(f"{strict_base}/local/run", json=body, timeout=30)

    assert response.status_code == 200 and response.json()["status"] == "IN_QUEUE"


def finished_job(queue: JobQueue, job_id: str, webhook: str) -> None:
    """A finished job owing a webhook call, written straight into the queue (as one queued before the rule, or
    whose name resolved to a public address at submission and to a private one now, would be)."""
    queue.enqueue(job_id, {}, 60_000, webhook=webhook)
    queue.claim_next(worker_pid=1)
    queue.finish(job_id, JobStatus.COMPLETED, output={"status": "success"})


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the webhook logger writes, formatted as the endpoint writes it (JSON lines)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLineFormatter())
    logger = logging.getLogger("studio.endpoint.webhooks")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_each_call_checks_the_address_again_and_never_connects_to_a_private_one(
    tmp_path: Path, receiver: Receiver, log_lines: io.StringIO
) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    local_name = receiver.url.replace("127.0.0.1", "localhost")
    finished_job(queue, "owed", f"{local_name}?token={TOKEN}")

    delivered = [deliver(queue, job, post_json) for job in queue.take_due_webhooks(lease_ms=15_000)]

    assert delivered == [False] and receiver.calls == [], "the receiver on loopback was never called"
    text = log_lines.getvalue()
    assert "points at a private or internal address" in text
    assert TOKEN not in text and "/hooks/studio" in text, "the log names the webhook without its query"


def test_a_trusted_host_gets_its_call(tmp_path: Path, receiver: Receiver) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    finished_job(queue, "owed", receiver.url)
    trusting = Settings(extra_trusted_hosts=(receiver.url.split("/")[2],))

    (job,) = queue.take_due_webhooks(lease_ms=15_000)
    assert deliver(queue, job, lambda url, body: post_json(url, body, trusting))
    assert [call["id"] for call in receiver.calls] == ["owed"]


@pytest.mark.parametrize("answers", [[500, 500, 500], []])
def test_no_log_line_carries_the_webhooks_query(
    tmp_path: Path, receiver: Receiver, log_lines: io.StringIO, answers: list[int]
) -> None:
    """Failing receivers (an HTTP error, a refused connection) are logged by scheme, host, port and path only."""
    receiver.answers = list(answers)
    url = receiver.url if answers else f"http://127.0.0.1:{free_port()}/hooks/studio"
    queue = JobQueue(tmp_path / "queue.db")
    finished_job(queue, "owed", f"{url}?token={TOKEN}&user=me#{TOKEN}")
    trusting = Settings(allow_private_urls=True)

    for _ in range(ATTEMPTS):
        for job in queue.take_due_webhooks(lease_ms=0):
            assert not deliver(queue, job, lambda url, body: post_json(url, body, trusting))
        with sqlite3.connect(tmp_path / "queue.db") as db:  # the next try due now instead of in 10 s
            db.execute("UPDATE jobs SET webhook_due_ms = 0 WHERE webhook_due_ms IS NOT NULL")

    text = log_lines.getvalue()
    assert text.count("webhook call failed") == ATTEMPTS
    assert "giving up" in text and TOKEN not in text and "user=me" not in text
    assert "127.0.0.1" in text, "the log still says which receiver failed"
