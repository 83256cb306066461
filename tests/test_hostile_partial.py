"""A hostile `partial_video` in a job's IN_PROGRESS output (issue 27, item 11).

The endpoint's answer is outside input: a compromised or hostile endpoint can put anything in the progress payload
the Live card plays. The card reads it with the contract's model (the one the worker writes it with), shows its
text as text, and plays only the key through the dashboard's own store, never the payload's URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from client.api import JobState
from core.contract import JobStatus, PartialVideoInfo
from core.settings import Settings
from core.store import LocalStore, open_store
from dashboard import partial_view, state
from dashboard.jobs import record_state
from tests.dashboard_support import dashboard_env, open_page, texts

MEDIA = Path(__file__).resolve().parents[1] / "examples" / "media"
GOOD = {
    "url": "http://127.0.0.1:8000/files/jobs/job-p/partial-002.mp4",
    "key": "jobs/job-p/partial-002.mp4",
    "duration_s": 3.2,
    "clips_done": 2,
    "clips_total": 5,
    "bytes": 1000,
}
HOSTILE: dict[str, dict[str, Any]] = {
    "duration not a number": {**GOOD, "duration_s": "a long time"},
    "duration infinite": {**GOOD, "duration_s": float("inf")},
    "duration a bool": {**GOOD, "duration_s": True},
    "clips as Markdown": {**GOOD, "clips_done": "![x](http://169.254.169.254/beacon.png) [Download](http://evil/)"},
    "clips beyond the total": {**GOOD, "clips_done": 9},
    "key climbing out": {**GOOD, "key": "jobs/job-p/../../etc/partial-002.mp4"},
    "key another run's": {**GOOD, "key": "jobs/other-job/partial-002.mp4"},
    "key not a partial": {**GOOD, "key": "jobs/job-p/video.mp4"},
    "not an object": "http://169.254.169.254/latest/meta-data",  # type: ignore[dict-item]
    "key missing": {k: v for k, v in GOOD.items() if k != "key"},
}


def payload(partial: Any) -> dict[str, Any]:
    return {"stage": "generation", "pct": 40.0, "job_id": "job-p", "details": {}, "partial_video": partial}


def test_the_worker_and_the_dashboard_share_one_model() -> None:
    assert PartialVideoInfo.model_validate(GOOD).model_dump() == GOOD
    with pytest.raises(ValidationError):
        PartialVideoInfo.model_validate(HOSTILE["duration not a number"])


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_partial_payload_is_a_reason_never_an_exception(case: str) -> None:
    found = partial_view.find([payload(HOSTILE[case])], "jobs/job-p")
    assert isinstance(found, str) and "\n" not in found, found
    assert partial_view.latest([payload(HOSTILE[case])], "jobs/job-p") is None


def test_a_good_payload_plays_through_the_dashboards_own_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, base_url="http://127.0.0.1:9/files")
    found = partial_view.find([payload({**GOOD, "url": "http://169.254.169.254/latest/meta-data"})], "jobs/job-p")
    assert isinstance(found, PartialVideoInfo)
    assert partial_view.media(store, found.key) == "http://127.0.0.1:9/files/jobs/job-p/partial-002.mp4"
    (tmp_path / "jobs" / "job-p").mkdir(parents=True)
    (tmp_path / "jobs" / "job-p" / "partial-002.mp4").write_bytes(b"video bytes")
    assert partial_view.media(LocalStore(tmp_path), found.key) == b"video bytes", "no web URL: the bytes"


def live_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: Any) -> tuple[AppTest, Catalog]:
    """The Live page of a dashboard whose one running job last answered with `partial` as its partial video."""
    dashboard_env(monkeypatch, tmp_path)
    settings = Settings.from_env()
    catalog = Catalog(settings.catalog_file)
    catalog.record_submission("job-p", {"prompt": "a running job"}, endpoint_id=settings.endpoint_id)
    answer = JobState.from_response({"id": "job-p", "status": JobStatus.IN_PROGRESS, "output": payload(partial)})
    record_state(catalog, "job-p", answer)
    at = open_page()
    at.session_state[state.SUBMITTED] = ["job-p"]
    at.switch_page("app_pages/live.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at, catalog


@pytest.mark.parametrize("case", ["duration not a number", "clips as Markdown"])
def test_the_live_page_shows_a_hostile_partial_as_one_plain_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    at, _ = live_page(tmp_path, monkeypatch, HOSTILE[case])
    assert "a running job" in texts(at), "the rest of the page is drawn"
    assert not at.get("video")
    [line] = [c.value for c in at.caption if "video so far cannot be shown" in c.value]
    assert "![" not in line and "](" not in line, "no Markdown image or link survives"


def test_the_live_page_never_plays_the_payloads_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(Settings(data_dir=tmp_path))
    store.put_bytes("jobs/job-p/partial-002.mp4", (MEDIA / "clip.mp4").read_bytes())
    at, _ = live_page(tmp_path, monkeypatch, {**GOOD, "url": "http://169.254.169.254/latest/meta-data"})
    [video] = at.get("video")
    assert "169.254" not in str(video.proto), "the link-local URL never reaches the viewer's browser"
    assert any(c.value.startswith("So far: 3.2 s, clip 2 of 5 finished") for c in at.caption), texts(at)
