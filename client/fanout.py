"""Long speech rendered on many workers at once: split at pauses, one ordinary job per part, joined into one run.

`plan_split` cuts the speech (worker/split.py) and uploads each part's slices; `SplitRun` sends the parts to the
endpoint, at most `parallel` at a time, follows them, cancels or retries them, and joins the finished parts'
videos into one video published under the run's own id. The plan and every part's job id and state are written
to the bucket beside the run (`{prefix}/{run_id}/split.json`) whenever they change, and the run is in the
catalogue from the start, so a process restarted mid-way (`SplitRun.resume`) keeps polling the same jobs and
joins them. See docs/split.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from catalog.catalog import Catalog
from catalog.records import run_id_for
from client.api import EndpointError, JobState, StudioClient, prepare_input, upload_media
from client.split_lease import Lease, holder_name
from core.contract import (
    AUDIO_SAMPLE_RATE,
    FPS,
    Defaults,
    ErrorCode,
    GpuInfo,
    InputDescriptor,
    JobError,
    JobMetadata,
    JobParams,
    JobStatus,
    SplitDefaults,
    SplitPart,
    SplitPlan,
    Stage,
    output_status,
    parse_job_input,
    storable_params,
    utc_now,
)
from core.prices import PriceTable, run_cost
from core.settings import Settings
from core.store import Store
from worker.inputs import fetch_audio, fetch_visual
from worker.split import (
    CHARS_PER_S,
    Joined,
    check_lengths,
    encode_soundtrack,
    join_videos,
    part_bounds,
    plan_cuts,
    silent,
    slice_video,
    slice_wav,
    speech_tracks,
    split_text,
)


def _invalid(field: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field}: {message}", at_stage=Stage.VALIDATION_STARTED)


TRANSFER_THREADS = 4
"""Uploads and downloads of the parts' media run this many at a time: each mostly waits on the disk or the
bucket, and one after the other they were a good share of the split and the join (docs/split.md, Measured)."""


def default_parallel(client: StudioClient) -> int:
    """How many parts to render at once: the endpoint's worker count where its API says (the local endpoint's
    /health, RunPod's REST `workers.max`), else SplitDefaults.PARALLEL."""
    try:
        if client.settings.is_local_endpoint:
            workers = client.health().get("workers") or {}
            # RunPod's /health terms: a ready worker is counted as `idle` and again as `ready`.
            count = sum(int(value or 0) for name, value in workers.items() if name != "ready")
        elif client.settings.api_key:
            from client.runpod_rest import REST_API, RunPodRest

            rest = RunPodRest(client.settings.api_key, client.settings.rest_base_url or REST_API)
            count = rest.endpoint(client.settings.endpoint_id).workers.max
        else:
            count = 0
    except Exception:  # any failure to learn the count falls back to the default, as documented
        count = 0
    return count if count > 0 else SplitDefaults.PARALLEL


def speech_seconds(job_input: dict[str, Any], settings: Settings) -> float | None:
    """How long a job's speech is (the longer person's for two), by ffprobe; for text to speech, its estimate
    (CHARS_PER_S); None when a reference cannot be read here (a URL is not fetched for this)."""
    from worker.media import probe

    tts = job_input.get("tts_audio")
    if isinstance(tts, dict) and isinstance(tts.get("text"), str):
        return len(tts["text"]) / CHARS_PER_S
    audio = job_input.get("cond_audio")
    if not isinstance(audio, dict):
        return None
    lengths = []
    for person in ("person1", "person2"):
        ref = audio.get(person)
        if isinstance(ref, str) and Path(ref).is_file():
            lengths.append(probe(Path(ref), field=f"cond_audio.{person}").duration_s or 0.0)
    if not lengths:
        return None
    return sum(lengths) if job_input.get("audio_type", "add") == "add" else max(lengths)


def _roots(ref: str) -> tuple[Path, ...]:
    """The folder of a local file the person named, so the worker's path rule lets this process read it."""
    path = Path(ref)
    return (path.resolve().parent,) if path.is_absolute() and path.is_file() else ()


