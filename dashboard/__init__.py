"""The Streamlit dashboard: Submit, Live jobs, History and Endpoint health, over the client and the catalogue.

Nothing here imports torch, transformers or xformers: Streamlit Community Cloud installs only requirements.txt.
"""
