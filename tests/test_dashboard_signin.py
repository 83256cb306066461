"""Sign-in before any page, under AppTest: who gets in with an [auth] section (st.user as the identity provider
left it), the shared-password fallback, settings that fail closed, and the open-dashboard warning.

The real st.login round trip (a real OIDC provider, Chromium, `streamlit run`) is in tests/test_browser.py.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from dashboard.config import PasswordHash, parse_password_hash
from dashboard.signin import AttemptLimiter, make_password_hash, password_matches
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
    """What st.user holds after an identity provider signed `email` in (and said it verified the address)."""
    return {"is_logged_in": True, "email": email, "email_verified": True, "provider": "default", **claims}


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


@pytest.mark.parametrize("claim", ["false", "False", 0, None, "true", 1, "absent"])
def test_only_an_email_verified_claim_of_true_lets_an_allow_listed_domain_in(data_dir: Path, claim: Any) -> None:
    """Some providers send the claim as a string, some multi-tenant ones send none with an address the tenant
    chose: anything but a JSON true is refused (issue 27), and the page says why."""
    secrets = {"auth": AUTH, "STUDIO_ALLOWED_DOMAINS": "example.org"}
    user = signed_in("ada@example.org", email_verified=claim)
    if claim == "absent":
        del user["email_verified"]
    at = open_page(secrets=secrets, user=user)
    assert at.title[0].value == "Not allowed"
    shown = texts(at)
    assert "verified" in shown
    if claim == "absent":
        assert "`STUDIO_TRUST_UNVERIFIED_EMAIL_PROVIDERS`" in shown
    assert_no_page_content(at)
    assert open_page(secrets=secrets, user=signed_in("ada@example.org")).title[0].value == "Submit a talking video"


def test_a_provider_named_as_never_sending_the_claim_is_trusted_without_it_and_only_without_it(data_dir: Path) -> None:
    shared = {key: AUTH[key] for key in ("redirect_uri", "cookie_secret")}
    provider = {key: AUTH[key] for key in ("client_id", "client_secret", "server_metadata_url")}
    secrets = {
        "auth": {**shared, "okta": provider, "google": provider},
        "STUDIO_ALLOWED_DOMAINS": "example.org",
        "STUDIO_TRUST_UNVERIFIED_EMAIL_PROVIDERS": "okta",
    }
    claimless = {"is_logged_in": True, "email": "ada@example.org"}
    assert open_page(secrets=secrets, user={**claimless, "provider": "okta"}).title[0].value == "Submit a talking video"
    assert open_page(secrets=secrets, user={**claimless, "provider": "google"}).title[0].value == "Not allowed"
    said_no = {**claimless, "provider": "okta", "email_verified": "false"}
    assert open_page(secrets=secrets, user=said_no).title[0].value == "Not allowed"

    unknown = open_page(secrets={**secrets, "STUDIO_TRUST_UNVERIFIED_EMAIL_PROVIDERS": "octa"}, user=claimless)
    assert unknown.title[0].value == "Sign-in is not set up correctly"
    assert "'octa' is not a provider in \\[auth\\]" in texts(unknown)


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
    assert "STUDIO\\_PASSWORD\\_HASH" in shown and "studio password" in shown
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
        [sys.executable, "-m", "studio", "password"],
        cwd=ROOT,
        input=PASSWORD,
        capture_output=True,
        text=True,
        check=True,
    )
    name, _, quoted = made.stdout.strip().partition(" = ")
    assert name == "STUDIO_PASSWORD_HASH" and PASSWORD not in made.stdout
    at = open_page(secrets={name: quoted.strip('"')})
    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert at.title[0].value == "Submit a talking video"

    short = subprocess.run(
        [sys.executable, "-m", "studio", "password"],
        cwd=ROOT,
        input="short",
        capture_output=True,
        text=True,
        check=False,
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


# ------------------------------------------------------------------------------------------------------------
# Guessing the shared password: one limiter for the whole process (issue 27)
# ------------------------------------------------------------------------------------------------------------


class SteppedClock:
    """A clock the test moves: the limiter is judged by how many checks it permits in a stretch of its time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_32_sources_guessing_together_get_no_more_checks_than_the_global_rate() -> None:
    clock = SteppedClock()
    limiter = AttemptLimiter(rate=1.0, burst=5, free_failures=10**6, clock=clock)
    permitted = 0
    for _ in range(100):  # 100 rounds of 32 sessions, 0.1 s of the limiter's time apart: 10 s in all
        for source in range(32):
            if limiter.acquire(f"10.0.0.{source}") == 0.0:
                permitted += 1
                limiter.failed(f"10.0.0.{source}")
        clock.now += 0.1
    assert permitted <= 5 + 1.0 * 10, permitted
    assert permitted >= 10, "the rate is a rate, not a lockout: checks go on at about one a second"


