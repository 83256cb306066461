"""InfiniteTalk Studio's dashboard: `streamlit run dashboard/app.py`.

Opens against the local endpoint by default; RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY (environment or st.secrets,
or typed into the sidebar) switch it to a RunPod endpoint.
"""

import sys
from pathlib import Path

# Streamlit puts this file's folder on sys.path, not the repository root that holds the dashboard package.
ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from dashboard import navigation, sidebar  # noqa: E402

st.set_page_config(page_title="InfiniteTalk Studio", page_icon=":material/record_voice_over:", layout="wide")
current = st.navigation(navigation.all_pages())
sidebar.render()
current.run()
