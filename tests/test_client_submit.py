"""`studio submit`: a payload file in, progress on the terminal, the video downloaded, honest exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.submit import videos
from tests.conftest import EXAMPLES
from tests.endpoint_server import ROOT, running_endpoint
from tests.media_tools import ffprobe
from tests.s3server import free_port
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
