"""A split run is one run in the catalogue, its parts inside it (issue 30 items 5 and 6).

Long speech is rendered as parts on several workers at once (client/fanout.py, docs/split.md): each part is an
ordinary job publishing under the run's folder (`{prefix}/{run_id}/parts/{job_id}/`) until the join. History
must show the run once at every moment: while parts render, after the join, after a rebuild from the bucket, and
in a catalogue where older code took parts in as runs of their own. Its cost is its parts' sum, its prompt finds
it. The first test renders a real split run (the local endpoint with two workers, preview engine, real ffmpeg);
the others write the bucket's files through the contract's models, on a folder and on SeaweedFS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog, bucket
from catalog.records import split_parts
from catalog.sync import restore_unfinished, sync
from client.api import StudioClient
from client.fanout import SplitRun, plan_split
from core.contract import ErrorCode, GpuInfo, JobMetadata, JobStatus, SplitPart, SplitPlan
from core.settings import Settings
from core.store import Store, open_store
from tests.endpoint_server import running_endpoint
from tests.s3server import free_port
from tests.test_split import job, speech_with_pauses

PROMPT = "a lighthouse keeper tells a long story"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local endpoint with two workers running the real pipeline (preview engine); its settings."""
    data_dir = tmp_path_factory.mktemp("split-catalog-endpoint")
    port = free_port()
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_LOCAL_WORKERS": "2"}
    with running_endpoint(env, port=port) as base:
        yield Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})


def _listed(catalog: Catalog) -> list[str]:
    """The run ids History's grid lists (an empty search, every run)."""
    return [row["run_id"] for row in catalog.search("", per_page=100).rows]


def _part_files(store: Store, plan: SplitPlan, name: str) -> list[str]:
    return [key for key in store.list(f"{plan.folder}/parts/") if key.endswith(f"/{name}")]


@pytest.mark.slow
def test_a_real_split_run_is_one_run_at_every_moment(endpoint: Settings, tmp_path: Path) -> None:
    """12 s of speech in 2 parts on 2 workers. A dashboard on the same bucket (its own catalogue) syncs at every
    change while the parts render, once every part is done but before the join (each part's metadata.json in the
    bucket), and after the join; a catalogue rebuilt from the bucket, and one where older code had taken the parts
    in, each list the run once with its parts inside it."""
    speech, _ = speech_with_pauses(tmp_path / "speech.wav", rounds=1)
    store, client = open_store(endpoint), StudioClient(endpoint)
    driver = Catalog(tmp_path / "driver.db")  # the command line's catalogue: the run is in it from the start
    dashboard = Catalog(tmp_path / "dashboard.db")
    plan = plan_split({**job(speech), "prompt": PROMPT}, endpoint, store, part_s=7.0, min_part_s=2.0, parallel=2)
    assert len(plan.parts) == 2
    run = SplitRun(plan, client, store, driver)
    seen: list[list[str]] = []

    def look(_: SplitRun) -> None:
        """History's 15 s pick-up, at every change of the run."""
        sync(dashboard, store)
        seen.append(_listed(dashboard))

    rendered = run.run(look, poll_s=0.3, join=False)

    assert {p.state for p in rendered.parts} == {JobStatus.COMPLETED}
    assert seen and all(listed == [plan.run_id] for listed in seen), seen
    assert len(_part_files(store, plan, "metadata.json")) == 2, "every part's metadata.json waits for the join"
    report = sync(dashboard, store)
    assert report.skipped == [] and _listed(dashboard) == [plan.run_id]
    row = dashboard.get(plan.run_id)
    assert row is not None and row["status"] == JobStatus.IN_PROGRESS and row["source"] == "split"
    parts = split_parts(row)
    assert [(p.job_id, p.state) for p in parts] == [(p.job_id, JobStatus.COMPLETED) for p in rendered.parts]
    assert all(p.gpu_ms is not None and p.cost_usd == 0.0 for p in parts)
    fresh = Catalog(tmp_path / "restored.db")
    assert restore_unfinished(fresh, store).restored == 1 and _listed(fresh) == [plan.run_id]
    assert len(split_parts(fresh.get(plan.run_id) or {})) == 2, "a restart on an empty disk finds the parts"

    older = Catalog(tmp_path / "older.db")  # what older code's sync did with the parts' metadata.json
    for key in _part_files(store, plan, "metadata.json"):
        older.upsert_metadata(JobMetadata.model_validate_json(store.get(key)).model_dump(mode="json"), key)
    assert len(_listed(older)) == 2
    folded = sync(older, store)
    assert folded.folded == 2 and _listed(older) == [plan.run_id]

    run.join()
    assert _part_files(store, plan, "metadata.json") == []
    sync(dashboard, store)
    assert _listed(dashboard) == [plan.run_id]
    joined = dashboard.get(plan.run_id)
    assert joined is not None and joined["status"] == JobStatus.COMPLETED and joined["video_key"]
    assert joined["cost_usd"] == 0.0 and joined["total_ms"] == sum(p.gpu_ms or 0 for p in rendered.parts)
    assert [p.job_id for p in split_parts(joined)] == [p.job_id for p in rendered.parts]
    assert [row["run_id"] for row in dashboard.search("lighthouse").rows] == [plan.run_id]
    assert joined["params"]["cond_audio"] == {"person1": str(speech)}, "the run's own input, for Reuse"

    rebuilt = Catalog(tmp_path / "rebuilt.db")
    report = sync(rebuilt, store)
    assert report.skipped == [] and _listed(rebuilt) == [plan.run_id]
    again = rebuilt.get(plan.run_id)
    assert again is not None and again["status"] == JobStatus.COMPLETED
    assert [(p.start_s, p.end_s) for p in split_parts(again)] == [(p.start_s, p.end_s) for p in rendered.parts]
    sync(older, store)
    assert _listed(older) == [plan.run_id]
    assert (older.get(plan.run_id) or {}).get("status") == JobStatus.COMPLETED


