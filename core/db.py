"""SQLite files of our own (the catalogue, the local endpoint's queue): opened one way, migrated one way.

Both are shared by several processes (the dashboard and `studio catalog`; the endpoint's API and its worker
processes), so both open in autocommit mode with a busy timeout, and every transaction is an explicit
`BEGIN IMMEDIATE`. `PRAGMA user_version` holds how many numbered migrations a file has seen; each one runs once,
inside a transaction together with the version bump, so a file is never left half-migrated and two processes
opening an old file at once migrate it once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another's lock before SQLITE_BUSY: longer than any one transaction here."""

Handle = TypeVar("Handle")


def connect(path: Path, *pragmas: str) -> sqlite3.Connection:
    """Open (creating its folder) the SQLite file at path in autocommit mode, then run each pragma in order.

    Pragmas that must run outside a transaction (`journal_mode=WAL`, `auto_vacuum=…` on a new file) belong here,
    before `migrate`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    for pragma in pragmas:
        conn.execute(f"PRAGMA {pragma}")
    return conn


def user_version(conn: sqlite3.Connection) -> int:
    """How many migrations the file has seen."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[Callable[[Handle], None]], handle: Handle) -> int:
    """Apply the migrations the file has not seen yet, each with `handle` (the connection, or a wrapper of it such
    as a sqlite_utils Database), in a transaction with its version bump; return the file's version.

    A failing migration rolls back and raises: the file keeps the version before it, and the next open tries again.
    """
    version = user_version(conn)
    while version < len(migrations):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if user_version(conn) == version:  # another process may have migrated while we waited for the lock
                migrations[version](handle)
                conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = user_version(conn)
    return version


def run_script(conn: sqlite3.Connection, sql: str) -> None:
    """Run several statements (triggers included) inside the current transaction.

    `executescript` would COMMIT the migration's transaction first; this runs each complete statement in turn.
    """
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                conn.execute(pending)
            pending = ""
