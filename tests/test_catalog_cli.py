"""`studio catalog`: search, sync and stats from a shell, configured by the environment like every part."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import catalog.search as engine
from catalog import Catalog
from catalog.cli import main
from core.settings import Settings
from core.store import LocalStore
from tests.test_catalog_sync import metadata, publish

ROOT = Path(__file__).resolve().parent.parent


def cli(env: dict[str, str], *args: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", "catalog", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **popen,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A data dir whose local store holds three published runs, none catalogued yet."""
    env = {"STUDIO_DATA_DIR": str(tmp_path / "data"), "S3_BUCKET": "", "BUCKET_NAME": "", "STUDIO_STORE": ""}
    store = LocalStore(Settings.from_env(env).artifact_dir)
    at_480p = {**metadata("job-480").params, "size": "infinitetalk-480"}
    publish(store, metadata("job-480", prompt="an astronaut waves", params=at_480p, created_at="2026-11-01T09:00:00Z"))
    publish(store, metadata("job-720", prompt="an astronaut laughs", created_at="2026-11-02T09:00:00Z"))
    publish(store, metadata("job-chef", prompt="a chef explains the recipe", created_at="2026-11-03T09:00:00Z"))
    return env


def test_sync_then_search_as_json_with_filters(env: dict[str, str]) -> None:
    synced = cli(env, "sync")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip() == "3 added, 0 updated, 0 unchanged, 0 skipped"

    found = cli(env, "search", "astronaut", "--size", "infinitetalk-480", "--status", "COMPLETED", "--json")
    assert found.returncode == 0, found.stderr
    answer = json.loads(found.stdout)
    assert answer["total"] == 1 and [row["run_id"] for row in answer["rows"]] == ["job-480"]
    assert answer["facets"]["size"] == {"infinitetalk-480": 1}
    assert Catalog(Settings.from_env(env).catalog_file).get("job-480") is not None, "the configured file is used"


def test_search_prints_a_readable_table_and_stats_count_the_runs(env: dict[str, str]) -> None:
    cli(env, "sync")
    found = cli(env, "search", "astronaut", "--sort", "oldest")
    lines = found.stdout.splitlines()
    assert lines[0].split() == ["created", "(UTC)", "status", "size", "mode", "steps", "secs", "run", "prompt"]
    assert lines[2].split()[:3] == ["2026-11-01", "09:00", "COMPLETED"]
    assert [line.split()[7] for line in lines[2:4]] == ["job-480", "job-720"]
    assert "2 runs, page 1 of 1" in found.stdout
    assert "size: infinitetalk-480 (1), infinitetalk-720 (1)" in found.stdout

    stats = cli(env, "stats")
    assert stats.returncode == 0 and "runs: 3" in stats.stdout and "by status: COMPLETED (3)" in stats.stdout
    assert json.loads(cli(env, "stats", "--json").stdout)["by_engine"] == {"infinitetalk": 3}
    assert cli(env, "reindex").stdout.strip() == "reindexed 3 runs"


def test_bad_input_is_one_clear_line_never_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    unbalanced = cli(env, "search", '"astronaut', "--json")
    assert unbalanced.returncode == 0 and "not valid search syntax" in json.loads(unbalanced.stdout)["note"]

    bad_size = cli(env, "search", "--size", "huge")
    assert bad_size.returncode == 2 and "invalid choice: 'huge'" in bad_size.stderr

    no_bucket = cli(env, "sync", "--store", "s3")
    assert no_bucket.returncode == 2
    assert no_bucket.stderr.startswith("error: output_config.store is s3 but no bucket is set: set S3_BUCKET")
    assert "Traceback" not in no_bucket.stderr + bad_size.stderr

    LocalStore(Settings.from_env(env).artifact_dir).put_bytes("jobs/junk/metadata.json", b"[]")
    skipped = cli(env, "sync")
    assert skipped.stdout.strip() == "3 added, 0 updated, 0 unchanged, 1 skipped"
    assert "skipped jobs/junk/metadata.json: not an InfiniteTalk Studio metadata file" in skipped.stderr


def test_the_catalogue_loads_without_the_worker_pipeline_or_torch() -> None:
    # The dashboard imports it on Streamlit Community Cloud, which installs only the light requirements.
    probe = "import json, sys, catalog, catalog.cli; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    )
    assert not {"torch", "cv2", "runpod", "requests"} & set(loaded)
    assert [name for name in loaded if name.split(".")[0] in {"worker", "endpoint", "client", "dashboard"}] == []
    assert [name for name in loaded if name.split(".")[0] == "core"] == [
        "core",
        "core.contract",
        "core.db",
        "core.prices",
        "core.settings",
        "core.store",
    ]


