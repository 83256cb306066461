"""Preparing a job's speech: decode, resample, loudness-normalise, lay out one or two speakers, or synthesise.

The result is one soundtrack (what the video is muxed with) plus one track per person, each as long as the
soundtrack with silence where that person does not speak, so an engine can animate each face from its own track.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.contract import (
    AUDIO_SAMPLE_RATE,
    FPS,
    TARGET_LOUDNESS_DB,
    Defaults,
    ErrorCode,
    JobError,
    JobParams,
    Limits,
    Stage,
)
from worker.media import decode_audio, write_wav
from worker.prepared import Speaker

SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // FPS
SILENCE_FLOOR_DB = -60.0
"""Speech quieter than this overall is treated as silence and left unamplified."""
MAX_GAIN_DB = 30.0
ESPEAK = "espeak-ng"


@dataclass
class PreparedAudio:
    """The soundtrack and per-speaker tracks, cut to the frames the video will have."""

    soundtrack: Path
    speakers: list[Speaker]
    num_frames: int
    source_duration_s: float
    warnings: list[str] = field(default_factory=list)


def _invalid(field_name: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field_name}: {message}", at_stage=Stage.AUDIO_STARTED)


def frame_levels_db(samples: np.ndarray, num_frames: int) -> np.ndarray:
    """RMS level in dBFS of each 40 ms video frame's slice of audio (-120 for digital silence)."""
    padded = np.pad(samples, (0, max(0, num_frames * SAMPLES_PER_FRAME - samples.size)))
    frames = padded[: num_frames * SAMPLES_PER_FRAME].reshape(num_frames, SAMPLES_PER_FRAME)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def normalise_loudness(samples: np.ndarray, target_db: float = TARGET_LOUDNESS_DB) -> np.ndarray:
    """Scale speech so its voiced part sits at target_db, without clipping and without boosting silence.

    The level is measured over the louder half of 20 ms windows, so pauses do not drag the estimate down
    (a cheap stand-in for the gated loudness InfiniteTalk's pyloudnorm call measures).
    """
    if samples.size == 0:
        return samples
    window = AUDIO_SAMPLE_RATE // 50
    usable = samples[: samples.size - samples.size % window] if samples.size >= window else samples
    frames = usable.reshape(-1, window) if usable.size >= window else usable.reshape(1, -1)
    levels = np.mean(np.square(frames, dtype=np.float64), axis=1)
    voiced = np.sort(levels)[len(levels) // 2 :]
    level = 10.0 * np.log10(float(np.mean(voiced))) if float(np.mean(voiced)) > 0 else float("-inf")
    if level < SILENCE_FLOOR_DB:
        return samples.astype(np.float32)
    gain = 10.0 ** (min(target_db - level, MAX_GAIN_DB) / 20.0)
    peak = float(np.max(np.abs(samples))) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (samples * gain).astype(np.float32)


def decode_speech(path: Path, field_name: str) -> np.ndarray:
    """Decode one person's speech to 16 kHz mono and check its length."""
    samples = decode_audio(path, field=field_name, max_seconds=Limits.MAX_AUDIO_SECONDS)
    duration = samples.size / AUDIO_SAMPLE_RATE
    if duration > Limits.MAX_AUDIO_SECONDS:
        raise _invalid(field_name, f"the audio is longer than {Limits.MAX_AUDIO_SECONDS:.0f} s; split it into parts")
    if duration < Limits.MIN_AUDIO_SECONDS:
        raise _invalid(
            field_name,
            f"the audio is {duration:.2f} s long; send at least {Limits.MIN_AUDIO_SECONDS} s of speech",
        )
    if not np.all(np.isfinite(samples)):
        raise _invalid(field_name, "the audio holds invalid samples; re-export it as WAV")
    return samples


def layout_speakers(tracks: list[np.ndarray], audio_type: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mix one or two tracks into a soundtrack and per-speaker tracks of the same length.

    `add`: person 1 speaks, then person 2. `para`: both at once (the soundtrack is their sum).
    """
    if len(tracks) == 1:
        return tracks[0], [tracks[0]]
    first, second = tracks
    if audio_type == "add":
        aligned = [
            np.concatenate([first, np.zeros(second.size, np.float32)]),
            np.concatenate([np.zeros(first.size, np.float32), second]),
        ]
        return np.concatenate([first, second]), aligned
    length = max(first.size, second.size)
    aligned = [np.pad(track, (0, length - track.size)) for track in tracks]
    mix = aligned[0] + aligned[1]
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > 0.99:
        mix = mix * (0.99 / peak)
    return mix.astype(np.float32), aligned


def synthesise(text: str, voice: str, out_path: Path, field_name: str) -> np.ndarray:
    """Speak text with espeak-ng into a WAV and return it decoded at 16 kHz."""
    try:
        done = subprocess.run(
            [ESPEAK, "-v", voice, "-w", str(out_path), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            "tts_audio: espeak-ng is not installed on this worker (apt-get install espeak-ng)",
            at_stage=Stage.AUDIO_STARTED,
        ) from None
    except subprocess.TimeoutExpired:
        raise _invalid("tts_audio.text", "speaking the text took too long; shorten it") from None
    if done.returncode != 0 or not out_path.exists():
        reason = done.stderr.decode("utf-8", "replace").strip() or "espeak-ng failed"
        raise _invalid(field_name, f"{reason} (voice {voice!r}); list voices with `espeak-ng --voices`")
    return decode_audio(out_path, field=field_name, max_seconds=Limits.MAX_AUDIO_SECONDS)


def tts_tracks(params: JobParams, work_dir: Path) -> list[np.ndarray]:
    """Synthesise the TTS text turn by turn; each person's track is silent during the other's turns."""
    assert params.tts_audio is not None
    tts = params.tts_audio
    turns = tts.turns()  # non-empty and at most Limits.MAX_TTS_TURNS: checked at validation
    voices = {
        1: (tts.human1_voice, "tts_audio.human1_voice"),
        2: (tts.human2_voice or Defaults.TTS_VOICE_2, "tts_audio.human2_voice"),
    }
    people = tts.speakers
    tracks: list[list[np.ndarray]] = [[] for _ in range(people)]
    pause = np.zeros(AUDIO_SAMPLE_RATE // 5, np.float32)
    for index, (speaker, words) in enumerate(turns):
        voice, field_name = voices[speaker]
        spoken = synthesise(words, voice, work_dir / f"tts_{index:03d}.wav", field_name)
        spoken = np.concatenate([spoken, pause])
        for person in range(people):
            tracks[person].append(spoken if person + 1 == speaker else np.zeros_like(spoken))
    return [np.concatenate(parts) for parts in tracks]


def frames_for(duration_s: float, frame_cap: int) -> int:
    """How many 25 fps frames cover the audio, capped by the job's frame limit."""
    return max(1, min(round(duration_s * FPS), frame_cap))


def prepare_audio(params: JobParams, speech: list[Path], work_dir: Path) -> PreparedAudio:
    """Build the soundtrack and per-speaker tracks from fetched speech files, or from tts_audio."""
    if params.tts_audio is not None:
        tracks = [normalise_loudness(track) for track in tts_tracks(params, work_dir)]
        mix, aligned = (tracks[0], tracks) if len(tracks) == 1 else (np.sum(tracks, axis=0), tracks)
        if float(np.max(np.abs(mix))) > 0.99:
            mix = mix * (0.99 / float(np.max(np.abs(mix))))
    else:
        names = ("cond_audio.person1", "cond_audio.person2")
        tracks = [normalise_loudness(decode_speech(path, name)) for path, name in zip(speech, names, strict=False)]
        mix, aligned = layout_speakers(tracks, params.audio_type)

    duration = mix.size / AUDIO_SAMPLE_RATE
    if duration > Limits.MAX_AUDIO_SECONDS:
        raise _invalid(
            "cond_audio",
            f"the speech is {duration:.0f} s long in total; the limit is {Limits.MAX_AUDIO_SECONDS:.0f} s",
        )
    cap = params.frame_cap()
    num_frames = frames_for(duration, cap)
    if num_frames < Limits.MIN_FRAME_NUM:
        raise _invalid("cond_audio", f"the speech is {duration:.2f} s long; send at least 0.2 s")
    warnings = []
    if round(duration * FPS) > cap:
        hint = "set mode=streaming for the whole audio" if params.mode == "clip" else "raise max_frame_num"
        warnings.append(
            f"the audio is {duration:.2f} s but {params.mode} mode renders at most {cap} frames "
            f"({cap / FPS:.2f} s): the video and its sound stop there; {hint}"
        )
    length = num_frames * SAMPLES_PER_FRAME
    mix = np.pad(mix, (0, max(0, length - mix.size)))[:length]
    soundtrack = write_wav(work_dir / "soundtrack.wav", mix)
    speakers = []
    for index, track in enumerate(aligned):
        track = np.pad(track, (0, max(0, length - track.size)))[:length].astype(np.float32)
        name = f"person{index + 1}"
        speakers.append(Speaker(name, write_wav(work_dir / f"{name}.wav", track), track))
    return PreparedAudio(soundtrack, speakers, num_frames, round(duration, 3), warnings)
