"""The engine seam: something that turns a PreparedJob into video frames.

Two implementations: `preview` (CPU, audio-driven face animation, the embedded default) and `infinitetalk`
(the 14B model on a GPU). STUDIO_ENGINE picks one; it is loaded once per process.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from core.contract import ErrorCode, JobError, Stage
from core.settings import Settings
from worker.prepared import PreparedJob
from worker.progress import CancelToken, Reporter

ENGINES = {
    "preview": "worker.engines.preview:PreviewEngine",
    "infinitetalk": "worker.engines.infinitetalk:InfiniteTalkEngine",
}


class Engine(Protocol):
    """Generates the frames of one talking video."""

    name: str
    version: str
    embeds: bool
    """Whether the engine turns speech into features before generating (InfiniteTalk's wav2vec2 embeddings, a
    stage of its own with its own timing); False for engines that read the audio as they go (the preview)."""

    def load(self) -> None:
        """Load weights or warm up; raise JobError(E_PIPELINE_LOAD) naming what is missing."""

    def embed(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> None:
        """Compute the job's conditioning from its speech (only called when `embeds`)."""

    def generate(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> Iterator[np.ndarray]:
        """Yield exactly job.num_frames RGB uint8 frames of shape (job.height, job.width, 3).

        Report progress through `report.generation(done, total, details)` and call
        `cancel.check(Stage.GENERATION)` at chunk boundaries.
        """


_loaded: dict[str, Engine] = {}
_lock = threading.Lock()


def load_engine(settings: Settings) -> Engine:
    """The process's engine for settings.engine, created and loaded on first use."""
    name = settings.engine
    if name not in ENGINES:
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            f"STUDIO_ENGINE={name!r} is not an engine: use one of {', '.join(sorted(ENGINES))}",
            at_stage=Stage.PIPELINE_WARM_STARTED,
        )
    with _lock:
        if name not in _loaded:
            module_name, class_name = ENGINES[name].split(":")
            engine_class = getattr(importlib.import_module(module_name), class_name)
            engine: Engine = engine_class(settings)
            engine.load()
            _loaded[name] = engine
        return _loaded[name]
