"""End to end: the local endpoint runs the real pipeline with the preview engine, driven by the official SDK."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
import runpod

from client.api import StudioClient, prepare_input
from client.payloads import load_payload
from core.contract import JobResult, Stage
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES
from tests.endpoint_server import running_endpoint
from tests.media_tools import ffprobe

pytestmark = pytest.mark.slow


def local_file(url: str) -> Path:
    assert url.startswith("file://"), url
    return Path(url2pathname(urlsplit(url).path))


def test_the_sdk_sees_a_real_preview_job_queued_then_in_progress_then_completed_with_its_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "STUDIO_INPUT_ROOTS": str(EXAMPLES)}
    payload = load_payload(EXAMPLES / "single_image.json")
    with running_endpoint(env) as base:
        monkeypatch.setattr(runpod, "endpoint_url_base", base)
        monkeypatch.setattr(runpod, "api_key", "unused-locally")
        endpoint = runpod.Endpoint("local")
        first = endpoint.run(payload)
        second = endpoint.run(payload)
        seen = []
        deadline = time.monotonic() + 120
        while not seen or seen[-1]["status"] not in ("COMPLETED", "FAILED"):
            assert time.monotonic() < deadline, seen[-1]
            seen.append(second.rp_client.get(f"local/status/{second.job_id}"))
            time.sleep(0.1)
        output = second.output()
        first_output = first.output()
        health = endpoint.health()

    statuses = list(dict.fromkeys(answer["status"] for answer in seen))
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"], "queued behind the first job, then run"
    progress = [answer["output"] for answer in seen if answer["status"] == "IN_PROGRESS" and "output" in answer]
    assert [p["pct"] for p in progress] == sorted(p["pct"] for p in progress)
    assert Stage.GENERATION in {p["stage"] for p in progress}

    result = JobResult.model_validate(output)
    assert result.job_id == second.job_id and result.engine["name"] == "preview"
    video = local_file(result.video.url or "")
    probe = ffprobe(video)
    assert float(probe["format"]["duration"]) > 1.0
    assert local_file(result.thumbnail.url or "").is_file() and local_file(result.metadata.url or "").is_file()
    assert first_output["status"] == "success" and first_output["video"]["key"] != result.video.key
    assert health["jobs"]["completed"] == 2 and health["workers"]["idle"] == 1


def test_the_client_uploads_local_media_first_so_the_worker_needs_no_access_to_the_callers_files(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with running_endpoint({"STUDIO_DATA_DIR": str(settings.data_dir)}) as base:
        client = StudioClient(settings.with_(endpoint_base_url=base))
        as_written = load_payload(EXAMPLES / "single_image.json")
        refused = client.wait(client.submit(as_written), timeout_s=60)
        job_input = prepare_input(as_written, open_store(settings))
        final = client.wait(client.submit(job_input), timeout_s=120)

    assert refused.status == "FAILED" and refused.error["code"] == "E_INPUT_VALIDATION"
    assert "cond_video: paths must be absolute and inside an allowed folder" in refused.error["message"]
    assert job_input["cond_video"].startswith(str(settings.artifact_dir / "uploads"))
    assert final.status == "COMPLETED", final.error
    assert local_file(final.output["video"]["url"]).is_file()
