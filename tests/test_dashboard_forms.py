"""The Submit form's logic: bounds and defaults from the contract, job inputs, errors by field, presets, batches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.contract import Defaults, JobParams, Limits, parse_job_input
from dashboard.batch import BatchFileError, read_batch
from dashboard.forms import (
    GPU_ONLY_PARAMS,
    OPTIONAL_PARAMS,
    PARAM_NAMES,
    Speech,
    Widget,
    bounds,
    build_job_input,
    choices,
    default_params,
    errors_for,
    field_errors,
    form_defaults,
    plan_frames,
    prefill_from,
    speech_seconds,
    validate,
    widget,
)
from dashboard.presets import PRESETS
from tests.conftest import EXAMPLES


def test_bounds_choices_and_defaults_are_the_contracts() -> None:
    assert bounds("sample_steps") == (1, Limits.MAX_SAMPLE_STEPS)
    assert bounds("frame_num") == (Limits.MIN_FRAME_NUM, Limits.MAX_FRAME_NUM)
    low, high = bounds("teacache_thresh")
    assert 0 < low < 0.1 and high == 1.0, "gt=0 becomes a reachable value just above 0"
    assert choices("size") == ["infinitetalk-480", "infinitetalk-720"]
    assert choices("quant") == [None, "int8", "fp8"]
    assert choices("sample_steps") == []
    defaults = default_params()
    assert defaults["sample_steps"] == Defaults.SAMPLE_STEPS
    assert defaults["frame_num"] == Defaults.FRAME_NUM
    assert set(defaults) == set(PARAM_NAMES) <= set(JobParams.model_fields)


SUBMIT_PAGE_OWN_INPUTS = {
    "id",
    "prompt",
    "cond_video",
    "cond_audio",
    "tts_audio",
    "audio_type",
    "bbox",
    "output_config",
}
"""The job's fields the Submit page asks for with inputs of its own (media, speech, faces), not as parameters."""


def test_every_generation_parameter_of_the_contract_is_in_the_form_with_its_description() -> None:
    assert set(PARAM_NAMES) == set(JobParams.model_fields) - SUBMIT_PAGE_OWN_INPUTS, (
        "a new contract field needs form hints (core.contract.form) to appear on Submit"
    )
    assert all(JobParams.model_fields[name].description for name in PARAM_NAMES), "each widget has help"


def test_widgets_come_from_the_contracts_types_bounds_and_hints() -> None:
    assert widget("size") == widget("quant") == Widget("choice")
    assert widget("use_teacache") == widget("lora") == Widget("toggle")
    assert widget("quant_dir") == Widget("text"), "an optional str is a text box"
    assert widget("frame_num") == Widget("int", Limits.MIN_FRAME_NUM, Limits.MAX_FRAME_NUM, 4), "4n+1 steps by 4"
    assert widget("num_persistent_param_in_dit") == Widget("int", 0, None, 1), "an optional int is still whole"
    assert widget("sample_shift") == Widget("float", 0, 100, 0.5)
    assert widget("color_correction_strength") == Widget("float", 0, 1, 0.05)
    assert {"sample_shift", "num_persistent_param_in_dit", "quant", "quant_dir"} == OPTIONAL_PARAMS
    assert "lora" in GPU_ONLY_PARAMS and "sample_steps" not in GPU_ONLY_PARAMS


def test_a_complete_form_builds_an_input_the_worker_accepts() -> None:
    job = build_job_input(
        "A pilot talks",
        "/data/uploads/a/portrait.jpg",
        Speech(person1="/data/uploads/b/one.wav", person2="/data/uploads/c/two.wav", audio_type="para"),
        {**default_params(), "sample_steps": 8},
    )
    parsed = parse_job_input(job)
    assert isinstance(parsed, JobParams)
    assert parsed.speakers == 2
    assert parsed.audio_type == "para"
    assert parsed.sample_steps == 8
    assert "sample_shift" not in job, "an unset optional parameter is left to the worker"


