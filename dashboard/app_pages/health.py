"""Endpoint health: workers and jobs now, each worker as RunPod lists it (with its log one click away), charts
over time from the samples the dashboard keeps, and what RunPod billed beside what the runs cost."""

from __future__ import annotations

import datetime as dt
import hashlib

import streamlit as st

from client.runpod_rest import RunPodRest
from core.contract import utc_now
from core.prices import SHORT_NAMES, gpu_class
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
    frame = billed_vs_runs(billing.records, catalog.spend(settings.endpoint_id, since=since))
    if not frame.empty:
        views.time_chart(frame[["billed by RunPod ($)", "runs' cost ($)"]], "dollars", kind="bar", bucket="1D")
        table = frame.reset_index().assign(day=lambda f: f["day"].dt.strftime("%Y-%m-%d"))
        st.dataframe(table, hide_index=True)
    row = gpu_class(settings.gpu) or next(
        (gpu_class(r.get("gpu_name")) for r in catalog.search("", per_page=1, endpoint_id=settings.endpoint_id).rows),
        None,
    )
    price = catalog.prices.per_second(row) if row else None
    st.info(gap_words(frame, price, SHORT_NAMES.get(row or "", row)), icon=":material/payments:")
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
