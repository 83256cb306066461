"""The preview engine: a CPU-only, audio-driven animation of the portrait, labelled `preview` everywhere.

It is not InfiniteTalk. It finds the face(s), opens and closes each mouth with that person's speech energy at
25 fps, blinks, and sways the head slightly, more while speaking. It honours size, frame_num/mode and base_seed,
so a preview shows the framing, timing and length the GPU engine will produce, in seconds and for free.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.contract import FPS, ErrorCode, JobError, Stage
from core.settings import Settings
from worker.audio import frame_levels_db
from worker.faces import Box, FaceRig, default_box, find_faces, load_detectors
from worker.geometry import Fit, fit_image
from worker.media import read_image, read_video_frames
from worker.prepared import PreparedJob
from worker.progress import CancelToken, Reporter

SPEECH_FLOOR_DB = -48.0
"""Frames quieter than this keep the mouth closed (speech is normalised to about -23 dB)."""
SPEECH_FULL_DB = -14.0
ATTACK = 0.75
RELEASE = 0.4
REPORT_EVERY = FPS
"""Frames between progress reports and cancel checks inside a chunk."""
VIDEO_CACHE_BYTES = 256 * 1024 * 1024
"""A looping input video whose frames fit in this many bytes is kept in memory and played back and forth; a
longer one restarts from disk. Bytes, not frames: 750 frames at 720p held 2 GB."""
REDETECT_EVERY = 12


def mouth_openness(samples: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame mouth opening (0..1) from speech energy, with a fast attack, slower release and a hard gate.

    The mouth leads the sound by a frame, as in real speech; frames well below the speech floor are exactly 0,
    so in silence the mouth is perfectly still.
    """
    levels = frame_levels_db(samples, num_frames)
    ahead = np.maximum(levels, np.append(levels[1:], levels[-1:]) - 3.0)
    raw = np.clip((ahead - SPEECH_FLOOR_DB) / (SPEECH_FULL_DB - SPEECH_FLOOR_DB), 0.0, 1.0)
    out = np.zeros(num_frames, np.float32)
    current = 0.0
    for index, target in enumerate(raw):
        current += (ATTACK if target > current else RELEASE) * (target - current)
        current = 0.0 if current < 0.02 else current
        out[index] = current
    return out


