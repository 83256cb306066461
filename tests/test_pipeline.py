"""The worker pipeline end to end with the preview engine: a real MP4, thumbnail and metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client.payloads import load_payload
from core.contract import FPS, JobMetadata, Stage
from core.settings import Settings
from core.store import LocalStore
from tests.conftest import EXAMPLES
from tests.media_tools import ffprobe, speech_then_silence, video_frames
from worker.faces import find_faces, mouth_box
from worker.pipeline import run_job

PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")
SPEECH = str(EXAMPLES / "media" / "speech_1.wav")


def run(settings: Settings, job_input: dict[str, Any], job_id: str = "job-1") -> tuple[dict[str, Any], list[dict]]:
    events: list[dict] = []
    output = run_job(job_input, job_id, settings=settings, sink=events.append)
    return output, events


def single(**overrides: Any) -> dict[str, Any]:
    return {
        "prompt": "a woman talks",
        "cond_video": PORTRAIT,
        "cond_audio": {"person1": SPEECH},
        "mode": "streaming",
        **overrides,
    }


def test_a_portrait_and_speech_become_a_playable_h264_aac_mp4_as_long_as_the_audio(settings: Settings) -> None:
    output, _ = run(settings, single())

    assert output["status"] == "success", output
    video = LocalStore(settings.artifact_dir).path(output["video"]["key"])
    info = ffprobe(video)
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert streams["video"]["pix_fmt"] == "yuv420p"
    assert streams["video"]["avg_frame_rate"] == f"{FPS}/1"
    assert streams["audio"]["codec_name"] == "aac"
    audio_s = ffprobe(EXAMPLES / "media" / "speech_1.wav")["format"]["duration"]
    assert abs(float(streams["video"]["duration"]) - float(audio_s)) <= 0.040
    assert abs(float(info["format"]["duration"]) - float(audio_s)) <= 0.040 + 0.025  # AAC frame padding
    assert output["video"]["frames"] == int(streams["video"]["nb_frames"])
    # +faststart puts the moov atom before the media data, so browsers start playing at once.
    head = video.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_the_result_names_three_artifacts_and_metadata_matches_the_schema(settings: Settings) -> None:
    output, _ = run(settings, single(base_seed=-1), job_id="meta-job")

    store = LocalStore(settings.artifact_dir)
    keys = [output[name]["key"] for name in ("video", "thumbnail", "metadata")]
    assert keys == ["jobs/meta-job/video.mp4", "jobs/meta-job/thumb.jpg", "jobs/meta-job/metadata.json"]
    assert all(store.exists(key) for key in keys)
    assert store.get(keys[1])[:3] == b"\xff\xd8\xff"
    metadata = JobMetadata.model_validate_json(store.get(keys[2]))
    assert metadata.status == "success" and metadata.engine["name"] == "preview"
    assert metadata.params["base_seed"] >= 0, "a random seed is resolved and recorded"
    assert metadata.params["sample_shift"] == 7.0
    kinds = {item.field: item for item in metadata.inputs}
    assert kinds["cond_video"].kind == "image" and kinds["cond_video"].width == 512
    assert kinds["cond_audio.person1"].kind == "audio" and kinds["cond_audio.person1"].duration_s == pytest.approx(
        8.3, 0.01
    )
    assert len(kinds["cond_video"].sha256) == 64
    assert metadata.outputs["video"]["fps"] == FPS
    assert set(metadata.timings) >= {"download_ms", "audio_ms", "generate_ms", "encode_ms", "upload_ms", "total_ms"}
    assert metadata.timings["total_ms"] >= metadata.timings["generate_ms"]


def test_the_mouth_moves_with_speech_and_stays_still_in_silence(settings: Settings, tmp_path: Path) -> None:
    audio = speech_then_silence(Path(SPEECH), EXAMPLES.parent / "tests" / ".speech_silence.wav", 3.0, 2.0)
    try:
        output, _ = run(settings.with_(input_roots=(EXAMPLES.parent,)), single(cond_audio={"person1": str(audio)}))
    finally:
        audio.unlink()
    frames = video_frames(LocalStore(settings.artifact_dir).path(output["video"]["key"])).astype(np.int16)
    x0, y0, x1, y1 = mouth_box(find_faces(frames[0].astype(np.uint8), limit=1)[0])
    mouth = frames[:, y0:y1, x0:x1]
    motion = np.abs(np.diff(mouth, axis=0)).mean(axis=(1, 2, 3))
    speaking = motion[5 : 3 * FPS - 5].mean()
    silent = motion[3 * FPS + 15 :].mean()  # after the mouth has had time to close
    assert speaking > 4 * silent, (speaking, silent)
    assert silent < 1.0


def test_progress_climbs_through_the_stages_to_completed(settings: Settings) -> None:
    _, events = run(settings, single())

    stages = [event["stage"] for event in events]
    for stage in (
        Stage.VALIDATION_OK,
        Stage.DOWNLOADS_OK,
        Stage.AUDIO_OK,
        Stage.GENERATION,
        Stage.MUXING_OK,
        Stage.UPLOAD_STARTED,
        Stage.COMPLETED,
    ):
        assert stage in stages
    pcts = [event["pct"] for event in events]
    assert pcts == sorted(pcts) and pcts[-1] == 100
    chunks = [event["details"] for event in events if event["stage"] == Stage.GENERATION]
    assert chunks[-1]["chunk"] == chunks[-1]["chunks"] >= 2, "streaming 8 s covers several 81-frame windows"


def test_clip_mode_renders_one_clip_and_says_so(settings: Settings) -> None:
    output, _ = run(settings, single(mode="clip", frame_num=41))

    assert output["video"]["frames"] == 41
    assert any("clip mode renders at most 41 frames" in warning for warning in output["warnings"])


def test_every_job_leaves_its_temp_dir_empty(settings: Settings) -> None:
    run(settings, single())
    run(settings, single(cond_video="/etc/passwd"))

    assert list(settings.work_root.iterdir()) == []


def test_the_same_seed_gives_the_same_video_frames(settings: Settings) -> None:
    first, _ = run(settings, single(mode="clip", frame_num=25, base_seed=7), job_id="a")
    second, _ = run(settings, single(mode="clip", frame_num=25, base_seed=7), job_id="b")

    store = LocalStore(settings.artifact_dir)
    assert np.array_equal(
        video_frames(store.path(first["video"]["key"])), video_frames(store.path(second["video"]["key"]))
    )


def test_two_speakers_each_move_with_their_own_track(settings: Settings) -> None:
    output, _ = run(settings, load_payload(EXAMPLES / "two_speakers_add.json"))

    frames = video_frames(LocalStore(settings.artifact_dir).path(output["video"]["key"])).astype(np.int16)
    faces = find_faces(frames[0].astype(np.uint8), limit=2)
    assert len(faces) == 2
    first_turn = slice(10, int(8.0 * FPS))  # person 1 speaks for 8.3 s, then person 2 for 3.5 s
    second_turn = slice(int(8.6 * FPS), int(11.5 * FPS))
    motion = []
    for face in faces:
        x0, y0, x1, y1 = mouth_box(face)
        diffs = np.abs(np.diff(frames[:, y0:y1, x0:x1], axis=0)).mean(axis=(1, 2, 3))
        motion.append((diffs[first_turn].mean(), diffs[second_turn].mean()))
    (left_first, left_second), (right_first, right_second) = motion
    assert left_first > 2 * left_second and right_second > 2 * right_first, motion


def test_a_video_input_is_animated_for_the_whole_audio(settings: Settings) -> None:
    output, _ = run(settings, load_payload(EXAMPLES / "video_dubbing.json"))

    assert output["status"] == "success"
    assert output["video"]["duration_s"] == pytest.approx(8.28, abs=0.04)
    metadata = json.loads(LocalStore(settings.artifact_dir).get(output["metadata"]["key"]))
    assert metadata["inputs"][0]["kind"] == "video"


def test_tts_speaks_the_text_with_espeak(settings: Settings) -> None:
    output, _ = run(settings, load_payload(EXAMPLES / "tts.json"))

    assert output["status"] == "success", output
    assert 3.0 < output["video"]["duration_s"] < 8.0
    assert output["params"]["tts_audio"]["human1_voice"] == "en-us+f3"


def test_a_batch_runs_each_item_and_publishes_each_under_its_id(settings: Settings) -> None:
    events: list[dict] = []
    output = run_job(
        load_payload(EXAMPLES / "batch.json"), "batch-1", settings=settings, sink=events.append, extra_roots=(EXAMPLES,)
    )

    assert output["status"] == "success"
    assert [item["video"]["key"] for item in output["items"]] == [
        "batches/batch-1/greeting/video.mp4",
        "batches/batch-1/short-clip/video.mp4",
    ]
    assert {event["item_index"] for event in events if "item_index" in event} == {0, 1}
    assert events[-1]["pct"] == 100


def test_a_batch_with_one_bad_item_is_partial(settings: Settings) -> None:
    job_input = load_payload(EXAMPLES / "batch.json")
    job_input["batch"][1]["cond_video"] = "/not/allowed.jpg"
    output = run_job(job_input, "batch-2", settings=settings, sink=lambda _: None)

    assert output["status"] == "partial"
    assert output["items"][0]["status"] == "success"
    assert output["items"][1]["error"]["code"] == "E_INPUT_VALIDATION"


def test_inline_output_returns_base64_under_the_cap(settings: Settings) -> None:
    output, _ = run(settings, single(mode="clip", frame_num=25, output_config={"store": "inline"}))

    assert output["video"]["data_base64"]
    assert "url" not in output["video"]
    assert not settings.artifact_dir.exists() or not any(settings.artifact_dir.rglob("*.mp4"))