def plan_split(
    job_input: dict[str, Any],
    settings: Settings,
    store: Store,
    *,
    part_s: float = SplitDefaults.PART_S,
    min_part_s: float = SplitDefaults.MIN_PART_S,
    parallel: int = SplitDefaults.PARALLEL,
    run_id: str | None = None,
) -> SplitPlan:
    """Split one job's speech into parts and upload each part's media; the plan, not yet sent or saved.

    Recorded speech is cut inside pauses of the mixed speech (worker.split.plan_cuts), each part carrying every
    person's slice; a video input is sliced to each part's time; text to speech is cut at sentence ends. Each
    part's job is the run's own input with its slices, in streaming mode, publishing under the run's folder.
    """
    params = parse_job_input(job_input)
    if not isinstance(params, JobParams):
        raise _invalid("batch", "a batch cannot be split: split each of its jobs instead")
    check_lengths(part_s, min_part_s, Defaults.MAX_FRAME_NUM if params.mode == "clip" else params.max_frame_num)
    run_id = run_id or f"split-{uuid.uuid4().hex[:16]}"
    output = dict(job_input.get("output_config") or {})
    prefix = str(output.get("prefix") or Defaults.STORE_PREFIX).strip("/")
    folder = f"{prefix}/{run_id}"
    base = {
        **job_input,
        "mode": "streaming",
        "max_frame_num": max(params.max_frame_num, round(part_s * FPS) + 1),
        "output_config": {**output, "prefix": f"{folder}/parts"},
    }
    warnings: list[str] = []
    parts: list[SplitPart] = []
    with tempfile.TemporaryDirectory(prefix="studio-split-", dir=settings.tmp_dir) as tmp:
        work = Path(tmp)
        if params.tts_audio is not None:
            texts = split_text(params.tts_audio.text, part_s)
            start = 0.0
            for index, text in enumerate(texts):
                seconds = len(text) / CHARS_PER_S
                tts = {**job_input["tts_audio"], "text": text}
                parts.append(
                    SplitPart(index=index, start_s=start, end_s=start + seconds, job_input={**base, "tts_audio": tts})
                )
                start += seconds
            speech_s, soundtrack_key = start, None
        else:
            assert params.cond_audio is not None
            refs = [r for r in (params.cond_audio.person1, params.cond_audio.person2) if r]
            # The picture is fetched and checked while the speech is decoded; the parts' slices are made and
            # uploaded a few at a time (TRANSFER_THREADS), each part's files its own.
            with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
                cond = params.cond_video
                visual = pool.submit(fetch_visual, cond, "cond_video", work, settings, _roots(cond), params.bbox)
                fetched = [
                    fetch_audio(ref, f"cond_audio.person{n + 1}", work, settings, _roots(ref))
                    for n, ref in enumerate(refs)
                ]
                speech = speech_tracks(params, [item.path for item in fetched], work)
                warnings.extend(speech.warnings)
                cuts, cut_warnings = plan_cuts(speech.mix, part_s, min_part_s)
                warnings.extend(cut_warnings)
                video = visual.result()
                speech_s = speech.mix.size / AUDIO_SAMPLE_RATE
                soundtrack_key = f"{folder}/speech.wav"
                stored = pool.submit(store.put, soundtrack_key, speech.soundtrack)

                def make_part(index: int, start: int, end: int) -> tuple[SplitPart, str | None]:
                    part_input, note = _part_media(base, params, speech.tracks, start, end, index, store)
                    if video.kind == "video":
                        sliced = slice_video(
                            video.path, start / AUDIO_SAMPLE_RATE, (end - start) / AUDIO_SAMPLE_RATE,
                            work / f"v{index}.mp4",
                        )  # fmt: skip
                        part_input["cond_video"] = upload_media(store, sliced.read_bytes(), f"part-{index + 1:03d}.mp4")
                    in_pause = cuts[index].in_pause if index < len(cuts) else True
                    part = SplitPart(
                        index=index,
                        start_s=round(start / AUDIO_SAMPLE_RATE, 4),
                        end_s=round(end / AUDIO_SAMPLE_RATE, 4),
                        in_pause=in_pause,
                        job_input=part_input,
                    )
                    return part, note

                bounds = part_bounds(speech.mix.size, cuts)
                made = list(pool.map(make_part, range(len(bounds)), *zip(*bounds, strict=True)))
                stored.result()
            parts = [part for part, _ in made]
            warnings.extend(note for _, note in made if note)
    remote = not settings.is_local_endpoint
    # The photo (and any other local file) goes to the store, where the worker can fetch it.
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        prepared = list(pool.map(lambda part: prepare_input(part.job_input, store, remote_worker=remote), parts))
    for part, job in zip(parts, prepared, strict=True):
        part.job_input = job
    return SplitPlan(
        run_id=run_id,
        endpoint_id=settings.endpoint_id,
        prefix=prefix,
        created_at=utc_now(),
        prompt=params.prompt,
        params=storable_params(job_input),
        speech_s=round(speech_s, 4),
        soundtrack_key=soundtrack_key,
        part_s=part_s,
        min_part_s=min_part_s,
        parallel=parallel,
        parts=parts,
        warnings=warnings,
    )


