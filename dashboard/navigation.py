"""The dashboard's pages, built in one place so that every page can switch to another by name."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import streamlit as st

# Not `pages/`: a folder of that name beside app.py switches Streamlit to its older multipage mode, which runs
# the pages without app.py (no sidebar) and ignores st.navigation.
PAGES_DIR = Path(__file__).resolve().parent / "app_pages"
PAGES = {
    "submit": ("submit.py", "Submit", ":material/add_circle:"),
    "live": ("live.py", "Live jobs", ":material/play_circle:"),
    "history": ("history.py", "History", ":material/video_library:"),
    "compare": ("compare.py", "Compare runs", ":material/compare:"),
    "health": ("health.py", "Endpoint health", ":material/monitor_heart:"),
}


def page(name: str) -> st.Page:
    """The page called `name` (submit, live, history, compare or health)."""
    file_name, title, icon = PAGES[name]
    return st.Page(PAGES_DIR / file_name, title=title, icon=icon, url_path=name, default=name == "submit")


def all_pages() -> list[st.Page]:
    """Every page, in the order the navigation shows them."""
    return [page(name) for name in PAGES]


def listening_widely(address: str | None) -> bool:
    """Whether server.address lets other machines connect: set, and not a loopback address.

    Unset means Streamlit's default (every interface) under a host that decides who reaches it (Community Cloud,
    a container); `studio run` always sets it, to 127.0.0.1 unless told otherwise.
    """
    if not address:
        return False
    try:
        return not ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address != "localhost"


def reach_notice(signed_in: bool) -> None:
    """Say in the sidebar who can open this dashboard when it listens beyond this machine (`--host`, or sign-in
    configured): the person at the keyboard sees no other sign of it, since their own address is local."""
    address = st.get_option("server.address")
    if not listening_widely(address):
        return
    port = st.get_option("server.port")
    where = "every network interface" if address in ("0.0.0.0", "::") else f"`{address}`"
    who = (
        "anyone who can reach this machine meets the sign-in page first"
        if signed_in
        else "anyone who can reach this machine can submit jobs on this endpoint's credit and see, download and "
        "delete every video: set up sign-in (docs/dashboard.md, Sign-in) or start it without `--host`"
    )
    st.sidebar.caption(f":material/lan: Listening on {where}, port {port}: {who}.")
