"""What a second of GPU time costs on RunPod Serverless, and so what a finished run cost.

RunPod bills a serverless worker by the second (partial seconds rounded up), at a price per GPU type that is
lower for active (always-on) workers than for flex (scale-to-zero) ones. Where a price comes from, first match:

1. STUDIO_GPU_PRICES, the user's own per-second prices by row (`H100 PRO=0.00116; A100=0.00076`);
2. RunPod's GPU catalogue (`GET /v2/catalog/gpus`, each GPU's `price.serverless` per hour), read with the API key
   by client/catalog_prices.py and kept on disk under the data dir with the time it was read (CatalogPrices);
   it lists the flex (list) price only, so it prices the flex tier;
3. the table below, RunPod's published one, read on PRICES_READ (docs/estimates.md gives the page).

Every price is shown with where it came from and the date it was read (PriceTable.source). STUDIO_PRICE_TIER picks
flex or active. Nothing here imports torch or reaches the network: the catalogue and the dashboard price runs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.contract import ErrorCode, JobError

PRICES_SOURCE = "https://docs.runpod.io/serverless/pricing"
PRICES_READ = "2026-12-02"
TIERS = ("flex", "active")
CPU = "cpu"
"""The GPU name recorded for a run with no CUDA device (the preview engine, a CPU test): nothing is billed."""


@dataclass(frozen=True)
class GpuPrice:
    """One row of RunPod's serverless price table: dollars per second per GPU."""

    name: str
    memory_gb: int
    flex: float
    active: float
    matches: tuple[str, ...]
    """Patterns (regular expressions, lower case) that find this row in a CUDA device name."""


GPU_PRICES: tuple[GpuPrice, ...] = (
    GpuPrice("B200", 180, 0.00240, 0.00190, (r"\bb200\b",)),
    GpuPrice("H200 PRO", 141, 0.00155, 0.00124, (r"\bh200\b",)),
    GpuPrice("H100 PRO", 80, 0.00116, 0.00093, (r"\bh100\b",)),
    GpuPrice("A100", 80, 0.00076, 0.00060, (r"\ba100\b",)),
    GpuPrice("L40, L40S, 6000 Ada PRO", 48, 0.00053, 0.00037, (r"\bl40s?\b", r"6000 ada")),
    GpuPrice("A6000, A40", 48, 0.00034, 0.00024, (r"\ba6000\b", r"\ba40\b")),
    GpuPrice("4090 PRO", 24, 0.00031, 0.00021, (r"\b4090\b",)),
    GpuPrice("L4, A5000, 3090", 24, 0.00019, 0.00013, (r"\bl4\b", r"\ba5000\b", r"\b3090\b")),
    GpuPrice("A4000, A4500, RTX 4000", 16, 0.00016, 0.00011, (r"\ba4000\b", r"\ba4500\b", r"rtx 4000")),
)
"""RunPod Serverless prices per second (PRICES_SOURCE, read PRICES_READ), most expensive first."""

SHORT_NAMES = {price.name: price.name.split(",")[0] for price in GPU_PRICES}


def gpu_class(device: str | None) -> str | None:
    """The price-table row a GPU belongs to, from a CUDA device name (`NVIDIA H100 80GB HBM3` → `H100 PRO`) or a
    row's own name or short name (`H100 PRO`, `L40S`, `4090`); `cpu` for no GPU; None when no row fits."""
    if not device:
        return None
    text = device.strip().lower()
    if text == CPU:
        return CPU
    for price in GPU_PRICES:
        if text == price.name.lower():
            return price.name
    for price in GPU_PRICES:
        if any(re.search(pattern, text) for pattern in price.matches):
            return price.name
    return None


MAX_PRICE_PER_S = 1.0
"""The most a price may say, in dollars per GPU-second ($3 600 an hour, a thousand times RunPod's dearest GPU): a
larger figure is a typo, and one like 1e308 would make every cost infinite (and the estimate's JSON invalid)."""
DECIMAL = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
"""A price as people write one: ASCII digits and one point. float() would also take `1_000`, `1e308`, `inf`,
`nan` and digits of other scripts."""
GPU_NAME = re.compile(r"[A-Za-z0-9 ,.()+-]{1,40}", re.ASCII)
QUOTED = 40
"""The most characters of a refused entry quoted back."""


