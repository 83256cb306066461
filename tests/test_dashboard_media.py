"""Media from the Submit page: checked against the contract's limits, then stored where the worker can fetch it."""

from __future__ import annotations

import tempfile
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from core.contract import ErrorCode, JobError, Limits
from core.settings import Settings
from core.store import S3Store, open_store
from dashboard.media import Media, commit, inspect, plan, refresh_ref, stored_key, upload_key
from tests.media_tools import wav_bytes
from tests.s3server import S3Server
from worker.audio import speech_level
from worker.inputs import fetch_audio, fetch_visual

MEDIA = Path(__file__).resolve().parent.parent / "examples" / "media"


def _media(name: str) -> Media:
    return Media(name, (MEDIA / name).read_bytes())


def _wav(seconds: float) -> bytes:
    return wav_bytes(np.zeros(int(seconds * 16000)))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temp files go under tmp_path, so a test can see that none are left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_photo_a_video_and_speech_are_recognised_with_their_sizes(private_tmp: Path) -> None:
    photo = inspect(_media("portrait.jpg"), "cond_video", "visual")
    assert photo.kind == "image" and photo.width and photo.height
    clip = inspect(_media("clip.mp4"), "cond_video", "visual")
    assert clip.kind == "video" and clip.duration_s and clip.duration_s > 0
    speech = inspect(_media("speech_1.wav"), "cond_audio.person1", "audio")
    assert speech.kind == "audio" and 8.0 < (speech.duration_s or 0) < 9.0
    assert list(private_tmp.iterdir()) == [], "no temp file outlives a check"


@pytest.mark.parametrize(
    ("media", "expect", "message"),
    [
        (Media("empty.jpg", b""), "visual", "empty"),
        (Media("notes.txt", b"just some text, not media at all"), "visual", "no picture|not readable media"),
        (Media("fake.jpg", b"just some text, not media at all"), "visual", "no picture|not readable media"),
        (Media("tiny.wav", _wav(0.1)), "audio", "at least 0.2 s"),
        (
            Media("big.jpg", b"\xff\xd8\xff" + b"\0" * (Limits.MAX_IMAGE_BYTES + 1)),
            "visual",
            "images may be at most 30 MB",
        ),
        (Media("photo.jpg", (MEDIA / "portrait.jpg").read_bytes()), "audio", "holds no audio"),
    ],
)
def test_unusable_media_are_refused_naming_the_field(
    media: Media, expect: str, message: str, private_tmp: Path
) -> None:
    with pytest.raises(JobError, match=message) as caught:
        inspect(media, "cond_audio.person1" if expect == "audio" else "cond_video", expect)
    assert caught.value.code == ErrorCode.INPUT_VALIDATION
    assert caught.value.message.startswith(("cond_video: ", "cond_audio.person1: "))
    assert list(private_tmp.iterdir()) == []


def test_an_image_over_the_side_limit_is_refused() -> None:
    ok, png = cv2.imencode(".png", np.zeros((8, Limits.MAX_IMAGE_SIDE + 8, 3), dtype=np.uint8))
    assert ok
    with pytest.raises(JobError, match="scale it down"):
        inspect(Media("wide.png", png.tobytes()), "cond_video", "visual")


def test_uploads_are_named_by_content_and_stored_only_when_committed(settings: Settings) -> None:
    store = open_store(settings)
    media = _media("portrait.jpg")
    planned = plan(media, store, settings)
    assert planned.key == upload_key(media) == f"uploads/{media.digest}/portrait.jpg"
    assert planned.ref == str(settings.artifact_dir / planned.key)
    assert not store.exists(planned.key), "planning writes nothing"

    commit(planned, store)
    commit(planned, store)
    assert store.get(planned.key) == media.data
    assert stored_key(planned.ref, store, settings) == planned.key


