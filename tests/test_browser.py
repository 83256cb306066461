"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run` and a real
local endpoint. Chromium's fake microphone plays a speech WAV, so "Record" captures real speech.

Screenshots of every page land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from catalog import Catalog
from tests.browser_support import CHROMIUM, SCREENSHOTS, streamlit_app
from tests.dashboard_support import LONG_SPEECH, MEDIA, local_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PROMPT = "A cheerful astronaut greets mission control from the browser test"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """The local endpoint and `streamlit run dashboard/app.py`, sharing one data dir; yields (URL, data dir, pid)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("browser")
    with local_endpoint(data_dir) as env, streamlit_app(data_dir, env) as (url, pid):
        yield url, data_dir, pid


@pytest.fixture(scope="module")
def page(studio: tuple[str, Path, int]) -> Iterator[Page]:
    """A Chromium page whose microphone plays examples/media/speech_1.wav."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={MEDIA / 'speech_1.wav'}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                # Host ICE candidates as addresses, not mDNS names, so WebRTC connects over this machine's own
                # interfaces with no STUN/TURN server (the live level meter's recorder).
                "--disable-features=WebRtcHideLocalIpsWithMdns",
            ],
        )
        context = browser.new_context(permissions=["microphone", "camera"], viewport={"width": 1400, "height": 1800})
        page = context.new_page()
        page.on("request", lambda request: _note_if_outside(request.url))
        yield page
        context.close()
        browser.close()


OUTSIDE_REQUESTS: list[str] = []
"""Every request the pages made to a host other than this machine: an offline dashboard makes none (the favicon
came from fonts.gstatic.com, an error on each page load offline, issue 16)."""


def _note_if_outside(url: str) -> None:
    host = urlsplit(url).hostname
    if urlsplit(url).scheme in ("http", "https", "ws", "wss") and host not in ("127.0.0.1", "localhost"):
        OUTSIDE_REQUESTS.append(url)


FINISHED_DRAWING = """() => !document.querySelector("[data-testid='stStatusWidget'], [data-stale='true']")
    && [...document.images].every((image) => image.complete)"""
"""Streamlit is not running the script, nothing drawn is stale, and every picture has loaded (History's screenshot
showed empty placeholder cards, issue 29)."""


