"""Catalogue sync from the bucket: full rebuild, parallel readers against one, no-op and 10-file re-syncs.

Publishes N metadata.json files as workers write them (valid JobMetadata; 480p and 720p, one or two speakers,
image or video input, clip or streaming, one run in ten failed) into a real S3 server (SeaweedFS, started as the
tests start it) and into a local folder, then times for each store, side by side in one run: a full rebuild into
an empty catalogue with the parallel readers (catalog.sync.READERS) and with one reader, an incremental re-sync
that finds nothing new (a listing and nothing else), and a re-sync after 10 new files. Each figure is the median of
--repeat rounds after one warm-up rebuild, every rebuild into a fresh empty catalogue. Every sync's report and the
catalogue's run count are asserted, so a broken sync fails the benchmark instead of timing it. About a minute with
the defaults on a 2-core machine, the server included.

The readers are there to overlap a remote bucket's round trips. SeaweedFS on loopback answers a GET in about a
millisecond, so here the readers' ratio shows what they cost in CPU and lock contention rather than what they save
against a bucket across a network (with 20 ms per GET they were 6.9× one reader). The local folder's ratio is why
sync reads a local folder with one reader by default.

    python bench/bench_sync.py [--runs 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_catalog import MANNERS, PLACES, SUBJECTS, VERBS  # noqa: E402
from bench.measure import timed  # noqa: E402
from catalog import Catalog, SyncReport, sync  # noqa: E402
from catalog.sync import READERS  # noqa: E402
from core.contract import ErrorCode, InputDescriptor, JobMetadata  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import LocalStore, S3Store, Store, artifact_key, open_store  # noqa: E402
from tests.s3server import running_s3  # noqa: E402

NEW_FILES = 10
UPLOADERS = 8
"""Uploads at once: within boto3's default pool of 10 connections, so none is thrown away and reopened."""
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def metadata(job_id: str, rng: random.Random) -> JobMetadata:
    """A metadata.json as the worker writes it when a job ends, success or failure."""
    speakers = rng.choice([1, 1, 1, 2])
    from_video = rng.random() < 0.3
    size = rng.choice(["infinitetalk-480", "infinitetalk-720"])
    failed = rng.random() < 0.1
    prompt = f"A {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(MANNERS)} in the {rng.choice(PLACES)}"
    portrait = f"https://media.example/portraits/{rng.randrange(500)}.{'mp4' if from_video else 'jpg'}"
    speech = {f"person{n + 1}": f"https://media.example/speech/{job_id}-{n}.wav" for n in range(speakers)}
    inputs = [
        InputDescriptor(
            field="cond_video",
            source="url",
            kind="video" if from_video else "image",
            bytes=rng.randint(50_000, 20_000_000),
            sha256=_digest(portrait),
        ),
        *(
            InputDescriptor(
                field=f"cond_audio.{person}",
                source="url",
                kind="audio",
                bytes=rng.randint(50_000, 5_000_000),
                sha256=_digest(url),
                duration_s=round(rng.uniform(2, 60), 2),
            )
            for person, url in speech.items()
        ),
    ]
    params = {
        "prompt": prompt,
        "cond_video": portrait,
        "cond_audio": speech,
        "size": size,
        "mode": rng.choice(["clip", "streaming"]),
        "sample_steps": rng.choice([4, 8, 20, 40]),
        "base_seed": rng.randrange(2**31),
        "sample_text_guide_scale": 5.0,
        "sample_audio_guide_scale": 4.0,
        "sample_shift": 7.0 if size == "infinitetalk-720" else 3.0,
        "motion_frame": 9,
        "max_frame_num": 1000,
        "color_correction_strength": 1.0,
        "use_teacache": True,
        "teacache_thresh": 0.2,
        "audio_type": "add" if speakers == 2 else None,
    }
    created = EPOCH + timedelta(minutes=rng.randrange(450_000))
    started = created + timedelta(seconds=rng.randint(1, 120))
    generate_ms = rng.randint(10_000, 600_000)
    finished = started + timedelta(milliseconds=generate_ms + rng.randint(1_000, 20_000))
    outputs = {"metadata": {"key": artifact_key("jobs", job_id, "metadata.json"), "mime": "application/json"}}
    error = None
    if failed:
        code, message = (
            (ErrorCode.OOM, "CUDA out of memory at 720p; try infinitetalk-480")
            if size == "infinitetalk-720"
            else (ErrorCode.GENERATION_RUNTIME, "RuntimeError: expected all tensors to be on the same device")
        )
        error = {"code": code, "message": message, "retryable": True}
    else:
        frames = rng.randint(50, 1500)
        width, height = (1280, 720) if size == "infinitetalk-720" else (854, 480)
        outputs["video"] = {
            "key": artifact_key("jobs", job_id, "video.mp4"),
            "mime": "video/mp4",
            "bytes": frames * 40_000,
            "duration_s": round(frames / 25, 3),
            "fps": 25,
            "width": width,
            "height": height,
            "frames": frames,
        }
        outputs["thumbnail"] = {"key": artifact_key("jobs", job_id, "thumb.jpg"), "mime": "image/jpeg"}
    return JobMetadata(
        job_id=job_id,
        endpoint_id=rng.choice(["local", "runpod-abc"]),
        status="error" if failed else "success",
        engine={"name": rng.choice(["preview", "infinitetalk"]), "version": "1.0.0"},
        prompt=prompt,
        params=params,
        inputs=inputs,
        outputs=outputs,
        timings={
            "validate_ms": 3,
            "generate_ms": generate_ms,
            "total_ms": int((finished - created).total_seconds() * 1000),
        },
        created_at=_stamp(created),
        started_at=_stamp(started),
        finished_at=_stamp(finished),
        error=error,
    )


