"""Long speech split at pauses into parts, and the parts' videos joined back into one (docs/split.md).

InfiniteTalk renders one video clip after clip on one GPU, so a long speech takes one worker a long time; split
into parts, the same speech renders on several workers at once. Both halves live here, beside the audio and
ffmpeg code they reuse, and are pure (numpy and ffmpeg, no engine): the client's fan-out (client/fanout.py) plans
and joins, the worker renders each part as an ordinary job.

Cuts fall inside pauses, at the quietest 100 ms of the longest pause near each part's target length, and on a
video frame's boundary (40 ms), so every part but the last has a whole number of frames and the joined video is
as long as the speech within one frame. The joined video carries the whole speech muxed once, not the parts'
own soundtracks, so there is nothing to hear at a join.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.contract import AUDIO_SAMPLE_RATE, FPS, ErrorCode, JobError, JobParams, Limits, Stage, tts_turns
from worker.audio import SAMPLES_PER_FRAME, SILENCE_FLOOR_DB, prepare_audio, speech_level
from worker.media import AAC_ARGS, FFPROBE, run_ffmpeg, write_wav, x264_args

WINDOW = AUDIO_SAMPLE_RATE // 50
"""The level is measured over 20 ms windows: two to a video frame, fine enough to find a 100 ms stretch."""
WINDOWS_PER_FRAME = SAMPLES_PER_FRAME // WINDOW
PAUSE_BELOW_DB = 25.0
"""A window is part of a pause when it is this far below the speech's level (worker.audio.speech_level): the
example recordings' pauses sit 35-50 dB below their speech, breaths and room noise 20-30 dB below."""
MIN_PAUSE_S = 0.15
"""A pause shorter than this is a gap between syllables, not between words or sentences."""
QUIET_STRETCH_S = 0.1
"""The cut lies at the middle of the quietest stretch this long (inside the chosen pause, or anywhere when the
window has no pause)."""
NEAR_FRACTION = 0.25
"""A pause counts as near a part's target length within this share of the longest part either side: the longest
of the near pauses wins, so parts stay close to equal length without cutting in a short breath."""
CHARS_PER_S = 14.0
"""Speech engines speak about 14 characters a second (espeak-ng's 175 words a minute; Kokoro is close): the text
of one part is kept under this many seconds' worth, with a fifth to spare since the estimate is rough."""


def _invalid(field: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field}: {message}", at_stage=Stage.VALIDATION_STARTED)


def check_lengths(part_s: float, min_part_s: float, frame_cap: int) -> None:
    """Refuse part lengths that cannot be met: a part longer than the job may render, or a floor above half a part
    (then a remainder between one part and two could not be split into two parts that both reach the floor)."""
    if not 1.0 <= part_s <= frame_cap / FPS:
        raise _invalid(
            "part_s",
            f"{part_s:g} s: a part must be between 1 s and the job's frame cap ({frame_cap} frames = "
            f"{frame_cap / FPS:g} s); lower part_s or raise max_frame_num",
        )
    if not 0.0 <= min_part_s <= part_s / 2:
        raise _invalid("min_part_s", f"{min_part_s:g} s: the shortest part must be between 0 and part_s / 2")


@dataclass(frozen=True)
class Cut:
    """A cut between two parts, in samples of the 16 kHz speech, on a video frame's boundary."""

    at: int
    in_pause: bool
    pause: tuple[int, int] | None
    """The pause it lies in (start, end in samples), None where there was none."""

    @property
    def at_s(self) -> float:
        return self.at / AUDIO_SAMPLE_RATE


