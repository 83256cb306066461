"""What runs cost, in the catalogue: the GPU from the result or metadata.json, `cost_usd` priced when a run
finishes, the version 9 migration, sorting by cost and the sum for a search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import Catalog, sync
from catalog.schema import SCHEMA_VERSION
from catalog.spending import spent_runs
from core.contract import JobStatus
from core.prices import PriceTable
from core.settings import Settings
from core.store import LocalStore
from tests.conftest import SHORT_JOB
from tests.test_catalog_schema import file_at_version
from tests.test_catalog_sync import metadata, publish
from worker.pipeline import run_job

H100 = {"name": "NVIDIA H100 80GB HBM3", "count": 1}


def _finished_on_gpu(
    catalog: Catalog, job_id: str, execution_ms: int, gpu: dict | None = H100, **params: object
) -> str:
    """A job recorded at submit, then finished as RunPod's /status reports it (executionTime and the output)."""
    run_id = catalog.record_submission(job_id, {"prompt": f"job {job_id}", **params}, endpoint_id="runpod-abc")
    output = {"status": "success", "job_id": job_id, "engine": {"name": "infinitetalk", "version": "1"}}
    output |= {"timings": {"total_ms": execution_ms - 2000}, "params": {"prompt": f"job {job_id}"}}
    if gpu is not None:
        output["gpu"] = gpu
    catalog.apply_status(run_id, JobStatus.COMPLETED, output=output, execution_ms=execution_ms, delay_ms=500)
    return run_id


def test_a_finished_run_costs_its_billed_seconds_on_its_gpu(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    run_id = _finished_on_gpu(catalog, "paid", 100_400)
    run = catalog.get(run_id)
    assert (run["gpu_name"], run["gpu_count"]) == ("NVIDIA H100 80GB HBM3", 1)
    assert run["cost_usd"] == pytest.approx(101 * 0.00116), "101 whole seconds at RunPod's H100 flex price"
    active = Catalog(tmp_path / "active.db", PriceTable(tier="active"))
    assert active.get(_finished_on_gpu(active, "paid", 100_400))["cost_usd"] == pytest.approx(101 * 0.00093)


def test_a_run_without_a_recorded_gpu_has_no_cost_rather_than_a_guess(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    assert catalog.get(_finished_on_gpu(catalog, "old-worker", 50_000, gpu=None))["cost_usd"] is None
    queued = catalog.record_submission("queued", {"prompt": "q"}, endpoint_id="runpod-abc")
    assert catalog.get(queued)["cost_usd"] is None, "an unfinished run has no cost yet"


def test_a_preview_run_through_the_real_pipeline_records_no_gpu_and_costs_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, input_roots=(Path(SHORT_JOB["cond_video"]).parent,))
    catalog = Catalog(settings.catalog_file)
    catalog.record_submission("preview-1", SHORT_JOB, endpoint_id="local")
    output = run_job(SHORT_JOB, "preview-1", settings=settings, sink=lambda _: None, endpoint_id="local")
    assert output["gpu"] == {"name": "cpu", "count": 0}
    catalog.attach_result("preview-1", output)
    run = catalog.get("preview-1")
    assert (run["gpu_name"], run["cost_usd"]) == ("cpu", 0.0)
    written = json.loads(LocalStore(settings.artifact_dir).get(output["metadata"]["key"]))
    assert written["gpu"] == {"name": "cpu", "count": 0}, "metadata.json carries the GPU for a rebuilt catalogue"


def test_a_synced_metadata_file_brings_its_gpu_and_is_priced_from_the_workers_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    publish(store, metadata("synced", gpu={"name": "NVIDIA A100-SXM4-80GB", "count": 2}))
    catalog = Catalog(tmp_path / "catalog.db")
    sync(catalog, store)
    run = catalog.get("synced")
    assert (run["gpu_name"], run["gpu_count"]) == ("NVIDIA A100-SXM4-80GB", 2)
    assert run["cost_usd"] == pytest.approx(65 * 0.00076 * 2), "total_ms 65 000 on two A100s"


def test_an_older_catalogue_migrates_to_version_9_with_preview_runs_free_and_others_unknown(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = file_at_version(path, 8)
    base = {"status": "COMPLETED", "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z"}
    old["runs"].insert({**base, "run_id": "free", "job_id": "free", "engine": "preview", "tags": "", "favourite": 0})
    old["runs"].insert({**base, "run_id": "gpu", "job_id": "gpu", "engine": "infinitetalk", "tags": "", "favourite": 0})
    old.conn.close()
    catalog = Catalog(path)
    assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 9
    assert catalog.get("free")["cost_usd"] == 0.0
    assert catalog.get("gpu")["cost_usd"] is None


def test_runs_sort_by_cost_and_a_search_sums_what_its_runs_cost(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    _finished_on_gpu(catalog, "cheap", 10_000, size="infinitetalk-480")
    _finished_on_gpu(catalog, "dear", 1_000_000, size="infinitetalk-720")
    _finished_on_gpu(catalog, "middle", 100_000, size="infinitetalk-720")
    catalog.record_submission("queued", {"prompt": "job queued", "size": "infinitetalk-720"}, endpoint_id="runpod-abc")
    assert [r["run_id"] for r in catalog.search("", sort="costliest").rows] == ["dear", "middle", "cheap", "queued"]
    assert [r["run_id"] for r in catalog.search("", sort="cheapest").rows] == ["cheap", "middle", "dear", "queued"]
    everything = catalog.cost_total()
    assert everything.usd == pytest.approx((10 + 1000 + 100) * 0.00116)
    assert (everything.priced, everything.runs) == (3, 4)
    big = catalog.cost_total(size="infinitetalk-720")
    assert big.usd == pytest.approx(1100 * 0.00116) and (big.priced, big.runs) == (2, 3)
    assert catalog.cost_total("middle").usd == pytest.approx(100 * 0.00116), "the words narrow the sum too"
    assert catalog.cost_total("nothing matches this").runs == 0
    spent = spent_runs(catalog, "runpod-abc")
    assert sorted(round(row["cost_usd"], 4) for row in spent) == sorted(round(s * 0.00116, 4) for s in (10, 1000, 100))


def test_stats_say_what_everything_cost(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    _finished_on_gpu(catalog, "one", 10_000)
    _finished_on_gpu(catalog, "two", 20_000)
    assert catalog.stats()["cost_usd"] == pytest.approx(30 * 0.00116)
