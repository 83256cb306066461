"""Small view helpers the pages share: status badges, failures, media from the store, durations."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, Literal

import altair as alt
import pandas as pd
import streamlit as st

from core.contract import JobError, JobStatus, friendly_error
from core.prices import PREVIEW_ENGINE
from core.store import Store
from dashboard.words import PREVIEW_BADGE, PREVIEW_ENGINE_LINE, in_words

if TYPE_CHECKING:
    # Vega's colour scheme names; altair types Scale(scheme=...) with this alias but exports it only from here.
    from altair.vegalite.v6.schema._typing import ColorScheme_T

BadgeColour = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "grey", "primary"]
"""The colours st.badge takes."""
STATUS_COLOURS: dict[str, BadgeColour] = {
    JobStatus.IN_QUEUE: "gray",
    JobStatus.IN_PROGRESS: "blue",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "orange",
    JobStatus.TIMED_OUT: "red",
}


MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str | None) -> str:
    """User text (a prompt, a note, a message that quotes a field) as literal text inside Streamlit Markdown.

    Streamlit renders Markdown: an image in a prompt would make every viewer's browser fetch its URL, and a link
    could pose as the page's own Download button. Every Markdown punctuation mark is backslash-escaped, which
    CommonMark shows as the mark itself.
    """
    return MARKDOWN_PUNCTUATION.sub(r"\\\1", text or "")


def warnings(run: dict[str, Any]) -> None:
    """The worker's warnings about a run (speech cut short, no face found, a default used), as text."""
    for warning in run.get("warnings") or []:
        st.caption(f"⚠ {plain(in_words(warning))}")


