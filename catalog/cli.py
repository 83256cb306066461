"""`studio catalog search|sync|stats|reindex|tag|untag|note|favourite`: the catalogue from the command line.

    studio catalog search "orange flight suit" --status COMPLETED --json

The database is `Settings.catalog_file` (STUDIO_CATALOG, or catalog.db in STUDIO_DATA_DIR); `sync` reads the
store the settings name (S3 when S3_BUCKET is set, else the local artifact folder). The curation commands write
through to that store as the dashboard does (Catalog.curate), so a catalogue rebuilt by `sync` gets them back.
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
from typing import Any

from catalog.catalog import Catalog, clean_tags
from catalog.schema import CatalogError, explain
from catalog.search import SORTS, SearchResult
from catalog.sync import sync
from core.contract import JobError, JobStatus
from core.prices import PriceTable
from core.settings import Settings
from core.store import open_store

TABLE_COLUMNS = (
    ("created_at", "created (UTC)", 16),
    ("status", "status", 11),
    ("size", "size", 16),
    ("mode", "mode", 9),
    ("sample_steps", "steps", 5),
    ("video_duration_s", "secs", 6),
    ("run_id", "run", 36),
    ("prompt", "prompt", 48),
)
FILTER_ARGS = (
    "status",
    "size",
    "mode",
    "engine",
    "sample_steps",
    "speakers",
    "input_kind",
    "created_from",
    "created_to",
    "tag",
)


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    if len(text) >= 16 and text[10:11] == "T":  # an ISO 8601 time: minutes are enough to tell runs apart
        text = text[:16].replace("T", " ")
    return (text if len(text) <= width else text[: width - 1] + "…").ljust(width)


def table(rows: list[dict[str, Any]]) -> str:
    """Runs as a fixed-width text table, one line each."""
    head = "  ".join(_cell(title, width) for _, title, width in TABLE_COLUMNS).rstrip()
    lines = [head, "-" * len(head)]
    lines += ["  ".join(_cell(row.get(name), width) for name, _, width in TABLE_COLUMNS).rstrip() for row in rows]
    return "\n".join(lines)


def _search_json(result: SearchResult) -> str:
    return json.dumps(
        {
            "total": result.total,
            "approximate": result.approximate,
            "page": result.page,
            "pages": result.pages,
            "note": result.query_note,
            "facets": {name: {str(value): n for value, n in counts.items()} for name, counts in result.facets.items()},
            "rows": result.rows,
        },
        indent=2,
    )


def _total_text(result: SearchResult) -> str:
    """`12 runs, page 1 of 1`; an estimate is marked ≈ and says so, as History does (issue 32)."""
    mark = "≈" if result.approximate else ""
    text = f"{mark}{result.total} runs, page {result.page} of {result.pages}"
    if result.approximate:
        text += (
            " (≈: estimated from a sample of the matches, as are the counts below; narrow the search to count exactly)"
        )
    return text


def _facets_text(result: SearchResult) -> str:
    """A line per facet, its values and their counts, each marked ≈ when estimated."""
    mark = "≈" if result.approximate else ""
    lines = []
    for name, counts in result.facets.items():
        if counts:
            lines.append(f"{name}: " + ", ".join(f"{value} ({mark}{count})" for value, count in counts.items()))
    return "\n".join(lines)


def _stats_text(stats: dict[str, Any]) -> str:
    lines = [
        f"runs: {stats['runs']}  favourites: {stats['favourites']}  video: {stats['video_seconds']} s  "
        f"cost: ${stats['cost_usd']:.2f}"
    ]
    for name in ("by_status", "by_engine"):
        counts = ", ".join(f"{value} ({count})" for value, count in stats[name].items())
        lines.append(f"{name.replace('_', ' ')}: {counts or '-'}")
    return "\n".join(lines)


CURATION_COMMANDS = ("tag", "untag", "note", "favourite")


def _curation_text(run: dict[str, Any]) -> str:
    tags = ", ".join(run["tag_list"]) or "-"
    note = (run.get("note") or "-").replace("\n", " ")
    return f"{run['run_id']}: tags {tags} · favourite {'yes' if run.get('favourite') else 'no'} · note {note}"


def curate(args: argparse.Namespace, catalog: Catalog, settings: Settings) -> str:
    """Carry out one curation command and say what the run holds now; an unknown run is a ValueError naming
    the fix (the catalogue may simply not have synced it yet)."""
    run = catalog.get(args.run_id)
    if run is None:
        raise ValueError(
            f"run_id: no run {args.run_id!r} in {settings.catalog_file}; find its id with `studio catalog search`, "
            "or run `studio catalog sync` first if it was made elsewhere"
        )
    changes: dict[str, Any] = {}
    if args.command == "tag":
        changes["tags"] = run["tag_list"] + args.tags
    elif args.command == "untag":
        dropped = {tag.lower() for tag in clean_tags(args.tags)}
        changes["tags"] = [tag for tag in run["tag_list"] if tag.lower() not in dropped]
    elif args.command == "note":
        changes["note"] = args.text
    else:
        changes["favourite"] = not args.off
    updated = catalog.curate(args.run_id, store=open_store(settings, args.store), **changes)
    if updated is None:
        raise ValueError(f"run_id: run {args.run_id!r} was deleted meanwhile")
    return _curation_text(updated)


def parser(prog: str = "studio catalog") -> argparse.ArgumentParser:
    """The command line's arguments; `prog` is the name the help shows."""
    root = argparse.ArgumentParser(
        prog=prog,
        description="Search, sync, count and curate catalogued runs.",
        epilog=f'example:\n  {prog} search "flight suit" --status COMPLETED --json',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True)
    find = commands.add_parser("search", help="full-text search with filters")
    find.add_argument("query", nargs="?", default="", help='words, or FTS5 syntax: "exact phrase", talk*, a OR b')
    find.add_argument("--status", choices=JobStatus.ALL)
    find.add_argument("--size", choices=["infinitetalk-480", "infinitetalk-720"])
    find.add_argument("--mode", choices=["clip", "streaming"])
    find.add_argument("--engine", help="e.g. preview, infinitetalk")
    find.add_argument("--steps", type=int, dest="sample_steps", metavar="N")
    find.add_argument("--speakers", type=int, choices=[1, 2])
    find.add_argument("--input-kind", choices=["image", "video"], dest="input_kind")
    find.add_argument("--from", dest="created_from", metavar="DATE", help="created at or after (ISO 8601)")
    find.add_argument("--to", dest="created_to", metavar="DATE", help="created before (ISO 8601)")
    find.add_argument("--tag")
    find.add_argument("--favourites", action="store_true", help="only runs marked as favourites")
    find.add_argument("--sort", choices=list(SORTS), default="newest")
    find.add_argument("--page", type=int, default=1)
    find.add_argument("--per-page", type=int, default=20)
    find.add_argument("--json", action="store_true", help="print rows, total and facet counts as JSON")
    scan = commands.add_parser("sync", help="add runs from the metadata.json files in the store")
    scan.add_argument("--prefix", default="", help="only scan under this key prefix (default: the whole store)")
    scan.add_argument("--store", choices=["s3", "volume"], help="default: the configured store")
    scan.add_argument("--full", action="store_true", help="re-read files an earlier sync already took in")
    count = commands.add_parser("stats", help="totals by status and engine")
    count.add_argument("--json", action="store_true")
    commands.add_parser("reindex", help="rebuild the search and facet indexes from the runs (after a VACUUM)")
    for name, help_text in (("tag", "add tags to a run"), ("untag", "remove tags from a run")):
        tagging = commands.add_parser(name, help=help_text + " (written through to the bucket)")
        tagging.add_argument("run_id")
        tagging.add_argument("tags", nargs="+", metavar="TAG")
    noting = commands.add_parser("note", help="set a run's note; an empty TEXT clears it (written to the bucket)")
    noting.add_argument("run_id")
    noting.add_argument("text")
    liking = commands.add_parser("favourite", help="mark a run as a favourite, or unmark it with --off")
    liking.add_argument("run_id")
    liking.add_argument("--off", action="store_true", help="unmark it")
    for curating in (commands.choices[name] for name in CURATION_COMMANDS):
        curating.add_argument("--store", choices=["s3", "volume"], help="default: the configured store")
    return root


