"""Bad input gets a structured error naming the field and the fix: never a traceback, never a leftover file."""

from __future__ import annotations

import base64
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.contract import AUDIO_SAMPLE_RATE, Defaults, ErrorCode
from core.settings import Settings
from tests.conftest import EXAMPLES
from worker.audio import speech_level, voice_catalogue
from worker.media import decode_audio, write_wav
from worker.pipeline import run_job

PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")
SPEECH = str(EXAMPLES / "media" / "speech_1.wav")


def job(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"prompt": "talk", "cond_video": PORTRAIT, "cond_audio": {"person1": SPEECH}}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def fail(settings: Settings, job_input: Any) -> dict[str, Any]:
    output = run_job(job_input, "bad-1", settings=settings, sink=lambda _: None)
    assert output["status"] == "error", output
    assert set(output["error"]) == {"code", "message", "retryable", "at_stage"}
    if settings.work_root.exists():
        assert list(settings.work_root.iterdir()) == [], "the job's temp dir is removed"
    return output["error"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize(
    ("job_input", "field", "fix"),
    [
        ("not an object", "input", "JSON object"),
        (job(prompt=None), "prompt", "required"),
        (job(frame_num=80), "frame_num", "use 77 or 81"),
        (job(size="4k"), "size", "infinitetalk-480"),
        (job(cond_audio=None), "cond_audio", "no speech given: send recorded speech"),
        (job(tts_audio={"text": "hi"}), "cond_audio", "both given: keep one and remove the other"),
        (job(colour="red"), "colour", "not part of the job schema"),
        (job(sample_steps=0), "sample_steps", "greater than or equal to 1"),
        (job(quant="fp16"), "quant", "'int8' or 'fp8'"),
        (
            job(tts_audio={"text": "hi", "human1_voice": "en; rm -rf /"}, cond_audio=None),
            "tts_audio.human1_voice",
            "voice name",
        ),
        ({"batch": []}, "batch", "at least 1"),
        # Each turn is an espeak-ng and an ffmpeg run: 1000 turns used to run 2000 processes before any check.
        (job(cond_audio=None, tts_audio={"text": "(s1)a(s2)b" * 500}), "tts_audio.text", "at most 100 turns"),
        (job(cond_audio=None, tts_audio={"text": "(S1) a ( s2 )b" * 51}), "tts_audio.text", "102 times"),
        (job(cond_audio=None, tts_audio={"text": "(s1) (s2)"}), "tts_audio.text", "no text to speak"),
    ],
)
def test_an_invalid_payload_names_the_field_and_the_fix(
    settings: Settings, job_input: Any, field: str, fix: str
) -> None:
    error = fail(settings, job_input)

    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert error["retryable"] is False
    assert error["at_stage"] == "validation_started"
    assert field in error["message"] and fix in error["message"]


def test_a_path_outside_the_allowed_roots_is_refused(settings: Settings) -> None:
    error = fail(settings, job(cond_video="/etc/passwd"))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert "cond_video" in error["message"] and "allowed folder" in error["message"]


def test_a_path_escaping_with_dotdot_is_refused(settings: Settings) -> None:
    error = fail(settings, job(cond_video=str(EXAMPLES / ".." / ".." / ".." / "etc" / "hostname")))
    assert "allowed folder" in error["message"]


def test_a_symlink_inside_a_root_pointing_outside_is_refused(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    (root / "face.jpg").symlink_to("/etc/passwd")
    error = fail(settings.with_(input_roots=(root,)), job(cond_video=str(root / "face.jpg")))
    assert "allowed folder" in error["message"]


def test_a_reference_with_a_nul_byte_is_refused(settings: Settings) -> None:
    # Found by the nightly fuzz run: realpath() raises on NUL, which once surfaced as E_GENERATION_RUNTIME.
    error = fail(settings, job(cond_video="\x00"))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "NUL" in error["message"]


def test_base64_that_is_not_base64_is_refused(settings: Settings) -> None:
    error = fail(settings, job(cond_video="data:image/png;base64,@@@not*base64@@@"))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "base64" in error["message"]


def test_a_giant_png_header_is_refused_before_decoding(settings: Settings) -> None:
    bomb = "data:image/png;base64," + base64.b64encode(png_header(50_000, 50_000) + b"\0" * 64).decode()
    error = fail(settings, job(cond_video=bomb))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert "cond_video" in error["message"]


def test_a_text_file_as_the_portrait_is_refused(settings: Settings, tmp_path: Path) -> None:
    text = "data:text/plain;base64," + base64.b64encode(b"hello, I am not a picture " * 10).decode()
    error = fail(settings, job(cond_video=text))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "cond_video" in error["message"]


def test_an_image_as_the_speech_is_refused(settings: Settings) -> None:
    error = fail(settings, job(cond_audio={"person1": PORTRAIT}))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert "cond_audio.person1" in error["message"] and "no audio" in error["message"]


def test_a_wav_with_no_samples_is_refused(settings: Settings, tmp_path: Path) -> None:
    empty = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    empty += b"data" + struct.pack("<I", 0)
    data_url = "data:audio/wav;base64," + base64.b64encode(empty).decode()
    error = fail(settings, job(cond_audio={"person1": data_url}))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "cond_audio.person1" in error["message"]


def test_a_truncated_mp4_is_refused(settings: Settings) -> None:
    clip = (EXAMPLES / "media" / "clip.mp4").read_bytes()
    data_url = "data:video/mp4;base64," + base64.b64encode(clip[: len(clip) // 3]).decode()
    error = fail(settings, job(cond_video=data_url))
    assert error["code"] in (ErrorCode.INPUT_VALIDATION, ErrorCode.FFMPEG)
    assert "cond_video" in error["message"]
    assert str(settings.work_root) not in error["message"], "the worker's temp paths stay out of user messages"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.jpg",
        "http://127.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/face.jpg",
        "http://localhost:8080/face.jpg",
    ],
)
def test_urls_to_other_schemes_or_internal_hosts_are_refused(settings: Settings, url: str) -> None:
    error = fail(settings, job(cond_video=url))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert "cond_video" in error["message"]


def test_an_unknown_tts_voice_names_the_voice_field(settings: Settings) -> None:
    error = fail(settings, job(cond_audio=None, tts_audio={"text": "hello there", "human1_voice": "xx-nosuchvoice"}))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "tts_audio.human1_voice" in error["message"]


def test_tts_turns_merge_a_speakers_consecutive_lines_and_tags_read_alike_everywhere() -> None:
    from core.contract import TTSAudio, tts_turns

    assert tts_turns("(s1)a(s1)b (S2) c ( s2 ) d") == [(1, "a b"), (2, "c d")]
    assert tts_turns("(s1)a(s2)b" * 50) == [(1, "a"), (2, "b")] * 50
    assert TTSAudio(text="(s1)a(s2)b" * 50).speakers == 2, "100 turns are allowed"
    # The speaker count follows the same tags the voices follow: spaced or upper-case tags count, empty ones not.
    assert TTSAudio(text="hello ( S2 ) there").speakers == 2
    assert TTSAudio(text="hello (s2)").speakers == 1


def _wav_data_url(samples: np.ndarray) -> str:
    """Samples as a 16 kHz 16-bit WAV data URL, written with the worker's own WAV writer."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_wav(Path(folder) / "speech.wav", samples.astype(np.float32))
        return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def _example_speech(level_db: float) -> np.ndarray:
    """The example speech scaled so that its speech_level is level_db."""
    speech = decode_audio(Path(SPEECH), field="speech", max_seconds=60)
    return speech * 10 ** ((level_db - speech_level(speech)) / 20)


@pytest.mark.parametrize(
    ("samples", "person"),
    [
        (np.zeros(3 * AUDIO_SAMPLE_RATE), "person1"),  # a muted microphone: digital silence
        (np.random.default_rng(1).standard_normal(3 * AUDIO_SAMPLE_RATE) * 10 ** (-70 / 20), "person1"),  # hiss
        (_example_speech(-65.0), "person2"),  # speech far too quiet to hear once raised by 30 dB
    ],
    ids=["digital-silence", "noise-at-70dB", "speech-at-65dB"],
)
def test_silent_speech_is_refused_naming_the_person(settings: Settings, samples: np.ndarray, person: str) -> None:
    """A recording with no audible speech animates nothing: the job stops before rendering, naming the person."""
    audio = {"person1": SPEECH, person: _wav_data_url(samples)}
    error = fail(settings, job(cond_audio=audio, cond_video=str(EXAMPLES / "media" / "two_people.jpg")))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert f"cond_audio.{person}: the speech is silent" in error["message"]
    assert "closer to the microphone" in error["message"]


def test_very_quiet_speech_is_rendered_with_a_warning(settings: Settings) -> None:
    quiet = _wav_data_url(_example_speech(-40.0))
    output = run_job(
        job(cond_audio={"person1": quiet}, mode="clip", frame_num=25), "quiet-1", settings=settings, sink=lambda _: None
    )
    assert output["status"] == "success", output
    assert any("cond_audio.person1: the speech is very quiet; it was raised by 17 dB" in w for w in output["warnings"])
    loud = run_job(job(mode="clip", frame_num=25), "loud-1", settings=settings, sink=lambda _: None)
    assert not any("quiet" in w for w in loud.get("warnings", [])), "a normal recording gets no warning"


@pytest.mark.parametrize(
    ("voices", "field", "advice"),
    [
        # espeak-ng quietly speaks these in another voice: a near language code, an unknown or mis-cased variant
        ({"human1_voice": "en-ux"}, "tts_audio.human1_voice", "no voice 'en-ux'; did you mean en-us"),
        ({"human1_voice": "en-us+nosuch"}, "tts_audio.human1_voice", "no voice variant 'nosuch'"),
        ({"human2_voice": "en-us+M3"}, "tts_audio.human2_voice", "did you mean en-us+m3"),
    ],
)
def test_an_unknown_voice_is_refused_with_the_closest_names(
    settings: Settings, voices: dict[str, str], field: str, advice: str
) -> None:
    tts = {"text": "(s1) Hello there. (s2) Hi.", **voices}
    error = fail(settings, job(cond_audio=None, tts_audio=tts, cond_video=str(EXAMPLES / "media" / "two_people.jpg")))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert error["message"].startswith(f"{field}: espeak-ng has no voice") and advice in error["message"]


def test_voices_espeak_ng_lists_are_known_with_their_variants() -> None:
    """Names that `-v` takes: language codes in any case, files, other-language codes, voice+variant."""
    catalogue = voice_catalogue()
    for name in ("en-us+f3", "en+m3", "en-US", "gmw/en", "zh", "af+Alex", Defaults.TTS_VOICE_2):
        assert catalogue.refusal(name) is None, name
    assert catalogue.describe("en-us+f3") == "en-us+f3 · English (America), variant female3"
    assert catalogue.refusal("en+alex") is not None, "variant files are case-sensitive: +alex falls back to none"
