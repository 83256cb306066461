"""The History page over a catalogue of real runs: search, facets, pages, detail, curation, reuse, delete, sync."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.contract import JobStatus
from core.settings import Settings
from core.store import LocalStore
from dashboard import state, views
from dashboard.history import Query, download_name, search
from dashboard.views import THUMB_BOX, boxed
from tests.dashboard_support import APP, EXAMPLES, dashboard_env, example_job, open_page, real_run, texts
from tests.test_catalog_cli import damaged_files, filled_catalogue
from tests.test_catalog_hostile import HOSTILE
from tests.test_catalog_sync import metadata, publish

PAGES = APP.parent / "app_pages"
CARD_HEIGHT = 440


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with two real preview runs (videos, thumbnails, metadata in the store) and 30 queued ones."""
    data_dir = tmp_path_factory.mktemp("history")
    settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
    catalog = Catalog(settings.catalog_file)
    real_run(settings, catalog, "run-astronaut", example_job("An astronaut waves hello", sample_steps=8))
    real_run(settings, catalog, "run-pilot", example_job("A pilot explains the checklist", size="infinitetalk-720"))
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
    """The dashboard under test reads the module's catalogue; returns it for checks."""
    dashboard_env(monkeypatch, made)
    return Catalog(made / "catalog.db")


def _cards(at: AppTest) -> list[str]:
    return [b.key.removeprefix("history.open.") for b in at.button if b.key and b.key.startswith("history.open.")]


def _open(run_id: str) -> AppTest:
    at = open_page("history")
    at.text_input(key="history.text").set_value(run_id.removeprefix("run-")).run()
    at.button(key=f"history.open.{run_id}").click().run()
    assert at.query_params["run"] == run_id
    return at


def test_newest_runs_first_with_pages_of_24(history: Catalog) -> None:
    at = open_page("history")
    assert "32 runs" in texts(at)
    assert _cards(at)[:2] == ["run-pilot", "run-astronaut"]
    assert len(_cards(at)) == 24
    at.get("pagination")[0].set_value(2).run()
    assert len(_cards(at)) == 8
    assert _cards(at)[-1] == "queued-00"
    at.selectbox(key="history.sort").set_value("oldest").run()
    assert at.get("pagination")[0].value == 1, "a new search starts at its first page"
    assert _cards(at)[0] == "queued-00"


def test_a_word_of_the_prompt_finds_the_run(history: Catalog) -> None:
    at = open_page("history")
    at.text_input(key="history.text").set_value("checklist").run()
    assert _cards(at) == ["run-pilot"]
    assert "1 run" in texts(at)
    assert not at.get("pagination")


def test_filters_show_counts_and_narrow_the_grid(history: Catalog) -> None:
    at = open_page("history")
    status = at.multiselect(key="history.facet.status")
    assert status.options == [JobStatus.IN_QUEUE, JobStatus.COMPLETED]
    assert "In queue 30 · Completed 2" in texts(at), "the counts read in words"
    status.select(JobStatus.COMPLETED).run()
    assert sorted(_cards(at)) == ["run-astronaut", "run-pilot"]
    at.multiselect(key="history.facet.size").select("infinitetalk-720").run()
    assert _cards(at) == ["run-pilot"]
    assert at.multiselect(key="history.facet.engine").options == ["preview"]


def test_the_detail_shows_video_facts_timings_params_and_downloads(history: Catalog) -> None:
    at = _open("run-astronaut")
    (dialog,) = at.get("dialog")  # over the grid, in view wherever the card was (below the filters it was not)
    assert dialog.subheader[0].value == "An astronaut waves hello"
    assert dialog.get("video"), "the video plays from the store's bytes"
    facts = {m.label: m.value for m in at.metric}
    assert (facts["Video"], facts["Size"], facts["Engine"]) == ("1 s", "480p · 640×640", "preview")
    assert facts["Made in"].endswith(" s")
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download MP4", "Download metadata JSON", "Parameters as JSON"]
    params = at.dataframe[0].value
    assert {"parameter": "sample_steps", "value": "8"} in params.to_dict("records")
    assert at.get("vega_lite_chart"), "the per-stage timing chart is drawn"


def test_tags_favourite_and_note_are_saved_and_searchable(history: Catalog) -> None:
    at = _open("run-pilot")
    form = next(block for block in at.get("form") if block.proto.form.form_id == "history.curate")
    form.text_input[0].set_value("Demo, cockpit")
    form.checkbox[0].check()
    form.text_area[0].set_value("the good take")
    form.button[0].click().run()

    run = history.get("run-pilot")
    assert run is not None
    assert (run["tag_list"], run["favourite"], run["note"]) == (["Demo", "cockpit"], 1, "the good take")
    at.text_input(key="history.text").set_value("good take").run()
    assert _cards(at) == ["run-pilot"]
    at.text_input(key="history.text").set_value("").run()
    at.toggle(key="history.favourites").set_value(True).run()
    assert _cards(at) == ["run-pilot"]


