"""`python -m worker bench-gpu --scale tiny`: the GPU bench's own code, end to end on a CPU.

On a GPU the bench builds InfiniteTalk at full size with random weights and times each setting through the
worker's engine path; here the same code runs at the selftest's tiny sizes, so what is checked is everything but
the sizes: the random pipeline is the one InfiniteTalk's own constructor builds (same attributes, same modules,
same parameter shapes and dtypes), every setting runs as a job through run_job or says why it was skipped, and
each JSON line carries the fields the estimate's speed table reads (client/estimate.py, docs/estimates.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.estimate import read_speed_table
from tests.conftest import HAS_INFINITETALK_SRC, INFINITETALK_SRC, ROOT
from worker.selftest import SOURCE_HINT
from worker.selftest.bench_gpu import BENCH, SETTINGS

SRC = INFINITETALK_SRC

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # the module's tiny run does every setting as a job: minutes on a busy CPU
    pytest.mark.skipif(not HAS_INFINITETALK_SRC, reason=f"no InfiniteTalk source: {SOURCE_HINT}"),
]

FIELDS = {
    "bench", "date", "scale", "weights", "quick", "gpu", "gpu_memory_gb", "driver", "cuda", "torch", "python",
    "infinitetalk_commit", "default_attention", "stood_in", "setting", "size", "steps", "lora", "teacache", "quant",
    "speakers", "attention", "num_persistent_param_in_dit", "status",
}  # fmt: skip
MEASURED = {
    "frames", "frame_num", "clips", "video_s", "steps_run", "extrapolated", "compute_s", "compute_s_per_video_s",
    "s_per_step", "sampling_s", "outside_sampling_s", "outside_sampling_share", "embedding_s", "encode_s",
    "model_build_s", "peak_gpu_gb", "peak_gpu_reserved_gb", "width", "height",
}  # fmt: skip


def bench(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "bench-gpu", *args],
        cwd=ROOT,
        env={**os.environ, "INFINITETALK_SRC": str(SRC), **(env or {})},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], list[dict], Path]:
    """Every setting once at tiny size, the lines also appended to a speed table file."""
    table = tmp_path_factory.mktemp("bench") / "speed.jsonl"
    done, lines = bench("--scale", "tiny", "--out", str(table))
    return done, lines, table


def test_one_line_per_setting_with_the_host_and_the_setting(tiny_run: Any) -> None:
    done, lines, _ = tiny_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line["setting"] for line in lines] == [setting.name for setting in SETTINGS]
    for line in lines:
        assert set(line) >= FIELDS, FIELDS - set(line)
        assert (line["bench"], line["scale"], line["weights"], line["gpu"]) == (BENCH, "tiny", "random", "cpu")
        assert line["status"] in ("ok", "skipped"), line


def test_each_measured_line_splits_the_time_into_sampling_and_the_rest(tiny_run: Any) -> None:
    _, lines, _ = tiny_run
    measured = [line for line in lines if line["status"] == "ok"]
    assert {line["setting"] for line in measured} >= {
        "480p-40step-cfg", "720p-40step-cfg", "480p-teacache", "480p-lightx2v-4step", "480p-two-speakers",
        "480p-fp8", "480p-int8", "480p-num-persistent-0",
    }  # fmt: skip
    for line in measured:
        assert set(line) >= MEASURED, MEASURED - set(line)
        assert line["frames"] == line["frame_num"] == 9 and line["clips"] == 1
        assert line["video_s"] == pytest.approx(9 / 25)
        assert line["s_per_step"] > 0 and line["sampling_s"] > 0 and line["outside_sampling_s"] > 0
        # Fewer steps than the setting's (tiny runs 2): the per-step time is extrapolated to the setting's steps.
        assert line["extrapolated"] == (line["steps_run"] != line["steps"])
        expected = line["outside_sampling_s"] + line["s_per_step"] * line["steps"] * line["clips"]
        assert line["compute_s"] == pytest.approx(expected, abs=0.02)
        assert line["compute_s_per_video_s"] == pytest.approx(line["compute_s"] / line["video_s"], rel=0.01)
        assert 0 < line["outside_sampling_share"] <= 1
        assert line["peak_gpu_gb"] is None  # no GPU here
    by_name = {line["setting"]: line for line in measured}
    assert by_name["720p-40step-cfg"]["width"] * by_name["720p-40step-cfg"]["height"] > (
        by_name["480p-40step-cfg"]["width"] * by_name["480p-40step-cfg"]["height"]
    )
    assert by_name["480p-lightx2v-4step"]["steps_run"] == 4 and not by_name["480p-lightx2v-4step"]["extrapolated"]
    assert by_name["480p-fp8"]["quant"] == "fp8"
    assert by_name["480p-num-persistent-0"]["num_persistent_param_in_dit"] == 0


def test_kernels_that_cannot_run_here_are_skipped_saying_why(tiny_run: Any) -> None:
    _, lines, _ = tiny_run
    skipped = {line["setting"]: line["reason"] for line in lines if line["status"] == "skipped"}
    assert skipped["480p-flash-attn-2"] == "flash-attn-2 needs a CUDA GPU"
    assert skipped["480p-sageattention"] == "sageattention needs a CUDA GPU"
    assert "default kernel" in skipped["480p-sdpa"]  # on a CPU SDPA is what every other line ran
    assert all(line["attention"] == "sdpa" for line in lines if line["status"] == "ok")


def test_the_out_file_is_the_lines_and_tiny_lines_are_no_speed_figures(tiny_run: Any) -> None:
    _, lines, table = tiny_run
    assert [json.loads(line) for line in table.read_text().splitlines()] == lines
    assert read_speed_table(table) == ()  # tiny sizes on a CPU say nothing about a GPU's speed


def test_settings_and_scale_are_checked(tmp_path: Path) -> None:
    done, lines = bench("--scale", "tiny", "--settings", "480p-40step-cfg,480p-lipsync")
    assert done.returncode == 2 and not lines
    assert "no setting named 480p-lipsync" in done.stderr and "480p-fp8" in done.stderr
    done, lines = bench("--scale", "full", "--settings", "480p-40step-cfg")
    assert done.returncode != 0 and not lines
    assert "--scale full needs one" in done.stderr


def test_a_budget_skips_the_settings_it_cannot_fit() -> None:
    done, lines = bench("--scale", "tiny", "--settings", "480p-40step-cfg,480p-fp8", "--budget-s", "0")
    assert done.returncode == 0
    assert [line["status"] for line in lines] == ["skipped", "skipped"]
    assert all("time budget of 0 s" in line["reason"] for line in lines)


PARITY = r"""
import json, sys, tempfile
from pathlib import Path
from worker.selftest import bench_gpu, tiny
from worker.engines.infinitetalk_args import TASK
from worker.variants import Variant, WeightPaths

