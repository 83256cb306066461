"""The catalogue file: created on first open, migrated in place, shared by several processes."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from catalog import Catalog, search
from catalog.schema import MIGRATIONS, SCHEMA_VERSION
from catalog.search import CostTotal


def _open(path: str) -> None:
    Catalog(Path(path)).record_submission(f"job-{multiprocessing.current_process().name}", {}, endpoint_id="local")


def test_several_processes_opening_a_new_file_at_once_all_get_the_same_schema(tmp_path: Path) -> None:
    path = tmp_path / "new" / "catalog.db"
    context = multiprocessing.get_context("spawn")
    openers = [context.Process(target=_open, args=(str(path),), name=f"p{index}") for index in range(3)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(60)

    assert [opener.exitcode for opener in openers] == [0, 0, 0]
    catalog = Catalog(path)
    assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert catalog.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert catalog.search("").total == 3


def file_at_version(path: Path, version: int) -> sqlite_utils.Database:
    """A catalogue file as an older release left it: only its first `version` migrations applied."""
    old = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    for migration in MIGRATIONS[:version]:
        migration(old)
    old.execute(f"PRAGMA user_version={version}")
    return old


def test_a_version_2_file_is_migrated_with_its_runs_searchable_and_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = file_at_version(path, 2)
    old["runs"].insert(
        {
            "run_id": "old-1",
            "job_id": "old-1",
            "status": "COMPLETED",
            "created_at": "2026-01-01T00:00:00Z",
            "prompt": "an astronaut from the old days",
            "size": "infinitetalk-480",
            "params": json.dumps({"cond_video": "data:image/png;base64," + "A" * 4000, "prompt": "x"}),
            "favourite": None,
            "tags": None,
        }
    )
    old.conn.close()

    catalog = Catalog(path)

    assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    run = catalog.get("old-1")
    assert (run["favourite"], run["tags"], run["size"]) == (0, "", "infinitetalk-480")
    assert run["params"]["cond_video"] == "(inline base64 data, not stored)"
    assert [r["run_id"] for r in catalog.search("astronaut").rows] == ["old-1"]
    catalog.set_note("old-1", "rediscovered")
    assert catalog.search("rediscovered").total == 1, "edits after the table rebuild still reach search"
    assert catalog.search("", favourite=0, size="infinitetalk-480").total == 1
    assert catalog.search("").facets["size"] == {"infinitetalk-480": 1}, "facets count runs from before"
    catalog.conn.execute("UPDATE runs SET size = 'infinitetalk-720'")
    assert catalog.search("").facets["size"] == {"infinitetalk-720": 1}, "and follow edits made after"
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        catalog.conn.execute("UPDATE runs SET favourite = NULL")


def test_reindex_rebuilds_search_and_facets_that_lost_track_of_the_runs(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    for index in range(5):
        params = {
            "prompt": f"astronaut number {index}",
            "size": "infinitetalk-720" if index % 2 else "infinitetalk-480",
        }
        catalog.record_submission(f"job-{index}", params, endpoint_id="local")
    # What a VACUUM renumbering the rows, or a hand edit, leaves behind: indexes pointing at no run.
    catalog.conn.execute("INSERT INTO runs_fts (runs_fts) VALUES ('delete-all')")
    catalog.conn.execute("DELETE FROM run_combos")
    assert catalog.search("astronaut").total == 0 and catalog.search("").total == 0

    catalog.reindex()

    assert catalog.search("astronaut").total == 5
    assert catalog.search("").facets["size"] == {"infinitetalk-480": 3, "infinitetalk-720": 2}


def test_a_version_4_file_stops_counting_batches_twice(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    old = file_at_version(path, 4)
    base = {"status": "COMPLETED", "created_at": "2026-01-01T00:00:00Z", "job_id": "batch-1", "favourite": 0}
    rows = [
        {**base, "run_id": "batch-1"},
        {**base, "run_id": "batch-1:a", "item_id": "a"},
        {**base, "run_id": "batch-1:b", "item_id": "b"},
        {**base, "run_id": "solo", "job_id": "solo"},
    ]
    old["runs"].insert_all(rows)
    assert old.execute("SELECT COUNT(*) FROM run_combos").fetchone()[0] == 4
    old.conn.close()

    catalog = Catalog(path)

    assert catalog.get("batch-1")["batch_items"] == 2
    assert catalog.search("").total == 3 and catalog.stats()["runs"] == 3
    assert sorted(row["run_id"] for row in catalog.search("").rows) == ["batch-1:a", "batch-1:b", "solo"]


def test_a_version_5_file_clears_text_from_number_columns_so_history_can_format_them(tmp_path: Path) -> None:
    """An older sync took in a file with `duration_s: "long"`; History's cards then raised for everyone."""
    path = tmp_path / "v5.db"
    old = file_at_version(path, 5)
    base = {"status": "COMPLETED", "created_at": "2026-01-01T00:00:00Z", "favourite": 0, "tags": ""}
    odd = {"video_duration_s": "long", "total_ms": "slow", "width": "wide", "sample_steps": "forty"}
    old["runs"].insert_all(
        [
            {**base, "run_id": "odd", "job_id": "odd", **odd},
            {**base, "run_id": "fine", "job_id": "fine", "video_duration_s": 4.0, "total_ms": 65_000, "width": 640},
        ]
    )
    old.conn.close()

    catalog = Catalog(path)

    assert {name: catalog.get("odd")[name] for name in odd} == dict.fromkeys(odd)
    fine = catalog.get("fine")
    assert (fine["video_duration_s"], fine["total_ms"], fine["width"]) == (4.0, 65_000, 640), "numbers are kept"
    assert catalog.search("", sort="longest").total == 2


