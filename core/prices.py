"""What a second of GPU time costs on RunPod Serverless, and so what a finished run cost.

RunPod bills a serverless worker by the second (partial seconds rounded up), at a price per GPU type that is
lower for active (always-on) workers than for flex (scale-to-zero) ones. The table below is RunPod's published
one (docs/estimates.md gives the page and the date it was read); STUDIO_GPU_PRICES overrides any row and
STUDIO_PRICE_TIER picks flex or active. Nothing here imports torch: the catalogue and the dashboard price runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
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


def _parse_overrides(text: str) -> dict[str, float]:
    overrides: dict[str, float] = {}
    for entry in (part.strip() for part in text.split(";") if part.strip()):
        name, _, value = entry.partition("=")
        row = gpu_class(name)
        try:
            price = float(value)
        except ValueError:
            price = math.nan
        if row is None or row == CPU or not math.isfinite(price) or price < 0:
            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                f"STUDIO_GPU_PRICES: {entry!r} is not GPU=dollars per second; write e.g. "
                f"'H100 PRO=0.00116; A100=0.00076' with a GPU of {', '.join(SHORT_NAMES.values())}",
            )
        overrides[row] = price
    return overrides


@dataclass(frozen=True)
class PriceTable:
    """Per-second prices by GPU for one tier, with the settings' overrides applied."""

    tier: str = "flex"
    overrides: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise JobError(
                ErrorCode.INPUT_VALIDATION, f"STUDIO_PRICE_TIER: {self.tier!r} is not a tier; use flex or active"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> PriceTable:
        """The table STUDIO_PRICE_TIER and STUDIO_GPU_PRICES (`H100 PRO=0.00116; A100=0.0007`) describe."""
        return cls(tier=settings.price_tier or "flex", overrides=_parse_overrides(settings.gpu_prices or ""))

    def per_second(self, gpu: str | None) -> float | None:
        """Dollars per second of one GPU; 0 for `cpu`; None for a GPU the table does not know."""
        row = gpu_class(gpu)
        if row == CPU:
            return 0.0
        if row is None:
            return None
        if row in self.overrides:
            return self.overrides[row]
        price = next(p for p in GPU_PRICES if p.name == row)
        return price.flex if self.tier == "flex" else price.active

    def source(self, gpu: str | None) -> str:
        """Where a GPU's price comes from, in words."""
        row = gpu_class(gpu)
        if row in self.overrides:
            return f"{SHORT_NAMES.get(row or '', row)}: STUDIO_GPU_PRICES"
        return f"{SHORT_NAMES.get(row or '', row)}: RunPod {self.tier} price, read {PRICES_READ}"


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
