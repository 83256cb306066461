"""One local endpoint per data dir.

Two endpoints on one queue would each take the other's running jobs for lost ones at start-up, so the second is
refused with the first one's pid. The lock is an advisory `flock`, which the kernel drops when its holder dies,
so a crashed endpoint never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO


class EndpointBusy(RuntimeError):
    """Another endpoint already serves this data dir."""


class DataDirLock:
    """An exclusive lock on `path`, held from acquire() to release()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise EndpointBusy naming the holder and the fix."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise EndpointBusy(
                f"another local endpoint (pid {holder}) already serves {self.path.parent}; stop it, or give this "
                "one its own STUDIO_DATA_DIR"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None
