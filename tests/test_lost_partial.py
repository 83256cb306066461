"""A streaming job whose worker is killed with SIGKILL (issue 27): the worker cannot tidy its partial videos, so
the endpoint, as it marks the job lost, names the one last announced as the job's video so far (as a cancelled
job's is) and deletes the others it left (the predecessor kept for viewers, one written but not yet announced).
Before, every one of them stayed in the store, named by nothing, until a retry of the job replaced them.

A real endpoint, real worker processes running the preview engine, a real `kill -9`."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from client.api import StudioClient
from core.contract import ErrorCode, JobStatus
from core.settings import Settings
from core.store import Store, open_store
from endpoint.queue import QueuedJob
from endpoint.runner import settle_partials
from tests.conftest import EXAMPLES
from tests.endpoint_server import running_endpoint
from tests.media_tools import ffprobe
from tests.test_partial_video import SLOW_STREAMING_JOB, endpoint_env, partial_keys

pytestmark = pytest.mark.slow


def test_a_worker_killed_mid_stream_leaves_its_last_partial_named_and_no_other(tmp_path: Path) -> None:
    env, settings = endpoint_env(tmp_path, None, "")
    with running_endpoint(env) as base:
        client = StudioClient(settings.with_(endpoint_base_url=base))
        job_id = client.submit(SLOW_STREAMING_JOB)
        store = open_store(settings)
        deadline = time.monotonic() + 240
        while True:  # until the worker has announced a partial and written at least one more
            assert time.monotonic() < deadline, "no two partials in 4 minutes"
            announced = (client.status(job_id).progress or {}).get("partial_video")
            if announced and len(partial_keys(store, f"jobs/{job_id}")) >= 2:
                break
            time.sleep(0.05)
        with sqlite3.connect(settings.data_dir / "endpoint" / "queue.db") as db:
            (pid,) = db.execute("SELECT worker_pid FROM jobs WHERE id = ?", (job_id,)).fetchone()
        os.kill(pid, signal.SIGKILL)
        lost = client.wait(job_id, timeout_s=60)

    assert lost.status == JobStatus.FAILED and lost.error["code"] == ErrorCode.WORKER_LOST
    kept = lost.output["partial_video"]
    assert kept["clips_done"] >= announced["clips_done"], "the newest announced partial, not an older one"
    assert partial_keys(store, f"jobs/{job_id}") == [kept["key"]], "the kept partial and nothing else"
    assert store.exists(kept["key"])


CLIP = EXAMPLES / "media" / "clip.mp4"


def lost_job(job_id: str, input_: dict[str, Any] | None = None) -> QueuedJob:
    return QueuedJob(id=job_id, status=JobStatus.IN_PROGRESS, input=input_ or {}, output=None, error=None,
                     progress=None, created_ms=0, started_ms=0, finished_ms=None, timeout_ms=600_000,
                     cancel_requested=False, worker_pid=None, retried=0)  # fmt: skip


def announcement(store: Store, key: str, clips: int) -> dict[str, Any]:
    return {"url": store.url(key), "key": key, "duration_s": 1.0, "clips_done": clips, "clips_total": 9, "bytes": 1}


def test_the_announced_partial_is_kept_when_it_is_still_there_and_the_others_go(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    for clips in (1, 2, 3):
        store.put(f"jobs/job-a/partial-00{clips}.mp4", CLIP)
    store.put("jobs/job-a/thumb.jpg", EXAMPLES / "media" / "portrait.jpg")
    announced = announcement(store, "jobs/job-a/partial-002.mp4", 2)
    assert settle_partials(settings, lost_job("job-a"), announced) == announced
    assert sorted(store.list("jobs/job-a/")) == ["jobs/job-a/partial-002.mp4", "jobs/job-a/thumb.jpg"]


def test_an_announcement_that_trails_the_store_names_the_newest_partial_there(tmp_path: Path) -> None:
    """The row still names partial-001, which the worker had already replaced: the newest one there is named,
    with its own duration, size and clip count."""
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    for clips in (2, 3):
        store.put(f"jobs/job-b/partial-00{clips}.mp4", CLIP)
    kept = settle_partials(settings, lost_job("job-b"), announcement(store, "jobs/job-b/partial-001.mp4", 1))
    assert kept["key"] == "jobs/job-b/partial-003.mp4" and kept["clips_done"] == 3 and kept["clips_total"] == 9
    assert kept["duration_s"] == pytest.approx(float(ffprobe(CLIP)["format"]["duration"]), abs=0.05)
    assert kept["bytes"] == CLIP.stat().st_size and kept["url"] == store.url(kept["key"])
    assert list(store.list("jobs/job-b/")) == ["jobs/job-b/partial-003.mp4"]


def test_nothing_announced_or_nothing_there_names_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    assert settle_partials(settings, lost_job("job-c"), None) is None
    assert settle_partials(settings, lost_job("job-c"), announcement(store, "jobs/job-c/partial-004.mp4", 4)) is None
