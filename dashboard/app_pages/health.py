"""Endpoint health: workers and jobs now, each worker as RunPod lists it (with its log one click away), charts
over time from the samples the dashboard keeps, and what RunPod billed beside what the runs cost."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from catalog import Catalog
from catalog.spending import spent_runs
from client.runpod_rest import RunPodRest, RunPodRestError
from core.contract import JobStatus, utc_now
from core.prices import (
    PREVIEW_ENGINE,
    SHORT_NAMES,
    CatalogGpu,
    PriceTable,
    billed_seconds,
    cancelled_cost,
    gpu_class,
    only_gpu_type,
)
from core.settings import Settings
from dashboard import cost, state, views
from dashboard.config import describe_endpoint
from dashboard.health import (
    BILLING_DAYS,
    HealthReading,
    billed_vs_runs,
    bucket_for_window,
    delay_vs_execution,
    failure_rates,
    gap_words,
    latency_percentiles,
    on_runpod,
    read_billing,
    read_log,
    read_workers,
    recent_finished,
    rest_for,
    sample,
    samples_frame,
    workers_frame,
)

K = "health."
REFRESH_S = 5.0
WINDOWS = {"Last hour": dt.timedelta(hours=1), "Last day": dt.timedelta(days=1), "Last week": dt.timedelta(days=7)}
WORKER_STATES = ("idle", "running", "initializing", "throttled", "unhealthy")
BUCKET_WORDS = {"5min": "5 minutes", "1h": "hour", "1D": "day"}
JOB_STATES = {"inQueue": "In queue", "inProgress": "In progress", "completed": "Completed", "failed": "Failed"}


# How long the endpoint's GPU configuration, read to price cancelled jobs, is trusted before it is read again.
# (A page's bare string would be drawn by Streamlit's magic: comments here, not docstrings.)
ENDPOINT_GPU_MAX_AGE_S = 300.0
FINISHED, CANCELLED = "finished jobs", "cancelled jobs"


@dataclass
class Spending:
    """The window's runs as the money charts count them: priced runs (cancelled ones priced exactly among them,
    with what priced each), and cancelled runs nobody can price, counted with the time they ran."""

    priced: list[dict[str, Any]] = field(default_factory=list)  # catalog.spending rows, cost_usd set
    cancelled_sources: dict[str, int] = field(default_factory=dict)  # what priced cancelled runs → how many
    cancelled_seconds: int = 0
    unpriced: int = 0
    unpriced_seconds: int = 0
    untimed: int = 0  # unpriced cancelled runs whose execution time the endpoint did not report either


def _endpoint_gpu(settings: Settings, prices: PriceTable) -> tuple[CatalogGpu | None, int]:
    """The one GPU type this RunPod endpoint's configuration allows (its pools less its excluded types, by RunPod's
    GPU catalogue) and its GPUs per worker; (None, 1) when it allows several, or cannot be read. Read with the
    API key at most every ENDPOINT_GPU_MAX_AGE_S, and only when a cancelled job needs it."""
    if not on_runpod(settings) or not settings.api_key:
        return None, 1
    held = st.session_state.get(K + "endpoint_gpu")
    if held is None or held[0] != settings.endpoint_id or time.monotonic() - held[1] > ENDPOINT_GPU_MAX_AGE_S:
        try:
            gpu = _rest(settings).endpoint(settings.endpoint_id).gpu
        except RunPodRestError:
            gpu = None  # the cancelled jobs stay unpriced; the workers board says why RunPod cannot be read
        config = (gpu.pools, gpu.excluded_types, gpu.count) if gpu is not None else None
        held = (settings.endpoint_id, time.monotonic(), config)
        st.session_state[K + "endpoint_gpu"] = held
    config = held[2]
    if config is None:
        return None, 1
    return only_gpu_type(config[0], config[1], prices.catalog), max(1, int(config[2]))


def spending(catalog: Catalog, settings: Settings, since: str) -> Spending:
    """Price the window's runs: a cancelled run by what its worker reported, else by the endpoint's only GPU type;
    one that neither prices is counted, never given a guessed cost."""
    spent = Spending()
    rows = spent_runs(catalog, settings.endpoint_id, since=since)
    needs_endpoint = any(r["status"] == JobStatus.CANCELLED and r["cost_usd"] is None for r in rows)
    only, count = _endpoint_gpu(settings, catalog.prices) if needs_endpoint else (None, 1)
    for row in rows:
        if row["status"] != JobStatus.CANCELLED:
            spent.priced.append(row)
            continue
        seconds = billed_seconds(row)
        usd, source = cancelled_cost(row, catalog.prices, only, count)
        if usd is None or source is None:
            spent.unpriced += 1
            spent.unpriced_seconds += seconds or 0
            spent.untimed += seconds is None
            continue
        spent.priced.append({**row, "cost_usd": usd})
        spent.cancelled_seconds += seconds or 0
        spent.cancelled_sources[source] = spent.cancelled_sources.get(source, 0) + 1
    return spent


def _jobs(n: int) -> str:
    return f"{n} cancelled job{'s' if n != 1 else ''}"


def cancelled_words(spent: Spending) -> list[str]:
    """What the money charts say of cancelled jobs: those priced and what priced them, and those nobody can price
    with their GPU time."""
    lines = []
    priced = sum(spent.cancelled_sources.values())
    if priced:
        usd = sum(float(r["cost_usd"]) for r in spent.priced if r["status"] == JobStatus.CANCELLED)
        sources = "; ".join(f"{n} by {source}" for source, n in spent.cancelled_sources.items())
        lines.append(
            f"Counted above: {_jobs(priced)}, {spent.cancelled_seconds:,} s of GPU time, "
            f"{cost.dollars(usd)} (priced {sources})."
        )
    if spent.unpriced:
        untimed = f" ({spent.untimed} of them with no execution time reported)" if spent.untimed else ""
        lines.append(
            f"{_jobs(spent.unpriced)}, {spent.unpriced_seconds:,} s of GPU time{untimed}, not priced: RunPod does "
            "not say which GPU ran them."
        )
    return lines


def spend_by_day(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Dollars per day, finished and cancelled jobs as two stacked series (days with priced runs only)."""
    frame = pd.DataFrame(rows, columns=["finished_at", "cost_usd", "status"])
    if frame.empty:
        return pd.DataFrame(columns=[FINISHED])
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True, format="ISO8601")
    frame["series"] = [CANCELLED if s == JobStatus.CANCELLED else FINISHED for s in frame["status"]]
    daily = frame.pivot_table(
        index=pd.Grouper(key="finished_at", freq="1D"), columns="series", values="cost_usd", aggfunc="sum"
    ).fillna(0.0)
    return daily[[name for name in (FINISHED, CANCELLED) if name in daily.columns]].astype(float)


