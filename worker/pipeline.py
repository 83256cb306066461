"""One job from input to published video: validate → fetch → audio → generate+encode → thumbnail → metadata →
publish. Each stage is timed and reports progress; every failure becomes a structured E_* error.

`run_job` is what the RunPod handler, the local endpoint and the CLI call. It never raises and always removes
the job's temp dir.
"""

from __future__ import annotations

import base64
import errno
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import logs
from core.contract import (
    ARTIFACT_NAMES,
    FPS,
    KEY_PART_RULE,
    METADATA_NAME,
    THUMB_NAME,
    TIMING_KEYS,
    VIDEO_NAME,
    Artifact,
    BatchInput,
    ErrorCode,
    GpuInfo,
    InputDescriptor,
    JobError,
    JobFailure,
    JobMetadata,
    JobParams,
    JobResult,
    Limits,
    Stage,
    VideoInfo,
    is_key_part,
    parse_job_input,
    utc_now,
)
from core.settings import Settings
from core.store import Store, artifact_key, checked_key, content_type, open_store
from worker.audio import prepare_audio
from worker.clip_encoder import ClipEncoder
from worker.engines import Engine, load_engine
from worker.geometry import output_size
from worker.inputs import fetch_audio, fetch_visual
from worker.media import VideoEncoder, make_thumbnail
from worker.metadata import build_metadata, gpu_info, resolved_params
from worker.partial import PartialVideo, clip_ends
from worker.prepared import PreparedJob
from worker.progress import CancelToken, ProgressSink, Reporter
from worker.speech_engines import load_speech_engine
from worker.workdirs import job_dir, unwritable

log = logs.get_logger("pipeline")
UPLOAD_ATTEMPTS = 3
UPLOAD_BACKOFF_S = 0.5


@dataclass
class Run:
    """What one item of a job carries through its stages."""

    job_id: str
    item_id: str | None
    settings: Settings
    report: Reporter
    cancel: CancelToken
    endpoint_id: str | None
    created_at: str
    extra_roots: tuple[Path, ...]
    started_at: str = field(default_factory=utc_now)
    timings: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0))
    inputs: list[InputDescriptor] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    engine_info: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    partial_video: dict[str, Any] | None = None
    """The partial video a cancelled streaming job keeps as its result (see worker/partial.py)."""

    @property
    def key_id(self) -> str:
        """The folder of this item's artifacts: the job id, or job id / item id inside a batch."""
        return f"{self.job_id}/{self.item_id}" if self.item_id else self.job_id

    @contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Add the block's wall time to timings[key] (in ms)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] += round((time.perf_counter() - began) * 1000)

    def metadata(
        self,
        params: JobParams,
        resolved: dict[str, Any],
        outputs: dict[str, dict[str, Any]],
        error: dict[str, Any] | None = None,
    ) -> JobMetadata:
        """This item's metadata.json record, for a success or (with `error`) a failure."""
        return build_metadata(
            job_id=self.job_id,
            item_id=self.item_id,
            endpoint_id=self.endpoint_id,
            engine=self.engine_info or {"name": self.settings.engine, "version": ""},
            params=params,
            resolved=resolved,
            inputs=self.inputs,
            outputs=outputs,
            timings=self.timings,
            created_at=self.created_at,
            started_at=self.started_at,
            error=error,
            warnings=self.warnings,
            gpu=self.gpu,
        )

    @property
    def gpu(self) -> GpuInfo:
        """The GPU this item ran on (metadata.json and the result carry it, so each run can be priced)."""
        return gpu_info(self.engine_info.get("name") or self.settings.engine)

    def finish_timing(self) -> None:
        """Set total_ms to the time since the item started."""
        self.timings["total_ms"] = round((time.perf_counter() - self.started) * 1000)


def _error_dict(error: JobError, settings: Settings) -> dict[str, Any]:
    detail = error.to_dict()
    detail["message"] = logs.redact(detail["message"], settings.secrets())
    return detail


def _unexpected(error: BaseException, at_stage: str, work_root: Path) -> JobError:
    if isinstance(error, MemoryError):
        return JobError(ErrorCode.OOM, "the worker ran out of memory", at_stage=at_stage)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return JobError(ErrorCode.GENERATION_RUNTIME, unwritable(work_root, error), at_stage=at_stage)
    return JobError(ErrorCode.GENERATION_RUNTIME, f"{type(error).__name__}: {error}", at_stage=at_stage)


