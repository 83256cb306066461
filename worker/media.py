"""ffmpeg at the edge: probing, decoding, encoding and thumbnails.

Every call goes through `run_ffmpeg`/`probe`, which turn ffmpeg's failures into E_FFMPEG errors carrying the
tail of its stderr, so a broken file never surfaces as a traceback. Every read of a job's media is limited to
the demuxers in DEMUXERS and to local files (INPUT_GUARD).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from core.contract import AUDIO_SAMPLE_RATE, FPS, ErrorCode, JobError, Stage

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
QUIET_FFMPEG = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"]
DEMUXERS = (
    "mov",
    "matroska",
    "wav",
    "mp3",
    "ogg",
    "flac",
    "aac",
    "jpeg_pipe",
    "png_pipe",
    "webp_pipe",
    "bmp_pipe",
    "gif",
)
"""The only containers a job's media may be read as: MP4/MOV/M4A, MKV/WebM, WAV/MP3/OGG/FLAC/AAC and the still
images `inputs.sniff_image` accepts. Manifests and playlists (DASH, HLS, ffconcat, SDP, image sequences, ...) make
ffmpeg open further files or the network: a base64 DASH manifest whose BaseURL was a `file://` path once made a
video of a file outside the allowed roots. With this list ffmpeg refuses them before it reads their contents."""
INPUT_GUARD = ["-protocol_whitelist", "file,pipe", "-format_whitelist", ",".join(DEMUXERS)]
"""Options put before each `-i` of a job's media: only the DEMUXERS, reading only local files and pipes."""
ACCEPTED = "send a JPEG/PNG/WebP image, an MP4/MOV/WebM/MKV video, or WAV/MP3/OGG/FLAC/AAC/M4A audio"
ACCEPTED_AUDIO = "send speech as WAV, MP3, OGG/Opus, FLAC, AAC, M4A or WebM audio"
ACCEPTED_VISUAL = "send a JPEG/PNG/WebP photo or an MP4/MOV/WebM/MKV video"


def accepted_for(field: str) -> str:
    """What to send instead, for the field a file was given for: speech fields list audio formats only (a text
    file named .wav was told to send an image or a video, issue 29)."""
    if field.startswith(("cond_audio", "tts_audio")):
        return ACCEPTED_AUDIO
    return ACCEPTED_VISUAL if field.startswith("cond_video") else ACCEPTED


def guarded(args: list[str]) -> list[str]:
    """ffmpeg arguments with INPUT_GUARD before every input (`-i`): every input of these calls is a job's media."""
    out: list[str] = []
    for arg in args:
        out.extend([*INPUT_GUARD, arg] if arg == "-i" else [arg])
    return out


def stderr_tail(text: bytes | str, limit: int = 600, paths: tuple[str, ...] = (), name: str = "the file") -> str:
    """The end of ffmpeg's stderr, with the worker's own file paths replaced by what the user calls the file."""
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for path in sorted(paths, key=len, reverse=True):
        value = value.replace(path, name)
    return value.strip()[-limit:]


