"""The InfiniteTalk engine: MeiGen-AI's audio-driven 14B video model (Wan2.1-I2V + InfiniteTalk weights) on a GPU.

`load()` runs once at cold start: it checks every weight file the cold-start variant needs (naming the missing
path and its env var), imports InfiniteTalk's `wan` package from INFINITETALK_SRC, loads wav2vec2 and builds
`InfiniteTalkPipeline` the way generate_infinitetalk.py does. Per job, `embed()` turns each speaker's speech into
wav2vec2 features and `generate()` runs `generate_infinitetalk` in a thread, reporting each clip and sampling step,
and yields each clip's frames as soon as InfiniteTalk's streaming loop has finished it (so the pipeline encodes,
and publishes the video so far, while the next clip renders); the pipeline's encoder muxes them with the
soundtrack.

Nothing here imports torch at module level, so the weight checks run (and are tested) on machines without it.
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import importlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core import logs
from core.contract import ERROR_INFO, FPS, ErrorCode, JobError, Stage
from core.settings import Settings
from worker.clips import embedding_frames
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT, TASK, InfiniteTalkCall, map_job
from worker.engines.infinitetalk_weights import cold_start_files
from worker.geometry import fit_image
from worker.media import run_ffmpeg
from worker.prepared import PreparedJob, Speaker
from worker.progress import CancelToken, Reporter
from worker.variants import PRELOAD_VAR, Variant, WeightPaths, preload_variant

if TYPE_CHECKING:
    import torch

    from worker.embedding import SpeechEncoder

ENGINE_VERSION = "1.0.0"
log = logs.get_logger("engine.infinitetalk")
CPU_RUNTIME = False
"""Set only by the selftest's CPU runtime (worker/selftest/cpu.py), under which InfiniteTalk's code runs on the CPU
with tiny weights. A worker never sets it: without a GPU the engine refuses to load."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU (InfiniteTalkPipeline places everything on cuda:0)."""
    import torch

    return bool(torch.cuda.is_available())


def free_gpu_memory() -> None:
    """Return cached GPU blocks after a pipeline is dropped or a run fails (InfiniteTalk's torch_gc)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def missing_files(needed: Iterable[tuple[Path, str]]) -> JobError | None:
    """An E_PIPELINE_LOAD naming every missing path and the env var that places it, or None."""
    missing = [(path, var) for path, var in needed if not path.exists()]
    if not missing:
        return None
    listed = "; ".join(f"{path} (set {var})" for path, var in missing[:6])
    more = f"; and {len(missing) - 6} more" if len(missing) > 6 else ""
    return JobError(
        ErrorCode.PIPELINE_LOAD,
        f"InfiniteTalk weights are missing: {listed}{more}. Put the models on the network volume or point the "
        "env vars at them (docs/gpu.md lists the downloads)",
        at_stage=Stage.PIPELINE_WARM_STARTED,
    )


@dataclass(frozen=True)
class InfiniteTalkModules:
    """The parts of InfiniteTalk's source the engine uses."""

    pipeline_class: type
    configs: dict[str, Any]
    multitalk: ModuleType
    """wan.multitalk, whose module-level `tqdm` wraps each clip's sampling loop."""


def restore_inspect_argspec() -> None:
    """Give `inspect` back the ArgSpec that Python 3.11 removed, which wan/multitalk.py imports (and never uses).

    InfiniteTalk at the pinned commit does `from inspect import ArgSpec` at module level, so on Python 3.11+ (the
    GPU image's) importing its pipeline fails before any weight is read. The namedtuple is the one Python 3.10 had.
    """
    import inspect
    from collections import namedtuple

    if not hasattr(inspect, "ArgSpec"):
        setattr(inspect, "ArgSpec", namedtuple("ArgSpec", "args varargs keywords defaults"))  # noqa: B010


def import_infinitetalk(src_dir: Path) -> InfiniteTalkModules:
    """Import InfiniteTalk's `wan` package from its source checkout (on Python 3.11+ too)."""
    restore_inspect_argspec()
    if str(src_dir) not in sys.path:
        sys.path.insert(0, str(src_dir))
    try:
        wan = importlib.import_module("wan")
        configs = importlib.import_module("wan.configs")
        multitalk = importlib.import_module("wan.multitalk")
    except Exception as error:  # a missing compiled dependency (xformers, flash-attn, decord) surfaces here
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            f"importing InfiniteTalk from {src_dir} (INFINITETALK_SRC) failed: {type(error).__name__}: {error}",
            at_stage=Stage.PIPELINE_WARM_STARTED,
        ) from None
    return InfiniteTalkModules(wan.InfiniteTalkPipeline, configs.WAN_CONFIGS, multitalk)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's out-of-memory error, whichever way torch raised it."""
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
    )