def test_text_to_speech_replaces_recorded_speech() -> None:
    job = build_job_input(
        "Hi", "https://x/p.jpg", Speech(person1="ignored", tts_text="Hello (s2) Hi", voice2="en+m3"), {}
    )
    assert "cond_audio" not in job
    assert job["tts_audio"] == {"text": "Hello (s2) Hi", "human1_voice": Defaults.TTS_VOICE_1, "human2_voice": "en+m3"}
    assert validate(job) == {}


def test_errors_are_reported_by_field() -> None:
    errors = validate(build_job_input("", None, Speech(), {**default_params(), "frame_num": 80}))
    assert errors["cond_video"] == "this field is required"
    assert errors["prompt"].startswith("is empty: describe the scene in a few words"), "it says what to write"
    assert errors["frame_num"] == "must be 4n+1: use 77 or 81"
    no_speech = validate(build_job_input("x", "p.jpg", Speech(), {}))
    assert no_speech["cond_audio"].startswith("no speech given: send recorded speech in cond_audio")


def test_field_errors_keep_lines_without_a_field_and_join_repeats() -> None:
    parsed = field_errors("prompt: too long; input: send a JSON object; prompt: again; just a sentence")
    assert parsed == {"prompt": "too long; again", "input": "send a JSON object", "": "just a sentence"}
    assert errors_for({"cond_audio.person2": "bad", "cond_audio": "one of", "bbox": "x"}, "cond_audio") == [
        "cond_audio.person2: bad",
        "one of",
    ]


@pytest.mark.parametrize(
    ("seconds", "params", "frames", "capped"),
    [
        (2.0, {"mode": "clip", "frame_num": 81}, 50, False),
        (8.3, {"mode": "clip", "frame_num": 81}, 81, True),
        (8.3, {"mode": "streaming", "max_frame_num": 1000}, 208, False),
        (60.0, {"mode": "streaming", "max_frame_num": 1000}, 1000, True),
    ],
)
def test_frames_planned_as_the_worker_renders_them(seconds: float, params: dict, frames: int, capped: bool) -> None:
    plan = plan_frames(seconds, params)
    assert (plan.frames, plan.capped) == (frames, capped)
    assert plan.video_seconds == frames / 25


def test_two_speakers_taking_turns_add_up_and_talking_at_once_overlap() -> None:
    assert speech_seconds([3.0, 2.0], "add") == 5.0
    assert speech_seconds([3.0, 2.0], "para") == 3.0
    assert speech_seconds([], "add") == 0.0


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_a_valid_job_and_sets_every_parameter(name: str) -> None:
    params = PRESETS[name].params()
    assert set(params) == set(PARAM_NAMES)
    job = build_job_input("p", "https://x/p.jpg", Speech(person1="https://x/a.wav"), params)
    assert validate(job) == {}


def test_the_matching_preset_is_named_and_any_difference_makes_it_custom() -> None:
    from dashboard.presets import is_default, matching

    for name, preset in PRESETS.items():
        assert matching(preset.params()) == name
        assert matching({**preset.params(), "base_seed": 7}) is None
    assert matching(form_defaults()) is None and is_default(form_defaults())
    assert matching({**PRESETS["4-step LoRA"].params(), "sample_steps": 4.0, "num_persistent_param_in_dit": 0})


def test_the_gpu_only_parameters_are_ones_the_preview_engine_never_reads(tmp_path: Path) -> None:
    """engine_note says "does nothing on the preview engine": true only while the preview never reads them."""
    from core.settings import Settings
    from dashboard.forms import GPU_ONLY_PARAMS, PREVIEW_NOTE, engine_note

    root = Path(__file__).resolve().parent.parent / "worker"
    preview = "".join((root / name).read_text() for name in ("engines/preview.py", "faces.py"))
    preview += (root / "pipeline.py").read_text()
    assert set(GPU_ONLY_PARAMS) <= set(PARAM_NAMES)
    assert [name for name in GPU_ONLY_PARAMS if re.search(rf"\b{name}\b", preview)] == []
    local = Settings(data_dir=tmp_path)
    assert engine_note("use_teacache", local) == PREVIEW_NOTE and engine_note("sample_steps", local) is None
    assert engine_note("use_teacache", local.with_(engine="infinitetalk")) is None
    cloud = local.with_(endpoint_id="abc123", endpoint_base_url="https://api.runpod.ai/v2")
    assert engine_note("use_teacache", cloud) is None, "a RunPod worker runs InfiniteTalk"


