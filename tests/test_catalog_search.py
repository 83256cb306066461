"""Searching the catalogue: words, filters, facet counts, sort and pages; user syntax never breaks it."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog import Catalog
from core.contract import JobStatus

PARAMS = {
    "cond_video": "/runpod-volume/in/face.jpg",
    "cond_audio": {"person1": "/runpod-volume/in/hello.wav"},
    "size": "infinitetalk-480",
    "mode": "streaming",
    "sample_steps": 40,
}


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """Thirty runs: every third about an astronaut, odd ones at 720p, the first ten at 4 steps, every fifth done."""
    catalog = Catalog(tmp_path / "catalog.db")
    for index in range(30):
        job_id = f"job-{index:02d}"
        params = {
            **PARAMS,
            "prompt": f"{'An astronaut' if index % 3 == 0 else 'A teacher'} talking, take {index}",
            "size": "infinitetalk-720" if index % 2 else "infinitetalk-480",
            "sample_steps": 4 if index < 10 else 40,
        }
        catalog.record_submission(job_id, params, endpoint_id="local", created_at=f"2026-11-{index + 1:02d}T10:00:00Z")
        if index % 5 == 0:
            video = {"key": f"jobs/{job_id}/video.mp4", "duration_s": float(index), "width": 1, "height": 1}
            catalog.apply_status(
                job_id,
                JobStatus.COMPLETED,
                output={"status": "success", "video": video, "timings": {"total_ms": 1000 * (30 - index)}},
            )
    return catalog


def test_words_filters_tags_notes_and_dates_narrow_the_runs(catalog: Catalog) -> None:
    catalog.set_tags("job-03", ["Launch", "best"])
    catalog.set_note("job-06", "use this one for the trailer")
    catalog.set_favourite("job-09", True)

    assert catalog.search("astronaut").total == 10
    assert catalog.search("astronauts").total == 10, "words are stemmed"
    assert catalog.search("astronaut", size="infinitetalk-480").total == 5
    assert catalog.search("astro*").total == 10, "FTS5 prefix syntax works"
    assert catalog.search('"teacher talking"').total == 20, "FTS5 phrases work"
    assert catalog.search("", status=JobStatus.COMPLETED).total == 6
    assert catalog.search("", status=[JobStatus.COMPLETED, JobStatus.IN_QUEUE]).total == 30
    assert [r["run_id"] for r in catalog.search("launch").rows] == ["job-03"], "tags are searchable"
    assert [r["run_id"] for r in catalog.search("trailer").rows] == ["job-06"], "notes are searchable"
    assert [r["run_id"] for r in catalog.search("", tag="best").rows] == ["job-03"]
    assert [r["run_id"] for r in catalog.search("", favourite=1).rows] == ["job-09"]
    assert catalog.search("", created_from="2026-11-20", created_to="2026-11-30").total == 10


def test_a_tag_filter_matches_whole_tags_only(catalog: Catalog) -> None:
    catalog.set_tags("job-01", ["talking"])
    catalog.set_tags("job-02", ["talking-head", 'say "hi"', "!!!"])

    assert [r["run_id"] for r in catalog.search("", tag="talking").rows] == ["job-01"], "not prompts, not prefixes"
    assert [r["run_id"] for r in catalog.search("", tag="talking-head").rows] == ["job-02"]
    assert [r["run_id"] for r in catalog.search("", tag='say "hi"').rows] == ["job-02"]
    assert [r["run_id"] for r in catalog.search("", tag="!!!").rows] == ["job-02"]
    assert catalog.search("astronaut", tag="talking").total == 0


def test_a_tag_filter_treats_like_wildcards_as_the_characters_they_are(catalog: Catalog) -> None:
    catalog.set_tags("job-01", ["a_c"])
    catalog.set_tags("job-02", ["abc", "100%"])
    catalog.set_tags("job-03", ["1000"])

    for wildcard in ("%", "_", "%%", "___", "a%", "a_c%", "\\", "%,%"):
        assert catalog.search("", tag=wildcard).total == 0, f"{wildcard!r} is no wildcard"
    assert [r["run_id"] for r in catalog.search("", tag="a_c").rows] == ["job-01"], "`_` is not any character"
    assert [r["run_id"] for r in catalog.search("", tag="100%").rows] == ["job-02"], "`%` is not any characters"
    assert [r["run_id"] for r in catalog.search("", tag="ABC").rows] == ["job-02"], "tags match in any case"


def test_facets_count_every_match_not_just_the_page(catalog: Catalog) -> None:
    found = catalog.search("", per_page=1)
    assert len(found.rows) == 1 and found.total == 30
    assert found.facets["size"] == {"infinitetalk-480": 15, "infinitetalk-720": 15}
    assert found.facets["sample_steps"] == {40: 20, 4: 10}
    assert found.facets["status"] == {JobStatus.IN_QUEUE: 24, JobStatus.COMPLETED: 6}
    assert found.facets["input_kind"] == {"image": 30} and found.facets["speakers"] == {1: 30}

    narrowed = catalog.search("astronaut", sample_steps=4)
    assert narrowed.total == 4
    assert sum(narrowed.facets["size"].values()) == 4, "facets follow the filters"


def test_sorting_and_pages(catalog: Catalog) -> None:
    assert catalog.search("").rows[0]["run_id"] == "job-29"
    assert catalog.search("", sort="oldest").rows[0]["run_id"] == "job-00"
    assert [r["run_id"] for r in catalog.search("", sort="longest", per_page=2).rows] == ["job-25", "job-20"]
    assert [r["run_id"] for r in catalog.search("", sort="slowest", per_page=2).rows] == ["job-00", "job-05"]
    assert catalog.search("", sort="steps").rows[0]["sample_steps"] == 40

    last = catalog.search("", per_page=7, page=5, sort="oldest")
    assert last.pages == 5 and [r["run_id"] for r in last.rows] == ["job-28", "job-29"]
    assert catalog.search("", per_page=7, page=9).rows == []
    seen = [r["run_id"] for page in range(1, 6) for r in catalog.search("", per_page=7, page=page).rows]
    assert len(seen) == len(set(seen)) == 30, "pages neither repeat nor skip runs"


@pytest.mark.parametrize("query", ['"astronaut', "astronaut AND", "NEAR(astronaut", "-astronaut", "a:astronaut"])
def test_broken_search_syntax_falls_back_to_the_words(catalog: Catalog, query: str) -> None:
    found = catalog.search(query)
    assert found.total == 10
    assert found.query_note is not None and "astronaut" in found.query_note


@pytest.mark.parametrize("query", ["AND", "(((", "*", "-", '"'])
def test_a_query_without_words_finds_nothing_and_says_why(catalog: Catalog, query: str) -> None:
    found = catalog.search(query)
    assert found.total == 0 and found.rows == []
    assert found.query_note is not None


def test_bad_filters_and_sorts_name_the_choices(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="cannot filter on colour; use "):
        catalog.search("", colour="red")
    with pytest.raises(ValueError, match="sort must be one of newest, oldest"):
        catalog.search("", sort="random")


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("", {}),
        ("astronaut", {}),
        ("teacher", {"status": JobStatus.COMPLETED}),
        ("astronaut", {"size": "infinitetalk-720", "sample_steps": [4, 40]}),
        ("", {"created_from": "2026-11-05", "created_to": "2026-11-25", "size": "infinitetalk-480"}),
        ("talking", {"tag": "best", "favourite": 1}),
        ("teacher", {"endpoint_id": "local", "sample_steps": 40, "created_from": "2026-11-15"}),
    ],
)
def test_counts_and_pages_agree_with_a_brute_force_filter(catalog: Catalog, query: str, filters: dict) -> None:
    catalog.set_tags("job-12", ["best"])
    catalog.set_favourite("job-12", True)
    catalog.set_tags("job-14", ["best"])
    catalog.apply_status("job-13", JobStatus.FAILED, error={"code": "E_OOM", "message": "out of memory"})
    catalog.delete("job-27")
    everything = catalog.search("", per_page=200).rows
    words = {row["run_id"] for row in catalog.search(query, per_page=200).rows} if query else None

    def wanted(row: dict) -> bool:
        for name, value in filters.items():
            if name == "created_from" and row["created_at"] < value:
                return False
            if name == "created_to" and row["created_at"] > value:
                return False
            if name == "tag" and value not in row["tags"].split(","):
                return False
            if name not in ("created_from", "created_to", "tag") and row[name] not in (
                value if isinstance(value, list) else [value]
            ):
                return False
        return words is None or row["run_id"] in words

    expected = sorted((row for row in everything if wanted(row)), key=lambda row: row["created_at"], reverse=True)
    found = catalog.search(query, per_page=3, **filters)
    assert found.total == len(expected)
    assert [row["run_id"] for row in found.rows] == [row["run_id"] for row in expected[:3]]
    for name in ("status", "size", "sample_steps"):
        counts: dict = {}
        for row in expected:
            counts[row[name]] = counts.get(row[name], 0) + 1
        assert found.facets[name] == counts


def test_tags_keep_their_case_and_a_tag_filter_finds_a_word_of_a_tag_in_any_case(catalog: Catalog) -> None:
    """Issue 29: "Demo Reel" was saved as "demo reel", and the Tag filter "demo" then found nothing."""
    catalog.set_tags("job-01", ["Demo Reel", "demo reel", "best"])
    catalog.set_tags("job-02", ["reel", "Best"])
    run = catalog.get("job-01")
    assert run is not None and run["tag_list"] == ["Demo Reel", "best"], "case kept; a repeat in other case dropped"
    assert [r["run_id"] for r in catalog.search("", tag="demo").rows] == ["job-01"]
    assert [r["run_id"] for r in catalog.search("", tag="DEMO REEL").rows] == ["job-01"]
    assert catalog.search("", tag="reel best").total == 0, "never across two tags"
    assert sorted(r["run_id"] for r in catalog.search("", tag="BEST").rows) == ["job-01", "job-02"]
