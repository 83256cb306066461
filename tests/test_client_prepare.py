"""prepare_input: media too big for a /run body go to the artifact store first and travel as a path or URL."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from client.api import prepare_input
from client.payloads import load_payload
from core.contract import ErrorCode, JobError, Limits
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES

PORTRAIT = EXAMPLES / "media" / "portrait.jpg"
SPEECH = EXAMPLES / "media" / "speech_1.wav"


def uploaded_key(data: bytes, name: str) -> str:
    return f"uploads/{hashlib.sha256(data).hexdigest()}/{name}"


def test_local_files_become_paths_in_the_local_store_and_the_payload_stays_small(settings: Settings) -> None:
    job_input = load_payload(EXAMPLES / "single_image.json")
    prepared = prepare_input(job_input, open_store(settings))

    assert prepared["cond_video"] == str(settings.artifact_dir / uploaded_key(PORTRAIT.read_bytes(), "portrait.jpg"))
    assert Path(prepared["cond_video"]).read_bytes() == PORTRAIT.read_bytes()
    assert Path(prepared["cond_audio"]["person1"]).read_bytes() == SPEECH.read_bytes()
    assert prepared["prompt"] == job_input["prompt"] and job_input["cond_video"] == str(PORTRAIT)
    assert len(json.dumps(prepared)) < 2000


def test_the_same_media_is_stored_once(settings: Settings) -> None:
    store = open_store(settings)
    first = prepare_input({"cond_video": str(PORTRAIT)}, store)
    again = prepare_input({"cond_video": str(PORTRAIT)}, store)

    assert first == again
    assert list(store.list("uploads")) == [uploaded_key(PORTRAIT.read_bytes(), "portrait.jpg")]


@pytest.mark.parametrize(
    "encode",
    [
        lambda data: "data:image/jpeg;base64," + base64.b64encode(data).decode(),
        lambda data: base64.b64encode(data).decode(),
        lambda data: base64.urlsafe_b64encode(data).decode().rstrip("="),
    ],
    ids=["data-url", "bare", "url-safe-unpadded"],
)
def test_large_base64_media_are_decoded_and_uploaded_exactly(
    settings: Settings, encode: Callable[[bytes], str]
) -> None:
    data = SPEECH.read_bytes()
    assert len(data) > 256 * 1024, "the sample must be larger than the inline limit"
    prepared = prepare_input({"cond_audio": {"person1": encode(data)}}, open_store(settings))

    assert Path(prepared["cond_audio"]["person1"]).read_bytes() == data


def test_urls_small_base64_worker_paths_and_non_media_fields_are_left_alone(settings: Settings) -> None:
    small = base64.b64encode(b"RIFF tiny").decode()
    job_input = {
        "prompt": "A" * 300_000,
        "cond_video": "https://example.com/portrait.jpg",
        "cond_audio": {"person1": small, "person2": "/runpod-volume/speech.wav", "type": "add"},
    }

    assert prepare_input(job_input, open_store(settings)) == job_input
    assert list(open_store(settings).list("uploads")) == []


def test_text_that_is_not_base64_is_sent_as_it_is_for_the_worker_to_name(settings: Settings) -> None:
    not_base64 = "this is not base64 at all! " * 20_000
    prepared = prepare_input({"cond_video": not_base64}, open_store(settings))
    assert prepared["cond_video"] == not_base64


def test_every_batch_item_is_prepared(settings: Settings) -> None:
    job_input = {"batch": [{"cond_video": str(PORTRAIT)}, {"cond_video": "https://example.com/b.jpg"}]}
    prepared = prepare_input(job_input, open_store(settings))

    assert prepared["batch"][0]["cond_video"].startswith(str(settings.artifact_dir / "uploads"))
    assert prepared["batch"][1] == job_input["batch"][1]


def test_media_far_over_the_run_limit_travel_as_a_presigned_s3_url(s3_settings: Settings, tmp_path: Path) -> None:
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    big = tmp_path / "long_speech.wav"
    big.write_bytes(SPEECH.read_bytes() * 60)
    assert big.stat().st_size > Limits.RUN_PAYLOAD_BYTES

    prepared = prepare_input({"cond_audio": {"person1": str(big)}}, store, remote_worker=True)

    url = prepared["cond_audio"]["person1"]
    assert url.startswith(s3_settings.s3_endpoint_url or "") and "X-Amz-Signature" in url
    assert requests.get(url, timeout=30).content == big.read_bytes()


def test_a_cloud_worker_is_never_sent_paths_on_this_machine(settings: Settings) -> None:
    with pytest.raises(JobError, match=r"cond_video: media on this machine .* set S3_BUCKET") as raised:
        prepare_input({"cond_video": str(PORTRAIT)}, open_store(settings), remote_worker=True)
    assert raised.value.code == ErrorCode.INPUT_VALIDATION
    assert list(open_store(settings).list("uploads")) == []
