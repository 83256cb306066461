"""History facing the bucket's hostile files (issue 27): the "Sync from bucket" warnings quote file names and
values anyone who can write to the bucket chose, so they are shown as text, never Markdown; and a curation change
the bucket cannot hold is one line on the page, not an uncaught ValidationError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.settings import Settings
from core.store import LocalStore, open_store
from dashboard.history import skipped_lines
from tests.dashboard_support import dashboard_env, open_page
from tests.test_catalog_sync import metadata, publish

BEACON = "![x](http://169.254.169.254/beacon.png)"
BREAKOUT = f"a`{BEACON}`b"
"""A folder name that closes the code span the warning once put the key in, then shows an image."""


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Catalog, LocalStore]:
    dashboard_env(monkeypatch, tmp_path)
    settings = Settings.from_env()
    store = open_store(settings)
    assert isinstance(store, LocalStore)
    return Catalog(settings.catalog_file), store


def test_skipped_files_are_lines_of_plain_text() -> None:
    lines = skipped_lines([(f"jobs/{BREAKOUT}/metadata.json", f"job_id: {BEACON}")] * 7)
    assert len(lines) == 6 and lines[-1].startswith("… and 2 more")
    assert "![" not in lines[0] and "](" not in lines[0] and "\\`" in lines[0], lines[0]


def test_the_sync_buttons_warnings_show_hostile_names_as_text(history: tuple[Catalog, LocalStore]) -> None:
    _, store = history
    folder = store.root / "jobs" / BREAKOUT
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"schema_version": 1, "job_id": BEACON}))
    at = open_page("history")
    at.button(key="history.sync").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [warning] = [w.value for w in at.warning if "Skipped" in w.value]
    assert "![" not in warning and "](" not in warning and "\\`" in warning, warning


def _detail(run_id: str) -> AppTest:
    at = open_page("history")
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_saving_a_note_over_the_limit_is_one_line_and_changes_nothing(history: tuple[Catalog, LocalStore]) -> None:
    catalog, store = history
    publish(store, metadata("note-run"))
    at = open_page("history")
    at.button(key="history.sync").click().run()
    at = _detail("note-run")
    form = next(block for block in at.get("form") if block.proto.form.form_id == "history.curate")
    form.text_area[0].set_value("n" * 25_000)
    form.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value.replace("\\", "") for e in at.error if "20000" in e.value]  # Markdown escapes off
    assert len(errors) == 1, [e.value for e in at.error]
    assert "note: at most 20000 characters" in errors[0] and "\n" not in errors[0], errors
    assert catalog.get("note-run")["note"] is None
    assert not store.exists("jobs/note-run/curation.json")
