"""Sign-in before any page, under AppTest: who gets in with an [auth] section (st.user as the identity provider
left it), the shared-password fallback, settings that fail closed, and the open-dashboard warning.

The real st.login round trip (a real OIDC provider, Chromium, `streamlit run`) is in tests/test_browser.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from dashboard.signin import make_password_hash
from tests.dashboard_support import ROOT, dashboard_env, open_page, texts

PAGES = ("submit", "live", "history", "health")
SECRET_PROMPT = "A lighthouse keeper whispers the vault code"
AUTH = {
    "redirect_uri": "https://studio.example.org/oauth2callback",
    "cookie_secret": "cookie-secret-never-shown-0123456789",
    "client_id": "studio-client",
    "client_secret": "client-secret-never-shown",
    "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
}
PASSWORD = "correct horse battery staple"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dashboard (local endpoint not running) whose catalogue already holds a run with a private prompt."""
    data = tmp_path / "data"
    dashboard_env(monkeypatch, data)
    for name in ("STUDIO_ALLOWED_USERS", "STUDIO_ALLOWED_DOMAINS", "STUDIO_PASSWORD_HASH"):
        monkeypatch.delenv(name, raising=False)
    Catalog(data / "catalog.db").record_submission(
        "job-private", {"prompt": SECRET_PROMPT, "cond_video": "v.jpg"}, endpoint_id="local"
    )
    return data


def signed_in(email: str, **claims: Any) -> dict[str, Any]:
    """What st.user holds after an identity provider signed `email` in."""
    return {"is_logged_in": True, "email": email, **claims}


def everything(at: AppTest) -> str:
    """All text on the page and in the sidebar, labels of inputs and buttons included."""
    labels = [w.label for w in (*at.text_input, *at.button, *at.selectbox, *at.checkbox)]
    return "\n".join([texts(at), texts(at.sidebar), *labels])  # type: ignore[arg-type]


def assert_no_page_content(at: AppTest) -> None:
    assert not at.sidebar.markdown and not at.sidebar.button, "the sidebar (endpoint, connection form) is not drawn"
    shown = everything(at)
    for page_text in ("Submit a talking video", "Live jobs", "Endpoint health", "Search prompts", "Sync from bucket"):
        assert page_text not in shown
    assert SECRET_PROMPT not in shown, "no job data reaches a visitor who is not let in"


def test_with_auth_a_signed_out_visitor_gets_only_the_sign_in_page_whatever_page_they_ask_for(data_dir: Path) -> None:
    for page in PAGES:
        at = open_page(page, secrets={"auth": AUTH, "STUDIO_ALLOWED_USERS": "ada@example.org"}, user={})
        assert at.title[0].value == "Sign in"
        assert [b.label for b in at.button] == ["Sign in"]
        assert_no_page_content(at)


def test_named_providers_get_one_sign_in_button_each(data_dir: Path) -> None:
    shared = {key: AUTH[key] for key in ("redirect_uri", "cookie_secret")}
    provider = {key: AUTH[key] for key in ("client_id", "client_secret", "server_metadata_url")}
    auth = {**shared, "google": provider, "microsoft": provider}
    at = open_page(secrets={"auth": auth, "STUDIO_ALLOWED_DOMAINS": "example.org"}, user={})
    assert [b.label for b in at.button] == ["Sign in with Google", "Sign in with Microsoft"]


def test_a_listed_user_gets_every_page_and_sees_who_is_signed_in(data_dir: Path) -> None:
    secrets = {"auth": AUTH, "STUDIO_ALLOWED_USERS": "grace@example.com, Ada@Example.org"}
    at = open_page(secrets=secrets, user=signed_in("ada@example.org"))
    assert at.title[0].value == "Submit a talking video"
    assert "`ada@example.org`" in texts(at.sidebar)
    assert at.sidebar.button(key="signin.logout").label == "Sign out"
    assert not at.warning or "open to anyone" not in texts(at)
    at.switch_page("app_pages/history.py").run()
    assert not at.exception
    assert SECRET_PROMPT in texts(at)


