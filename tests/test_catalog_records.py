"""Recording runs: submissions, status polls, results and batches, kept right under repeats and two writers."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog
from core.contract import ErrorCode, JobStatus

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
    """A JobResult dump as the worker returns it (with a presigned URL the catalogue must not keep)."""
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


def error_output(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message, "retryable": False, "at_stage": "x"}}


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
    assert run["base_seed"] == 42, "the result's resolved seed replaces the submission's missing one"
    assert run["video_key"] == "jobs/job-1/video.mp4" and run["thumb_key"] == "jobs/job-1/thumb.jpg"
    assert "expiring" not in json.dumps(run), "keys are stored, never presigned URLs"
    assert run["timings"]["generate_ms"] == 900 and run["execution_ms"] == 1500
    assert run["started_at"] <= run["finished_at"]
    assert [event["stage"] for event in catalog.progress_events("job-1")] == ["generation"]


def test_status_updates_are_idempotent_and_never_move_a_finished_run_back(catalog: Catalog) -> None:
    catalog.record_submission("job-2", PARAMS, endpoint_id="local")
    catalog.record_submission("job-2", {**PARAMS, "prompt": "changed"}, endpoint_id="local")
    assert catalog.apply_status("job-2", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 50})
    assert not catalog.apply_status("job-2", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 50})
    assert not catalog.apply_status("job-2", JobStatus.IN_QUEUE), "a late queued answer does not undo the start"
    assert catalog.apply_status("job-2", JobStatus.FAILED, error={"code": "E_OOM", "message": "out of memory"})
    finished = catalog.get("job-2")

    assert not catalog.apply_status("job-2", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": 60})
    assert not catalog.apply_status("job-2", JobStatus.COMPLETED, output=result("job-2"))
    assert catalog.get("job-2") == finished
    assert finished["status"] == JobStatus.FAILED and finished["error_code"] == "E_OOM"
    assert finished["prompt"] == PARAMS["prompt"]
    assert len(catalog.progress_events("job-2")) == 1, "a repeated payload is one event"


def test_progress_payloads_follow_a_running_job_and_stop_at_its_end(catalog: Catalog) -> None:
    catalog.record_submission("job-p", PARAMS, endpoint_id="local")
    assert catalog.record_progress("job-p", {"stage": "audio_ok", "pct": 20.0, "job_id": "job-p", "details": {}})
    assert catalog.record_progress("job-p", {"stage": "generation", "pct": 55.5, "details": {"step": 3}})
    run = catalog.get("job-p")
    assert (run["progress_stage"], run["progress_pct"]) == ("generation", 55.5)
    assert catalog.unfinished("local")[0]["progress_pct"] == 55.5

    catalog.apply_status("job-p", JobStatus.CANCELLED)
    assert not catalog.record_progress("job-p", {"stage": "generation", "pct": 60.0})
    assert not catalog.record_progress("no-such-run", {"stage": "generation", "pct": 60.0})
    assert [e["details"] for e in catalog.progress_events("job-p")] == [{}, {"step": 3}]
    assert catalog.progress_events("no-such-run") == [] and catalog.unfinished() == []


def test_curation_says_whether_the_run_still_exists(catalog: Catalog) -> None:
    catalog.record_submission("job-c", PARAMS, endpoint_id="local")
    assert catalog.set_tags("job-c", [" Launch ", "launch", "a,b", ""])
    assert catalog.get("job-c")["tag_list"] == ["Launch", "a b"], (
        "a tag keeps its case; the same tag in another case is one"
    )
    assert catalog.set_favourite("job-c", True) and catalog.set_note("job-c", "  keep  ")
    assert (catalog.get("job-c")["favourite"], catalog.get("job-c")["note"]) == (1, "keep")

    catalog.delete("job-c")
    assert not catalog.set_tags("job-c", ["x"]) and not catalog.set_favourite("job-c", True)
    assert not catalog.set_note("job-c", "gone") and catalog.get("job-c") is None


def test_an_unknown_status_is_refused_not_taken_as_final(catalog: Catalog) -> None:
    catalog.record_submission("job-3", PARAMS, endpoint_id="local")
    with pytest.raises(ValueError, match="'DONE' is not a job status; use one of IN_QUEUE"):
        catalog.apply_status("job-3", "DONE")
    with pytest.raises(ValueError, match="is not a job status"):
        catalog.record_submission("job-4", PARAMS, endpoint_id="local", status="queued")
    assert catalog.get("job-3")["status"] == JobStatus.IN_QUEUE and catalog.get("job-4") is None
    assert catalog.apply_status("job-3", JobStatus.IN_PROGRESS)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (ErrorCode.INPUT_VALIDATION, JobStatus.FAILED),
        (ErrorCode.CANCELLED, JobStatus.CANCELLED),
        (ErrorCode.TIMEOUT, JobStatus.TIMED_OUT),
    ],
)
def test_an_error_output_reported_as_completed_is_recorded_as_what_it_is(
    catalog: Catalog, code: str, expected: str
) -> None:
    # RunPod says COMPLETED for whatever the handler returned, and the worker returns its errors.
    catalog.record_submission("job-5", PARAMS, endpoint_id="runpod-abc")
    catalog.apply_status("job-5", JobStatus.COMPLETED, output=error_output(code, "cond_video: the fix"))

    run = catalog.get("job-5")
    assert (run["status"], run["error_code"], run["error_message"]) == (expected, code, "cond_video: the fix")
    assert catalog.search("", status=expected).total == 1


def test_a_batch_result_records_each_item_as_a_run(catalog: Catalog) -> None:
    catalog.record_submission("batch-1", {"batch": [PARAMS, PARAMS]}, endpoint_id="local")
    output = {
        "status": "partial",
        "job_id": "batch-1",
        "items": [
            {**result("batch-1"), "item_id": "a"},
            {"job_id": "batch-1", "item_id": "b", **error_output(ErrorCode.INPUT_VALIDATION, "bad audio")},
        ],
    }
    assert catalog.attach_result("batch-1", output) == ["batch-1:a", "batch-1:b"]
    assert catalog.attach_result("batch-1", output) == ["batch-1:a", "batch-1:b"], "attaching again is harmless"

    first, second = catalog.get("batch-1:a"), catalog.get("batch-1:b")
    assert (first["status"], first["job_id"], first["item_id"]) == (JobStatus.COMPLETED, "batch-1", "a")
    assert first["prompt"] == PARAMS["prompt"] and first["video_key"] == "jobs/batch-1/video.mp4"
    assert (second["status"], second["error_code"]) == (JobStatus.FAILED, ErrorCode.INPUT_VALIDATION)
    assert catalog.get("batch-1")["status"] == JobStatus.COMPLETED, "a partial batch still completed"


def test_a_batch_counts_as_one_run_until_its_items_arrive_and_then_as_its_items(catalog: Catalog) -> None:
    catalog.record_submission("batch-1", {"batch": [PARAMS, PARAMS]}, endpoint_id="local")
    assert catalog.search("").total == 1 and catalog.stats()["runs"] == 1, "a queued batch is visible"

    items = [{**result("batch-1"), "item_id": "a"}, {**result("batch-1"), "item_id": "b"}]
    catalog.attach_result("batch-1", {"status": "success", "job_id": "batch-1", "items": items})

    found = catalog.search("")
    assert sorted(row["run_id"] for row in found.rows) == ["batch-1:a", "batch-1:b"]
    assert found.total == 2 and found.facets["status"] == {JobStatus.COMPLETED: 2}
    assert catalog.stats()["runs"] == 2 and catalog.stats()["by_status"] == {JobStatus.COMPLETED: 2}
    assert catalog.get("batch-1")["batch_items"] == 2, "the container is still there for Live and latency"
    catalog.set_tags("batch-1", ["renamed"])
    assert catalog.search("").total == 2, "editing the container does not bring it back into the counts"


def test_inline_media_and_signed_urls_are_not_kept_in_params(catalog: Catalog) -> None:
    params = {
        **PARAMS,
        "cond_video": "data:video/mp4;base64," + "AAAA" * 5000,
        "cond_audio": {"person1": "https://bucket.example/in/a.wav?X-Amz-Signature=secret&X-Amz-Expires=60"},
    }
    catalog.record_submission("job-6", params, endpoint_id="local")
    catalog.record_submission("batch-2", {"batch": [params]}, endpoint_id="local")

    stored = catalog.get("job-6")["params"]
    assert stored["cond_video"] == "(inline base64 data, not stored)"
    assert stored["cond_audio"]["person1"] == "https://bucket.example/in/a.wav"
    assert catalog.get("job-6")["input_kind"] == "video", "the kind is read before the data is dropped"
    assert "secret" not in json.dumps(catalog.get("batch-2")["params"])
    assert len(json.dumps(catalog.get("batch-2")["params"])) < 1000


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
    assert len(Catalog(path).progress_events("shared", limit=500)) == 150


def test_health_samples_and_latency_stats_feed_the_health_page(catalog: Catalog) -> None:
    catalog.record_health_sample(
        "local",
        {"jobs": {"inQueue": 3, "inProgress": 1, "completed": 5, "failed": 1}, "workers": {"idle": 0, "running": 1}},
        at="2026-11-25T10:00:00Z",
    )
    catalog.record_health_sample("local", {"jobs": {"inQueue": 0}, "workers": {"idle": 1}}, at="2026-11-25T10:01:00Z")
    catalog.record_health_sample("other", {"jobs": {"inQueue": 9}, "workers": {}}, at="2026-11-25T10:01:00Z")
    for index, (delay, execution) in enumerate([(100, 1000), (200, 2000), (300, 3000)]):
        catalog.record_submission(f"l-{index}", PARAMS, endpoint_id="local")
        catalog.apply_status(
            f"l-{index}", JobStatus.COMPLETED, output=result(f"l-{index}"), delay_ms=delay, execution_ms=execution
        )
    catalog.record_submission("l-bad", PARAMS, endpoint_id="local")
    catalog.apply_status("l-bad", JobStatus.FAILED, error={"code": "E_OOM", "message": "oom"})

    assert [s["in_queue"] for s in catalog.health_samples("local")] == [3, 0]
    assert [s["in_queue"] for s in catalog.health_samples("local", since="2026-11-25T10:00:30Z")] == [0]
    stats = catalog.latency_stats("local")
    assert stats["total_p50"] == 2200 and stats["total_p95"] == 3300
    assert catalog.failure_counts_by_code("local") == {"E_OOM": 1}
    assert catalog.stats()["by_status"] == {JobStatus.COMPLETED: 3, JobStatus.FAILED: 1}


def test_one_catalogue_shared_by_threads_loses_no_update(catalog: Catalog) -> None:
    # Streamlit runs sessions in threads; a catalogue cached for all of them must stay consistent.
    for index in range(4):
        catalog.record_submission(f"t-{index}", PARAMS, endpoint_id="local")

    def work(index: int) -> None:
        for step in range(40):
            catalog.apply_status(f"t-{index}", JobStatus.IN_PROGRESS, progress={"stage": "generation", "pct": step})
            catalog.set_note("t-0", f"note from {index}")
        catalog.apply_status(f"t-{index}", JobStatus.COMPLETED, output=result(f"t-{index}"))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))

    assert catalog.search("", status=JobStatus.COMPLETED).total == 4
    assert all(len(catalog.progress_events(f"t-{index}", limit=100)) == 40 for index in range(4))
    assert catalog.get("t-0")["note"].startswith("note from ")


def test_job_a_colon_b_and_item_b_of_job_a_are_two_runs(catalog: Catalog) -> None:
    job = catalog.record_submission("a:b", {**PARAMS, "prompt": "the job a:b"}, endpoint_id="local")
    item = catalog.record_submission("a", {**PARAMS, "prompt": "item b of job a"}, endpoint_id="local", item_id="b")

    assert job != item
    assert catalog.get(job)["prompt"] == "the job a:b" and catalog.get(item)["prompt"] == "item b of job a"
    catalog.attach_result("a:b", result("a:b"))
    assert catalog.get(job)["status"] == JobStatus.COMPLETED and catalog.get(item)["status"] == JobStatus.IN_QUEUE
    for job_id, item_id in [("a%3Ab", None), ("a", "b:c"), ("a:b", "c"), ("a%", "b"), ("a", "%b")]:
        assert catalog.record_submission(job_id, PARAMS, endpoint_id="local", item_id=item_id) not in (job, item)
    assert catalog.stats()["runs"] == 7, "every (job, item) pair is a run of its own"
