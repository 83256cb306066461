"""Following the endpoint for a session: the one place that asks it what is queued and running.

The sidebar (on every page) and the Live page both draw `board()`, so they can no longer disagree (issue 29: Live
said "Nothing is queued or running" while the sidebar said "8 queued · 1 running"). Each call may ask the
endpoint; within BOARD_FRESH_S the last answer is reused, so the two readers of one rerun cost one round.

What it asks: the local endpoint lists its queue (GET /jobs), so jobs sent from the command line or a script are
recorded and followed too. RunPod's job API has no listing (only /status of an id already known), so there the
board is what the catalogue holds plus the request files in the bucket (catalog.sync.restore_unfinished, every
CLOUD_RESTORE_S), which the dashboard writes for each job it sends. Unfinished runs are polled with a backoff.
A run this session saw unfinished that has ended becomes a notice (a toast and the tab's title) on any page but
Live, which shows it as a card.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from catalog import CatalogError, sync
from client.api import LOCAL_POLL_START_S, POLL_MAX_S, POLL_START_S, EndpointError
from core.contract import JobError, JobStatus
from dashboard import signin, split_driver, state
from dashboard.jobs import Backoff, Board, adopt, poll_all, recover, retry

BOARD = "tracker.board"
BACKOFF = "tracker.backoff"
FOLLOWING = "tracker.following"
NOTICES = "tracker.notices"
UNSEEN = "tracker.unseen"
PICKED_UP_AT = "tracker.picked_up_at"
RESTORED_AT = "tracker.restored_at"
BOARD_FRESH_S = 0.5
CLOUD_RESTORE_S = 30.0
"""How often, on RunPod, the bucket's request files are looked at for jobs sent by other dashboards."""
APP_TITLE = "InfiniteTalk Studio"


@dataclass
class _Held:
    at: float
    endpoint_id: str
    board: Board
    positions: dict[str, int] = field(default_factory=dict)


def _backoff(local: bool) -> Backoff:
    held = st.session_state.get(BACKOFF)
    if held is None:
        held = Backoff(LOCAL_POLL_START_S if local else POLL_START_S, POLL_MAX_S)
        st.session_state[BACKOFF] = held
    return held


def _discover(local: bool) -> tuple[dict[str, int] | None, str | None, bool]:
    """Record jobs the catalogue does not know yet; the queue's places in line where the endpoint gives them, a
    problem with the listing, and whether any job was new.

    The store's request files come first (on the first look, and every CLOUD_RESTORE_S on RunPod, which lists no
    jobs): they say who sent a job, which the local endpoint's listing does not, so a catalogue rebuilt after a
    wiped disk keeps `submitted_by`. The local listing then adds the jobs no request file names (the command line).
    """
    catalog, settings = state.catalog(), state.settings()
    restored = False
    last = st.session_state.get(RESTORED_AT)
    if last is None or (not local and time.monotonic() - last >= CLOUD_RESTORE_S):
        st.session_state[RESTORED_AT] = time.monotonic()
        try:
            restored = bool(recover(catalog, state.store()))
        except JobError as error:
            return None, f"could not look for unfinished jobs in the store: {error.message}", False
    if not local:
        return None, None, restored
    try:
        listed = state.client().jobs() or []
    except EndpointError as error:
        return None, str(error), restored
    adopted = adopt(catalog, listed, settings.endpoint_id, split_driver.driver(settings).part_jobs)
    return {job.id: job.position for job in listed if job.position is not None}, None, bool(adopted) or restored


def _notice(run_ids: list[str]) -> None:
    """Queue a notice for each followed run that has ended."""
    catalog = state.catalog()
    notices: list[dict[str, Any]] = st.session_state.setdefault(NOTICES, [])
    for run_id in run_ids:
        run = catalog.get(run_id)
        if run is not None and run["status"] in JobStatus.FINAL:
            notices.append({"run_id": run_id, "status": run["status"], "prompt": run.get("prompt") or ""})