def test_the_local_worker_can_fetch_a_committed_upload(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    photo, speech = plan(_media("portrait.jpg"), store, settings), plan(_media("speech_1.wav"), store, settings)
    commit(photo, store)
    commit(speech, store)
    work = tmp_path / "work"
    work.mkdir()
    assert fetch_visual(photo.ref, "cond_video", work, settings).kind == "image"
    assert fetch_audio(speech.ref, "cond_audio.person1", work, settings).descriptor().duration_s


def test_with_a_cloud_endpoint_and_no_bucket_media_travel_inline(settings: Settings) -> None:
    cloud = settings.with_(endpoint_id="ep1", endpoint_base_url="https://api.runpod.ai/v2")
    planned = plan(_media("speech_1.wav"), open_store(cloud), cloud)
    assert planned.key is None
    assert planned.ref.startswith("data:audio/wav;base64,")
    commit(planned, open_store(cloud))
    assert not (cloud.artifact_dir / "uploads").exists()


def test_names_from_users_cannot_leave_the_uploads_folder(settings: Settings) -> None:
    planned = plan(Media("../../etc/pass wd?.wav", b"RIFF"), open_store(settings), settings)
    assert planned.key is not None
    assert planned.key.startswith("uploads/") and planned.key.endswith("/pass_wd_.wav")


def test_a_reused_path_outside_the_uploads_is_left_alone(settings: Settings) -> None:
    store = open_store(settings)
    assert stored_key("/etc/passwd", store, settings) is None
    assert refresh_ref("https://example.com/a.jpg", store, settings) == "https://example.com/a.jpg"


def test_s3_uploads_are_fetched_by_presigned_url_and_reminted_when_reused(s3_settings: Settings) -> None:
    store = open_store(s3_settings)
    assert isinstance(store, S3Store)
    store.ensure_bucket()
    planned = plan(_media("portrait.jpg"), store, s3_settings)
    assert planned.ref.startswith(f"{s3_settings.s3_endpoint_url}/{s3_settings.s3_bucket}/uploads/")
    commit(planned, store)
    assert requests.get(planned.ref, timeout=10).content == planned.media.data

    expired = open_store(s3_settings.with_(url_expiry_s=1))
    old_ref = expired.url(planned.key or "")
    fresh = refresh_ref(old_ref, store, s3_settings)
    assert fresh != old_ref
    assert stored_key(old_ref, store, s3_settings) == planned.key
    assert requests.get(fresh, timeout=10).content == planned.media.data
    assert s3_settings.s3_secret_key not in fresh
    as_catalogued = old_ref.split("?")[0]  # the catalogue keeps presigned URLs without their signature
    assert requests.get(refresh_ref(as_catalogued, store, s3_settings), timeout=10).ok


def test_a_presigned_url_for_an_object_gone_from_the_bucket_is_kept_as_it_was(
    s3_settings: Settings, s3_server: S3Server
) -> None:
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    planned = plan(_media("speech_1.wav"), store, s3_settings)
    assert refresh_ref(planned.ref, store, s3_settings) == planned.ref


def _wav_of(samples: np.ndarray) -> bytes:
    return wav_bytes(samples)


def _scaled_speech(level_db: float) -> bytes:
    """examples/media/speech_1.wav scaled to a given speech_level, as a recording made far from the microphone."""
    with wave.open(str(MEDIA / "speech_1.wav")) as wav:
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return _wav_of(speech * 10 ** ((level_db - speech_level(speech)) / 20))


@pytest.mark.parametrize(
    ("data", "field", "said"),
    [
        (_wav(3.0), "cond_audio.person1", "Person 1's speech is silent (no sound at all)"),
        (
            _wav_of(np.random.default_rng(2).standard_normal(48000) * 10 ** (-70 / 20)),
            "cond_audio.person2",
            "Person 2's speech is silent (-70 dB)",
        ),
    ],
)
def test_a_silent_recording_is_refused_in_the_forms_words(
    data: bytes, field: str, said: str, private_tmp: Path
) -> None:
    with pytest.raises(JobError) as caught:
        inspect(Media("recording.wav", data), field, "audio")
    assert caught.value.code == ErrorCode.INPUT_VALIDATION
    assert caught.value.message.startswith(said) and "record again closer to the microphone" in caught.value.message
    assert list(private_tmp.iterdir()) == []


def test_quiet_speech_is_measured_and_warned_about_and_normal_speech_is_not() -> None:
    normal = inspect(_media("speech_1.wav"), "cond_audio.person1", "audio")
    assert normal.level_db is not None and -21 < normal.level_db < -15
    assert normal.quiet_note("cond_audio.person1") is None
    quiet = inspect(Media("far.wav", _scaled_speech(-40.0)), "cond_audio.person1", "audio")
    assert quiet.level_db is not None and round(quiet.level_db) == -40
    note = quiet.quiet_note("cond_audio.person1") or ""
    assert note.startswith("Person 1's speech is very quiet (-40 dB") and "raise it by 17 dB" in note


def test_the_client_and_the_dashboard_store_an_upload_under_one_key(tmp_path: Path) -> None:
    """One upload-key rule (core.store.upload_key): the same bytes and name land on the same key whichever
    program stored them, and a folder store's path comes through the Store interface (no type: ignore)."""
    from client.api import upload_media
    from core.store import LocalStore

    store = LocalStore(tmp_path / "store")
    data, name = b"RIFF-ish bytes", "my take (1)/../ë.wav"
    ref = upload_media(store, data, name)
    key = upload_key(Media(name, data))
    assert Path(ref) == store.local_path(key) and store.exists(key)
