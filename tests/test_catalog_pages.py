"""Every page a search shows is exactly the one a straightforward query gives (issue 32): the same runs in the same
order, for every sort, with words or without, under every kind of filter, whether the page was found by walking the
sort's index and checking each run against the words, or by fetching every match and sorting them.

The reference reads every run and filters and sorts them in Python, with the words' matches from the full-text
index itself: it shares no code with the search. Ties are many (a hundred runs a minute, batches of items), and
lengths, run times and costs are often unknown, so the order must be total and NULLs must go last.
"""

from __future__ import annotations

from typing import Any

import pytest

import catalog.search as engine
from catalog import Catalog

RUNS = 3000
MINUTES = 30
"""Distinct creation times: a hundred runs share each one."""


def _row(index: int) -> dict[str, Any]:
    """Word "common" in two runs of three, "rare" in one of 97, "late" only in the 150 oldest runs; batch
    containers now and then (never shown: their items are)."""
    words = ["common" if index % 3 else "plain", f"take{index}"]
    if index % 97 == 0:
        words.append("rare")
    minute = index * 7 % MINUTES
    if minute < 2:
        words.append("late")
    known = index % 4 != 0
    return {
        "run_id": f"run-{index:05d}",
        "job_id": f"run-{index:05d}",
        "endpoint_id": "local",
        "engine": "preview" if index % 5 else "infinitetalk",
        "status": ["COMPLETED", "COMPLETED", "FAILED", "CANCELLED"][index % 4],
        "prompt": " ".join(words),
        "created_at": f"2026-05-01T10:{minute:02d}:00Z",
        "size": "infinitetalk-720" if index % 3 == 1 else "infinitetalk-480",
        "mode": "clip",
        "sample_steps": [4, 8, 40, None][index % 7 % 4],
        "speakers": 1,
        "input_kind": "image",
        "video_duration_s": float(index % 11) if known else None,
        "total_ms": index % 13 * 1000 if index % 6 else None,
        "cost_usd": round(index % 5 * 0.01, 2) if index % 8 else None,
        "tags": "launch" if index % 10 == 0 else "",
        "favourite": int(index % 9 == 0),
        "batch_items": 4 if index % 250 == 7 else None,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("pages") / "catalog.db")
    catalog.db["runs"].insert_all([_row(index) for index in range(RUNS)])  # through the triggers, as real writes
    return catalog


def _last(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


KEYS = {
    "newest": lambda r: (_neg(r["created_at"]), -r["rowid"]),
    "oldest": lambda r: (r["created_at"], r["rowid"]),
    "longest": lambda r: (
        r["video_duration_s"] is None,
        -(r["video_duration_s"] or 0),
        _neg(r["created_at"]),
        -r["rowid"],
    ),
    "slowest": lambda r: (r["total_ms"] is None, -(r["total_ms"] or 0), _neg(r["created_at"]), -r["rowid"]),
    "steps": lambda r: (r["sample_steps"] is None, -(r["sample_steps"] or 0), _neg(r["created_at"]), -r["rowid"]),
    "costliest": lambda r: (r["cost_usd"] is None, -(r["cost_usd"] or 0), _neg(r["created_at"]), -r["rowid"]),
    "cheapest": lambda r: (*_last(r["cost_usd"]), _neg(r["created_at"]), r["rowid"]),
}
"""What each sort means, written out: biggest first with unknown values last, then newest first, then a fixed tie
order by rowid; Cheapest first puts unknown costs last too."""


def _neg(text: str) -> tuple[int, ...]:
    """A timestamp that sorts descending."""
    return tuple(-ord(char) for char in text)


_read: dict[int, list[dict[str, Any]]] = {}


def _reference(catalog: Catalog, words: str, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run the search should show, unsorted: read row by row (once), filtered here."""
    if id(catalog) not in _read:
        cursor = catalog.conn.execute("SELECT rowid, * FROM runs")
        names = [d[0] for d in cursor.description]
        _read[id(catalog)] = [dict(zip(names, row, strict=True)) for row in cursor]
    rows = _read[id(catalog)]
    matched = None
    if words:
        matched = {r for (r,) in catalog.conn.execute("SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?", (words,))}
    wanted = []
    for row in rows:
        if row["batch_items"] is not None or (matched is not None and row["rowid"] not in matched):
            continue
        if "created_from" in filters and row["created_at"] < filters["created_from"]:
            continue
        if "created_to" in filters and row["created_at"] > filters["created_to"]:
            continue
        if "tag" in filters and filters["tag"] not in row["tags"].split(","):
            continue
        columns = {k: v for k, v in filters.items() if k not in ("created_from", "created_to", "tag")}
        if any(row[name] not in (value if isinstance(value, list) else [value]) for name, value in columns.items()):
            continue
        wanted.append(row)
    return wanted


FILTERS: list[dict[str, Any]] = [
    {},
    {"status": "COMPLETED"},
    {"size": "infinitetalk-720", "sample_steps": [4, 40]},
    {"created_from": "2026-05-01T10:05:00Z", "created_to": "2026-05-01T10:20:00Z"},
    {"favourite": 1},
    {"tag": "launch"},
    {"status": "FAILED", "created_from": "2026-05-01T10:25:00Z"},
]
WORDS = ["", "common", "rare", "late", "plain OR rare"]


@pytest.mark.parametrize("sort", list(engine.SORTS))
@pytest.mark.parametrize("words", WORDS)
def test_every_page_is_the_reference_page_for_every_sort_words_and_filters(
    runs: Catalog, sort: str, words: str
) -> None:
    for filters in FILTERS:
        expected = sorted(_reference(runs, words, filters), key=KEYS[sort])
        for page, per_page in ((1, 24), (3, 24), (2, 200)):
            found = runs.search(words, sort=sort, page=page, per_page=per_page, **filters)
            window = expected[(page - 1) * per_page : page * per_page]
            assert [row["run_id"] for row in found.rows] == [row["run_id"] for row in window], (filters, page)
            assert not found.approximate and found.total == len(expected), filters


def test_a_word_found_only_at_the_far_end_of_the_order_is_walked_further_then_sorted(
    runs: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "late" is held by the oldest runs only: a walk from the newest finds none of them at first, walks four
    times as far, and at last fetches and sorts the matches; the page is the same whichever ended it."""
    walks: list[int] = []
    real = engine._walk

    def counted(*args: Any) -> str | None:
        walks.append(args[3])
        return real(*args)

    monkeypatch.setattr(engine, "_walk", counted)
    monkeypatch.setattr(engine, "WALK_MARGIN", 0.01)  # as if the word were spread evenly: walk far too little
    expected = sorted(_reference(runs, "late", {}), key=KEYS["newest"])
    found = runs.search("late", per_page=24)
    assert walks, "the page began with a walk"
    assert [row["run_id"] for row in found.rows] == [row["run_id"] for row in expected[:24]]


def test_sorting_every_match_gives_the_walked_pages(runs: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    walked = {sort: [r["run_id"] for r in runs.search("common", sort=sort, page=4).rows] for sort in engine.SORTS}
    monkeypatch.setattr(engine, "WALK_BUDGET", 0)
    for sort in engine.SORTS:
        assert [r["run_id"] for r in runs.search("common", sort=sort, page=4).rows] == walked[sort], sort