def blink_curve(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Eyelid closure per frame: a 5-frame blink every 2.5–5.5 s, timed by the job's seed."""
    shape = np.array([0.45, 1.0, 1.0, 0.6, 0.2], np.float32)
    out = np.zeros(num_frames + shape.size, np.float32)
    at = int(rng.uniform(0.8, 2.5) * FPS)
    while at < num_frames:
        out[at : at + shape.size] = shape
        at += int(rng.uniform(2.5, 5.5) * FPS)
    return out[:num_frames]


def head_motion(rng: np.random.Generator, activity: np.ndarray, face_height: float) -> np.ndarray:
    """Per-frame (angle°, dx, dy): slow sway from seeded sines, larger and nodding while speaking."""
    count = activity.size
    t = np.arange(count, dtype=np.float32) / FPS
    phases = rng.uniform(0, 2 * math.pi, size=3)
    periods = rng.uniform(2.8, 4.6, size=3)
    # Slow envelope of speech activity: the head follows the voice, not each syllable.
    envelope = np.zeros(count, np.float32)
    level = 0.0
    for index, value in enumerate(activity):
        level += 0.08 * (value - level)
        envelope[index] = level
    scale = 0.25 + 0.75 * envelope
    angle = 0.9 * np.sin(2 * math.pi * t / periods[0] + phases[0]) * scale
    dx = 0.010 * face_height * np.sin(2 * math.pi * t / periods[1] + phases[1]) * scale
    dy = 0.008 * face_height * np.sin(2 * math.pi * t / periods[2] + phases[2]) * scale + 0.012 * face_height * envelope
    return np.stack([angle, dx, dy], axis=1)


def chunk_count(num_frames: int, frame_num: int, motion_frame: int, streaming: bool) -> tuple[int, int]:
    """(chunks, frames per chunk) the way InfiniteTalk steps through a video: overlapping windows when streaming."""
    if not streaming or num_frames <= frame_num:
        return 1, num_frames
    step = max(1, frame_num - motion_frame)
    return 1 + math.ceil((num_frames - frame_num) / step), step


class PreviewEngine:
    """Audio-driven face animation on the CPU (see the module docstring)."""

    name = "preview"
    version = "1.0.0"
    embeds = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def embed(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> None:
        """Nothing to do: the preview reads the speech's loudness as it animates."""

    def load(self) -> None:
        """Load OpenCV's face and eye detectors."""
        try:
            load_detectors()
        except (ImportError, FileNotFoundError) as error:
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                f"the preview engine needs opencv-python-headless<5 with its Haar cascades: {error}",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            ) from None

    def generate(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> Iterator[np.ndarray]:
        """Yield job.num_frames animated RGB frames."""
        rng = np.random.default_rng(job.seed)
        frames = self._base_frames(job)
        first = next(frames)
        faces = self._place_faces(job, first)
        rigs = [FaceRig(first, face) for face in faces]
        openness = [mouth_openness(speaker.samples, job.num_frames) for speaker in job.speakers]
        blinks = [blink_curve(rng, job.num_frames) for _ in faces]
        activity = np.max(np.stack(openness), axis=0)
        motion = head_motion(rng, activity, float(np.mean([face[3] for face in faces])))
        if len(faces) > 1:
            # One warp moves the whole frame: with two people it must stay small, or the listener sways too.
            motion *= 0.25
        pivot = (float(np.mean([f[0] + f[2] / 2 for f in faces])), float(np.mean([f[1] + f[3] for f in faces])))
        streaming = job.params.mode == "streaming"
        chunks, per_chunk = chunk_count(job.num_frames, job.params.frame_num, job.params.motion_frame, streaming)
        base = first
        for index in range(job.num_frames):
            if index % REPORT_EVERY == 0:
                cancel.check(Stage.GENERATION)
                chunk = min(chunks, 1 + max(0, index - (job.params.frame_num - per_chunk)) // per_chunk)
                report.generation(
                    index, job.num_frames, {"chunk": chunk, "chunks": chunks, "frame": index, "frames": job.num_frames}
                )
            if index > 0 and job.cond_kind == "video":
                base = next(frames)
                if index % REDETECT_EVERY == 0:
                    rigs = self._track(base, rigs)
            frame = base.copy()
            for person, rig in enumerate(rigs):
                track = openness[min(person, len(openness) - 1)]
                rig.apply(frame, float(track[index]), float(blinks[person][index]))
            yield _sway(frame, motion[index], pivot)
        report.generation(job.num_frames, job.num_frames, {"chunk": chunks, "chunks": chunks})

    def _base_frames(self, job: PreparedJob) -> Iterator[np.ndarray]:
        if job.cond_kind == "image":
            image = fit_image(read_image(job.cond_path, field="cond_video"), job.width, job.height)
            while True:
                yield image
        yield from _looped_video(job.cond_path, job.width, job.height)

    def _place_faces(self, job: PreparedJob, first: np.ndarray) -> list[Box]:
        """One box per speaker: bbox from the job, else detected faces left to right, else a default region."""
        people = len(job.speakers)
        fit = Fit.cover(job.cond_size[0], job.cond_size[1], job.width, job.height)
        given = job.params.bbox
        boxes: list[Box | None] = [None] * people
        if given is not None:
            boxes[0] = _face_in_region(first, fit.box(given.person1))
            if people > 1 and given.person2:
                boxes[1] = _face_in_region(first, fit.box(given.person2))
        if any(box is None for box in boxes):
            faces = find_faces(first, limit=people)
            found: list[Box | None] = list(faces)
            if len(faces) == 1 and people == 2:
                # One face for two people: give it to the side of the frame it is on.
                face = faces[0]
                side = 0 if face[0] + face[2] / 2 < job.width / 2 else 1
                found = [face, None] if side == 0 else [None, face]
            for person in range(people):
                if boxes[person] is None and person < len(found):
                    boxes[person] = found[person]
        placed: list[Box] = []
        for person, box in enumerate(boxes):
            if box is None:
                job.warnings.append(
                    f"preview: no face found for person{person + 1}; a default region was animated — "
                    f"pass bbox.person{person + 1} as [x_min, y_min, x_max, y_max] to place it"
                )
                box = default_box(job.width, job.height, person, people)
            placed.append(box)
        return placed

    @staticmethod
    def _track(frame: np.ndarray, rigs: list[FaceRig]) -> list[FaceRig]:
        """Follow faces in a moving video: move each rig toward the nearest detection, smoothly."""
        found = find_faces(frame, limit=len(rigs))
        updated = []
        for rig in rigs:
            x, y, w, h = rig.face
            near = min(found, key=lambda f: abs(f[0] - x) + abs(f[1] - y), default=None)
            if near is None or abs(near[0] - x) + abs(near[1] - y) > w:
                updated.append(rig)
                continue
            box = (0.6 * x + 0.4 * near[0], 0.6 * y + 0.4 * near[1], 0.6 * w + 0.4 * near[2], 0.6 * h + 0.4 * near[3])
            updated.append(FaceRig(frame, box))
        return updated


def _face_in_region(frame: np.ndarray, region: Box) -> Box:
    """The face inside a bbox: InfiniteTalk's bbox marks a person's region, so look for the face in it (a
    little enlarged); a box that is already the face is used as it is."""
    x, y, w, h = region
    height, width = frame.shape[:2]
    x0, y0 = max(0, int(x - 0.2 * w)), max(0, int(y - 0.2 * h))
    x1, y1 = min(width, int(x + 1.2 * w)), min(height, int(y + 1.2 * h))
    if x1 - x0 < 24 or y1 - y0 < 24:
        return region
    found = find_faces(np.ascontiguousarray(frame[y0:y1, x0:x1]), limit=1)
    if not found:
        return region
    fx, fy, fw, fh = found[0]
    return (x0 + fx, y0 + fy, fw, fh)


def _sway(frame: np.ndarray, motion: np.ndarray, pivot: tuple[float, float]) -> np.ndarray:
    import cv2

    angle, dx, dy = (float(v) for v in motion)
    matrix = cv2.getRotationMatrix2D(pivot, angle, 1.0)
    matrix[0, 2] += dx
    matrix[1, 2] += dy
    height, width = frame.shape[:2]
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def _looped_video(path: Path, width: int, height: int) -> Iterator[np.ndarray]:
    """Frames of the input video, played forward then backward while short, restarted when long."""
    cache: list[np.ndarray] | None = []
    for frame in read_video_frames(path, width, height, field="cond_video"):
        if cache is not None:
            cache.append(frame)
            if len(cache) * frame.nbytes > VIDEO_CACHE_BYTES:
                cache = None
        yield frame
    if cache is None:
        while True:
            yield from read_video_frames(path, width, height, field="cond_video")
    if not cache:
        raise JobError(ErrorCode.INPUT_VALIDATION, "cond_video: the video has no frames", at_stage=Stage.GENERATION)
    cycle = cache + cache[-2:0:-1] if len(cache) > 2 else cache
    position = len(cache)
    while True:
        yield cycle[position % len(cycle)]
        position += 1
