"""The time and cost estimate (client/estimate.py), the price table (core/prices.py) and
`studio estimate`: published figures before there is history, the catalogue's own runs after, the
timeout guard, and the JSON the command prints."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from catalog import Catalog
from client.estimate import (
    DEFAULT_GPU,
    MIN_HISTORY,
    PUBLISHED,
    RUNPOD_DEFAULT_TIMEOUT_S,
    describe,
    estimate,
    estimate_job,
    fit,
    recent_runs,
    size_factor,
    timeout_for,
    tts_seconds,
    work_for,
)
from core.contract import JobError
from core.prices import GPU_PRICES, PriceTable, billed_seconds, gpu_class, run_cost
from core.settings import Settings
from tests.dashboard_support import EXAMPLES, ROOT
from tests.test_catalog_sync import metadata
from worker.metadata import gpu_info

H100 = "NVIDIA H100 80GB HBM3"
FLEX = PriceTable()


def _runpod(tmp_path: Path, **changes: object) -> Settings:
    """Settings for a RunPod endpoint (the published table and RunPod's default timeout apply)."""
    return Settings(data_dir=tmp_path, endpoint_id="runpod-abc", endpoint_base_url="https://api.runpod.ai/v2").with_(
        **changes
    )


@pytest.mark.parametrize(
    ("device", "row"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 PRO"),
        ("NVIDIA H100 PCIe", "H100 PRO"),
        ("NVIDIA H200", "H200 PRO"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA GeForce RTX 4090", "4090 PRO"),
        ("NVIDIA L40S", "L40, L40S, 6000 Ada PRO"),
        ("NVIDIA RTX 6000 Ada Generation", "L40, L40S, 6000 Ada PRO"),
        ("NVIDIA RTX A6000", "A6000, A40"),
        ("NVIDIA L4", "L4, A5000, 3090"),
        ("H100 PRO", "H100 PRO"),
        ("4090", "4090 PRO"),
        ("cpu", "cpu"),
        ("Some Future Accelerator", None),
    ],
)
def test_a_cuda_device_name_finds_its_runpod_price_row(device: str, row: str | None) -> None:
    assert gpu_class(device) == row


def test_prices_are_runpods_per_second_table_flex_or_active_with_overrides() -> None:
    assert FLEX.per_second("H100 PRO") == 0.00116
    assert PriceTable(tier="active").per_second("NVIDIA H100 80GB HBM3") == 0.00093
    assert FLEX.per_second("cpu") == 0.0
    assert FLEX.per_second("Some Future Accelerator") is None
    assert all(price.active < price.flex for price in GPU_PRICES), "active workers are the discounted tier"
    settings = Settings(gpu_prices="H100 PRO=0.002; 4090=0.0003", price_tier="active")
    table = PriceTable.from_settings(settings)
    assert (table.per_second(H100), table.per_second("4090 PRO"), table.per_second("A100")) == (0.002, 0.0003, 0.0006)
    assert "STUDIO_GPU_PRICES" in table.source(H100)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("H100 PRO=cheap", "STUDIO_GPU_PRICES"),
        ("Abacus=0.1", "STUDIO_GPU_PRICES"),
        ("H100 PRO=-1", "STUDIO_GPU_PRICES"),
    ],
)
def test_a_bad_price_override_is_one_error_naming_the_setting_and_the_form(text: str, names: str) -> None:
    with pytest.raises(JobError) as raised:
        PriceTable.from_settings(Settings(gpu_prices=text))
    assert names in raised.value.message and "H100 PRO=0.00116" in raised.value.message
    with pytest.raises(JobError, match="STUDIO_PRICE_TIER"):
        PriceTable(tier="spot")


def test_a_run_costs_its_billed_seconds_rounded_up_times_its_gpus_price_and_count() -> None:
    run = {"engine": "infinitetalk", "gpu_name": H100, "gpu_count": 2, "execution_ms": 100_001, "total_ms": 90_000}
    assert billed_seconds(run) == 101, "RunPod bills whole seconds, rounded up, of its execution time"
    assert run_cost(run, FLEX) == pytest.approx(101 * 0.00116 * 2)
    assert run_cost({**run, "execution_ms": None}, FLEX) == pytest.approx(90 * 0.00116 * 2), "else the worker's"
    assert run_cost({"engine": "preview", "total_ms": 5000}, FLEX) == 0.0, "the preview engine is free"
    assert run_cost({**run, "gpu_name": None}, FLEX) is None, "no GPU recorded: unknown, never guessed"


