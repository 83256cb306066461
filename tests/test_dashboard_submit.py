"""The Submit page: media in, contract-checked job out, recorded in the catalogue, user lands on Live."""

from __future__ import annotations

import json
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.contract import INLINE_MEDIA_NOTE, Defaults, JobStatus, Limits
from dashboard import state, views
from dashboard.forms import GPU_ONLY_PARAMS, PREVIEW_NOTE, bounds
from tests.dashboard_support import MEDIA, dashboard_env, local_endpoint, open_page, texts
from tests.media_tools import wav_bytes
from worker.audio import speech_level


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One real local endpoint for this module's submissions."""
    with local_endpoint(tmp_path_factory.mktemp("submit")) as env:
        yield env


@pytest.fixture
def data_dir(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dashboard under test talks to the module's endpoint and shares its data dir (catalogue, store)."""
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    return Path(endpoint_env["STUDIO_DATA_DIR"])


def _catalog(data_dir: Path) -> Catalog:
    return Catalog(data_dir / "catalog.db")


def _photo_and_recording(at: AppTest, prompt: str) -> AppTest:
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.audio_input(key="submit.p1_record").upload("recording.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value(prompt)
    return at.run()


def _uploads(data_dir: Path) -> list[Path]:
    root = data_dir / "artifacts" / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_form_starts_at_the_contracts_defaults_and_limits(data_dir: Path) -> None:
    at = open_page("submit")
    steps = at.number_input(key="submit.param.sample_steps")
    assert (steps.value, steps.min, steps.max) == (Defaults.SAMPLE_STEPS, 1, bounds("sample_steps")[1])
    assert at.selectbox(key="submit.param.size").value == Defaults.SIZE
    assert at.selectbox(key="submit.param.size").options == ["480p", "720p"], "sizes read as their short side"
    assert at.number_input(key="submit.param.frame_num").step == 4
    assert at.number_input(key="submit.param.sample_shift").value is None


def test_the_prompt_and_speech_placeholders_read_as_hints_not_as_filled_in_text(data_dir: Path) -> None:
    """A bare sample sentence ("A woman speaks warmly…") in an empty field looked like a prompt already given."""
    at = open_page("submit")
    prompt = at.text_area(key="submit.prompt")
    assert prompt.value == "" and prompt.placeholder.startswith("For example: ")
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    speech = at.text_area(key="submit.tts_text")
    assert speech.value == "" and speech.placeholder.startswith("For example: ")


def test_a_preset_sets_every_parameter(data_dir: Path) -> None:
    at = open_page("submit")
    at.number_input(key="submit.param.base_seed").set_value(7).run()
    at.button(key="submit.preset.4-step LoRA").click().run()
    assert at.toggle(key="submit.param.lora").value is True
    assert at.number_input(key="submit.param.sample_steps").value == 4
    assert at.number_input(key="submit.param.base_seed").value == Defaults.BASE_SEED
    at.button(key="submit.preset.Quality").click().run()
    assert at.selectbox(key="submit.param.size").value == "infinitetalk-720"
    assert at.toggle(key="submit.param.lora").value is False


def test_the_active_preset_is_shown_until_a_parameter_differs(data_dir: Path) -> None:
    """Nothing said which preset the form held, so an edited preset still looked like the one last clicked."""
    at = open_page("submit")
    assert "Active preset: none (the form's defaults)" in texts(at)
    at.button(key="submit.preset.8-step draft").click().run()
    assert "Active preset: **8-step draft**" in texts(at)
    at.number_input(key="submit.param.sample_steps").set_value(9).run()
    assert "Active preset: **custom**" in texts(at)
    at.number_input(key="submit.param.sample_steps").set_value(8).run()
    assert "Active preset: **8-step draft**" in texts(at), "back to the preset's value is the preset again"
    at.button(key="submit.preset.4-step LoRA").click().run()
    assert "Active preset: **4-step LoRA**" in texts(at), "its float fields match though widgets hand floats back"


def test_gpu_only_settings_say_they_do_nothing_on_the_local_preview_engine(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TeaCache, LoRA, quant and offload looked as if they changed a preview; only the GPU engine reads them."""
    at = open_page("submit")
    helps = {name: _widget_help(at, name) for name in (*GPU_ONLY_PARAMS, "sample_steps", "motion_frame")}
    assert all(PREVIEW_NOTE in helps[name] for name in GPU_ONLY_PARAMS), helps
    assert PREVIEW_NOTE not in helps["sample_steps"] + helps["motion_frame"]
    assert "On the preview engine this local endpoint runs, these do nothing" in texts(at)

    monkeypatch.setenv("STUDIO_ENGINE", "infinitetalk")  # the same local endpoint, started on the GPU engine
    at = open_page("submit")
    assert not any(PREVIEW_NOTE in _widget_help(at, name) for name in GPU_ONLY_PARAMS)
    assert "these do nothing" not in texts(at)


def _widget_help(at: AppTest, name: str) -> str:
    key = f"submit.param.{name}"
    for kind in ("toggle", "number_input", "selectbox", "text_input"):
        found = [w for w in at.get(kind) if getattr(w, "key", None) == key]
        if found:
            return found[0].help or ""
    raise AssertionError(f"no widget for {name}")


def test_a_recording_shows_its_length_and_the_frames_it_will_make(data_dir: Path) -> None:
    """A new form renders the whole speech (streaming, as InfiniteTalk's app); clip mode says what it cuts."""
    at = _photo_and_recording(open_page("submit"), "length check")
    assert at.selectbox(key="submit.param.mode").value == "streaming"
    assert "→ **207 frames** (8.3 s of video at 25 fps)" in texts(at)
    assert "is cut** by" not in texts(at)
    at.selectbox(key="submit.param.mode").set_value("clip").run()
    assert "Speech: **8.3 s** → **81 frames** (3.2 s of video at 25 fps), 640×640" in texts(at)
    assert "**5 s (61%) is cut** by Frames per clip" in texts(at), "how much of the speech is left out"


def test_missing_and_invalid_fields_are_shown_next_to_them_and_nothing_is_sent(data_dir: Path) -> None:
    before = len(_catalog(data_dir).search().rows)
    at = open_page("submit")
    at.number_input(key="submit.param.frame_num").set_value(80)
    at.button(key="submit.go").click().run()

    errors = [e.value for e in at.error]
    assert "Add a photo or a video of the person (or people) who will talk." in errors
    assert "Add speech for person 1: record, upload or link it." in errors
    assert any(text.startswith("Prompt is empty: describe the scene in a few words") for text in errors), errors
    assert "**Frames per clip**: must be 4n+1: use 77 or 81" in errors
    assert "Fix the fields marked above, then submit again." in errors
    assert at.title[0].value == "Submit a talking video"
    assert len(_catalog(data_dir).search().rows) == before


def test_media_that_is_not_what_it_claims_is_refused_before_anything_is_stored(data_dir: Path) -> None:
    uploads = _uploads(data_dir)
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload("portrait.jpg", b"this is not a picture", "image/jpeg")
    at.audio_input(key="submit.p1_record").upload("recording.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value("bad photo")
    at.run()
    expected = "Portrait: the file is not readable media (Invalid data"
    assert any(e.value.startswith(expected) for e in at.error), [e.value for e in at.error]
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Submit a talking video"
    assert _uploads(data_dir) == uploads


def test_a_complete_job_is_stored_sent_recorded_and_the_user_lands_on_live(data_dir: Path) -> None:
    at = _photo_and_recording(open_page("submit"), "An astronaut says hello from the submit test")
    at.button(key="submit.go").click().run()

    assert not at.exception
    assert at.title[0].value == "Live jobs"
    (job_id,) = at.session_state[state.SUBMITTED]
    run = _catalog(data_dir).get(job_id)
    assert run is not None and run["prompt"] == "An astronaut says hello from the submit test"
    assert run["status"] in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS, JobStatus.COMPLETED)
    params = run["params"]
    assert params["cond_video"].startswith(str(data_dir / "artifacts" / "uploads"))
    assert Path(params["cond_video"]).read_bytes() == (MEDIA / "portrait.jpg").read_bytes()
    assert Path(params["cond_audio"]["person1"]).name == "recording.wav"
    assert params["sample_steps"] == Defaults.SAMPLE_STEPS


def _on(at: AppTest, page: str) -> AppTest:
    """Stay on `page` for the next runs, as the browser does after a switch (AppTest reruns the page it opened)."""
    return at.switch_page(f"app_pages/{page}.py").run()


def test_submit_another_keeps_the_last_jobs_media_and_prompt_and_start_a_new_one_clears_them(data_dir: Path) -> None:
    """Issue 16: "Submit another" lost the photo and speech; a second take should only need a new sentence."""
    at = _photo_and_recording(open_page("submit"), "first take")
    at.number_input(key="submit.param.sample_steps").set_value(6)
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Live jobs"
    sent = _catalog(data_dir).get(at.session_state[state.SUBMITTED][-1])
    assert sent is not None

    links = {link.proto.label: link.proto.query_string for link in _on(at, "live").get("page_link")}
    assert links["Submit another"] == "start=again"
    at.query_params["start"] = "again"  # what following the link does: Submit with its query string
    _on(at, "submit")
    assert at.title[0].value == "Submit a talking video"
    assert "start" not in at.query_params, "the link's intent is used once; a reload keeps the form"
    _on(at, "submit")
    assert at.text_area(key="submit.prompt").value == "first take"
    shown = texts(at)
    assert f"{Path(sent['params']['cond_video']).name.replace('.', chr(92) + '.')}** · from the earlier run" in shown
    assert "recording\\.wav** · from the earlier run" in shown, "kept files by name, not server paths"
    assert at.number_input(key="submit.param.sample_steps").value == 6
    at.text_area(key="submit.prompt").set_value("second take").run()
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Live jobs", "the kept media are sent again as they are"
    second = _catalog(data_dir).get(at.session_state[state.SUBMITTED][-1])
    assert second is not None and second["prompt"] == "second take"
    assert second["params"]["cond_video"] == sent["params"]["cond_video"]

    at.query_params["start"] = "new"  # "Start a new one"
    _on(at, "submit")
    assert at.title[0].value == "Submit a talking video"
    _on(at, "submit")
    assert at.text_area(key="submit.prompt").value == ""
    assert at.number_input(key="submit.param.sample_steps").value == Defaults.SAMPLE_STEPS
    assert at.radio(key="submit.cond_source").value == "Upload"


def test_text_to_speech_needs_no_recording(data_dir: Path) -> None:
    at = open_page("submit")
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.text_area(key="submit.tts_text").set_value("Hello from the speech synthesiser.")
    at.text_area(key="submit.prompt").set_value("A talking test pattern")
    at.run()
    assert "the worker decides the length" in texts(at)
    at.button(key="submit.go").click().run()

    assert at.title[0].value == "Live jobs"
    run = _catalog(data_dir).get(at.session_state[state.SUBMITTED][-1])
    assert run is not None
    # No voice chosen: none is sent, and the endpoint's speech engine speaks its own default.
    assert run["params"]["tts_audio"] == {"text": "Hello from the speech synthesiser."}
    assert "cond_audio" not in run["params"]


def test_two_people_talking_at_once(data_dir: Path) -> None:
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload("two.jpg", (MEDIA / "two_people.jpg").read_bytes(), "image/jpeg")
    at.audio_input(key="submit.p1_record").upload("one.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.toggle(key="submit.two_people").set_value(True).run()
    at.radio(key="submit.p2_source").set_value("Upload").run()
    at.file_uploader(key="submit.p2_upload").upload("two.wav", (MEDIA / "speech_2.wav").read_bytes(), "audio/wav")
    at.radio(key="submit.audio_type").set_value("para")
    at.text_area(key="submit.prompt").set_value("Two people talk at once")
    at.button(key="submit.go").click().run()

    assert at.title[0].value == "Live jobs", [e.value for e in at.error]
    run = _catalog(data_dir).get(at.session_state[state.SUBMITTED][-1])
    assert run is not None and run["speakers"] == 2
    assert run["params"]["audio_type"] == "para"


def test_reused_params_prefill_the_form(data_dir: Path) -> None:
    photo = str(MEDIA / "portrait.jpg")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=90)
    at.session_state[state.REUSE_PARAMS] = {
        "prompt": "Reused prompt",
        "cond_video": photo,
        "cond_audio": {"person1": "https://example.com/a.wav"},
        "sample_steps": 12,
        "lora": True,
        "size": "infinitetalk-720",
    }
    at.run()

    assert at.text_area(key="submit.prompt").value == "Reused prompt"
    assert "portrait\\.jpg** · from the earlier run" in texts(at), "a server path is shown as its file name"
    assert not any(widget.key == "submit.cond_url" for widget in at.text_input)
    assert at.text_input(key="submit.p1_url").value == "https://example.com/a.wav"
    assert at.number_input(key="submit.param.sample_steps").value == 12
    assert at.toggle(key="submit.param.lora").value is True
    assert at.selectbox(key="submit.param.size").value == "infinitetalk-720"
    assert state.REUSE_PARAMS not in at.session_state


def test_a_batch_file_with_a_bad_row_sends_nothing(data_dir: Path) -> None:
    before = len(_catalog(data_dir).search().rows)
    rows = "prompt,cond_video,tts_audio.text,sample_steps\nfine,https://x/p.jpg,hello,8\nbroken,https://x/p.jpg,,0\n"
    at = open_page("submit")
    at.file_uploader(key="submit.batch_file").upload("jobs.csv", rows.encode(), "text/csv").run()
    assert "1 of 2 jobs need fixing" in texts(at)
    assert "submit.batch_submit" not in [b.key for b in at.button]
    assert len(_catalog(data_dir).search().rows) == before


def test_a_batch_file_sends_one_job_per_line(
    data_dir: Path, endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dashboard checks paths with the worker's folders; `studio run` gives both the same ones.
    monkeypatch.setenv("STUDIO_INPUT_ROOTS", endpoint_env["STUDIO_INPUT_ROOTS"])
    lines = [
        {"prompt": f"batch line {n}", "cond_video": str(MEDIA / "portrait.jpg"), "tts_audio": {"text": f"Line {n}."}}
        for n in range(3)
    ]
    at = open_page("submit")
    payload = "\n".join(json.dumps({"input": line}) for line in lines).encode()
    at.file_uploader(key="submit.batch_file").upload("jobs.jsonl", payload, "application/jsonl").run()
    at.button(key="submit.batch_submit").click().run()

    assert at.title[0].value == "Live jobs"
    sent = at.session_state[state.SUBMITTED]
    assert len(sent) == 3
    prompts = {_catalog(data_dir).get(job_id)["prompt"] for job_id in sent}  # type: ignore[index]
    assert prompts == {"batch line 0", "batch line 1", "batch line 2"}


def test_the_example_batch_payload_loads_as_it_is_and_says_why_its_paths_cannot_be_followed(data_dir: Path) -> None:
    """examples/batch.json was refused as "not .csv or .jsonl"; its paths are relative to where it lies, which an
    upload does not say: each line names the path and what to give instead, and nothing is sent."""
    before = len(_catalog(data_dir).search().rows)
    at = open_page("submit")
    payload = (MEDIA.parent / "batch.json").read_bytes()
    at.file_uploader(key="submit.batch_file").upload("batch.json", payload, "application/json").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["line"]) == [1, 2]
    problems = [e.value for e in at.error if e.value.startswith("**Line ")]
    assert len(problems) == 2 and all(views.plain("media/portrait.jpg is relative") in p for p in problems)
    assert "2 of 2 jobs need fixing" in texts(at)
    assert "submit.batch_submit" not in [b.key for b in at.button]
    assert len(_catalog(data_dir).search().rows) == before


def test_an_unreachable_endpoint_is_reported_and_nothing_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, tmp_path / "offline")
    at = _photo_and_recording(open_page("submit"), "nobody is listening")
    at.button(key="submit.go").click().run()
    assert any(e.value.startswith("Could not submit: cannot reach the endpoint") for e in at.error)
    assert _catalog(tmp_path / "offline").search().total == 0


def test_the_prompt_limit_is_the_contracts(data_dir: Path) -> None:
    at = open_page("submit")
    assert at.text_area(key="submit.prompt").max_chars == Limits.MAX_PROMPT_CHARS


def test_reusing_a_run_whose_media_went_inline_asks_for_them_again(data_dir: Path) -> None:
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=90)
    at.session_state[state.REUSE_PARAMS] = {
        "prompt": "Inline before",
        "cond_video": INLINE_MEDIA_NOTE,
        "cond_audio": {"person1": INLINE_MEDIA_NOTE},
    }
    at.run()
    assert "from the earlier run" not in texts(at), "nothing kept: the form asks for the files again"
    assert at.radio(key="submit.cond_source").value == "Upload"
    assert "sent inline and not kept" in at.toast[0].value


def test_a_camera_photo_can_be_the_portrait(data_dir: Path) -> None:
    at = open_page("submit")
    at.radio(key="submit.cond_source").set_value("Camera").run()
    at.camera_input(key="submit.cond_camera").upload("photo.jpg", (MEDIA / "portrait.jpg").read_bytes())
    at.audio_input(key="submit.p1_record").upload("recording.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value("Taken with the camera")
    at.button(key="submit.go").click().run()

    assert at.title[0].value == "Live jobs", [e.value for e in at.error]
    run = _catalog(data_dir).get(at.session_state[state.SUBMITTED][-1])
    assert run is not None
    assert Path(run["params"]["cond_video"]).read_bytes() == (MEDIA / "portrait.jpg").read_bytes()


def _recording(samples: np.ndarray) -> bytes:
    """A 16 kHz 16-bit WAV of samples, as st.audio_input hands the page a recording."""
    return wav_bytes(samples)


def _example_speech_at(level_db: float) -> np.ndarray:
    with wave.open(str(MEDIA / "speech_1.wav")) as wav:
        speech = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return speech * 10 ** ((level_db - speech_level(speech)) / 20)


def test_every_parameter_is_labelled_in_words(data_dir: Path) -> None:
    from dashboard.forms import PARAM_NAMES
    from dashboard.words import label

    at = open_page("submit")
    widgets = {w.key: w for kind in ("selectbox", "toggle", "text_input", "number_input") for w in at.get(kind)}
    for name in PARAM_NAMES:
        assert widgets[f"submit.param.{name}"].label == label(name), name
    assert widgets["submit.param.size"].label == "Size" and widgets["submit.param.mode"].label == "Mode"


def test_messages_use_the_forms_words_not_field_names_or_the_browsers_file_name(data_dir: Path) -> None:
    """Issue 16: a short recording was "cond_audio.person1: 2026-12-02T10-31_audio.wav lasts 0.10 s"."""
    at = open_page("submit")
    at.audio_input(key="submit.p1_record").upload("2026-12-02T10-31_audio.wav", _recording(np.zeros(1600) + 0.1))
    at.run()
    (message,) = [e.value for e in at.error]
    assert message.startswith("Person 1's speech: your recording lasts 0.10 s; record at least"), message
    assert "cond_audio" not in message and "_audio.wav" not in message


def test_a_silent_recording_is_refused_before_sending_and_a_quiet_one_is_warned_about(data_dir: Path) -> None:
    """A muted microphone used to make a job that completed with a still face; now the form names the slot."""
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.audio_input(key="submit.p1_record").upload("recording.wav", _recording(np.zeros(3 * 16000)))
    at.text_area(key="submit.prompt").set_value("silent check")
    at.run()
    expected = "Person 1's speech is silent (no sound at all): record again"
    assert any(e.value.startswith(expected) for e in at.error)
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Submit a talking video", "nothing was sent"
    assert not at.session_state[state.SUBMITTED] if state.SUBMITTED in at.session_state else True

    at.audio_input(key="submit.p1_record").upload("recording.wav", _recording(_example_speech_at(-40.0)))
    at.run()
    assert not at.error
    assert any(w.value.startswith("Person 1's speech is very quiet (-40 dB") for w in at.warning)


def test_a_kokoro_endpoint_gets_kokoros_voices_and_an_espeak_name_is_refused(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU image speaks with Kokoro: the form offers Kokoro's voices (no preview: no Kokoro beside the
    dashboard) and refuses an espeak-ng name before sending, as the worker would."""
    from worker.kokoro_tts import DEFAULT_VOICES

    monkeypatch.setenv("STUDIO_TTS_ENGINE", "kokoro")
    at = open_page("submit")
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    voices = at.selectbox(key="submit.voice1")
    assert voices.options[0] == f"default ({DEFAULT_VOICES[0]})"
    assert any(option.startswith("af_heart") for option in voices.options)
    assert not any(option.startswith("en-us+f3") for option in voices.options)
    assert "submit.voice1_hear" not in [b.key for b in at.button]
    from core.settings import Settings
    from dashboard.forms import validate

    settings = Settings.from_env()
    assert settings.endpoint_speech_engine == "kokoro"
    job = {
        "prompt": "p",
        "cond_video": str(MEDIA / "portrait.jpg"),
        "tts_audio": {"text": "Hi", "human1_voice": "en-us+f3"},
    }
    assert "tts_audio.human1_voice" in validate(job, settings)
    job["tts_audio"]["human1_voice"] = "af_heart"
    assert "tts_audio.human1_voice" not in validate(job, settings)


def test_the_tts_voices_are_offered_with_a_preview_and_an_unknown_voice_is_refused(data_dir: Path) -> None:
    """espeak-ng quietly speaks `en-us+nosuch` as plain en-us: the form offers the worker's voices and refuses it."""
    at = open_page("submit")
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    voices = at.selectbox(key="submit.voice1")
    assert voices.value == "" and voices.options[0] == f"default ({Defaults.TTS_VOICE_1})"
    assert "en-us+f3 · English (America), variant female3" in voices.options
    assert "en-gb · English (Great Britain)" in voices.options
    at.button(key="submit.voice1_hear").click().run()
    sample = at.get("audio")[0].proto
    assert sample.url or sample.data, "a short sentence in that voice is played"

    at = open_page("submit")
    at.session_state["submit.voice1"] = "en-us+nosuch"  # as typed into the box (accept_new_options)
    at.radio(key="submit.p1_source").set_value("Text to speech").run()
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.text_area(key="submit.tts_text").set_value("Hello there.")
    at.text_area(key="submit.prompt").set_value("voice check")
    at.run()
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Submit a talking video", "nothing was sent"
    messages = "\n".join(e.value for e in at.error)
    assert "Voice of person 1: espeak-ng has no voice variant 'nosuch'" in messages
