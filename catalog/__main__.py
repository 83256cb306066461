"""`python -m catalog search|sync|stats`: the catalogue from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from catalog.catalog import Catalog
from catalog.search import SORTS
from catalog.sync import sync
from worker.contract import JobStatus
from worker.settings import Settings
from worker.store import open_store


def _table(rows: list[dict[str, Any]]) -> str:
    columns = [
        ("created_at", 20),
        ("status", 11),
        ("size", 16),
        ("mode", 9),
        ("video_duration_s", 7),
        ("run_id", 36),
        ("prompt", 50),
    ]
    head = "  ".join(name[:width].ljust(width) for name, width in columns)
    lines = [head, "-" * len(head)]
    for row in rows:
        lines.append(
            "  ".join(
                str(row.get(name) if row.get(name) is not None else "")[:width].ljust(width) for name, width in columns
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one catalogue command."""
    parser = argparse.ArgumentParser(prog="python -m catalog", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    find = commands.add_parser("search", help="full-text search with filters")
    find.add_argument("query", nargs="?", default="", help='words, or FTS syntax: "exact phrase", talk*, a OR b')
    find.add_argument("--status", choices=JobStatus.ALL)
    find.add_argument("--size", choices=["infinitetalk-480", "infinitetalk-720"])
    find.add_argument("--mode", choices=["clip", "streaming"])
    find.add_argument("--engine")
    find.add_argument("--steps", type=int, dest="sample_steps")
    find.add_argument("--speakers", type=int, choices=[1, 2])
    find.add_argument("--from", dest="created_from", help="created at or after (ISO date)")
    find.add_argument("--to", dest="created_to", help="created at or before (ISO date)")
    find.add_argument("--tag")
    find.add_argument("--sort", choices=list(SORTS), default="newest")
    find.add_argument("--page", type=int, default=1)
    find.add_argument("--per-page", type=int, default=20)
    find.add_argument("--json", action="store_true", help="print JSON (rows, total, facets)")
    scan = commands.add_parser("sync", help="add runs from the metadata.json files in the store")
    scan.add_argument("--prefix", default="", help="only scan under this key prefix")
    scan.add_argument("--store", choices=["s3", "volume"], help="default: the configured store")
    commands.add_parser("stats", help="totals by status and engine")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    catalog = Catalog(settings.catalog_file)
    if args.command == "search":
        filters = {
            name: getattr(args, name)
            for name in (
                "status",
                "size",
                "mode",
                "engine",
                "sample_steps",
                "speakers",
                "created_from",
                "created_to",
                "tag",
            )
        }
        result = catalog.search(args.query, sort=args.sort, page=args.page, per_page=args.per_page, **filters)
        if args.json:
            print(
                json.dumps(
                    {
                        "total": result.total,
                        "page": result.page,
                        "pages": result.pages,
                        "facets": {k: {str(v): n for v, n in c.items()} for k, c in result.facets.items()},
                        "rows": result.rows,
                        "note": result.query_note,
                    },
                    indent=2,
                    default=str,
                )
            )
        else:
            if result.query_note:
                print(result.query_note, file=sys.stderr)
            print(_table(result.rows))
            print(f"\n{result.total} runs, page {result.page} of {result.pages}")
        return 0
    if args.command == "sync":
        report = sync(catalog, open_store(settings, args.store), args.prefix)
        print(report.summary())
        for key, reason in report.skipped:
            print(f"  skipped {key}: {reason}", file=sys.stderr)
        return 0
    print(json.dumps(catalog.stats(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
