"""ClipEncoder: the video so far, playable while the rest renders, at no cost to the video itself.

With a fast engine the partials come from the encode's live copy, and the final video is, packet for packet, the
one VideoEncoder makes; with a slow engine the encode is cut at clip ends, so that each partial holds its clips
whole at once. Both are driven here with real ffmpeg. The test never relies on how fast anything runs: before
ending the next clip it waits until the partial asked for at the last one has arrived.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.contract import FPS
from tests.media_tools import ffprobe, video_frames
from worker.clip_encoder import ClipEncoder, LiveCopy
from worker.media import VideoEncoder, write_wav

WIDTH, HEIGHT = 160, 128
CLIP_ENDS = [81, 153, 225, 297]
"""InfiniteTalk's streaming steps: 81 frames, then 72 new ones a clip."""


def frames(count: int) -> Iterator[np.ndarray]:
    """Moving stripes with a frame counter in the corner: every frame differs, and x264 codes them in P/B frames."""
    columns = np.arange(WIDTH)
    for index in range(count):
        row = ((np.sin((columns + 3 * index) / 7.0) + 1) * 100).astype(np.uint8)
        frame = np.repeat(np.repeat(row[None, :, None], HEIGHT, 0), 3, 2)
        frame[:8, :8] = (index * 5) % 256
        yield frame


@pytest.fixture
def soundtrack(tmp_path: Path) -> Path:
    seconds = CLIP_ENDS[-1] / FPS
    t = np.arange(int(seconds * 16000)) / 16000
    return write_wav(tmp_path / "speech.wav", 0.3 * np.sin(2 * np.pi * 220 * t))


def packets_md5(path: Path, stream: str) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", f"0:{stream}", "-c", "copy", "-f", "md5", "-"],
        capture_output=True,
        check=True,
        text=True,
    )
    return done.stdout.strip()


def video_packets(path: Path) -> int:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    return int(probe.stdout.strip())