# --- the bucket's files written through the contract's models -------------------------------------------------

CREATED = "2026-12-01T10:00:00.000Z"
H100 = GpuInfo(name="NVIDIA H100 80GB HBM3", count=1)
A100 = GpuInfo(name="NVIDIA A100-SXM4-80GB", count=1)


@pytest.fixture(params=["folder", "seaweedfs"])
def store(request: pytest.FixtureRequest, settings: Settings) -> Store:
    """The bucket as a local folder, and as SeaweedFS's S3 API (a fresh bucket per test)."""
    if request.param == "folder":
        return open_store(settings)
    return open_store(request.getfixturevalue("s3_settings"))


def split_part(index: int, state: str, run_id: str = "split-abc", **changes: Any) -> SplitPart:
    """Part `index` of split run `run_id` (each part about 10 s of speech), in `state`; a finished part ran
    90 s on an H100 and cost $0.10."""
    job_id = f"part-job-{index}" if run_id == "split-abc" else f"{run_id}-part-{index}"
    fields: dict[str, Any] = {
        "index": index,
        "start_s": 10.0 * index,
        "end_s": 10.0 * index + 9.6,
        "job_id": job_id if state != "pending" else None,
        "state": state,
        "attempts": 0 if state == "pending" else 1,
        "job_input": {"prompt": PROMPT, "output_config": {"prefix": f"jobs/{run_id}/parts"}},
    }
    if state == JobStatus.COMPLETED:
        fields |= {
            "video_key": f"jobs/{run_id}/parts/{job_id}/video.mp4",
            "gpu_ms": 90_000,
            "cost_usd": 0.1,
            "engine": {"name": "infinitetalk", "version": "1"},
            "gpu": H100,
        }
    return SplitPart(**{**fields, **changes})


def split_plan(*parts: SplitPart, **changes: Any) -> SplitPlan:
    """The split.json of a run of `parts` on "a lighthouse keeper tells a long story" (run id split-abc unless
    `changes` name another)."""
    fields: dict[str, Any] = {
        "run_id": "split-abc",
        "endpoint_id": "runpod-abc",
        "created_at": CREATED,
        "prompt": PROMPT,
        "params": {"prompt": PROMPT, "cond_video": "uploads/face.png", "cond_audio": {"person1": "uploads/long.wav"}},
        "speech_s": 29.6,
        "part_s": 10.0,
        "min_part_s": 3.0,
        "parallel": 3,
        "parts": list(parts),
    }
    return SplitPlan(**{**fields, **changes})


