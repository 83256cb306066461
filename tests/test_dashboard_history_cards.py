"""History's cards, tags, delete with Undo, paging and words, as a new user met them (issue 29)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.contract import ErrorCode, JobStatus
from core.settings import Settings
from dashboard.compare import PICKED, differing_params
from dashboard.history import card_line, download_name, size_words
from tests.dashboard_support import EXAMPLES, dashboard_env, example_job, open_page, real_run, texts

LONG_PROMPT = (
    "A pilot in an orange flight suit explains the pre-flight checklist to the camera, then smiles and waves "
    "goodbye at the very end"
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real preview run, a failed run, and 30 queued ones (two pages of cards)."""
    data_dir = tmp_path_factory.mktemp("history-cards")
    settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
    catalog = Catalog(settings.catalog_file)
    real_run(settings, catalog, "run-wave", example_job("An astronaut waves hello", sample_steps=8))
    catalog.record_submission("run-broken", example_job("A run that broke"), endpoint_id="local")
    catalog.attach_result(
        "run-broken",
        {"status": "error", "error": {"code": ErrorCode.OOM, "message": "CUDA out of memory", "stage": "generation"}},
    )
    for index in range(30):
        catalog.record_submission(
            f"queued-{index:02d}",
            example_job(f"waiting job number {index}"),
            endpoint_id="local",
            created_at=f"2020-01-01T00:00:{index:02d}Z",
        )
    return data_dir


@pytest.fixture
def history(made: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    dashboard_env(monkeypatch, made)
    return Catalog(made / "catalog.db")


def _find(at: AppTest, text: str) -> AppTest:
    at.text_input(key="history.text").set_value(text).run()
    return at


def test_a_preview_card_says_so_and_shows_its_tags_as_written_and_its_size_one_way(history: Catalog) -> None:
    history.set_tags("run-wave", ["Demo Reel", "best"])
    at = _find(open_page("history"), "astronaut")
    said = texts(at)
    assert ":violet-badge[:material/science: Preview engine]" in said, "the metadata's engine: preview"
    assert "Demo Reel · best" in said, "tags on the card, in the user's case"
    run = history.get("run-wave")
    assert run is not None
    assert size_words(run) == "480p · 640×640" and "480p · 640×640" in card_line(run)
    assert "infinitetalk-480" not in said
    at.text_input(key="history.text").set_value("").run()
    at.text_input(key="history.tag").set_value("demo").run()
    assert [b.key for b in at.button if (b.key or "").startswith("history.open.")] == ["history.open.run-wave"]


def test_a_failed_card_says_why_it_has_no_picture_and_no_unknown_parts(history: Catalog) -> None:
    at = _find(open_page("history"), "broke")
    run = history.get("run-broken")
    assert run is not None and run["status"] == JobStatus.FAILED
    line = card_line(run)
    assert "?" not in line and "· ·" not in line and not line.endswith("· "), line
    assert any(caption.value.startswith("No video: ") for caption in at.caption), [c.value for c in at.caption]


def test_the_detail_badges_a_preview_and_its_cost_tile_is_not_cut(history: Catalog) -> None:
    at = _find(open_page("history"), "astronaut")
    at.button(key="history.open.run-wave").click().run()
    (dialog,) = at.get("dialog")
    assert any("Preview engine" in markdown.value for markdown in dialog.markdown)
    facts = {metric.label: metric.value for metric in at.metric}
    assert facts["Cost"] == "$0", "the tile holds the sum alone; the badge says preview"


def test_delete_says_what_it_deleted_and_undo_brings_the_run_and_its_files_back(history: Catalog) -> None:
    run = history.get("run-wave")
    assert run is not None and run["video_key"]
    store_root = history.path.parent / "artifacts"
    video = store_root / run["video_key"]
    assert video.exists()
    at = _find(open_page("history"), "astronaut")
    at.button(key="history.open.run-wave").click().run()
    at.button(key="history.delete").click().run()
    assert history.get("run-wave") is None and not video.exists()
    assert "Deleted **An astronaut waves hello** and its files." in texts(at)
    at.button(key="history.undo").click().run()
    back = history.get("run-wave")
    assert back is not None and video.exists(), "the row and the video are back"
    assert back["video_key"] == run["video_key"] and back["status"] == JobStatus.COMPLETED
    assert "Deleted **" not in texts(at)


def test_another_page_of_runs_scrolls_to_the_top(history: Catalog) -> None:
    at = open_page("history")
    assert not at.get("iframe"), "nothing scrolls on the first drawing"
    (pages,) = [element for element in at.get("pagination")] or [None]
    assert pages is not None
    pages.set_value(2).run()
    assert any("scrollTo" in str(frame.proto) for frame in at.get("iframe")), "the new page starts at its top"
    at.run()
    assert not at.get("iframe"), "and only once"


def test_an_empty_history_points_to_submit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard_env(monkeypatch, tmp_path)
    at = open_page("history")
    assert any("make your first video on the Submit page" in info.value for info in at.info)
    assert [link.proto.label for link in at.get("page_link")] == ["Go to Submit"]
    at.text_input(key="history.text").set_value("nothing like this").run()
    assert any("No runs match" in info.value for info in at.info)


def test_a_download_name_keeps_the_whole_prompt_within_a_file_managers_width() -> None:
    run = {"run_id": "r", "prompt": LONG_PROMPT, "created_at": "2026-11-30T10:00:00Z"}
    name = download_name(run, "video", "mp4")
    assert name.endswith("-at-the-very-end-video.mp4"), name
    huge = download_name({**run, "prompt": LONG_PROMPT * 3}, "video", "mp4")
    stem = huge.removeprefix("2026-11-30-").removesuffix("-video.mp4")
    assert len(stem) <= 150 and not stem.endswith("-") and LONG_PROMPT.lower().split()[-1] not in stem[-3:]


def test_a_third_tick_for_compare_is_refused_with_the_reason_not_dropped_silently(history: Catalog) -> None:
    at = open_page("history")
    for run_id in ("run-wave", "run-broken"):
        at.checkbox(key=f"history.open.compare.{run_id}").check().run()
    assert at.session_state[PICKED] == ["run-wave", "run-broken"]
    third = at.checkbox(key="history.open.compare.queued-29")
    assert third.disabled and "untick one" in third.help
    assert "2 runs ticked, as many as Compare shows: untick one to pick another." in texts(at)
    toggle_outside_the_page = at.session_state[PICKED]
    assert toggle_outside_the_page == ["run-wave", "run-broken"], "the first tick is still there"
    at.checkbox(key="history.open.compare.run-wave").uncheck().run()
    assert not at.checkbox(key="history.open.compare.queued-29").disabled


def test_compares_differences_read_as_the_forms_labels_file_names_and_one_empty_mark() -> None:
    a = {"params": {"cond_video": "/srv/studio/artifacts/uploads/ab12/portrait.jpg", "base_seed": None}}
    b = {
        "params": {
            "cond_video": "https://bucket.example/uploads/cd34/face.png?X-Amz-Signature=1",
            "sample_shift": 3.0,
        }
    }
    rows = {row["setting"]: (row["A"], row["B"]) for row in differing_params(a, b)}
    assert rows == {"Portrait": ("portrait.jpg", "face.png"), "Sample shift": ("—", "3.0")}, rows
