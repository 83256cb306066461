"""The catalogue's SQLite schema, created and migrated in one place.

`PRAGMA user_version` holds the schema version; each migration moves it up by one and runs once, inside a
transaction (core/db.py, shared with the endpoint's queue), so an old catalogue file opens with every column the
code expects. Column changes go through
sqlite-utils `transform` (SQLite cannot alter a column in place), via `_transform_runs`, which also restores
the triggers (full-text index, facet combinations) that a table rebuild would otherwise leave behind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from core import db as sqlite_files
from core.contract import storable_params

SCHEMA_VERSION = 13

_V1_RUN_COLUMNS: dict[str, type] = {
    "run_id": str,
    "job_id": str,
    "item_id": str,
    "endpoint_id": str,
    "engine": str,
    "engine_version": str,
    "status": str,
    "prompt": str,
    "created_at": str,
    "started_at": str,
    "finished_at": str,
    "updated_at": str,
    "size": str,
    "mode": str,
    "sample_steps": int,
    "base_seed": int,
    "text_guide_scale": float,
    "audio_guide_scale": float,
    "speakers": int,
    "input_kind": str,
    "audio_duration_s": float,
    "video_duration_s": float,
    "width": int,
    "height": int,
    "frames": int,
    "params": str,
    "timings": str,
    "total_ms": int,
    "delay_ms": int,
    "execution_ms": int,
    "progress_pct": float,
    "progress_stage": str,
    "video_key": str,
    "thumb_key": str,
    "metadata_key": str,
    "store_kind": str,
    "store_bucket": str,
    "error_code": str,
    "error_message": str,
    "warnings": str,
    "tags": str,
    "favourite": int,
    "note": str,
    "source": str,
}
_V8_RUN_COLUMNS: dict[str, type] = {
    "submitted_by": str,
    "request_key": str,
    "tags_at": str,
    "favourite_at": str,
    "note_at": str,
}
_V9_RUN_COLUMNS: dict[str, type] = {"gpu_name": str, "gpu_count": int, "cost_usd": float}
_V10_RUN_COLUMNS: dict[str, type] = {"retry_of": str, "retries": int}
_V13_RUN_COLUMNS: dict[str, type] = {"parts": str}
RUN_COLUMNS: dict[str, type] = {
    **_V1_RUN_COLUMNS,
    "batch_items": int,
    **_V8_RUN_COLUMNS,
    **_V9_RUN_COLUMNS,
    **_V10_RUN_COLUMNS,
    **_V13_RUN_COLUMNS,
}
"""Every column of `runs`. `batch_items` is set on a batch job once its items are runs of their own: from then on
the batch is only their container, left out of search, facets and totals so each video counts once (as it does
in a catalogue rebuilt from the bucket, which holds the items alone). `submitted_by` is the signed-in user who
sent the job, `request_key` the request file a submit wrote or a sync took in, and `tags_at`, `favourite_at`,
`note_at` when each was last changed: the bucket's curation file carries the same times, and the newer wins.
`gpu_name` and `gpu_count` are the GPU the worker ran on (metadata.json's `gpu`), `cost_usd` what the run cost:
billed seconds × that GPU's per-second price (core/prices.py), 0 for the preview engine, NULL when unknown.
`retry_of` is the run a Retry resubmitted as this one (RunPod: a new job), `retries` how many times a run was
run again under its own id (the local endpoint's /retry). `parts` is a split run's parts (docs/split.md), a JSON
list of core.contract.SplitPart without their job inputs: each part's span, job, state, GPU time, cost and error;
NULL for a run rendered as one job."""
FTS_COLUMNS = ["prompt", "tags", "note", "error_message"]
FACET_COLUMNS = ("status", "engine", "size", "mode", "sample_steps", "speakers", "input_kind")


def _v1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(_V1_RUN_COLUMNS, pk="run_id", not_null={"status", "created_at"}, defaults={"favourite": 0})
    db.table("runs").create_index(["created_at"])
    db.table("runs").create_index(["status", "created_at"])
    db.table("runs").create_index(["job_id"])
    db.table("runs").enable_fts(FTS_COLUMNS, create_triggers=True, tokenize="porter")
    db.table("progress_events").create(
        {"id": int, "run_id": str, "at": str, "stage": str, "pct": float, "payload": str}, pk="id"
    )
    db.table("progress_events").create_index(["run_id", "id"])
    db.table("health_samples").create(
        {
            "id": int,
            "endpoint_id": str,
            "at": str,
            "in_queue": int,
            "in_progress": int,
            "completed": int,
            "failed": int,
            "retried": int,
            "workers_idle": int,
            "workers_running": int,
            "workers_other": int,
            "payload": str,
        },
        pk="id",
    )
    db.table("health_samples").create_index(["endpoint_id", "at"])


def _v2(db: sqlite_utils.Database) -> None:
    # Facets scan one covering index instead of the table.
    db.table("runs").create_index(list(FACET_COLUMNS), index_name="runs_facets")


def _transform_runs(db: sqlite_utils.Database, **changes: Any) -> None:
    """Rebuild `runs` with sqlite-utils transform, keeping its triggers.

    transform copies rows (rowids included, so the full-text index stays valid) into a new table and drops the
    old one, and SQLite drops a table's triggers with it: without re-creating them, edits after the migration
    would silently stop reaching search and facets.
    """
    triggers = [
        sql for (sql,) in db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'runs'")
    ]
    db.table("runs").transform(**changes)
    for sql in triggers:
        db.execute(sql)


def _v3(db: sqlite_utils.Database) -> None:
    # Submissions recorded before params were cleaned may hold inline media and signed URLs.
    for run_id, params in db.execute("SELECT run_id, params FROM runs WHERE params IS NOT NULL").fetchall():
        clean = json.dumps(storable_params(json.loads(params)), sort_keys=True)
        if clean != params:
            db.execute("UPDATE runs SET params = ? WHERE run_id = ?", [clean, run_id])
    # A NULL favourite or tags falls outside both the "favourites" and "not favourites" filters.
    db.execute("UPDATE runs SET favourite = 0 WHERE favourite IS NULL")
    db.execute("UPDATE runs SET tags = '' WHERE tags IS NULL")
    _transform_runs(db, not_null={"favourite", "tags"}, defaults={"favourite": 0, "tags": ""})


def _v4(db: sqlite_utils.Database) -> None:
    """Facet combinations: each run's seven facet values as one small integer, kept by triggers.

    Counting facets then groups one integer per matching run in a narrow table (`run_combos`), instead of
    reading and sorting seven columns of the wide `runs` rows: 3-4x faster at 100 000 runs.
    """
    db.table("facet_combos").create({"id": int, **{c: RUN_COLUMNS[c] for c in FACET_COLUMNS}}, pk="id")
    db.table("facet_combos").create_index(list(FACET_COLUMNS), index_name="facet_combos_values")
    db.table("run_combos").create({"run_rowid": int, "combo": int}, pk="run_rowid", not_null={"combo"})
    db.table("run_combos").create_index(["combo"])
    _fill_combos(db)
    db.executescript(_combo_triggers(containers=False))
    db.execute("DROP INDEX runs_facets")


def _v5(db: sqlite_utils.Database) -> None:
    """Batch containers (`batch_items`) leave the facet combinations: their items are counted instead."""
    db.table("runs").add_column("batch_items", int)
    db.executescript("DROP TRIGGER runs_combo_ai; DROP TRIGGER runs_combo_au; DROP TRIGGER runs_combo_ad;")
    db.executescript(_combo_triggers())
    items = "SELECT COUNT(*) FROM runs AS item WHERE item.job_id = runs.run_id AND item.item_id IS NOT NULL"
    db.execute(f"UPDATE runs SET batch_items = ({items}) WHERE item_id IS NULL AND ({items}) > 0")


NUMBER_COLUMNS = [
    name
    for name, kind in {**_V1_RUN_COLUMNS, "batch_items": int}.items()
    if kind in (int, float) and name != "favourite"
]
"""The number columns version 6 cleans: those that existed then (later ones are checked by RunRecord from the
start)."""


def _v6(db: sqlite_utils.Database) -> None:
    """Number columns hold numbers: what older syncs let in (a duration of "long") becomes NULL.

    Sync now checks every row against RunRecord before writing it; this clears what it took in before, which
    made History's cards and detail raise for everyone. The full file is still in the bucket.
    """
    for name in NUMBER_COLUMNS:
        db.execute(
            f"UPDATE runs SET {name} = NULL WHERE {name} IS NOT NULL "
            f"AND (typeof({name}) NOT IN ('integer', 'real') OR {name} IN (9e999, -9e999))"
        )


def _escaped_sql(column: str) -> str:
    return f"replace(replace({column}, '%', '%25'), ':', '%3A')"


def _v7(db: sqlite_utils.Database) -> None:
    """Run ids percent-escape ':' and '%' in the job and item ids (records.run_id_for), so they are unambiguous.

    Job `a:b` and item `b` of job `a` were both `a:b`. Only ids holding ':' or '%' in a part change; their
    progress events follow. Rows are renamed in two passes, through a name of their rowid, so that a new id never
    meets an old one that is about to be renamed (job `a%3Ab` and job `a:b`).
    """
    item = "CASE WHEN item_id IS NOT NULL AND item_id != '' THEN ':' || " + _escaped_sql("item_id") + " ELSE '' END"
    new = f"({_escaped_sql('job_id')} || {item})"
    moved = f"job_id IS NOT NULL AND run_id IS NOT {new}"
    db.execute(
        f"UPDATE progress_events SET run_id = (SELECT {new} FROM runs WHERE runs.run_id = progress_events.run_id) "
        f"WHERE run_id IN (SELECT run_id FROM runs WHERE {moved})"
    )
    rowids = [(rowid,) for (rowid,) in db.execute(f"SELECT rowid FROM runs WHERE {moved}").fetchall()]
    db.conn.executemany("UPDATE runs SET run_id = 'v7 renaming ' || rowid WHERE rowid = ?", rowids)
    db.conn.executemany(f"UPDATE runs SET run_id = {new} WHERE rowid = ?", rowids)


def _v8(db: sqlite_utils.Database) -> None:
    """Who submitted a run, its request file, and when each part of its curation changed (catalog/bucket.py).

    Tags, favourite and note are written to the bucket beside the run, each with its time, so that a catalogue
    rebuilt on a wiped disk gets them back and two dashboards on one bucket merge them, newest first.
    """
    for name, kind in _V8_RUN_COLUMNS.items():
        db.table("runs").add_column(name, kind)
    db.table("runs").create_index(["submitted_by", "created_at"])
    db.table("runs").create_index(["request_key"])


def _v9(db: sqlite_utils.Database) -> None:
    """The GPU each run ran on and what it cost (core/prices.py).

    Runs made before GPUs were recorded keep a NULL cost, which History shows as unknown rather than guessing a
    GPU; finished runs of the preview engine cost nothing, and say so. History sorts and sums by cost.
    """
    for name, kind in _V9_RUN_COLUMNS.items():
        db.table("runs").add_column(name, kind)
    db.execute("UPDATE runs SET cost_usd = 0 WHERE engine = 'preview' AND finished_at IS NOT NULL")
    db.table("runs").create_index(["cost_usd"])


def _v10(db: sqlite_utils.Database) -> None:
    """Retry's trace (issue 29): the run a resubmission retries, and how often a run was retried in place, so both
    cards say so ("Retry of …", "Retried as …") after a reload or on another browser."""
    for name, kind in _V10_RUN_COLUMNS.items():
        db.table("runs").add_column(name, kind)
    db.table("runs").create_index(["retry_of"])
    db.table("runs").create_index(["finished_at"])  # Live's "Just finished", read every second


SORT_INDEXES = {"longest": ["video_duration_s", "created_at"]}
"""Indexes a search walks to show one page in the order of a sort other than by date or cost (catalog/search.py),
instead of reading and sorting every match: by video length (version 11; version 12 adds the other sorts')."""


def _v11(db: sqlite_utils.Database) -> None:
    """History at a million runs (issue 32): what a search counts, read without touching the wide `runs` rows.

    `run_combos` gains each run's `created_at` and `cost_usd`, so a date range is counted, and a search's cost
    summed, from the narrow table; `facet_combos` gains how many runs have each combination, how many of them have
    a cost and its sum (`run_count`, `priced_count`, `cost_usd_sum`, kept by triggers on `run_combos`), so the
    counts and cost of an empty search, or of one narrowed by facets alone, are read rather than counted; and an
    index by video length lets a page of the longest be found by walking it (SORT_INDEXES). The index of
    `run_combos` by combination goes: searches look runs up by rowid, and it cost every write.
    """
    db.execute("ALTER TABLE run_combos ADD COLUMN created_at TEXT")
    db.execute("ALTER TABLE run_combos ADD COLUMN cost_usd FLOAT")
    db.execute("ALTER TABLE facet_combos ADD COLUMN run_count INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE facet_combos ADD COLUMN priced_count INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE facet_combos ADD COLUMN cost_usd_sum FLOAT NOT NULL DEFAULT 0")
    sqlite_files.run_script(
        db.conn,
        "".join(f"DROP TRIGGER IF EXISTS runs_combo_{event};" for event in ("ai", "au", "ad", "cost")),
    )
    sqlite_files.run_script(db.conn, _search_triggers())
    db.execute("DROP INDEX IF EXISTS idx_run_combos_combo")
    _fill_search(db)
    for columns in SORT_INDEXES.values():
        db.table("runs").create_index(columns)


V12_SORT_INDEXES = {"idx_runs_cost_usd_created_at": "cost_usd, created_at"}
"""Costliest first as an index in exactly its order (catalog.search.SORTS; the rowid, every index's last column,
breaks the last ties), replacing the index on cost alone. Slowest, Most steps and Cheapest first get none: three
more indexes made the bench's fill 18 % slower in CPU (30 000 runs, interleaved), so their pages still sort
every match."""


def _v12(db: sqlite_utils.Database) -> None:
    """Costliest first walks an index in exactly its order (issue 32): (cost_usd, created_at) replaces the index
    on cost alone, whose walks had to sort each run of equal costs by date. A page of a common word is found by
    walking it and checking each run against the words, instead of fetching and sorting all of its matches."""
    db.execute("DROP INDEX IF EXISTS idx_runs_cost_usd")
    for name, columns in V12_SORT_INDEXES.items():
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON runs ({columns})")


def _v13(db: sqlite_utils.Database) -> None:
    """A split run's parts (issue 30): History's card says "Split into N parts" and its detail lists each part,
    read from the row rather than the bucket. Rows of split runs synced before this learn their parts at the next
    sync (catalog.sync reads their metadata.json or split.json again once)."""
    for name, kind in _V13_RUN_COLUMNS.items():
        db.table("runs").add_column(name, kind)


def _fill_combos(db: sqlite_utils.Database) -> None:
    names = ", ".join(FACET_COLUMNS)
    same = " AND ".join(f"facet_combos.{c} IS runs.{c}" for c in FACET_COLUMNS)
    counted = "runs.batch_items IS NULL" if "batch_items" in db.table("runs").columns_dict else "1"
    db.execute("DELETE FROM run_combos")
    db.execute(
        f"INSERT INTO facet_combos ({names}) SELECT DISTINCT {names} FROM runs EXCEPT SELECT {names} FROM facet_combos"
    )
    db.execute(
        "INSERT INTO run_combos (run_rowid, combo) "
        f"SELECT runs.rowid, facet_combos.id FROM runs JOIN facet_combos ON {same} WHERE {counted}"
    )


COUNT_TRIGGERS = """
    CREATE TRIGGER run_combos_count_ai AFTER INSERT ON run_combos BEGIN
        UPDATE facet_combos SET run_count = run_count + 1, priced_count = priced_count + (new.cost_usd IS NOT NULL),
            cost_usd_sum = cost_usd_sum + COALESCE(new.cost_usd, 0) WHERE id = new.combo;
    END;
    CREATE TRIGGER run_combos_count_ad AFTER DELETE ON run_combos BEGIN
        UPDATE facet_combos SET run_count = run_count - 1, priced_count = priced_count - (old.cost_usd IS NOT NULL),
            cost_usd_sum = cost_usd_sum - COALESCE(old.cost_usd, 0) WHERE id = old.combo;
    END;
    CREATE TRIGGER run_combos_count_au AFTER UPDATE OF combo, cost_usd ON run_combos BEGIN
        UPDATE facet_combos SET run_count = run_count - 1, priced_count = priced_count - (old.cost_usd IS NOT NULL),
            cost_usd_sum = cost_usd_sum - COALESCE(old.cost_usd, 0) WHERE id = old.combo;
        UPDATE facet_combos SET run_count = run_count + 1, priced_count = priced_count + (new.cost_usd IS NOT NULL),
            cost_usd_sum = cost_usd_sum + COALESCE(new.cost_usd, 0) WHERE id = new.combo;
    END;"""
"""The counts and cost sums of `facet_combos` follow every change to `run_combos`, whoever makes it (the triggers
on `runs`, a hand edit): an empty search's counts and cost are read from them, so they must never drift."""


def _search_triggers() -> str:
    """Triggers keeping `run_combos` (combination, creation time and cost of every run but batch containers) in
    step with `runs`, and the counts per combination with it (version 11 on; versions 4 and 5 had `_combo_triggers`).

    A changed run's entry is deleted and inserted again, never replaced: a REPLACE deletes without running the
    delete trigger (SQLite runs it only with recursive_triggers on), and the counts would drift. A new cost alone
    (every finished run is priced after it is written) only updates the entry's cost.
    """
    names = ", ".join(FACET_COLUMNS)
    same = " AND ".join(f"{c} IS new.{c}" for c in FACET_COLUMNS)
    keep = f"""
        INSERT INTO facet_combos ({names})
            SELECT {", ".join(f"new.{c}" for c in FACET_COLUMNS)}
            WHERE new.batch_items IS NULL AND NOT EXISTS (SELECT 1 FROM facet_combos WHERE {same});
        INSERT INTO run_combos (run_rowid, combo, created_at, cost_usd)
            SELECT new.rowid, (SELECT id FROM facet_combos WHERE {same}), new.created_at, new.cost_usd
            WHERE new.batch_items IS NULL;"""
    return f"""
        CREATE TRIGGER runs_combo_ai AFTER INSERT ON runs BEGIN
            DELETE FROM run_combos WHERE run_rowid = new.rowid;{keep}
        END;
        CREATE TRIGGER runs_combo_au AFTER UPDATE OF {names}, batch_items, created_at ON runs BEGIN
            DELETE FROM run_combos WHERE run_rowid IN (old.rowid, new.rowid);{keep}
        END;
        CREATE TRIGGER runs_combo_cost AFTER UPDATE OF cost_usd ON runs BEGIN
            UPDATE run_combos SET cost_usd = new.cost_usd WHERE run_rowid = new.rowid;
        END;
        CREATE TRIGGER runs_combo_ad AFTER DELETE ON runs BEGIN
            DELETE FROM run_combos WHERE run_rowid = old.rowid;
        END;
        {COUNT_TRIGGERS}"""


def _fill_search(db: sqlite_utils.Database) -> None:
    """Fill `run_combos` and the counts per combination from the runs, in bulk (the count triggers are set aside
    meanwhile: a trigger per row would take minutes at a million runs)."""
    sqlite_files.run_script(
        db.conn,
        "DROP TRIGGER IF EXISTS run_combos_count_ai; DROP TRIGGER IF EXISTS run_combos_count_ad; "
        "DROP TRIGGER IF EXISTS run_combos_count_au;",
    )
    names = ", ".join(FACET_COLUMNS)
    same = " AND ".join(f"facet_combos.{c} IS runs.{c}" for c in FACET_COLUMNS)
    db.execute("DELETE FROM run_combos")
    db.execute(
        f"INSERT INTO facet_combos ({names}) SELECT DISTINCT {names} FROM runs WHERE batch_items IS NULL "
        f"EXCEPT SELECT {names} FROM facet_combos"
    )
    db.execute(
        "INSERT INTO run_combos (run_rowid, combo, created_at, cost_usd) "
        "SELECT runs.rowid, facet_combos.id, runs.created_at, runs.cost_usd "
        f"FROM runs JOIN facet_combos ON {same} WHERE runs.batch_items IS NULL"
    )
    db.execute("UPDATE facet_combos SET run_count = 0, priced_count = 0, cost_usd_sum = 0")
    db.execute(
        "UPDATE facet_combos SET (run_count, priced_count, cost_usd_sum) = (counted.n, counted.priced, counted.usd) "
        "FROM (SELECT combo, COUNT(*) AS n, COUNT(cost_usd) AS priced, TOTAL(cost_usd) AS usd FROM run_combos "
        "GROUP BY combo) AS counted WHERE counted.combo = facet_combos.id"
    )
    sqlite_files.run_script(db.conn, COUNT_TRIGGERS)


def rebuild_indexes(db: sqlite_utils.Database) -> None:
    """Rebuild what is derived from `runs` by rowid: the full-text index, the facet combinations and their counts.

    Triggers keep them in step with every write; a rebuild is needed only if rowids changed behind their back
    (a VACUUM may renumber a table without an INTEGER PRIMARY KEY) or a file was edited by hand.
    """
    db.table("runs").rebuild_fts()
    _fill_search(db)


def _combo_triggers(*, containers: bool = True) -> str:
    """Triggers keeping `run_combos` in step with `runs`; with `containers`, batch containers are left out
    (version 4's triggers predate the `batch_items` column)."""
    names = ", ".join(FACET_COLUMNS)
    same = " AND ".join(f"{c} IS new.{c}" for c in FACET_COLUMNS)
    counted = "new.batch_items IS NULL" if containers else "1"
    watched = f"{names}, batch_items" if containers else names
    keep = f"""
        INSERT INTO facet_combos ({names})
            SELECT {", ".join(f"new.{c}" for c in FACET_COLUMNS)}
            WHERE {counted} AND NOT EXISTS (SELECT 1 FROM facet_combos WHERE {same});
        INSERT OR REPLACE INTO run_combos (run_rowid, combo)
            SELECT new.rowid, (SELECT id FROM facet_combos WHERE {same}) WHERE {counted};"""
    return f"""
        CREATE TRIGGER runs_combo_ai AFTER INSERT ON runs BEGIN {keep}
        END;
        CREATE TRIGGER runs_combo_au AFTER UPDATE OF {watched} ON runs BEGIN
            DELETE FROM run_combos WHERE run_rowid = old.rowid AND NOT ({counted});{keep}
        END;
        CREATE TRIGGER runs_combo_ad AFTER DELETE ON runs BEGIN
            DELETE FROM run_combos WHERE run_rowid = old.rowid;
        END;"""


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _v6,
    _v7,
    _v8,
    _v9,
    _v10,
    _v11,
    _v12,
    _v13,
]


class CatalogError(Exception):
    """The catalogue file cannot be used. The message is one line naming the file and the fix, for the command
    line's `error:` and History's banner; a traceback would tell a user neither."""


DAMAGED = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
UNWRITABLE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_FULL")


def explain(error: BaseException, path: Path) -> CatalogError:
    """One line for an error from opening or using the catalogue at path: what is wrong and what to do.

    Garbage bytes are SQLITE_NOTADB, a truncated file SQLITE_CORRUPT: the file is only an index of the bucket,
    so the fix is to move it aside and sync. A read-only data dir fails creating the folder (an OSError), the
    file (SQLITE_CANTOPEN) or its WAL beside it (SQLITE_READONLY_DIRECTORY).
    """
    if isinstance(error, CatalogError):
        return error
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith(DAMAGED):
        return CatalogError(
            f"the catalogue {path} is damaged ({error}): move it aside (mv {path} {path}.broken), "
            "then run `studio catalog sync` (or History's Sync from bucket) to rebuild it from the bucket"
        )
    if isinstance(error, OSError) or name.startswith(UNWRITABLE):
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return CatalogError(
            f"cannot write the catalogue {path} ({reason}): make {path.parent} writable by this user, "
            "or set STUDIO_CATALOG (or STUDIO_DATA_DIR) to a place that is"
        )
    return CatalogError(f"cannot use the catalogue {path}: {error}")


MMAP_BYTES = 0x7FFF0000
"""How much of the file SQLite reads through a memory map (its largest, about 2 GiB; a million runs are 1.2 GB)
rather than a read() per page: a search looks up thousands of scattered rows, and under a 2 MB page cache each was
a system call (issue 32: 25-30 % off a search at a million runs). The map is the OS's page cache, shared by every
connection, so it costs no memory of its own. `temp_store=MEMORY` keeps a search's gathered matches
(catalog/search.py MATCHES) out of a temporary file: gathering 100 000 took half the time."""


def connect(path: Path) -> sqlite_utils.Database:
    """Open (creating and migrating) the catalogue at path: WAL mode, a busy timeout for concurrent writers, reads
    through a memory map (MMAP_BYTES).

    A file that is not a catalogue or cannot be written is a CatalogError naming the fix (see `explain`).
    """
    try:
        db = sqlite_utils.Database(
            sqlite_files.connect(
                path, "journal_mode=WAL", "synchronous=NORMAL", f"mmap_size={MMAP_BYTES}", "temp_store=MEMORY"
            )
        )
        migrate(db)
    except (sqlite3.Error, OSError) as error:
        raise explain(error, path) from error
    return db


def migrate(db: sqlite_utils.Database) -> int:
    """Apply the migrations the file has not seen yet; return the schema version."""
    return sqlite_files.migrate(db.conn, MIGRATIONS, db)