def save_plan(store: Store, plan: SplitPlan) -> None:
    store.put_bytes(plan.plan_key, plan.model_dump_json().encode())


def publish_part(store: Store, part: SplitPart) -> str:
    """A finished part's own metadata.json, as the worker publishes it under the run's `parts/` until the join."""
    folder = f"{part.job_input['output_config']['prefix']}/{part.job_id}"
    metadata = JobMetadata(
        job_id=part.job_id or "",
        endpoint_id="runpod-abc",
        status="success",
        engine={"name": "infinitetalk", "version": "1"},
        prompt=PROMPT,
        params=part.job_input,
        inputs=[],
        outputs={"video": {"key": f"{folder}/video.mp4", "duration_s": 9.6}},
        timings={"total_ms": part.gpu_ms or 0},
        created_at=CREATED,
        started_at=CREATED,
        finished_at=CREATED,
        gpu=part.gpu,
    )
    key = f"{folder}/metadata.json"
    store.put_bytes(key, metadata.model_dump_json().encode())
    return key


def publish_joined(store: Store, plan: SplitPlan, finished_at: str = "2026-12-01T10:09:00.000Z") -> JobMetadata:
    """The run's metadata.json as the join writes it: the parts listed, the parts' own files gone."""
    metadata = JobMetadata(
        job_id=plan.run_id,
        endpoint_id=plan.endpoint_id,
        status="success",
        engine={"name": "infinitetalk", "version": "1"},
        prompt=plan.prompt,
        params=plan.params,
        inputs=[],
        outputs={"video": {"key": f"{plan.folder}/video.mp4", "duration_s": plan.speech_s}},
        timings={"total_ms": sum(p.gpu_ms or 0 for p in plan.parts), "wall_ms": 95_000, "join_ms": 900},
        created_at=plan.created_at,
        started_at=plan.created_at,
        finished_at=finished_at,
        gpu=plan.parts[0].gpu,
        parts=[p.model_copy(update={"job_input": {}}) for p in plan.parts],
    )
    store.put_bytes(f"{plan.folder}/metadata.json", metadata.model_dump_json().encode())
    for key in list(store.list(f"{plan.folder}/parts/")):
        store.delete(key)
    save_plan(store, plan.model_copy(update={"state": "joined", "video_key": f"{plan.folder}/video.mp4"}))
    return metadata


def test_an_unfinished_split_run_is_restored_in_progress_with_its_parts(store: Store, tmp_path: Path) -> None:
    """A split.json with one part done (its metadata.json and request.json in `parts/`), one rendering, one not
    sent: a sync or a restore on an empty catalogue finds one run, in progress, with its three parts; never a
    part as a run of its own."""
    parts = split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.IN_PROGRESS), split_part(2, "pending")
    plan = split_plan(*parts)
    save_plan(store, plan)
    publish_part(store, plan.parts[0])
    request = bucket.request_document(
        "part-job-1", plan.parts[1].job_input, endpoint_id="runpod-abc", submitted_by=None
    )
    assert bucket.write_request(store, request) == "jobs/split-abc/parts/part-job-1/request.json"

    for how in (sync, restore_unfinished):
        catalog = Catalog(tmp_path / f"{how.__name__}.db")
        report = how(catalog, store)
        assert report.skipped == [] and report.restored == 1
        assert _listed(catalog) == ["split-abc"]
        run = catalog.get("split-abc")
        assert run is not None and run["status"] == JobStatus.IN_PROGRESS and run["cost_usd"] is None
        assert [(p.index, p.state, p.job_id) for p in split_parts(run)] == [
            (0, JobStatus.COMPLETED, "part-job-0"),
            (1, JobStatus.IN_PROGRESS, "part-job-1"),
            (2, "pending", None),
        ]
        assert all(p.job_input == {} for p in split_parts(run)), "the parts' inputs stay in the bucket"
        assert run["params"] == {**plan.params, "prompt": PROMPT}, "the run's own input, for Reuse"
        assert [r["run_id"] for r in catalog.search("lighthouse").rows] == ["split-abc"]
        assert how(catalog, store).restored == 0, "a second look restores nothing again"


