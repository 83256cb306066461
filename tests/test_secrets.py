"""Secrets stay secret: API keys and S3 credentials never reach logs, results, metadata, errors or URLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import logs
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES, SHORT_JOB
from tests.s3server import S3Server
from worker.pipeline import run_job

API_KEY = "rpa_SECRETAPIKEY0123456789"
JOB = SHORT_JOB


def grep(secrets: list[str], *texts: str) -> list[str]:
    """The secrets found in any of the texts."""
    return [secret for secret in secrets if any(secret in text for text in texts)]


def test_no_secret_appears_in_logs_results_metadata_or_urls(
    s3_settings: Settings, s3_server: S3Server, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = s3_settings.with_(api_key=API_KEY)
    open_store(settings).ensure_bucket()  # type: ignore[attr-defined]
    logs.configure("DEBUG")

    good = run_job({**JOB, "output_config": {"store": "s3"}}, "sec-ok", settings=settings, sink=lambda _: None)
    broken = settings.with_(s3_endpoint_url="http://127.0.0.1:9", s3_bucket="nowhere")
    bad = run_job({**JOB, "output_config": {"store": "s3"}}, "sec-bad", settings=broken, sink=lambda _: None)
    metadata = open_store(settings).get(good["metadata"]["key"]).decode()
    captured = capfd.readouterr()

    assert good["status"] == "success" and bad["error"]["code"] == "E_UPLOAD"
    texts = (json.dumps(good), json.dumps(bad), metadata, captured.out, captured.err)
    assert grep(settings.secrets(), *texts) == []
    assert "X-Amz-Credential" in good["video"]["url"] and s3_server.secret_key not in good["video"]["url"]


def test_a_secret_echoed_in_an_error_is_masked(settings: Settings) -> None:
    secret_settings = settings.with_(api_key=API_KEY)
    output = run_job(
        {**JOB, "cond_video": str(EXAMPLES / f"{API_KEY}.jpg")}, "echo", settings=secret_settings, sink=lambda _: None
    )

    assert API_KEY not in json.dumps(output)
    assert "***" in output["error"]["message"]


def test_the_local_endpoint_never_logs_its_api_key(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from client.api import StudioClient
    from tests.endpoint_server import running_endpoint

    env = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "RUNPOD_API_KEY": API_KEY}
    with running_endpoint(env, "tests.endpoint_runners:paced") as base:
        client = StudioClient(Settings(data_dir=tmp_path / "data", endpoint_base_url=base, api_key=API_KEY))
        final = client.wait(client.submit({"chunks": 1}), timeout_s=30)
        queue_db = (tmp_path / "data" / "endpoint" / "queue.db").read_bytes()
    captured = capfd.readouterr()

    assert final.status == "COMPLETED"
    assert API_KEY not in captured.out + captured.err
    assert API_KEY.encode() not in queue_db
