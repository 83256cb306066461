"""The Live card's player for a streaming job's video so far.

While a streaming job renders, its progress payloads carry `partial_video` (worker/partial.py): an MP4 of the
clips finished so far, with their sound. The card plays the newest one, so framing and lip-sync can be judged
minutes before the end; as each later partial arrives, the player is given the longer video.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.contract import JobError
from core.store import Store


def latest(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest partial video named by a run's progress events (oldest first), if any."""
    for event in reversed(events):
        partial = event.get("partial_video")
        if isinstance(partial, dict) and partial.get("key"):
            return partial
    return None


def _media(store: Store, partial: dict[str, Any]) -> str | bytes:
    """What the browser can play: the URL when it is a web one (S3, the endpoint's file server), else the
    bytes from the dashboard's store (a browser cannot open file:// URLs from a web page)."""
    url = str(partial.get("url") or "")
    if url.startswith(("http://", "https://")):
        return url
    return store.get(str(partial["key"]))


def show(store: Store, events: list[dict[str, Any]]) -> None:
    """Play the run's newest partial video under a line saying how much of the job it holds."""
    partial = latest(events)
    if partial is None:
        return
    done, total = partial.get("clips_done"), partial.get("clips_total")
    seconds = float(partial.get("duration_s") or 0.0)
    st.caption(f"So far: {seconds:.1f} s, clip {done} of {total} finished · the rest is still rendering")
    try:
        st.video(_media(store, partial))
    except JobError:
        st.caption("A newer part is being published; it plays on the next refresh.")
