"""Who may open the dashboard: sign-in before any page, the Streamlit way (st.login), or a shared password.

A deployed dashboard spends its owner's RunPod credit and shows, downloads and deletes every video, so with sign-in
configured nothing of a page is drawn until the visitor is let in: `gate` runs before the navigation draws and
before any page script, and a visitor who is not in gets one page (sign in, not allowed, or sign-in is broken)
and nothing else. It fails closed: settings with a problem let nobody in.

- An `[auth]` section in secrets (any OIDC provider; Streamlit's st.login, which needs Authlib) signs people in;
  only the addresses in STUDIO_ALLOWED_USERS and the domains in STUDIO_ALLOWED_DOMAINS get past it, and only when
  the provider says `email_verified: true` (or, sending no claim, is named in
  STUDIO_TRUST_UNVERIFIED_EMAIL_PROVIDERS).
- Without one, STUDIO_PASSWORD_HASH (an scrypt hash: `studio password` makes it) asks for a shared
  password, once per browser session; one limiter for the whole process bounds how fast anyone can guess it.
- Until a session is let in, it may not store uploads (`guard_uploads`).
- With neither, the dashboard is open: fine on localhost; on any other address every page says that anyone with
  the link can spend the endpoint's credit, unless STUDIO_PRIVATE_APP says the host already limits viewers.

Run as `studio password` (or `python -m dashboard.signin`) it prints a STUDIO_PASSWORD_HASH line for a password
typed at its prompt (or piped on stdin).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from dashboard import navigation, state, views
from dashboard.config import (
    ALLOWED_DOMAINS,
    ALLOWED_USERS,
    DEFAULT_PROVIDER,
    HASH_SCHEME,
    PASSWORD_HASH,
    PRIVATE_APP,
    TRUST_UNVERIFIED,
    Access,
    PasswordHash,
    parse_password_hash,
    scrypt_cost_problem,
)

PASSWORD_OK = "signin.password_ok"
"""Session-state flag: this browser session typed the shared password."""
FAILED_PASSWORD_DELAY_S = 1.0
"""A wrong password holds its session this long, so guessing through one session is slow."""
ATTEMPTS_PER_S = 1.0
"""Password checks the whole dashboard makes per second, however many sessions ask: the delay above is per
session, so 32 sessions used to guess 5 times a second (issue 27). A person typing is far below it."""
ATTEMPT_BURST = 5
"""Checks allowed at once before the rate applies (a few people signing in together)."""
FREE_FAILURES = 3
"""Wrong passwords a source (an IP address) may send before it waits; each further one doubles its wait."""
MAX_SOURCE_WAIT_S = 60.0
"""The longest a source waits: behind a proxy every visitor shares one source, so a long lockout would hold out
everyone an attacker shares it with; the global rate is the bound that holds there."""
MIN_PASSWORD_LENGTH = 12
NEW_HASH_COST = {"n": 2**14, "r": 8, "p": 1}
"""scrypt's costs for new hashes: 16 MiB and about 50 ms per check, cheap for one sign-in, dear for guessing."""
DOCS = "docs/dashboard.md (Sign-in)"


class Standing(Enum):
    """Where a visitor stands with the dashboard's sign-in."""

    OPEN = "open"
    """No sign-in is configured: everyone is in."""
    ADMITTED = "admitted"
    """Signed in and let in."""
    SIGNED_OUT = "signed_out"
    NOT_ALLOWED = "not_allowed"
    """Signed in, but neither the address nor its domain is listed."""
    MISCONFIGURED = "misconfigured"
    """The sign-in settings have problems: nobody is let in until they are fixed."""


@dataclass(frozen=True)
class Visitor:
    """This session's visitor: their standing, and who they are when an identity provider said so."""

    access: Access
    standing: Standing
    email: str | None = None
    reason: str = ""

    @property
    def admitted(self) -> bool:
        """Whether the pages may be drawn for this visitor."""
        return self.standing in (Standing.OPEN, Standing.ADMITTED)


