"""Searching a large catalogue (issue 32): exact counts up to a limit, estimates marked as such past it, and pages
that are the same whether found by walking a sort's index or by sorting every match.

The limits are lowered (EXACT_LIMIT 200, SAMPLE_HITS 40) so that 1 200 runs stand for a million: the code paths
are the ones a million runs take, and every count is checked against a brute-force count over the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import catalog.search as engine
from catalog import Catalog
from catalog.schema import FACET_COLUMNS

RUNS = 1200


def _row(index: int) -> dict[str, Any]:
    """Half the runs about an astronaut, a tenth about a chef, one in 25 failed; dates spread over 2026, each
    one distinct so every sort has a single right order."""
    words = ["astronaut" if index % 2 == 0 else "teacher"]
    if index % 10 == 1:
        words.append("chef")
    done = index % 5 != 0
    return {
        "run_id": f"run-{index:04d}",
        "job_id": f"run-{index:04d}",
        "endpoint_id": "local",
        "engine": "preview" if index % 4 else "infinitetalk",
        "status": "FAILED" if index % 25 == 0 else "COMPLETED",
        "prompt": " ".join(words) + f" take {index}",
        "created_at": f"2026-{1 + index % 12:02d}-{1 + index % 28:02d}T{index // 60 % 24:02d}:{index % 60:02d}:00Z",
        "size": "infinitetalk-720" if index % 3 == 0 else "infinitetalk-480",
        "mode": "clip",
        "sample_steps": [4, 8, 40][index % 3],
        "speakers": 1,
        "input_kind": "image",
        "video_duration_s": float(index * 37 % 100) if done else None,
        "total_ms": index * 53 % 1000 * 100 if done else None,
        "cost_usd": round(index % 7 * 0.01, 2) if done else None,
        "tags": "launch" if index % 40 == 0 else "",
        "favourite": 0,
    }


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    catalog = Catalog(tmp_path_factory.mktemp("scale") / "catalog.db")
    catalog.db["runs"].insert_all([_row(index) for index in range(RUNS)])  # through the triggers, as real writes
    return catalog


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "EXACT_LIMIT", 200)
    monkeypatch.setattr(engine, "SAMPLE_HITS", 40)


def _brute(catalog: Catalog, words: str | None, **filters: Any) -> list[dict[str, Any]]:
    """Every run the search should find, read row by row."""
    rows = [
        dict(zip([d[0] for d in c.description], r, strict=True))
        for c in [catalog.conn.execute("SELECT * FROM runs")]
        for r in c
    ]
    wanted = []
    for row in rows:
        if words and words not in row["prompt"].split():
            continue
        if "created_from" in filters and row["created_at"] < filters["created_from"]:
            continue
        if "created_to" in filters and row["created_at"] > filters["created_to"]:
            continue
        if any(row[name] != value for name, value in filters.items() if name in FACET_COLUMNS):
            continue
        wanted.append(row)
    return wanted


def _counts(rows: list[dict[str, Any]], name: str) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for row in rows:
        counts[row[name]] = counts.get(row[name], 0) + 1
    return counts


@pytest.mark.parametrize(
    ("words", "filters"),
    [
        ("chef", {}),  # 120 matches, under the limit
        ("astronaut", {"status": "FAILED"}),  # 600 candidates, but a sample would hold too few of the 24
        ("", {}),  # the counts kept per combination
        ("", {"size": "infinitetalk-720", "status": "COMPLETED"}),  # the same, narrowed by facets
        ("", {"created_from": "2026-03-01", "created_to": "2026-03-31"}),  # 100 runs in the range
        ("chef", {"created_from": "2026-01-01", "created_to": "2026-06-30", "sample_steps": 8}),
    ],
)
def test_counts_are_exact_and_unmarked_when_looking_at_every_candidate_fits_the_budget(
    big: Catalog, words: str, filters: dict[str, Any]
) -> None:
    found = big.search(words, per_page=200, **filters)
    expected = _brute(big, words, **filters)
    assert not found.approximate
    assert found.total == len(expected)
    for name in FACET_COLUMNS:
        assert found.facets[name] == dict(sorted(_counts(expected, name).items(), key=lambda kv: (-kv[1], str(kv[0]))))
    cost = big.cost_total(words, **filters)
    priced = [row["cost_usd"] for row in expected if row["cost_usd"] is not None]
    assert not cost.approximate
    assert (cost.runs, cost.priced) == (len(expected), len(priced))
    assert cost.usd == pytest.approx(sum(priced))


@pytest.mark.parametrize(
    ("words", "filters"),
    [
        ("astronaut", {}),  # 600 matches
        ("astronaut", {"size": "infinitetalk-480"}),  # 400 of them
        ("", {"created_from": "2026-01-01", "created_to": "2026-09-30"}),  # 900 runs in the range, no words
        ("teacher", {"created_from": "2026-02-01", "created_to": "2026-12-31"}),
    ],
)
def test_past_the_limit_counts_are_estimates_marked_approximate_and_close(
    big: Catalog, words: str, filters: dict[str, Any]
) -> None:
    found = big.search(words, per_page=10, **filters)
    expected = _brute(big, words, **filters)
    assert found.approximate, "more candidates than EXACT_LIMIT: estimated, and says so"
    assert found.total == pytest.approx(len(expected), rel=0.25)
    for name in ("status", "size", "sample_steps"):
        for value, count in _counts(expected, name).items():
            if count >= 100:
                assert found.facets[name][value] == pytest.approx(count, rel=0.35), (name, value)
    newest = sorted(expected, key=lambda row: row["created_at"], reverse=True)[:10]
    assert [row["run_id"] for row in found.rows] == [row["run_id"] for row in newest], "the page itself is exact"
    cost = big.cost_total(words, **filters)
    assert cost.approximate and cost.runs == pytest.approx(len(expected), rel=0.25)


def test_the_same_search_gives_the_same_estimate_every_time(big: Catalog) -> None:
    """The sample is chosen by rowid, not at random: typing more or paging never makes the counts jump about."""
    first = big.search("astronaut", size="infinitetalk-480")
    again = big.search("astronaut", size="infinitetalk-480", page=2)
    assert first.approximate and (first.total, first.facets) == (again.total, again.facets)


def test_a_rare_combination_under_a_common_word_is_counted_exactly_never_as_none(big: Catalog) -> None:
    found = big.search("astronaut", tag="launch", per_page=200)
    expected = [row for row in _brute(big, "astronaut") if row["tags"] == "launch"]
    assert not found.approximate and found.total == len(expected) == 30
    assert {row["run_id"] for row in found.rows} == {row["run_id"] for row in expected}


@pytest.mark.parametrize("sort", list(engine.SORTS))
def test_pages_are_the_same_walking_the_sort_index_or_sorting_every_match(
    big: Catalog, sort: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    walked = [
        [row["run_id"] for row in big.search("astronaut", sort=sort, page=page, per_page=10).rows] for page in (1, 4)
    ]
    monkeypatch.setattr(engine, "WALK_BUDGET", 0)  # never walk: SQLite fetches every match and sorts them
    sorted_ = [
        [row["run_id"] for row in big.search("astronaut", sort=sort, page=page, per_page=10).rows] for page in (1, 4)
    ]
    assert walked == sorted_ and len(walked[0]) == 10


def test_longest_first_puts_runs_without_a_video_last(big: Catalog) -> None:
    rows = big.search("astronaut", sort="longest", per_page=200, page=2).rows
    matches = _brute(big, "astronaut")
    ordered = sorted(matches, key=lambda row: row["created_at"], reverse=True)
    ordered.sort(key=lambda row: (row["video_duration_s"] is None, -(row["video_duration_s"] or 0)))
    assert [row["run_id"] for row in rows] == [row["run_id"] for row in ordered[200:400]]


def test_kept_tallies_never_outlive_a_change_by_this_or_another_connection(tmp_path: Path) -> None:
    """A search's counts are kept while the file is unchanged (History reruns on every click); any commit, from
    this connection or another process's, starts them afresh."""
    path = tmp_path / "catalog.db"
    here, there = Catalog(path), Catalog(path)
    here.record_submission("a", {"prompt": "an astronaut"}, endpoint_id="local")
    assert here.search("astronaut").total == 1
    assert here.search("astronaut", page=2).total == 1, "the same search again"

    there.record_submission("b", {"prompt": "another astronaut"}, endpoint_id="local")
    there.close()
    assert here.search("astronaut").total == 2, "another connection's commit"
    here.forget("a")
    assert here.search("astronaut").total == 1, "this connection's own write"
    assert here.cost_total("astronaut").runs == 1
