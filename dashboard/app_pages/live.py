"""Live jobs: every unfinished run, refreshed in a fragment so the rest of the page stays put."""

from __future__ import annotations

import datetime as dt
from typing import Any

import streamlit as st

from client.api import EndpointError
from core.contract import JobError, JobStatus, utc_now
from dashboard import navigation, partial_view, split_driver, split_view, state, tracker, views
from dashboard.jobs import Board, LiveView, cancel, live_view, mark_lost, retry_trace, retryable

FINISHED_SHOWN = 5
# How far back "Just finished" reaches: read from the catalogue, so it survives a reload and shows jobs sent from
# anywhere; failed ones stay there with Retry. (A comment: Streamlit's magic draws a bare string in a page script.)
FINISHED_WITHIN = dt.timedelta(hours=1)
TICK_LOCAL_S = 1.0
TICK_CLOUD_S = 2.0


def _ordinal(place: int) -> str:
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"


def queue_words(view: LiveView) -> str:
    """A queued card's line: its place in line where the endpoint says it ("In queue · 2nd in line")."""
    if view.position is None:
        return "In queue"
    return "In queue · next in line" if view.position == 1 else f"In queue · {_ordinal(view.position)} in line"


def _cancel_button(view: LiveView) -> None:
    """Cancel a queued job at once; a running one after one confirmation (its work so far is lost)."""
    running = view.status == JobStatus.IN_PROGRESS
    if not views.confirmed_stop("live.cancel", view.run_id, "Stop it? The work so far is lost.", ask=running):
        return
    try:
        status = cancel(state.client(), state.catalog(), {"run_id": view.run_id, "job_id": view.job_id})
        st.toast(f"Cancel asked for {view.job_id}: now {status}")
    except EndpointError as error:
        st.toast(f"Could not cancel: {error}", icon=":material/error:")


def _card(view: LiveView, board: Board, trace: str | None = None) -> None:
    with st.container(border=True):
        top, actions = st.columns([5, 1], vertical_alignment="center")
        with top:
            views.status_badge(view.status)
            st.markdown(f"**{views.plain(view.prompt[:140])}**")
            st.caption(f"job `{view.job_id}`" + (f" · item {view.item[0]} of {view.item[1]}" if view.item else ""))
            if trace:
                st.caption(views.plain(trace))
        with actions:
            _cancel_button(view)
        if view.status == JobStatus.IN_QUEUE:
            st.progress(0.0, text=queue_words(view))
        else:
            st.progress(min(1.0, view.pct / 100.0), text=f"{view.stage} · {view.pct:.0f}%")
        cols = st.columns(4)
        cols[0].metric("Elapsed", views.duration(view.elapsed_s))
        cols[1].metric(
            "ETA", views.duration(view.eta_s), help="Shown once a tenth of the job is done and 10 s have passed"
        )
        cols[2].metric("Chunk", f"{view.chunk[0]} / {view.chunk[1]}" if view.chunk else "—")
        cols[3].metric("Frames", f"{view.frames[0]} / {view.frames[1]}" if view.frames else "—")
        partial_view.show(state.store(), state.catalog(), view.run_id)
        if view.log:
            st.code("\n".join(view.log), language=None)
        problem = board.problems.get(view.run_id)
        if problem:
            st.warning(problem[0], icon=":material/cloud_off:")
            if problem[1] and st.button("Mark as lost", key=f"live.lost.{view.run_id}"):
                mark_lost(state.catalog(), view.run_id)


def _rendered_before(run: dict[str, Any]) -> None:
    """The video a run made before it stopped: its kept result, else the newest partial its progress named (a
    job cut off by a restart keeps the clips it had finished)."""
    store = state.store()
    if run.get("video_key"):
        if run["status"] != JobStatus.COMPLETED:
            stopped = "the cancel" if run["status"] == JobStatus.CANCELLED else "it stopped"
            st.caption(f"Rendered before {stopped}: {views.duration(run.get('video_duration_s'))}")
        views.video(store, run.get("video_key"))
        return
    partial = partial_view.latest(state.catalog().progress_events(run["run_id"], limit=20))
    if partial is None:
        views.video(store, None)
        return
    st.caption(f"Rendered before it stopped: {float(partial.get('duration_s') or 0):.1f} s (clips so far)")
    try:
        views.video(store, str(partial["key"]))
    except JobError:
        st.caption("The video so far is no longer in the store.")