def _shown(entry: str) -> str:
    """A refused entry as the refusal quotes it: control characters escaped, cut to QUOTED characters."""
    text = entry if len(entry) <= QUOTED else entry[:QUOTED] + "…"
    return repr(text)


def _parse_overrides(text: str) -> dict[str, float]:
    overrides: dict[str, float] = {}
    for entry in (part.strip() for part in text.split(";") if part.strip()):
        name, _, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        row = gpu_class(name) if GPU_NAME.fullmatch(name) else None
        price = float(value) if DECIMAL.fullmatch(value) else math.nan
        if row is None or row == CPU or not 0 <= price <= MAX_PRICE_PER_S:
            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                f"STUDIO_GPU_PRICES: {_shown(entry)} is not GPU=dollars per second (0 to {MAX_PRICE_PER_S:g}); "
                f"write e.g. 'H100 PRO=0.00116; A100=0.00076' with a GPU of {', '.join(SHORT_NAMES.values())}",
            )
        overrides[row] = price
    return overrides


CATALOG_FILE = "runpod-gpu-catalog.json"
"""The catalogue's prices as last read, under `<data dir>/prices/`."""
CATALOG_ROUTE = "GET /v2/catalog/gpus"
CATALOG_MAX_AGE = dt.timedelta(days=1)
"""A catalogue read longer ago than this is read again when an API key is at hand."""


UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+-]", re.ASCII)


def _plain(text: str) -> str:
    """A catalogue name as the pages quote it in a price's source: the letters GPU names use, at most 80, so no
    Markdown, link or control character from the answer reaches a caption or tooltip."""
    return UNSAFE.sub("", text)[:80]


@dataclass(frozen=True)
class CatalogGpu:
    """One GPU type of RunPod's catalogue with a serverless price: its id (the CUDA device name RunPod uses, e.g.
    `NVIDIA H100 80GB HBM3`), its short name, its serverless pool and the pool's list price per GPU-hour."""

    id: str
    name: str
    pool: str | None
    per_hour: float


