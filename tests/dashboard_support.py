"""Helpers for the dashboard tests: the app under AppTest, a real local endpoint, real runs in a catalogue."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from client.api import StudioClient
from core.settings import Settings
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import free_port
from worker.pipeline import run_job

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
EXAMPLES = ROOT / "examples"
MEDIA = EXAMPLES / "media"
LONG_SPEECH = "This sentence is here to make the speech last for a good while. " * 12
"""Text to speech that lasts about a minute: a job on it is still running when a test looks at it."""
OUTSIDE_SETTINGS = (
    "RUNPOD_ENDPOINT_ID",
    "RUNPOD_API_KEY",
    "RUNPOD_ENDPOINT_BASE_URL",
    "RUNPOD_REST_BASE_URL",
    "S3_BUCKET",
    "BUCKET_NAME",
    "S3_ENDPOINT_URL",
    "STUDIO_STORE",
    "STUDIO_CATALOG",
    "STUDIO_VOLUME_DIR",
    "STUDIO_SPEED_TABLE",
)


def dashboard_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path, port: int | None = None) -> dict[str, str]:
    """Point the in-process dashboard at data_dir and a local endpoint port; nothing from the outside leaks in."""
    for name in OUTSIDE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port or free_port())}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@contextmanager
def local_endpoint(data_dir: Path) -> Iterator[dict[str, str]]:
    """A real local endpoint (preview engine, one worker) keeping its data under data_dir; yields its env.

    Its jobs may read the example media by path, as well as uploads in the local store.
    """
    port = free_port()
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_INPUT_ROOTS": str(EXAMPLES)}
    with running_endpoint(env, port=port) as base_url:
        # Its worker loads the engine before it reports ready; tests start from a ready endpoint.
        wait_for(f"{base_url}/local/health", lambda health: health["workers"]["idle"] >= 1, timeout_s=60)
        yield env


def module_endpoint(folder: str) -> Any:
    """The module-scoped fixture `endpoint_env` of a dashboard test module: one real local endpoint (local_endpoint)
    for the module's jobs, its data in a temp folder named `folder`. Assign it: `endpoint_env = module_endpoint(...)`.
    """

    @pytest.fixture(scope="module")
    def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
        with local_endpoint(tmp_path_factory.mktemp(folder)) as env:
            yield env

    return endpoint_env


def dashboard_on(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point the in-process dashboard at a module_endpoint and its data folder; returns the settings it runs with."""
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    return Settings.from_env(endpoint_env)


def client_and_catalog(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[StudioClient, Catalog]:
    """dashboard_on, then a client that sends jobs to the endpoint and the catalogue the dashboard under test uses."""
    settings = dashboard_on(endpoint_env, monkeypatch)
    return StudioClient(settings), Catalog(settings.catalog_file)


def open_page(
    page: str | None = None,
    *,
    secrets: dict[str, Any] | None = None,
    user: dict[str, Any] | None = None,
    url: str | None = None,
) -> AppTest:
    """Run the whole app (navigation and sidebar) and switch to one page, as a browser opening its URL would.

    `secrets` may hold tables (an [auth] section as a dict); `user` is what st.user says (an identity provider's
    claims, with is_logged_in); `url` is the address the browser shows (st.context.url), for the checks that
    depend on where the dashboard is reached.
    """
    at = AppTest.from_file(str(APP), default_timeout=90)
    for name, value in (secrets or {}).items():
        at.secrets[name] = value
    if user is not None:
        at.user = dict(user)
    if url is not None:
        at.context["url"] = url
    at.run()
    if page is not None:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun_until(at: AppTest, done: Callable[[AppTest], bool], timeout_s: float = 60.0, every_s: float = 0.5) -> AppTest:
    """Rerun the page (as its fragment timer would) until `done` holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if done(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"page never reached the expected state; markdown: {[m.value for m in at.markdown]}")
        time.sleep(every_s)


def texts(at: AppTest) -> str:
    """Every piece of text on the page, for "does it say X" checks."""
    parts: list[Any] = [*at.title, *at.header, *at.subheader, *at.markdown, *at.caption]
    parts += [*at.info, *at.warning, *at.error, *at.success]
    return "\n".join(str(getattr(p, "value", "") or getattr(p, "body", "")) for p in parts)


def real_run(settings: Settings, catalog: Catalog, job_id: str, job_input: dict[str, Any]) -> dict[str, Any]:
    """Make a real preview video for job_input and record it in the catalogue as the dashboard would."""
    catalog.record_submission(job_id, job_input, endpoint_id=settings.endpoint_id)
    output = run_job(job_input, job_id, settings=settings, sink=lambda _: None, endpoint_id=settings.endpoint_id)
    assert output.get("status") == "success", output
    catalog.attach_result(job_id, output)
    return output


def example_job(prompt: str, **params: Any) -> dict[str, Any]:
    """A small, quick job on the example portrait and speech: 25 frames (1 s) of video."""
    return {
        "prompt": prompt,
        "cond_video": str(MEDIA / "portrait.jpg"),
        "cond_audio": {"person1": str(MEDIA / "speech_1.wav")},
        "mode": "clip",
        "frame_num": 25,
        **params,
    }
