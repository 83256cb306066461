"""The contract is the one source of truth: examples validate, the schema exports, limits hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.payloads import load_payload
from core.contract import BatchInput, JobParams, job_input_schema, metadata_schema, parse_job_input
from tests.conftest import EXAMPLES

PAYLOADS = sorted(EXAMPLES.glob("*.json"))


def test_there_is_an_example_for_every_kind_of_job() -> None:
    names = {path.stem for path in PAYLOADS}
    assert {"single_image", "video_dubbing", "two_speakers_add", "two_speakers_para", "tts", "batch"} <= names


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.stem)
def test_every_example_validates_and_its_media_exist(path: Path) -> None:
    parsed = parse_job_input(load_payload(path))
    items = parsed.batch if isinstance(parsed, BatchInput) else [parsed]
    for item in items:
        assert Path(item.cond_video).is_file()
        if item.cond_audio:
            assert Path(item.cond_audio.person1).is_file()


def test_the_job_input_schema_is_json_and_covers_single_jobs_and_batches() -> None:
    schema = json.loads(json.dumps(job_input_schema()))
    single = schema["$defs"]["JobParams"]["properties"]
    assert {"prompt", "cond_video", "cond_audio", "tts_audio", "frame_num", "base_seed", "lora", "quant"} <= set(single)
    assert len(schema["oneOf"]) == 2
    assert "job_id" in metadata_schema()["properties"]


def test_defaults_follow_infinitetalk() -> None:
    params = JobParams(prompt="p", cond_video="/a.jpg", cond_audio={"person1": "/a.wav"})
    assert (params.size, params.mode, params.frame_num, params.sample_steps) == ("infinitetalk-480", "clip", 81, 40)
    assert params.resolved_sample_shift() == 7.0
    assert params.model_copy(update={"size": "infinitetalk-720"}).resolved_sample_shift() == 11.0


def test_a_batch_output_config_applies_to_items_that_have_none() -> None:
    parsed = parse_job_input(load_payload(EXAMPLES / "batch.json"))
    assert isinstance(parsed, BatchInput)
    assert {item.output_config.prefix for item in parsed.batch} == {"batches"}


def test_a_failure_has_one_shape_and_one_status_rule() -> None:
    """`{"status": "error", "error": …}` was assembled by hand in seven places; `final_status` (endpoint) and
    `outcome_status` (catalogue) were one rule written twice. Both now live in the contract."""
    from core.contract import ErrorCode, JobError, JobFailure, JobStatus, output_status

    cancelled = JobFailure.of(JobError(ErrorCode.CANCELLED, "stopped"), job_id="j1", item_id=None)
    assert cancelled == {"status": "error", "error": JobError(ErrorCode.CANCELLED, "stopped").to_dict(), "job_id": "j1"}
    assert output_status(cancelled) == JobStatus.CANCELLED
    assert output_status(JobFailure.of({"code": ErrorCode.TIMEOUT, "message": "late"})) == JobStatus.TIMED_OUT
    assert output_status(JobFailure.of({"code": ErrorCode.OOM, "message": "big"})) == JobStatus.FAILED
    assert output_status({"status": "error", "error": "not a dict"}) == JobStatus.FAILED
    assert output_status({"status": "success"}) == output_status("anything") == JobStatus.COMPLETED
