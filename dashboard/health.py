"""Endpoint health: sampling /health into the catalogue, and the series the Health page charts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from catalog import Catalog
from client.api import EndpointError, StudioClient
from core.contract import JobStatus

RECENT_RUNS = 200
"""The catalogue's largest page: enough finished runs for the latency and failure charts."""


@dataclass(frozen=True)
class HealthReading:
    """One /health answer, or why there is none."""

    health: dict[str, Any] | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when the endpoint answered."""
        return self.health is not None

    def workers(self) -> dict[str, int]:
        """Workers by state, as the endpoint reports them."""
        return {k: int(v or 0) for k, v in ((self.health or {}).get("workers") or {}).items()}

    def jobs(self) -> dict[str, int]:
        """Jobs by state, as the endpoint reports them."""
        return {k: int(v or 0) for k, v in ((self.health or {}).get("jobs") or {}).items()}


def read_health(client: StudioClient) -> HealthReading:
    """Ask the endpoint for /health; an unreachable endpoint is a reading with the reason."""
    try:
        return HealthReading(client.health())
    except EndpointError as error:
        return HealthReading(None, str(error))


def sample(client: StudioClient, catalog: Catalog, endpoint_id: str) -> HealthReading:
    """Read /health and keep the answer as a sample for the charts."""
    reading = read_health(client)
    if reading.health is not None:
        catalog.record_health_sample(endpoint_id, reading.health)
    return reading


def samples_frame(samples: list[dict[str, Any]]) -> pd.DataFrame:
    """Health samples as a time-indexed frame: queue depth and workers over time."""
    columns = ["in_queue", "in_progress", "workers_idle", "workers_running", "workers_other"]
    if not samples:
        return pd.DataFrame(columns=columns, index=pd.DatetimeIndex([], name="at"))
    frame = pd.DataFrame(samples)
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    return frame.set_index("at")[columns].astype(int)


def recent_finished(catalog: Catalog, endpoint_id: str, limit: int = RECENT_RUNS) -> pd.DataFrame:
    """The latest finished runs of an endpoint with their queue delay and execution time, oldest first."""
    result = catalog.search("", sort="newest", per_page=limit, endpoint_id=endpoint_id, status=sorted(JobStatus.FINAL))
    columns = ["finished_at", "status", "error_code", "delay_ms", "execution_ms"]
    frame = pd.DataFrame([{name: row.get(name) for name in columns} for row in reversed(result.rows)], columns=columns)
    frame = frame.dropna(subset=["finished_at"])
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True, format="ISO8601")
    return frame.sort_values("finished_at", kind="stable").reset_index(drop=True)


def delay_vs_execution(runs: pd.DataFrame) -> pd.DataFrame:
    """Queue delay and execution time in seconds per finished run, indexed by when it finished."""
    timed = runs.dropna(subset=["execution_ms"])
    return pd.DataFrame(
        {
            "queue delay (s)": timed["delay_ms"].fillna(0).astype(float) / 1000.0,
            "execution (s)": timed["execution_ms"].astype(float) / 1000.0,
        }
    ).set_axis(timed["finished_at"])


def bucket_for(runs: pd.DataFrame) -> str:
    """A time bucket that gives the runs' span a readable number of points."""
    if runs.empty:
        return "1h"
    span = runs["finished_at"].max() - runs["finished_at"].min()
    if span <= dt.timedelta(hours=2):
        return "5min"
    if span <= dt.timedelta(days=2):
        return "1h"
    return "1D"


def bucket_for_window(window: dt.timedelta) -> str:
    """The bucket for a chart that spans the whole window the page shows: 12 per hour, 24 per day, 7 per week."""
    if window <= dt.timedelta(hours=2):
        return "5min"
    if window <= dt.timedelta(days=2):
        return "1h"
    return "1D"


def latency_percentiles(runs: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """p50 and p95 of each bucket's job latency (queue delay + execution), in seconds."""
    timed = runs.dropna(subset=["execution_ms"])
    if timed.empty:
        return pd.DataFrame(columns=["p50 (s)", "p95 (s)"])
    latency = (timed["delay_ms"].fillna(0) + timed["execution_ms"]).astype(float).div(1000.0)
    grouped = latency.set_axis(timed["finished_at"]).resample(bucket)
    return pd.DataFrame({"p50 (s)": grouped.quantile(0.5), "p95 (s)": grouped.quantile(0.95)}).dropna()


def failure_rates(runs: pd.DataFrame, bucket: str) -> pd.DataFrame:
    """Per bucket, the share of finished runs that failed with each error code (0–1); a cancel is not a failure."""
    if runs.empty:
        return pd.DataFrame()
    failed = runs[runs["status"].isin(JobStatus.FAILURES)].assign(code=lambda f: f["error_code"].fillna(f["status"]))
    totals = runs.set_index("finished_at").resample(bucket).size()
    if failed.empty:
        return pd.DataFrame(index=totals.index)
    counts = failed.groupby([pd.Grouper(key="finished_at", freq=bucket), "code"]).size().unstack(fill_value=0)
    return counts.reindex(totals.index, fill_value=0).div(totals.where(totals > 0), axis=0).fillna(0.0)