def resolve_seed(params: JobParams) -> int:
    """base_seed as given, or a fresh random one for -1 (recorded in the metadata)."""
    return params.base_seed if params.base_seed >= 0 else random.SystemRandom().randrange(2**31)


def _prepare(run: Run, params: JobParams, work_dir: Path, seed: int) -> PreparedJob:
    run.cancel.check(Stage.VALIDATION_OK)
    run.report.stage(Stage.DOWNLOADS_STARTED)
    with run.timed("download_ms"):
        cond = fetch_visual(params.cond_video, "cond_video", work_dir, run.settings, run.extra_roots, params.bbox)
        speech = []
        if params.cond_audio is not None:
            for name in ("person1", "person2"):
                ref = getattr(params.cond_audio, name)
                if ref:
                    speech.append(fetch_audio(ref, f"cond_audio.{name}", work_dir, run.settings, run.extra_roots))
    run.inputs = [cond.descriptor(), *(item.descriptor() for item in speech)]
    run.report.stage(Stage.DOWNLOADS_OK, {"inputs": len(run.inputs)})
    run.cancel.check(Stage.DOWNLOADS_OK)

    run.report.stage(Stage.AUDIO_STARTED)
    with run.timed("audio_ms"):
        speaker = load_speech_engine(run.settings) if params.tts_audio is not None else None
        audio = prepare_audio(params, [item.path for item in speech], work_dir, speaker)
    run.warnings.extend(audio.warnings)
    run.report.stage(
        Stage.AUDIO_OK,
        {"duration_s": audio.source_duration_s, "frames": audio.num_frames, "speakers": len(audio.speakers)},
    )
    run.cancel.check(Stage.AUDIO_OK)
    assert cond.info.width and cond.info.height
    width, height = output_size(cond.info.width, cond.info.height, params.size)
    return PreparedJob(
        job_id=run.key_id,
        params=params,
        seed=seed,
        work_dir=work_dir,
        cond_path=cond.path,
        cond_kind=cond.kind,
        cond_size=(cond.info.width, cond.info.height),
        soundtrack=audio.soundtrack,
        speakers=audio.speakers,
        num_frames=audio.num_frames,
        width=width,
        height=height,
    )


def _engine(run: Run, engine: Engine | None) -> Engine:
    run.report.stage(Stage.PIPELINE_WARM_STARTED)
    with run.timed("load_ms"):
        loaded = engine or load_engine(run.settings)
    run.engine_info = {"name": loaded.name, "version": loaded.version}
    # From here every progress payload names the GPU (the engine has imported torch): a job cancelled on RunPod
    # has no result, and its last payload is then the only word of which GPU it ran on, for its cost.
    run.report.gpu = run.gpu.model_dump()
    run.report.stage(Stage.PIPELINE_WARM_OK, {"engine": loaded.name})
    return loaded


def _embed(run: Run, engine: Engine, job: PreparedJob) -> None:
    """Engines that turn speech into features up front (InfiniteTalk's wav2vec2) do it here, timed on its own."""
    if not engine.embeds:
        return
    run.report.stage(Stage.EMBEDDINGS_STARTED)
    with run.timed("embedding_ms"):
        engine.embed(job, run.report, run.cancel)
    run.report.stage(Stage.EMBEDDINGS_OK)
    run.cancel.check(Stage.EMBEDDINGS_OK)


def _encoder(job: PreparedJob, out_path: Path, partial: PartialVideo | None) -> VideoEncoder | ClipEncoder:
    """One ffmpeg for the whole video, or clip by clip when its partial videos are published as they finish."""
    if partial is None:
        return VideoEncoder(out_path, job.width, job.height, job.soundtrack)
    ends = clip_ends(job.num_frames, job.params)
    return ClipEncoder(out_path, job.width, job.height, job.soundtrack, ends, partial.publish, every_s=partial.every_s)


