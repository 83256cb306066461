"""InfiniteTalk Studio's dashboard: `streamlit run dashboard/app.py`.

Opens against the local endpoint by default; RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY (environment or st.secrets,
or typed into the sidebar) switch it to a RunPod endpoint. With sign-in configured (an [auth] section or a
shared password, see dashboard/signin.py) nothing below the gate runs for a visitor who is not let in.
"""

import sys
from pathlib import Path

# Streamlit puts this file's folder on sys.path, not the repository root that holds the dashboard package.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from dashboard import navigation, sidebar, signin  # noqa: E402

# The favicon is a file served by this app: a `:material/…:` page icon makes the browser fetch its SVG from
# fonts.gstatic.com, an error on every page load offline or behind a strict firewall (issue 16).
FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
# Keeps the keyboard focus where it was when Streamlit redraws the focused widget: choosing a file, or Record
# turning into Stop, replaced the focused button, so the focus fell to the page's top and a second Enter could not
# stop the recording (issue 29). The script runs in the page itself (a <script> added to its head, once): on each
# focus it notes the widget's keyed container (Streamlit's `st-key-…` class) and the position among its focusable
# parts; when that element leaves the page and the focus has fallen to the body, the same place in the redrawn
# widget gets it back. A click elsewhere keeps its own focus: only a removed element is followed.
FOCUS_KEEPER = Path(__file__).resolve().parent / "assets" / "focus_keeper.js"
st.set_page_config(page_title="InfiniteTalk Studio", page_icon=str(FAVICON), layout="wide")
visitor = signin.gate(navigation.all_pages())
if visitor.admitted:
    current = st.navigation(navigation.all_pages())
    sidebar.render(visitor, current.url_path)
    signin.warn_if_open(visitor)
    current.run()
    # Our own script from the repository, no user text.
    st.html(f"<script>{FOCUS_KEEPER.read_text()}</script>", unsafe_allow_javascript=True)
