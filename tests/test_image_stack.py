"""The GPU image's own Python stack, tested here: requirements-worker.txt's exact pins (torch 2.4.1 and
torchvision 0.19.1 from PyPI, CUDA builds that also run on a CPU, numpy 1.26.4, ...) and the pins Dockerfile.worker
installs beside them, in the second virtual environment `./studio.sh test` builds (.venv-image, or
STUDIO_IMAGE_VENV). The main test environment runs a newer torch and numpy 2; a call that exists in one and not
the other only shows here.

Without the environment these tests skip, saying how to build it, except in CI (`CI` set) or under
`./studio.sh test` (which builds it and says so through STUDIO_IMAGE_VENV): there a missing stack is a failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HAS_INFINITETALK_SRC, IMAGE_PYTHON, IMAGE_VENV, ROOT, SelftestRun
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT
from worker.selftest import SOURCE_HINT
from worker.selftest.cases import CASES

VENV, PYTHON = IMAGE_VENV, IMAGE_PYTHON
REQUIRED = bool(os.environ.get("CI") or os.environ.get("STUDIO_IMAGE_VENV"))

ALLOWED_STAND_INS = {
    "xfuser": "its import asks a CUDA driver for the device",
    "xformers.ops.memory_efficient_attention": "xformers' kernels are CUDA only",
    "flash_attention": "flash-attn builds only against CUDA, so the image installs it and CI does not",
    "en_core_web_sm": "spaCy's model is a GitHub release, not on PyPI",
}
"""What may be stood in for on a machine without a GPU, and why: anything else must be the real package."""


def _stack() -> Path:
    if PYTHON.exists():
        return PYTHON
    message = f"the GPU image's Python stack is not at {VENV}: `./studio.sh test` builds it"
    if REQUIRED:
        pytest.fail(message + " (and must have, here)")
    pytest.skip(message)


def pins() -> dict[str, str]:
    """Every `name==version` requirements-worker.txt and Dockerfile.worker's extra pip installs pin."""
    found = {}
    for line in ROOT.joinpath("requirements-worker.txt").read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip()):
            found[match.group(1).lower()] = match.group(2)
    for name in ("xformers", "num2words"):
        match = re.search(rf"\b{name}==([0-9][0-9a-z.]*)", ROOT.joinpath("Dockerfile.worker").read_text())
        assert match, f"Dockerfile.worker no longer pins {name}: keep studio.sh's image_stack in step"
        found[name] = match.group(1)
    return found


def in_stack(code: str, *, timeout: int = 300) -> Any:
    """Run Python code in the image's stack and parse the JSON it prints last."""
    done = subprocess.run(
        [str(_stack()), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_pin_is_installed_at_its_version() -> None:
    wanted = pins()
    installed = in_stack(
        "import json, importlib.metadata as m\n"
        f"names = {sorted(wanted)!r}\n"
        "found = {}\n"
        "for name in names:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: found[name] = None\n"
        "print(json.dumps(found))"
    )
    wrong = {name: (version, installed[name]) for name, version in wanted.items() if installed[name] != version}
    # torch's and torchvision's PyPI builds report a local version (+cu121 only from the PyTorch index).
    wrong = {name: pair for name, pair in wrong.items() if str(pair[1]).split("+")[0] != pair[0]}
    assert not wrong, f"pinned (wanted, installed): {wrong}; rebuild with ./studio.sh test"


def test_every_pinned_package_imports_or_needs_cuda_for_a_stated_reason() -> None:
    """Each pin's modules import in the image's stack; the only one that may not is xfuser, whose import asks a
    CUDA driver for the device (the failure must be exactly that). A pin that stops importing is named."""
    result = in_stack(
        "import importlib, importlib.metadata as m, json\n"
        f"names = {sorted(pins())!r}\n"
        "tops = {}\n"
        "for module, dists in m.packages_distributions().items():\n"
        "    for dist in dists: tops.setdefault(dist.lower().replace('_', '-'), []).append(module)\n"
        "out = {}\n"
        "for name in names:\n"
        "    modules = sorted(m for m in tops.get(name.replace('_', '-'), []) if not m.startswith('_'))\n"
        "    errors = {}\n"
        "    for module in modules:\n"
        "        try: importlib.import_module(module)\n"
        "        except BaseException as e: errors[module] = f'{type(e).__name__}: {e}'[:300]\n"
        "    out[name] = {'modules': modules, 'errors': errors}\n"
        "print(json.dumps(out))",
        timeout=600,
    )
    for name, outcome in result.items():
        assert outcome["modules"], f"{name}: installed, but no importable module was found for it"
    failed = {name: outcome["errors"] for name, outcome in result.items() if outcome["errors"]}
    xfuser = failed.pop("xfuser", {})
    assert not failed, f"pinned packages that do not import in the image's stack: {failed}"
    assert all("NVIDIA driver" in error for error in xfuser.values()), xfuser


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 16 cases on a CPU: about 2 minutes on an idle 2-core machine, far more on a busy one
@pytest.mark.skipif(not HAS_INFINITETALK_SRC, reason=f"no InfiniteTalk source: {SOURCE_HINT}")
@pytest.mark.skipif(not PYTHON.exists() and not REQUIRED, reason=f"the GPU image's Python stack is not at {VENV}")
def test_the_selftest_passes_every_case_on_the_image_stack(selftest_run: SelftestRun) -> None:
    """`python -m worker selftest` in the image's Python with its packages: every case, and only GPU-only parts
    stood in for, each named in the summary. (The session's one run of every case, tests/conftest.py's selftest_run,
    which runs in this stack whenever it is built; tests/test_infinitetalk_real.py reads the same run.)"""
    assert selftest_run.python == _stack(), f"the selftest ran in {selftest_run.python}, not the image's stack"
    done, summary = selftest_run.done, selftest_run.summary
    failed = [case for case in summary.get("cases", []) if case["status"] != "passed"]
    assert summary["status"] == "ok" and not failed, failed or summary.get("error")
    assert done.returncode == 0
    assert [case["name"] for case in summary["cases"]] == list(CASES)
    wanted = pins()
    assert summary["torch"].split("+")[0] == wanted["torch"]
    assert summary["python"].startswith("3.11."), (
        f"the image's Python is 3.11, {VENV} has {summary['python']}: install python3.11 or set PYTHON_IMAGE, then "
        f"remove {VENV} and run ./studio.sh test"
    )
    assert summary["infinitetalk_commit"] == INFINITETALK_COMMIT
    unexpected = set(summary["stand_ins"]) - set(ALLOWED_STAND_INS)
    assert not unexpected, f"stood in for without a GPU-only reason: {unexpected}"
    assert summary["kernels"]["xformers"] == "installed; memory_efficient_attention stand-in (SDPA)"