def _render(run: Run, engine: Engine, job: PreparedJob, partial: PartialVideo | None = None) -> tuple[Path, np.ndarray]:
    """Stream the engine's frames into the encoder; generate_ms and encode_ms are measured apart.

    Returns the MP4 and a representative frame for the thumbnail: the one a third of the way in, past any
    opening stillness, taken as it goes by rather than decoded again from the video.
    """
    out_path = job.work_dir / VIDEO_NAME
    poster: np.ndarray | None = None
    run.report.stage(Stage.GENERATION_STARTED, {"frames": job.num_frames, "width": job.width, "height": job.height})
    frames = engine.generate(job, run.report, run.cancel)
    with _encoder(job, out_path, partial) as encoder:
        while True:
            with run.timed("generate_ms"):
                frame = next(frames, None)
            if frame is None:
                break
            if encoder.frames_written >= job.num_frames:
                raise JobError(
                    ErrorCode.GENERATION_RUNTIME,
                    f"the {run.engine_info['name']} engine produced more than {job.num_frames} frames",
                    at_stage=Stage.GENERATION,
                )
            with run.timed("encode_ms"):
                encoder.write(frame)
            if encoder.frames_written == job.num_frames // 3 + 1:
                poster = frame.copy()
        if encoder.frames_written != job.num_frames:
            raise JobError(
                ErrorCode.GENERATION_RUNTIME,
                f"the {run.engine_info['name']} engine produced {encoder.frames_written} of {job.num_frames} frames",
                at_stage=Stage.GENERATION,
            )
        run.report.stage(Stage.GENERATION_OK)
        run.cancel.check(Stage.GENERATION_OK)
        run.report.stage(Stage.MUXING_STARTED)
        with run.timed("encode_ms"):
            encoder.finish()
    run.warnings.extend(job.warnings)
    run.report.stage(Stage.MUXING_OK)
    assert poster is not None
    return out_path, poster


def _put_with_retry(store: Store, key: str, path: Path, within: str) -> int:
    """Upload with backoff; a store that keeps failing becomes a retryable E_UPLOAD.

    A refusal that trying again cannot change (a key outside `within`) is raised at once.
    """
    delay = UPLOAD_BACKOFF_S
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            return store.put(key, path, within=within)
        except Exception as error:
            if isinstance(error, JobError) and not error.retryable:
                raise JobError(error.code, error.message, at_stage=Stage.UPLOAD_STARTED, retryable=False) from None
            if attempt == UPLOAD_ATTEMPTS:
                message = error.message if isinstance(error, JobError) else f"{type(error).__name__}: {error}"
                raise JobError(
                    ErrorCode.UPLOAD,
                    f"storing {key} failed after {UPLOAD_ATTEMPTS} attempts: {message}",
                    at_stage=Stage.UPLOAD_STARTED,
                    retryable=True,
                ) from None
            log.warning("upload failed, retrying", extra={"key": key, "attempt": attempt, "error": str(error)})
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class _Publisher:
    """Publishes artifacts to the job's store, or inline as base64 when output_config.store is inline."""

    def __init__(self, run: Run, params: JobParams) -> None:
        config = params.output_config
        self.kind = config.store or run.settings.store
        self.prefix = config.prefix
        self.folder = artifact_key(config.prefix, run.key_id, "")
        self.run = run
        self.store: Store | None = None
        if self.kind != "inline":
            self.store = open_store(run.settings, self.kind, config.bucket)

    def key(self, name: str) -> str:
        return artifact_key(self.prefix, self.run.key_id, name)

    def partial_video(self, job: PreparedJob) -> PartialVideo | None:
        """Where a streaming job's video so far is published while it renders; None when progressive preview is
        off (STUDIO_PARTIAL_PREVIEW), the job is one clip, or its output travels inline in the result."""
        clips = len(clip_ends(job.num_frames, job.params))
        if self.store is None or clips < 2 or not self.run.settings.partial_preview:
            return None
        return PartialVideo(self.store, self.folder, self.run.report, clips, self.run.settings.partial_every_s)

    def publish(self, path: Path, name: str) -> Artifact:
        key = self.key(name)
        size = path.stat().st_size
        artifact = Artifact(key=key, mime=content_type(name), bytes=size)
        if self.store is None:
            if size > Limits.MAX_INLINE_OUTPUT_BYTES:
                raise JobError(
                    ErrorCode.INPUT_VALIDATION,
                    f"output_config.store: {name} is {size / 1e6:.1f} MB, over the inline limit of "
                    f"{Limits.MAX_INLINE_OUTPUT_BYTES / 1e6:.0f} MB; use store=volume or store=s3",
                    at_stage=Stage.UPLOAD_STARTED,
                )
            artifact.data_base64 = base64.b64encode(path.read_bytes()).decode("ascii")
            return artifact
        _put_with_retry(self.store, key, path, self.folder)
        artifact.url = self.store.url(key)
        return artifact