def spend_charts(spent: Spending, prices: PriceTable, bucket: str) -> None:
    """Spend per day (cancelled jobs stacked on finished ones) and cost per second of video, over the runs that
    finished in the window; then what the cancelled jobs used, and where the prices come from."""
    rows = spent.priced
    left, right = st.columns(2)
    with left:
        st.markdown("**Spend per day**")
        daily = spend_by_day(rows)
        if daily.empty:
            st.caption("No priced runs in this window.")
        elif not daily.to_numpy().any():
            # All $0: a chart of zeros drew an axis of "0.000000" ticks (issue 29); the sum says it plainly.
            st.metric("Spent in this window", cost.dollars(0))
        else:
            views.time_chart(daily, "dollars", kind="bar", bucket="1D")
            st.caption(f"Spent in this window: {cost.dollars(float(daily.to_numpy().sum()))}")
        if rows and all(row.get("engine") == PREVIEW_ENGINE for row in rows):
            st.caption("Every run here was made by the local preview engine, which costs $0.")
    with right:
        st.markdown(f"**Cost per second of video** (per {BUCKET_WORDS[bucket]})")
        per_second = cost.cost_per_video_second(rows, bucket)
        if per_second.empty:
            st.caption("No priced videos in this window.")
        elif not per_second.fillna(0).to_numpy().any():
            st.metric("Per second of video", cost.dollars(0))
        else:
            views.time_chart(per_second, "dollars per second of video")
    for line in cancelled_words(spent):
        st.caption(line)
    st.caption(prices.summary())


