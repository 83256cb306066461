"""Progressive preview: a streaming job's video so far, published as each clip is encoded.

A streaming job renders clip after clip for minutes. With progressive preview on (STUDIO_PARTIAL_PREVIEW, on
by default), the pipeline's encoder (clip_encoder.ClipEncoder) makes, as clips end, an MP4 of everything finished
so far, and this module publishes it, with its soundtrack, beside the job's artifacts. Its URL travels
in the job's IN_PROGRESS output as `partial_video` (core.contract.PartialVideoInfo: url, key, duration_s,
clips_done, clips_total, bytes).

Objects are kept tidy: each new partial replaces the one before the last (the one just announced and its
predecessor stay, so a viewer that read the older URL a moment ago can still fetch it); when the job ends, every
partial is removed, except that a cancelled job keeps its newest one: the video its user saw is its result.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core import logs
from core.contract import FPS, JobParams, PartialVideoInfo
from core.store import Store, is_partial_key, partial_name
from worker.progress import Reporter

log = logs.get_logger("partial")


def clip_ends(num_frames: int, params: JobParams) -> list[int]:
    """The frame count at the end of each clip, as InfiniteTalk's streaming loop steps (and the preview mirrors):
    frame_num frames, then frame_num - motion_frame new frames per clip, the last one cut to num_frames."""
    if params.mode != "streaming" or num_frames <= params.frame_num:
        return [num_frames]
    step = max(1, params.frame_num - params.motion_frame)
    clips = 1 + math.ceil((num_frames - params.frame_num) / step)
    return [min(num_frames, params.frame_num + index * step) for index in range(clips)]


class PartialVideo:
    """Publishes a job's partial videos to its store and announces them through its Reporter."""

    def __init__(self, store: Store, folder: str, report: Reporter, clips_total: int, every_s: float = 0.0) -> None:
        self.store = store
        self.every_s = every_s
        """The least time between two partials (Settings.partial_every_s; clip_encoder.ClipEncoder keeps to it)."""
        self.folder = folder.rstrip("/")
        self.report = report
        self.clips_total = clips_total
        self.latest: dict[str, Any] | None = None
        self.published: list[str] = []
        self.ended = False

    def publish(self, path: Path, frames: int, clips_done: int) -> None:
        """Store one partial video and announce it; called from the encoder's thread, never after end()."""
        if self.ended:
            return
        key = f"{self.folder}/{partial_name(clips_done)}"
        size = self.store.put(key, path, within=self.folder)
        self.published.append(key)
        # The contract's model, which the dashboard reads the payload back with: what is sent is what is checked.
        self.latest = PartialVideoInfo(
            url=self.store.url(key),
            key=key,
            duration_s=round(frames / FPS, 3),
            clips_done=clips_done,
            clips_total=self.clips_total,
            bytes=size,
        ).model_dump()
        self.report.partial(self.latest)
        for old in self.published[:-2]:
            self._delete(old)
        self.published = self.published[-2:]

    def _delete(self, key: str) -> None:
        try:
            self.store.delete(key)
        except Exception as error:  # a stray preview object is untidy, not a failed job
            log.warning("could not remove a partial video", extra={"key": key, "error": str(error)})

    def end(self, *, keep_latest: bool) -> dict[str, Any] | None:
        """Remove the job's partial videos (all of them, or all but the newest when `keep_latest`); returns the
        one kept. Only the first call acts, so a `finally` can always call it."""
        if self.ended:
            return None
        self.ended = True
        kept = self.latest["key"] if keep_latest and self.latest else None
        try:
            keys = [
                key
                for key in self.store.list(self.folder)
                if is_partial_key(key) and key.rsplit("/", 1)[0] == self.folder  # not a batch item's below
            ]
        except Exception as error:
            log.warning("could not list partial videos", extra={"folder": self.folder, "error": str(error)})
            keys = list(self.published)
        for key in keys:
            if key != kept:
                self._delete(key)
        return self.latest if kept else None