def _run_item(run: Run, params: JobParams, engine: Engine | None, work_root: Path) -> dict[str, Any]:
    """Run one item's stages in its own job folder (locked while it runs, removed after); return its JobResult
    dict, or raise JobError."""
    with job_dir(work_root, run.key_id) as work_dir:
        return _run_item_in(run, params, engine, work_dir)


def _run_item_in(run: Run, params: JobParams, engine: Engine | None, work_dir: Path) -> dict[str, Any]:
    seed = resolve_seed(params)
    resolved = resolved_params(params, seed)
    publisher: _Publisher | None = None
    partial: PartialVideo | None = None
    try:
        publisher = _Publisher(run, params)
        job = _prepare(run, params, work_dir, seed)
        loaded = _engine(run, engine)
        _embed(run, loaded, job)
        partial = publisher.partial_video(job)
        video_path, poster = _render(run, loaded, job, partial)

        with run.timed("thumbnail_ms"):
            thumb_path = make_thumbnail(poster, work_dir / THUMB_NAME)
        run.report.stage(Stage.THUMBNAIL_OK)
        run.cancel.check(Stage.THUMBNAIL_OK)

        run.report.stage(Stage.UPLOAD_STARTED)
        with run.timed("upload_ms"):
            published = publisher.publish(video_path, VIDEO_NAME)
            thumbnail = publisher.publish(thumb_path, THUMB_NAME)
        video = VideoInfo(
            **published.model_dump(),
            duration_s=round(job.num_frames / FPS, 3),
            fps=FPS,
            width=job.width,
            height=job.height,
            frames=job.num_frames,
        )
        with run.timed("metadata_ms"):
            run.finish_timing()
            outputs = {
                "video": video.model_dump(exclude={"url", "data_base64"}),
                "thumbnail": thumbnail.model_dump(exclude={"url", "data_base64"}),
                "metadata": {"key": publisher.key(METADATA_NAME), "mime": "application/json"},
            }
            record = run.metadata(params, resolved, outputs)
            meta_path = work_dir / METADATA_NAME
            meta_path.write_text(record.model_dump_json(indent=2))
        with run.timed("upload_ms"):
            metadata = publisher.publish(meta_path, METADATA_NAME)
        run.finish_timing()
        result = JobResult(
            job_id=run.job_id,
            item_id=run.item_id,
            engine=run.engine_info,
            video=video,
            thumbnail=thumbnail,
            metadata=metadata,
            timings=run.timings,
            params=resolved,
            warnings=run.warnings,
            gpu=run.gpu,
        )
        run.report.stage(Stage.COMPLETED, {"video": video.key})
        log.info("job completed", extra={"timings": run.timings, "item_id": run.item_id})
        return result.model_dump(mode="json", exclude_none=True)
    except JobError as error:
        run.finish_timing()
        if error.code == ErrorCode.UPLOAD and (kept := _keep_unpublished(run, work_dir)) is not None:
            error.message += f"; the finished video is kept at {kept} until a retry publishes it"
        if partial is not None and error.code == ErrorCode.CANCELLED:
            run.partial_video = partial.end(keep_latest=True)
        _publish_error_metadata(run, params, resolved, publisher, work_dir, error)
        raise
    finally:
        if partial is not None:
            partial.end(keep_latest=False)  # however the job ended; a no-op once a cancel kept its video


def _keep_unpublished(run: Run, work_dir: Path) -> Path | None:
    """When the store fails, move the rendered files out of the temp dir so the work is not lost."""
    files = [work_dir / name for name in ARTIFACT_NAMES if (work_dir / name).exists()]
    if not files:
        return None
    target = run.settings.data_dir / "unpublished" / checked_key(run.key_id)
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.move(path, target / path.name)
    return target


def _publish_error_metadata(
    run: Run,
    params: JobParams,
    resolved: dict[str, Any],
    publisher: _Publisher | None,
    work_dir: Path,
    error: JobError,
) -> None:
    """Leave a metadata.json for a failed job too, so the catalogue can list it; best effort."""
    if publisher is None or publisher.store is None or error.code == ErrorCode.UPLOAD:
        return
    try:
        outputs = {"metadata": {"key": publisher.key(METADATA_NAME), "mime": "application/json"}}
        if run.partial_video:
            outputs["partial_video"] = {k: v for k, v in run.partial_video.items() if k != "url"}
        record = run.metadata(params, resolved, outputs, error=_error_dict(error, run.settings))
        path = work_dir / "metadata.error.json"
        path.write_text(record.model_dump_json(indent=2))
        publisher.store.put(publisher.key(METADATA_NAME), path, within=publisher.folder)
    except Exception as failure:  # the job's own error is what the caller needs; this one is only logged
        log.warning("could not publish the error metadata", extra={"error": str(failure)})


