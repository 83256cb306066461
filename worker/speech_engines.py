"""Which engine speaks a job's tts_audio, loaded once per process: espeak-ng or Kokoro-82M.

Settings.speech_engine picks it: Kokoro beside the infinitetalk engine (the GPU image, KOKORO_DIR on the volume),
espeak-ng beside the preview engine, or whichever STUDIO_TTS_ENGINE names. Kokoro is loaded at the worker's cold
start (handler.serve) and otherwise on the first TTS job; a load failure is an E_PIPELINE_LOAD naming the missing
file and its env var, for every TTS job, while jobs with recorded speech still run.
"""

from __future__ import annotations

import threading

from core.contract import ErrorCode, JobError, Stage
from core.settings import Settings
from worker.audio import EspeakSpeech, SpeechEngine
from worker.variants import WeightPaths

SPEECH_ENGINES = ("espeak", "kokoro")

_loaded: dict[tuple[object, ...], SpeechEngine] = {}
_lock = threading.Lock()


def load_speech_engine(settings: Settings) -> SpeechEngine:
    """The process's speech engine for these settings, loaded on first use (Kokoro's model stays in memory)."""
    name = settings.speech_engine
    if name == "espeak":
        return EspeakSpeech()
    if name != "kokoro":
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            f"STUDIO_TTS_ENGINE={name!r} is not a speech engine: use one of {', '.join(SPEECH_ENGINES)}",
            at_stage=Stage.AUDIO_STARTED,
        )
    src_dir = WeightPaths.from_weights(settings.weights).src_dir
    key = (name, settings.kokoro_dir, src_dir, settings.kokoro_g2p)
    with _lock:
        if key not in _loaded:
            from worker.kokoro_tts import KokoroSpeech

            _loaded[key] = KokoroSpeech.load(settings.kokoro_dir, src_dir, settings.kokoro_g2p)
        return _loaded[key]
