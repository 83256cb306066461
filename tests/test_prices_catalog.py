"""Prices from RunPod, not a copied table (issue 26, part 3): with an API key, runs and estimates are priced at the
GPU catalogue's `price.serverless` (GET /v2/catalog/gpus on the loopback v2 server), kept on disk with the date it
was read and shown with every price; the built-in table is the dated fallback; STUDIO_GPU_PRICES still wins and
refuses, in one short line, what is not a price (issue 27: 1e308, 1_000, other scripts' digits, NUL, huge)."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from client import catalog_prices
from client.estimate import estimate, work_for
from core.contract import JobError, JobStatus
from core.prices import PRICES_READ, CatalogPrices, PriceTable, catalog_path, load_catalog
from core.settings import Settings
from tests.runpod_rest_server import RunPodV2Server, gpu_type

KEY = "rpa_PRICESKEY0123456789"
NOW = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def runpod() -> Iterator[RunPodV2Server]:
    with RunPodV2Server(KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def _forget_failures() -> Iterator[None]:
    catalog_prices._failures.clear()
    yield
    catalog_prices._failures.clear()


def _settings(tmp_path: Path, server: RunPodV2Server | None, **changes: object) -> Settings:
    base = server.url if server else "http://127.0.0.1:9/v2"
    return Settings(
        data_dir=tmp_path / "data",
        endpoint_id="ep1",
        api_key=KEY,
        rest_base_url=base,
        **changes,  # type: ignore[arg-type]
    )


def _catalog_reads(server: RunPodV2Server) -> int:
    return sum(1 for call in server.calls if call.path.startswith("/v2/catalog/gpus"))


def test_with_a_key_runs_are_priced_at_the_catalogues_serverless_price_read_once_a_day(
    tmp_path: Path, runpod: RunPodV2Server
) -> None:
    settings = _settings(tmp_path, runpod)
    assert catalog_prices.refresh(settings, now=NOW) is None
    kept = json.loads(catalog_path(settings.data_dir).read_text())
    assert kept["read_at"] == "2026-12-07T09:30:00Z" and kept["source"] == "GET /v2/catalog/gpus"
    assert {g["id"]: g["serverless_per_hour"] for g in kept["gpus"]}["NVIDIA H100 80GB HBM3"] == 4.18
    assert "AMD Instinct MI300X OAM" not in {g["id"] for g in kept["gpus"]}, "no serverless pool, no price"

    table = PriceTable.from_settings(settings)
    assert table.per_second("NVIDIA H100 80GB HBM3") == pytest.approx(4.18 / 3600)
    assert table.source("NVIDIA H100 80GB HBM3") == (
        "H100 SXM: RunPod's catalogue, $4.18/h serverless (ADA_80_PRO), read 2026-12-07"
    )
    assert table.per_second("NVIDIA GeForce RTX 5090") == pytest.approx(1.58 / 3600), "a GPU the table lacks"
    assert table.per_second("H100 PRO") == pytest.approx(4.18 / 3600), "a row's name finds its catalogue GPUs"

    catalog = Catalog(settings.catalog_file, table)
    run_id = catalog.record_submission("j1", {"prompt": "x"}, endpoint_id="ep1")
    output = {"status": "success", "job_id": "j1", "engine": {"name": "infinitetalk", "version": "1"}}
    catalog.apply_status(run_id, JobStatus.COMPLETED, output={**output, "gpu": {"name": "NVIDIA H100 80GB HBM3",
                         "count": 1}}, execution_ms=99_100)  # fmt: skip
    assert catalog.get(run_id)["cost_usd"] == pytest.approx(100 * 4.18 / 3600)

    catalog_prices.refresh(settings, now=NOW + dt.timedelta(hours=23))
    assert _catalog_reads(runpod) == 1, "a day's prices are not read again"
    runpod.gpus = [gpu_type("NVIDIA H100 80GB HBM3", "H100 SXM", "ADA_80_PRO", 80, 3.99)]
    catalog_prices.refresh(settings, now=NOW + dt.timedelta(hours=25))
    assert _catalog_reads(runpod) == 2
    assert PriceTable.from_settings(settings).per_second("NVIDIA H100 80GB HBM3") == pytest.approx(3.99 / 3600)


def test_the_estimate_uses_the_catalogues_price(tmp_path: Path, runpod: RunPodV2Server) -> None:
    settings = _settings(tmp_path, runpod)
    catalog_prices.refresh(settings, now=NOW)
    work = work_for({}, 10.0, "infinitetalk")
    built_in = estimate(work, "H100 PRO", [], PriceTable())
    from_catalogue = estimate(work, "H100 PRO", [], PriceTable.from_settings(settings))
    assert built_in.cost_usd is not None and from_catalogue.cost_usd is not None
    assert from_catalogue.cost_usd / built_in.cost_usd == pytest.approx((4.18 / 3600) / 0.00116, rel=0.01)


def test_without_the_catalogue_the_built_in_table_prices_and_says_its_date(tmp_path: Path) -> None:
    local = Settings(data_dir=tmp_path / "data")
    assert catalog_prices.refresh(local) is None, "the local endpoint has no catalogue to read"
    table = PriceTable.from_settings(local)
    assert table.catalog is None and table.per_second("NVIDIA H100 80GB HBM3") == 0.00116
    assert table.source("NVIDIA H100 80GB HBM3") == f"H100 PRO: RunPod flex price table built in, read {PRICES_READ}"
    assert table.summary() == f"Prices: the built-in flex price table, read {PRICES_READ}"


def test_an_unreachable_catalogue_keeps_the_last_prices_and_is_not_asked_again_at_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    problem = catalog_prices.refresh(settings, now=NOW)
    assert problem is not None and problem.startswith("RunPod's GPU catalogue could not be read (")
    assert problem.endswith("prices are from the built-in table") and "\n" not in problem
    assert load_catalog(settings.data_dir) is None
    assert catalog_prices.refresh(settings, now=NOW + dt.timedelta(minutes=5)) == problem, "remembered, not retried"


def test_a_damaged_kept_file_is_read_again_never_trusted(tmp_path: Path, runpod: RunPodV2Server) -> None:
    settings = _settings(tmp_path, runpod)
    path = catalog_path(settings.data_dir)
    path.parent.mkdir(parents=True)
    path.write_text('{"read_at": "2026-12-07T00:00:00Z", "gpus": [{"id": "x", "name": "x", "pool": null, '
                    '"serverless_per_hour": 1e308}]}')  # fmt: skip
    assert load_catalog(settings.data_dir) is None
    catalog_prices.refresh(settings, now=NOW)
    assert _catalog_reads(runpod) == 1 and load_catalog(settings.data_dir) is not None


def test_the_settings_override_wins_over_the_catalogue(tmp_path: Path, runpod: RunPodV2Server) -> None:
    settings = _settings(tmp_path, runpod, gpu_prices="H100 PRO=0.002")
    catalog_prices.refresh(settings, now=NOW)
    table = PriceTable.from_settings(settings)
    assert table.per_second("NVIDIA H100 80GB HBM3") == 0.002
    assert table.source("NVIDIA H100 80GB HBM3") == "H100 PRO: STUDIO_GPU_PRICES"
    assert table.per_second("A100") == pytest.approx(2.74 / 3600)
    assert table.summary().startswith("Prices: STUDIO_GPU_PRICES for H100 PRO, else RunPod's GPU catalogue")


def test_the_active_tier_keeps_the_built_in_active_prices(tmp_path: Path, runpod: RunPodV2Server) -> None:
    settings = _settings(tmp_path, runpod, price_tier="active")
    catalog_prices.refresh(settings, now=NOW)
    table = PriceTable.from_settings(settings)
    assert table.per_second("NVIDIA H100 80GB HBM3") == 0.00093, "the catalogue lists the flex (list) price only"


def test_catalogue_entries_that_are_not_prices_are_left_out() -> None:
    gpus = [
        {"id": "A", "name": "a", "pool": "P", "price": {"serverless": 1e308}},
        {"id": "B", "name": "b", "pool": "P", "price": {"serverless": True}},
        {"id": "C", "name": "c", "pool": "P", "price": {"serverless": "1.0"}},
        {"id": "D", "name": "d", "pool": "P", "price": {"serverless": -1}},
        {"id": "E", "name": "e", "pool": "P", "price": {"serverless": 1.5}},
    ]
    assert [g.id for g in CatalogPrices.from_answer(gpus, NOW).gpus] == ["E"]
    hostile = {"id": "X", "name": "**H100** [x](http://evil.example) \x1b[31m", "pool": "P_1"}
    hostile["price"] = {"serverless": 2}
    (kept,) = CatalogPrices.from_answer([hostile], NOW).gpus
    assert kept.name == "H100 x(httpevil.example) 31m", "a name quoted into a caption carries no Markdown"


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ("H100=1e308", "'H100=1e308'"),
        ("H100=1_000", "'H100=1_000'"),
        ("H100=\u0661\u0662", "'H100=\u0661\u0662'"),
        ("H100\x00=0.001", "'H100\\x00=0.001'"),
        ("H100=0.001\x00", "'H100=0.001\\x00'"),
        ("H100=inf", "'H100=inf'"),
        ("H100=nan", "'H100=nan'"),
        ("H100=2", "'H100=2'"),
        ("H100=" + "9" * 200_000, "'H100=" + "9" * 35 + "…'"),
    ],
)
def test_studio_gpu_prices_refuses_what_is_not_a_price_in_one_short_line(entry: str, shown: str) -> None:
    with pytest.raises(JobError) as caught:
        PriceTable.from_settings(Settings(gpu_prices=f"A100=0.0007; {entry}"))
    message = caught.value.message
    assert message.startswith(f"STUDIO_GPU_PRICES: {shown} is not GPU=dollars per second (0 to 1)")
    assert "\n" not in message and len(message) < 300


def test_studio_gpu_prices_takes_plain_decimals_and_every_cost_stays_finite(tmp_path: Path) -> None:
    table = PriceTable.from_settings(Settings(data_dir=tmp_path, gpu_prices="H100 PRO=1; A100=.0007; 4090=0.5"))
    assert table.overrides == {"H100 PRO": 1.0, "A100": 0.0007, "4090 PRO": 0.5}
    work = work_for({"mode": "streaming", "max_frame_num": 100_000}, 3600.0, "infinitetalk")
    result = estimate(work, "H100 PRO", [], table)
    assert result.cost_usd is not None and math.isfinite(result.cost_usd)
    json.loads(json.dumps(result.as_json(), allow_nan=False))