def _finished(on_board: set[str]) -> None:
    """Runs on this endpoint that ended in the last FINISHED_WITHIN, from the catalogue (so a reload keeps them,
    and jobs sent from anywhere are here); failed ones offer Retry. A split run the board (read up to
    BOARD_FRESH_S earlier) still drew as running is left for the next tick: drawn twice, its buttons would clash."""
    catalog, settings = state.catalog(), state.settings()
    since = utc_now(dt.datetime.now(dt.UTC) - FINISHED_WITHIN)
    runs = catalog.recently_finished(settings.endpoint_id, since, FINISHED_SHOWN)
    runs = [run for run in runs if run["run_id"] not in on_board]
    if not runs:
        return
    st.subheader("Just finished", divider="gray", anchor=False)
    for run in runs:
        with st.container(border=True):
            watch, about = st.columns([2, 3], gap="large")
            with about:
                views.status_badge(run["status"], run.get("engine"))
                st.markdown(f"**{views.plain((run.get('prompt') or '')[:140])}**")
                st.caption(f"job `{run['job_id']}`")
                trace = retry_trace(run, catalog)
                if trace:
                    st.caption(views.plain(trace))
                if split_driver.is_split(run):
                    split_view.finished(run)
                views.outcome(run)
                if retryable(run):
                    tracker.retry_button(run)
                views.warnings(run)
            with watch:
                _rendered_before(run)
            about.page_link(
                navigation.page("history"),
                label="Open in History",
                icon=":material/video_library:",
                query_params={"run": run["run_id"]},
            )


def board() -> None:
    """The refreshing part: what is queued and running (the board the sidebar draws too), then what ended."""
    catalog = state.catalog()
    current = tracker.board()
    tracker.take_notices()  # this page shows them as cards
    if current.listing_problem:
        st.warning(f"Could not list the endpoint's jobs: {views.plain(current.listing_problem)}")
    now = dt.datetime.now(dt.UTC)
    if current.runs:
        st.caption(f"{current.line()} · updated {now.astimezone().strftime('%H:%M:%S')}")
    else:
        st.info("Nothing is queued or running.", icon=":material/check_circle:")
    for run in current.runs:
        if split_driver.is_split(run):  # one card for the run, a bar per part (its parts are not runs)
            split_view.card(run, current)
            continue
        events = catalog.progress_events(run["run_id"], limit=6)
        view = live_view(run, events, now, current.positions.get(run["run_id"]))
        _card(view, current, retry_trace(run, catalog))
    _finished({run["run_id"] for run in current.runs if split_driver.is_split(run)})


def page() -> None:
    """The whole page, title and buttons included, as one refreshing fragment.

    Drawn apart, the title and the two buttons belonged to the full run and only the cards to the fragment; in
    about 3 of 7 browser walks under load, a fragment tick racing the full rerun that a Cancel caused left the
    page with the cards alone until the next full rerun (Streamlit's stale-element cleanup is scoped per run;
    streamlit#16708 is one such race). Everything on the page now belongs to the fragment, so whatever a race
    clears, the next tick (1-2 s) draws again.
    """
    st.title("Live jobs", anchor=False)
    board()
    _submit_another()


def main() -> None:
    """Draw the Live page."""
    local = state.settings().is_local_endpoint
    st.fragment(page, run_every=TICK_LOCAL_S if local else TICK_CLOUD_S)()


def _submit_another() -> None:
    """Back to Submit, keeping the last job's photo, speech, prompt and parameters, or with a clean form.

    Links, not buttons: they are drawn inside the page's fragment, and a page switch asked from a fragment run
    left that fragment's timer rerunning the next page (the Submit form redrew every tick under a user's cursor).
    A link is a plain page change, which stops every timer; Submit reads `start` (submit.START)."""
    keep, fresh = st.columns(2)
    # "Start a new one" is always offered: a session that has sent nothing here (a fresh tab, or one Streamlit
    # opened anew after its connection dropped) still gets the way back to an empty form.
    if st.session_state.get(state.LAST_JOB) is not None:
        keep.page_link(
            navigation.page("submit"),
            label="Submit another",
            icon=":material/add_circle:",
            help="The form starts with the last job's photo, speech, prompt and parameters",
            query_params={"start": "again"},
            width="stretch",
        )
    fresh.page_link(
        navigation.page("submit"),
        label="Start a new one",
        icon=":material/restart_alt:",
        help="An empty form",
        query_params={"start": "new"},
        width="stretch",
    )


main()
