"""Publishing to a real S3 server (SeaweedFS): keys, content types, presigned URLs, idempotent writes."""

from __future__ import annotations

import requests

from core.contract import JobMetadata
from core.settings import Settings
from core.store import S3Store, open_store
from tests.conftest import EXAMPLES
from worker.pipeline import run_job

JOB = {
    "prompt": "a woman talks",
    "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
    "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
    "mode": "streaming",
    "output_config": {"store": "s3", "prefix": "renders"},
}


def test_a_job_publishes_to_s3_and_its_presigned_urls_download_the_artifacts(s3_settings: Settings) -> None:
    store = open_store(s3_settings)
    assert isinstance(store, S3Store)
    store.ensure_bucket()

    output = run_job(JOB, "s3-job", settings=s3_settings, sink=lambda _: None)

    assert output["status"] == "success", output
    video = requests.get(output["video"]["url"], timeout=30)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert len(video.content) == output["video"]["bytes"]
    assert "X-Amz-Signature" in output["video"]["url"]
    thumb = requests.get(output["thumbnail"]["url"], timeout=30)
    assert thumb.headers["Content-Type"] == "image/jpeg"
    metadata = JobMetadata.model_validate_json(requests.get(output["metadata"]["url"], timeout=30).content)
    assert metadata.outputs["video"]["key"] == "renders/s3-job/video.mp4"
    assert sorted(store.list("renders/s3-job/")) == [
        "renders/s3-job/metadata.json",
        "renders/s3-job/thumb.jpg",
        "renders/s3-job/video.mp4",
    ]


def test_running_the_same_job_id_again_replaces_its_artifacts(s3_settings: Settings) -> None:
    open_store(s3_settings).ensure_bucket()  # type: ignore[attr-defined]
    run_job(JOB, "again", settings=s3_settings, sink=lambda _: None)
    second = run_job({**JOB, "prompt": "second take"}, "again", settings=s3_settings, sink=lambda _: None)

    store = open_store(s3_settings)
    assert len(list(store.list("renders/again/"))) == 3
    assert JobMetadata.model_validate_json(store.get(second["metadata"]["key"])).prompt == "second take"


def test_secrets_never_reach_the_result_or_the_metadata(s3_settings: Settings) -> None:
    open_store(s3_settings).ensure_bucket()  # type: ignore[attr-defined]
    output = run_job(JOB, "secret-job", settings=s3_settings, sink=lambda _: None)

    text = str(output) + open_store(s3_settings).get(output["metadata"]["key"]).decode()
    assert s3_settings.s3_secret_key and s3_settings.s3_secret_key not in text


def test_a_missing_bucket_setting_is_a_clear_upload_error(settings: Settings) -> None:
    output = run_job(JOB, "no-bucket", settings=settings, sink=lambda _: None)

    assert output["error"]["code"] == "E_UPLOAD"
    assert "S3_BUCKET" in output["error"]["message"]


def test_a_job_may_name_only_the_buckets_the_worker_is_configured_for(s3_settings: Settings) -> None:
    """The worker's S3 keys may reach other buckets; a job cannot aim them there (issue 14, item 9)."""
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    other = s3_settings.s3_bucket + "-other"
    elsewhere = {**JOB, "output_config": {"store": "s3", "bucket": other}}

    refused = run_job(elsewhere, "bucket-hop", settings=s3_settings, sink=lambda _: None)
    assert refused["status"] == "error"
    assert refused["error"]["code"] == "E_INPUT_VALIDATION" and refused["error"]["retryable"] is False
    assert "output_config.bucket" in refused["error"]["message"] and "STUDIO_S3_BUCKETS" in refused["error"]["message"]
    own = {**JOB, "output_config": {"store": "s3", "bucket": s3_settings.s3_bucket, "prefix": "renders"}}
    assert run_job(own, "own-bucket", settings=s3_settings, sink=lambda _: None)["status"] == "success"

    allowed = s3_settings.with_(s3_extra_buckets=(other,))
    open_store(allowed, bucket=other).ensure_bucket()  # type: ignore[attr-defined]
    output = run_job(elsewhere, "bucket-allowed", settings=allowed, sink=lambda _: None)
    assert output["status"] == "success", output
    assert list(open_store(allowed, bucket=other).list("jobs/bucket-allowed/"))


def test_studio_s3_buckets_is_read_from_the_environment() -> None:
    settings = Settings.from_env({"S3_BUCKET": "main", "STUDIO_S3_BUCKETS": " a-one , b-two,"})
    assert settings.s3_buckets == {"main", "a-one", "b-two"}
