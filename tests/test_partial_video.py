"""Progressive preview: a streaming job's IN_PROGRESS output carries `partial_video`, a playable MP4 (with its
soundtrack) of the clips finished so far, that grows as clips finish; the partial objects are gone when the job
completes or fails, and a cancelled job keeps its newest one as its result.

The jobs are slowed by a real knob, the output size (720p costs the preview engine several times 480p), and cut
into many short clips (frame_num 25, motion_frame 5: a clip every 20 frames), with a partial after every clip
(STUDIO_PARTIAL_EVERY_S=0). Growth is asserted over the distinct partials the polls happened to see, never on
when they came.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import numpy as np
import pytest
import requests

from client.api import StudioClient
from core.contract import ErrorCode, JobError, JobStatus, Stage
from core.settings import Settings
from core.store import S3Store, Store, is_partial_key, open_store
from tests.conftest import EXAMPLES
from tests.endpoint_server import running_endpoint
from tests.media_tools import ffprobe
from tests.s3server import S3Server
from worker.engines.preview import PreviewEngine
from worker.partial import clip_ends
from worker.pipeline import run_job
from worker.prepared import PreparedJob
from worker.progress import CancelToken, Reporter

pytestmark = pytest.mark.slow
PACED = "tests.endpoint_runners:paced"

SLOW_STREAMING_JOB = {
    "prompt": "a woman talks",
    "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
    "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_1.wav")},
    "mode": "streaming",
    "size": "infinitetalk-720",
    "frame_num": 25,
    "motion_frame": 5,
}
"""8.3 s of speech in 11 clips at 720p."""


def fetch(url: str, dest: Path) -> Path | None:
    """Download a URL the job announced; None when the object was already replaced by newer ones."""
    if url.startswith("file://"):
        source = Path(url2pathname(urlsplit(url).path))
        if not source.is_file():
            return None
        dest.write_bytes(source.read_bytes())
        return dest
    answer = requests.get(url, timeout=30)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    dest.write_bytes(answer.content)
    return dest


def watch(client: StudioClient, job_id: str, folder: Path, *, stop_after: int | None = None) -> dict[str, Any]:
    """Poll a job to its end, downloading each new partial video as soon as a poll names it.

    With `stop_after`, cancel the job once that many partials were downloaded. Returns the final state and what
    each downloaded partial was: its announcement and ffprobe's view of the file.
    """
    partials: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 300
    cancelled = False
    while True:
        assert time.monotonic() < deadline, "the job did not finish in 5 minutes"
        state = client.status(job_id)
        if state.finished:
            return {"state": state, "partials": partials}
        announced = (state.progress or {}).get("partial_video")
        if announced and announced["clips_done"] not in partials:
            path = fetch(announced["url"], folder / f"seen-{announced['clips_done']}.mp4")
            if path is not None:
                partials[announced["clips_done"]] = {"announced": announced, "probe": ffprobe(path)}
        if stop_after is not None and len(partials) >= stop_after and not cancelled:
            client.cancel(job_id)
            cancelled = True
        time.sleep(0.05)


def partial_keys(store: Store, folder: str) -> list[str]:
    return [key for key in store.list(folder) if is_partial_key(key)]


def endpoint_env(tmp_path: Path, s3: S3Server | None, bucket: str) -> tuple[dict[str, str], Settings]:
    settings = Settings(data_dir=tmp_path / "data", input_roots=(EXAMPLES,))
    env = {
        "STUDIO_DATA_DIR": str(settings.data_dir),
        "STUDIO_INPUT_ROOTS": str(EXAMPLES),
        "STUDIO_PARTIAL_EVERY_S": "0",
    }
    if s3 is not None:
        settings = settings.with_(
            store="s3",
            s3_endpoint_url=s3.endpoint_url,
            s3_bucket=bucket,
            s3_access_key=s3.access_key,
            s3_secret_key=s3.secret_key,
        )
        env |= {
            "STUDIO_STORE": "s3",
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_ACCESS_KEY": s3.access_key,
            "S3_SECRET_KEY": s3.secret_key,
        }
        store = open_store(settings)
        assert isinstance(store, S3Store)
        store.ensure_bucket()
    return env, settings


@pytest.fixture(params=["volume", "s3"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StudioClient, Store]]:
    """The local endpoint running the preview engine, publishing to the local store or to SeaweedFS."""
    s3 = request.getfixturevalue("s3_server") if request.param == "s3" else None
    env, settings = endpoint_env(tmp_path, s3, "partial-" + request.param)
    with running_endpoint(env) as base:
        yield StudioClient(settings.with_(endpoint_base_url=base)), open_store(settings)


def test_a_streaming_job_in_progress_offers_a_playable_partial_video_that_grows_clip_by_clip(
    endpoint: tuple[StudioClient, Store], tmp_path: Path
) -> None:
    client, store = endpoint
    job_id = client.submit(SLOW_STREAMING_JOB)
    seen = watch(client, job_id, tmp_path)

    final = seen["state"]
    assert final.status == JobStatus.COMPLETED, final.error
    partials = [seen["partials"][clips] for clips in sorted(seen["partials"])]
    assert len(partials) >= 2, f"the polls saw {len(partials)} partial videos of a job with 11 clips"
    durations = []
    for partial in partials:
        announced, probe = partial["announced"], partial["probe"]
        streams = {stream["codec_type"]: stream for stream in probe["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
        assert float(probe["format"]["duration"]) == pytest.approx(announced["duration_s"], abs=0.1)
        assert announced["clips_total"] == 11 and 1 <= announced["clips_done"] < 11
        assert len(json.dumps(announced)) < 4096, "a URL and a few numbers: small beside RunPod's payload limits"
        durations.append(float(streams["video"]["duration"]))
    assert durations == sorted(durations) and durations[-1] > durations[0], "each later partial is longer"
    assert durations[-1] < final.output["video"]["duration_s"], "a partial is never the whole video"
    assert partial_keys(store, f"jobs/{job_id}") == [], "the partial objects are removed once the job completes"
    assert "partial_video" not in final.output


def test_a_cancelled_streaming_job_keeps_the_partial_video_its_user_saw(tmp_path: Path) -> None:
    env, settings = endpoint_env(tmp_path, None, "")
    with running_endpoint(env) as base:
        client = StudioClient(settings.with_(endpoint_base_url=base))
        job_id = client.submit(SLOW_STREAMING_JOB)
        seen = watch(client, job_id, tmp_path, stop_after=1)

    final = seen["state"]
    assert final.status == JobStatus.CANCELLED
    kept = final.output["partial_video"]
    assert kept["clips_done"] >= max(seen["partials"]), "the newest partial is kept, not an older one"
    store = open_store(settings)
    assert partial_keys(store, f"jobs/{job_id}") == [kept["key"]], "only the kept partial remains"
    video = tmp_path / "kept.mp4"
    assert fetch(kept["url"], video) is not None
    probe = ffprobe(video)
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert float(probe["format"]["duration"]) == pytest.approx(kept["duration_s"], abs=0.1)


class FailsAfter(PreviewEngine):
    """The real preview engine, whose generation fails with a runtime error after `frames` frames, once `ready()`
    says so: a partial was published, which comes whenever the encoder's thread gets to it, so the engine waits
    (the frames so far are more than x264 holds back, so their first clips can be made into a partial)."""

    def __init__(self, settings: Settings, frames: int, ready: Callable[[], bool]) -> None:
        super().__init__(settings)
        self.frames = frames
        self.ready = ready
        self.load()

    def generate(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> Iterator[np.ndarray]:
        for index, frame in enumerate(super().generate(job, report, cancel)):
            if index == self.frames:
                deadline = time.monotonic() + 120
                while not self.ready():
                    assert time.monotonic() < deadline, "no partial video came in 2 minutes"
                    time.sleep(0.01)
                raise JobError(ErrorCode.GENERATION_RUNTIME, "stopped on purpose", at_stage=Stage.GENERATION)
            yield frame


@pytest.mark.parametrize("store_kind", ["volume", "s3"])
def test_a_job_that_fails_mid_stream_leaves_no_partial_objects(
    store_kind: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    if store_kind == "s3":
        settings = request.getfixturevalue("s3_settings")
        s3 = open_store(settings)
        assert isinstance(s3, S3Store)
        s3.ensure_bucket()
    settings = settings.with_(partial_every_s=0.0)
    job = {**SLOW_STREAMING_JOB, "size": "infinitetalk-480"}
    events: list[dict[str, Any]] = []
    store, stored = open_store(settings), []

    def published() -> bool:
        stored.extend(partial_keys(store, "jobs/fails-1"))
        return bool(stored)

    engine = FailsAfter(settings, 100, published)
    output = run_job(job, "fails-1", settings=settings, sink=events.append, engine=engine)

    assert output["status"] == "error" and output["error"]["code"] == ErrorCode.GENERATION_RUNTIME
    assert stored, "a partial was published before the failure"
    assert partial_keys(open_store(settings), "jobs/fails-1") == []
    assert "partial_video" not in output and "partial_video" not in events[-1]


def test_clip_ends_follow_infinitetalks_streaming_steps() -> None:
    from core.contract import JobParams

    params = JobParams.model_validate({**SLOW_STREAMING_JOB, "frame_num": 81, "motion_frame": 9})
    assert clip_ends(207, params) == [81, 153, 207]
    assert clip_ends(81, params) == [81]
    clip = JobParams.model_validate({**SLOW_STREAMING_JOB, "mode": "clip"})
    assert clip_ends(81, clip) == [81]


def test_a_job_stopped_by_force_keeps_the_partial_video_it_last_announced(tmp_path: Path) -> None:
    """A job that ignores its cancel is ended by the endpoint, which kills its worker: the worker cannot tidy up,
    so the partial video it last announced becomes its result rather than an object nothing names."""
    announced = {"url": "file:///v.mp4", "key": "jobs/x/partial-002.mp4", "duration_s": 6.12, "clips_done": 2}
    settings = Settings(data_dir=tmp_path / "data")
    with running_endpoint({"STUDIO_DATA_DIR": str(settings.data_dir)}, PACED, cancel_grace_s=1.0) as base:
        client = StudioClient(settings.with_(endpoint_base_url=base))
        stuck = client.submit({"chunks": 200, "chunk_s": 0.1, "ignore_cancel": True, "partial_video": announced})
        deadline = time.monotonic() + 30
        while not (client.status(stuck).progress or {}).get("partial_video"):
            assert time.monotonic() < deadline, "the partial video was never announced"
            time.sleep(0.05)
        client.cancel(stuck)
        final = client.wait(stuck, timeout_s=20)

    assert final.status == JobStatus.CANCELLED and "did not stop within" in final.error["message"]
    assert final.output["partial_video"] == announced