def run_ffmpeg(args: list[str], *, at_stage: str, what: str, timeout: float = 600.0, own_files: bool = False) -> bytes:
    """Run ffmpeg quietly on a job's media and return its stdout; raise E_FFMPEG naming `what` on failure.

    Every input is guarded (see `guarded`): callers that feed ffmpeg something else (a pipe of raw frames)
    build their own command, as VideoEncoder does. `own_files` drops the guard for inputs that are the worker's
    own files, never a job's media (clip_encoder's joins, which need the concat demuxer).
    """
    command = [*QUIET_FFMPEG, "-y", *(args if own_files else guarded(args))]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise JobError(
            ErrorCode.FFMPEG, f"{what}: ffmpeg took longer than {timeout:.0f} s", at_stage=at_stage
        ) from None
    if done.returncode != 0:
        local = tuple(arg for arg in args if arg.startswith("/"))
        raise JobError(
            ErrorCode.FFMPEG, f"{what}: {stderr_tail(done.stderr, paths=local) or 'ffmpeg failed'}", at_stage=at_stage
        )
    return done.stdout


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file."""

    format: str
    duration_s: float | None
    width: int | None
    height: int | None
    has_video: bool
    has_audio: bool
    video_codec: str | None
    audio_codec: str | None
    frames: int | None
    fps: float | None
    sample_rate: int | None


def _ratio(text: str | None) -> float | None:
    if not text or "/" not in text:
        return None
    num, den = text.split("/", 1)
    return float(num) / float(den) if float(den) else None


def probe(path: Path, *, field: str, at_stage: str = Stage.DOWNLOADS_STARTED) -> MediaInfo:
    """Probe a media file without decoding it; E_INPUT_VALIDATION when ffprobe cannot read it, or when it is not
    in one of the DEMUXERS (ffprobe is told the list, and its answer is checked against it too)."""
    command = [FFPROBE, "-v", "error", *INPUT_GUARD, "-print_format", "json", "-show_format", "-show_streams"]
    try:
        done = subprocess.run([*command, str(path)], capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise JobError(ErrorCode.FFMPEG, f"{field}: probing the file took too long", at_stage=at_stage) from None
    data = json.loads(done.stdout or b"{}") if done.returncode == 0 else {}
    format_name = str(data.get("format", {}).get("format_name", ""))
    if b"not on whitelist" in done.stderr or (data and not set(format_name.split(",")) & set(DEMUXERS)):
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{field}: playlists, manifests and containers other than the supported ones are not read "
            f"(they can point at other files); {accepted_for(field)}",
            at_stage=at_stage,
        )
    if done.returncode != 0:
        # ffmpeg names the file in its reason: "the file", since the message already starts with the field.
        reason = stderr_tail(done.stderr, 200, (str(path),)).removeprefix("the file: ") or "unknown format"
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{field}: the file is not readable media ({reason}); {accepted_for(field)}",
            at_stage=at_stage,
        )
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    fmt = data.get("format", {})
    duration = fmt.get("duration") or (video or {}).get("duration") or (audio or {}).get("duration")
    frames = (video or {}).get("nb_frames")
    return MediaInfo(
        format=format_name,
        duration_s=float(str(duration)) if duration not in (None, "N/A") else None,
        width=int(video["width"]) if video and video.get("width") else None,
        height=int(video["height"]) if video and video.get("height") else None,
        has_video=video is not None,
        has_audio=audio is not None,
        video_codec=(video or {}).get("codec_name"),
        audio_codec=(audio or {}).get("codec_name"),
        frames=int(frames) if frames and str(frames).isdigit() else None,
        fps=_ratio((video or {}).get("avg_frame_rate")),
        sample_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
    )


def decode_audio(path: Path, *, field: str, max_seconds: float) -> np.ndarray:
    """Decode any audio ffmpeg reads to float32 mono at 16 kHz, reading at most max_seconds + 1 s."""
    raw = run_ffmpeg(
        [
            "-t",
            f"{max_seconds + 1:.3f}",
            "-i",
            str(path),
            "-vn",
            "-ac",
            "1",
            "-ar",
            str(AUDIO_SAMPLE_RATE),
            "-f",
            "f32le",
            "-acodec",
            "pcm_f32le",
            "pipe:1",
        ],
        at_stage=Stage.AUDIO_STARTED,
        what=f"{field}: decoding the audio",
    )
    return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=True)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> Path:
    """Write float samples in [-1, 1] as 16-bit mono PCM WAV."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return path


def read_image(path: Path, *, field: str) -> np.ndarray:
    """Decode an image to RGB uint8 (the caller has already checked its pixel count)."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{field}: the image could not be decoded; re-save it as JPEG or PNG",
            at_stage=Stage.DOWNLOADS_STARTED,
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_video_frames(path: Path, width: int, height: int, *, field: str) -> Iterator[np.ndarray]:
    """Decode a video at 25 fps, scaled and centre-cropped to width×height, as RGB uint8 frames."""
    vf = f"fps={FPS},scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1"
    command = [
        *QUIET_FFMPEG,
        *INPUT_GUARD,
        "-i",
        str(path),
        "-an",
        "-vf",
        vf,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    # stderr is not read while frames stream, so it must not be a pipe that could fill and stall ffmpeg.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    frame_bytes = width * height * 3
    assert process.stdout is not None
    try:
        while True:
            chunk = process.stdout.read(frame_bytes)
            if len(chunk) < frame_bytes:
                break
            yield np.frombuffer(chunk, dtype=np.uint8).reshape(height, width, 3)
    finally:
        process.stdout.close()
        process.kill()
        process.wait()


AAC_RATE = 48000
AAC_ARGS = ["-c:a", "aac", "-b:a", "128k", "-ar", str(AAC_RATE)]
"""The soundtrack's encoding in every published MP4."""


def x264_args(crf: int) -> list[str]:
    """The video encoding of every published MP4: H.264 high profile, yuv420p, 25 fps."""
    return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-profile:v", "high",
            "-r", str(FPS)]  # fmt: skip


def raw_frames_input(width: int, height: int) -> list[str]:
    """ffmpeg input options for RGB frames written to its stdin."""
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0"]


class AbortOnError:
    """An encoder as a context manager: leaving the block on an exception stops ffmpeg and forgets the file."""

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()


def check_frame(frame: np.ndarray, width: int, height: int) -> None:
    """E_GENERATION_RUNTIME unless the engine's frame is RGB uint8 of the encoder's size."""
    if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
        raise JobError(
            ErrorCode.GENERATION_RUNTIME,
            f"engine produced a frame of shape {frame.shape} {frame.dtype}, expected ({height}, {width}, 3) uint8",
            at_stage=Stage.GENERATION,
        )


def pipe_frame(process: subprocess.Popen[bytes], frame: np.ndarray, log_tail: Callable[[], str]) -> None:
    """Write one frame to an encoding ffmpeg's stdin; E_FFMPEG with the end of its log when it has stopped."""
    assert process.stdin is not None
    try:
        process.stdin.write(np.ascontiguousarray(frame).tobytes())
    except BrokenPipeError:
        process.wait()
        raise JobError(ErrorCode.FFMPEG, f"encoding the video: {log_tail()}", at_stage=Stage.MUXING_STARTED) from None