def test_the_preview_engine_records_no_gpu_and_torch_is_never_imported_for_it() -> None:
    assert gpu_info("preview").model_dump() == {"name": "cpu", "count": 0}
    code = "import sys, worker.metadata as m; m.gpu_info('infinitetalk'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_published_figures_come_back_exactly_for_the_work_they_describe() -> None:
    full = estimate(work_for({"frame_num": 81, "sample_steps": 40}, 81 / 25), "H200 PRO", [], FLEX)
    assert (full.seconds, full.basis, full.gpu) == (366.0, "published", "H200 PRO")
    assert "LightX2V" in full.note
    lora = estimate(work_for({"frame_num": 81, "sample_steps": 4, "lora": True}, 81 / 25), "NVIDIA H200", [], FLEX)
    assert lora.seconds == 14.0
    ten_s = estimate(work_for({"mode": "streaming", "frame_num": 81}, 10.0), "4090", [], FLEX)
    assert ten_s.seconds == 2400.0 and "#187" in ten_s.note, "40 minutes for 10 s at 480p on a 4090"
    assert full.low < full.seconds < full.high
    assert full.cost_usd == pytest.approx(366 * 0.00155)
    assert next(f.source for f in PUBLISHED if f.gpu == "H200 PRO").startswith("LightX2V")


def test_more_work_takes_longer_and_720p_longer_than_480p() -> None:
    short = work_for({"mode": "streaming"}, 5.0)
    long = work_for({"mode": "streaming"}, 20.0)
    assert long.clips > short.clips
    assert estimate(long, "H100 PRO", [], FLEX).seconds > estimate(short, "H100 PRO", [], FLEX).seconds
    assert size_factor("infinitetalk-720") > 2.31 > size_factor("infinitetalk-480") == 1.0
    slower = estimate(work_for({"size": "infinitetalk-720"}, 3.0), "A100", [], FLEX)
    assert slower.seconds > estimate(work_for({}, 3.0), "A100", [], FLEX).seconds
    assert "BF16 throughput" in slower.note, "a GPU without a figure of its own says it was scaled"


def test_speech_length_comes_from_tts_text_and_an_unknown_length_assumes_the_cap() -> None:
    words = " ".join(["word"] * 175)
    assert tts_seconds(f"(s1) {words}") == pytest.approx(60.0), "espeak-ng's default 175 words per minute"
    tts = work_for({"mode": "streaming", "tts_audio": {"text": words}}, None)
    assert tts.frames == 1000 and tts.frames_known, "60 s of speech capped by max_frame_num's 1000 frames"
    unknown = work_for({"mode": "streaming", "max_frame_num": 500}, None)
    assert unknown.frames == 500 and not unknown.frames_known
    assert "not known" in estimate(unknown, "H100 PRO", [], FLEX).note


def _history_run(frames: int, seconds: float, **params: object) -> dict[str, object]:
    return {
        "status": "COMPLETED",
        "engine": "infinitetalk",
        "gpu_name": H100,
        "gpu_count": 1,
        "params": json.dumps({"mode": "streaming", "sample_steps": 8, **params}),
        "frames": frames,
        "execution_ms": int(seconds * 1000),
        "total_ms": int(seconds * 1000) - 500,
    }


def test_enough_similar_past_runs_replace_the_published_figures_with_a_fit_to_them() -> None:
    # This endpoint's H100 takes 20 s to load plus 0.01 s per clip-frame-step: far from the published figure.
    work = lambda frames: work_for({"mode": "streaming", "sample_steps": 8}, frames / 25)  # noqa: E731
    runs = [_history_run(f, 20 + 0.01 * work(f).units) for f in (81, 200, 300, 500, 700, 900)]
    runs.append(_history_run(300, 9999.0, lora=True, sample_steps=4))  # another variant: not similar work
    runs.append({**_history_run(300, 9999.0), "gpu_name": "NVIDIA A100-SXM4-80GB"})  # another GPU
    runs.append({**_history_run(300, 9999.0), "status": "FAILED"})  # a failure says nothing about the time
    result = estimate(work(400), "H100 PRO", runs, FLEX)
    assert result.basis == "history" and "6 similar past runs" in result.note
    assert result.seconds == pytest.approx(20 + 0.01 * work(400).units, abs=0.1)
    assert result.low <= result.seconds <= result.high
    too_few = estimate(work(400), "H100 PRO", runs[: MIN_HISTORY - 1], FLEX)
    assert too_few.basis == "published"


def test_the_band_is_the_spread_of_the_past_runs_around_the_fit() -> None:
    points = [(x, 2.0 * x * ratio) for x, ratio in zip(range(10, 130, 10), [0.8, 1.2] * 6, strict=True)]
    fitted = fit(points)
    assert fitted is not None
    assert fitted.low_ratio < 1.0 < fitted.high_ratio
    assert fit(points[: MIN_HISTORY - 1]) is None


def test_the_timeout_guard_asks_for_more_than_the_slow_end_with_a_margin_in_whole_minutes() -> None:
    assert timeout_for(500.0, RUNPOD_DEFAULT_TIMEOUT_S) is None, "the endpoint's own 600 s suffices"
    wanted = timeout_for(900.0, RUNPOD_DEFAULT_TIMEOUT_S)
    assert wanted is not None and wanted % 60 == 0 and wanted >= 900 * 1.25 + 60
    assert timeout_for(1e9, 600) == 7 * 24 * 3600, "never past RunPod's 7-day ceiling"


