"""Issue 29 in a real browser (Debian's Chromium, Playwright, `streamlit run`, a real local endpoint): a job sent
with `studio submit --no-wait` shows on Live and then in History with no click; a batch CSV with its
media uploaded beside it runs; the endpoint restarted mid-job, and the job retried from Live.

Screenshots land in test-artifacts/screenshots/ (every-job-*.png).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from catalog import Catalog
from core.contract import ErrorCode, JobStatus
from tests.browser_support import CHROMIUM, SCREENSHOTS, streamlit_app
from tests.dashboard_support import EXAMPLES, MEDIA, ROOT
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@contextmanager
def _endpoint(env: dict[str, str], port: int) -> Iterator[str]:
    """The local endpoint on a fixed port (the dashboard keeps its address across a restart), once ready."""
    with running_endpoint(env, port=port) as base_url:
        wait_for(f"{base_url}/local/health", lambda health: health["workers"]["idle"] >= 1, timeout_s=60)
        yield base_url


@contextmanager
def _page() -> Iterator[Page]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def _until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return value


def _cli_submit(payload: Path, env: dict[str, str]) -> str:
    """`studio submit --no-wait PAYLOAD`, as a user types it: prints the job id."""
    done = subprocess.run(
        [sys.executable, "-m", "studio", "submit", "--no-wait", str(payload)],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _upload(page: Page, label: str, files: list[Path], attempts: int = 3) -> None:
    """Choose files in the uploader labelled `label`; a file chosen while the app reruns (the sidebar refreshes
    every 2 s) can be refused or dropped, as a person would see and simply choose again (as test_browser does)."""
    uploader = page.locator("[data-testid='stFileUploader']").filter(has_text=label)
    for attempt in range(attempts):
        uploader.locator("input[type='file']").set_input_files([str(path) for path in files])
        try:
            for path in files:
                expect(uploader.get_by_text(path.name, exact=True)).to_be_visible(timeout=15_000)
            page.wait_for_timeout(1000)
            if not uploader.get_by_role("alert").count():
                return
        except AssertionError:
            pass
        if attempt == attempts - 1:
            raise AssertionError(f"{label}: the upload did not take after {attempts} tries")
        for remove in uploader.get_by_role("button", name="Remove file").all() or []:
            remove.click()


def test_jobs_from_anywhere_a_batch_with_its_media_and_retry_after_a_restart(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_LOCAL_PORT": str(port),
        "STUDIO_INPUT_ROOTS": str(EXAMPLES),
        "STUDIO_PARTIAL_EVERY_S": "0",
    }
    catalog = Catalog(data_dir / "catalog.db")
    status = lambda job_id: (catalog.get(job_id) or {}).get("status")  # noqa: E731
    endpoint = _endpoint(env, port)
    endpoint.__enter__()
    try:
        with streamlit_app(data_dir, env) as (url, _), _page() as page:
            # 1. A job from the command line: on Live by itself, then in History with no click.
            page.goto(f"{url}/live")
            expect(page.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=60_000)
            job_id = _cli_submit(EXAMPLES / "single_image.json", env)
            prompt = json.loads((EXAMPLES / "single_image.json").read_text())["input"]["prompt"]
            expect(page.get_by_text(job_id).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(SCREENSHOTS / "every-job-1-cli-on-live.png"), full_page=True)
            _until(lambda: status(job_id) == JobStatus.COMPLETED, 240, "the command line's job to finish")
            page.get_by_role("link", name="History").first.click()
            expect(page.get_by_text(prompt[:50]).first).to_be_visible(timeout=60_000)
            # One sent while History is open, never seen on Live: the store's new metadata.json brings it.
            quick = tmp_path / "quick.json"
            quick_input = json.loads((EXAMPLES / "single_image.json").read_text())["input"]
            quick_input.update(prompt="Sent while History was open", mode="clip", frame_num=25)
            quick_input.update(
                cond_video=str(MEDIA / "portrait.jpg"), cond_audio={"person1": str(MEDIA / "speech_1.wav")}
            )
            quick.write_text(json.dumps({"input": quick_input}))
            _cli_submit(quick, env)
            expect(page.get_by_text("Sent while History was open").first).to_be_visible(timeout=90_000)
            page.screenshot(path=str(SCREENSHOTS / "every-job-2-history-by-itself.png"), full_page=True)

            # 2. A batch CSV naming its media by file name, the media uploaded beside it: it runs.
            page.goto(url)  # Submit is the default page: its address is the root
            page.get_by_text("Batch: many jobs").click()
            rows = tmp_path / "jobs.csv"
            rows.write_text(
                "prompt,cond_video,cond_audio.person1\nA batch row from the browser,portrait.jpg,speech_1.wav\n"
            )
            _upload(page, "Batch file", [rows])
            _upload(page, "Media for this batch", [MEDIA / "portrait.jpg", MEDIA / "speech_1.wav"])
            send = page.get_by_role("button", name="Submit 1 job", exact=True)
            expect(send).to_be_visible(timeout=60_000)
            page.screenshot(path=str(SCREENSHOTS / "every-job-3-batch-checked.png"), full_page=True)
            send.click()
            expect(page.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=60_000)
            batch_run = _until(
                lambda: next(iter(catalog.search("batch row from the browser").rows), None), 60, "the batch's run"
            )
            _until(lambda: status(batch_run["job_id"]) in JobStatus.FINAL, 420, f"the batch's job to end: {batch_run}")
            assert status(batch_run["job_id"]) == JobStatus.COMPLETED, catalog.get(batch_run["job_id"])

            # 3. The endpoint restarts mid-job: Live keeps the job, with its video so far, and Retry runs it again.
            long = tmp_path / "long.json"
            long_input = {**quick_input, "prompt": "Cut off by a restart", "size": "infinitetalk-720"}
            long_input.update(mode="streaming", frame_num=21)
            long.write_text(json.dumps({"input": long_input}))
            cut = _cli_submit(long, env)
            events = lambda: [e for e in catalog.progress_events(cut, limit=50) if e.get("partial_video")]  # noqa: E731
            _until(events, 180, "a partial video of the job to be cut off")
            endpoint.__exit__(None, None, None)
            endpoint = _endpoint(env, port)
            endpoint.__enter__()
            retry = page.get_by_role("button", name="Retry")
            expect(retry.first).to_be_visible(timeout=90_000)
            assert catalog.get(cut)["error_code"] == ErrorCode.WORKER_LOST  # type: ignore[index]
            expect(page.get_by_text("Rendered before it stopped").first).to_be_visible()
            expect(page.locator("video").first).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "every-job-4-lost-with-retry.png"), full_page=True)
            retry.first.click()
            _until(lambda: status(cut) == JobStatus.COMPLETED, 240, "the retried job to finish")
            expect(page.get_by_text("Retried 1 time").first).to_be_visible(timeout=30_000)
    finally:
        endpoint.__exit__(None, None, None)
