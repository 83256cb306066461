"""Building a job input from the Submit page's values, and validating it with the worker's own contract.

Widget bounds, choices and defaults are read from `JobParams`' field definitions, so the form can never offer
a value the worker would refuse, and a change in the contract shows up in the form without an edit here.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le
from pydantic.fields import FieldInfo

from core.contract import FPS, Defaults, JobError, JobParams, Limits, parse_job_input
from core.settings import Settings
from worker.audio import frames_for, voice_catalogue
from worker.inputs import classify, path_refusal


def _hints(name: str) -> dict[str, Any] | None:
    extra = JobParams.model_fields[name].json_schema_extra
    hints = extra.get("form") if isinstance(extra, dict) else None
    return hints if isinstance(hints, dict) else None


def _offered(group: str) -> tuple[str, ...]:
    """The contract's generation parameters in one part of the form, in the contract's order."""
    return tuple(name for name in JobParams.model_fields if (_hints(name) or {}).get("group") == group)


BASIC_PARAMS = _offered("basic")
ADVANCED_PARAMS = _offered("advanced")
PARAM_NAMES = BASIC_PARAMS + ADVANCED_PARAMS
"""Every parameter the form shows: the contract's fields that carry form hints (core.contract.form)."""
GPU_ONLY_PARAMS = tuple(name for name in PARAM_NAMES if (_hints(name) or {}).get("gpu_only"))
"""Parameters only the InfiniteTalk (GPU) engine reads: speed-ups, guidance, memory and weights. The preview
engine never looks at them (tests check its source), so on it they change nothing in the video."""
OPTIONAL_PARAMS = frozenset(
    name
    for name in PARAM_NAMES
    if JobParams.model_fields[name].default is None and not JobParams.model_fields[name].is_required()
)
"""Parameters whose absence means "the worker decides" (a size's default shift, the GPU's memory, no quant)."""

PREVIEW_NOTE = "Does nothing on the preview engine this local endpoint runs; the GPU worker uses it."

_FIELD_LINE = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]]*): (?P<message>.+)$", re.DOTALL)


def _field(name: str) -> FieldInfo:
    return JobParams.model_fields[name]


def default_params() -> dict[str, Any]:
    """The contract's default for every parameter the form shows."""
    return {name: _field(name).get_default(call_default_factory=True) for name in PARAM_NAMES}


FORM_DEFAULTS: dict[str, Any] = {"mode": "streaming"}
"""Where a new form starts other than the contract's defaults: streaming renders the whole speech, as
InfiniteTalk's own app does; the contract's clip mode stops at 81 frames and cut an 11.5 s speech to 3.2 s."""


def form_defaults() -> dict[str, Any]:
    """The values a new form starts with: the contract's defaults, with FORM_DEFAULTS on top."""
    return {**default_params(), **FORM_DEFAULTS}


def bounds(name: str) -> tuple[float | None, float | None]:
    """The inclusive (low, high) the contract allows for a numeric parameter; None where it sets no bound.

    An exclusive lower bound (gt) becomes the smallest step above it, so a widget cannot reach the bound.
    """
    low: float | None = None
    high: float | None = None
    for rule in _field(name).metadata:  # annotated_types types its bounds as "comparable"; the contract's are numbers
        if isinstance(rule, Ge):
            low = float(typing.cast(float, rule.ge))
        elif isinstance(rule, Gt):
            low = float(typing.cast(float, rule.gt)) + 0.01
        elif isinstance(rule, Le):
            high = float(typing.cast(float, rule.le))
    return low, high


def _value_type(name: str) -> Any:
    """A parameter's type without its None."""
    annotation = _field(name).annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


@dataclass(frozen=True)
class Widget:
    """The widget a parameter gets, read from its type, bounds and form hints."""

    kind: typing.Literal["choice", "toggle", "text", "int", "float"]
    low: float | None = None
    high: float | None = None
    step: float | None = None


def widget(name: str) -> Widget:
    """A choice for a Literal, a toggle for a bool, a text box for a str, else a number input within the
    contract's bounds, stepping by the form hint's step, 1 for whole numbers, or a step fit for the range."""
    kind = _value_type(name)
    if choices(name):
        return Widget("choice")
    if kind is bool:
        return Widget("toggle")
    if kind is str:
        return Widget("text")
    low, high = bounds(name)
    step = (_hints(name) or {}).get("step")
    if kind is int:
        return Widget("int", low, high, step or 1)
    return Widget("float", low, high, step or (0.05 if (high or 10) <= 1 else 0.5))


