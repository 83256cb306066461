"""RunPod's own GPU prices, read from its catalogue (`GET /v2/catalog/gpus`) with the API key and kept on disk.

core/prices.py prices runs and estimates from the kept file (CatalogPrices, with the time it was read) before its
built-in table; this module is the part that reaches RunPod, so core stays off the network. The file is read again
once it is a day old; when RunPod cannot be reached the older file (or the built-in table) goes on pricing, the
reason is returned for the page to show, and RunPod is not asked again for RETRY_AFTER.
"""

from __future__ import annotations

import datetime as dt
import threading

from client.runpod_rest import REST_API, RunPodRest, RunPodRestError
from core.prices import CatalogPrices, load_catalog, save_catalog
from core.settings import Settings

RETRY_AFTER = dt.timedelta(minutes=10)
"""After a failed read, how long every page and command goes on with what it has before RunPod is asked again."""

_failures: dict[str, tuple[dt.datetime, str]] = {}
_lock = threading.Lock()


def rest_base(settings: Settings) -> str | None:
    """RunPod's REST API v2 for these settings: RUNPOD_REST_BASE_URL, else `https://api.runpod.io/v2` for a
    RunPod endpoint; None for the local endpoint (it has no catalogue and no bill)."""
    if settings.rest_base_url:
        return settings.rest_base_url
    return None if settings.is_local_endpoint else REST_API


def refresh(settings: Settings, *, now: dt.datetime | None = None, rest: RunPodRest | None = None) -> str | None:
    """Read the catalogue's prices again when an API key and RunPod's API are at hand and the kept ones are missing
    or a day old. Returns why it could not, in one line (None when the kept prices are current)."""
    base = rest_base(settings)
    if not settings.api_key or base is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    kept = load_catalog(settings.data_dir)
    if kept is not None and not kept.stale(now):
        return None
    key = str(settings.data_dir)
    with _lock:
        failed = _failures.get(key)
    if failed is not None and now - failed[0] < RETRY_AFTER:
        return failed[1]
    try:
        gpus = (rest or RunPodRest(settings.api_key, base)).gpus()
    except RunPodRestError as error:
        fallback = f"the catalogue read {kept.date}" if kept else "the built-in table"
        problem = f"RunPod's GPU catalogue could not be read ({error.lines[0]}); prices are from {fallback}"
        with _lock:
            _failures[key] = (now, problem)
        return problem
    save_catalog(settings.data_dir, CatalogPrices.from_answer([gpu.model_dump(by_alias=True) for gpu in gpus], now))
    with _lock:
        _failures.pop(key, None)
    return None
