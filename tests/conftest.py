"""Shared fixtures: real servers on loopback, a settings object rooted in a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.s3server import S3Server, running_s3
from tests.webhook_receiver import Receiver
from worker.selftest.cpu import has_module, torchvision_without_compiled_ops

if has_module("torchvision"):
    # The tests' torchvision is PyPI's CUDA build beside CPU torch (studio.sh): let it, and transformers, import.
    torchvision_without_compiled_ops()

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT_JOB = {
    "prompt": "p",
    "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
    "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
    "mode": "clip",
    "frame_num": 25,
}
"""The quickest real job: the example portrait and 3.5 s of speech, one 25-frame clip."""


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole test session."""
    with running_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an embedded-default worker whose data, store and temp files live under tmp_path."""
    return Settings(data_dir=tmp_path / "data", input_roots=(EXAMPLES,))


@pytest.fixture
def s3_settings(settings: Settings, s3_server: S3Server, request: pytest.FixtureRequest) -> Settings:
    """Settings that publish to a fresh bucket on the test S3 server."""
    bucket = "t-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    return settings.with_(
        store="s3",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_bucket=bucket,
        s3_access_key=s3_server.access_key,
        s3_secret_key=s3_server.secret_key,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver listening on loopback for the test's length."""
    with Receiver() as listening:
        yield listening
