"""Webhooks: when a job submitted with `webhook` ends, POST its /status answer to that URL, as RunPod does.

RunPod's documented contract: the POST carries what `/status/{id}` would return; the receiver acknowledges with
HTTP 200; a failed call is tried up to 2 more times, 10 s apart. Here any 2xx acknowledges. Calls fall due in the
queue file itself (a trigger marks every job that ends, however it ends), so a webhook owed when the endpoint
stopped is still sent after a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from worker import logs
from worker.endpoint.queue import JobQueue, QueuedJob, job_view

ATTEMPTS = 3
RETRY_DELAY_MS = 10_000
CALL_TIMEOUT_S = 10.0
POLL_S = 0.25
SENDERS = 4
LEASE_MS = int(CALL_TIMEOUT_S * 1000) + 5_000
"""A taken call is not taken again for this long: longer than one call can last, so it is never sent twice."""
MAX_URL_LENGTH = 2048

log = logs.get_logger("endpoint.webhooks")
Post = Callable[[str, dict], int]
"""POST a JSON body to a URL and return the HTTP status; raising counts as a failed call."""


def webhook_problem(url: object) -> str | None:
    """Why `url` cannot be a webhook, naming the fix; None when it can."""
    if not isinstance(url, str) or not url.strip():
        return "webhook must be a URL string, e.g. https://example.com/hooks/studio"
    if len(url) > MAX_URL_LENGTH:
        return f"webhook is {len(url)} characters long; a URL of at most {MAX_URL_LENGTH} is accepted"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook must be an http:// or https:// URL with a host; got {url[:100]!r}"
    return None


def post_json(url: str, body: dict) -> int:
    """POST body as JSON; the HTTP status. Redirects are not followed: the receiver must answer itself."""
    return requests.post(url, json=body, timeout=CALL_TIMEOUT_S, allow_redirects=False).status_code


def deliver(queue: JobQueue, job: QueuedJob, post: Post = post_json) -> bool:
    """Make one webhook call for a finished job and record it; returns whether the receiver acknowledged it."""
    assert job.webhook is not None
    attempt = job.webhook_attempts + 1
    try:
        status: int | None = post(job.webhook, job_view(job))
        problem = None if 200 <= status < 300 else f"HTTP {status}"
    except requests.RequestException as error:
        status, problem = None, f"{type(error).__name__}: {error}"
    delivered = problem is None
    retry_in = None if delivered or attempt >= ATTEMPTS else RETRY_DELAY_MS
    queue.webhook_attempted(job.id, delivered=delivered, retry_in_ms=retry_in)
    extra = {"job_id": job.id, "attempt": attempt, "http_status": status, "job_status": job.status}
    if delivered:
        log.info("webhook delivered", extra=extra)
    elif retry_in is not None:
        log.warning("webhook call failed; trying again", extra={**extra, "problem": problem, "retry_in_ms": retry_in})
    else:
        log.error("webhook call failed; giving up", extra={**extra, "problem": problem})
    return delivered


class WebhookSender:
    """A thread in the API process that makes the calls as they fall due, a few at once."""

    def __init__(self, queue: JobQueue, post: Post = post_json) -> None:
        self.queue = queue
        self.post = post
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, name="endpoint-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking new calls and wait for those under way (each ends within CALL_TIMEOUT_S)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook") as pool:
            while not self._closing.wait(POLL_S):
                try:
                    for job in self.queue.take_due_webhooks(LEASE_MS, limit=SENDERS):
                        pool.submit(self._deliver, job)
                except Exception:  # a locked or full disk must not end the sending for good
                    log.exception("webhook sender failed; trying again")

    def _deliver(self, job: QueuedJob) -> None:
        try:
            deliver(self.queue, job, self.post)
        except Exception:
            log.exception("webhook call could not be recorded", extra={"job_id": job.id})