def _shot(page: Page, name: str) -> None:
    """A full-page screenshot once the page has finished drawing (or after 15 s, as it is then)."""
    try:
        page.wait_for_function(FINISHED_DRAWING, timeout=15_000)
        page.wait_for_timeout(300)
    except PlaywrightTimeoutError:
        pass
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _watch_progress(page: Page, timeout_s: float = 120.0) -> list[float]:
    """The progress values Live shows until it says the job finished; a screenshot of the first partial one."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout_s
    finished = page.get_by_role("heading", name="Just finished")
    while not finished.count():
        assert time.monotonic() < deadline, f"the job did not finish; progress seen: {seen}"
        try:
            # The card can vanish between finding it and reading it when the job ends on that refresh.
            raw = page.get_by_role("progressbar").first.get_attribute("aria-valuenow", timeout=500)
        except PlaywrightTimeoutError:
            raw = None
        if raw is not None:
            value = float(raw or 0)
            if 0 < value < 100 and not any(0 < v < 100 for v in seen):
                _shot(page, "3-live-running")
            seen.append(value)
        page.wait_for_timeout(150)
    return seen


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _upload_photo(p: Page, attempts: int = 3) -> None:
    """Add the portrait; a file chosen while the app is rerunning (the sidebar's health refresh) can be dropped
    by the browser, as a person would see and simply choose again."""
    preview = p.locator("[data-testid='stImage']").first
    for attempt in range(attempts):
        p.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(MEDIA / "portrait.jpg"))
        try:
            expect(preview).to_be_visible(timeout=15_000)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def test_record_submit_watch_find_play_and_reuse(studio: tuple[str, Path, int], page: Page) -> None:
    url, data_dir, pid = studio
    p = page

    p.goto(url)
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    expect(p.get_by_text("1 worker up")).to_be_visible(timeout=30_000)
    _shot(p, "1-submit-empty")

    _upload_photo(p)
    p.get_by_role("button", name="Record").first.click()
    p.wait_for_timeout(6000)
    p.get_by_role("button", name="Stop recording").first.click(timeout=10_000)
    expect(p.get_by_text("Speech:")).to_be_visible(timeout=30_000)
    # Streaming is the form's default (the whole recording is rendered): nothing to choose.
    p.get_by_label("Describe the scene").fill(PROMPT)
    p.get_by_label("Describe the scene").press("Control+Enter")
    p.wait_for_timeout(1000)
    _shot(p, "2-submit-filled")
    summary = p.get_by_text("Speech:").inner_text()
    assert "frames" in summary

    p.get_by_role("button", name="Submit", exact=True).click()
    expect(p.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=30_000)
    seen = _watch_progress(p)
    assert any(0 < value < 100 for value in seen), f"progress was shown on its way: {seen}"
    expect(p.get_by_role("heading", name="Just finished")).to_be_visible(timeout=120_000)
    _shot(p, "4-live-finished")
    # The sidebar's health line refreshes by itself while Live refreshes only its own part (it used to keep
    # saying "1 running" after everything had finished).
    expect(p.locator("[data-testid='stSidebar']").get_by_text("0 running", exact=False)).to_be_visible(timeout=45_000)

    runs = Catalog(data_dir / "catalog.db").search("cheerful")
    assert runs.total == 1
    run = runs.rows[0]
    assert run["status"] == "COMPLETED" and run["progress_pct"] == 100.0
    recorded = Path(Catalog(data_dir / "catalog.db").get(run["run_id"])["params"]["cond_audio"]["person1"])
    assert recorded.read_bytes()[:4] == b"RIFF", "the browser recording was stored as WAV"

    p.get_by_role("link", name="History").first.click()
    search = p.get_by_label("Search prompts, tags and notes")
    search.fill("cheerful")
    search.press("Enter")
    expect(p.get_by_text("1 run", exact=True)).to_be_visible(timeout=30_000)
    _shot(p, "5-history-search")
    p.locator("[class*='st-key-history-open-'] button").first.click()
    expect(p.get_by_role("heading", name=PROMPT)).to_be_visible(timeout=30_000)
    video = p.locator("video").first
    expect(video).to_be_visible(timeout=30_000)
    played = video.evaluate(
        """async (v) => { v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 1500));
                         return {time: v.currentTime, width: v.videoWidth, error: v.error && v.error.code}; }"""
    )
    assert played["error"] is None and played["width"] > 0 and played["time"] > 0.5, played
    _shot(p, "6-history-detail")

    p.get_by_role("button", name="Reuse these params").click()
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    expect(p.get_by_label("Describe the scene")).to_have_value(PROMPT, timeout=30_000)
    _shot(p, "7-submit-reused")

    p.get_by_role("link", name="Endpoint health").first.click()
    expect(p.get_by_role("heading", name="Endpoint health")).to_be_visible(timeout=30_000)
    expect(p.get_by_text("Queue depth")).to_be_visible(timeout=30_000)
    p.wait_for_timeout(2000)
    _shot(p, "8-health")
    assert _rss_bytes(pid) < 1024**3, "the dashboard stays under Community Cloud's 1 GB"
    assert OUTSIDE_REQUESTS == [], "the pages fetch nothing from outside this machine"


def test_cancel_a_running_job_then_retry_a_failed_one_each_state_explained(
    studio: tuple[str, Path, int], page: Page
) -> None:
    """The rest of the journey (issue 16): a running job is cancelled after one confirmation and reads as the
    user's own stop, not a failure; a job whose photo cannot be downloaded fails with its reason and what to try,
    and Retry sends it again. At no step is there a red box without a message or a badge the text contradicts."""
    url, data_dir, _ = studio
    p = page
    catalog = Catalog(data_dir / "catalog.db")

    p.goto(url)
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    _upload_photo(p)
    p.get_by_text("Text to speech", exact=True).first.click()
    p.get_by_label("Text to speak").fill(LONG_SPEECH)
    p.get_by_label("Text to speak").press("Control+Enter")
    # 720p makes the minute of speech take long enough to be caught running, even on a fast machine.
    p.get_by_role("combobox", name="Size").click()
    p.get_by_role("option", name="720p").click()
    p.get_by_label("Describe the scene").fill("a long talk to cancel from the browser")
    p.get_by_label("Describe the scene").press("Control+Enter")
    p.wait_for_timeout(1000)
    p.get_by_role("button", name="Submit", exact=True).click()
    expect(p.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=30_000)
    long_run = catalog.search("cancel from the browser").rows[0]
    deadline = time.monotonic() + 60
    while (catalog.get(long_run["run_id"]) or {}).get("status") != "IN_PROGRESS":
        assert time.monotonic() < deadline, "the long job did not start"
        p.wait_for_timeout(200)

    p.get_by_role("button", name="Cancel").first.click(timeout=60_000)
    expect(p.get_by_text("Stop it? The work so far is lost.")).to_be_visible(timeout=15_000)
    _shot(p, "10-live-cancel-confirm")
    p.get_by_role("button", name="Stop", exact=True).first.click()
    expect(p.get_by_text("Cancelled: it was stopped before it finished")).to_be_visible(timeout=60_000)
    assert (catalog.get(long_run["run_id"]) or {})["status"] == "CANCELLED"
    expect(p.get_by_text("no code")).to_have_count(0)
    # After the cancel the whole page is there, title and buttons with the cards (issue 29: a fragment tick racing
    # the cancel's rerun used to leave the cards alone; the page is one fragment now, so a tick draws it all).
    expect(p.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=15_000)
    fresh = p.get_by_role("link", name="Start a new one")
    expect(fresh).to_be_visible(timeout=15_000)
    _shot(p, "11-live-cancelled")

    fresh.click(timeout=60_000)
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    expect(p.get_by_label("Describe the scene")).to_have_value("", timeout=15_000)
    p.get_by_text("URL or stored path", exact=True).first.click()
    link = p.get_by_role("textbox", name="URL or stored path").first
    link.fill("https://photos.invalid/face.jpg")
    link.press("Enter")
    p.get_by_label("Describe the scene").fill("a photo that cannot be downloaded")
    p.get_by_label("Describe the scene").press("Control+Enter")
    p.get_by_role("button", name="Record").first.click()
    p.wait_for_timeout(3000)
    p.get_by_role("button", name="Stop recording").first.click(timeout=10_000)
    expect(p.get_by_text("Speech:")).to_be_visible(timeout=30_000)
    p.get_by_role("button", name="Submit", exact=True).click()
    expect(p.get_by_role("heading", name="Live jobs")).to_be_visible(timeout=30_000)
    expect(p.get_by_text("What to try:").first).to_be_visible(timeout=60_000)
    failed = catalog.search("cannot be downloaded").rows[0]
    assert failed["status"] == "FAILED" and failed["error_code"] == "E_DOWNLOAD_FAILED"
    expect(p.get_by_text("E_DOWNLOAD_FAILED").first).to_be_visible()
    _shot(p, "12-live-failed-retry")
    p.get_by_role("button", name="Retry").first.click()
    expect(p.get_by_text("Retrying as job").first).to_be_visible(timeout=30_000)
    deadline = time.monotonic() + 60
    # Retry clears the outcome and the endpoint runs the job again: it ends again, later than the first time.
    while (catalog.get(failed["run_id"]) or {}).get("finished_at") in (None, failed["finished_at"]):
        assert time.monotonic() < deadline, "Retry did not send the job again"
        p.wait_for_timeout(200)
    assert (catalog.get(failed["run_id"]) or {})["error_code"] == "E_DOWNLOAD_FAILED"
    expect(p.get_by_text("What to try:").first).to_be_visible(timeout=60_000)
    assert OUTSIDE_REQUESTS == [] or all("photos.invalid" in url for url in OUTSIDE_REQUESTS), OUTSIDE_REQUESTS


def _reads_in_sentence_case(button: Locator, words: str) -> None:
    """A recorder button as drawn (issue 29 item 12): its rendered text (innerText applies CSS text-transform)
    and its computed `text-transform`, like every other button of the app, not Material UI's capitals."""
    expect(button).to_be_visible(timeout=30_000)
    expect(button).to_have_css("text-transform", "none", timeout=10_000)
    assert button.inner_text().strip() == words, f"the button reads {button.inner_text()!r}"