def duration(seconds: float | None) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`; an em dash when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def status_badge(status: str, engine: str | None = None) -> None:
    """A coloured badge for a run's status; beside it the preview engine's badge when the run's metadata says the
    preview engine made it (issue 29: nothing told a preview from InfiniteTalk's output)."""
    colour = STATUS_COLOURS.get(status, "gray")
    words = status.replace("_", " ").title()
    if engine == PREVIEW_ENGINE:
        st.markdown(f":{colour}-badge[{plain(words)}] {PREVIEW_BADGE}", help=PREVIEW_ENGINE_LINE)
    else:
        st.badge(words, color=colour)


def outcome(run: dict[str, Any]) -> None:
    """How an unsuccessful run ended: a cancel is the user's own stop, said plainly; a failure gets its title,
    message and what to try. Nothing for a run still going or one that made its video."""
    status = run.get("status")
    if status == JobStatus.CANCELLED:
        st.info("Cancelled: it was stopped before it finished, so no final video was made.", icon=":material/block:")
    elif status in JobStatus.FAILURES:
        failure(run.get("error_code"), run.get("error_message"))


def failure(code: str | None, message: str | None) -> None:
    """A failed run: the friendly title for its code, the worker's message, and what to try."""
    info = friendly_error(code or "")
    st.error(f"**{info['title']}** ({plain(code) or 'no code'})\n\n{plain(in_words(message))}".strip())
    st.caption(f"What to try: {info['advice']}")


def _media(store: Store, key: str) -> bytes | str:
    # A browser cannot open file:// URLs from a web page: the folder store's bytes are sent instead.
    return store.url(key) if store.kind == "s3" else store.get(key)


THUMB_BOX = (320, 180)
"""Every card's thumbnail is letterboxed into this 16:9 box, so that a portrait beside a landscape run leaves the
grid's cards the same height (issue 16: uneven cards)."""


@st.cache_data(max_entries=512, show_spinner=False)
def boxed(data: bytes, box: tuple[int, int] = THUMB_BOX) -> bytes:
    """An image scaled to fit `box` whole and centred on a neutral ground, as JPEG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
        image.thumbnail(box)
        ground = Image.new("RGB", box, (38, 39, 48))
        ground.paste(image, ((box[0] - image.width) // 2, (box[1] - image.height) // 2))
    out = io.BytesIO()
    ground.save(out, "JPEG", quality=85)
    return out.getvalue()


def thumbnail(store: Store, key: str | None, alt: str = "") -> bool:
    """A run's thumbnail in the card's fixed box; False when there is none (or it is not an image). `alt` is
    empty on a card, whose prompt is read right after it (a picture with no alt at all failed axe-core)."""
    if not key:
        return False
    try:
        st.image(boxed(store.get(key)), width="stretch", alt=alt)
    except (JobError, OSError, ValueError):
        return False
    return True


def video(store: Store, key: str | None) -> None:
    """Play a stored video, or say why it cannot be shown."""
    if not key:
        return
    try:
        st.video(_media(store, key))
    except JobError as error:
        st.warning(f"The video is not in the store any more ({plain(error.message)}).")


def image(store: Store, key: str | None, **kwargs: Any) -> bool:
    """Show a stored image; False when there is none to show."""
    if not key:
        return False
    try:
        st.image(_media(store, key), **kwargs)
    except JobError:
        return False
    return True


SERIES_COLOURS = {
    "idle": "#9aa0a6",
    "in queue": "#9aa0a6",
    "running": "#1c83e1",
    "other": "#ffbd45",
    "queue delay (s)": "#9aa0a6",
    "execution (s)": "#1c83e1",
    "p50 (s)": "#1c83e1",
    "p95 (s)": "#803df5",
}
"""Colours with meaning: waiting and idle are grey, working is blue; orange and red are kept for trouble (idle
workers were drawn in alarm orange, issue 16). Series not named here (error codes) take the `scheme`."""


def time_format(span: pd.Timedelta) -> str:
    """Axis labels that differ from tick to tick: seconds inside a quarter hour (ten ticks of `%H:%M` in five minutes
    read `00:29 00:29 00:29…`), minutes inside a day, days beyond."""
    if span <= pd.Timedelta(minutes=15):
        return "%H:%M:%S"
    if span <= pd.Timedelta(days=1):
        return "%H:%M"
    return "%a %d %b"


def time_chart(
    frame: pd.DataFrame,
    y_title: str,
    *,
    kind: Literal["line", "area", "bar"] = "line",
    counts: bool = False,
    percent: bool = False,
    window: tuple[Any, Any] | None = None,
    bucket: str | None = None,
    scheme: ColorScheme_T | None = None,
) -> None:
    """Chart a time-indexed frame, one colour per column; counts get whole-number ticks from zero.

    `window` (start, end) fixes the time axis to the period the page asked for, so a lone point or bar is not
    pinned to the chart's edge; `bucket` ("5min", "1h", "1D") draws each bar as wide as the period it counts (a bar
    at a point in time was a sliver squashed against the edge).
    """
    long = frame.rename_axis("at").reset_index().melt("at", var_name="series", value_name="value")
    axis = alt.Axis(format="d", tickMinStep=1) if counts else alt.Axis(format="%") if percent else alt.Axis()
    if bucket and kind == "bar":
        long["end"] = long["at"] + pd.Timedelta(bucket)
    mark = {
        "line": alt.Chart(long).mark_line(point=True),
        "area": alt.Chart(long).mark_area(),
        "bar": alt.Chart(long).mark_bar(),
    }
    if window is not None:
        start, end = (pd.Timestamp(moment) for moment in window)
        scale = alt.Scale(domain=[start.isoformat(), end.isoformat()])
        span = end - start
    else:
        scale = alt.Scale()
        span = frame.index.max() - frame.index.min() if len(frame.index) else pd.Timedelta(0)
    series = list(dict.fromkeys(long["series"]))
    if all(name in SERIES_COLOURS for name in series):
        colour_scale = alt.Scale(domain=series, range=[SERIES_COLOURS[name] for name in series])
    else:
        colour_scale = alt.Scale(scheme=scheme) if scheme else alt.Scale()
    encoding: dict[str, Any] = {
        "x": alt.X("at:T", title=None, scale=scale, axis=alt.Axis(format=time_format(span), labelOverlap=True)),
        "y": alt.Y(
            "value:Q", title=y_title, axis=axis, scale=alt.Scale(domainMin=0), stack="zero" if kind != "line" else None
        ),
        "color": alt.Color("series:N", title=None, scale=colour_scale, legend=alt.Legend(orient="bottom")),
        "tooltip": [alt.Tooltip("at:T", title="time", format="%H:%M:%S"), "series:N", "value:Q"],
    }
    if "end" in long:
        encoding["x2"] = "end:T"
    # The chart is described as a whole (its svg's label); its marks carry no ARIA roles of their own, which
    # axe-core refused as images without text (issue 29).
    chart = mark[kind].encode(**encoding).properties(description=f"{y_title} over time, by series")
    st.altair_chart(chart.configure_mark(aria=False), width="stretch")


def confirmed_stop(prefix: str, run_id: str, question: str, *, ask: bool = True) -> bool:
    """A Cancel button that asks once before stopping work in progress ("Stop" / "Keep"); True when the user
    has decided to stop. `ask=False` (a job still queued, with nothing done to lose) stops at the first click.
    Keys: `{prefix}.{run_id}` for Cancel, `{prefix}.yes.{run_id}` and `{prefix}.no.{run_id}` for the answer."""
    asking = f"{prefix}.asking.{run_id}"
    if not st.session_state.get(asking):
        if not st.button("Cancel", key=f"{prefix}.{run_id}", icon=":material/cancel:"):
            return False
        if not ask:
            return True
        st.session_state[asking] = True
    st.caption(question)
    yes, no = st.columns(2)
    stop = yes.button("Stop", key=f"{prefix}.yes.{run_id}", type="primary")
    if no.button("Keep", key=f"{prefix}.no.{run_id}"):
        st.session_state[asking] = False
        return False
    if not stop:
        return False
    st.session_state[asking] = False
    return True
