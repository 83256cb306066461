"""Preparing a job's speech: decode, resample, loudness-normalise, lay out one or two speakers, or synthesise.

The result is one soundtrack (what the video is muxed with) plus one track per person, each as long as the
soundtrack with silence where that person does not speak, so an engine can animate each face from its own track.
"""

from __future__ import annotations

import difflib
import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from core.contract import (
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
from worker.kokoro_tts import KOKORO_CATALOGUE, KokoroCatalogue
from worker.media import decode_audio, write_wav
from worker.prepared import Speaker

SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // FPS
SILENCE_FLOOR_DB = -60.0
"""Speech whose speech_level is below this is silence: left unamplified, and refused as a person's speech.

Measured with speech_level (dBFS): examples/media/speech_1.wav -17.2, speech_2.wav -20.3, an espeak-ng sentence
-17.8, the same speech scaled down to -40 dB -40.0; digital silence -inf, 1-LSB 16-bit dither -91.9, steady
noise at -70 / -60 dB RMS -69.7 / -59.8. Nothing below -60 dB is speech anyone could hear once raised by at most
MAX_GAIN_DB; a muted or unplugged microphone lands far below it. A level cannot tell steady room noise from
speech: noise at -50 dB RMS (measured -49.7) passes as very quiet speech, with the QUIET_SPEECH_DB warning."""
QUIET_SPEECH_DB = -35.0
"""Speech whose speech_level is below this is accepted with a warning: it needs more than 12 dB of gain to reach
TARGET_LOUDNESS_DB (-23), 15-18 dB below the example recordings, and the room's noise is raised with it. A
-40 dB recording (measured -40.0) is warned about; a normal close-microphone recording (-17 to -20) is not."""
MAX_GAIN_DB = 30.0
ESPEAK = "espeak-ng"
SILENT_SPEECH_FIX = "record again closer to the microphone, and check that it is not muted"


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


def speech_level(samples: np.ndarray) -> float:
    """The level of speech in dBFS: the mean power of the louder half of its 20 ms windows (-inf for silence).

    Pauses do not drag it down (a cheap stand-in for the gated loudness InfiniteTalk's pyloudnorm call measures).
    It is the one measure behind loudness normalisation, the silent-speech refusal and the too-quiet warning, in
    the worker and on the dashboard alike.
    """
    if samples.size == 0:
        return float("-inf")
    window = AUDIO_SAMPLE_RATE // 50
    usable = samples[: samples.size - samples.size % window] if samples.size >= window else samples
    frames = usable.reshape(-1, window) if usable.size >= window else usable.reshape(1, -1)
    levels = np.mean(np.square(frames, dtype=np.float64), axis=1)
    power = float(np.mean(np.sort(levels)[len(levels) // 2 :]))
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


def describe_level(level_db: float) -> str:
    """A level for a message: "-42 dB", or "no sound at all" for digital silence."""
    return "no sound at all" if level_db == float("-inf") else f"{level_db:.0f} dB"


def check_audible(samples: np.ndarray, field_name: str) -> float:
    """A person's speech level; silent speech is refused (see SILENCE_FLOOR_DB), since it animates nothing."""
    level = speech_level(samples)
    if level < SILENCE_FLOOR_DB:
        raise _invalid(
            field_name,
            f"the speech is silent ({describe_level(level)}, below {SILENCE_FLOOR_DB:.0f} dB): {SILENT_SPEECH_FIX}",
        )
    return level


def quiet_gain_db(level_db: float) -> float | None:
    """How much normalisation will raise speech this quiet (see QUIET_SPEECH_DB); None when it is loud enough."""
    if level_db >= QUIET_SPEECH_DB or level_db < SILENCE_FLOOR_DB:
        return None
    return min(TARGET_LOUDNESS_DB - level_db, MAX_GAIN_DB)


def normalise_loudness(samples: np.ndarray, target_db: float = TARGET_LOUDNESS_DB) -> np.ndarray:
    """Scale speech so its voiced part (speech_level) sits at target_db, without clipping or boosting silence."""
    if samples.size == 0:
        return samples
    level = speech_level(samples)
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


@dataclass(frozen=True)
class Voice:
    """One espeak-ng voice or variant, as `espeak-ng --voices` lists it."""

    name: str
    """What `-v` takes: a language code (`en-us`) for a voice, the variant file's name (`f3`) for a variant."""
    description: str
    gender: str
    aliases: tuple[str, ...] = ()
    """Other names `-v` resolves to this voice: its file (`gmw/en-US`) and its other languages (`en`)."""
    ranks: tuple[int, ...] = ()
    """Each alias's priority (lower wins), as espeak-ng picks among voices sharing a language (`en`: en-gb)."""


@dataclass(frozen=True)
class VoiceCatalogue:
    """The voices and variants this machine's espeak-ng has; `voice+variant` names one of each."""

    voices: tuple[Voice, ...]
    variants: tuple[Voice, ...]

    def base_names(self) -> dict[str, str]:
        """Every name a base voice answers to, lower-cased (espeak-ng matches languages case-blind), to its code."""
        ranked = sorted(
            (rank, alias.lower(), voice.name)
            for voice in self.voices
            for alias, rank in zip(voice.aliases, voice.ranks, strict=True)
        )
        names: dict[str, str] = {}
        for _, alias, code in ranked:
            names.setdefault(alias, code)
        names.update({voice.name.lower(): voice.name for voice in self.voices})
        return names

    def refusal(self, name: str) -> str | None:
        """Why espeak-ng would not speak with `name` as asked (None when it would), with the closest names.

        espeak-ng refuses an unknown base voice only when nothing resembles it: `en-ux` quietly becomes `en`,
        and an unknown (or wrongly cased) variant quietly becomes none, so the job would speak in a voice
        nobody chose. Variant files are case-sensitive (`+f3`, `+Alex`); languages are not (`en-US`).
        """
        base, plus, variant = name.partition("+")
        bases = self.base_names()
        if base.lower() not in bases:
            close = difflib.get_close_matches(base.lower(), list(bases), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            return f"espeak-ng has no voice {base!r}; {hint}list voices with `espeak-ng --voices`"
        known = [v.name for v in self.variants]
        if plus and variant not in known:
            close = difflib.get_close_matches(variant, known, n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(f'{base}+{c}' for c in close)}? " if close else ""
            return f"espeak-ng has no voice variant {variant!r}; {hint}list variants with `espeak-ng --voices=variant`"
        return None

    def offered(self) -> list[str]:
        """The names a form offers: the contract's defaults, each base voice, then each English variant."""
        names = [Defaults.TTS_VOICE_1, Defaults.TTS_VOICE_2]
        names += [v.name for v in self.voices]
        names += [f"en-us+{v.name}" for v in self.variants]
        return list(dict.fromkeys(names))

    def describe(self, name: str) -> str:
        """A voice name in words for a list: `en-us+f3 · English (America), variant f3 (female)`."""
        base, plus, variant = name.partition("+")
        voice = next((v for v in self.voices if v.name == self.base_names().get(base.lower())), None)
        words = voice.description if voice else base
        if plus:
            found = next((v for v in self.variants if v.name == variant), None)
            words += f", variant {found.description if found else variant}"
            gender = {"F": "female", "M": "male"}.get(found.gender if found else "", "")
            words += f" ({gender})" if gender and gender not in words else ""
        return f"{name} · {words}"


def _parse_voices(listing: str, variant: bool) -> tuple[Voice, ...]:
    """Rows of `espeak-ng --voices[=variant]`: Pty, Language, Age/Gender, VoiceName, File, Other Languages."""
    voices = []
    for line in listing.splitlines()[1:]:
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or not parts[0].isdigit():
            continue
        rank, language, gender, title, path = int(parts[0]), parts[1], parts[2].rpartition("/")[2], parts[3], parts[4]
        description = title.replace("_", " ")
        if variant:
            voices.append(Voice(path.rpartition("/")[2], description, gender))
            continue
        others = re.findall(r"\((\S+) (\d+)\)", parts[5] if len(parts) > 5 else "")
        aliases = (path, *(alias for alias, _ in others))
        voices.append(Voice(language, description, gender, aliases, (rank, *(int(r) for _, r in others))))
    return tuple(voices)


@functools.cache
def voice_catalogue(engine: str = "espeak") -> VoiceCatalogue | KokoroCatalogue:
    """The voices `engine` speaks: this machine's espeak-ng voices, listed once per process (the list changes only
    with the package), or Kokoro's (`engine="kokoro"`: a fixed list, worker/kokoro_tts.py, the same on any machine).

    The dashboard offers the same list: locally it shares the worker's machine, and the RunPod worker image installs
    the same espeak-ng package, so the list is a fair offer there too. MBROLA voices (`mb-*`) are left out: they
    need MBROLA's own voice files, which neither installs. Raises JobError(E_PIPELINE_LOAD) without espeak-ng.
    """
    if engine == "kokoro":
        return KOKORO_CATALOGUE
    if engine != "espeak":
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            f"{engine!r} is not a speech engine: use espeak or kokoro",
            at_stage=Stage.AUDIO_STARTED,
        )
    listings = []
    for flag in ("--voices", "--voices=variant"):
        try:
            done = subprocess.run([ESPEAK, flag], capture_output=True, timeout=30, check=True)
        except (FileNotFoundError, subprocess.SubprocessError):
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                "tts_audio: espeak-ng is not installed on this worker (apt-get install espeak-ng)",
                at_stage=Stage.AUDIO_STARTED,
            ) from None
        listings.append(done.stdout.decode("utf-8", "replace"))
    voices = tuple(v for v in _parse_voices(listings[0], variant=False) if not v.name.startswith("mb-"))
    return VoiceCatalogue(voices, _parse_voices(listings[1], variant=True))


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


class SpeechEngine(Protocol):
    """What speaks tts_audio: espeak-ng (EspeakSpeech, here) or Kokoro (worker.kokoro_tts.KokoroSpeech);
    worker.speech_engines.load_speech_engine picks one from the settings."""

    name: str
    default_voices: tuple[str, str]
    """Person 1's and person 2's voice when the job names none."""

    def refusal(self, voice: str) -> str | None:
        """Why this engine cannot speak with `voice` (None when it can)."""

    def speak(self, text: str, voice: str, out_path: Path, field_name: str) -> np.ndarray:
        """Speak text into out_path and return the speech decoded at 16 kHz."""


class EspeakSpeech:
    """espeak-ng: the CPU and preview default, on every machine the worker runs on."""

    name = "espeak"
    default_voices = (Defaults.TTS_VOICE_1, Defaults.TTS_VOICE_2)

    def refusal(self, voice: str) -> str | None:
        return voice_catalogue().refusal(voice)

    def speak(self, text: str, voice: str, out_path: Path, field_name: str) -> np.ndarray:
        return synthesise(text, voice, out_path, field_name)


VOICE_SAMPLE_TEXT = "Hello! This is how I sound."


def voice_sample(voice: str, field_name: str = "tts_audio.human1_voice", speaker: SpeechEngine | None = None) -> bytes:
    """A short sentence spoken by `voice`, as WAV bytes, to hear a voice before choosing it (the form's preview);
    espeak-ng unless another loaded speech engine is given.

    The voice is checked as a job's is, so a preview never plays espeak-ng's fallback under the asked-for name.
    """
    speaker = speaker or EspeakSpeech()
    if (refusal := speaker.refusal(voice)) is not None:
        raise _invalid(field_name, refusal)
    with tempfile.TemporaryDirectory(prefix="studio-voice-") as folder:
        out = Path(folder) / "sample.wav"
        samples = speaker.speak(VOICE_SAMPLE_TEXT, voice, out, field_name)
        if speaker.name == "espeak":
            return out.read_bytes()
        return write_wav(Path(folder) / "sample_16k.wav", samples).read_bytes()


def turn_voices(params: JobParams, speaker: SpeechEngine) -> dict[int, tuple[str, str]]:
    """Each person's voice and its field: as the job names it, else the engine's default for that person.

    A job that names no human1_voice gets the contract's default, which is an espeak-ng name; Kokoro speaks its
    own default (am_adam) instead, as InfiniteTalk's app does, rather than refusing a name nobody chose.
    """
    assert params.tts_audio is not None
    tts = params.tts_audio
    named_first = "human1_voice" in tts.model_fields_set
    return {
        1: (tts.human1_voice if named_first else speaker.default_voices[0], "tts_audio.human1_voice"),
        2: (tts.human2_voice or speaker.default_voices[1], "tts_audio.human2_voice"),
    }


def tts_tracks(params: JobParams, work_dir: Path, speaker: SpeechEngine | None = None) -> list[np.ndarray]:
    """Synthesise the TTS text turn by turn (espeak-ng unless another speech engine is given); each person's
    track is silent during the other's turns, and every turn is followed by a 0.2 s pause.

    Every voice that speaks is checked against the engine's voice list first, so an unknown name is refused with
    the closest names instead of espeak-ng's quiet fallback to another voice.
    """
    assert params.tts_audio is not None
    speaker = speaker or EspeakSpeech()
    tts = params.tts_audio
    turns = tts.turns()  # non-empty and at most Limits.MAX_TTS_TURNS: checked at validation
    voices = turn_voices(params, speaker)
    people = tts.speakers
    for person in sorted({person for person, _ in turns}):
        voice, field_name = voices[person]
        if (refusal := speaker.refusal(voice)) is not None:
            raise _invalid(field_name, refusal)
    tracks: list[list[np.ndarray]] = [[] for _ in range(people)]
    pause = np.zeros(AUDIO_SAMPLE_RATE // 5, np.float32)
    for index, (speaker_number, words) in enumerate(turns):
        voice, field_name = voices[speaker_number]
        spoken = speaker.speak(words, voice, work_dir / f"tts_{index:03d}.wav", field_name)
        spoken = np.concatenate([spoken, pause])
        for person in range(people):
            tracks[person].append(spoken if person + 1 == speaker_number else np.zeros_like(spoken))
    return [np.concatenate(parts) for parts in tracks]


def frames_for(duration_s: float, frame_cap: int) -> int:
    """How many 25 fps frames cover the audio, capped by the job's frame limit."""
    return max(1, min(round(duration_s * FPS), frame_cap))


def prepare_audio(
    params: JobParams, speech: list[Path], work_dir: Path, speaker: SpeechEngine | None = None
) -> PreparedAudio:
    """Build the soundtrack and per-speaker tracks from fetched speech files, or from tts_audio (spoken by
    `speaker`, espeak-ng when None).

    A person's recorded speech that is silent is refused (check_audible), and very quiet speech is warned about.
    """
    quiet: list[str] = []
    if params.tts_audio is not None:
        tracks = [normalise_loudness(track) for track in tts_tracks(params, work_dir, speaker)]
        mix, aligned = (tracks[0], tracks) if len(tracks) == 1 else (np.sum(tracks, axis=0), tracks)
        if float(np.max(np.abs(mix))) > 0.99:
            mix = mix * (0.99 / float(np.max(np.abs(mix))))
    else:
        names = ("cond_audio.person1", "cond_audio.person2")
        tracks = []
        for path, name in zip(speech, names, strict=False):
            decoded = decode_speech(path, name)
            gain = quiet_gain_db(check_audible(decoded, name))
            if gain is not None:
                quiet.append(
                    f"{name}: the speech is very quiet; it was raised by {gain:.0f} dB, with any background noise"
                )
            tracks.append(normalise_loudness(decoded))
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
    warnings = quiet
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
