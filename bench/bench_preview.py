"""How fast the preview engine is, as a multiple of real time, and what share of a job is pipeline overhead.

Runs the single-image example (8.3 s of speech) several times at 480p and 720p through the whole pipeline into a
local store, and prints, side by side from the same runs: video seconds per wall second (goal ≥ 2× at 480p on
2 cores), generation alone, encoding alone, and the share of the total spent outside generation.

    python bench/bench_preview.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.payloads import load_payload  # noqa: E402
from core.settings import Settings  # noqa: E402
from worker.pipeline import run_job  # noqa: E402


def measure(size: str, repeat: int, data_dir: Path) -> dict[str, float]:
    """Median timings (ms) over `repeat` runs, plus the video's duration."""
    job_input = {**load_payload(ROOT / "examples" / "single_image.json"), "size": size}
    settings = Settings(data_dir=data_dir, input_roots=(ROOT / "examples",))
    runs = []
    for index in range(repeat + 1):
        output = run_job(job_input, f"bench-{size}-{index}", settings=settings, sink=lambda _: None)
        if output.get("status") != "success":
            raise SystemExit(f"benchmark job failed: {output}")
        if index:  # the first run warms the engine and the page cache
            runs.append({**output["timings"], "duration_ms": output["video"]["duration_s"] * 1000})
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'size':<18}{'video s':>9}{'total ×RT':>11}{'generate ×RT':>14}{'encode ×RT':>12}{'overhead':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("infinitetalk-480", "infinitetalk-720"):
            t = measure(size, args.repeat, Path(tmp))
            overhead = 1 - t["generate_ms"] / t["total_ms"]
            print(
                f"{size:<18}{t['duration_ms'] / 1000:>9.2f}{t['duration_ms'] / t['total_ms']:>10.2f}×"
                f"{t['duration_ms'] / t['generate_ms']:>13.2f}×{t['duration_ms'] / t['encode_ms']:>11.2f}×"
                f"{overhead:>10.0%}"
            )
    print("×RT = seconds of video per second of wall time (goal: total ≥ 2× at 480p).")
    print("overhead = share of the job's total time spent outside generation (fetch, audio, encode, thumb, publish).")


if __name__ == "__main__":
    main()
