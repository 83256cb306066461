"""Shared fixtures: real servers on loopback, a settings object rooted in a temp dir, the selftest's runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from tests.s3server import S3Server, running_s3
from tests.webhook_receiver import Receiver
from worker.selftest.cpu import has_module, torchvision_without_compiled_ops

if has_module("torchvision"):
    # The tests' torchvision is PyPI's CUDA build beside CPU torch (studio.sh): let it, and transformers, import.
    torchvision_without_compiled_ops()

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHORT_JOB = {
    "prompt": "p",
    "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
    "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
    "mode": "clip",
    "frame_num": 25,
}
"""The quickest real job: the example portrait and 3.5 s of speech, one 25-frame clip."""


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole test session."""
    with running_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an embedded-default worker whose data, store and temp files live under tmp_path."""
    return Settings(data_dir=tmp_path / "data", input_roots=(EXAMPLES,))


@pytest.fixture
def s3_settings(settings: Settings, s3_server: S3Server, request: pytest.FixtureRequest) -> Settings:
    """Settings that publish to a fresh bucket on the test S3 server."""
    bucket = "t-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    return settings.with_(
        store="s3",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_bucket=bucket,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver listening on loopback for the test's length."""
    with Receiver() as listening:
        yield listening


_SHARED_SRC = ROOT.parent / "shared" / "infinitetalk-src"
INFINITETALK_SRC = Path(
    os.environ.get("INFINITETALK_SRC")
    or (_SHARED_SRC if (_SHARED_SRC / "wan" / "multitalk.py").exists() else "/opt/InfiniteTalk")
)
"""InfiniteTalk's source for the tests that run its real code: INFINITETALK_SRC (`./studio.sh test` sets it), else
../shared/infinitetalk-src, else where the GPU image has it."""
HAS_INFINITETALK_SRC = (INFINITETALK_SRC / "wan" / "multitalk.py").exists()
IMAGE_VENV = ROOT / os.environ.get("STUDIO_IMAGE_VENV", ".venv-image")
IMAGE_PYTHON = IMAGE_VENV / "bin" / "python"
"""The GPU image's own Python stack (requirements-worker.txt's pins on Python 3.11), which `./studio.sh test` builds."""

HERE_CASES = ("video", "lora", "int8")
"""The selftest's cases this environment runs beside the image stack's run of every case (through RunPod's handler,
tests/test_infinitetalk_real.py): where its newer torch and numpy take other paths than the image's, past what
bench-gpu's tiny run and its pipeline parity check already cover here (base and fp8 weights read from files,
every setting generated): a video decoded with decord into numpy 2, the LoRA merge, optimum-quanto's int8
requantize."""


@dataclass(frozen=True)
class SelftestRun:
    """One `python -m worker selftest --keep TREE`: the process, its JSON summary (the last line), the kept tiny
    tree and the Python that ran it."""

    done: subprocess.CompletedProcess[str]
    summary: dict[str, Any]
    tree: Path
    python: Path

    @property
    def python_version(self) -> str:
        """The version of the Python that ran it, asked of that interpreter."""
        return subprocess.run(
            [str(self.python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip


def run_selftest(python: Path, tree: Path) -> SelftestRun:
    """Run every case of the selftest as a user does, in `python`'s environment, keeping its tiny tree in `tree`."""
    done = subprocess.run(
        [str(python), "-m", "worker", "selftest", "--keep", str(tree)],
        cwd=ROOT,
        env={**os.environ, "INFINITETALK_SRC": str(INFINITETALK_SRC)},
        capture_output=True,
        text=True,
        timeout=1800,  # 16 cases on a CPU: about 2 minutes on an idle 2-core machine, far more on a busy one
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"the selftest printed nothing; stderr: {done.stderr[-3000:]}"
    return SelftestRun(done, json.loads(lines[-1]), tree, python)


@pytest.fixture(scope="session")
def selftest_run(tmp_path_factory: pytest.TempPathFactory) -> SelftestRun:
    """Every selftest case, once a session, in the GPU image's stack where `./studio.sh test` built it (the Python
    and packages the image runs), else in this environment. tests/test_image_stack.py, tests/test_infinitetalk_real.py
    and tests/test_weights_check.py all read this one run and its kept tree: the 16 cases take minutes on a CPU."""
    if not HAS_INFINITETALK_SRC:
        pytest.skip(f"no InfiniteTalk source at {INFINITETALK_SRC}")
    python = IMAGE_PYTHON if IMAGE_PYTHON.exists() else Path(sys.executable)
    return run_selftest(python, tmp_path_factory.mktemp("tiny-models"))
