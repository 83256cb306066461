"""Each local worker process's own log, kept in a file of its own so the endpoint can show one worker's recent
lines the way RunPod shows a worker's container log (`GET /v2/serverless/{id}/workers/{workerId}/logs`).

A worker process writes its structured log lines (core/logs.py) to stderr, which it shares with the endpoint
process and every other worker: nothing there says which worker wrote a line. So each worker also writes them
to `<data>/endpoint/workers/<pid>.log` (rotated at LOG_BYTES, one older file kept), and the endpoint reads a
worker's tail from there. The files of dead workers are kept (a crash loop's last words are what one needs) but
only the newest KEEP_DEAD of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core import logs

LOG_BYTES = 1024 * 1024
"""A worker's log file is rotated past this size (one older file kept): the tail shows at most 5000 lines."""
KEEP_DEAD = 4
"""How many log files of workers that are gone stay on disk."""
SOURCE = "container"
"""RunPod's log source for what a worker process prints; the local endpoint has no separate `system` log."""


def folder_for(queue_path: Path) -> Path:
    """The folder of the worker logs beside the endpoint's queue file."""
    return queue_path.parent / "workers"


def path_for(folder: Path, pid: int) -> Path:
    """A worker's log file, by its process id (the worker id the endpoint reports)."""
    return folder / f"{pid}.log"


def capture(path: Path) -> None:
    """Write this process's studio log lines to `path` too (called once in each worker, after logs.configure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=1, encoding="utf-8")
    handler.setFormatter(logs.JsonLineFormatter())
    logging.getLogger("studio").addHandler(handler)


def prune(folder: Path, alive: Iterable[int]) -> None:
    """Remove the log files of gone workers but the newest KEEP_DEAD (their rotated files with them)."""
    if not folder.is_dir():
        return
    keep = {f"{pid}.log" for pid in alive}
    dead = sorted(
        (p for p in folder.glob("*.log") if p.name not in keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for path in dead[KEEP_DEAD:]:
        for victim in (path, path.with_name(path.name + ".1")):
            victim.unlink(missing_ok=True)


@dataclass(frozen=True)
class LogLine:
    """One line of a worker's log: when it was written and the line as the worker wrote it."""

    ts: str
    line: str
    seq: int

    @property
    def event_id(self) -> str:
        """The SSE event id RunPod gives a log line: its time, then a sequence number (`…Z/000000000042`)."""
        return f"{self.ts}/{self.seq:012d}"

    def data(self) -> str:
        """The SSE `data` payload RunPod's document gives: `{"ts", "source", "line"}`."""
        return json.dumps({"ts": self.ts, "source": SOURCE, "line": self.line})


def parse_time(text: str) -> dt.datetime | None:
    """An RFC 3339 time (a log line's `ts`, `since`, or the time part of a Last-Event-ID); None if it is not one."""
    try:
        when = dt.datetime.fromisoformat(text.split("/", 1)[0].strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def time_of(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        entry = None
    ts = entry.get("ts") if isinstance(entry, dict) else None
    if isinstance(ts, str) and parse_time(ts) is not None:
        return ts
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def read_lines(path: Path, offset: int = 0) -> tuple[list[str], int]:
    """The whole lines of `path` from byte `offset`, and the offset after the last whole line read. A file
    shorter than the offset was rotated: it is read from its start."""
    try:
        with path.open("rb") as file:
            file.seek(0, 2)
            size = file.tell()
            start = 0 if size < offset else offset
            file.seek(start)
            chunk = file.read(size - start)
    except FileNotFoundError:
        return [], 0
    end = chunk.rfind(b"\n") + 1
    text = chunk[:end].decode("utf-8", errors="replace")
    return [line for line in text.split("\n") if line.strip()], start + end


def backlog(path: Path, *, tail: int, since: dt.datetime | None) -> tuple[list[LogLine], int]:
    """The lines a stream starts with (the last `tail`, or every line after `since`, rotated file included)
    and the offset in the current file to follow from."""
    older, _ = read_lines(path.with_name(path.name + ".1"))
    current, offset = read_lines(path)
    lines = [LogLine(time_of(text), text, seq) for seq, text in enumerate([*older, *current], start=1)]
    if since is not None:
        lines = [line for line in lines if (parse_time(line.ts) or since) > since]
    elif tail >= 0:
        lines = lines[len(lines) - tail :] if tail else []
    return lines, offset
