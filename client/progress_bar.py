"""A one-line terminal progress bar for progress payloads (used by `run` and `submit`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

WIDTH = 30


def describe(payload: dict[str, Any]) -> str:
    """`stage chunk k/n` or `stage item i/n`, from a progress payload."""
    details = payload.get("details") or {}
    words = [str(payload.get("stage", ""))]
    if "chunk" in details and "chunks" in details:
        words.append(f"chunk {details['chunk']}/{details['chunks']}")
    if "item_index" in payload and "item_count" in payload:
        words.append(f"item {payload['item_index'] + 1}/{payload['item_count']}")
    return " ".join(words)


class ProgressBar:
    """Redraws one line as payloads arrive; prints a newline when done."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self._last = ""

    def __call__(self, payload: dict[str, Any]) -> None:
        pct = float(payload.get("pct") or 0.0)
        filled = int(WIDTH * min(100.0, pct) / 100.0)
        line = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {pct:5.1f}% {describe(payload)}"
        if line != self._last:
            self.stream.write("\r" + line.ljust(len(self._last)))
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        """End the bar's line."""
        if self._last:
            self.stream.write("\n")
            self.stream.flush()


def describe_parts(parts: Sequence[Any], progress: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """A split run's parts as one progress payload: the mean of their percentages, and each part's state
    (`1 80% · 2 31% · 3 queued`), for the one-line bar."""
    shown, total = [], 0.0
    for part in parts:
        pct = 100.0 if part.state == "COMPLETED" else float((progress.get(part.index) or {}).get("pct") or 0.0)
        total += pct
        words = {"pending": "waiting", "IN_QUEUE": "queued", "COMPLETED": "done"}.get(part.state)
        if part.state in ("FAILED", "CANCELLED", "TIMED_OUT"):
            words = part.state.lower().replace("_", " ")
        shown.append(f"{part.index + 1} {words or f'{pct:.0f}%'}")
    return {"stage": "parts " + " · ".join(shown), "pct": total / max(1, len(parts))}
