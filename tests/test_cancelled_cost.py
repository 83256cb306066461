"""A cancelled job that ran used a worker (issue 29 item 13): its GPU time is counted, and its cost where it is
known exactly (the preview engine; a GPU its worker named on a progress payload; an endpoint whose configuration
allows one GPU type), never a guessed dollar figure where it is not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from catalog.spending import spent_runs
from core.contract import JobStatus, Stage
from core.prices import (
    PREVIEW_PRICED,
    WORKER_REPORTED,
    CatalogPrices,
    PriceTable,
    cancelled_cost,
    only_gpu_type,
)
from core.settings import Settings
from tests.conftest import SHORT_JOB
from tests.runpod_rest_server import default_gpus
from worker.pipeline import run_job

H100 = {"name": "NVIDIA H100 80GB HBM3", "count": 1}
READ = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _catalogue() -> CatalogPrices:
    """RunPod's GPU catalogue as the v2 test server answers it."""
    return CatalogPrices.from_answer(default_gpus(), READ)


def _cancelled(catalog: Catalog, job_id: str, execution_ms: int | None, progress: dict[str, Any] | None) -> str:
    """A job seen running (with `progress` as its last payload), then cancelled as RunPod's /status reports it:
    status CANCELLED, an execution time, no output."""
    run_id = catalog.record_submission(job_id, {"prompt": job_id}, endpoint_id="runpod-abc")
    if progress is not None:
        catalog.apply_status(run_id, JobStatus.IN_PROGRESS, progress=progress)
    catalog.apply_status(run_id, JobStatus.CANCELLED, execution_ms=execution_ms, delay_ms=300)
    return run_id


def test_a_worker_names_its_gpu_on_every_payload_once_its_engine_is_loaded(tmp_path: Path) -> None:
    payloads: list[dict[str, Any]] = []
    settings = Settings(data_dir=tmp_path, input_roots=(Path(SHORT_JOB["cond_video"]).parent,))
    output = run_job(SHORT_JOB, "named", settings=settings, sink=payloads.append, endpoint_id="local")
    assert output["status"] == "success"
    stages = [p["stage"] for p in payloads]
    loaded = stages.index(Stage.PIPELINE_WARM_OK)
    assert all("gpu" not in p for p in payloads[:loaded]), "before the engine loads, CUDA has not been looked at"
    assert all(p["gpu"] == output["gpu"] == {"name": "cpu", "count": 0} for p in payloads[loaded:])


def test_a_run_cancelled_after_its_worker_named_its_gpu_is_priced_and_counted_in_every_total(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    named = _cancelled(catalog, "named", 40_400, {"stage": Stage.GENERATION, "pct": 40.0, "gpu": H100})
    silent = _cancelled(catalog, "silent", 95_000, {"stage": Stage.GENERATION, "pct": 40.0})
    run = catalog.get(named)
    assert (run["gpu_name"], run["cost_usd"]) == (H100["name"], pytest.approx(41 * 0.00116)), "41 s on an H100"
    assert catalog.get(silent)["cost_usd"] is None, "no GPU named: no cost rather than a guess"
    total = catalog.cost_total()
    assert (total.usd, total.priced, total.runs) == (pytest.approx(41 * 0.00116), 1, 2)
    assert catalog.stats()["cost_usd"] == pytest.approx(round(41 * 0.00116, 4))


def test_a_result_names_the_gpu_over_what_a_progress_payload_said(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    run_id = catalog.record_submission("both", {"prompt": "both"}, endpoint_id="runpod-abc")
    catalog.apply_status(run_id, JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 5, "gpu": H100})
    a100 = {"name": "NVIDIA A100-SXM4-80GB", "count": 2}
    output = {"status": "success", "job_id": "both", "engine": {"name": "infinitetalk"}, "gpu": a100}
    catalog.apply_status(run_id, JobStatus.COMPLETED, output=output, execution_ms=10_000)
    assert (catalog.get(run_id)["gpu_name"], catalog.get(run_id)["gpu_count"]) == (a100["name"], 2)


def test_the_money_charts_list_priced_runs_and_cancelled_runs_a_worker_took(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    _cancelled(catalog, "ran", 95_000, None)
    _cancelled(catalog, "named", 40_000, {"stage": Stage.GENERATION, "pct": 40.0, "gpu": H100})
    _cancelled(catalog, "queued", None, None)
    _cancelled(catalog, "queued-zero", 0, None)
    failed = catalog.record_submission("failed-old", {"prompt": "f"}, endpoint_id="runpod-abc")
    catalog.apply_status(failed, JobStatus.FAILED, execution_ms=5000, error={"code": "E_OOM", "message": "x"})
    catalog.record_submission("other-endpoint", {"prompt": "o"}, endpoint_id="elsewhere")
    listed = {row["run_id"]: row for row in spent_runs(catalog, "runpod-abc")}
    assert set(listed) == {"ran", "named"}, "queued cancels used no worker; an unpriced failure is not spending"
    assert listed["ran"]["cost_usd"] is None and listed["ran"]["execution_ms"] == 95_000
    assert spent_runs(catalog, "runpod-abc", since="2999-01-01T00:00:00Z") == []


def test_an_endpoint_allowing_one_gpu_type_names_it_and_one_allowing_several_names_none() -> None:
    prices = _catalogue()
    only = only_gpu_type(["ADA_80_PRO"], ["NVIDIA H100 PCIe", "NVIDIA H100 NVL"], prices)
    assert only is not None and (only.id, only.name) == ("NVIDIA H100 80GB HBM3", "H100 SXM")
    assert only_gpu_type(["ADA_24"], [], prices) is not None, "a pool of one type"
    assert only_gpu_type(["ADA_80_PRO"], ["NVIDIA H100 PCIe"], prices) is None, "two types left: either ran it"
    assert only_gpu_type(["ADA_24", "AMPERE_16"], [], prices) is None
    assert only_gpu_type(["ADA_80_PRO"], ["NVIDIA H100 PCIe", "NVIDIA H100 NVL"], None) is None, "no catalogue"


def test_a_cancelled_run_is_priced_only_where_its_price_is_known() -> None:
    table = PriceTable(catalog=_catalogue())
    only = only_gpu_type(["ADA_24"], [], table.catalog)
    unknown: dict[str, Any] = {"engine": None, "gpu_name": None, "cost_usd": None, "execution_ms": 95_000}
    assert cancelled_cost(unknown, table) == (None, None)
    assert cancelled_cost({**unknown, "cost_usd": 0.0464, "gpu_name": H100["name"]}, table) == (0.0464, WORKER_REPORTED)
    assert cancelled_cost({**unknown, "cost_usd": 0.0, "engine": "preview"}, table) == (0.0, PREVIEW_PRICED)
    usd, source = cancelled_cost(unknown, table, only, count=2)
    assert usd == round(95 * 1.10 / 3600 * 2, 6), "run_cost's rule: the catalogue's RTX 4090 price, 2 per worker"
    assert source == "the endpoint's only GPU type, RTX 4090"
    assert cancelled_cost({**unknown, "execution_ms": None}, table, only) == (None, None), "no time, no cost"
    odd = {**unknown, "gpu_name": "Some GPU nobody lists"}
    assert cancelled_cost(odd, table, only) == (None, None), "a GPU that was named is never replaced by a guess"