def test_the_detail_closes_one_way_and_closing_drops_the_run_from_the_address(history: Catalog) -> None:
    """The dialog's × (Esc, a click beside it) is the one way to close it: a "Close" button beside the × was
    clutter (issue 29). Dismissing runs on_dismiss, which drops `?run=` (the browser walk presses Esc)."""
    at = _open("run-astronaut")
    (dialog,) = at.get("dialog")
    assert dialog.proto.dialog.dismissible
    assert not [button for button in dialog.button if button.proto.label == "Close"]


def test_reuse_opens_submit_prefilled(history: Catalog) -> None:
    at = _open("run-astronaut")
    at.button(key="history.reuse").click().run()
    assert at.title[0].value == "Submit a talking video"
    assert at.text_area(key="submit.prompt").value == "An astronaut waves hello"
    assert at.number_input(key="submit.param.sample_steps").value == 8
    assert "portrait\\.jpg** · from the earlier run" in texts(at), "the file by its name, not a server path"
    assert state.REUSE_PARAMS not in at.session_state


def test_delete_removes_the_run_and_its_files_and_sync_finds_what_the_bucket_still_holds(history: Catalog) -> None:
    data_dir = history.path.parent
    run = history.get("queued-29")
    assert run is not None
    at = _open("run-astronaut")
    video = data_dir / "artifacts" / history.get("run-astronaut")["video_key"]  # type: ignore[index]
    assert video.is_file()
    at.button(key="history.delete").click().run()
    assert history.get("run-astronaut") is None
    assert not video.exists()
    assert "run" not in at.query_params

    history.delete("run-pilot")  # forgotten by the catalogue, still in the store
    at.button(key="history.sync").click().run()
    found = history.get("run-pilot")
    assert found is not None and found["status"] == JobStatus.COMPLETED
    assert found["source"] == "sync"


def test_a_batch_is_listed_as_its_videos_and_opens_as_their_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, input_roots=(EXAMPLES,))
    catalog = Catalog(settings.catalog_file)
    batch = {"batch": [example_job("First line of the batch"), example_job("Second line of the batch")]}
    real_run(settings, catalog, "batch-7", batch)
    dashboard_env(monkeypatch, tmp_path)

    at = open_page("history")
    assert "2 runs" in texts(at), "each video once; the batch itself is not a third run"
    item = next(card for card in _cards(at) if card.startswith("batch-7:"))
    at.button(key=f"history.open.{item}").click().run()
    at.button(key="history.batch").click().run()

    assert at.query_params["run"] == "batch-7"
    assert "A batch of **2** jobs" in texts(at)
    opened = [b.key for b in at.button if b.key and b.key.startswith("history.batch-open.")]
    assert len(opened) == 2
    at.button(key=opened[1]).click().run()
    assert at.query_params["run"] == opened[1].removeprefix("history.batch-open.")
    assert not at.exception


def test_a_prompt_is_shown_as_text_never_as_markdown(history: Catalog, made: Path) -> None:
    """An image in a prompt would make every viewer's browser fetch it; a link could pose as Download."""
    hostile = "![pixel](http://attacker.example/p.png) [Download](http://evil.example/x.mp4) :red[**loud**]"
    history.record_submission(
        "run-hostile", example_job(hostile), endpoint_id="local", created_at="2030-01-01T00:00:00Z"
    )
    at = open_page("history")
    card = next(m.value for m in at.markdown if "pixel" in m.value)
    assert card == views.plain(hostile[:69].rstrip() + "…")
    assert "![" not in card and "](" not in card and ":red[" not in card
    at.button(key="history.open.run-hostile").click().run()
    assert at.subheader[0].value == views.plain(hostile)
    history.delete("run-hostile")


def test_cards_are_one_height_whatever_the_thumbnail_shape(history: Catalog) -> None:
    """A portrait beside a landscape run made rows of uneven cards: each thumbnail is letterboxed into one box."""
    from PIL import Image

    shapes = []
    for size in [(90, 160), (640, 360), (500, 500)]:
        out = io.BytesIO()
        Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
        with Image.open(io.BytesIO(boxed(out.getvalue()))) as thumb:
            shapes.append(thumb.size)
    assert shapes == [THUMB_BOX] * 3
    at = open_page("history")
    cards = [block for block in at.get("flex_container") if block.proto.flex_container.border]
    assert len(cards) >= 24, "one bordered box per card on the first page"
    assert {card.proto.height_config.pixel_height for card in cards} == {CARD_HEIGHT}


def test_plain_escapes_every_markdown_mark_and_keeps_the_words() -> None:
    assert views.plain("a_b *c* `d` #e $f$ <g> 1. x") == r"a\_b \*c\* \`d\` \#e \$f\$ \<g\> 1\. x"
    assert views.plain(None) == ""


