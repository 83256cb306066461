"""Webhooks: when a job submitted with `webhook` ends, POST its /status answer to that URL, as RunPod does.

RunPod's documented contract: the POST carries what `/status/{id}` would return; the receiver acknowledges with
HTTP 200; a failed call is tried up to 2 more times, 10 s apart. Here any 2xx acknowledges. Calls fall due in the
queue file itself (a trigger marks every job that ends, however it ends), so a webhook owed when the endpoint
stopped is still sent after a restart.

A webhook is a URL the job's sender chose, called from inside the operator's network, so it follows the media
URLs' rule (worker.inputs.open_checked): loopback, private and link-local hosts are refused unless trusted
(STUDIO_TRUSTED_HOSTS, STUDIO_ALLOW_PRIVATE_URLS), once at submission and again at every call, which connects
only to the addresses just checked. Receivers often carry a token in the query, so logs name a webhook by its
scheme, host, port and path only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from urllib3.exceptions import HTTPError

from core import logs
from core.contract import ErrorCode, JobError
from core.settings import Settings
from endpoint.queue import JobQueue, QueuedJob, job_view
from worker.inputs import open_checked

ATTEMPTS = 3
RETRY_DELAY_MS = 10_000
CALL_TIMEOUT_S = 10.0
POLL_S = 0.25
SENDERS = 4
LEASE_MS = int(CALL_TIMEOUT_S * 1000) + 5_000
"""A taken call is not taken again for this long: longer than one call can last, so it is never sent twice."""
MAX_URL_LENGTH = 2048

log = logs.get_logger("endpoint.webhooks")
TRUST_HINT = "; a receiver on this machine or the LAN needs its host in STUDIO_TRUSTED_HOSTS"
Post = Callable[[str, dict], int]
"""POST a JSON body to a URL and return the HTTP status; raising OSError, urllib3's HTTPError or JobError counts
as a failed call."""


def loggable(url: str) -> str:
    """The URL as logs may show it: scheme, host, port and path, without the query (tokens), fragment or user."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(unreadable URL)"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _without_query(text: str, url: str) -> str:
    query = urlsplit(url).query
    return text.replace(query, "…") if query else text


def webhook_problem(url: object, settings: Settings | None = None) -> str | None:
    """Why `url` cannot be a webhook, naming the fix; None when it can.

    With settings, the host is resolved and checked as media URLs are: a private target is refused here, where
    the sender can fix it. A name that does not resolve now is let through: the check is made again at each
    call, and DNS may be back by then.
    """
    if not isinstance(url, str) or not url.strip():
        return "webhook must be a URL string, e.g. https://example.com/hooks/studio"
    if len(url) > MAX_URL_LENGTH:
        return f"webhook is {len(url)} characters long; a URL of at most {MAX_URL_LENGTH} is accepted"
    try:
        parts = urlsplit(url.strip())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        return f"webhook must be an http:// or https:// URL with a host; got {url[:100]!r}"
    if settings is not None:
        try:
            pool, _ = open_checked(url.strip(), "webhook", settings)
        except JobError as error:
            if error.code == ErrorCode.INPUT_VALIDATION:
                hint = TRUST_HINT if "private or internal" in error.message else ""
                return f"{error.message}{hint}"
        else:
            pool.close()
    return None


def post_json(url: str, body: dict, settings: Settings | None = None) -> int:
    """POST body as JSON through a connection pinned to the checked addresses; the HTTP status.

    Redirects are not followed: the receiver must answer itself (and a redirect could point anywhere).
    """
    checked = (settings or Settings()).with_(download_timeout_s=CALL_TIMEOUT_S)
    pool, target = open_checked(url, "webhook", checked)
    try:
        response = pool.urlopen(
            "POST",
            target,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            redirect=False,
            preload_content=False,
        )
        response.close()  # the answer's body is never read: only its status counts, whatever its size
        return response.status
    finally:
        pool.close()


def deliver(queue: JobQueue, job: QueuedJob, post: Post = post_json) -> bool:
    """Make one webhook call for a finished job and record it; returns whether the receiver acknowledged it."""
    assert job.webhook is not None
    attempt = job.webhook_attempts + 1
    try:
        status: int | None = post(job.webhook, job_view(job))
        problem = None if status is not None and 200 <= status < 300 else f"HTTP {status}"
    except JobError as error:
        status, problem = None, f"refused: {error.message}"
    except (HTTPError, OSError) as error:
        status, problem = None, f"{type(error).__name__}: {error}"
    delivered = problem is None
    retry_in = None if delivered or attempt >= ATTEMPTS else RETRY_DELAY_MS
    queue.webhook_attempted(job.id, delivered=delivered, retry_in_ms=retry_in)
    if problem is not None:
        problem = _without_query(problem, job.webhook)
    extra = {
        "job_id": job.id,
        "attempt": attempt,
        "http_status": status,
        "job_status": job.status,
        "webhook": loggable(job.webhook),
    }
    if delivered:
        log.info("webhook delivered", extra=extra)
    elif retry_in is not None:
        log.warning("webhook call failed; trying again", extra={**extra, "problem": problem, "retry_in_ms": retry_in})
    else:
        log.error("webhook call failed; giving up", extra={**extra, "problem": problem})
    return delivered


class WebhookSender:
    """A thread in the API process that makes the calls as they fall due, on SENDERS threads of their own.

    It takes only as many due calls as there are idle senders, so a taken call starts at once and is never
    still waiting when its lease runs out (which would send it twice). The senders are daemon threads: stopping
    does not wait for a call under way (a slow receiver cannot hold up the endpoint's exit); such a call is
    leased, not marked made, so it is made again after the next start.
    """

    def __init__(self, queue: JobQueue, post: Post | None = None, *, settings: Settings | None = None) -> None:
        self.queue = queue
        self.post: Post = post or (lambda url, body: post_json(url, body, settings))
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Semaphore(SENDERS)

    def start(self) -> None:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, name="endpoint-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking new calls (those under way are left to end or be cut off with the process)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._closing.wait(POLL_S):
            free = 0
            while free < SENDERS and self._idle.acquire(blocking=False):
                free += 1
            try:
                jobs = self.queue.take_due_webhooks(LEASE_MS, limit=free) if free else []
            except Exception:  # a locked or full disk must not end the sending for good
                log.exception("webhook sender failed; trying again")
                jobs = []
            for job in jobs:
                threading.Thread(target=self._deliver, args=(job,), name="webhook", daemon=True).start()
            for _ in range(free - len(jobs)):
                self._idle.release()

    def _deliver(self, job: QueuedJob) -> None:
        try:
            deliver(self.queue, job, self.post)
        except Exception:
            log.exception("webhook call could not be recorded", extra={"job_id": job.id})
        finally:
            self._idle.release()