def files(job_ids: list[str], rng: random.Random) -> dict[str, JobMetadata]:
    """One metadata.json per job id, by key, laid out as the worker lays them out."""
    return {artifact_key("jobs", job_id, "metadata.json"): metadata(job_id, rng) for job_id in job_ids}


def publish(store: Store, contents: dict[str, JobMetadata]) -> None:
    """Upload the files as the worker writes them (indented JSON), several at once."""
    with ThreadPoolExecutor(UPLOADERS) as pool:
        # list() so an upload that failed raises here rather than vanishing with the pool.
        list(pool.map(lambda key: store.put_bytes(key, contents[key].model_dump_json(indent=2).encode()), contents))


def _check(report: SyncReport, added: int, unchanged: int) -> None:
    found = (report.added, report.updated, report.unchanged, report.skipped)
    assert found == (added, 0, unchanged, []), f"expected {added} added, {unchanged} unchanged: {report.summary()}"


def rebuild(store: Store, path: Path, runs: int, readers: int) -> tuple[Catalog, float]:
    """A full sync into a new empty catalogue at path with `readers` readers, checked; the catalogue and its ms."""
    catalog = Catalog(path)
    began = time.perf_counter()
    report = sync(catalog, store, readers=readers)
    elapsed = (time.perf_counter() - began) * 1000
    _check(report, runs, 0)
    assert catalog.search("").total == runs, f"{catalog.search('').total} runs searchable, {runs} published"
    return catalog, elapsed


@dataclass
class Figures:
    """One store's timings, milliseconds per round."""

    publish_s: float
    parallel: list[float] = field(default_factory=list)
    one_reader: list[float] = field(default_factory=list)
    no_op: list[float] = field(default_factory=list)
    new_files: list[float] = field(default_factory=list)


def measure(store: Store, folder: Path, runs: int, repeat: int, rng: random.Random) -> Figures:
    """Publish `runs` files into the store, then time every kind of sync over `repeat` rounds."""
    contents = files([f"run-{index:06d}" for index in range(runs)], rng)
    began = time.perf_counter()
    publish(store, contents)
    figures = Figures(publish_s=time.perf_counter() - began)
    # Warms the server's and the OS's caches and the HTTP connections, which the first rebuild alone would pay.
    warm, _ = rebuild(store, folder / "warm-up.db", runs, READERS)
    # A no-op re-sync changes nothing, so it can be repeated on one catalogue.
    figures.no_op = timed(lambda: _check(sync(warm, store), 0, runs), repeat)
    warm.close()
    for round_no in range(repeat):
        one, elapsed = rebuild(store, folder / f"one-{round_no}.db", runs, 1)
        one.close()
        figures.one_reader.append(elapsed)
        catalog, elapsed = rebuild(store, folder / f"parallel-{round_no}.db", runs, READERS)
        figures.parallel.append(elapsed)
        new = files([f"new-{round_no}-{index}" for index in range(NEW_FILES)], rng)
        publish(store, new)
        began = time.perf_counter()
        report = sync(catalog, store)
        figures.new_files.append((time.perf_counter() - began) * 1000)
        _check(report, NEW_FILES, runs)
        assert catalog.search("").total == runs + NEW_FILES
        catalog.close()
        # Taken out again so the next round's rebuilds read the same N files.
        for key in new:
            store.delete(key)
    return figures


