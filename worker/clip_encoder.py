"""Encoding a streaming job so that the video so far can be watched while the rest renders (progressive preview).

ClipEncoder is VideoEncoder plus partial videos, and it gets them in one of two ways, chosen by how fast the
engine renders a clip:

- **A live copy** (fast engines: the CPU preview renders a clip in well under a second). The job has one
  continuous encode, exactly VideoEncoder's, whose tee also writes a fragmented MP4 that grows frame by frame
  (media.LIVE_COPY_FLAGS). A partial is that copy up to its last whole fragment, remuxed with faststart: one
  stream-copy ffmpeg, and nothing added to the encode itself, so the final video is byte for byte VideoEncoder's.
  The copy holds what x264 has encoded, which trails the frames sent by its lookahead (a few dozen frames); a fast
  engine sends the next frames within the second, so a partial counts only the clips it holds whole.
- **Cuts** (slow engines: InfiniteTalk on a GPU takes from 14 s to minutes a clip). The lookahead would keep the
  end of every clip inside x264 until the next clip arrives, minutes later. So from the first clip that took
  `cut_after_s` or longer, the encode is cut at clip ends: the running ffmpeg is closed, which writes out all its
  frames, and the next clip goes into a new video-only segment. A partial joins the segments so far by stream copy
  with the soundtrack (encoded to AAC once) cut to their length; finish() joins them all into out_path, the same
  H.264 + AAC faststart MP4 with a keyframe at each cut. Each cut costs two ffmpeg starts (about 0.1 s of CPU),
  nothing beside a clip that took seconds.

Partials come at most every `every_s` seconds, are made by a background thread so that the frame loop never waits
for one (a thread that falls behind skips to the newest), and one that fails is logged and skipped: the preview
must never cost the job its video. bench/bench_partial.py measures what it all costs.
"""

from __future__ import annotations

import bisect
import contextlib
import queue
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core import logs
from core.contract import FPS, ErrorCode, JobError, Stage
from worker.media import (
    AAC_ARGS,
    AAC_RATE,
    QUIET_FFMPEG,
    AbortOnError,
    VideoEncoder,
    check_frame,
    pipe_frame,
    raw_frames_input,
    run_ffmpeg,
    stderr_tail,
    x264_args,
)

PartialSink = Callable[[Path, int, int], None]
"""Receives (a playable MP4 of the video so far, its frame count, how many whole clips it holds)."""
MUX_TIMEOUT_S = 600.0
CUT_AFTER_S = 2.0
"""A clip that took this long means the next one is at least as far away: from then on the encode is cut at clip
ends, so that each partial holds every frame rendered (a cut costs about 0.1 s of CPU)."""
AAC_FRAME_SAMPLES = 1024
AAC_PRIMING_S = 1024 / AAC_RATE
"""The silence ffmpeg's AAC encoder puts first (its initial padding)."""
LIVE_POLL_S = 0.02
"""How often the partial thread looks again for a clip's last frames in the live copy (a fast engine sends the
frames that push them out of x264 within milliseconds)."""
VIDEO_TRACK, AUDIO_TRACK = 1, 2
"""The live copy's tracks, in VideoEncoder's -map order."""


def _concat_list(paths: Sequence[Path], list_path: Path) -> Path:
    """An ffconcat list of our own segment files (absolute paths, quotes escaped)."""
    lines = ["ffconcat version 1.0"]
    lines += ["file '" + str(path.resolve()).replace("'", "'\\''") + "'" for path in paths]
    list_path.write_text("\n".join(lines) + "\n")
    return list_path


def _run(args: list[str], out_path: Path, what: str) -> Path:
    """Run one of our own ffmpeg joins (media.run_ffmpeg on the worker's files); no half-written out_path is left
    when it fails."""
    try:
        run_ffmpeg(args, at_stage=Stage.MUXING_STARTED, what=what, timeout=MUX_TIMEOUT_S, own_files=True)
    except JobError:
        out_path.unlink(missing_ok=True)
        raise
    return out_path


