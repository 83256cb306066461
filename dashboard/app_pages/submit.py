"""Submit: a portrait and speech in, a job out; checked with the worker's contract before it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import streamlit as st

from client.api import EndpointError
from client.fanout import speech_seconds as job_speech_seconds
from core.contract import INLINE_MEDIA_NOTE, SIZES, JobError, Limits
from dashboard import estimate_view, face_picker, live_mic, navigation, split_form, state, views
from dashboard.batch import BatchFileError, read_batch
from dashboard.batch import earlier_uploads as batch_uploads
from dashboard.forms import (
    ADVANCED_PARAMS,
    BASIC_PARAMS,
    GPU_ONLY_PARAMS,
    OPTIONAL_PARAMS,
    Speech,
    build_job_input,
    choices,
    describe,
    engine_note,
    errors_for,
    form_defaults,
    media_refs,
    plan_frames,
    prefill_from,
    speech_seconds,
    validate,
    widget,
)
from dashboard.jobs import submit
from dashboard.media import Media, MediaFacts, Planned, commit, inspect, plan, refresh_ref, stored_key
from dashboard.presets import PRESETS, is_default, matching
from dashboard.signin import signed_in_email
from dashboard.words import PREVIEW_ENGINE_LINE, field_message, in_words, label
from worker.audio import voice_catalogue, voice_sample
from worker.geometry import output_size

K = "submit."
UPLOAD = "Upload"
LINK = "URL or stored path"
CAMERA = "Camera"
RECORD = "Record"
LIVE_RECORD = "Record with level meter"
TTS = "Text to speech"
VISUAL_TYPES = ["jpg", "jpeg", "png", "webp", "mp4", "webm", "mov", "mkv"]
AUDIO_TYPES = ["wav", "mp3", "ogg", "oga", "webm", "m4a", "flac", "aac"]
# Placeholders that read as hints, not as text already typed: a bare sample sentence in a new form looked filled
# in, so a new user thought the prompt was set (issue 16). Each starts with "For example:". (A comment, not a
# docstring: Streamlit's magic draws any bare string in a page script on the page.)
PROMPT_HINT = "For example: a woman speaks warmly to the camera in a bright studio"
TTS_HINT = "For example: Hello! (s2) Hi there. Tag what each person says with (s1) / (s2)"
EXAMPLE_MEDIA = Path(__file__).resolve().parent.parent.parent / "examples" / "media"
EXAMPLE_PROMPT = "An astronaut speaks to the camera in front of a flag"
KEPT = "_kept"
# A file the form holds without an uploader: the example's, or an earlier run's (Reuse, Submit another). It is shown
# by its file name with a "Use another file" button, never as a server path in a text box (issue 29).


def _init_defaults() -> None:
    """Give every widget its starting value once per session, through session state only."""
    starting: dict[str, Any] = {
        "prompt": "",
        "cond_source": UPLOAD,
        "cond_url": "",
        "p1_source": RECORD,
        "p1_url": "",
        "two_people": False,
        "p2_source": RECORD,
        "p2_url": "",
        "audio_type": "add",
        "tts_text": "",
        "voice1": "",
        "voice2": "",
        **{f"param.{name}": value for name, value in form_defaults().items()},
    }
    for name, value in starting.items():
        st.session_state.setdefault(K + name, value)


def _apply_params(params: dict[str, Any]) -> None:
    for name, value in params.items():
        st.session_state[K + f"param.{name}"] = value


def _reuse_media(slot: str, ref: str) -> None:
    """Put an earlier run's media back in a slot: a web URL the user gave stays a URL in the link box; a file this
    dashboard uploaded or a path on the server becomes a kept file shown by its name ("Reuse these params" filled
    the link box with a raw server path, issue 29)."""
    st.session_state.pop(K + slot + KEPT, None)
    st.session_state[K + slot + "_url"] = ""
    if not ref:
        return
    if ref.startswith(("http://", "https://")) and stored_key(ref, state.store(), state.settings()) is None:
        st.session_state[K + slot + "_source"] = LINK
        st.session_state[K + slot + "_url"] = ref
        return
    name = ref.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "media"
    st.session_state[K + slot + KEPT] = {"name": name, "ref": ref, "origin": "from the earlier run"}


def _load_example() -> None:
    """Try the example: the examples' portrait and speech in the form, and a prompt if none is typed yet."""
    examples = (("cond", "portrait.jpg", "the example photo"), ("p1", "speech_1.wav", "the example speech"))
    for slot, name, origin in examples:
        data = (EXAMPLE_MEDIA / name).read_bytes()
        st.session_state[K + slot + KEPT] = {"name": name, "data": data, "origin": origin}
    st.session_state[K + "p1_source"] = RECORD
    st.session_state[K + "two_people"] = False
    if not st.session_state.get(K + "prompt"):
        st.session_state[K + "prompt"] = EXAMPLE_PROMPT
    st.session_state[K + "welcome_hidden"] = True