def s3_figures(folder: Path, runs: int, repeat: int, rng: random.Random) -> Figures:
    """measure() against a SeaweedFS server started for the purpose and stopped afterwards."""
    with running_s3(folder / "seaweedfs") as server:
        settings = Settings(data_dir=folder / "s3-data").with_(
            store="s3",
            s3_endpoint_url=server.endpoint_url,
            s3_bucket="bench-sync",
            s3_access_key=server.access_key,
            s3_secret_key=server.secret_key,
        )
        store = open_store(settings)
        assert isinstance(store, S3Store)
        store.ensure_bucket()
        return measure(store, folder, runs, repeat, rng)


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):8.0f} ms ({min(values):.0f}–{max(values):.0f})"


def table(results: dict[str, Figures], runs: int) -> None:
    """The medians per store side by side, then the ratios taken within each store."""
    names = list(results)
    print(f"{'':<34}" + "".join(f"{name:>28}" for name in names))

    def row(label: str, cell: Callable[[Figures], str]) -> None:
        print(f"{label:<34}" + "".join(f"{cell(results[name]):>28}" for name in names))

    row(f"publish {runs} files, {UPLOADERS} at once", lambda f: f"{f.publish_s * 1000:8.0f} ms")
    row(f"full rebuild, {READERS} readers", lambda f: _cell(f.parallel))
    row("full rebuild, 1 reader", lambda f: _cell(f.one_reader))
    row("no-op re-sync (listing only)", lambda f: _cell(f.no_op))
    row(f"re-sync after {NEW_FILES} new files", lambda f: _cell(f.new_files))
    row(f"runs/s, {READERS} readers", lambda f: f"{runs / statistics.median(f.parallel) * 1000:8.0f}")
    row("runs/s, 1 reader", lambda f: f"{runs / statistics.median(f.one_reader) * 1000:8.0f}")
    row(
        f"{READERS} readers vs 1 reader",
        lambda f: f"{statistics.median(f.one_reader) / statistics.median(f.parallel):8.2f}×",
    )
    row("no-op re-sync / rebuild", lambda f: f"{statistics.median(f.no_op) / statistics.median(f.parallel):8.1%}")
    row(
        f"{NEW_FILES} new files / rebuild",
        lambda f: f"{statistics.median(f.new_files) / statistics.median(f.parallel):8.1%}",
    )


def main() -> None:
    """Publish into both stores, time every sync, print the table and one summary line per store."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    # The same seed for both stores, so they hold the same files.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = {
            "S3 (SeaweedFS)": s3_figures(folder / "s3", args.runs, args.repeat, random.Random(7)),
            "local folder": measure(
                LocalStore(folder / "local" / "artifacts"), folder / "local", args.runs, args.repeat, random.Random(7)
            ),
        }
    print(f"{args.runs} metadata.json files per store; median of {args.repeat} rounds (min–max) after a warm-up")
    table(results, args.runs)
    for name, figures in results.items():
        rebuild_ms = statistics.median(figures.parallel)
        no_op_ms = statistics.median(figures.no_op)
        print(
            f"{name} full rebuild: {args.runs / rebuild_ms * 1000:.0f} runs/s ({args.runs} runs in "
            f"{rebuild_ms / 1000:.2f} s); parallel readers {statistics.median(figures.one_reader) / rebuild_ms:.2f}× "
            f"one reader; no-op re-sync {no_op_ms:.0f} ms ({no_op_ms / rebuild_ms:.1%} of a rebuild); "
            f"{NEW_FILES} new files {statistics.median(figures.new_files):.0f} ms"
        )


if __name__ == "__main__":
    main()
