"""The dashboard's Settings: environment, then st.secrets, then keys saved on this machine, then typed-in keys.

Later sources win. Values keep the environment variables' names everywhere (`RUNPOD_ENDPOINT_ID`,
`RUNPOD_API_KEY`, `S3_BUCKET`, ...), so `.streamlit/secrets.toml`, the shell and the saved file read alike, and
`Settings.from_env` does the parsing. Keys typed into the sidebar live in the session only, unless the user saves
them: then they go to a file only its owner can read (mode 0600).

Who may use the dashboard (`Access`) comes from st.secrets and the environment only: a visitor can neither type
nor save it, so nobody lets themselves in from the sidebar.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import LOCAL_ENDPOINT_ID, Settings

CONNECTION_KEYS = ("RUNPOD_ENDPOINT_ID", "RUNPOD_API_KEY", "RUNPOD_ENDPOINT_BASE_URL")
"""What the sidebar's connection form may set for a session (and save)."""

SAVED_FILE = "dashboard-connection.json"


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    """Top-level scalar secrets as strings; tables (sections) are not settings and are skipped."""
    return {
        str(k): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in values.items()
        if isinstance(v, str | int | float | bool)
    }


def saved_connection_path(data_dir: Path) -> Path:
    """Where saved connection keys live: the data dir, beside the catalogue."""
    return data_dir / SAVED_FILE


def read_saved_connection(path: Path) -> dict[str, str]:
    """Saved connection values; an unreadable or foreign file counts as none saved."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in _strings(data).items() if k in CONNECTION_KEYS and v}


def save_connection(path: Path, values: Mapping[str, str]) -> None:
    """Write connection values to `path`, readable by its owner only (0600), replacing the file atomically.

    The file is created with mode 0600 before any secret is written to it, so no other user can ever read it.
    """
    clean = {k: v for k, v in values.items() if k in CONNECTION_KEYS and v}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=".connection-", suffix=".partial")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as out:
            json.dump(clean, out)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def forget_saved_connection(path: Path) -> None:
    """Remove saved connection values."""
    path.unlink(missing_ok=True)


def merged_environment(
    env: Mapping[str, str], secrets: Mapping[str, Any], typed: Mapping[str, str] | None = None
) -> dict[str, str]:
    """One mapping of settings: env < st.secrets < saved file < typed-in; empty typed values mean "not typed"."""
    merged = {**env, **_strings(secrets)}
    data_dir = Settings.from_env(merged).data_dir
    merged.update(read_saved_connection(saved_connection_path(data_dir)))
    merged.update({k: v for k, v in (typed or {}).items() if k in CONNECTION_KEYS and v})
    return merged


def load_settings(
    env: Mapping[str, str], secrets: Mapping[str, Any], typed: Mapping[str, str] | None = None
) -> Settings:
    """The dashboard's Settings from every source, as `Settings.from_env` reads them."""
    return Settings.from_env(merged_environment(env, secrets, typed))


def describe_endpoint(settings: Settings) -> str:
    """Which endpoint the dashboard talks to, for people; never includes the API key."""
    if settings.is_local_endpoint:
        where = settings.endpoint_base_url.removesuffix("/v2")
        name = "" if settings.endpoint_id == LOCAL_ENDPOINT_ID else f" `{settings.endpoint_id}`"
        return f"Local endpoint{name} at `{where}`"  # code, not a link: its root answers only a JSON 404
    return f"RunPod endpoint `{settings.endpoint_id}`"


