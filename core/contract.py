"""The job contract: input and output shapes, defaults, limits, error codes and progress stages.

Every other part of InfiniteTalk Studio (worker, local endpoint, client, catalogue, dashboard) imports
these names instead of restating them. Only pydantic is imported here, so the dashboard can use the
contract without torch.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1
"""Version of the metadata JSON written next to every video; bump on incompatible changes."""

FPS = 25
"""InfiniteTalk renders at 25 frames per second; every engine and the encoder use this rate."""

AUDIO_SAMPLE_RATE = 16_000
"""wav2vec2 (and so InfiniteTalk) takes 16 kHz mono speech."""

TARGET_LOUDNESS_DB = -23.0
"""Speech is normalised to this loudness, as InfiniteTalk's own loudness_norm does."""


class Limits:
    """Hard limits a job must respect; the worker and the dashboard enforce the same numbers."""

    MAX_VIDEO_BYTES = 200 * 1024 * 1024
    MAX_IMAGE_BYTES = 30 * 1024 * 1024
    MAX_AUDIO_BYTES = 50 * 1024 * 1024
    MAX_AUDIO_SECONDS = 600.0
    MIN_AUDIO_SECONDS = 0.2
    MAX_IMAGE_PIXELS = 40_000_000
    MAX_IMAGE_SIDE = 8192
    MIN_BBOX_SIDE = 16
    """A face box narrower or shorter than this many pixels holds no face to animate (a 1-pixel box was accepted)."""
    MAX_PROMPT_CHARS = 2000
    MAX_TTS_CHARS = 5000
    MAX_TTS_TURNS = 100
    MIN_FRAME_NUM = 5
    MAX_FRAME_NUM = 1001
    MAX_STREAMING_FRAMES = 15_000
    MAX_SAMPLE_STEPS = 1000
    MAX_GUIDE_SCALE = 20.0
    MAX_MOTION_FRAME = 25
    MAX_BATCH_ITEMS = 50
    MAX_INLINE_OUTPUT_BYTES = 5 * 1024 * 1024
    RUN_PAYLOAD_BYTES = 10 * 1024 * 1024
    RUNSYNC_PAYLOAD_BYTES = 20 * 1024 * 1024


class Defaults:
    """Default generation parameters, as InfiniteTalk's own CLI and the seeds give them."""

    # Final keeps the literal types, so they are valid defaults of JobParams' Literal fields.
    SIZE: Final = "infinitetalk-480"
    MODE: Final = "clip"
    FRAME_NUM = 81
    MAX_FRAME_NUM = 1000
    SAMPLE_STEPS = 40
    SAMPLE_SHIFT: ClassVar[dict[str, float]] = {"infinitetalk-480": 7.0, "infinitetalk-720": 11.0}
    TEXT_GUIDE_SCALE = 5.0
    AUDIO_GUIDE_SCALE = 4.0
    MOTION_FRAME = 9
    COLOR_CORRECTION = 1.0
    TEACACHE_THRESH = 0.2
    APG_MOMENTUM = -0.75
    APG_NORM_THRESHOLD = 55.0
    BASE_SEED = 42
    LORA_SCALE = 1.0
    STORE_PREFIX = "jobs"
    TTS_VOICE_1 = "en-us+f3"
    TTS_VOICE_2 = "en-us+m3"


SIZES: dict[str, tuple[int, int]] = {"infinitetalk-480": (480, 832), "infinitetalk-720": (720, 1280)}
"""Each size's nominal resolution (short side, long side); worker.geometry picks the exact frame size from
InfiniteTalk's buckets for the input's aspect ratio."""

ARTIFACT_NAMES = ("video.mp4", "thumb.jpg", "metadata.json")
VIDEO_NAME, THUMB_NAME, METADATA_NAME = ARTIFACT_NAMES
"""Each finished job's files, by these names in its job folder and under its store prefix."""

KEY_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
"""The one pattern for every value that becomes part of a store key or a file path: job and item ids, each part
of output_config.prefix, uploaded file names. ASCII letters, digits, '_', '-' and '.', at most 128, not starting
with '.': so never '.' or '..', a '/', a NUL, an absolute path or a Unicode look-alike of any of them. An item id
of `../<another job>` once replaced that job's artifacts."""

KEY_PART_RULE = "use 1-128 letters, digits, '_', '-' or '.', not starting with '.' (it names a folder)"


def is_key_part(value: str) -> bool:
    """Whether `value` may be one part of a store key or path (see KEY_PART)."""
    return KEY_PART.fullmatch(value) is not None


def safe_file_name(name: str) -> str:
    """A file name made to fit KEY_PART: folders dropped, odd characters replaced, the end (the suffix) kept."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-80:].strip("._") or "media"


class ErrorCode:
    """Error codes a failed job reports, as the seeds' taxonomy names them."""

    INPUT_VALIDATION = "E_INPUT_VALIDATION"
    DOWNLOAD_FAILED = "E_DOWNLOAD_FAILED"
    AUDIO_EMBEDDING = "E_AUDIO_EMBEDDING"
    PIPELINE_LOAD = "E_PIPELINE_LOAD"
    OOM = "E_OOM"
    FFMPEG = "E_FFMPEG"
    GENERATION_RUNTIME = "E_GENERATION_RUNTIME"
    UPLOAD = "E_UPLOAD"
    TIMEOUT = "E_TIMEOUT"
    CANCELLED = "E_CANCELLED"
    WORKER_LOST = "E_WORKER_LOST"


