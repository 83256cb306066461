"""Sending jobs and following them: every answer from the endpoint is written to the catalogue first.

The Live page shows what the catalogue holds, so a reload, a second browser tab or a restarted dashboard all see
the same runs; the endpoint is asked only for runs still queued or running.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from catalog import Catalog
from catalog.catalog import SPLIT_SOURCE
from catalog.request_file import write_request_file
from catalog.sync import restore_unfinished, settle
from client.api import EndpointError, JobState, ListedJob, StudioClient
from core.contract import ERROR_INFO, INLINE_MEDIA_NOTE, ErrorCode, JobError, JobStatus, Stage, utc_now
from core.settings import Settings
from core.store import Store

LOG_LINES = 6
POLL_CONCURRENCY = 8
"""Status requests in flight at once: enough to hide round trips, few enough to stay polite to RunPod's API."""
log = logging.getLogger("studio.dashboard.jobs")


def submit(
    client: StudioClient,
    catalog: Catalog,
    job_input: dict[str, Any],
    endpoint_id: str,
    *,
    store: Store | None = None,
    settings: Settings | None = None,
    submitted_by: str | None = None,
    execution_timeout_ms: int | None = None,
    retry_of: str | None = None,
) -> str:
    """Send a validated job input to the endpoint and record it as queued; return the job id.

    `execution_timeout_ms` becomes the request's policy.executionTimeout (Submit's timeout guard sets it when the
    estimate's slow end passes the endpoint's own timeout).

    With a store, the job's request (params without inline media, media keys, endpoint, who, when) is written
    to the bucket beside where its artifacts will go, so a dashboard started on an empty disk finds the job
    again (recover). The job is already on its way when that write happens: a store that refuses it is logged,
    never a failed submission.
    """
    job_id = client.submit(job_input, execution_timeout_ms=execution_timeout_ms)
    catalog.record_submission(job_id, job_input, endpoint_id=endpoint_id, submitted_by=submitted_by, retry_of=retry_of)
    if store is not None:
        try:
            document, key = write_request_file(
                store, job_id, job_input, endpoint_id=endpoint_id, submitted_by=submitted_by, settings=settings
            )
        except (JobError, ValueError) as error:
            log.warning("job %s was sent, but its request is not in the bucket: %s", job_id, error)
        else:
            catalog.record_request(document, key, restore=False)
    return job_id


def recover(catalog: Catalog, store: Store) -> int:
    """Find jobs that were sent but have not finished, by their request files in the bucket: after a start on an
    empty disk (Streamlit Community Cloud wipes it), Live follows them again. Returns how many were found."""
    return restore_unfinished(catalog, store).restored


@dataclass(frozen=True)
class PollResult:
    """What one status poll did to a run."""

    run_id: str
    status: str
    changed: bool
    problem: str | None = None
    lost: bool = False


def record_state(catalog: Catalog, run_id: str, state: JobState) -> bool:
    """Write a status answer to the catalogue; a finished batch's items become runs. Returns whether it changed."""
    changed = catalog.apply_status(
        run_id,
        state.status,
        progress=state.progress,
        output=state.output,
        delay_ms=state.delay_ms,
        execution_ms=state.execution_ms,
        error=state.error,
    )
    if state.finished and isinstance(state.output, dict) and isinstance(state.output.get("items"), list):
        catalog.attach_result(run_id, state.output)
    return changed


def _status(client: StudioClient, run: dict[str, Any]) -> JobState | EndpointError:
    try:
        return client.status(run["job_id"])
    except EndpointError as error:
        return error


def _record(
    catalog: Catalog, run: dict[str, Any], answer: JobState | EndpointError, store: Store | None = None
) -> PollResult:
    if isinstance(answer, EndpointError):
        if answer.status == 404 and store is not None:
            # RunPod forgets /run results after 30 minutes; the worker's metadata.json in the bucket does not.
            status = settle(catalog, store, run)
            if status is not None:
                return PollResult(run["run_id"], status, True)
        return PollResult(run["run_id"], run["status"], False, str(answer), lost=answer.status == 404)
    return PollResult(run["run_id"], answer.status, record_state(catalog, run["run_id"], answer))


def poll(client: StudioClient, catalog: Catalog, run: dict[str, Any], store: Store | None = None) -> PollResult:
    """Ask the endpoint about one unfinished run and record the answer; with a store, a run the endpoint no
    longer knows (404) is settled from its metadata.json when the worker wrote one."""
    return _record(catalog, run, _status(client, run), store)