def _drop_kept(slot: str) -> None:
    st.session_state.pop(K + slot + KEPT, None)


def _kept(slot: str) -> dict[str, Any] | None:
    kept: dict[str, Any] | None = st.session_state.get(K + slot + KEPT)
    return kept


def _use_kept(name: str, slot: Slot, expect: str) -> bool:
    """Draw a kept file (its name, where it came from, "Use another file") and give it to the slot; False if none."""
    kept = _kept(name)
    if kept is None:
        return False
    line, drop = st.columns([3, 2], vertical_alignment="center")
    line.markdown(f":material/attach_file: **{views.plain(kept['name'])}** · {kept['origin']}")
    drop.button(
        "Use another file", key=K + name + "_drop", on_click=_drop_kept, args=(name,), icon=":material/swap_horiz:"
    )
    if kept.get("data") is not None:
        slot.take(SimpleNamespace(name=kept["name"], getvalue=lambda: kept["data"]), expect)
    else:
        slot.link(kept["ref"], expect)
    return True


def _apply_reuse() -> None:
    """Prefill the form from a run picked in History; uploads from that run are referred to by their stored path."""
    params = st.session_state.pop(state.REUSE_PARAMS, None)
    if params is None:
        return
    store, settings = state.store(), state.settings()
    filled = prefill_from(params)
    dropped: list[str] = []

    def refresh(ref: str) -> str:
        if ref == INLINE_MEDIA_NOTE or ref.startswith("data:"):
            # The catalogue keeps no inline media: the earlier run's file must be given again.
            dropped.append(ref)
            return ""
        return refresh_ref(ref, store, settings) if ref else ""

    st.session_state[K + "prompt"] = filled.prompt
    _reuse_media("cond", refresh(filled.cond_video))
    _reuse_media("p1", refresh(filled.person1))
    if filled.tts_text:
        st.session_state[K + "p1_source"] = TTS
    st.session_state[K + "tts_text"] = filled.tts_text
    st.session_state[K + "voice1"] = filled.voice1
    st.session_state[K + "voice2"] = filled.voice2
    st.session_state[K + "two_people"] = bool(filled.person2)
    _reuse_media("p2", refresh(filled.person2))
    st.session_state[K + "audio_type"] = filled.audio_type
    _apply_params(filled.params)
    if dropped:
        st.toast("The earlier run's media were sent inline and not kept: add them again.", icon=":material/info:")
    else:
        st.toast("The form holds the earlier run's media, prompt and parameters.", icon=":material/replay:")


@st.cache_data(max_entries=32, show_spinner=False)
def _inspect(name: str, data: bytes, field: str, expect: str) -> MediaFacts:
    return inspect(Media(name, data), field, expect)


@st.cache_data(max_entries=64, show_spinner="Speaking…")
def _voice_sample(voice: str, field: str) -> bytes:
    return voice_sample(voice, field)


