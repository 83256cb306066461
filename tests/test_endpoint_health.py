"""/health's job counts and worker states describe one instant.

They were two reads of the queue: a job that started or ended between them gave answers such as 2 workers
running and 1 job in progress (seen once on a loaded machine in test_endpoint_api). Here jobs start and end
hundreds of times a second while /health is asked over and over; no answer may contradict itself.
"""

from __future__ import annotations

import threading
from pathlib import Path

import requests

from tests.endpoint_server import running_endpoint, wait_for

INSTANT = "tests.endpoint_runners:instant"
JOBS = 400


def test_health_never_shows_more_running_workers_than_jobs_in_progress(tmp_path: Path) -> None:
    env = {"STUDIO_DATA_DIR": str(tmp_path), "STUDIO_LOCAL_WORKERS": "2"}
    with running_endpoint(env, INSTANT) as base:
        wait_for(f"{base}/local/health", lambda body: body["workers"]["idle"] == 2, timeout_s=60)
        answers: list[dict] = []
        done = threading.Event()

        def poll() -> None:
            with requests.Session() as session:
                while not done.is_set():
                    answers.append(session.get(f"{base}/local/health", timeout=30).json())

        pollers = [threading.Thread(target=poll) for _ in range(2)]
        for poller in pollers:
            poller.start()
        with requests.Session() as session:
            for _ in range(JOBS):
                session.post(f"{base}/local/run", json={"input": {}}, timeout=30).raise_for_status()
        wait_for(f"{base}/local/health", lambda body: body["jobs"]["completed"] == JOBS, timeout_s=120)
        done.set()
        for poller in pollers:
            poller.join()

    busy = [a for a in answers if a["jobs"]["inProgress"] or a["workers"]["running"]]
    contradictions = [a for a in answers if a["workers"]["running"] > a["jobs"]["inProgress"]]
    assert len(answers) > 100 and busy, "the polls saw jobs running"
    assert contradictions == [], f"{len(contradictions)} of {len(answers)} answers, e.g. {contradictions[:1]}"
    for answer in answers:
        workers = answer["workers"]
        assert workers["running"] + workers["idle"] + workers["initializing"] + workers["unhealthy"] == 2
