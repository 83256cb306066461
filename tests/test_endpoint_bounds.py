"""The endpoint's resources stay bounded whatever clients send: queue caps (429), bodies refused from their
Content-Length before reading (413), slow bodies timed out (408), inputs dropped when a job ends, and the API's
memory under a /runsync flood. Real endpoint processes on loopback, raw sockets where a client misbehaves."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.endpoint_flood import flood
from tests.endpoint_server import running_endpoint, wait_for

PACED = "tests.endpoint_runners:paced"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("capped")
    env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_LOCAL_MAX_QUEUED": "3",
        "STUDIO_LOCAL_MAX_QUEUED_MB": "1",
        "STUDIO_LOCAL_BODY_TIMEOUT_S": "2",
    }
    with running_endpoint(env, PACED) as base:
        yield base, data_dir


def raw(base: str, head: bytes, body: bytes = b"", timeout_s: float = 30.0) -> tuple[int, dict, float]:
    """Send a request by hand; the answer's status, JSON body and how long it took to come."""
    host, port = base.split("//")[1].split("/")[0].split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    took = time.monotonic() - began
    header, _, content = answer.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(content), took


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def post_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_over_the_limit_is_refused_from_its_content_length_before_it_is_sent(
    capped: tuple[str, Path],
) -> None:
    base, _ = capped
    for route, limit_mb in (("run", 10), ("runsync", 20)):
        status, answer, took = raw(base, post_head(f"/v2/local/{route}", 500 * 1024 * 1024))
        assert status == 413 and f"takes at most {limit_mb} MB" in answer["error"] and "500.0 MB" in answer["error"]
        assert took < 10, "answered without waiting for the 500 MB that never came"


def test_a_body_that_arrives_too_slowly_gets_408(capped: tuple[str, Path]) -> None:
    base, _ = capped
    status, answer, took = raw(base, post_head("/v2/local/run", 1000), b'{"input": ')

    assert status == 408 and "did not arrive within 2 s" in answer["error"]
    assert "STUDIO_LOCAL_BODY_TIMEOUT_S" in answer["error"] and took < 20


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests too deep"),
        (b'{"input": {"n": ' + b"9" * 5000 + b"}}", "not JSON"),
        (b'{"input": {}, "policy": {"ttl": ' + b"1" * 4400 + b"}}", "not JSON"),
        (b"\xff\xfe not utf-8", "not JSON"),
    ],
)
def test_hostile_json_gets_a_json_400(capped: tuple[str, Path], body: bytes, problem: str) -> None:
    base, _ = capped
    response = requests.post(f"{base}/local/run", data=body, timeout=30)

    assert response.status_code == 400 and problem in response.json()["error"]


def test_the_queue_caps_jobs_and_queued_bytes_with_429(capped: tuple[str, Path]) -> None:
    base, _ = capped
    blocker = requests.post(f"{base}/local/run", json={"input": {"chunks": 300, "chunk_s": 0.1}}, timeout=30).json()
    wait_for(f"{base}/local/status/{blocker['id']}", lambda body: body["status"] == "IN_PROGRESS")
    half_mb = {"input": {"chunks": 1, "padding": "A" * (600 * 1024)}}
    big = requests.post(f"{base}/local/run", json=half_mb, timeout=30)
    too_many_bytes = requests.post(f"{base}/local/run", json=half_mb, timeout=30)
    small = [requests.post(f"{base}/local/run", json={"input": {"chunks": 1}}, timeout=30) for _ in range(3)]
    for answer in (big, *small, blocker):
        if answer is blocker or answer.status_code == 200:
            requests.post(f"{base}/local/cancel/{(answer if answer is blocker else answer.json())['id']}", timeout=30)

    assert big.status_code == 200
    assert too_many_bytes.status_code == 429 and "STUDIO_LOCAL_MAX_QUEUED_MB=1" in too_many_bytes.json()["error"]
    assert [answer.status_code for answer in small] == [200, 200, 429]
    assert "STUDIO_LOCAL_MAX_QUEUED=3" in small[2].json()["error"] and small[2].headers["retry-after"]


def test_a_finished_job_gives_up_its_input(capped: tuple[str, Path]) -> None:
    base, data_dir = capped
    done = requests.post(f"{base}/local/runsync", json={"input": {"chunks": 1, "padding": "B" * 1000}}, timeout=60)
    assert done.json()["status"] == "COMPLETED"
    with sqlite3.connect(data_dir / "endpoint" / "queue.db") as db:
        (held,) = db.execute("SELECT input FROM jobs WHERE id = ?", (done.json()["id"],)).fetchone()
    assert held == "null"


def test_a_runsync_flood_keeps_the_api_process_small() -> None:
    """12 concurrent 19 MB /runsync calls: all answered, and the API stays within a few hundred MB (it reached
    about 130 MB per call in flight, 2-4 GB for 30, and kept it)."""
    figures = flood(calls=12, mb=19)

    assert figures["answers"] == {"200 COMPLETED": 12}
    assert figures["peak_mb"] < 700 and figures["after_mb"] < 600, figures