def test_sync_skips_hostile_files_with_their_reasons_and_the_page_shows_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path, input_roots=(EXAMPLES,))
    store = LocalStore(settings.artifact_dir)
    publish(store, metadata("good-run"))
    for name in ("duration-string", "total-ms-1e30", "deep-params"):
        content, _ = HOSTILE[name]
        store.put_bytes(f"jobs/{name}/metadata.json", content(name))
    dashboard_env(monkeypatch, tmp_path)

    at = open_page("history")
    at.button(key="history.sync").click().run()

    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value.replace("\\", "") for w in at.warning]  # shown as text: Markdown marks escaped
    assert any("duration-string" in w and "outputs.video.duration_s" in w for w in warnings), warnings
    assert any("total-ms-1e30" in w and "timings.total_ms" in w for w in warnings), warnings
    assert _cards(at) == ["good-run"]
    at.button(key="history.open.good-run").click().run()
    assert not at.exception and at.subheader[0].value == views.plain(metadata("good-run").prompt)


@pytest.mark.parametrize("damage", ["garbage", "torn header", "cut in half"])
def test_a_damaged_catalogue_is_one_line_on_the_page_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """The History page alone: the sidebar opens the catalogue too, before any page, and is not this page's."""
    dashboard_env(monkeypatch, tmp_path)
    (tmp_path / "catalog.db").write_bytes(damaged_files(filled_catalogue(tmp_path / "good.db"))[damage])

    at = AppTest.from_file(str(PAGES / "history.py"), default_timeout=90).run()

    assert not at.exception, [e.value for e in at.exception]
    [banner] = [e.value for e in at.error]
    assert banner.startswith(f"the catalogue {tmp_path / 'catalog.db'} is damaged") and "move it aside" in banner
    assert "\n" not in banner

    (tmp_path / "catalog.db").rename(tmp_path / "catalog.db.broken")
    at.run()
    assert not at.exception and not at.error, "once it is moved aside the page works again"


def test_a_damaged_catalogue_leaves_the_whole_app_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidebar opens the catalogue before any page: it says so in one line, and History names the fix."""
    dashboard_env(monkeypatch, tmp_path)
    (tmp_path / "catalog.db").write_bytes(damaged_files(filled_catalogue(tmp_path / "good.db"))["garbage"])
    at = open_page("history")
    banners = [e.value for e in at.error]
    assert banners and all(b.startswith(f"the catalogue {tmp_path / 'catalog.db'} is damaged") for b in banners)
    assert at.title[0].value == "History"


def test_mine_narrows_history_to_the_runs_the_signed_in_user_submitted(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.record_submission("ann-1", {"prompt": "ann's"}, endpoint_id="local", submitted_by="ann@example.com")
    catalog.record_submission("bob-1", {"prompt": "bob's"}, endpoint_id="local", submitted_by="bob@example.com")
    catalog.record_submission("script-1", {"prompt": "a script's"}, endpoint_id="local")

    mine = search(catalog, Query(submitted_by="ann@example.com"))
    assert [row["run_id"] for row in mine.rows] == ["ann-1"]
    assert search(catalog, Query()).total == 3, "everyone's, the default"
    assert Query(submitted_by="ann@example.com").signature() != Query().signature(), "a new search starts at page 1"


@pytest.mark.parametrize(
    ("facet", "value"), [("status", JobStatus.COMPLETED), ("size", "infinitetalk-480"), ("engine", "preview")]
)
def test_a_filter_holds_through_one_search_after_another(history: Catalog, facet: str, value: str) -> None:
    """Filter, search a word, search another, clear: each answer is the catalogue's (it stuck at 0 runs)."""
    at = open_page("history")
    at.multiselect(key=f"history.facet.{facet}").select(value).run()
    for word in ("astronaut", "checklist", ""):
        at.text_input(key="history.text").set_value(word).run()
        answer = [row["run_id"] for row in history.search(word, **{facet: [value]}).rows][:24]
        assert _cards(at) == answer, f"after searching {word!r}"
        assert at.multiselect(key=f"history.facet.{facet}").value == [value], (word, answer)


def test_downloads_are_named_from_the_prompt_and_the_date() -> None:
    """A folder of downloads reads as what they are, not as UUIDs."""
    run = {"run_id": "3f9c…", "prompt": "An astronaut waves hello!", "created_at": "2026-11-30T10:00:00Z"}
    assert download_name(run, "video", "mp4") == "2026-11-30-an-astronaut-waves-hello-video.mp4"
    assert download_name(run, "metadata", "json") == "2026-11-30-an-astronaut-waves-hello-metadata.json"
    assert download_name({"run_id": "job:item 1", "prompt": "  !!  "}, "params", "json") == "job_item_1-params.json"