def make_password_hash(password: str, *, n: int | None = None, r: int | None = None, p: int | None = None) -> str:
    """A STUDIO_PASSWORD_HASH value for `password`: `scrypt$N$r$p$SALT$HASH` with a fresh 16-byte salt.

    Costs the dashboard would refuse to check (config.scrypt_cost_problem) raise ValueError in one line."""
    cost = {**NEW_HASH_COST, **{k: v for k, v in {"n": n, "r": r, "p": p}.items() if v is not None}}
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, cost["n"], cost["r"], cost["p"], 32)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join([HASH_SCHEME, str(cost["n"]), str(cost["r"]), str(cost["p"]), *encoded])


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # hashlib refuses more than 32 MiB by default; the costs are bounded here as well as where a hash is parsed, so
    # no path runs a check bigger than config.SCRYPT_MAX_MEMORY.
    problem = scrypt_cost_problem(n, r, p)
    if problem:
        raise ValueError(f"scrypt costs refused: {problem}")
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=2 * 128 * n * r * p + 2**20)


def password_matches(password: str, expected: PasswordHash) -> bool:
    """Whether `password` hashes to `expected`, compared in constant time (hmac.compare_digest)."""
    actual = _scrypt(password, expected.salt, expected.n, expected.r, expected.p, len(expected.digest))
    return hmac.compare_digest(actual, expected.digest)


@dataclass
class _Source:
    failures: int = 0
    until: float = 0.0


@dataclass
class AttemptLimiter:
    """How many password checks the whole process makes: a token bucket shared by every session (`rate` a second,
    `burst` at once), and per source a wait that doubles with each wrong password past `free_failures`.

    The per-session delay alone let guessing scale with sessions; this bucket is process-wide (one Streamlit
    server is one process), so 32 sessions get what one would. The source is the connection's IP address as
    Streamlit sees it (st.context.ip_address): behind a proxy every visitor shares the proxy's, and then the
    global rate is what holds. `clock` is time.monotonic, replaceable so a test counts permitted attempts
    instead of timing them.
    """

    rate: float = ATTEMPTS_PER_S
    burst: int = ATTEMPT_BURST
    free_failures: int = FREE_FAILURES
    max_wait_s: float = MAX_SOURCE_WAIT_S
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(default=-1.0, init=False)
    _last: float = field(default=0.0, init=False)
    _sources: dict[str, _Source] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def acquire(self, source: str) -> float:
        """0.0 when a check may run now (and counts it), else the seconds to wait before trying again."""
        with self._lock:
            now = self.clock()
            held = self._sources.get(source)
            if held is not None and held.until > now:
                return held.until - now
            if self._tokens < 0:
                self._tokens, self._last = float(self.burst), now
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                return (1.0 - self._tokens) / self.rate
            self._tokens -= 1.0
            return 0.0

    def failed(self, source: str) -> None:
        """A wrong password from `source`: past the free ones, it waits 2, 4, 8… seconds (at most max_wait_s)."""
        with self._lock:
            held = self._sources.setdefault(source, _Source())
            held.failures += 1
            extra = held.failures - self.free_failures
            if extra > 0:
                held.until = self.clock() + min(self.max_wait_s, 2.0 ** min(extra, 30))
            if len(self._sources) > 10_000:  # forget the oldest sources rather than grow without end
                for stale in list(self._sources)[:5_000]:
                    del self._sources[stale]

    def succeeded(self, source: str) -> None:
        """The right password from `source`: its count starts again."""
        with self._lock:
            self._sources.pop(source, None)


LIMITER = AttemptLimiter()
"""The process's one limiter: every session's password form draws from it."""


def _source() -> str:
    """Who is guessing, as far as Streamlit can tell: the connection's IP address (None on localhost)."""
    return st.context.ip_address or "local"


def check_password(typed: str, hashed: PasswordHash | None, source: str) -> bool | float:
    """True or False for the typed password, or the seconds to wait when the limiter refuses a check now."""
    wait = LIMITER.acquire(source)
    if wait > 0:
        return wait
    if hashed is not None and typed and password_matches(typed, hashed):
        LIMITER.succeeded(source)
        return True
    LIMITER.failed(source)
    return False


