"""core/db.py, the SQLite helper the catalogue and the endpoint's queue share: real files, real migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.db import connect, migrate, run_script, user_version


def tables(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def test_each_migration_runs_once_in_order_and_the_version_counts_them(tmp_path: Path) -> None:
    ran: list[int] = []
    migrations = [lambda db: (ran.append(1), db.execute("CREATE TABLE a (x)")), lambda db: ran.append(2)]
    conn = connect(tmp_path / "sub" / "f.db", "journal_mode=WAL")

    assert migrate(conn, migrations, conn) == 2 and ran == [1, 2] and user_version(conn) == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    again = connect(tmp_path / "sub" / "f.db")
    assert migrate(again, migrations, again) == 2 and ran == [1, 2], "a migrated file runs nothing again"
    more = [*migrations, lambda db: db.execute("CREATE TABLE b (y)")]
    assert migrate(again, more, again) == 3 and tables(again) == ["a", "b"], "a new migration runs alone"


def test_a_failing_migration_rolls_back_whole_and_keeps_the_version_before_it(tmp_path: Path) -> None:
    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        raise ValueError("disk says no")

    conn = connect(tmp_path / "f.db")
    with pytest.raises(ValueError, match="disk says no"):
        migrate(conn, [lambda db: db.execute("CREATE TABLE a (x)"), half_then_fail], conn)

    assert user_version(conn) == 1 and tables(conn) == ["a"] and not conn.in_transaction
    fixed = [lambda db: db.execute("CREATE TABLE a (x)"), lambda db: db.execute("CREATE TABLE half (x)")]
    assert migrate(conn, fixed, conn) == 2 and tables(conn) == ["a", "half"], "the next open tries again"


def test_a_script_with_a_trigger_runs_inside_the_migration_transaction(tmp_path: Path) -> None:
    script = """
        CREATE TABLE jobs (id TEXT, status TEXT, note TEXT DEFAULT 'a;b');
        CREATE TRIGGER jobs_done AFTER UPDATE OF status ON jobs BEGIN
            UPDATE jobs SET note = 'done; really' WHERE id = new.id;
        END;
    """

    def with_script_then_fail(db: sqlite3.Connection) -> None:
        run_script(db, script)
        assert db.in_transaction, "executescript would have committed here"
        raise RuntimeError("after the script")

    conn = connect(tmp_path / "f.db")
    with pytest.raises(RuntimeError):
        migrate(conn, [with_script_then_fail], conn)
    assert tables(conn) == [], "the script rolled back with its migration"

    assert migrate(conn, [lambda db: run_script(db, script)], conn) == 1
    conn.execute("INSERT INTO jobs (id, status) VALUES ('j', 'IN_QUEUE')")
    conn.execute("UPDATE jobs SET status = 'COMPLETED'")
    assert conn.execute("SELECT note FROM jobs").fetchone()[0] == "done; really"
