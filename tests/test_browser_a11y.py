"""Issue 29 in a real browser: every page passes an axe-core check with no serious or critical violation, the
theme follows a dark-preferring system, and the keyboard reaches Submit without a stop on every heading.

Debian's Chromium, driven by Playwright, against `streamlit run` and a real local endpoint with two real preview
runs (so History has cards and Compare two videos). axe-core is vendored under tests/vendor/axe-core (its
axe.min.js as published on npm, version in the file's banner, with its MPL-2.0 licence): nothing is fetched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from catalog import Catalog
from core.settings import Settings
from tests.browser_support import CHROMIUM, streamlit_app
from tests.dashboard_support import EXAMPLES, example_job, local_endpoint, real_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
PAGES = {
    "Submit a talking video": "",
    "Live jobs": "live",
    "History": "history",
    "Compare two runs": "compare?compare=run-a,run-b",
    "Endpoint health": "health",
}
SERIOUS = ("serious", "critical")
MOST_TABS_TO_SUBMIT = 28
"""A keyboard user reaches Submit within this many Tab presses from the start of the main area (23 measured; each
heading's anchor link was a stop, 34 in all; the count depends on the form's fields, so the test prints it)."""


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    data_dir = tmp_path_factory.mktemp("a11y")
    with local_endpoint(data_dir) as env:
        settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
        catalog = Catalog(settings.catalog_file)
        real_run(settings, catalog, "run-a", example_job("An astronaut waves hello"))
        real_run(settings, catalog, "run-b", example_job("An astronaut says goodbye", sample_steps=8))
        with streamlit_app(data_dir, env) as (url, _):
            yield url


def drawn(page: Page, title: str, timeout_s: float = 90.0) -> None:
    """Wait until the page shows its title and Streamlit has stopped running its script for a moment."""
    page.get_by_role("heading", name=title).first.wait_for(timeout=timeout_s * 1000)
    deadline, quiet_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        running = page.locator("[data-testid='stStatusWidget'], [data-stale='true']").count() > 0
        quiet_since = None if running else (quiet_since or time.monotonic())
        if quiet_since and time.monotonic() - quiet_since > 1.5:
            return
        page.wait_for_timeout(200)


def start_of_main(page: Page) -> None:
    """Put the focus at the start of the page's main area, as a skip link would (the sidebar comes first)."""
    page.evaluate(
        "() => { const main = document.querySelector('[data-testid=\"stMain\"]');"
        " main.setAttribute('tabindex', '-1'); main.focus(); }"
    )


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of serious or critical impact on the page (not inside frames)."""
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, iframes: false});
            return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ") + " :: " + n.failureSummary)}));
        }"""
    )
    return [violation for violation in found if violation["impact"] in SERIOUS]


def test_every_page_has_no_serious_accessibility_violation(studio: str) -> None:
    problems: dict[str, list[dict[str, Any]]] = {}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        for title, path in PAGES.items():
            page.goto(f"{studio}/{path}")
            drawn(page, title)
            if found := serious_violations(page):
                problems[title] = found
        browser.close()
    assert not problems, json.dumps(problems, indent=1)


def test_the_theme_follows_a_dark_preferring_system(studio: str) -> None:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        backgrounds = {}
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 1366, "height": 900}, color_scheme=scheme)
            page.goto(studio)
            drawn(page, "Submit a talking video")
            backgrounds[scheme] = page.evaluate(
                "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
            )
            page.close()
        browser.close()
    assert backgrounds["light"] == "rgb(255, 255, 255)", backgrounds
    assert backgrounds["dark"] == "rgb(23, 22, 20)", backgrounds


def test_the_keyboard_reaches_submit_without_a_stop_on_each_heading(studio: str) -> None:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(studio)
        drawn(page, "Submit a talking video")
        start_of_main(page)
        anchors, presses = 0, 0
        while presses < 120:
            page.keyboard.press("Tab")
            presses += 1
            focused = page.evaluate(
                "() => { const e = document.activeElement; return {text: (e.innerText || '').trim(), "
                "tag: e.tagName, heading: !!e.closest('h1,h2,h3'), href: e.getAttribute('href') || ''}; }"
            )
            anchors += focused["heading"] and focused["tag"] == "A"
            if focused["tag"] == "BUTTON" and focused["text"].endswith("Submit"):
                break
        browser.close()
    print(f"Tab presses from the top of Submit's main area to the Submit button: {presses}")
    assert anchors == 0, "a heading's anchor link took the focus"
    assert presses <= MOST_TABS_TO_SUBMIT, presses


MIC_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={EXAMPLES / 'media' / 'speech_1.wav'}",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_WIDGET = "(key) => !!document.activeElement && !!document.activeElement.closest(`[class*='st-key-${key}']`)"


def tab_to(page: Page, check: str, most: int = 80) -> int:
    """Press Tab until `check` (a JS function of the focused element) holds; how many presses it took."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => ({check})(document.activeElement)"):
            return presses
    raise AssertionError(f"never reached with {most} Tab presses: {check}")


def focus_stays(page: Page, key: str, seconds: float = 3.0) -> bool:
    """Whether the focus is inside the widget keyed `key` for the whole of `seconds` (redraws included)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not page.evaluate(IN_WIDGET, key):
            return False
        page.wait_for_timeout(150)
    return True


def test_keyboard_only_submit_photo_record_stop_and_send_keeps_the_focus(studio: str) -> None:
    """Issue 29: after choosing a file and after Record the focus jumped to the page's top, so a second Enter
    could not stop the recording. Here every step is a key press (the file dialog is answered by Playwright)."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=MIC_ARGS)
        context = browser.new_context(permissions=["microphone"], viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.goto(studio)
        drawn(page, "Submit a talking video")
        start_of_main(page)

        tab_to(page, "(e) => e.closest(`[class*='st-key-submit-cond_upload']`) && e.tagName === 'BUTTON'")
        try:
            with page.expect_file_chooser(timeout=5_000) as chooser:
                page.keyboard.press("Enter")
            chooser.value.set_files(str(EXAMPLES / "media" / "portrait.jpg"))
        except PlaywrightTimeoutError:  # headless Chromium may open no dialog: the file goes in as a drop would
            uploader = page.locator("[class*='st-key-submit-cond_upload'] input[type='file']")
            uploader.set_input_files(str(EXAMPLES / "media" / "portrait.jpg"))
        page.get_by_role("img", name="The portrait the video will animate").wait_for(timeout=60_000)
        drawn(page, "Submit a talking video")
        assert focus_stays(page, "submit-cond_upload"), "the focus stays on the uploader after choosing a file"

        tab_to(page, "(e) => e.getAttribute('aria-label') === 'Record'")
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Stop recording").wait_for(timeout=10_000)
        assert focus_stays(page, "submit-p1_record", 2.5), "the focus stays on the recorder while it records"
        page.keyboard.press("Enter")
        page.locator(
            "[class*='st-key-submit-p1_record'] [data-testid='stAudioInputWaveSurfer'], "
            "[class*='st-key-submit-p1_record'] audio"
        ).first.wait_for(state="attached", timeout=20_000)
        drawn(page, "Submit a talking video")
        assert page.get_by_role("button", name="Stop recording").count() == 0, "the second Enter stopped it"

        tab_to(page, "(e) => e.tagName === 'TEXTAREA' && e.getAttribute('aria-label') === 'Describe the scene'")
        page.keyboard.type("A keyboard-only take")
        tab_to(page, "(e) => e.tagName === 'BUTTON' && (e.innerText || '').trim().endsWith('Submit')", most=120)
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="Live jobs").wait_for(timeout=60_000)
        context.close()
        browser.close()
