"""Time and money on the pages: Submit's estimate line and timeout guard (the request really carries the
timeout to a real local endpoint), History's costs (cards, detail, sum, sort), Health's spend charts, and the
Compare page opened from ticks in History or from a `?compare=A,B` link."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from client.estimate import estimate, work_for
from core.prices import PriceTable
from core.settings import Settings
from dashboard import state
from dashboard.compare import PICKED
from tests.dashboard_support import (
    EXAMPLES,
    MEDIA,
    dashboard_env,
    example_job,
    local_endpoint,
    open_page,
    real_run,
    texts,
)
from tests.test_catalog_sync import metadata

H100 = {"name": "NVIDIA H100 80GB HBM3", "count": 1}


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real local endpoint (it runs the preview engine) for the submission that carries a timeout."""
    with local_endpoint(tmp_path_factory.mktemp("estimate")) as env:
        yield env


def _photo_and_recording(at, prompt: str):  # type: ignore[no-untyped-def]
    at.file_uploader(key="submit.cond_upload").upload(
        "portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"
    )
    at.audio_input(key="submit.p1_record").upload("recording.wav", (MEDIA / "speech_1.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value(prompt)
    return at.run()


def _estimate_line(at) -> str:  # type: ignore[no-untyped-def]
    return next(c.value for c in at.caption if c.value.startswith("Estimate:"))


def test_the_local_preview_engine_shows_it_costs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard_env(monkeypatch, tmp_path)
    at = _photo_and_recording(open_page("submit"), "free preview")
    line = _estimate_line(at)
    assert "$0" in line and "preview engine" in line
    assert not at.warning, "no timeout guard for a job that runs here"
    on_gpu = estimate(work_for({"mode": "streaming"}, 8.299), "H200 PRO", [], PriceTable())
    assert f"On a GPU worker it would be ≈ {on_gpu.seconds / 60:.0f} min" in texts(at)
    assert f"on H200 PRO, ≈ ${on_gpu.cost_usd:.2f}" in texts(at)


def test_a_long_job_gets_the_guard_and_the_request_carries_the_timeout_the_user_chose(
    endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = Path(endpoint_env["STUDIO_DATA_DIR"])
    dashboard_env(monkeypatch, data_dir, int(endpoint_env["STUDIO_LOCAL_PORT"]))
    # The dashboard takes its endpoint for a GPU worker with a 5-minute timeout: 8.3 s of speech at 40 steps
    # is about 18 minutes on the H200 by LightX2V's figures.
    monkeypatch.setenv("STUDIO_ENGINE", "infinitetalk")
    monkeypatch.setenv("STUDIO_EXECUTION_TIMEOUT_S", "300")
    at = _photo_and_recording(open_page("submit"), "a long job that needs more time")
    expected = estimate(work_for({"mode": "streaming"}, 8.299), "H200 PRO", [], PriceTable())
    line = _estimate_line(at)
    assert "on H200 PRO" in line and f"${expected.cost_usd:.2f}" in line and "published figures" in line
    (guard,) = [w.value for w in at.warning if "execution timeout" in w.value]
    assert "TIMED_OUT" in guard and "5 min" in guard
    timeout = at.number_input(key="submit.estimate.timeout_s")
    assert timeout.value == expected.execution_timeout_s and timeout.value % 60 == 0
    assert timeout.value > expected.high > 300

    timeout.set_value(3600).run()
    at.number_input(key="submit.param.sample_steps").set_value(40).run()
    assert at.number_input(key="submit.estimate.timeout_s").value == 3600, "the user's value holds over reruns"
    at.button(key="submit.go").click().run()
    assert at.title[0].value == "Live jobs"
    (job_id,) = at.session_state[state.SUBMITTED]
    queue = sqlite3.connect(data_dir / "endpoint" / "queue.db")
    (timeout_ms,) = queue.execute("SELECT timeout_ms FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert timeout_ms == 3_600_000, "the endpoint got policy.executionTimeout"


def test_enough_past_runs_on_the_endpoint_make_the_estimate_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, tmp_path)
    monkeypatch.setenv("STUDIO_ENGINE", "infinitetalk")
    catalog = Catalog(Settings(data_dir=tmp_path).catalog_file)
    params = {"prompt": "p", "cond_video": "https://media.example/p.jpg", "mode": "streaming", "sample_steps": 40}
    params |= {"cond_audio": {"person1": "https://media.example/a.wav"}, "size": "infinitetalk-480"}
    for index, frames in enumerate((81, 150, 207, 300, 400, 500)):
        folder = f"jobs/past-{index}"
        outputs = {
            "video": {"key": f"{folder}/video.mp4", "frames": frames, "duration_s": frames / 25},
            "thumbnail": {"key": f"{folder}/thumb.jpg"},
            "metadata": {"key": f"{folder}/metadata.json"},
        }
        units = work_for(params, frames / 25).units
        meta = metadata(f"past-{index}", endpoint_id="local", params=params, inputs=[], outputs=outputs, gpu=H100)
        meta = meta.model_copy(update={"timings": {"total_ms": int((40 + 0.02 * units) * 1000)}})
        catalog.upsert_metadata(meta.model_dump(mode="json"), f"{folder}/metadata.json")
    at = _photo_and_recording(open_page("submit"), "from history")
    line = _estimate_line(at)
    assert "on H100 PRO" in line and "from past runs: 6 similar past runs" in line
    seconds = 40 + 0.02 * work_for(params, 8.299).units
    assert f"≈ {math.ceil(seconds) * 0.00116:.2f}".replace("≈ ", "≈ $") in line


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real preview runs and one priced GPU run (from its metadata.json) in one catalogue."""
    data_dir = tmp_path_factory.mktemp("costs")
    settings = Settings(data_dir=data_dir, input_roots=(EXAMPLES,))
    catalog = Catalog(settings.catalog_file)
    real_run(settings, catalog, "run-astronaut", example_job("An astronaut waves hello", sample_steps=8))
    real_run(settings, catalog, "run-pilot", example_job("A pilot explains the checklist", size="infinitetalk-720"))
    meta = metadata("run-gpu", endpoint_id="local", gpu=H100, finished_at="2026-11-20T10:01:10.000Z")
    catalog.upsert_metadata(meta.model_dump(mode="json"), "jobs/run-gpu/metadata.json")
    return data_dir


def test_history_shows_costs_sums_them_and_sorts_by_them(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard_env(monkeypatch, made)
    at = open_page("history")
    assert "Cost of these runs: **$0.08**" in texts(at), "65 s on an H100 at $0.00116/s; previews are free"
    at.selectbox(key="history.sort").set_value("costliest").run()
    cards = [b.key.removeprefix("history.open.") for b in at.button if (b.key or "").startswith("history.open.")]
    assert cards[0] == "run-gpu"
    captions = [c.value for c in at.caption]
    assert any(c.endswith("· $0.08") for c in captions) and any(c.endswith("$0 (preview engine)") for c in captions)
    at.button(key="history.open.run-gpu").click().run()
    facts = {m.label: m.value for m in at.metric}
    assert (facts["Cost"], facts["GPU"]) == ("$0.08", "NVIDIA H100 80GB HBM3")
    (cost,) = [m for m in at.metric if m.label == "Cost"]
    assert "65 s billed × $0.00116/s" in cost.help


def test_ticking_two_cards_opens_them_side_by_side_with_what_differs(
    made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, made)
    at = open_page("history")
    at.checkbox(key="history.open.compare.run-astronaut").check().run()
    assert "1 run ticked for comparing: tick one more." in texts(at)
    at.checkbox(key="history.open.compare.run-pilot").check().run()
    assert at.session_state[PICKED] == ["run-astronaut", "run-pilot"]
    at.button(key="history.compare.go").click().run()
    assert at.title[0].value == "Compare two runs"
    assert at.query_params["compare"] == "run-astronaut,run-pilot"
    assert len(at.get("video")) == 2, "both videos, side by side"
    facts = at.dataframe[0].value.set_index("")
    assert facts.loc["size"].tolist() == ["480p · 640×640", "720p · 960×960"]
    assert facts.loc["cost"].tolist() == ["$0 (preview engine)", "$0 (preview engine)"]
    differing = at.dataframe[1].value
    assert set(differing["setting"]) == {"Prompt", "Sample shift", "Sampling steps", "Size"}, "the form's labels"
    assert differing.set_index("setting").loc["Sampling steps"].tolist() == ["8", "40"]


def test_a_compare_link_opens_the_same_view_and_a_bad_one_says_what_it_needs(
    made: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashboard_env(monkeypatch, made)
    at = open_page()
    at.query_params["compare"] = "run-gpu,run-pilot"
    at.switch_page("app_pages/compare.py").run()
    assert len(at.get("video")) == 1, "the GPU run's video is not in this store: only the pilot's plays"
    assert at.dataframe[0].value.set_index("").loc["cost"].tolist() == ["$0.08", "$0 (preview engine)"]
    at.query_params["compare"] = "run-pilot"
    at.run()
    assert "The link must name two different runs" in texts(at)
    assert at.selectbox(key="compare.a").options, "runs to pick from instead"


def test_health_charts_spend_per_day_and_cost_per_second_of_video(made: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dashboard_env(monkeypatch, made)
    at = open_page("health")
    at.segmented_control(key="health.window").set_value("Last week").run()
    shown = texts(at)
    assert "**Spend per day**" in shown and "Cost per second of video" in shown
    assert "Every run here was made by the local preview engine, which costs $0." in shown, "the GPU run is older"
    spent = {metric.label: metric.value for metric in at.metric}
    # Issue 29: a chart of zeros drew a "0.000000" axis; all-$0 windows say the sum instead.
    assert (spent["Spent in this window"], spent["Per second of video"]) == ("$0", "$0")