def run(args: argparse.Namespace, settings: Settings) -> None:
    """Carry out one parsed command against the configured catalogue and store."""
    catalog = Catalog(settings.catalog_file, PriceTable.from_settings(settings))
    if args.command == "search":
        filters: dict[str, Any] = {name: getattr(args, name) for name in FILTER_ARGS}
        if args.favourites:
            filters["favourite"] = 1
        result = catalog.search(args.query, sort=args.sort, page=args.page, per_page=args.per_page, **filters)
        if args.json:
            print(_search_json(result))
            return
        if result.query_note:
            print(result.query_note, file=sys.stderr)
        print(table(result.rows))
        print(f"\n{_total_text(result)}")
        print(_facets_text(result))
    elif args.command == "sync":
        report = sync(catalog, open_store(settings, args.store), args.prefix, full=args.full)
        print(report.summary())
    elif args.command in CURATION_COMMANDS:
        print(curate(args, catalog, settings))
    elif args.command == "reindex":
        catalog.reindex()
        print(f"reindexed {catalog.stats()['runs']} runs")
    else:
        stats = catalog.stats()
        print(json.dumps(stats, indent=2) if args.json else _stats_text(stats))


def main(argv: list[str] | None = None, prog: str = "studio catalog") -> int:
    """Run one catalogue command; bad input, an unreachable store or a damaged or read-only catalogue is one line
    on stderr and exit status 2."""
    args = parser(prog).parse_args(argv)
    # Skipped metadata files are logged by sync; show them as plain lines.
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    try:
        settings = Settings.from_env()
        run(args, settings)
    except CatalogError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:  # damage found past the pages that opening reads
        print(f"error: {explain(error, settings.catalog_file)}", file=sys.stderr)
        return 2
    except JobError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
