"""Health prices a job cancelled on RunPod by its endpoint's configuration when that allows one GPU type (issue 29
item 13): RunPod's /status answer for a cancelled job names no GPU, but an endpoint whose pools, less its excluded
types, hold a single type (by RunPod's GPU catalogue) ran it on that one. Where several types are allowed the job
is counted with its GPU time and left unpriced, in the charts and beside RunPod's bill."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from client.runpod_rest import RunPodRest
from core.contract import JobStatus
from tests.dashboard_support import dashboard_env, example_job, open_page, texts
from tests.runpod_rest_server import SAMPLE_ENDPOINT, RunPodV2Server, billing_record
from tests.s3server import free_port
from tests.test_dashboard_health import _chart_data

KEY = "rpa_CANCELLEDKEY0123456789"
H100_SXM_PER_HOUR = 4.18
"""The test server's catalogue price of `NVIDIA H100 80GB HBM3` (H100 SXM, pool ADA_80_PRO)."""
ONE_TYPE = {**SAMPLE_ENDPOINT["gpu"], "count": 2, "excludedTypes": ["NVIDIA H100 PCIe", "NVIDIA H100 NVL"]}


@pytest.fixture
def runpod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunPodV2Server, str, Catalog]]:
    """A RunPod endpoint on two H100 SXM per worker (pool ADA_80_PRO less its other two types) with a bill for
    today, the dashboard configured for it, and one job cancelled there after 95 s of execution."""
    with RunPodV2Server(KEY) as server:
        endpoint = RunPodRest(KEY, server.url).create_endpoint({**SAMPLE_ENDPOINT, "gpu": ONE_TYPE})
        server.billing = [billing_record(endpoint.id, str(dt.datetime.now(dt.UTC).date()), 1.0)]
        dashboard_env(monkeypatch, tmp_path / "data")
        monkeypatch.setenv("RUNPOD_ENDPOINT_ID", endpoint.id)
        monkeypatch.setenv("RUNPOD_API_KEY", KEY)
        monkeypatch.setenv("RUNPOD_REST_BASE_URL", server.url)
        monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"http://127.0.0.1:{free_port()}/v2")
        catalog = Catalog(tmp_path / "data" / "catalog.db")
        run_id = catalog.record_submission("stopped", example_job("stopped"), endpoint_id=endpoint.id)
        catalog.apply_status(run_id, JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 30.0})
        catalog.apply_status(run_id, JobStatus.CANCELLED, execution_ms=94_200, delay_ms=800)
        assert catalog.get(run_id)["cost_usd"] is None, "the catalogue itself never guesses"
        yield server, endpoint.id, catalog


def _runs_cost_beside_the_bill(at: object) -> float:
    for frame in at.dataframe:  # type: ignore[attr-defined]
        if "runs' cost ($)" in frame.value.columns:
            return float(frame.value["runs' cost ($)"].sum())
    raise AssertionError("no bill table on the page")


def test_a_job_cancelled_on_an_endpoint_of_one_gpu_type_is_priced_on_it(
    runpod: tuple[RunPodV2Server, str, Catalog],
) -> None:
    at = open_page("health")
    cost = round(95 * H100_SXM_PER_HOUR / 3600 * 2, 6)
    spend = _chart_data(at, "dollars").set_index("series")["value"]
    assert spend.to_dict() == {"cancelled jobs": pytest.approx(cost)}
    shown = texts(at)
    assert (
        "Counted above: 1 cancelled job, 95 s of GPU time, $0.22 (priced 1 by the endpoint's only GPU type, H100 SXM)."
        in shown
    )
    assert "not priced" not in shown
    assert _runs_cost_beside_the_bill(at) == pytest.approx(cost), "RunPod's bill is set beside it too"


def test_on_an_endpoint_allowing_several_gpu_types_a_cancelled_job_is_counted_but_never_priced(
    runpod: tuple[RunPodV2Server, str, Catalog],
) -> None:
    server, endpoint_id, _ = runpod
    RunPodRest(KEY, server.url).update_endpoint(endpoint_id, {"gpu": {"pools": ["ADA_80_PRO"]}})  # all three types
    at = open_page("health")
    shown = texts(at)
    assert "1 cancelled job, 95 s of GPU time, not priced: RunPod does not say which GPU ran them." in shown
    assert "No priced runs in this window." in shown, "no chart of a guessed figure"
    assert "The gap also holds 1 cancelled job (95 s of GPU time) that no price could be put on" in shown
    assert _runs_cost_beside_the_bill(at) == 0.0
