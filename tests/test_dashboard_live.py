"""The Live page: unfinished runs with progress from a real local endpoint, cancel, finished videos, failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from client.api import StudioClient
from core.contract import ErrorCode, JobError, JobStatus
from core.settings import Settings
from dashboard import state, views
from dashboard.jobs import STAGE_WORDS, submit
from tests.dashboard_support import (
    LONG_SPEECH,
    MEDIA,
    client_and_catalog,
    example_job,
    local_endpoint,
    module_endpoint,
    open_page,
    rerun_until,
    texts,
)

endpoint_env = module_endpoint("live")


@pytest.fixture
def live(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[StudioClient, Catalog]:
    """A client and the catalogue the dashboard under test uses, both on the module's endpoint."""
    return client_and_catalog(endpoint_env, monkeypatch)


def _send(live: tuple[StudioClient, Catalog], job: dict[str, Any]) -> str:
    client, catalog = live
    return submit(client, catalog, job, "local")


def _live_page(*submitted: str) -> AppTest:
    at = open_page()
    at.session_state[state.SUBMITTED] = list(submitted)
    at.switch_page("app_pages/live.py").run()
    return at


def _finished(at: AppTest, catalog: Catalog, job_id: str, timeout_s: float = 60.0) -> AppTest:
    """Rerun until the job has ended and its card is under "Just finished" (which lists every run on the
    endpoint that ended in the last hour, read from the catalogue, not only this session's)."""
    ended = lambda a: (catalog.get(job_id) or {}).get("status") in JobStatus.FINAL  # noqa: E731
    rerun_until(at, lambda a: ended(a) and "Just finished" in texts(a), timeout_s=timeout_s)
    return at.run()


def _progress(at: AppTest) -> list[int]:
    return [p.value for p in at.get("progress")]


def test_with_nothing_running_the_page_says_so(live: tuple[StudioClient, Catalog]) -> None:
    for run in live[1].unfinished():
        live[1].apply_status(run["run_id"], JobStatus.CANCELLED)
    at = _live_page()
    assert "Nothing is queued or running." in texts(at)
    links = {link.proto.label: link.proto.query_string for link in at.get("page_link")}
    assert links.get("Start a new one") == "start=new", "a session that sent nothing (a new tab, a reconnect) can start"
    assert "Submit another" not in links, "there is no last job to reuse"


