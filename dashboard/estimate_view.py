"""Submit's estimate line and timeout guard: how long the job will take on the endpoint's GPU, what it will cost,
and the execution timeout the request must carry so that a long job is not cut off as TIMED_OUT.

The numbers are client.estimate's, the same the `studio estimate` command prints; this module only
gathers the form's values and says them.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from client.estimate import DEFAULT_GPU, Estimate, describe, estimate_job, minutes, recent_runs
from core.prices import CPU
from dashboard import state
from dashboard.cost import price_table
from dashboard.forms import clean_params, default_params, speech_seconds

K = "submit.estimate."
TIMEOUT = K + "timeout_s"
TIMEOUT_FOR = K + "timeout_for"
"""The guard's suggested timeout the number field was last set from: a new suggestion resets the field, while
a value the user typed holds as long as the suggestion stays the same."""


def job_like(params: dict[str, Any], *, two_people: bool, tts_text: str | None) -> dict[str, Any]:
    """The form's parameters as a job input shape the estimator reads (media refs do not matter to it)."""
    job: dict[str, Any] = {**default_params(), **clean_params(params)}
    if tts_text is not None:
        job["tts_audio"] = {"text": tts_text}
    elif two_people:
        job["cond_audio"] = {"person1": "-", "person2": "-"}
    return job


def speech_length(speech: list[Any], audio_type: str) -> float | None:
    """The speech's length from the form's speech inputs (their measured facts); None until each is known."""
    durations = [getattr(slot.facts, "duration_s", None) for slot in speech]
    known = [float(d) for d in durations if d]
    if not durations or len(known) < len(durations):
        return None
    return speech_seconds(known, audio_type)


def current(
    params: dict[str, Any], speech: list[Any], audio_type: str, tts_text: str | None, gpu: str | None = None
) -> Estimate:
    """The estimate for the form as it stands, from the catalogue's runs on this endpoint (on `gpu`, when named,
    rather than on the endpoint's own engine)."""
    settings = state.settings()
    runs = recent_runs(state.catalog(), settings.endpoint_id)
    job = job_like(params, two_people=len(speech) > 1, tts_text=tts_text)
    seconds = None if tts_text is not None else speech_length(speech, audio_type)
    return estimate_job(job, seconds, settings=settings, runs=runs, gpu=gpu)


def render(params: dict[str, Any], speech: list[Any], audio_type: str, tts_text: str | None) -> int | None:
    """Draw the estimate line (and the timeout guard when the job may outrun the endpoint's execution timeout);
    return the policy.executionTimeout in milliseconds the request should carry, or None."""
    prices, problem = price_table(state.settings())
    if problem:
        st.warning(f"{problem}. Costs use RunPod's own prices until it is fixed.", icon=":material/payments:")
    result = current(params, speech, audio_type, tts_text)
    if not result.frames_known:
        st.caption("Estimate: add the speech to see how long the job will take and what it will cost.")
        return None
    basis = {
        "history": "from past runs",
        "measured": "from a bench-gpu run",
        "published": "from published figures",
        "none": "",
    }[result.basis]
    st.caption(
        f"Estimate: **{describe(result)}** · {basis + ': ' if basis else ''}{result.note}",
        help="docs/estimates.md says where each published or measured figure comes from and how past runs are used.",
    )
    if result.gpu != CPU:
        st.caption(f"Price: {prices.source(result.gpu)}")
    if result.gpu == CPU:
        # Trying things out on the preview: what the same job would take and cost on the GPU worker.
        on_gpu = current(params, speech, audio_type, tts_text, gpu=state.settings().gpu or DEFAULT_GPU)
        st.caption(f"On a GPU worker it would be {describe(on_gpu)} ({on_gpu.note}).")
    if result.execution_timeout_s is None:
        return None
    suggested = result.execution_timeout_s
    if st.session_state.get(TIMEOUT_FOR) != suggested:
        st.session_state[TIMEOUT] = suggested
        st.session_state[TIMEOUT_FOR] = suggested
    st.warning(
        f"The slow end of the estimate ({minutes(result.high or 0)}) is past the endpoint's execution timeout "
        f"({minutes(result.endpoint_timeout_s)}), which would end the job as TIMED_OUT. The request will carry "
        "this execution timeout instead; change it if you know better.",
        icon=":material/timer:",
    )
    chosen = st.number_input(
        "Execution timeout for this job (seconds)",
        min_value=60,
        max_value=7 * 24 * 3600,
        step=60,
        key=TIMEOUT,
        help="Sent as policy.executionTimeout; RunPod stops a job that runs longer.",
    )
    return int(chosen) * 1000
