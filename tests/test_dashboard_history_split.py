"""History, Compare and Health over split runs (issue 30 item 6): one card per run, its parts inside its detail.

The bucket holds, through the contract's models (tests/test_catalog_split.py): a joined split run of two parts
on two GPUs ($0.10 + $0.32), an unfinished one whose second part failed with an error full of Markdown, and
beside them one ordinary real preview run. The dashboard finds them by its own pick-up (catalog.sync).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from catalog import Catalog
from core.contract import ErrorCode, JobStatus, utc_now
from core.settings import Settings
from core.store import open_store
from tests.dashboard_support import EXAMPLES, dashboard_env, example_job, open_page, real_run, texts
from tests.test_catalog_split import A100, PROMPT, publish_joined, publish_part, save_plan, split_part, split_plan

ERROR = "CUDA out of memory: **bold** [a link](http://evil.example) `code`"
JOINED = "split-abc"
RUNNING = "split-run2"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("history-split")
    settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
    store = open_store(settings)
    joined = split_plan(
        split_part(0, JobStatus.COMPLETED),
        split_part(1, JobStatus.COMPLETED, gpu=A100, cost_usd=0.32),
        endpoint_id=settings.endpoint_id,  # Health shows the dashboard's own endpoint
    )
    publish_joined(store, joined, finished_at=utc_now())  # within Health's last hour
    running = split_plan(
        split_part(0, JobStatus.COMPLETED, RUNNING),
        split_part(1, JobStatus.FAILED, RUNNING, error={"code": ErrorCode.OOM, "message": ERROR}),
        split_part(2, JobStatus.IN_PROGRESS, RUNNING),
        run_id=RUNNING,
        prompt="a second story, still being told",
        params={"prompt": "a second story, still being told", "cond_audio": {"person1": "uploads/second.wav"}},
        created_at="2026-12-01T11:00:00.000Z",
    )
    save_plan(store, running)
    publish_part(store, running.parts[0])
    real_run(settings, Catalog(settings.catalog_file), "run-plain", example_job("A plain run of one job"))
    return data_dir


@pytest.fixture
def history(made: Path, monkeypatch: pytest.MonkeyPatch) -> Catalog:
    dashboard_env(monkeypatch, made)
    return Catalog(made / "catalog.db")


def _cards(at: AppTest) -> list[str]:
    return [b.key.removeprefix("history.open.") for b in at.button if b.key and b.key.startswith("history.open.")]


def _open(run_id: str) -> AppTest:
    at = open_page("history")
    at.button(key=f"history.open.{run_id}").click().run()
    assert at.query_params["run"] == run_id
    return at


def _parts_table(at: AppTest) -> list[dict[str, str]]:
    tables = [frame.value for frame in at.dataframe if "part" in frame.value.columns]
    assert len(tables) == 1, "one table of parts in the detail"
    return tables[0].to_dict("records")


def test_history_lists_each_split_run_once_and_says_into_how_many_parts(history: Catalog) -> None:
    at = open_page("history")

    assert sorted(_cards(at)) == sorted([JOINED, RUNNING, "run-plain"]), "no part is a card of its own"
    captions = [caption.value for caption in at.caption]
    assert ":material/call_split: Split into 2 parts" in captions
    assert ":material/call_split: Split into 3 parts" in captions
    assert sum("Split into" in caption for caption in captions) == 2, "the one-job run says nothing of parts"
    at.text_input(key="history.text").set_value("lighthouse").run()
    assert _cards(at) == [JOINED], "found by its prompt"
    assert "$0.42" in texts(at), "the search's cost line sums the run's parts"


def test_a_joined_runs_detail_lists_its_parts_and_costs_their_sum(history: Catalog) -> None:
    at = _open(JOINED)

    assert _parts_table(at) == [
        {"part": "1", "speech": "0.00–9.60 s", "job": "part-job-0", "state": "done", "GPU": "90.0 s",
         "cost": "$0.10", "error": ""},
        {"part": "2", "speech": "10.00–19.60 s", "job": "part-job-1", "state": "done", "GPU": "90.0 s",
         "cost": "$0.32", "error": ""},
    ]  # fmt: skip
    facts = {metric.label: metric.value for metric in at.metric}
    assert facts["Cost"] == "$0.42"
    made_in = next(metric for metric in at.metric if metric.label == "Made in")
    assert made_in.value == "1 min 35 s", "the parts ran at once: made in the run's wall time, not their GPU sum"
    assert "3 min 00 s of GPU time" in made_in.proto.help
    cost = next(metric for metric in at.metric if metric.label == "Cost")
    assert "sum of its 2 parts' costs" in cost.proto.help
    assert "Split into 2 parts, rendered at once on several workers" in texts(at)


def test_an_unfinished_runs_detail_shows_each_parts_state_and_a_failed_parts_error_as_text(
    history: Catalog,
) -> None:
    at = _open(RUNNING)

    rows = _parts_table(at)
    assert [(row["part"], row["state"], row["job"]) for row in rows] == [
        ("1", "done", f"{RUNNING}-part-0"),
        ("2", "failed", f"{RUNNING}-part-1"),
        ("3", "rendering", f"{RUNNING}-part-2"),
    ]
    assert rows[1]["error"] == f"{ErrorCode.OOM}: {ERROR}", "the endpoint's text as it is, in a table cell"
    assert rows[1]["cost"] == rows[2]["cost"] == "—"
    assert "1 failed" in texts(at)
    assert not [m for m in at.markdown if "evil.example" in m.value], "never rendered as Markdown"


def test_reuse_fills_the_runs_own_input_not_a_parts(history: Catalog) -> None:
    at = _open(JOINED)
    at.button(key="history.reuse").click().run()

    assert at.title[0].value == "Submit a talking video"
    assert at.text_area(key="submit.prompt").value == PROMPT
    assert "long\\.wav" in texts(at), "the run's whole speech, not a part's slice"


def test_compare_shows_a_split_run_like_any_run_with_its_parts_among_the_differences(
    history: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_page("history")  # the pick-up takes the bucket's runs in
    at = open_page()
    at.query_params["compare"] = f"{JOINED},run-plain"
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]

    facts = at.dataframe[0].value.set_index("")
    assert facts.loc["split into"].tolist() == ["2 parts", "one job"]
    assert facts.loc["cost"].tolist() == ["$0.42", "$0 (preview engine)"]
    differing = at.dataframe[1].value.set_index("setting")
    assert differing.loc["split into"].tolist() == ["2 parts", "one job"]
    assert differing.loc["longest part"].tolist() == ["9.6 s", "—"]


def test_health_spends_a_split_runs_cost_once(history: Catalog) -> None:
    open_page("history")
    at = open_page("health")

    assert "Spent in this window: $0.42" in texts(at), "the parts' sum, counted once: no part is a run of its own"