src, quants = Path(sys.argv[1]), sys.argv[2:]
runtime = bench_gpu.prepare("tiny", src)
work = Path(tempfile.mkdtemp())
tokenizers = bench_gpu.save_tokenizers(work / "tokenizers")

def shapes(module):
    return {name: [list(t.shape), str(t.dtype), type(t).__name__, str(t.device)]
            for name, t in module.state_dict().items()}

def parts(pipeline):
    return {
        "attributes": sorted(vars(pipeline)),
        "modules": {name: sorted(type(m).__name__ for m in getattr(pipeline, name).model.modules())
                    for name in ("text_encoder", "clip", "vae")} | {
                    "dit": sorted(type(m).__name__ for m in pipeline.model.modules())},
        "dit": shapes(pipeline.model), "t5": shapes(pipeline.text_encoder.model),
        "clip": shapes(pipeline.clip.model), "vae": shapes(pipeline.vae.model),
        "wrappers": {name: sorted(vars(getattr(pipeline, name))) for name in ("text_encoder", "clip", "vae")},
        "scalars": {k: str(v) for k, v in vars(pipeline).items()
                    if k not in ("model", "text_encoder", "clip", "vae", "config")},
    }

result = {}
for quant in quants:
    paths = tiny.build_tree(work / f"models-{quant}", quant=(quant,) if quant else ())
    variant = Variant(quant=quant or None, quant_dir=paths.quant_dir if quant else None)
    real = runtime.modules.pipeline_class(config=runtime.modules.configs[TASK], **variant.pipeline_kwargs(paths))
    built = bench_gpu.random_pipeline(runtime, variant, bench_gpu.random_encoders(runtime, quant or None, tokenizers))
    result[quant] = {"real": parts(real), "random": parts(built)}
print(json.dumps(result))
"""
QUANTS = ["", "fp8"]


@pytest.fixture(scope="module")
def parity() -> dict[str, dict[str, Any]]:
    """Both pipelines' parts for each of QUANTS, built in one process (InfiniteTalk imported once)."""
    done = subprocess.run(
        [sys.executable, "-c", PARITY, str(SRC), *QUANTS], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("quant", QUANTS)
def test_the_random_pipeline_is_the_one_infinitetalks_constructor_builds(
    parity: dict[str, dict[str, Any]], quant: str
) -> None:
    """At tiny sizes both can be built: InfiniteTalkPipeline from the selftest's weight files, and the bench's
    random one from nothing. Same attributes, same module types, same parameter names, shapes, dtypes and
    devices, in every model, plain and quantised."""
    real, built = parity[quant]["real"], parity[quant]["random"]
    for part in real:
        assert built[part] == real[part], part


def test_full_size_is_the_real_models_sizes() -> None:
    """`--sizes` builds the full-size models on the meta device (no memory, no GPU): the bytes match the real
    weight files' sizes (umT5-XXL's bf16 encoder 11.36 GB, CLIP's 4.77 GB float32 file kept in float16, the VAE's
    508 MB), and the DiT is Wan2.1-I2V-14B's (16.4 B parameters) with InfiniteTalk's audio adapter on top."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", "bench-gpu", "--sizes"],
        cwd=ROOT,
        env={**os.environ, "INFINITETALK_SRC": str(SRC)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    models = json.loads(done.stdout.strip().splitlines()[-1])["models"]
    assert models["t5"]["gb"] == pytest.approx(11.36, rel=0.01) and models["t5"]["dtype"] == "bfloat16"
    assert models["clip"]["gb"] == pytest.approx(4.77 / 2, rel=0.01) and models["clip"]["dtype"] == "float16"
    assert models["vae"]["gb"] == pytest.approx(0.508, rel=0.01) and models["vae"]["dtype"] == "float32"
    assert 16.4e9 < models["dit"]["parameters"] < 20e9 and models["dit"]["dtype"] == "bfloat16"
    assert models["wav2vec2"]["parameters"] == pytest.approx(94.4e6, rel=0.01)
