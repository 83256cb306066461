"""The dashboard's Settings: environment, then st.secrets, then keys saved on this machine, then typed-in keys.

Later sources win. Values keep the environment variables' names everywhere (`RUNPOD_ENDPOINT_ID`,
`RUNPOD_API_KEY`, `S3_BUCKET`, ...), so `.streamlit/secrets.toml`, the shell and the saved file read alike, and
`Settings.from_env` does the parsing. Keys typed into the sidebar live in the session only, unless the user saves
them: then they go to a file only its owner can read (mode 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.settings import LOCAL_ENDPOINT_ID, Settings

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
        return f"Local endpoint{name} at {where}"
    return f"RunPod endpoint `{settings.endpoint_id}`"
