"""A local endpoint that speaks RunPod's Serverless endpoint API, backed by a durable SQLite queue."""

from __future__ import annotations

import ipaddress
import signal
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from core.settings import Settings

SHUTDOWN_GRACE_S = 2
"""How long a stop waits for requests under way (a /runsync may be waiting minutes) before cutting them off."""


def run_server(app: Any, *, host: str, port: int) -> None:
    """Serve the app with uvicorn until a signal; every stop signal ends it, workers included, in a few seconds.

    uvicorn stops gracefully on SIGINT and SIGTERM; SIGHUP (a closed terminal, a supervisor) would kill the
    process on the spot and leave its running jobs unrecorded, so it is handled the same way. A second signal
    does not skip the app's shutdown (uvicorn's "force exit" would), because that shutdown is what records the
    running jobs as lost, and it is bounded anyway: SHUTDOWN_GRACE_S for requests, then the pool's stop timeout.
    The first signal also tells the workers to take no more jobs at once, before requests are drained.
    """
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            self.force_exit = False
            pool = getattr(getattr(app, "state", None), "pool", None)
            if pool is not None:
                pool.begin_stop()

        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            previous = signal.signal(signal.SIGHUP, self.handle_exit)
            try:
                with super().capture_signals():
                    yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    Server(config).run()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Run the local endpoint until interrupted; exit with a one-line reason when it cannot start."""
    if not settings.api_key and not _loopback(host):
        raise SystemExit(
            f"cannot start the local endpoint on {host}: without RUNPOD_API_KEY anyone who can reach it could run "
            "jobs and read every result; set RUNPOD_API_KEY, or listen on 127.0.0.1 (the default)"
        )
    from endpoint.app import create_app
    from endpoint.lock import EndpointBusy

    try:
        app = create_app(settings)
    except EndpointBusy as error:
        raise SystemExit(f"cannot start the local endpoint: {error}") from None
    except OSError as error:
        from worker.workdirs import unwritable

        raise SystemExit(f"cannot start the local endpoint: {unwritable(settings.data_dir, error)}") from None
    run_server(app, host=host, port=port or settings.local_port)
