"""The Endpoint health page: workers and jobs now, and charts from stored samples and finished runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from catalog import Catalog
from core.contract import ErrorCode, JobStatus
from dashboard import views
from tests.dashboard_support import dashboard_env, example_job, local_endpoint, open_page, texts

ORANGES_AND_REDS = {"#ff8700", "#ffa421", "#ff2b2b", "#ff4b4b", "orange", "red", "#f58518"}


def _with_history(catalog: Catalog) -> None:
    for index, failure in enumerate([None, None, ErrorCode.OOM, ErrorCode.TIMEOUT]):
        catalog.record_submission(f"h{index}", example_job(f"health {index}"), endpoint_id="local")
        status = JobStatus.COMPLETED if failure is None else JobStatus.FAILED
        error = {"code": failure, "message": "it broke"} if failure else None
        catalog.apply_status(f"h{index}", status, error=error, delay_ms=200 * index, execution_ms=3000 + index)


def test_the_page_shows_workers_and_jobs_and_keeps_a_sample_each_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_endpoint(tmp_path / "data") as env:
        dashboard_env(monkeypatch, tmp_path / "data", int(env["STUDIO_LOCAL_PORT"]))
        catalog = Catalog(tmp_path / "data" / "catalog.db")
        _with_history(catalog)
        at = open_page("health")
        at.run()

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Idle"] == "1" and metrics["Running"] == "0"
    assert metrics["In queue"] == "0" and metrics["Failed"] == "0"
    assert len(catalog.health_samples("local")) >= 3, "the sidebar and each refresh of the page keep a sample"
    charts = at.get("vega_lite_chart")
    assert len(charts) == 5, "queue depth, delay vs execution, workers, latency percentiles, failure rate"
    failures = {row["error code"]: row["failed jobs"] for row in at.dataframe[0].value.to_dict("records")}
    assert failures == {ErrorCode.OOM: 1, ErrorCode.TIMEOUT: 1}


def test_an_unreachable_endpoint_is_reported_and_stored_history_is_still_charted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, tmp_path / "data")
    catalog = Catalog(tmp_path / "data" / "catalog.db")
    _with_history(catalog)
    at = open_page("health")

    assert any(e.value.startswith("The endpoint did not answer: cannot reach the endpoint") for e in at.error)
    assert "No samples yet" in texts(at)
    assert len(at.get("vega_lite_chart")) == 3, "delay vs execution, latency percentiles, failure rate"
    assert catalog.health_samples("local") == []


def test_with_no_finished_jobs_the_charts_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard_env(monkeypatch, tmp_path / "data")
    at = open_page("health")
    assert "No finished jobs in this window." in texts(at)
    assert "No failures in this window." in texts(at)


def _spec(chart: object) -> dict:
    spec = json.loads(chart.proto.spec)  # type: ignore[attr-defined]
    return spec


def test_the_charts_read_at_a_glance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: time labels repeated, failure bars were slivers at the edge, idle workers were alarm orange."""
    with local_endpoint(tmp_path / "data") as env:
        dashboard_env(monkeypatch, tmp_path / "data", int(env["STUDIO_LOCAL_PORT"]))
        _with_history(Catalog(tmp_path / "data" / "catalog.db"))
        at = open_page("health")
        at.run()
    specs = [_spec(chart) for chart in at.get("vega_lite_chart")]
    for spec in specs:
        x = spec["encoding"]["x"]
        start, end = x["scale"]["domain"]
        assert pd.Timestamp(end) - pd.Timestamp(start) == pd.Timedelta(hours=1), "the axis spans the chosen window"
        assert x["axis"]["format"] == "%H:%M", "an hour's ticks are minutes, each label different"
    workers = next(spec for spec in specs if spec["encoding"]["y"]["title"] == "workers")
    scale = workers["encoding"]["color"]["scale"]
    colours = dict(zip(scale["domain"], scale["range"], strict=True))
    assert colours["idle"] == views.SERIES_COLOURS["idle"] and colours["idle"].lower() not in ORANGES_AND_REDS
    failures = next(spec for spec in specs if spec["mark"]["type"] == "bar")
    assert failures["encoding"]["x2"]["field"] == "end", "each bar is as wide as the 5 minutes it counts"
    assert "Failure rate by error code** (share of finished jobs, per 5 minutes)" in " ".join(
        m.value for m in at.markdown
    )


def test_tick_labels_change_with_the_span() -> None:
    assert views.time_format(pd.Timedelta(minutes=5)) == "%H:%M:%S"
    assert views.time_format(pd.Timedelta(hours=1)) == "%H:%M"
    assert views.time_format(pd.Timedelta(days=7)) == "%a %d %b"


H100 = {"name": "NVIDIA H100 80GB HBM3", "count": 1}


def _cancelled(catalog: Catalog, job_id: str, execution_ms: int | None, gpu: dict | None = None) -> None:
    """A job cancelled as RunPod's /status reports it: an execution time and no output. One that ran was seen
    running first, its worker's progress payload naming `gpu` (or, from an older worker, nothing)."""
    catalog.record_submission(job_id, example_job(job_id), endpoint_id="local")
    if execution_ms:
        progress = {"stage": "generation", "pct": 40.0, **({"gpu": gpu} if gpu else {})}
        catalog.apply_status(job_id, JobStatus.IN_PROGRESS, progress=progress)
    catalog.apply_status(job_id, JobStatus.CANCELLED, execution_ms=execution_ms, delay_ms=300)


def _chart_data(at: object, y_title: str) -> pd.DataFrame:
    """The data a chart draws (its one dataset, sent to the browser as Arrow), by its y axis's title."""
    for chart in at.get("vega_lite_chart"):  # type: ignore[attr-defined]
        if _spec(chart)["encoding"]["y"]["title"] == y_title:
            (dataset,) = chart.proto.datasets
            return pa.ipc.open_stream(dataset.data.data).read_pandas()
    raise AssertionError(f"no chart of {y_title}")


def test_the_money_charts_count_cancelled_jobs_priced_where_known_and_their_gpu_time_where_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 29 item 13: a cancelled job that ran used a worker, so it is spending; never a guessed figure."""
    dashboard_env(monkeypatch, tmp_path / "data")
    catalog = Catalog(tmp_path / "data" / "catalog.db")
    catalog.record_submission("done", example_job("done"), endpoint_id="local")
    output = {"status": "success", "job_id": "done", "engine": {"name": "infinitetalk"}, "gpu": H100}
    catalog.apply_status("done", JobStatus.COMPLETED, output=output, execution_ms=100_000)
    _cancelled(catalog, "named", 40_000, H100)
    _cancelled(catalog, "silent", 95_000)
    _cancelled(catalog, "queued", None)
    at = open_page("health")
    spend = _chart_data(at, "dollars").pivot_table(index="series", values="value", aggfunc="sum")["value"]
    assert spend.to_dict() == {"finished jobs": pytest.approx(0.116), "cancelled jobs": pytest.approx(0.0464)}
    shown = texts(at)
    assert "Spent in this window: $0.16" in shown, "100 s and 40 s on an H100, the cancelled job included"
    assert "Counted above: 1 cancelled job, 40 s of GPU time, $0.05 (priced 1 by the GPU its worker reported)." in shown
    assert "1 cancelled job, 95 s of GPU time, not priced: RunPod does not say which GPU ran them." in shown, (
        "the job cancelled while queued used no worker and is not counted"
    )
