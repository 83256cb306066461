"""`studio run` (what ./studio.sh runs): both ports are settable, a port another program holds is
a clear one-line error before anything starts, and the dashboard listens on loopback only unless sign-in is
configured or `--host` asks for an address (issue 27), as its listening socket shows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests

from client import launcher
from client.launcher import secrets_files
from dashboard.config import AUTH_SECTION, PASSWORD_HASH
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
        [sys.executable, "-m", "studio", "run", *args],
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


def listening(process: subprocess.Popen[str], port: int) -> set[str]:
    """The addresses the studio's processes listen on at `port`, read from the sockets themselves."""
    tree = psutil.Process(process.pid)
    found: set[str] = set()
    for member in [tree, *tree.children(recursive=True)]:
        try:
            connections = member.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return found


def dashboard_addresses(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Start only the dashboard (a RunPod endpoint is configured, so no local endpoint), wait until it answers on
    loopback, and return the addresses it listens on and what the launcher printed."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STUDIO_")}
    clean.update({"HOME": str(tmp_path / "home"), "RUNPOD_ENDPOINT_ID": "abc123", "RUNPOD_API_KEY": "rk-test"})
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "run", "--port", str(port), *args],
        cwd=ROOT, env={**clean, "STUDIO_DATA_DIR": str(tmp_path / "data"), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not come up"
            time.sleep(0.5)
        addresses = listening(process, port)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=60)
    return addresses, err


@pytest.fixture
def no_secrets_file() -> None:
    """The launcher reads the project's .streamlit/secrets.toml as Streamlit will; a developer's own one would
    decide these tests' outcome, so they need a checkout without one."""
    present = [path for path in secrets_files() if path.is_relative_to(ROOT) and path.exists()]
    if present:
        pytest.skip(f"{present[0]} exists: these tests need a checkout without a secrets file")


def test_without_sign_in_the_dashboard_listens_on_loopback_only(tmp_path: Path, no_secrets_file: None) -> None:
    addresses, err = dashboard_addresses(tmp_path)
    assert addresses == {"127.0.0.1"}, "not 0.0.0.0 or ::: nobody else on the network reaches an open dashboard"
    assert "this machine only; --host ADDR to listen elsewhere" in err


def test_with_sign_in_configured_it_listens_on_every_interface(tmp_path: Path, no_secrets_file: None) -> None:
    hashed = "scrypt$1024$8$1$" + "A" * 24 + "$" + "B" * 44
    addresses, err = dashboard_addresses(tmp_path, env={"STUDIO_PASSWORD_HASH": hashed})
    assert addresses == {"0.0.0.0"}
    assert "listening on every network interface, sign-in is configured" in err


def test_an_address_asked_for_with_host_is_used_and_said(tmp_path: Path, no_secrets_file: None) -> None:
    addresses, err = dashboard_addresses(tmp_path, "--host", "0.0.0.0")
    assert addresses == {"0.0.0.0"}
    assert "asked for with --host: anyone who can reach this machine can open it" in err


def test_an_auth_section_in_the_users_secrets_counts_as_sign_in(tmp_path: Path) -> None:
    home = tmp_path / "home" / ".streamlit"
    home.mkdir(parents=True)
    (home / "secrets.toml").write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path / "home"))
        assert launcher.dashboard_address(None, {}) == "0.0.0.0"
        (home / "secrets.toml").write_text('RUNPOD_ENDPOINT_ID = "abc"\n')
        assert launcher.dashboard_address(None, {}) == "127.0.0.1"
        (home / "secrets.toml").write_text("not toml [")
        assert launcher.dashboard_address(None, {}) == "127.0.0.1"
        assert launcher.dashboard_address("192.0.2.7", {}) == "192.0.2.7"


def test_the_launcher_names_the_settings_that_turn_sign_in_on() -> None:
    assert launcher.SIGN_IN_SETTING == PASSWORD_HASH
    assert launcher.SIGN_IN_SECTION == AUTH_SECTION
