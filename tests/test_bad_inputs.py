"""Bad input gets a structured error naming the field and the fix: never a traceback, never a leftover file."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from worker.contract import ErrorCode
from worker.pipeline import run_job
from worker.settings import Settings

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
        (job(cond_audio=None), "cond_audio", "exactly one of cond_audio"),
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
    from worker.contract import TTSAudio, tts_turns

    assert tts_turns("(s1)a(s1)b (S2) c ( s2 ) d") == [(1, "a b"), (2, "c d")]
    assert tts_turns("(s1)a(s2)b" * 50) == [(1, "a"), (2, "b")] * 50
    assert TTSAudio(text="(s1)a(s2)b" * 50).speakers == 2, "100 turns are allowed"
    # The speaker count follows the same tags the voices follow: spaced or upper-case tags count, empty ones not.
    assert TTSAudio(text="hello ( S2 ) there").speakers == 2
    assert TTSAudio(text="hello (s2)").speakers == 1
