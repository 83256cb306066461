"""Who may open the dashboard: sign-in before any page, the Streamlit way (st.login), or a shared password.

A deployed dashboard spends its owner's RunPod credit and shows, downloads and deletes every video, so with sign-in
configured nothing of a page is drawn until the visitor is let in: `gate` runs before the navigation draws and
before any page script, and a visitor who is not in gets one page (sign in, not allowed, or sign-in is broken)
and nothing else. It fails closed: settings with a problem let nobody in.

- An `[auth]` section in secrets (any OIDC provider; Streamlit's st.login, which needs Authlib) signs people in;
  only the addresses in STUDIO_ALLOWED_USERS and the domains in STUDIO_ALLOWED_DOMAINS get past it.
- Without one, STUDIO_PASSWORD_HASH (an scrypt hash: `python -m dashboard.signin` makes it) asks for a shared
  password, once per browser session.
- With neither, the dashboard is open: fine on localhost; on any other address every page says that anyone with
  the link can spend the endpoint's credit, unless STUDIO_PRIVATE_APP says the host already limits viewers.

Run as `python -m dashboard.signin` it prints a STUDIO_PASSWORD_HASH line for a password typed at its prompt
(or piped on stdin).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import ipaddress
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

import streamlit as st

from dashboard import state, views
from dashboard.config import (
    ALLOWED_DOMAINS,
    ALLOWED_USERS,
    HASH_SCHEME,
    PASSWORD_HASH,
    PRIVATE_APP,
    Access,
    PasswordHash,
)

PASSWORD_OK = "signin.password_ok"
"""Session-state flag: this browser session typed the shared password."""
FAILED_PASSWORD_DELAY_S = 1.0
"""A wrong password holds its session this long, so guessing through the form is slow."""
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
    """A STUDIO_PASSWORD_HASH value for `password`: `scrypt$N$r$p$SALT$HASH` with a fresh 16-byte salt."""
    cost = {**NEW_HASH_COST, **{k: v for k, v in {"n": n, "r": r, "p": p}.items() if v is not None}}
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, cost["n"], cost["r"], cost["p"], 32)
    encoded = (base64.b64encode(part).decode() for part in (salt, digest))
    return "$".join([HASH_SCHEME, str(cost["n"]), str(cost["r"]), str(cost["p"]), *encoded])


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # hashlib refuses more than 32 MiB by default; the parsed costs are bounded (config.SCRYPT_LIMITS).
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=2 * 128 * n * r * p + 2**20)


def password_matches(password: str, expected: PasswordHash) -> bool:
    """Whether `password` hashes to `expected`, compared in constant time (hmac.compare_digest)."""
    actual = _scrypt(password, expected.salt, expected.n, expected.r, expected.p, len(expected.digest))
    return hmac.compare_digest(actual, expected.digest)


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
        if user.get("email_verified") is False:
            return Visitor(
                access, Standing.NOT_ALLOWED, email, reason="your identity provider says this address is unverified"
            )
        if not access.admits(email):
            return Visitor(access, Standing.NOT_ALLOWED, email)
        return Visitor(access, Standing.ADMITTED, email)
    if access.uses_password:
        standing = Standing.ADMITTED if st.session_state.get(PASSWORD_OK) else Standing.SIGNED_OUT
        return Visitor(access, standing)
    return Visitor(access, Standing.OPEN)


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
            hashed = current.access.password_hash
            if hashed is not None and typed and password_matches(typed, hashed):
                st.session_state[PASSWORD_OK] = True
                st.rerun()
            time.sleep(FAILED_PASSWORD_DELAY_S)
            st.error("Wrong password.", icon=":material/lock:")


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


def gate(pages: Sequence[st.Page]) -> Visitor:
    """Decide who this visitor is; unless they are let in, draw the one page that tells them why, and nothing else.

    The navigation is still given every page, hidden, so any page's URL lands on this gate instead of Streamlit's
    "page not found"; no page script runs, so no page content, sidebar or job data reaches a visitor who is out.
    """
    current = visitor(state.access())
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
    """On a non-local address with no sign-in configured, say at the top of the page what that means."""
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


def main() -> int:
    """Print a STUDIO_PASSWORD_HASH line: the password is read at a hidden prompt (twice), or from stdin."""
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


if __name__ == "__main__":
    raise SystemExit(main())
