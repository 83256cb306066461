"""Issue 19 in a real browser: the Live card plays a streaming job's video so far while the job is still
rendering, and Submit's face picker takes a click on a face.

Debian's Chromium, driven by Playwright, against `streamlit run` and a real local endpoint whose preview engine
publishes a partial video after every clip (STUDIO_PARTIAL_EVERY_S=0). The job is made slow with real knobs: a
minute of text to speech at 720p, cut into 20-frame clips.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from catalog import Catalog
from client.api import StudioClient
from core.contract import JobStatus
from core.settings import Settings
from dashboard.jobs import submit
from tests.browser_support import CHROMIUM, SCREENSHOTS, streamlit_app
from tests.dashboard_support import EXAMPLES, LONG_SPEECH, MEDIA
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import free_port
from worker.faces import face_boxes
from worker.media import read_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SLOW_JOB = {
    "prompt": "A long streaming job the Live card previews",
    "cond_video": str(MEDIA / "portrait.jpg"),
    "tts_audio": {"text": LONG_SPEECH, "human1_voice": "en-us"},
    "mode": "streaming",
    "size": "infinitetalk-720",
    "frame_num": 25,
    "motion_frame": 5,
}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """The endpoint and the dashboard sharing one data dir; yields (dashboard URL, data dir, endpoint base)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("partial-browser")
    port = free_port()
    env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_LOCAL_PORT": str(port),
        "STUDIO_INPUT_ROOTS": str(EXAMPLES),
        "STUDIO_PARTIAL_EVERY_S": "0",
    }
    with running_endpoint(env, port=port) as base:
        wait_for(f"{base}/local/health", lambda health: health["workers"]["idle"] >= 1, timeout_s=60)
        with streamlit_app(data_dir, env) as (url, _):
            yield url, data_dir, base


PLAY = """async (video) => {
    // Wait for the data, play, and wait for time to move; a short try, as the card swaps in a longer video
    // when the next clip is published (the caller then tries the new element).
    const until = async (ok, ms) => { const end = Date.now() + ms;
        while (!ok() && Date.now() < end) await new Promise((done) => setTimeout(done, 100)); };
    await until(() => video.readyState >= 2 || video.error || !video.isConnected, 5000);
    video.muted = true;
    try { await video.play(); } catch (e) { return {error: String(e), connected: video.isConnected}; }
    await until(() => video.currentTime > 0.2 || !video.isConnected, 4000);
    return {time: video.currentTime, duration: video.duration, width: video.videoWidth,
            error: video.error && video.error.code, connected: video.isConnected};
}"""


def _play_the_video_so_far(page: Page, tries: int = 20) -> dict[str, Any]:
    """Play the card's video; when a newer partial replaced the element mid-try, try the new one."""
    played: dict[str, Any] = {}
    for _ in range(tries):
        played = page.locator("video").first.evaluate(PLAY)
        if played.get("time", 0) > 0 and played.get("width", 0) > 0:
            return played
    return played


def test_the_live_card_plays_the_video_so_far_while_the_job_renders(studio: tuple[str, Path, str]) -> None:
    url, data_dir, base = studio
    settings = Settings(data_dir=data_dir, endpoint_base_url=base)
    client, catalog = StudioClient(settings), Catalog(data_dir / "catalog.db")
    job_id = submit(client, catalog, SLOW_JOB, settings.endpoint_id)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(f"{url}/live")
        video = page.locator("video").first
        video.wait_for(state="attached", timeout=240_000)
        played = _play_the_video_so_far(page)
        caption = page.get_by_text("So far:").first.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "live-partial-video.png"), full_page=True)
        browser.close()
    still_running = client.status(job_id)
    client.cancel(job_id)

    assert played.get("error") is None, played
    assert played["width"] > 0 and played["duration"] > 0.5 and played["time"] > 0, played
    assert "finished" in caption and "still rendering" in caption
    assert still_running.status == JobStatus.IN_PROGRESS, "the video played before the job ended"


def test_clicking_the_second_face_on_submit_gives_it_to_person_1(studio: tuple[str, Path, str]) -> None:
    """The face picker in the browser: the picture is a clickable component; a click inside the right-hand face
    of examples/media/two_people.jpg assigns that face, and the form says so."""
    url, _, _ = studio
    image = read_image(MEDIA / "two_people.jpg", field="test")
    x0, y0, x1, y1 = face_boxes(image)[1]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(url)
        chooser = page.locator("[data-testid='stFileUploaderDropzoneInput']").first
        chooser.set_input_files(str(MEDIA / "two_people.jpg"))
        picture = page.frame_locator("iframe[title*='streamlit_image_coordinates']").locator("img")
        picture.wait_for(timeout=60_000)
        shown = picture.bounding_box()
        assert shown is not None
        scale = shown["width"] / image.shape[1]
        picture.click(position={"x": (x0 + x1) / 2 * scale, "y": (y0 + y1) / 2 * scale})
        picker = page.locator("[data-testid='stSelectbox']").filter(has_text="Person 1's face")
        shown_value = "el => el.innerText + ' ' + [...el.querySelectorAll('input')].map((i) => i.value).join(' ')"
        deadline = time.monotonic() + 30
        while "Face 2" not in picker.evaluate(shown_value):
            assert time.monotonic() < deadline, picker.evaluate(shown_value)
            page.wait_for_timeout(200)
        page.screenshot(path=str(SCREENSHOTS / "submit-face-picked.png"), full_page=True)
        browser.close()