def _part_media(
    base: dict[str, Any],
    params: JobParams,
    tracks: list[Any],
    start: int,
    end: int,
    index: int,
    store: Store,
) -> tuple[dict[str, Any], str | None]:
    """One part's job input with each person's slice uploaded; a person silent throughout the part is left out
    (the worker refuses silent speech), the other moved to person1 with its face box. Returns the note to warn."""
    speaking = []
    for person, track in enumerate(tracks):
        if len(tracks) == 1 or not silent(track[start:end]):
            name = f"part-{index + 1:03d}-{person + 1}.wav"
            speaking.append((person + 1, upload_media(store, slice_wav(track, start, end), name)))
    if not speaking:  # nobody audible: send person 1, so the worker says why in its own words
        speaking = [(1, upload_media(store, slice_wav(tracks[0], start, end), f"part-{index + 1:03d}-1.wav"))]
    part = dict(base)
    part["cond_audio"] = {f"person{n + 1}": ref for n, (_, ref) in enumerate(speaking)}
    part["audio_type"] = "para"  # the slices are already laid out in time, as the whole's `add` or `para` had them
    note = None
    if len(tracks) == 2 and len(speaking) == 1:
        who = speaking[0][0]
        boxes = base.get("bbox")
        if isinstance(boxes, dict) and boxes.get(f"person{who}"):
            part["bbox"] = {"person1": boxes[f"person{who}"]}
        else:
            part.pop("bbox", None)
            note = (
                f"part {index + 1}: only person {who} speaks, so it is rendered with one speaker; without face "
                "boxes (bbox) the engine picks the face to animate itself"
            )
    return part, note


OnChange = Callable[["SplitRun"], None]
POLL_S = 1.0

_ENCODING: dict[str, threading.Thread] = {}
"""The soundtracks being encoded in this process, by their key: a dashboard makes a new SplitRun for the same run
at every tick, and each must find the encoding already under way rather than start another."""
_ENCODING_LOCK = threading.Lock()


def encoded_soundtrack_key(soundtrack_key: str) -> str:
    """Where the run's speech, encoded for the joined video (worker.split.encode_soundtrack), waits for the join:
    beside the speech (`{prefix}/{run_id}/speech.m4a`); the join deletes it once it has used it."""
    return f"{soundtrack_key.rsplit('.', 1)[0]}.m4a"


