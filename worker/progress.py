"""Progress reporting and cancellation: the two things a running job shares with whoever runs it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core.contract import ErrorCode, JobError, Stage

ProgressSink = Callable[[dict[str, Any]], None]
"""Receives `{stage, pct, details, ...}`; RunPod binds it to progress_update, the local endpoint to its table."""


class CancelToken:
    """Set by the caller to ask a running job to stop at its next stage or chunk boundary."""

    def __init__(self, is_set: Callable[[], bool] | None = None) -> None:
        self._event = threading.Event()
        self._external = is_set
        self._last_poll = 0.0
        self._external_answer = False

    def cancel(self) -> None:
        """Ask the job to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once cancellation was asked for; an external check is polled at most twice a second."""
        if self._event.is_set():
            return True
        if self._external is not None:
            now = time.monotonic()
            if now - self._last_poll > 0.5:
                self._last_poll = now
                self._external_answer = bool(self._external())
            if self._external_answer:
                self._event.set()
        return self._event.is_set()

    def check(self, at_stage: str) -> None:
        """Raise JobError(E_CANCELLED) when cancellation was asked for."""
        if self.cancelled:
            raise JobError(ErrorCode.CANCELLED, "the job was cancelled", at_stage=at_stage)


class Reporter:
    """Turns stage events into progress payloads with an overall percentage, for one item of a job.

    In a batch each item covers an equal share of 0–100 %, and payloads carry item_index/item_count/item_id.
    Once a streaming job has a partial video (`partial`), every later payload carries it as `partial_video`:
    the local endpoint and RunPod keep only the latest payload as the job's IN_PROGRESS output. A lock guards
    it, since partial videos are announced from the encoder's thread.
    """

    def __init__(
        self,
        sink: ProgressSink,
        job_id: str,
        *,
        item_index: int = 0,
        item_count: int = 1,
        item_id: str | None = None,
    ) -> None:
        self._sink = sink
        self.job_id = job_id
        self.item_index = item_index
        self.item_count = item_count
        self.item_id = item_id
        self.last: dict[str, Any] = {}
        self.partial_video: dict[str, Any] | None = None
        self.gpu: dict[str, Any] | None = None
        """The GPU the job runs on (`{name, count}`, core.contract.GpuInfo), once the engine is loaded: every later
        payload carries it, so a job cancelled before its result still says what it ran on (core/prices.py)."""
        self._lock = threading.Lock()

    def _overall(self, pct: float) -> float:
        return round((self.item_index + pct / 100.0) / self.item_count * 100.0, 1)

    def stage(self, stage: str, details: dict[str, Any] | None = None, pct: float | None = None) -> None:
        """Report that the job reached `stage`; pct defaults to the stage's place in Stage.PCT."""
        item_pct = Stage.PCT.get(stage, 0.0) if pct is None else pct
        payload: dict[str, Any] = {
            "stage": stage,
            "pct": self._overall(item_pct),
            "job_id": self.job_id,
            "details": details or {},
        }
        if self.item_count > 1:
            payload.update(item_index=self.item_index, item_count=self.item_count, item_id=self.item_id)
        if self.gpu is not None:
            payload["gpu"] = self.gpu
        with self._lock:
            if self.partial_video is not None and stage not in (Stage.COMPLETED, Stage.ERROR):
                payload["partial_video"] = self.partial_video
            self.last = payload
            self._sink(payload)

    def partial(self, video: dict[str, Any]) -> None:
        """Announce a playable video of the clips finished so far: `{url, key, duration_s, clips_done,
        clips_total}`. It rides on the next payload (the engine's next frame or step report, a second or a sampling
        step away) rather than on a payload of its own, which would repeat the last step for whoever counts them."""
        with self._lock:
            self.partial_video = video

    def generation(self, done: int, total: int, details: dict[str, Any] | None = None) -> None:
        """Report generation progress (chunks, steps or frames done of total) inside the generation span."""
        low, high = Stage.GENERATION_SPAN
        fraction = 0.0 if total <= 0 else min(1.0, done / total)
        self.stage(Stage.GENERATION, {"done": done, "total": total, **(details or {})}, low + (high - low) * fraction)
