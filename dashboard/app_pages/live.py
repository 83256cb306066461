"""Live jobs: every unfinished run, refreshed in a fragment so the rest of the page stays put."""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from client.api import LOCAL_POLL_START_S, POLL_MAX_S, POLL_START_S, EndpointError
from core.contract import ERROR_INFO, JobError, JobStatus
from dashboard import navigation, partial_view, signin, state, views
from dashboard.jobs import Backoff, LiveView, cancel, live_view, mark_lost, poll_all, recover, retry

BACKOFF = "live.backoff"
SEEN = "live.seen"
PROBLEMS = "live.problems"
RECOVERED = "live.recovered"
FINISHED_SHOWN = 5
TICK_LOCAL_S = 1.0
TICK_CLOUD_S = 2.0


def _backoff(local: bool) -> Backoff:
    held = st.session_state.get(BACKOFF)
    if held is None:
        held = Backoff(LOCAL_POLL_START_S if local else POLL_START_S, POLL_MAX_S)
        st.session_state[BACKOFF] = held
    return held


def refresh(runs: list[dict[str, Any]], local: bool) -> None:
    """Poll the endpoint for unfinished runs when the backoff says it is time; record what it says."""
    backoff = _backoff(local)
    if not runs or not backoff.due():
        return
    client, catalog = state.client(), state.catalog()
    results = poll_all(client, catalog, runs, state.store())
    st.session_state[PROBLEMS] = {r.run_id: (r.problem, r.lost) for r in results if r.problem}
    backoff.record(any(r.changed for r in results))


def _cancel_button(view: LiveView) -> None:
    """Cancel a queued job at once; a running one after one confirmation (its work so far is lost)."""
    asking = f"live.cancel.asking.{view.run_id}"
    running = view.status == JobStatus.IN_PROGRESS
    if not st.session_state.get(asking):
        if not st.button("Cancel", key=f"live.cancel.{view.run_id}", icon=":material/cancel:"):
            return
        if running:
            st.session_state[asking] = True
    if st.session_state.get(asking):
        st.caption("Stop it? The work so far is lost.")
        yes, no = st.columns(2)
        stop = yes.button("Stop", key=f"live.cancel.yes.{view.run_id}", type="primary")
        if no.button("Keep", key=f"live.cancel.no.{view.run_id}"):
            st.session_state[asking] = False
            return
        if not stop:
            return
    st.session_state[asking] = False
    try:
        status = cancel(state.client(), state.catalog(), {"run_id": view.run_id, "job_id": view.job_id})
        st.toast(f"Cancel asked for {view.job_id}: now {status}")
    except EndpointError as error:
        st.toast(f"Could not cancel: {error}", icon=":material/error:")


def _card(view: LiveView) -> None:
    with st.container(border=True):
        top, actions = st.columns([5, 1], vertical_alignment="center")
        with top:
            views.status_badge(view.status)
            st.markdown(f"**{views.plain(view.prompt[:140])}**")
            st.caption(f"job `{view.job_id}`" + (f" · item {view.item[0]} of {view.item[1]}" if view.item else ""))
        with actions:
            _cancel_button(view)
        st.progress(min(1.0, view.pct / 100.0), text=f"{view.stage} · {view.pct:.0f}%")
        cols = st.columns(4)
        cols[0].metric("Elapsed", views.duration(view.elapsed_s))
        cols[1].metric("ETA", views.duration(view.eta_s))
        cols[2].metric("Chunk", f"{view.chunk[0]} / {view.chunk[1]}" if view.chunk else "—")
        cols[3].metric("Frames", f"{view.frames[0]} / {view.frames[1]}" if view.frames else "—")
        partial_view.show(state.store(), state.catalog(), view.run_id)
        if view.log:
            st.code("\n".join(view.log), language=None)
        problem = st.session_state.get(PROBLEMS, {}).get(view.run_id)
        if problem:
            st.warning(problem[0], icon=":material/cloud_off:")
            if problem[1] and st.button("Mark as lost", key=f"live.lost.{view.run_id}"):
                mark_lost(state.catalog(), view.run_id)


