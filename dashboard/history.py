"""History's logic: from the page's filter values to a catalogue search, and from a run to what its detail shows."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from catalog import Catalog, SearchResult
from core.contract import TIMING_KEYS
from dashboard.views import plain

PER_PAGE = 24
FACETS: dict[str, str] = {
    "status": "Status",
    "engine": "Engine",
    "size": "Size",
    "mode": "Mode",
    "sample_steps": "Steps",
    "speakers": "Speakers",
}
SORT_LABELS = {
    "newest": "Newest first",
    "oldest": "Oldest first",
    "longest": "Longest video",
    "slowest": "Slowest to make",
    "steps": "Most steps",
    "costliest": "Most expensive",
    "cheapest": "Cheapest",
}


@dataclass
class Query:
    """What the user asked History for."""

    text: str = ""
    facets: dict[str, list[Any]] = field(default_factory=dict)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    favourites: bool = False
    tag: str = ""
    sort: str = "newest"
    page: int = 1
    submitted_by: str | None = None
    """Only runs this user submitted ("mine"); None is everyone's."""

    def signature(self) -> str:
        """Everything but the page, as a short digest: a new search starts again at page 1."""
        parts = (
            self.text,
            sorted((k, sorted(map(str, v))) for k, v in self.facets.items() if v),
            self.date_from,
            self.date_to,
            self.favourites,
            self.tag.strip().lower(),
            self.sort,
            self.submitted_by,
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def page_key(query: Query) -> str:
    """The History pagination widget's key: one per search, so that changing the search starts at page 1."""
    return f"history.page.{query.signature()}"


def search(catalog: Catalog, query: Query, per_page: int = PER_PAGE) -> SearchResult:
    """Run the query against the catalogue: one page of runs, the total, and counts per facet value."""
    return catalog.search(query.text, sort=query.sort, page=query.page, per_page=per_page, **filters_for(query))


def filters_for(query: Query) -> dict[str, Any]:
    """The catalogue filters a query stands for (the search and its cost total use the same)."""
    filters: dict[str, Any] = {name: values for name, values in query.facets.items() if values}
    if query.date_from:
        filters["created_from"] = query.date_from.isoformat()
    if query.date_to:
        # created_at is a full timestamp: the whole last day counts.
        filters["created_to"] = (query.date_to + dt.timedelta(days=1)).isoformat()
    if query.favourites:
        filters["favourite"] = 1
    if query.submitted_by:
        filters["submitted_by"] = query.submitted_by
    if query.tag.strip():
        filters["tag"] = query.tag.strip().lower()
    return filters


def facet_options(result: SearchResult, name: str, selected: list[Any]) -> list[Any]:
    """A facet's choices: values among the matches, most common first, plus whatever is already selected."""
    values = [value for value in result.facets.get(name, {}) if value is not None]
    return values + [value for value in selected if value not in values]


def facet_word(name: str, value: Any) -> str:
    """A facet value as a person reads it: `In queue`, `480p`, `2 people`, `8 steps` (the values stay the
    catalogue's; only what is shown changes, and always the same way, so a selection keeps its label)."""
    if name == "status":
        return str(value).replace("_", " ").capitalize()
    if name == "size":
        return str(value).removeprefix("infinitetalk-") + "p"
    if name == "speakers":
        return "1 person" if value == 1 else f"{value} people"
    if name == "sample_steps":
        return f"{value} steps"
    return str(value)


def facet_counts(result: SearchResult, name: str, shown: int = 4) -> str:
    """How many matches each of a facet's most common values has, e.g. `Completed 6 · Failed 2`."""
    counts = [(value, n) for value, n in result.facets.get(name, {}).items() if value is not None]
    text = " · ".join(f"{facet_word(name, value)} {n:,}" for value, n in counts[:shown])
    return text + (f" · {len(counts) - shown} more" if len(counts) > shown else "")


def params_rows(params: dict[str, Any]) -> list[dict[str, str]]:
    """A run's parameters as (parameter, value) rows, nested ones dotted; long values (inline media) shortened."""
    rows: list[dict[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else key, value[key])
            return
        text = str(value)
        if len(text) > 160:
            text = f"{text[:60]}… ({len(text):,} characters)"
        rows.append({"parameter": prefix, "value": text})

    walk("", params)
    return rows


def timing_rows(timings: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-stage times in seconds, in pipeline order, without the total (which is shown on its own)."""
    order = {key: index for index, key in enumerate(TIMING_KEYS)}
    stages = [(k, v) for k, v in timings.items() if k != "total_ms" and isinstance(v, int | float) and v >= 0]
    stages.sort(key=lambda kv: order.get(kv[0], len(order)))
    return [{"stage": key.removesuffix("_ms"), "seconds": round(value / 1000.0, 3)} for key, value in stages]


def skipped_lines(skipped: list[tuple[str, str]], shown: int = 5) -> list[str]:
    """A sync's skipped files (key, reason) as lines for the page: both are the bucket's text, chosen by whoever
    can write to it, so each is escaped as plain text (views.plain), never Markdown nor a code span that a
    backtick in the key could close; then how many more were skipped."""
    lines = [f"Skipped {plain(key)}: {plain(reason)}" for key, reason in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"… and {len(skipped) - shown:,} more (the log lists them all)")
    return lines


def parse_tags(text: str) -> list[str]:
    """Tags typed as a comma-separated list."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def download_name(run: dict[str, Any], what: str, extension: str) -> str:
    """A download's file name from the run's date and prompt (`2026-12-01-a-pilot-explains-the-video.mp4`),
    so a folder of downloads reads as what they are; the run id where there is no prompt."""
    words = re.findall(r"[a-z0-9]+", (run.get("prompt") or "").lower())[:6]
    stem = "-".join(words)[:48].rstrip("-") or re.sub(r"[^A-Za-z0-9_-]", "_", run["run_id"])
    day = (run.get("created_at") or "")[:10]
    return f"{day + '-' if day else ''}{stem}-{what}.{extension}"