def poll_all(
    client: StudioClient, catalog: Catalog, runs: list[dict[str, Any]], store: Store | None = None
) -> list[PollResult]:
    """Ask about many runs at once (the endpoint API has no batch status), then record the answers in order.

    The requests overlap, so 50 running jobs cost a few round trips rather than 50; the catalogue is written
    from the calling thread only. `store` as for poll.
    """
    if len(runs) <= 1:
        return [poll(client, catalog, run, store) for run in runs]
    with ThreadPoolExecutor(max_workers=min(POLL_CONCURRENCY, len(runs))) as pool:
        answers = list(pool.map(lambda run: _status(client, run), runs))
    return [_record(catalog, run, answer, store) for run, answer in zip(runs, answers, strict=True)]


def mark_lost(catalog: Catalog, run_id: str) -> None:
    """Close a run the endpoint no longer knows (RunPod keeps /run results for 30 minutes)."""
    catalog.apply_status(
        run_id,
        JobStatus.FAILED,
        error={
            "code": ErrorCode.WORKER_LOST,
            "message": "the endpoint no longer knows this job; if it finished, Sync from bucket in History finds it",
        },
    )


def cancel(client: StudioClient, catalog: Catalog, run: dict[str, Any]) -> str:
    """Ask the endpoint to cancel a run; a queued job stops at once, a running one at its next boundary."""
    state = client.cancel(run["job_id"])
    if state.status in JobStatus.FINAL:
        catalog.apply_status(run["run_id"], state.status)
    return state.status


def retry(
    client: StudioClient,
    catalog: Catalog,
    run: dict[str, Any],
    settings: Settings,
    *,
    store: Store | None = None,
    submitted_by: str | None = None,
) -> str:
    """Run a failed run again; return the job id to follow. The local endpoint runs the same job again under its
    id (/retry; the run counts its retries); RunPod gets the same request as a new job, recorded as a retry of
    this run, so both cards say so. Media that went inline were not kept: JobError says to add them again."""
    if settings.is_local_endpoint:
        client.retry(run["job_id"])
        catalog.reopen(run["run_id"])
        return str(run["job_id"])
    params = dict(run.get("params") or {})
    if INLINE_MEDIA_NOTE in json.dumps(params):
        raise JobError(
            ErrorCode.INPUT_VALIDATION,
            "this run's media were sent inline and not kept: open it in History, Reuse these params and add them",
            at_stage=Stage.VALIDATION_STARTED,
        )
    return submit(
        client,
        catalog,
        params,
        settings.endpoint_id,
        store=store,
        settings=settings,
        submitted_by=submitted_by,
        retry_of=run["run_id"],
    )


def retryable(run: dict[str, Any]) -> bool:
    """Whether Retry is offered: a failure for a passing reason (a lost worker, a download, the store, a
    timeout), as the contract's error table says; never a cancel or a bad input, which would fail the same way."""
    if run.get("source") == SPLIT_SOURCE:  # its parts are retried one by one (Live's "Retry this part")
        return False
    return run.get("status") in JobStatus.FAILURES and bool(
        ERROR_INFO.get(run.get("error_code") or "", {}).get("retryable")
    )


def retry_trace(run: dict[str, Any], catalog: Catalog) -> str | None:
    """What a card says about Retry: "Retry of <job>", "Retried as <job>", "Retried 2 times" (the local
    endpoint reruns a job under its own id); None for a run never retried."""
    parts = []
    if run.get("retry_of"):
        earlier = catalog.get(run["retry_of"])
        parts.append(f"Retry of {earlier['job_id'] if earlier else run['retry_of']}")
    if run.get("retries"):
        times = int(run["retries"])
        parts.append(f"Retried {times} time{'s' if times != 1 else ''}")
    later = catalog.retried_as(run["run_id"])
    if later:
        parts.append(f"Retried as {', '.join(later)}")
    return " · ".join(parts) or None


def adopt(
    catalog: Catalog, listed: list[ListedJob], endpoint_id: str, parts: frozenset[str] = frozenset()
) -> list[str]:
    """Record the endpoint's queued and running jobs that the catalogue does not hold yet (sent from the command
    line, a script, another dashboard), so Live follows them and History keeps them. Returns their run ids.

    A split run's parts are left out: by their output prefix (split_parent), or by their job ids in `parts` (the
    split driver's; the listing drops a finished job's input)."""
    known = {run["job_id"] for run in catalog.unfinished(endpoint_id)}
    adopted = []
    for job in listed:
        if job.id in known or job.id in parts or catalog.get(job.id) is not None:
            continue
        if split_parent(catalog, job.input) is not None:
            continue
        created = dt.datetime.fromtimestamp(job.created_ms / 1000, dt.UTC) if job.created_ms else None
        params = job.input if job.input is not None else {"prompt": job.prompt or ""}
        adopted.append(
            catalog.record_submission(
                job.id,
                params,
                endpoint_id=endpoint_id,
                # One that has already ended is recorded as running: the poll that follows brings its result.
                status=JobStatus.IN_PROGRESS if job.status in JobStatus.FINAL else job.status,
                created_at=utc_now(created) if created else None,
                source="endpoint",
            )
        )
    return adopted