def _item_output(run: Run, params: JobParams, engine: Engine | None) -> dict[str, Any]:
    """Run one item and turn any failure into an error output."""
    at_stage = Stage.VALIDATION_OK
    try:
        return _run_item(run, params, engine, run.settings.work_root)
    except JobError as error:
        failure = error
    except Exception as error:
        log.exception("unexpected failure")
        failure = _unexpected(error, run.report.last.get("stage", at_stage), run.settings.work_root)
    reached = run.report.last.get("stage", at_stage)
    run.report.stage(Stage.ERROR, {"code": failure.code, "at_stage": failure.at_stage}, pct=Stage.PCT.get(reached, 0.0))
    log.warning("job failed", extra={"code": failure.code, "at_stage": failure.at_stage, "item_id": run.item_id})
    return JobFailure.of(
        _error_dict(failure, run.settings),
        job_id=run.job_id,
        item_id=run.item_id or None,
        engine=run.engine_info or {"name": run.settings.engine},
        partial_video=run.partial_video or None,
        timings=run.timings,
        warnings=run.warnings,
        gpu=run.gpu.model_dump(),
    )


def run_job(
    raw_input: Any,
    job_id: str,
    *,
    settings: Settings,
    sink: ProgressSink,
    cancel: CancelToken | None = None,
    engine: Engine | None = None,
    endpoint_id: str | None = None,
    extra_roots: tuple[Path, ...] = (),
    created_at: str | None = None,
) -> dict[str, Any]:
    """Run a job (one video, or a batch one after another) and return its output; never raises.

    Success: a JobResult dict. Failure: `{status: error, error: {code, message, retryable, at_stage}, ...}`.
    Batch: `{status: success|partial|error, items: [...]}`, with `error` set when no item succeeded.
    """
    cancel = cancel or CancelToken()
    created_at = created_at or utc_now()
    token = logs.current_job.set(job_id)
    logs.register_secrets(settings.secrets())
    started = time.perf_counter()
    try:
        first = Reporter(sink, job_id)
        first.stage(Stage.VALIDATION_STARTED)
        try:
            if not is_key_part(job_id):
                raise JobError(
                    ErrorCode.INPUT_VALIDATION, f"job id {job_id!r}: {KEY_PART_RULE}", at_stage=Stage.VALIDATION_STARTED
                )
            parsed = parse_job_input(raw_input)
        except JobError as error:
            first.stage(Stage.ERROR, {"code": error.code})
            validate_ms = round((time.perf_counter() - started) * 1000)
            return JobFailure.of(
                _error_dict(error, settings),
                job_id=job_id,
                timings={"validate_ms": validate_ms, "total_ms": validate_ms},
            )
        validate_ms = round((time.perf_counter() - started) * 1000)
        items = parsed.batch if isinstance(parsed, BatchInput) else [parsed]
        outputs = []
        for index, params in enumerate(items):
            item_id = (params.id or f"item-{index:03d}") if isinstance(parsed, BatchInput) else None
            report = Reporter(sink, job_id, item_index=index, item_count=len(items), item_id=item_id)
            run = Run(job_id, item_id, settings, report, cancel, endpoint_id, created_at, extra_roots)
            run.timings["validate_ms"] = validate_ms
            report.stage(Stage.VALIDATION_OK)
            outputs.append(_item_output(run, params, engine))
        if not isinstance(parsed, BatchInput):
            return outputs[0]
        return _batch_output(job_id, outputs, started)
    finally:
        logs.current_job.reset(token)


def _batch_output(job_id: str, outputs: list[dict[str, Any]], started: float) -> dict[str, Any]:
    failed = [item for item in outputs if item.get("status") == "error"]
    status = "success" if not failed else ("error" if len(failed) == len(outputs) else "partial")
    result: dict[str, Any] = {
        "status": status,
        "job_id": job_id,
        "items": outputs,
        "timings": {"total_ms": round((time.perf_counter() - started) * 1000)},
    }
    if status == "error":
        first = failed[0]["error"]
        result["error"] = {**first, "message": f"all {len(outputs)} batch items failed; first: {first['message']}"}
    return result