class Slot:
    """One media input of the form: what the user gave, what it is, and where its errors go."""

    def __init__(self, field: str, missing: str) -> None:
        self.field = field
        self.missing = missing
        self.media: Media | None = None
        self.ref: str | None = None
        self.facts: MediaFacts | None = None
        self.preview: bytes | None = None
        self.problem: str | None = None
        self.errors = st.empty()

    def take(self, given: Any, expect: str, called: str | None = None) -> None:
        """Use uploaded or recorded bytes (a Streamlit UploadedFile). `called` is how messages name a recording or
        a photo the browser named with a timestamp ("your recording", not `2026-12-02T10-31_audio.wav`)."""
        if given is None:
            return
        self.media = Media(given.name or "media", given.getvalue())
        self.preview = self.media.data
        try:
            self.facts = _inspect(self.media.name, self.media.data, self.field, expect)
        except JobError as error:
            self.problem = error.message.replace(self.media.name, called) if called else error.message

    def link(self, text: str, expect: str) -> None:
        """Use a URL or stored path; media already in this dashboard's store are inspected too."""
        self.ref = text.strip() or None
        if self.ref is None:
            return
        key = stored_key(self.ref, state.store(), state.settings())
        if key and state.store().exists(key):
            self.preview = state.store().get(key)
            try:
                self.facts = _inspect(key.rsplit("/", 1)[-1], self.preview, self.field, expect)
            except JobError as error:
                self.problem = error.message


def _visual_input() -> Slot:
    st.subheader("Portrait", divider="gray", anchor=False)
    slot = Slot("cond_video", "Add a photo or a video of the person (or people) who will talk.")
    if _use_kept("cond", slot, "visual"):
        source = LINK
    else:
        source = st.radio(
            "Photo or video",
            [UPLOAD, LINK, CAMERA],
            key=K + "cond_source",
            horizontal=True,
            label_visibility="collapsed",
        )
    if _kept("cond") is not None:
        pass
    elif source == UPLOAD:
        slot.take(st.file_uploader("Photo or video", type=VISUAL_TYPES, key=K + "cond_upload"), "visual")
    elif source == LINK:
        slot.link(
            st.text_input("URL or stored path", key=K + "cond_url", placeholder="https://…/portrait.jpg"), "visual"
        )
    else:
        slot.take(st.camera_input("Take a photo", key=K + "cond_camera"), "visual", called="your photo")
    if slot.preview is not None and slot.facts is not None and source != CAMERA:
        if slot.facts.kind == "image":
            st.image(slot.preview, width=240, alt="The portrait the video will animate")
        else:
            st.video(slot.preview)
    return slot


def _speech_input(person: int, sources: list[str]) -> Slot:
    prefix = f"p{person}"
    slot = Slot(f"cond_audio.person{person}", f"Add speech for person {person}: record, upload or link it.")
    if _kept(prefix) is not None:
        st.caption(f"Speech for person {person}")
        _use_kept(prefix, slot, "audio")
        if slot.preview is not None:
            st.audio(slot.preview)
        source = None
    else:
        source = st.radio(
            f"Speech for person {person}",
            sources,
            key=K + f"{prefix}_source",
            horizontal=True,
        )
    if source is None:
        pass
    elif source == RECORD:
        slot.take(
            st.audio_input(f"Record person {person}", sample_rate=16000, key=K + f"{prefix}_record"),
            "audio",
            called="your recording",
        )
    elif source == LIVE_RECORD:
        # The take streams to the server as it is made, with a live level meter (dashboard/live_mic.py).
        take = live_mic.recorder(K + f"{prefix}_live")
        if take is not None:
            slot.take(SimpleNamespace(name="recording.wav", getvalue=lambda: take), "audio", called="your recording")
            st.audio(take, format="audio/wav")
    elif source == UPLOAD:
        uploaded = st.file_uploader(f"Speech file for person {person}", type=AUDIO_TYPES, key=K + f"{prefix}_upload")
        slot.take(uploaded, "audio")
        if slot.media is not None:
            st.audio(slot.media.data)
    elif source == LINK:
        slot.link(
            st.text_input("URL or stored path", key=K + f"{prefix}_url", placeholder="https://…/speech.wav"), "audio"
        )
    if slot.facts is not None and (note := slot.facts.quiet_note(slot.field)):
        st.warning(note, icon=":material/volume_down:")
    return slot


