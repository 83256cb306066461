"""Comparing two runs: which two (`?compare=A,B`, or two ticked in History), the parameters that differ, their
timings, lengths and costs side by side, and the script that plays both videos in step."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from catalog.records import split_parts
from dashboard import views
from dashboard.cost import cost_text
from dashboard.history import params_rows, size_words, timing_rows
from dashboard.words import label

PARAM = "compare"
PICKED = "compare.picked"
"""Run ids ticked for comparing on History's cards, oldest tick first (at most two are kept)."""
MOST = 2
"""Compare shows two runs: with two ticked, the other cards' boxes are disabled and say why (a third tick silently
dropped the first, issue 29)."""
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
    """Tick or untick a run for comparing; a tick past MOST is refused (its box is disabled; this is the guard for
    a stale page), never swapped for an earlier one without a word."""
    ticked = list(st.session_state.get(PICKED, []))
    if run_id in ticked:
        ticked.remove(run_id)
    elif len(ticked) < MOST:
        ticked.append(run_id)
    st.session_state[PICKED] = ticked


def pick_box(run_id: str, key: str) -> None:
    """History card's "Compare" tick box; disabled, saying why, while two other runs are ticked."""
    ticked = st.session_state.get(PICKED, [])
    full = len(ticked) >= MOST and run_id not in ticked
    st.checkbox(
        "Compare",
        value=run_id in ticked,
        key=f"{key}compare.{run_id}",
        on_change=toggle,
        args=(run_id,),
        disabled=full,
        help="Two runs are ticked already: untick one to pick this one instead"
        if full
        else "Tick two runs, then Compare them side by side",
    )


def picked() -> list[str]:
    """The runs ticked for comparing."""
    return list(st.session_state.get(PICKED, []))


EMPTY = "—"
"""The one mark for "not set" in Compare's tables (a None beside a dash read as two different things, issue 29)."""
MEDIA_FIELDS = ("cond_video", "cond_audio")


def _shown(name: str, value: str) -> str:
    """A parameter's value as the table shows it: a media reference by its file name (not a server path or a
    presigned URL), an unset value as EMPTY."""
    if value in ("None", "", "null"):
        return EMPTY
    if name.split(".")[0] in MEDIA_FIELDS and not value.startswith("data:"):
        return value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or value
    return value


def _flat(params: dict[str, Any]) -> dict[str, str]:
    return {row["parameter"]: _shown(row["parameter"], row["value"]) for row in params_rows(params)}


def differing_params(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """The parameters whose values differ (or that only one run has), as rows of setting (the form's label), A
    and B; field names, paths and "None" were shown as the catalogue holds them (issue 29)."""
    first, second = _flat(a.get("params") or {}), _flat(b.get("params") or {})
    names = sorted(set(first) | set(second))
    rows = [
        {"setting": label(name), "A": first.get(name, EMPTY), "B": second.get(name, EMPTY)}
        for name in names
        if first.get(name, EMPTY) != second.get(name, EMPTY)
    ]
    for setting, show in SPLIT_ROWS:
        values = show(a), show(b)
        if values[0] != values[1]:
            rows.append({"setting": setting, "A": values[0], "B": values[1]})
    return rows


def _part_count(run: dict[str, Any]) -> str:
    count = len(split_parts(run))
    return f"{count} parts" if count else "one job"


def _part_length(run: dict[str, Any]) -> str:
    """The longest part's span in the speech (what `part_s` bounded), for a split run; EMPTY for one job."""
    parts = split_parts(run)
    return f"{max(part.duration_s for part in parts):.1f} s" if parts else EMPTY


SPLIT_ROWS = (("split into", _part_count), ("longest part", _part_length))
"""How a split run (docs/split.md) was rendered: how many parts, and how long the longest. They are not params
(the run's params are its own input, as Reuse fills them), so they are compared beside them."""


def _seconds(ms: Any) -> str:
    return views.duration(ms / 1000) if isinstance(ms, int | float) and not isinstance(ms, bool) else "—"


def facts_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """What each run made and what it took: length, size, engine, GPU, cost, and the time of each stage."""

    def size(run: dict[str, Any]) -> str:
        return size_words(run) or EMPTY

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
        ("split into", _part_count),
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
    if len(ticked) < MOST:
        st.caption("1 run ticked for comparing: tick one more.")
        return
    st.caption("2 runs ticked, as many as Compare shows: untick one to pick another.")
    if st.button("Compare the two ticked runs", icon=":material/compare:", key="history.compare.go"):
        st.switch_page(navigation.page("compare"), query_params={PARAM: link_value(*ticked)})
