"""How good the time estimate is: its error on held-out runs of a synthetic catalogue, and how often the truth
falls inside its low–high band, for the history basis and for the published figures alone.

The synthetic runs follow a stated law, on one endpoint's H100s:

    seconds = (LOAD_S + PER_UNIT[lora] × units × speed-ups) × lognormal(0, NOISE)

where units = clips × frames per clip × steps × (720p: 2.31^1.5), speed-ups are TeaCache × 0.6, fp8/int8 × 0.9 and
a second speaker × 1.15, and NOISE = 0.15 (about ±15 % run to run). Speech lasts 2–60 s (uniform), mode streaming,
steps 40 or 20 without the LoRA and 4 with it. The law's constants are not the published figures: the point is
whether the estimate learns an endpoint that is faster or slower than the papers say.

The runs go through a real catalogue (SQLite, via metadata.json records as sync takes them in); the oldest 80 %
are the history, each of the newest 20 % is estimated from it and compared with its true time.

    python bench/bench_estimate.py [--runs 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402
from client.estimate import estimate, recent_runs, work_for, work_of_run  # noqa: E402
from core.prices import PriceTable  # noqa: E402

LOAD_S = 45.0
PER_UNIT = {False: 0.075, True: 0.030}
"""Seconds per clip-frame-step on this synthetic H100: slower than LightX2V's H200 without the LoRA would suggest
scaled, and the LoRA's per-step cost differs from the H200's too."""
NOISE = 0.15
GPU = {"name": "NVIDIA H100 80GB HBM3", "count": 1}
ENDPOINT = "bench-endpoint"


def synthetic_params(rng: random.Random) -> dict:
    """One job's parameters, drawn as the law above says."""
    lora = rng.random() < 0.4
    params = {
        "prompt": "a synthetic run",
        "cond_video": "https://media.example/p.jpg",
        "mode": "streaming",
        "size": rng.choice(["infinitetalk-480", "infinitetalk-480", "infinitetalk-720"]),
        "sample_steps": 4 if lora else rng.choice([40, 20]),
        "lora": lora,
        "use_teacache": rng.random() < 0.3,
        "quant": rng.choice([None, None, "fp8"]),
    }
    people = {"person1": "https://media.example/a.wav"}
    if rng.random() < 0.2:
        people["person2"] = "https://media.example/b.wav"
    params["cond_audio"] = people
    return params


def true_seconds(params: dict, speech_s: float, rng: random.Random) -> float:
    """The law: what the synthetic GPU takes for this job."""
    work = work_for(params, speech_s)
    speed = (0.6 if work.teacache else 1.0) * (0.9 if work.quant else 1.0) * (1.15 if work.speakers == 2 else 1.0)
    return (LOAD_S + PER_UNIT[work.lora] * work.units * speed) * rng.lognormvariate(0.0, NOISE)


def record(index: int, params: dict, speech_s: float, seconds: float) -> tuple[dict, str]:
    """A metadata.json record for one synthetic run, and its key."""
    frames = work_for(params, speech_s).frames
    folder = f"jobs/synthetic-{index:05d}"
    minute, second = divmod(index, 60)
    hour, minute = divmod(minute, 60)
    at = f"2026-11-{1 + hour // 24:02d}T{hour % 24:02d}:{minute:02d}:{second:02d}.000Z"
    return {
        "job_id": f"synthetic-{index:05d}",
        "endpoint_id": ENDPOINT,
        "status": "success",
        "engine": {"name": "infinitetalk", "version": "bench"},
        "prompt": params["prompt"],
        "params": params,
        "inputs": [],
        "outputs": {
            "video": {"key": f"{folder}/video.mp4", "frames": frames, "duration_s": frames / 25},
            "thumbnail": {"key": f"{folder}/thumb.jpg"},
            "metadata": {"key": f"{folder}/metadata.json"},
        },
        "timings": {"total_ms": round(seconds * 1000)},
        "created_at": at,
        "started_at": at,
        "finished_at": at,
        "gpu": GPU,
    }, f"{folder}/metadata.json"


def score(pairs: list[tuple[float, float, float, float]]) -> tuple[float, float]:
    """Median absolute % error of the middle, and the share of truths inside [low, high]."""
    errors = [abs(middle - truth) / truth * 100 for truth, middle, _, _ in pairs]
    inside = [low <= truth <= high for truth, _, low, high in pairs]
    return statistics.median(errors), 100 * sum(inside) / len(inside)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    jobs = []
    for _ in range(args.runs):
        params = synthetic_params(rng)
        speech_s = rng.uniform(2.0, 60.0)
        jobs.append((params, speech_s, true_seconds(params, speech_s, rng)))
    cut = int(len(jobs) * 0.8)
    prices = PriceTable()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "bench.db", prices)
        for index, (params, speech_s, seconds) in enumerate(jobs[:cut]):
            catalog.upsert_metadata(*record(index, params, speech_s, seconds))
        history = recent_runs(catalog, ENDPOINT)
        learned, published, bases = [], [], []
        for params, speech_s, truth in jobs[cut:]:
            run = {"params": params, "frames": work_for(params, speech_s).frames, "engine": "infinitetalk"}
            work = work_of_run(run)
            assert work is not None
            guess = estimate(work, "H100 PRO", history, prices)
            paper = estimate(work, "H100 PRO", [], prices)
            bases.append(guess.basis)
            learned.append((truth, guess.seconds, guess.low, guess.high))
            published.append((truth, paper.seconds, paper.low, paper.high))
    held = len(jobs) - cut
    history_share = 100 * bases.count("history") / held
    error, inside = score(learned)
    paper_error, paper_inside = score(published)
    print(f"synthetic runs: {len(jobs)} ({cut} history, {held} held out), law noise ±{NOISE:.0%}")
    print(f"estimate used the history basis for {history_share:.0f} % of held-out runs")
    print(f"estimate:         median |error| {error:5.1f} %, truth inside the band {inside:5.1f} %")
    print(f"published alone:  median |error| {paper_error:5.1f} %, truth inside the band {paper_inside:5.1f} %")


if __name__ == "__main__":
    main()