def _tts_input() -> None:
    st.text_area(
        "Text to speak",
        key=K + "tts_text",
        max_chars=Limits.MAX_TTS_CHARS,
        placeholder=TTS_HINT,
    )
    engine = state.settings().endpoint_speech_engine
    try:
        catalogue = voice_catalogue(engine)
    except JobError as error:  # no espeak-ng beside the dashboard: the worker judges the names
        st.caption(views.plain(error.message))
        left, right = st.columns(2)
        left.text_input("Voice of person 1", key=K + "voice1", placeholder="the worker's default")
        right.text_input("Voice of person 2", key=K + "voice2", placeholder="the worker's default")
        return
    # The endpoint's speech engine's voices: espeak-ng's here and in the preview, Kokoro's on the GPU image.
    defaults = catalogue.offered()[:2]
    if engine == "kokoro":
        help_text = "Kokoro-82M voices on the GPU worker (a = American, b = British; f = female, m = male)"
        st.caption("The GPU worker speaks with Kokoro-82M; its voices are heard in the video, not previewed here.")
    else:
        help_text = "espeak-ng voices on the worker; type voice+variant (e.g. en-gb+m3) for other combinations"
    for column, person in zip(st.columns(2), (1, 2), strict=True):
        key, field = K + f"voice{person}", f"tts_audio.human{person}_voice"
        default = f"default ({defaults[person - 1]})"
        offered = ["", *catalogue.offered()]
        # A typed or reused name stays in the list, so the form shows it (and refuses it if the engine lacks it).
        typed = st.session_state.get(key)

        def describe(name: str, default: str = default) -> str:
            return catalogue.describe(name) if name else default

        column.selectbox(
            f"Voice of person {person}",
            offered if typed in (None, *offered) else [*offered, str(typed)],
            key=key,
            help=help_text,
            accept_new_options=engine != "kokoro",
            format_func=describe,
        )
        voice = (st.session_state[key] or "").strip() or defaults[person - 1]
        if engine != "kokoro" and column.button("Hear it", key=key + "_hear", icon=":material/play_arrow:"):
            try:
                column.audio(_voice_sample(voice, field), format="audio/wav")
            except JobError as error:
                column.error(views.plain(error.message), icon=":material/error:")


def _choice_label(value: Any) -> str:
    if value is None:
        return "none"
    return f"{SIZES[value][0]}p" if value in SIZES else str(value)


def _param_widget(name: str) -> None:
    """The parameter's widget as forms.widget derives it from the contract, with the contract's description."""
    key = K + f"param.{name}"
    label_text = label(name)
    help_text = describe(name)
    if note := engine_note(name, state.settings()):
        help_text = f"{note}\n\n{help_text}" if help_text else note
    shape = widget(name)
    if shape.kind == "choice":
        st.selectbox(label_text, choices(name), key=key, help=help_text, format_func=_choice_label)
    elif shape.kind == "toggle":
        st.toggle(label_text, key=key, help=help_text)
    elif shape.kind == "text":
        st.text_input(label_text, key=key, help=help_text)
    else:
        kwargs: dict[str, Any] = {"min_value": shape.low, "max_value": shape.high, "step": shape.step}
        current = st.session_state[key]
        if shape.kind == "int":
            kwargs = {k: int(v) if v is not None else None for k, v in kwargs.items()}
        elif current is not None:
            st.session_state[key] = float(current)
        st.number_input(
            label_text,
            key=key,
            help=help_text,
            placeholder="worker default" if name in OPTIONAL_PARAMS else None,
            **kwargs,
        )


def _param_rows(names: Sequence[str], per_row: int = 3) -> None:
    """The parameters row by row (a row of columns each time), so Tab goes along a row as the eye reads it; one set
    of three columns filled down each put Tab down the first column, then the second (issue 29)."""
    for start in range(0, len(names), per_row):
        for column, name in zip(st.columns(per_row), names[start : start + per_row], strict=False):
            with column:
                _param_widget(name)


def _parameters() -> dict[str, Any]:
    st.subheader("Parameters", divider="gray", anchor=False)
    _param_rows(BASIC_PARAMS)
    with st.expander("Advanced parameters"):
        if any(engine_note(name, state.settings()) for name in ADVANCED_PARAMS):
            st.caption(
                "On the preview engine this local endpoint runs, these do nothing (the GPU worker uses them): "
                + ", ".join(label(name) for name in GPU_ONLY_PARAMS)
            )
        _param_rows(ADVANCED_PARAMS)
    return {name: st.session_state[K + f"param.{name}"] for name in BASIC_PARAMS + ADVANCED_PARAMS}