def split_parent(catalog: Catalog, job_input: dict[str, Any] | None) -> str | None:
    """The split run a job is a part of, else None: plan_split sends each part with the output prefix
    `{prefix}/{run_id}/parts`, where the run is in the catalogue (a split run, or, once joined, the run its
    metadata.json made) or its id is plan_split's `split-…` while the catalogue does not hold it yet. Such a job
    is shown inside its run's card, never as a run of its own."""
    output = (job_input or {}).get("output_config")
    prefix = output.get("prefix") if isinstance(output, dict) else None
    if not isinstance(prefix, str):
        return None
    folders = prefix.strip("/").split("/")
    if len(folders) < 2 or folders[-1] != "parts":
        return None
    parent = folders[-2]
    return parent if parent.startswith("split-") or catalog.get(parent) is not None else None


@dataclass
class Board:
    """What is queued and running on the endpoint now: the one picture the Live page and the sidebar draw.

    `positions` gives each queued job its place in line (1 next) where the endpoint says it (the local one);
    `problems` holds the status polls that failed, by run id, with whether the endpoint no longer knows the job.
    """

    runs: list[dict[str, Any]]
    positions: dict[str, int] = field(default_factory=dict)
    problems: dict[str, tuple[str, bool]] = field(default_factory=dict)
    listing_problem: str | None = None
    listed_positions: dict[str, int] = field(default_factory=dict)
    """Every queued job's place in line by job id, those of split runs' parts included (their bars say it)."""

    @property
    def queued(self) -> int:
        """How many runs wait in the queue."""
        return sum(run["status"] == JobStatus.IN_QUEUE for run in self.runs)

    @property
    def running(self) -> int:
        """How many runs are in progress."""
        return sum(run["status"] == JobStatus.IN_PROGRESS for run in self.runs)

    def line(self) -> str:
        """ "2 queued · 1 running", the counts both the sidebar and Live show."""
        return f"{self.queued} queued · {self.running} running"


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO 8601 time from the catalogue, as an aware datetime."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class LiveView:
    """Everything the Live page shows for one running job."""

    run_id: str
    job_id: str
    status: str
    prompt: str
    pct: float
    stage: str
    elapsed_s: float | None
    eta_s: float | None
    chunk: tuple[int, int] | None = None
    frames: tuple[int, int] | None = None
    item: tuple[int, int] | None = None
    log: list[str] = field(default_factory=list)
    position: int | None = None
    """Its place in line while queued (1 next), where the endpoint says it."""


ETA_MIN_PCT = 10.0
ETA_MIN_ELAPSED_S = 10.0
"""No ETA before a tenth of the job is done and ten seconds have passed: at 3 % after a second, extrapolating
said "0 s" (issue 29), and the first stages (fetching, loading) say nothing of the pace of generation."""


def eta_seconds(elapsed_s: float | None, pct: float) -> float | None:
    """Time left, assuming the rest goes at the pace so far; None until that pace means something (ETA_MIN_*)."""
    if elapsed_s is None or elapsed_s < ETA_MIN_ELAPSED_S or pct < ETA_MIN_PCT or pct >= 100:
        return None
    return elapsed_s * (100.0 - pct) / pct


STAGE_WORDS: dict[str, str] = {
    Stage.VALIDATION_STARTED: "Checking the input",
    Stage.VALIDATION_OK: "Input checked",
    Stage.DOWNLOADS_STARTED: "Fetching the media",
    Stage.DOWNLOADS_OK: "Media fetched",
    Stage.AUDIO_STARTED: "Preparing the speech",
    Stage.AUDIO_OK: "Speech ready",
    Stage.EMBEDDINGS_STARTED: "Listening to the speech",
    Stage.EMBEDDINGS_OK: "Speech understood",
    Stage.PIPELINE_WARM_STARTED: "Loading the model",
    Stage.PIPELINE_WARM_OK: "Model loaded",
    Stage.GENERATION_STARTED: "Starting to generate",
    Stage.GENERATION: "Generating",
    Stage.GENERATION_OK: "All frames generated",
    Stage.MUXING_STARTED: "Encoding the video",
    Stage.MUXING_OK: "Video encoded",
    Stage.THUMBNAIL_OK: "Thumbnail made",
    Stage.UPLOAD_STARTED: "Uploading the video",
    Stage.UPLOAD_OK: "Video uploaded",
    Stage.COMPLETED: "Done",
    Stage.ERROR: "Stopped by an error",
}
"""The contract's stage names in words, for the Live log: `generation done=25 total=81` told a new user nothing."""


