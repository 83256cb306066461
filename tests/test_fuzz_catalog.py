"""Fuzzing what the bucket and the endpoint hand the catalogue and the Live card (issue 27, round three): curation
changes around the bucket model's limits, any time a curation.json may carry, and any `partial_video` payload.

Same profiles as tests/test_fuzz.py (`HYPOTHESIS_PROFILE=nightly` runs 10 000 examples; CI runs `ci`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog import Catalog, bucket, sync
from catalog.catalog import clean_tags
from core.contract import ErrorCode, JobError, PartialVideoInfo
from core.store import LocalStore
from dashboard import partial_view
from dashboard.views import plain
from tests.test_catalog_sync import metadata, publish
from tests.test_fuzz import hypothesis_settings  # noqa: F401  (registers and loads the profiles)

RUNS = itertools.count()
SURROGATE = "\ud800"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, LocalStore]:
    """One catalogue and folder store for every example; each example curates a run of its own."""
    root = tmp_path_factory.mktemp("fuzz-catalog")
    return Catalog(root / "catalog.db"), LocalStore(root / "store")


def new_run(catalog: Catalog, store: LocalStore) -> str:
    job_id = f"fuzz-{next(RUNS)}"
    publish(store, metadata(job_id))
    assert sync(catalog, store, prefix=f"jobs/{job_id}/").added == 1
    return job_id


def sized(low: int, high: int, letter: str = "x") -> st.SearchStrategy[str]:
    """Text whose length lies around a limit."""
    return st.integers(low, high).map(lambda n: letter * n)


tags = st.lists(
    st.one_of(st.text(max_size=12), sized(bucket.MAX_TAG_CHARS - 2, bucket.MAX_TAG_CHARS + 2), st.just(SURROGATE)),
    max_size=bucket.MAX_TAGS + 5,
)
notes = st.one_of(
    st.none(),
    st.text(max_size=40),
    sized(bucket.MAX_NOTE_CHARS - 2, bucket.MAX_NOTE_CHARS + 2, "n"),
    st.just(SURROGATE),
)


@given(tags=st.one_of(st.none(), tags), note=notes)
def test_a_curation_change_is_taken_whole_or_refused_in_one_line_changing_nothing(
    place: tuple[Catalog, LocalStore], tags: list[str] | None, note: str | None
) -> None:
    catalog, store = place
    run_id = new_run(catalog, store)
    before = catalog.get(run_id)
    try:
        after = catalog.curate(run_id, tags=tags, note=note, store=store)
    except JobError as error:
        assert error.code == ErrorCode.INPUT_VALIDATION and "\n" not in error.message, error.message
        assert catalog.get(run_id) == before, "nothing changed"
        assert not store.exists(f"jobs/{run_id}/curation.json")
        return
    assert after is not None
    if tags is not None:
        assert after["tag_list"] == clean_tags(tags)
    written = json.loads(store.get(f"jobs/{run_id}/curation.json"))
    if written.get("tags"):
        assert written["tags"]["value"] == after["tag_list"]
    if written.get("note"):
        assert written["note"]["value"] == (after["note"] or "")


offsets = st.integers(-14 * 60, 14 * 60).map(
    lambda minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
)
times = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.tuples(st.datetimes(), offsets).map(lambda pair: pair[0].isoformat() + pair[1]),
    st.sampled_from(["9999-12-31", "9999-12-31T23:59:59.999999-14:00", "0001-01-01", "2026-12-07", "3000-01-01Z"]),
)


@given(at=times)
def test_no_time_in_curation_json_makes_a_later_edit_revert(place: tuple[Catalog, LocalStore], at: str) -> None:
    catalog, store = place
    run_id = new_run(catalog, store)
    planted = {"job_id": run_id, "note": {"value": "planted", "at": at}}
    store.put_bytes(f"jobs/{run_id}/curation.json", json.dumps(planted).encode())
    sync(catalog, store, prefix=f"jobs/{run_id}/")
    catalog.curate(run_id, note=f"edit of {run_id}", store=store)
    sync(catalog, store, prefix=f"jobs/{run_id}/")
    assert catalog.get(run_id)["note"] == f"edit of {run_id}"
    assert json.loads(store.get(f"jobs/{run_id}/curation.json"))["note"]["value"] == f"edit of {run_id}"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["![x](http://169.254.169.254/b.png)", "[Download](http://evil/)", "`", "**", "<img src=x>"]),
)
keys = st.one_of(
    st.sampled_from(["jobs/job-p/partial-001.mp4", "jobs/job-p/item/partial-012.mp4", "jobs/x/partial-001.mp4"]),
    st.sampled_from(["jobs/job-p/../../etc/partial-001.mp4", "/jobs/job-p/partial-001.mp4", "jobs/job-p/video.mp4"]),
    scalars,
)
FIELDS = {"url": scalars, "key": keys, "duration_s": scalars, "clips_done": scalars, "clips_total": scalars}
partials = st.one_of(
    scalars,
    st.fixed_dictionaries({}, optional={**FIELDS, "bytes": scalars, "extra": scalars}),
    st.lists(scalars, max_size=3),
)


@given(partial=partials)
def test_any_partial_payload_is_the_model_or_one_plain_line(partial: Any) -> None:
    found = partial_view.find([{"stage": "generation", "partial_video": partial}], "jobs/job-p")
    if found is None:
        assert partial is None
    elif isinstance(found, str):
        assert "\n" not in found
        shown = plain(found)
        assert "![" not in shown and "](" not in shown and "`" not in shown.replace("\\`", "")
    else:
        assert isinstance(found, PartialVideoInfo) and found.key.startswith("jobs/job-p/")
        assert 0 <= found.duration_s < float("inf") and 0 <= found.clips_done <= found.clips_total