ALLOWED_USERS = "STUDIO_ALLOWED_USERS"
"""Email addresses let in after an OIDC sign-in: comma-separated, or a TOML list in secrets."""
ALLOWED_DOMAINS = "STUDIO_ALLOWED_DOMAINS"
"""Email domains let in after an OIDC sign-in (`example.com` admits `anyone@example.com`, not subdomains)."""
PASSWORD_HASH = "STUDIO_PASSWORD_HASH"
"""The shared password's scrypt hash, for when OIDC is not wanted (`studio password` makes one)."""
PRIVATE_APP = "STUDIO_PRIVATE_APP"
"""true when the host already limits who can open the app (Community Cloud's private app, a VPN, a signing-in
proxy): the dashboard cannot see that, so this setting is how its owner says so and stops the open warning."""
TRUST_UNVERIFIED = "STUDIO_TRUST_UNVERIFIED_EMAIL_PROVIDERS"
"""st.login providers whose ID tokens never carry `email_verified` (by name: `default` for the one written into
[auth], else the NAME of [auth.NAME]): their addresses are let in without it. Everyone else needs
`email_verified: true`; a claim that is false, "false", 0 or null is refused whatever this says."""
DEFAULT_PROVIDER = "default"
"""What Streamlit calls the provider written straight into [auth] (st.user's `provider`)."""
ACCESS_KEYS = (ALLOWED_USERS, ALLOWED_DOMAINS, PASSWORD_HASH, PRIVATE_APP, TRUST_UNVERIFIED)
"""The access settings, read from st.secrets first, then the environment; never typed, saved or shown."""
AUTH_SECTION = "auth"
"""Streamlit's own secrets section for st.login: redirect_uri, cookie_secret and a provider (see `Access`)."""
AUTH_SHARED_KEYS = ("redirect_uri", "cookie_secret")
AUTH_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
"""What st.login needs in [auth] (shared) and for each provider, as Streamlit's `validate_auth_credentials` checks."""


@dataclass(frozen=True)
class Access:
    """Who may open the dashboard, as the settings say; `problems` lists what makes them unusable.

    `providers` are the names to pass to st.login: `None` for the provider written straight into `[auth]`, or each
    `[auth.NAME]` table. A dashboard with problems lets nobody in (it fails closed), so every problem is one line
    naming the setting and the fix, and never a setting's value.
    """

    providers: tuple[str | None, ...] = ()
    allowed_users: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    password_hash: PasswordHash | None = field(default=None, repr=False)
    problems: tuple[str, ...] = ()
    private_app: bool = False
    """The owner says the host restricts viewers (STUDIO_PRIVATE_APP); it lets nobody in by itself."""
    trust_unverified: frozenset[str] = frozenset()
    """Providers (by st.user's `provider` name) trusted without an `email_verified` claim (TRUST_UNVERIFIED)."""

    @property
    def uses_oidc(self) -> bool:
        """True when an [auth] section asks for sign-in through an identity provider (st.login)."""
        return bool(self.providers)

    @property
    def uses_password(self) -> bool:
        """True when the shared password is the way in: a hash is set and no [auth] section takes precedence."""
        return not self.uses_oidc and self.password_hash is not None

    @property
    def is_open(self) -> bool:
        """True when nothing restricts who opens the dashboard (fine on localhost, not on a public address)."""
        return not self.uses_oidc and not self.uses_password and not self.problems

    def admits(self, email: str) -> bool:
        """Whether a signed-in address is listed, itself or by its domain (both compared case-insensitively)."""
        address = email.strip().lower()
        return address in self.allowed_users or address.rpartition("@")[2] in self.allowed_domains


HASH_SCHEME = "scrypt"
HASH_COMMAND = "studio password"
"""Prints a new STUDIO_PASSWORD_HASH line for a password typed at its prompt."""
SCRYPT_MAX_MEMORY = 64 * 2**20
"""The most memory one password check may take (scrypt needs 128·r·N bytes): a hash asking for more (the old
bounds allowed N=2**20, r=32: 4 GiB) would let a few sign-in attempts exhaust the dashboard's host. New hashes
take 16 MiB (signin.NEW_HASH_COST)."""
SCRYPT_MAX_P = 16
"""scrypt's parallelism runs one after another in hashlib: p multiplies each check's time, not its memory."""
SCRYPT_MAX_WORK = 4 * SCRYPT_MAX_MEMORY
"""128·r·N·p, the bytes a check walks through: at most four 64 MiB passes, about a second of CPU."""


