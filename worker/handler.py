"""The RunPod Serverless entry: one job in, one talking video out, progress through progress_update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core import logs
from core.contract import JobError
from core.settings import Settings
from worker.engines import load_engine
from worker.pipeline import run_job
from worker.selftest import is_selftest_request, run_selftest_job
from worker.speech_engines import load_speech_engine
from worker.workdirs import sweep

log = logs.get_logger("handler")


def make_handler(settings: Settings) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A RunPod handler bound to settings; progress goes to runpod.serverless.progress_update.

    An input of exactly `{"selftest": {"cases": [...]}}` runs `python -m worker selftest` instead of a job: RunPod
    Hub's test run (.runpod/tests.json) proves a fresh image that way, before any weights are on its volume.
    """
    from runpod.serverless import progress_update

    def handler(job: dict[str, Any]) -> dict[str, Any]:
        if is_selftest_request(job.get("input")):
            return run_selftest_job(job["input"])

        def sink(payload: dict[str, Any]) -> None:
            progress_update(job, payload)

        return run_job(
            job.get("input"), str(job.get("id")), settings=settings, sink=sink, endpoint_id=settings.endpoint_id
        )

    return handler


def serve(settings: Settings) -> None:
    """Load the engine at cold start, then hand the handler to runpod.serverless.start.

    A load failure is logged and the worker still starts, so each job reports E_PIPELINE_LOAD with the missing
    path instead of the endpoint crash-looping with nothing to show. The speech engine (Kokoro on the GPU image)
    is loaded the same way: missing Kokoro files fail each TTS job, naming KOKORO_DIR; recorded speech still runs.
    """
    import runpod

    logs.configure()
    logs.register_secrets(settings.secrets())
    sweep(settings.work_root)  # job folders of a worker killed mid-job on this volume or disk
    try:
        engine = load_engine(settings)
        log.info("engine loaded", extra={"engine": engine.name, "version": engine.version})
    except JobError as error:
        log.error("engine failed to load", extra={"code": error.code, "error": error.message})
    try:
        speaker = load_speech_engine(settings)  # Kokoro's weights are checked and loaded here, not mid-job
        log.info("speech engine loaded", extra={"engine": speaker.name})
    except JobError as error:
        log.error("speech engine failed to load", extra={"code": error.code, "error": error.message})
    runpod.serverless.start({"handler": make_handler(settings)})
