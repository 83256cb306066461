"""Comparing two runs: which two (`?compare=A,B`, or two ticked in History), the parameters that differ, their
timings, lengths and costs side by side, and the script that plays both videos in step."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from dashboard import views
from dashboard.cost import cost_text
from dashboard.history import params_rows, timing_rows

PARAM = "compare"
PICKED = "compare.picked"
"""Run ids ticked for comparing on History's cards, oldest tick first (at most two are kept)."""
SIDES = ("a", "b")
CONTAINER = "compare-video-{}"
"""The keys of the two video containers; Streamlit gives each the class `st-key-<key>`, which the script finds."""


def parse(value: str | None) -> tuple[str, str] | None:
    """The two run ids of a `?compare=A,B` value; None unless it names exactly two different runs."""
    ids = [part.strip() for part in (value or "").split(",") if part.strip()]
    if len(ids) != 2 or ids[0] == ids[1]:
        return None
    return ids[0], ids[1]


def link_value(first: str, second: str) -> str:
    """The `?compare=` value that opens these two runs."""
    return f"{first},{second}"


def toggle(run_id: str) -> None:
    """Tick or untick a run for comparing; a third tick replaces the oldest."""
    picked = [item for item in st.session_state.get(PICKED, []) if item != run_id]
    if len(picked) == len(st.session_state.get(PICKED, [])):
        picked = [*picked, run_id][-2:]
    st.session_state[PICKED] = picked


def pick_box(run_id: str, key: str) -> None:
    """History card's "Compare" tick box."""
    st.checkbox(
        "Compare",
        value=run_id in st.session_state.get(PICKED, []),
        key=f"{key}compare.{run_id}",
        on_change=toggle,
        args=(run_id,),
        help="Tick two runs, then Compare them side by side",
    )


def picked() -> list[str]:
    """The runs ticked for comparing."""
    return list(st.session_state.get(PICKED, []))


def _flat(params: dict[str, Any]) -> dict[str, str]:
    return {row["parameter"]: row["value"] for row in params_rows(params)}


def differing_params(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """The parameters whose values differ (or that only one run has), as rows of parameter, A and B."""
    first, second = _flat(a.get("params") or {}), _flat(b.get("params") or {})
    names = sorted(set(first) | set(second))
    return [
        {"parameter": name, "A": first.get(name, "—"), "B": second.get(name, "—")}
        for name in names
        if first.get(name) != second.get(name)
    ]


def _seconds(ms: Any) -> str:
    return views.duration(ms / 1000) if isinstance(ms, int | float) and not isinstance(ms, bool) else "—"


def facts_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """What each run made and what it took: length, size, engine, GPU, cost, and the time of each stage."""

    def size(run: dict[str, Any]) -> str:
        return f"{run['width']}×{run['height']}" if run.get("width") else "—"

    def gpu(run: dict[str, Any]) -> str:
        count = run.get("gpu_count") or 0
        return f"{run['gpu_name']}{f' × {count}' if count > 1 else ''}" if run.get("gpu_name") else "—"

    rows = [
        ("status", lambda r: str(r.get("status") or "—")),
        ("video length", lambda r: views.duration(r.get("video_duration_s"))),
        ("frames", lambda r: str(r.get("frames") or "—")),
        ("size", size),
        ("engine", lambda r: str(r.get("engine") or "—")),
        ("GPU", gpu),
        ("cost", cost_text),
        ("made in (worker)", lambda r: _seconds(r.get("total_ms"))),
        ("execution (endpoint)", lambda r: _seconds(r.get("execution_ms"))),
        ("queue delay", lambda r: _seconds(r.get("delay_ms"))),
    ]
    table = [{"": label, "A": show(a), "B": show(b)} for label, show in rows]
    stages_a = {row["stage"]: row["seconds"] for row in timing_rows(a.get("timings") or {})}
    stages_b = {row["stage"]: row["seconds"] for row in timing_rows(b.get("timings") or {})}
    for stage in dict.fromkeys([*stages_a, *stages_b]):
        table.append(
            {
                "": f"stage: {stage}",
                "A": f"{stages_a[stage]:.1f} s" if stage in stages_a else "—",
                "B": f"{stages_b[stage]:.1f} s" if stage in stages_b else "—",
            }
        )
    return table


SYNC_SCRIPT = """
<div style="font-family: sans-serif; display: flex; gap: .5rem; align-items: center;">
  <button id="both" style="padding: .35rem .9rem; border-radius: .5rem; border: 1px solid #888; cursor: pointer;">
    Play both from the start</button>
  <span id="state" style="font-size: .85rem; color: #888;">Playing, pausing or seeking one video moves the other.</span>
</div>
<script>
const doc = window.parent.document;
const keys = %(keys)s;
const find = () => keys.map(k => doc.querySelector(`.st-key-${k} video`));
// Each listener acts only when the other video differs, so mirrored events die out instead of bouncing back.
const near = (x, y) => Math.abs(x - y) <= 0.05;
function follow(from, to) {
  const play = () => to.play().catch(() => { to.muted = true; return to.play(); }).catch(() => {});
  from.addEventListener("play", () => { if (!near(to.currentTime, from.currentTime)) to.currentTime = from.currentTime;
                                        if (to.paused) play(); });
  from.addEventListener("pause", () => { if (!to.paused) to.pause(); });
  from.addEventListener("seeked", () => {
    if (!near(to.currentTime, from.currentTime)) to.currentTime = from.currentTime;
  });
  from.addEventListener("ratechange", () => {
    if (to.playbackRate !== from.playbackRate) to.playbackRate = from.playbackRate;
  });
}
function attach() {
  const [a, b] = find();
  if (!a || !b || a.dataset.inStep === "yes") return;
  a.dataset.inStep = b.dataset.inStep = "yes";
  follow(a, b);
  follow(b, a);
  window.parent.__compareInStep = true;
}
setInterval(() => {
  attach();
  const [a, b] = find();
  // Drift: the second follows the first while both play (decoders do not keep time together by themselves).
  if (a && b && !a.paused && !b.paused && Math.abs(a.currentTime - b.currentTime) > 0.15
      && b.duration > a.currentTime) { b.currentTime = a.currentTime; }
}, 250);
document.getElementById("both").addEventListener("click", () => {
  const [a, b] = find();
  if (!a || !b) return;
  a.pause();
  a.currentTime = 0;
  a.play().catch(() => { a.muted = true; return a.play(); });
});
</script>
"""


def sync_script() -> str:
    """The HTML component that keeps the two videos in step: it lives in a same-origin iframe and listens to the
    page's two <video> elements (play, pause, seek, rate), so either one drives the other."""
    return SYNC_SCRIPT % {"keys": json.dumps([CONTAINER.format(side) for side in SIDES])}


def picked_bar() -> None:
    """Under History's count: which runs are ticked, and the button that opens the two side by side."""
    from dashboard import navigation

    ticked = picked()
    if not ticked:
        return
    if len(ticked) < 2:
        st.caption("1 run ticked for comparing: tick one more.")
        return
    if st.button("Compare the two ticked runs", icon=":material/compare:", key="history.compare.go"):
        st.switch_page(navigation.page("compare"), query_params={PARAM: link_value(*ticked)})