def test_a_listed_domain_lets_its_addresses_in_but_not_its_subdomains(data_dir: Path) -> None:
    secrets = {"auth": AUTH, "STUDIO_ALLOWED_DOMAINS": ["example.org"]}
    assert open_page(secrets=secrets, user=signed_in("lin@example.org")).title[0].value == "Submit a talking video"
    assert open_page(secrets=secrets, user=signed_in("lin@mail.example.org")).title[0].value == "Not allowed"
    assert open_page(secrets=secrets, user=signed_in("lin@example.org.evil.test")).title[0].value == "Not allowed"


def test_an_unlisted_user_is_told_which_setting_lets_them_in_and_sees_nothing_else(data_dir: Path) -> None:
    secrets = {"auth": AUTH, "STUDIO_ALLOWED_USERS": "turing@lab.test", "STUDIO_ALLOWED_DOMAINS": "bletchley.test"}
    for page in PAGES:
        at = open_page(page, secrets=secrets, user=signed_in("mallory@example.net"))
        assert at.title[0].value == "Not allowed"
        shown = texts(at)
        assert "`mallory@example.net`" in shown
        assert "STUDIO_ALLOWED_USERS" in shown and "STUDIO_ALLOWED_DOMAINS" in shown
        assert "turing" not in shown and "bletchley" not in shown, "who is listed stays private"
        assert [b.label for b in at.button] == ["Sign out"]
        assert_no_page_content(at)


def test_with_auth_but_nobody_listed_nobody_gets_in(data_dir: Path) -> None:
    at = open_page(secrets={"auth": AUTH}, user=signed_in("owner@example.org"))
    assert at.title[0].value == "Not allowed"
    assert "STUDIO_ALLOWED_USERS" in texts(at)


def test_an_address_the_provider_has_not_verified_is_refused(data_dir: Path) -> None:
    secrets = {"auth": AUTH, "STUDIO_ALLOWED_USERS": "ada@example.org"}
    at = open_page(secrets=secrets, user=signed_in("ada@example.org", email_verified=False))
    assert at.title[0].value == "Not allowed"
    assert "unverified" in texts(at)


def test_a_broken_auth_section_lets_nobody_in_and_names_the_missing_keys_never_their_values(data_dir: Path) -> None:
    broken = {k: v for k, v in AUTH.items() if k not in ("cookie_secret", "server_metadata_url")}
    at = open_page(
        secrets={"auth": broken, "STUDIO_ALLOWED_USERS": "ada@example.org"}, user=signed_in("ada@example.org")
    )
    assert at.title[0].value == "Sign-in is not set up correctly"
    shown = texts(at)
    assert "cookie\\_secret is missing" in shown and "server\\_metadata\\_url" in shown
    assert AUTH["client_secret"] not in shown and "never-shown" not in shown
    assert_no_page_content(at)


def test_the_shared_password_guards_every_page_until_it_is_typed(data_dir: Path) -> None:
    secrets = {"STUDIO_PASSWORD_HASH": make_password_hash(PASSWORD)}
    at = open_page("history", secrets=secrets)
    assert at.title[0].value == "Sign in"
    assert_no_page_content(at)

    at.text_input(key="signin.password").input("not the password")
    at.button[0].click().run()
    assert at.title[0].value == "Sign in"
    assert "Wrong password." in texts(at)
    assert_no_page_content(at)

    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.title[0].value == "History"
    assert "Signed in with the shared password" in texts(at.sidebar)
    assert PASSWORD not in everything(at) and PASSWORD not in repr(at.session_state)

    at.sidebar.button(key="signin.logout").click().run()
    assert at.title[0].value == "Sign in"
    assert_no_page_content(at)


def test_a_password_where_its_hash_belongs_lets_nobody_in_and_is_not_shown(data_dir: Path) -> None:
    at = open_page(secrets={"STUDIO_PASSWORD_HASH": PASSWORD})
    assert at.title[0].value == "Sign-in is not set up correctly"
    shown = texts(at)
    assert "STUDIO\\_PASSWORD\\_HASH" in shown and "python \\-m dashboard\\.signin" in shown
    assert PASSWORD not in shown
    assert_no_page_content(at)


