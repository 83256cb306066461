"""Honest batches (issue 29, item 2): the check is the worker's own validation, media travel with the file, rows
take the form's defaults, and every problem is readable whole."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog
from core.contract import JobStatus
from core.settings import Settings
from dashboard import state
from dashboard.batch import read_batch
from dashboard.forms import form_defaults
from tests.dashboard_support import EXAMPLES, MEDIA, dashboard_env, local_endpoint, open_page, rerun_until, texts


def test_an_absolute_path_outside_the_workers_folders_is_refused_though_the_file_is_here(tmp_path: Path) -> None:
    """The check said "ok" for a file on the dashboard's disk, then the worker refused it (allowed folders)."""
    photo = tmp_path / "portrait.jpg"
    shutil.copyfile(MEDIA / "portrait.jpg", photo)
    rows = f"prompt,cond_video,cond_audio.person1\nhello,{photo},{MEDIA / 'speech_1.wav'}\n"
    settings = Settings(data_dir=tmp_path / "data", input_roots=(EXAMPLES,))
    (line,) = read_batch("jobs.csv", rows.encode(), settings)
    assert set(line.errors) == {"cond_video"}, "the speech is inside an allowed folder, the photo is not"
    assert "paths must be absolute and inside an allowed folder" in line.errors["cond_video"]
    assert "Media for this batch" in line.errors["cond_video"], "it says how to send the file instead"


def test_rows_take_the_forms_values_for_what_they_leave_out(tmp_path: Path) -> None:
    """A CSV row without `mode` ran in clip mode (3 s of a 121 s speech) while the form said streaming."""
    rows = "prompt,cond_video,tts_audio.text,mode\nno mode,https://x/p.jpg,hello,\nclip,https://x/p.jpg,hello,clip\n"
    defaults = form_defaults()
    assert defaults["mode"] == "streaming"
    plain, clip = read_batch("jobs.csv", rows.encode(), defaults=defaults)
    assert plain.ok and plain.job["mode"] == "streaming"
    assert plain.job["sample_steps"] == defaults["sample_steps"]
    assert clip.job["mode"] == "clip", "a row's own value wins"


def test_the_readmes_batch_json_is_ready_once_its_media_are_attached(tmp_path: Path) -> None:
    """examples/batch.json names media/portrait.jpg beside it: the file attached under that name is used."""
    store_dir = tmp_path / "data" / "artifacts" / "uploads"
    store_dir.mkdir(parents=True)
    attached = {}
    for name in ("portrait.jpg", "speech_1.wav", "speech_2.wav"):
        shutil.copyfile(MEDIA / name, store_dir / name)
        attached[name] = str(store_dir / name)
    settings = Settings(data_dir=tmp_path / "data")
    payload = (EXAMPLES / "batch.json").read_bytes()
    bare = read_batch("batch.json", payload, settings)
    assert all("Media for this batch" in line.errors["cond_video"] for line in bare)
    lines = read_batch("batch.json", payload, settings, media=attached)
    assert all(line.ok for line in lines), [line.errors for line in lines]
    assert lines[0].job["cond_video"] == attached["portrait.jpg"]
    assert lines[1].job["cond_audio"] == {"person1": attached["speech_1.wav"]}


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with local_endpoint(tmp_path_factory.mktemp("batch")) as env:
        yield env


@pytest.fixture
def data_dir(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    return Path(endpoint_env["STUDIO_DATA_DIR"])


def test_each_problem_is_shown_whole(data_dir: Path) -> None:
    """The README's own batch.json was refused with its reason cut mid-sentence in a table cell."""
    at = open_page("submit")
    payload = (EXAMPLES / "batch.json").read_bytes()
    at.file_uploader(key="submit.batch_file").upload("batch.json", payload, "application/json").run()
    problems = [e.value for e in at.error if e.value.startswith("**Line ")]
    assert len(problems) == 2
    assert "relative to the batch file" in problems[0]
    assert problems[0].rstrip().endswith("absolute path inside an allowed folder"), "the sentence ends whole"
    assert "2 of 2 jobs need fixing; nothing was sent." in texts(at)
    assert "submit.batch_submit" not in [b.key for b in at.button]


def test_a_csv_batch_with_its_media_uploaded_runs_in_the_forms_mode(data_dir: Path) -> None:
    rows = "prompt,cond_video,cond_audio.person1\nfirst from a csv,portrait.jpg,speech_1.wav\n"
    rows += "second from a csv,portrait.jpg,speech_2.wav\n"
    at = open_page("submit")
    at.file_uploader(key="submit.batch_file").upload("jobs.csv", rows.encode(), "text/csv")
    at.file_uploader(key="submit.batch_media").set_value(
        [
            ("portrait.jpg", (MEDIA / "portrait.jpg").read_bytes(), "image/jpeg"),
            ("speech_1.wav", (MEDIA / "speech_1.wav").read_bytes(), "audio/wav"),
            ("speech_2.wav", (MEDIA / "speech_2.wav").read_bytes(), "audio/wav"),
        ]
    )
    at.run()
    assert not [e.value for e in at.error if e.value.startswith("**Line ")], texts(at)
    at.button(key="submit.batch_submit").click().run()
    assert at.title[0].value == "Live jobs"
    sent = at.session_state[state.SUBMITTED][-2:]
    catalog = Catalog(data_dir / "catalog.db")
    rerun_until(at, lambda a: all(catalog.get(j)["status"] in JobStatus.FINAL for j in sent), timeout_s=180)  # type: ignore[index]
    for job_id in sent:
        run = catalog.get(job_id)
        assert run is not None and run["status"] == JobStatus.COMPLETED, run and run["error_message"]
        assert run["mode"] == "streaming", "the form's mode, not the contract's clip"
        assert json.dumps(run["params"]).count("uploads/") == 2, "both media went through the store"
