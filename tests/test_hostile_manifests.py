"""Manifests and playlists as media: ffmpeg may demux only the containers the product supports.

A base64 "video" that was a DASH manifest whose BaseURL named a `file://` path once made a COMPLETED video of a
file outside STUDIO_INPUT_ROOTS. Each manifest here points at a named pipe outside the roots: a pipe that tells
whether anyone opened it, so "nothing was read" is observed, not assumed.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.contract import ErrorCode, JobError
from core.settings import Settings
from tests.conftest import EXAMPLES, SHORT_JOB
from worker.media import DEMUXERS, decode_audio, probe, read_video_frames
from worker.pipeline import run_job

CLIP = EXAMPLES / "media" / "clip.mp4"
SPEECH = EXAMPLES / "media" / "speech_1.wav"

MANIFESTS: dict[str, Callable[[Path], str]] = {
    "DASH": lambda target: (
        '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT2S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
        '<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="100000">'
        f"<BaseURL>file://{target}</BaseURL></Representation></AdaptationSet></Period></MPD>\n"
    ),
    "HLS": lambda target: f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:2,\nfile://{target}\n#EXT-X-ENDLIST\n",
    "HLS, plain path": lambda target: f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:2,\n{target}\n#EXT-X-ENDLIST\n",
    "ffconcat": lambda target: f"ffconcat version 1.0\nfile '{target}'\n",
    "SDP": lambda _: (
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n"
        "a=rtpmap:96 H264/90000\n"
    ),
}


@pytest.fixture
def tripwire(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], bool]]]:
    """A named pipe outside the allowed roots that hands a real video to whoever opens it, as often as they do
    (so a regression fails the test instead of hanging it); and a check of whether anyone did."""
    outside = tmp_path / "outside"
    outside.mkdir()
    pipe = outside / "secret.mp4"
    os.mkfifo(pipe)
    opened = threading.Event()
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            descriptor = os.open(pipe, os.O_WRONLY)  # returns once a reader opens the pipe
            if done.is_set():
                os.close(descriptor)
                return
            opened.set()
            try:
                with os.fdopen(descriptor, "wb") as out:
                    out.write(CLIP.read_bytes())
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield pipe, opened.is_set
    done.set()
    os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))  # let the waiting writer go
    thread.join(5)


def _submitted(text: str, how: str, settings: Settings) -> str:
    data = text.encode()
    if how == "data URL":
        return "data:video/mp4;base64," + base64.b64encode(data).decode()
    if how == "base64":
        return base64.b64encode(data.ljust(64, b"\n")).decode()
    inside = settings.input_roots[-1] / "upload.mp4"
    inside.write_bytes(data)
    return str(inside)


@pytest.mark.parametrize("field", ["cond_video", "cond_audio.person1"])
@pytest.mark.parametrize("how", ["data URL", "base64", "path"])
@pytest.mark.parametrize("kind", MANIFESTS)
def test_a_manifest_or_playlist_is_refused_naming_the_field_and_reads_nothing(
    settings: Settings, tmp_path: Path, tripwire: tuple[Path, Callable[[], bool]], kind: str, how: str, field: str
) -> None:
    target, was_read = tripwire
    inside = tmp_path / "inside"
    inside.mkdir()
    settings = settings.with_(input_roots=(EXAMPLES, inside))
    ref = _submitted(MANIFESTS[kind](target), how, settings)
    job: dict[str, Any] = {**SHORT_JOB, "cond_audio": dict(SHORT_JOB["cond_audio"])}  # type: ignore[arg-type]
    if field == "cond_video":
        job["cond_video"] = ref
    else:
        job["cond_audio"]["person1"] = ref

    output = run_job(job, "manifest", settings=settings, sink=lambda _: None)

    assert output["status"] == "error", output
    error = output["error"]
    assert error["code"] == ErrorCode.INPUT_VALIDATION, error
    assert error["message"].startswith(f"{field}: playlists, manifests"), error["message"]
    assert not was_read(), f"ffmpeg opened {target}"
    assert list(settings.work_root.iterdir()) == []


def test_ffmpeg_itself_refuses_a_manifest_even_when_handed_one_directly(
    tmp_path: Path, tripwire: tuple[Path, Callable[[], bool]]
) -> None:
    """The second line: every decode of a job's media carries the same demuxer and protocol lists."""
    target, was_read = tripwire
    manifest = tmp_path / "cond.video"
    manifest.write_text(MANIFESTS["DASH"](target))

    with pytest.raises(JobError) as refused:
        decode_audio(manifest, field="cond_audio.person1", max_seconds=5)
    frames = list(read_video_frames(manifest, 64, 64, field="cond_video"))

    assert refused.value.code == ErrorCode.FFMPEG and "whitelist" in refused.value.message
    assert frames == []
    assert not was_read()


SUPPORTED = {
    "MP4": ["-i", str(CLIP), "-t", "0.5", "-c", "copy", "-f", "mp4"],
    "MOV": ["-i", str(CLIP), "-t", "0.5", "-c", "copy", "-f", "mov"],
    "MKV": ["-i", str(CLIP), "-t", "0.5", "-c", "copy", "-f", "matroska"],
    "WebM": ["-i", str(CLIP), "-t", "0.5", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-f", "webm"],
    "WAV": ["-i", str(SPEECH), "-t", "0.5", "-f", "wav"],
    "MP3": ["-i", str(SPEECH), "-t", "0.5", "-f", "mp3"],
    "OGG/Opus": ["-i", str(SPEECH), "-t", "0.5", "-c:a", "libopus", "-f", "ogg"],
    "FLAC": ["-i", str(SPEECH), "-t", "0.5", "-f", "flac"],
    "AAC": ["-i", str(SPEECH), "-t", "0.5", "-c:a", "aac", "-f", "adts"],
    "M4A": ["-i", str(SPEECH), "-t", "0.5", "-c:a", "aac", "-f", "ipod"],
    "WebM audio": ["-i", str(SPEECH), "-t", "0.5", "-c:a", "libopus", "-f", "webm"],
    "JPEG": ["-i", str(EXAMPLES / "media" / "portrait.jpg"), "-f", "image2pipe", "-c:v", "mjpeg"],
    "PNG": ["-i", str(EXAMPLES / "media" / "portrait.jpg"), "-f", "image2pipe", "-c:v", "png"],
    "WebP": ["-i", str(EXAMPLES / "media" / "portrait.jpg"), "-f", "image2pipe", "-c:v", "libwebp"],
    "BMP": ["-i", str(EXAMPLES / "media" / "portrait.jpg"), "-f", "image2pipe", "-c:v", "bmp"],
    "GIF": ["-i", str(EXAMPLES / "media" / "portrait.jpg"), "-f", "gif"],
}


@pytest.mark.parametrize("name", SUPPORTED)
def test_every_supported_container_is_still_probed(tmp_path: Path, name: str) -> None:
    """The allowlist is the product's list of formats: each still reads, named as the worker names its copies."""
    made = tmp_path / "cond_input"
    subprocess.run(["ffmpeg", "-v", "error", *SUPPORTED[name], str(made)], check=True)

    info = probe(made, field="cond_video")

    assert info.has_video or info.has_audio
    assert set(info.format.split(",")) & set(DEMUXERS), info.format
