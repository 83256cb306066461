"""A split run on Live: one card, a bar per part, the video so far, Cancel and "Retry this part" (issue 30).

The parts are ordinary jobs on the endpoint, but the user sent one speech: the card shows the run once, its
plan read from the bucket (split.json, which the process's split driver keeps current), each running part's
progress as the driver last polled it, and each queued part's place in the endpoint's line.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from client.api import EndpointError
from core.contract import JobError, JobStatus, SplitPart, SplitPlan
from dashboard import split_driver, state, views
from dashboard.jobs import Board, stage_words

STATE_WORDS = {
    "pending": "Waiting for a worker",
    JobStatus.IN_QUEUE: "In queue",
    JobStatus.IN_PROGRESS: "Rendering",
    JobStatus.COMPLETED: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.TIMED_OUT: "Timed out",
    JobStatus.CANCELLED: "Cancelled",
}


def clock(seconds: float) -> str:
    """`2:05`: a place in the speech."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def part_pct(part: SplitPart, progress: dict[int, dict[str, Any]]) -> float:
    """How far one part is, 0-100: done is 100, running as its last progress payload said, else 0."""
    if part.state == JobStatus.COMPLETED:
        return 100.0
    if part.state == JobStatus.IN_PROGRESS:
        return min(100.0, max(0.0, float((progress.get(part.index) or {}).get("pct") or 0.0)))
    return 0.0


def run_pct(plan: SplitPlan, progress: dict[int, dict[str, Any]]) -> float:
    """The whole run's share done: each part's % weighted by its length in the speech."""
    total = sum(part.duration_s for part in plan.parts) or 1.0
    return sum(part_pct(part, progress) * part.duration_s for part in plan.parts) / total


def run_words(plan: SplitPlan) -> str:
    """The run's state in a few words: "3 of 5 parts done · 2 rendering · 1 failed"."""
    counts: dict[str, int] = {}
    for part in plan.parts:
        counts[part.state] = counts.get(part.state, 0) + 1
    done = counts.get(JobStatus.COMPLETED, 0)
    words = [f"{done} of {len(plan.parts)} parts done"]
    for name, word in (
        (JobStatus.IN_PROGRESS, "rendering"),
        (JobStatus.IN_QUEUE, "queued"),
        ("pending", "waiting"),
        (JobStatus.FAILED, "failed"),
        (JobStatus.TIMED_OUT, "timed out"),
        (JobStatus.CANCELLED, "cancelled"),
    ):
        if counts.get(name):
            words.append(f"{counts[name]} {word}")
    return " · ".join(words)


def part_line(part: SplitPart, progress: dict[int, dict[str, Any]], position: int | None) -> str:
    """One part's bar text: "Part 2 (0:38–1:15) · In queue · 2nd in line", "Part 1 (…) · Generating · 45%"."""
    head = f"Part {part.index + 1} ({clock(part.start_s)}–{clock(part.end_s)})"
    if part.state == JobStatus.IN_QUEUE and position is not None:
        place = "next in line" if position == 1 else f"{_ordinal(position)} in line"
        return f"{head} · In queue · {place}"
    if part.state == JobStatus.IN_PROGRESS:
        latest = progress.get(part.index) or {}
        stage = stage_words(str(latest["stage"]), latest.get("details") or {}) if latest.get("stage") else "Starting"
        return f"{head} · {stage} · {part_pct(part, progress):.0f}%"
    return f"{head} · {STATE_WORDS.get(part.state, part.state)}"


def _ordinal(place: int) -> str:
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"


def why(part: SplitPart) -> str:
    """Why a part did not finish, from its job's error."""
    error = part.error or {}
    message = error.get("message") or error.get("code") or STATE_WORDS.get(part.state, part.state)
    return f"Part {part.index + 1} {STATE_WORDS.get(part.state, part.state).lower()}: {message}"


def _plan(run: dict[str, Any]) -> SplitPlan | None:
    try:
        return split_driver.read_plan(state.store(), run)
    except (JobError, ValueError) as error:
        st.warning(f"The split plan cannot be read: {views.plain(str(getattr(error, 'message', error)))}")
        return None