def test_recording_with_the_live_level_meter(studio: tuple[str, Path, int], page: Page) -> None:
    """The WebRTC recorder: the fake microphone's speech moves the meter while it plays, and Stop hands the take
    to the form as the speech (the same checks as an upload: its length, the frames it makes)."""
    url, _, _ = studio
    p = page
    p.goto(url)
    expect(p.get_by_role("heading", name="Submit a talking video")).to_be_visible(timeout=30_000)
    p.get_by_text("Record with level meter", exact=True).first.click()
    frame = p.frame_locator("iframe[title*='streamlit_webrtc']").first
    start = frame.get_by_role("button", name="Start recording")
    _reads_in_sentence_case(start, "Start recording")
    start.click(timeout=30_000)
    meter = p.get_by_text("s recorded", exact=False).first
    expect(meter).to_be_visible(timeout=30_000)
    # The take grows as fast as WebRTC delivers audio: in real time on an idle machine, but a tenth of that when
    # the CPUs are starved (2.9 s in 30 s of wall time under load). So the test waits for a take of 1.5 s, with a
    # deadline no busy machine reaches, rather than for a pace.
    deadline = time.monotonic() + 120
    reading = meter.inner_text()
    while float(reading.split("·")[1].split()[0]) < 1.5:
        assert time.monotonic() < deadline, f"the take did not grow: {reading}"
        p.wait_for_timeout(300)
        reading = meter.inner_text()
    _shot(p, "13-submit-live-meter")
    level_db = float(reading.split()[1])
    assert -50 < level_db < 0, f"the meter shows the speech's level: {reading}"
    stop = frame.get_by_role("button", name="Stop recording")
    _reads_in_sentence_case(stop, "Stop recording")
    stop.click()
    expect(p.get_by_text("Speech:")).to_be_visible(timeout=30_000)
    # Streamlit loads its audio player's code the first time a page draws one, so the summary below it can show
    # first (a CI run under load counted no <audio> yet): wait for the player, do not count once.
    expect(p.locator("audio").first).to_be_attached(timeout=30_000)
    _reads_in_sentence_case(frame.get_by_role("button", name="Start recording"), "Start recording")