def damaged_files(good: Path) -> dict[str, bytes]:
    """What a crash, a full disk or a bad copy leaves: garbage, a torn header, a file cut off half way."""
    whole = good.read_bytes()
    return {"garbage": os.urandom(8192), "torn header": whole[:50], "cut in half": whole[: len(whole) // 2]}


def filled_catalogue(path: Path, runs: int = 400) -> Path:
    catalog = Catalog(path)
    for index in range(runs):
        catalog.record_submission(f"job-{index}", {"prompt": f"an astronaut, take {index} " * 4}, endpoint_id="x")
    catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    catalog.close()
    return path


@pytest.mark.parametrize("damage", ["garbage", "torn header", "cut in half"])
def test_a_damaged_catalogue_is_one_line_naming_the_fix(env: dict[str, str], tmp_path: Path, damage: str) -> None:
    catalog_file = Settings.from_env(env).catalog_file
    catalog_file.parent.mkdir(parents=True, exist_ok=True)
    catalog_file.write_bytes(damaged_files(filled_catalogue(tmp_path / "good.db"))[damage])

    for command in (["search", "astronaut"], ["sync"], ["stats"]):
        answer = cli(env, *command)
        assert answer.returncode == 2, answer
        assert answer.stderr.startswith(f"error: the catalogue {catalog_file} is damaged"), answer.stderr
        assert "move it aside" in answer.stderr and "studio catalog sync" in answer.stderr
        assert "Traceback" not in answer.stderr and len(answer.stderr.strip().splitlines()) == 1

    catalog_file.rename(catalog_file.with_name("catalog.db.broken"))
    assert cli(env, "sync").stdout.strip() == "3 added, 0 updated, 0 unchanged, 0 skipped", "the fix works"


def cannot_override_permissions() -> None:
    """Run the child as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so a mode of 0555 binds it too."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for capability in (1, 2):  # PR_CAPBSET_DROP: dropped from the bounding set, absent after exec
            if libc.prctl(24, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("layout", ["data dir read-only", "catalogue in a read-only dir", "parent read-only"])
def test_a_read_only_data_dir_is_one_line_naming_the_fix(tmp_path: Path, layout: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    if layout == "catalogue in a read-only dir":
        filled_catalogue(data / "catalog.db", runs=3)
    locked = tmp_path if layout == "parent read-only" else data
    data_dir = tmp_path / "new" if layout == "parent read-only" else data
    locked.chmod(0o555)
    env = {"STUDIO_DATA_DIR": str(data_dir), "S3_BUCKET": "", "BUCKET_NAME": "", "STUDIO_STORE": ""}
    try:
        answer = cli(env, "stats", preexec_fn=cannot_override_permissions)
    finally:
        locked.chmod(0o755)
    assert answer.returncode == 2, answer
    assert answer.stderr.startswith(f"error: cannot write the catalogue {data_dir / 'catalog.db'}"), answer.stderr
    assert "writable" in answer.stderr and "STUDIO_CATALOG" in answer.stderr
    assert "Traceback" not in answer.stderr and len(answer.stderr.strip().splitlines()) == 1


def test_search_marks_estimated_counts_with_approx_and_only_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 32: past catalog.search.EXACT_LIMIT candidates the total and facet counts are estimates from a sample;
    the table's count line and every facet count say ≈ then, and --json says approximate, as History does. The
    limits are lowered so that 300 runs stand for a million (the code path is the one a million take)."""
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    for name in ("S3_BUCKET", "BUCKET_NAME", "STUDIO_STORE", "STUDIO_CATALOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(engine, "EXACT_LIMIT", 100)
    monkeypatch.setattr(engine, "SAMPLE_HITS", 20)
    catalog = Catalog(Settings.from_env().catalog_file)
    base = {"endpoint_id": "local", "status": "COMPLETED", "size": "infinitetalk-480", "tags": "", "favourite": 0}
    catalog.db["runs"].insert_all(
        {
            **base,
            "run_id": f"r{n}",
            "job_id": f"r{n}",
            "prompt": "an astronaut" + (" chef" if n < 30 else ""),
            "created_at": f"2026-01-01T00:{n % 60:02d}:{n // 60:02d}Z",
        }
        for n in range(300)
    )

    assert main(["search", "astronaut"]) == 0
    estimated = capsys.readouterr().out
    assert "\n≈" in estimated and "runs, page 1 of" in estimated and "estimated from a sample" in estimated
    assert "status: COMPLETED (≈" in estimated and "size: infinitetalk-480 (≈" in estimated

    assert main(["search", "chef"]) == 0
    exact = capsys.readouterr().out
    assert "≈" not in exact and "\n30 runs, page 1 of 2" in exact and "status: COMPLETED (30)" in exact

    assert main(["search", "astronaut", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["approximate"] is True
    assert main(["search", "chef", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["approximate"] is False