@dataclass(frozen=True)
class CatalogPrices:
    """The serverless prices of RunPod's GPU catalogue, and when they were read (UTC, ISO 8601)."""

    gpus: tuple[CatalogGpu, ...]
    read_at: str

    @property
    def date(self) -> str:
        """The day the catalogue was read, `2026-12-07`."""
        return self.read_at[:10]

    @classmethod
    def from_answer(cls, gpus: list[Any], read_at: dt.datetime) -> CatalogPrices:
        """The prices of a ListGpuTypesResponse's `gpus` (`id`, `name`, `pool`, `price.serverless` per hour).
        A GPU without a serverless price (not in a pool for this account), or with one that is not a number from
        0 to MAX_PRICE_PER_S × 3600, is left out: it is priced by the table, not by a broken figure."""
        kept = []
        for gpu in gpus:
            if not isinstance(gpu, dict):
                continue
            prices = gpu.get("price")
            price = prices.get("serverless") if isinstance(prices, dict) else None
            gpu_id, name, pool = gpu.get("id"), gpu.get("name"), gpu.get("pool")
            if isinstance(price, bool) or not isinstance(price, int | float) or not isinstance(gpu_id, str):
                continue
            if not 0 <= price <= MAX_PRICE_PER_S * 3600 or not isinstance(name, str):
                continue
            pool = _plain(pool) if isinstance(pool, str) else None
            kept.append(CatalogGpu(_plain(gpu_id), _plain(name), pool, float(price)))
        stamp = read_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(tuple(kept), stamp)

    def stale(self, now: dt.datetime) -> bool:
        """Whether the catalogue was read longer ago than CATALOG_MAX_AGE (or the date cannot be read)."""
        try:
            read = dt.datetime.fromisoformat(self.read_at.replace("Z", "+00:00"))
        except ValueError:
            return True
        return now - read > CATALOG_MAX_AGE

    def find(self, gpu: str | None) -> CatalogGpu | None:
        """The catalogue's entry for a GPU: by id or name (`NVIDIA H100 80GB HBM3`, `RTX 4090`), by pool id
        (`ADA_24`), else by the price-table row both fall in (`H100 PRO`, `4090`). Where several entries fit, the
        dearest: a run or an estimate is never priced below what it may cost."""
        if not gpu:
            return None
        text = gpu.strip().lower()
        exact = [g for g in self.gpus if text in (g.id.lower(), g.name.lower())]
        pooled = [g for g in self.gpus if g.pool and g.pool.lower() == text]
        row = gpu_class(gpu)
        same_row = [] if row in (None, CPU) else [g for g in self.gpus if row in (gpu_class(g.id), gpu_class(g.name))]
        for found in (exact, pooled, same_row):
            if found:
                return max(found, key=lambda g: g.per_hour)
        return None

    def to_json(self) -> str:
        """The file's content: the date read and each GPU's price."""
        gpus = [{"id": g.id, "name": g.name, "pool": g.pool, "serverless_per_hour": g.per_hour} for g in self.gpus]
        return json.dumps({"source": CATALOG_ROUTE, "read_at": self.read_at, "gpus": gpus}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> CatalogPrices | None:
        """The prices a file holds; None for a file that is not one (it is then read again, never trusted)."""
        try:
            data = json.loads(text)
            gpus = tuple(
                CatalogGpu(str(g["id"]), str(g["name"]), g["pool"], float(g["serverless_per_hour"]))
                for g in data["gpus"]
            )
            read_at = str(data["read_at"])
            dt.datetime.fromisoformat(read_at.replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):
            return None
        if not all(0 <= g.per_hour <= MAX_PRICE_PER_S * 3600 for g in gpus):
            return None
        return cls(gpus, read_at)


def catalog_path(data_dir: Path) -> Path:
    """Where the catalogue's prices are kept."""
    return data_dir / "prices" / CATALOG_FILE


def load_catalog(data_dir: Path) -> CatalogPrices | None:
    """The catalogue's prices as last read, or None (never read, or the file is damaged)."""
    try:
        return CatalogPrices.from_json(catalog_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def save_catalog(data_dir: Path, prices: CatalogPrices) -> None:
    """Keep the catalogue's prices: written beside and renamed over, so a reader sees the old or the new file."""
    path = catalog_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(prices.to_json(), encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@dataclass(frozen=True)
class PriceTable:
    """Per-second prices by GPU for one tier: the settings' overrides, else RunPod's catalogue as last read (flex
    tier), else the built-in table."""

    tier: str = "flex"
    overrides: dict[str, float] = field(default_factory=dict)
    catalog: CatalogPrices | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise JobError(
                ErrorCode.INPUT_VALIDATION, f"STUDIO_PRICE_TIER: {self.tier!r} is not a tier; use flex or active"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> PriceTable:
        """The table STUDIO_PRICE_TIER and STUDIO_GPU_PRICES (`H100 PRO=0.00116; A100=0.0007`) describe, with the
        catalogue's prices last read into the settings' data dir (none read: the built-in table)."""
        return cls(
            tier=settings.price_tier or "flex",
            overrides=_parse_overrides(settings.gpu_prices or ""),
            catalog=load_catalog(settings.data_dir),
        )

    def _listed(self, gpu: str | None) -> CatalogGpu | None:
        return self.catalog.find(gpu) if self.catalog is not None and self.tier == "flex" else None

    def per_second(self, gpu: str | None) -> float | None:
        """Dollars per second of one GPU; 0 for `cpu`; None for a GPU neither the catalogue nor the table knows."""
        row = gpu_class(gpu)
        if row == CPU:
            return 0.0
        if row in self.overrides:
            return self.overrides[row or ""]
        listed = self._listed(gpu)
        if listed is not None:
            return listed.per_hour / 3600
        if row is None:
            return None
        price = next(p for p in GPU_PRICES if p.name == row)
        return price.flex if self.tier == "flex" else price.active

    def source(self, gpu: str | None) -> str:
        """Where a GPU's price comes from and the date it was read, in words."""
        row = gpu_class(gpu)
        if row in self.overrides:
            return f"{SHORT_NAMES.get(row or '', row)}: STUDIO_GPU_PRICES"
        listed = self._listed(gpu)
        if listed is not None and self.catalog is not None:
            return (
                f"{listed.name}: RunPod's catalogue, ${listed.per_hour:g}/h serverless ({listed.pool or 'no pool'}), "
                f"read {self.catalog.date}"
            )
        if row == CPU:
            return "no GPU: nothing is billed"
        if row is None:
            return f"{gpu}: in neither RunPod's catalogue nor the built-in price table"
        return f"{SHORT_NAMES.get(row, row)}: RunPod {self.tier} price table built in, read {PRICES_READ}"

    def summary(self) -> str:
        """Where this table's prices come from, for a page's caption: `RunPod's catalogue, read 2026-12-07 …`."""
        parts = []
        if self.overrides:
            parts.append(f"STUDIO_GPU_PRICES for {', '.join(SHORT_NAMES[row] for row in sorted(self.overrides))}")
        if self.catalog is not None and self.tier == "flex":
            parts.append(f"RunPod's GPU catalogue ({CATALOG_ROUTE}), read {self.catalog.date}")
        parts.append(f"the built-in {self.tier} price table, read {PRICES_READ}")
        return "Prices: " + ", else ".join(parts)


PREVIEW_ENGINE = "preview"


def billed_seconds(run: dict[str, Any]) -> int | None:
    """The seconds RunPod bills for a run: its execution time (RunPod's `executionTime`) rounded up to a whole
    second, or the worker's own total time where the endpoint did not report one (a run taken in by sync)."""
    for name in ("execution_ms", "total_ms"):
        value = run.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return math.ceil(value / 1000)
    return None


def run_cost(run: dict[str, Any], table: PriceTable) -> float | None:
    """What a finished run cost in dollars: billed seconds × its GPU's price × its GPU count.

    The preview engine costs $0 (it runs on the local machine's CPU); a run with no GPU recorded (made before
    GPUs were recorded) or on a GPU the table does not know has no cost (None), never a guess.
    """
    if run.get("engine") == PREVIEW_ENGINE:
        return 0.0
    price = table.per_second(run.get("gpu_name"))
    seconds = billed_seconds(run)
    if price is None or seconds is None:
        return None
    count = run.get("gpu_count") or 1
    return round(seconds * price * max(1, int(count)), 6)


def only_gpu_type(pools: list[str], excluded: list[str], catalog: CatalogPrices | None) -> CatalogGpu | None:
    """The one GPU type an endpoint's configuration lets its workers run on: the types RunPod's catalogue puts in
    its pools, less its excluded types, when exactly one is left. None when several are (RunPod's /status answer
    does not say which one ran a job, so any one's price would be a guess) or the catalogue was never read."""
    if catalog is None:
        return None
    wanted, left_out = set(pools), {name.strip() for name in excluded}
    allowed = {gpu.id: gpu for gpu in catalog.gpus if gpu.pool in wanted and gpu.id not in left_out}
    return next(iter(allowed.values())) if len(allowed) == 1 else None


WORKER_REPORTED = "the GPU its worker reported"
PREVIEW_PRICED = "the preview engine, which costs $0"


def cancelled_cost(
    run: dict[str, Any], table: PriceTable, only: CatalogGpu | None = None, count: int = 1
) -> tuple[float | None, str | None]:
    """What a cancelled run cost, and what priced it, in words; (None, None) when nobody can say.

    RunPod's /status answer for a cancelled job carries no result, so no GPU. Its cost is known exactly only when:
    the catalogue priced it anyway (the preview engine; a GPU its worker named on a progress payload or in the
    metadata.json it left); or the endpoint's configuration allows a single GPU type (`only`, from only_gpu_type,
    on `count` GPUs per worker), priced by run_cost like any other run. Anything else is left unpriced: never a
    guess."""
    cost = run.get("cost_usd")
    if cost is not None:
        free = run.get("engine") == PREVIEW_ENGINE or gpu_class(run.get("gpu_name")) == CPU
        return float(cost), PREVIEW_PRICED if free else WORKER_REPORTED
    if only is None or run.get("gpu_name"):
        return None, None
    cost = run_cost({**run, "gpu_name": only.id, "gpu_count": count}, table)
    return (cost, f"the endpoint's only GPU type, {only.name}") if cost is not None else (None, None)