def oom_error(at_stage: str, what: str) -> JobError:
    """E_OOM with the advice the error taxonomy gives."""
    return JobError(
        ErrorCode.OOM, f"the GPU ran out of memory {what}. {ERROR_INFO[ErrorCode.OOM]['advice']}", at_stage=at_stage
    )


FINISHED_CLIPS = "gen_video_list"
"""The local of generate_infinitetalk (wan/multitalk.py) holding each finished clip's frames, motion frames cut,
as (B, C, T, H, W) CPU tensors: what its result concatenates. Read, never written, when the next clip starts."""


class StepProgress:
    """Stands in for tqdm inside wan.multitalk: called once per clip, iterated once per sampling step.

    Each call and step reports progress and is a point where a cancelled job stops (or a stopped consumer:
    `halt`). A call is also the moment the previous clips are finished: their tensors, read from the calling
    frame's FINISHED_CLIPS, go to `on_clips`, so the frames stream out while InfiniteTalk's code stays unchanged.
    """

    def __init__(
        self,
        report: Reporter,
        cancel: CancelToken,
        chunks: int,
        steps: int,
        on_clips: Callable[[list[Any]], None] | None = None,
        halt: threading.Event | None = None,
    ) -> None:
        self.report = report
        self.cancel = cancel
        self.chunks = chunks
        self.steps = steps
        self.chunk = 0
        self.on_clips = on_clips
        self.halt = halt or threading.Event()
        self.clips_sent = 0

    def __call__(self, iterable: Iterable[Any], total: int | None = None, **_: Any) -> Iterator[Any]:
        self.chunk += 1
        self._check()
        if self.on_clips is not None:
            finished = sys._getframe(1).f_locals.get(FINISHED_CLIPS)
            if isinstance(finished, list) and len(finished) > self.clips_sent:
                self.on_clips(finished[self.clips_sent :])
                self.clips_sent = len(finished)
        self._report(0)
        return self._steps(iterable)

    def _check(self) -> None:
        if self.halt.is_set():
            raise JobError(ErrorCode.CANCELLED, "the job's frames are no longer wanted", at_stage=Stage.GENERATION)
        self.cancel.check(Stage.GENERATION)

    def _steps(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for step, item in enumerate(iterable, 1):
            yield item
            self._report(step)
            self._check()

    def _report(self, step: int) -> None:
        chunks = max(self.chunks, self.chunk)
        done = (self.chunk - 1) * self.steps + step
        details = {"chunk": self.chunk, "chunks": chunks, "step": step, "steps": self.steps}
        self.report.generation(done, chunks * self.steps, details)


class _UsesTqdm(Protocol):
    """A module with a module-level `tqdm` to swap (wan.multitalk)."""

    tqdm: Callable[..., Iterator[Any]]


@contextmanager
def replaced_tqdm(module: _UsesTqdm, progress: Callable[..., Iterator[Any]]) -> Iterator[None]:
    """Swap a module's `tqdm` for the length of a run."""
    original = module.tqdm
    module.tqdm = progress
    try:
        yield
    finally:
        module.tqdm = original


def video_frames(video: torch.Tensor, count: int, width: int, height: int) -> Iterator[np.ndarray]:
    """RGB uint8 frames from InfiniteTalk's (C, T, H, W) tensor in [-1, 1], converted as its save_video_ffmpeg
    does, and fitted to the job's frame size where InfiniteTalk's size bucket differs from it."""
    for index in range(count):
        frame = ((video[:, index].float() + 1) / 2).permute(1, 2, 0).numpy()
        frame = np.clip(frame * 255, 0, 255).astype(np.uint8)
        if frame.shape[:2] != (height, width):
            frame = fit_image(frame, width, height)
        yield np.ascontiguousarray(frame)


def infinitetalk_cond(job: PreparedJob) -> Path:
    """The condition media as InfiniteTalk reads it.

    An image is used as it is. A video is re-encoded to H.264 MP4 at 25 fps: InfiniteTalk takes video frame i
    as the reference for output frame i, picks its decoder by file extension and cannot read AV1.
    """
    if job.cond_kind == "image":
        return job.cond_path
    out = job.work_dir / "cond_25fps.mp4"
    video_filter = f"fps={FPS},format=yuv420p"
    args = ["-i", str(job.cond_path), "-an", "-vf", video_filter, "-c:v", "libx264", "-preset", "veryfast"]
    run_ffmpeg([*args, "-crf", "12", str(out)], at_stage=Stage.GENERATION_STARTED, what="cond_video")
    return out


def embedding_path(job: PreparedJob, speaker: Speaker) -> Path:
    """Where a speaker's features are saved for generate_infinitetalk to torch.load."""
    return job.work_dir / f"{speaker.name}.wav2vec2.pt"


class InfiniteTalkEngine:
    """InfiniteTalk on one GPU (see the module docstring)."""

    name = "infinitetalk"
    version = f"{ENGINE_VERSION}+infinitetalk.{INFINITETALK_COMMIT[:7]}"
    embeds = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = WeightPaths.from_weights(settings.weights)
        self.allowed_roots = tuple(settings.input_roots)
        self.modules: InfiniteTalkModules | None = None
        self.speech: SpeechEncoder | None = None
        self.pipeline: Any = None
        self.variant: Variant | None = None

    def load(self) -> None:
        """Check the weights, import InfiniteTalk, load wav2vec2 and build the cold-start pipeline variant."""
        variant = preload_variant(self.settings.weights.get(PRELOAD_VAR), self.paths, self.allowed_roots)
        problem = missing_files([*cold_start_files(self.paths), *variant.required_files(self.paths)])
        if problem:
            raise problem
        try:
            from worker.embedding import SpeechEncoder
        except ImportError as error:
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                f"the infinitetalk engine needs torch and transformers ({error}): run the GPU image "
                "(Dockerfile.worker) or pip install -r requirements-worker.txt",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            ) from None
        if not cuda_available() and not CPU_RUNTIME:
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                "no CUDA GPU is visible (torch.cuda.is_available() is False): the infinitetalk engine needs an "
                "NVIDIA GPU; use STUDIO_ENGINE=preview on a machine without one",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            )
        self.modules = import_infinitetalk(self.paths.src_dir)
        try:
            self.speech = SpeechEncoder.load(self.paths.wav2vec_dir)
        except Exception as error:
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                f"wav2vec2 could not be loaded from {self.paths.wav2vec_dir} (WAV2VEC_DIR): {error}",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            ) from None
        self._build(variant)

    def _build(self, variant: Variant) -> float:
        """Build InfiniteTalkPipeline for a variant, dropping the previous one first; returns seconds taken."""
        assert self.modules is not None
        problem = missing_files(variant.required_files(self.paths))
        if problem:
            raise problem
        self.pipeline, self.variant = None, None
        free_gpu_memory()
        began = time.perf_counter()
        log.info("building the InfiniteTalk pipeline", extra={"variant": variant.describe()})
        try:
            pipeline = self.modules.pipeline_class(
                config=self.modules.configs[TASK], **variant.pipeline_kwargs(self.paths)
            )
            if variant.num_persistent_param_in_dit is not None:
                pipeline.vram_management = True
                pipeline.enable_vram_management(num_persistent_param_in_dit=variant.num_persistent_param_in_dit)
        except Exception as error:
            free_gpu_memory()
            if is_out_of_memory(error):
                raise oom_error(Stage.PIPELINE_WARM_STARTED, f"loading the {variant.describe()} model") from None
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                f"building InfiniteTalk ({variant.describe()}) failed: {type(error).__name__}: {error}",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            ) from None
        self.pipeline, self.variant = pipeline, variant
        seconds = time.perf_counter() - began
        log.info("InfiniteTalk pipeline ready", extra={"variant": variant.describe(), "seconds": round(seconds, 1)})
        return seconds

    def _loaded(self) -> tuple[SpeechEncoder, InfiniteTalkModules]:
        if self.speech is None or self.modules is None:
            raise JobError(
                ErrorCode.PIPELINE_LOAD,
                "the infinitetalk engine was used before load() succeeded",
                at_stage=Stage.PIPELINE_WARM_STARTED,
            )
        return self.speech, self.modules

    def embed(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> None:
        """Save each speaker's wav2vec2 features, padded with silence to more than one clip."""
        speech, _ = self._loaded()
        frames = embedding_frames(job.num_frames, job.params.frame_num)
        from worker.embedding import pad_to_frames

        for speaker in job.speakers:
            cancel.check(Stage.EMBEDDINGS_STARTED)
            try:
                speech.save(pad_to_frames(speaker.samples, frames), embedding_path(job, speaker))
            except Exception as error:
                raise JobError(
                    ErrorCode.AUDIO_EMBEDDING,
                    f"cond_audio.{speaker.name}: wav2vec2 failed on the speech: {type(error).__name__}: {error}",
                    at_stage=Stage.EMBEDDINGS_STARTED,
                ) from None

    def generate(self, job: PreparedJob, report: Reporter, cancel: CancelToken) -> Iterator[np.ndarray]:
        """Run generate_infinitetalk for the job and yield its job.num_frames frames."""
        _, modules = self._loaded()
        embeddings = [embedding_path(job, speaker) for speaker in job.speakers]
        if not all(path.exists() for path in embeddings):
            self.embed(job, report, cancel)
        call = map_job(
            job,
            cond_path=infinitetalk_cond(job),
            embeddings=embeddings,
            paths=self.paths,
            allowed_roots=self.allowed_roots,
        )
        job.warnings.extend(call.warnings)
        self._use_variant(call.variant, job, report)
        log.info(
            "running InfiniteTalk",
            extra={"chunks": call.chunks, "equivalent_cli": call.cli_args(self.paths, "<input_json>")},
        )
        clips: queue.Queue[list[Any] | None] = queue.Queue()
        halt = threading.Event()
        outcome: dict[str, Any] = {}

        def render() -> None:
            try:
                outcome["video"] = self._run(call, modules, report, cancel, on_clips=clips.put, halt=halt)
            except BaseException as error:  # handed to the consuming thread, which raises it
                outcome["error"] = error
            finally:
                clips.put(None)

        context = contextvars.copy_context()  # the job's id on the render thread's log lines too
        thread = threading.Thread(target=context.run, args=(render,), name="infinitetalk", daemon=True)
        thread.start()
        yielded = 0
        try:
            while (finished := clips.get()) is not None:
                for clip in finished:
                    frames = clip[0]
                    count = min(frames.shape[1], job.num_frames - yielded)
                    yield from video_frames(frames, count, job.width, job.height)
                    yielded += count
            thread.join()
        finally:
            halt.set()  # a consumer that stopped early (an encoder error) stops the render at its next step
            thread.join()
        if "error" in outcome:
            raise outcome["error"]
        video = outcome["video"]
        if video.shape[1] < job.num_frames:
            raise JobError(
                ErrorCode.GENERATION_RUNTIME,
                f"InfiniteTalk returned {video.shape[1]} frames for a {job.num_frames}-frame video",
                at_stage=Stage.GENERATION,
            )
        yield from video_frames(video[:, yielded:], job.num_frames - yielded, job.width, job.height)

    def _use_variant(self, variant: Variant, job: PreparedJob, report: Reporter) -> None:
        """Rebuild the pipeline when the job needs another variant than the loaded one (minutes for 14B)."""
        if variant == self.variant:
            return
        previous = self.variant.describe() if self.variant else "none"
        report.generation(0, 1, {"reloading": variant.describe(), "previous": previous})
        seconds = self._build(variant)
        job.warnings.append(
            f"the model was reloaded as {variant.describe()} (was {previous}) in {seconds:.0f} s; set "
            f"{PRELOAD_VAR} so workers load it at cold start, or keep one variant per endpoint"
        )

    def _run(
        self,
        call: InfiniteTalkCall,
        modules: InfiniteTalkModules,
        report: Reporter,
        cancel: CancelToken,
        on_clips: Callable[[list[Any]], None] | None = None,
        halt: threading.Event | None = None,
    ) -> torch.Tensor:
        """generate_infinitetalk with progress (and finished clips) hooked in; CUDA OOM becomes E_OOM, other
        failures E_GENERATION_RUNTIME."""
        steps = call.generate_kwargs["sampling_steps"]
        progress = StepProgress(report, cancel, call.chunks, steps, on_clips=on_clips, halt=halt)
        try:
            with replaced_tqdm(modules.multitalk, progress):
                return self.pipeline.generate_infinitetalk(
                    call.input_data, **call.generate_kwargs, extra_args=argparse.Namespace(**call.extra_args)
                )
        except JobError:
            raise
        except Exception as error:
            if is_out_of_memory(error):
                size = call.generate_kwargs["size_buckget"]
                raise oom_error(Stage.GENERATION, f"generating at {size}") from None
            log.exception("InfiniteTalk failed")
            raise JobError(
                ErrorCode.GENERATION_RUNTIME,
                f"InfiniteTalk failed: {type(error).__name__}: {error}",
                at_stage=Stage.GENERATION,
            ) from None
        finally:
            free_gpu_memory()