def _counted(details: dict[str, Any], *pairs: tuple[str, str, str]) -> list[str]:
    return [
        f"{word} {int(details[at])} of {int(details[of])}"
        for at, of, word in pairs
        if isinstance(details.get(at), int | float) and isinstance(details.get(of), int | float)
    ]


def stage_words(stage: str, details: dict[str, Any]) -> str:
    """One progress event in words: "Generating: clip 2 of 3, step 4 of 8", "Encoding the video"; a stage the
    table does not know yet keeps its name."""
    words = STAGE_WORDS.get(stage, stage)
    if stage == Stage.GENERATION:
        if details.get("reloading"):
            return f"Loading other weights ({details['reloading']})"
        # InfiniteTalk counts sampling steps per clip, the preview engine frames; `done of total` is the fallback.
        parts = _counted(details, ("chunk", "chunks", "clip"), ("step", "steps", "step"), ("frame", "frames", "frame"))
        if len(parts) < 2:
            parts += _counted(details, ("done", "total", "progress"))
        return f"{words}: {', '.join(parts)}" if parts else words
    if stage == Stage.ERROR and details.get("code") == ErrorCode.CANCELLED:
        return "Cancelled"  # a user's own cancel is neutral, not an error
    if stage == Stage.ERROR and details.get("code"):
        return f"{words} ({details['code']})"
    if stage == Stage.GENERATION_STARTED and isinstance(details.get("frames"), int):
        return f"{words} {details['frames']} frames"
    return words


def _log_line(event: dict[str, Any]) -> str:
    at = (parse_time(event.get("at")) or dt.datetime.now(dt.UTC)).strftime("%H:%M:%S")
    words = stage_words(str(event.get("stage") or "?"), event.get("details") or {})
    return f"{at}  {float(event.get('pct') or 0):5.1f}%  {words}"


def live_view(
    run: dict[str, Any], events: list[dict[str, Any]], now: dt.datetime, position: int | None = None
) -> LiveView:
    """The Live page's picture of a run from its catalogue row and latest progress events."""
    started = parse_time(run.get("started_at"))
    elapsed = (now - started).total_seconds() if started else None
    latest = events[-1] if events else {}
    details = latest.get("details") or {}
    pct = float(run.get("progress_pct") or 0.0)
    chunk = (int(details["chunk"]), int(details["chunks"])) if "chunk" in details and "chunks" in details else None
    frames = (int(details["done"]), int(details["total"])) if "done" in details and "total" in details else None
    item = None
    if latest.get("item_count"):
        item = (int(latest.get("item_index", 0)) + 1, int(latest["item_count"]))
    return LiveView(
        run_id=run["run_id"],
        job_id=run["job_id"],
        status=run["status"],
        prompt=run.get("prompt") or "(batch)",
        pct=pct,
        stage=stage_words(run["progress_stage"], details)
        if run.get("progress_stage")
        else ("In queue" if run["status"] == JobStatus.IN_QUEUE else "Starting"),
        elapsed_s=elapsed,
        eta_s=eta_seconds(elapsed, pct) if run["status"] == JobStatus.IN_PROGRESS else None,
        chunk=chunk,
        frames=frames,
        item=item,
        log=[_log_line(event) for event in events[-LOG_LINES:]],
        position=position if run["status"] == JobStatus.IN_QUEUE else None,
    )


@dataclass
class Backoff:
    """When to ask the endpoint again: soon after something changed, less often while nothing does."""

    start_s: float
    max_s: float
    factor: float = 1.5
    interval_s: float = 0.0
    next_at: float = 0.0

    def due(self, now: float | None = None) -> bool:
        """Whether it is time to poll."""
        return (time.monotonic() if now is None else now) >= self.next_at

    def record(self, changed: bool, now: float | None = None) -> None:
        """Set the next poll time after a poll that did (or did not) see a change."""
        now = time.monotonic() if now is None else now
        self.interval_s = (
            self.start_s if changed or not self.interval_s else min(self.interval_s * self.factor, self.max_s)
        )
        self.next_at = now + self.interval_s