ERROR_INFO: dict[str, dict[str, Any]] = {
    ErrorCode.INPUT_VALIDATION: {
        "retryable": False,
        "title": "The job's input is not valid",
        "advice": "Fix the field named in the message and submit again.",
    },
    ErrorCode.DOWNLOAD_FAILED: {
        "retryable": True,
        "title": "An input could not be downloaded",
        "advice": "Check that the URL is public and reachable, then retry.",
    },
    ErrorCode.AUDIO_EMBEDDING: {
        "retryable": True,
        "title": "The speech could not be turned into audio features",
        "advice": "Retry; if it fails again, re-export the audio as 16 kHz WAV.",
    },
    ErrorCode.PIPELINE_LOAD: {
        "retryable": False,
        "title": "The worker is not set up to run jobs",
        "advice": "Something the worker needs is missing or not writable (weights, its source, a folder): fix the "
        "path or setting the message names.",
    },
    ErrorCode.OOM: {
        "retryable": False,
        "title": "The GPU ran out of memory",
        "advice": "Use size=infinitetalk-480, fewer sample_steps (8), num_persistent_param_in_dit=0, "
        "offload_model=true or quant=fp8, or a GPU with more memory.",
    },
    ErrorCode.FFMPEG: {
        "retryable": False,
        "title": "A media file could not be read or written",
        "advice": "Re-export the file in a common format (JPEG/PNG, MP4 H.264, WAV/MP3) and submit again.",
    },
    ErrorCode.GENERATION_RUNTIME: {
        "retryable": True,
        "title": "Generation failed",
        "advice": "Retry; if it keeps failing, try other parameters or report the message.",
    },
    ErrorCode.UPLOAD: {
        "retryable": True,
        "title": "The result could not be stored",
        "advice": "Check the storage settings (bucket, keys, endpoint URL) and retry.",
    },
    ErrorCode.TIMEOUT: {
        "retryable": True,
        "title": "The job ran out of time",
        "advice": "Raise the endpoint's execution timeout, or use shorter audio or fewer sample_steps.",
    },
    ErrorCode.CANCELLED: {
        "retryable": False,
        "title": "The job was cancelled",
        "advice": "Submit it again when you want it.",
    },
    ErrorCode.WORKER_LOST: {
        "retryable": True,
        "title": "The worker stopped while running the job",
        "advice": "Retry it (Live and History have a Retry button); the video it had rendered so far is kept.",
    },
}


class JobStatus:
    """Job states as RunPod's endpoint API reports them."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    FINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})
    FAILURES = frozenset({FAILED, TIMED_OUT})
    """Ended without a video through no choice of the user's. CANCELLED is the user's own stop: not a failure,
    whether the endpoint recorded E_CANCELLED with it (a running job) or nothing (a queued one)."""
    ALL = (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT)


class Stage:
    """Progress stage names and the overall percentage each one stands at."""

    VALIDATION_STARTED = "validation_started"
    VALIDATION_OK = "validation_ok"
    DOWNLOADS_STARTED = "downloads_started"
    DOWNLOADS_OK = "downloads_ok"
    AUDIO_STARTED = "audio_started"
    AUDIO_OK = "audio_ok"
    EMBEDDINGS_STARTED = "embeddings_started"
    EMBEDDINGS_OK = "embeddings_ok"
    PIPELINE_WARM_STARTED = "pipeline_warm_started"
    PIPELINE_WARM_OK = "pipeline_warm_ok"
    GENERATION_STARTED = "generation_started"
    GENERATION = "generation"
    GENERATION_OK = "generation_ok"
    MUXING_STARTED = "muxing_started"
    MUXING_OK = "muxing_ok"
    THUMBNAIL_OK = "thumbnail_ok"
    UPLOAD_STARTED = "upload_started"
    UPLOAD_OK = "upload_ok"
    COMPLETED = "completed"
    ERROR = "error"

    PCT: ClassVar[dict[str, float]] = {
        VALIDATION_STARTED: 0,
        VALIDATION_OK: 2,
        DOWNLOADS_STARTED: 3,
        DOWNLOADS_OK: 8,
        AUDIO_STARTED: 9,
        AUDIO_OK: 12,
        EMBEDDINGS_STARTED: 12,
        EMBEDDINGS_OK: 15,
        PIPELINE_WARM_STARTED: 15,
        PIPELINE_WARM_OK: 18,
        GENERATION_STARTED: 20,
        GENERATION_OK: 85,
        MUXING_STARTED: 85,
        MUXING_OK: 90,
        THUMBNAIL_OK: 91,
        UPLOAD_STARTED: 92,
        UPLOAD_OK: 98,
        COMPLETED: 100,
    }
    GENERATION_SPAN = (20.0, 85.0)
    """Stage `generation` reports chunk and step progress scaled into this span."""


TIMING_KEYS = (
    "validate_ms",
    "download_ms",
    "audio_ms",
    "embedding_ms",
    "load_ms",
    "generate_ms",
    "encode_ms",
    "thumbnail_ms",
    "metadata_ms",
    "upload_ms",
    "total_ms",
)


class JobError(Exception):
    """A failure the job reports to its caller as `{code, message, retryable, at_stage}`."""

    def __init__(self, code: str, message: str, *, at_stage: str = "", retryable: bool | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.at_stage = at_stage
        self.retryable = ERROR_INFO.get(code, {}).get("retryable", False) if retryable is None else retryable

    def to_dict(self) -> dict[str, Any]:
        """The error as the job output's `error` object."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable, "at_stage": self.at_stage}


