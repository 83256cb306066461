"""ffmpeg at the edge: probing, decoding, encoding and thumbnails.

Every call goes through `run_ffmpeg`/`probe`, which turn ffmpeg's failures into E_FFMPEG errors carrying the
tail of its stderr, so a broken file never surfaces as a traceback. Every read of a job's media is limited to
the demuxers in DEMUXERS and to local files (INPUT_GUARD).
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from core import logs
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


def guarded(args: list[str]) -> list[str]:
    """ffmpeg arguments with INPUT_GUARD before every input (`-i`): every input of these calls is a job's media."""
    out: list[str] = []
    for arg in args:
        out.extend([*INPUT_GUARD, arg] if arg == "-i" else [arg])
    return out


def _tail(text: bytes | str, limit: int = 600, paths: tuple[str, ...] = (), name: str = "the file") -> str:
    """The end of ffmpeg's stderr, with the worker's own file paths replaced by what the user calls the file."""
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for path in sorted(paths, key=len, reverse=True):
        value = value.replace(path, name)
    return value.strip()[-limit:]


def run_ffmpeg(args: list[str], *, at_stage: str, what: str, timeout: float = 600.0) -> bytes:
    """Run ffmpeg quietly on a job's media and return its stdout; raise E_FFMPEG naming `what` on failure.

    Every input is guarded (see `guarded`): callers that feed ffmpeg something else (a pipe of raw frames)
    build their own command, as VideoEncoder does.
    """
    command = [*QUIET_FFMPEG, "-y", *guarded(args)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise JobError(
            ErrorCode.FFMPEG, f"{what}: ffmpeg took longer than {timeout:.0f} s", at_stage=at_stage
        ) from None
    if done.returncode != 0:
        local = tuple(arg for arg in args if arg.startswith("/"))
        raise JobError(
            ErrorCode.FFMPEG, f"{what}: {_tail(done.stderr, paths=local) or 'ffmpeg failed'}", at_stage=at_stage
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
            f"(they can point at other files); {ACCEPTED}",
            at_stage=at_stage,
        )
    if done.returncode != 0:
        reason = _tail(done.stderr, 200, (str(path),), field) or "unknown format"
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            f"{field}: the file is not readable media ({reason}); {ACCEPTED}",
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
        duration_s=float(duration) if duration not in (None, "N/A") else None,
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


AAC_ARGS = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
"""The soundtrack's encoding in every published MP4."""


def x264_args(crf: int) -> list[str]:
    """The video encoding of every published MP4: H.264 high profile, yuv420p, 25 fps."""
    return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p", "-profile:v", "high",
            "-r", str(FPS)]  # fmt: skip


def raw_frames_input(width: int, height: int) -> list[str]:
    """ffmpeg input options for RGB frames written to its stdin."""
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0"]


class _AbortOnError:
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


