"""The dashboard's server-side speed: History at 100 000 runs, and Live's refresh with 50 running jobs.

History: a catalogue of 100 000 realistic runs (bench_catalog's generator; every thumbnail the measured pages show
is a real JPEG in the local store), the History page rendered by Streamlit's AppTest for a handful of typical
queries. Printed side by side from the same run: render time, the catalogue search inside it, and the same page
over a 1 000-run catalogue (how render time grows with the catalogue).

Live: a real local endpoint with 50 jobs running with progress (its worker runs a long paced job; the other 49 are
claimed in its queue by this process, so no generation competes for the CPU), the same 50 in the catalogue, and the
Live page rendered by AppTest. A refresh
that polls the endpoint (50 GET /status, 50 catalogue updates) is timed against one that only redraws, and both
against the same page with 1 running job.

    python bench/bench_dashboard.py [--runs 100000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from bench.bench_catalog import fill  # noqa: E402
from bench.measure import quantile, timed  # noqa: E402
from catalog import Catalog  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import LocalStore  # noqa: E402
from dashboard.history import Query, page_key, search  # noqa: E402
from endpoint.queue import JobQueue  # noqa: E402
from tests.endpoint_server import running_endpoint  # noqa: E402
from tests.s3server import free_port  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
HISTORY_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("newest, page 1", {}),
    ("words 'astronaut studio'", {"history.text": "astronaut studio"}),
    ("status + size filters", {"history.facet.status": ["COMPLETED"], "history.facet.size": ["infinitetalk-720"]}),
    ("page 200", {"page": 200}),
    ("tag 'launch'", {"history.tag": "launch"}),
]


def _env(data_dir: Path, port: int) -> None:
    for name in ("RUNPOD_ENDPOINT_ID", "RUNPOD_API_KEY", "RUNPOD_ENDPOINT_BASE_URL", "S3_BUCKET", "STUDIO_STORE"):
        os.environ.pop(name, None)
    os.environ.update({"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port)})


def _page(name: str, state: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page(f"app_pages/{name}.py")
    for key, value in (state or {}).items():
        at.session_state[page_key(_query_of(state)) if key == "page" else key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _thumbnail(folder: Path) -> bytes:
    out = folder / "thumb.jpg"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(ROOT / "examples/media/portrait.jpg"),
            "-vf",
            "scale=480:-2",
            str(out),
        ],
        check=True,
    )
    return out.read_bytes()


def _query_of(state: dict[str, Any]) -> Query:
    return Query(
        text=state.get("history.text", ""),
        facets={k.removeprefix("history.facet."): v for k, v in state.items() if k.startswith("history.facet.")},
        tag=state.get("history.tag", ""),
        page=state.get("page", 1),
    )


def history_catalogue(data_dir: Path, runs: int, thumb: bytes) -> Catalog:
    """A catalogue of `runs` runs whose measured pages show real thumbnails."""
    catalog = Catalog(Settings(data_dir=data_dir).catalog_file)
    fill(catalog, runs)
    store = LocalStore(data_dir / "artifacts")
    for _, state in HISTORY_QUERIES:
        for row in search(catalog, _query_of(state)).rows:
            if row.get("thumb_key"):
                store.put_bytes(row["thumb_key"], thumb)
    return catalog


def bench_history(root: Path, runs: int, repeat: int) -> None:
    """Render History for each query at `runs` and at 1 000 runs; print both and the search inside."""
    thumb = _thumbnail(root)
    results: dict[int, dict[str, tuple[list[float], list[float]]]] = {}
    for size in (runs, 1000):
        data_dir = root / f"history-{size}"
        start = time.perf_counter()
        catalog = history_catalogue(data_dir, size, thumb)
        print(f"filled {size:,} runs in {time.perf_counter() - start:.1f} s", flush=True)
        _env(data_dir, free_port())
        results[size] = {}
        for label, state in HISTORY_QUERIES:
            at = _page("history", state)
            render = timed(at.run, repeat)
            query = _query_of(state)
            searched = timed(lambda query=query, catalog=catalog: search(catalog, query), repeat)
            results[size][label] = (render, searched)
    print(f"\nHistory page, server-side render (AppTest run, warm), {runs:,} runs vs 1,000 runs:")
    print(
        f"{'query':<26} {'render p50':>10} {'p95':>8} {'search p50':>11} {'search share':>13} "
        f"{'1k render p50':>14} {f'{runs // 1000}k/1k':>8}"
    )
    for label, _ in HISTORY_QUERIES:
        render, searched = results[runs][label]
        small, _ = results[1000][label]
        r50, s50, k50 = statistics.median(render), statistics.median(searched), statistics.median(small)
        print(
            f"{label:<26} {r50:>8.0f}ms {quantile(render, 0.95):>6.0f}ms {s50:>9.1f}ms {s50 / r50:>12.0%} "
            f"{k50:>12.0f}ms {r50 / k50:>7.2f}x"
        )


def _running_jobs(base_url: str, data_dir: Path, count: int) -> list[str]:
    """`count` jobs IN_PROGRESS with generation progress, in the endpoint's queue and in the catalogue.

    The endpoint's one worker runs a long paced job (so it takes nothing else); the other jobs are claimed in its
    queue by this process, as a worker would, and given a progress payload.
    """
    catalog = Catalog(Settings(data_dir=data_dir).catalog_file)
    paced = {"prompt": "running job 0", "chunks": 100_000, "chunk_s": 1.0}
    first = requests.post(f"{base_url}/local/run", json={"input": paced}, timeout=10).json()["id"]
    deadline = time.monotonic() + 30
    while requests.get(f"{base_url}/local/status/{first}", timeout=10).json()["status"] != "IN_PROGRESS":
        assert time.monotonic() < deadline, "the endpoint's worker did not start the paced job"
        time.sleep(0.1)
    catalog.record_submission(first, paced, endpoint_id="local")
    ids = [first]
    queue = JobQueue(data_dir / "endpoint" / "queue.db")
    for index in range(1, count):
        job_id = f"local-bench-{index:03d}"
        job = {"prompt": f"running job {index}", "cond_video": "https://x/p.jpg", "tts_audio": {"text": "hi"}}
        queue.enqueue(job_id, job, 3_600_000)
        claimed = queue.claim_next(os.getpid())
        assert claimed is not None and claimed.id == job_id
        details = {"done": 40 + index, "total": 200, "chunk": 2, "chunks": 5}
        queue.set_progress(
            job_id, {"stage": "generation", "pct": 40.0 + index % 40, "job_id": job_id, "details": details}
        )
        catalog.record_submission(job_id, job, endpoint_id="local")
        ids.append(job_id)
    return ids


def bench_live(root: Path, repeat: int) -> None:
    """Time Live's refresh with 50 and with 1 running job, polling the endpoint and redrawing only."""
    rows = []
    for count in (50, 1):
        data_dir = root / f"live-{count}"
        port = free_port()
        env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port)}
        with running_endpoint(env, "tests.endpoint_runners:paced", port=port) as base_url:
            _running_jobs(base_url, data_dir, count)
            _env(data_dir, port)
            at = _page("live")
            assert len(at.get("progress")) == count, "every running job has its card"

            def polling(at: AppTest = at) -> None:
                at.session_state["live.backoff"] = None  # due now: this refresh asks the endpoint
                at.run()

            def redraw(at: AppTest = at) -> None:
                at.session_state["live.backoff"].next_at = time.monotonic() + 3600
                at.run()

            rows.append((count, timed(polling, repeat), timed(redraw, repeat)))
    print("\nLive page refresh (AppTest run of the page, the fragment being nearly all of it):")
    print(f"{'running':>8} {'poll+draw p50':>14} {'p95':>8} {'draw only p50':>14} {'p95':>8} {'poll share':>11}")
    for count, polled, drawn in rows:
        p50, d50 = statistics.median(polled), statistics.median(drawn)
        print(
            f"{count:>8} {p50:>12.0f}ms {quantile(polled, 0.95):>6.0f}ms {d50:>12.0f}ms "
            f"{quantile(drawn, 0.95):>6.0f}ms {1 - d50 / p50:>10.0%}"
        )
    (_, polled50, drawn50), (_, polled1, drawn1) = rows
    print(
        f"50 jobs vs 1: {statistics.median(polled50) / statistics.median(polled1):.1f}x with polling, "
        f"{statistics.median(drawn50) / statistics.median(drawn1):.1f}x drawing only"
    )


def main() -> None:
    """Run both benchmarks and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only", choices=["history", "live"], help="run one of the two benchmarks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder:
        if args.only != "live":
            bench_history(Path(folder), args.runs, args.repeat)
        if args.only != "history":
            bench_live(Path(folder), args.repeat)


if __name__ == "__main__":
    main()
