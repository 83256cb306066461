"""A split run in the dashboard (issue 30): Submit's toggle, the driver that steps split runs while no command line
does, and Live's one card with a bar per part, Cancel and "Retry this part".

Real parts: a local endpoint with two workers running the real pipeline (preview engine), real ffmpeg, the store a
local folder, the app under AppTest; the driver is the dashboard's own thread.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog import Catalog
from client.api import StudioClient
from client.fanout import SplitRun, plan_split
from core.contract import AUDIO_SAMPLE_RATE, JobStatus, SplitPlan
from core.settings import Settings
from core.store import open_store
from dashboard import split_driver
from dashboard.split_driver import SplitDriver
from tests.dashboard_support import (
    EXAMPLES,
    MEDIA,
    dashboard_env,
    example_job,
    open_page,
    real_run,
    rerun_until,
    texts,
)
from tests.endpoint_server import running_endpoint, wait_for
from tests.media_tools import wav_bytes
from tests.s3server import free_port
from worker.media import decode_audio, probe, write_wav

PAUSE_S = 0.6


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One real local endpoint with two workers (preview engine) for this module's split runs."""
    data_dir = tmp_path_factory.mktemp("split-dashboard")
    port = free_port()
    env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_LOCAL_PORT": str(port),
        "STUDIO_INPUT_ROOTS": str(EXAMPLES),
        "STUDIO_LOCAL_WORKERS": "2",
    }
    with running_endpoint(env, port=port) as base_url:
        wait_for(f"{base_url}/local/health", lambda health: health["workers"]["idle"] >= 2, timeout_s=90)
        yield env


@pytest.fixture
def settings(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The dashboard under test on the module's endpoint and data folder; every split driver stopped after."""
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    yield Settings.from_env(endpoint_env)
    split_driver.stop_all()


def speech_with_pauses(out: Path, rounds: int) -> Path:
    """The two example recordings one after the other, `rounds` times, each followed by PAUSE_S of near silence
    (about 13 s a round): pauses where the cuts can fall."""
    rng = np.random.default_rng(3)
    pieces = []
    for _ in range(rounds):
        for name in ("speech_1.wav", "speech_2.wav"):
            pieces.append(decode_audio(MEDIA / name, field="test", max_seconds=30))
            pieces.append((3e-4 * rng.standard_normal(int(PAUSE_S * AUDIO_SAMPLE_RATE))).astype(np.float32))
    return write_wav(out, np.concatenate(pieces))


def job(speech: Path, prompt: str) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "cond_video": str(MEDIA / "portrait.jpg"),
        "cond_audio": {"person1": str(speech)},
        "mode": "streaming",
        "sample_steps": 4,
    }


def start_run(settings: Settings, speech: Path, prompt: str, size: str | None = None, **split: Any) -> SplitRun:
    """A split run started as `studio submit --no-wait` starts one: planned, recorded, saved, first parts sent,
    and then nobody following it but the dashboard."""
    store, client = open_store(settings), StudioClient(settings)
    plan = plan_split({**job(speech, prompt), **({"size": size} if size else {})}, settings, store, **split)
    run = SplitRun(plan, client, store, Catalog(settings.catalog_file))
    run.record_start()
    run.save()
    run.send_ready()
    return run


def saved_plan(settings: Settings, run: SplitRun) -> SplitPlan:
    return SplitPlan.model_validate_json(open_store(settings).get(run.plan.plan_key))


