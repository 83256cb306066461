"""Compare two runs: both videos side by side, played in step, with what differs between them.

Opened from History (tick two cards) or by a link: `/compare?compare=RUN_A,RUN_B`.
"""

from __future__ import annotations

import streamlit as st

from catalog.search import MAX_PER_PAGE
from core.contract import JobStatus
from dashboard import compare, navigation, state, views

K = "compare."


def _label(run: dict) -> str:
    made = (run.get("created_at") or "")[:16].replace("T", " ")
    return f"{made} · {(run.get('prompt') or '(no prompt)')[:60]}"


def _choose() -> None:
    """No two runs named: pick them here from the finished ones."""
    runs = state.catalog().search("", status=JobStatus.COMPLETED, per_page=MAX_PER_PAGE).rows
    if len(runs) < 2:
        st.info("Comparing needs two finished runs; make another on the Submit page.", icon=":material/compare:")
        return
    labels = {run["run_id"]: _label(run) for run in runs}
    left, right = st.columns(2)
    first = left.selectbox("Run A", list(labels), format_func=labels.__getitem__, key=K + "a")
    second = right.selectbox("Run B", list(labels), index=1, format_func=labels.__getitem__, key=K + "b")
    if st.button("Compare", type="primary", key=K + "go", disabled=first == second, icon=":material/compare:"):
        st.query_params[compare.PARAM] = compare.link_value(first, second)
        st.rerun()


def _side(run: dict, side: str) -> None:
    views.status_badge(run["status"])
    st.markdown(f"**{side.upper()}** · {views.plain(run.get('prompt') or '(no prompt)')}")
    with st.container(key=compare.CONTAINER.format(side)):
        if run.get("video_key"):
            views.video(state.store(), run["video_key"])
        else:
            st.caption("No video (the run did not finish).")


def main() -> None:
    """Draw the Compare page."""
    st.title("Compare two runs", anchor=False)
    ids = compare.parse(st.query_params.get(compare.PARAM))
    if ids is None:
        if st.query_params.get(compare.PARAM):
            st.warning("The link must name two different runs: `?compare=RUN_A,RUN_B`.", icon=":material/link_off:")
        _choose()
        return
    catalog = state.catalog()
    runs = [catalog.get(run_id) for run_id in ids]
    missing = [run_id for run_id, run in zip(ids, runs, strict=True) if run is None]
    if missing:
        st.warning(f"Not in the catalogue (deleted?): {', '.join(f'`{views.plain(m)}`' for m in missing)}")
        _choose()
        return
    a, b = runs
    assert a is not None and b is not None  # both found: the missing ones returned above
    st.caption(f"Link to this comparison: `?{compare.PARAM}={compare.link_value(*ids)}`")
    left, right = st.columns(2, gap="medium")
    with left:
        _side(a, "a")
    with right:
        _side(b, "b")
    st.iframe(compare.sync_script(), height=48)  # our own script (no user text in it), same-origin by design
    st.subheader("Timings, length and cost", divider="gray", anchor=False)
    st.dataframe(compare.facts_rows(a, b), hide_index=True, width="stretch")
    st.subheader("Parameters that differ", divider="gray", anchor=False)
    differing = compare.differing_params(a, b)
    if differing:
        st.dataframe(differing, hide_index=True, width="stretch")
    else:
        st.caption("Both runs used the same parameters.")
    if st.button("Back to History", icon=":material/video_library:", key=K + "back"):
        st.switch_page(navigation.page("history"))


main()
