"""`studio submit PAYLOAD`: send a job to the configured endpoint, follow it, download the video.

    studio submit examples/single_image.json --download out/

The endpoint is the local one unless RUNPOD_ENDPOINT_ID (and RUNPOD_API_KEY) name a RunPod endpoint. Media paths
in the payload are relative to the payload file; local media are uploaded to the artifact store first. Once the
job is sent, its request file is written to the store, as the dashboard's Submit writes it, so every dashboard on
that store shows the job at once (on Live, then History), sent by the OS user.
Exit status: 0 done, 1 the job failed (or was cancelled or timed out), 2 it could not be submitted, followed or
downloaded, 130 interrupted (the job is cancelled).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests

from catalog.request_file import write_request_file
from client.api import EndpointError, JobState, StudioClient, prepare_input
from client.payloads import load_payload
from client.progress_bar import ProgressBar
from client.split_submit import add_arguments as add_split_arguments
from client.split_submit import run_split, should_split
from core.contract import JobError, JobStatus, friendly_error
from core.settings import Settings
from core.store import Store, open_store


def videos(output: Any) -> list[dict[str, Any]]:
    """The result's video artifacts: one for a job, one per successful item for a batch."""
    if not isinstance(output, dict):
        return []
    if isinstance(output.get("video"), dict):
        return [output["video"]]
    items = found if isinstance(found := output.get("items"), list) else []
    return [item["video"] for item in items if isinstance(item, dict) and isinstance(item.get("video"), dict)]


def download(video: dict[str, Any], dest_dir: Path, settings: Settings) -> Path:
    """Save one video into dest_dir: from its inline data, its file:// or http(s) URL, or the store by key."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / "_".join(Path(video["key"]).parts[-2:])
    url = video.get("url") or ""
    if video.get("data_base64"):
        target.write_bytes(base64.b64decode(video["data_base64"]))
    elif url.startswith("file://"):
        shutil.copyfile(url2pathname(urlsplit(url).path), target)
    elif url.startswith(("http://", "https://")):
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            with target.open("wb") as out:
                shutil.copyfileobj(response.raw, out)
    else:
        open_store(settings).download(video["key"], target)
    return target


def submitter() -> str | None:
    """Who sends a job from this command line, as History's "submitted by" says it: the OS user (the command line
    has no sign-in); None where the system names no user."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def leave_request(store: Store, job_id: str, job_input: dict[str, Any], settings: Settings) -> None:
    """Write a job's request file to the store (catalog/request_file.py, the dashboard's own rule), so a dashboard
    on the same store follows the job from the moment it is sent rather than when its metadata.json lands. The
    job is already on its way: a store that refuses the file is said on stderr, never a failed submission."""
    try:
        write_request_file(
            store, job_id, job_input, endpoint_id=settings.endpoint_id, submitted_by=submitter(), settings=settings
        )
    except (JobError, ValueError) as error:
        reason = error.message if isinstance(error, JobError) else str(error).splitlines()[0]
        print(
            f"{job_id} was sent, but its request file is not in the store (dashboards show the job when it "
            f"finishes): {reason}",
            file=sys.stderr,
        )


def _failure(final: JobState) -> str:
    error = final.error if isinstance(final.error, dict) else {"code": "", "message": str(final.error or "")}
    info = friendly_error(str(error.get("code") or ""))
    return f"{final.status}: {info['title']}: {error.get('message') or 'no message'}\n{info['advice']}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("payload", nargs="?", help="payload JSON file, e.g. examples/single_image.json")
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow the job to its end with a progress bar (default); --no-wait prints the job id and returns",
    )
    parser.add_argument("--download", metavar="DIR", help="save the finished video(s) into DIR")
    parser.add_argument("--webhook", metavar="URL", help="have the endpoint POST the job's final status to URL")
    parser.add_argument(
        "--ttl", metavar="SECONDS", type=float, help="give up on the job if it waits longer than this in the queue"
    )
    add_split_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Submit a payload file and follow it to the end; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    client = StudioClient(settings)
    if args.resume:
        return run_split(args, None, settings)
    if not args.payload:
        parser.error("give a payload file (or --resume RUN_ID)")
    try:
        job_input = load_payload(Path(args.payload))
        if should_split(args, job_input, settings):
            return run_split(args, job_input, settings)
        store = open_store(settings)
        job_input = prepare_input(job_input, store, remote_worker=not settings.is_local_endpoint)
        ttl_ms = round(args.ttl * 1000) if args.ttl is not None else None
        job_id = client.submit(job_input, ttl_ms=ttl_ms, webhook=args.webhook)
    except JobError as error:
        print(f"could not submit: {error.message}", file=sys.stderr)
        return 2
    except EndpointError as error:
        print(f"could not submit: {error}", file=sys.stderr)
        return 2
    print(f"submitted {job_id} to {client.base}", file=sys.stderr)
    leave_request(store, job_id, job_input, settings)
    if not args.wait:
        print(job_id)
        return 0
    bar = ProgressBar()

    def show(state: JobState) -> None:
        if state.progress:
            bar(state.progress)
        elif state.status == JobStatus.IN_QUEUE:
            bar({"stage": "in queue", "pct": 0})

    try:
        final = client.wait(job_id, show)
    except KeyboardInterrupt:
        bar.close()
        client.cancel(job_id)
        print(f"cancelling {job_id}", file=sys.stderr)
        return 130
    except EndpointError as error:
        bar.close()
        print(f"lost track of {job_id}: {error}", file=sys.stderr)
        return 2
    if final.status == JobStatus.COMPLETED:
        bar({"stage": "completed", "pct": 100})
    bar.close()
    print(json.dumps(final.output, indent=2))
    failed = isinstance(final.output, dict) and final.output.get("status") == "error"
    if final.status != JobStatus.COMPLETED or failed:
        print(_failure(final), file=sys.stderr)
        return 1
    for video in videos(final.output) if args.download else []:
        try:
            print(f"saved {download(video, Path(args.download), settings)}", file=sys.stderr)
        except (OSError, requests.RequestException, JobError) as error:
            print(f"could not download {video['key']}: {getattr(error, 'message', error)}", file=sys.stderr)
            return 2
    return 0