def _active_preset() -> str:
    """Which preset the parameters are now ("custom" once one differs from every preset): a changed field deep in
    Advanced no longer passes for the preset last clicked."""
    params = {name: st.session_state.get(K + f"param.{name}") for name in BASIC_PARAMS + ADVANCED_PARAMS}
    name = matching(params)
    if name:
        return f"Active preset: **{name}**"
    return "Active preset: none (the form's defaults)" if is_default(params) else "Active preset: **custom**"


def _presets() -> None:
    st.caption(f"Presets set every parameter at once · {_active_preset()}")
    cols = st.columns(len(PRESETS))
    for col, preset in zip(cols, PRESETS.values(), strict=True):
        col.button(
            preset.name,
            key=K + f"preset.{preset.name}",
            help=preset.summary,
            on_click=_apply_params,
            args=(preset.params(),),
            width="stretch",
        )


def _show_problems(slot: Slot, errors: dict[str, str], *fields: str) -> None:
    if slot.problem == slot.missing:
        # "Add speech for person 1: …" already says it: the contract's "no speech given" would say it again.
        fields = tuple(name for name in fields if name != "cond_audio")
    messages = ([slot.problem] if slot.problem else []) + [
        slot.missing if text == "this field is required" else text for text in errors_for(errors, *fields)
    ]
    messages = list(dict.fromkeys(messages))
    if messages:
        slot.errors.error("\n\n".join(in_words(text) for text in messages), icon=":material/error:")


def _plan(slot: Slot) -> Planned | None:
    if slot.media is None:
        return None
    return plan(slot.media, state.store(), state.settings())


def _ref(slot: Slot, planned: Planned | None) -> str | None:
    return planned.ref if planned is not None else slot.ref


def cut_note(speech_s: float, video_s: float, mode: str) -> str:
    """How much of the speech a job leaves out, in seconds and as a share, and which limit to raise (an 8-minute
    speech was told only that it is "longer than this job renders", issue 29)."""
    cut = max(0.0, speech_s - video_s)
    limit = "Frames per clip (clip mode renders one clip)" if mode == "clip" else "Most frames (streaming)"
    fix = "choose streaming, or raise Frames per clip" if mode == "clip" else "raise Most frames"
    return (
        f"Only the first **{video_s:.1f} s** of the {views.duration(speech_s)} speech become video: "
        f"**{views.duration(cut)} ({cut / speech_s:.0%}) is cut** by {limit}. To hear all of it, {fix}."
    )


def _summary(cond: Slot, speech: list[Slot], audio_type: str, params: dict[str, Any], tts: bool) -> None:
    facts = [slot.facts for slot in speech if slot.facts is not None and slot.facts.duration_s]
    if tts:
        st.info(
            "Text to speech: the worker decides the length when it speaks the text.",
            icon=":material/record_voice_over:",
        )
    elif facts:
        seconds = speech_seconds([f.duration_s or 0.0 for f in facts], audio_type)
        frames = plan_frames(seconds, params)
        split = split_form.will_split(seconds)
        if split:  # each part fits the frame cap: the whole speech becomes video
            frames = plan_frames(seconds, {**params, "mode": "streaming", "max_frame_num": round(seconds * 25) + 1})
        line = (
            f"Speech: **{seconds:.1f} s** → **{frames.frames} frames** "
            f"({frames.video_seconds:.1f} s of video at 25 fps{', in parts' if split else ''})"
        )
        if cond.facts is not None and cond.facts.width and cond.facts.height:
            width, height = output_size(cond.facts.width, cond.facts.height, params["size"])
            line += f", {width}×{height}"
        st.info(line, icon=":material/graphic_eq:")
        if frames.capped:
            st.warning(cut_note(seconds, frames.video_seconds, params["mode"]), icon=":material/content_cut:")


def _send(job: dict[str, Any], uploads: list[Planned], timeout_ms: int | None = None) -> str | None:
    store = state.store()
    try:
        for planned in uploads:
            commit(planned, store)
        job_id = submit(
            state.client(patient=True),
            state.catalog(),
            job,
            state.settings().endpoint_id,
            store=store,
            settings=state.settings(),
            submitted_by=signed_in_email(),
            execution_timeout_ms=timeout_ms,
        )
    except (EndpointError, JobError) as error:
        st.error(
            f"Could not submit: {views.plain(getattr(error, 'message', None) or str(error))}",
            icon=":material/cloud_off:",
        )
        return None
    st.session_state.setdefault(state.SUBMITTED, []).append(job_id)
    st.session_state[state.LAST_JOB] = job
    return job_id


