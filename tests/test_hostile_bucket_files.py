"""Hostile files in the bucket, round three (issue 27): what anyone who can write to the store can put beside a
run, and what the catalogue must still do: never wait on a FIFO, refuse curation the bucket cannot hold before the
row changes, keep a run in its own folder and deleted under any prefix, keep a time from the future from freezing a
field, keep a request file from relabelling who sent a run, and never overwrite a curation file it could not read.

The stores are real: a folder (LocalStore) and SeaweedFS behind a loopback proxy that fails chosen GETs, the way a
network blip or a busy server does.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from catalog import Catalog, bucket, sync
from catalog.cli import main as cli
from catalog.sync import settle
from core.contract import ErrorCode, JobError, JobStatus
from core.settings import Settings
from core.store import LocalStore, S3Store, open_store
from tests.s3server import S3Server
from tests.test_catalog_sync import metadata, publish

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60
"""How long a call that should return at once may take before the test calls it hung (the machine is loaded)."""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose folder store and catalogue `studio catalog` uses (and so does this test)."""
    for name in ("S3_BUCKET", "S3_ENDPOINT_URL", "STUDIO_STORE", "STUDIO_CATALOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def store(data_dir: Path) -> LocalStore:
    made = open_store(Settings.from_env())
    assert isinstance(made, LocalStore)
    return made


@pytest.fixture
def catalog(data_dir: Path) -> Catalog:
    return Catalog(Settings.from_env().catalog_file)


def synced(catalog: Catalog, store: LocalStore, *job_ids: str) -> None:
    for job_id in job_ids:
        publish(store, metadata(job_id))
    report = sync(catalog, store)
    assert report.added == len(job_ids) and not report.skipped, report


def in_time(action: Callable[[], Any], unblock: Path | None = None) -> Any:
    """Run `action` in a thread and return what it returned; fail (never hang) when it does not end in WAIT_S.
    A FIFO it waits on is then opened for writing and closed, so the stuck reader sees its end and the thread
    ends too."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT_S)
    if thread.is_alive():
        if unblock is not None:
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"still waiting after {WAIT_S} s: a FIFO was opened for reading")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --- 7. a FIFO where a run's file belongs -------------------------------------------------------------------


def test_catalog_tag_with_a_fifo_at_curation_json_ends_and_replaces_it(data_dir: Path, store: LocalStore) -> None:
    catalog = Catalog(Settings.from_env().catalog_file)
    synced(catalog, store, "fifo-run")
    fifo = store.path("jobs/fifo-run/curation.json")
    os.mkfifo(fifo)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "studio", "catalog", "tag", "fifo-run", "keep"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
    except subprocess.TimeoutExpired:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"`catalog tag` still waited on the FIFO after {WAIT_S} s")
    assert done.returncode == 0, done.stderr
    assert "a FIFO, not a regular file" in done.stderr, "the log says what was replaced"
    assert fifo.is_file(), "the FIFO gave way to the run's real curation file"
    assert json.loads(fifo.read_text())["tags"]["value"] == ["keep"]


def test_history_save_and_settle_never_wait_on_a_fifo(catalog: Catalog, store: LocalStore) -> None:
    catalog.record_submission("fifo-meta", {"prompt": "p"}, endpoint_id="local", status=JobStatus.IN_PROGRESS)
    folder = store.root / "jobs" / "fifo-meta"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "metadata.json")
    run = catalog.get("fifo-meta")
    assert in_time(lambda: settle(catalog, store, run), unblock=folder / "metadata.json") is None
    with pytest.raises(JobError, match="a FIFO, not a regular file"):
        in_time(lambda: store.get("jobs/fifo-meta/metadata.json"), unblock=folder / "metadata.json")

    os.mkfifo(folder / "curation.json")
    # History's Save is Catalog.curate with the dashboard's store.
    in_time(lambda: catalog.curate("fifo-meta", note="seen", store=store), unblock=folder / "curation.json")
    assert json.loads((folder / "curation.json").read_text())["note"]["value"] == "seen"


def test_a_folder_where_curation_json_belongs_is_one_line_not_a_crash(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "dir-run")
    (store.path("jobs/dir-run") / "curation.json").mkdir()
    with pytest.raises(JobError) as raised:
        catalog.curate("dir-run", tags=["x"], store=store)
    assert raised.value.code == ErrorCode.UPLOAD and "saved in the catalogue but not in the bucket" in str(raised.value)
    assert not [p.name for p in store.path("jobs/dir-run").iterdir() if p.name.endswith(".partial")], "no temp left"


# --- 8. curation limits, checked before the row changes -----------------------------------------------------


@pytest.mark.parametrize(
    ("command", "limit"),
    [
        (["tag", "lim-run", *[f"t{index}" for index in range(bucket.MAX_TAGS + 1)]], "at most 100 tags"),
        (["tag", "lim-run", "x" * 300], "a tag is at most 256 characters"),
        (["note", "lim-run", "n" * 25_000], "note: at most 20000 characters"),
    ],
)
def test_curation_over_the_buckets_limits_is_one_line_and_changes_nothing(
    catalog: Catalog, store: LocalStore, capsys: pytest.CaptureFixture[str], command: list[str], limit: str
) -> None:
    synced(catalog, store, "lim-run")
    assert cli(["tag", "lim-run", "before"]) == 0
    written = store.path("jobs/lim-run/curation.json").read_bytes()
    capsys.readouterr()

    assert cli(command) == 2
    error = capsys.readouterr().err
    assert limit in error and error.count("\n") == 1, error
    run = catalog.get("lim-run")
    assert (run["tag_list"], run["note"]) == (["before"], None), "the row is as it was"
    assert store.path("jobs/lim-run/curation.json").read_bytes() == written
    assert cli(["tag", "lim-run", "after"]) == 0, "later changes to the run still work"
    assert catalog.get("lim-run")["tag_list"] == ["before", "after"]


def test_the_limits_are_the_bucket_models(catalog: Catalog) -> None:
    catalog.record_submission("lim-api", {"prompt": "p"}, endpoint_id="local")
    at_limit = [f"t{index}" for index in range(bucket.MAX_TAGS)]
    catalog.curate("lim-api", tags=at_limit, note="n" * bucket.MAX_NOTE_CHARS)
    assert len(catalog.get("lim-api")["tag_list"]) == bucket.MAX_TAGS
    for change in ({"tags": [*at_limit, "one-more"]}, {"note": "n" * (bucket.MAX_NOTE_CHARS + 1)}):
        with pytest.raises(JobError) as raised:
            catalog.curate("lim-api", **change)
        assert raised.value.code == ErrorCode.INPUT_VALIDATION and "\n" not in raised.value.message


# --- 9. a run stays in its folder; a tombstone covers its id -------------------------------------------------


def copy_under(store: LocalStore, job_id: str, prefix: str) -> str:
    """A copy of a run's metadata.json under another prefix, its artifacts pointing there, finished later (so
    that, as a newer file, it would replace the run's row)."""
    meta = json.loads(store.path(f"jobs/{job_id}/metadata.json").read_text())
    meta["finished_at"] = "2026-11-20T10:05:00.000Z"
    for artifact in meta["outputs"].values():
        artifact["key"] = artifact["key"].replace("jobs/", f"{prefix}/", 1)
    key = f"{prefix}/{job_id}/metadata.json"
    store.put_bytes(key, json.dumps(meta).encode())
    return key


def test_a_copy_under_another_prefix_cannot_repoint_a_run(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "home-run")
    evil = copy_under(store, "home-run", "evil")
    report = sync(catalog, store, full=True)
    assert catalog.get("home-run")["video_key"] == "jobs/home-run/video.mp4"
    assert "lives in jobs/home-run/" in dict(report.skipped)[evil]


def test_on_a_fresh_catalogue_the_first_folder_wins_and_the_other_is_a_warning(
    catalog: Catalog, store: LocalStore
) -> None:
    publish(store, metadata("twice"))
    copy = copy_under(store, "twice", "other")
    report = sync(catalog, store)
    assert report.added == 1 and [key for key, _ in report.skipped] == ["other/twice/metadata.json"] == [copy]
    assert catalog.get("twice")["metadata_key"] == "jobs/twice/metadata.json"


def test_a_deleted_run_is_not_revived_by_a_copy_under_another_prefix(
    data_dir: Path, catalog: Catalog, store: LocalStore
) -> None:
    synced(catalog, store, "gone-run")
    meta = store.get("jobs/gone-run/metadata.json")  # a copy taken before the delete
    catalog.delete("gone-run", store)
    store.put_bytes("evil/gone-run/metadata.json", meta.replace(b'"jobs/', b'"evil/'))

    report = sync(catalog, store)
    assert catalog.get("gone-run") is None
    assert "was deleted (jobs/gone-run/deleted.json)" in dict(report.skipped)["evil/gone-run/metadata.json"]
    rebuilt = Catalog(data_dir / "rebuilt.db")
    sync(rebuilt, store)
    assert rebuilt.get("gone-run") is None, "a catalogue rebuilt from the bucket keeps it deleted too"


def test_a_tombstone_in_another_folder_cannot_delete_a_live_run(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "live-run")
    tombstone = bucket.TombstoneFile(job_id="live-run", deleted_at="2026-12-01T00:00:00Z")
    store.put_bytes("evil/live-run/deleted.json", tombstone.model_dump_json().encode())
    report = sync(catalog, store)
    assert catalog.get("live-run") is not None
    assert "lives in jobs/live-run/" in dict(report.skipped)["evil/live-run/deleted.json"]


# --- Low: a request file cannot relabel a run ----------------------------------------------------------------


def request_file(job_id: str, submitted_by: str | None, prefix: str | None = None) -> bucket.RequestFile:
    params: dict[str, Any] = {"prompt": "p"} | ({"output_config": {"prefix": prefix}} if prefix else {})
    return bucket.request_document(job_id, params, endpoint_id="local", submitted_by=submitted_by)


def test_a_request_file_rewritten_in_the_bucket_cannot_name_another_sender(catalog: Catalog, store: LocalStore) -> None:
    sent = request_file("sent-run", None)  # sent under a shared password: no one is named
    catalog.record_submission("sent-run", sent.params, endpoint_id="local", submitted_by=None)
    catalog.record_request(sent, bucket.write_request(store, sent), restore=False)
    bucket.write_request(store, request_file("sent-run", "ceo@example.com"))
    sync(catalog, store, full=True)
    assert catalog.get("sent-run")["submitted_by"] is None


def test_a_request_under_another_prefix_is_refused(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "req-run")
    key = bucket.write_request(store, request_file("req-run", "mallory@example.com", prefix="evil"))
    report = sync(catalog, store, full=True)
    run = catalog.get("req-run")
    assert (run["submitted_by"], run["request_key"]) == (None, None)
    assert "lives in jobs/req-run/" in dict(report.skipped)[key]


def test_a_synced_run_still_learns_who_sent_it_from_its_own_request(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "learn-run")
    bucket.write_request(store, request_file("learn-run", "ana@example.com"))
    sync(catalog, store)
    assert catalog.get("learn-run")["submitted_by"] == "ana@example.com"


# --- 10. a time from the future does not freeze a field ------------------------------------------------------


@pytest.mark.parametrize("future", ["9999-12-31", "9999-12-31T23:59:59.999999-14:00", "2999-01-01T00:00:00+00:00"])
def test_a_far_future_time_in_curation_json_does_not_freeze_the_field(
    catalog: Catalog, store: LocalStore, future: str
) -> None:
    synced(catalog, store, "future-run")
    planted = {"job_id": "future-run", "note": {"value": "planted", "at": future}}
    store.put_bytes("jobs/future-run/curation.json", json.dumps(planted).encode())
    sync(catalog, store)
    assert catalog.get("future-run")["note"] == "planted", "the file's value is taken"

    catalog.curate("future-run", note="my edit", store=store)
    assert catalog.get("future-run")["note"] == "my edit"
    written = json.loads(store.path("jobs/future-run/curation.json").read_text())
    assert written["note"]["value"] == "my edit" and not written["note"]["at"].startswith(("9999", "2999"))
    sync(catalog, store)
    assert catalog.get("future-run")["note"] == "my edit", "a later sync keeps it"


def test_curation_times_compare_as_moments_not_as_text(catalog: Catalog, store: LocalStore) -> None:
    synced(catalog, store, "zone-run")
    catalog.apply_curation("zone-run", {"note": ("at nine UTC", "2026-11-07T09:00:00.000Z")})
    # 10:00 at +02:00 is 08:00 UTC: older, though its text sorts after.
    assert not catalog.apply_curation("zone-run", {"note": ("older", "2026-11-07T10:00:00+02:00")})
    assert catalog.apply_curation("zone-run", {"note": ("newer", "2026-11-07T09:30:00+00:00")})
    assert catalog.get("zone-run")["note"] == "newer"


# --- Low: push_curation never overwrites what it could not read ----------------------------------------------


class FailingGets(BaseHTTPRequestHandler):
    """A loopback proxy to the S3 server that answers 503 SlowDown to the next `fails` GETs of a curation.json."""

    upstream = ""
    fails = 0
    failed = 0

    def _forward(self) -> None:
        if self.command == "GET" and self.path.split("?")[0].endswith("/curation.json") and type(self).fails:
            type(self).fails -= 1
            type(self).failed += 1
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():  # Host too: the signature was made for it
            connection.putheader(name, value)
        connection.endheaders(body)
        answer = connection.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_s3(s3_settings: Settings, s3_server: S3Server) -> Iterator[tuple[S3Store, S3Store]]:
    """(a store through the failing proxy, the same bucket straight on the server), with no retries in boto."""
    direct = open_store(s3_settings)
    assert isinstance(direct, S3Store)
    direct.ensure_bucket()
    FailingGets.upstream, FailingGets.fails, FailingGets.failed = s3_server.endpoint_url, 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingGets)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxied = S3Store(
        direct.bucket,
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        max_attempts=0,  # botocore's retries after the first try: none, so each read here is one GET
    )
    yield proxied, direct
    server.shutdown()
    server.server_close()