def mux_segments(segments: Sequence[Path], audio: Path, out_path: Path, *, frames: int | None = None) -> Path:
    """Join H.264 segments and the soundtrack into a faststart MP4: the video by stream copy, the sound copied
    when it is already AAC (`.m4a`), else encoded as every published MP4's is (AAC_ARGS).

    `frames` cuts the soundtrack to that many frames of video: a partial video ends where its clips end.
    The inputs are the worker's own files, never a job's media, so the concat demuxer is allowed here.
    """
    listing = _concat_list(segments, out_path.with_suffix(".txt"))
    command = ["-f", "concat", "-safe", "0", "-i", str(listing), "-i", str(audio)]
    command += ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    command += ["-c:a", "copy"] if audio.suffix == ".m4a" else AAC_ARGS
    if frames is not None:
        command += ["-t", f"{frames / FPS:.3f}"]
    command += ["-movflags", "+faststart", str(out_path)]
    try:
        return _run(command, out_path, "muxing the video")
    finally:
        listing.unlink(missing_ok=True)


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack(">I", data[at : at + 4])[0])


def _timing(moof: bytes, track: int) -> list[tuple[int, int]]:
    """(presentation time, duration), in the track's ticks, of each of `track`'s samples in a movie fragment box's
    body: the decode time its tfdt gives, each trun's sample durations (their own, else the tfhd's default) and
    composition offsets (ISO/IEC 14496-12 8.8.7, 8.8.8, 8.8.12)."""
    samples: list[tuple[int, int]] = []
    for kind, body in _boxes(moof):
        children = _boxes(body) if kind == b"traf" else []
        header = next((box for name, box in children if name == b"tfhd"), b"")
        if len(header) < 8 or _u32(header, 4) != track:
            continue
        flags = _u32(header, 0) & 0xFFFFFF
        at = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        default_duration = _u32(header, at) if flags & 0x08 else 0
        decode = 0
        for name, box in children:
            if name == b"tfdt":
                decode = int(struct.unpack(">Q", box[4:12])[0]) if box[0] == 1 else _u32(box, 4)
            elif name == b"trun":
                run_flags, count = _u32(box, 0) & 0xFFFFFF, _u32(box, 4)
                at = 8 + (4 if run_flags & 0x01 else 0) + (4 if run_flags & 0x04 else 0)
                for _ in range(count):
                    duration, offset = default_duration, 0
                    if run_flags & 0x100:
                        duration, at = _u32(box, at), at + 4
                    at += (4 if run_flags & 0x200 else 0) + (4 if run_flags & 0x400 else 0)
                    if run_flags & 0x800:
                        offset = int(struct.unpack(">i" if box[0] else ">I", box[at : at + 4])[0])
                        at += 4
                    samples.append((decode + offset, duration))
                    decode += duration
    return samples


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) of each whole ISO BMFF box in `data`."""
    found, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8 or offset + size > len(data):
            break
        found.append((kind, data[offset + 8 : offset + size]))
        offset += size
    return found


class LiveCopy:
    """How much of a growing fragmented MP4 is whole: the bytes up to its last complete fragment, and the video
    frames and AAC frames they hold. Each scan reads only the boxes added since the last one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.whole = 0
        """Bytes from the start that are a playable MP4: the header boxes, then whole fragments."""
        self.audio_frames = 0
        """AAC frames in them (AAC_FRAME_SAMPLES samples each)."""
        self.video_times: list[int] = []
        """Each whole video frame's presentation time, in the track's ticks, in file order."""
        self.frame_ticks = 0
        """One frame's duration in those ticks."""
        self._offset = 0
        self._pending: tuple[list[tuple[int, int]], int] = ([], 0)
        self._fragments: list[tuple[int, int]] = []
        """(bytes up to the end of a fragment with video in it, video frames up to there), in file order."""

    @property
    def frames(self) -> int:
        """Video frames in the whole part."""
        return len(self.video_times)

    @property
    def audio_s(self) -> float:
        """Seconds of sound in the whole part, the encoder's priming included."""
        return self.audio_frames * AAC_FRAME_SAMPLES / AAC_RATE

    def scan(self) -> tuple[int, int]:
        """(whole bytes, video frames in them) as the file is now."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return self.whole, self.frames
        with self.path.open("rb") as file:
            while self._next_box(file, size):
                pass
        return self.whole, self.frames

    def _next_box(self, file: BinaryIO, size: int) -> bool:
        file.seek(self._offset)
        head = file.read(8)
        if len(head) < 8:
            return False
        box, kind = struct.unpack(">I4s", head)
        if box < 8 or self._offset + box > size:  # not all written yet (or a size this writer never uses)
            return False
        if kind == b"moof":
            body = file.read(box - 8)
            self._pending = (_timing(body, VIDEO_TRACK), len(_timing(body, AUDIO_TRACK)))
        self._offset += box
        if kind == b"mdat":  # a fragment is whole once its data is
            video, audio = self._pending
            self.video_times += [at for at, _ in video]
            self.frame_ticks = self.frame_ticks or next((duration for _, duration in video if duration), 0)
            self.audio_frames += audio
            if video:
                self._fragments.append((self._offset, self.frames))
            self._pending = ([], 0)
            self.whole = self._offset
        elif kind != b"moof":  # ftyp, moov: the header
            self.whole = self._offset
        return True

    def bytes_for(self, frames: int) -> int | None:
        """The bytes from the start that hold exactly the first `frames` video frames (in file order), when a
        fragment ends there."""
        index = bisect.bisect_left(self._fragments, frames, key=lambda fragment: fragment[1])
        if index < len(self._fragments) and self._fragments[index][1] == frames:
            return self._fragments[index][0]
        return None

    def snapshot(self, whole: int, out_path: Path) -> Path:
        """The first `whole` bytes, copied to out_path."""
        with self.path.open("rb") as source, out_path.open("wb") as target:
            left = whole
            while left > 0:
                chunk = source.read(min(left, 1 << 20))
                if not chunk:
                    break
                target.write(chunk)
                left -= len(chunk)
        return out_path


class _Segment:
    """One video-only H.264 segment after a cut: an ffmpeg reading raw frames on its stdin."""

    def __init__(self, path: Path, width: int, height: int, crf: int) -> None:
        self.path = path
        self.log = path.with_suffix(".log")
        command = [*QUIET_FFMPEG, "-y", *raw_frames_input(width, height), "-an", *x264_args(crf), str(path)]
        with self.log.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log_file)

    def write(self, frame: np.ndarray) -> None:
        pipe_frame(self.process, frame, self._log_tail)

    def close(self) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()

    def wait(self) -> Path:
        """The finished segment; E_FFMPEG when its encoder failed."""
        if self.process.wait() != 0:
            raise JobError(ErrorCode.FFMPEG, f"encoding the video: {self._log_tail()}", at_stage=Stage.MUXING_STARTED)
        return self.path

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def _log_tail(self) -> str:
        text = self.log.read_bytes() if self.log.exists() else b""
        return stderr_tail(text, paths=(str(self.path),)) or "ffmpeg stopped"


@dataclass(frozen=True)
class _Due:
    """A partial asked for at a clip end."""

    clips: int
    """Clips finished when it was asked for."""
    frames: int
    """Frames sent by then."""
    pieces: int
    """0 while the encode is whole (read the live copy); after cuts, how many pieces hold those frames."""


@dataclass(frozen=True)
class _LiveCut:
    """Where a partial made from the live copy ends."""

    frames: int
    """The frames they show, all of them from the first."""
    video_start_s: float
    """When the copy shows its first frame (the B-frames' delay)."""


class ClipEncoder(AbortOnError):
    """VideoEncoder's video, with a partial video handed to `on_partial` as clips finish (see the module's text)."""

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
        cut_after_s: float = CUT_AFTER_S,
        crf: int = 20,
    ) -> None:
        self.out_path = out_path
        self.width = width
        self.height = height
        self.soundtrack = soundtrack
        self.crf = crf
        self.frames_written = 0
        self.every_s = every_s
        self.cut_after_s = cut_after_s
        self.folder = out_path.with_name(out_path.stem + ".clips")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.live = LiveCopy(self.folder / "live.mp4")
        self._first = VideoEncoder(out_path, width, height, soundtrack, crf=crf, live_copy=self.live.path)
        self._segments: list[_Segment] = []
        """The video-only segments after the first cut; empty while the encode is whole."""
        self._first_video = self.folder / "clip-0000.mp4"
        self._first_lock = threading.Lock()
        ends = sorted({end for end in clip_ends if end > 0})
        self._ends = ends[:-1]
        """Frame count at each clip's end, the last excepted (finish() makes the video)."""
        self._cuts = {end: clip for clip, end in enumerate(self._ends, 1)}
        self._last_partial = self._clip_began = time.monotonic()
        self._published = 0
        """Whole clips in the newest partial handed over: a partial is only made when it holds more."""
        self._looked_at = (0, 0)
        """The live copy's (video, AAC) frame counts at the last look: the next look waits for more."""
        self._on_partial = on_partial
        self.audio = self.folder / "soundtrack.m4a"
        """The soundtrack as AAC, made at the first partial after a cut, so that each such partial copies it."""
        self._due: queue.Queue[_Due | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._partials, name="partial-video", daemon=True)
        self._thread.start()

    @property
    def cut(self) -> bool:
        """Whether the encode has been cut at clip ends (a slow engine)."""
        return bool(self._segments)

    def write(self, frame: np.ndarray) -> None:
        """Send one RGB frame of the encoder's size; at a clip's end, ask for a partial when one is due."""
        check_frame(frame, self.width, self.height)
        if self._segments:
            self._segments[-1].write(frame)
        else:
            self._first.write(frame)
        self.frames_written += 1
        clips = self._cuts.get(self.frames_written)
        if clips is None:
            return
        now = time.monotonic()
        clip_s, self._clip_began = now - self._clip_began, now
        if now - self._last_partial < self.every_s:
            return
        self._last_partial = now
        if self._segments or clip_s >= self.cut_after_s:
            self._cut_here()
            self._due.put(_Due(clips, self.frames_written, len(self._segments)))
        else:
            self._due.put(_Due(clips, self.frames_written, 0))

    def _cut_here(self) -> None:
        if self._segments:
            self._segments[-1].close()
        else:
            self._first.close()
        path = self.folder / f"clip-{len(self._segments) + 1:04d}.mp4"
        self._segments.append(_Segment(path, self.width, self.height, self.crf))

    def _pieces(self, count: int) -> list[Path]:
        """The first `count` pieces of the video, finished: the whole encode's video up to the first cut, then the
        segments."""
        with self._first_lock:
            if not self._first_video.exists():
                self._first.finish()
                command = ["-i", str(self.out_path), "-map", "0:v:0", "-c", "copy"]
                _run([*command, str(self._first_video)], self._first_video, "muxing the video")
        return [self._first_video, *(segment.wait() for segment in self._segments[: count - 1])]

    def _aac(self) -> Path:
        if not self.audio.exists():
            made = self.folder / "soundtrack.part.m4a"
            args = ["-i", str(self.soundtrack), "-vn", *AAC_ARGS, str(made)]
            _run(args, made, "encoding the soundtrack")
            made.replace(self.audio)
        return self.audio

    def _partial(self, due: _Due, out_path: Path) -> tuple[int, int] | None:
        """Make the partial video `due` asks for at out_path: (its frames, its whole clips), or None when the job
        ended first."""
        if due.pieces:
            mux_segments(self._pieces(due.pieces), self._aac(), out_path, frames=due.frames)
            return due.frames, due.clips
        sound, video = self.folder / "live-sound.mp4", self.folder / "live-video.mp4"
        try:
            while (cut := self._cut_in_live_copy(sound, video)) is None:  # the clip's end is still in x264
                if self._stopping.is_set() or self.cut:  # the end, or cuts, which make their own partials
                    return None
                time.sleep(LIVE_POLL_S)
            _run(self._remux(sound, video, cut, out_path), out_path, "muxing the video so far")
        finally:
            sound.unlink(missing_ok=True)
            video.unlink(missing_ok=True)
        return cut.frames, sum(1 for clip_end in self._ends if clip_end <= cut.frames)

    def _cut_in_live_copy(self, sound: Path, video: Path) -> _LiveCut | None:
        """Snapshots of the live copy for a partial of the most whole clips it holds, more than the last partial
        held, with no gap in the frames and with their sound; None until it has them.

        x264 sends a B-frame after the later frame it refers to, so the packets in file order show frames out of
        order: a cut falls where they add up to a whole run again, at a clip's end or a few frames past it. The
        sound is interleaved a little behind the frames, so it is taken from all of the copy.
        """
        whole, frames = self.live.scan()
        ready = [end for end in self._ends if end <= frames][self._published :]
        looking_at = (frames, self.live.audio_frames)
        sound_short = not ready or self.live.audio_s < ready[0] / FPS + AAC_PRIMING_S
        if not ready or looking_at == self._looked_at or sound_short:
            return None  # nothing new whole, nothing new since the last look, or the sound not there yet
        self._looked_at = looking_at
        times, tick = self.live.video_times, self.live.frame_ticks
        if not times or not tick:
            return None
        start, shown, last = min(times), set(), 0
        runs: list[tuple[int, int]] = []
        """(packets in file order, frames they show without a gap), wherever the two agree."""
        for packets, at in enumerate(times, 1):
            index = round((at - start) / tick)
            shown.add(index)
            last = max(last, index)
            if len(shown) == last + 1:
                runs.append((packets, len(shown)))
        for end in reversed(ready):  # the most clips first
            packets, shown_frames = next(((p, f) for p, f in runs if f >= end), (0, 0))
            length = self.live.bytes_for(packets) if packets else None
            if length is not None and self.live.audio_s >= shown_frames / FPS + AAC_PRIMING_S:
                self.live.snapshot(length, video)
                self.live.snapshot(whole, sound)
                return _LiveCut(shown_frames, start / (tick * FPS))
        return None

    @staticmethod
    def _remux(sound: Path, video: Path, cut: _LiveCut, out_path: Path) -> list[str]:
        """The ffmpeg command that makes a faststart partial of the snapshots, timed as the final video is: a
        fragmented MP4 written before its first packet cannot carry the edit lists that hide the B-frames' delay
        and the AAC encoder's priming, so both are taken off here."""
        command = ["-itsoffset", f"{-cut.video_start_s:.6f}", "-i", str(video)]
        command += ["-itsoffset", f"{-AAC_PRIMING_S:.6f}", "-t", f"{cut.frames / FPS + AAC_PRIMING_S:.6f}"]
        command += ["-i", str(sound), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy"]
        return [*command, "-movflags", "+faststart", str(out_path)]

    def _partials(self) -> None:
        """The background thread: make and hand over the newest partial asked for, one at a time."""
        while True:
            due = self._due.get()
            while due is not None and not self._due.empty():
                due = self._due.get()  # fallen behind: only the newest partial is worth making
            if due is None:
                return
            partial = self.folder / f"partial-{due.clips:04d}.mp4"
            try:
                made = self._partial(due, partial)
                if made is not None and made[1] > self._published:
                    self._on_partial(partial, *made)
                    self._published = made[1]
            except Exception as error:  # a preview that fails must not fail the job; finish() reports real errors
                logs.get_logger("media").warning(
                    "partial video skipped", extra={"clips": due.clips, "error": str(error)}
                )
            finally:
                partial.unlink(missing_ok=True)

    def _stop_partials(self) -> None:
        self._stopping.set()
        self._due.put(None)
        self._thread.join()

    def finish(self) -> Path:
        """Wait for the partial thread and ffmpeg; after cuts, join the pieces with the soundtrack into out_path."""
        if not self._segments:
            self._first.close()
            self._stop_partials()
            self._first.finish()
        else:
            self._segments[-1].close()
            self._stop_partials()
            pieces = self._pieces(len(self._segments) + 1)
            mux_segments(pieces, self.audio if self.audio.exists() else self.soundtrack, self.out_path)
        shutil.rmtree(self.folder, ignore_errors=True)
        return self.out_path

    def abort(self) -> None:
        """Stop every ffmpeg and the partial thread, and forget the files."""
        for segment in self._segments:
            segment.kill()
        self._first.abort()
        self._stop_partials()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.out_path.unlink(missing_ok=True)
