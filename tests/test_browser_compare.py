"""The Compare page in a real browser: a `?compare=A,B` link opens two real preview videos side by side, and
playing, seeking or pausing one moves the other (the page's script keeps them in step)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from catalog import Catalog
from core.settings import Settings
from tests.dashboard_support import EXAMPLES, example_job, real_run
from tests.test_browser import SCREENSHOTS, page, studio  # noqa: F401  (the browser and the running dashboard)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_compare_link_plays_both_videos_in_step(studio: tuple[str, Path, int], page: Page) -> None:  # noqa: F811
    url, data_dir, _ = studio
    settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
    catalog = Catalog(settings.catalog_file)
    for job_id, steps in (("cmp-a", 8), ("cmp-b", 20)):
        real_run(settings, catalog, job_id, example_job(f"Compare me, {steps} steps", frame_num=81, sample_steps=steps))

    page.goto(f"{url}/compare?compare=cmp-a,cmp-b")
    expect(page.get_by_role("heading", name="Compare two runs")).to_be_visible(timeout=30_000)
    a = page.locator(".st-key-compare-video-a video")
    b = page.locator(".st-key-compare-video-b video")
    expect(a).to_be_visible(timeout=30_000)
    expect(b).to_be_visible(timeout=30_000)
    page.wait_for_function("() => window.__compareInStep === true", timeout=30_000)
    # Streamlit's video element seeks to its start time when the file's metadata arrives: a seek made before that
    # (no user can make one: there is nothing to seek yet) is undone, both videos then sitting at 0 (2 CI runs in 6
    # under load). So the test waits, as a user does, until both have loaded.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-compare-video-a video, .st-key-compare-video-b video')]"
        ".every(v => v.readyState === HTMLMediaElement.HAVE_ENOUGH_DATA)",
        timeout=30_000,
    )
    for video in (a, b):
        video.evaluate("v => { v.muted = true; }")

    a.evaluate("v => { v.currentTime = 1.6; }")
    page.wait_for_function(
        "() => Math.abs(document.querySelector('.st-key-compare-video-b video').currentTime - 1.6) < 0.05",
        timeout=10_000,
    )
    a.evaluate("v => v.play()")
    page.wait_for_function("() => !document.querySelector('.st-key-compare-video-b video').paused", timeout=10_000)
    b.evaluate("v => v.pause()")
    page.wait_for_function("() => document.querySelector('.st-key-compare-video-a video').paused", timeout=10_000)
    times = page.evaluate(
        "() => [...document.querySelectorAll('.st-key-compare-video-a video, .st-key-compare-video-b video')]"
        ".map(v => v.currentTime)"
    )
    assert times[0] > 1.6 and abs(times[0] - times[1]) < 0.3, times

    page.frame_locator("iframe").get_by_role("button", name="Play both from the start").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.st-key-compare-video-a video, .st-key-compare-video-b video')]"
        ".every(v => !v.paused)",
        timeout=10_000,
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "9-compare.png"), full_page=True)
    expect(page.get_by_text("Parameters that differ")).to_be_visible()