def choices(name: str) -> list[Any]:
    """The values a Literal parameter may take (None first when the parameter is optional); [] for others."""
    kind = _value_type(name)
    if typing.get_origin(kind) is not typing.Literal:
        return []
    optional = kind is not _field(name).annotation  # _value_type took its None off
    return [*([None] if optional else []), *typing.get_args(kind)]


def describe(name: str) -> str | None:
    """The contract's own description of a parameter, for a widget's help text."""
    return _field(name).description


def engine_note(name: str, settings: Settings) -> str | None:
    """PREVIEW_NOTE for a GPU-only parameter when the dashboard's endpoint is the local one on the preview engine
    (the launcher starts both with the same STUDIO_ENGINE), so nobody waits for TeaCache to speed up a preview."""
    preview = settings.is_local_endpoint and settings.engine == "preview"
    return PREVIEW_NOTE if preview and name in GPU_ONLY_PARAMS else None


def clean_params(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the job input carries them: optional ones left out when unset."""
    return {
        name: value
        for name, value in values.items()
        if name in PARAM_NAMES and not (name in OPTIONAL_PARAMS and value in (None, ""))
    }


@dataclass(frozen=True)
class Speech:
    """What person 1 (and maybe person 2) say: references to recorded speech, or text to synthesise."""

    person1: str | None = None
    person2: str | None = None
    audio_type: str = "add"
    tts_text: str | None = None
    voice1: str | None = Defaults.TTS_VOICE_1
    voice2: str | None = None


def build_job_input(prompt: str, cond_video: str | None, speech: Speech, params: dict[str, Any]) -> dict[str, Any]:
    """The job's `input` object; missing pieces are left out so that validation names them."""
    job: dict[str, Any] = {"prompt": prompt}
    if cond_video:
        job["cond_video"] = cond_video
    if speech.tts_text is not None:
        # A voice left at "default" is left out: the endpoint's speech engine speaks its own defaults.
        tts: dict[str, Any] = {"text": speech.tts_text}
        if speech.voice1:
            tts["human1_voice"] = speech.voice1
        if speech.voice2:
            tts["human2_voice"] = speech.voice2
        job["tts_audio"] = tts
    elif speech.person1:
        job["cond_audio"] = {"person1": speech.person1, **({"person2": speech.person2} if speech.person2 else {})}
        if speech.person2:
            job["audio_type"] = speech.audio_type
    job.update(clean_params(params))
    return job


def field_errors(message: str) -> dict[str, str]:
    """A contract error message ("field: what to do; other.field: ...") as {field: what to do}."""
    errors: dict[str, str] = {}
    for part in message.split("; "):
        match = _FIELD_LINE.match(part.strip())
        name, text = (match["field"], match["message"]) if match else ("", part.strip())
        errors[name] = f"{errors[name]}; {text}" if name in errors else text
    return errors


def media_refs(job_input: dict[str, Any], within: str = "") -> Iterator[tuple[str, str]]:
    """(field, reference) of every medium a job input names, batch items included (as `batch[i].field`)."""
    items = job_input.get("batch")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                yield from media_refs(item, f"{within}batch[{index}].")
        return
    audio = job_input.get("cond_audio")
    refs = [("cond_video", job_input.get("cond_video"))]
    if isinstance(audio, dict):
        refs += [(f"cond_audio.{name}", audio.get(name)) for name in ("person1", "person2")]
    for name, ref in refs:
        if isinstance(ref, str) and ref:
            yield f"{within}{name}", ref


def _is_file_here(ref: str) -> bool:
    try:
        return Path(ref).is_file()
    except (OSError, ValueError):
        return False


def path_errors(job_input: dict[str, Any], settings: Settings, pending: frozenset[str] = frozenset()) -> dict[str, str]:
    """The worker's path rule, applied before sending: a file on this machine is uploaded (the client does it),
    any other path must be absolute and inside the worker's allowed folders, and a local worker reads this
    machine's disk, so there the file must exist. `pending` are the form's own uploads, stored once it is sent."""
    errors = {}
    for name, ref in media_refs(job_input):
        if classify(ref) != "path" or ref in pending or _is_file_here(ref):
            continue
        refusal = path_refusal(ref, settings.allowed_roots)
        if refusal or settings.is_local_endpoint:
            errors[name] = refusal or f"no file at {ref}"
    return errors


def voice_errors(job_input: dict[str, Any], engine: str = "espeak") -> dict[str, str]:
    """The worker's voice rule, applied before sending: each TTS voice must be one the endpoint's speech engine
    has (`engine`, Settings.endpoint_speech_engine: espeak-ng locally, Kokoro on the GPU image; see
    worker.audio.voice_catalogue). espeak-ng's list is this machine's (the RunPod image installs the same
    package); Kokoro's is fixed. Without espeak-ng here the worker is left to judge."""
    items = job_input.get("batch")
    if isinstance(items, list):
        return {
            f"batch[{index}].{name}": text
            for index, item in enumerate(items)
            if isinstance(item, dict)
            for name, text in voice_errors(item, engine).items()
        }
    tts = job_input.get("tts_audio")
    if not isinstance(tts, dict):
        return {}
    try:
        catalogue = voice_catalogue(engine)
    except JobError:
        return {}
    errors = {}
    for name in ("human1_voice", "human2_voice"):
        voice = tts.get(name)
        if isinstance(voice, str) and voice and (refusal := catalogue.refusal(voice)) is not None:
            errors[f"tts_audio.{name}"] = refusal
    return errors


def validate(
    job_input: dict[str, Any], settings: Settings | None = None, pending: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Check a job input with the worker's contract, its voice rule (see voice_errors) and, given the settings,
    its path rule (see path_errors); {} when valid, else {field: what to do}."""
    try:
        parse_job_input(job_input)
    except JobError as error:
        return field_errors(error.message)
    errors = voice_errors(job_input, settings.endpoint_speech_engine if settings else "espeak")
    return errors | (path_errors(job_input, settings, pending) if settings else {})


def errors_for(errors: dict[str, str], *prefixes: str) -> list[str]:
    """The messages about the given fields or anything inside them (`cond_audio` covers `cond_audio.person1`)."""
    return [
        f"{name}: {text}" if name not in prefixes else text
        for name, text in errors.items()
        if any(name == p or name.startswith((p + ".", p + "[")) for p in prefixes)
    ]


def speech_seconds(durations: list[float], audio_type: str) -> float:
    """How long the speech lasts: two people taking turns (`add`) add up, talking at once (`para`) overlap."""
    if not durations:
        return 0.0
    return max(durations) if audio_type == "para" else sum(durations)


@dataclass(frozen=True)
class FramePlan:
    """What a job will render for a given speech length."""

    seconds: float
    frames: int
    capped: bool

    @property
    def video_seconds(self) -> float:
        """The video's length at 25 fps."""
        return self.frames / FPS


def plan_frames(seconds: float, params: dict[str, Any]) -> FramePlan:
    """The frames the worker will render for this much speech, with the same rule the worker uses."""
    merged = {**default_params(), **clean_params(params)}
    cap = int(merged["frame_num"] if merged["mode"] == "clip" else merged["max_frame_num"])
    return FramePlan(seconds, frames_for(seconds, cap), round(seconds * FPS) > cap)


@dataclass
class Prefill:
    """Form values recovered from a run's parameters (for "Reuse these params")."""

    prompt: str = ""
    cond_video: str = ""
    person1: str = ""
    person2: str = ""
    audio_type: str = "add"
    tts_text: str = ""
    voice1: str = ""
    voice2: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def prefill_from(params: dict[str, Any]) -> Prefill:
    """Recover the form's values from a job's parameters; unknown or out-of-contract keys are ignored."""
    audio = params.get("cond_audio") or {}
    tts = params.get("tts_audio") or {}
    tunable = {**default_params(), **{k: v for k, v in params.items() if k in PARAM_NAMES}}
    return Prefill(
        prompt=str(params.get("prompt") or "")[: Limits.MAX_PROMPT_CHARS],
        cond_video=str(params.get("cond_video") or ""),
        person1=str(audio.get("person1") or ""),
        person2=str(audio.get("person2") or ""),
        audio_type=str(params.get("audio_type") or "add"),
        tts_text=str(tts.get("text") or ""),
        voice1=str(tts.get("human1_voice") or ""),
        voice2=str(tts.get("human2_voice") or ""),
        params=tunable,
    )
