"""Runs the local endpoint in its own process for tests: `python -m tests.endpoint_server PORT [RUNNER [GRACE_S]]`.

RUNNER is a `module:function` job runner (default: the pipeline's run_job); GRACE_S how long a cancelled job may
ignore the cancel. Settings come from the environment (STUDIO_DATA_DIR, RUNPOD_API_KEY, ...), as for
`studio endpoint`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.s3server import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running_endpoint(
    env: dict[str, str], runner: str = "", *, port: int | None = None, cancel_grace_s: float | None = None
) -> Iterator[str]:
    """Start the endpoint; yield its base URL (…/v2); stop it (gracefully, like Ctrl-C)."""
    port = port or free_port()
    process = start_endpoint(env, runner, port, cancel_grace_s=cancel_grace_s)
    try:
        yield f"http://127.0.0.1:{port}/v2"
    finally:
        stop_endpoint(process)


def start_endpoint(
    env: dict[str, str],
    runner: str,
    port: int,
    *,
    cancel_grace_s: float | None = None,
    new_session: bool = False,
    stderr: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start the endpoint process and wait until it accepts connections.

    `new_session` puts it (and so its workers) in a process group of its own, as a service manager does, so a
    test can signal the whole group.
    """
    grace = [] if cancel_grace_s is None else [str(cancel_grace_s)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.endpoint_server", str(port), runner, *grace],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        start_new_session=new_session,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            raise RuntimeError(f"endpoint exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("endpoint did not start")


def stop_endpoint(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    """Stop gracefully, or kill -9 to simulate a crash."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(url: str, predicate: Callable[[dict], bool], timeout_s: float = 30.0, headers: dict | None = None) -> dict:
    """Poll a URL until predicate(json) holds; return that json."""
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        body = requests.get(url, headers=headers or {}, timeout=5).json()
        if predicate(body):
            return body
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting on {url}: last {body}")


def main() -> None:
    import importlib

    from core.settings import Settings
    from endpoint import run_server
    from endpoint.app import create_app
    from endpoint.runner import CANCEL_GRACE_S

    port = int(sys.argv[1])
    runner = None
    if len(sys.argv) > 2 and sys.argv[2]:
        module_name, function_name = sys.argv[2].split(":")
        runner = getattr(importlib.import_module(module_name), function_name)
    grace = float(sys.argv[3]) if len(sys.argv) > 3 else CANCEL_GRACE_S
    app = create_app(Settings.from_env(), runner=runner, cancel_grace_s=grace)
    run_server(app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
