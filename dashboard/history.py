"""History's logic: from the page's filter values to a catalogue search, and from a run to what its detail shows."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from catalog import Catalog, SearchResult, bucket, sync
from catalog.records import split_parts
from core.contract import TIMING_KEYS, JobError, JobStatus, friendly_error
from core.store import Store
from dashboard.cost import dollars
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
            self.tag.strip().lower(),  # the catalogue matches tags ignoring case
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


def count_words(n: int, approximate: bool) -> str:
    """A count as History shows it: exact as it is (`1,204`), an estimate rounded to three figures and marked
    (`≈99,900`), so a count from a sample (catalog.search.EXACT_LIMIT) is never read as exact (issue 32)."""
    if not approximate:
        return f"{n:,}"
    return f"≈{round(n, 2 - len(str(n)) + 1) if n >= 1000 else n:,}"


def total_words(result: SearchResult) -> str:
    """How many runs matched, e.g. `32 runs`, or `≈99,900 runs (estimated: …)` past the exact limit."""
    text = f"{count_words(result.total, result.approximate)} run{'s' if result.total != 1 else ''}"
    if result.approximate:
        text += (
            " (estimated from a sample of the matches, as are the counts by filter; narrow the search to count them"
            " exactly)"
        )
    return text


def facet_counts(result: SearchResult, name: str, shown: int = 4) -> str:
    """How many matches each of a facet's most common values has, e.g. `Completed 6 · Failed 2` (`≈` when
    estimated)."""
    counts = [(value, n) for value, n in result.facets.get(name, {}).items() if value is not None]
    text = " · ".join(f"{facet_word(name, value)} {count_words(n, result.approximate)}" for value, n in counts[:shown])
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


PART_STATES = {
    "pending": "not sent yet",
    JobStatus.IN_QUEUE: "queued",
    JobStatus.IN_PROGRESS: "rendering",
    JobStatus.COMPLETED: "done",
    JobStatus.FAILED: "failed",
    JobStatus.TIMED_OUT: "timed out",
    JobStatus.CANCELLED: "cancelled",
}
PART_ERROR_SHOWN = 300


def split_caption(run: dict[str, Any]) -> str:
    """A split run's card line, "Split into 3 parts"; empty for a run rendered as one job."""
    count = len(split_parts(run))
    return f"Split into {count} parts" if count else ""


