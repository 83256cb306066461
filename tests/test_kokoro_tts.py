"""Kokoro-82M's real code (InfiniteTalk's kokoro/ package: KModel, KPipeline) speaking a job's turns, on a tiny
random model whose every phoneme lasts 2 frames of 25 ms (worker/selftest/tiny_kokoro.py), with misaki's
espeak-ng G2P, offline. How long each turn is spoken therefore follows from its phoneme count, and the tests
check that the worker lays those turns out, pauses, resamples and levels them as it does espeak-ng's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.contract import AUDIO_SAMPLE_RATE, TARGET_LOUDNESS_DB, ErrorCode, JobError, JobParams, Stage
from core.settings import Settings
from tests.conftest import EXAMPLES
from worker.audio import SAMPLES_PER_FRAME, prepare_audio, speech_level, voice_sample
from worker.media import decode_audio
from worker.pipeline import run_job
from worker.selftest.cpu import has_module
from worker.speech_engines import load_speech_engine

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(os.environ.get("INFINITETALK_SRC") or ROOT.parent / "shared" / "infinitetalk-src")
PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")
FRAMES_PER_PHONEME = 2
PAUSE = AUDIO_SAMPLE_RATE // 5
"""The worker's 0.2 s pause after every turn (audio.tts_tracks)."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SRC / "kokoro" / "pipeline.py").exists(), reason=f"no InfiniteTalk source at {SRC}"),
    pytest.mark.skipif(not (has_module("torch") and has_module("misaki")), reason="needs requirements-ml-tests.txt"),
]


@pytest.fixture(scope="module")
def kokoro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worker.selftest.tiny_kokoro import build_tiny_kokoro

    return build_tiny_kokoro(tmp_path_factory.mktemp("kokoro") / "Kokoro-82M", SRC, FRAMES_PER_PHONEME)


@pytest.fixture(scope="module")
def speaker(kokoro_dir: Path) -> Any:
    from worker.kokoro_tts import KokoroSpeech

    return KokoroSpeech.load(kokoro_dir, SRC, g2p="espeak")


def expected_samples(text: str, language: str = "en-us") -> int:
    """A turn's length at 16 kHz: (phonemes + Kokoro's start and end tokens) x 2 frames x 600 samples at 24 kHz,
    resampled, with the phonemes from the G2P the pipeline uses (misaki's EspeakG2P), each in the tiny vocab."""
    from misaki.espeak import EspeakG2P

    from worker.selftest.tiny_kokoro import SAMPLES_PER_FRAME as KOKORO_SAMPLES_PER_FRAME
    from worker.selftest.tiny_kokoro import phoneme_symbols

    phonemes, _ = EspeakG2P(language=language)(text)
    assert phonemes and set(phonemes) <= set(phoneme_symbols()), phonemes
    at_24k = (len(phonemes) + 2) * FRAMES_PER_PHONEME * KOKORO_SAMPLES_PER_FRAME
    return round(at_24k * AUDIO_SAMPLE_RATE / 24_000)


def tts_job(**tts: Any) -> JobParams:
    return JobParams.model_validate({"prompt": "p", "cond_video": PORTRAIT, "tts_audio": tts})


DIALOGUE = {
    "text": "(s1) Hello there, how are you? (s2) Fine, thanks. (s1) Good!",
    "human1_voice": "bm_george",
    "human2_voice": "af_bella",
}
TURNS = [("Hello there, how are you?", "en-gb"), ("Fine, thanks.", "en-us"), ("Good!", "en-gb")]


