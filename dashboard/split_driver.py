"""What drives split runs while no command line does: one background thread per dashboard process (issue 30).

A split run (client/fanout.py) is many ordinary jobs on the endpoint, sent at most `parallel` at a time, followed,
then joined into one video. `studio submit` drives its own run while it waits; a run sent from Submit, from
`studio submit --no-wait`, or cut off by a restart has nobody else. So every TICK_S the driver takes each split
run the catalogue holds unfinished (source "split"), reads its plan from the bucket (`{prefix}/{run_id}/split.json`,
the source of truth, so a run changed by another process is seen), polls its parts, sends those that may start,
makes the video so far when a new leading part finishes, and at the end joins the parts or marks the run failed
naming the failed parts and why. A restarted dashboard finds the same unfinished runs and goes on; the join is
idempotent. One process drives a run at a time (client/split_lease.py): a run held by a waiting `studio submit` or
another dashboard process is left alone.

Thread rules: the thread has its own StudioClient, Store and Catalog (the catalogue's connection is per thread)
and never calls Streamlit. One bad run is logged and kept in `problems`, never the end of the thread. The page's
Cancel and "Retry this part" change a plan under the run's lock (`lock`), so a tick never writes an older plan
over them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

from catalog import Catalog
from catalog.catalog import SPLIT_SOURCE
from client.api import StudioClient
from client.fanout import SplitRun
from client.split_lease import Lease, holder_name
from core.contract import Defaults, ErrorCode, JobStatus, SplitPlan
from core.settings import Settings
from core.store import Store, open_store
from dashboard.cost import price_table

TICK_S = 1.0
log = logging.getLogger("studio.dashboard.split")


def is_split(run: dict[str, Any]) -> bool:
    """Whether a catalogue row is a split run (its job id is the run's own, not an endpoint job's): recorded as
    one, or, once joined (its row then comes from its metadata.json), listing its parts."""
    return run.get("source") == SPLIT_SOURCE or bool(run.get("parts"))


def run_prefix(run: dict[str, Any]) -> str:
    """The store prefix a split run's folder lies under: its input's output prefix, as plan_split took it."""
    params = run.get("params") if isinstance(run.get("params"), dict) else {}
    output = params.get("output_config") if isinstance(params, dict) else None
    prefix = output.get("prefix") if isinstance(output, dict) else None
    return str(prefix or Defaults.STORE_PREFIX).strip("/")


def read_plan(store: Store, run: dict[str, Any]) -> SplitPlan:
    """A split run's plan as the bucket holds it now (JobError from the store when it is not there)."""
    return SplitPlan.model_validate_json(store.get(f"{run_prefix(run)}/{run['run_id']}/split.json"))


def failure_message(run: SplitRun) -> str:
    """What a failed split run says: each failed part and why, and what to do."""
    reasons = []
    for part in run.failed():
        error = part.error or {}
        why = error.get("message") or error.get("code") or part.state
        reasons.append(f"part {part.index + 1} {part.state.lower().replace('_', ' ')}: {why}")
    return "; ".join(reasons) + " (retry the part alone on Live)"


