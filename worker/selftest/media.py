"""The selftest's inputs, made on the spot so the GPU image needs no example files: a drawn portrait, two people
side by side, a short video, and two speakers' speech-like sounds (different pitch and rhythm, 16 kHz mono)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.contract import AUDIO_SAMPLE_RATE, FPS, Stage
from worker.media import run_ffmpeg, write_wav


@dataclass(frozen=True)
class Media:
    """Absolute paths of the selftest's inputs, all inside `folder`."""

    folder: Path
    portrait: Path
    two_people: Path
    video: Path
    speech_1: Path
    speech_2: Path


def _face(canvas: np.ndarray, cx: int, cy: int, scale: float, skin: tuple[int, int, int]) -> None:
    axes = (int(70 * scale), int(92 * scale))
    cv2.ellipse(canvas, (cx, cy), axes, 0, 0, 360, skin, -1)
    for dx in (-28, 28):
        cv2.circle(canvas, (cx + int(dx * scale), cy - int(20 * scale)), int(9 * scale), (40, 30, 30), -1)
    cv2.ellipse(canvas, (cx, cy + int(40 * scale)), (int(26 * scale), int(10 * scale)), 0, 0, 360, (120, 40, 50), -1)


def _write_image(path: Path, width: int, height: int, faces: list[tuple[int, int, float]]) -> Path:
    y, x = np.mgrid[0:height, 0:width]
    canvas = np.stack([60 + 80 * x / width, 90 + 60 * y / height, 140 + 0 * x], axis=-1).astype(np.uint8)
    for index, (cx, cy, scale) in enumerate(faces):
        _face(canvas, cx, cy, scale, ((205, 170, 150), (170, 130, 105))[index % 2])
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path


def _speech(path: Path, seconds: float, pitch: float, syllables_per_s: float, seed: int) -> Path:
    """Voiced syllables: harmonics of a gliding pitch under a syllable envelope, with a little breath noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
    f0 = pitch * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / AUDIO_SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(np.pi * syllables_per_s * t) ** 2 - 0.1, 0, None)
    return write_wav(path, 0.3 * voice * envelope + 0.01 * rng.standard_normal(t.size))


def make_media(folder: Path, speech_s: float = 1.4) -> Media:
    """Write the inputs into folder (created); each speaker speaks for speech_s seconds (bench-gpu's one clip
    of 81 frames needs more than 3.24 s)."""
    folder.mkdir(parents=True, exist_ok=True)
    portrait = _write_image(folder / "portrait.png", 480, 600, [(240, 280, 1.6)])
    two_people = _write_image(folder / "two_people.png", 800, 480, [(220, 240, 1.2), (580, 240, 1.2)])
    video = folder / "talking.mp4"
    pan = "crop=420:525:30+20*sin(2*PI*t):40+10*t,scale=320:400,format=yuv420p"
    run_ffmpeg(
        ["-loop", "1", "-i", str(portrait), "-t", "1.6", "-r", str(FPS), "-vf", pan, "-c:v", "libx264", str(video)],
        at_stage=Stage.DOWNLOADS_STARTED,
        what="selftest video",
    )
    return Media(
        folder=folder,
        portrait=portrait,
        two_people=two_people,
        video=video,
        speech_1=_speech(folder / "speech_1.wav", speech_s, 180.0, 3.0, seed=1),
        speech_2=_speech(folder / "speech_2.wav", speech_s, 120.0, 4.5, seed=2),
    )