def _speech_length(speech: list[Slot], audio_type: str, tts_text: str | None) -> float | None:
    """The speech's length for the split toggle: measured for recordings, estimated from the text for TTS."""
    if tts_text is not None:
        return job_speech_seconds({"tts_audio": {"text": tts_text}}, state.settings()) if tts_text.strip() else None
    return estimate_view.speech_length(speech, audio_type)


def _send_split(job: dict[str, Any], uploads: list[Planned], choice: split_form.SplitChoice) -> str | None:
    """Send a long speech as a split run (split_form.send); the form says why when it cannot be."""
    store = state.store()
    try:
        for planned in uploads:
            commit(planned, store)
        with st.spinner(f"Cutting the speech into about {choice.parts} parts at its pauses…"):
            run_id = split_form.send(job, choice, submitted_by=signed_in_email())
    except (EndpointError, JobError) as error:
        st.error(
            f"Could not submit: {views.plain(getattr(error, 'message', None) or str(error))}",
            icon=":material/cloud_off:",
        )
        return None
    st.session_state.setdefault(state.SUBMITTED, []).append(run_id)
    st.session_state[state.LAST_JOB] = job
    return run_id


def _batch_media() -> tuple[dict[str, str], list[Planned]]:
    """The media a batch may name by file name: files uploaded with it (checked as the worker checks them) and
    earlier uploads picked by name. Returns {name: reference} and what must be stored before sending."""
    store, settings = state.store(), state.settings()
    files = st.file_uploader(
        "Media for this batch",
        type=VISUAL_TYPES + AUDIO_TYPES,
        accept_multiple_files=True,
        key=K + "batch_media",
        help="Photos, videos and speech the file names (by file name, or a path ending in it, like "
        "examples/batch.json's media/portrait.jpg)",
    )
    named: dict[str, str] = {}
    planned: list[Planned] = []
    for file in files or []:
        media = Media(file.name, file.getvalue())
        expect = "audio" if file.name.rsplit(".", 1)[-1].lower() in AUDIO_TYPES else "visual"
        try:
            inspect(media, file.name, expect)
        except JobError as error:
            st.error(views.plain(error.message), icon=":material/error:")
            continue
        item = plan(media, store, settings)
        planned.append(item)
        named[file.name] = item.ref
    if store.kind == "volume" and not settings.is_local_endpoint:
        return named, planned  # a RunPod worker cannot read this machine's folder: only new media, sent inline
    if st.toggle("Use earlier uploads too", key=K + "batch_earlier"):
        earlier = batch_uploads(store)
        picked = st.multiselect("Earlier uploads", sorted(earlier), key=K + "batch_picked")
        for name in picked:
            key = earlier[name]
            local = store.local_path(key)
            named.setdefault(name.split(" (")[0], str(local) if local is not None else store.url(key))
    return named, planned


