"""History marks estimated counts, and only those (issue 32): past catalog.search.EXACT_LIMIT candidates the total,
the counts by filter and the cost come from a sample, and the page says so; under it, every number is exact and
unmarked. The limits are lowered so that a few hundred runs stand for a million."""

from __future__ import annotations

from pathlib import Path

import pytest

import catalog.search as engine
from catalog import Catalog
from catalog.search import CostTotal
from dashboard import cost
from dashboard.history import Query, count_words, facet_counts, search, total_words
from tests.dashboard_support import dashboard_env, open_page, texts

ASTRONAUTS = 400
CHEFS = 30


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "EXACT_LIMIT", 100)
    monkeypatch.setattr(engine, "SAMPLE_HITS", 20)


@pytest.fixture
def catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: None) -> Catalog:
    """400 finished runs about an astronaut (more than the lowered limit) and 30 about a chef (fewer)."""
    dashboard_env(monkeypatch, tmp_path)
    catalog = Catalog(tmp_path / "catalog.db")
    rows = [
        {
            "run_id": f"run-{index:04d}",
            "job_id": f"run-{index:04d}",
            "endpoint_id": "local",
            "engine": "preview",
            "status": "FAILED" if index % 10 == 0 else "COMPLETED",
            "prompt": ("An astronaut waves" if index < ASTRONAUTS else "A chef cooks") + f", take {index}",
            "created_at": f"2026-11-{1 + index % 28:02d}T{index // 60 % 24:02d}:{index % 60:02d}:00Z",
            "finished_at": f"2026-11-{1 + index % 28:02d}T{index // 60 % 24:02d}:{index % 60:02d}:30Z",
            "size": "infinitetalk-480",
            "cost_usd": 0.01,
            "tags": "",
            "favourite": 0,
        }
        for index in range(ASTRONAUTS + CHEFS)
    ]
    catalog.db["runs"].insert_all(rows)
    return catalog


def test_a_count_is_marked_and_rounded_only_when_it_is_an_estimate() -> None:
    assert count_words(99_901, False) == "99,901"
    assert count_words(99_901, True) == "≈99,900"
    assert count_words(412, True) == "≈412"
    assert cost.total_line(CostTotal(1.5, 10, 10)) == "Cost of these runs: **$1.50**"
    estimated = cost.total_line(CostTotal(1.5, 10, 12, approximate=True))
    assert "**≈$1.50**" in estimated and "≈2 of ≈12" in estimated and "estimated" in estimated


def test_history_marks_the_counts_of_a_search_past_the_limit_and_no_other(catalogue: Catalog) -> None:
    many = search(catalogue, Query(text="astronaut"))
    few = search(catalogue, Query(text="chef"))
    assert many.approximate and not few.approximate
    assert total_words(many).startswith("≈") and "estimated" in total_words(many)
    assert "≈" in facet_counts(many, "status")
    assert total_words(few) == "30 runs" and "≈" not in facet_counts(few, "status")

    at = open_page("history")
    at.text_input(key="history.text").set_value("astronaut").run()
    page = texts(at)
    assert "estimated from a sample" in page and "Completed ≈" in page and "**≈$" in page

    for exact in ("chef", ""):  # under the limit; and every run, whose counts are kept per combination
        at.text_input(key="history.text").set_value(exact).run()
        page = texts(at)
        assert "≈" not in page and "estimated" not in page, exact
    assert f"{ASTRONAUTS + CHEFS} runs" in page
