"""Sign-in in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run dashboard/app.py`
with an [auth] section whose identity provider is a real OIDC provider on loopback (PyPI's oidc-provider-mock,
run as its own server). Nothing is faked between them: st.login's redirect, the provider's sign-in form, the
authorisation code, the token exchange and Streamlit's identity cookie are all the real ones.

Screenshots land in test-artifacts/screenshots/signin-*.png.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, WebSocket, expect, sync_playwright

from catalog import Catalog
from tests.dashboard_support import OUTSIDE_SETTINGS, ROOT
from tests.s3server import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ALLOWED = "ada@allowed.test"
UNLISTED = "mallory@elsewhere.test"
UNVERIFIED = "eve@allowed.test"
"""In the allowed domain, but the provider sends `email_verified: "false"` (a string, as some providers do)."""
PRIVATE_PROMPT = "A submarine captain reads the launch codes aloud"
"""A run already in the catalogue: its prompt must reach nobody who is not let in."""
PATIENCE_MS = 60_000
"""How long a page may take to show what it should, on a loaded two-core machine."""
expect.set_options(timeout=PATIENCE_MS)  # expect() has its own 5 s default, which context timeouts do not change


@dataclass(frozen=True)
class SignInStudio:
    url: str
    provider_url: str


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{url} did not come up: {log.read_text()[-2000:]}"
        time.sleep(0.3)


def _start(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def signin_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInStudio]:
    """A real OIDC provider and the dashboard with an [auth] section pointing at it, STUDIO_ALLOWED_USERS = ada.

    The dashboard runs from a folder of its own whose .streamlit/ holds the project's config.toml and a
    secrets.toml written here, so a developer's own secrets never take part.
    """
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    home = tmp_path_factory.mktemp("signin")
    data_dir = home / "data"
    Catalog(data_dir / "catalog.db").record_submission(
        "job-private", {"prompt": PRIVATE_PROMPT, "cond_video": "portrait.jpg"}, endpoint_id="local"
    )
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_SETTINGS and not k.startswith("STUDIO_")}
    env.update({"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(free_port()), "PYTHONPATH": str(ROOT)})

    provider_port, port = free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    provider_log = home / "provider.log"
    provider = _start(
        [
            sys.executable,
            "-m",
            "oidc_provider_mock",
            "--port",
            str(provider_port),
            "--user",
            ALLOWED,
            "--user",
            UNLISTED,
            "--user",
            UNVERIFIED,
        ],
        home,
        env,
        provider_log,
    )
    try:
        _wait_until_up(f"{provider_url}/.well-known/openid-configuration", provider, provider_log)
        # The provider's own user API sets each identity's claims (by default it sends only `email`).
        for email, verified in ((ALLOWED, True), (UNLISTED, True), (UNVERIFIED, "false")):
            claims = {"email": email, "email_verified": verified}
            requests.put(f"{provider_url}/users/{email}", json=claims, timeout=10).raise_for_status()
        settings = home / ".streamlit"
        settings.mkdir()
        shutil.copy(ROOT / ".streamlit" / "config.toml", settings / "config.toml")
        (settings / "secrets.toml").write_text(
            f'STUDIO_ALLOWED_USERS = ["{ALLOWED}", "{UNVERIFIED}"]\n\n'
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\n'
            'client_id = "infinitetalk-studio"\n'
            f'client_secret = "{secrets.token_hex(16)}"\n'
            f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"\n'
        )
        studio_log = home / "streamlit.log"
        studio = _start(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port)],
            home,
            env,
            studio_log,
        )
        try:
            _wait_until_up(f"http://localhost:{port}/_stcore/health", studio, studio_log)
            yield SignInStudio(url=f"http://localhost:{port}", provider_url=provider_url)
        finally:
            _stop(studio)
    finally:
        _stop(provider)


@pytest.fixture(scope="module")
def browser(signin_studio: SignInStudio) -> Iterator[Browser]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) for each test: every test starts signed out."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PATIENCE_MS)
    yield context.new_page()
    context.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"signin-{name}.png"), full_page=True)


def _frames(page: Page) -> list[bytes]:
    """Every websocket message Streamlit sends this page from now on (what reaches the browser, drawn or not)."""
    received: list[bytes] = []

    def watch(ws: WebSocket) -> None:
        ws.on("framereceived", lambda data: received.append(data if isinstance(data, bytes) else data.encode()))

    page.on("websocket", watch)
    return received


def _sign_in_as(page: Page, studio: SignInStudio, email: str) -> None:
    """Sign in as a person would: the dashboard's button, then the provider's own page, then back."""
    page.goto(studio.url)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{studio.provider_url}/oauth2/authorize*")
    page.get_by_role("button", name=email, exact=True).click()
    page.wait_for_url(f"{studio.url}/**")


def test_a_signed_out_browser_sees_no_page_content_on_any_page(signin_studio: SignInStudio, page: Page) -> None:
    received = _frames(page)
    for path in ("", "submit", "live", "history", "health"):
        page.goto(f"{signin_studio.url}/{path}")
        expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        html = page.content()
        assert PRIVATE_PROMPT not in html, "no job data in the page"
        for page_text in ("Submit a talking video", "Describe the scene", "Search prompts", "Sync from bucket"):
            assert page_text not in html, f"{page_text!r} is drawn for a signed-out browser at /{path}"
        assert page.locator("[data-testid='stSidebar']").count() == 0, "no sidebar, so no endpoint or keys form"
        assert page.locator("[data-testid='stSidebarNav'] a").count() == 0, "no links to the pages"
    _shot(page, "1-signed-out")
    assert received, "the pages were drawn over Streamlit's websocket"
    for leak in (PRIVATE_PROMPT, "Submit a talking video", "Describe the scene", "Search prompts"):
        assert not [frame for frame in received if leak.encode() in frame], f"{leak!r} was sent to the browser"


def test_a_listed_user_signs_in_sees_every_page_and_their_address_and_signs_out(
    signin_studio: SignInStudio, page: Page
) -> None:
    received = _frames(page)
    _sign_in_as(page, signin_studio, ALLOWED)
    expect(page.get_by_role("heading", name="Submit a talking video")).to_be_visible()
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text(ALLOWED)).to_be_visible()
    _shot(page, "2-signed-in")

    page.get_by_role("link", name="History").first.click()
    expect(page.get_by_text(PRIVATE_PROMPT).first).to_be_visible()
    _shot(page, "3-history")
    assert [frame for frame in received if PRIVATE_PROMPT.encode() in frame], "page text travels in these frames"

    page.get_by_role("button", name="Sign out").click()
    # The provider offers to end its own session too (OIDC RP-initiated logout), then sends the browser back.
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert PRIVATE_PROMPT not in page.content()


def test_an_unlisted_user_gets_the_not_allowed_page_naming_the_setting(signin_studio: SignInStudio, page: Page) -> None:
    _sign_in_as(page, signin_studio, UNLISTED)
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text(UNLISTED)).to_be_visible()
    expect(page.get_by_text("STUDIO_ALLOWED_USERS").first).to_be_visible()
    _shot(page, "4-not-allowed")
    page.goto(f"{signin_studio.url}/history")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    html = page.content()
    assert PRIVATE_PROMPT not in html and "Submit a talking video" not in html and ALLOWED not in html
    assert page.locator("[data-testid='stSidebar']").count() == 0


def test_a_listed_user_whose_provider_says_email_verified_false_as_a_string_is_not_let_in(
    signin_studio: SignInStudio, page: Page
) -> None:
    _sign_in_as(page, signin_studio, UNVERIFIED)
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("did not confirm this address is verified")).to_be_visible()
    assert PRIVATE_PROMPT not in page.content()
