"""`python -m worker submit PAYLOAD`: send a job to the configured endpoint, follow it, download the video."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import requests

from worker.client import EndpointError, JobState, StudioClient, prepare_input
from worker.contract import JobError, JobStatus, friendly_error
from worker.payloads import load_payload
from worker.progress_bar import ProgressBar
from worker.settings import Settings
from worker.store import open_store


def download(output: dict, dest_dir: Path, settings: Settings) -> Path:
    """Copy the finished video into dest_dir, from the local store or its URL."""
    video = output["video"]
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{output['job_id'].replace('/', '_')}.mp4"
    url = video.get("url") or ""
    if url.startswith("file://") or not url:
        source = open_store(settings, "volume").path(video["key"])  # type: ignore[attr-defined]
        shutil.copyfile(source, target)
    else:
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            with target.open("wb") as out:
                shutil.copyfileobj(response.raw, out)
    return target


def main(argv: list[str] | None = None) -> int:
    """Submit a payload file and follow it to the end; exit 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m worker submit", description=__doc__)
    parser.add_argument("payload", help="payload JSON file (media paths relative to it)")
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    parser.add_argument("--download", metavar="DIR", help="save the video into DIR when done")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    client = StudioClient(settings)
    try:
        job_input = prepare_input(load_payload(Path(args.payload)), open_store(settings))
        job_id = client.submit(job_input)
    except (JobError, EndpointError) as error:
        print(f"could not submit: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    print(f"submitted {job_id} to {client.base}", file=sys.stderr)
    if args.no_wait:
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
        print(f"cancelled {job_id}", file=sys.stderr)
        return 130
    except EndpointError as error:
        bar.close()
        print(str(error), file=sys.stderr)
        return 2
    if final.status == JobStatus.COMPLETED:
        bar({"stage": "completed", "pct": 100})
    bar.close()
    print(json.dumps(final.output, indent=2))
    if final.status != JobStatus.COMPLETED or (
        isinstance(final.output, dict) and final.output.get("status") == "error"
    ):
        error = final.error if isinstance(final.error, dict) else {"code": "", "message": str(final.error)}
        info = friendly_error(error.get("code", ""))
        print(f"{final.status}: {info['title']}: {error.get('message')}\n{info['advice']}", file=sys.stderr)
        return 1
    if args.download and isinstance(final.output, dict) and "video" in final.output:
        print(f"saved {download(final.output, Path(args.download), settings)}", file=sys.stderr)
    return 0