def scrypt_cost_problem(n: int, r: int, p: int) -> str | None:
    """Why scrypt costs N, r, p are refused for a password check (one line), or None when they are usable."""
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        return "N must be a power of 2 and r, p at least 1"
    memory = 128 * r * n
    if memory > SCRYPT_MAX_MEMORY:
        return (
            f"N={n}, r={r} take {memory // 2**20} MiB per check (128·r·N), more than the "
            f"{SCRYPT_MAX_MEMORY // 2**20} MiB allowed"
        )
    if p > SCRYPT_MAX_P or memory * p > SCRYPT_MAX_WORK:
        return (
            f"p={p} makes each check too slow (128·r·N·p at most {SCRYPT_MAX_WORK // 2**20} MiB, p <= {SCRYPT_MAX_P})"
        )
    return None


@dataclass(frozen=True)
class PasswordHash:
    """A parsed STUDIO_PASSWORD_HASH: `scrypt$N$r$p$SALT$HASH`, salt and hash in base64.

    scrypt (hashlib's, no extra package) rather than a plain digest: a leaked secrets box then costs an
    attacker about 16 MiB and tens of milliseconds per guess instead of nanoseconds.
    """

    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)


def parse_password_hash(text: str, problems: list[str]) -> PasswordHash | None:
    """The hash in `text`, or None with a problem naming STUDIO_PASSWORD_HASH and how to make a good one."""
    fix = f"make one with `{HASH_COMMAND}` and paste the line it prints"
    parts = text.strip().split("$")
    if len(parts) != 6 or parts[0] != HASH_SCHEME:
        problems.append(f"{PASSWORD_HASH} is not a {HASH_SCHEME} hash (put the hash there, never the password): {fix}")
        return None
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, digest = (base64.b64decode(part, validate=True) for part in parts[4:6])
    except (ValueError, binascii.Error):
        problems.append(f"{PASSWORD_HASH} is damaged (cost, salt or hash unreadable): {fix}")
        return None
    costly = scrypt_cost_problem(n, r, p)
    if costly:
        problems.append(f"{PASSWORD_HASH} has unusable scrypt costs ({costly}): {fix}")
        return None
    if len(salt) < 16 or len(digest) < 32:
        problems.append(f"{PASSWORD_HASH} has a salt or hash too short to be safe: {fix}")
        return None
    return PasswordHash(n=n, r=r, p=p, salt=salt, digest=digest)


def _entries(value: Any) -> tuple[str, ...]:
    """A list setting's entries: a TOML list, or a string split on commas and whitespace."""
    items = value if isinstance(value, list | tuple) else str(value or "").replace(",", " ").split()
    return tuple(str(item).strip().lower() for item in items if str(item).strip())


def _allowed_users(value: Any, problems: list[str]) -> frozenset[str]:
    entries = _entries(value)
    for number, entry in enumerate(entries, start=1):
        local, at, domain = entry.partition("@")
        if not (local and at and domain and "." in domain and "@" not in domain):
            problems.append(
                f"{ALLOWED_USERS}: entry {number} is not an email address; list addresses such as "
                'ada@example.com, comma-separated or as a TOML list (["ada@example.com", "bob@example.org"])'
            )
    return frozenset(entries)


def _allowed_domains(value: Any, problems: list[str]) -> frozenset[str]:
    entries = tuple(entry.removeprefix("@") for entry in _entries(value))
    for number, entry in enumerate(entries, start=1):
        if "@" in entry or "." not in entry or "/" in entry:
            problems.append(
                f"{ALLOWED_DOMAINS}: entry {number} is not a domain; list domains such as example.com "
                f"(people's addresses go in {ALLOWED_USERS})"
            )
    return frozenset(entries)


