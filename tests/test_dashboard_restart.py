"""A dashboard restarted on a wiped disk mid-job: Live shows the running job again, sync restores the curation.

A real local endpoint runs the job; the dashboard writes to its folder store as it would to a bucket. Between
submit and the job's end catalog.db is deleted, as Streamlit Community Cloud's restart deletes it.
"""

from __future__ import annotations

import pytest

from catalog import Catalog, sync
from client.api import StudioClient
from core.contract import JobStatus
from core.settings import Settings
from core.store import open_store
from dashboard.jobs import poll, submit
from tests.dashboard_support import (
    LONG_SPEECH,
    dashboard_on,
    example_job,
    module_endpoint,
    open_page,
    rerun_until,
    texts,
)
from tests.test_catalog_bucket import wipe
from worker.pipeline import run_job

endpoint_env = module_endpoint("restart")


@pytest.fixture
def dashboard(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings of the dashboard under test, on the module's endpoint and its folder store."""
    return dashboard_on(endpoint_env, monkeypatch)


def test_a_restart_on_a_wiped_disk_shows_the_running_job_and_sync_restores_its_curation(
    dashboard: Settings,
) -> None:
    client, store = StudioClient(dashboard), open_store(dashboard)
    catalog = Catalog(dashboard.catalog_file)
    job = {**example_job("survives a restart"), "cond_audio": None, "tts_audio": {"text": LONG_SPEECH}}
    job_id = submit(
        client, catalog, {**job, "mode": "streaming"}, "local", store=store, settings=dashboard, submitted_by="a@x.io"
    )
    catalog.close()
    wipe(dashboard.catalog_file)

    at = open_page("live")
    rerun_until(at, lambda a: f"job `{job_id}`" in texts(a), timeout_s=30)
    assert "survives a restart" in texts(at), "the job is found again by its request in the store"
    rerun_until(at, lambda a: "Just finished" in texts(a) or "Nothing is queued" in texts(a), timeout_s=240)

    fresh = Catalog(dashboard.catalog_file)  # the file the page rebuilt
    run = fresh.get(job_id)
    assert run["status"] == JobStatus.COMPLETED and run["submitted_by"] == "a@x.io"
    fresh.curate(job_id, tags=["keeper"], favourite=True, note="made across a restart", store=store)
    fresh.close()

    wipe(dashboard.catalog_file)
    rebuilt = Catalog(dashboard.catalog_file)
    sync(rebuilt, store)
    run = rebuilt.get(job_id)
    assert (run["tag_list"], run["favourite"], run["note"]) == (["keeper"], 1, "made across a restart")
    assert (run["status"], run["submitted_by"]) == (JobStatus.COMPLETED, "a@x.io")


def test_a_job_the_endpoint_forgot_is_settled_from_its_metadata_in_the_store(dashboard: Settings) -> None:
    """RunPod forgets /run results after 30 minutes (404); the worker's metadata.json stays in the bucket."""
    store = open_store(dashboard)
    job = example_job("finished while nobody watched")
    output = run_job(job, "forgotten-1", settings=dashboard, sink=lambda _: None, endpoint_id="local")
    assert output["status"] == "success", output
    catalog = Catalog(dashboard.catalog_file)
    catalog.record_submission("forgotten-1", job, endpoint_id="local")

    (run,) = [r for r in catalog.unfinished("local") if r["run_id"] == "forgotten-1"]
    result = poll(StudioClient(dashboard), catalog, run, store)
    assert (result.status, result.changed, result.lost) == (JobStatus.COMPLETED, True, False), result
    settled = catalog.get("forgotten-1")
    assert settled["video_key"] == "jobs/forgotten-1/video.mp4" and settled["source"] == "sync"

    catalog.record_submission("never-ran-1", job, endpoint_id="local")
    (run,) = [r for r in catalog.unfinished("local") if r["run_id"] == "never-ran-1"]
    result = poll(StudioClient(dashboard), catalog, run, store)
    assert result.lost and result.status == JobStatus.IN_QUEUE, "without a file it is offered as lost, as before"