def _part_error(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    code, message = error.get("code"), error.get("message")
    text = ": ".join(str(part) for part in (code, message) if part)
    return text if len(text) <= PART_ERROR_SHOWN else text[: PART_ERROR_SHOWN - 1] + "…"


def part_rows(run: dict[str, Any]) -> list[dict[str, str]]:
    """A split run's parts for its detail, one row each: number, where it lies in the speech, its job, state, GPU
    seconds, cost, and the error of a part that failed. From metadata.json's `parts` once joined, from split.json
    while it runs (catalog.sync keeps the row's `parts` column). Every cell is text for a table, never Markdown:
    a part's error is the endpoint's text."""
    rows = []
    for part in split_parts(run):
        rows.append(
            {
                "part": str(part.index + 1),
                "speech": f"{part.start_s:.2f}–{part.end_s:.2f} s",
                "job": part.job_id or "—",
                "state": PART_STATES.get(part.state, str(part.state)),
                "GPU": f"{part.gpu_ms / 1000:.1f} s" if part.gpu_ms is not None else "—",
                "cost": dollars(part.cost_usd) if part.cost_usd is not None else "—",
                "error": _part_error(part.error),
            }
        )
    return rows


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


NAME_CHARS = 150
"""The most characters of a prompt a download's name keeps: whole words, so a prompt's end is kept unless it is
longer than a file manager shows anyway (six words and 48 characters cut most prompts' ends, issue 29)."""


def download_name(run: dict[str, Any], what: str, extension: str) -> str:
    """A download's file name from the run's date and prompt (`2026-12-01-a-pilot-explains-the-video.mp4`),
    so a folder of downloads reads as what they are; the run id where there is no prompt."""
    stem = "-".join(re.findall(r"[a-z0-9]+", (run.get("prompt") or "").lower()))
    if len(stem) > NAME_CHARS:
        stem = stem[: NAME_CHARS + 1].rsplit("-", 1)[0]
    stem = stem or re.sub(r"[^A-Za-z0-9_-]", "_", run["run_id"])
    day = (run.get("created_at") or "")[:10]
    return f"{day + '-' if day else ''}{stem}-{what}.{extension}"


def size_words(run: dict[str, Any]) -> str:
    """A run's size, said one way on every page: the size setting as the form shows it and the video's pixels
    (`480p · 640×640`); either alone when only one is known ("480p", "infinitetalk-480" and "640×640" were
    three ways in three places, issue 29)."""
    parts = [facet_word("size", run["size"]) if run.get("size") else ""]
    if run.get("width") and run.get("height"):
        parts.append(f"{run['width']}×{run['height']}")
    return " · ".join(part for part in parts if part)


def card_line(run: dict[str, Any], cost_suffix: str = "") -> str:
    """A card's caption: when it was made, how long the video is, its size and steps, then its cost; a part that
    is unknown is left out rather than shown as an empty "· ·" or "? steps" (a failed run's card, issue 29)."""
    made = (run.get("created_at") or "")[:16].replace("T", " ")
    length = f"{run['video_duration_s']:.1f} s" if run.get("video_duration_s") else ""
    steps = f"{run['sample_steps']} steps" if run.get("sample_steps") else ""
    return " · ".join(part for part in (made, length, size_words(run), steps) if part) + cost_suffix


def tags_line(run: dict[str, Any]) -> str:
    """A card's tags as the user wrote them (`Demo Reel · best`); empty when it has none. A search row holds them
    as the catalogue's comma-separated column, a fetched run also as tag_list."""
    tags = run.get("tag_list") or [tag for tag in (run.get("tags") or "").split(",") if tag]
    return " · ".join(tags)


def no_picture(run: dict[str, Any]) -> str:
    """What a card without a thumbnail says in its place: why there is no picture yet, or none at all."""
    status = run.get("status")
    if status == JobStatus.IN_QUEUE:
        return "Waiting in the queue"
    if status == JobStatus.IN_PROGRESS:
        return "Being made"
    if status == JobStatus.CANCELLED:
        return "Cancelled before a video was made"
    if status in JobStatus.FAILURES:
        return f"No video: {friendly_error(run.get('error_code') or '')['title']}"
    return "No thumbnail"


UNDO_MAX_BYTES = 256 * 1024 * 1024
"""The most a deleted run's files may hold for its Undo to keep a copy of them in memory; a bigger run is deleted
for good, and the confirmation says so beforehand."""


@dataclass
class Deleted:
    """A run just deleted from History, with what Undo needs to bring it back."""

    run_id: str
    prompt: str
    folder: str
    files: dict[str, bytes]
    """The run's files as they were in the store (empty when they were kept there)."""
    undoable: bool


def run_files(store: Store, run: dict[str, Any]) -> list[str]:
    """Every file of a run in the store: its folder's, and the video and thumbnail the catalogue names."""
    folder = bucket.run_folder(run)
    listed = [key for key in store.list(folder + "/") if bucket.folder_of(key) == folder]
    return list(dict.fromkeys(key for key in (*listed, run.get("video_key"), run.get("thumb_key")) if key))


def delete_run(
    catalog: Catalog, store: Store, run: dict[str, Any], *, with_files: bool, deleted_by: str | None
) -> Deleted:
    """Delete a run as Catalog.delete does, keeping in memory what Undo needs: a copy of its files when they go
    (within UNDO_MAX_BYTES), nothing more when they stay (a sync of its folder brings the row back)."""
    files: dict[str, bytes] = {}
    undoable = True
    if with_files:
        for key in run_files(store, run):
            files[key] = store.get(key)
            if sum(map(len, files.values())) > UNDO_MAX_BYTES:
                files, undoable = {}, False
                break
    catalog.delete(run["run_id"], store if with_files else None, deleted_by=deleted_by)
    return Deleted(run["run_id"], run.get("prompt") or "", bucket.run_folder(run), files, undoable)


def undo_delete(catalog: Catalog, store: Store, deleted: Deleted) -> bool:
    """Put a deleted run's files back, drop its tombstone, and read its folder again; True when it is listed."""
    for key, data in deleted.files.items():
        store.put_bytes(key, data)
    if deleted.files:
        with contextlib.suppress(JobError):  # none was written (a folder the key rule refuses needs none)
            store.delete(f"{deleted.folder}/{bucket.TOMBSTONE}")
    sync(catalog, store, prefix=deleted.folder + "/", full=True)
    return catalog.get(deleted.run_id) is not None
