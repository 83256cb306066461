"""`studio run`: the embedded default — the local endpoint and the dashboard, started together.

With RUNPOD_ENDPOINT_ID set, only the dashboard starts and talks to RunPod's cloud through the same client.

The dashboard listens on 127.0.0.1 only, unless sign-in is configured (then on every interface: whoever reaches it
meets the sign-in page first) or `--host ADDR` asks for an address: without sign-in, anyone on the same network
could otherwise submit jobs on the endpoint's credit and see, download and delete every video. Streamlit's own
default is every interface, so the address is always passed explicitly.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import requests

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
DEFAULT_DASHBOARD_PORT = 8501
LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"
SIGN_IN_SETTING = "STUDIO_PASSWORD_HASH"
SIGN_IN_SECTION = "auth"
"""What turns the dashboard's sign-in on (dashboard/config.py's PASSWORD_HASH and AUTH_SECTION; a test keeps them
equal): client/ may not import the dashboard, and only their presence matters here, since sign-in settings with
a problem let nobody in."""


def secrets_files() -> list[Path]:
    """Where Streamlit looks for secrets when the launcher starts it (secrets.files' default: the user's folder,
    then the working directory's and the script's .streamlit/)."""
    return [Path.home() / ".streamlit" / "secrets.toml", ROOT / ".streamlit" / "secrets.toml",
            ROOT / "dashboard" / ".streamlit" / "secrets.toml"]  # fmt: skip


def sign_in_configured(env: Mapping[str, str]) -> bool:
    """Whether the dashboard will ask who is there: a password hash in the environment or secrets, or an [auth]
    section. An unreadable secrets file counts as none: the dashboard then stays on loopback."""
    if env.get(SIGN_IN_SETTING):
        return True
    for path in secrets_files():
        try:
            secrets = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if secrets.get(SIGN_IN_SETTING) or isinstance(secrets.get(SIGN_IN_SECTION), dict):
            return True
    return False


def dashboard_address(host: str | None, env: Mapping[str, str]) -> str:
    """The address the dashboard listens on: `host` when asked for, else loopback unless sign-in is configured."""
    if host:
        return host
    return EVERY_INTERFACE if sign_in_configured(env) else LOOPBACK


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


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


def check_ports(settings: Settings, dashboard_port: int, dashboard_host: str = "") -> None:
    """Refuse, in one line naming the port and how to choose another, before anything starts: a taken endpoint
    port used to be mistaken for our own endpoint being ready, and a taken dashboard port failed after it."""
    probe_host = "" if dashboard_host == EVERY_INTERFACE else dashboard_host
    wanted = [(dashboard_port, probe_host, "the dashboard", "--port N or STUDIO_DASHBOARD_PORT=N")]
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


def reach(address: str, host: str | None) -> str:
    """Who can open the dashboard at `address`, in words, for the terminal."""
    if is_loopback(address):
        return "this machine only; --host ADDR to listen elsewhere"
    where = "every network interface" if address in (EVERY_INTERFACE, "::") else address
    why = "asked for with --host" if host else "sign-in is configured"
    return f"listening on {where}, {why}: anyone who can reach this machine can open it"


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(settings: Settings, *, dashboard_port: int | None = None, host: str | None = None) -> int:
    """Start the endpoint (when local) and the dashboard; stop both when either ends or on Ctrl-C."""
    dashboard_port = dashboard_port or int(os.environ.get("STUDIO_DASHBOARD_PORT") or DEFAULT_DASHBOARD_PORT)
    address = dashboard_address(host, os.environ)
    check_ports(settings, dashboard_port, address)
    # A service manager stops us with SIGTERM: turn it into an exit, so both children are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    env = {**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir), "STUDIO_LOCAL_PORT": str(settings.local_port)}
    endpoint: subprocess.Popen[bytes] | None = None
    dashboard: subprocess.Popen[bytes] | None = None
    try:
        if settings.is_local_endpoint:
            endpoint = subprocess.Popen([sys.executable, "-m", "studio", "endpoint"], cwd=ROOT, env=env)
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
                "--server.address",
                address,
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env=env,
        )
        print(f"dashboard: http://localhost:{dashboard_port} ({reach(address, host)})", file=sys.stderr)
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