def _now_counts(reading: HealthReading) -> None:
    if not reading.ok:
        st.error(f"The endpoint did not answer: {reading.problem}", icon=":material/cloud_off:")
        return
    workers, jobs = reading.workers(), reading.jobs()
    st.markdown("**Workers**")
    for column, name in zip(st.columns(len(WORKER_STATES)), WORKER_STATES, strict=True):
        column.metric(name.title(), workers.get(name, 0))
    st.markdown("**Jobs**")
    for column, (name, label) in zip(st.columns(len(JOB_STATES)), JOB_STATES.items(), strict=True):
        column.metric(label, jobs.get(name, 0))


def board() -> None:
    """The refreshing part: sample /health now, then chart the stored samples and finished runs."""
    settings = state.settings()
    catalog = state.catalog()
    reading = sample(state.client(), catalog, settings.endpoint_id)
    _now_counts(reading)
    now = dt.datetime.now(dt.UTC)
    span = WINDOWS[st.session_state.get(K + "window", "Last hour")]
    since = now - span
    since_text = utc_now(since)
    window = (since, now)
    samples = samples_frame(catalog.health_samples(settings.endpoint_id, since=since_text))
    runs = recent_finished(catalog, settings.endpoint_id)
    runs = runs[runs["finished_at"] >= since]
    bucket = bucket_for_window(span)

    left, right = st.columns(2)
    with left:
        st.markdown("**Queue depth**")
        if samples.empty:
            st.caption("No samples yet: they are taken while the dashboard is open.")
        else:
            queue = samples[["in_queue", "in_progress"]].rename(
                columns={"in_queue": "in queue", "in_progress": "running"}
            )
            views.time_chart(queue, "jobs", counts=True, window=window)
        st.markdown("**Delay vs execution time per job**")
        if runs.empty:
            st.caption("No finished jobs in this window.")
        else:
            views.time_chart(delay_vs_execution(runs), "seconds", window=window)
    with right:
        st.markdown("**Workers**")
        if not samples.empty:
            workers = samples[["workers_idle", "workers_running", "workers_other"]].rename(
                columns={"workers_idle": "idle", "workers_running": "running", "workers_other": "other"}
            )
            views.time_chart(workers, "workers", kind="area", counts=True, window=window)
        st.markdown(f"**Job latency p50 / p95** (per {BUCKET_WORDS[bucket]})")
        percentiles = latency_percentiles(runs, bucket)
        if percentiles.empty:
            st.caption("No finished jobs in this window.")
        else:
            views.time_chart(percentiles, "seconds", window=window)
    st.markdown(f"**Failure rate by error code** (share of finished jobs, per {BUCKET_WORDS[bucket]})")
    rates = failure_rates(runs, bucket)
    if rates.empty or rates.shape[1] == 0:
        st.caption("No failures in this window.")
    else:
        views.time_chart(
            rates, "share of finished jobs", kind="bar", percent=True, window=window, bucket=bucket, scheme="reds"
        )
    spend_charts(spending(catalog, settings, since_text), catalog.prices, bucket)
    counts = catalog.failure_counts_by_code(settings.endpoint_id, since=since_text)
    if counts:
        st.dataframe([{"error code": code, "failed jobs": n} for code, n in counts.items()], hide_index=True)


def _rest(settings: Settings) -> RunPodRest:
    """This session's REST v2 client (one HTTP session reused by every refresh), rebuilt when the endpoint or the
    key changes; the key takes part only as a hash."""
    fingerprint = hashlib.sha256(repr((settings.rest_base_url, settings.endpoint_base_url, settings.api_key)).encode())
    held = st.session_state.get(K + "rest")
    if held is None or held[0] != fingerprint.hexdigest():
        held = (fingerprint.hexdigest(), rest_for(settings))
        st.session_state[K + "rest"] = held
    rest: RunPodRest = held[1]
    return rest


def _refused(what: str, problem: str) -> None:
    # The reason quotes the server's own words: shown as text, never as Markdown.
    st.warning(what, icon=":material/cloud_off:")
    st.text(problem)


