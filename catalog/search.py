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
}
FILTER_COLUMNS = {*FACET_COLUMNS, "endpoint_id", "favourite", "job_id"}
MAX_PER_PAGE = 200


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


DENSE_SHARE = 0.08
"""When a text query matches more than this share of all runs, scanning the narrow facet index beats looking
each match up by rowid (measured at 100 000 runs: 36 ms against 57 ms for a word in a fifth of the prompts)."""


def _where(filters: Filters, fts: str | None, *, scan: bool = False) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if fts is not None:
        # The unary + stops SQLite from driving the query by rowid lookups when a scan is cheaper.
        clauses.append(f"{'+' if scan else ''}rowid IN (SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?)")
        args.append(fts)
    for column, values in filters.values.items():
        clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
        args.extend(values)
    if filters.created_from:
        clauses.append("created_at >= ?")
        args.append(filters.created_from)
    if filters.created_to:
        clauses.append("created_at <= ?")
        args.append(filters.created_to)
    if filters.tag:
        clauses.append("(',' || tags || ',') LIKE ?")
        args.append(f"%,{filters.tag},%")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _dense(conn: sqlite3.Connection, fts: str) -> bool:
    matches = conn.execute("SELECT COUNT(*) FROM runs_fts WHERE runs_fts MATCH ?", (fts,)).fetchone()[0]
    size = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0]
    return size > 0 and matches / size > DENSE_SHARE


def _run(
    conn: sqlite3.Connection, fts: str | None, filters: Filters, sort: str, page: int, per_page: int
) -> SearchResult:
    # The facet index covers the facet columns only: date and tag filters need the table itself.
    coverable = not (filters.created_from or filters.created_to or filters.tag)
    dense = fts is not None and coverable and _dense(conn, fts)
    columns = ", ".join(FACET_COLUMNS)
    where, args = _where(filters, fts, scan=dense)
    source = "runs INDEXED BY runs_facets" if dense else "runs"
    grouped = conn.execute(f"SELECT {columns}, COUNT(*) FROM {source}{where} GROUP BY {columns}", args).fetchall()
    facets: dict[str, dict[Any, int]] = {name: {} for name in FACET_COLUMNS}
    total = 0
    for row in grouped:
        count = row[-1]
        total += count
        for name, value in zip(FACET_COLUMNS, row[:-1], strict=True):
            facets[name][value] = facets[name].get(value, 0) + count
    # Many matches in date order: walk the date index and stop at the page, instead of sorting every match.
    by_date = dense and sort in ("newest", "oldest")
    source = "runs INDEXED BY idx_runs_created_at" if by_date else "runs"
    cursor = conn.execute(
        f"SELECT * FROM {source}{where} ORDER BY {SORTS[sort]} LIMIT ? OFFSET ?",
        [*args, per_page, (page - 1) * per_page],
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    ordered = {
        name: dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))) for name, counts in facets.items()
    }
    return SearchResult(rows, total, page, per_page, ordered)


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
        empty = {name: {} for name in FACET_COLUMNS}
        return SearchResult([], 0, page, per_page, empty, "the search has no words in it")
    result = _run(conn, safe, filters, sort, page, per_page)
    result.query_note = f"searched for the words {safe} (the query was not valid search syntax)"
    return result