def test_a_job_is_followed_from_progress_to_its_video(live: tuple[StudioClient, Catalog]) -> None:
    speech = {"cond_audio": None, "tts_audio": {"text": LONG_SPEECH[: len(LONG_SPEECH) // 4]}}
    job_id = _send(live, {**example_job("followed live"), **speech, "mode": "streaming"})
    at = _live_page(job_id)

    rerun_until(at, lambda a: any(0 < v < 100 for v in _progress(a)))
    card = texts(at)
    assert "followed live" in card and f"job `{job_id}`" in card
    assert [m.label for m in at.metric][:4] == ["Elapsed", "ETA", "Chunk", "Frames"]
    assert at.code and "%" in at.code[0].value, "the latest progress payloads are shown as log lines"
    words = tuple(STAGE_WORDS.values())
    for line in at.code[0].value.splitlines():
        assert line.split("%  ", 1)[1].startswith(words) and "=" not in line, f"stages in words: {line}"

    _finished(at, live[1], job_id)
    assert not _progress(at)
    assert at.get("video"), "the finished video plays inline"
    run = live[1].get(job_id)
    assert run is not None and run["status"] == JobStatus.COMPLETED
    links = [link for link in at.get("page_link") if link.proto.label == "Open in History"]
    assert any(job_id in link.proto.query_string for link in links)


def test_the_workers_warnings_show_on_the_just_finished_card(live: tuple[StudioClient, Catalog]) -> None:
    """Speech longer than a clip is cut: the user sees why on the card, not only in History's detail."""
    job_id = _send(live, {**example_job("cut short"), "mode": "clip", "frame_num": 25})
    at = _live_page(job_id)
    _finished(at, live[1], job_id)
    assert any("clip mode renders at most 25 frames" in c.value for c in at.caption), texts(at)


def test_warnings_name_fields_by_their_labels(live: tuple[StudioClient, Catalog]) -> None:
    """The worker says `raise max_frame_num`; the card says the form's label for it."""
    job_id = _send(live, {**example_job("cut in streaming"), "mode": "streaming", "max_frame_num": 29})
    at = _live_page(job_id)
    _finished(at, live[1], job_id)
    warnings = [c.value for c in at.caption if c.value.startswith("⚠")]
    assert any(w.endswith(views.plain("raise Most frames (streaming)")) for w in warnings), warnings
    assert not any("max_frame_num" in w for w in warnings)


def test_cancel_stops_a_running_job(live: tuple[StudioClient, Catalog]) -> None:
    long_job = {**example_job("cancel from live"), "cond_audio": None, "tts_audio": {"text": LONG_SPEECH}}
    job_id = _send(live, {**long_job, "mode": "streaming"})
    at = _live_page(job_id)
    rerun_until(at, lambda a: live[1].get(job_id)["status"] == JobStatus.IN_PROGRESS)  # type: ignore[index]

    at.button(key=f"live.cancel.{job_id}").click().run()
    assert "Stop it? The work so far is lost." in texts(at), "a running job's cancel is confirmed once"
    assert live[1].get(job_id)["status"] == JobStatus.IN_PROGRESS  # type: ignore[index]
    at.button(key=f"live.cancel.yes.{job_id}").click().run()
    rerun_until(at, lambda a: live[1].get(job_id)["status"] in JobStatus.FINAL)  # type: ignore[index]

    assert live[1].get(job_id)["status"] == JobStatus.CANCELLED  # type: ignore[index]
    # The user's own cancel is neutral: no red failure, no "see the message" without a message.
    rerun_until(at, lambda a: any(i.value.startswith("Cancelled: it was stopped") for i in a.info))
    assert not [e.value for e in at.error]


def test_a_failed_job_shows_what_went_wrong_and_what_to_try(live: tuple[StudioClient, Catalog]) -> None:
    job_id = _send(live, {**example_job("speech instead of a photo"), "cond_video": str(MEDIA / "speech_1.wav")})
    at = _live_page(job_id)
    _finished(at, live[1], job_id)
    errors = [e.value for e in at.error]
    # The code and message are shown as text: Markdown marks in them are escaped (views.plain).
    assert any(e.startswith(f"**The job's input is not valid** ({views.plain('E_INPUT_VALIDATION')})") for e in errors)
    assert any(views.plain("Portrait: ") in e for e in errors), "the field by its label on the form"
    assert not any(views.plain("cond_video") in e for e in errors)
    assert "What to try: Fix the field named in the message and submit again." in texts(at)


def test_a_job_the_endpoint_does_not_know_can_be_marked_lost(live: tuple[StudioClient, Catalog]) -> None:
    live[1].record_submission("local-never-sent", example_job("never sent"), endpoint_id="local")
    at = _live_page()
    rerun_until(at, lambda a: any("not found" in w.value for w in a.warning))

    at.button(key="live.lost.local-never-sent").click().run()
    at.run()
    run = live[1].get("local-never-sent")
    assert run is not None and run["status"] == JobStatus.FAILED
    assert "The worker stopped while running the job" in texts(at)


def test_a_queued_job_is_cancelled_at_once_and_health_does_not_count_cancels_as_failures(
    live: tuple[StudioClient, Catalog],
) -> None:
    """Two cancels (one recorded with E_CANCELLED by the endpoint, one with no code) are neither failures nor
    two kinds of thing on the Health page."""
    from dashboard.health import failure_rates, recent_finished

    _, catalog = live
    long_job = {**example_job("busy"), "cond_audio": None, "tts_audio": {"text": LONG_SPEECH}, "mode": "streaming"}
    busy, queued = _send(live, long_job), _send(live, {**example_job("waiting"), "mode": "clip"})
    at = _live_page(busy, queued)
    rerun_until(at, lambda a: catalog.get(busy)["status"] == JobStatus.IN_PROGRESS)  # type: ignore[index]
    at.button(key=f"live.cancel.{queued}").click().run()
    assert catalog.get(queued)["status"] == JobStatus.CANCELLED, "a queued job needs no confirmation"  # type: ignore[index]
    at.button(key=f"live.cancel.{busy}").click().run()
    at.button(key=f"live.cancel.yes.{busy}").click().run()
    rerun_until(at, lambda a: catalog.get(busy)["status"] == JobStatus.CANCELLED)  # type: ignore[index]

    assert not {code for code in catalog.failure_counts_by_code() if code == ErrorCode.CANCELLED}
    runs = recent_finished(catalog, "local")
    assert set(runs["status"]) >= {JobStatus.CANCELLED}
    rates = failure_rates(runs, "5min")
    assert ErrorCode.CANCELLED not in rates.columns and JobStatus.CANCELLED not in rates.columns


def test_a_job_that_failed_for_a_passing_reason_can_be_retried_from_its_card(
    live: tuple[StudioClient, Catalog],
) -> None:
    """A download that failed (retryable) offers Retry; the local endpoint runs the same job again (/retry)."""
    _, catalog = live
    job_id = _send(live, {**example_job("unreachable photo"), "cond_video": "https://photos.invalid/face.jpg"})
    at = _live_page(job_id)
    _finished(at, catalog, job_id)
    first = catalog.get(job_id)
    assert first is not None and first["status"] == JobStatus.FAILED
    assert first["error_code"] == ErrorCode.DOWNLOAD_FAILED
    at.button(key=f"live.retry.{job_id}").click().run()
    assert catalog.get(job_id)["status"] != JobStatus.FAILED, "the run is back in the queue"  # type: ignore[index]
    rerun_until(at, lambda a: catalog.get(job_id)["status"] == JobStatus.FAILED)  # type: ignore[index]
    assert job_id in at.session_state[state.SUBMITTED]


def test_a_cancelled_job_offers_no_retry(live: tuple[StudioClient, Catalog]) -> None:
    job_id = _send(live, {**example_job("cancel me"), "mode": "clip"})
    live[0].cancel(job_id)
    live[1].apply_status(job_id, JobStatus.CANCELLED)
    at = _live_page(job_id)
    _finished(at, live[1], job_id)
    assert f"live.retry.{job_id}" not in [b.key for b in at.button]


def test_on_runpod_retry_sends_the_same_request_as_a_new_job(
    live: tuple[StudioClient, Catalog], endpoint_env: dict[str, str]
) -> None:
    """RunPod has no /retry for a failed job: the dashboard resubmits the same input (a new job id) and keeps the
    failed run as it was. The request goes to the local endpoint, which speaks RunPod's /run contract; only the
    settings say "RunPod cloud" (the branch is chosen by the endpoint's base URL)."""
    from core.contract import INLINE_MEDIA_NOTE
    from core.settings import RUNPOD_API_BASE
    from dashboard.jobs import retry

    client, catalog = live
    job_id = _send(live, {**example_job("resubmit on runpod"), "cond_video": "https://photos.invalid/face.jpg"})
    rerun_until(_live_page(job_id), lambda a: catalog.get(job_id)["status"] == JobStatus.FAILED)  # type: ignore[index]
    cloud = Settings.from_env(endpoint_env).with_(endpoint_base_url=RUNPOD_API_BASE)
    assert not cloud.is_local_endpoint

    failed = catalog.get(job_id)
    assert failed is not None
    again = retry(client, catalog, failed, cloud)
    assert again != job_id
    resent = catalog.get(again)
    assert resent is not None and resent["params"] == failed["params"]
    assert catalog.get(job_id)["status"] == JobStatus.FAILED, "the failed run stays as it ended"  # type: ignore[index]

    inline = {**failed, "params": {**failed["params"], "cond_video": INLINE_MEDIA_NOTE}}
    with pytest.raises(JobError, match="sent inline and not kept"):
        retry(client, catalog, inline, cloud)


def test_a_cancelled_streaming_job_shows_the_video_it_had_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel keeps the newest partial video as the job's result: the finished card plays it and says what it
    is, rather than an empty space where the video would be. (Its own endpoint publishes a partial per clip.)"""
    monkeypatch.setenv("STUDIO_PARTIAL_EVERY_S", "0")
    with local_endpoint(tmp_path / "data") as env:
        client, catalog = client_and_catalog(env, monkeypatch)
        job = {**example_job("cancel after a partial"), "size": "infinitetalk-720", "frame_num": 21}
        job_id = submit(client, catalog, {**job, "mode": "streaming"}, "local")
        at = _live_page(job_id)
        seen = lambda: [e for e in catalog.progress_events(job_id, limit=50) if e.get("partial_video")]  # noqa: E731
        rerun_until(at, lambda a: len({e["partial_video"]["clips_done"] for e in seen()}) >= 2, timeout_s=120)
        client.cancel(job_id)
        _finished(at, catalog, job_id)
        assert catalog.get(job_id)["status"] == JobStatus.CANCELLED  # type: ignore[index]
        assert any(c.value.startswith("Rendered before the cancel: ") for c in at.caption), texts(at)
        assert at.get("video"), "the kept partial plays on the card"
