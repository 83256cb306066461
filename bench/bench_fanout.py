"""Long speech split into parts on several workers at once against one job on one worker (issue 30).

Three minutes of speech (the example recordings one after the other with pauses between them) and the example
portrait, preview engine, on the real local endpoint:

1. one job on one worker, the whole speech as one streaming take (the baseline);
2. the same job split at pauses into parts of at most 40 s (client/fanout.py), with 1, 2 and 3 workers, each
   endpoint started with that many workers and the run sending that many parts at once.

For each split run it prints: wall time (plan + parts + join), the speed-up over the one job, the split and join
overhead (cutting, slicing and uploading, then joining and publishing) as a share of the whole, and the ratio of
wall time to the longest part's own time (1.0 would be perfect parallelism: the run is as long as its longest
part). On a machine with fewer free cores than workers the speed-up is bounded by the cores, not the split; the
ratio says how much of the parallelism the cores allowed. Run `uptime` beside it: the load shapes every figure.

3. With `--tiny-infinitetalk SRC` (InfiniteTalk's source at the pinned commit), the same split on InfiniteTalk's
   real code with tiny random weights (worker/selftest), 2 parts on 2 workers: it proves the GPU engine's path
   (streaming parts, the join) end to end, on a CPU here or a GPU in the image; its times say nothing of real
   weights.

    python bench/bench_fanout.py [--speech-s 180] [--workers 1 2 3] [--part-s 40] [--tiny-infinitetalk SRC]
"""

from __future__ import annotations

import argparse
import os
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


def endpoint_settings(data_dir: Path, workers: int) -> tuple[dict[str, str], int]:
    port = free_port()
    env = {"STUDIO_DATA_DIR": str(data_dir), "STUDIO_LOCAL_PORT": str(port), "STUDIO_LOCAL_WORKERS": str(workers)}
    return env, port


def one_job(data_dir: Path, speech: Path) -> float:
    """Wall seconds of the whole speech as one job on one worker."""
    env, port = endpoint_settings(data_dir, 1)
    with running_endpoint(env, port=port) as base:
        settings = Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})
        client = StudioClient(settings)
        started = time.monotonic()
        job_id = client.submit(prepare_input(job_input(speech), open_store(settings)))
        final = client.wait(job_id)
        wall = time.monotonic() - started
        if final.status != JobStatus.COMPLETED:
            raise SystemExit(f"the one job ended {final.status}: {final.error}")
        return wall


def split_run(data_dir: Path, speech: Path, workers: int, part_s: float) -> dict[str, float]:
    """One split run with `workers` workers sending as many parts at once; its timings."""
    env, port = endpoint_settings(data_dir, workers)
    with running_endpoint(env, port=port) as base:
        settings = Settings.from_env({**env, "RUNPOD_ENDPOINT_BASE_URL": base})
        client, store = StudioClient(settings), open_store(settings)
        started = time.monotonic()
        floor = min(10.0, part_s / 4)
        plan = plan_split(job_input(speech), settings, store, part_s=part_s, min_part_s=floor, parallel=workers)
        planned = time.monotonic()
        run = SplitRun(plan, client, store)
        run.run(join=False, poll_s=0.25)
        rendered = time.monotonic()
        if run.failed():
            raise SystemExit(f"a part failed: {[p.error for p in run.failed()]}")
        run.join()
        ended = time.monotonic()
    longest = max((p.gpu_ms or 0) for p in run.plan.parts) / 1000
    wall = ended - started
    return {
        "parts": len(run.plan.parts),
        "wall": wall,
        "split": planned - started,
        "join": ended - rendered,
        "longest": longest,
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
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        folder = Path(tmp)
        if args.tiny_infinitetalk:
            tiny_split(folder, args.tiny_infinitetalk)
        if args.tiny_only:
            return
        speech = long_speech(folder / "speech.wav", args.speech_s)
        baseline = one_job(folder / "one", speech)
        print(f"one job, one worker: {args.speech_s:.0f} s of speech in {baseline:.1f} s", flush=True)
        for workers in args.workers:
            got = split_run(folder / f"split{workers}", speech, workers, args.part_s)
            overhead = (got["split"] + got["join"]) / got["wall"]
            print(
                f"split, {workers} worker(s): {got['parts']:.0f} parts, wall {got['wall']:.1f} s, "
                f"speed-up {baseline / got['wall']:.2f}x over one job, split {got['split']:.1f} s + join "
                f"{got['join']:.1f} s = {overhead:.1%} of the whole, wall / longest part "
                f"{got['wall'] / got['longest']:.2f}",
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