LIVE_COPY_FLAGS = "empty_moov+default_base_moof+frag_every_frame"
"""A live copy is a fragmented MP4 (a header, then a fragment per frame, each written out at once): whatever of
it is on disk, up to its last whole fragment, is a playable video of the frames encoded so far."""
_TEE_SAFE = re.compile(r"[A-Za-z0-9_./-]+")


class VideoEncoder(AbortOnError):
    """Streams RGB frames into ffmpeg and muxes them with the soundtrack: H.264 yuv420p + AAC, 25 fps, faststart.

    Frames go through a pipe, so a long video never sits in memory; ffmpeg encodes on its own core while the
    engine renders the next frames.

    With `live_copy` (a path in out_path's folder), the one encode also writes, through ffmpeg's tee muxer, a
    fragmented MP4 of the same packets that grows frame by frame (LIVE_COPY_FLAGS): the video so far can be read
    from it while out_path, byte for byte the file made without it, is only whole at the end. A failure of the live
    copy is ignored by ffmpeg (onfail=ignore): it must never cost the job its video.
    """

    def __init__(
        self, out_path: Path, width: int, height: int, soundtrack: Path, *, crf: int = 20, live_copy: Path | None = None
    ) -> None:
        self.out_path = out_path
        self.soundtrack = soundtrack
        self.width = width
        self.height = height
        self.frames_written = 0
        command = [
            *QUIET_FFMPEG,
            "-y",
            *raw_frames_input(width, height),
            "-i",
            str(soundtrack.resolve()),  # ffmpeg may run in out_path's folder (live_copy)
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            *x264_args(crf),
            *AAC_ARGS,
            *(self._tee(out_path, live_copy) if live_copy else ["-movflags", "+faststart", str(out_path)]),
        ]
        self._stderr = out_path.with_suffix(".ffmpeg.log")
        self._stderr_file = self._stderr.open("wb")
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stderr=self._stderr_file, cwd=out_path.parent if live_copy else None
        )
        self._finished: int | None = None
        """ffmpeg's exit code once finish() has waited for it."""
        self._log = ""
        self._lock = threading.Lock()

    @staticmethod
    def _tee(out_path: Path, live_copy: Path) -> list[str]:
        """The tee muxer's outputs, named relative to out_path's folder (ffmpeg runs there), so that no path needs
        the tee syntax's escaping; the encoders are told to put their headers where MP4 wants them."""
        names = [out_path.name, live_copy.relative_to(out_path.parent).as_posix()]
        if not all(_TEE_SAFE.fullmatch(name) for name in names):
            raise ValueError(f"encoder output names must be plain file names, not {names}")
        final, live = names
        live_options = f"f=mp4:onfail=ignore:flush_packets=1:movflags=+{LIVE_COPY_FLAGS}"
        return ["-flags", "+global_header", "-f", "tee", f"[f=mp4:movflags=+faststart]{final}|[{live_options}]{live}"]

    def write(self, frame: np.ndarray) -> None:
        """Send one RGB frame of the encoder's size."""
        check_frame(frame, self.width, self.height)
        pipe_frame(self._process, frame, self._log_tail)
        self.frames_written += 1

    def _log_tail(self) -> str:
        self._stderr_file.flush()
        text = self._stderr.read_bytes() if self._stderr.exists() else b""
        return stderr_tail(text, paths=(str(self.out_path), str(self.soundtrack))) or "ffmpeg stopped"

    def close(self) -> None:
        """Send no more frames: ffmpeg finishes the video on its own while the caller goes on."""
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()

    def finish(self) -> Path:
        """Close the pipe and wait for the MP4; E_FFMPEG when ffmpeg failed. Safe to call from two threads."""
        self.close()
        with self._lock:
            if self._finished is None:
                self._finished = self._process.wait()
                self._stderr_file.close()
                self._log = self._log_tail() if self._finished != 0 else ""
                self._stderr.unlink(missing_ok=True)
        if self._finished != 0:
            raise JobError(ErrorCode.FFMPEG, f"encoding the video: {self._log}", at_stage=Stage.MUXING_STARTED)
        return self.out_path

    def abort(self) -> None:
        """Stop ffmpeg and forget the partial file."""
        self._process.kill()
        self._process.wait()
        self._stderr_file.close()
        self._stderr.unlink(missing_ok=True)
        self.out_path.unlink(missing_ok=True)


def make_thumbnail(frame: np.ndarray, out_path: Path, *, max_side: int = 480) -> Path:
    """A JPEG of one RGB frame, at most max_side pixels a side."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        frame = cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise JobError(ErrorCode.FFMPEG, "making the thumbnail: JPEG encoding failed", at_stage=Stage.THUMBNAIL_OK)
    out_path.write_bytes(encoded.tobytes())
    return out_path