def _cancel(run: dict[str, Any]) -> None:
    """Cancel every part, after one confirmation (the parts' work so far is lost)."""
    if not views.confirmed_stop("live.split.cancel", run["run_id"], "Stop every part? Their work so far is lost."):
        return
    try:
        driver = split_driver.driver(state.settings())
        driver.cancel(run, state.client(), state.store(), state.catalog())
        st.toast("Cancelled every part")
    except (EndpointError, JobError) as error:
        st.toast(f"Could not cancel: {getattr(error, 'message', None) or error}", icon=":material/error:")


def retry_buttons(run: dict[str, Any], plan: SplitPlan) -> None:
    """Each failed part says why, and offers to run it again alone (the other parts are kept)."""
    for part in plan.parts:
        if part.state not in (*JobStatus.FAILURES, JobStatus.CANCELLED) or plan.state == "cancelled":
            continue
        st.error(views.plain(why(part)), icon=":material/error:")
        if st.button("Retry this part", key=f"live.split.retry.{run['run_id']}.{part.index}", icon=":material/replay:"):
            try:
                driver = split_driver.driver(state.settings())
                driver.retry(run, part.index, state.client(), state.store(), state.catalog())
                st.toast(f"Part {part.index + 1} sent again", icon=":material/replay:")
            except (EndpointError, JobError) as error:
                st.toast(f"Could not retry: {getattr(error, 'message', None) or error}", icon=":material/error:")


def card(run: dict[str, Any], board: Board) -> None:
    """The card of a split run still going."""
    driver = split_driver.driver(state.settings())
    with st.container(border=True):
        top, actions = st.columns([5, 1], vertical_alignment="center")
        plan = _plan(run)
        with top:
            views.status_badge(run["status"])
            st.markdown(f"**{views.plain((run.get('prompt') or '')[:140])}**")
            if plan is not None:
                st.caption(
                    f"split run `{run['run_id']}` · {views.duration(plan.speech_s)} of speech in "
                    f"{len(plan.parts)} parts, {plan.parallel} at a time"
                )
        with actions:
            _cancel(run)
        if plan is None:
            return
        progress = driver.progress.get(run["run_id"], {})
        whole = run_pct(plan, progress)
        st.progress(min(1.0, whole / 100.0), text=f"Whole run · {run_words(plan)} · {whole:.0f}%")
        for part in plan.parts:
            position = board.listed_positions.get(part.job_id or "")
            st.progress(part_pct(part, progress) / 100.0, text=part_line(part, progress, position))
        retry_buttons(run, plan)
        problem = driver.problems.get(run["run_id"])
        if problem:
            st.warning(f"The run could not be stepped: {views.plain(problem)}", icon=":material/cloud_off:")
        _so_far(plan, "Video so far")


def _so_far(plan: SplitPlan, words: str) -> None:
    """The leading finished parts joined (SplitRun.join_so_far, made by the driver), when the store has them:
    gone once the run is joined, and until the driver has made the newest."""
    done = 0
    for part in plan.parts:
        if part.state != JobStatus.COMPLETED:
            break
        done += 1
    key = f"{plan.folder}/parts/so-far-{done:03d}.mp4"
    if done == 0 or done == len(plan.parts) or not state.store().exists(key):
        return
    parts = "part 1" if done == 1 else f"parts 1–{done}"
    st.caption(f"{words}: {parts}, {views.duration(plan.parts[done - 1].end_s)} of speech")
    views.video(state.store(), key)


def finished(run: dict[str, Any]) -> None:
    """A split run in "Just finished": how many parts it made; a failed one's parts with "Retry this part"."""
    plan = _plan(run)
    if plan is None:
        return
    st.caption(f"split run · {len(plan.parts)} parts · {views.duration(plan.speech_s)} of speech")
    if run["status"] in JobStatus.FAILURES:
        retry_buttons(run, plan)
        _so_far(plan, "Rendered before it stopped")
