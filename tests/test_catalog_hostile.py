"""Hostile metadata.json files in the bucket: each is skipped with a reason naming the field, the rest are synced.

One file that SQLite, pydantic or a page cannot take once aborted every sync for everyone (params nested 300 deep,
`total_ms` 10**30, a dict where a key goes) or was taken in and crashed History (a string where a duration goes).
Every file here sits in a real bucket: a local folder and the SeaweedFS S3 server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog import Catalog, sync
from catalog.sync import MAX_BYTES, MAX_DEPTH
from core.settings import Settings
from core.store import LocalStore, Store, open_store
from tests.test_catalog_sync import metadata, publish


def nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


def shaped(job_id: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    """A good file for `job_id`, in its own folder, with one change made to its JSON."""
    data = json.loads(metadata(job_id).model_dump_json())
    change(data)
    return json.dumps(data).encode()


def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        data[last] = value

    return change


def raw(job_id: str, text: str) -> bytes:
    return text.replace("JOB", job_id).encode()


GOOD_JSON = metadata("x").model_dump_json()
HOSTILE: dict[str, tuple[Callable[[str], bytes], str]] = {
    # name: (the file's bytes for a job id, what the reason says)
    "deep-params": (lambda j: shaped(j, setter("params.deep", nested(300))), "nested more than 32 levels deep"),
    "deep-bomb": (
        lambda j: raw(j, '{"schema_version": 1, "job_id": "JOB", "params": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "nested more than 32 levels deep",
    ),
    "total-ms-1e30": (lambda j: shaped(j, setter("timings.total_ms", 10**30)), "timings.total_ms: Input should be"),
    "width-1e20": (lambda j: shaped(j, setter("outputs.video.width", 10**20)), "outputs.video.width: Input should"),
    "duration-string": (
        lambda j: shaped(j, setter("outputs.video.duration_s", "long")),
        "outputs.video.duration_s: Input should be a valid number",
    ),
    "duration-infinite": (
        lambda j: shaped(j, setter("outputs.video.duration_s", float("inf"))),
        "unreadable: ValueError: Infinity is not a JSON value",
    ),
    "frames-nan": (lambda j: shaped(j, setter("outputs.video.frames", float("nan"))), "NaN is not a JSON value"),
    "frames-bool": (lambda j: shaped(j, setter("outputs.video.frames", True)), "outputs.video.frames:"),
    "key-a-dict": (lambda j: shaped(j, setter("outputs.video.key", {"a": 1})), "outputs.video.key: must lie beside"),
    "error-code-list": (
        lambda j: shaped(j, lambda d: d.update(status="error", error={"code": ["E"], "message": "m"})),
        "error.code: Input should be a valid string",
    ),
    "error-message-dict": (
        lambda j: shaped(j, lambda d: d.update(status="error", error={"code": "E_X", "message": {"m": 1}})),
        "error.message: Input should be a valid string",
    ),
    "prompt-huge": (lambda j: shaped(j, setter("prompt", "talk " * 10_000)), "prompt: String should have at most"),
    "prompt-surrogate": (lambda j: shaped(j, setter("prompt", "hi \ud800")), "prompt: not text (a lone surrogate"),
    "param-name-surrogate": (lambda j: shaped(j, setter("params.\udfff", 1)), "a name in params is not text"),
    "not-utf8": (lambda j: shaped(j, setter("prompt", "café")).replace(b"caf\\u00e9", b"caf\xe9"), "not UTF-8 text"),
    "json-bomb-3mb": (
        lambda j: shaped(j, setter("params.padding", {f"k{n}": n for n in range(300_000)})),
        f"larger than {MAX_BYTES // 1024} KiB",
    ),
    "int-5000-digits": (lambda j: raw(j, '{"schema_version": 1, "job_id": "JOB", "n": ' + "9" * 5000 + "}"), "digits"),
    "created-not-a-time": (lambda j: shaped(j, setter("created_at", "yesterday")), "created_at: must be an ISO 8601"),
    "every-field-a-list": (
        lambda j: json.dumps(
            {name: [] for name in json.loads(GOOD_JSON)} | {"schema_version": 1, "job_id": j}
        ).encode(),
        "does not match the metadata schema",
    ),
    "schema-version-huge": (lambda j: shaped(j, setter("schema_version", 10**40)), "is newer than this catalogue"),
    "impostor": (lambda j: shaped(j, setter("job_id", "victim")), "job_id: the file of run 'victim' must be"),
    "points-at-another-video": (
        lambda j: shaped(j, setter("outputs.video.key", "jobs/victim/video.mp4")),
        "outputs.video.key: must lie beside the file",
    ),
}
"""Each file skipped, for the reason given. The job id is the case's name, and the file is in its folder."""


def hostile_bucket(store: Store) -> None:
    """Two good runs (one with odd but harmless params) and one file for every hostile case."""
    publish(store, metadata("victim"))
    odd = {**metadata("odd-params").params, "base_seed": 10**30, "sample_text_guide_scale": float("inf")}
    publish(store, metadata("odd-params", params=odd))
    for name, (content, _) in HOSTILE.items():
        store.put_bytes(f"jobs/{name}/metadata.json", content(name))


def assert_synced_around_the_hostile_files(store: Store, catalog: Catalog) -> None:
    report = sync(catalog, store)

    assert (report.added, report.updated) == (2, 0), report.skipped
    reasons = {key.split("/")[1]: reason for key, reason in report.skipped}
    assert set(reasons) == set(HOSTILE)
    for name, (_, expected) in HOSTILE.items():
        assert expected in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name] and len(reasons[name]) <= 300, (name, reasons[name])
    odd = catalog.get("odd-params")
    assert (odd["base_seed"], odd["text_guide_scale"]) == (None, None), "out-of-range params never reach a column"
    assert odd["params"]["base_seed"] == 10**30, "the full params keep them"
    victim = catalog.get("victim")
    assert (victim["video_key"], victim["total_ms"]) == ("jobs/victim/video.mp4", 65_000), "no impostor replaced it"
    assert {row["run_id"] for row in catalog.search("").rows} == {"victim", "odd-params"}

    again = sync(catalog, store)
    assert (again.added, again.unchanged, len(again.skipped)) == (0, 2, len(HOSTILE)), "and the next sync too"


def test_a_local_bucket_of_hostile_files_is_synced_around_them(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    hostile_bucket(store)
    assert_synced_around_the_hostile_files(store, Catalog(tmp_path / "catalog.db"))


def test_an_s3_bucket_of_hostile_files_is_synced_around_them(s3_settings: Settings, tmp_path: Path) -> None:
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    hostile_bucket(store)
    assert_synced_around_the_hostile_files(store, Catalog(tmp_path / "catalog.db"))


@pytest.mark.parametrize(("levels", "kept"), [(MAX_DEPTH - 2, True), (MAX_DEPTH - 1, False)])
def test_the_depth_limit_counts_every_level_of_the_file(tmp_path: Path, levels: int, kept: bool) -> None:
    """The document and `params` are two levels: 30 more make 32, the most a file may have (the worker's have 4)."""
    store = LocalStore(tmp_path / "artifacts")
    store.put_bytes("jobs/deep/metadata.json", shaped("deep", setter("params.deep", nested(levels))))
    report = sync(Catalog(tmp_path / "catalog.db"), store)
    assert report.added == int(kept), report.skipped


def test_a_large_but_sane_file_is_read(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts")
    store.put_bytes("jobs/long/metadata.json", shaped("long", setter("params.notes", ["a line of notes"] * 10_000)))
    assert sync(Catalog(tmp_path / "catalog.db"), store).added == 1