def _retry_button(run: dict[str, Any]) -> None:
    """Run a job that failed for a reason worth retrying (a lost worker, a download, the store) again."""
    if not st.button("Retry", key=f"live.retry.{run['run_id']}", icon=":material/replay:"):
        return
    try:
        job_id = retry(
            state.client(), state.catalog(), run, state.settings(), store=state.store(),
            submitted_by=signin.signed_in_email(),
        )  # fmt: skip
    except (EndpointError, JobError) as error:
        st.toast(f"Could not retry: {getattr(error, 'message', None) or error}", icon=":material/error:")
        return
    submitted = st.session_state.setdefault(state.SUBMITTED, [])
    if job_id not in submitted:
        submitted.append(job_id)
    st.toast(f"Retrying as job {job_id}", icon=":material/replay:")


def _finished(run_ids: list[str]) -> None:
    catalog, store = state.catalog(), state.store()
    runs = [run for run in (catalog.get(run_id) for run_id in run_ids) if run and run["status"] in JobStatus.FINAL]
    if not runs:
        return
    st.subheader("Just finished", divider="gray")
    for run in sorted(runs, key=lambda r: r.get("finished_at") or "", reverse=True)[:FINISHED_SHOWN]:
        with st.container(border=True):
            watch, about = st.columns([2, 3], gap="large")
            with about:
                views.status_badge(run["status"])
                st.markdown(f"**{views.plain((run.get('prompt') or '')[:140])}**")
                views.outcome(run)
                if run["status"] in JobStatus.FAILURES and ERROR_INFO.get(run.get("error_code") or "", {}).get(
                    "retryable"
                ):
                    _retry_button(run)
                views.warnings(run)
            with watch:
                if run["status"] == JobStatus.CANCELLED and run.get("video_key"):
                    st.caption(f"Rendered before the cancel: {views.duration(run.get('video_duration_s'))}")
                views.video(store, run.get("video_key"))
            about.page_link(
                navigation.page("history"),
                label="Open in History",
                icon=":material/video_library:",
                query_params={"run": run["run_id"]},
            )


def board() -> None:
    """The refreshing part: unfinished runs, then the ones this session saw finish."""
    settings = state.settings()
    catalog = state.catalog()
    if not st.session_state.get(RECOVERED):
        # Once a session: jobs sent before a restart on an empty disk are found by their request files.
        try:
            recover(catalog, state.store())
        except JobError as error:
            st.warning(f"Could not look for unfinished jobs in the store: {views.plain(error.message)}")
        st.session_state[RECOVERED] = True
    runs = catalog.unfinished(settings.endpoint_id)
    refresh(runs, settings.is_local_endpoint)
    runs = catalog.unfinished(settings.endpoint_id)
    seen: list[str] = st.session_state.setdefault(SEEN, [])
    for run_id in [run["run_id"] for run in runs] + st.session_state.get(state.SUBMITTED, []):
        if run_id not in seen:
            seen.append(run_id)
    now = dt.datetime.now(dt.UTC)
    if runs:
        st.caption(f"{len(runs)} unfinished · updated {now.astimezone().strftime('%H:%M:%S')}")
    else:
        st.info("Nothing is queued or running.", icon=":material/check_circle:")
    for run in runs:
        _card(live_view(run, catalog.progress_events(run["run_id"], limit=6), now))
    _finished(seen)


def main() -> None:
    """Draw the Live page."""
    st.title("Live jobs")
    local = state.settings().is_local_endpoint
    st.fragment(board, run_every=TICK_LOCAL_S if local else TICK_CLOUD_S)()
    _submit_another()


def _submit_another() -> None:
    """Back to Submit, keeping the last job's photo, speech, prompt and parameters, or with a clean form."""
    last = st.session_state.get(state.LAST_JOB)
    if last is None:
        st.page_link(navigation.page("submit"), label="Submit a job", icon=":material/add_circle:")
        return
    keep, fresh = st.columns(2)
    if keep.button(
        "Submit another",
        icon=":material/add_circle:",
        key="live.another",
        help="The form starts with the last job's photo, speech, prompt and parameters",
        width="stretch",
    ):
        st.session_state[state.REUSE_PARAMS] = last
        st.switch_page(navigation.page("submit"))
    if fresh.button(
        "Start a new one", icon=":material/restart_alt:", key="live.fresh", help="An empty form", width="stretch"
    ):
        for key in [key for key in st.session_state if str(key).startswith(state.FORM_PREFIX)]:
            del st.session_state[key]
        st.switch_page(navigation.page("submit"))


main()