def board() -> Board:
    """What is queued and running on the configured endpoint now, asking it when due (see the module's doc)."""
    settings = state.settings()
    held: _Held | None = st.session_state.get(BOARD)
    now = time.monotonic()
    if held is not None and held.endpoint_id == settings.endpoint_id and now - held.at < BOARD_FRESH_S:
        return held.board
    local = settings.is_local_endpoint
    catalog = state.catalog()
    split_driver.driver(settings)  # split runs are stepped by the process's driver, never polled here
    positions, listing_problem, adopted = _discover(local)
    if positions is None:
        positions = held.positions if held is not None and held.endpoint_id == settings.endpoint_id else {}
    runs = catalog.unfinished(settings.endpoint_id)
    problems = held.board.problems if held is not None else {}
    backoff = _backoff(local)
    jobs = [run for run in runs if not split_driver.is_split(run)]
    if jobs and (adopted or backoff.due()):
        results = poll_all(state.client(), catalog, jobs, state.store())
        problems = {r.run_id: (r.problem, r.lost) for r in results if r.problem}
        backoff.record(any(r.changed for r in results))
        runs = catalog.unfinished(settings.endpoint_id)
    current = {run["run_id"] for run in runs}
    following: set[str] = st.session_state.setdefault(FOLLOWING, set())
    _notice(sorted(following - current))
    following.intersection_update(current)
    following.update(current)
    listed = positions
    positions = {run_id: place for run_id, place in positions.items() if run_id in current}
    fresh = Board(runs, positions, {k: v for k, v in problems.items() if k in current}, listing_problem, listed)
    st.session_state[BOARD] = _Held(now, settings.endpoint_id, fresh, listed)
    return fresh


def take_notices() -> list[dict[str, Any]]:
    """The runs that ended since the last call (and forget them)."""
    return st.session_state.pop(NOTICES, None) or []


def announce(notices: list[dict[str, Any]]) -> None:
    """A toast per finished run, and the count in the browser tab's title until Live is opened, so a user on
    another page (or in another tab) sees that a job ended. The count is kept in session state and the title
    drawn on every sidebar run: a run cut short by a rerun (History's pick_up) must not lose it."""
    for notice in notices:
        prompt = notice["prompt"][:60] or notice["run_id"]
        if notice["status"] == JobStatus.COMPLETED:
            st.toast(f"Finished: {prompt}", icon=":material/check_circle:")
        elif notice["status"] == JobStatus.CANCELLED:
            st.toast(f"Cancelled: {prompt}", icon=":material/block:")
        else:
            st.toast(f"Failed ({notice['status']}): {prompt}", icon=":material/error:")
    unseen = st.session_state.get(UNSEEN, 0) + len(notices)
    st.session_state[UNSEEN] = unseen
    if unseen:
        title = f"✓ {unseen} finished · {APP_TITLE}"
        # The title is the app's own words and a count (never a prompt); json.dumps makes it a JavaScript string.
        st.html(f"<script>document.title = {json.dumps(title)};</script>", unsafe_allow_javascript=True)


def seen() -> None:
    """The user is looking at Live: the finished count leaves the tab's title (Streamlit titles a page anew when
    it opens)."""
    st.session_state[UNSEEN] = 0


def retry_button(run: dict[str, Any], key: str = "live.retry.") -> None:
    """Run a job that failed for a reason worth retrying (a lost worker, a download, the store) again; History's
    detail offers the same button."""
    if not st.button("Retry", key=f"{key}{run['run_id']}", icon=":material/replay:", type="primary"):
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


PICK_UP_EVERY_S = 15.0
"""How often History looks in the store for runs it does not hold (bench/bench_pickup.py measures a look)."""


@st.fragment(run_every=PICK_UP_EVERY_S)
def pick_up() -> None:
    """History's own incremental sync: runs whose metadata.json the catalogue has not taken in yet (a job from
    the command line, another dashboard, a RunPod job whose result expired) appear without "Sync from bucket".

    catalog.sync.sync lists the store once and reads only the metadata and request files it has not seen (and
    the few curation files); when it brings anything, the whole page is drawn again so the grid shows it. A click
    on the page reruns this too: within PICK_UP_EVERY_S of the last look it does not look again, so using History
    never waits on the store (a look at 1000 runs took 0.5 s on a local folder, 1.2 s on S3: bench_sync.py's
    no-op re-sync).
    """
    last = st.session_state.get(PICKED_UP_AT)
    if last is not None and time.monotonic() - last < PICK_UP_EVERY_S * 0.9:
        return
    st.session_state[PICKED_UP_AT] = time.monotonic()
    try:
        report = sync(state.catalog(), state.store())
    except JobError as error:
        st.caption(f"Could not look in the store for new runs: {error.message}")
        return
    except (CatalogError, sqlite3.DatabaseError):
        return  # a damaged catalogue: History's page says what to do, once
    if report.added or report.updated or report.restored or report.deleted:
        st.rerun(scope="app")
