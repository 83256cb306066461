"""`submit`'s split path: a long speech sent as parts on several workers at once, followed, joined (docs/split.md).

client/submit.py decides (split on by default above SplitDefaults.SPLIT_ABOVE_S of speech, `--split` /
`--no-split` to choose) and hands the payload here; `--resume RUN_ID` follows a split run another process
started (or one cut off by a restart), `--retry-failed` sends its failed parts again first.
Exit status as for submit: 0 joined, 1 a part failed (or the run was cancelled), 2 it could not be sent or
followed, 130 interrupted (every part is cancelled).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from catalog.catalog import Catalog
from client.api import EndpointError, StudioClient
from client.fanout import SplitRun, default_parallel, describe_plan, plan_split, speech_seconds
from client.progress_bar import ProgressBar, describe_parts
from core.contract import JobError, JobStatus, SplitDefaults
from core.settings import Settings
from core.store import open_store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The split options of `submit`."""
    group = parser.add_argument_group("long speech (docs/split.md)")
    group.add_argument(
        "--split",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"render the speech as parts at pauses on several workers at once and join them (default: on above "
        f"{SplitDefaults.SPLIT_ABOVE_S:.0f} s of speech); --no-split keeps one continuous take",
    )
    group.add_argument(
        "--parallel",
        metavar="N",
        type=int,
        help="parts rendered at once (default: the endpoint's worker count where its API says, else "
        f"{SplitDefaults.PARALLEL})",
    )
    group.add_argument(
        "--part-s", type=float, default=SplitDefaults.PART_S, metavar="S", help="longest part (default %(default)s s)"
    )
    group.add_argument(
        "--min-part-s",
        type=float,
        default=SplitDefaults.MIN_PART_S,
        metavar="S",
        help="shortest part (default %(default)s s)",
    )
    group.add_argument("--resume", metavar="RUN_ID", help="follow and join a split run already started")
    group.add_argument("--retry-failed", action="store_true", help="with --resume: send its failed parts again")


def _catalog(settings: Settings) -> Catalog | None:
    """The catalogue, so History shows the run from its start; None when it cannot be opened (the bucket's
    split.json and metadata.json still carry everything, and a sync brings the run in)."""
    try:
        return Catalog(settings.catalog_file)
    except Exception as error:  # a damaged or read-only catalogue must not stop a render
        print(f"note: the run is not catalogued now ({error}); History's sync will bring it in", file=sys.stderr)
        return None


def run_split(args: argparse.Namespace, job_input: dict[str, Any] | None, settings: Settings) -> int:
    """Plan (or resume), send, follow and join a split run; print its metadata.json; return the exit status."""
    client = StudioClient(settings)
    store = open_store(settings)
    catalog = _catalog(settings)
    try:
        if args.resume:
            run = SplitRun.resume(args.resume, client, store, catalog)
            if args.retry_failed:
                for part in run.failed():
                    run.retry(part.index)
        else:
            assert job_input is not None
            parallel = args.parallel or default_parallel(client)
            plan = plan_split(
                job_input, settings, store, part_s=args.part_s, min_part_s=args.min_part_s, parallel=parallel
            )
            run = SplitRun(plan, client, store, catalog)
            _estimate(run, job_input, settings, catalog)
    except (JobError, EndpointError) as error:
        print(f"could not split: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    print(describe_plan(run.plan), file=sys.stderr)
    print(f"run {run.plan.run_id}: resume with --resume {run.plan.run_id}", file=sys.stderr)
    if not args.wait:
        run.record_start()
        run.save()
        run.send_ready()
        print(run.plan.run_id)
        return 0
    bar = ProgressBar()

    def show(current: SplitRun) -> None:
        bar(describe_parts(current.plan.parts, current.progress))

    try:
        plan = run.run(show)
    except KeyboardInterrupt:
        bar.close()
        run.cancel()
        print(f"cancelled every part of {run.plan.run_id}", file=sys.stderr)
        return 130
    except (JobError, EndpointError) as error:
        bar.close()
        print(f"lost track of {run.plan.run_id}: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    bar.close()
    if plan.state != "joined":
        for part in run.failed():
            print(f"part {part.index + 1} {part.state}: {json.dumps(part.error)}", file=sys.stderr)
        print(f"retry the failed parts alone: --resume {plan.run_id} --retry-failed", file=sys.stderr)
        return 1
    metadata = json.loads(store.get(f"{plan.folder}/metadata.json"))
    print(json.dumps(metadata, indent=2))
    if args.download and plan.video_key:
        target = Path(args.download) / f"{plan.run_id}_video.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        store.download(plan.video_key, target)
        print(f"saved {target}", file=sys.stderr)
    return 0 if all(p.state == JobStatus.COMPLETED for p in plan.parts) else 1


def should_split(args: argparse.Namespace, job_input: dict[str, Any], settings: Settings) -> bool:
    """Whether `submit` splits this payload: as --split / --no-split say, else when its speech is longer than
    SplitDefaults.SPLIT_ABOVE_S (a batch, or speech that cannot be measured here, is sent as it is)."""
    if args.split is False or isinstance(job_input.get("batch"), list):
        return False
    if args.split:
        return True
    seconds = speech_seconds(job_input, settings)
    return seconds is not None and seconds > SplitDefaults.SPLIT_ABOVE_S


def _estimate(run: SplitRun, job_input: dict[str, Any], settings: Settings, catalog: Catalog | None) -> None:
    """Say what the split buys (one worker against N, client/estimate.py's figures) and give each part the
    executionTimeout the estimate says it needs, where that is longer than the endpoint's own."""
    from client.estimate import endpoint_timeout, minutes, recent_runs
    from client.fanout import split_estimate

    plan = run.plan
    runs = recent_runs(catalog, settings.endpoint_id) if catalog is not None else []
    figures = split_estimate(
        job_input, plan.speech_s, settings=settings, runs=runs, parallel=plan.parallel, part_s=plan.part_s
    )
    if figures["part_execution_timeout_s"] > endpoint_timeout(settings):
        plan.execution_timeout_s = figures["part_execution_timeout_s"]
    if figures["one_worker_s"] is None or figures["split_wall_s"] is None:
        times = "no time estimate yet (it needs past runs like these)"
    else:
        times = f"≈ {minutes(figures['one_worker_s'])} on one worker, ≈ {minutes(figures['split_wall_s'])} split"
    print(
        f"estimate: {times}; each part's executionTimeout {figures['part_execution_timeout_s']} s "
        f"(one job would need {figures['one_job_execution_timeout_s']} s)",
        file=sys.stderr,
    )