def test_presets_differ_where_they_promise_to() -> None:
    lora = PRESETS["4-step LoRA"].params()
    assert (lora["lora"], lora["sample_steps"]) == (True, 4)
    assert PRESETS["Quality"].params()["size"] == "infinitetalk-720"
    assert PRESETS["8-step draft"].params()["mode"] == "clip"


def test_reusing_params_recovers_the_form_exactly() -> None:
    params = {**default_params(), "sample_steps": 12, "lora": True, "quant": None, "sample_shift": 3.0}
    job = build_job_input("Again", "/p.jpg", Speech(person1="/a.wav", person2="/b.wav", audio_type="para"), params)
    filled = prefill_from(job)
    assert (filled.prompt, filled.cond_video, filled.person1, filled.person2) == ("Again", "/p.jpg", "/a.wav", "/b.wav")
    assert filled.audio_type == "para"
    rebuilt = build_job_input(
        filled.prompt,
        filled.cond_video,
        Speech(person1=filled.person1, person2=filled.person2, audio_type=filled.audio_type),
        filled.params,
    )
    assert rebuilt == job


def test_reusing_ignores_keys_the_form_does_not_know() -> None:
    filled = prefill_from({"prompt": "x", "cond_video": "a", "tts_audio": {"text": "hey"}, "output_config": {}})
    assert filled.tts_text == "hey"
    assert set(filled.params) == set(PARAM_NAMES)


def test_a_csv_batch_nests_dotted_columns_and_checks_every_row() -> None:
    data = (
        b"prompt,cond_video,cond_audio.person1,sample_steps,bbox.person1\n"
        b'First,https://x/p.jpg,https://x/a.wav,8,"[0, 0, 100, 100]"\n'
        b"Second,https://x/p.jpg,,8,\n"
    )
    first, second = read_batch("jobs.csv", data)
    assert first.ok and first.line == 2
    assert first.job["cond_audio"] == {"person1": "https://x/a.wav"}
    assert first.job["bbox"] == {"person1": [0, 0, 100, 100]}
    assert not second.ok and "cond_audio" in second.errors


def test_a_jsonl_batch_takes_bare_inputs_and_payload_files_alike() -> None:
    job = {"prompt": "p", "cond_video": "https://x/p.jpg", "tts_audio": {"text": "hi"}}
    data = "\n".join([json.dumps(job), "", json.dumps({"input": {**job, "sample_steps": 0}})]).encode()
    ok, bad = read_batch("jobs.jsonl", data)
    assert ok.ok and ok.line == 1
    assert bad.line == 3 and "sample_steps" in bad.errors


