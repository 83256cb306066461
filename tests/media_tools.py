"""Small helpers for tests that inspect real media with ffmpeg/ffprobe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from core.contract import AUDIO_SAMPLE_RATE
from worker.media import decode_audio, write_wav


def ffprobe(path: Path) -> dict:
    """ffprobe's JSON for a file's format and streams."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        check=True,
    )
    return json.loads(done.stdout)


def video_frames(path: Path) -> np.ndarray:
    """All frames of a video as an (n, h, w, 3) uint8 array."""
    info = ffprobe(path)
    stream = next(s for s in info["streams"] if s["codec_type"] == "video")
    width, height = int(stream["width"]), int(stream["height"])
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def speech_then_silence(source: Path, out: Path, speech_s: float, silence_s: float) -> Path:
    """A WAV of the first speech_s seconds of source followed by silence_s seconds of digital silence."""
    speech = decode_audio(source, field="test", max_seconds=speech_s)[: int(speech_s * AUDIO_SAMPLE_RATE)]
    silence = np.zeros(int(silence_s * AUDIO_SAMPLE_RATE), np.float32)
    return write_wav(out, np.concatenate([speech, silence]))


def wav_bytes(samples: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """Float samples in [-1, 1] as the bytes of a 16-bit mono WAV (what an upload or st.audio_input hands over)."""
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()