@pytest.fixture(scope="module")
def dialogue(speaker: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return prepare_audio(tts_job(**DIALOGUE), [], tmp_path_factory.mktemp("dialogue"), speaker)


def spans() -> list[tuple[int, int]]:
    """Each turn's (start, end) sample in the tracks: its speech, then the pause."""
    bounds, start = [], 0
    for text, language in TURNS:
        length = expected_samples(text, language)
        bounds.append((start, start + length))
        start += length + PAUSE
    return bounds


def test_each_turn_lasts_as_long_as_kokoro_speaks_its_phonemes_followed_by_the_pause(dialogue: Any) -> None:
    one, two = (speaker.samples for speaker in dialogue.speakers)
    (a0, a1), (b0, b1), (c0, c1) = spans()
    end = c1 + PAUSE
    assert dialogue.source_duration_s == pytest.approx(end / AUDIO_SAMPLE_RATE, abs=0.001)
    assert abs(dialogue.num_frames - end / SAMPLES_PER_FRAME) <= 0.5 + 1e-9
    assert one.size == two.size == dialogue.num_frames * SAMPLES_PER_FRAME
    # Person 1 speaks turns 1 and 3, person 2 turn 2; each is silent while the other speaks and in the pauses.
    # A ms of slack at each edge for the resampler's rounding.
    edge = 16
    for track, (start, stop) in ((one, (a0, a1)), (two, (b0, b1)), (one, (c0, c1))):
        assert speech_level(track[start:stop]) > -40
    assert not np.any(two[a0 : b0 - edge])
    assert not np.any(one[a1 + edge : c0 - edge])
    assert not np.any(two[b1 + edge :]) and not np.any(one[c1 + edge :])


def test_each_persons_speech_is_levelled_to_the_target_loudness(dialogue: Any) -> None:
    for speaker in dialogue.speakers:
        assert speech_level(speaker.samples) == pytest.approx(TARGET_LOUDNESS_DB, abs=1.0)
        assert float(np.max(np.abs(speaker.samples))) <= 0.99
    soundtrack = decode_audio(dialogue.soundtrack, field="soundtrack", max_seconds=60)
    assert soundtrack.size == dialogue.num_frames * SAMPLES_PER_FRAME
    mixed = dialogue.speakers[0].samples + dialogue.speakers[1].samples
    assert float(np.max(np.abs(soundtrack - mixed))) < 2e-4, "the soundtrack is the two tracks (16-bit PCM)"


def test_the_two_voices_speak_differently(speaker: Any, tmp_path: Path) -> None:
    first = speaker.speak("Good morning.", "am_adam", tmp_path / "adam.wav", "tts_audio.human1_voice")
    second = speaker.speak("Good morning.", "af_heart", tmp_path / "heart.wav", "tts_audio.human2_voice")
    assert first.size == second.size == expected_samples("Good morning.")
    assert float(np.abs(first - second).mean()) > 1e-3


def test_an_unknown_voice_is_refused_before_anything_is_spoken(speaker: Any, tmp_path: Path) -> None:
    from worker.audio import tts_tracks

    for voices, field, hint in (
        ({"human1_voice": "af_hearts"}, "tts_audio.human1_voice", "did you mean af_heart"),
        ({"human1_voice": "am_adam", "human2_voice": "en-us+m3"}, "tts_audio.human2_voice", "its voices are"),
    ):
        with pytest.raises(JobError) as caught:
            tts_tracks(tts_job(text="(s1) Hi. (s2) Hello.", **voices), tmp_path, speaker)
        assert caught.value.code == ErrorCode.INPUT_VALIDATION
        assert caught.value.message.startswith(f"{field}: Kokoro has no voice") and hint in caught.value.message
        assert not list(tmp_path.iterdir()), "nothing was spoken"


def test_a_voice_preview_is_spoken_by_kokoro_as_a_16_khz_wav(speaker: Any, tmp_path: Path) -> None:
    from worker.audio import VOICE_SAMPLE_TEXT

    wav = voice_sample("bf_emma", "tts_audio.human1_voice", speaker)
    (tmp_path / "sample.wav").write_bytes(wav)
    decoded = decode_audio(tmp_path / "sample.wav", field="sample", max_seconds=30)
    assert wav[:4] == b"RIFF" and decoded.size == expected_samples(VOICE_SAMPLE_TEXT, "en-gb")
    with pytest.raises(JobError) as caught:
        voice_sample("en-us+f3", "tts_audio.human2_voice", speaker)
    assert caught.value.message.startswith("tts_audio.human2_voice: Kokoro has no voice 'en-us+f3'")


def test_misaki_english_g2p_without_its_spacy_model_is_refused_at_load(kokoro_dir: Path) -> None:
    from worker.kokoro_tts import KokoroSpeech, spacy_model_installed

    if spacy_model_installed():
        pytest.skip("en_core_web_sm is installed here (as in the GPU image): misaki's G2P loads")
    with pytest.raises(JobError) as caught:
        KokoroSpeech.load(kokoro_dir, SRC, g2p="misaki")
    assert caught.value.code == ErrorCode.PIPELINE_LOAD and caught.value.at_stage == Stage.AUDIO_STARTED
    assert "en_core_web_sm is not installed" in caught.value.message
    assert "STUDIO_KOKORO_G2P=espeak" in caught.value.message


def test_a_tts_job_speaks_with_kokoro_through_the_worker(settings: Settings, kokoro_dir: Path) -> None:
    kokoro = settings.with_(
        tts_engine="kokoro", kokoro_dir=kokoro_dir, kokoro_g2p="espeak", weights={"INFINITETALK_SRC": str(SRC)}
    )
    job = {"prompt": "p", "cond_video": PORTRAIT, "tts_audio": {"text": "Nice to meet you.", "human1_voice": "af_sky"}}
    output = run_job(job, "job-1", settings=kokoro, sink=lambda _: None)
    assert output["status"] == "success", output
    seconds = (expected_samples("Nice to meet you.") + PAUSE) / AUDIO_SAMPLE_RATE
    assert output["video"]["duration_s"] == pytest.approx(seconds, abs=0.041)
    assert list(kokoro.work_root.iterdir()) == [], "the job's temp files are gone"
    assert load_speech_engine(kokoro) is load_speech_engine(kokoro), "Kokoro is loaded once per process"