class Partials:
    """The sink: keeps a copy of every partial handed over, as the store would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.got: list[tuple[Path, int, int]] = []

    def __call__(self, path: Path, frame_count: int, clips: int) -> None:
        kept = self.folder / f"kept-{clips}.mp4"
        shutil.copyfile(path, kept)
        self.got.append((kept, frame_count, clips))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 120
        while len(self.got) < count:
            assert time.monotonic() < deadline, f"partial {count} never came; got {self.got}"
            time.sleep(0.01)


def encode(encoder: ClipEncoder, partials: Partials) -> Path:
    """Write every frame; before the last frame of each clip after the first, wait for the previous clip's
    partial, so that each one is made before a newer request could replace it."""
    with encoder:
        for index, frame in enumerate(frames(CLIP_ENDS[-1]), 1):
            ended_before = [end for end in CLIP_ENDS[:-1] if end < index]
            if index in CLIP_ENDS and ended_before:
                partials.wait_for(len(ended_before))
            encoder.write(frame)
        return encoder.finish()


def check_partials(partials: Partials, *, exact: bool) -> None:
    assert [clips for _, _, clips in partials.got] == [1, 2, 3], "a partial after each clip but the last"
    for path, frame_count, clips in partials.got:
        probe = ffprobe(path)
        streams = {stream["codec_type"]: stream for stream in probe["streams"]}
        assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
        assert len(video_frames(path)) == frame_count
        assert float(probe["format"]["duration"]) == pytest.approx(frame_count / FPS, abs=0.1)
        for stream in ("video", "audio"):
            assert float(streams[stream]["start_time"]) == pytest.approx(0, abs=0.001), "in step, as the video"
            assert float(streams[stream]["duration"]) == pytest.approx(frame_count / FPS, abs=0.05)
        end = CLIP_ENDS[clips - 1]
        assert end <= frame_count < CLIP_ENDS[clips], "the partial holds its clips whole, and not the next"
        if exact:
            assert frame_count == end, "a cut partial ends where its last clip ends"
        assert (video_frames(path)[:end, :8, :8, 0].mean(axis=(1, 2)) - np.arange(end) * 5 % 256).std() < 3


def test_a_fast_engine_gets_partials_from_the_live_copy_and_the_same_video_as_without_them(
    tmp_path: Path, soundtrack: Path
) -> None:
    partials = Partials(tmp_path)
    encoder = ClipEncoder(tmp_path / "video.mp4", WIDTH, HEIGHT, soundtrack, CLIP_ENDS, partials,
                          cut_after_s=math.inf)  # fmt: skip
    video = encode(encoder, partials)

    assert not encoder.cut
    check_partials(partials, exact=False)
    reference_folder = tmp_path / "reference"
    reference_folder.mkdir()
    with VideoEncoder(reference_folder / "video.mp4", WIDTH, HEIGHT, soundtrack) as reference:
        for frame in frames(CLIP_ENDS[-1]):
            reference.write(frame)
        expected = reference.finish()
    assert packets_md5(video, "v") == packets_md5(expected, "v"), "the video stream is VideoEncoder's"
    assert packets_md5(video, "a") == packets_md5(expected, "a")
    assert video.read_bytes()[4:8] == b"ftyp" and b"moov" in video.read_bytes()[:4096], "faststart"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept-1.mp4", "kept-2.mp4", "kept-3.mp4",
                                                                "reference", "speech.wav", "video.mp4"]  # fmt: skip


def test_a_slow_engine_gets_its_encode_cut_at_clip_ends_so_each_partial_holds_its_clips_at_once(
    tmp_path: Path, soundtrack: Path
) -> None:
    partials = Partials(tmp_path)
    encoder = ClipEncoder(tmp_path / "video.mp4", WIDTH, HEIGHT, soundtrack, CLIP_ENDS, partials, cut_after_s=0.0)
    video = encode(encoder, partials)

    assert encoder.cut
    check_partials(partials, exact=True)
    probe = ffprobe(video)
    streams = {stream["codec_type"]: stream for stream in probe["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    decoded = video_frames(video)
    assert len(decoded) == CLIP_ENDS[-1]
    assert (decoded[:, :8, :8, 0].mean(axis=(1, 2)) - np.arange(CLIP_ENDS[-1]) * 5 % 256).std() < 3
    assert float(probe["format"]["duration"]) == pytest.approx(CLIP_ENDS[-1] / FPS, abs=0.1)
    assert not (tmp_path / "video.clips").exists(), "the segments are removed"


def test_partials_come_no_more_often_than_every_s(tmp_path: Path, soundtrack: Path) -> None:
    partials = Partials(tmp_path)
    encoder = ClipEncoder(tmp_path / "video.mp4", WIDTH, HEIGHT, soundtrack, CLIP_ENDS, partials, every_s=3600)
    with encoder:
        for frame in frames(CLIP_ENDS[-1]):
            encoder.write(frame)
        encoder.finish()
    assert partials.got == []


def test_an_encoder_left_by_an_error_leaves_no_files(tmp_path: Path, soundtrack: Path) -> None:
    (tmp_path / "sink").mkdir()
    encoder = ClipEncoder(tmp_path / "video.mp4", WIDTH, HEIGHT, soundtrack, CLIP_ENDS, Partials(tmp_path / "sink"),
                          cut_after_s=0.0)  # fmt: skip
    with pytest.raises(RuntimeError), encoder:
        for index, frame in enumerate(frames(200)):
            encoder.write(frame)
            if index == 190:
                raise RuntimeError("the engine failed")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sink", "speech.wav"]


def test_the_live_copy_reads_as_the_frames_encoded_so_far(tmp_path: Path, soundtrack: Path) -> None:
    live = LiveCopy(tmp_path / "live.mp4")
    encoder = VideoEncoder(tmp_path / "video.mp4", WIDTH, HEIGHT, soundtrack, live_copy=live.path)
    source = frames(CLIP_ENDS[-1])
    for frame in (next(source) for _ in range(150)):
        encoder.write(frame)
    deadline = time.monotonic() + 120
    while live.scan()[1] < 100:  # x264 keeps its lookahead's frames until more come
        assert time.monotonic() < deadline, f"the live copy holds {live.scan()} after 150 frames"
        time.sleep(0.01)
    whole, frame_count = live.scan()
    snapshot = live.snapshot(whole, tmp_path / "snapshot.mp4")
    assert video_packets(snapshot) == frame_count <= 150
    for frame in source:
        encoder.write(frame)
    encoder.finish()
    assert live.scan()[1] == CLIP_ENDS[-1], "once ffmpeg ends, the copy holds every frame"
    assert live.audio_s == pytest.approx(CLIP_ENDS[-1] / FPS, abs=0.1)
    assert packets_md5(live.path, "v") == packets_md5(tmp_path / "video.mp4", "v")
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
         str(live.path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    ffprobes = [round(float(at) * FPS) for at in probe.stdout.split()]
    assert [round(at / live.frame_ticks) for at in live.video_times] == ffprobes, "each frame's time, read as ffprobe"


def test_paths_relative_to_the_working_folder_work(
    tmp_path: Path, soundtrack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ffmpeg runs in the video's folder to name the tee's outputs plainly; a relative soundtrack still works."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job").mkdir()
    partials = Partials(tmp_path)
    encoder = ClipEncoder(Path("job/video.mp4"), WIDTH, HEIGHT, Path(soundtrack.name), CLIP_ENDS, partials,
                          cut_after_s=math.inf)  # fmt: skip
    video = encode(encoder, partials)
    assert len(video_frames(tmp_path / video)) == CLIP_ENDS[-1]
    assert [clips for _, _, clips in partials.got] == [1, 2, 3]
