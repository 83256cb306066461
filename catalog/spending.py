"""The runs Health's money charts count: every run that finished in a window with a known cost, and every
cancelled run that a worker took, priced or not.

A cancelled run's `cost_usd` is often NULL: RunPod's /status answer for a cancelled job has no result, so no GPU,
and core.prices.run_cost never guesses one. It still used a worker for its execution time, so it is listed here
with that time for the page to price where it can (core.prices.cancelled_cost) and to count where it cannot.
"""

from __future__ import annotations

from typing import Any

from catalog.catalog import Catalog
from catalog.search import COUNTED
from core.contract import JobStatus

COLUMNS = (
    "run_id",
    "status",
    "finished_at",
    "started_at",
    "cost_usd",
    "video_duration_s",
    "engine",
    "gpu_name",
    "gpu_count",
    "execution_ms",
    "total_ms",
)
RAN = "(COALESCE(execution_ms, 0) > 0 OR COALESCE(total_ms, 0) > 0 OR started_at IS NOT NULL OR gpu_name IS NOT NULL)"
"""A worker took the run: it reported time, a start was seen, or a GPU was named. A job cancelled while queued
used no worker and costs nothing."""


def spent_runs(catalog: Catalog, endpoint_id: str | None = None, since: str | None = None) -> list[dict[str, Any]]:
    """The runs that finished at or after `since` (oldest first) that are priced, or cancelled after a worker
    took them; batches count their items, as every total does."""
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE finished_at IS NOT NULL AND {COUNTED} "
        f"AND (cost_usd IS NOT NULL OR (status = ? AND {RAN}))"
    )
    args: list[Any] = [JobStatus.CANCELLED]
    if endpoint_id:
        sql += " AND endpoint_id = ?"
        args.append(endpoint_id)
    if since:
        sql += " AND finished_at >= ?"
        args.append(since)
    cursor = catalog.conn.execute(sql + " ORDER BY finished_at", args)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
