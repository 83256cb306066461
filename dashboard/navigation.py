"""The dashboard's pages, built in one place so that every page can switch to another by name."""

from __future__ import annotations

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
