"""Submit's "Split long speech": the toggle, its part length and parallel count, the estimate that shows the
choice, and sending a split run (issue 30; docs/split.md).

InfiniteTalk renders one long video clip after clip on one GPU; split, the speech is cut inside its pauses and
each part is an ordinary job, several at once (client/fanout.py). The toggle is on by default above
SplitDefaults.SPLIT_ABOVE_S of speech, off below; whatever the user chose holds until the speech changes. The run
sent is driven by the dashboard's split driver (dashboard/split_driver.py) and shown on Live as one card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from client.estimate import endpoint_timeout, minutes, recent_runs
from client.fanout import SplitRun, default_parallel, plan_split, split_estimate
from core.contract import FPS, Defaults, SplitDefaults
from dashboard import split_driver, state, views

K = "submit.split."
ON = K + "on"
FOR = K + "for"
"""The speech length the toggle was last defaulted for: a new speech sets it to its default again."""
PART_S = K + "part_s"
PARALLEL = K + "parallel"
KEPT_PART_S = K + "kept_part_s"
KEPT_PARALLEL = K + "kept_parallel"
"""The user's part length and count, kept while the toggle is off (Streamlit drops a widget's state on a run
that does not draw it)."""
WORKERS = K + "workers"
"""(endpoint id, its worker count): the parallel count's default, asked of the endpoint once per endpoint."""


@dataclass(frozen=True)
class SplitChoice:
    """What the form says about splitting: `on`, and the parts' length, floor and how many run at once."""

    on: bool
    speech_s: float
    part_s: float
    min_part_s: float
    parallel: int

    @property
    def parts(self) -> int:
        """About how many parts (the cuts at pauses move each by a few seconds)."""
        return max(1, math.ceil(self.speech_s / self.part_s))


def default_on(speech_s: float) -> bool:
    """Split by default only above SplitDefaults.SPLIT_ABOVE_S: a short speech is one job as it always was."""
    return speech_s > SplitDefaults.SPLIT_ABOVE_S


def longest_part_s(params: dict[str, Any]) -> float:
    """The longest part a job may be: its streaming frame cap (`max_frame_num`, 1000 frames = 40 s by default)."""
    cap = params.get("max_frame_num") if params.get("mode") == "streaming" else None
    return float(cap or Defaults.MAX_FRAME_NUM) / FPS


def summary(choice: SplitChoice) -> str:
    """ "2 min 40 s of speech → 5 parts of ≤ 40 s, 3 at a time"."""
    parts = choice.parts
    plural = "s" if parts != 1 else ""
    return (
        f"{views.duration(choice.speech_s)} of speech → {parts} part{plural} of ≤ {choice.part_s:g} s, "
        f"{min(choice.parallel, parts)} at a time"
    )


def _parallel_default() -> int:
    settings = state.settings()
    held = st.session_state.get(WORKERS)
    if held is None or held[0] != settings.endpoint_id:
        held = (settings.endpoint_id, default_parallel(state.client()))
        st.session_state[WORKERS] = held
    return int(held[1])