def friendly_error(code: str) -> dict[str, Any]:
    """A title and advice for an error code, for people reading the dashboard."""
    return ERROR_INFO.get(code, {"retryable": False, "title": "The job failed", "advice": "See the message."})


# ---------------------------------------------------------------------------------------------------------
# Input models
# ---------------------------------------------------------------------------------------------------------

MediaRef = Annotated[
    str,
    Field(
        min_length=1,
        description="An http(s) URL, a base64 string or data: URL, or a path under an allowed root "
        "(/runpod-volume or the local store).",
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CondAudio(_Strict):
    """Speech per person: person1 alone, or person1 and person2."""

    person1: MediaRef
    person2: MediaRef | None = None


TTS_TAG = re.compile(r"\(\s*s([12])\s*\)", re.IGNORECASE)
"""`(s1)` / `(s2)` in TTS text (any case, spaces inside allowed): the following words are that person's."""


def tts_turns(text: str) -> list[tuple[int, str]]:
    """TTS text as (speaker, words) turns; consecutive lines of one speaker make one turn (one voice run)."""
    turns: list[tuple[int, str]] = []
    speaker, position = 1, 0
    for match in [*TTS_TAG.finditer(text), None]:
        words = text[position : match.start() if match else len(text)].strip()
        if words and turns and turns[-1][0] == speaker:
            turns[-1] = (speaker, f"{turns[-1][1]} {words}")
        elif words:
            turns.append((speaker, words))
        if match:
            speaker, position = int(match.group(1)), match.end()
    return turns


class TTSAudio(_Strict):
    """Text to speak instead of recorded audio; `(s1)` / `(s2)` tags hand lines to person 1 or 2.

    The worker's speech engine speaks it: espeak-ng (voices such as `en-us+f3`) with the preview engine, Kokoro-82M
    (voices such as `af_heart`) on the GPU image. Each engine lists its voices (worker.audio.voice_catalogue), and
    a voice the engine lacks fails the job with E_INPUT_VALIDATION naming human1_voice or human2_voice. A job that
    names no voice speaks the engine's defaults: en-us+f3 / en-us+m3, or am_adam / af_heart.
    """

    text: str = Field(min_length=1, max_length=Limits.MAX_TTS_CHARS)
    human1_voice: str = Field(default=Defaults.TTS_VOICE_1, min_length=1, max_length=64)
    human2_voice: str | None = Field(default=None, max_length=64)

    @field_validator("text")
    @classmethod
    def _turns(cls, text: str) -> str:
        """Every turn is a separate speech-engine and ffmpeg run: bound them before anything is synthesised."""
        turns = tts_turns(text)
        if not turns:
            raise ValueError("there is no text to speak outside the (s1)/(s2) tags")
        if len(turns) > Limits.MAX_TTS_TURNS:
            raise ValueError(
                f"the text hands the voice between the speakers {len(turns)} times; at most "
                f"{Limits.MAX_TTS_TURNS} turns are spoken: merge lines or split the dialogue into several jobs"
            )
        return text

    @field_validator("human1_voice", "human2_voice")
    @classmethod
    def _voice_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_+\-]+", value):
            raise ValueError("use a voice name such as en-us+f3 or af_heart (letters, digits, '-', '_' and '+')")
        return value

    def turns(self) -> list[tuple[int, str]]:
        """The (speaker, words) turns to speak."""
        return tts_turns(self.text)

    @property
    def speakers(self) -> int:
        """How many people speak: two when a turn belongs to (s2)."""
        return 2 if any(speaker == 2 for speaker, _ in self.turns()) else 1


BOX_FORM = "give [x_min, y_min, x_max, y_max] in the picture's pixels"


class BBoxes(_Strict):
    """Each person's region as [x_min, y_min, x_max, y_max] in the input image's pixels (InfiniteTalk's bbox).

    The preview engine looks for the face inside the region; a box drawn tightly around a face works too. What
    can be checked without the picture is checked here: four whole numbers (not true/false, 1.5, 1e30 or text,
    which JSON and pydantic's lax mode would otherwise turn into integers), each within Limits.MAX_IMAGE_SIDE,
    ordered, and at least Limits.MIN_BBOX_SIDE pixels a side. That the box lies inside the picture is checked
    once its size is known (worker.inputs.check_boxes).
    """

    person1: list[int] = Field(min_length=4, max_length=4)
    person2: list[int] | None = Field(default=None, min_length=4, max_length=4)

    @field_validator("person1", "person2", mode="before")
    @classmethod
    def _whole_numbers(cls, box: Any) -> Any:
        if isinstance(box, list | tuple) and any(type(value) is not int for value in box):
            raise ValueError(f"{BOX_FORM}: four whole numbers, not true/false, fractions or text")
        return box

    @field_validator("person1", "person2")
    @classmethod
    def _ordered(cls, box: list[int] | None) -> list[int] | None:
        if box is not None:
            x0, y0, x1, y1 = box
            if min(box) < 0 or max(box) > Limits.MAX_IMAGE_SIDE:
                raise ValueError(f"{BOX_FORM}: each between 0 and {Limits.MAX_IMAGE_SIDE} (the largest picture side)")
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"{BOX_FORM} with x_max > x_min and y_max > y_min")
            if x1 - x0 < Limits.MIN_BBOX_SIDE or y1 - y0 < Limits.MIN_BBOX_SIDE:
                raise ValueError(
                    f"the box is {x1 - x0}×{y1 - y0} px; draw it around the face, at least {Limits.MIN_BBOX_SIDE} px "
                    "a side"
                )
        return box


