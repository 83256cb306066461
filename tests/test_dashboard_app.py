"""The app's frame: pages in the navigation, and a sidebar naming the endpoint with its health at a glance."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from dashboard.config import saved_connection_path
from tests.dashboard_support import ROOT, dashboard_env, local_endpoint, open_page, texts


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dashboard whose local endpoint is not running; returns its data dir."""
    dashboard_env(monkeypatch, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A dashboard with its local endpoint running; yields the data dir."""
    data_dir = tmp_path / "data"
    with local_endpoint(data_dir) as env:
        dashboard_env(monkeypatch, data_dir, int(env["STUDIO_LOCAL_PORT"]))
        yield data_dir


def test_the_app_opens_on_submit_and_every_page_renders(offline: Path) -> None:
    at = open_page()
    assert at.title[0].value == "Submit a talking video"
    for page, title in [("live", "Live jobs"), ("history", "History"), ("health", "Endpoint health")]:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception
        assert at.title[0].value == title


def test_the_sidebar_says_when_the_endpoint_cannot_be_reached(offline: Path) -> None:
    at = open_page()
    assert at.sidebar.markdown[0].value.startswith("**Local endpoint at `http://127.0.0.1:")
    assert "Unreachable: cannot reach the endpoint" in at.sidebar.error[0].value


def test_the_sidebar_shows_workers_and_queue_and_keeps_a_health_sample(online: Path) -> None:
    at = open_page()
    assert at.sidebar.success[0].value == "1 worker up · 0 queued · 0 running"
    assert len(Catalog(online / "catalog.db").health_samples("local")) == 1


def test_secrets_choose_the_endpoint(offline: Path) -> None:
    at = open_page(secrets={"RUNPOD_ENDPOINT_ID": "ep-from-secrets", "RUNPOD_API_KEY": "sk-secret-1"})
    assert at.sidebar.markdown[0].value == "**RunPod endpoint `ep-from-secrets`**"
    assert "sk-secret-1" not in texts(at) + str(at.sidebar.error[0].value)


def test_typed_keys_stay_in_the_session_unless_saved(offline: Path) -> None:
    at = open_page()
    at.text_input(key="connection.endpoint_id").set_value("typed-ep")
    at.text_input(key="connection.api_key").set_value("sk-typed-2")
    at.text_input(key="connection.base_url").set_value("http://127.0.0.1:9/v2")
    at.sidebar.button[0].click().run()

    assert at.sidebar.markdown[0].value == "**Local endpoint `typed-ep` at `http://127.0.0.1:9`**"
    assert not saved_connection_path(offline).exists()
    assert "sk-typed-2" not in texts(at) + str(dict(at.query_params))
    catalogue = (offline / "catalog.db").read_bytes()
    assert b"sk-typed-2" not in catalogue

    fresh = open_page()
    assert fresh.sidebar.markdown[0].value.startswith("**Local endpoint at "), "another session does not see them"


def test_saved_keys_are_written_for_the_owner_only_and_can_be_forgotten(offline: Path) -> None:
    at = open_page()
    at.text_input(key="connection.endpoint_id").set_value("saved-ep")
    at.text_input(key="connection.api_key").set_value("sk-saved-3")
    at.checkbox(key="connection.remember").check()
    at.sidebar.button[0].click().run()

    path = saved_connection_path(offline)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert open_page().sidebar.markdown[0].value == "**RunPod endpoint `saved-ep`**"

    at.sidebar.button[1].click().run()
    assert not path.exists()
    assert at.sidebar.markdown[0].value.startswith("**Local endpoint at ")


def test_no_page_loads_torch_transformers_or_xformers(offline: Path) -> None:
    """Streamlit Community Cloud installs requirements.txt only: the dashboard must run without the GPU stack."""
    script = (
        "import sys\n"
        "from tests.dashboard_support import open_page\n"
        "for page in ('submit', 'live', 'history', 'health'):\n"
        "    open_page(page)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'xformers'})\n"
        "print('heavy:', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heavy: []" in done.stdout


def test_no_page_script_has_a_bare_string_that_streamlit_would_draw() -> None:
    """Streamlit's magic writes every bare expression of a page script on the page: a docstring under a constant
    in submit.py was shown above the title ("Placeholders that read as hints…"). Only the module docstring is safe."""
    import ast

    for script in [ROOT / "dashboard" / "app.py", *sorted((ROOT / "dashboard" / "app_pages").glob("*.py"))]:
        body = ast.parse(script.read_text()).body
        drawn = [
            node.lineno
            for node in body[1:]
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        ]
        assert drawn == [], f"{script.name}: bare strings at lines {drawn} would be drawn on the page; use comments"
