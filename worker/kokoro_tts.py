"""Kokoro-82M text to speech, spoken the way InfiniteTalk's own app speaks: `KPipeline` and `KModel` from the
`kokoro/` package in InfiniteTalk's source, one voice tensor (`voices/am_adam.pt`) per person.

Why InfiniteTalk's package and not PyPI's `kokoro`: the GPU image already checks out InfiniteTalk's source at the
pinned commit (INFINITETALK_SRC), its app.py and generate_infinitetalk.py call exactly this package, and its
KModel/KPipeline take a local folder as `repo_id`, so nothing is ever fetched from the Hugging Face hub at job time.
It is kokoro 0.9.4's code; its one dependency beyond the worker's is misaki (the G2P), pinned in
requirements-worker.txt.

Text becomes phonemes in one of two ways (Settings.kokoro_g2p):
- `misaki`: KPipeline(lang_code='a' or 'b') as InfiniteTalk's app builds it: misaki's English G2P (lexicon, spaCy's
  en_core_web_sm for parts of speech, espeak-ng for words outside the lexicon). The image bakes en_core_web_sm at
  build time; without it misaki would download it mid-job, so loading refuses instead.
- `espeak`: KPipeline's espeak-ng branch (the one it takes for Spanish, French, Hindi, Italian and Portuguese),
  with misaki's EspeakG2P speaking English. It needs no spaCy model, so the tests and the selftest run it offline.

Nothing here imports torch or kokoro at module level: the voice list and the file list are plain data that the
dashboard (no torch) and the weights command read.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.contract import ErrorCode, JobError, Limits, Stage
from worker.media import decode_audio, write_wav

KOKORO_REPO = "hexgrad/Kokoro-82M"
"""The Hugging Face repository the files come from (Kokoro-82M v1.0, Apache-2.0)."""
KOKORO_MODEL_FILE = "kokoro-v1_0.pth"
KOKORO_SAMPLE_RATE = 24_000
"""Kokoro's output rate; the worker resamples to 16 kHz as InfiniteTalk's app does (librosa.load(sr=16000))."""
SPACY_MODEL = "en_core_web_sm"
"""The spaCy pipeline misaki's English G2P loads (trf=False), baked into the image (Dockerfile.worker)."""
G2P_MODES = ("misaki", "espeak")


@dataclass(frozen=True)
class KokoroVoice:
    """One voice file of Kokoro-82M: `af_heart` is American English (a), female (f), named heart."""

    name: str

    @property
    def language(self) -> str:
        """KPipeline's lang_code for the voice: `a` American English, `b` British English."""
        return self.name[0]

    @property
    def gender(self) -> str:
        return {"f": "female", "m": "male"}[self.name[1]]

    @property
    def description(self) -> str:
        accent = {"a": "American English", "b": "British English"}[self.language]
        return f"{self.name.partition('_')[2].capitalize()}, {accent}, {self.gender}"


KOKORO_VOICES: tuple[KokoroVoice, ...] = tuple(
    KokoroVoice(name)
    for name in (
        "af_heart", "af_alloy", "af_aoede", "af_bella", "af_jessica", "af_kore", "af_nicole", "af_nova",
        "af_river", "af_sarah", "af_sky",
        "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa",
        "bf_alice", "bf_emma", "bf_isabella", "bf_lily",
        "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
    )
)  # fmt: skip
"""Kokoro-82M v1.0's English voices (its other languages' voices need G2Ps the image does not install)."""
DEFAULT_VOICES = ("am_adam", "af_heart")
"""Person 1's and person 2's voice when a job names none: InfiniteTalk's app's defaults (left am_adam, right
af_heart)."""

KOKORO_FILES: tuple[str, ...] = ("config.json", KOKORO_MODEL_FILE, *(f"voices/{v.name}.pt" for v in KOKORO_VOICES))
"""Every file KOKORO_DIR must hold, relative to it, as named in the KOKORO_REPO repository (the weights command and
the image's BAKE_WEIGHTS step download exactly these; the cold-start check looks for them)."""


