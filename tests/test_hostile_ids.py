"""Hostile ids and prefixes: every value that becomes part of a store key or a path fits one pattern.

A batch item id of `../<another job>` once replaced that job's artifacts, `../../x` wrote outside the data dir
through the "keep unpublished files" step, and a NUL gave E_GENERATION_RUNTIME. Now the contract refuses such
values at validation, naming the field, and every store write checks that its key stays in its job's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.contract import ErrorCode, JobError, is_key_part, parse_job_input, safe_file_name
from core.settings import Settings
from core.store import LocalStore, Store, open_store
from tests.conftest import SHORT_JOB
from worker.pipeline import run_job

HOSTILE = {
    "parent": "../x",
    "grandparent": "../../x",
    "another job": "../victim",
    "nul": "a\x00b",
    "absolute": "/abs",
    "nested": "a/b",
    "backslash": "..\\x",
    "dot": ".",
    "dotdot": "..",
    "hidden": ".config",
    "fullwidth dots and solidus": "\uff0e\uff0e\uff0fx",
    "one-dot leaders": "\u2024\u2024",
    "right-to-left override": "a\u202ecod.exe",
    "combining dot": "a\u0307",
    "newline": "a\nb",
    "colon": "a:b",
    "very long": "a" * 129,
}


def error_of(settings: Settings, job_input: Any, job_id: str = "hostile") -> dict[str, Any]:
    output = run_job(job_input, job_id, settings=settings, sink=lambda _: None)
    assert output["status"] == "error", output
    return output["error"]


@pytest.mark.parametrize("item_id", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_batch_item_id_that_is_not_one_plain_folder_name_is_refused_naming_the_field(
    settings: Settings, item_id: str
) -> None:
    error = error_of(settings, {"batch": [{**SHORT_JOB, "id": item_id}]})

    assert error["code"] == ErrorCode.INPUT_VALIDATION and error["at_stage"] == "validation_started"
    assert error["message"].startswith("batch[0].id: ")
    assert "letters, digits" in error["message"] or "at most 128 characters" in error["message"]
    assert not settings.data_dir.exists(), "nothing is written for a refused job"


@pytest.mark.parametrize(
    "prefix", ["../up", "a/../b", "a/./b", "a//b", "a\x00", "\uff4aobs", "a b", "x" * 129], ids=repr
)
def test_an_output_prefix_with_a_part_that_is_not_a_plain_folder_name_is_refused(prefix: str) -> None:
    with pytest.raises(JobError) as refused:
        parse_job_input({**SHORT_JOB, "output_config": {"prefix": prefix}})
    assert refused.value.code == ErrorCode.INPUT_VALIDATION and "output_config.prefix" in refused.value.message


def test_plain_ids_and_prefixes_are_accepted() -> None:
    parsed = parse_job_input(
        {"batch": [{**SHORT_JOB, "id": "take-2_final.v1"}], "output_config": {"prefix": "/studio/2024-05/"}}
    )
    assert parsed.batch[0].id == "take-2_final.v1"  # type: ignore[union-attr]
    assert parsed.batch[0].output_config.prefix == "studio/2024-05"  # type: ignore[union-attr]


def test_a_job_id_that_would_climb_out_of_the_store_is_refused(settings: Settings) -> None:
    """Job ids come from RunPod or the endpoint, but `studio job --job-id` takes one from a person."""
    error = error_of(settings, SHORT_JOB, job_id="../../outside")
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "job id" in error["message"]
    assert not settings.data_dir.exists()


def test_an_item_id_naming_another_job_leaves_that_jobs_artifacts_alone(settings: Settings) -> None:
    victim = run_job(SHORT_JOB, "victim", settings=settings, sink=lambda _: None)
    assert victim["status"] == "success", victim
    store = LocalStore(settings.artifact_dir)
    before = {key: store.get(key) for key in store.list("jobs/victim")}

    error = error_of(settings, {"batch": [{**SHORT_JOB, "id": "../victim", "prompt": "attacker"}]}, "attacker")

    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert {key: store.get(key) for key in store.list("jobs")} == before


def test_user_file_names_are_made_to_fit_the_pattern() -> None:
    for name in ["", *HOSTILE.values(), "C:\\Users\\me\\voice.wav", "take 1 (final).mp3", "." * 200 + "x.wav"]:
        assert is_key_part(safe_file_name(name)), name
    assert safe_file_name("../../etc/pass wd?.wav") == "pass_wd_.wav"


def _stores(settings: Settings, s3_settings: Settings) -> list[Store]:
    s3 = open_store(s3_settings)
    s3.ensure_bucket()  # type: ignore[attr-defined]
    return [LocalStore(settings.artifact_dir), s3]


@pytest.mark.parametrize(
    "key",
    ["jobs/a/../b/video.mp4", "jobs/b/video.mp4", "jobs/a", "jobs/ab/video.mp4", "/jobs/a/x", "jobs/a/x\x00y"],
    ids=repr,
)
def test_a_store_write_outside_its_jobs_folder_raises_and_writes_nothing(
    settings: Settings, s3_settings: Settings, key: str
) -> None:
    """Both stores, the folder and a real S3 server: the check is the store's own, whoever calls it."""
    source = settings.data_dir / "x.bin"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")
    for store in _stores(settings, s3_settings):
        with pytest.raises(JobError) as refused:
            store.put_bytes(key, b"x", within="jobs/a")
        assert refused.value.code == ErrorCode.INPUT_VALIDATION, store.kind
        with pytest.raises(JobError):
            store.put(key, source, within="jobs/a")
        assert list(store.list("")) == [], store.kind
    assert sorted(p.name for p in Path(settings.data_dir).rglob("*")) == ["x.bin"]


def test_a_store_write_inside_its_jobs_folder_works(settings: Settings, s3_settings: Settings) -> None:
    for store in _stores(settings, s3_settings):
        assert store.put_bytes("jobs/a/item-1/video.mp4", b"abc", within="jobs/a") == 3
        assert store.get("jobs/a/item-1/video.mp4") == b"abc"


def test_a_run_stored_before_the_key_rule_stays_deletable_but_no_delete_climbs_folders(
    settings: Settings, s3_settings: Settings
) -> None:
    """An item id with a space was accepted before KEY_PART: its files must still be deletable from History."""
    legacy = "jobs/old job/my item/video.mp4"
    local, s3 = _stores(settings, s3_settings)
    (settings.artifact_dir / "jobs" / "old job" / "my item").mkdir(parents=True)
    (settings.artifact_dir / legacy).write_bytes(b"v")
    s3.client.put_object(Bucket=s3.bucket, Key=legacy, Body=b"v")  # type: ignore[attr-defined]
    outside = settings.data_dir / "keep.txt"
    outside.write_text("mine")
    for store in (local, s3):
        store.delete(legacy)
        assert not store.exists(legacy), store.kind
        for key in ("jobs/../../keep.txt", "../keep.txt", "jobs//x", "jobs/a\x00b", "jobs\\..\\x"):
            with pytest.raises(JobError) as refused:
                store.delete(key)
            assert refused.value.code == ErrorCode.INPUT_VALIDATION
    assert outside.read_text() == "mine"
