"""Who drives a split run now: a lease beside its plan, `{prefix}/{run_id}/driver.json` (issue 30, docs/split.md).

A split run's pending parts must be sent by one process only, or a part is rendered twice. A waiting `studio
submit` (SplitRun.run) and every dashboard's split driver (dashboard/split_driver.py) may find the same run; the
one holding the lease drives it, the others leave it alone until it is given back or expires (a process that died
holds nothing after LEASE_S). `studio submit` takes it whoever held it (the person asked for it); a dashboard's
driver only when it is free, its own, or expired, and it reads it again on every step, so a `studio submit
--resume` taking a run over stops the dashboard's driver within one of its ticks.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid

from core.store import Store

LEASE_S = 60.0
"""How long a hold lasts unless renewed."""
RENEW_S = 10.0
"""How often a holder writes its hold again."""


def holder_name(kind: str) -> str:
    """A holder's name: what it is, its machine and process, and a random part (two drivers in one process)."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One holder's hold on one run's `driver.json`."""

    def __init__(self, store: Store, folder: str, holder: str) -> None:
        self.store = store
        self.key = f"{folder}/driver.json"
        self.holder = holder
        self.renewed_at: float | None = None

    def other_holder(self) -> str | None:
        """The holder of an unexpired hold that is not this one's, else None."""
        try:
            lease = json.loads(self.store.get(self.key))
        except Exception:  # none (or unreadable): free
            return None
        if not isinstance(lease, dict) or lease.get("holder") == self.holder:
            return None
        try:
            until = float(lease.get("until") or 0)
        except (TypeError, ValueError):
            return None
        return str(lease.get("holder")) if until > time.time() else None

    def keep(self, *, take: bool = False) -> bool:
        """Hold the run (written again every RENEW_S); False when another holds it and `take` is not set."""
        if not take and self.other_holder() is not None:
            self.renewed_at = None
            return False
        if self.renewed_at is None or time.monotonic() - self.renewed_at >= RENEW_S:
            body = {"holder": self.holder, "until": time.time() + LEASE_S}
            self.store.put_bytes(self.key, json.dumps(body).encode("utf-8"))
            self.renewed_at = time.monotonic()
        return True

    def release(self) -> None:
        """Give the run back (only a hold of this holder's own)."""
        if self.renewed_at is None or self.other_holder() is not None:
            return
        with contextlib.suppress(Exception):
            self.store.delete(self.key)
        self.renewed_at = None