def test_each_change_of_the_plan_reaches_the_run_and_a_failed_run_reopens_when_retried(
    store: Store, tmp_path: Path
) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    plan = split_plan(split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.IN_PROGRESS))
    save_plan(store, plan)
    sync(catalog, store)
    assert sync(catalog, store).updated == 0, "an unchanged plan changes nothing (History reruns on a change)"

    error = {"code": ErrorCode.OOM, "message": "CUDA out of memory **while** [decoding](http://x)"}
    failed = split_plan(plan.parts[0], split_part(1, JobStatus.FAILED, error=error), state="failed")
    save_plan(store, failed)
    assert sync(catalog, store).updated == 1
    run = catalog.get("split-abc")
    assert run is not None and run["status"] == JobStatus.FAILED and run["finished_at"]
    assert run["error_code"] == ErrorCode.GENERATION_RUNTIME and run["error_message"] == "part(s) 2 failed: retry them"
    assert split_parts(run)[1].error == error
    assert run["cost_usd"] is None, "the failed part's cost is unknown, so the run's is: no partial sum"

    again = split_part(1, JobStatus.IN_QUEUE, job_id="part-job-1b", earlier_job_ids=["part-job-1"])
    retried = split_plan(plan.parts[0], again)
    save_plan(store, retried)
    sync(catalog, store)
    run = catalog.get("split-abc")
    assert run is not None and run["status"] == JobStatus.IN_PROGRESS and run["retries"] == 1
    assert run["error_code"] is None and run["finished_at"] is None
    assert split_parts(run)[1].earlier_job_ids == ["part-job-1"]

    cancelled = split_plan(plan.parts[0], split_part(1, JobStatus.CANCELLED, job_id="part-job-1b"), state="cancelled")
    save_plan(store, cancelled)
    sync(catalog, store)
    run = catalog.get("split-abc")
    assert run is not None and run["status"] == JobStatus.CANCELLED and run["error_code"] == ErrorCode.CANCELLED


def test_a_run_its_driver_already_ended_keeps_the_drivers_words(store: Store, tmp_path: Path) -> None:
    """The process driving the run (the command line, a dashboard's driver) marked it failed in its own words on
    the same catalogue: a sync of the failed plan lists the parts and leaves those words, and the next sync
    changes nothing (History reruns only on a change)."""
    catalog = Catalog(tmp_path / "catalog.db")
    plan = split_plan(split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.IN_PROGRESS))
    catalog.record_submission("split-abc", {**plan.params}, endpoint_id="runpod-abc", source="split")
    words = {"code": ErrorCode.OOM, "message": "part 2 ran out of GPU memory: retry it on a larger GPU"}
    catalog.apply_status("split-abc", JobStatus.FAILED, output={"status": "error", "error": words})
    error = {"code": ErrorCode.OOM, "message": "CUDA out of memory"}
    save_plan(store, split_plan(plan.parts[0], split_part(1, JobStatus.FAILED, error=error), state="failed"))

    assert sync(catalog, store).updated == 1
    run = catalog.get("split-abc")
    assert run is not None and run["status"] == JobStatus.FAILED and run["error_message"] == words["message"]
    assert [p.state for p in split_parts(run)] == [JobStatus.COMPLETED, JobStatus.FAILED]
    assert sync(catalog, store).updated == 0


def test_a_parts_error_from_the_endpoint_is_kept_bounded(store: Store, tmp_path: Path) -> None:
    """An endpoint's error text is outside input: the row keeps its code and the first 2 000 characters of its
    message, and never the part's job input (the bucket's split.json keeps both whole)."""
    error = {"code": ErrorCode.GENERATION_RUNTIME, "message": "x" * 50_000, "trace": ["frame"] * 1000}
    save_plan(store, split_plan(split_part(0, JobStatus.FAILED, error=error), state="failed"))
    catalog = Catalog(tmp_path / "catalog.db")

    sync(catalog, store)

    (part,) = split_parts(catalog.get("split-abc") or {})
    assert part.error == {"code": ErrorCode.GENERATION_RUNTIME, "message": "x" * 2000} and part.job_input == {}
    assert len(json.dumps(json.loads(store.get("jobs/split-abc/split.json"))["parts"][0]["error"])) > 50_000