def test_an_allow_list_without_sign_in_fails_closed_instead_of_letting_everyone_in(data_dir: Path) -> None:
    at = open_page(secrets={"STUDIO_ALLOWED_USERS": "ada@example.org"})
    assert at.title[0].value == "Sign-in is not set up correctly"
    assert "no \\[auth\\] section" in texts(at)


def test_an_open_dashboard_on_a_public_address_says_so_on_every_page(data_dir: Path) -> None:
    for page in PAGES:
        at = open_page(page, url=f"https://studio.streamlit.app/{page}")
        banner = [w.value for w in at.warning if "open to anyone with its link" in str(w.value)]
        assert len(banner) == 1, page
        assert "RunPod" in banner[0] and "[auth]" in banner[0] and "STUDIO_PASSWORD_HASH" in banner[0]


@pytest.mark.parametrize("url", ["http://localhost:8501/", "http://127.0.0.1:8501/history", "http://[::1]:8501/"])
def test_on_localhost_an_open_dashboard_is_unchanged(data_dir: Path, url: str) -> None:
    at = open_page(url=url)
    assert at.title[0].value == "Submit a talking video"
    assert not [w for w in at.warning if "open to anyone" in str(w.value)]
    assert "Signed in" not in texts(at.sidebar)


def test_a_dashboard_with_sign_in_shows_no_open_warning_on_a_public_address(data_dir: Path) -> None:
    secrets = {"STUDIO_PASSWORD_HASH": make_password_hash(PASSWORD)}
    at = open_page(secrets=secrets, url="https://studio.streamlit.app/")
    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert at.title[0].value == "Submit a talking video"
    assert not [w for w in at.warning if "open to anyone" in str(w.value)]


def test_the_hash_command_prints_a_secrets_line_that_lets_its_password_in(data_dir: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "dashboard.signin"], cwd=ROOT, input=PASSWORD, capture_output=True, text=True, check=True
    )
    name, _, quoted = made.stdout.strip().partition(" = ")
    assert name == "STUDIO_PASSWORD_HASH" and PASSWORD not in made.stdout
    at = open_page(secrets={name: quoted.strip('"')})
    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert at.title[0].value == "Submit a talking video"

    short = subprocess.run(
        [sys.executable, "-m", "dashboard.signin"], cwd=ROOT, input="short", capture_output=True, text=True, check=False
    )
    assert short.returncode == 1 and "at least 12 characters" in short.stderr and not short.stdout


def test_an_owner_who_made_the_app_private_at_the_host_can_say_so_and_the_warning_goes(data_dir: Path) -> None:
    at = open_page(secrets={"STUDIO_PRIVATE_APP": True}, url="https://studio.streamlit.app/")
    assert at.title[0].value == "Submit a talking video"
    assert not [w for w in at.warning if "open to anyone" in str(w.value)]

    unclear = open_page(secrets={"STUDIO_PRIVATE_APP": "maybe"}, url="https://studio.streamlit.app/")
    assert unclear.title[0].value == "Sign-in is not set up correctly"
    assert "STUDIO\\_PRIVATE\\_APP must be true or false" in texts(unclear)


def _show_signed_in_email() -> None:
    import streamlit as st

    from dashboard import signin

    st.text(f"signed in: {signin.signed_in_email()}")


@pytest.mark.parametrize(
    ("secrets", "user", "expected"),
    [
        ({"auth": AUTH, "STUDIO_ALLOWED_USERS": "ada@example.org"}, signed_in("ada@example.org"), "ada@example.org"),
        ({"auth": AUTH, "STUDIO_ALLOWED_USERS": "ada@example.org"}, signed_in("eve@example.org"), "None"),
        ({"STUDIO_PASSWORD_HASH": make_password_hash(PASSWORD, n=2**10)}, {}, "None"),
        ({}, signed_in("ada@example.org"), "None"),
    ],
)
def test_the_recorded_user_is_the_signed_in_address_that_was_let_in_and_nobody_else(
    data_dir: Path, secrets: dict[str, Any], user: dict[str, Any], expected: str
) -> None:
    at = AppTest.from_function(_show_signed_in_email, default_timeout=30)
    for name, value in secrets.items():
        at.secrets[name] = value
    at.user = user
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text[0].value == f"signed in: {expected}"
