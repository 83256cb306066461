"""Searching runs: full text, filters, facet counts, sort and pagination, in a handful of indexed queries."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from catalog.schema import FACET_COLUMNS

SORTS = {
    "newest": "created_at DESC",
    "oldest": "created_at ASC",
    "longest": "video_duration_s DESC NULLS LAST, created_at DESC",
    "slowest": "total_ms DESC NULLS LAST, created_at DESC",
    "steps": "sample_steps DESC, created_at DESC",
    "costliest": "cost_usd DESC NULLS LAST, created_at DESC",
    "cheapest": "cost_usd ASC NULLS LAST, created_at DESC",
}
FILTER_COLUMNS = {*FACET_COLUMNS, "endpoint_id", "favourite", "job_id", "submitted_by"}
MAX_PER_PAGE = 200
COUNTED = "batch_items IS NULL"
"""The runs that are videos (or attempts at one): everything but batch containers, whose items count instead."""


@dataclass
class Filters:
    """What to narrow a search to; list values mean any of them, None means no filter."""

    values: dict[str, list[Any]] = field(default_factory=dict)
    created_from: str | None = None
    created_to: str | None = None
    tag: str | None = None

    @classmethod
    def of(cls, **given: Any) -> Filters:
        """Filters from keyword arguments: columns (single values or lists), created_from/to, tag."""
        created_from = given.pop("created_from", None)
        created_to = given.pop("created_to", None)
        tag = given.pop("tag", None)
        unknown = set(given) - FILTER_COLUMNS
        if unknown:
            raise ValueError(f"cannot filter on {', '.join(sorted(unknown))}; use {', '.join(sorted(FILTER_COLUMNS))}")
        values = {
            key: value if isinstance(value, list) else [value]
            for key, value in given.items()
            if value not in (None, [], "")
        }
        return cls(values, created_from, created_to, tag)


@dataclass
class SearchResult:
    """One page of runs, the total that matched, and counts per facet value over everything that matched."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    facets: dict[str, dict[Any, int]]
    query_note: str | None = None

    @property
    def pages(self) -> int:
        """How many pages the matches fill."""
        return max(1, -(-self.total // self.per_page))


FTS_OPERATORS = {"AND", "OR", "NOT", "NEAR"}


def safe_fts_query(text: str) -> str:
    """The user's words as an FTS5 query that cannot be a syntax error: each word a quoted prefix term.

    Upper-case operators are dropped: whoever typed `astronaut AND` meant an operator, not the word "and".
    """
    words = [word for word in re.findall(r"\w+", text, flags=re.UNICODE) if word not in FTS_OPERATORS]
    return " ".join(f'"{word}"*' for word in words)


WALK_BUDGET = 20_000
"""Rows of the date index a newest/oldest page may expect to walk, checking each against the text matches, rather
than sorting every match: with matches spread over time, reaching row n of the page takes n × runs / matches
steps (at 100 000 runs, 5 700 matches: 5 ms walking against 25 ms sorting)."""


def _fts_clause(column: str = "rowid") -> str:
    return f"{column} IN (SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?)"


def _clauses(filters: Filters, *, facet: bool) -> tuple[list[str], list[Any]]:
    """SQL conditions for the filters on facet columns (facet=True) or for all the others."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, values in filters.values.items():
        if (column in FACET_COLUMNS) == facet:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            args.extend(values)
    if not facet:
        if filters.created_from:
            clauses.append("created_at >= ?")
            args.append(filters.created_from)
        if filters.created_to:
            clauses.append("created_at <= ?")
            args.append(filters.created_to)
        if filters.tag:
            if re.search(r"\w", filters.tag):
                # The full-text index holds the tags: it finds the few candidates, the LIKE keeps exact tags only.
                clauses.append(_fts_clause())
                args.append('tags : "{}"'.format(filters.tag.replace('"', '""')))
            # instr, not LIKE: a tag is matched as written, so `%` or `_` finds only a tag spelled so. Tags are
            # stored lower-cased (set_tags), so the filter is too, as LIKE's case-blindness did before.
            clauses.append("instr(',' || tags || ',', ?) > 0")
            args.append(f",{filters.tag.lower()},")
    return clauses, args


def _facet_counts(conn: sqlite3.Connection, fts: str | None, filters: Filters) -> dict[str, dict[Any, int]]:
    """Counts per value of every facet over all the runs that match, from one grouped query.

    The runs are grouped by their facet combination, one integer in the narrow `run_combos` table (kept by
    triggers, see catalog/schema.py), and only the few distinct combinations are expanded into values.
    """
    clauses: list[str] = []
    args: list[Any] = []
    if fts is not None:
        clauses.append(_fts_clause("run_rowid"))
        args.append(fts)
    facet, facet_args = _clauses(filters, facet=True)
    if facet:
        # With text matches, drive by their rowids: a combo index lookup per match and combination is far slower.
        plus = "+" if fts is not None else ""
        clauses.append(f"{plus}combo IN (SELECT id FROM facet_combos WHERE {' AND '.join(facet)})")
        args.extend(facet_args)
    other, other_args = _clauses(filters, facet=False)
    if other:
        clauses.append(f"run_rowid IN (SELECT rowid FROM runs WHERE {' AND '.join(other)})")
        args.extend(other_args)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    grouped = conn.execute(
        f"SELECT {', '.join(f'c.{name}' for name in FACET_COLUMNS)}, counted.n FROM "
        f"(SELECT combo, COUNT(*) AS n FROM run_combos{where} GROUP BY combo) AS counted "
        "JOIN facet_combos AS c ON c.id = counted.combo",
        args,
    ).fetchall()
    facets: dict[str, dict[Any, int]] = {name: {} for name in FACET_COLUMNS}
    for row in grouped:
        for name, value in zip(FACET_COLUMNS, row[:-1], strict=True):
            facets[name][value] = facets[name].get(value, 0) + row[-1]
    return {name: dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))) for name, counts in facets.items()}


def _page(
    conn: sqlite3.Connection, fts: str | None, filters: Filters, sort: str, page: int, per_page: int, *, walk: bool
) -> list[dict[str, Any]]:
    clauses: list[str] = [COUNTED]
    args: list[Any] = []
    if fts is not None:
        # Walking the date index, the unary + keeps SQLite from turning the text matches into rowid lookups.
        clauses.append(("+" if walk else "") + _fts_clause())
        args.append(fts)
    for facet in (True, False):
        more, more_args = _clauses(filters, facet=facet)
        clauses += more
        args += more_args
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    source = "runs INDEXED BY idx_runs_created_at" if walk else "runs"
    cursor = conn.execute(
        f"SELECT * FROM {source}{where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
        [*args, per_page, (page - 1) * per_page],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _run(
    conn: sqlite3.Connection, fts: str | None, filters: Filters, sort: str, page: int, per_page: int
) -> SearchResult:
    facets = _facet_counts(conn, fts, filters)
    total = sum(facets["status"].values())
    size = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0]
    walk = fts is not None and sort in ("newest", "oldest") and page * per_page * size <= WALK_BUDGET * total
    rows = _page(conn, fts, filters, sort, page, per_page, walk=walk) if total else []
    return SearchResult(rows, total, page, per_page, facets)


@dataclass(frozen=True)
class CostTotal:
    """What the runs of a search cost together, and how many of them have a known cost."""

    usd: float
    priced: int
    runs: int


def cost_total(conn: sqlite3.Connection, query: str = "", filters: Filters | None = None) -> CostTotal:
    """The summed cost of every run a search matches (all pages), as History shows under its grid.

    Kept apart from `search` so that a page of results never pays for a sum it does not show.
    """
    filters = filters or Filters()
    query = query.strip()
    fts = None
    if query:
        fts = query if _valid_fts(conn, query) else safe_fts_query(query)
        if not fts:
            return CostTotal(0.0, 0, 0)
    clauses: list[str] = [COUNTED]
    args: list[Any] = []
    if fts is not None:
        clauses.append(_fts_clause())
        args.append(fts)
    for facet in (True, False):
        more, more_args = _clauses(filters, facet=facet)
        clauses += more
        args += more_args
    usd, priced, runs = conn.execute(
        f"SELECT COALESCE(SUM(cost_usd), 0), COUNT(cost_usd), COUNT(*) FROM runs WHERE {' AND '.join(clauses)}", args
    ).fetchone()
    return CostTotal(round(float(usd), 6), int(priced), int(runs))


def _valid_fts(conn: sqlite3.Connection, query: str) -> bool:
    """Whether FTS5 accepts the query (asked on its own, so other database errors are never mistaken for it)."""
    try:
        conn.execute("SELECT 1 FROM runs_fts WHERE runs_fts MATCH ? LIMIT 1", (query,)).fetchall()
    except sqlite3.OperationalError:
        return False
    return True


def search(
    conn: sqlite3.Connection,
    query: str = "",
    filters: Filters | None = None,
    *,
    sort: str = "newest",
    page: int = 1,
    per_page: int = 24,
) -> SearchResult:
    """Search runs. `query` is FTS5 syntax when valid (`"exact phrase"`, `talk*`, `a OR b`); anything else —
    unbalanced quotes, a lone `AND` — is searched as plain words instead of failing."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    filters = filters or Filters()
    page = max(1, page)
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    query = query.strip()
    if not query:
        return _run(conn, None, filters, sort, page, per_page)
    if _valid_fts(conn, query):
        return _run(conn, query, filters, sort, page, per_page)
    safe = safe_fts_query(query)
    if not safe:
        empty: dict[str, dict[Any, int]] = {name: {} for name in FACET_COLUMNS}
        return SearchResult([], 0, page, per_page, empty, "the search has no words in it")
    result = _run(conn, safe, filters, sort, page, per_page)
    result.query_note = f"searched for the words {safe} (the query was not valid search syntax)"
    return result
