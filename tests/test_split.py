"""Long speech split at pauses, rendered as parts on several workers at once, joined into one run (issue 30).

Real parts throughout: the local endpoint with three workers running the real pipeline (preview engine), real
ffmpeg, the store a local folder or SeaweedFS. The speech is built from the example recordings with pauses at
known times, so where each cut may fall is known; the input video flashes white on known frames, so whether the
joined picture keeps time with the speech after every cut is measured, not assumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from catalog.catalog import Catalog
from client.api import StudioClient
from client.fanout import SplitRun, default_parallel, encoded_soundtrack_key, plan_split
from core.contract import AUDIO_SAMPLE_RATE, FPS, JobError, JobMetadata, JobStatus, SplitPlan
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES
from tests.endpoint_server import ROOT, running_endpoint
from tests.media_tools import ffprobe, video_frames
from tests.s3server import free_port
from worker.audio import speech_level
from worker.media import decode_audio, run_ffmpeg, write_wav
from worker.split import encode_soundtrack, join_videos, plan_cuts, split_text

PAUSE_S = 0.6
FLASH_EVERY_S = 2.0


def speech_with_pauses(out: Path, rounds: int) -> tuple[Path, list[tuple[float, float]]]:
    """The two example recordings one after the other, `rounds` times, each followed by PAUSE_S of near silence
    (room noise at -70 dB); returns the WAV and the pauses' (start, end) in seconds."""
    rng = np.random.default_rng(7)
    pieces, pauses, at = [], [], 0.0
    for _ in range(rounds):
        for name in ("speech_1.wav", "speech_2.wav"):
            speech = decode_audio(EXAMPLES / "media" / name, field="test", max_seconds=30)
            pieces.append(speech)
            at += speech.size / AUDIO_SAMPLE_RATE
            pieces.append((3e-4 * rng.standard_normal(int(PAUSE_S * AUDIO_SAMPLE_RATE))).astype(np.float32))
            pauses.append((at, at + PAUSE_S))
            at += PAUSE_S
    return write_wav(out, np.concatenate(pieces)), pauses