def options(speech_s: float | None, params: dict[str, Any], job_like: dict[str, Any]) -> SplitChoice | None:
    """Draw the toggle (once the speech's length is known) and, when on, its settings and estimate."""
    if speech_s is None or speech_s <= 0:
        return None
    measured = round(speech_s, 1)
    if st.session_state.get(FOR) != measured:
        st.session_state[FOR] = measured
        st.session_state[ON] = default_on(speech_s)
    on = st.toggle(
        "Split long speech",
        key=ON,
        help=f"Cut the speech inside its pauses into parts, render them on several workers at once and join them "
        f"into one video (on by default above {SplitDefaults.SPLIT_ABOVE_S:.0f} s of speech). Off: one "
        "continuous take on one worker.",
    )
    longest = longest_part_s(params)
    if not on:
        st.caption(f"{views.duration(speech_s)} of speech → one continuous take on one worker")
        return SplitChoice(False, speech_s, longest, min(SplitDefaults.MIN_PART_S, longest / 2), 1)
    length, workers = st.columns(2)
    part_s = float(
        length.number_input(
            "Longest part (s)",
            min_value=2.0,
            max_value=longest,
            value=min(float(st.session_state.get(KEPT_PART_S, SplitDefaults.PART_S)), longest),
            step=5.0,
            key=PART_S,
            help="Each part is at most this long, cut in the pause nearest to it (the job's frame cap at most)",
        )
    )
    parallel = int(
        workers.number_input(
            "Parts at a time",
            min_value=1,
            max_value=64,
            value=int(st.session_state.get(KEPT_PARALLEL) or _parallel_default()),
            step=1,
            key=PARALLEL,
            help="How many parts render at once: by default the endpoint's worker count where it says",
        )
    )
    st.session_state[KEPT_PART_S], st.session_state[KEPT_PARALLEL] = part_s, parallel
    choice = SplitChoice(True, speech_s, part_s, min(SplitDefaults.MIN_PART_S, part_s / 2), parallel)
    st.caption(summary(choice))
    _estimate(choice, job_like)
    return choice


def _estimate(choice: SplitChoice, job_like: dict[str, Any]) -> None:
    """One worker against N: client.fanout.split_estimate's figures, as `studio submit` prints them."""
    settings = state.settings()
    figures = split_estimate(
        job_like,
        choice.speech_s,
        settings=settings,
        runs=recent_runs(state.catalog(), settings.endpoint_id),
        parallel=choice.parallel,
        part_s=choice.part_s,
    )
    if figures["one_worker_s"] is None or figures["split_wall_s"] is None:
        times = "no time estimate yet (it needs past runs like these)"
    else:
        workers = min(choice.parallel, figures["parts"])
        times = (
            f"≈ **{minutes(figures['one_worker_s'])}** on one worker, ≈ **{minutes(figures['split_wall_s'])}** "
            f"with {workers} worker{'s' if workers != 1 else ''}"
        )
    st.caption(
        f"Split estimate: {times}; each part's execution timeout {figures['part_execution_timeout_s']} s "
        f"(one job would need {figures['one_job_execution_timeout_s']} s)"
    )


def send(job: dict[str, Any], choice: SplitChoice, *, submitted_by: str | None) -> str:
    """Plan the split (the speech cut and each part's slices uploaded), record the run, send the first parts;
    returns the run's id. The split driver sends the rest and joins them. JobError / EndpointError say why not."""
    settings, store, catalog = state.settings(), state.store(), state.catalog()
    client = state.client(patient=True)
    plan = plan_split(
        job, settings, store, part_s=choice.part_s, min_part_s=choice.min_part_s, parallel=choice.parallel
    )
    figures = split_estimate(
        job,
        plan.speech_s,
        settings=settings,
        runs=recent_runs(catalog, settings.endpoint_id),
        parallel=plan.parallel,
        part_s=plan.part_s,
    )
    if figures["part_execution_timeout_s"] > endpoint_timeout(settings):
        plan.execution_timeout_s = figures["part_execution_timeout_s"]
    run = SplitRun(plan, client, store, catalog)
    driver = split_driver.driver(settings)
    with driver.lock(plan.run_id):  # the driver's tick waits: it never sends a part this call sends too
        run.save()
        catalog.record_split(plan, submitted_by)
        run.send_ready()
    return plan.run_id


def will_split(speech_s: float | None) -> bool:
    """Whether the toggle is (or is about to be, for a new speech) on: Submit then leaves out the note that the
    frame cap cuts the speech, since each part fits the cap."""
    if speech_s is None or speech_s <= 0:
        return False
    if st.session_state.get(FOR) == round(speech_s, 1):
        return bool(st.session_state.get(ON))
    return default_on(speech_s)
