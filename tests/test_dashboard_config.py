"""Where the dashboard's settings come from, how typed-in keys are kept (or not), and who may sign in."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import pytest

from core.settings import RUNPOD_API_BASE
from dashboard.config import (
    describe_endpoint,
    load_access,
    load_settings,
    read_saved_connection,
    save_connection,
    saved_connection_path,
)
from dashboard.signin import is_local_address, make_password_hash, password_matches

AUTH = {
    "redirect_uri": "https://a.streamlit.app/oauth2callback",
    "cookie_secret": "c",
    "client_id": "i",
    "client_secret": "s",
    "server_metadata_url": "https://id.example/.well-known/openid-configuration",
}
"""A complete [auth] section, as Streamlit's own check requires it."""


def test_with_nothing_set_the_dashboard_talks_to_the_local_endpoint(tmp_path: Path) -> None:
    settings = load_settings({"STUDIO_DATA_DIR": str(tmp_path)}, {})
    assert settings.is_local_endpoint
    assert settings.endpoint_id == "local"
    assert settings.catalog_file == tmp_path / "catalog.db"
    assert describe_endpoint(settings) == "Local endpoint at `http://127.0.0.1:8799`"


def test_secrets_override_the_environment_and_typed_keys_override_both(tmp_path: Path) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path), "RUNPOD_ENDPOINT_ID": "from-env", "RUNPOD_API_KEY": "env-key"}
    secrets = {"RUNPOD_ENDPOINT_ID": "from-secrets", "RUNPOD_API_KEY": "secret-key", "runpod": {"nested": "ignored"}}

    from_secrets = load_settings(env, secrets)
    assert (from_secrets.endpoint_id, from_secrets.api_key) == ("from-secrets", "secret-key")
    assert from_secrets.endpoint_base_url == RUNPOD_API_BASE

    typed = load_settings(env, secrets, {"RUNPOD_ENDPOINT_ID": "typed", "RUNPOD_API_KEY": ""})
    assert typed.endpoint_id == "typed"
    assert typed.api_key == "secret-key", "an empty typed field means 'not typed', not 'no key'"


def test_secrets_can_configure_the_store_and_data_dir(tmp_path: Path) -> None:
    secrets = {"STUDIO_DATA_DIR": str(tmp_path / "d"), "S3_BUCKET": "studio", "S3_ENDPOINT_URL": "http://s3.lan:9000"}
    settings = load_settings({}, secrets)
    assert settings.store == "s3"
    assert settings.s3_bucket == "studio"
    assert settings.data_dir == tmp_path / "d"


def test_saved_keys_are_readable_by_their_owner_only_and_are_used_next_time(tmp_path: Path) -> None:
    path = saved_connection_path(tmp_path)
    save_connection(path, {"RUNPOD_ENDPOINT_ID": "ep1", "RUNPOD_API_KEY": "k-123", "S3_SECRET_KEY": "not-saved"})

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_saved_connection(path) == {"RUNPOD_ENDPOINT_ID": "ep1", "RUNPOD_API_KEY": "k-123"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]

    settings = load_settings({"STUDIO_DATA_DIR": str(tmp_path)}, {})
    assert (settings.endpoint_id, settings.api_key) == ("ep1", "k-123")


def test_typed_keys_beat_saved_keys(tmp_path: Path) -> None:
    save_connection(saved_connection_path(tmp_path), {"RUNPOD_ENDPOINT_ID": "saved"})
    settings = load_settings({"STUDIO_DATA_DIR": str(tmp_path)}, {}, {"RUNPOD_ENDPOINT_ID": "typed"})
    assert settings.endpoint_id == "typed"


def test_a_corrupt_saved_file_counts_as_nothing_saved(tmp_path: Path) -> None:
    saved_connection_path(tmp_path).write_text("{not json")
    assert load_settings({"STUDIO_DATA_DIR": str(tmp_path)}, {}).is_local_endpoint


def test_the_endpoint_description_never_shows_the_api_key(tmp_path: Path) -> None:
    settings = load_settings(
        {"STUDIO_DATA_DIR": str(tmp_path)}, {"RUNPOD_ENDPOINT_ID": "ep9", "RUNPOD_API_KEY": "s3cr3t"}
    )
    assert describe_endpoint(settings) == "RunPod endpoint `ep9`"
    assert "s3cr3t" not in repr(settings)


def test_with_no_access_settings_the_dashboard_is_open() -> None:
    access = load_access({}, {"RUNPOD_API_KEY": "k"})
    assert access.is_open and not access.uses_oidc and not access.uses_password and not access.problems