class OutputConfig(_Strict):
    """Where the artifacts go: an S3 bucket, the volume / local folder store, or inline base64."""

    store: Literal["s3", "volume", "inline"] | None = Field(
        default=None, description="Defaults to the worker's configured store."
    )
    prefix: str = Field(default=Defaults.STORE_PREFIX, max_length=200)
    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    region: str | None = Field(default=None, max_length=64)

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and not all(is_key_part(part) for part in value.split("/")):
            raise ValueError(f"folders joined by '/': in each, {KEY_PART_RULE}")
        return value or Defaults.STORE_PREFIX


FormGroup = Literal["basic", "advanced"]


def form(group: FormGroup, *, gpu: bool = False, step: float | None = None) -> dict[str, JsonValue]:
    """A generation parameter's form hints, for `Field(json_schema_extra=form(...))`.

    They say which part of a form shows it (basic, or advanced behind an expander), whether only the InfiniteTalk
    (GPU) engine reads it, and its widget's step where the type's own would be wrong (frame_num's 4n+1). The
    dashboard's Submit page is derived from these and the field's type, bounds, default and description, so a new
    field needs nothing but its own line here.
    """
    hints: dict[str, JsonValue] = {"group": group, "gpu_only": gpu}
    if step is not None:
        hints["step"] = step
    return {"form": hints}