def test_a_version_6_file_gives_every_run_an_unambiguous_id(tmp_path: Path) -> None:
    """Job `a:b` and item `b` of job `a` were both `a:b`; ids holding ':' or '%' are escaped, the others kept."""
    path = tmp_path / "v6.db"
    old = file_at_version(path, 6)
    base = {"status": "COMPLETED", "created_at": "2026-01-01T00:00:00Z", "favourite": 0, "tags": ""}
    old["runs"].insert_all(
        [
            {**base, "run_id": "a:b", "job_id": "a:b", "prompt": "the job called a:b"},
            {**base, "run_id": "a%3Ab", "job_id": "a%3Ab", "prompt": "a job whose id looks escaped"},
            {**base, "run_id": "batch-1:item-000", "job_id": "batch-1", "item_id": "item-000"},
            {**base, "run_id": "100%", "job_id": "100%"},
        ]
    )
    old["progress_events"].insert(
        {"run_id": "a:b", "at": "2026-01-01T00:00:01Z", "stage": "x", "pct": 1.0, "payload": '{"stage": "x"}'}
    )
    old.conn.close()

    catalog = Catalog(path)

    ids = sorted(row["run_id"] for row in catalog.search("").rows)
    assert ids == sorted(["a%3Ab", "a%253Ab", "batch-1:item-000", "100%25"])
    assert catalog.get("a%3Ab")["prompt"] == "the job called a:b"
    assert catalog.get("a%253Ab")["prompt"] == "a job whose id looks escaped"
    assert [event["stage"] for event in catalog.progress_events("a%3Ab")] == ["x"], "its progress events follow"
    assert catalog.search("called").rows[0]["run_id"] == "a%3Ab", "search follows the renamed rows"

    item = catalog.record_submission("a", {"prompt": "item b of job a"}, endpoint_id="local", item_id="b")
    assert item == "a:b" and catalog.get("a:b")["prompt"] == "item b of job a"
    assert catalog.get("a%3Ab")["prompt"] == "the job called a:b", "the job of that name is another run"


def _kept_counts(catalog: Catalog) -> set[tuple]:
    """Runs, priced runs and cost per facet combination as `facet_combos` keeps them (issue 32)."""
    rows = catalog.conn.execute(
        "SELECT status, engine, size, sample_steps, run_count, priced_count, ROUND(cost_usd_sum, 6) FROM facet_combos "
        "WHERE run_count > 0"
    )
    return set(rows.fetchall())


def _counted_now(catalog: Catalog) -> set[tuple]:
    """The same, counted from the runs themselves (batch containers left out)."""
    rows = catalog.conn.execute(
        "SELECT status, engine, size, sample_steps, COUNT(*), COUNT(cost_usd), ROUND(TOTAL(cost_usd), 6) FROM runs "
        "WHERE batch_items IS NULL GROUP BY status, engine, size, sample_steps, mode, speakers, input_kind"
    )
    return set(rows.fetchall())


def test_the_counts_kept_per_combination_follow_every_write_and_reindex_rebuilds_them(tmp_path: Path) -> None:
    """An empty search reads its counts and cost from `facet_combos`: any write that moves a run between
    combinations, changes its cost or date, makes it a batch container or deletes it must move them too."""
    catalog = Catalog(tmp_path / "catalog.db")
    for index in range(6):
        params = {"prompt": f"run {index}", "size": "infinitetalk-720" if index % 2 else "infinitetalk-480"}
        catalog.record_submission(
            f"job-{index}", params, endpoint_id="local", created_at=f"2026-0{index + 1}-01T00:00:00Z"
        )
    catalog.apply_status("job-0", "IN_PROGRESS")
    catalog.apply_status("job-1", "FAILED", error={"code": "E_OOM", "message": "out of memory"})
    catalog.conn.execute("UPDATE runs SET cost_usd = 0.25 WHERE run_id = 'job-2'")
    catalog.conn.execute("UPDATE runs SET cost_usd = 0.5, sample_steps = 8 WHERE run_id = 'job-3'")
    catalog.conn.execute("UPDATE runs SET created_at = '2027-01-01T00:00:00Z' WHERE run_id = 'job-4'")
    catalog.conn.execute("UPDATE runs SET batch_items = 2 WHERE run_id = 'job-5'")  # now a container: not counted
    catalog.delete("job-0")
    assert _kept_counts(catalog) == _counted_now(catalog)
    assert catalog.search("").total == 4 and catalog.cost_total() == CostTotal(0.75, 2, 4)
    dates = dict(
        catalog.conn.execute("SELECT r.run_id, c.created_at FROM run_combos c JOIN runs r ON r.rowid = c.run_rowid")
    )
    assert dates["job-4"] == "2027-01-01T00:00:00Z" and "job-5" not in dates
    assert catalog.search("", created_from="2027-01-01").total == 1, "a changed date is searched by its new value"

    catalog.conn.execute("UPDATE facet_combos SET run_count = 0, priced_count = 0, cost_usd_sum = 0")  # a hand edit
    catalog.conn.execute("UPDATE run_combos SET created_at = NULL")
    catalog.reindex()

    assert _kept_counts(catalog) == _counted_now(catalog)
    assert catalog.search("", created_from="2027-01-01").total == 1


