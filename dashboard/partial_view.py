"""The Live card's player for a streaming job's video so far.

While a streaming job renders, its progress payloads carry `partial_video` (worker/partial.py): an MP4 of the
clips finished so far, with their sound. The card plays the newest one, so framing and lip-sync can be judged
minutes before the end; as each later partial arrives, the player is given the longer video.

The payload comes from the endpoint, which may be compromised or hostile, so it is read with the contract's own
model (core.contract.PartialVideoInfo, the one the worker writes it with): a field of the wrong type is one line
on the card, never a broken page. Its numbers are shown as numbers and nothing of it as Markdown, and its `url`
is never played: the player gets the key through the dashboard's own store (a presigned URL of the configured
bucket, the local file server's URL, or the bytes), and only a key inside the run's own folder, so a payload
cannot make every viewer's browser fetch a link-local or any other address.
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st
from pydantic import ValidationError

from catalog import Catalog, bucket
from catalog.documents import validation_reason
from core.contract import JobError, PartialVideoInfo
from core.store import Store
from dashboard import views

log = logging.getLogger("studio.dashboard.partial")


def find(events: list[dict[str, Any]], folder: str | None = None) -> PartialVideoInfo | str | None:
    """The newest partial video named by a run's progress events (oldest first) as the contract's model, the
    reason it cannot be used (not the model; not in the run's `folder` when one is given), or None when no event
    names one."""
    for event in reversed(events):
        raw = event.get("partial_video")
        if raw is None:
            continue
        try:
            partial = PartialVideoInfo.model_validate(raw)
        except ValidationError as error:
            return validation_reason(error, "partial video")
        if folder is not None and not partial.key.startswith(folder + "/"):
            return f"its key {partial.key[:80]!r} is not in this job's folder {folder}/"
        return partial
    return None


def latest(events: list[dict[str, Any]], folder: str | None = None) -> dict[str, Any] | None:
    """The newest usable partial video (see find) as a dict of its checked fields, or None."""
    found = find(events, folder)
    if isinstance(found, str):
        log.warning("partial video refused: %s", found)
        return None
    return found.model_dump() if found is not None else None


def media(store: Store, key: str) -> str | bytes:
    """What the browser can play for a key of the dashboard's own store: the store's web URL (a presigned S3 one,
    or the local endpoint's file server), else the bytes (a browser cannot open file:// URLs from a web page)."""
    url = store.url(key)
    if url.startswith(("http://", "https://")):
        return url
    return store.get(key)


VIDEO_WIDTH = 480
"""How wide the video so far is drawn on a Live card, in pixels."""


def show(store: Store, catalog: Catalog, run_id: str) -> None:
    """Play the run's newest partial video under a line saying how much of the job it holds; a payload that is
    not one (see find) is a line saying so, as text."""
    run = catalog.get(run_id)
    if run is None:
        return
    found = find(catalog.progress_events(run_id, limit=1), bucket.run_folder(run))
    if found is None:
        return
    if isinstance(found, str):
        st.caption(views.plain(f"The endpoint's video so far cannot be shown: {found}"))
        return
    st.caption(
        f"So far: {found.duration_s:.1f} s, clip {found.clips_done} of {found.clips_total} finished · "
        "the rest is still rendering"
    )
    try:
        # Not the card's full width: a growing video that wide pushed the progress bar below the fold (issue 29).
        st.video(media(store, found.key), width=VIDEO_WIDTH)
    except JobError:
        st.caption("A newer part is being published; it plays on the next refresh.")
