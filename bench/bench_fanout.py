"""Long speech split into parts on several workers at once against one job on one worker (issue 30).

Three minutes of speech (the example recordings one after the other with pauses between them) and the example
portrait, preview engine, on the real local endpoint:

1. one job on one worker, the whole speech as one streaming take (the baseline);
2. the same job split at pauses into parts of at most 40 s (client/fanout.py), with 1, 2 and 3 workers, each
   endpoint started with that many workers and the run sending that many parts at once.

For each split run it prints: wall time (plan + parts + join), the speed-up over the one job, the split and join
overhead (cutting, slicing and uploading, then joining and publishing) in wall seconds and as a share of the
whole, and the ratio of wall time to the longest part's own time (1.0 would be perfect parallelism: the run is as
long as its longest part). On a machine with fewer free cores than workers the speed-up is bounded by the cores,
not the split; the ratio says how much of the parallelism the cores allowed.

On a loaded machine a step's wall time is mostly waiting for a core, so the overhead is also given in CPU
seconds, which the load does not stretch: the split's and the join's (this process and the ffmpeg it ran), the
client's while the parts render (polling, and encoding the speech for the join), against the CPU every process of
the run took meanwhile (this one, the endpoint, its workers and their ffmpeg, read from /proc). The load average
(1, 5 and 15 minutes) is printed at the start and the end, and the 1-minute load at each run's start. The timed
wall holds only the product's calls, from the moment every worker has loaded its engine; the bench's own
bookkeeping (making the speech, starting each endpoint and waiting for its workers, stopping it) is timed apart
and printed.

3. With `--tiny-infinitetalk SRC` (InfiniteTalk's source at the pinned commit), the same split on InfiniteTalk's
   real code with tiny random weights (worker/selftest), 2 parts on 2 workers: it proves the GPU engine's path
   (streaming parts, the join) end to end, on a CPU here or a GPU in the image; its times say nothing of real
   weights.

    python bench/bench_fanout.py [--speech-s 180] [--workers 1 2 3] [--part-s 40] [--tiny-infinitetalk SRC]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.api import StudioClient, prepare_input  # noqa: E402
from client.fanout import SplitRun, plan_split  # noqa: E402
from core.contract import AUDIO_SAMPLE_RATE, JobStatus, Limits  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store import open_store  # noqa: E402
from tests.endpoint_server import running_endpoint  # noqa: E402
from tests.s3server import free_port  # noqa: E402
from worker.media import decode_audio, write_wav  # noqa: E402

EXAMPLES = ROOT / "examples" / "media"


def long_speech(out: Path, seconds: float) -> Path:
    """The two example recordings in turn, each followed by 0.6 s of room noise, until `seconds` long."""
    rng = np.random.default_rng(3)
    recordings = [decode_audio(EXAMPLES / n, field="bench", max_seconds=30) for n in ("speech_1.wav", "speech_2.wav")]
    pieces, length, turn = [], 0, 0
    while length < seconds * AUDIO_SAMPLE_RATE:
        pieces += [recordings[turn % 2], (3e-4 * rng.standard_normal(int(0.6 * AUDIO_SAMPLE_RATE))).astype(np.float32)]
        length += pieces[-2].size + pieces[-1].size
        turn += 1
    return write_wav(out, np.concatenate(pieces)[: int(seconds * AUDIO_SAMPLE_RATE)])


def job_input(speech: Path) -> dict[str, object]:
    return {
        "prompt": "a presenter reads a long statement",
        "cond_video": str(EXAMPLES / "portrait.jpg"),
        "cond_audio": {"person1": str(speech)},
        "mode": "streaming",
        "max_frame_num": Limits.MAX_STREAMING_FRAMES,
    }


def cpu_s() -> float:
    """CPU seconds this process and its waited-for children (ffmpeg, a stopped endpoint and its workers) used."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def tree_cpu_s() -> float:
    """CPU seconds of this process and every process under it, running or ended (the endpoint, its workers, and
    the ffmpeg they ran), from Linux's /proc: what the whole run cost the machine, however loaded it is."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            # After the name: state, ppid, ... utime, stime, cutime, cstime are the 12th to 15th.
            parents[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / tick)
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        children = [child for child, (parent, _) in parents.items() if parent == pid]
        total += sum(parents[child][1] for child in children)
        todo.extend(children)
    return cpu_s() + total


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def endpoint_settings(data_dir: Path, workers: int) -> tuple[dict[str, str], int]:
    port = free_port()
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_LOCAL_WORKERS": str(workers)}
    return env, port


def wait_ready(client: StudioClient, workers: int) -> None:
    """Wait until every worker has loaded its engine (the endpoint's /health counts it idle): a worker still
    starting would compete with the split for the cores and be timed as the split's, not the bench's, cost."""
    deadline = time.monotonic() + 120
    while int((client.health().get("workers") or {}).get("idle") or 0) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"the endpoint's {workers} worker(s) were not ready within 120 s")
        time.sleep(0.2)


def one_job(data_dir: Path, speech: Path) -> dict[str, float]:
    """The whole speech as one job on one worker: its wall seconds, and the CPU seconds of every process."""
    env, port = endpoint_settings(data_dir, 1)
    opened = time.monotonic()
    with running_endpoint(env, port=port) as base:
        settings = Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})
        client = StudioClient(settings)
        wait_ready(client, 1)
        started, cpu_started = time.monotonic(), tree_cpu_s()
        job_id = client.submit(prepare_input(job_input(speech), open_store(settings)))
        final = client.wait(job_id)
        ended, cpu_ended = time.monotonic(), tree_cpu_s()
        if final.status != JobStatus.COMPLETED:
            raise SystemExit(f"the one job ended {final.status}: {final.error}")
    closed = time.monotonic()
    wall = ended - started
    return {"wall": wall, "cpu": cpu_ended - cpu_started, "bookkeeping": (closed - opened) - wall}


def split_run(data_dir: Path, speech: Path, workers: int, part_s: float) -> dict[str, float]:
    """One split run with `workers` workers sending as many parts at once; its wall and CPU timings."""
    env, port = endpoint_settings(data_dir, workers)
    opened = time.monotonic()
    with running_endpoint(env, port=port) as base:
        settings = Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})
        client, store = StudioClient(settings), open_store(settings)
        wait_ready(client, workers)
        started, cpu_started, tree_started = time.monotonic(), cpu_s(), tree_cpu_s()
        floor = min(10.0, part_s / 4)
        plan = plan_split(job_input(speech), settings, store, part_s=part_s, min_part_s=floor, parallel=workers)
        planned, cpu_planned, own_planned = time.monotonic(), cpu_s(), time.process_time()
        run = SplitRun(plan, client, store)
        run.run(join=False, poll_s=0.25)
        rendered, cpu_rendered, own_rendered = time.monotonic(), cpu_s(), time.process_time()
        if run.failed():
            raise SystemExit(f"a part failed: {[p.error for p in run.failed()]}")
        run.join()
        ended, cpu_ended, tree_ended = time.monotonic(), cpu_s(), tree_cpu_s()
    closed = time.monotonic()
    longest = max((p.gpu_ms or 0) for p in run.plan.parts) / 1000
    return {
        "parts": len(run.plan.parts),
        "wall": ended - started,
        "split": planned - started,
        "join": ended - rendered,
        "longest": longest,
        "split_cpu": cpu_planned - cpu_started,
        "render_cpu": cpu_rendered - cpu_planned,
        "poll_cpu": own_rendered - own_planned,
        "join_cpu": cpu_ended - cpu_rendered,
        "cpu": tree_ended - tree_started,
        "bookkeeping": (closed - opened) - (ended - started),
    }


_TINY_ENGINE: list[object] = []


def tiny_infinitetalk(raw_input: object, job_id: str, *, settings: Settings, **rest: object) -> dict[str, object]:
    """An endpoint runner (run_job's signature) on InfiniteTalk's real code with the tiny weights the settings
    name: each worker process imports InfiniteTalk as the selftest does (tiny sizes, CPU stand-ins without CUDA)
    and loads the engine once, at its first job."""
    from worker.engines import load_engine
    from worker.pipeline import run_job
    from worker.selftest import prepare_runtime, source_dir

    if not _TINY_ENGINE:
        prepare_runtime(source_dir(settings.weights))
        _TINY_ENGINE.append(load_engine(settings))
    return run_job(raw_input, job_id, settings=settings, engine=_TINY_ENGINE[0], **rest)  # type: ignore[arg-type]


def tiny_split(folder: Path, src: Path) -> None:
    """Two parts of a short speech on InfiniteTalk's real code (tiny random weights), on two workers, joined."""
    from worker.selftest import prepare_runtime, tiny
    from worker.selftest.media import make_media
    from worker.variants import ENV_VARS

    prepare_runtime(src)
    paths = tiny.build_tree(folder / "models", quant=())
    media = make_media(folder / "media", speech_s=0.8)
    pause = np.zeros(int(0.3 * AUDIO_SAMPLE_RATE), np.float32)
    speech = [decode_audio(p, field="bench", max_seconds=5) for p in (media.speech_1, media.speech_2)]
    joined = write_wav(folder / "tiny_speech.wav", np.concatenate([speech[0], pause, speech[1]]))
    env, port = endpoint_settings(folder / "tiny", 2)
    env |= {var: str(getattr(paths, name)) for name, var in ENV_VARS.items()} | {
        "INFINITETALK_SRC": str(src),
        "STUDIO_ENGINE": "infinitetalk",
    }
    job = {
        "prompt": "a woman speaks warmly to the camera",
        "cond_video": str(media.portrait),
        "cond_audio": {"person1": str(joined)},
        "mode": "streaming",
        "frame_num": 9,
        "motion_frame": 5,
        "sample_steps": 2,
        "max_frame_num": 41,
    }
    with running_endpoint(env, "bench.bench_fanout:tiny_infinitetalk", port=port) as base:
        settings = Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})
        client, store = StudioClient(settings), open_store(settings)
        started = time.monotonic()
        plan = plan_split(job, settings, store, part_s=1.2, min_part_s=0.4, parallel=2)
        run = SplitRun(plan, client, store)
        done = run.run(poll_s=0.5)
        wall = time.monotonic() - started
    if done.state != "joined":
        raise SystemExit(f"the tiny InfiniteTalk split ended {done.state}: {[p.error for p in run.failed()]}")
    spans = ", ".join(f"{p.start_s:.2f}-{p.end_s:.2f} s ({(p.gpu_ms or 0) / 1000:.1f} s)" for p in done.parts)
    engine = (done.parts[0].engine or {}).get("name")
    print(f"tiny InfiniteTalk ({engine}), 2 workers: parts {spans}, joined in {wall:.1f} s wall", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speech-s", type=float, default=180.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--part-s", type=float, default=40.0)
    parser.add_argument("--tiny-infinitetalk", metavar="SRC", type=Path, help="InfiniteTalk's source folder")
    parser.add_argument("--tiny-only", action="store_true", help="run only the tiny InfiniteTalk split")
    args = parser.parse_args()
    print(f"load average at the start: {load()} (1, 5, 15 min) on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        folder = Path(tmp)
        if args.tiny_infinitetalk:
            tiny_split(folder, args.tiny_infinitetalk)
        if not args.tiny_only:
            compare(folder, args.speech_s, args.workers, args.part_s)
    print(f"load average at the end: {load()}", flush=True)


def compare(folder: Path, speech_s: float, worker_counts: list[int], part_s: float) -> None:
    """One job against the split runs, one line each (see the module's docstring)."""
    made = time.monotonic()
    speech = long_speech(folder / "speech.wav", speech_s)
    print(f"bench bookkeeping: the speech made in {time.monotonic() - made:.1f} s (not timed)", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at the one job's start", flush=True)
    one = one_job(folder / "one", speech)
    print(
        f"one job, one worker: {speech_s:.0f} s of speech in {one['wall']:.1f} s; CPU of every process "
        f"{one['cpu']:.1f} s; endpoint start + stop {one['bookkeeping']:.1f} s (not timed)",
        flush=True,
    )
    for workers in worker_counts:
        print(f"load {os.getloadavg()[0]:.2f} at the {workers}-worker run's start", flush=True)
        got = split_run(folder / f"split{workers}", speech, workers, part_s)
        overhead = got["split"] + got["join"]
        encode_cpu = got["render_cpu"] - got["poll_cpu"]  # the ffmpeg this process ran while the parts rendered
        overhead_cpu = got["split_cpu"] + encode_cpu + got["join_cpu"]
        print(
            f"split, {workers} worker(s): {got['parts']:.0f} parts, wall {got['wall']:.1f} s, speed-up "
            f"{one['wall'] / got['wall']:.2f}x over one job, wall / longest part {got['wall'] / got['longest']:.2f}\n"
            f"  overhead, wall: split {got['split']:.1f} s + join {got['join']:.1f} s = {overhead:.1f} s, "
            f"{overhead / got['wall']:.1%} of the run's wall\n"
            f"  overhead, CPU: split {got['split_cpu']:.1f} s + encoding the speech while the parts render "
            f"{encode_cpu:.1f} s + join {got['join_cpu']:.1f} s = {overhead_cpu:.1f} s, "
            f"{overhead_cpu / got['cpu']:.1%} of the {got['cpu']:.1f} s of CPU every process of the run used "
            f"(one job: {one['cpu']:.1f} s); polling the parts {got['poll_cpu']:.1f} s (one job's client polls too)\n"
            f"  endpoint start + stop {got['bookkeeping']:.1f} s (not timed)",
            flush=True,
        )


if __name__ == "__main__":
    main()
