"""Per-session resources: settings, catalogue, store and clients, kept in st.session_state.

Each browser session gets its own catalogue connection (SQLite transactions are per connection) and its own
HTTP session; they are rebuilt when the settings they depend on change (a new endpoint typed in the sidebar).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from catalog import Catalog
from client.api import StudioClient
from core.settings import Settings
from core.store import Store, open_store
from dashboard.config import Access, load_access, load_settings
from dashboard.cost import price_table

TYPED_CONNECTION = "connection.typed"
REUSE_PARAMS = "submit.reuse"
"""A run's params waiting to prefill the Submit page (set by History's "Reuse these params")."""
SUBMITTED = "live.submitted"
"""Job ids this session submitted, so Live can show them once they finish."""
LAST_JOB = "live.last_job"
"""The job input this session sent last, as sent (uploads by their stored reference): "Submit another" starts the
form from it, so a second take with another sentence does not mean adding the photo again."""
FORM_PREFIX = "submit."
"""Every Submit widget's session-state key starts with this: "Start a new one" clears them all."""

T = TypeVar("T")


def secret_values() -> dict[str, Any]:
    """Everything in st.secrets as plain data (tables as dicts); none when there is no secrets file."""
    try:
        return st.secrets.to_dict() if st.secrets.load_if_toml_exists() else {}
    except (FileNotFoundError, StreamlitSecretNotFoundError):
        return {}


def settings() -> Settings:
    """This session's settings: environment, st.secrets, saved keys, then keys typed into the sidebar."""
    return load_settings(os.environ, secret_values(), st.session_state.get(TYPED_CONNECTION))


def _fingerprint(*parts: Any) -> str:
    # Secrets take part in the fingerprint only as a hash, so session state never holds them twice.
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _cached(name: str, fingerprint: str, build: Callable[[], T]) -> T:
    slot = f"resource.{name}"
    held = st.session_state.get(slot)
    if held is None or held[0] != fingerprint:
        held = (fingerprint, build())
        st.session_state[slot] = held
    return held[1]


def access() -> Access:
    """Who may use the dashboard: st.secrets and the environment only, never typed or saved keys."""
    return load_access(os.environ, secret_values())


def catalog() -> Catalog:
    """This session's catalogue connection."""
    current = settings()
    path = current.catalog_file
    prices, _ = price_table(current)  # a bad STUDIO_GPU_PRICES is reported by Submit's estimate, not here
    return _cached("catalog", _fingerprint(str(path), prices), lambda: Catalog(path, prices))


def store() -> Store:
    """The artifact store the dashboard uploads to and reads videos from."""
    current = settings()
    fingerprint = _fingerprint(
        current.store,
        current.artifact_dir,
        current.files_base_url,
        current.s3_endpoint_url,
        current.s3_bucket,
        current.s3_access_key,
        current.s3_secret_key,
    )
    return _cached("store", fingerprint, lambda: open_store(current))


def client(*, patient: bool = False) -> StudioClient:
    """A client for the configured endpoint.

    Pages poll with one attempt per call, so a dead endpoint shows up at once instead of stalling the page;
    submitting (`patient`) retries a few times on 429/503 and refused connections, which never duplicates a job.
    """
    current = settings()
    attempts = 3 if patient else 1
    fingerprint = _fingerprint(current.endpoint_base_url, current.endpoint_id, current.api_key, attempts)
    return _cached(f"client.{attempts}", fingerprint, lambda: StudioClient(current, attempts=attempts))
