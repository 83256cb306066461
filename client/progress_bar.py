"""A one-line terminal progress bar for progress payloads (used by `run` and `submit`)."""

from __future__ import annotations

import sys
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
