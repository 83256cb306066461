"""The live recorder's take and meter: 16 kHz mono WAV written as frames arrive, a level that follows the voice,
and the warnings a person sees while speaking (too loud, too quiet). The browser half is in tests/test_browser.py."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from dashboard.live_mic import (
    FALLBACK_NOTE,
    NO_SOUND_AFTER_S,
    RATE,
    SENTENCE_CASE,
    LiveTake,
    ice_servers,
    meter_note,
)
from worker.audio import QUIET_SPEECH_DB


def _browser_frame(samples: np.ndarray) -> av.AudioFrame:
    """20 ms of 48 kHz stereo s16, as Chromium sends it over WebRTC."""
    stereo = np.repeat((samples * 32767).astype(np.int16), 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48_000
    return frame


def _tone(level: float, seconds: float, rate: int = 48_000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return level * np.sin(2 * np.pi * 220 * t)


def _feed(take: LiveTake, samples: np.ndarray) -> None:
    for start in range(0, samples.size, 960):
        take.add_frame(_browser_frame(samples[start : start + 960]))


def test_a_take_is_written_at_16_khz_mono_as_it_arrives_and_removed_when_it_stops(tmp_path: Path) -> None:
    take = LiveTake(tmp_path / "take.wav")
    _feed(take, _tone(0.3, 2.0))
    assert (tmp_path / "take.wav").stat().st_size > 0, "on disk while recording, not held by the browser"
    level = take.level()
    assert level.seconds == pytest.approx(2.0, abs=0.05)
    assert level.rms_db == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=1.0)
    assert level.advice() is None
    data = take.finish()
    assert data is not None and not (tmp_path / "take.wav").exists()
    (tmp_path / "back.wav").write_bytes(data)
    with wave.open(str(tmp_path / "back.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        assert wav.getnframes() / RATE == pytest.approx(2.0, abs=0.05)
    _feed(take, _tone(0.3, 0.1))  # a frame still in flight after Stop changes nothing
    assert not (tmp_path / "take.wav").exists()


def test_the_meter_warns_while_speaking_too_loud_or_too_quiet(tmp_path: Path) -> None:
    loud = LiveTake(tmp_path / "loud.wav")
    _feed(loud, np.clip(_tone(3.0, 1.2), -1, 1))
    assert (loud.level().advice() or "").startswith("Too loud: the sound is clipping")
    quiet = LiveTake(tmp_path / "quiet.wav")
    _feed(quiet, _tone(10 ** ((QUIET_SPEECH_DB - 10) / 20) * np.sqrt(2), 1.2))
    assert (quiet.level().advice() or "").startswith("Quiet (")
    silent = LiveTake(tmp_path / "silent.wav")
    _feed(silent, np.zeros(48_000))
    assert silent.level().advice() is None, "silence between sentences is not nagged about"
    assert silent.finish() is not None


def test_the_no_connection_note_shows_only_while_no_sound_arrives(tmp_path: Path) -> None:
    """Issue 29: "No level moving after Start?" stayed under the meter while the level moved."""
    speaking = LiveTake(tmp_path / "speaking.wav")
    _feed(speaking, _tone(0.3, 1.2))
    level = speaking.level()
    assert level.seconds > 0
    assert meter_note(level.seconds, level.advice(), running_s=30.0) != FALLBACK_NOTE
    assert meter_note(0.0, None, running_s=NO_SOUND_AFTER_S + 1) == FALLBACK_NOTE
    assert meter_note(0.0, None, running_s=1.0) is None, "not before the connection had a chance"
    assert "text-transform: none" in SENTENCE_CASE, "its buttons in the app's sentence case, not capitals"


def test_ice_servers_come_from_the_environment_and_bad_json_names_the_variable() -> None:
    assert ice_servers({}) == [], "none by default: nothing outside this machine is asked"
    turn = '[{"urls": "turn:turn.example.com:3478", "username": "u", "credential": "c"}]'
    assert ice_servers({"STUDIO_ICE_SERVERS": turn})[0]["urls"] == "turn:turn.example.com:3478"
    with pytest.raises(ValueError, match="STUDIO_ICE_SERVERS is not JSON"):
        ice_servers({"STUDIO_ICE_SERVERS": "turn:x"})
    with pytest.raises(ValueError, match="must be a JSON list"):
        ice_servers({"STUDIO_ICE_SERVERS": '{"urls": "x"}'})


def test_takes_abandoned_mid_recording_are_swept_after_a_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from dashboard import live_mic

    monkeypatch.setattr(live_mic, "TAKES_DIR", tmp_path)
    old, fresh = tmp_path / "old.wav", tmp_path / "fresh.wav"
    old.write_bytes(b"RIFF")
    fresh.write_bytes(b"RIFF")
    os.utime(old, (0, 0))
    assert live_mic.sweep_abandoned() == 1
    assert not old.exists() and fresh.exists()
