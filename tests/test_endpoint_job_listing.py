"""The local endpoint's job listing (GET /v2/{id}/jobs, issue 29), which RunPod's API does not have, read through
StudioClient.jobs; and a job cut off by a stop keeping the video so far it had announced. Jobs run
`tests.endpoint_runners:paced` on a real endpoint process."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.api import StudioClient
from core.contract import ErrorCode, JobStatus
from core.settings import RUNPOD_API_BASE, Settings
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import free_port

PACED = "tests.endpoint_runners:paced"


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    return {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_LOCAL_PORT": str(port), "STUDIO_LOCAL_WORKERS": "1"}


def test_the_listing_gives_running_jobs_then_the_queue_in_order_then_recent_ends(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    with running_endpoint(env, PACED, port=port) as base:
        client = StudioClient(Settings.from_env(env))
        busy = client.submit({"prompt": "busy", "chunks": 200, "chunk_s": 0.1})
        wait_for(f"{base}/local/status/{busy}", lambda s: s["status"] == JobStatus.IN_PROGRESS, timeout_s=30)
        first = client.submit({"prompt": "first in line", "chunks": 1})
        big = client.submit({"prompt": "a big input", "chunks": 1, "pad": "x" * 300_000})
        gone = client.submit({"prompt": "cancelled while queued", "chunks": 1})
        client.cancel(gone)

        listed = {job.id: job for job in client.jobs() or []}

        assert listed[busy].status == JobStatus.IN_PROGRESS and listed[busy].position is None
        assert (listed[first].position, listed[big].position) == (1, 2), "the order workers will take them"
        assert listed[first].input == {"prompt": "first in line", "chunks": 1}
        assert listed[big].input is None and listed[big].prompt == "a big input", "300 KB is listed by its prompt"
        assert listed[gone].status == JobStatus.CANCELLED and listed[gone].position is None, "ended just now"
        client.cancel(busy)


def test_runpod_has_no_job_listing_so_the_client_says_none(tmp_path: Path) -> None:
    cloud = Settings(data_dir=tmp_path, endpoint_id="abc123", api_key="k", endpoint_base_url=RUNPOD_API_BASE)
    assert StudioClient(cloud).jobs() is None, "RunPod's job API lists no jobs: no request is made"


def test_a_job_cut_off_by_a_stop_keeps_the_video_so_far_it_announced(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    partial = {"key": "outputs/x/partial-001.mp4", "url": "", "duration_s": 3.0, "clips_done": 1, "clips_total": 4}
    with running_endpoint(env, PACED, port=port) as base:
        client = StudioClient(Settings.from_env(env))
        job_id = client.submit({"prompt": "cut off", "chunks": 400, "chunk_s": 0.1, "partial_video": partial})
        wait_for(
            f"{base}/local/status/{job_id}",
            lambda s: s["status"] == JobStatus.IN_PROGRESS and (s.get("output") or {}).get("partial_video"),
            timeout_s=30,
        )
    with running_endpoint(env, PACED, port=port):
        state = client.status(job_id)
    assert state.status == JobStatus.FAILED
    assert isinstance(state.error, dict) and state.error["code"] == ErrorCode.WORKER_LOST
    assert state.output["partial_video"] == partial, "its result names the clips it had finished"


@pytest.mark.parametrize("entry", [None, 7, {"id": 3, "status": "IN_QUEUE"}, {"id": "x"}, []])
def test_a_listing_entry_without_an_id_and_status_is_skipped(entry: object) -> None:
    from client.api import ListedJob

    assert ListedJob.from_response(entry) is None
