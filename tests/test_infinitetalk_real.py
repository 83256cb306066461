"""InfiniteTalk's real source, end to end through the worker: `python -m worker selftest` as a user runs it.

The selftest runs in its own process, as on a fresh GPU image: it builds the tiny random checkpoint tree, imports
InfiniteTalk from INFINITETALK_SRC (the pinned commit, never copied into the project) and runs every case through
run_job and the InfiniteTalk engine. These tests read its report: the session's one run of every case
(tests/conftest.py's selftest_run), in the GPU image's own stack where `./studio.sh test` built it, else in this
environment; and, through RunPod's handler, this environment's run of the cases where its newer torch and numpy
differ (HERE_CASES). Without
the source they skip, saying how to get it (`./studio.sh test` finds ../shared/infinitetalk-src, or clones the
pinned commit when the network allows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.contract import ErrorCode
from core.settings import Settings
from tests.conftest import HAS_INFINITETALK_SRC, HERE_CASES, INFINITETALK_SRC, ROOT, SelftestRun
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT
from worker.handler import make_handler
from worker.selftest import SOURCE_HINT
from worker.selftest.cases import CASES
from worker.variants import CKPT_COMMON, Variant, WeightPaths

SRC = INFINITETALK_SRC

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # the first test sets up the session's run of every case: minutes on a busy CPU
    pytest.mark.skipif(not HAS_INFINITETALK_SRC, reason=f"no InfiniteTalk source: {SOURCE_HINT}"),
]


def selftest(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `python -m worker selftest ARGS` and parse its last line, the JSON summary."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", "selftest", *args],
        cwd=ROOT,
        env={**os.environ, "INFINITETALK_SRC": str(SRC), **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the selftest printed nothing; stderr: {done.stderr[-3000:]}"
    return done, json.loads(lines[-1])


def test_every_case_passes_and_the_summary_says_where_it_ran(selftest_run: SelftestRun) -> None:
    done, summary = selftest_run.done, selftest_run.summary
    failed = [case for case in summary["cases"] if case["status"] != "passed"]
    assert summary["status"] == "ok" and not failed, failed or summary.get("error")
    assert done.returncode == 0
    assert summary["device"] in ("cpu", "cuda")
    assert summary["python"] == selftest_run.python_version
    assert summary["infinitetalk_commit"] == INFINITETALK_COMMIT
    assert [case["name"] for case in summary["cases"]] == list(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_case(selftest_run: SelftestRun, name: str) -> None:
    """Each case as its own line, so a failure names the case and what its check saw."""
    summary = selftest_run.summary
    case = next(case for case in summary["cases"] if case["name"] == name)
    assert case["status"] == "passed", case["error"]
    assert case["device"] == summary["device"] and case["seconds"] > 0
    expected_frames = {"streaming": 17, "cancel": 0}.get(name, 9)
    assert case["frames"] == expected_frames


def test_one_line_per_case_is_printed_before_the_summary(selftest_run: SelftestRun) -> None:
    done, summary = selftest_run.done, selftest_run.summary
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(CASES) + 1
    for line, case in zip(lines, summary["cases"], strict=False):
        assert line.startswith(f"{case['name']}: passed, {case['frames']} frames, ")
        assert line.endswith(f" s, {summary['device']}")


def test_the_kept_tree_has_the_real_weights_layout_and_is_a_few_megabytes(selftest_run: SelftestRun) -> None:
    summary, tree = selftest_run.summary, selftest_run.tree
    paths = WeightPaths.under(tree)
    variants = [
        Variant(speakers=speakers, quant=quant, quant_dir=paths.quant_dir if quant else None, lora=lora)
        for speakers in (1, 2)
        for quant, lora in ((None, False), (None, True), ("int8", False), ("fp8", False))
    ]
    for variant in variants:
        missing = [str(path) for path, _ in variant.required_files(paths) if not path.exists()]
        assert not missing, f"{variant.describe()}: {missing}"
    assert (paths.ckpt_dir / CKPT_COMMON[4] / "tokenizer.json").exists()  # google/umt5-xxl, built offline
    assert (paths.wav2vec_dir / "config.json").exists() and (paths.wav2vec_dir / "model.safetensors").exists()
    config = json.loads((paths.ckpt_dir / "config.json").read_text())
    assert config["_class_name"] == "WanModel" and config["in_dim"] == 36 and config["model_type"] == "i2v"
    assert 1 < summary["tree_mb"] < 20


def test_an_unknown_case_is_named_with_the_cases_there_are() -> None:
    done, summary = selftest("--cases", "photo,lipstick")
    assert done.returncode == 1
    assert summary["status"] == "failed" and summary["cases"] == []
    assert "no case named lipstick" in summary["error"] and "photo" in summary["error"]


def test_without_the_source_it_fails_saying_how_to_get_it(tmp_path: Path) -> None:
    done, summary = selftest("--cases", "photo", env={"INFINITETALK_SRC": str(tmp_path / "nowhere")})
    assert done.returncode == 1
    assert summary["status"] == "failed"
    assert f"not at {tmp_path / 'nowhere'}" in summary["error"]
    assert "git clone https://github.com/MeiGen-AI/InfiniteTalk" in summary["error"]
    assert INFINITETALK_COMMIT in summary["error"]
    assert "selftest failed:" in done.stderr


def test_a_runpod_job_asking_for_the_selftest_gets_its_summary(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RunPod Hub's test (.runpod/tests.json) through the worker's real handler, in a child process that gets the
    cases asked for through `--cases`. The cases are HERE_CASES: where this environment's newer torch and numpy
    differ from the image stack that ran every case (selftest_run)."""
    monkeypatch.setenv("INFINITETALK_SRC", str(SRC))
    handler = make_handler(settings)
    output = handler({"id": "hub-test", "input": {"selftest": {"cases": list(HERE_CASES)}}})
    assert output["status"] == "success", output
    summary = output["selftest"]
    assert summary["status"] == "ok" and summary["python"] == ".".join(map(str, sys.version_info[:3]))
    assert [case["name"] for case in summary["cases"]] == list(HERE_CASES)
    assert all(case["status"] == "passed" and case["frames"] == 9 for case in summary["cases"]), summary["cases"]

    failed = handler({"id": "hub-test-2", "input": {"selftest": {"cases": ["lipstick"]}}})
    assert failed["status"] == "error"
    assert failed["error"]["code"] == ErrorCode.PIPELINE_LOAD
    assert "no case named lipstick" in failed["error"]["message"]