class SplitRun:
    """A split run in flight: sends its parts, follows them, and joins them; every change is saved to the bucket.

    `progress` holds each running part's latest progress payload (by index), for a bar per part; it is not saved
    (a restarted process reads the next poll's).
    """

    def __init__(self, plan: SplitPlan, client: StudioClient, store: Store, catalog: Catalog | None = None) -> None:
        self.plan = plan
        self.client = client
        self.store = store
        self.catalog = catalog
        self.prices = PriceTable.from_settings(client.settings)
        self.progress: dict[int, dict[str, Any]] = {}

    # --- persistence -----------------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the plan to `{prefix}/{run_id}/split.json` (the source of truth a restart reads), after taking in
        what another process wrote there since this one read it (`_take_in`)."""
        self._take_in()
        self.store.put_bytes(self.plan.plan_key, self.plan.model_dump_json(indent=1).encode("utf-8"))

    def _take_in(self) -> None:
        """A Cancel or a part's Retry pressed in a dashboard that does not drive this run (another process holds
        its lease, client/split_lease.py) is written to the bucket's plan while the driver holds an older copy:
        the driver's next save must not write over it, or a cancelled run would go on sending its pending parts
        and a retried part would stay failed. So a stored cancel cancels this copy too (its jobs sent meanwhile
        included), and a part the stored plan retried more often than this copy is taken as stored."""
        try:
            stored = SplitPlan.model_validate_json(self.store.get(self.plan.plan_key))
        except (JobError, ValidationError):  # none yet (the first save), or unreadable: this copy is what there is
            return
        if stored.run_id != self.plan.run_id or len(stored.parts) != len(self.plan.parts):
            return
        if stored.state == "cancelled" and self.plan.state != "cancelled":
            self._stop_parts()
            return
        retried = False
        for index, (mine, theirs) in enumerate(zip(self.plan.parts, stored.parts, strict=True)):
            if len(theirs.earlier_job_ids) > len(mine.earlier_job_ids):
                self.plan.parts[index] = theirs
                retried = True
        if retried and self.plan.state == "failed":
            self.plan.state = "running"

    @classmethod
    def resume(
        cls, run_id: str, client: StudioClient, store: Store, catalog: Catalog | None = None, *, prefix: str = ""
    ) -> SplitRun:
        """The run `run_id` as its split.json in the bucket left it, to go on polling, sending and joining."""
        key = f"{(prefix or Defaults.STORE_PREFIX).strip('/')}/{run_id}/split.json"
        try:
            data = store.get(key)
        except Exception as error:
            raise _invalid("run_id", f"no split run {run_id!r} in the store ({key}): {error}") from None
        return cls(SplitPlan.model_validate_json(data), client, store, catalog)

    def record_start(self) -> None:
        """Put the run in the catalogue as in progress (once: a second call changes nothing)."""
        if self.catalog is not None:
            self.catalog.record_split(self.plan)

    # --- the parts -------------------------------------------------------------------------------------------

    def running(self) -> list[SplitPart]:
        return [p for p in self.plan.parts if p.state in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)]

    @property
    def finished(self) -> bool:
        """Every part reached a final state."""
        return all(p.state in JobStatus.FINAL for p in self.plan.parts)

    def send_ready(self) -> bool:
        """Send pending parts while fewer than `parallel` run; returns whether any was sent."""
        sent = False
        for part in self.plan.parts:
            if len(self.running()) >= self.plan.parallel:
                break
            if part.state == "pending":
                timeout = self.plan.execution_timeout_s
                part.job_id = self.client.submit(part.job_input, execution_timeout_ms=timeout and timeout * 1000)
                part.state, part.error = "IN_QUEUE", None
                part.attempts += 1
                sent = True
                self.save()
        if sent:
            self.encode_soundtrack_soon()
        return sent

    def encode_soundtrack_soon(self) -> threading.Thread | None:
        """Encode the run's speech for the join (worker.split.encode_soundtrack) on a thread of its own while the
        parts render, into `encoded_soundtrack_key` in the store: it is most of the join's work, and the machine
        sending the parts is otherwise idle while they render. Once per run in this process, and not where it is
        already stored; the thread under way, if any, is returned. Whatever goes wrong there (a stopped
        process, a full disk), the join encodes the speech itself, to the same bytes."""
        key = self.plan.soundtrack_key
        if key is None:
            return None
        with _ENCODING_LOCK:
            thread = _ENCODING.get(key)
            if thread is not None and thread.is_alive():
                return thread
            if self.store.exists(encoded_soundtrack_key(key)):
                return None
            thread = threading.Thread(target=self._encode_soundtrack, args=(key,), name=f"soundtrack {key}")
            _ENCODING[key] = thread
            thread.start()
            return thread

    def _encode_soundtrack(self, key: str) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="studio-sound-", dir=self.client.settings.tmp_dir) as tmp:
                speech = self.store.download(key, Path(tmp) / "speech.wav")
                self.store.put(encoded_soundtrack_key(key), encode_soundtrack(speech, Path(tmp) / "speech.m4a"))
        except Exception:  # the join encodes it itself (see encode_soundtrack_soon)
            pass
        finally:
            with _ENCODING_LOCK:
                if _ENCODING.get(key) is threading.current_thread():
                    del _ENCODING[key]

    def _apply(self, part: SplitPart, state: JobState) -> bool:
        if state.status == JobStatus.IN_PROGRESS and state.progress:
            self.progress[part.index] = state.progress
        status = state.status if state.status in JobStatus.ALL else part.state
        if status == JobStatus.COMPLETED:
            status = output_status(state.output)
        if status == part.state and status not in JobStatus.FINAL:
            return False
        part.state = status  # type: ignore[assignment]
        if status == JobStatus.COMPLETED and isinstance(state.output, dict):
            output = state.output
            part.video_key = (output.get("video") or {}).get("key")
            part.thumb_key = (output.get("thumbnail") or {}).get("key")
            engine, gpu = output.get("engine"), output.get("gpu")
            part.engine = {str(k): str(v) for k, v in engine.items()} if isinstance(engine, dict) else None
            try:  # the endpoint's output is outside input: a malformed `gpu` is left out, not trusted
                part.gpu = GpuInfo.model_validate(gpu) if gpu is not None else None
            except ValidationError:
                part.gpu = None
            total = (output.get("timings") or {}).get("total_ms")
            part.gpu_ms = state.execution_ms if state.execution_ms is not None else total
            row = {
                "engine": (part.engine or {}).get("name"),
                "gpu_name": (output.get("gpu") or {}).get("name"),
                "gpu_count": (output.get("gpu") or {}).get("count"),
                "execution_ms": part.gpu_ms,
            }
            part.cost_usd = run_cost(row, self.prices)
            self.progress[part.index] = {"stage": "completed", "pct": 100.0}
        elif status in JobStatus.FINAL:
            error = state.error if isinstance(state.error, dict) else {"message": str(state.error or status)}
            part.error = error
        return True

    def poll(self) -> bool:
        """Ask the endpoint about every running part; returns whether any changed (and then saves)."""
        changed = False
        for part in self.running():
            assert part.job_id is not None
            changed |= self._apply(part, self.client.status(part.job_id))
        if changed:
            self.save()
        return changed

    def cancel(self) -> None:
        """Stop every part: running ones are cancelled on the endpoint, pending ones never sent."""
        self._stop_parts()
        self.save()
        if self.catalog is not None:
            self.catalog.apply_status(self.plan.run_id, JobStatus.CANCELLED, error={"code": ErrorCode.CANCELLED})

    def _stop_parts(self) -> None:
        """This copy of the plan cancelled: running parts cancelled on the endpoint, the rest never sent."""
        for part in self.plan.parts:
            if part.state in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS) and part.job_id:
                # It may have just finished: it is marked cancelled all the same, its video unused.
                with contextlib.suppress(EndpointError):
                    self.client.cancel(part.job_id)
            if part.state not in JobStatus.FINAL:
                part.state = "CANCELLED"
        self.plan.state = "cancelled"

    def retry(self, index: int) -> None:
        """Send a failed, timed-out or cancelled part again, as a new job, leaving every other part as it is."""
        part = self.plan.parts[index]
        if part.state not in (*JobStatus.FAILURES, JobStatus.CANCELLED):
            raise _invalid("part", f"part {index + 1} is {part.state}: only a failed or cancelled part is retried")
        part.earlier_job_ids += [part.job_id] if part.job_id else []
        part.state, part.error, part.job_id = "pending", None, None
        self.plan.state = "running"
        self.save()
        if self.catalog is not None:
            self.catalog.reopen(self.plan.run_id)

    def failed(self) -> list[SplitPart]:
        return [p for p in self.plan.parts if p.state in JobStatus.FINAL and p.state != JobStatus.COMPLETED]

    def step(self) -> bool:
        """One round: poll running parts, send what may start; returns whether anything changed."""
        changed = self.poll()
        return self.send_ready() or changed

    def run(self, on_change: OnChange | None = None, *, poll_s: float = POLL_S, join: bool = True) -> SplitPlan:
        """Send, follow and (with `join`) join the parts; return the plan as it ends: `joined`, or `failed` with
        the failed parts named in their `error` (retry them with `retry(i)`, then `run` again)."""
        if self.plan.state == "joined":
            return self.plan
        self.record_start()
        self.save()
        lease = Lease(self.store, self.plan.folder, holder_name("submit"))  # a dashboard's driver then waits
        while True:
            lease.keep(take=True)
            changed = self.step()
            if on_change is not None and (changed or self.progress):
                on_change(self)
            if self.finished:
                break
            time.sleep(poll_s)
        if self.failed():
            self.plan.state = "failed" if self.plan.state != "cancelled" else "cancelled"
            self.save()
            if self.catalog is not None and self.plan.state == "failed":
                names = ", ".join(str(p.index + 1) for p in self.failed())
                self.catalog.apply_status(
                    self.plan.run_id,
                    JobStatus.FAILED,
                    output={"status": "error", "error": {"code": ErrorCode.GENERATION_RUNTIME,
                                                         "message": f"part(s) {names} failed: retry them"}},
                )  # fmt: skip
            lease.release()
            return self.plan
        if join:
            self.join()
        lease.release()
        return self.plan

    # --- the join --------------------------------------------------------------------------------------------

    def join(self) -> str:
        """Join the finished parts into `{prefix}/{run_id}/video.mp4` with one thumbnail and one metadata.json,
        catalogue the run, and drop the parts' own files; returns the video's key. Joining a run already joined
        gives the same file and changes nothing."""
        plan = self.plan
        if plan.state == "joined" and plan.video_key:
            return plan.video_key
        if not self.finished or self.failed():
            raise _invalid("parts", "every part must be done before the join")
        started = time.monotonic()
        encoding = None
        if plan.soundtrack_key:
            with _ENCODING_LOCK:
                encoding = _ENCODING.get(plan.soundtrack_key)
        if encoding is not None:  # the speech is being encoded for this join: waiting is quicker than starting over
            encoding.join()
        with (
            tempfile.TemporaryDirectory(prefix="studio-join-", dir=self.client.settings.tmp_dir) as tmp,
            ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool,
        ):
            work = Path(tmp)
            fetching = []
            for part in plan.parts:
                assert part.video_key is not None
                fetching.append(pool.submit(self.store.download, part.video_key, work / f"part-{part.index:03d}.mp4"))
            thumb = work / "thumb.jpg"
            first = plan.parts[0]
            thumb_fetched = pool.submit(self.store.download, first.thumb_key, thumb) if first.thumb_key else None
            soundtrack = encoded = None
            if plan.soundtrack_key:
                sound_fetched = pool.submit(self.store.download, plan.soundtrack_key, work / "speech.wav")
                aac_key = encoded_soundtrack_key(plan.soundtrack_key)
                if self.store.exists(aac_key):
                    encoded = self.store.download(aac_key, work / "speech.m4a")
                soundtrack = sound_fetched.result()
            videos = [fetched.result() for fetched in fetching]
            joined = join_videos(videos, work / "video.mp4", work / "join", soundtrack, encoded=encoded)
            if thumb_fetched is not None:
                thumb_fetched.result()
            keys = {name: f"{plan.folder}/{name}" for name in ("video.mp4", "thumb.jpg", "metadata.json")}
            video_put = pool.submit(self.store.put, keys["video.mp4"], joined.path)
            thumb_bytes = self.store.put(keys["thumb.jpg"], thumb) if thumb.exists() else 0
            video_bytes = video_put.result()
            warnings = [*plan.warnings, *([joined.note] if joined.note else [])]
            if soundtrack is not None and abs(joined.duration_s - plan.speech_s) > 1 / FPS:
                warnings.append(f"the joined video is {joined.duration_s:.3f} s, the speech {plan.speech_s:.3f} s long")
            join_ms = round((time.monotonic() - started) * 1000)
            metadata = self._metadata(joined, keys, video_bytes, thumb_bytes, warnings, join_ms, soundtrack)
            body = metadata.model_dump_json(indent=1).encode("utf-8")
            self.store.put_bytes(keys["metadata.json"], body)
        plan.state, plan.video_key = "joined", keys["video.mp4"]
        self.save()
        if self.catalog is not None:
            self.catalog.upsert_metadata(metadata.model_dump(mode="json"), keys["metadata.json"])
            # A dashboard on the same catalogue may have taken the parts in as runs of their own while they ran
            # (the local endpoint's listing, the bucket's metadata.json): the run stands for them now.
            for part in plan.parts:
                for job_id in (*part.earlier_job_ids, *([part.job_id] if part.job_id else [])):
                    self.catalog.forget(run_id_for(job_id))
        self._drop_parts()
        if plan.soundtrack_key:
            with contextlib.suppress(Exception):  # a leftover is harmless: the next join would use it as it is
                self.store.delete(encoded_soundtrack_key(plan.soundtrack_key))
        return keys["video.mp4"]

    def _metadata(
        self,
        joined: Joined,
        keys: dict[str, str],
        video_bytes: int,
        thumb_bytes: int,
        warnings: list[str],
        join_ms: int,
        soundtrack: Path | None,
    ) -> JobMetadata:
        plan = self.plan
        first = plan.parts[0]
        gpu_ms = sum(p.gpu_ms or 0 for p in plan.parts)
        costs = [p.cost_usd for p in plan.parts]
        inputs = []
        if soundtrack is not None:
            data = soundtrack.read_bytes()
            inputs.append(
                InputDescriptor(
                    field="cond_audio",
                    source="path",
                    kind="audio",
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    duration_s=plan.speech_s,
                    format="wav",
                )
            )
        width, height = joined.width, joined.height
        outputs: dict[str, dict[str, Any]] = {
            "video": {"key": keys["video.mp4"], "mime": "video/mp4", "bytes": video_bytes,
                      "duration_s": round(joined.duration_s, 3), "fps": FPS, "width": width, "height": height,
                      "frames": joined.frames},
            "metadata": {"key": keys["metadata.json"], "mime": "application/json"},
        }  # fmt: skip
        if thumb_bytes:
            outputs["thumbnail"] = {"key": keys["thumb.jpg"], "mime": "image/jpeg", "bytes": thumb_bytes}
        return JobMetadata(
            job_id=plan.run_id,
            endpoint_id=plan.endpoint_id,
            status="success",
            engine=first.engine or {},
            prompt=plan.prompt,
            params=plan.params,  # the run's own input, as Reuse fills it again (the parts are in `parts`)
            inputs=inputs,
            outputs=outputs,
            timings={"total_ms": gpu_ms, "wall_ms": _since(plan.created_at), "join_ms": join_ms},
            created_at=plan.created_at,
            started_at=plan.created_at,
            finished_at=utc_now(),
            warnings=warnings,
            gpu=first.gpu,
            parts=[
                p.model_copy(update={"job_input": {}, "cost_usd": None if None in costs else p.cost_usd})
                for p in plan.parts
            ],
        )  # fmt: skip

    def leading_done(self) -> int:
        """How many parts from the first on are finished with a video (the part of the speech already rendered)."""
        count = 0
        for part in self.plan.parts:
            if part.state != JobStatus.COMPLETED or not part.video_key:
                break
            count += 1
        return count

    def join_so_far(self) -> str | None:
        """The video so far, for Live to play while later parts render: the leading finished parts joined with
        their own sound into `{folder}/parts/so-far-{k}.mp4` (join_videos; no re-encoding where encodings match).
        Made once per new leading part (an existing key is returned as it is), the earlier one deleted; under
        `parts/`, so the final join drops it. None before the first part is done or once every part is."""
        count = self.leading_done()
        if count == 0 or count == len(self.plan.parts):
            return None
        key = f"{self.plan.folder}/parts/so-far-{count:03d}.mp4"
        if self.store.exists(key):
            return key
        with tempfile.TemporaryDirectory(prefix="studio-so-far-", dir=self.client.settings.tmp_dir) as tmp:
            work = Path(tmp)
            videos = []
            for part in self.plan.parts[:count]:
                assert part.video_key is not None
                videos.append(self.store.download(part.video_key, work / f"part-{part.index:03d}.mp4"))
            joined = join_videos(videos, work / "so-far.mp4", work / "join", None)
            self.store.put(key, joined.path)
        for earlier in range(1, count):
            with contextlib.suppress(Exception):  # an earlier video so far already gone is fine
                self.store.delete(f"{self.plan.folder}/parts/so-far-{earlier:03d}.mp4")
        return key

    def _drop_parts(self) -> None:
        """Delete the parts' own files (videos, thumbnails, metadata) once the joined run is published: the run's
        metadata.json lists each part, and a sync of the bucket then finds one run, not one per part."""
        for key in list(self.store.list(f"{self.plan.folder}/parts/")):
            self.store.delete(key)


def _since(moment: str) -> int:
    """Milliseconds from an ISO time (the plan's creation) to now: the run's wall time, parts in parallel."""
    import datetime as dt

    started = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return max(0, round((dt.datetime.now(dt.UTC) - started).total_seconds() * 1000))


def describe_plan(plan: SplitPlan) -> str:
    """The plan in a few lines for a terminal: each part's span and where its cut fell."""
    lines = [f"split {plan.speech_s:.1f} s of speech into {len(plan.parts)} parts, {plan.parallel} at a time:"]
    for part in plan.parts:
        where = "" if part.in_pause else " (cut outside a pause)"
        lines.append(f"  part {part.index + 1}: {part.start_s:7.2f} s - {part.end_s:7.2f} s{where}")
    return "\n".join([*lines, *(f"warning: {w}" for w in plan.warnings)])


def split_estimate(
    job_input: dict[str, Any],
    speech_s: float,
    *,
    settings: Settings,
    runs: list[dict[str, Any]],
    parallel: int,
    part_s: float = SplitDefaults.PART_S,
    gpu: str | None = None,
) -> dict[str, Any]:
    """Time on one worker against the same speech split into parts on `parallel` workers, as the estimate
    (client/estimate.py) sees each job; and each part's policy.executionTimeout.

    The parts are taken as equal (ceil(speech / part_s) of them): the cuts at pauses move each by a few seconds.
    With N workers the parts run N at a time, so the wall time is that of the busiest worker; the GPU time, and so
    the cost, is the parts' sum (a model load per part makes it a little more than one job's).
    """
    from client.estimate import estimate_job

    count = max(1, math.ceil(speech_s / part_s))
    length = speech_s / count
    whole = estimate_job(job_input, speech_s, settings=settings, runs=runs, gpu=gpu)
    part = estimate_job(job_input, length, settings=settings, runs=runs, gpu=gpu)
    rounds = math.ceil(count / max(1, parallel))

    def times(value: float | None, factor: int) -> float | None:
        return None if value is None else round(value * factor, 1)

    return {
        "parts": count,
        "part_s": round(length, 1),
        "parallel": parallel,
        "one_worker_s": whole.seconds,
        "split_wall_s": times(part.seconds, rounds),
        "split_gpu_s": times(part.seconds, count),
        "split_cost_usd": None if part.cost_usd is None else round(part.cost_usd * count, 4),
        "one_job_execution_timeout_s": whole.execution_timeout_s or whole.endpoint_timeout_s,
        "part_execution_timeout_s": part.execution_timeout_s or part.endpoint_timeout_s,
    }
