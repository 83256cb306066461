"""`python -m worker studio` (what ./studio.sh runs): both ports are settable, and a port another program holds is
a clear one-line error before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.endpoint_server import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def held_port(host: str = "127.0.0.1") -> Iterator[int]:
    """Another program listening on a port (a plain socket that answers nothing)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        sock.listen()
        yield sock.getsockname()[1]


def studio(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "studio", *args],
        cwd=ROOT,
        env={**os.environ, "STUDIO_DATA_DIR": str(tmp_path), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_taken_endpoint_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with held_port() as port:
        done = studio(tmp_path, "--endpoint-port", str(port), "--port", str(free_port()))
        _, err = done.communicate(timeout=60)
    assert done.returncode != 0
    assert f"port {port} for the local endpoint is already in use by another program" in err
    assert "STUDIO_LOCAL_PORT" in err and "endpoint ready" not in err and "Traceback" not in err


def test_a_taken_dashboard_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with held_port("") as port:
        done = studio(tmp_path, "--port", str(port), env={"STUDIO_LOCAL_PORT": str(free_port())})
        _, err = done.communicate(timeout=60)
    assert done.returncode != 0
    assert f"port {port} for the dashboard is already in use" in err and "--port" in err
    assert "endpoint ready" not in err and "Traceback" not in err


def test_both_chosen_ports_are_used(tmp_path: Path) -> None:
    endpoint_port, dashboard_port = free_port(), free_port()
    process = studio(tmp_path, "--endpoint-port", str(endpoint_port), "--port", str(dashboard_port))
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                health = requests.get(f"http://127.0.0.1:{endpoint_port}/v2/local/health", timeout=2)
                page = requests.get(f"http://127.0.0.1:{dashboard_port}/_stcore/health", timeout=2)
                if health.status_code == page.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the studio did not come up on the chosen ports"
            time.sleep(0.5)
    finally:
        process.terminate()
        process.communicate(timeout=60)
