"""A new user's first hour on Submit (issue 29): it says it is the preview engine, offers the example, reads well
from the keyboard, and its messages say what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.contract import JobError, parse_job_input
from dashboard import state
from dashboard.forms import ADVANCED_PARAMS, BASIC_PARAMS
from dashboard.media import Media, inspect
from dashboard.presets import PRESETS
from dashboard.words import in_words
from tests.dashboard_support import MEDIA, dashboard_env, local_endpoint, open_page, texts
from tests.media_tools import AUDIO_SAMPLE_RATE, wav_bytes

PAGES = ("submit", "live", "history", "compare", "health")


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One real local endpoint (preview engine) for this module's submissions."""
    with local_endpoint(tmp_path_factory.mktemp("first-hour")) as env:
        yield env


@pytest.fixture
def data_dir(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    return Path(endpoint_env["STUDIO_DATA_DIR"])


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dashboard with an empty catalogue (its endpoint is not running: nothing here submits)."""
    dashboard_env(monkeypatch, tmp_path)
    return tmp_path


def _walk(node: Any) -> Iterator[Any]:
    """Every element of the page, in the order the browser lays them out (and Tab visits them)."""
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for key in sorted(children):
            yield from _walk(children[key])


def test_first_open_says_it_is_the_preview_engine_and_gives_three_steps(empty_dir: Path) -> None:
    at = open_page("submit")
    said = texts(at)
    assert "**Welcome to InfiniteTalk Studio**" in said
    assert "runs the **preview engine**, not InfiniteTalk" in said
    steps = ("1. Add a **portrait**", "2. Add the **speech**", "3. Press **Submit**")
    assert all(step in said for step in steps), "a three-step start"
    at.button(key="submit.welcome_hide").click().run()
    assert "**Welcome to InfiniteTalk Studio**" not in texts(at)
    assert any("preview engine" in caption.value for caption in at.caption), "still named in one line once hidden"


def test_try_the_example_fills_the_form_and_it_submits_a_preview(data_dir: Path) -> None:
    at = open_page("submit")
    if not any(button.key == "submit.example" for button in at.button):
        at.session_state["submit.welcome_hidden"] = False
    catalog = Catalog(data_dir / "catalog.db")
    if catalog.search("", per_page=1).total:
        pytest.skip("the banner is for an empty catalogue; the module's endpoint has runs from an earlier test")
    at.button(key="submit.example").click().run()
    said = texts(at)
    assert "portrait\\.jpg** · the example photo" in said and "speech\\_1\\.wav** · the example speech" in said
    assert any("Speech: **8.3 s**" in info.value for info in at.info), "the example speech is measured as an upload"
    assert at.text_area(key="submit.prompt").value
    assert not any(widget.key == "submit.cond_url" for widget in at.text_input), "no server path in a text box"
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Live jobs", [error.value for error in at.error]
    run = catalog.get(at.session_state[state.SUBMITTED][-1])
    assert run is not None and Path(run["params"]["cond_video"]).name == "portrait.jpg"


@pytest.mark.parametrize("page", PAGES)
def test_no_heading_is_a_tab_stop(empty_dir: Path, page: str) -> None:
    """Each heading's anchor link was a Tab stop: 34 presses from the top to Submit (issue 29)."""
    at = open_page(page)
    headings = [*at.title, *at.header, *at.subheader]
    assert headings
    linked = [heading.value for heading in headings if not heading.proto.hide_anchor]
    assert not linked, linked


def test_the_parameter_grid_is_laid_out_row_by_row(empty_dir: Path) -> None:
    """Tab follows the page's order: one set of three columns filled down put Size, Seed, … before Mode."""
    at = open_page("submit")
    order = [
        element.key.removeprefix("submit.param.")
        for element in _walk(at.main)
        if str(getattr(element, "key", None) or "").startswith("submit.param.")
    ]
    assert order == list(BASIC_PARAMS) + list(ADVANCED_PARAMS)


def test_no_preset_is_called_a_preview_and_each_says_its_steps() -> None:
    """ "Fast preview" meant 8 sampling steps of InfiniteTalk, not the preview engine (issue 29)."""
    for preset in PRESETS.values():
        assert "preview" not in preset.name.lower()
        assert f"{preset.params()['sample_steps']} " in preset.summary or f"{preset.params()['sample_steps']}-" in (
            preset.name + preset.summary
        )


def test_an_empty_prompt_says_what_to_write(empty_dir: Path) -> None:
    at = open_page("submit")
    at.button(key="submit.go").click().run()
    errors = [error.value for error in at.error]
    assert any(text.startswith("Prompt is empty: describe the scene in a few words") for text in errors), errors
    assert sum("speech" in text.lower() for text in errors if "person 1" in text) == 1, "said once, not twice"


def test_speech_given_twice_or_not_at_all_says_which_and_what_to_do() -> None:
    base = {"prompt": "x", "cond_video": "https://example.com/a.jpg"}
    with pytest.raises(JobError) as neither:
        parse_job_input(base)
    assert in_words(neither.value.message) == (
        "Speech: no speech given: send recorded speech in Speech, or text to speak in Text to speech"
    )
    with pytest.raises(JobError) as both:
        parse_job_input({**base, "cond_audio": {"person1": "https://example.com/a.wav"}, "tts_audio": {"text": "hi"}})
    assert "both given: keep one and remove the other" in both.value.message
    assert "exactly one of" not in neither.value.message + both.value.message


def test_a_text_file_named_wav_is_refused_in_audio_words_without_repeating_the_field() -> None:
    with pytest.raises(JobError) as refused:
        inspect(Media("speech.wav", b"this is not audio at all\n" * 40), "cond_audio.person1", "audio")
    message = refused.value.message
    assert message.count("cond_audio.person1") == 1, message
    assert "image" not in message and "video" not in message, message
    assert "send speech as WAV, MP3" in message
    worded = in_words(message)
    assert worded.startswith("Person 1's speech: the file is not readable media") and worded.count("Person 1") == 1


def test_a_long_speech_says_how_much_of_it_is_cut(empty_dir: Path) -> None:
    """An 8-minute speech was told only that it is "longer than this job renders"."""
    at = open_page("submit")
    at.radio(key="submit.p1_source").set_value("Upload").run()
    at.selectbox(key="submit.param.mode").set_value("clip").run()
    seconds = np.arange(20 * AUDIO_SAMPLE_RATE) / AUDIO_SAMPLE_RATE
    speech = wav_bytes(0.3 * np.sin(2 * np.pi * 220 * seconds) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * seconds)))
    at.file_uploader(key="submit.p1_upload").upload("long.wav", speech, "audio/wav").run()
    cut = [warning.value for warning in at.warning if "cut" in warning.value]
    assert cut, [warning.value for warning in at.warning]
    assert "Only the first **3.2 s** of the 20 s speech become video: **17 s (84%) is cut**" in cut[0], cut[0]
    assert "choose streaming, or raise Frames per clip" in cut[0]


def test_reuse_shows_an_earlier_runs_file_by_name_not_a_server_path(empty_dir: Path) -> None:
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=90)
    at.session_state[state.REUSE_PARAMS] = {
        "prompt": "Reused",
        "cond_video": str(MEDIA / "portrait.jpg"),
        "cond_audio": {"person1": "https://example.com/a.wav"},
    }
    at.run()
    assert "portrait\\.jpg** · from the earlier run" in texts(at)
    assert str(MEDIA) not in texts(at) and not any(str(MEDIA) in str(w.value) for w in at.text_input)
    assert at.text_input(key="submit.p1_url").value == "https://example.com/a.wav", "a web address stays one"
    at.button(key="submit.cond_drop").click().run()
    assert at.radio(key="submit.cond_source").value in ("Upload", "URL or stored path")
    assert "from the earlier run" not in texts(at)