def test_one_source_that_keeps_guessing_waits_longer_each_time_and_others_are_not_held() -> None:
    clock = SteppedClock()
    limiter = AttemptLimiter(rate=1000.0, burst=1000, free_failures=3, max_wait_s=300.0, clock=clock)
    for _ in range(3):
        assert limiter.acquire("203.0.113.9") == 0.0
        limiter.failed("203.0.113.9")
    waits = []
    for _ in range(10):
        assert limiter.acquire("203.0.113.9") == 0.0
        limiter.failed("203.0.113.9")
        waits.append(limiter.acquire("203.0.113.9"))
        assert limiter.acquire("198.51.100.1") == 0.0, "another source is not held by this one's guessing"
        clock.now += waits[-1]
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
    limiter.succeeded("203.0.113.9")
    assert limiter.acquire("203.0.113.9") == 0.0


def _password_gate() -> None:
    from dashboard import navigation, signin

    signin.gate(navigation.all_pages())


def test_32_sessions_on_one_dashboard_share_one_limit(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each AppTest is a session of its own in this one process, as browser tabs are in a Streamlit server; the
    limiter's clock stands still, so exactly its burst of checks runs, whatever the machine's speed."""
    from dashboard import signin

    clock = SteppedClock()
    monkeypatch.setattr(signin, "LIMITER", AttemptLimiter(rate=1.0, burst=5, free_failures=10**6, clock=clock))
    monkeypatch.setattr(signin, "FAILED_PASSWORD_DELAY_S", 0.0)
    checks: list[str] = []
    real_check = signin.password_matches

    def counted(password: str, expected: PasswordHash) -> bool:
        checks.append(password)
        return real_check(password, expected)

    monkeypatch.setattr(signin, "password_matches", counted)
    secrets = {"STUDIO_PASSWORD_HASH": make_password_hash(PASSWORD, n=2**10)}
    outcomes = []
    for session in range(32):
        at = AppTest.from_function(_password_gate, default_timeout=30)
        at.secrets["STUDIO_PASSWORD_HASH"] = secrets["STUDIO_PASSWORD_HASH"]
        at.run()
        at.text_input(key="signin.password").input(f"guess {session}")
        at.button[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
        outcomes.append([e.value for e in at.error])
    assert len(checks) == 5
    assert outcomes.count(["Wrong password."]) == 5
    refused = [o for o in outcomes if o != ["Wrong password."]]
    assert len(refused) == 27 and all(o[0].startswith("Too many sign-in attempts: try again in 1 s") for o in refused)

    clock.now += 1.0  # a second later the right password gets its check
    at = AppTest.from_function(_password_gate, default_timeout=30)
    at.secrets["STUDIO_PASSWORD_HASH"] = secrets["STUDIO_PASSWORD_HASH"]
    at.run()
    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["signin.password_ok"] is True
    assert len(checks) == 6


# ------------------------------------------------------------------------------------------------------------
# scrypt's costs: at most 64 MiB per check (issue 27)
# ------------------------------------------------------------------------------------------------------------


def _hash_with_costs(n: int, r: int, p: int) -> str:
    """A well-formed hash line with these costs (salt and digest random: it is refused before any check)."""
    salt, digest = (base64.b64encode(secrets.token_bytes(size)).decode() for size in (16, 32))
    return f"scrypt${n}${r}${p}${salt}${digest}"


@pytest.mark.parametrize(
    ("n", "r", "p", "refusal"),
    [
        (2**20, 32, 16, "N=1048576, r=32 take 4096 MiB per check (128·r·N), more than the 64 MiB allowed"),
        (2**17, 8, 1, "N=131072, r=8 take 128 MiB per check (128·r·N), more than the 64 MiB allowed"),
        (2**16, 8, 16, "p=16 makes each check too slow (128·r·N·p at most 256 MiB, p <= 16)"),
        (2**10, 8, 17, "p=17 makes each check too slow"),
        (3, 8, 1, "N must be a power of 2"),
    ],
)
def test_a_hash_asking_for_more_than_64_mib_or_a_second_per_check_is_refused_in_one_line(
    n: int, r: int, p: int, refusal: str
) -> None:
    problems: list[str] = []
    assert parse_password_hash(_hash_with_costs(n, r, p), problems) is None
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("STUDIO_PASSWORD_HASH has unusable scrypt costs (")
    assert refusal in problems[0] and problems[0].endswith("paste the line it prints")
    with pytest.raises(ValueError, match="scrypt costs refused"):
        make_password_hash(PASSWORD, n=n, r=r, p=p)


def test_the_largest_allowed_costs_still_work() -> None:
    problems: list[str] = []
    made = make_password_hash(PASSWORD, n=2**16, r=8, p=1)  # 64 MiB, the cap
    parsed = parse_password_hash(made, problems)
    assert problems == [] and parsed is not None
    assert password_matches(PASSWORD, parsed) and not password_matches("wrong", parsed)


def test_a_dashboard_whose_hash_asks_for_4_gib_lets_nobody_in_and_says_why(data_dir: Path) -> None:
    at = open_page(secrets={"STUDIO_PASSWORD_HASH": _hash_with_costs(2**20, 32, 16)})
    assert at.title[0].value == "Sign-in is not set up correctly"
    assert "4096 MiB per check" in texts(at)
    assert not at.text_input, "no password box: nothing would run a 4 GiB check"


@pytest.fixture
def listening_on() -> Iterator[Callable[[str | None], None]]:
    """Set server.address as `studio run --host` would, restoring Streamlit's option afterwards."""
    from streamlit import config

    before = config.get_option("server.address")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


def test_a_dashboard_listening_beyond_loopback_says_who_can_reach_it(
    data_dir: Path, listening_on: Callable[[str | None], None]
) -> None:
    listening_on("0.0.0.0")
    open_dashboard = texts(open_page().sidebar)
    assert "Listening on every network interface" in open_dashboard
    assert "can submit jobs on this endpoint's credit" in open_dashboard

    at = open_page(secrets={"STUDIO_PASSWORD_HASH": make_password_hash(PASSWORD, n=2**10)})
    at.text_input(key="signin.password").input(PASSWORD)
    at.button[0].click().run()
    assert "meets the sign-in page first" in texts(at.sidebar)

    listening_on("127.0.0.1")
    assert "Listening on" not in texts(open_page().sidebar)


def test_the_password_tools_help_is_help_not_an_error() -> None:
    """Issue 29: `studio password --help` read an empty stdin and printed a password error."""
    done = subprocess.run(
        [sys.executable, "-m", "studio", "password", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage: studio password" in done.stdout and "STUDIO_PASSWORD_HASH" in done.stdout
    assert "error" not in done.stderr


def test_the_hash_command_checks_a_hash_and_refuses_one_over_64_mib_in_one_line() -> None:
    def check(hashed: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "STUDIO_PASSWORD_HASH"}
        return subprocess.run(
            [sys.executable, "-m", "studio", "password", "--check"], cwd=ROOT, input=hashed, capture_output=True,
            text=True, check=False, env=env,
        )  # fmt: skip

    huge = check(_hash_with_costs(2**20, 32, 16))
    errors = [line for line in huge.stderr.splitlines() if line.startswith("error: ")]
    assert huge.returncode == 1 and not huge.stdout
    assert errors == [
        "error: STUDIO_PASSWORD_HASH has unusable scrypt costs (N=1048576, r=32 take 4096 MiB per check (128·r·N), "
        "more than the 64 MiB allowed): make one with `studio password` and paste the line it prints"
    ]
    good = check(make_password_hash(PASSWORD))
    assert good.returncode == 0
    assert good.stdout.strip() == "STUDIO_PASSWORD_HASH is usable: scrypt N=16384, r=8, p=1, 16 MiB per check"