class VideoEncoder(_AbortOnError):
    """Streams RGB frames into ffmpeg and muxes them with the soundtrack: H.264 yuv420p + AAC, 25 fps, faststart.

    Frames go through a pipe, so a long video never sits in memory; ffmpeg encodes on its own core while the
    engine renders the next frames.
    """

    def __init__(self, out_path: Path, width: int, height: int, soundtrack: Path, *, crf: int = 20) -> None:
        self.out_path = out_path
        self.soundtrack = soundtrack
        self.width = width
        self.height = height
        self.frames_written = 0
        command = [
            *QUIET_FFMPEG,
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(FPS),
            "-i",
            "pipe:0",
            "-i",
            str(soundtrack),
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            *x264_args(crf),
            *AAC_ARGS,
            "-movflags",
            "+faststart",
            str(out_path),
        ]
        self._stderr = out_path.with_suffix(".ffmpeg.log")
        self._stderr_file = self._stderr.open("wb")
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._stderr_file)

    def write(self, frame: np.ndarray) -> None:
        """Send one RGB frame of the encoder's size."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise JobError(
                ErrorCode.GENERATION_RUNTIME,
                f"engine produced a frame of shape {frame.shape} {frame.dtype}, expected "
                f"({self.height}, {self.width}, 3) uint8",
                at_stage=Stage.GENERATION,
            )
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self._process.wait()
            raise JobError(
                ErrorCode.FFMPEG, f"encoding the video: {self._log_tail()}", at_stage=Stage.MUXING_STARTED
            ) from None
        self.frames_written += 1

    def _log_tail(self) -> str:
        self._stderr_file.flush()
        return _tail(self._stderr.read_bytes(), paths=(str(self.out_path), str(self.soundtrack))) or "ffmpeg stopped"

    def finish(self) -> Path:
        """Close the pipe and wait for the MP4; E_FFMPEG when ffmpeg failed."""
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        code = self._process.wait()
        self._stderr_file.close()
        log = self._log_tail() if code != 0 else ""
        self._stderr.unlink(missing_ok=True)
        if code != 0:
            raise JobError(ErrorCode.FFMPEG, f"encoding the video: {log}", at_stage=Stage.MUXING_STARTED)
        return self.out_path

    def abort(self) -> None:
        """Stop ffmpeg and forget the partial file."""
        self._process.kill()
        self._process.wait()
        self._stderr_file.close()
        self._stderr.unlink(missing_ok=True)
        self.out_path.unlink(missing_ok=True)


PartialSink = Callable[[Path, int, int], None]
"""Receives (a playable MP4 of the clips finished so far, its frame count, how many clips it holds)."""
MUX_TIMEOUT_S = 600.0


def _concat_list(paths: Sequence[Path], list_path: Path) -> Path:
    """An ffconcat list of our own segment files (absolute paths, quotes escaped)."""
    lines = ["ffconcat version 1.0"]
    lines += ["file '" + str(path.resolve()).replace("'", "'\\''") + "'" for path in paths]
    list_path.write_text("\n".join(lines) + "\n")
    return list_path


def mux_segments(segments: Sequence[Path], audio: Path, out_path: Path, *, frames: int | None = None) -> Path:
    """Join H.264 segments and the soundtrack into a faststart MP4: the video by stream copy, the sound copied
    when it is already AAC (`.m4a`), else encoded as every published MP4's is (AAC_ARGS).

    `frames` cuts the soundtrack to that many frames of video: a partial video ends where its clips end.
    The inputs are the worker's own files, never a job's media, so the concat demuxer is allowed here.
    """
    listing = _concat_list(segments, out_path.with_suffix(".txt"))
    command = [*QUIET_FFMPEG, "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(audio)]
    command += ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    command += ["-c:a", "copy"] if audio.suffix == ".m4a" else AAC_ARGS
    if frames is not None:
        command += ["-t", f"{frames / FPS:.3f}"]
    command += ["-movflags", "+faststart", str(out_path)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=MUX_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise JobError(
            ErrorCode.FFMPEG, f"muxing the video: ffmpeg took longer than {MUX_TIMEOUT_S:.0f} s",
            at_stage=Stage.MUXING_STARTED,
        ) from None  # fmt: skip
    finally:
        listing.unlink(missing_ok=True)
    if done.returncode != 0:
        out_path.unlink(missing_ok=True)
        raise JobError(
            ErrorCode.FFMPEG,
            f"muxing the video: {_tail(done.stderr) or 'ffmpeg failed'}",
            at_stage=Stage.MUXING_STARTED,
        )
    return out_path


@dataclass
class _Segment:
    path: Path
    process: subprocess.Popen[bytes]
    log: Path


class ClipEncoder(_AbortOnError):
    """Encodes a streaming job in segments cut at clip ends, so that everything finished so far plays while the
    rest renders.

    Frames go into an H.264 segment (VideoEncoder's encoding); the soundtrack is encoded to AAC once, up front.
    At a clip's last frame, when `every_s` seconds have passed since the last cut, the segment is closed and a
    new one begun; a background thread joins the segments so far with the soundtrack cut to their length, by
    stream copy, into a faststart MP4 and hands it to `on_partial`, so the frame loop never waits for it (a
    thread that falls behind skips to the newest). Each cut costs two ffmpeg starts (about 0.1 s of CPU): a
    GPU clip takes minutes and gets its partial at once, while the preview engine's sub-second clips are cut
    every `every_s` so that the whole job stays within a few percent of VideoEncoder's time
    (bench/bench_partial.py). finish() joins every segment with the whole soundtrack into out_path: the same
    H.264 + AAC faststart MP4 VideoEncoder makes, a keyframe at each cut being the one difference.

    A partial that fails is logged and skipped: the preview must never cost the job its video.
    """

    def __init__(
        self,
        out_path: Path,
        width: int,
        height: int,
        soundtrack: Path,
        clip_ends: Sequence[int],
        on_partial: PartialSink,
        *,
        every_s: float = 0.0,
        crf: int = 20,
    ) -> None:
        self.out_path = out_path
        self.width = width
        self.height = height
        self.frames_written = 0
        self.crf = crf
        self.folder = out_path.with_name(out_path.stem + ".clips")
        self.folder.mkdir(parents=True, exist_ok=True)
        ends = sorted({end for end in clip_ends if end > 0})
        self._cuts = {end: clip for clip, end in enumerate(ends[:-1], 1)}
        """Frame count at each clip's end (the last excepted: finish() makes the video) → clips done there."""
        self.every_s = every_s
        self._last_cut = time.monotonic()
        self._on_partial = on_partial
        self.soundtrack = soundtrack
        self.audio = self.folder / "soundtrack.m4a"
        """The soundtrack as AAC, made once at the first partial, so that each partial copies it; a job too short
        for any partial encodes it only once, into the final video."""
        self._segments: list[_Segment] = []
        self._done: queue.Queue[tuple[int, int, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._partials, name="partial-video", daemon=True)
        self._thread.start()
        self._open_segment()

    def _open_segment(self) -> None:
        index = len(self._segments)
        path = self.folder / f"clip-{index:04d}.mp4"
        log_path = path.with_suffix(".log")
        command = [*QUIET_FFMPEG, "-y", *raw_frames_input(self.width, self.height), "-an", *x264_args(self.crf)]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen([*command, str(path)], stdin=subprocess.PIPE, stderr=log_file)
        self._segments.append(_Segment(path, process, log_path))

    def write(self, frame: np.ndarray) -> None:
        """Send one RGB frame of the encoder's size; at a clip's last frame, close its segment."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise JobError(
                ErrorCode.GENERATION_RUNTIME,
                f"engine produced a frame of shape {frame.shape} {frame.dtype}, expected "
                f"({self.height}, {self.width}, 3) uint8",
                at_stage=Stage.GENERATION,
            )
        segment = self._segments[-1]
        assert segment.process.stdin is not None
        try:
            segment.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            segment.process.wait()
            raise JobError(
                ErrorCode.FFMPEG, f"encoding the video: {self._log_tail(segment)}", at_stage=Stage.MUXING_STARTED
            ) from None
        self.frames_written += 1
        clips = self._cuts.get(self.frames_written)
        if clips is not None and time.monotonic() - self._last_cut >= self.every_s:
            self._last_cut = time.monotonic()
            self._close(segment)
            self._done.put((clips, self.frames_written, len(self._segments)))
            self._open_segment()

    @staticmethod
    def _close(segment: _Segment) -> None:
        assert segment.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            segment.process.stdin.close()

    def _log_tail(self, segment: _Segment) -> str:
        text = segment.log.read_bytes() if segment.log.exists() else b""
        return _tail(text, paths=(str(segment.path),)) or "ffmpeg stopped"

    def _wait(self, segments: Sequence[_Segment]) -> None:
        """Wait for segments' encoders; E_FFMPEG naming the first that failed."""
        for segment in segments:
            if segment.process.wait() != 0:
                raise JobError(
                    ErrorCode.FFMPEG, f"encoding the video: {self._log_tail(segment)}", at_stage=Stage.MUXING_STARTED
                )

    def _aac(self) -> Path:
        if not self.audio.exists():
            made = self.folder / "soundtrack.part.m4a"
            args = ["-i", str(self.soundtrack), "-vn", *AAC_ARGS, str(made)]
            subprocess.run([*QUIET_FFMPEG, "-y", *args], capture_output=True, timeout=MUX_TIMEOUT_S, check=True)
            made.replace(self.audio)
        return self.audio

    def _partials(self) -> None:
        """The background thread: mux and hand over the newest finished clips, one partial at a time."""
        while True:
            item = self._done.get()
            while item is not None and not self._done.empty():
                item = self._done.get()  # fallen behind: only the newest partial is worth making
            if item is None:
                return
            clips, frames, count = item
            segments = self._segments[:count]
            partial = self.folder / f"partial-{clips:04d}.mp4"
            try:
                self._wait(segments)
                mux_segments([s.path for s in segments], self._aac(), partial, frames=frames)
                self._on_partial(partial, frames, clips)
            except Exception as error:  # a preview that fails must not fail the job; finish() reports real errors
                logs.get_logger("media").warning("partial video skipped", extra={"clips": clips, "error": str(error)})
            finally:
                partial.unlink(missing_ok=True)

    def _stop_partials(self) -> None:
        self._done.put(None)
        self._thread.join()

    def finish(self) -> Path:
        """Close the last segment, wait for the partial thread, and join everything into out_path."""
        self._close(self._segments[-1])
        self._stop_partials()
        self._wait(self._segments)
        audio = self.audio if self.audio.exists() else self.soundtrack
        mux_segments([s.path for s in self._segments], audio, self.out_path)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.out_path

    def abort(self) -> None:
        """Stop every ffmpeg and the partial thread, and forget the files."""
        for segment in self._segments:
            segment.process.kill()
            segment.process.wait()
        self._stop_partials()
        shutil.rmtree(self.folder, ignore_errors=True)
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
