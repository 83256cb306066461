"""The catalogue: every run recorded, updated safely, searchable, and rebuildable from the bucket."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog import Catalog, sync
from tests.conftest import EXAMPLES
from worker.contract import JobMetadata, JobStatus
from worker.pipeline import run_job
from worker.settings import Settings
from worker.store import LocalStore, open_store

PARAMS = {
    "prompt": "A woman greets the audience warmly",
    "cond_video": "/runpod-volume/in/face.jpg",
    "cond_audio": {"person1": "/runpod-volume/in/hello.wav"},
    "size": "infinitetalk-480",
    "mode": "streaming",
    "sample_steps": 40,
}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "catalog.db")


def result(job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": "success",
        "engine": {"name": "preview", "version": "1.0.0"},
        "video": {
            "key": f"jobs/{job_id}/video.mp4",
            "duration_s": 3.2,
            "width": 624,
            "height": 624,
            "frames": 80,
            "url": "https://expiring.example/v.mp4?X-Amz-Signature=abc",
        },
        "thumbnail": {"key": f"jobs/{job_id}/thumb.jpg"},
        "metadata": {"key": f"jobs/{job_id}/metadata.json"},
        "timings": {"generate_ms": 900, "total_ms": 1500},
        "params": {**PARAMS, "base_seed": 42},
        **extra,
    }


def test_a_submission_moves_through_progress_to_its_result(catalog: Catalog) -> None:
    catalog.record_submission("job-1", PARAMS, endpoint_id="local")
    catalog.apply_status("job-1", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 40.0}, delay_ms=120)
    catalog.apply_status("job-1", JobStatus.COMPLETED, output=result("job-1"), delay_ms=120, execution_ms=1500)

    run = catalog.get("job-1")
    assert run is not None
    assert run["status"] == JobStatus.COMPLETED and run["progress_pct"] == 100.0
    assert (run["size"], run["mode"], run["sample_steps"], run["speakers"], run["input_kind"]) == (
        "infinitetalk-480",
        "streaming",
        40,
        1,
        "image",
    )
    assert run["video_key"] == "jobs/job-1/video.mp4" and run["thumb_key"] == "jobs/job-1/thumb.jpg"
    assert "expiring" not in json.dumps(run), "keys are stored, never presigned URLs"
    assert run["timings"]["generate_ms"] == 900 and run["execution_ms"] == 1500
    assert [event["stage"] for event in catalog.progress_events("job-1")] == ["generation"]


def test_status_updates_are_idempotent_and_never_move_a_finished_run_back(catalog: Catalog) -> None:
    catalog.record_submission("job-2", PARAMS, endpoint_id="local")
    catalog.record_submission("job-2", {**PARAMS, "prompt": "changed"}, endpoint_id="local")
    assert catalog.apply_status("job-2", JobStatus.FAILED, error={"code": "E_OOM", "message": "out of memory"})

    assert not catalog.apply_status("job-2", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 50})
    assert not catalog.apply_status("job-2", JobStatus.COMPLETED)
    run = catalog.get("job-2")
    assert run["status"] == JobStatus.FAILED and run["error_code"] == "E_OOM"
    assert run["prompt"] == PARAMS["prompt"]


def test_a_batch_result_records_each_item_as_a_run(catalog: Catalog) -> None:
    catalog.record_submission("batch-1", {"batch": []}, endpoint_id="local")
    output = {
        "status": "partial",
        "job_id": "batch-1",
        "items": [
            {**result("batch-1"), "item_id": "a"},
            {
                "status": "error",
                "job_id": "batch-1",
                "item_id": "b",
                "error": {"code": "E_INPUT_VALIDATION", "message": "x"},
            },
        ],
    }
    assert catalog.attach_result("batch-1", output) == ["batch-1:a", "batch-1:b"]
    assert catalog.get("batch-1:a")["status"] == JobStatus.COMPLETED
    assert catalog.get("batch-1:b")["error_code"] == "E_INPUT_VALIDATION"


def test_search_finds_words_filters_and_counts_facets(catalog: Catalog) -> None:
    for index in range(30):
        params = {
            **PARAMS,
            "prompt": f"{'astronaut' if index % 3 == 0 else 'teacher'} number {index}",
            "size": "infinitetalk-720" if index % 2 else "infinitetalk-480",
            "sample_steps": 4 if index < 10 else 40,
        }
        catalog.record_submission(
            f"job-{index:02d}", params, endpoint_id="local", created_at=f"2026-11-{index % 28 + 1:02d}T10:00:00Z"
        )
        if index % 5 == 0:
            catalog.apply_status(
                f"job-{index:02d}", JobStatus.COMPLETED, output=result(f"job-{index:02d}", params=params)
            )
    catalog.set_tags("job-03", ["Launch", "best"])
    catalog.set_note("job-06", "use this one for the trailer")

    words = catalog.search("astronaut")
    assert words.total == 10
    assert catalog.search("astronaut", size="infinitetalk-480").total == 5
    assert catalog.search("", status=JobStatus.COMPLETED).total == 6
    assert catalog.search("launch").rows[0]["run_id"] == "job-03", "tags are searchable"
    assert catalog.search("trailer").rows[0]["run_id"] == "job-06", "notes are searchable"
    assert catalog.search("", tag="best").total == 1
    assert catalog.search("", created_from="2026-11-20", created_to="2026-11-30").total == 9
    facets = catalog.search("").facets
    assert facets["size"] == {"infinitetalk-480": 15, "infinitetalk-720": 15}
    assert facets["sample_steps"] == {40: 20, 4: 10}
    page = catalog.search("", per_page=7, page=5, sort="oldest")
    assert page.pages == 5 and len(page.rows) == 2


@pytest.mark.parametrize("query", ['"unbalanced', "AND", "NEAR(", "-", "*", "a:b", "((("])
def test_broken_search_syntax_falls_back_to_plain_words(catalog: Catalog, query: str) -> None:
    catalog.record_submission("job-x", {**PARAMS, "prompt": "unbalanced near quotes"}, endpoint_id="local")
    found = catalog.search(query)
    assert found.query_note is None or "search" in found.query_note


def test_user_edits_survive_a_sync_and_deletion_removes_the_artifacts(catalog: Catalog, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", input_roots=(EXAMPLES,))
    job = {
        "prompt": "sync me",
        "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
        "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
        "mode": "clip",
        "frame_num": 25,
    }
    output = run_job(job, "sync-1", settings=settings, sink=lambda _: None)
    store = LocalStore(settings.artifact_dir)
    assert sync(catalog, store).added == 1
    catalog.set_favourite("sync-1", True)

    assert sync(catalog, store).unchanged == 1
    assert catalog.get("sync-1")["favourite"] == 1
    catalog.delete("sync-1", store)
    assert catalog.get("sync-1") is None and not store.exists(output["video"]["key"])


def test_the_catalogue_rebuilds_from_the_bucket_skipping_corrupt_and_foreign_files(
    s3_settings: Settings, tmp_path: Path
) -> None:
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    job = {
        "prompt": "a bucket run",
        "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
        "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
        "mode": "clip",
        "frame_num": 25,
        "output_config": {"store": "s3"},
    }
    for job_id in ("b-1", "b-2"):
        assert run_job(job, job_id, settings=s3_settings, sink=lambda _: None)["status"] == "success"
    failed = run_job({**job, "cond_video": "/not/allowed.jpg"}, "b-3", settings=s3_settings, sink=lambda _: None)
    assert failed["status"] == "error"
    store.put_bytes("jobs/broken/metadata.json", b"{not json")
    store.put_bytes("jobs/foreign/metadata.json", json.dumps({"hello": "world"}).encode())
    store.put_bytes("jobs/future/metadata.json", json.dumps({"schema_version": 99, "job_id": "f"}).encode())

    wiped = Catalog(tmp_path / "fresh.db")
    report = sync(wiped, store)

    assert (report.added, len(report.skipped)) == (3, 3)
    assert {key for key, _ in report.skipped} == {
        "jobs/broken/metadata.json",
        "jobs/foreign/metadata.json",
        "jobs/future/metadata.json",
    }
    assert wiped.get("b-3")["status"] == JobStatus.FAILED and wiped.get("b-3")["error_code"] == "E_INPUT_VALIDATION"
    run = wiped.get("b-1")
    urls = wiped.urls(run, store)
    assert requests.get(urls["video"], timeout=30).headers["Content-Type"] == "video/mp4"
    assert JobMetadata.model_validate_json(requests.get(urls["metadata"], timeout=30).content).job_id == "b-1"


def _hammer(path: str, field: str, count: int) -> None:
    catalog = Catalog(Path(path))
    for index in range(count):
        if field == "progress":
            catalog.apply_status("shared", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": float(index)})
        else:
            catalog.set_note("shared", f"note {index}")
            catalog.set_tags("shared", [f"tag{index}"])


def test_two_processes_updating_the_same_run_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    Catalog(path).record_submission("shared", PARAMS, endpoint_id="local")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(path), field, 150)) for field in ("progress", "notes")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]

    run = Catalog(path).get("shared")
    assert run["progress_pct"] == 149.0 and run["note"] == "note 149" and run["tags"] == "tag149"


def test_health_samples_and_latency_stats_feed_the_health_page(catalog: Catalog) -> None:
    catalog.record_health_sample(
        "local",
        {"jobs": {"inQueue": 3, "inProgress": 1, "completed": 5, "failed": 1}, "workers": {"idle": 0, "running": 1}},
        at="2026-11-25T10:00:00Z",
    )
    for index, (delay, execution) in enumerate([(100, 1000), (200, 2000), (300, 3000)]):
        catalog.record_submission(f"l-{index}", PARAMS, endpoint_id="local")
        catalog.apply_status(
            f"l-{index}", JobStatus.COMPLETED, output=result(f"l-{index}"), delay_ms=delay, execution_ms=execution
        )
    catalog.record_submission("l-bad", PARAMS, endpoint_id="local")
    catalog.apply_status("l-bad", JobStatus.FAILED, error={"code": "E_OOM", "message": "oom"})

    assert catalog.health_samples("local")[0]["in_queue"] == 3
    stats = catalog.latency_stats("local")
    assert stats["total_p50"] == 2200 and stats["total_p95"] == 3300
    assert catalog.failure_counts_by_code("local") == {"E_OOM": 1}