def missing_files(kokoro_dir: Path) -> list[Path]:
    """The KOKORO_FILES that are not in kokoro_dir."""
    return [kokoro_dir / name for name in KOKORO_FILES if not (kokoro_dir / name).is_file()]


class KokoroCatalogue:
    """Kokoro's voices, with the interface of audio.VoiceCatalogue (refusal, offered, describe), so the dashboard
    offers and checks them the way it does espeak-ng's."""

    voices = KOKORO_VOICES

    def names(self) -> list[str]:
        return [voice.name for voice in self.voices]

    def refusal(self, name: str) -> str | None:
        """Why Kokoro cannot speak with `name` (None when it can), with the closest names."""
        if name in self.names():
            return None
        close = difflib.get_close_matches(name.lower(), self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        return (
            f"Kokoro has no voice {name!r}; {hint}its voices are {', '.join(self.names())} (docs/gpu.md describes them)"
        )

    def offered(self) -> list[str]:
        """The names a form offers: the defaults first, then every voice."""
        return list(dict.fromkeys([*DEFAULT_VOICES, *self.names()]))

    def describe(self, name: str) -> str:
        """A voice in words for a list: `af_heart · Heart, American English, female`."""
        voice = next((v for v in self.voices if v.name == name), None)
        return f"{name} · {voice.description}" if voice else name


KOKORO_CATALOGUE = KokoroCatalogue()


def _load_error(message: str) -> JobError:
    return JobError(ErrorCode.PIPELINE_LOAD, f"tts_audio: {message}", at_stage=Stage.AUDIO_STARTED)


def files_error(kokoro_dir: Path) -> JobError | None:
    """An E_PIPELINE_LOAD naming the missing Kokoro files and KOKORO_DIR, or None when all are there."""
    missing = missing_files(kokoro_dir)
    if not missing:
        return None
    listed = ", ".join(str(path.relative_to(kokoro_dir)) for path in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return _load_error(
        f"Kokoro's files are missing from {kokoro_dir} (set KOKORO_DIR): {listed}{more}. Download {KOKORO_REPO} "
        "there (docs/gpu.md lists the files), or set STUDIO_TTS_ENGINE=espeak to speak with espeak-ng"
    )


def import_kokoro(src_dir: Path) -> tuple[type, type]:
    """KModel and KPipeline from InfiniteTalk's `kokoro/` package (the folder INFINITETALK_SRC names)."""
    if not (src_dir / "kokoro" / "pipeline.py").is_file():
        raise _load_error(f"InfiniteTalk's kokoro package is not in {src_dir} (set INFINITETALK_SRC)")
    if str(src_dir) not in sys.path:
        sys.path.insert(0, str(src_dir))
    try:
        kokoro = importlib.import_module("kokoro")
    except Exception as error:  # misaki, spaCy or phonemizer missing: name it
        raise _load_error(
            f"importing Kokoro from {src_dir}/kokoro failed: {type(error).__name__}: {error} "
            "(pip install -r requirements-worker.txt)"
        ) from None
    return kokoro.KModel, kokoro.KPipeline


def spacy_model_installed() -> bool:
    """Whether misaki's English G2P can load its spaCy model without downloading it."""
    try:
        import spacy.util
    except ImportError:
        return False
    return bool(spacy.util.is_package(SPACY_MODEL))


class KokoroSpeech:
    """Kokoro-82M loaded once per process: one KModel shared by a KPipeline per accent (American, British)."""

    name = "kokoro"
    catalogue = KOKORO_CATALOGUE
    default_voices = DEFAULT_VOICES

    def __init__(self, model: Any, pipeline_class: type, kokoro_dir: Path, g2p: str) -> None:
        self.model = model
        self.pipeline_class = pipeline_class
        self.kokoro_dir = kokoro_dir
        self.g2p = g2p
        self.pipelines: dict[str, Any] = {}
        self.voices: dict[str, Any] = {}
        self.lock = threading.Lock()

    @classmethod
    def load(cls, kokoro_dir: Path, src_dir: Path, g2p: str = "misaki", device: str | None = None) -> KokoroSpeech:
        """Check KOKORO_DIR's files and the G2P's needs, import InfiniteTalk's kokoro and load the model.

        Raises JobError(E_PIPELINE_LOAD) naming what is missing, so nothing is ever downloaded at job time.
        """
        if g2p not in G2P_MODES:
            raise _load_error(f"STUDIO_KOKORO_G2P={g2p!r} is not a G2P: use {' or '.join(G2P_MODES)}")
        if (problem := files_error(kokoro_dir)) is not None:
            raise problem
        model_class, pipeline_class = import_kokoro(src_dir)
        if g2p == "misaki" and not spacy_model_installed():
            raise _load_error(
                f"spaCy's {SPACY_MODEL} is not installed, and misaki's English G2P would download it mid-job: "
                "the GPU image bakes it (Dockerfile.worker); elsewhere install it, or set STUDIO_KOKORO_G2P=espeak"
            )
        import torch

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            model = model_class(
                repo_id=str(kokoro_dir),
                config=str(kokoro_dir / "config.json"),
                model=str(kokoro_dir / KOKORO_MODEL_FILE),
            )
            model = model.to(device).eval()
        except Exception as error:
            raise _load_error(
                f"Kokoro could not be loaded from {kokoro_dir} (KOKORO_DIR): {type(error).__name__}: {error}"
            ) from None
        return cls(model, pipeline_class, kokoro_dir, g2p)

    def refusal(self, voice: str) -> str | None:
        return self.catalogue.refusal(voice)

    def pipeline(self, language: str) -> Any:
        """The KPipeline for an accent, built on first use around the shared model."""
        if language not in self.pipelines:
            if self.g2p == "misaki":
                self.pipelines[language] = self.pipeline_class(
                    lang_code=language, repo_id=str(self.kokoro_dir), model=self.model
                )
            else:
                from misaki import espeak

                # KPipeline's espeak-ng branch ('e' is its Spanish), given espeak-ng's English instead.
                pipeline = self.pipeline_class(lang_code="e", repo_id=str(self.kokoro_dir), model=self.model)
                pipeline.g2p = espeak.EspeakG2P(language="en-us" if language == "a" else "en-gb")
                self.pipelines[language] = pipeline
        return self.pipelines[language]

    def voice_pack(self, voice: str) -> Any:
        """A voice's style tensor (510 x 1 x 256), loaded as app.py does: torch.load(weights_only=True)."""
        if voice not in self.voices:
            import torch

            self.voices[voice] = torch.load(self.kokoro_dir / "voices" / f"{voice}.pt", weights_only=True)
        return self.voices[voice]

    def phonemes_and_audio(self, text: str, voice: str) -> list[tuple[str, Any, Any]]:
        """(phonemes, audio at 24 kHz, predicted durations) of each chunk KPipeline speaks, in order."""
        language = next(v.language for v in KOKORO_VOICES if v.name == voice)
        with self.lock:
            pipeline, pack = self.pipeline(language), self.voice_pack(voice)
            results = pipeline(text, voice=pack, speed=1, split_pattern=r"\n+")
            return [(result.phonemes, result.audio, result.pred_dur) for result in results]

    def speak(self, text: str, voice: str, out_path: Path, field_name: str) -> np.ndarray:
        """Speak text with a Kokoro voice into a 24 kHz WAV and return it decoded at 16 kHz."""
        if (refusal := self.refusal(voice)) is not None:
            raise JobError(ErrorCode.INPUT_VALIDATION, f"{field_name}: {refusal}", at_stage=Stage.AUDIO_STARTED)
        chunks = [audio.numpy() for _, audio, _ in self.phonemes_and_audio(text, voice) if audio is not None]
        if not chunks:
            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                "tts_audio.text: Kokoro found nothing to say in the text; write words in English",
                at_stage=Stage.AUDIO_STARTED,
            )
        speech = np.concatenate(chunks).astype(np.float32)
        peak = float(np.max(np.abs(speech))) if speech.size else 0.0
        if peak > 0.99:  # 16-bit PCM would clip it; loudness is set later (audio.normalise_loudness)
            speech *= 0.99 / peak
        write_wav(out_path, speech, KOKORO_SAMPLE_RATE)
        return decode_audio(out_path, field=field_name, max_seconds=Limits.MAX_AUDIO_SECONDS)
