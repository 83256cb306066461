"""`python -m worker studio`: the embedded default — the local endpoint and the dashboard, started together.

With RUNPOD_ENDPOINT_ID set, only the dashboard starts and talks to RunPod's cloud through the same client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
DEFAULT_DASHBOARD_PORT = 8501


def _wait_healthy(settings: Settings, endpoint: subprocess.Popen[bytes]) -> None:
    url = f"{settings.endpoint_base_url}/{settings.endpoint_id}/health"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if endpoint.poll() is not None:
            raise SystemExit(f"the local endpoint exited with code {endpoint.returncode}; see its log above")
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the local endpoint did not answer {url} within {READY_TIMEOUT_S:.0f} s")


def port_taken(port: int, host: str) -> bool:
    """Whether another program listens on host:port (a port in TIME_WAIT counts as free, as for the servers)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(settings: Settings, dashboard_port: int) -> None:
    """Refuse, in one line naming the port and how to choose another, before anything starts: a taken endpoint
    port used to be mistaken for our own endpoint being ready, and a taken dashboard port failed after it."""
    wanted = [(dashboard_port, "", "the dashboard", "--port N or STUDIO_DASHBOARD_PORT=N")]
    if settings.is_local_endpoint:
        wanted.insert(
            0, (settings.local_port, "127.0.0.1", "the local endpoint", "--endpoint-port N or STUDIO_LOCAL_PORT=N")
        )
    for port, host, what, how in wanted:
        if port_taken(port, host):
            raise SystemExit(
                f"port {port} for {what} is already in use by another program: stop it, or choose another port "
                f"with {how}"
            )


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(settings: Settings, *, dashboard_port: int | None = None) -> int:
    """Start the endpoint (when local) and the dashboard; stop both when either ends or on Ctrl-C."""
    dashboard_port = dashboard_port or int(os.environ.get("STUDIO_DASHBOARD_PORT") or DEFAULT_DASHBOARD_PORT)
    check_ports(settings, dashboard_port)
    # A service manager stops us with SIGTERM: turn it into an exit, so both children are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    env = {**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir), "STUDIO_LOCAL_PORT": str(settings.local_port)}
    endpoint: subprocess.Popen[bytes] | None = None
    dashboard: subprocess.Popen[bytes] | None = None
    try:
        if settings.is_local_endpoint:
            endpoint = subprocess.Popen([sys.executable, "-m", "worker", "endpoint"], cwd=ROOT, env=env)
            _wait_healthy(settings, endpoint)
            print(f"local endpoint ready at {settings.endpoint_base_url}/{settings.endpoint_id}", file=sys.stderr)
        dashboard = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "dashboard" / "app.py"),
                "--server.port",
                str(dashboard_port),
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env=env,
        )
        print(f"dashboard: http://localhost:{dashboard_port}", file=sys.stderr)
        while True:
            for process in (endpoint, dashboard):
                if process is not None and process.poll() is not None:
                    return process.returncode or 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(dashboard)
        _stop(endpoint)
