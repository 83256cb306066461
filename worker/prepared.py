"""What the generate stage receives: inputs fetched, decoded and checked, ready for an engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.contract import FPS, JobParams


@dataclass
class Speaker:
    """One person's speech, aligned to the soundtrack: silence where the other person talks."""

    name: str
    wav_path: Path
    samples: np.ndarray
    """float32 mono at AUDIO_SAMPLE_RATE, as long as the soundtrack."""


@dataclass
class PreparedJob:
    """A validated job with its media on local disk and its audio prepared."""

    job_id: str
    params: JobParams
    seed: int
    work_dir: Path
    cond_path: Path
    cond_kind: str
    """`image` or `video`."""
    cond_size: tuple[int, int]
    """The condition media's (width, height)."""
    soundtrack: Path
    """16 kHz mono WAV that the video is muxed with, already cut to `num_frames` frames."""
    speakers: list[Speaker]
    num_frames: int
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """The video's length in seconds."""
        return self.num_frames / FPS
