"""Endpoint health: sampling /health into the catalogue, the series the Health page charts, and RunPod's own view
of the endpoint through its REST API v2 (the workers, a worker's log, what was billed per day), which the local
endpoint answers too for its own worker processes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from catalog import Catalog
from client.api import EndpointError, StudioClient
from client.catalog_prices import rest_base
from client.runpod_rest import RunPodRest, RunPodRestError, ServerlessBillingRecord, Workers
from core.contract import JobStatus
from core.settings import Settings
from dashboard.cost import dollars

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


# ------------------------------------------------------------------------------------------------------------
# RunPod's own view (REST API v2): the workers, a worker's log, what was billed
# ------------------------------------------------------------------------------------------------------------

LOG_TAIL = 200
"""Lines of a worker's log the page shows."""
LOG_QUIET_S = 1.5
"""The log route is a stream that stays open after the last old line: the read ends after this long without one."""
BILLING_DAYS = 7


def rest_for(settings: Settings) -> RunPodRest:
    """RunPod's REST API v2 for the configured endpoint: RunPod's own (or RUNPOD_REST_BASE_URL) for a RunPod
    endpoint, the local endpoint itself otherwise (it answers the workers and logs routes for its processes)."""
    base = rest_base(settings) or settings.endpoint_base_url
    return RunPodRest(settings.api_key or "", base)


def on_runpod(settings: Settings) -> bool:
    """Whether the workers come from RunPod's API (else from the local endpoint's own processes)."""
    return rest_base(settings) is not None


@dataclass(frozen=True)
class WorkersReading:
    """One answer of GET /v2/serverless/{id}/workers, or why there is none."""

    workers: Workers | None
    problem: str | None = None


def read_workers(rest: RunPodRest, endpoint_id: str) -> WorkersReading:
    """The endpoint's workers as RunPod (or the local endpoint) lists them."""
    try:
        return WorkersReading(rest.workers(endpoint_id))
    except RunPodRestError as error:
        return WorkersReading(None, error.lines[0])


def how_long(seconds: int | None) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def workers_frame(reading: Workers) -> pd.DataFrame:
    """The worker table: one row per worker, every cell plain text (ids and images come from outside)."""
    rows = []
    for worker in reading.workers:
        stale = "—"
        if worker.is_stale:
            stale = f"yes: version {worker.version} of {reading.endpoint_version}" if worker.version else "yes"
        elif worker.version is not None or reading.endpoint_version is not None:
            stale = "no"
        gpu = worker.gpu_type_id or ("none (CPU)" if worker.gpu_count == 0 else "not placed yet")
        if worker.gpu_count > 1:
            gpu = f"{worker.gpu_count} × {gpu}"
        rows.append(
            {
                "worker": worker.id,
                "status": worker.status.lower(),
                "GPU": gpu,
                "data center": worker.data_center_id or "not placed yet",
                "up for": how_long(worker.uptime_seconds),
                "started": worker.started_at.strftime("%Y-%m-%d %H:%M:%S UTC") if worker.started_at else "—",
                "stale image": stale,
                "image": worker.image or "—",
            }
        )
    columns = ["worker", "status", "GPU", "data center", "up for", "started", "stale image", "image"]
    return pd.DataFrame(rows, columns=columns)


def read_log(rest: RunPodRest, endpoint_id: str, worker_id: str, tail: int = LOG_TAIL) -> tuple[list[str], str | None]:
    """A worker's recent log lines as `time  line` text, oldest first, or why they could not be read."""
    try:
        lines = rest.worker_logs(endpoint_id, worker_id, tail=tail, quiet_s=LOG_QUIET_S)
    except RunPodRestError as error:
        return [], error.lines[0]
    return [f"{line.ts.strftime('%Y-%m-%d %H:%M:%S')}  {line.line}" for line in lines], None


@dataclass(frozen=True)
class BillingReading:
    """What RunPod billed the endpoint per day, or why it could not be read."""

    records: list[ServerlessBillingRecord]
    problem: str | None = None


def read_billing(rest: RunPodRest, endpoint_id: str, days: int = BILLING_DAYS) -> BillingReading:
    """GET /v2/billing/serverless for this endpoint: the last `days` day buckets, today's (in progress) last."""
    try:
        answer = rest.serverless_billing(endpoint_id=endpoint_id, bucket_size="day", last_n=days)
    except RunPodRestError as error:
        return BillingReading([], error.lines[0])
    return BillingReading([r for r in answer.records if r.serverless_id == endpoint_id])


def billed_vs_runs(records: list[ServerlessBillingRecord], spend_rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per day: what RunPod billed (all of it, and its GPU part) beside the catalogue's sum of its runs' costs."""
    billed = pd.DataFrame(
        [
            {
                "day": pd.Timestamp(r.start_time).tz_convert("UTC").normalize(),
                "billed by RunPod ($)": r.total_amount,
                "of it GPU ($)": r.gpu_amount,
            }
            for r in records
        ],
        columns=["day", "billed by RunPod ($)", "of it GPU ($)"],
    )
    if billed.empty:
        return pd.DataFrame(columns=["billed by RunPod ($)", "of it GPU ($)", "runs' cost ($)"])
    billed = billed.groupby("day").sum()
    runs = pd.DataFrame(spend_rows, columns=["finished_at", "cost_usd"])
    runs["finished_at"] = pd.to_datetime(runs["finished_at"], utc=True, format="ISO8601")
    per_day = runs.set_index("finished_at")["cost_usd"].astype(float).resample("1D").sum()
    billed["runs' cost ($)"] = per_day.reindex(billed.index, fill_value=0.0).to_numpy()
    return billed


def gap_words(frame: pd.DataFrame, per_second: float | None = None, gpu: str | None = None) -> str:
    """The gap between RunPod's bill and the runs' own costs, in words: what it is and roughly how long."""
    if frame.empty:
        return "RunPod has billed this endpoint nothing in these days."
    billed = float(frame["billed by RunPod ($)"].sum())
    gpu_part = float(frame["of it GPU ($)"].sum())
    runs = float(frame["runs' cost ($)"].sum())
    days = len(frame)
    line = (
        f"Over these {days} days RunPod billed {dollars(billed)} ({dollars(gpu_part)} of it GPU time); the runs "
        f"the catalogue knows cost {dollars(runs)} at the prices shown."
    )
    gap = gpu_part - runs
    if gap > 0.005:
        share = f" ({gap / gpu_part:.0%} of the GPU bill)" if gpu_part else ""
        line += (
            f" The {dollars(gap)} between them{share} is GPU time that ran no job: cold starts (a worker starting "
            "its container and loading the model before its first job) and idle time (a worker kept warm after a "
            "job until the idle timeout, and any always-on workers)."
        )
        if per_second:
            line += f" At {gpu}'s price that is about {how_long(round(gap / per_second))} of worker time."
    elif gap < -0.005:
        line += (
            f" RunPod billed {dollars(-gap)} less GPU time than the runs' list-price costs add up to: an account "
            "discount, or runs the catalogue counts on another day than RunPod's bucket."
        )
    else:
        line += " They agree: almost no time was spent idle or starting up."
    rest = billed - gpu_part
    if rest > 0.005:
        line += f" The other {dollars(rest)} is disk, CPU and RunPod's platform fee."
    return line
