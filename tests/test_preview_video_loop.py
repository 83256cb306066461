"""A video condition shorter than the speech loops: back and forth from memory when small, from disk when not,
so a long high-resolution input never fills the worker's memory."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from worker.engines import preview
from worker.media import read_video_frames


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 frames at 25 fps, each a different grey: every frame is told apart from the others."""
    import subprocess

    path = tmp_path_factory.mktemp("loop") / "count.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:r=25:d=0.8", "-vf",
         "geq=lum='40+N*8':cb=128:cr=128,format=yuv420p", "-c:v", "libx264", "-qp", "0", str(path)],
        check=True,
    )  # fmt: skip
    return path


def order(path: Path, frames: int) -> list[int]:
    """Which source frame each looped frame is."""
    means = [float(np.mean(frame)) for frame in read_video_frames(path, 64, 64, field="cond_video")]
    looped = islice(preview._looped_video(path, 64, 64), frames)
    return [min(range(len(means)), key=lambda i: abs(means[i] - float(np.mean(frame)))) for frame in looped]


def test_a_short_video_plays_back_and_forth(counter_video: Path) -> None:
    assert len(list(read_video_frames(counter_video, 64, 64, field="cond_video"))) == 20
    assert order(counter_video, 24) == [*range(20), 18, 17, 16, 15]


def test_a_video_larger_than_the_memory_cap_restarts_from_disk(
    counter_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview, "VIDEO_CACHE_BYTES", 5 * 64 * 64 * 3)
    assert order(counter_video, 24) == [*range(20), 0, 1, 2, 3]