def test_allowed_users_and_domains_read_as_lists_or_comma_separated_case_insensitively() -> None:
    auth = {
        "redirect_uri": "https://a.streamlit.app/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "id",
        "client_secret": "s",
        "server_metadata_url": "https://id.example/.well-known/openid-configuration",
    }
    access = load_access(
        {"STUDIO_ALLOWED_DOMAINS": "@Lab.Test, bletchley.test"}, {"auth": auth, "STUDIO_ALLOWED_USERS": ["Ada@X.org"]}
    )
    assert access.providers == (None,) and not access.problems
    assert access.admits("ada@x.org") and access.admits("ADA@X.ORG")
    assert access.admits("grace@lab.test") and access.admits("alan@bletchley.test")
    assert not access.admits("eve@sub.lab.test") and not access.admits("eve@lab.test.evil") and not access.admits("")


def test_named_providers_are_each_checked_for_what_st_login_needs() -> None:
    auth = {
        "redirect_uri": "https://a.streamlit.app/oauth2callback",
        "cookie_secret": "c",
        "google": {"client_id": "i", "client_secret": "s", "server_metadata_url": "https://g/.well-known/x"},
        "okta": {"client_id": "i"},
    }
    access = load_access({}, {"auth": auth})
    assert access.providers == ("google", "okta")
    assert access.problems == (
        "[auth.okta] is missing client_secret, server_metadata_url: copy them from your identity provider's OAuth "
        "client (docs/dashboard.md, Sign-in)",
    )


def test_every_access_problem_names_its_setting_and_fix_and_never_a_value() -> None:
    access = load_access(
        {"STUDIO_ALLOWED_USERS": "ada@x.org, not-an-address"},
        {"auth": {"redirect_uri": "a.streamlit.app", "client_id": "id-7"}, "STUDIO_ALLOWED_DOMAINS": "eve@evil.test"},
    )
    assert not access.is_open
    joined = "\n".join(access.problems)
    for fragment in (
        "STUDIO_ALLOWED_USERS: entry 2 is not an email address",
        "STUDIO_ALLOWED_DOMAINS: entry 1 is not a domain",
        "[auth] cookie_secret is missing",
        "[auth] redirect_uri must be an absolute URL ending in /oauth2callback",
        "[auth] is missing client_secret, server_metadata_url",
    ):
        assert fragment in joined
    for value in ("not-an-address", "eve@evil.test", "id-7", "a.streamlit.app"):
        assert value not in joined


def test_the_password_hash_must_be_a_well_formed_bounded_scrypt_hash() -> None:
    good = make_password_hash("a long shared password", n=2**10)
    assert load_access({"STUDIO_PASSWORD_HASH": good}, {}).uses_password
    for bad in (
        "hunter2hunter2",
        "scrypt$16384$8$1$%%%$%%%",
        f"scrypt$3$8$1${'A' * 24}${'A' * 44}",
        f"scrypt$4194304$8$1${'A' * 24}${'A' * 44}",
        "scrypt$16384$8$1$AAAA$AAAA",
    ):
        access = load_access({}, {"STUDIO_PASSWORD_HASH": bad})
        assert not access.uses_password and not access.is_open
        assert access.problems[0].startswith("STUDIO_PASSWORD_HASH ")
        assert "studio password" in access.problems[0] and bad not in access.problems[0]


def test_a_password_is_checked_against_its_hash_and_nothing_else() -> None:
    made = make_password_hash("a long shared password", n=2**10)
    assert made != make_password_hash("a long shared password", n=2**10), "each hash has its own salt"
    parsed = load_access({}, {"STUDIO_PASSWORD_HASH": made}).password_hash
    assert parsed is not None
    assert password_matches("a long shared password", parsed)
    assert not password_matches("a long shared passworD", parsed) and not password_matches("", parsed)
    assert repr(parsed) == "PasswordHash(n=1024, r=8, p=1)", "salt and digest stay out of its repr"


def test_with_an_auth_section_the_password_is_not_used() -> None:
    auth = dict(AUTH)
    access = load_access({}, {"auth": auth, "STUDIO_PASSWORD_HASH": "not even a hash"})
    assert access.uses_oidc and not access.uses_password and not access.problems


def test_only_loopback_addresses_count_as_local() -> None:
    for url in (None, "", "http://localhost:8501/", "http://app.localhost/", "http://127.0.0.2:8501", "http://[::1]/"):
        assert is_local_address(url), url
    for url in ("https://studio.streamlit.app/", "http://192.168.1.20:8501/", "http://10.0.0.5/", "//example.org"):
        assert not is_local_address(url), url


def test_an_auth_section_without_authlib_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "authlib" else real(name, *a))
    auth = dict(AUTH)
    assert load_access({}, {"auth": auth}).problems == (
        "[auth] needs Authlib for st.login, and it is not installed: pip install -r requirements.txt",
    )