class JobParams(_Strict):
    """Everything one talking video needs: inputs and InfiniteTalk's generation parameters."""

    id: str | None = Field(default=None, max_length=128, description="Optional item id inside a batch.")
    prompt: str = Field(min_length=1, max_length=Limits.MAX_PROMPT_CHARS)
    cond_video: MediaRef = Field(description="Portrait image or video to animate.")
    cond_audio: CondAudio | None = None
    tts_audio: TTSAudio | None = None
    audio_type: Literal["para", "add"] = "add"
    bbox: BBoxes | None = None
    size: Literal["infinitetalk-480", "infinitetalk-720"] = Field(
        default=Defaults.SIZE,
        description="The video's resolution: 480p, or 720p (slower).",
        json_schema_extra=form("basic"),
    )
    mode: Literal["clip", "streaming"] = Field(
        default=Defaults.MODE,
        description="clip renders one clip of `frame_num` frames; streaming renders the whole speech, clip after clip.",
        json_schema_extra=form("basic"),
    )
    frame_num: int = Field(
        default=Defaults.FRAME_NUM,
        ge=Limits.MIN_FRAME_NUM,
        le=Limits.MAX_FRAME_NUM,
        description="Frames in one clip; must be 4n+1 (81 = 3.2 s at 25 fps).",
        json_schema_extra=form("basic", step=4),
    )
    max_frame_num: int = Field(
        default=Defaults.MAX_FRAME_NUM,
        ge=Limits.MIN_FRAME_NUM,
        le=Limits.MAX_STREAMING_FRAMES,
        description="Streaming: the most frames the whole video may have; longer speech is cut there.",
        json_schema_extra=form("basic"),
    )
    sample_steps: int = Field(
        default=Defaults.SAMPLE_STEPS,
        ge=1,
        le=Limits.MAX_SAMPLE_STEPS,
        description="Sampling steps per clip: fewer is faster (4 with the LoRA).",
        json_schema_extra=form("basic"),
    )
    sample_shift: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="The flow-matching scheduler's shift. Empty: 7 at 480p, 11 at 720p.",
        json_schema_extra=form("advanced"),
    )
    sample_text_guide_scale: float = Field(
        default=Defaults.TEXT_GUIDE_SCALE,
        ge=0.0,
        le=Limits.MAX_GUIDE_SCALE,
        description="Classifier-free guidance for the prompt: higher follows it more closely.",
        json_schema_extra=form("advanced"),
    )
    sample_audio_guide_scale: float = Field(
        default=Defaults.AUDIO_GUIDE_SCALE,
        ge=0.0,
        le=Limits.MAX_GUIDE_SCALE,
        description="Classifier-free guidance for the speech: higher follows the lips to it more closely.",
        json_schema_extra=form("advanced"),
    )
    motion_frame: int = Field(
        default=Defaults.MOTION_FRAME,
        ge=1,
        le=Limits.MAX_MOTION_FRAME,
        description="Streaming: frames each clip takes over from the one before, so that the motion carries on.",
        json_schema_extra=form("advanced"),
    )
    color_correction_strength: float = Field(
        default=Defaults.COLOR_CORRECTION,
        ge=0.0,
        le=1.0,
        description="How strongly each clip's colours are matched back to the portrait's (0 to 1).",
        json_schema_extra=form("advanced"),
    )
    use_teacache: bool = Field(
        default=False,
        description="TeaCache: skip steps that change little; faster.",
        json_schema_extra=form("advanced", gpu=True),
    )
    teacache_thresh: float = Field(
        default=Defaults.TEACACHE_THRESH,
        gt=0.0,
        le=1.0,
        description="TeaCache's threshold: higher skips more steps.",
        json_schema_extra=form("advanced", gpu=True),
    )
    use_apg: bool = Field(
        default=False, description="Adaptive projected guidance (APG).", json_schema_extra=form("advanced", gpu=True)
    )
    apg_momentum: float = Field(
        default=Defaults.APG_MOMENTUM,
        ge=-1.0,
        le=1.0,
        description="The momentum APG uses.",
        json_schema_extra=form("advanced", gpu=True),
    )
    apg_norm_threshold: float = Field(
        default=Defaults.APG_NORM_THRESHOLD,
        gt=0.0,
        le=1000.0,
        description="The norm threshold APG uses.",
        json_schema_extra=form("advanced", gpu=True),
    )
    base_seed: int = Field(
        default=Defaults.BASE_SEED,
        ge=-1,
        le=2**32 - 1,
        description="-1 picks a random seed.",
        json_schema_extra=form("basic"),
    )
    num_persistent_param_in_dit: int | None = Field(
        default=None,
        ge=0,
        description="DiT parameters kept on the GPU. Empty: keep everything on the GPU; 0 saves the most memory.",
        json_schema_extra=form("advanced", gpu=True),
    )
    offload_model: bool = Field(
        default=True,
        description="Move each model to the CPU after use: less GPU memory, a little slower.",
        json_schema_extra=form("advanced", gpu=True),
    )
    quant: Literal["int8", "fp8"] | None = Field(
        default=None,
        description="Run the DiT quantised, from the weights in quant_dir.",
        json_schema_extra=form("advanced", gpu=True),
    )
    quant_dir: str | None = Field(
        default=None,
        max_length=1024,
        description="The quantised weights' folder, relative to the worker's QUANT_DIR (the default) or inside it.",
        json_schema_extra=form("advanced", gpu=True),
    )
    lora: bool = Field(
        default=False,
        description="Use the lightx2v 4-step LoRA (set sample_steps to 4).",
        json_schema_extra=form("advanced", gpu=True),
    )
    lora_scale: float = Field(
        default=Defaults.LORA_SCALE,
        ge=0.0,
        le=4.0,
        description="The LoRA's strength.",
        json_schema_extra=form("advanced", gpu=True),
    )
    output_config: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str | None) -> str | None:
        if value and not is_key_part(value):
            raise ValueError(KEY_PART_RULE)
        return value or None

    @field_validator("frame_num")
    @classmethod
    def _four_n_plus_one(cls, value: int) -> int:
        if value % 4 != 1:
            lower = value - (value - 1) % 4
            raise ValueError(f"must be 4n+1: use {lower} or {lower + 4}")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("describe the scene in a few words")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JobParams:
        if self.cond_audio is None and self.tts_audio is None:
            raise ValueError(
                "cond_audio: no speech given: send recorded speech in cond_audio, or text to speak in tts_audio"
            )
        if self.cond_audio is not None and self.tts_audio is not None:
            raise ValueError(
                "cond_audio: recorded speech and text to speak (tts_audio) were both given: keep one and remove "
                "the other"
            )
        if self.mode == "streaming" and self.max_frame_num < self.frame_num:
            raise ValueError("max_frame_num: must be at least frame_num in streaming mode")
        if self.bbox and self.bbox.person2 and self.speakers < 2:
            raise ValueError("bbox.person2: a second face box needs a second speaker (cond_audio.person2)")
        return self

    @property
    def speakers(self) -> int:
        """How many people speak in this job (1 or 2)."""
        if self.cond_audio is not None:
            return 2 if self.cond_audio.person2 else 1
        assert self.tts_audio is not None
        return self.tts_audio.speakers

    def resolved_sample_shift(self) -> float:
        """sample_shift as given, or the size's default."""
        return self.sample_shift if self.sample_shift is not None else Defaults.SAMPLE_SHIFT[self.size]

    def frame_cap(self) -> int:
        """The most frames this job may render: one clip, or the streaming ceiling."""
        return self.frame_num if self.mode == "clip" else self.max_frame_num


