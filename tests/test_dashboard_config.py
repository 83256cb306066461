"""Where the dashboard's settings come from, and how typed-in keys are kept (or not)."""

from __future__ import annotations

import stat
from pathlib import Path

from dashboard.config import (
    describe_endpoint,
    load_settings,
    read_saved_connection,
    save_connection,
    saved_connection_path,
)
from worker.settings import RUNPOD_API_BASE


def test_with_nothing_set_the_dashboard_talks_to_the_local_endpoint(tmp_path: Path) -> None:
    settings = load_settings({"STUDIO_DATA_DIR": str(tmp_path)}, {})
    assert settings.is_local_endpoint
    assert settings.endpoint_id == "local"
    assert settings.catalog_file == tmp_path / "catalog.db"
    assert describe_endpoint(settings) == "Local endpoint at http://127.0.0.1:8799"


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
