"""Every job, wherever it came from (issue 29): jobs sent outside the dashboard on Live with their place in line,
one board for Live and the sidebar, an ETA only once it means something, "Just finished" from the catalogue,
a notice on other pages, Retry from Live and History with its trace, and a job cut off by a restart retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from catalog.records import run_id_for
from client.api import StudioClient
from core.contract import ErrorCode, JobStatus
from core.settings import Settings
from dashboard import tracker
from dashboard.jobs import eta_seconds, retry, retry_trace
from tests.dashboard_support import (
    LONG_SPEECH,
    MEDIA,
    client_and_catalog,
    dashboard_env,
    dashboard_on,
    example_job,
    local_endpoint,
    module_endpoint,
    open_page,
    rerun_until,
    texts,
)
from tests.endpoint_server import wait_for

endpoint_env = module_endpoint("every-job")


@pytest.fixture
def live(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[StudioClient, Catalog]:
    """A client that sends jobs as `studio submit` does (no catalogue, no request file), and the
    catalogue the dashboard under test uses."""
    return client_and_catalog(endpoint_env, monkeypatch)


def _progress_lines(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def _sidebar_line(at: AppTest) -> str:
    lines = [s.value for s in [*at.success, *at.warning] if " queued · " in str(s.value)]
    assert lines, texts(at)
    return str(lines[0])


def _long(prompt: str) -> dict[str, Any]:
    return {**example_job(prompt), "cond_audio": None, "tts_audio": {"text": LONG_SPEECH}, "mode": "streaming"}


def _settle(client: StudioClient, *job_ids: str) -> None:
    for job_id in job_ids:
        client.cancel(job_id)


def test_jobs_sent_from_the_command_line_show_on_live_with_their_place_in_line(
    live: tuple[StudioClient, Catalog],
) -> None:
    """30 `submit --no-wait` jobs and Live said "Nothing is queued or running" while the sidebar counted them."""
    client, catalog = live
    busy = client.submit(_long("sent from a script, running"))
    waiting = [client.submit({**example_job(f"sent from a script, waiting {n}")}) for n in range(2)]
    try:
        at = open_page("live")
        rerun_until(at, lambda a: "In queue · 2nd in line" in _progress_lines(a))
        assert "In queue · next in line" in _progress_lines(at)
        assert not any(line.startswith("In queue · 0%") for line in _progress_lines(at)), "no 0 % for a queued job"
        page = texts(at)
        assert "sent from a script, waiting 0" in page and "sent from a script, waiting 1" in page
        for job_id in (busy, *waiting):
            run = catalog.get(job_id)
            assert run is not None and run["source"] == "endpoint", "kept in the catalogue: History has it too"

        # One board for both: the sidebar's counts are Live's, once nothing is changing (the busy job is long).
        rerun_until(at, lambda a: catalog.get(busy)["status"] == JobStatus.IN_PROGRESS)  # type: ignore[index]
        at.run()
        (counts,) = [c.value for c in at.caption if " queued · " in c.value and "updated" in c.value]
        board_line = counts.split(" · updated")[0]
        assert board_line == "2 queued · 1 running"
        assert _sidebar_line(at).endswith(board_line)
    finally:
        _settle(client, *waiting, busy)


def test_the_eta_waits_until_the_pace_means_something() -> None:
    """At 3 % after a second, ETA said "0 s"."""
    assert eta_seconds(1.0, 3.0) is None
    assert eta_seconds(60.0, 3.0) is None, "3 % says nothing of the pace yet"
    assert eta_seconds(5.0, 50.0) is None, "nor do the first seconds"
    assert eta_seconds(30.0, 50.0) == pytest.approx(30.0)


def test_just_finished_is_read_from_the_catalogue_so_a_reload_keeps_it(live: tuple[StudioClient, Catalog]) -> None:
    client, catalog = live
    job_id = client.submit({**example_job("finished, then the page was reloaded")})
    first = open_page("live")
    rerun_until(first, lambda a: catalog.get(job_id) is not None)
    rerun_until(first, lambda a: catalog.get(job_id)["status"] == JobStatus.COMPLETED)  # type: ignore[index]

    reloaded = open_page("live")  # a new session: nothing in session state
    rerun_until(reloaded, lambda a: "Just finished" in texts(a))
    assert "finished, then the page was reloaded" in texts(reloaded)


def test_a_job_that_ends_while_the_user_is_on_another_page_is_announced(live: tuple[StudioClient, Catalog]) -> None:
    client, catalog = live
    at = open_page("history")
    # A job long enough that the open page sees it running (a one-second preview job can start and end between
    # two of the page's looks; the toast is for a job the page was following).
    job_id = client.submit(_long("ended while History was open"))
    run_id = run_id_for(job_id)
    rerun_until(at, lambda a: tracker.FOLLOWING in a.session_state and run_id in a.session_state[tracker.FOLLOWING],
                timeout_s=60)  # fmt: skip
    rerun_until(at, lambda a: any("ended while History was open" in t.value for t in a.toast), timeout_s=180)
    (toast,) = [t.value for t in at.toast if "ended while History was open" in t.value]
    assert toast.startswith("Finished: ")
    titles = [h.value for h in at.get("html") if "document.title" in h.value]
    assert any("1 finished" in title for title in titles), titles
    assert catalog.get(job_id)["status"] == JobStatus.COMPLETED  # type: ignore[index]


def test_retry_from_history_runs_a_failed_job_again_and_both_cards_say_so(
    live: tuple[StudioClient, Catalog], endpoint_env: dict[str, str]
) -> None:
    """History offered no Retry; a retried card said nothing of it."""
    client, catalog = live
    failing = {**example_job("photo that cannot be fetched"), "cond_video": "https://photos.invalid/face.jpg"}
    job_id = client.submit(failing)
    at = open_page("live")
    rerun_until(at, lambda a: (catalog.get(job_id) or {}).get("status") == JobStatus.FAILED)
    assert catalog.get(job_id)["error_code"] == ErrorCode.DOWNLOAD_FAILED  # type: ignore[index]

    history = open_page("history")
    history.query_params["run"] = job_id
    history.run()
    history.button(key=f"history.retry.{job_id}").click().run()
    assert catalog.get(job_id)["status"] != JobStatus.FAILED, "the run is back in the queue"  # type: ignore[index]
    rerun_until(at, lambda a: catalog.get(job_id)["status"] == JobStatus.FAILED)  # type: ignore[index]
    assert retry_trace(catalog.get(job_id), catalog) == "Retried 1 time"  # type: ignore[arg-type]
    rerun_until(at, lambda a: "Retried 1 time" in texts(a))

    # On RunPod a retry is a new job: each card names the other.
    from core.settings import RUNPOD_API_BASE

    cloud = Settings.from_env(endpoint_env).with_(endpoint_base_url=RUNPOD_API_BASE)
    again = retry(client, catalog, catalog.get(job_id), cloud)  # type: ignore[arg-type]
    assert retry_trace(catalog.get(again), catalog) == f"Retry of {job_id}"  # type: ignore[arg-type]
    assert retry_trace(catalog.get(job_id), catalog) == f"Retried 1 time · Retried as {again}"  # type: ignore[arg-type]


def test_a_job_cut_off_by_a_restart_stays_on_live_with_its_video_so_far_and_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart mid-job: the job vanished from Live and nothing offered to run it again."""
    monkeypatch.setenv("STUDIO_PARTIAL_EVERY_S", "0")
    data = tmp_path / "data"
    job = {**example_job("cut off by a restart"), "size": "infinitetalk-720", "frame_num": 21, "mode": "streaming"}
    with local_endpoint(data) as env:
        client = StudioClient(dashboard_on(env, monkeypatch))
        job_id = client.submit(job)
        watching = open_page("live")
        catalog = Catalog(data / "catalog.db")
        partials = lambda: [e for e in catalog.progress_events(job_id, limit=50) if e.get("partial_video")]  # noqa: E731
        rerun_until(watching, lambda a: bool(partials()), timeout_s=120)
    # The endpoint stopped mid-job; it comes back on the same data folder.
    with local_endpoint(data) as env:
        client = StudioClient(dashboard_on(env, monkeypatch))
        wait_for(f"{client.base}/status/{job_id}", lambda s: s["status"] == JobStatus.FAILED, timeout_s=30)
        at = open_page("live")  # a reload after the restart
        rerun_until(at, lambda a: f"live.retry.{job_id}" in [b.key for b in a.button], timeout_s=60)
        assert catalog.get(job_id)["error_code"] == ErrorCode.WORKER_LOST  # type: ignore[index]
        assert any(c.value.startswith("Rendered before it stopped") for c in at.caption), texts(at)
        assert at.get("video"), "the clips it had finished play on the card"

        at.button(key=f"live.retry.{job_id}").click().run()
        assert catalog.get(job_id)["status"] in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)  # type: ignore[index]
        rerun_until(at, lambda a: catalog.get(job_id)["status"] == JobStatus.COMPLETED, timeout_s=180)  # type: ignore[index]
        assert retry_trace(catalog.get(job_id), catalog) == "Retried 1 time"  # type: ignore[arg-type]


def test_history_takes_in_runs_that_appear_in_the_store_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """34 finished videos sat in the store while History said 4 runs, until "Sync from bucket" was pressed."""
    from dashboard import tracker
    from worker.pipeline import run_job

    data = tmp_path / "data"
    dashboard_env(monkeypatch, data)
    at = open_page("history")
    assert catalog_runs(data) == 0
    settings = Settings.from_env({"STUDIO_DATA_DIR": str(data), "STUDIO_INPUT_ROOTS": str(MEDIA)})
    job = example_job("made by a script, straight into the store")
    output = run_job(job, "script-job", settings=settings, sink=lambda _: None)
    assert output.get("status") == "success", output

    at.session_state[tracker.PICKED_UP_AT] = -1e9  # the fragment's timer comes round
    at.run()
    assert catalog_runs(data) == 1
    assert "made by a script, straight into the store" in texts(at)
    assert not [b for b in at.button if b.key == "history.sync" and b.value], "no click on Sync from bucket"


def catalog_runs(data: Path) -> int:
    return Catalog(data / "catalog.db").search("").total