class BatchInput(_Strict):
    """Several jobs run one after another on one worker, sharing an output_config."""

    batch: list[JobParams] = Field(min_length=1, max_length=Limits.MAX_BATCH_ITEMS)
    output_config: OutputConfig | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> BatchInput:
        ids = [item.id for item in self.batch if item.id]
        if len(ids) != len(set(ids)):
            raise ValueError("batch: item ids must be unique")
        return self


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for piece in loc:
        if isinstance(piece, int):
            parts.append(f"[{piece}]")
        elif not str(piece).startswith(("function-", "literal[")):
            parts.append(("." if parts else "") + str(piece))
    return "".join(parts)


_FIX_HINTS = {
    "missing": "this field is required",
    "extra_forbidden": "this field is not part of the job schema; remove it or check its spelling",
    "string_too_short": "is empty: fill it in, or leave the field out",
}
_EMPTY_HINTS = {
    "prompt": "is empty: describe the scene in a few words (who talks, where, how), e.g. "
    "'a woman speaks warmly to the camera in a bright studio'",
    "tts_audio.text": "is empty: type the words to speak",
}
"""What to write in a field left empty, where the field says more than "fill it in" (issue 29: an empty prompt said
only "must not be empty")."""


def describe_validation_error(error: ValidationError) -> str:
    """One readable sentence per problem, each naming the field and what to do about it.

    Model-level checks already start their message with the field they concern.
    """
    lines = []
    for item in error.errors():
        path = _field_path(tuple(item.get("loc", ())))
        kind = item.get("type", "")
        message = (
            (_EMPTY_HINTS.get(path) if kind == "string_too_short" else None)
            or _FIX_HINTS.get(kind)
            or str(item.get("msg", "invalid")).removeprefix("Value error, ")
        )
        lines.append(f"{path}: {message}" if path else message)
    return "; ".join(dict.fromkeys(lines))


def parse_job_input(raw: Any) -> JobParams | BatchInput:
    """Validate a job's `input` object; raise JobError(E_INPUT_VALIDATION) naming each bad field."""
    if not isinstance(raw, dict):
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            "input: send a JSON object with prompt, cond_video and cond_audio (or tts_audio)",
            at_stage=Stage.VALIDATION_STARTED,
        )
    model: type[JobParams] | type[BatchInput] = BatchInput if "batch" in raw else JobParams
    try:
        parsed = model.model_validate(raw)
    except ValidationError as error:
        raise JobError(
            ErrorCode.INPUT_VALIDATION, describe_validation_error(error), at_stage=Stage.VALIDATION_STARTED
        ) from None
    if isinstance(parsed, BatchInput) and parsed.output_config is not None:
        for item in parsed.batch:
            if "output_config" not in item.model_fields_set:
                item.output_config = parsed.output_config
    return parsed


def job_input_schema() -> dict[str, Any]:
    """The JSON Schema of a job's `input`: a single job or a batch."""
    single = JobParams.model_json_schema()
    batch = BatchInput.model_json_schema()
    defs = {**single.pop("$defs", {}), **batch.pop("$defs", {})}
    defs["JobParams"] = single
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "InfiniteTalk Studio job input",
        "oneOf": [{"$ref": "#/$defs/JobParams"}, batch],
        "$defs": defs,
    }


# ---------------------------------------------------------------------------------------------------------
# Output and metadata
# ---------------------------------------------------------------------------------------------------------


class Artifact(BaseModel):
    """One published file: its store key, a URL to fetch it, its type and size."""

    key: str
    url: str | None = None
    mime: str
    bytes: int
    data_base64: str | None = None


class VideoInfo(Artifact):
    """The talking video and its stream properties."""

    duration_s: float
    fps: int
    width: int
    height: int
    frames: int


class GpuInfo(BaseModel):
    """The GPU a job ran on: CUDA's device name (`NVIDIA H100 80GB HBM3`) and how many the worker saw, or `cpu`
    and 0 where there was no CUDA device (the preview engine); core/prices.py prices it."""

    name: str = Field(max_length=128)
    count: int = Field(ge=0, le=64)


class JobResult(BaseModel):
    """A successful job's output."""

    job_id: str
    item_id: str | None = None
    status: Literal["success"] = "success"
    engine: dict[str, str]
    video: VideoInfo
    thumbnail: Artifact
    metadata: Artifact
    timings: dict[str, int]
    params: dict[str, Any]
    warnings: list[str] = []
    gpu: GpuInfo | None = None


