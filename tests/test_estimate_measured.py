"""The estimate learns from bench-gpu: a speed table (STUDIO_SPEED_TABLE, or docs/gpu-speed.jsonl once a GPU run
is committed) replaces the published figures for the GPUs it covers, and the estimate, the CLI and Submit say
which source each number comes from.

The table here is written in bench-gpu's own line format (worker/selftest/bench_gpu.py; tests/test_bench_gpu.py
checks the bench prints these fields) with the figures of an imagined H100 run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.estimate import (
    INFINITETALK_ISSUES,
    MEASURED_BAND,
    SPEED_TABLE_VAR,
    SpeedTableError,
    estimate,
    estimate_job,
    read_speed_table,
    size_factor,
    speed_table,
    work_for,
)
from core.prices import PriceTable
from core.settings import Settings
from tests.dashboard_support import EXAMPLES, MEDIA, ROOT, dashboard_env, open_page
from worker.selftest.bench_gpu import BENCH

H100 = "NVIDIA H100 80GB HBM3"
SOURCE = f"measured on {H100}, 2026-12-07, random weights at full size"


def line(setting: str, **changes: Any) -> dict[str, Any]:
    """One bench-gpu line for the imagined H100: 40 s outside sampling and 9 s a step for one 81-frame clip."""
    base = {
        "bench": BENCH, "date": "2026-12-07", "scale": "full", "weights": "random", "quick": True, "gpu": H100,
        "gpu_memory_gb": 85.0, "driver": "550.54.15", "cuda": "12.1", "torch": "2.4.1+cu121", "python": "3.11.9",
        "infinitetalk_commit": "0107cd9", "default_attention": "flash-attn-2", "stood_in": [],
        "setting": setting, "size": "infinitetalk-480", "steps": 40, "lora": False, "teacache": False, "quant": None,
        "speakers": 1, "attention": "flash-attn-2", "num_persistent_param_in_dit": None, "status": "ok",
        "frames": 81, "frame_num": 81, "clips": 1, "video_s": 3.24, "steps_run": 3, "extrapolated": True,
        "compute_s": 400.0, "compute_s_per_video_s": 123.5, "s_per_step": 9.0, "sampling_s": 27.0,
        "outside_sampling_s": 40.0, "outside_sampling_share": 0.1, "embedding_s": 0.4, "encode_s": 1.0,
        "model_build_s": 0.0, "peak_gpu_gb": 40.1, "peak_gpu_reserved_gb": 44.0, "width": 832, "height": 480,
    }  # fmt: skip
    return {**base, **changes}


TABLE = [
    line("480p-40step-cfg"),
    line("480p-flash-attn-3", attention="flash-attn-3", s_per_step=1.0),  # not the image's default kernel
    line("480p-num-persistent-0", num_persistent_param_in_dit=0, s_per_step=20.0),  # offloading: not a default
    line("480p-lightx2v-4step", lora=True, steps=4, steps_run=4, s_per_step=6.0, outside_sampling_s=30.0),
    line("480p-fp8", quant="fp8", s_per_step=7.5),
    line("480p-sageattention", status="skipped", reason="sageattention does not import here"),
    line("480p-40step-cfg", scale="tiny", gpu="cpu", s_per_step=0.1),  # the CPU test's lines say nothing
]


@pytest.fixture
def table_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "gpu-speed.jsonl"
    path.write_text("".join(json.dumps(entry) + "\n" for entry in TABLE))
    monkeypatch.setenv(SPEED_TABLE_VAR, str(path))
    return path


def _runpod(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, endpoint_id="runpod-abc", endpoint_base_url="https://api.runpod.ai/v2")


def test_only_full_size_default_lines_of_a_real_gpu_are_read(table_file: Path) -> None:
    table = read_speed_table(table_file)
    assert [(m.gpu, m.size, m.lora, m.quant, m.s_per_step) for m in table] == [
        ("H100 PRO", "infinitetalk-480", False, None, 9.0),
        ("H100 PRO", "infinitetalk-480", True, None, 6.0),
        ("H100 PRO", "infinitetalk-480", False, "fp8", 7.5),
    ]
    assert table[0].source == SOURCE


def test_a_covered_gpu_is_estimated_from_the_measured_steps_and_says_so(table_file: Path, tmp_path: Path) -> None:
    # 8 s of speech in streaming: 3 clips of 81 frames, each 40 s outside sampling plus 40 steps of 9 s.
    result = estimate_job({"mode": "streaming"}, 8.0, settings=_runpod(tmp_path), runs=[], gpu="H100")
    work = work_for({"mode": "streaming"}, 8.0)
    assert work.clips == 3
    assert (result.basis, result.gpu, result.note) == ("measured", "H100 PRO", SOURCE)
    assert result.seconds == pytest.approx(3 * (40 + 40 * 9.0))
    assert (result.low, result.high) == pytest.approx(
        (result.seconds * MEASURED_BAND[0], result.seconds * MEASURED_BAND[1]), abs=0.1
    )
    lora = estimate_job({"lora": True, "sample_steps": 4}, 3.0, settings=_runpod(tmp_path), runs=[], gpu="H100")
    assert (lora.basis, lora.seconds) == ("measured", pytest.approx(30 + 4 * 6.0))


def test_variants_use_their_own_line_or_say_what_was_not_measured(table_file: Path, tmp_path: Path) -> None:
    settings = _runpod(tmp_path)
    fp8 = estimate_job({"quant": "fp8"}, 3.0, settings=settings, runs=[], gpu="H100")
    assert (fp8.seconds, fp8.note) == (pytest.approx(40 + 40 * 7.5), SOURCE)
    teacache = estimate_job({"use_teacache": True}, 3.0, settings=settings, runs=[], gpu="H100")
    assert teacache.note == f"{SOURCE}; TeaCache not measured (the plain model's figure)"
    hd = estimate_job({"size": "infinitetalk-720"}, 3.0, settings=settings, runs=[], gpu="H100")
    factor = size_factor("infinitetalk-720") / size_factor("infinitetalk-480")
    assert hd.seconds == pytest.approx((40 + 40 * 9.0) * factor, abs=0.1)
    assert hd.note == f"{SOURCE}; infinitetalk-720 scaled from infinitetalk-480"


def test_a_gpu_the_table_does_not_cover_keeps_the_published_figures(table_file: Path, tmp_path: Path) -> None:
    result = estimate_job({"mode": "streaming"}, 8.0, settings=_runpod(tmp_path), runs=[], gpu="4090")
    assert (result.basis, result.note) == ("published", INFINITETALK_ISSUES)
    h200 = estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[], gpu="H200")
    assert h200.basis == "published" and h200.note.startswith("LightX2V's published")


def test_past_runs_on_the_endpoint_still_come_first(table_file: Path) -> None:
    work = work_for({"mode": "streaming"}, 8.0)
    runs = [
        {"status": "COMPLETED", "gpu_name": H100, "params": json.dumps({"mode": "streaming"}), "frames": 200,
         "execution_ms": 600_000 + i * 1000}
        for i in range(6)
    ]  # fmt: skip
    result = estimate(work, "H100", runs, PriceTable(), table=read_speed_table(table_file))
    assert result.basis == "history"


def test_a_broken_table_is_named_and_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "speed.jsonl"
    path.write_text(json.dumps(line("480p-40step-cfg")) + "\nnot json\n")
    monkeypatch.setenv(SPEED_TABLE_VAR, str(path))
    with pytest.raises(SpeedTableError, match=rf"{SPEED_TABLE_VAR}: {path} line 2 is not JSON"):
        speed_table()
    result = estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[], gpu="H100")
    assert result.basis == "published"
    assert result.note.endswith(f"; {SPEED_TABLE_VAR}: {path} line 2 is not JSON: give the lines "
                                "`python -m worker bench-gpu` prints, so it is not used")  # fmt: skip
    path.write_text(json.dumps({k: v for k, v in line("480p-40step-cfg").items() if k != "s_per_step"}) + "\n")
    with pytest.raises(SpeedTableError, match="line 1: `s_per_step` is missing"):
        speed_table()
    monkeypatch.setenv(SPEED_TABLE_VAR, str(tmp_path / "nowhere.jsonl"))
    with pytest.raises(SpeedTableError, match=r"nowhere\.jsonl cannot be read"):
        speed_table()


def test_the_estimate_command_reads_the_table_and_refuses_a_broken_one(table_file: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "STUDIO_DATA_DIR": str(tmp_path), "RUNPOD_ENDPOINT_ID": "abc",
           SPEED_TABLE_VAR: str(table_file)}  # fmt: skip
    command = [sys.executable, "-m", "studio", "estimate", str(EXAMPLES / "single_image.json"), "--gpu", "H100"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["basis"] == "measured"
    assert SOURCE in done.stderr
    table_file.write_text("{}\n[1]\n")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "E_INPUT_VALIDATION" and f"{table_file} line 2 is not a JSON object" in error["message"]


def test_submit_says_the_estimate_comes_from_the_bench_run(
    table_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, tmp_path)
    monkeypatch.setenv(SPEED_TABLE_VAR, str(table_file))
    monkeypatch.setenv("STUDIO_ENGINE", "infinitetalk")
    monkeypatch.setenv("STUDIO_GPU", "H100 PRO")
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.audio_input(key="submit.p1_record").upload("recording.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value("a measured estimate")
    at = at.run()
    caption = next(c.value for c in at.caption if c.value.startswith("Estimate:"))
    assert "on H100 PRO" in caption
    assert f"from a bench-gpu run: {SOURCE}" in caption


def test_no_table_means_the_published_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEED_TABLE_VAR, raising=False)
    committed = ROOT / "docs" / "gpu-speed.jsonl"
    assert speed_table() == (read_speed_table(committed) if committed.exists() else ())
    if not committed.exists():
        result = estimate_job({}, 3.0, settings=_runpod(tmp_path), runs=[], gpu="H100")
        assert result.basis == "published" and "scaled to this GPU" in result.note