def _providers(auth: Any, problems: list[str]) -> tuple[str | None, ...]:
    """The st.login providers an [auth] section configures, with what is missing for each."""
    if not isinstance(auth, Mapping):
        problems.append(f"[{AUTH_SECTION}] must be a table: write it as a [{AUTH_SECTION}] section in secrets")
        return ()
    for key in AUTH_SHARED_KEYS:
        if not auth.get(key):
            fix = (
                "your app's address followed by /oauth2callback, e.g. https://your-app.streamlit.app/oauth2callback"
                if key == "redirect_uri"
                else 'a long random string: python -c "import secrets; print(secrets.token_hex(32))"'
            )
            problems.append(f"[{AUTH_SECTION}] {key} is missing: set it to {fix}")
    redirect = str(auth.get("redirect_uri") or "")
    if redirect and not (redirect.startswith(("http://", "https://")) and redirect.endswith("/oauth2callback")):
        problems.append(
            f"[{AUTH_SECTION}] redirect_uri must be an absolute URL ending in /oauth2callback "
            "(https://your-app.streamlit.app/oauth2callback)"
        )
    if importlib.util.find_spec("authlib") is None:
        problems.append(
            f"[{AUTH_SECTION}] needs Authlib for st.login, and it is not installed: pip install -r requirements.txt"
        )
    named = [str(name) for name, table in auth.items() if isinstance(table, Mapping)]
    if named:
        providers: tuple[str | None, ...] = tuple(named)
        sections = [(f"[{AUTH_SECTION}.{name}]", auth[name]) for name in named]
        for name in named:
            if "_" in name:
                problems.append(f"[{AUTH_SECTION}.{name}]: st.login takes no underscore in a provider name; rename it")
    else:
        providers = (None,)
        sections = [(f"[{AUTH_SECTION}]", auth)]
    for where, table in sections:
        missing = [key for key in AUTH_PROVIDER_KEYS if not table.get(key)]
        if missing:
            problems.append(
                f"{where} is missing {', '.join(missing)}: copy them from your identity provider's OAuth client "
                "(docs/dashboard.md, Sign-in)"
            )
    return providers


def load_access(env: Mapping[str, str], secrets: Mapping[str, Any]) -> Access:
    """Who may use the dashboard, from st.secrets (winning) and the environment, with every problem found.

    Allowed users and domains mean something only after an OIDC sign-in; listing them without an [auth] section
    is a problem rather than silently letting everyone in, since whoever wrote the list expected it to be enforced.
    """

    def value(name: str) -> Any:
        return secrets[name] if name in secrets else env.get(name)

    problems: list[str] = []
    users = _allowed_users(value(ALLOWED_USERS), problems)
    domains = _allowed_domains(value(ALLOWED_DOMAINS), problems)
    auth = secrets.get(AUTH_SECTION)
    providers = _providers(auth, problems) if auth is not None else ()
    raw_hash = value(PASSWORD_HASH)
    password_hash = None
    if raw_hash not in (None, "") and not providers:
        password_hash = parse_password_hash(str(raw_hash), problems)
    trust_unverified = frozenset(_entries(value(TRUST_UNVERIFIED)))
    known = {DEFAULT_PROVIDER if name is None else name.lower() for name in providers}
    for name in sorted(trust_unverified - known):
        problems.append(
            f"{TRUST_UNVERIFIED}: {name[:40]!r} is not a provider in [{AUTH_SECTION}]; name providers as st.login "
            f"does ({', '.join(sorted(known)) or 'none configured'})"
        )
    private_app = str(value(PRIVATE_APP) or "false").strip().lower()
    if private_app not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        problems.append(f"{PRIVATE_APP} must be true or false (true: the host already limits who can open the app)")
    if (users or domains) and not providers:
        problems.append(
            f"{ALLOWED_USERS} / {ALLOWED_DOMAINS} are set but there is no [{AUTH_SECTION}] section, so nobody "
            f"signs in and the list cannot be checked: add an [{AUTH_SECTION}] section (docs/dashboard.md, Sign-in) "
            "or remove the list"
        )
    return Access(
        providers=providers,
        allowed_users=users,
        allowed_domains=domains,
        password_hash=password_hash,
        problems=tuple(problems),
        private_app=private_app in ("true", "1", "yes", "on"),
        trust_unverified=trust_unverified,
    )
