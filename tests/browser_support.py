"""What the browser tests share: `streamlit run dashboard/app.py` as a real server, started and waited for."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.dashboard_support import ROOT
from tests.s3server import free_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


@contextmanager
def running_streamlit(
    log: Path, env: dict[str, str], *, cwd: Path = ROOT, timeout_s: float = 60
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`streamlit run dashboard/app.py` on a free loopback port from `cwd` (whose .streamlit/config.toml it reads)
    with exactly `env`, its output in `log`; yields (URL, process) once its health route answers. A server that
    dies or stays silent while starting fails the test with the end of its log; it is stopped on the way out."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1"],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, (
                f"streamlit did not start in {timeout_s:.0f} s: {log.read_text()[-2000:]}"
            )
            time.sleep(0.3)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def streamlit_app(data_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """The dashboard on a free port with `env` on top of this process's; yields (URL, pid) once it is healthy.
    Its log is data_dir/streamlit.log (shown if it dies while starting)."""
    environment = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with running_streamlit(data_dir / "streamlit.log", environment) as (url, process):
        yield url, process.pid