def workers_board() -> None:
    """Each worker as RunPod's GET /v2/serverless/{id}/workers lists it (the local endpoint answers the same route
    for its processes), and the recent log lines of the worker picked, read when asked for."""
    settings = state.settings()
    runpod = on_runpod(settings)
    rest = _rest(settings)
    st.markdown("**Workers, as RunPod lists them**" if runpod else "**Workers: the local endpoint's processes**")
    reading = read_workers(rest, settings.endpoint_id)
    if reading.workers is None:
        _refused("The worker list could not be read.", reading.problem or "")
        return
    summary = reading.workers.summary
    counts = ", ".join(f"{n} {name}" for name, n in summary.model_dump().items() if n and name != "total")
    st.caption(f"{summary.total} active worker{'s' if summary.total != 1 else ''}{': ' + counts if counts else ''}")
    if not reading.workers.workers:
        st.caption("No worker is up: the endpoint has scaled to zero (RunPod lists active workers only).")
        return
    st.dataframe(workers_frame(reading.workers), hide_index=True)
    stale = sum(1 for w in reading.workers.workers if w.is_stale)
    if stale:
        st.info(
            f"{stale} worker{' runs' if stale == 1 else 's run'} an older configuration of the endpoint than its "
            "latest (a redeploy is rolling out): jobs there still use the old image or settings until RunPod "
            "replaces them.",
            icon=":material/update:",
        )
    ids = [w.id for w in reading.workers.workers]
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Worker", ids, key=K + "log_worker")
    if right.button("Show its recent log lines", key=K + "log_show", icon=":material/receipt_long:"):
        lines, problem = read_log(rest, settings.endpoint_id, str(chosen))
        st.session_state[K + "log"] = (chosen, lines, problem)
    shown = st.session_state.get(K + "log")
    if shown is not None and shown[0] in ids:
        worker, lines, problem = shown
        if problem:
            _refused(f"The log of worker {ids.index(worker) + 1} of the table could not be read.", problem)
        elif not lines:
            st.caption("This worker has written no log lines yet.")
        else:
            st.caption(f"The last {len(lines)} log lines of the worker picked, oldest first:")
            st.code("\n".join(lines), language=None, wrap_lines=True)


def billing_board() -> None:
    """What RunPod billed the endpoint per day (GET /v2/billing/serverless) beside the catalogue's sum of its
    runs' costs; the gap between them, in words."""
    settings = state.settings()
    st.markdown(f"**What RunPod billed, per day** (last {BILLING_DAYS} days)")
    if not on_runpod(settings) or not settings.api_key:
        st.caption(
            "A RunPod endpoint's bill shows here, with an API key. The local endpoint bills nothing: its runs "
            "are on this machine."
        )
        return
    billing = read_billing(_rest(settings), settings.endpoint_id)
    if billing.problem:
        _refused("RunPod's billing could not be read.", billing.problem)
        return
    catalog = state.catalog()
    since = utc_now(dt.datetime.now(dt.UTC) - dt.timedelta(days=BILLING_DAYS + 1))
    spent = spending(catalog, settings, since)
    frame = billed_vs_runs(billing.records, spent.priced)
    if not frame.empty:
        views.time_chart(frame[["billed by RunPod ($)", "runs' cost ($)"]], "dollars", kind="bar", bucket="1D")
        table = frame.reset_index().assign(day=lambda f: f["day"].dt.strftime("%Y-%m-%d"))
        st.dataframe(table, hide_index=True)
    row = gpu_class(settings.gpu) or next(
        (gpu_class(r.get("gpu_name")) for r in catalog.search("", per_page=1, endpoint_id=settings.endpoint_id).rows),
        None,
    )
    price = catalog.prices.per_second(row) if row else None
    words = gap_words(frame, price, SHORT_NAMES.get(row or "", row))
    if spent.unpriced:
        words += (
            f" The gap also holds {_jobs(spent.unpriced)} ({spent.unpriced_seconds:,} s of GPU time) that no "
            "price could be put on: RunPod does not say which GPU ran them."
        )
    st.info(words, icon=":material/payments:")
    st.caption(catalog.prices.summary())
    problem = cost.catalogue_problem(settings)
    if problem:
        _refused("RunPod's GPU catalogue could not be read: the prices above are older.", problem)


def main() -> None:
    """Draw the Endpoint health page."""
    st.title("Endpoint health", anchor=False)
    st.caption(describe_endpoint(state.settings()))
    st.segmented_control("Window", list(WINDOWS), key=K + "window", default="Last hour", required=True)
    st.fragment(board, run_every=REFRESH_S)()
    st.fragment(workers_board, run_every=REFRESH_S)()
    billing_board()


main()