class JobFailure(BaseModel):
    """A failed job's output: what run_job returns instead of raising, what the local endpoint stores for a job
    it could not run (a lost worker, a result that is not JSON) and what the command line prints. One shape, so
    the catalogue, the client and `output_status` read every failure alike; the fields after `error` are what the
    job had got to (its engine, timings, the video so far), present when known."""

    model_config = ConfigDict(extra="allow")

    status: Literal["error"] = "error"
    error: dict[str, Any]

    @classmethod
    def of(cls, error: JobError | dict[str, Any], **known: Any) -> dict[str, Any]:
        """The output for `error` (a JobError or its to_dict()), with whatever else is known; None fields left out."""
        body = error.to_dict() if isinstance(error, JobError) else error
        return cls(error=body, **{k: v for k, v in known.items() if v is not None}).model_dump()


class PartialVideoInfo(BaseModel):
    """A streaming job's video so far, as its IN_PROGRESS output carries it (`partial_video`): the worker makes it
    (worker/partial.py) and the dashboard's Live card reads it back with this same model. The endpoint's output is
    outside input there (a compromised or hostile endpoint can send anything), so every field is checked strictly:
    a `duration_s` that is not a number broke the whole Live page. `key` is an object name the store's own rule
    accepts (`…/partial-NNN.mp4`); `url` is what the worker's store minted, which the dashboard never plays as is
    (it plays the key through its own store). Unknown fields are ignored, for a newer worker's additions."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    url: str = Field(max_length=4096)
    key: str = Field(max_length=1024)
    duration_s: float = Field(ge=0, le=Limits.MAX_STREAMING_FRAMES / FPS, allow_inf_nan=False)
    clips_done: int = Field(ge=0, le=Limits.MAX_STREAMING_FRAMES)
    clips_total: int = Field(ge=1, le=Limits.MAX_STREAMING_FRAMES)
    bytes: int = Field(default=0, ge=0, le=2**53)

    @field_validator("key")
    @classmethod
    def _partial_key(cls, key: str) -> str:
        parts = key.split("/")
        name = parts[-1]
        if not (all(is_key_part(part) for part in parts) and re.fullmatch(r"partial-[0-9]{3,9}\.mp4", name)):
            raise ValueError("must be a store key ending in partial-NNN.mp4, each folder a key part")
        return key

    @model_validator(mode="after")
    def _clips(self) -> PartialVideoInfo:
        if self.clips_done > self.clips_total:
            raise ValueError("clips_done cannot exceed clips_total")
        return self


def output_status(output: Any) -> str:
    """The final status a finished job's output stands for: the one rule the local endpoint and the catalogue use.

    The worker returns its errors rather than raising (RunPod reports COMPLETED for whatever a handler returns), so
    the output's own status decides: an error is FAILED, or CANCELLED / TIMED_OUT for E_CANCELLED / E_TIMEOUT.
    """
    if not isinstance(output, dict) or output.get("status") != "error":
        return JobStatus.COMPLETED
    error = output.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return {ErrorCode.CANCELLED: JobStatus.CANCELLED, ErrorCode.TIMEOUT: JobStatus.TIMED_OUT}.get(
        code if isinstance(code, str) else "", JobStatus.FAILED
    )


MediaSource = Literal["url", "base64", "path", "tts"]
"""Where an input came from: a URL, inline base64, a file path, or spoken by text-to-speech."""
MediaKind = Literal["image", "video", "audio"]


class InputDescriptor(BaseModel):
    """What the worker received for one input, never the raw data."""

    field: str
    source: MediaSource
    kind: MediaKind
    bytes: int
    sha256: str
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None


class JobMetadata(BaseModel):
    """The metadata.json written beside every video: the catalogue's source of truth."""

    schema_version: int = SCHEMA_VERSION
    job_id: str
    item_id: str | None = None
    endpoint_id: str | None = None
    status: Literal["success", "error"]
    engine: dict[str, str]
    prompt: str
    params: dict[str, Any]
    inputs: list[InputDescriptor]
    outputs: dict[str, dict[str, Any]]
    timings: dict[str, int]
    created_at: str
    started_at: str
    finished_at: str
    error: dict[str, Any] | None = None
    warnings: list[str] = []
    gpu: GpuInfo | None = None
    """The GPU it ran on; absent in files written before GPUs were recorded."""
    parts: list[SplitPart] | None = None
    """A split run's parts (docs/split.md): each part's job id, start and end in the speech, GPU time and cost;
    absent for a run rendered as one job."""


def metadata_schema() -> dict[str, Any]:
    """The JSON Schema of metadata.json."""
    return JobMetadata.model_json_schema()


INLINE_MEDIA_NOTE = "(inline base64 data, not stored)"
_SIGNED_QUERY_MARKERS = ("signature", "x-amz-", "token", "sig=", "key=")
_BASE64_TEXT = re.compile(r"^[A-Za-z0-9+/=_-]{64,}$")