def until(done: Any, timeout_s: float = 240.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = done()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def tone(seconds: float) -> bytes:
    """A voice-like modulated tone (loud enough to be speech to the worker's silence check)."""
    t = np.arange(int(seconds * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
    return wav_bytes(0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)))


def test_the_split_toggle_is_on_above_a_minute_of_speech_and_off_below(settings: Settings) -> None:
    catalog = Catalog(settings.catalog_file)
    for n in range(5):  # past runs on this endpoint: the estimate's history basis (client.estimate.MIN_HISTORY)
        real_run(settings, catalog, f"past-run-{n}", example_job(f"past run {n}", frame_num=25 + 8 * n))
    at = open_page("submit")
    at.radio(key="submit.p1_source").set_value("Upload").run()
    at.file_uploader(key="submit.p1_upload").upload("long.wav", tone(100.0), "audio/wav").run()

    toggle = at.toggle(key="submit.split.on")
    assert toggle.label == "Split long speech" and toggle.value is True, "on by default above 60 s"
    assert "1 min 40 s of speech → 3 parts of ≤ 40 s, 2 at a time" in texts(at), "2: the endpoint's two workers"
    assert at.number_input(key="submit.split.part_s").value == 40.0
    assert at.number_input(key="submit.split.parallel").value == 2
    estimate = next(c.value for c in at.caption if c.value.startswith("Split estimate: "))
    assert "on one worker" in estimate and "with 2 workers" in estimate, estimate
    assert "each part's execution timeout" in estimate
    assert not [w for w in at.warning if "is cut" in w.value], "split, no part is cut by the frame cap"
    assert "(100.0 s of video at 25 fps, in parts)" in texts(at), "split, the whole speech becomes video"

    at.number_input(key="submit.split.part_s").set_value(20.0).run()
    assert "1 min 40 s of speech → 5 parts of ≤ 20 s, 2 at a time" in texts(at)

    at.file_uploader(key="submit.p1_upload").upload("short.wav", tone(30.0), "audio/wav").run()
    assert at.toggle(key="submit.split.on").value is False, "off by default at or below 60 s"
    assert "one continuous take on one worker" in texts(at)
    at.toggle(key="submit.split.on").set_value(True).run()
    assert "30 s of speech → 1 part of ≤ 20 s" not in texts(at) and "2 parts of ≤ 20 s" in texts(at)


def test_submit_with_the_toggle_on_sends_one_run_shown_as_one_card_with_a_bar_per_part(
    settings: Settings, tmp_path: Path
) -> None:
    speech = speech_with_pauses(tmp_path / "speech.wav", rounds=2)
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.radio(key="submit.p1_source").set_value("Upload").run()
    at.file_uploader(key="submit.p1_upload").upload("speech.wav", speech.read_bytes(), "audio/wav")
    at.text_area(key="submit.prompt").set_value("split from the dashboard")
    at.selectbox(key="submit.param.mode").set_value("streaming").run()
    at.toggle(key="submit.split.on").set_value(True).run()
    at.number_input(key="submit.split.part_s").set_value(9.0).run()
    at.button(key="submit.go").click().run()
    assert not at.exception, [e.value for e in at.exception]

    catalog = Catalog(settings.catalog_file)
    runs = [r for r in catalog.unfinished(settings.endpoint_id) if r["prompt"] == "split from the dashboard"]
    assert [r["source"] for r in runs] == ["split"], "one run in the catalogue, not one per part"
    run_id = runs[0]["run_id"]
    plan = split_driver.read_plan(open_store(settings), runs[0])
    assert len(plan.parts) == 3 and plan.parallel == 2

    at = open_page("live")
    at = rerun_until(at, lambda at: any(p.proto.text.startswith("Part 3 (") for p in at.get("progress")), 60)
    bars = [p.proto.text for p in at.get("progress")]
    assert len([b for b in bars if b.startswith("Part ")]) == 3 and any(b.startswith("Whole run · ") for b in bars)
    assert texts(at).count("split from the dashboard") == 1, "one card: the parts are not cards of their own"
    for part in plan.parts:
        assert part.job_id is None or part.job_id not in texts(at)
    assert any("1 running" in c.value for c in at.sidebar.caption) or "1 running" in texts(at), "counted once"

    at = rerun_until(at, lambda at: catalog.get(run_id)["status"] == JobStatus.COMPLETED, 300)
    row = catalog.get(run_id)
    assert row["video_key"] == f"{plan.folder}/video.mp4"
    assert [r for r in catalog.unfinished(settings.endpoint_id) if r["prompt"] == "split from the dashboard"] == []
    at = rerun_until(at, lambda at: "Just finished" in texts(at) and "split run · 3 parts" in texts(at), 30)
    rerun_until(at, lambda at: texts(at).count("split from the dashboard") == 1, 10)  # the last card's tick gone
    finished = catalog.recently_finished(settings.endpoint_id, "2000", 50)
    assert [r["run_id"] for r in finished if r["prompt"] == "split from the dashboard"] == [run_id], "parts: no rows"


def test_cancel_on_the_card_stops_every_part(settings: Settings, tmp_path: Path) -> None:
    # The page is open before the run starts, and the parts are 720p, so the two sent first are still running when
    # Cancel is pressed: run first in a fresh process, the first page's imports outlasted a 480p part, the driver
    # sent the third, and the test could not tell a cancel that stops the waiting parts from one that does not.
    at = open_page("live")
    speech = speech_with_pauses(tmp_path / "s.wav", rounds=3)
    run = start_run(settings, speech, "cancel me", size="infinitetalk-720", part_s=9.0, min_part_s=2.0, parallel=2)
    assert len(run.plan.parts) >= 4, "two running, the rest waiting for a worker"
    at = rerun_until(at, lambda at: "cancel me" in texts(at), 60)
    at.button(key=f"live.split.cancel.{run.plan.run_id}").click().run()
    at.button(key=f"live.split.cancel.yes.{run.plan.run_id}").click().run()
    assert not at.exception

    plan = saved_plan(settings, run)
    assert plan.state == "cancelled"
    assert {p.state for p in plan.parts} <= {JobStatus.CANCELLED, JobStatus.COMPLETED}, "nothing left running"
    assert all(p.state == JobStatus.CANCELLED and p.job_id is None for p in plan.parts[2:]), "the waiting never sent"
    client = StudioClient(settings)
    for part in plan.parts:
        if part.job_id and part.state == JobStatus.CANCELLED:
            assert client.wait(part.job_id, timeout_s=60).status == JobStatus.CANCELLED
    assert Catalog(settings.catalog_file).get(run.plan.run_id)["status"] == JobStatus.CANCELLED
    at = rerun_until(at, lambda at: "Just finished" in texts(at) and "split run ·" in texts(at), 30)
    assert texts(at).count("cancel me") == 1
    assert not [b for b in at.get("button") if str(getattr(b, "key", "")).startswith("live.split.retry.")]


def test_a_cancel_or_retry_from_a_process_not_driving_the_run_is_never_written_over(
    settings: Settings, tmp_path: Path
) -> None:
    """Cancel and "Retry this part" in a dashboard that does not hold the run's lease write the bucket's plan while
    the driver holds an older copy: the driver's next save takes them in instead of writing over them."""
    run = start_run(settings, speech_with_pauses(tmp_path / "s.wav", rounds=3), "cancelled elsewhere", part_s=9.0,
                    min_part_s=2.0, parallel=1)  # fmt: skip
    client, store = StudioClient(settings), open_store(settings)
    driving = SplitRun.resume(run.plan.run_id, client, store)  # the driver's copy, read before the cancel
    SplitRun.resume(run.plan.run_id, client, store, Catalog(settings.catalog_file)).cancel()  # the other's Cancel
    driving.step()
    driving.save()
    plan = saved_plan(settings, run)
    assert plan.state == "cancelled" and driving.plan.state == "cancelled"
    assert all(p.state == JobStatus.CANCELLED and p.job_id is None for p in plan.parts[1:]), "the waiting never sent"

    # A plan of made-up parts, in a store of its own: the module's dashboards must not find and drive it.
    store = open_store(Settings(data_dir=tmp_path / "elsewhere", input_roots=(EXAMPLES, MEDIA)))
    plan = plan_split(job(speech_with_pauses(tmp_path / "r.wav", rounds=1), "retried elsewhere"), settings, store,
                      part_s=7.0, min_part_s=2.0, parallel=2)  # fmt: skip
    plan.parts[0].state, plan.parts[0].job_id = "COMPLETED", "job-a"
    plan.parts[1].state, plan.parts[1].job_id, plan.parts[1].error = "FAILED", "job-b", {"message": "no GPU"}
    plan.state = "failed"
    SplitRun(plan, client, store).save()
    driving = SplitRun.resume(plan.run_id, client, store)
    SplitRun.resume(plan.run_id, client, store).retry(1)  # the other dashboard's "Retry this part"
    driving.save()
    stored = SplitPlan.model_validate_json(store.get(plan.plan_key))
    assert stored.state == "running" and stored.parts[1].state == "pending"
    assert stored.parts[1].earlier_job_ids == ["job-b"] and stored.parts[0].state == JobStatus.COMPLETED


def test_a_failed_part_says_why_and_is_retried_alone(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    speech = speech_with_pauses(tmp_path / "s.wav", rounds=1)
    plan = plan_split(job(speech, "retry a part"), settings, store, part_s=7.0, min_part_s=2.0, parallel=2)
    assert len(plan.parts) == 2
    slice_path = Path(plan.parts[1].job_input["cond_audio"]["person1"])
    late = slice_path.with_name("late-part-2.wav")  # in the store's folder, which the worker may read
    plan.parts[1].job_input["cond_audio"] = {"person1": str(late)}  # not there yet: the worker refuses the part
    run = SplitRun(plan, StudioClient(settings), store, Catalog(settings.catalog_file))
    run.record_start()
    run.save()  # sent by the dashboard's driver alone

    catalog = Catalog(settings.catalog_file)
    at = open_page("live")
    at = rerun_until(at, lambda at: catalog.get(plan.run_id)["status"] == JobStatus.FAILED, 240)
    at = rerun_until(at, lambda at: "Just finished" in texts(at) and "split run · 2 parts" in texts(at), 30)
    said = [e.value.replace("\\", "") for e in at.error]  # views.plain escapes Markdown
    assert any(e.startswith("Part 2 failed: cond_audio.person1: no file at") for e in said), said
    first = saved_plan(settings, run)
    assert first.parts[0].state == JobStatus.COMPLETED and first.parts[1].state == JobStatus.FAILED
    assert "Retry this part" in [b.label for b in at.get("button")]
    assert "Rendered before it stopped: part 1, " in texts(at), "the part that finished stays playable"
    assert len(at.get("video")) == 1

    shutil.copyfile(slice_path, late)  # the missing file is back
    at.button(key=f"live.split.retry.{plan.run_id}.1").click().run()
    until(lambda: catalog.get(plan.run_id)["status"] == JobStatus.COMPLETED, 240, "the retried part and the join")
    done = saved_plan(settings, run)
    assert done.state == "joined" and done.parts[0].job_id == first.parts[0].job_id, "the done part was not resent"
    assert done.parts[1].attempts == 2 and done.parts[1].earlier_job_ids == [first.parts[1].job_id]


def test_a_driver_restarted_midway_finishes_and_joins_a_command_line_run(settings: Settings, tmp_path: Path) -> None:
    """A `--no-wait` run from the command line is driven by the dashboard; the dashboard stops mid-way (one part
    done, one not yet sent) and a new one, reading the catalogue and the bucket, finishes and joins it."""
    run = start_run(settings, speech_with_pauses(tmp_path / "s.wav", rounds=2), "restart midway", part_s=9.0,
                    min_part_s=2.0, parallel=1)  # fmt: skip
    assert len(run.plan.parts) == 3
    first = SplitDriver(settings, tick_s=0.3).start()
    store = open_store(settings)
    so_far = f"{run.plan.folder}/parts/so-far-001.mp4"
    until(lambda: store.exists(so_far), 240, "the video so far, once the first part is done")
    beside = SplitDriver(settings)  # another dashboard process on the same bucket, while the first one runs
    client, catalog = StudioClient(settings), Catalog(settings.catalog_file)
    assert beside.tick(client, store, catalog) == {run.plan.run_id: "held"}, "one driver per run, never two"
    first.stop()
    assert first.so_far[run.plan.run_id] == so_far
    part_1 = run.plan.parts[0].duration_s
    assert abs((probe(store.download(so_far, tmp_path / "so-far.mp4"), field="test").duration_s or 0) - part_1) < 0.2
    midway = saved_plan(settings, run)
    assert midway.state == "running" and midway.parts[2].state == "pending"
    assert not store.exists(f"{run.plan.folder}/driver.json"), "a stopped driver gives its runs back"
    assert catalog.get(run.plan.run_id)["status"] == JobStatus.IN_PROGRESS

    second = SplitDriver(settings, tick_s=0.3).start()
    try:
        until(lambda: catalog.get(run.plan.run_id)["status"] == JobStatus.COMPLETED, 300, "the join")
    finally:
        second.stop()
    done = saved_plan(settings, run)
    assert done.state == "joined" and done.parts[0].job_id == midway.parts[0].job_id, "followed, not resent"
    video = store.get(done.video_key or "")
    assert video and list(store.list(f"{done.folder}/parts/")) == [], "the parts' files (and the video so far) go"
    assert not store.exists(f"{done.folder}/driver.json")
    assert SplitRun(done, StudioClient(settings), store).join() == done.video_key
    assert store.get(done.video_key or "") == video, "joining again gives the same file"


def test_a_waiting_studio_submit_keeps_its_run_from_the_dashboards_driver(settings: Settings, tmp_path: Path) -> None:
    """`studio submit` (SplitRun.run) drives its own run: an open dashboard's driver leaves it alone, so no part is
    sent twice, and the run is given back once joined."""
    store, client = open_store(settings), StudioClient(settings)
    plan = plan_split(job(speech_with_pauses(tmp_path / "s.wav", rounds=1), "waited for"), settings, store,
                      part_s=7.0, min_part_s=2.0, parallel=1)  # fmt: skip
    catalog = Catalog(settings.catalog_file)
    run = SplitRun(plan, client, store, catalog)
    waiting = threading.Thread(target=run.run, kwargs={"poll_s": 0.3})
    waiting.start()
    try:
        lease = f"{plan.folder}/driver.json"
        until(lambda: store.exists(lease), 60, "the waiting command's hold")
        dashboard = SplitDriver(settings)
        assert dashboard.tick(client, store, catalog) == {plan.run_id: "held"}
    finally:
        waiting.join(300)
    assert run.plan.state == "joined" and all(part.attempts == 1 for part in run.plan.parts), "no part sent twice"
    assert not store.exists(lease), "given back"
    assert dashboard.tick(client, store, catalog) == {}, "nothing left to drive"


def test_text_to_speech_split_from_submit_speaks_each_part_and_joins_them(settings: Settings, tmp_path: Path) -> None:
    """Text to speech on Submit with the toggle on: the text's estimated length drives the toggle, each part
    speaks whole sentences of it (the worker speaks them; there is no soundtrack to cut), and the joined video
    keeps the parts' sound and has the frames the catalogue records."""
    text = " ".join(f"Sentence {word} is spoken by its own part of the run." for word in ("one", "two", "three"))
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    at.text_area(key="submit.tts_text").set_value(text)
    at.text_area(key="submit.prompt").set_value("spoken in parts")
    at.selectbox(key="submit.param.mode").set_value("streaming").run()
    at.toggle(key="submit.split.on").set_value(True).run()
    at.number_input(key="submit.split.part_s").set_value(3.0).run()
    assert any("of speech →" in c.value and "parts of ≤ 3 s" in c.value for c in at.caption), texts(at)
    at.button(key="submit.go").click().run()
    assert not at.exception, [e.value for e in at.exception]

    catalog, store = Catalog(settings.catalog_file), open_store(settings)
    (row,) = [r for r in catalog.unfinished(settings.endpoint_id) if r["prompt"] == "spoken in parts"]
    plan = split_driver.read_plan(store, row)
    spoken = [part.job_input["tts_audio"]["text"] for part in plan.parts]
    assert len(spoken) >= 2 and " ".join(spoken) == text, spoken
    assert plan.soundtrack_key is None and all("cond_audio" not in p.job_input for p in plan.parts)

    until(lambda: catalog.get(row["run_id"])["status"] in JobStatus.FINAL, what="the run to end")
    done = catalog.get(row["run_id"])
    assert done["status"] == JobStatus.COMPLETED, done.get("error_message")
    assert {part.state for part in split_driver.read_plan(store, done).parts} == {JobStatus.COMPLETED}
    video = probe(store.download(done["video_key"], tmp_path / "joined.mp4"), field="test")
    assert video.has_audio and video.frames == done["frames"], (video, done["frames"])
