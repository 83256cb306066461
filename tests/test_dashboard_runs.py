"""Following jobs on a real local endpoint, and the History and Health logic over a real catalogue."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from client.api import StudioClient
from core.contract import ErrorCode, JobStatus, Stage
from core.settings import Settings
from dashboard import health as health_logic
from dashboard.history import Query, facet_options, params_rows, parse_tags, search, timing_rows
from dashboard.jobs import Backoff, cancel, eta_seconds, live_view, mark_lost, poll, submit
from tests.dashboard_support import LONG_SPEECH, example_job, local_endpoint


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a dashboard talking to a real local endpoint with the preview engine."""
    data_dir = tmp_path_factory.mktemp("endpoint")
    with local_endpoint(data_dir) as env:
        yield Settings.from_env(env)


def _follow(client: StudioClient, catalog: Catalog, run_id: str, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = catalog.get(run_id)
        assert run is not None
        if run["status"] in JobStatus.FINAL:
            return run
        poll(client, catalog, run)
        time.sleep(0.3)
    raise AssertionError(f"{run_id} did not finish")


def test_a_submitted_job_is_followed_to_its_video(endpoint: Settings, tmp_path: Path) -> None:
    client, catalog = StudioClient(endpoint), Catalog(tmp_path / "catalog.db")
    job_id = submit(client, catalog, example_job("followed to the end"), endpoint.endpoint_id)
    assert catalog.get(job_id)["status"] == JobStatus.IN_QUEUE  # type: ignore[index]

    run = _follow(client, catalog, job_id)

    assert run["status"] == JobStatus.COMPLETED
    assert run["video_key"].endswith(f"{job_id}/video.mp4")
    assert run["progress_pct"] == 100.0
    assert run["frames"] == 25
    events = catalog.progress_events(job_id, limit=200)
    assert events, "the progress payloads seen while polling are kept"
    assert {event["stage"] for event in events} <= set(Stage.PCT) | {Stage.GENERATION}
    assert [event["pct"] for event in events] == sorted(event["pct"] for event in events)


def test_a_running_job_can_be_cancelled(endpoint: Settings, tmp_path: Path) -> None:
    client, catalog = StudioClient(endpoint), Catalog(tmp_path / "catalog.db")
    speech = LONG_SPEECH
    long_job = {**example_job("cancel me", mode="streaming"), "cond_audio": None, "tts_audio": {"text": speech}}
    job_id = submit(client, catalog, long_job, endpoint.endpoint_id)
    deadline = time.monotonic() + 60
    while catalog.get(job_id)["status"] != JobStatus.IN_PROGRESS:  # type: ignore[index]
        assert time.monotonic() < deadline
        poll(client, catalog, catalog.get(job_id))  # type: ignore[arg-type]
        time.sleep(0.2)

    cancel(client, catalog, catalog.get(job_id))  # type: ignore[arg-type]
    run = _follow(client, catalog, job_id)

    assert run["status"] == JobStatus.CANCELLED
    assert catalog.unfinished() == []


def test_a_job_the_endpoint_forgot_can_be_marked_lost(endpoint: Settings, tmp_path: Path) -> None:
    client, catalog = StudioClient(endpoint, attempts=1), Catalog(tmp_path / "catalog.db")
    catalog.record_submission("local-gone", example_job("forgotten"), endpoint_id=endpoint.endpoint_id)

    result = poll(client, catalog, catalog.get("local-gone"))  # type: ignore[arg-type]
    assert result.lost and "not found" in (result.problem or "")
    assert catalog.get("local-gone")["status"] == JobStatus.IN_QUEUE  # type: ignore[index]

    mark_lost(catalog, "local-gone")
    run = catalog.get("local-gone")
    assert run is not None
    assert (run["status"], run["error_code"]) == (JobStatus.FAILED, ErrorCode.WORKER_LOST)


def test_a_finished_batch_becomes_one_run_per_item(endpoint: Settings, tmp_path: Path) -> None:
    client, catalog = StudioClient(endpoint), Catalog(tmp_path / "catalog.db")
    batch = {"batch": [{**example_job("first item"), "id": "a"}, {**example_job("second item"), "id": "b"}]}
    job_id = submit(client, catalog, batch, endpoint.endpoint_id)

    _follow(client, catalog, job_id)

    assert {catalog.get(f"{job_id}:{item}")["status"] for item in "ab"} == {JobStatus.COMPLETED}  # type: ignore[index]
    assert search(catalog, Query(text="second")).rows[0]["run_id"] == f"{job_id}:b"


def test_the_live_view_shows_stage_chunk_frames_eta_and_log(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.record_submission("j1", example_job("live view"), endpoint_id="local")
    catalog.apply_status("j1", JobStatus.IN_PROGRESS, progress={"stage": Stage.VALIDATION_OK, "pct": 2, "details": {}})
    payload = {"stage": "generation", "pct": 52.5, "details": {"done": 40, "total": 81, "chunk": 2, "chunks": 3}}
    catalog.apply_status("j1", JobStatus.IN_PROGRESS, progress=payload)
    run = catalog.get("j1")
    assert run is not None
    now = dt.datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")) + dt.timedelta(seconds=21)

    view = live_view(run, catalog.progress_events("j1"), now)

    assert (view.stage, view.pct, view.chunk, view.frames) == (
        "Generating: clip 2 of 3, progress 40 of 81",
        52.5,
        (2, 3),
        (40, 81),
    ), "the progress bar says the stage in words, as the log does"
    assert view.elapsed_s == pytest.approx(21.0, abs=0.01)
    assert view.eta_s == pytest.approx(21.0 * 47.5 / 52.5, abs=0.01)
    assert len(view.log) == 2 and view.log[-1].endswith("Generating: clip 2 of 3, progress 40 of 81")


def test_eta_waits_for_a_pace_and_stops_at_the_end() -> None:
    assert eta_seconds(None, 50) is None
    assert eta_seconds(10, 1) is None
    assert eta_seconds(10, 100) is None
    assert eta_seconds(10, 25) == 30


def test_polling_backs_off_while_nothing_changes_and_speeds_up_on_change() -> None:
    backoff = Backoff(start_s=0.5, max_s=10.0)
    assert backoff.due(now=0.0)
    intervals = []
    for step in range(12):
        backoff.record(changed=False, now=float(step))
        intervals.append(backoff.interval_s)
    assert intervals[0] == 0.5 and intervals[1] == 0.75 and intervals[-1] == 10.0
    assert not backoff.due(now=11.0 + 9.9) and backoff.due(now=11.0 + 10.0)
    backoff.record(changed=True, now=30.0)
    assert backoff.interval_s == 0.5


def _catalogue_with_runs(path: Path) -> Catalog:
    catalog = Catalog(path)
    for index, (prompt, size, steps, status) in enumerate(
        [
            ("an astronaut in orange", "infinitetalk-480", 8, JobStatus.COMPLETED),
            ("a sailor on deck", "infinitetalk-720", 40, JobStatus.COMPLETED),
            ("an astronaut waving", "infinitetalk-720", 8, JobStatus.FAILED),
        ]
    ):
        job = example_job(prompt, size=size, sample_steps=steps)
        catalog.record_submission(f"j{index}", job, endpoint_id="local", created_at=f"2030-01-0{index + 1}T12:00:00Z")
        error = {"code": ErrorCode.OOM, "message": "out of memory"} if status == JobStatus.FAILED else None
        catalog.apply_status(f"j{index}", status, error=error, delay_ms=100 * index, execution_ms=1000 + index)
    return catalog


def test_history_search_combines_words_facets_dates_favourites_and_tags(tmp_path: Path) -> None:
    catalog = _catalogue_with_runs(tmp_path / "catalog.db")
    catalog.set_favourite("j1", True)
    catalog.set_tags("j2", parse_tags("Retry, gpu ,"))

    words = search(catalog, Query(text="astronaut"))
    assert {row["run_id"] for row in words.rows} == {"j0", "j2"}
    assert words.facets["size"] == {"infinitetalk-480": 1, "infinitetalk-720": 1}
    assert search(catalog, Query(text="astronaut", facets={"status": [JobStatus.FAILED]})).total == 1
    assert search(catalog, Query(date_from=dt.date(2030, 1, 2), date_to=dt.date(2030, 1, 2))).total == 1
    assert [r["run_id"] for r in search(catalog, Query(favourites=True)).rows] == ["j1"]
    assert [r["run_id"] for r in search(catalog, Query(tag="GPU")).rows] == ["j2"]
    assert [r["run_id"] for r in search(catalog, Query(sort="oldest")).rows] == ["j0", "j1", "j2"]
    assert search(catalog, Query(page=2), per_page=2).rows[0]["run_id"] == "j0"


def test_facet_choices_keep_the_selection_even_when_nothing_matches_it(tmp_path: Path) -> None:
    catalog = _catalogue_with_runs(tmp_path / "catalog.db")
    result = search(catalog, Query(text="sailor"))
    assert facet_options(result, "sample_steps", [8]) == [40, 8]


def test_the_detail_tables_read_well() -> None:
    rows = params_rows({"prompt": "p", "cond_audio": {"person1": "data:audio/wav;base64," + "A" * 500}})
    assert rows[0] == {"parameter": "cond_audio.person1", "value": rows[0]["value"]}
    assert rows[0]["value"].endswith("(522 characters)")
    timings = timing_rows({"total_ms": 900, "upload_ms": 100, "validate_ms": 5, "generate_ms": 700})
    assert timings == [
        {"stage": "validate", "seconds": 0.005},
        {"stage": "generate", "seconds": 0.7},
        {"stage": "upload", "seconds": 0.1},
    ]


def test_health_series_come_from_samples_and_finished_runs(tmp_path: Path) -> None:
    catalog = _catalogue_with_runs(tmp_path / "catalog.db")
    for minute, queued in enumerate([0, 3, 1]):
        catalog.record_health_sample(
            "local",
            {"jobs": {"inQueue": queued, "inProgress": 1}, "workers": {"idle": 0, "running": 1, "initializing": 1}},
            at=f"2030-01-03T12:0{minute}:00.000Z",
        )
    samples = health_logic.samples_frame(catalog.health_samples("local"))
    assert samples["in_queue"].tolist() == [0, 3, 1]
    assert samples["workers_other"].tolist() == [1, 1, 1]

    runs = health_logic.recent_finished(catalog, "local")
    assert len(runs) == 3
    bucket = health_logic.bucket_for(runs)
    assert bucket == "5min", "runs finished moments apart are charted in short buckets"
    percentiles = health_logic.latency_percentiles(runs, bucket)
    assert percentiles["p50 (s)"].tolist() == pytest.approx([1.101], abs=0.001)
    rates = health_logic.failure_rates(runs, bucket)
    assert list(rates.columns) == [ErrorCode.OOM]
    assert rates[ErrorCode.OOM].tolist() == pytest.approx([1 / 3])
    delays = health_logic.delay_vs_execution(runs)
    assert delays["queue delay (s)"].tolist() == [0.0, 0.1, 0.2]


def test_health_series_of_an_empty_catalogue_are_empty(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    assert health_logic.samples_frame([]).empty
    runs = health_logic.recent_finished(catalog, "local")
    assert runs.empty
    assert health_logic.latency_percentiles(runs, "1h").empty
    assert health_logic.failure_rates(runs, "1h").empty
