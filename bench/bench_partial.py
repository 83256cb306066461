"""What progressive preview costs: total job time with partial videos on vs off, side by side in one run.

A streaming preview job (the portrait, its 8.3 s speech repeated to 40 s, 480p: 14 clips of 81 frames stepping
72) runs with STUDIO_PARTIAL_PREVIEW on and off, alternately, so that both see the same machine. With it on, the
one encode also writes a live copy (worker/clip_encoder.py), and an MP4 of the video so far is published at most
every STUDIO_PARTIAL_EVERY_S (the default; worker/partial.py); `every 2 s` makes a few per job, and `every clip`
(STUDIO_PARTIAL_EVERY_S=0) shows the worst case, a partial after each of the 13 clip ends. Prints the median
wall time and CPU time (this process and its ffmpeg children) of each, their ratios to off (goal: on within 5 %),
and the partials announced.
On a shared machine the wall time is noisy; the CPU time is the work itself.

    python bench/bench_partial.py [--repeat 5] [--seconds 40]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client.payloads import load_payload  # noqa: E402
from core.settings import Settings  # noqa: E402
from worker.pipeline import run_job  # noqa: E402


def long_speech(seconds: float, folder: Path) -> Path:
    """The example speech looped to `seconds`, as a WAV the job can read."""
    out = folder / "speech_long.wav"
    source = ROOT / "examples" / "media" / "speech_1.wav"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(source),
         "-t", f"{seconds:.2f}", str(out)],
        check=True,
    )  # fmt: skip
    return out


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (ffmpeg)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(settings: Settings, job_input: dict[str, Any], job_id: str) -> tuple[float, float, int]:
    """(wall s, CPU s, partial videos announced) of one job."""
    seen: set[str] = set()

    def sink(payload: dict[str, Any]) -> None:
        if payload.get("partial_video"):
            seen.add(payload["partial_video"]["key"])

    cpu, began = cpu_s(), time.perf_counter()
    output = run_job(job_input, job_id, settings=settings, sink=sink)
    if output.get("status") != "success":
        raise SystemExit(f"benchmark job failed: {output}")
    return time.perf_counter() - began, cpu_s() - cpu, len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speech = long_speech(args.seconds, folder)
        job_input = {
            **load_payload(ROOT / "examples" / "single_image.json"),
            "cond_audio": {"person1": str(speech)},
            "mode": "streaming",
        }
        base = Settings(data_dir=folder / "data", input_roots=(ROOT / "examples", folder))
        modes = {
            "off": base.with_(partial_preview=False),
            "on": base.with_(partial_preview=True),
            "every 2 s": base.with_(partial_preview=True, partial_every_s=2.0),
            "every clip": base.with_(partial_preview=True, partial_every_s=0.0),
        }
        wall: dict[str, list[float]] = {mode: [] for mode in modes}
        cpu: dict[str, list[float]] = {mode: [] for mode in modes}
        partials: dict[str, list[int]] = {mode: [] for mode in modes}
        for index in range(args.repeat + 1):
            names = list(modes)
            order = names[index % len(names) :] + names[: index % len(names)]  # each mode first in turn
            for mode in order:
                seconds, work, count = one_run(modes[mode], job_input, f"bench-{index}-{len(wall[mode])}")
                if index:  # the first round warms the engine and the page cache
                    wall[mode].append(seconds)
                    cpu[mode].append(work)
                    partials[mode].append(count)
    median = {name: {mode: statistics.median(v) for mode, v in series.items()} for name, series in
              (("wall", wall), ("cpu", cpu))}  # fmt: skip
    print(f"{'partial preview':<17}{'wall s':>9}{'CPU s':>9}{'wall/off':>10}{'CPU/off':>9}{'partials':>10}")
    for mode in modes:
        wall_ratio = median["wall"][mode] / median["wall"]["off"]
        cpu_ratio = median["cpu"][mode] / median["cpu"]["off"]
        counts = f"{min(partials[mode])}–{max(partials[mode])}"
        print(
            f"{mode:<17}{median['wall'][mode]:>9.2f}{median['cpu'][mode]:>9.2f}{wall_ratio:>10.3f}{cpu_ratio:>9.3f}"
            f"{counts:>10}"
        )
    print("goal: on / off ≤ 1.05")


if __name__ == "__main__":
    main()