def storable_ref(ref: Any) -> Any:
    """A media reference fit to keep in metadata.json or the catalogue.

    Paths and plain URLs stay as given; signed URLs lose their query (short-lived credentials); inline base64
    becomes a note (the input descriptor keeps its size and hash).
    """
    if not isinstance(ref, str):
        return ref
    if ref[:5].lower() == "data:" or _BASE64_TEXT.match(re.sub(r"\s+", "", ref[:4096])):
        return INLINE_MEDIA_NOTE
    parts = urlsplit(ref)
    if parts.scheme in ("http", "https") and any(marker in parts.query.lower() for marker in _SIGNED_QUERY_MARKERS):
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return ref


def storable_params(params: dict[str, Any]) -> dict[str, Any]:
    """A job input with every media reference made storable (batch items too)."""
    clean: dict[str, Any] = {}
    for name, value in params.items():
        if name == "cond_video":
            clean[name] = storable_ref(value)
        elif name == "cond_audio" and isinstance(value, dict):
            clean[name] = {person: storable_ref(ref) for person, ref in value.items()}
        elif name == "batch" and isinstance(value, list):
            clean[name] = [storable_params(item) if isinstance(item, dict) else item for item in value]
        else:
            clean[name] = value
    return clean


def utc_now(moment: dt.datetime | None = None) -> str:
    """A moment (default: now) as ISO 8601 UTC with milliseconds: how metadata.json and the catalogue write time."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    """Compact, stable JSON used for payloads and logs."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------------------
# Long speech split into parts (docs/split.md)
# ---------------------------------------------------------------------------------------------------------

SPLIT_SCHEMA_VERSION = 1
SplitPartState = Literal["pending", "IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]
"""A part's state: `pending` until its job is sent, then its job's status as the endpoint reports it."""


class SplitDefaults:
    """How long speech is split when nobody says otherwise."""

    PART_S: Final = 40.0
    """The longest part: InfiniteTalk's default frame cap (max_frame_num 1000 frames at 25 fps)."""
    MIN_PART_S: Final = 10.0
    """The shortest part: a part shorter than this costs a model load and warm-up for little video."""
    SPLIT_ABOVE_S: Final = 60.0
    """Speech longer than this is split by default (Submit's toggle and `submit`'s --split)."""
    PARALLEL: Final = 3
    """Parts rendered at once where the endpoint does not say how many workers it may run."""


class SplitPart(BaseModel):
    """One part of a split run: where it lies in the speech, the job that renders it, and how that job went."""

    index: int = Field(ge=0)
    start_s: float = Field(ge=0, allow_inf_nan=False)
    end_s: float = Field(gt=0, allow_inf_nan=False)
    in_pause: bool = True
    """Whether the cut at its end lies inside a pause (False: the quietest 100 ms, with the plan's warning)."""
    job_input: dict[str, Any] = {}
    """The job sent for it: the run's input with its own slices of the speech (and of the video)."""
    job_id: str | None = None
    earlier_job_ids: list[str] = []
    """The jobs of its earlier attempts (a retried part runs as a new job)."""
    state: SplitPartState = "pending"
    attempts: int = Field(default=0, ge=0)
    error: dict[str, Any] | None = None
    video_key: str | None = None
    thumb_key: str | None = None
    gpu_ms: int | None = Field(default=None, ge=0)
    """The part's billed time: the endpoint's executionTime, else the worker's total_ms."""
    cost_usd: float | None = None
    engine: dict[str, str] | None = None
    gpu: GpuInfo | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class SplitPlan(BaseModel):
    """A long speech split into parts, each rendered as an ordinary job, then joined into one video.

    Written to the bucket beside the run (`{prefix}/{run_id}/split.json`) each time a part changes, so a
    restarted process finds the parts' jobs, keeps polling and joins them: the bucket is the source of truth.
    """

    schema_version: int = SPLIT_SCHEMA_VERSION
    run_id: str = Field(max_length=128)
    endpoint_id: str
    prefix: str = Defaults.STORE_PREFIX
    created_at: str
    prompt: str
    params: dict[str, Any]
    """The run's own input, media references made storable (what History shows and Reuse fills)."""
    speech_s: float = Field(gt=0, allow_inf_nan=False)
    soundtrack_key: str | None = None
    """The whole speech as one WAV in the store, muxed once over the joined video; None for text to speech
    (each part's own spoken audio is kept)."""
    part_s: float = Field(gt=0)
    min_part_s: float = Field(ge=0)
    parallel: int = Field(ge=1, le=64)
    parts: list[SplitPart] = Field(min_length=1)
    warnings: list[str] = []
    state: Literal["running", "joined", "failed", "cancelled"] = "running"
    video_key: str | None = None
    execution_timeout_s: int | None = Field(default=None, ge=1)
    """Each part's policy.executionTimeout, where the estimate says a part needs longer than the endpoint's own
    timeout; None: the endpoint's own."""

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str) -> str:
        if not is_key_part(value):
            raise ValueError(KEY_PART_RULE)
        return value

    @property
    def folder(self) -> str:
        """The run's folder in the store: `{prefix}/{run_id}`."""
        return f"{self.prefix}/{self.run_id}"

    @property
    def plan_key(self) -> str:
        return f"{self.folder}/split.json"


JobMetadata.model_rebuild()