def flashing_video(out: Path, seconds: float) -> Path:
    """The example portrait as a video whose every FLASH_EVERY_S-th second starts with one white frame."""
    every = round(FLASH_EVERY_S * FPS)
    run_ffmpeg(
        ["-loop", "1", "-framerate", str(FPS), "-t", f"{seconds:.2f}", "-i", str(EXAMPLES / "media" / "portrait.jpg"),
         "-vf", f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n\\,{every})\\,{every // 2})'",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-r", str(FPS), str(out)],
        at_stage="test", what="making the flashing video", own_files=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local endpoint with three workers running the real pipeline (preview engine); its settings."""
    data_dir = tmp_path_factory.mktemp("split-endpoint")
    port = free_port()
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_LOCAL_WORKERS": "3"}
    with running_endpoint(env, port=port) as base:
        yield Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})


def job(speech: Path, video: Path | None = None) -> dict[str, object]:
    return {
        "prompt": "a presenter reads the news",
        "cond_video": str(video or EXAMPLES / "media" / "portrait.jpg"),
        "cond_audio": {"person1": str(speech)},
        "mode": "streaming",
        "sample_steps": 4,
    }


def test_cuts_lie_inside_pauses_and_parts_respect_their_bounds(tmp_path: Path) -> None:
    path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=4)
    samples = decode_audio(path, field="test", max_seconds=120)

    cuts, warnings = plan_cuts(samples, part_s=10.0, min_part_s=3.0)

    assert warnings == []
    edges = [0.0, *(cut.at_s for cut in cuts), samples.size / AUDIO_SAMPLE_RATE]
    lengths = np.diff(edges)
    assert lengths.max() <= 10.0 and lengths.min() >= 3.0
    assert len(cuts) == int(np.ceil(edges[-1] / 10.0)) - 1, "no more parts than the longest part needs"
    for cut in cuts:
        assert cut.in_pause and cut.pause is not None
        assert _quiet_around(samples, cut.at_s), f"{cut.at_s:.2f} s is not inside a pause"
        assert cut.pause[0] < cut.at < cut.pause[1] and cut.pause[1] - cut.pause[0] >= 0.15 * AUDIO_SAMPLE_RATE
        assert cut.at % (AUDIO_SAMPLE_RATE // FPS) == 0, "each cut on a video frame's boundary"


def _quiet_around(samples: np.ndarray, at_s: float) -> bool:
    """Whether the 100 ms around at_s is at least 25 dB below the speech's level (inside a pause)."""
    middle = round(at_s * AUDIO_SAMPLE_RATE)
    stretch = samples[middle - 800 : middle + 800]
    return bool(10 * np.log10(np.mean(np.square(stretch)) + 1e-12) < speech_level(samples) - 25.0)


def test_speech_without_pauses_is_cut_at_its_quietest_and_says_so() -> None:
    t = np.arange(30 * AUDIO_SAMPLE_RATE) / AUDIO_SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (1.0 + 0.5 * np.sin(2 * np.pi * 0.3 * t))).astype(np.float32)

    cuts, warnings = plan_cuts(tone, part_s=12.0, min_part_s=4.0)

    assert len(cuts) == 2 and not any(cut.in_pause for cut in cuts)
    assert len(warnings) == 2 and all("no pause" in w and "quietest 100 ms" in w for w in warnings)
    envelope = 1.0 + 0.5 * np.sin(2 * np.pi * 0.3 * np.array([cut.at_s for cut in cuts]))
    assert envelope.max() < 0.75, "each cut lies where the tone is quiet"


def test_text_is_cut_at_sentence_ends_and_keeps_each_persons_lines() -> None:
    text = "(s1) " + " ".join(f"Sentence number {n} is spoken by the first person." for n in range(12))
    text += " (s2) And the second person answers. Twice."

    parts = split_text(text, part_s=10.0)

    assert len(parts) > 2 and all(part.rstrip().endswith(".") for part in parts)
    assert " ".join(parts).replace("(s1) ", "").replace("(s2) ", "") == text.replace("(s1) ", "").replace("(s2) ", "")
    assert parts[-1].count("(s2)") == 1 and "(s1)" in parts[0]


def test_bad_part_lengths_are_refused_naming_the_field(tmp_path: Path) -> None:
    path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(JobError, match=r"^min_part_s: .*part_s / 2"):
        plan_split(job(path), settings, open_store(settings), part_s=10.0, min_part_s=6.0)
    with pytest.raises(JobError, match=r"^part_s: .*frame cap"):
        plan_split({**job(path), "max_frame_num": 250}, settings, open_store(settings), part_s=20.0)


def test_the_join_copies_matching_parts_keeps_time_and_is_repeatable(tmp_path: Path) -> None:
    """Three parts encoded alike are joined by copying; the speech is muxed once; two joins give the same bytes."""
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    speech = decode_audio(speech_path, field="test", max_seconds=60)
    frames = [60, 75, speech.size // (AUDIO_SAMPLE_RATE // FPS) - 135]
    parts = []
    for index, count in enumerate(frames):
        part = tmp_path / f"part{index}.mp4"
        run_ffmpeg(
            ["-f", "lavfi", "-i", f"testsrc=size=128x128:rate={FPS}:d={count / FPS:.2f}", "-f", "lavfi", "-i",
             f"sine=f=440:d={count / FPS + 0.1:.2f}", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
             "-pix_fmt", "yuv420p", "-c:a", "aac", str(part)],
            at_stage="test", what="making a part", own_files=True,
        )  # fmt: skip
        parts.append(part)

    first = join_videos(parts, tmp_path / "a.mp4", tmp_path / "ja", speech_path)
    second = join_videos(parts, tmp_path / "b.mp4", tmp_path / "jb", speech_path)
    encoded = encode_soundtrack(speech_path, tmp_path / "speech.m4a")
    early = join_videos(parts, tmp_path / "c.mp4", tmp_path / "jc", speech_path, encoded=encoded)

    assert first.reencoded == () and first.note is None
    assert first.frames == sum(frames) and (first.width, first.height) == (128, 128)
    assert abs(first.duration_s - speech.size / AUDIO_SAMPLE_RATE) <= 1 / FPS
    digest = [hashlib.sha256(path.read_bytes()).hexdigest() for path in (first.path, second.path, early.path)]
    assert digest[0] == digest[1], "joining twice gives the same file"
    assert digest[2] == digest[0], "a soundtrack encoded while the parts rendered gives the same file"
    heard = decode_audio(first.path, field="test", max_seconds=60)
    assert _lag_ms(speech, heard) <= 2.0, "the joined sound is the speech itself, from its first sample"
    assert _packet_times(parts[0], "a")[-1] > _packet_times(parts[0], "v")[-1], "each part's sound outlasts its video"
    shown = _packet_times(first.path, "v")
    assert shown[0] == 0.0, "the picture starts with the sound (not shifted by the AAC encoder's priming)"
    assert np.allclose(np.diff(shown), 1 / FPS), "one frame every 40 ms, with no gap at a join"


def _packet_times(path: Path, stream: str) -> list[float]:
    """The presentation times of a file's video (`v`) or audio (`a`) packets, in order, by ffprobe."""
    command = ["ffprobe", "-v", "error", "-select_streams", f"{stream}:0", "-show_entries", "packet=pts_time",
               "-of", "csv=p=0", str(path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return sorted(float(line.strip(",")) for line in done.stdout.split())


def test_parts_encoded_differently_are_reencoded_and_the_note_says_so(tmp_path: Path) -> None:
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    parts = []
    for index, crf in enumerate((20, 35)):
        part = tmp_path / f"part{index}.mp4"
        run_ffmpeg(
            ["-f", "lavfi", "-i", f"testsrc=size=128x128:rate={FPS}", "-frames:v", "100", "-c:v", "libx264",
             "-crf", str(crf), "-pix_fmt", "yuv420p", str(part)],
            at_stage="test", what="making a part", own_files=True,
        )  # fmt: skip
        parts.append(part)

    joined = join_videos(parts, tmp_path / "joined.mp4", tmp_path / "j", speech_path)

    assert joined.reencoded == (1,) and joined.frames == 200
    assert joined.note == "part(s) 2 were encoded unlike part 1, so every part was re-encoded to join them"


def test_the_speech_is_encoded_for_the_join_once_while_the_parts_render(tmp_path: Path) -> None:
    """Sending parts starts encoding the speech for the join on a thread, into the store beside the speech; a
    second SplitRun of the same run (a dashboard's next tick) finds it under way or stored and starts no other;
    the bytes are those the join would encode itself."""
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    plan = plan_split(job(speech_path), settings, store, part_s=7.0, min_part_s=2.0)
    assert plan.soundtrack_key is not None
    key = encoded_soundtrack_key(plan.soundtrack_key)

    thread = SplitRun(plan, StudioClient(settings), store).encode_soundtrack_soon()
    again = SplitRun(plan, StudioClient(settings), store).encode_soundtrack_soon()

    assert thread is not None and (again is thread or (again is None and store.exists(key)))
    thread.join()
    assert store.exists(key) and SplitRun(plan, StudioClient(settings), store).encode_soundtrack_soon() is None
    speech = store.download(plan.soundtrack_key, tmp_path / "stored.wav")
    assert store.get(key) == encode_soundtrack(speech, tmp_path / "here.m4a").read_bytes()


def _lag_ms(reference: np.ndarray, heard: np.ndarray) -> float:
    """How far `heard` is shifted against `reference`, in ms, by cross-correlating their first 5 s."""
    n = 5 * AUDIO_SAMPLE_RATE
    a, b = reference[:n], heard[:n]
    spectrum = np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n))
    corr = np.fft.irfft(spectrum)
    lag = int(np.argmax(np.abs(corr)))
    lag = lag - 2 * n if lag > n else lag
    return abs(lag) / AUDIO_SAMPLE_RATE * 1000


def _flashes(frames: np.ndarray) -> list[int]:
    """The frames much brighter than the frame before them (the input video's white frames)."""
    brightness = frames.reshape(frames.shape[0], -1).mean(axis=1)
    jumps = np.diff(brightness, prepend=brightness[0])
    return [int(i) for i in np.flatnonzero(jumps > 40)]


@pytest.mark.slow
def test_a_long_speech_renders_as_parts_at_once_and_joins_in_sync(endpoint: Settings, tmp_path: Path) -> None:
    """24 s of speech and a flashing video, split at pauses into 3 parts on 3 workers, joined, catalogued."""
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=2)
    speech = decode_audio(speech_path, field="test", max_seconds=60)
    video = flashing_video(tmp_path / "flash.mp4", seconds=40)
    store = open_store(endpoint)
    client = StudioClient(endpoint)
    catalog = Catalog(endpoint.catalog_file)
    assert default_parallel(client) == 3, "the local endpoint's worker count"

    plan = plan_split(job(speech_path, video), endpoint, store, part_s=10.0, min_part_s=3.0, parallel=3)
    run = SplitRun(plan, client, store, catalog)
    seen_at_once = []

    def adopt(current: SplitRun) -> None:
        """As a dashboard on the same catalogue does with the local endpoint's running jobs."""
        seen_at_once.append(len(current.running()))
        for part in current.running():
            catalog.record_submission(part.job_id or "", part.job_input, endpoint_id="local", source="endpoint")

    done = run.run(adopt, poll_s=0.3)

    assert done.state == "joined" and len(done.parts) == 3
    assert max(seen_at_once) == 3, "the parts ran at once"
    for part in done.parts[:-1]:
        assert _quiet_around(speech, part.end_s), f"part {part.index + 1} ends inside a pause"
    saved = SplitPlan.model_validate_json(store.get(plan.plan_key))
    assert saved.state == "joined" and all(p.state == JobStatus.COMPLETED and p.job_id for p in saved.parts)

    joined = tmp_path / "joined.mp4"
    store.download(done.video_key or "", joined)
    frames = video_frames(joined)
    assert abs(frames.shape[0] / FPS - speech.size / AUDIO_SAMPLE_RATE) <= 1 / FPS, "as long as the speech"
    every = round(FLASH_EVERY_S * FPS)
    expected = [n for n in range(frames.shape[0]) if n % every == every // 2]
    assert _flashes(frames) == expected, "each white frame is where the input video had it, after every cut"
    heard = decode_audio(joined, field="test", max_seconds=60)
    assert _lag_ms(speech, heard) <= 2.0
    info = ffprobe(joined)
    assert [s["codec_type"] for s in info["streams"]] == ["video", "audio"]

    metadata = JobMetadata.model_validate_json(store.get(f"{plan.folder}/metadata.json"))
    assert metadata.job_id == plan.run_id and metadata.parts is not None
    assert [(p.start_s, p.end_s) for p in metadata.parts] == [(p.start_s, p.end_s) for p in done.parts]
    assert all(p.job_id and p.gpu_ms is not None and p.cost_usd == 0.0 for p in metadata.parts)
    assert not [key for key in store.list(f"{plan.folder}/parts/")], "the parts' own files are dropped"
    assert not store.exists(encoded_soundtrack_key(plan.soundtrack_key or "")), "the encoded speech, once used"
    row = catalog.get(plan.run_id)
    assert row is not None and row["status"] == JobStatus.COMPLETED and row["cost_usd"] == 0.0
    assert [r["run_id"] for r in catalog.search("presenter").rows] == [plan.run_id]
    assert all(catalog.get(p.job_id or "") is None for p in done.parts), "the parts' own runs are forgotten"
    assert run.join() == done.video_key, "joining again gives the same file"


@pytest.mark.slow
def test_a_failed_part_is_retried_alone(endpoint: Settings, tmp_path: Path) -> None:
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    store, client = open_store(endpoint), StudioClient(endpoint)
    plan = plan_split(job(speech_path), endpoint, store, part_s=7.0, min_part_s=2.0, parallel=2)
    assert len(plan.parts) == 2
    plan.parts[1].job_input["cond_audio"] = {"person1": str(tmp_path / "gone.wav")}  # the worker refuses it
    run = SplitRun(plan, client, store)

    failed = run.run(poll_s=0.3)

    assert failed.state == "failed" and [p.state for p in failed.parts] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert "cond_audio.person1" in str(failed.parts[1].error)
    first_job, failed_job = failed.parts[0].job_id, failed.parts[1].job_id
    run.plan.parts[1].job_input["cond_audio"] = (
        plan_split(job(speech_path), endpoint, store, part_s=7.0, min_part_s=2.0, run_id=plan.run_id)
        .parts[1]
        .job_input["cond_audio"]
    )
    run.retry(1)
    done = run.run(poll_s=0.3)

    assert done.state == "joined" and done.parts[0].job_id == first_job, "the finished part was not sent again"
    assert done.parts[1].attempts == 2 and done.parts[1].earlier_job_ids == [failed_job]


@pytest.mark.slow
def test_cancel_stops_every_part(endpoint: Settings, tmp_path: Path) -> None:
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=2)
    store, client = open_store(endpoint), StudioClient(endpoint)
    plan = plan_split(job(speech_path), endpoint, store, part_s=6.0, min_part_s=2.0, parallel=2)
    run = SplitRun(plan, client, store)
    run.send_ready()
    run.cancel()

    assert {p.state for p in run.plan.parts} == {JobStatus.CANCELLED}
    for part in run.plan.parts:
        if part.job_id:
            assert client.wait(part.job_id, timeout_s=60).status == JobStatus.CANCELLED
    assert SplitPlan.model_validate_json(store.get(plan.plan_key)).state == "cancelled"


RESUME = """
import sys
from client.api import StudioClient
from client.fanout import SplitRun
from core.settings import Settings
from core.store import open_store
settings = Settings.from_env()
run = SplitRun.resume(sys.argv[1], StudioClient(settings), open_store(settings))
print(run.run(poll_s=0.3).state)
"""


@pytest.mark.slow
def test_a_restarted_process_finishes_the_run(endpoint: Settings, tmp_path: Path) -> None:
    """Parts sent by one process, which then stops; another process started on the same bucket joins them."""
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    store, client = open_store(endpoint), StudioClient(endpoint)
    plan = plan_split(job(speech_path), endpoint, store, part_s=7.0, min_part_s=2.0, parallel=1)
    first = SplitRun(plan, client, store)
    first.save()
    first.send_ready()  # one part sent, one pending; then this process is gone

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STUDIO_DATA_DIR": str(endpoint.data_dir),
        "STUDIO_LOCAL_PORT": str(endpoint.local_port),
        "RUNPOD_ENDPOINT_BASE_URL": endpoint.endpoint_base_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", RESUME, plan.run_id], env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "joined"
    saved = SplitPlan.model_validate_json(store.get(plan.plan_key))
    assert saved.parts[0].job_id == first.plan.parts[0].job_id, "the first process's job was followed, not resent"
    assert json.loads(store.get(f"{plan.folder}/metadata.json"))["job_id"] == plan.run_id


@pytest.mark.slow
def test_submit_splits_a_long_speech_and_shows_each_part(endpoint: Settings, tmp_path: Path) -> None:
    """`studio submit PAYLOAD --split --parallel 2`: a bar per part on one line, one video saved."""
    speech_path, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    payload = tmp_path / "long.json"
    payload.write_text(json.dumps({**job(speech_path), "cond_video": str(EXAMPLES / "media" / "portrait.jpg")}))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STUDIO_DATA_DIR": str(endpoint.data_dir),
        "STUDIO_LOCAL_PORT": str(endpoint.local_port),
        "RUNPOD_ENDPOINT_BASE_URL": endpoint.endpoint_base_url,
    }
    args = ["--split", "--parallel", "2", "--part-s", "7", "--min-part-s", "2", "--download", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "studio", "submit", str(payload), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "into 2 parts, 2 at a time" in done.stderr and "parts 1 " in done.stderr and "2 done" in done.stderr
    assert "estimate: " in done.stderr and "executionTimeout" in done.stderr
    metadata = json.loads(done.stdout)
    assert len(metadata["parts"]) == 2 and metadata["job_id"].startswith("split-")
    assert (tmp_path / "out" / f"{metadata['job_id']}_video.mp4").stat().st_size > 0
    no_split = subprocess.run(
        [sys.executable, "-m", "studio", "submit", str(payload), "--no-split", "--no-wait"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert no_split.returncode == 0 and "parts" not in no_split.stderr, no_split.stderr
    assert not no_split.stdout.startswith("split-"), "--no-split: one ordinary job"


def test_the_estimate_shows_one_worker_against_n_workers_and_each_parts_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`estimate` on 3 minutes of speech for a GPU (no endpoint answers here, so 3 workers): the split's wall
    time is two rounds of parts, and each part asks a far shorter executionTimeout than the one long job."""
    from client.estimate import main as estimate_main

    speech, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=15)
    payload = tmp_path / "long.json"
    payload.write_text(json.dumps({**job(speech), "max_frame_num": 15000}))
    settings = Settings(data_dir=tmp_path / "data", endpoint_base_url=f"http://127.0.0.1:{free_port()}/v2")

    assert estimate_main(str(payload), settings, gpu="H100") == 0

    answer = json.loads(capsys.readouterr().out)
    split = answer["split"]
    assert split["parts"] == 5 and split["parallel"] == 3 and split["part_s"] <= 40.0
    assert split["split_wall_s"] == pytest.approx(split["split_gpu_s"] * 2 / 5, rel=0.01), "two rounds of 3 + 2"
    assert split["one_worker_s"] == answer["seconds"]
    assert split["part_execution_timeout_s"] < split["one_job_execution_timeout_s"]


def test_two_speakers_are_cut_on_the_mix_and_each_part_carries_their_slices(tmp_path: Path) -> None:
    """`para`: both speak at once, so every part carries both people's slices. `add`: person 1 speaks, then
    person 2; a part where one says nothing carries the other alone, as person 1 with that person's face box."""
    first, _ = speech_with_pauses(tmp_path / "one.wav", rounds=1)
    second, _ = speech_with_pauses(tmp_path / "two.wav", rounds=1)
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    boxes = {"person1": [0, 0, 300, 384], "person2": [400, 0, 768, 384]}
    two = {
        **job(first),
        "cond_video": str(EXAMPLES / "media" / "two_people.jpg"),
        "cond_audio": {"person1": str(first), "person2": str(second)},
        "bbox": boxes,
    }
    one_s = decode_audio(first, field="test", max_seconds=60).size / AUDIO_SAMPLE_RATE

    para = plan_split({**two, "audio_type": "para"}, settings, store, part_s=6.0, min_part_s=2.0)
    after = plan_split({**two, "audio_type": "add"}, settings, store, part_s=8.0, min_part_s=2.0)

    assert para.speech_s == pytest.approx(one_s, abs=0.05) and len(para.parts) == 3
    for part in para.parts:
        assert sorted(part.job_input["cond_audio"]) == ["person1", "person2"] and part.job_input["bbox"] == boxes
        slices = [decode_audio(Path(ref), field="t", max_seconds=60) for ref in part.job_input["cond_audio"].values()]
        assert slices[0].size == slices[1].size == pytest.approx(part.duration_s * AUDIO_SAMPLE_RATE, abs=2)
    assert after.speech_s == pytest.approx(2 * one_s, abs=0.05) and after.warnings == []
    for part in after.parts:
        assert part.job_input["audio_type"] == "para", "the slices are already laid out in time"
        speakers = part.job_input["cond_audio"]
        assert list(speakers) == ["person1"] or list(speakers) == ["person1", "person2"]
        if part.end_s <= one_s:
            assert part.job_input["bbox"] == {"person1": boxes["person1"]}, "person 1 alone"
        if part.start_s >= one_s:
            assert part.job_input["bbox"] == {"person1": boxes["person2"]}, "person 2 alone, with person 2's face"


def test_text_to_speech_is_planned_as_parts_of_text_and_keeps_their_own_sound(tmp_path: Path) -> None:
    """A long tts_audio text: each part speaks its sentences (no soundtrack to mux); the join keeps each part's
    own spoken sound, in order."""
    text = " ".join(f"This is sentence number {n}, read out slowly and clearly." for n in range(40))
    settings = Settings(data_dir=tmp_path / "data")
    tts = {"prompt": "a presenter", "cond_video": str(EXAMPLES / "media" / "portrait.jpg"), "tts_audio": {"text": text}}

    plan = plan_split(tts, settings, open_store(settings), part_s=20.0, min_part_s=5.0)

    assert plan.soundtrack_key is None and len(plan.parts) >= 4
    spoken = [p.job_input["tts_audio"]["text"] for p in plan.parts]
    assert " ".join(spoken) == text and all(t.endswith(".") for t in spoken)
    assert all(p.job_input["mode"] == "streaming" and "cond_audio" not in p.job_input for p in plan.parts)

    parts = []
    for index, hz in enumerate((300, 600)):
        part = tmp_path / f"part{index}.mp4"
        run_ffmpeg(
            ["-f", "lavfi", "-i", f"testsrc=size=128x128:rate={FPS}", "-f", "lavfi", "-i", f"sine=f={hz}:r=48000:d=2",
             "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(part)],
            at_stage="test", what="making a part", own_files=True,
        )  # fmt: skip
        parts.append(part)
    joined = join_videos(parts, tmp_path / "joined.mp4", tmp_path / "j", None)
    sound = decode_audio(joined.path, field="test", max_seconds=10)
    assert joined.frames == 100 and abs(sound.size / AUDIO_SAMPLE_RATE - 4.0) < 0.1
    first, second = (np.abs(np.fft.rfft(sound[i : i + 8000])).argmax() * 2 for i in (8000, 40000))
    assert (first, second) == (300, 600), "each part's own sound, in order"


def test_on_runpod_each_part_gets_the_execution_timeout_it_needs_and_media_go_to_s3(
    s3_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A RunPod endpoint with an S3 bucket (SeaweedFS here): the slices and the speech are uploaded to the bucket,
    and each part asks the executionTimeout the estimate gives a 40 s part at 40 steps, far above RunPod's
    default 600 s yet far below what one job of the whole speech would need."""
    from client.split_submit import _estimate

    settings = s3_settings.with_(endpoint_id="abcdef123", endpoint_base_url="https://api.runpod.ai/v2", api_key="k")
    speech, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=6)
    store = open_store(settings)
    long_job = {**job(speech), "sample_steps": 40, "max_frame_num": 15000}

    plan = plan_split(long_job, settings, store, parallel=3)
    run = SplitRun(plan, StudioClient(settings), store)
    _estimate(run, long_job, settings, None)

    assert len(plan.parts) == 2 and plan.soundtrack_key is not None and store.exists(plan.soundtrack_key)
    for part in plan.parts:
        ref = part.job_input["cond_audio"]["person1"]
        assert ref.startswith(s3_settings.s3_endpoint_url or "http"), "a presigned URL the worker can fetch"
    assert plan.execution_timeout_s is not None and plan.execution_timeout_s > 600
    said = capsys.readouterr().err
    assert f"each part's executionTimeout {plan.execution_timeout_s} s" in said and "on one worker" in said