def test_a_curation_file_that_cannot_be_read_is_not_overwritten(
    flaky_s3: tuple[S3Store, S3Store], tmp_path: Path
) -> None:
    proxied, direct = flaky_s3
    publish(direct, metadata("flaky-run"))
    here, there = Catalog(tmp_path / "here.db"), Catalog(tmp_path / "there.db")
    sync(here, direct)
    sync(there, direct)
    there.curate("flaky-run", note="the other dashboard's newer note", store=direct)
    theirs = direct.get("jobs/flaky-run/curation.json")

    FailingGets.fails = 10
    with pytest.raises(JobError) as raised:
        here.curate("flaky-run", tags=["mine"], store=proxied)
    assert "could not be read to merge with" in raised.value.message and "left as it was" in raised.value.message
    assert FailingGets.failed == 1 + len(bucket.READ_RETRY_S), "asked again before giving up"
    assert direct.get("jobs/flaky-run/curation.json") == theirs, "the other dashboard's note is still there"


def test_a_curation_file_that_fails_once_is_read_again_and_merged(
    flaky_s3: tuple[S3Store, S3Store], tmp_path: Path
) -> None:
    proxied, direct = flaky_s3
    publish(direct, metadata("blip-run"))
    here, there = Catalog(tmp_path / "here.db"), Catalog(tmp_path / "there.db")
    sync(here, direct)
    sync(there, direct)
    there.curate("blip-run", note="their note", store=direct)

    FailingGets.fails = 1
    here.curate("blip-run", tags=["mine"], store=proxied)
    written = json.loads(direct.get("jobs/blip-run/curation.json"))
    assert (written["tags"]["value"], written["note"]["value"]) == (["mine"], "their note")
    assert here.get("blip-run")["note"] == "their note"
