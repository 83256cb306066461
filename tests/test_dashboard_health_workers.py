"""Endpoint health shows the endpoint as RunPod sees it (issue 26, parts 2 and 4): each worker from
GET /v2/serverless/{id}/workers (status, GPU, data center, how long up, a stale image after a redeploy), a worker's
recent log lines one click away (as text, never Markdown), and what RunPod billed per day beside the runs' own
costs with the gap said in words. The same page reads the local endpoint's own worker processes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from client.runpod_rest import RunPodRest
from core.contract import JobStatus
from core.prices import PriceTable
from dashboard.health import read_log
from tests.dashboard_support import dashboard_env, local_endpoint, open_page, texts
from tests.runpod_rest_server import SAMPLE_ENDPOINT as ENDPOINT
from tests.runpod_rest_server import RunPodV2Server, billing_record, log_line, worker
from tests.s3server import free_port

KEY = "rpa_HEALTHKEY0123456789"
HOSTILE = "**not bold** [a link](http://evil.example/x) ![beacon](http://evil.example/b.png) <b>tag</b>"
MISSING = "E_PIPELINE_LOAD: missing /runpod-volume/models/Wan2.1-I2V-14B-480P/config.json (set CKPT_DIR)"


def _workers_table(at: AppTest) -> list[dict]:
    for frame in at.dataframe:
        value = frame.value
        if "worker" in value.columns:
            return value.to_dict("records")  # type: ignore[no-any-return]
    raise AssertionError("no worker table on the page")


def _show_log(at: AppTest, worker_id: str) -> AppTest:
    at.selectbox(key="health.log_worker").select(worker_id).run()
    at.button(key="health.log_show").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def runpod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunPodV2Server, str]]:
    """A RunPod account (the loopback v2 server) with one endpoint, redeployed once, two workers on it (one still
    on the old version), logs and a bill; the dashboard configured for it."""
    with RunPodV2Server(KEY) as server:
        rest = RunPodRest(KEY, server.url)
        endpoint = rest.create_endpoint(ENDPOINT)
        rest.update_endpoint(endpoint.id, {"workers": {"max": 3}})  # a redeploy: version 2
        version = server.version(endpoint.id)
        server.workers[endpoint.id] = [
            worker("w-new", "RUNNING", version=version, uptime_s=3 * 3600 + 300, data_center="EU-RO-1"),
            worker("w-old", "IDLE", version=version - 1, uptime_s=45, data_center="US-KS-2"),
        ]
        server.logs["w-new"] = [
            log_line("2026-12-07T10:00:00Z", "Loading weights from /runpod-volume/models"),
            log_line("2026-12-07T10:00:01Z", MISSING),
            log_line("2026-12-07T10:00:02Z", HOSTILE),
        ]
        server.logs_stay_open = False
        today = dt.datetime.now(dt.UTC).date()
        server.billing = [
            billing_record(endpoint.id, str(today - dt.timedelta(days=1)), 3.0, disk=0.1, fee=0.2),
            billing_record(endpoint.id, str(today), 1.0),
        ]
        dashboard_env(monkeypatch, tmp_path / "data")
        monkeypatch.setenv("RUNPOD_ENDPOINT_ID", endpoint.id)
        monkeypatch.setenv("RUNPOD_API_KEY", KEY)
        monkeypatch.setenv("RUNPOD_REST_BASE_URL", server.url)
        monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"http://127.0.0.1:{free_port()}/v2")
        yield server, endpoint.id


def test_runpods_workers_their_staleness_and_a_log_tail_shown_as_text(runpod: tuple[RunPodV2Server, str]) -> None:
    server, endpoint_id = runpod
    at = open_page("health")
    rows = {row["worker"]: row for row in _workers_table(at)}
    assert rows["w-new"] == {
        "worker": "w-new", "status": "running", "GPU": "NVIDIA H100 80GB HBM3", "data center": "EU-RO-1",
        "up for": "3 h 5 min", "started": "2026-12-01 10:00:00 UTC", "stale image": "no",
        "image": "docker.io/you/infinitetalk-worker:1.0",
    }  # fmt: skip
    assert rows["w-old"]["stale image"] == "yes: version 1 of 2" and rows["w-old"]["up for"] == "45 s"
    page = texts(at)
    assert "Workers, as RunPod lists them" in page and "2 active workers: 1 running, 1 idle" in page
    assert "1 worker runs an older configuration of the endpoint" in page

    _show_log(at, "w-new")
    (code,) = at.code
    assert code.value.splitlines() == [
        "2026-12-07 10:00:00  Loading weights from /runpod-volume/models",
        f"2026-12-07 10:00:01  {MISSING}",
        f"2026-12-07 10:00:02  {HOSTILE}",
    ]
    assert "evil.example" not in texts(at), "a log line is never Markdown"
    logs = [c for c in server.calls if c.path.endswith("/logs")]
    assert logs and logs[-1].path == f"/v2/serverless/{endpoint_id}/workers/w-new/logs"


def test_runpods_bill_beside_the_runs_cost_and_the_gap_in_words(
    tmp_path: Path, runpod: tuple[RunPodV2Server, str]
) -> None:
    server, endpoint_id = runpod
    catalog = Catalog(tmp_path / "data" / "catalog.db", PriceTable())
    run_id = catalog.record_submission("paid", {"prompt": "x"}, endpoint_id=endpoint_id)
    output = {"status": "success", "job_id": "paid", "engine": {"name": "infinitetalk", "version": "1"}}
    output["gpu"] = {"name": "NVIDIA H100 80GB HBM3", "count": 1}
    catalog.apply_status(run_id, JobStatus.COMPLETED, output=output, execution_ms=359_500)  # 360 s at $0.00116
    at = open_page("health")
    billed = next(f.value for f in at.dataframe if "billed by RunPod ($)" in f.value.columns)
    assert list(billed["billed by RunPod ($)"]) == [3.0, 1.0]
    assert list(billed["runs' cost ($)"]) == pytest.approx([0.0, 360 * 0.00116])
    words = " ".join(i.value for i in at.info)
    assert "Over these 2 days RunPod billed $4.00 ($3.70 of it GPU time)" in words
    assert "the runs the catalogue knows cost $0.42 at the prices shown" in words
    assert "is GPU time that ran no job: cold starts" in words and "idle time" in words
    assert (
        "At H100 PRO's price that is about 47 min of worker time" in words and "The other $0.30 is disk, CPU" in words
    )
    bills = [c for c in server.calls if c.path == "/v2/billing/serverless"]
    assert bills and bills[-1].query["serverlessId"] == [endpoint_id] and bills[-1].query["lastN"] == ["7"]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert f"RunPod's GPU catalogue (GET /v2/catalog/gpus), read {today}" in texts(at), "the price's date is shown"


def test_a_refused_list_or_log_is_one_warning_with_the_reason_as_text(runpod: tuple[RunPodV2Server, str]) -> None:
    server, endpoint_id = runpod
    lines, problem = read_log(RunPodRest(KEY, server.url), endpoint_id, "nobody")
    assert lines == [] and problem is not None and "404" in problem and "\n" not in problem
    server.workers[endpoint_id] = []
    at = open_page("health")
    assert "No worker is up: the endpoint has scaled to zero" in texts(at)
    server.workers.pop(endpoint_id)
    server.endpoints.pop(endpoint_id)
    at.run()
    assert "The worker list could not be read." in texts(at)
    assert any("404" in t.value for t in at.text), "the server's reason, as text"


def test_the_local_endpoint_shows_its_worker_processes_and_their_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_endpoint(tmp_path / "data") as env:
        dashboard_env(monkeypatch, tmp_path / "data", int(env["STUDIO_LOCAL_PORT"]))
        at = open_page("health")
        (row,) = _workers_table(at)
        assert row["status"] == "idle" and row["data center"] == "local" and row["GPU"] == "none (CPU)"
        assert row["stale image"] == "no" and row["worker"].isdigit()
        assert "Workers: the local endpoint's processes" in texts(at)
        _show_log(at, row["worker"])
        (code,) = at.code
        assert '"msg": "worker started; loading the engine"' in code.value
        assert '"msg": "engine loaded"' in code.value
    assert "The local endpoint bills nothing" in texts(at)
