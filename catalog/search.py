"""Searching runs: full text, filters, facet counts, sort and pagination, in a handful of indexed queries."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import astuple, dataclass, field
from typing import Any

from catalog.schema import FACET_COLUMNS

SORTS = {
    "newest": "created_at DESC, rowid DESC",
    "oldest": "created_at ASC, rowid ASC",
    "longest": "video_duration_s DESC NULLS LAST, created_at DESC, rowid DESC",
    "slowest": "total_ms DESC NULLS LAST, created_at DESC, rowid DESC",
    "steps": "sample_steps DESC NULLS LAST, created_at DESC, rowid DESC",
    "costliest": "cost_usd DESC NULLS LAST, created_at DESC, rowid DESC",
    "cheapest": "cost_usd IS NULL, cost_usd ASC, created_at DESC, rowid ASC",
}
"""Each sort's order, to the last tie: runs made in the same minute (a batch's items) come in one order every
time, whichever way the page is found, so paging never shows a run twice or skips one. Where a sort has an index
(SORT_INDEXES) this is exactly its order (the rowid is every index's last column; DESC puts NULL last by itself),
so walking it and sorting give the same pages."""
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
    approximate: bool = False
    """Whether `total` and `facets` are estimates from a sample (more than EXACT_LIMIT matches to look at):
    History marks them so. Otherwise every count is exact."""

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


WALK_BUDGET = 400_000
"""Entries of a sort's index a page may walk at most to find its matches among them (`_walk`): row n of a page is
about n × runs / matches entries in. 0 never walks."""

EXACT_LIMIT = 5_000
"""Candidates a search may look up one by one to count them exactly (measured at a million runs: about 1.3 µs of
CPU a lookup, so 7 ms). Past it, the total, the facet counts and the cost are estimated from a sample (SAMPLE_SIZE
to this many), and marked approximate (SearchResult.approximate): counting exactly a word that a tenth of a
million runs hold (100 000 lookups) took 100 ms of CPU, against History's 50 ms budget for the whole search."""

SAMPLE_SIZE = 2_000
"""Candidates an estimate samples (never more than EXACT_LIMIT): each costs a lookup, and 2 000 give the total
and the larger facet counts within a few per cent (1/√2000 ≈ 2 %), the total of words alone exactly."""

SAMPLE_HITS = 1_000
"""Sampled matches an estimate needs (its error is then about 1/√1000 ≈ 3 %, less for a common word). A sample is
drawn for about twice this many (`_Look.sample_size`, from how common the facets asked for are); one that passes
the filters fewer times is drawn larger, as the rate it saw says (the candidates it adds are looked up, not the
ones before), and at last all candidates are counted exactly: a rare combination costs more, and is never shown
as none."""

SORT_INDEXES = {
    "newest": "idx_runs_created_at",
    "oldest": "idx_runs_created_at",
    "longest": "idx_runs_video_duration_s_created_at",
    "costliest": "idx_runs_cost_usd_created_at",
}
"""The index that holds the runs in each sort's order (catalog/schema.py, versions 11 and 12): a page of a common
word walks it. Slowest, Most steps and Cheapest first have none (each index costs every write; see
schema.V12_SORT_INDEXES): their pages fetch and sort every match."""


def _cut(size: float, among: float) -> int:
    """The cut that samples about `size` of `among` candidates (see `_sampled`)."""
    return min(2**32, int(size / max(among, 1) * 2**32))


def _sampled(rowid: str, cut: int) -> str:
    """Whether a run is in the sample: its rowid scrambled (times an odd 32-bit constant, modulo 2³²) below a cut.

    Consecutive rowids (a batch's items, one day's runs) land all over the range, so the sample is spread as the
    runs are; and the same runs are sampled every time, so an estimate holds still while nothing changes. The
    constant is xxHash's PRIME32_3: with Knuth's golden-ratio one the bench's date range came out 6 % low (its
    too regular pattern met the data's), with this one the bench's estimates are within 2 %.
    """
    return f"((({rowid}) * 3266489917) % 4294967296) < {cut}"


@dataclass
class _Parts:
    """A search split by what can answer each part: the full-text index (`match`: the words, else a tag's
    words), the facet combinations (`facet`), the narrow `run_combos` table (`dates`) or only a `runs` row
    (`row`: other columns, and a tag's exact check). Each condition is SQL with `{t}` for the table it reads."""

    match: str | None = None
    facet: list[str] = field(default_factory=list)
    facet_args: list[Any] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    date_args: list[Any] = field(default_factory=list)
    row: list[str] = field(default_factory=list)
    row_args: list[Any] = field(default_factory=list)

    @staticmethod
    def sql(clauses: list[str], table: str) -> list[str]:
        """The conditions reading the columns of `table`."""
        return [clause.format(t=table) for clause in clauses]

    def narrowed(self) -> bool:
        """Whether anything but the facets narrows the search (else the kept counts per combination answer)."""
        return self.match is not None or bool(self.dates) or bool(self.row)


def _parts(fts: str | None, filters: Filters) -> _Parts:
    parts = _Parts(match=fts)
    for column, values in filters.values.items():
        clause = f"{{t}}.{column} IN ({', '.join('?' * len(values))})"
        if column in FACET_COLUMNS:
            parts.facet.append(clause)
            parts.facet_args.extend(values)
        else:
            parts.row.append(clause)
            parts.row_args.extend(values)
    for bound, op in ((filters.created_from, ">="), (filters.created_to, "<=")):
        if bound:
            parts.dates.append(f"{{t}}.created_at {op} ?")
            parts.date_args.append(bound)
    if filters.tag:
        if re.search(r"\w", filters.tag) and parts.match is None:
            # The full-text index holds the tags: it finds the few candidates (whole words), instr checks them.
            parts.match = 'tags : "{}"'.format(filters.tag.replace('"', '""'))
        # instr, not LIKE: the text is matched as written, so `%` or `_` finds only a tag spelled so. Tags
        # keep the user's case; the filter ignores it and matches a tag's whole words ("demo" finds the tag
        # "Demo Reel", issue 29; "talking" does not find "talking-head"), never across two tags.
        parts.row.append("instr(' ' || replace(lower(',' || {t}.tags || ','), ',', ' , ') || ' ', ?) > 0")
        parts.row_args.append(f" {filters.tag.strip().lower()} ")
    return parts


@dataclass
class _Tally:
    """Per facet combination: matching runs, how many of them have a cost, and its sum (estimates when
    `approximate`, scaled up from the sample)."""

    combos: dict[int, tuple[Any, ...]]
    per_combo: dict[int, tuple[float, float, float]]
    approximate: bool = False

    def sums(self) -> tuple[float, float, float]:
        """Runs, priced runs and dollars over every combination."""
        runs = priced = usd = 0.0
        for n, p, u in self.per_combo.values():
            runs, priced, usd = runs + n, priced + p, usd + u
        return runs, priced, usd


def _runs(conn: sqlite3.Connection) -> int:
    """How many runs there are (all but batch containers), from the counts kept per combination."""
    return int(conn.execute("SELECT COALESCE(SUM(run_count), 0) FROM facet_combos").fetchone()[0])


def _tally(look: _Look) -> _Tally:
    """Count the matches per facet combination, exactly, or from a sample past EXACT_LIMIT candidates.

    Narrowed by facets alone (or not at all), the counts kept per combination answer at once. Otherwise the
    candidates come from the full-text index (words, a tag: read in its own rowid order, never gathered) or the
    date index, each looked up by rowid in the narrow `run_combos` (combination, date, cost), and in `runs` only
    for conditions nothing narrower holds.
    Costs are summed in the same pass (a few more additions): History shows a search's cost under its grid, and
    `cost_total` then reads the tally the search kept instead of looking every match up again.
    """
    conn, parts = look.conn, look.parts
    where = " WHERE " + " AND ".join(_Parts.sql(parts.facet, "facet_combos")) if parts.facet else ""
    combos = {
        row[0]: row[1:]
        for row in conn.execute(
            f"SELECT id, {', '.join(FACET_COLUMNS)}, run_count, priced_count, cost_usd_sum FROM facet_combos{where}",
            parts.facet_args,
        )
    }
    if not parts.narrowed():
        counts = {combo: (row[-3], row[-2], row[-1]) for combo, row in combos.items() if row[-3] > 0}
        return _Tally(combos, counts)
    if not combos:
        return _Tally(combos, {})
    clauses: list[str] = []
    args: list[Any] = []
    candidates: str | None = None
    found: int | None = None
    if parts.match is not None:
        found = look.text_matches()
        # LEFT JOINs keep the text index the outer loop: each match is looked up by rowid.
        source, rowid = "runs_fts LEFT JOIN run_combos AS c ON c.run_rowid = runs_fts.rowid", "runs_fts.rowid"
        if parts.row:
            source += " LEFT JOIN runs ON runs.rowid = runs_fts.rowid"
        driver, driver_args = ["runs_fts MATCH ?"], [parts.match]
        clauses += _Parts.sql(parts.dates, "c")
        args += parts.date_args
    else:
        source, rowid = "runs LEFT JOIN run_combos AS c ON c.run_rowid = runs.rowid", "runs.rowid"
        driver, driver_args = _Parts.sql(parts.dates, "runs"), list(parts.date_args)
        if not parts.row:
            # The date index alone gives the candidates, so they can be counted before they are looked up.
            candidates = f"SELECT COUNT(*) FROM runs WHERE {' AND '.join(driver)}"
    clauses += _Parts.sql(parts.row, "runs")
    args += parts.row_args
    # Batch containers have no combination: they are candidates, never matches.
    clauses.append("c.combo IS NOT NULL")
    if parts.facet:
        # Checked on each looked-up entry (the unary + rules out any index on it: the rowid lookup drives).
        clauses.append(f"+c.combo IN ({', '.join(str(int(combo)) for combo in combos)})")
    sums = "COUNT(c.cost_usd), TOTAL(c.cost_usd)"
    kept_sums = "SUM(kept AND cost_usd IS NOT NULL), TOTAL(CASE WHEN kept THEN cost_usd END)"
    if candidates is not None:
        found = conn.execute(candidates, driver_args).fetchone()[0]
    size = look.sample_size()
    drawn = 0.0
    counted: dict[int, list[float]] = {}
    while found is not None and found > EXACT_LIMIT and found > size:
        # One pass over a sample of the candidates: each is looked up, and counted as a match if it passes. A
        # sample too thin for the filters (a rare combination) is drawn larger, as the rate seen says, up to all;
        # only the candidates it adds are looked up.
        kept = " AND ".join(clauses)
        if parts.match is not None:
            # The sampled text matches, as the read that counted them kept them (`_Look.sample`).
            looked = "json_each(?) AS m LEFT JOIN run_combos AS c ON c.run_rowid = m.value"
            if parts.row:
                looked += " LEFT JOIN runs ON runs.rowid = m.value"
            cut, held = look.sample(size)
            added = f"{_sampled('m.value', cut)} AND NOT {_sampled('m.value', _cut(drawn, found))}"
            sql = f"SELECT c.combo AS combo, c.cost_usd AS cost_usd, {kept} AS kept FROM {looked} WHERE {added}"
            sql_args = [*args, held]
        else:
            sample = f"{_sampled(rowid, _cut(size, found))} AND NOT {_sampled(rowid, _cut(drawn, found))}"
            sql = f"SELECT c.combo AS combo, c.cost_usd AS cost_usd, {kept} AS kept FROM {source} "
            sql += f"WHERE {' AND '.join([*driver, sample])}"
            sql_args = [*args, *driver_args]
        for combo, *sums_of in conn.execute(
            f"SELECT combo, COUNT(*), TOTAL(kept), {kept_sums} FROM ({sql}) GROUP BY combo", sql_args
        ):
            so_far = counted.setdefault(combo, [0.0, 0.0, 0.0, 0.0])
            for index, value in enumerate(sums_of):
                so_far[index] += value or 0
        drawn = size
        seen = sum(row[0] for row in counted.values())
        hits = sum(row[1] for row in counted.values())
        if seen and hits >= SAMPLE_HITS:
            scale = found / seen
            return _Tally(
                combos,
                {
                    combo: (n * scale, priced * scale, usd * scale)
                    for combo, (_, n, priced, usd) in counted.items()
                    if n
                },
                approximate=True,
            )
        size *= min(8.0, max(2.0, 1.25 * SAMPLE_HITS / max(hits, 1)))
    rows = conn.execute(
        f"SELECT c.combo, COUNT(*), {sums} FROM {source} WHERE {' AND '.join([*driver, *clauses])} GROUP BY c.combo",
        [*driver_args, *args],
    ).fetchall()
    return _Tally(combos, {combo: (n, priced, usd) for combo, n, priced, usd in rows})


CACHED_SEARCHES = 32
"""Tallies each thread keeps, for the searches it made last: History runs its script again on every click (a
page, a sort, opening a run), and while the catalogue is unchanged the counts of the same search are too."""
_cached = threading.local()


def clear_cache() -> None:
    """Forget this thread's tallies (the benchmark times searches as a first look at them)."""
    _cached.__dict__.clear()


class _Look:
    """One search's look at the catalogue: one read snapshot, its count of text matches, the kept tallies.

    The tallies are kept per search while the catalogue file is unchanged: its change counter is SQLite's
    `data_version` (it moves when another connection commits) with this connection's own `total_changes`, so
    any write, by anyone, starts them afresh. A thread keeps one connection's tallies (Catalog opens one
    connection per thread).
    """

    def __init__(self, conn: sqlite3.Connection, parts: _Parts) -> None:
        self.conn = conn
        self.parts = parts
        self.found: int | None = None
        self.sampled: tuple[int, str] = (0, "[]")
        self.page: tuple[str, int] | None = None
        """The sort and how many matches its page needs (`_run`): the read that counts a common word's matches
        also walks the sort's index for them (`walked`)."""
        self.walked: tuple[str, int, int, str] | None = None
        """Sort, index entries walked, how many there were and the text matches among them, as `_walk` says."""
        self.began = False

    def _version(self) -> tuple[int, int]:
        return self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes

    def __enter__(self) -> _Look:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True
        version = self._version()
        kept = getattr(_cached, "kept", None)
        if kept is None or kept[0] is not self.conn or kept[1] != version:
            _cached.kept = (self.conn, version, OrderedDict())
        return self

    def __exit__(self, kind: type[BaseException] | None, *error: object) -> None:
        if kind is not None:
            # The error goes on as it is (History names a damaged file from it); a failed ROLLBACK must not hide it.
            if self.began and self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            return
        if self.began:
            self.conn.execute("COMMIT")

    def share(self) -> float:
        """The part of all runs that the facet filters leave (1 without them), from the counts kept per
        combination: what a sample of text matches and a walk of a sort's index must allow for."""
        if not self.parts.facet:
            return 1.0
        where = " AND ".join(_Parts.sql(self.parts.facet, "facet_combos"))
        kept = self.conn.execute(
            f"SELECT COALESCE(SUM(run_count), 0) FROM facet_combos WHERE {where}", self.parts.facet_args
        ).fetchone()[0]
        return int(kept) / max(1, _runs(self.conn))

    def sample_size(self) -> float:
        """How many candidates a sample needs to hold about twice SAMPLE_HITS matches, if the facets are as
        common among them as among all runs (at least SAMPLE_SIZE, at most EXACT_LIMIT)."""
        return min(EXACT_LIMIT, max(SAMPLE_SIZE, 2 * SAMPLE_HITS / max(self.share(), 1e-9)))

    def text_matches(self) -> int:
        """How many runs the full-text part matches (once per search).

        Up to EXACT_LIMIT, the first matches (in rowid order) are counted and that is all. Past it, one read of
        the index's list of runs for the words counts them all, keeps a sample of them (`sample`) and, when a
        page is wanted, the matches among the first runs of its sort (`walked`): that list costs a tenth of a µs
        a run, where gathering every match (a row each, into a table or to Python) cost 25 ms for 100 000. How
        many matches there are is judged beforehand from how far the first EXACT_LIMIT of them reach; the sample
        kept is three times what the tally expects to draw (a few thousand rowids), so that the one read is enough
        unless the matches crowd the oldest runs.
        """
        if self.found is None:
            assert self.parts.match is not None
            first, reach = self.conn.execute(
                "SELECT COUNT(*), MAX(r) FROM (SELECT rowid AS r FROM runs_fts WHERE runs_fts MATCH ? LIMIT ?)",
                (self.parts.match, EXACT_LIMIT + 1),
            ).fetchone()
            if first <= EXACT_LIMIT:
                self.found = first
            else:
                top = self.conn.execute("SELECT MAX(rowid) FROM runs").fetchone()[0]
                guess = first * top / max(reach, 1)
                walk = None
                if self.page is not None and self.page[0] in SORT_INDEXES:
                    steps = int(WALK_MARGIN * self.page[1] * top / max(1.0, guess * self.share())) + 1
                    walk = (self.page[0], steps) if steps <= min(WALK_FACTOR * guess, WALK_BUDGET) else None
                self._scan(_cut(3 * self.sample_size(), guess), walk)
        assert self.found is not None
        return self.found

    def _scan(self, cut: int, walk: tuple[str, int] | None = None) -> None:
        """Count the text matches and keep those under the cut (`_sampled`), and with `walk` (a sort and how many
        entries of its index) those among the first runs of the sort (see `_walk`), in one read of the index."""
        sampled = f"json_group_array(rowid) FILTER (WHERE {_sampled('rowid', cut)})"
        if walk is None:
            found, kept = self.conn.execute(
                f"SELECT COUNT(*), {sampled} FROM runs_fts WHERE runs_fts MATCH ?", (self.parts.match,)
            ).fetchone()
        else:
            sort, steps = walk
            found, kept, walked, hits = self.conn.execute(
                f"{_walked_sql(self.parts, sort)} SELECT COUNT(*), {sampled}, (SELECT COUNT(*) FROM walked), "
                "json_group_array(rowid) FILTER (WHERE +rowid IN (SELECT r FROM walked)) "
                "FROM runs_fts WHERE runs_fts MATCH ?",
                [*self.parts.date_args, steps, self.parts.match],
            ).fetchone()
            self.walked = (sort, steps, walked, hits)
        self.found, self.sampled = found, (cut, str(kept))

    def sample(self, size: float) -> tuple[int, str]:
        """The cut that samples about `size` of the text matches (those whose scrambled rowid is under size /
        matches of the range: the same ones for the same search every time), and a JSON list of rowids holding
        them (and some more: filter it by the cut). Read again from the index only if the kept ones are too few."""
        cut = _cut(size, self.text_matches())
        if self.sampled[0] < cut:
            self._scan(cut)
        return cut, self.sampled[1]

    def tally(self) -> _Tally:
        """`_tally`, or the one kept for the same search while nothing changed."""
        tallies: OrderedDict[str, _Tally] = _cached.kept[2]
        key = repr(astuple(self.parts))
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = _tally(self)
            if len(tallies) > CACHED_SEARCHES:
                tallies.popitem(last=False)
        tallies.move_to_end(key)
        return tally


def _facets(tally: _Tally) -> dict[str, dict[Any, int]]:
    """Counts per value of every facet, most common first, from the counts per combination."""
    facets: dict[str, dict[Any, float]] = {name: {} for name in FACET_COLUMNS}
    for combo, (runs, _, _) in tally.per_combo.items():
        for name, value in zip(FACET_COLUMNS, tally.combos[combo][: len(FACET_COLUMNS)], strict=True):
            facets[name][value] = facets[name].get(value, 0) + runs
    return {
        name: dict(sorted(((value, round(n)) for value, n in counts.items()), key=lambda kv: (-kv[1], str(kv[0]))))
        for name, counts in facets.items()
    }


def _fetch(conn: sqlite3.Connection, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _page(look: _Look, sort: str, page: int, per_page: int, total: int) -> list[dict[str, Any]]:
    """One page of matching runs in the sort's order (SORTS, ties included).

    Without words, SQLite reads the page off an index. With words (or a tag), a page is found by walking the
    sort's index (`_walk`) when that expects to read fewer entries than WALK_FACTOR times the text matches, and
    otherwise by fetching every match and sorting them (a rare word).
    """
    conn, parts = look.conn, look.parts
    order, need = SORTS[sort], page * per_page
    if parts.match is None:
        checks = _Parts.sql(parts.dates, "runs") + _Parts.sql(parts.facet, "runs") + _Parts.sql(parts.row, "runs")
        return _fetch(
            conn,
            f"SELECT * FROM runs WHERE {' AND '.join([*checks, COUNTED])} ORDER BY {order} LIMIT ? OFFSET ?",
            [*parts.date_args, *parts.facet_args, *parts.row_args, per_page, (page - 1) * per_page],
        )
    found = look.text_matches()
    most = min(WALK_FACTOR * found, WALK_BUDGET)
    rows = None
    if look.walked is not None and look.walked[0] == sort:
        # The read that counted the matches walked the sort's index too.
        _, steps, walked, hits = look.walked
        rows = _walked_rows(look, sort, hits, need, exhausted=walked < steps)
        if rows is None:
            rows = _walk(look, sort, need, steps * 4, most)
    else:
        steps = int(WALK_MARGIN * need * _runs(conn) / max(total, 1)) + 1
        if sort in SORT_INDEXES and steps <= most:
            rows = _walk(look, sort, need, steps, most)
    if rows is not None:
        return rows[(page - 1) * per_page : need]
    # NOT INDEXED: the matches drive, each looked up by rowid; SQLite sorts them.
    checks = _Parts.sql(parts.dates, "runs") + _Parts.sql(parts.facet, "runs") + _Parts.sql(parts.row, "runs")
    return _fetch(
        conn,
        f"SELECT * FROM runs NOT INDEXED WHERE rowid IN (SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?) "
        f"AND {' AND '.join([*checks, COUNTED])} ORDER BY {order} LIMIT ? OFFSET ?",
        [parts.match, *parts.date_args, *parts.facet_args, *parts.row_args, per_page, (page - 1) * per_page],
    )


WALK_MARGIN = 1.5
"""How much further than expected a walk goes at first: the matches are not spread evenly, and a second walk
costs more than a longer first one."""

WALK_FACTOR = 4
"""Index entries a walk may read per text match before fetching and sorting every match is cheaper: an entry
costs about a fifth of a µs (the index alone, never the row), fetching a match a µs or two."""


def _walked_sql(parts: _Parts, sort: str) -> str:
    """The first runs of the sort's order within the dates asked for, read off its index alone (SORT_INDEXES:
    the index holds the date, so no row is read): `walked(r)`, as many as the one argument after the dates'."""
    dates = " AND ".join(_Parts.sql(parts.dates, "runs")) or "1"
    return (
        f"WITH walked(r) AS MATERIALIZED (SELECT rowid FROM runs INDEXED BY {SORT_INDEXES[sort]} "
        f"WHERE {dates} ORDER BY {SORTS[sort]} LIMIT ?)"
    )


def _walked_rows(look: _Look, sort: str, hits: str, need: int, *, exhausted: bool) -> list[dict[str, Any]] | None:
    """The walked runs the words match (`hits`, a JSON list of rowids) that pass the other filters, in the sort's
    order, if they hold the page: at least `need` of them, or every run walked."""
    parts = look.parts
    checks = _Parts.sql(parts.facet, "runs") + _Parts.sql(parts.row, "runs")
    rows = _fetch(
        look.conn,
        # NOT INDEXED: the few walked matches drive, looked up by rowid (an index on a filtered column would not).
        f"SELECT * FROM runs NOT INDEXED WHERE rowid IN (SELECT value FROM json_each(?)) "
        f"AND {' AND '.join([*checks, COUNTED])} "
        f"ORDER BY {SORTS[sort]}",
        [hits, *parts.facet_args, *parts.row_args],
    )
    return rows if exhausted or len(rows) >= need else None


def _walk(look: _Look, sort: str, need: int, steps: int, most: int) -> list[dict[str, Any]] | None:
    """The runs among the first of the sort's order that match the search, in that order, holding at least its
    `need` first matches; None if that takes more than `most` index entries.

    The first `steps` runs in the sort's order (`_walked_sql`) go into a small table; one read of the full-text
    index's list of runs for the words keeps those in it, and only these few are looked up for the other
    filters. Every run past the walked ones comes later in the order, so once `need` of them match the page is
    among them, exactly. Too few: walked again further. The read starts and stops at the lowest and highest
    walked rowid: where runs are written as they are made (most catalogues), the newest runs have the highest
    rowids and the read is short.
    """
    parts = look.parts
    sql = (
        f"{_walked_sql(parts, sort)} SELECT (SELECT COUNT(*) FROM walked), (SELECT json_group_array(rowid) FROM "
        "runs_fts WHERE runs_fts MATCH ? AND rowid BETWEEN (SELECT MIN(r) FROM walked) AND (SELECT MAX(r) FROM walked) "
        "AND +rowid IN (SELECT r FROM walked))"
    )
    while steps <= most:
        walked, hits = look.conn.execute(sql, [*parts.date_args, steps, parts.match]).fetchone()
        rows = _walked_rows(look, sort, hits, need, exhausted=walked < steps)
        if rows is not None:
            return rows
        # As far again as the matches found so far say it takes, and at least twice as far.
        steps = int(steps * max(2.0, min(16.0, WALK_MARGIN * need / max(len(json.loads(hits)), 1))))
    return None


def _run(
    conn: sqlite3.Connection, fts: str | None, filters: Filters, sort: str, page: int, per_page: int
) -> SearchResult:
    with _Look(conn, _parts(fts, filters)) as look:
        look.page = (sort, page * per_page)
        tally = look.tally()
        total = round(tally.sums()[0])
        rows = _page(look, sort, page, per_page, total) if total else []
    return SearchResult(rows, total, page, per_page, _facets(tally), approximate=tally.approximate)


@dataclass(frozen=True)
class CostTotal:
    """What the runs of a search cost together, and how many of them have a known cost (estimates when
    `approximate`, as SearchResult's)."""

    usd: float
    priced: int
    runs: int
    approximate: bool = False


def cost_total(conn: sqlite3.Connection, query: str = "", filters: Filters | None = None) -> CostTotal:
    """The summed cost of every run a search matches (all pages), as History shows under its grid.

    The sums come from the narrow `run_combos` (estimated past EXACT_LIMIT candidates, as the counts are), or, for
    an empty search, from the sums kept per facet combination; right after `search` with the same query and
    filters they are read from the tally it kept.
    """
    filters = filters or Filters()
    query = query.strip()
    fts = None
    if query:
        fts = query if _valid_fts(conn, query) else safe_fts_query(query)
        if not fts:
            return CostTotal(0.0, 0, 0)
    with _Look(conn, _parts(fts, filters)) as look:
        tally = look.tally()
    runs, priced, usd = tally.sums()
    return CostTotal(round(float(usd), 6), round(priced), round(runs), tally.approximate)


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
