"""What runs cost, as the pages say it: on History's cards and detail, summed under a search, and as Health's
spend per day and cost per second of video. The numbers are the catalogue's `cost_usd` (core/prices.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from catalog.records import split_parts
from catalog.search import CostTotal
from client import catalog_prices
from core.contract import JobError
from core.prices import CPU, PREVIEW_ENGINE, PriceTable, billed_seconds, gpu_class, load_catalog

PREVIEW_FREE = "$0 (preview engine)"


def price_table(settings: Any) -> tuple[PriceTable, str | None]:
    """The settings' price table, or RunPod's own with the reason when STUDIO_GPU_PRICES cannot be read (a typo
    there must not take every page down; the Submit estimate says what to fix).

    With an API key for a RunPod endpoint, RunPod's GPU catalogue is read first when the kept copy is missing or a
    day old (client/catalog_prices.py; at most once per RETRY_AFTER while RunPod cannot be reached)."""
    catalog_prices.refresh(settings)
    try:
        return PriceTable.from_settings(settings), None
    except JobError as error:
        return PriceTable(catalog=load_catalog(settings.data_dir)), error.message


def catalogue_problem(settings: Any) -> str | None:
    """Why RunPod's GPU catalogue could not be read just now (None when its prices are current or not wanted)."""
    return catalog_prices.refresh(settings)


def dollars(value: float) -> str:
    """`$0.42`, `$0.0031` for less than a cent, `$12.40`."""
    if value == 0:
        return "$0"
    return f"${value:.4f}" if abs(value) < 0.01 else f"${value:,.2f}"


def cost_text(run: dict[str, Any]) -> str:
    """A run's cost: dollars, `$0 (preview engine)`, or an em dash while unknown (still running, or made before
    GPUs were recorded)."""
    cost = run.get("cost_usd")
    if cost is None:
        return "—"
    if cost == 0 and run.get("engine") == PREVIEW_ENGINE:
        return PREVIEW_FREE
    return dollars(float(cost))


def cost_help(run: dict[str, Any], prices: PriceTable) -> str:
    """How a run's cost was worked out, for the metric's tooltip."""
    parts = split_parts(run)
    if parts:
        priced = sum(part.cost_usd is not None for part in parts)
        known = "" if priced == len(parts) else f" ({len(parts) - priced} of them not known yet, so no sum)"
        return f"The sum of its {len(parts)} parts' costs, each priced on the GPU that ran it{known}."
    if run.get("engine") == PREVIEW_ENGINE:
        return "The local preview engine runs on this machine's CPU: nothing is billed."
    gpu = run.get("gpu_name")
    if not gpu:
        return "No GPU was recorded for this run (made before the worker recorded GPUs, or not finished yet)."
    seconds = billed_seconds(run)
    price = prices.per_second(gpu)
    if gpu_class(gpu) == CPU:
        return "It ran without a GPU: nothing is billed."
    if price is None or seconds is None:
        return f"Ran on {gpu}, which the price table does not know: set its price in STUDIO_GPU_PRICES."
    count = max(1, int(run.get("gpu_count") or 1))
    gpus = f" × {count} GPUs" if count > 1 else ""
    return f"{seconds} s billed × ${price:.5f}/s{gpus} on {gpu} ({prices.source(gpu)})"


def card_suffix(run: dict[str, Any]) -> str:
    """` · $0.42` for a card's caption line; nothing while the cost is unknown."""
    text = cost_text(run)
    return "" if text == "—" else f" · {text}"


def total_line(total: CostTotal) -> str:
    """What a search's runs cost together, saying how many have no known cost; `≈` and a word when the sums are
    estimated from a sample of the matches (catalog.search.EXACT_LIMIT, issue 32)."""
    if total.runs == 0:
        return ""
    about = "≈" if total.approximate else ""
    line = f"Cost of these runs: **{about}{dollars(total.usd)}**"
    unknown = total.runs - total.priced
    if unknown:
        line += (
            f" ({about}{unknown:,} of {about}{total.runs:,} without a known cost: unfinished, or made before costs"
            " were kept)"
        )
    return line + (" (estimated from a sample of the matches)" if total.approximate else "")


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["finished_at", "cost_usd", "video_duration_s", "engine"])
    frame["finished_at"] = pd.to_datetime(frame["finished_at"], utc=True, format="ISO8601")
    return frame


def cost_per_video_second(rows: list[dict[str, Any]], bucket: str) -> pd.DataFrame:
    """Dollars per second of video made, per time bucket: what a second of talking video costs."""
    frame = _frame(rows).dropna(subset=["video_duration_s"])
    frame = frame[frame["video_duration_s"] > 0]
    if frame.empty:
        return pd.DataFrame(columns=["$ per video second"])
    grouped = frame.set_index("finished_at")[["cost_usd", "video_duration_s"]].astype(float).resample(bucket).sum()
    grouped = grouped[grouped["video_duration_s"] > 0]
    return pd.DataFrame({"$ per video second": grouped["cost_usd"] / grouped["video_duration_s"]})
