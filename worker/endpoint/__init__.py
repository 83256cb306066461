"""A local endpoint that speaks RunPod's Serverless endpoint API, backed by a durable SQLite queue."""

from __future__ import annotations

from worker.settings import Settings


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Run the local endpoint until interrupted; exit with a one-line reason when it cannot start."""
    import uvicorn

    from worker.endpoint.app import create_app
    from worker.endpoint.lock import EndpointBusy

    try:
        app = create_app(settings)
    except EndpointBusy as error:
        raise SystemExit(f"cannot start the local endpoint: {error}") from None
    uvicorn.run(app, host=host, port=port or settings.local_port, log_level="warning")
