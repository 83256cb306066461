"""Catalogue search speed at 100 000 runs: search + facets p50/p95, and the ratio to a raw FTS5 query.

Fills a fresh catalogue with 100 000 realistic runs (bulk insert), then times, side by side in one run, each
query through `Catalog.search` (filtered rows, total, seven facet counts, one page) and the same words as a bare
FTS5 `MATCH` returning the page's rowids. Goals: p95 ≤ 50 ms and ratio ≤ 3.

    python bench/bench_catalog.py [--runs 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402
from catalog.schema import RUN_COLUMNS  # noqa: E402

WORDS = [
    "astronaut",
    "teacher",
    "chef",
    "doctor",
    "pilot",
    "singer",
    "farmer",
    "lawyer",
    "nurse",
    "student",
    "presenter",
    "host",
    "reporter",
    "coach",
    "smiles",
    "laughs",
    "explains",
    "announces",
    "whispers",
    "shouts",
    "greets",
    "welcomes",
    "studio",
    "kitchen",
    "office",
    "stage",
    "garden",
    "warmly",
    "calmly",
    "quickly",
    "softly",
    "bright",
    "dark",
    "sunny",
    "rainy",
    "evening",
    "morning",
]
QUERIES = [
    ("astronaut", {}),
    ("teacher studio", {}),
    ("smiles", {"status": "COMPLETED"}),
    ("kitchen", {"size": "infinitetalk-720", "mode": "streaming"}),
    ("", {}),
    ("", {"status": "FAILED"}),
    ("greets warmly", {"speakers": 2}),
]


RAW_FTS = (
    "SELECT runs.* FROM runs JOIN runs_fts ON runs.rowid = runs_fts.rowid WHERE runs_fts MATCH ? "
    "ORDER BY runs.created_at DESC LIMIT 24"
)
"""The plain text search a catalogue without facets would run: one page of matches, newest first."""


def fill(catalog: Catalog, count: int) -> None:
    """Insert count runs with realistic columns, in one transaction."""
    rng = random.Random(7)
    statuses = ["COMPLETED"] * 8 + ["FAILED", "CANCELLED", "IN_PROGRESS", "IN_QUEUE"]
    rows = []
    for index in range(count):
        status = rng.choice(statuses)
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14)))
        rows.append(
            {
                "run_id": f"run-{index:06d}",
                "job_id": f"run-{index:06d}",
                "endpoint_id": "local",
                "engine": rng.choice(["preview", "infinitetalk"]),
                "status": status,
                "prompt": prompt,
                "created_at": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
                "size": rng.choice(["infinitetalk-480", "infinitetalk-720"]),
                "mode": rng.choice(["clip", "streaming"]),
                "sample_steps": rng.choice([4, 8, 20, 40]),
                "speakers": rng.choice([1, 1, 1, 2]),
                "input_kind": rng.choice(["image", "image", "video"]),
                "base_seed": rng.randint(0, 2**31),
                "video_duration_s": round(rng.uniform(2, 120), 2),
                "total_ms": rng.randint(1000, 900_000),
                "params": json.dumps({"prompt": prompt}),
                "favourite": 0,
                "error_code": "E_OOM" if status == "FAILED" else None,
            }
        )
    assert set(rows[0]) <= set(RUN_COLUMNS)
    catalog.db["runs"].insert_all(rows, batch_size=5000)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds per call, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "bench.db")
        began = time.perf_counter()
        fill(catalog, args.runs)
        print(f"filled {args.runs} runs in {time.perf_counter() - began:.1f} s")
        print(f"{'query':<36}{'matches':>9}{'p50 ms':>9}{'p95 ms':>9}{'raw FTS p50':>13}{'ratio':>8}")
        all_times, ratios = [], []
        for words, filters in QUERIES:
            times = timed(lambda w=words, f=filters: catalog.search(w, **f), args.repeat)
            total = catalog.search(words, **filters).total
            label = (words or "(all)") + (" " + " ".join(f"{k}={v}" for k, v in filters.items()) if filters else "")
            raw = ""
            ratio_text = ""
            if words:
                raw_times = timed(lambda w=words: catalog.conn.execute(RAW_FTS, (w,)).fetchall(), args.repeat)
                ratio = statistics.median(times) / statistics.median(raw_times)
                ratios.append(ratio)
                raw = f"{statistics.median(raw_times):.1f}"
                ratio_text = f"{ratio:.1f}×"
            all_times.extend(times)
            print(
                f"{label[:35]:<36}{total:>9}{quantile(times, 0.5):>9.1f}{quantile(times, 0.95):>9.1f}"
                f"{raw:>13}{ratio_text:>8}"
            )
        print(
            f"all queries: p50 {quantile(all_times, 0.5):.1f} ms, p95 {quantile(all_times, 0.95):.1f} ms "
            f"(goal ≤ 50); ratio to raw FTS median {statistics.median(ratios):.1f}× (goal ≤ 3)"
        )


if __name__ == "__main__":
    main()