def test_a_joined_split_run_costs_its_parts_sum_each_on_its_own_gpu(store: Store, tmp_path: Path) -> None:
    """Two parts on two GPUs: the run costs $0.10 + $0.32, not its summed seconds at the first part's price; the
    search's cost line (and Health's spend, which reads the same column) counts it once."""
    plan = split_plan(split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.COMPLETED, gpu=A100, cost_usd=0.32))
    publish_joined(store, plan)
    catalog = Catalog(tmp_path / "catalog.db")

    report = sync(catalog, store)

    assert report.added == 1 and report.skipped == []
    run = catalog.get("split-abc")
    assert run is not None and run["status"] == JobStatus.COMPLETED and run["cost_usd"] == pytest.approx(0.42)
    assert run["total_ms"] == 180_000 and run["gpu_name"] == H100.name
    total = catalog.cost_total("lighthouse")
    assert total.usd == pytest.approx(0.42) and total.priced == total.runs == 1


def test_part_runs_catalogued_by_older_code_are_folded_into_their_run(store: Store, tmp_path: Path) -> None:
    """Older code took a finished part's metadata.json in as a run (sync), and a running part from the local
    endpoint's listing (source `endpoint`): the next sync folds both into the split run, which lists them; a
    catalogue that took the joined run in before runs had a `parts` column learns them."""
    plan = split_plan(split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.IN_PROGRESS))
    save_plan(store, plan)
    key = publish_part(store, plan.parts[0])
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.upsert_metadata(JobMetadata.model_validate_json(store.get(key)).model_dump(mode="json"), key)
    catalog.record_submission("part-job-1", plan.parts[1].job_input, endpoint_id="local", source="endpoint")
    catalog.record_submission("someone-else", {"prompt": "an unrelated run"}, endpoint_id="local")
    assert len(_listed(catalog)) == 3

    report = sync(catalog, store)

    assert report.folded == 2 and "2 parts folded into their split run" in report.summary()
    assert sorted(_listed(catalog)) == ["someone-else", "split-abc"]

    publish_joined(store, plan.model_copy(update={"parts": [plan.parts[0], split_part(1, JobStatus.COMPLETED)]}))
    sync(catalog, store)
    with catalog.conn:  # a catalogue from before schema v13 held the joined run without its parts
        catalog.conn.execute("UPDATE runs SET parts = NULL WHERE run_id = 'split-abc'")
    assert split_parts(catalog.get("split-abc") or {}) == []

    assert sync(catalog, store).updated == 1
    run = catalog.get("split-abc")
    assert run is not None and [p.job_id for p in split_parts(run)] == ["part-job-0", "part-job-1"]
    assert run["cost_usd"] == pytest.approx(0.2)


def test_a_foreign_split_json_is_skipped_with_its_reason_and_its_parts_stay_hidden(
    store: Store, tmp_path: Path
) -> None:
    """A split.json that is not a plan (or names another run) is skipped, saying why; what lies under its
    `parts/` is still never a run of its own."""
    plan = split_plan(split_part(0, JobStatus.COMPLETED))
    publish_part(store, plan.parts[0])
    store.put_bytes(plan.plan_key, json.dumps({"run_id": "split-abc", "parts": "many"}).encode())
    elsewhere = split_plan(split_part(0, "pending"), run_id="split-other")
    store.put_bytes("jobs/split-abc/parts/split.json", elsewhere.model_dump_json().encode())
    catalog = Catalog(tmp_path / "catalog.db")

    report = sync(catalog, store)

    assert _listed(catalog) == []
    reasons = dict(report.skipped)
    assert list(reasons) == [plan.plan_key], "a split.json under parts/ is a part's file too"
    assert reasons[plan.plan_key].startswith("does not match the split plan schema")


def test_a_deleted_split_run_stays_deleted_with_its_parts(store: Store, tmp_path: Path) -> None:
    plan = split_plan(split_part(0, JobStatus.COMPLETED), split_part(1, JobStatus.IN_PROGRESS))
    save_plan(store, plan)
    publish_part(store, plan.parts[0])
    catalog = Catalog(tmp_path / "catalog.db")
    sync(catalog, store)

    catalog.delete("split-abc", store)

    assert not store.exists(plan.plan_key)
    for fresh in (catalog, Catalog(tmp_path / "fresh.db")):
        report = sync(fresh, store)
        assert _listed(fresh) == [] and report.skipped == []