def _batch(params: dict[str, Any]) -> None:
    with st.expander("Batch: many jobs from a CSV, JSONL or JSON file", icon=":material/table_rows:"):
        st.caption(
            "One job per row (CSV, columns named like the job's fields: `prompt`, `cond_video`, "
            "`cond_audio.person1`, `tts_audio.text`, `sample_steps`, …), per line (JSONL), or a batch payload "
            'file as it is (JSON, `{"input": {"batch": [...]}}` like `examples/batch.json`). Parameters a job '
            "leaves out take this form's values (mode, size, steps…). Media are URLs, file names of media added "
            "below (or picked from earlier uploads), or absolute paths in the worker's allowed folders. "
            f"At most {Limits.MAX_BATCH_ITEMS} jobs per file."
        )
        uploaded = st.file_uploader("Batch file", type=["csv", "jsonl", "ndjson", "json"], key=K + "batch_file")
        named, planned = _batch_media()
        if uploaded is None:
            return
        try:
            lines = read_batch(uploaded.name, uploaded.getvalue(), state.settings(), defaults=params, media=named)
        except BatchFileError as error:
            st.error(views.plain(str(error)))
            return
        bad = [line for line in lines if not line.ok]
        st.dataframe(
            [
                {
                    "line": line.line,
                    "prompt": str(line.job.get("prompt", ""))[:80],
                    "mode": str(line.job.get("mode", "")),
                    "check": "ok" if line.ok else f"{len(line.errors)} to fix (below)",
                }
                for line in lines
            ],
            hide_index=True,
        )
        for line in bad:
            # Each problem whole, one per row, the field by its label (a table cell cut them mid-sentence).
            problems = "\n".join(
                f"- **{label(name) if name else 'Input'}**: {views.plain(in_words(text))}"
                for name, text in line.errors.items()
            )
            st.error(f"**Line {line.line}** needs fixing:\n\n{problems}", icon=":material/error:")
        if bad:
            st.error(f"{len(bad)} of {len(lines)} jobs need fixing; nothing was sent.")
            return
        plural = "s" if len(lines) != 1 else ""
        if st.button(f"Submit {len(lines)} job{plural}", key=K + "batch_submit", type="primary"):
            sent = []
            for line in lines:
                refs = {ref for _, ref in media_refs(line.job)}
                job_id = _send(line.job, [item for item in planned if item.ref in refs])
                if job_id is not None:
                    sent.append(job_id)
            if len(sent) == len(lines):
                st.switch_page(navigation.page("live"))
            st.warning(f"{len(sent)} of {len(lines)} jobs were sent; they are on the Live page.")


def _catalogue_empty() -> bool:
    try:
        return state.catalog().search("", per_page=1).total == 0
    except Exception:
        return False


def _welcome() -> None:
    """First open: what this is (the preview engine, when it is), three steps, and the example to try at once.

    Shown while the catalogue has no runs and the user has not hidden it; afterwards the preview engine is still
    named in one line, so nobody takes its videos for InfiniteTalk's (issue 29)."""
    preview = state.settings().is_local_endpoint and state.settings().engine == "preview"
    if st.session_state.get(K + "welcome_hidden") or not _catalogue_empty():
        if preview:
            st.caption(f":material/science: {PREVIEW_ENGINE_LINE}")
        return
    with st.container(border=True, key="submit-welcome"):
        st.markdown("**Welcome to InfiniteTalk Studio**: a photo and a voice in, a talking video out.")
        if preview:
            st.markdown(f":violet-badge[:material/science: Preview engine] {PREVIEW_ENGINE_LINE}")
        st.markdown(
            "1. Add a **portrait** (upload a photo or a short video of the face).\n"
            "2. Add the **speech** (record it, upload a file, or type text to speak).\n"
            "3. Press **Submit**, and watch the video being made on the Live page."
        )
        try_it, hide = st.columns([1, 1], gap="small", width=420)
        try_it.button("Try the example", key=K + "example", on_click=_load_example, icon=":material/auto_awesome:")
        hide.button(
            "Hide this",
            key=K + "welcome_hide",
            on_click=st.session_state.__setitem__,
            args=(K + "welcome_hidden", True),
        )


# The query parameter Live's links set: `again` fills the form with the session's last job, `new` empties it.
# (A comment, not a docstring: Streamlit's magic draws a bare string in a page script.)
START = "start"


def _start_from_link() -> None:
    """Live's "Submit another" and "Start a new one" are links (Live is one refreshing fragment, and a page switch
    from inside a fragment kept its timer rerunning the next page); the link's `start` says which."""
    start = st.query_params.get(START)
    if start is None:
        return
    del st.query_params[START]
    if start == "again" and st.session_state.get(state.LAST_JOB) is not None:
        st.session_state[state.REUSE_PARAMS] = st.session_state[state.LAST_JOB]
    elif start == "new":
        for key in [key for key in st.session_state if str(key).startswith(state.FORM_PREFIX)]:
            del st.session_state[key]


