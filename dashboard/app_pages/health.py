"""Endpoint health: workers and jobs now, and charts over time from the samples the dashboard keeps."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from core.contract import utc_now
from dashboard import cost, state, views
from dashboard.config import describe_endpoint
from dashboard.health import (
    HealthReading,
    bucket_for_window,
    delay_vs_execution,
    failure_rates,
    latency_percentiles,
    recent_finished,
    sample,
    samples_frame,
)

K = "health."
REFRESH_S = 5.0
WINDOWS = {"Last hour": dt.timedelta(hours=1), "Last day": dt.timedelta(days=1), "Last week": dt.timedelta(days=7)}
WORKER_STATES = ("idle", "running", "initializing", "throttled", "unhealthy")
BUCKET_WORDS = {"5min": "5 minutes", "1h": "hour", "1D": "day"}
JOB_STATES = {"inQueue": "In queue", "inProgress": "In progress", "completed": "Completed", "failed": "Failed"}


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
    cost.spend_charts(catalog, settings.endpoint_id, since_text, bucket)
    counts = catalog.failure_counts_by_code(settings.endpoint_id, since=since_text)
    if counts:
        st.dataframe([{"error code": code, "failed jobs": n} for code, n in counts.items()], hide_index=True)


def main() -> None:
    """Draw the Endpoint health page."""
    st.title("Endpoint health")
    st.caption(describe_endpoint(state.settings()))
    st.segmented_control("Window", list(WINDOWS), key=K + "window", default="Last hour", required=True)
    st.fragment(board, run_every=REFRESH_S)()


main()