def is_local_address(url: str | None) -> bool:
    """Whether the browser reached the dashboard on this machine (localhost, 127.0.0.0/8, ::1).

    An unknown address counts as local: a real browser always sends its URL, so only a test harness without one
    (AppTest) gets here, and it should see the dashboard as a developer does. The URL comes from the browser, so
    a visitor could hide the warning from themselves, never let themselves in: it only decides the warning.
    """
    if not url:
        return True
    host = (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _browser_url() -> str | None:
    url = st.context.url
    if url:
        return url
    host = st.context.headers.get("Host")
    return f"//{host}" if host else None


def _user() -> Mapping[str, object]:
    """What the identity provider said about this session's user (Streamlit's signed cookie), or nothing."""
    return st.user.to_dict()


def visitor(access: Access) -> Visitor:
    """Where this session's visitor stands with `access`."""
    if access.problems:
        return Visitor(access, Standing.MISCONFIGURED)
    if access.uses_oidc:
        user = _user()
        if not user.get("is_logged_in"):
            return Visitor(access, Standing.SIGNED_OUT)
        email = str(user.get("email") or "").strip()
        if not email:
            return Visitor(access, Standing.NOT_ALLOWED, reason="your identity provider sent no email address")
        verified = user.get("email_verified")
        provider = str(user.get("provider") or DEFAULT_PROVIDER).lower()
        trusted = "email_verified" not in user and provider in access.trust_unverified
        if verified is not True and not trusted:
            return Visitor(
                access, Standing.NOT_ALLOWED, email, reason=_unverified_reason(verified, "email_verified" in user)
            )
        if not access.admits(email):
            return Visitor(access, Standing.NOT_ALLOWED, email)
        return Visitor(access, Standing.ADMITTED, email)
    if access.uses_password:
        standing = Standing.ADMITTED if st.session_state.get(PASSWORD_OK) else Standing.SIGNED_OUT
        return Visitor(access, standing)
    return Visitor(access, Standing.OPEN)


def _unverified_reason(verified: object, sent: bool) -> str:
    """Why an identity without `email_verified: true` is refused: only a JSON true proves the provider checked the
    address (a string "false", 0 or null prove nothing, and a multi-tenant provider may send an address the tenant
    chose without any claim)."""
    if not sent:
        return (
            "your identity provider did not say this address is verified (the dashboard's owner can trust a provider "
            f"that never says so with `{TRUST_UNVERIFIED}`)"
        )
    if verified is False:
        return "your identity provider says this address is unverified"
    return "your identity provider did not confirm this address is verified"


def shown_address(email: str) -> str:
    """An email address for Markdown: a code span, so it is shown as written and never turned into a mailto link."""
    return f"`{email.replace('`', '')}`"


def _provider_label(provider: str | None) -> str:
    return "Sign in" if provider is None else f"Sign in with {provider[:1].upper()}{provider[1:]}"


def _signed_out_page(current: Visitor) -> None:
    st.title("Sign in")
    if current.access.uses_oidc:
        st.write("InfiniteTalk Studio is for signed-in users only.")
        for provider in current.access.providers:
            if st.button(_provider_label(provider), type="primary", key=f"signin.login.{provider or 'default'}"):
                st.login(provider)
        return
    st.write("InfiniteTalk Studio asks for its password.")
    with st.form("signin.password", clear_on_submit=True):
        typed = st.text_input("Password", type="password", key="signin.password")
        if st.form_submit_button("Sign in", type="primary"):
            result = check_password(typed, current.access.password_hash, _source())
            if result is True:
                st.session_state[PASSWORD_OK] = True
                st.rerun()
            if result is False:
                time.sleep(FAILED_PASSWORD_DELAY_S)
                st.error("Wrong password.", icon=":material/lock:")
            else:
                st.error(
                    f"Too many sign-in attempts: try again in {math.ceil(result)} s. Nothing was checked.",
                    icon=":material/timer:",
                )


def _not_allowed_page(current: Visitor) -> None:
    st.title("Not allowed")
    who = shown_address(current.email) if current.email else "This account"
    st.error(f"{who} is not allowed to use this dashboard{': ' + current.reason if current.reason else ''}.")
    st.markdown(
        f"The dashboard's owner lets people in by listing them in the app's secrets: an address in "
        f"`{ALLOWED_USERS}` (`ada@example.com`), or a whole domain in `{ALLOWED_DOMAINS}` (`example.com`). "
        "Ask them to add you, or sign out and sign in with an account that is listed."
    )
    if st.button("Sign out", key="signin.logout"):
        st.logout()


def _misconfigured_page(current: Visitor) -> None:
    st.title("Sign-in is not set up correctly")
    st.write(f"Nobody is let in until the app's secrets are fixed (see {DOCS}):")
    for problem in current.access.problems:
        st.error(views.plain(problem), icon=":material/key_off:")


_ADMITTED_SESSIONS: set[str] = set()
"""Streamlit session ids whose visitor the gate let in, for the upload route (below)."""
_GUARD_LOCK = threading.Lock()
_GUARD_FLAG = "_studio_upload_guard"


def guard_uploads(admitted: bool) -> None:
    """Let only sessions the gate let in store uploads.

    Streamlit's upload route (`PUT /_stcore/upload_file/{session}/{file}`) takes a file of up to
    server.maxUploadSize for any live session and keeps it in memory until the session ends: a signed-out
    visitor with their own session id and XSRF cookie could fill the server's memory 200 MB at a time, with
    the password page showing (issue 27). server.maxUploadSize is one process-wide option, so there is no
    smaller limit per session; instead the route's one session check, `Runtime.is_active_session` (which
    nothing else in Streamlit 1.67 calls), is wrapped so it also asks whether the gate let that session in.
    A refused PUT is answered 400 before any of its body is read; when a session stops being let in (sign
    out) its stored files are dropped. tests/test_upload_guard.py checks this against a real `streamlit run`,
    so a Streamlit that moves the check fails the test rather than the bound.
    """
    context = get_script_run_ctx(suppress_warning=True)
    if context is None or not Runtime.exists():
        return  # AppTest: no server, no upload route
    runtime = Runtime.instance()
    with _GUARD_LOCK:
        if not getattr(runtime, _GUARD_FLAG, False):
            original = runtime.is_active_session

            def is_active_session(session_id: str) -> bool:
                return session_id in _ADMITTED_SESSIONS and original(session_id)

            runtime.is_active_session = is_active_session  # type: ignore[method-assign]
            setattr(runtime, _GUARD_FLAG, original)
        original_check = getattr(runtime, _GUARD_FLAG)
        if admitted:
            for gone in [sid for sid in _ADMITTED_SESSIONS if not original_check(sid)]:
                _ADMITTED_SESSIONS.discard(gone)
            _ADMITTED_SESSIONS.add(context.session_id)
        elif context.session_id in _ADMITTED_SESSIONS:
            _ADMITTED_SESSIONS.discard(context.session_id)
            runtime.uploaded_file_mgr.remove_session_files(context.session_id)


def gate(pages: Sequence[st.Page]) -> Visitor:
    """Decide who this visitor is; unless they are let in, draw the one page that tells them why, and nothing else.

    The navigation is still given every page, hidden, so any page's URL lands on this gate instead of Streamlit's
    "page not found"; no page script runs, so no page content, sidebar or job data reaches a visitor who is out.
    """
    current = visitor(state.access())
    guard_uploads(current.admitted)
    if current.admitted:
        return current
    st.navigation(list(pages), position="hidden")
    {
        Standing.SIGNED_OUT: _signed_out_page,
        Standing.NOT_ALLOWED: _not_allowed_page,
        Standing.MISCONFIGURED: _misconfigured_page,
    }[current.standing](current)
    return current


def warn_if_open(current: Visitor) -> None:
    """On a non-local address with no sign-in configured, say at the top of the page what that means; and when
    the server listens beyond this machine, say in the sidebar who can reach it (navigation.reach_notice)."""
    navigation.reach_notice(signed_in=current.standing is Standing.ADMITTED)
    if current.standing is not Standing.OPEN or current.access.private_app:
        return
    if not is_local_address(_browser_url()):
        st.warning(
            "**This dashboard is open to anyone with its link**: they can submit jobs on this endpoint's RunPod "
            f"credit and see, download and delete every video. Set up sign-in in the app's secrets: an `[auth]` "
            f"section (Google, Microsoft, Auth0, Okta… with `{ALLOWED_USERS}` / `{ALLOWED_DOMAINS}`) or a shared "
            f"password (`{PASSWORD_HASH}`); or, when the host already limits who can open it (Community Cloud's "
            f"private app), say so with `{PRIVATE_APP} = true`. See {DOCS}.",
            icon=":material/lock_open:",
        )


def render_who(current: Visitor) -> None:
    """Who is signed in, with a way to sign out; nothing when the dashboard is open."""
    if current.standing is not Standing.ADMITTED:
        return
    st.divider()
    if current.email:
        st.caption("Signed in as")
        st.markdown(shown_address(current.email))
        if st.button("Sign out", icon=":material/logout:", key="signin.logout"):
            st.logout()
        return
    st.caption("Signed in with the shared password")
    if st.button("Sign out", icon=":material/logout:", key="signin.logout"):
        st.session_state.pop(PASSWORD_OK, None)
        st.rerun()


def signed_in_email() -> str | None:
    """This session's user, for what the catalogue records (who submitted, who deleted) and History's "mine": the
    address the identity provider signed in and the allow-list let in; None on an open dashboard or behind the
    shared password, which name nobody."""
    current = visitor(state.access())
    return current.email if current.standing is Standing.ADMITTED else None


def _check_hash(text: str) -> int:
    """`--check`: what the dashboard will make of a hash, before it is pasted into the app's secrets."""
    problems: list[str] = []
    parsed = parse_password_hash(text, problems) if text.strip() else None
    if parsed is None:
        print(f"error: {problems[0] if problems else f'no {PASSWORD_HASH} in the environment or on stdin'}",
              file=sys.stderr)  # fmt: skip
        return 1
    memory = 128 * parsed.r * parsed.n // 2**20
    print(f"{PASSWORD_HASH} is usable: scrypt N={parsed.n}, r={parsed.r}, p={parsed.p}, {memory} MiB per check")
    return 0


def main(argv: list[str] | None = None, prog: str = "studio password") -> int:
    """Print a STUDIO_PASSWORD_HASH line: the password is read at a hidden prompt (twice), or from stdin.

    It takes no arguments; `--help` says so (it read an empty stdin and answered with a password error, issue 29).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Make the dashboard's shared password: prints a {PASSWORD_HASH} line (an scrypt hash) to put "
        "in the environment or in .streamlit/secrets.toml. The password is asked twice at a hidden prompt, or "
        f"read from standard input (echo ... | {prog}); at least {MIN_PASSWORD_LENGTH} characters.",
        epilog=f"example: {prog} >> .streamlit/secrets.toml",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"check a hash instead ({PASSWORD_HASH} from the environment, else standard input): print its scrypt "
        "costs, or in one line why the dashboard would refuse it (more than 64 MiB per check, say)",
    )
    if parser.parse_args(argv).check:
        return _check_hash(os.environ.get(PASSWORD_HASH) or ("" if sys.stdin.isatty() else sys.stdin.read()))
    if sys.stdin.isatty():
        password = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the two passwords differ; nothing was made", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.read().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        print(
            f"error: use at least {MIN_PASSWORD_LENGTH} characters; anyone with the app's link may guess at it",
            file=sys.stderr,
        )
        return 1
    print(f'{PASSWORD_HASH} = "{make_password_hash(password)}"')
    return 0


if __name__ == "__main__":  # the old form, kept for scripts already written
    print("note: this is now `studio password`", file=sys.stderr)
    raise SystemExit(main(prog="python -m dashboard.signin"))
