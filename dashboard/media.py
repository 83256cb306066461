"""Media the user hands the Submit page: checked against the contract's limits here, then put in the store.

A reference for stored media is known before anything is written (the key is the content's SHA-256), so a job
is validated with its final references first and the store is touched only for jobs that will be sent.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog.request_file import stored_key as stored_key  # re-exported: Submit reads upload keys from here
from core.contract import ErrorCode, JobError, Limits
from core.settings import Settings
from core.store import Store, content_type
from core.store import upload_key as store_upload_key
from dashboard.words import label
from worker.audio import (
    QUIET_SPEECH_DB,
    SILENCE_FLOOR_DB,
    SILENT_SPEECH_FIX,
    decode_speech,
    describe_level,
    quiet_gain_db,
    speech_level,
)
from worker.inputs import fetch_audio, fetch_visual


@dataclass(frozen=True)
class Media:
    """Bytes the user uploaded, recorded or photographed, with the name they came with."""

    name: str
    data: bytes

    @property
    def digest(self) -> str:
        """The content's SHA-256, which names it in the store."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class MediaFacts:
    """What the dashboard shows about a piece of media before sending it."""

    kind: str
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    level_db: float | None = None
    """Speech only: worker.audio.speech_level, the measure the worker normalises and refuses silence by."""

    def quiet_note(self, field: str) -> str | None:
        """A warning for speech the worker will have to raise a lot (below QUIET_SPEECH_DB); None otherwise."""
        gain = quiet_gain_db(self.level_db) if self.level_db is not None else None
        if gain is None:
            return None
        return (
            f"{label(field)} is very quiet ({describe_level(self.level_db or 0.0)}, below "
            f"{QUIET_SPEECH_DB:.0f} dB): the worker will raise it by {gain:.0f} dB, with any background noise. "
            "Record again closer to the microphone if you can."
        )


def _invalid(field: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field}: {message}")


def inspect(media: Media, field: str, expect: str) -> MediaFacts:
    """Check media the way the worker will when it fetches them; `expect` is `visual` (image or video) or `audio`.

    The worker's own fetch-and-check runs on a private temporary copy, so the page refuses exactly what the worker
    would refuse (no picture, too many pixels, no sound, a WAV header that lies, too long), with its words.
    Speech is decoded as the worker decodes it and measured with its speech_level: silence (below
    SILENCE_FLOOR_DB) is refused here in the form's words, so a muted microphone never becomes a job.
    Raises JobError(E_INPUT_VALIDATION) naming the field.
    """
    if not media.data:
        raise _invalid(field, f"{media.name} is empty; choose the file again")
    with tempfile.TemporaryDirectory(prefix="studio-dash-") as folder:
        root = Path(folder)
        source = root / ("upload" + Path(media.name).suffix[:8])
        source.write_bytes(media.data)
        work = root / "work"
        work.mkdir()
        checker = fetch_visual if expect == "visual" else fetch_audio
        try:
            fetched = checker(str(source), field, work, Settings(data_dir=root, input_roots=()), extra_roots=(root,))
            audible = fetched.kind == "audio" and (fetched.info.duration_s or 0.0) >= Limits.MIN_AUDIO_SECONDS
            level = speech_level(decode_speech(fetched.path, field)) if audible else None
        except JobError as error:
            # The worker's words name its working copy; the user knows the file by its own name.
            message = re.sub(rf"{re.escape(folder)}/\S*?(?=[:;)\s]|$)", media.name, error.message)
            raise JobError(error.code, message, at_stage=error.at_stage) from None
    info = fetched.info
    if fetched.kind == "audio" and (info.duration_s or 0.0) < Limits.MIN_AUDIO_SECONDS:
        raise _invalid(
            field, f"{media.name} lasts {info.duration_s or 0:.2f} s; record at least {Limits.MIN_AUDIO_SECONDS} s"
        )
    if level is not None and level < SILENCE_FLOOR_DB:
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{label(field)} is silent ({describe_level(level)}): {SILENT_SPEECH_FIX}",
        )
    duration = None if fetched.kind == "image" else info.duration_s
    return MediaFacts(fetched.kind, duration, info.width, info.height, level)


def upload_key(media: Media) -> str:
    """The store's one upload-key rule (core.store.upload_key), for media handed to the page."""
    return store_upload_key(media.data, media.name)


@dataclass(frozen=True)
class Planned:
    """Media with the reference the job will carry; `key` is None when it travels inline."""

    media: Media
    ref: str
    key: str | None


def plan(media: Media, store: Store, settings: Settings) -> Planned:
    """The reference a worker will fetch the media by, computed without writing anything.

    S3: a presigned URL. Folder store with the local endpoint: the file's path, which the worker may read.
    Folder store with RunPod's cloud: the cloud cannot see this machine's folder, so the media go inline
    as a data URL (the client refuses a /run body over RunPod's 10 MB; configure S3 for bigger media).
    """
    key = upload_key(media)
    if store.kind == "s3":
        return Planned(media, store.url(key), key)
    local = store.local_path(key)
    if local is not None and settings.is_local_endpoint:
        return Planned(media, str(local), key)
    encoded = base64.b64encode(media.data).decode("ascii")
    return Planned(media, f"data:{content_type(media.name)};base64,{encoded}", None)


def commit(planned: Planned, store: Store) -> None:
    """Write planned media to the store, unless it is inline or already there."""
    if planned.key is not None and not store.exists(planned.key):
        store.put_bytes(planned.key, planned.media.data)


def refresh_ref(ref: str, store: Store, settings: Settings) -> str:
    """A reference to an earlier upload, made fetchable again (a presigned URL expires; its key does not)."""
    key = stored_key(ref, store, settings)
    if key is None or not store.exists(key):
        return ref
    return store.url(key) if store.kind == "s3" else ref
