"""The sidebar: which endpoint is connected, its health at a glance, the connection form, and who is signed in."""

from __future__ import annotations

import sqlite3
import time

import streamlit as st

from catalog import CatalogError
from catalog.schema import explain
from dashboard import signin, state, tracker
from dashboard.config import describe_endpoint, forget_saved_connection, save_connection, saved_connection_path
from dashboard.health import HealthReading, sample
from dashboard.jobs import Board

GLANCE_EVERY_S = 10.0
GLANCE = "sidebar.health"
BOARD_EVERY_S = 2.0
"""How often the sidebar redraws its counts and looks for jobs that ended (tracker.board), on every page."""
PAGE = "sidebar.page"


def glance() -> HealthReading:
    """The endpoint's health, read (and kept as a sample) at most every GLANCE_EVERY_S seconds per session."""
    settings = state.settings()
    held = st.session_state.get(GLANCE)
    now = time.monotonic()
    if held is None or now - held[0] > GLANCE_EVERY_S or held[1] != settings.endpoint_id:
        reading = sample(state.client(), state.catalog(), settings.endpoint_id)
        held = (now, settings.endpoint_id, reading)
        st.session_state[GLANCE] = held
    return held[2]


def _health_line(reading: HealthReading, board: Board) -> None:
    """Workers from the endpoint's health; jobs from the board Live draws too, so the two always agree."""
    if not reading.ok:
        st.error(f"Unreachable: {reading.problem}", icon=":material/cloud_off:")
        return
    workers = reading.workers()
    ready = workers.get("idle", 0) + workers.get("running", 0)
    starting = workers.get("initializing", 0)
    plural = "s" if ready != 1 else ""
    line = f"{ready} worker{plural} up · {board.line()}"
    if ready:
        st.success(line, icon=":material/check_circle:")
    elif starting:
        st.warning(f"{line} · {starting} starting", icon=":material/hourglass_top:")
    else:
        st.warning(f"{line} (workers start on demand)", icon=":material/hourglass_top:")


@st.fragment(run_every=BOARD_EVERY_S)
def _health() -> None:
    """The health line, refreshed on its own: a page that refreshes only its own fragment (Live) would otherwise
    leave it showing the jobs that were running when the page was opened. Jobs that ended are announced here
    on every page but Live (which shows them as cards)."""
    try:
        board = tracker.board()
        _health_line(glance(), board)
    except CatalogError as error:  # a damaged catalogue: say so here, and let History say what to do
        st.error(str(error), icon=":material/database:")
        return
    except sqlite3.DatabaseError as error:  # damage found past the pages that opening reads
        st.error(str(explain(error, state.settings().catalog_file)), icon=":material/database:")
        return
    if st.session_state.get(PAGE) != "live":
        tracker.announce(tracker.take_notices())
    else:
        tracker.seen()


def _connection_form() -> None:
    settings = state.settings()
    with st.expander("Connection", icon=":material/settings_ethernet:"):
        with st.form("connection"):
            endpoint_id = st.text_input(
                "RunPod endpoint id", placeholder="leave empty for the local endpoint", key="connection.endpoint_id"
            )
            api_key = st.text_input("API key", type="password", key="connection.api_key")
            base_url = st.text_input(
                "Endpoint API base URL", placeholder="https://api.runpod.ai/v2", key="connection.base_url"
            )
            remember = st.checkbox(
                "Save on this machine",
                help=f"Writes {saved_connection_path(settings.data_dir)} (readable by you only). On a shared "
                "server everyone using this dashboard would then use these keys; leave it off there.",
                key="connection.remember",
            )
            if st.form_submit_button("Connect", type="primary"):
                typed = {
                    "RUNPOD_ENDPOINT_ID": endpoint_id.strip(),
                    "RUNPOD_API_KEY": api_key.strip(),
                    "RUNPOD_ENDPOINT_BASE_URL": base_url.strip(),
                }
                st.session_state[state.TYPED_CONNECTION] = typed
                if remember:
                    save_connection(saved_connection_path(settings.data_dir), typed)
                st.session_state.pop(GLANCE, None)
                st.rerun()
        if st.button("Use the defaults again", help="Forget typed and saved keys; back to env / secrets"):
            st.session_state.pop(state.TYPED_CONNECTION, None)
            forget_saved_connection(saved_connection_path(settings.data_dir))
            st.session_state.pop(GLANCE, None)
            st.rerun()


def render(visitor: signin.Visitor | None = None, page: str | None = None) -> None:
    """Draw the sidebar for the current session; who is signed in comes last, so the endpoint stays on top.
    `page` is the page being shown (its url path): a job that ends while it is not Live is announced."""
    st.session_state[PAGE] = page
    settings = state.settings()
    with st.sidebar:
        st.caption("Connected to")
        st.markdown(f"**{describe_endpoint(settings)}**")
        _health()
        _connection_form()
        if visitor is not None:
            signin.render_who(visitor)