def main() -> None:
    """Draw the Submit page."""
    _start_from_link()
    _init_defaults()
    _apply_reuse()
    st.title("Submit a talking video", anchor=False)
    _welcome()
    _presets()
    left, right = st.columns([1, 1], gap="large")
    with left:
        cond = _visual_input()
        st.subheader("Speech", divider="gray", anchor=False)
        p1 = _speech_input(1, [RECORD, LIVE_RECORD, UPLOAD, LINK, TTS])
        tts = _kept("p1") is None and st.session_state[K + "p1_source"] == TTS
        speech = [p1]
        if tts:
            _tts_input()
        elif st.toggle("Add a second person", key=K + "two_people"):
            p2 = _speech_input(2, [RECORD, LIVE_RECORD, UPLOAD, LINK])
            speech.append(p2)
            st.radio(
                "How they talk",
                ["add", "para"],
                key=K + "audio_type",
                horizontal=True,
                format_func=lambda v: "taking turns (add)" if v == "add" else "at the same time (para)",
            )
        bbox = face_picker.pick(cond.preview, cond.facts.kind if cond.facts else None, len(speech), K + "face")
    with right:
        st.subheader("Prompt", divider="gray", anchor=False)
        st.text_area(
            "Describe the scene",
            key=K + "prompt",
            max_chars=Limits.MAX_PROMPT_CHARS,
            placeholder=PROMPT_HINT,
        )
        prompt_errors = st.empty()
        params = _parameters()
        param_errors = st.empty()
        audio_type = st.session_state[K + "audio_type"] if len(speech) > 1 else "add"
        _summary(cond, speech, audio_type, params, tts)
        tts_text = st.session_state[K + "tts_text"] if tts else None
        job_like = estimate_view.job_like(params, two_people=len(speech) > 1, tts_text=tts_text)
        split = split_form.options(_speech_length(speech, audio_type, tts_text), params, job_like)
        timeout_ms = None
        if split is None or not split.on:  # split, the estimate above shows one worker against N
            timeout_ms = estimate_view.render(params, speech, audio_type, tts_text)
        clicked = st.button("Submit", type="primary", key=K + "go", icon=":material/send:", width="stretch")
        general = st.empty()
    _batch(params)
    if not clicked:
        for slot in (cond, *speech):
            _show_problems(slot, {})
        return

    for slot in speech if not tts else []:
        if slot.media is None and slot.ref is None and slot.problem is None:
            slot.problem = slot.missing
    planned = {slot.field: _plan(slot) for slot in (cond, *speech)}
    job = build_job_input(
        st.session_state[K + "prompt"],
        _ref(cond, planned["cond_video"]),
        Speech(
            person1=None if tts else _ref(p1, planned["cond_audio.person1"]),
            person2=_ref(speech[1], planned["cond_audio.person2"]) if len(speech) > 1 else None,
            audio_type=audio_type,
            tts_text=st.session_state[K + "tts_text"] if tts else None,
            voice1=(st.session_state[K + "voice1"] or "").strip() or None,
            voice2=(st.session_state[K + "voice2"] or "").strip() or None,
        ),
        params,
    )
    if bbox:
        job["bbox"] = bbox
    uploads = frozenset(item.ref for item in planned.values() if item is not None)
    errors = validate(job, state.settings(), uploads)
    _show_problems(cond, errors, "cond_video", "bbox")
    _show_problems(p1, errors, "cond_audio.person1", "cond_audio", "tts_audio", "audio_type")
    if len(speech) > 1:
        _show_problems(speech[1], errors, "cond_audio.person2")
    if "prompt" in errors:
        prompt_errors.error(field_message("prompt", errors["prompt"]), icon=":material/error:")
    shown = {"prompt", "cond_video", "bbox", "cond_audio", "tts_audio", "audio_type"}
    rest = {k: v for k, v in errors.items() if k.split(".")[0].split("[")[0] not in shown}
    if rest:
        param_errors.error(
            "\n\n".join(f"**{label(k) if k else 'Input'}**: {in_words(v)}" for k, v in rest.items()),
            icon=":material/error:",
        )
    if errors or any(slot.problem for slot in (cond, *speech)):
        general.error("Fix the fields marked above, then submit again.", icon=":material/error:")
        return
    sending = [p for p in planned.values() if p is not None]
    if split is not None and split.on:
        if _send_split(job, sending, split) is not None:
            st.switch_page(navigation.page("live"))
        return
    if _send(job, sending, timeout_ms) is not None:
        st.switch_page(navigation.page("live"))


main()
