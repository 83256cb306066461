"""Endpoint health in a real browser (issue 26): the workers and, one click away, a worker's log tail, for a RunPod
endpoint (the loopback REST v2 server) and for the local endpoint's own worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from client.runpod_rest import RunPodRest
from tests.browser_support import streamlit_app
from tests.runpod_rest_server import RunPodV2Server, log_line, worker
from tests.s3server import free_port
from tests.test_browser import SCREENSHOTS, page, studio  # noqa: F401  (the browser and the running dashboard)
from tests.test_dashboard_health_workers import ENDPOINT, HOSTILE, KEY, MISSING

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _open_log(p: Page, worker_id: str) -> None:
    """Pick the worker in the select box and press the button: its log shows as a code block."""
    p.get_by_role("combobox", name="Worker").click()
    p.get_by_role("option", name=worker_id, exact=True).click()
    p.get_by_role("button", name="Show its recent log lines").click()


def test_the_local_endpoints_worker_and_its_log_tail(studio: tuple[str, Path, int], page: Page) -> None:  # noqa: F811
    url, _, _ = studio
    page.goto(f"{url}/health")
    expect(page.get_by_text("Workers: the local endpoint's processes")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("1 active worker: 1 idle")).to_be_visible(timeout=30_000)
    combobox = page.get_by_role("combobox", name="Worker")
    expect(combobox).to_be_visible(timeout=30_000)
    combobox.click()
    (worker_id,) = page.get_by_role("option").all_inner_texts()
    assert worker_id.strip().isdigit(), worker_id
    page.keyboard.press("Escape")
    _open_log(page, worker_id.strip())
    code = page.locator("[data-testid='stCode']")
    expect(code).to_contain_text('"msg": "engine loaded"', timeout=30_000)
    expect(code).to_contain_text('"msg": "worker started; loading the engine"')
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "10-health-local-workers.png"), full_page=True)


def test_runpods_workers_and_a_log_tail_shown_as_text(tmp_path: Path, page: Page) -> None:  # noqa: F811
    with RunPodV2Server(KEY) as server:
        rest = RunPodRest(KEY, server.url)
        endpoint = rest.create_endpoint(ENDPOINT)
        rest.update_endpoint(endpoint.id, {"workers": {"max": 3}})
        version = server.version(endpoint.id)
        server.workers[endpoint.id] = [
            worker("w-new", "RUNNING", version=version, uptime_s=600),
            worker("w-old", "IDLE", version=version - 1, uptime_s=45, data_center="US-KS-2"),
        ]
        server.logs["w-new"] = [
            log_line("2026-12-07T10:00:00Z", "Loading weights from /runpod-volume/models"),
            log_line("2026-12-07T10:00:01Z", MISSING),
            log_line("2026-12-07T10:00:02Z", HOSTILE),
        ]
        env = {
            "STUDIO_DATA_DIR": str(tmp_path),
            "RUNPOD_ENDPOINT_ID": endpoint.id,
            "RUNPOD_API_KEY": KEY,
            "RUNPOD_REST_BASE_URL": server.url,
            "RUNPOD_ENDPOINT_BASE_URL": f"http://127.0.0.1:{free_port()}/v2",
        }
        with streamlit_app(tmp_path, env) as (url, _):
            page.goto(f"{url}/health")
            expect(page.get_by_text("Workers, as RunPod lists them")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("2 active workers: 1 running, 1 idle")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("1 worker runs an older configuration of the endpoint")).to_be_visible()
            _open_log(page, "w-new")
            code = page.locator("[data-testid='stCode']")
            expect(code).to_contain_text(MISSING, timeout=30_000)
            expect(code).to_contain_text(HOSTILE)
            assert page.locator("a[href^='http://evil.example']").count() == 0, "a log line is never a link"
            assert page.locator("img[src^='http://evil.example']").count() == 0, "nor an image"
            page.screenshot(path=str(SCREENSHOTS / "11-health-runpod-workers.png"), full_page=True)
