"""A long speech split in a real browser (issue 30): Submit with "Split long speech" on, one card on Live with a
bar per part, the finished run once in History with its parts and a video that plays.

Debian's Chromium driven by Playwright against `streamlit run` and a real local endpoint with three workers
(preview engine); the dashboard's own split driver steps the run. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from catalog import Catalog
from core.contract import AUDIO_SAMPLE_RATE
from tests.browser_support import CHROMIUM, SCREENSHOTS, streamlit_app
from tests.dashboard_support import EXAMPLES, MEDIA
from tests.endpoint_server import running_endpoint, wait_for
from tests.s3server import free_port
from worker.media import decode_audio, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PROMPT = "A newsreader reads a long bulletin split into parts"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local endpoint with three workers and `streamlit run dashboard/app.py` on one data dir; (URL, data dir)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("browser-split")
    port = free_port()
    env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_LOCAL_PORT": str(port),
        "STUDIO_INPUT_ROOTS": str(EXAMPLES),
        "STUDIO_LOCAL_WORKERS": "3",
    }
    with running_endpoint(env, port=port) as base_url:
        wait_for(f"{base_url}/local/health", lambda health: health["workers"]["idle"] >= 3, timeout_s=90)
        with streamlit_app(data_dir, env) as (url, _):
            yield url, data_dir


def long_speech(out: Path, rounds: int = 6) -> Path:
    """The two example recordings with a pause after each, `rounds` times: about 13 s a round (78 s for 6)."""
    rng = np.random.default_rng(5)
    pieces = []
    for _ in range(rounds):
        for name in ("speech_1.wav", "speech_2.wav"):
            pieces.append(decode_audio(MEDIA / name, field="test", max_seconds=30))
            pieces.append((3e-4 * rng.standard_normal(int(0.6 * AUDIO_SAMPLE_RATE))).astype(np.float32))
    return write_wav(out, np.concatenate(pieces))


def _shot(page: Page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_long_speech_is_split_watched_as_one_card_and_found_once_in_history(
    studio: tuple[str, Path], tmp_path: Path
) -> None:
    url, data_dir = studio
    speech = long_speech(tmp_path / "bulletin.wav")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--no-first-run"])  # fmt: skip
        p = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        try:
            _walk(p, url, data_dir, speech)
        finally:
            browser.close()


def _walk(p: Page, url: str, data_dir: Path, speech: Path) -> None:
    p.goto(url)
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    expect(p.get_by_text("3 workers up")).to_be_visible(timeout=30_000)
    photo = p.locator("[class*='st-key-submit-cond_upload'] input[type='file']")
    photo.set_input_files(str(MEDIA / "portrait.jpg"))
    expect(p.locator("[data-testid='stImage']").first).to_be_visible(timeout=30_000)
    p.locator("[class*='st-key-submit-p1_source']").get_by_text("Upload", exact=True).click()
    p.locator("[class*='st-key-submit-p1_upload'] input[type='file']").set_input_files(str(speech))
    expect(p.get_by_text("Speech:")).to_be_visible(timeout=30_000)

    toggle = p.get_by_role("switch", name="Split long speech")
    expect(toggle).to_be_checked(timeout=30_000)  # on by default: the speech is longer than a minute
    expect(p.get_by_text("of speech → 2 parts of ≤ 40 s, 2 at a time")).to_be_visible(timeout=30_000)
    part_s = p.locator("[class*='st-key-submit-split-part_s'] input")
    part_s.fill("30")
    part_s.press("Enter")
    expect(p.get_by_text("of speech → 3 parts of ≤ 30 s, 3 at a time")).to_be_visible(timeout=30_000)
    p.get_by_label("Describe the scene").fill(PROMPT)
    p.get_by_label("Describe the scene").press("Control+Enter")
    p.wait_for_timeout(1000)
    _shot(p, "split-1-submit")
    p.get_by_role("button", name="Submit", exact=True).click()

    expect(p.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=60_000)
    expect(p.get_by_text("Part 3 (", exact=False)).to_be_visible(timeout=30_000)
    card_bars = p.locator("[data-testid='stProgress']")
    expect(card_bars).to_have_count(4, timeout=15_000)  # the whole run, then one bar per part
    expect(p.get_by_text(PROMPT)).to_have_count(1)  # one card: the parts are not cards of their own
    expect(p.locator("[data-testid='stSidebar']").get_by_text("0 queued · 1 running")).to_be_visible(timeout=15_000)
    _shot(p, "split-2-live-parts")
    deadline = time.monotonic() + 240
    while not p.get_by_role("heading", name="Just finished").count():
        assert time.monotonic() < deadline, "the split run did not finish"
        p.wait_for_timeout(500)
    expect(p.get_by_text("split run · 3 parts")).to_be_visible(timeout=30_000)
    _shot(p, "split-3-live-finished")

    runs = Catalog(data_dir / "catalog.db").search("bulletin")
    assert runs.total == 1 and runs.rows[0]["status"] == "COMPLETED", "one run in the catalogue, not one per part"

    p.get_by_role("link", name="History").first.click()
    search = p.get_by_label("Search prompts, tags and notes")
    search.fill("bulletin")
    search.press("Enter")
    expect(p.get_by_text("1 run", exact=True)).to_be_visible(timeout=30_000)
    p.locator("[class*='st-key-history-open-'] button").first.click()
    expect(p.get_by_role("heading", name=PROMPT)).to_be_visible(timeout=30_000)
    expect(p.get_by_text("Parts", exact=False).first).to_be_visible(timeout=30_000)
    video = p.locator("video").first
    expect(video).to_be_visible(timeout=30_000)
    played = video.evaluate(
        """async (v) => { v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 1500));
                         return {time: v.currentTime, width: v.videoWidth, duration: v.duration,
                                 error: v.error && v.error.code}; }"""
    )
    assert played["error"] is None and played["width"] > 0 and played["time"] > 0.5, played
    assert played["duration"] > 70, f"the joined video is the whole speech: {played}"
    _shot(p, "split-4-history")