def test_a_payload_file_loads_as_it_is_and_its_relative_paths_are_named_per_line(tmp_path: Path) -> None:
    """examples/batch.json used to be refused (".csv or .jsonl"); its media paths are relative to it, which an
    upload does not tell, so each line says so instead of a generic path rule or a lookup beside the dashboard."""
    from core.settings import Settings

    payload = (EXAMPLES / "batch.json").read_bytes()
    greeting, short = read_batch("batch.json", payload, Settings(data_dir=tmp_path))
    assert (greeting.line, short.line) == (1, 2) and greeting.job["id"] == "greeting"
    assert greeting.job["output_config"] == {"prefix": "batches"}, "the batch's shared output_config goes along"
    assert set(greeting.errors) == {"cond_video", "cond_audio.person1"}
    assert "media/portrait.jpg is relative to the batch file" in greeting.errors["cond_video"]

    # The same items with absolute paths (or a bare {"batch": [...]}) are ready to send.
    items = json.loads(payload)["input"]["batch"]
    for item in items:
        item["cond_video"] = str(EXAMPLES / item["cond_video"])
        item["cond_audio"] = {"person1": str(EXAMPLES / item["cond_audio"]["person1"])}
    roots = Settings(data_dir=tmp_path, input_roots=(EXAMPLES,))
    assert all(line.ok for line in read_batch("b.json", json.dumps({"batch": items}).encode(), roots))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("jobs.txt", b"prompt\n", "upload a .csv, .jsonl or .json"),
        ("jobs.json", b"{broken", "not JSON"),
        ("jobs.json", b'{"prompt": "one job"}', "a .json batch holds"),
        ("jobs.json", b'{"batch": [1]}', "batch item 1 must be a JSON object"),
        ("jobs.jsonl", b"{broken\n", "line 1 is not JSON"),
        ("jobs.jsonl", b"[1, 2]\n", "must be a JSON object"),
        ("jobs.csv", b"", "no header row"),
        ("jobs.csv", b"prompt\n", "holds no jobs"),
        ("jobs.csv", b"prompt\na,b\n", "more cells than the header"),
        ("jobs.csv", b"\xff\xfe\x00", "not UTF-8"),
        ("jobs.csv", ("prompt\n" + "p\n" * (Limits.MAX_BATCH_ITEMS + 1)).encode(), "at most"),
    ],
)
def test_unusable_batch_files_are_refused_with_the_reason(name: str, data: bytes, message: str) -> None:
    with pytest.raises(BatchFileError, match=message):
        read_batch(name, data)


def test_paths_are_checked_with_the_workers_rule_before_anything_is_sent(tmp_path: Path) -> None:
    """A relative path or one outside the allowed folders used to pass, and every job then failed at once."""
    from core.settings import Settings
    from dashboard.forms import validate

    local = Settings(data_dir=tmp_path, input_roots=(Path("/runpod-volume"),))
    job = {"prompt": "p", "cond_audio": {"person1": "https://example.com/a.wav"}}
    relative = validate({**job, "cond_video": "media/portrait.jpg"}, local)
    assert "paths must be absolute and inside an allowed folder" in relative["cond_video"]
    outside = validate({**job, "cond_video": "/srv/elsewhere/portrait.jpg"}, local)
    assert "/runpod-volume" in outside["cond_video"]
    missing = validate({**job, "cond_video": "/runpod-volume/nobody.jpg"}, local)
    assert missing == {"cond_video": "no file at /runpod-volume/nobody.jpg"}, "a local worker reads this disk"
    assert validate({**job, "cond_video": str(EXAMPLES / "media" / "portrait.jpg")}, local) == {}, "uploaded"

    # A RunPod worker reads its own volume: a path there is its business, one elsewhere is refused here.
    cloud = local.with_(endpoint_id="abc123", endpoint_base_url="https://api.runpod.ai/v2")
    assert validate({**job, "cond_video": "/runpod-volume/faces/a.jpg"}, cloud) == {}
    assert "cond_video" in validate({**job, "cond_video": "/srv/a.jpg"}, cloud)
    batch = {"batch": [{**job, "cond_video": "/runpod-volume/faces/a.jpg"}, {**job, "cond_video": "a.jpg"}]}
    assert list(validate(batch, cloud)) == ["batch[1].cond_video"]


def test_a_batch_line_with_a_path_the_worker_would_refuse_needs_fixing(tmp_path: Path) -> None:
    from core.settings import Settings

    data = b"prompt,cond_video,tts_audio.text\nfine,https://x/p.jpg,hello\nrelative,faces/p.jpg,hello\n"
    fine, relative = read_batch("jobs.csv", data, Settings(data_dir=tmp_path))
    assert fine.errors == {}
    assert "allowed folder" in relative.errors["cond_video"]