def test_the_local_preview_engine_costs_nothing_and_says_so(tmp_path: Path) -> None:
    result = estimate_job({"prompt": "p"}, 3.0, settings=Settings(data_dir=tmp_path), runs=[])
    assert (result.gpu, result.cost_usd, result.basis, result.seconds) == ("cpu", 0.0, "none", None)
    assert "$0" in describe(result)


def test_the_gpu_defaults_to_studio_gpu_then_the_endpoints_last_run(tmp_path: Path) -> None:
    assert estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[]).gpu == DEFAULT_GPU
    assert estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[_history_run(81, 1)]).gpu == "H100 PRO"
    assert estimate_job({}, 3.0, settings=_runpod(tmp_path, gpu="A100"), runs=[_history_run(81, 1)]).gpu == "A100"
    assert estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[], gpu="4090").gpu == "4090 PRO"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", "estimate", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": env["STUDIO_DATA_DIR"], **env},
    )


def test_the_command_prints_one_json_object_with_the_numbers_the_form_shows(tmp_path: Path) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path), "RUNPOD_ENDPOINT_ID": "runpod-abc"}
    done = _cli(str(EXAMPLES / "single_image.json"), "--gpu", "4090", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert list(printed) == ["seconds", "low", "high", "cost_usd", "gpu", "basis", "execution_timeout_s"]
    assert (printed["gpu"], printed["basis"]) == ("4090 PRO", "published")
    assert printed["low"] < printed["seconds"] < printed["high"]
    assert printed["cost_usd"] == pytest.approx(math.ceil(printed["seconds"]) * 0.00031, abs=1e-4)
    assert printed["execution_timeout_s"] > printed["high"] > RUNPOD_DEFAULT_TIMEOUT_S, "a long job needs the guard"
    assert "≈" in done.stderr and "4090 PRO" in done.stderr, "a line for people on stderr"
    # The speech file's own length counts: the example's 8.3 s of speech, streaming, is 4 clips of 81 frames.
    speech = work_for({"mode": "streaming"}, 8.299)
    same = estimate(speech, "4090 PRO", [], FLEX)
    assert printed["seconds"] == same.seconds


def test_the_command_reads_the_catalogues_history_for_the_endpoint(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    base = metadata("seed")
    for index, frames in enumerate((100, 200, 300, 400, 500, 600)):
        video = {**base.outputs["video"], "frames": frames, "key": f"jobs/h-{index}/video.mp4"}
        outputs = {
            "video": video,
            "thumbnail": {"key": f"jobs/h-{index}/thumb.jpg"},
            "metadata": {"key": f"jobs/h-{index}/metadata.json"},
        }
        meta = metadata(
            f"h-{index}", outputs=outputs, gpu={"name": H100, "count": 1}, timings={"total_ms": 1000 * frames}
        )
        catalog.upsert_metadata(meta.model_dump(mode="json"), f"jobs/h-{index}/metadata.json")
    assert len(recent_runs(catalog, "runpod-abc")) == 6
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({"input": base.params | {"size": "infinitetalk-720"}}))
    env = {"STUDIO_DATA_DIR": str(tmp_path), "RUNPOD_ENDPOINT_ID": "runpod-abc"}
    printed = json.loads(_cli(str(payload), env=env).stdout)
    assert (printed["basis"], printed["gpu"]) == ("history", "H100 PRO")
    assert printed["cost_usd"] == pytest.approx(math.ceil(printed["seconds"]) * 0.00116, abs=1e-4)


def test_a_bad_payload_is_one_error_naming_the_field(tmp_path: Path) -> None:
    payload = tmp_path / "bad.json"
    payload.write_text(json.dumps({"input": {"prompt": "p", "cond_video": "x.jpg", "frame_num": 80}}))
    done = _cli(str(payload), env={"STUDIO_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "E_INPUT_VALIDATION" and "frame_num" in error["message"]


def test_an_unknown_gpu_is_refused_naming_the_ones_there_are(tmp_path: Path) -> None:
    done = _cli(str(EXAMPLES / "single_image.json"), "--gpu", "Abacus", env={"STUDIO_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    message = json.loads(done.stdout)["error"]["message"]
    assert message.startswith("--gpu: 'Abacus'") and "H100 PRO" in message and "4090 PRO" in message


def test_a_batch_adds_up_its_items(tmp_path: Path) -> None:
    one = estimate_job({"mode": "clip"}, 3.0, settings=_runpod(tmp_path), runs=[])
    both = estimate_job(
        {"batch": [{"mode": "clip"}, {"mode": "clip"}]}, [3.0, 3.0], settings=_runpod(tmp_path), runs=[]
    )
    assert both.seconds == pytest.approx(2 * one.seconds) and both.cost_usd == pytest.approx(2 * one.cost_usd)
    assert both.basis == "published" and "2 jobs one after another" in both.note
