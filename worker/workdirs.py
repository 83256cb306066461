"""Per-job temp folders that a killed worker cannot leak.

Each job works in a fresh folder under Settings.work_root, removed when the job ends. A worker killed mid-job
(kill -9, OOM killer, a pod evicted) never reaches that cleanup, and its downloads, audio and half-encoded video
stayed on disk for good. So a running job holds an advisory `flock` on a file inside its folder, which the kernel
drops the moment the process dies, and `sweep` (run when a worker or the local endpoint starts) removes every
job folder whose lock nobody holds. Several workers may share one work_root: a folder whose job is running in
another live process is always locked, so it is never swept.
"""

from __future__ import annotations

import errno
import fcntl
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core import logs
from core.contract import ErrorCode, JobError, Stage

LOCK_NAME = ".running"
PREFIX = "job-"
UNLOCKED_GRACE_S = 60.0
"""A folder is made a moment before its lock file; one younger than this without a lock file is left alone."""
log = logs.get_logger("workdirs")


def unwritable(folder: Path, error: OSError) -> str:
    """One line naming a folder the worker cannot write, why, and the settings that move it."""
    reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or type(error).__name__)
    return (
        f"the worker cannot write {folder} ({reason}): free space there or make it writable, or point "
        "STUDIO_TMP_DIR or STUDIO_DATA_DIR at a folder on a disk with room"
    )


@contextmanager
def job_dir(work_root: Path, key_id: str) -> Iterator[Path]:
    """A fresh folder for one job, locked while the job runs and removed afterwards, however it ends."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", key_id)[:64]
    try:
        work_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{safe}-", dir=work_root))
    except OSError as error:
        raise JobError(ErrorCode.PIPELINE_LOAD, unwritable(work_root, error), at_stage=Stage.VALIDATION_OK) from None
    try:
        with (folder / LOCK_NAME).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _abandoned(folder: Path, now: float) -> bool:
    lock_path = folder / LOCK_NAME
    try:
        with lock_path.open("r") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True  # nobody holds it: its job's process is gone
    except BlockingIOError:
        return False  # a live job
    except FileNotFoundError:
        try:
            return now - folder.stat().st_mtime > UNLOCKED_GRACE_S
        except FileNotFoundError:
            return False


def sweep(work_root: Path) -> int:
    """Remove the job folders under work_root that no live process holds; return how many were removed."""
    if not work_root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for folder in work_root.glob(f"{PREFIX}*"):
        if folder.is_dir() and not folder.is_symlink() and _abandoned(folder, now):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed job folders left by stopped workers", extra={"folders": removed, "root": str(work_root)})
    return removed