def test_a_version_10_file_gets_the_kept_counts_dates_and_sort_indexes(tmp_path: Path) -> None:
    path = tmp_path / "v10.db"
    old = file_at_version(path, 10)
    base = {"status": "COMPLETED", "favourite": 0, "tags": "", "size": "infinitetalk-480"}
    old["runs"].insert_all(
        [
            {**base, "run_id": "a", "job_id": "a", "created_at": "2026-01-01T00:00:00Z", "video_duration_s": 3.0},
            {**base, "run_id": "b", "job_id": "b", "created_at": "2026-02-01T00:00:00Z", "video_duration_s": 9.0},
            {**base, "run_id": "c", "job_id": "c", "created_at": "2026-03-01T00:00:00Z", "cost_usd": 0.1},
            {**base, "run_id": "box", "job_id": "box", "created_at": "2026-03-01T00:00:00Z", "batch_items": 2},
        ]
    )
    old.conn.close()

    catalog = Catalog(path)

    assert _kept_counts(catalog) == _counted_now(catalog) == {("COMPLETED", None, "infinitetalk-480", None, 3, 1, 0.1)}
    indexes = {row[1] for row in catalog.conn.execute("PRAGMA index_list(runs)")}
    assert "idx_runs_video_duration_s_created_at" in indexes
    assert "idx_run_combos_combo" not in {row[1] for row in catalog.conn.execute("PRAGMA index_list(run_combos)")}
    assert [row["run_id"] for row in catalog.search("", sort="longest").rows] == ["b", "a", "c"]
    assert catalog.search("", created_from="2026-02-01").total == 2
    catalog.record_submission("d", {"size": "infinitetalk-480"}, endpoint_id="local", status="COMPLETED")
    assert _kept_counts(catalog) == _counted_now(catalog), "and writes after the migration keep them"


def test_a_version_11_file_gets_an_index_in_costliest_order_and_every_sort_keeps_its_order(tmp_path: Path) -> None:
    """Version 12 (issue 32): Costliest first walks an index by cost and date in exactly its order, which replaces
    the index by cost alone; every index a sort walks needs no sorting, and every sort keeps its order, unknown
    values last, ties newest first and then by rowid."""
    path = tmp_path / "v11.db"
    old = file_at_version(path, 11)
    base = {"status": "COMPLETED", "favourite": 0, "tags": "", "size": "infinitetalk-480", "prompt": "a chef"}
    old["runs"].insert_all(
        [
            {
                **base,
                "run_id": "a",
                "job_id": "a",
                "created_at": "2026-01-01T00:00:00Z",
                "total_ms": 5,
                "cost_usd": 0.2,
            },
            {**base, "run_id": "b", "job_id": "b", "created_at": "2026-02-01T00:00:00Z", "total_ms": 9},
            {**base, "run_id": "c", "job_id": "c", "created_at": "2026-03-01T00:00:00Z", "cost_usd": 0.1},
            {**base, "run_id": "d", "job_id": "d", "created_at": "2026-03-01T00:00:00Z", "cost_usd": 0.1},
        ]
    )
    assert "idx_runs_cost_usd" in {row[1] for row in old.conn.execute("PRAGMA index_list(runs)")}
    old.conn.close()

    catalog = Catalog(path)

    assert catalog.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 12
    indexes = {row[1] for row in catalog.conn.execute("PRAGMA index_list(runs)")}
    assert set(search.SORT_INDEXES.values()) <= indexes and "idx_runs_cost_usd" not in indexes
    for sort, index in search.SORT_INDEXES.items():
        plan = " ".join(
            str(row[-1])
            for row in catalog.conn.execute(
                f"EXPLAIN QUERY PLAN SELECT rowid FROM runs INDEXED BY {index} ORDER BY {search.SORTS[sort]} LIMIT 1"
            )
        )
        assert "TEMP B-TREE" not in plan, f"{sort} is read in order off {index}, never sorted: {plan}"
    order = {sort: [r["run_id"] for r in catalog.search("chef", sort=sort).rows] for sort in search.SORTS}
    assert order["slowest"] == ["b", "a", "d", "c"] and order["cheapest"] == ["c", "d", "a", "b"]
    assert order["costliest"] == ["a", "d", "c", "b"], "the same cost: newest first, then the later written"
