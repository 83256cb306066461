"""Rebuilding the catalogue from the bucket: every metadata.json is a run; bad files are skipped with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from catalog import Catalog, sync
from core.contract import ErrorCode, InputDescriptor, JobError, JobMetadata, JobStatus
from core.settings import Settings
from core.store import LocalStore, Store, artifact_key, open_store
from tests.conftest import SHORT_JOB
from worker.pipeline import run_job

JOB = {**SHORT_JOB, "prompt": "a bucket run"}


def metadata(job_id: str, item_id: str | None = None, **changes: Any) -> JobMetadata:
    """A metadata.json as the worker writes it for a finished 720p two-speaker run from a video."""
    folder = f"{job_id}/{item_id}" if item_id else job_id
    fields: dict[str, Any] = {
        "job_id": job_id,
        "item_id": item_id,
        "endpoint_id": "runpod-abc",
        "status": "success",
        "engine": {"name": "infinitetalk", "version": "1.0"},
        "prompt": f"two hosts discuss the news ({folder})",
        "params": {
            "prompt": f"two hosts discuss the news ({folder})",
            "cond_video": "https://media.example/hosts.mp4",
            "cond_audio": {"person1": "https://media.example/a.wav", "person2": "https://media.example/b.wav"},
            "size": "infinitetalk-720",
            "mode": "streaming",
            "sample_steps": 8,
            "base_seed": 1234,
            "sample_text_guide_scale": 5.0,
            "sample_audio_guide_scale": 4.0,
        },
        "inputs": [
            InputDescriptor(field="cond_video", source="url", kind="video", bytes=10, sha256="0" * 64),
            InputDescriptor(
                field="cond_audio.person1", source="url", kind="audio", bytes=9, sha256="1" * 64, duration_s=2.5
            ),
            InputDescriptor(
                field="cond_audio.person2", source="url", kind="audio", bytes=9, sha256="2" * 64, duration_s=1.5
            ),
        ],
        "outputs": {
            name: {"key": f"jobs/{folder}/{file}", "bytes": 10}
            for name, file in (("video", "video.mp4"), ("thumbnail", "thumb.jpg"), ("metadata", "metadata.json"))
        },
        "timings": {"generate_ms": 60_000, "total_ms": 65_000},
        "created_at": "2026-11-20T10:00:00.000Z",
        "started_at": "2026-11-20T10:00:05.000Z",
        "finished_at": "2026-11-20T10:01:10.000Z",
    }
    fields["outputs"]["video"].update(duration_s=4.0, fps=25, width=1280, height=720, frames=100)
    return JobMetadata(**{**fields, **changes})


def publish(store: Store, meta: JobMetadata) -> str:
    key = artifact_key("jobs", f"{meta.job_id}/{meta.item_id}" if meta.item_id else meta.job_id, "metadata.json")
    store.put_bytes(key, meta.model_dump_json().encode())
    return key


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "catalog.db")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


def test_a_metadata_file_becomes_a_complete_run(catalog: Catalog, store: LocalStore) -> None:
    publish(store, metadata("job-1"))
    assert sync(catalog, store).added == 1

    run = catalog.get("job-1")
    assert (run["status"], run["engine"], run["endpoint_id"]) == (JobStatus.COMPLETED, "infinitetalk", "runpod-abc")
    assert (run["size"], run["mode"], run["sample_steps"], run["base_seed"]) == (
        "infinitetalk-720",
        "streaming",
        8,
        1234,
    )
    assert (run["text_guide_scale"], run["audio_guide_scale"]) == (5.0, 4.0)
    assert (run["speakers"], run["input_kind"], run["audio_duration_s"]) == (2, "video", 4.0)
    assert (run["video_duration_s"], run["width"], run["height"], run["frames"]) == (4.0, 1280, 720, 100)
    assert (run["video_key"], run["thumb_key"], run["metadata_key"]) == (
        "jobs/job-1/video.mp4",
        "jobs/job-1/thumb.jpg",
        "jobs/job-1/metadata.json",
    )
    assert run["timings"]["total_ms"] == run["total_ms"] == 65_000
    assert catalog.search("news", size="infinitetalk-720", speakers=2, input_kind="video").total == 1


def test_batch_items_are_runs_of_their_own_and_failures_keep_their_error(catalog: Catalog, store: LocalStore) -> None:
    publish(store, metadata("batch-1", "item-000"))
    publish(store, metadata("batch-1", "item-001"))
    failure = {"code": ErrorCode.CANCELLED, "message": "cancelled at a boundary", "retryable": False}
    publish(store, metadata("job-2", status="error", error=failure, outputs={}))

    report = sync(catalog, store)

    assert (report.added, report.skipped) == (3, [])
    assert catalog.get("batch-1:item-001")["video_key"] == "jobs/batch-1/item-001/video.mp4"
    assert catalog.get("batch-1") is None, "a batch in the bucket is its items"
    cancelled = catalog.get("job-2")
    assert (cancelled["status"], cancelled["error_code"], cancelled["video_key"]) == (
        JobStatus.CANCELLED,
        ErrorCode.CANCELLED,
        None,
    )
    assert catalog.search("boundary").total == 1, "error messages are searchable"


def test_the_file_overrides_what_polling_guessed_and_a_newer_file_wins(catalog: Catalog, store: LocalStore) -> None:
    # The dashboard lost track of the job (RunPod forgets results after 30 minutes) and closed it as lost.
    catalog.record_submission("job-3", {"prompt": "lost"}, endpoint_id="runpod-abc")
    catalog.apply_status("job-3", JobStatus.FAILED, error={"code": ErrorCode.WORKER_LOST, "message": "lost"})
    catalog.set_tags("job-3", ["keep"])
    publish(store, metadata("job-3"))

    assert sync(catalog, store).updated == 1
    run = catalog.get("job-3")
    assert (run["status"], run["video_key"], run["tags"]) == (JobStatus.COMPLETED, "jobs/job-3/video.mp4", "keep")

    publish(store, metadata("job-3", finished_at="2026-11-21T09:00:00.000Z", prompt="the retried run"))
    assert sync(catalog, store, full=True).updated == 1
    assert catalog.get("job-3")["prompt"] == "the retried run"
    assert sync(catalog, store, full=True).unchanged == 1


def test_odd_params_in_a_valid_file_never_reach_the_facets(catalog: Catalog, store: LocalStore) -> None:
    odd = {**metadata("job-odd").params, "size": ["720"], "sample_steps": "forty", "sample_text_guide_scale": 5}
    publish(store, metadata("job-odd", params=odd))
    assert sync(catalog, store).added == 1

    run = catalog.get("job-odd")
    assert (run["size"], run["sample_steps"], run["text_guide_scale"]) == (None, None, 5.0)
    assert run["params"]["sample_steps"] == "forty", "the full params are kept as they were"


def test_a_second_sync_reads_only_files_it_has_not_taken_in(catalog: Catalog, store: LocalStore) -> None:
    key = publish(store, metadata("job-4"))
    assert sync(catalog, store).added == 1
    store.put_bytes(key, b"{overwritten")

    again = sync(catalog, store)
    assert (again.added, again.updated, again.unchanged, again.skipped) == (0, 0, 1, [])
    [(skipped_key, reason)] = sync(catalog, store, full=True).skipped
    assert skipped_key == key and reason.startswith("unreadable: JSONDecodeError")


def test_user_edits_survive_a_sync_and_deletion_removes_the_artifacts(catalog: Catalog, settings: Settings) -> None:
    output = run_job(JOB, "sync-1", settings=settings, sink=lambda _: None)
    store = LocalStore(settings.artifact_dir)
    assert sync(catalog, store).added == 1
    catalog.set_favourite("sync-1", True)
    catalog.set_note("sync-1", "the keeper")

    assert sync(catalog, store, full=True).unchanged == 1
    assert (catalog.get("sync-1")["favourite"], catalog.get("sync-1")["note"]) == (1, "the keeper")
    catalog.delete("sync-1", store)
    assert catalog.get("sync-1") is None
    assert not store.exists(output["video"]["key"]) and not store.exists(output["metadata"]["key"])
    assert sync(catalog, store).added == 0, "nothing is left to bring the run back"


def test_the_catalogue_rebuilds_from_the_bucket_skipping_corrupt_and_foreign_files(
    s3_settings: Settings, tmp_path: Path
) -> None:
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    job = {**JOB, "output_config": {"store": "s3"}}
    for job_id in ("b-1", "b-2"):
        assert run_job(job, job_id, settings=s3_settings, sink=lambda _: None)["status"] == "success"
    failed = run_job({**job, "cond_video": "/not/allowed.jpg"}, "b-3", settings=s3_settings, sink=lambda _: None)
    assert failed["status"] == "error"
    publish(store, metadata("b-4", "item-000"))
    store.put_bytes("jobs/broken/metadata.json", b"{not json")
    store.put_bytes("jobs/foreign/metadata.json", json.dumps({"hello": "world"}).encode())
    store.put_bytes("jobs/future/metadata.json", json.dumps({"schema_version": 99, "job_id": "f"}).encode())
    store.put_bytes(
        "jobs/bad-field/metadata.json", metadata("b-5").model_dump_json().replace('"success"', '"done"').encode()
    )

    wiped = Catalog(tmp_path / "fresh.db")
    report = sync(wiped, store)

    assert report.added == 4
    reasons = dict(report.skipped)
    assert set(reasons) == {
        "jobs/broken/metadata.json",
        "jobs/foreign/metadata.json",
        "jobs/future/metadata.json",
        "jobs/bad-field/metadata.json",
    }
    assert reasons["jobs/broken/metadata.json"].startswith("unreadable: JSONDecodeError")
    assert "not an InfiniteTalk Studio metadata file" in reasons["jobs/foreign/metadata.json"]
    assert "schema_version 99 is newer" in reasons["jobs/future/metadata.json"]
    assert "status" in reasons["jobs/bad-field/metadata.json"]
    assert wiped.get("b-3")["status"] == JobStatus.FAILED and wiped.get("b-3")["error_code"] == "E_INPUT_VALIDATION"
    urls = wiped.urls(wiped.get("b-1"), store)
    assert requests.get(urls["video"], timeout=30).headers["Content-Type"] == "video/mp4"
    assert JobMetadata.model_validate_json(requests.get(urls["metadata"], timeout=30).content).job_id == "b-1"
    assert sync(wiped, store, prefix="jobs/b-1").unchanged == 1


def test_a_store_that_cannot_be_reached_is_a_clear_error_and_changes_nothing(
    s3_settings: Settings, catalog: Catalog
) -> None:
    # A bucket the settings allow (STUDIO_S3_BUCKETS) that the server does not have.
    missing = open_store(s3_settings.with_(s3_extra_buckets=("no-such-bucket",)), bucket="no-such-bucket")
    with pytest.raises(JobError, match="could not list s3://no-such-bucket/jobs/") as listing:
        sync(catalog, missing, prefix="jobs")
    assert listing.value.code == ErrorCode.DOWNLOAD_FAILED

    catalog.record_submission("job-5", {"prompt": "kept"}, endpoint_id="local")
    catalog.apply_status(
        "job-5", JobStatus.COMPLETED, output={"status": "success", "video": {"key": "jobs/job-5/v.mp4"}}
    )
    with pytest.raises(JobError, match=r"S3 delete of s3://no-such-bucket/jobs/job-5/v\.mp4 failed") as deleting:
        catalog.delete("job-5", missing)
    assert deleting.value.code == ErrorCode.UPLOAD
    assert catalog.get("job-5") is not None, "the run stays until its files are gone, so deleting again can finish"
