"""The bucket keeps everything the catalogue knows: curation, requests and deletions survive a wiped disk.

SeaweedFS is the bucket. Each test deletes catalog.db (as Streamlit Community Cloud's restart does) or opens a
second catalogue on the same bucket, and checks what `sync` brings back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog import Catalog, bucket, sync
from catalog.cli import main as cli
from catalog.sync import restore_unfinished
from core.contract import INLINE_MEDIA_NOTE, JobStatus
from core.settings import Settings
from core.store import LocalStore, S3Store, Store, open_store
from tests.test_catalog_sync import metadata, publish


@pytest.fixture
def s3(s3_settings: Settings) -> S3Store:
    store = open_store(s3_settings)
    assert isinstance(store, S3Store)
    store.ensure_bucket()
    return store


@pytest.fixture
def cli_env(s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`studio catalog` configured for the test bucket; returns its catalogue file."""
    path = tmp_path / "cli" / "catalog.db"
    env = {
        "STUDIO_DATA_DIR": str(tmp_path / "cli"),
        "STUDIO_CATALOG": str(path),
        "S3_BUCKET": s3_settings.s3_bucket or "",
        "S3_ENDPOINT_URL": s3_settings.s3_endpoint_url or "",
        "S3_ACCESS_KEY": s3_settings.s3_access_key or "",
        "S3_SECRET_KEY": s3_settings.s3_secret_key or "",
        "STUDIO_STORE": "s3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return path


def wipe(path: Path) -> None:
    """What a restart on Community Cloud does to the catalogue: the file and its WAL are gone."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def curation(run: dict) -> tuple[list[str], int, str]:
    return run["tag_list"], run["favourite"], run["note"] or ""


def test_curation_from_the_api_and_the_cli_comes_back_after_the_catalogue_is_deleted(
    s3: S3Store, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for job_id in ("run-a", "run-b", "run-c"):
        publish(s3, metadata(job_id))
    catalog = Catalog(cli_env)
    assert sync(catalog, s3).added == 3
    catalog.curate("run-a", tags=["Launch", "keep"], favourite=True, note="the good take", store=s3)
    assert cli(["tag", "run-b", "review", "blue"]) == 0
    assert cli(["untag", "run-b", "BLUE"]) == 0
    assert cli(["note", "run-b", "needs a second look"]) == 0
    assert cli(["favourite", "run-c"]) == 0
    assert cli(["favourite", "run-c", "--off"]) == 0
    assert cli(["tag", "run-c", "draft"]) == 0
    assert "run-c: tags draft · favourite no" in capsys.readouterr().out
    catalog.close()

    wipe(cli_env)
    assert cli(["sync"]) == 0
    assert "3 added" in capsys.readouterr().out
    rebuilt = Catalog(cli_env)
    assert curation(rebuilt.get("run-a")) == (["Launch", "keep"], 1, "the good take")
    assert curation(rebuilt.get("run-b")) == (["review"], 0, "needs a second look")
    assert curation(rebuilt.get("run-c")) == (["draft"], 0, "")
    assert rebuilt.search("second look").total == 1, "a restored note is searchable again"


def test_a_curation_command_for_an_unknown_run_names_the_fix(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["tag", "no-such-run", "x"]) == 2
    error = capsys.readouterr().err
    assert "run_id: no run 'no-such-run'" in error and "studio catalog sync" in error


def test_two_catalogues_on_one_bucket_see_each_others_curation_and_the_newest_change_wins(
    s3: S3Store, tmp_path: Path
) -> None:
    publish(s3, metadata("shared"))
    first, second = Catalog(tmp_path / "a.db"), Catalog(tmp_path / "b.db")
    sync(first, s3), sync(second, s3)

    first.curate("shared", tags=["from-a"], note="a's note", store=s3)
    assert sync(second, s3).curated == 1
    assert curation(second.get("shared")) == (["from-a"], 0, "a's note")

    second.curate("shared", note="b's newer note", favourite=True, store=s3)
    # The first dashboard saves its form again without having synced: its note and favourite are unchanged, so
    # they keep their older times and b's newer ones survive, in the bucket and in the first catalogue; its
    # tags did change, and are the newest.
    first.curate("shared", tags=["from-a", "again"], note="a's note", favourite=False, store=s3)
    assert curation(first.get("shared")) == (["from-a", "again"], 1, "b's newer note")
    sync(second, s3)
    assert curation(second.get("shared")) == (["from-a", "again"], 1, "b's newer note")

    wipe(tmp_path / "b.db")
    rebuilt = Catalog(tmp_path / "b.db")
    sync(rebuilt, s3)
    assert curation(rebuilt.get("shared")) == (["from-a", "again"], 1, "b's newer note")


def test_a_deleted_run_stays_deleted_here_and_leaves_the_other_catalogue(s3: S3Store, tmp_path: Path) -> None:
    publish(s3, metadata("kept"))
    publish(s3, metadata("doomed"))
    # A failed run as polling recorded it: the row never learnt its metadata.json key, which the worker wrote.
    failure = {"code": "E_GENERATION", "message": "out of memory", "retryable": False}
    publish(s3, metadata("failed", status="error", error=failure, outputs={}))
    here, there = Catalog(tmp_path / "here.db"), Catalog(tmp_path / "there.db")
    sync(there, s3)
    here.record_submission("failed", {"prompt": "p"}, endpoint_id="runpod-abc")
    here.apply_status("failed", JobStatus.FAILED, error=failure)
    sync(here, s3)
    here.curate("doomed", tags=["bad"], store=s3)

    here.delete("doomed", s3)
    here.delete("failed", s3)
    assert not any(key.startswith(("jobs/doomed/", "jobs/failed/")) and "deleted" not in key for key in s3.list(""))

    # A worker still running when its run was deleted writes metadata.json afterwards; it must not come back.
    publish(s3, metadata("doomed"))
    assert sync(here, s3).added == 0
    assert {row["run_id"] for row in here.search("").rows} == {"kept"}
    report = sync(there, s3)
    assert report.deleted == 2 and "2 kept deleted" in report.summary()
    assert {row["run_id"] for row in there.search("").rows} == {"kept"}, "the other catalogue forgets them too"
    wipe(tmp_path / "here.db")
    rebuilt = Catalog(tmp_path / "here.db")
    sync(rebuilt, s3, full=True)
    assert {row["run_id"] for row in rebuilt.search("").rows} == {"kept"}


def test_a_request_in_the_bucket_brings_back_an_unfinished_job_with_who_sent_it(s3: S3Store, tmp_path: Path) -> None:
    job = {"prompt": "still rendering", "cond_video": "data:image/png;base64," + "A" * 200, "sample_steps": 4}
    document = bucket.request_document("job-running", job, endpoint_id="ep-1", submitted_by="ann@example.com")
    key = bucket.write_request(s3, document)
    assert key == "jobs/job-running/request.json"
    stored = json.loads(s3.get(key))
    assert "data:" not in json.dumps(stored) and "AAAA" not in json.dumps(stored), "inline media never reach it"
    assert stored["params"]["cond_video"] == INLINE_MEDIA_NOTE
    assert (stored["submitted_by"], stored["endpoint_id"]) == ("ann@example.com", "ep-1")

    catalog = Catalog(tmp_path / "catalog.db")
    assert restore_unfinished(catalog, s3).restored == 1
    (run,) = catalog.unfinished("ep-1")
    assert (run["run_id"], run["status"], run["prompt"]) == ("job-running", JobStatus.IN_QUEUE, "still rendering")
    assert run["submitted_by"] == "ann@example.com"
    assert restore_unfinished(catalog, s3).restored == 0, "a request taken in once is not read again"

    # Once the job has finished, a rebuilt catalogue takes the run from metadata.json and who sent it from the
    # request: metadata.json does not say.
    publish(s3, metadata("job-running"))
    wipe(tmp_path / "catalog.db")
    rebuilt = Catalog(tmp_path / "catalog.db")
    report = sync(rebuilt, s3)
    assert (report.added, report.restored) == (1, 0)
    run = rebuilt.get("job-running")
    assert (run["status"], run["submitted_by"]) == (JobStatus.COMPLETED, "ann@example.com")
    assert rebuilt.search("", submitted_by="ann@example.com").total == 1
    assert rebuilt.search("", submitted_by="bob@example.com").total == 0


GOOD_CURATION = {
    "kind": "studio.curation",
    "version": 1,
    "job_id": "JOB",
    "note": {"value": "n", "at": "2026-11-20T10:00:00.000Z"},
}
HOSTILE = {
    "curation-not-json": ("curation.json", b"{nope", "unreadable: JSONDecodeError"),
    "curation-huge": ("curation.json", b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}', "larger than 1024 KiB"),
    "curation-impostor": ("curation.json", {**GOOD_CURATION, "job_id": "victim"}, "job_id: the file of run 'victim'"),
    "curation-tags-a-string": (
        "curation.json",
        {**GOOD_CURATION, "tags": {"value": "a,b", "at": "2026-11-20T10:00:00Z"}},
        "curation schema: tags.value: Input should be a valid list",
    ),
    "curation-time-not-iso": (
        "curation.json",
        {**GOOD_CURATION, "note": {"value": "n", "at": "tomorrow"}},
        "note.at: must be an ISO 8601 time",
    ),
    "curation-extra-field": ("curation.json", {**GOOD_CURATION, "owner": "x"}, "owner: Extra inputs are not permitted"),
    "request-inline-media": (
        "request.json",
        {
            "kind": "studio.request",
            "version": 1,
            "job_id": "JOB",
            "endpoint_id": "e",
            "submitted_at": "2026-11-20T10:00:00Z",
            "params": {"cond_video": "data:image/png;base64,AAAA"},
        },
        "request schema: params: holds inline media",
    ),
    "request-no-time": (
        "request.json",
        {"kind": "studio.request", "version": 1, "job_id": "JOB", "endpoint_id": "e", "params": {}},
        "submitted_at: Field required",
    ),
    "tombstone-wrong-kind": (
        "deleted.json",
        {"kind": "studio.curation", "version": 1, "job_id": "JOB", "deleted_at": "2026-11-20T10:00:00Z"},
        "deletion schema: kind: Input should be 'studio.deleted'",
    ),
    "tombstone-impostor": (
        "deleted.json",
        {"kind": "studio.deleted", "version": 1, "job_id": "victim", "deleted_at": "2026-11-20T10:00:00Z"},
        "job_id: the file of run 'victim'",
    ),
}
"""The catalogue's own files, made hostile: each is skipped for the reason given; the job id is the case's name."""


@pytest.mark.parametrize("kind", ["volume", "s3"])
def test_hostile_curation_request_and_tombstone_files_are_skipped_with_a_reason(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store: Store = request.getfixturevalue("s3") if kind == "s3" else LocalStore(tmp_path / "artifacts")
    publish(store, metadata("victim"))
    catalog = Catalog(tmp_path / "catalog.db")
    catalog_curated = sync(catalog, store)
    assert catalog_curated.added == 1
    catalog.curate("victim", tags=["safe"], store=store)
    for name, (file, content, _) in HOSTILE.items():
        publish(store, metadata(name))
        data = content if isinstance(content, bytes) else json.dumps(content).replace("JOB", name).encode()
        store.put_bytes(f"jobs/{name}/{file}", data)

    report = sync(catalog, store)
    reasons = {key.split("/")[1]: reason for key, reason in report.skipped}
    assert set(reasons) == set(HOSTILE)
    for name, (_, _, expected) in HOSTILE.items():
        assert expected in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name] and len(reasons[name]) <= 300
    assert catalog.get("victim")["tag_list"] == ["safe"], "no impostor touched the victim's curation"
    assert catalog.get("victim") is not None and catalog.get("tombstone-impostor") is not None