def window_levels(samples: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each 20 ms window (-120 for digital silence)."""
    count = samples.size // WINDOW
    frames = samples[: count * WINDOW].reshape(count, WINDOW)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def find_pauses(levels: np.ndarray, threshold_db: float) -> list[tuple[int, int]]:
    """Runs of windows below threshold_db, at least MIN_PAUSE_S long, as (first, end) window indices."""
    quiet = np.concatenate([[False], levels < threshold_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    shortest = math.ceil(MIN_PAUSE_S * AUDIO_SAMPLE_RATE / WINDOW)
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= shortest]


def quietest_stretch(levels: np.ndarray, first: int, end: int) -> int:
    """The window index at the middle of the quietest QUIET_STRETCH_S between windows first and end."""
    span = max(1, round(QUIET_STRETCH_S * AUDIO_SAMPLE_RATE / WINDOW))
    power = 10.0 ** (levels[first:end] / 10.0)
    if power.size <= span:
        return (first + end) // 2
    sums = np.convolve(power, np.ones(span), mode="valid")
    return first + int(np.argmin(sums)) + span // 2


def _frame_window(index: float, lo: int, hi: int) -> int:
    """A window index rounded to a video frame's boundary, kept within [lo, hi] (both on boundaries)."""
    return min(hi, max(lo, round(index / WINDOWS_PER_FRAME) * WINDOWS_PER_FRAME))


def plan_cuts(samples: np.ndarray, part_s: float, min_part_s: float) -> tuple[list[Cut], list[str]]:
    """Where to cut speech so every part is at most part_s and at least min_part_s long; and the warnings.

    Each cut aims at an equal share of what is left; among the pauses whose middle lies within NEAR_FRACTION of a
    part of that target, the longest wins (else the longest anywhere a cut may go), and the cut lies in its
    quietest 100 ms. Where the speech has no pause a cut may go, the quietest 100 ms there is cut instead, and a
    warning says where.
    """
    levels = window_levels(samples)
    total = levels.size  # windows; a tail shorter than one window stays in the last part
    level = speech_level(samples)
    threshold = (level if math.isfinite(level) else -120.0) - PAUSE_BELOW_DB
    pauses = find_pauses(levels, threshold)
    per_s = AUDIO_SAMPLE_RATE / WINDOW
    longest, floor = part_s * per_s, min_part_s * per_s
    cuts: list[Cut] = []
    warnings: list[str] = []
    start = 0
    while samples.size - start * WINDOW > part_s * AUDIO_SAMPLE_RATE:
        left = total - start
        target = start + left / math.ceil(left / longest)
        lo = math.ceil((start + floor) / WINDOWS_PER_FRAME) * WINDOWS_PER_FRAME
        hi = math.floor(min(start + longest, total - floor) / WINDOWS_PER_FRAME) * WINDOWS_PER_FRAME
        lo = min(lo, hi)
        # A cut before `fits` leaves more than the remaining parts can hold: one part more than needed.
        fits = math.ceil((total - (math.ceil(left / longest) - 1) * longest) / WINDOWS_PER_FRAME) * WINDOWS_PER_FRAME
        chosen = None
        for low in dict.fromkeys((min(max(lo, fits), hi), lo)):
            inside = [(max(a, low), min(b, hi)) for a, b in pauses if a < hi and b > low]
            inside = [(a, b) for a, b in inside if b - a >= MIN_PAUSE_S * per_s]
            near = [(a, b) for a, b in inside if abs((a + b) / 2 - target) <= NEAR_FRACTION * longest]
            chosen = max(near or inside, key=lambda p: (p[1] - p[0], -abs((p[0] + p[1]) / 2 - target)), default=None)
            if chosen is not None:
                break
        lo = min(max(lo, fits), hi) if chosen is None else lo
        if chosen is not None:
            at = _frame_window(quietest_stretch(levels, *chosen), max(lo, chosen[0]), min(hi, chosen[1]))
            cut = Cut(at * WINDOW, True, (chosen[0] * WINDOW, chosen[1] * WINDOW))
        else:
            band = max(lo, int(target - NEAR_FRACTION * longest)), min(hi, int(target + NEAR_FRACTION * longest))
            at = _frame_window(quietest_stretch(levels, *band), lo, hi)
            cut = Cut(at * WINDOW, False, None)
            warnings.append(
                f"no pause between {lo / per_s:.1f} s and {hi / per_s:.1f} s of the speech: cut at its quietest "
                f"100 ms, {cut.at_s:.2f} s, which may fall inside a word"
            )
        cuts.append(cut)
        start = at
    return cuts, warnings


def part_bounds(total_samples: int, cuts: list[Cut]) -> list[tuple[int, int]]:
    """(start, end) in samples of each part between the cuts."""
    edges = [0, *(cut.at for cut in cuts), total_samples]
    return list(itertools.pairwise(edges))


SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def split_text(text: str, part_s: float) -> list[str]:
    """TTS text cut at sentence ends into parts each spoken in about part_s or less (CHARS_PER_S, with a fifth
    to spare); `(s1)`/`(s2)` tags are kept, so each part's lines stay with their person. A sentence longer than a
    part stays whole (it is never cut inside)."""
    budget = part_s * CHARS_PER_S * 0.8
    sentences = [
        (speaker, sentence)
        for speaker, words in tts_turns(text)
        for sentence in SENTENCE_END.split(words)
        if sentence.strip()
    ]
    parts: list[list[tuple[int, str]]] = [[]]
    for speaker, sentence in sentences:
        size = sum(len(words) for _, words in parts[-1])
        if parts[-1] and size + len(sentence) > budget:
            parts.append([])
        parts[-1].append((speaker, sentence))
    two = any(speaker == 2 for speaker, _ in sentences)
    texts = []
    for part in parts:
        lines: list[tuple[int, str]] = []
        for speaker, sentence in part:
            tag = f"(s{speaker}) " if two and (not lines or lines[-1][0] != speaker) else ""
            lines.append((speaker, f"{tag}{sentence}"))
        texts.append(" ".join(words for _, words in lines))
    return texts


def silent(samples: np.ndarray) -> bool:
    """Whether a person says nothing in this slice (below worker.audio's SILENCE_FLOOR_DB): the fan-out sends such
    a part with the other person alone, since the worker refuses a person's silent speech."""
    return speech_level(samples) < SILENCE_FLOOR_DB


def slice_wav(samples: np.ndarray, start: int, end: int) -> bytes:
    """One part's slice of a 16 kHz track as the bytes of a 16-bit WAV (what the worker decodes losslessly), the
    samples converted as worker.media.write_wav does; in memory, since they go straight to the store (a file
    written and read back cost a disk round trip per person and part)."""
    pcm = (np.clip(samples[start:end], -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(AUDIO_SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def slice_video(source: Path, start_s: float, duration_s: float, out: Path) -> Path:
    """The part's time slice of the input video, re-encoded so it starts on its own first frame; the video plays
    again from its start where the speech outlasts it (`-stream_loop`), so every part has motion to follow."""
    run_ffmpeg(
        ["-stream_loop", "-1", "-ss", f"{start_s:.3f}", "-i", str(source), "-t", f"{duration_s:.3f}", "-an",
         "-map_metadata", "-1", *x264_args(18), "-movflags", "+faststart", str(out)],
        at_stage=Stage.VALIDATION_STARTED,
        what="cond_video: cutting the part's slice of the video",
    )  # fmt: skip
    return out


@dataclass(frozen=True)
class StreamSignature:
    """What must match for H.264 streams to be joined by copying: codec, profile, pixel format, size, frame rate
    and the decoder set-up (extradata: SPS/PPS), which the concat demuxer takes from the first file alone."""

    codec: str
    profile: str
    pix_fmt: str
    width: int
    height: int
    rate: str
    extradata: str
    frames: int


def video_signature(path: Path) -> StreamSignature:
    """The first video stream's StreamSignature, by ffprobe (E_FFMPEG when the file has no readable video)."""
    entries = "stream=codec_name,profile,pix_fmt,width,height,avg_frame_rate,nb_frames,extradata"
    command = [FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-show_data",
               "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "json", str(path)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    streams = json.loads(done.stdout or b"{}").get("streams") if done.returncode == 0 else None
    if not streams:
        what = f"joining the parts: {path.name} holds no video"
        raise JobError(ErrorCode.FFMPEG, what, at_stage=Stage.MUXING_STARTED)
    s = streams[0]
    return StreamSignature(
        codec=str(s.get("codec_name")),
        profile=str(s.get("profile")),
        pix_fmt=str(s.get("pix_fmt")),
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        rate=str(s.get("avg_frame_rate")),
        extradata=str(s.get("extradata", "")),
        frames=int(s.get("nb_read_packets") or s.get("nb_frames") or 0),
    )


BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]
"""No creation time or encoder version in the joined file: joining the same parts twice gives the same bytes."""
CONCAT_GUARD = ["-protocol_whitelist", "file", "-format_whitelist", "concat,mov"]
"""Before each concat input of the join: the list names only local files, each an MP4 (the parts' videos, which
the concat demuxer opens with the same whitelists), as the guard before a job's media does."""
PROBE_THREADS = 4
"""The parts are probed this many at a time: each ffprobe mostly waits on its start and its file."""


def video_signatures(paths: list[Path]) -> list[StreamSignature]:
    """video_signature of every file, probed a few at a time (PROBE_THREADS), in the files' order."""
    with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
        return list(pool.map(video_signature, paths))


def encode_soundtrack(speech: Path, out: Path) -> Path:
    """The speech encoded once as the published soundtrack (AAC_ARGS, bit-exact) in an M4A, which the join then
    copies beside the video. Made apart from the join so the client can encode it while the parts render
    (client/fanout.py): it is most of the join's work (about 4 s of CPU for 3 minutes of speech). The same speech
    always gives the same bytes, so a join with a soundtrack encoded earlier equals one that encodes it itself."""
    run_ffmpeg(
        ["-i", str(speech), "-map", "0:a:0", "-vn", *AAC_ARGS, *BITEXACT, str(out)],
        at_stage=Stage.MUXING_STARTED,
        what="encoding the speech for the joined video",
    )
    return out


@dataclass(frozen=True)
class Joined:
    """The joined video and how it was made."""

    path: Path
    frames: int
    duration_s: float
    reencoded: tuple[int, ...]
    """The parts (0-based) encoded unlike the first, which made every part be re-encoded; empty when every part
    was copied as it was."""
    width: int = 0
    height: int = 0

    @property
    def note(self) -> str | None:
        """What the run's warnings say about a re-encode, None when every part was copied as it was."""
        if not self.reencoded:
            return None
        names = ", ".join(str(index + 1) for index in self.reencoded)
        return f"part(s) {names} were encoded unlike part 1, so every part was re-encoded to join them"


def join_videos(
    parts: list[Path], out: Path, work_dir: Path, soundtrack: Path | None, *, encoded: Path | None = None
) -> Joined:
    """Join the parts' videos into out: their frames copied without re-encoding where each part's encoding matches
    the first's (re-encoded to it where not), then `soundtrack` muxed once over the whole (the parts' own sound is
    dropped), or, without one, the parts' own sound joined and encoded once. `encoded` is the soundtrack already
    encoded by encode_soundtrack (else it is encoded here).

    A part's container is as long as its longer stream (AAC adds a few ms), and the concat demuxer would offset
    each part by that length, shifting the picture against the sound at every join: the list gives each part's
    duration as its frames (`duration` lines), so the parts' video streams are copied in one ffmpeg call straight
    from the parts. The soundtrack, already AAC, is copied with its own timestamps (`-copyts`: otherwise ffmpeg
    shifts the picture by the encoder's 1024 priming samples). Deterministic: the same parts give the same bytes
    (BITEXACT).
    """
    if not parts:
        raise JobError(ErrorCode.FFMPEG, "joining the parts: there are no parts", at_stage=Stage.MUXING_STARTED)
    work_dir.mkdir(parents=True, exist_ok=True)
    signatures = video_signatures(parts)
    first = signatures[0]
    differ = tuple(i for i, s in enumerate(signatures) if {**vars(s), "frames": 0} != {**vars(first), "frames": 0})
    listing = work_dir / "join.txt"
    if differ:
        # The concat demuxer gives every part the first one's decoder set-up: where any part differs, every part
        # is re-encoded alike (to the first one's size), so that one set-up fits them all.
        scale = ["-vf", f"scale={first.width}:{first.height},setsar=1,fps={FPS}", *x264_args(20)]
        pieces = []
        for index, part in enumerate(parts):
            piece = work_dir / f"join-{index:03d}.mp4"
            run_ffmpeg(
                ["-i", str(part), "-map", "0:v:0", *scale, *BITEXACT, str(piece)],
                at_stage=Stage.MUXING_STARTED,
                what=f"joining part {index + 1}",
            )
            pieces.append(piece)
        listing.write_text("".join(f"file '{piece.resolve()}'\n" for piece in pieces), encoding="utf-8")
    else:
        listing.write_text(
            "".join(
                f"file '{part.resolve()}'\nduration {signature.frames / FPS:.6f}\n"
                for part, signature in zip(parts, signatures, strict=True)
            ),
            encoding="utf-8",
        )
    concat = [*CONCAT_GUARD, "-f", "concat", "-safe", "0", "-i", str(listing)]
    if soundtrack is not None:
        aac = encoded or encode_soundtrack(soundtrack, work_dir / "speech.m4a")
        sound = [*CONCAT_GUARD[:2], "-format_whitelist", "mov", "-i", str(aac.resolve())]
        codecs = ["-c", "copy", "-copyts"]
    else:
        audio_list = work_dir / "join-audio.txt"
        audio_list.write_text("".join(f"file '{part.resolve()}'\n" for part in parts), encoding="utf-8")
        sound = [*CONCAT_GUARD, "-f", "concat", "-safe", "0", "-i", str(audio_list)]
        codecs = ["-c:v", "copy", *AAC_ARGS]
    run_ffmpeg(
        [*concat, *sound, "-map", "0:v:0", "-map", "1:a:0", *codecs, *BITEXACT, "-movflags", "+faststart",
         str(out)],
        at_stage=Stage.MUXING_STARTED,
        what="joining the parts' videos",
        own_files=True,  # guarded by CONCAT_GUARD: the concat demuxer is not among a job's media's demuxers
    )  # fmt: skip
    made = video_signature(out)
    return Joined(out, made.frames, made.frames / FPS, differ, made.width, made.height)


@dataclass(frozen=True)
class SpeechTracks:
    """The whole speech as the worker prepares it: the mix the video is muxed with, and each person's track."""

    mix: np.ndarray
    tracks: list[np.ndarray]
    soundtrack: Path
    warnings: list[str]


def speech_tracks(params: JobParams, speech: list[Path], work_dir: Path) -> SpeechTracks:
    """Decode, check, loudness-normalise and lay out the people's speech exactly as the worker does
    (worker.audio.prepare_audio), over its whole length: the split cuts the mix and slices each person's track, and
    the joined video is muxed with the mix, so the parts' own loudness normalisation never reaches the sound."""
    whole = params.model_copy(update={"mode": "streaming", "max_frame_num": Limits.MAX_STREAMING_FRAMES})
    prepared = prepare_audio(whole, speech, work_dir)
    length = round(prepared.source_duration_s * AUDIO_SAMPLE_RATE)
    tracks = [speaker.samples[:length] for speaker in prepared.speakers]
    mix = np.sum(tracks, axis=0) if len(tracks) > 1 else tracks[0]
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    mix = (mix * (0.99 / peak) if peak > 0.99 else mix).astype(np.float32)
    return SpeechTracks(mix, tracks, write_wav(work_dir / "speech.wav", mix), prepared.warnings)