class SplitDriver:
    """Steps every unfinished split run of one endpoint and store, on a thread of its own (see the module)."""

    def __init__(self, settings: Settings, *, tick_s: float = TICK_S) -> None:
        self.settings = settings
        self.tick_s = tick_s
        self.progress: dict[str, dict[int, dict[str, Any]]] = {}
        """Each run's parts' latest progress payloads (SplitRun.progress), kept between ticks for the bars."""
        self.so_far: dict[str, str] = {}
        """Each run's latest video so far (SplitRun.join_so_far)."""
        self.problems: dict[str, str] = {}
        """Runs the last tick could not step, and why (shown on the run's card)."""
        self.part_jobs: frozenset[str] = frozenset()
        """Every part's job id (earlier attempts too) of the runs this driver stepped: the local endpoint lists a
        finished job without its input for a while, so the tracker knows it is a part by its id alone (rebound,
        never changed in place, so a page's thread reads it whole)."""
        self.ticks = 0
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._thread: threading.Thread | None = None
        self.holder = holder_name("dashboard")
        self._holds: dict[str, Lease] = {}
        """The runs this driver holds (client/split_lease.py): one driver per run, never two."""

    # --- the thread ------------------------------------------------------------------------------------------

    def start(self) -> SplitDriver:
        self._thread = threading.Thread(target=self._loop, name="studio-split-driver", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop after the run being stepped (a join under way finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        client = StudioClient(self.settings)
        store = open_store(self.settings)
        catalog = Catalog(self.settings.catalog_file, price_table(self.settings)[0])
        try:
            while not self._stop.is_set():
                try:
                    self.tick(client, store, catalog)
                except Exception:  # the catalogue unreadable for a moment: try again next tick
                    log.exception("split driver: a tick failed")
                self._stop.wait(self.tick_s)
        finally:
            for lease in list(self._holds.values()):  # given back: a dashboard started next takes over at once
                lease.release()
            self._holds.clear()
            catalog.close()

    def hold(self, row: dict[str, Any], store: Store) -> bool:
        """Whether this driver may step the run now: its lease is free, this driver's, or expired (then taken or
        renewed); read on every tick, so a `studio submit --resume` taking the run over stops this driver."""
        lease = self._holds.get(row["run_id"])
        if lease is None:
            lease = Lease(store, f"{run_prefix(row)}/{row['run_id']}", self.holder)
        if not lease.keep():
            self._holds.pop(row["run_id"], None)
            return False
        self._holds[row["run_id"]] = lease
        return True

    def _release(self, run_id: str, store: Store) -> None:
        lease = self._holds.pop(run_id, None)
        if lease is not None:
            lease.release()

    def lock(self, run_id: str) -> threading.Lock:
        """The lock held while one run's plan is read, changed and written (a tick, a Cancel, a Retry)."""
        with self._guard:
            return self._locks.setdefault(run_id, threading.Lock())

    # --- one round -------------------------------------------------------------------------------------------

    def tick(self, client: StudioClient, store: Store, catalog: Catalog) -> dict[str, str]:
        """Step every unfinished split run once; returns what became of each (running, joined, failed...)."""
        outcome: dict[str, str] = {}
        for run in catalog.unfinished(self.settings.endpoint_id):
            if not is_split(run) or self._stop.is_set():
                continue
            run_id = run["run_id"]
            try:
                with self.lock(run_id):
                    if not self.hold(run, store):
                        outcome[run_id] = "held"  # another dashboard process drives it
                        continue
                    outcome[run_id] = self.drive(run, client, store, catalog)
                    if outcome[run_id] != "running":
                        self._release(run_id, store)
                self.problems.pop(run_id, None)
            except Exception as error:  # one bad run (a plan gone from the store, a join that failed) is logged
                log.warning("split driver: run %s: %s", run_id, error, exc_info=True)
                self.problems[run_id] = str(getattr(error, "message", None) or error)
                outcome[run_id] = "problem"
        self.ticks += 1
        return outcome

    def drive(self, row: dict[str, Any], client: StudioClient, store: Store, catalog: Catalog) -> str:
        """One round of one run: poll, send, the video so far; at the end join or mark failed."""
        run_id = row["run_id"]
        run = SplitRun.resume(run_id, client, store, catalog, prefix=run_prefix(row))
        run.progress = self.progress.setdefault(run_id, {})
        plan = run.plan
        self._know_parts(plan)
        if plan.state == "joined":  # joined elsewhere, the catalogue not told (a process stopped in between)
            key = f"{plan.folder}/metadata.json"
            catalog.upsert_metadata(json.loads(store.get(key)), key)
            return self._done(run_id, "joined")
        if plan.state == "cancelled":
            catalog.apply_status(run_id, JobStatus.CANCELLED, error={"code": ErrorCode.CANCELLED})
            return self._done(run_id, "cancelled")
        run.step()
        self._know_parts(plan)
        if not run.finished:
            if row["status"] == JobStatus.IN_QUEUE and run.running():  # a retried run is under way again
                catalog.apply_status(run_id, JobStatus.IN_PROGRESS)
            so_far = run.join_so_far()
            if so_far:
                self.so_far[run_id] = so_far
            return "running"
        if run.failed():
            so_far = run.join_so_far()  # what the run rendered before a part failed stays playable on Live
            if so_far:
                self.so_far[run_id] = so_far
            plan.state = "failed"
            run.save()
            catalog.apply_status(
                run_id,
                JobStatus.FAILED,
                output={"status": "error",
                        "error": {"code": ErrorCode.GENERATION_RUNTIME, "message": failure_message(run)}},
            )  # fmt: skip
            return self._done(run_id, "failed", keep_so_far=True)
        run.join()
        return self._done(run_id, "joined")

    def _know_parts(self, plan: SplitPlan) -> None:
        ids = {job_id for part in plan.parts for job_id in (*part.earlier_job_ids, part.job_id) if job_id}
        if not ids <= self.part_jobs:
            self.part_jobs = self.part_jobs | ids

    def _done(self, run_id: str, outcome: str, *, keep_so_far: bool = False) -> str:
        self.progress.pop(run_id, None)
        if not keep_so_far:
            self.so_far.pop(run_id, None)
        return outcome

    # --- what the page asks ----------------------------------------------------------------------------------

    def cancel(self, row: dict[str, Any], client: StudioClient, store: Store, catalog: Catalog) -> None:
        """Stop every part of a run (SplitRun.cancel), between two ticks."""
        with self.lock(row["run_id"]):
            SplitRun.resume(row["run_id"], client, store, catalog, prefix=run_prefix(row)).cancel()
            self._done(row["run_id"], "cancelled")

    def retry(self, row: dict[str, Any], index: int, client: StudioClient, store: Store, catalog: Catalog) -> None:
        """Send one failed part again (SplitRun.retry); the next tick sends it. A failed run is reopened."""
        with self.lock(row["run_id"]):
            SplitRun.resume(row["run_id"], client, store, catalog, prefix=run_prefix(row)).retry(index)


def fingerprint(settings: Settings) -> str:
    """What one driver is for: the endpoint, the store and the catalogue (secrets only as a hash)."""
    keys = (
        settings.endpoint_base_url,
        settings.endpoint_id,
        settings.api_key,
        str(settings.catalog_file),
        settings.store,
        str(settings.artifact_dir),
        settings.s3_endpoint_url,
        settings.s3_bucket,
        settings.s3_access_key,
        settings.s3_secret_key,
    )
    return hashlib.sha256(repr(keys).encode()).hexdigest()


_DRIVERS: dict[str, SplitDriver] = {}
_DRIVERS_LOCK = threading.Lock()


def driver(settings: Settings) -> SplitDriver:
    """This process's driver for these settings, started on first use (every page's sidebar asks for it).

    Held in this module rather than st.cache_resource: a driver whose thread has ended is replaced for its own
    settings alone, and never a second one started beside a live one (two would send the same pending part)."""
    key = fingerprint(settings)
    with _DRIVERS_LOCK:
        held = _DRIVERS.get(key)
        if held is None or not held.alive:
            held = _DRIVERS[key] = SplitDriver(settings).start()
        return held


def stop_all() -> None:
    """Stop every driver this process started (the tests' teardown; a dashboard's drivers end with it)."""
    with _DRIVERS_LOCK:
        drivers = list(_DRIVERS.values())
        _DRIVERS.clear()
    for held in drivers:
        held.stop()
