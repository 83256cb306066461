"""How long a job will take on a GPU and what it will cost, before it is sent: the one estimate that both the
Submit page and `studio estimate` show.

Two bases, and the estimate says which it used:

* `history`: the catalogue's own finished runs on this endpoint, on this GPU, with the same variant of work
  (engine, size, LoRA, quant, TeaCache, speakers). Once there are MIN_HISTORY of them, seconds = a + b × work is
  fitted to them (least squares, a ≥ 0), and the band is the spread of their own errors against that line.
* `measured`: before that, on a GPU a bench run covers: the speed table `python -m worker bench-gpu` writes
  (InfiniteTalk at full size on random weights; STUDIO_SPEED_TABLE, else docs/gpu-speed.jsonl once committed).
  Its seconds per sampling step and its time outside sampling per clip, for the same size and variant.
* `published`: otherwise, a table of published figures per GPU (PUBLISHED, each with its source; see
  docs/estimates.md), scaled by work. GPUs without a figure of their own are scaled from the H200's by their
  published BF16 tensor throughput, with a wider band.

"Work" is what InfiniteTalk computes: clips × frames per clip × sampling steps (each clip is a full diffusion
run, `chunk_count` gives the clips), times a size factor for 720p. The preview engine's work is its frames.
Nothing here imports torch or touches the network, so the dashboard can call it on every rerun.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.contract import FPS, SIZES, Defaults, JobStatus
from core.prices import CPU, PriceTable, gpu_class
from worker.clips import chunk_count

MIN_HISTORY = 5
"""Past runs of the same variant on the same GPU needed before the catalogue's own times are trusted."""
HISTORY_RUNS = 400
"""The most recent finished runs of the endpoint the fit reads."""
RUNPOD_DEFAULT_TIMEOUT_S = 600
"""RunPod's default executionTimeout for an endpoint; a request may raise it with policy.executionTimeout."""
MAX_TIMEOUT_S = 7 * 24 * 3600
"""The longest policy.executionTimeout RunPod accepts (7 days)."""
TIMEOUT_MARGIN = 1.25
TIMEOUT_SLACK_S = 60
"""The timeout a request carries is the band's high end × TIMEOUT_MARGIN + TIMEOUT_SLACK_S, rounded up to a
whole minute: a job a little slower than the slowest similar one still finishes."""
DEFAULT_GPU = "H200 PRO"
"""The GPU assumed when nothing names one: the one with published figures for both variants."""
TTS_WORDS_PER_S = 175 / 60
"""espeak-ng's default speaking rate is 175 words per minute (`espeak-ng --help`, -s): a text's length in speech."""
SIZE_EXPONENT = 1.5
"""720p has 2.31× the latent tokens of 480p; time is taken to grow as tokens^1.5 (attention is quadratic in
tokens, the rest linear). An assumption, not a published figure: the history basis replaces it."""


@dataclass(frozen=True)
class Figure:
    """One published generation time: a GPU, a variant, the work, the seconds and where it was published."""

    gpu: str
    lora: bool
    steps: int
    frames: int
    seconds: float
    source: str

    @property
    def per_unit(self) -> float:
        """Seconds per unit of work (clip-frame-step at 480p)."""
        clips = chunk_count(self.frames, Defaults.FRAME_NUM, Defaults.MOTION_FRAME)
        return self.seconds / (clips * Defaults.FRAME_NUM * self.steps)


LIGHTX2V = "LightX2V's published InfiniteTalk figures (H200, 480p, 81 frames)"
INFINITETALK_ISSUES = "InfiniteTalk issues #7, #187, #210 (RTX 4090, 10 s at 480p, no LoRA: about 40 minutes)"
PUBLISHED: tuple[Figure, ...] = (
    Figure("H200 PRO", False, 40, 81, 366.0, LIGHTX2V),
    Figure("H200 PRO", True, 4, 81, 14.0, LIGHTX2V + ", 4-step distill LoRA"),
    Figure("4090 PRO", False, 40, 10 * FPS, 40 * 60.0, INFINITETALK_ISSUES),
)
BF16_TFLOPS = {
    "B200": 2250.0,
    "H200 PRO": 989.0,
    "H100 PRO": 989.0,
    "A100": 312.0,
    "L40, L40S, 6000 Ada PRO": 362.0,
    "A6000, A40": 155.0,
    "4090 PRO": 165.0,
    "L4, A5000, 3090": 121.0,
    "A4000, A4500, RTX 4000": 77.0,
}
"""Dense BF16 tensor throughput from NVIDIA's datasheets (the first GPU of each price row), used only to scale a
published figure to a GPU that has none."""
PUBLISHED_BAND = (0.7, 1.5)
SCALED_BAND = (0.5, 2.0)
MEASURED_BAND = (0.85, 1.3)
"""A bench-gpu figure is this GPU running this code at these shapes: what is left is run-to-run noise, the
worker's download and upload around the job, and a speech whose clips differ from the bench's one."""
SPEED_TABLE_VAR = "STUDIO_SPEED_TABLE"
MEASURED_TABLE = Path(__file__).resolve().parent.parent / "docs" / "gpu-speed.jsonl"
"""Where a bench-gpu run on a real GPU is committed; STUDIO_SPEED_TABLE names another file."""
BENCH_LINE = "infinitetalk-bench-gpu"
"""The `bench` field of bench-gpu's lines (worker/selftest/bench_gpu.py's BENCH)."""


@dataclass(frozen=True)
class Work:
    """What a job asks the GPU to do, and the variant it belongs to."""

    engine: str
    size: str
    lora: bool
    quant: str | None
    teacache: bool
    speakers: int
    frames: int
    clips: int
    frame_num: int
    steps: int
    frames_known: bool = True
    """False when the speech's length was not known and the frame cap was assumed (an upper bound)."""

    @property
    def variant(self) -> tuple[Any, ...]:
        """What must match for past runs to count as similar work."""
        return (self.engine, self.size, self.lora, self.quant, self.teacache, self.speakers)

    @property
    def units(self) -> float:
        """The work in clip-frame-steps at 480p (frames, for the preview engine)."""
        if self.engine == "preview":
            return float(self.frames)
        return self.clips * self.frame_num * self.steps * size_factor(self.size)


def size_factor(size: str) -> float:
    """How much slower a size is than 480p (SIZE_EXPONENT)."""
    base = SIZES["infinitetalk-480"]
    short, long = SIZES.get(size, base)
    return ((short * long) / (base[0] * base[1])) ** SIZE_EXPONENT


def _speakers(params: dict[str, Any]) -> int:
    audio = params.get("cond_audio")
    if isinstance(audio, dict) and audio.get("person2"):
        return 2
    tts = params.get("tts_audio")
    return 2 if isinstance(tts, dict) and "(s2)" in str(tts.get("text", "")).lower() else 1


def tts_seconds(text: str) -> float:
    """How long espeak-ng takes to say a text, at its default rate (the tags `(s1)`/`(s2)` are not spoken)."""
    words = re.findall(r"\w+", re.sub(r"\(s[12]\)", " ", text, flags=re.IGNORECASE))
    return len(words) / TTS_WORDS_PER_S


def work_for(params: dict[str, Any], speech_s: float | None, engine: str = "infinitetalk") -> Work:
    """The work of one job from its parameters (defaults filled in) and its speech's length in seconds; with no
    length the job's frame cap is assumed, as the worker would stop there."""

    def get(name: str, default: Any) -> Any:
        value = params.get(name)
        return value if value is not None else default

    mode = get("mode", Defaults.MODE)
    frame_num = int(get("frame_num", Defaults.FRAME_NUM))
    cap = frame_num if mode == "clip" else int(get("max_frame_num", Defaults.MAX_FRAME_NUM))
    tts = params.get("tts_audio")
    if speech_s is None and isinstance(tts, dict) and tts.get("text"):
        speech_s = tts_seconds(str(tts["text"]))
    frames = max(1, min(round(speech_s * FPS), cap)) if speech_s is not None else cap
    motion = int(get("motion_frame", Defaults.MOTION_FRAME))
    return Work(
        engine=engine,
        size=str(get("size", Defaults.SIZE)),
        lora=bool(params.get("lora")),
        quant=params.get("quant") or None,
        teacache=bool(params.get("use_teacache")),
        speakers=_speakers(params),
        frames=frames,
        clips=chunk_count(frames, frame_num, min(motion, frame_num - 1)),
        frame_num=frame_num,
        steps=int(get("sample_steps", Defaults.SAMPLE_STEPS)),
        frames_known=speech_s is not None,
    )


def work_of_run(run: dict[str, Any]) -> Work | None:
    """The work a catalogue run did, from its columns and params; None when it did not say enough."""
    params = run.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            return None
    if not isinstance(params, dict) or not run.get("frames"):
        return None
    work = work_for(params, run["frames"] / FPS, engine=run.get("engine") or "infinitetalk")
    return work if work.frames == run["frames"] else Work(**{**asdict(work), "frames": int(run["frames"])})


def run_seconds(run: dict[str, Any]) -> float | None:
    """A past run's GPU time in seconds: RunPod's execution time, else the worker's own total."""
    for name in ("execution_ms", "total_ms"):
        value = run.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return value / 1000
    return None


@dataclass(frozen=True)
class Fit:
    """seconds = intercept + slope × units, and the spread of the runs' own ratios to it."""

    intercept: float
    slope: float
    low_ratio: float
    high_ratio: float
    runs: int

    def seconds(self, units: float) -> float:
        """The fitted time for this much work."""
        return self.intercept + self.slope * units


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def fit(points: list[tuple[float, float]]) -> Fit | None:
    """Least squares seconds = a + b × units over (units, seconds) points, a ≥ 0 and b > 0; the band is the
    10th to 90th percentile of seconds / fitted (the whole range with fewer than ten points), widened a little
    for small samples."""
    if len(points) < MIN_HISTORY:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread > 0 else 0.0
    intercept = mean_y - slope * mean_x
    if slope <= 0 or intercept < 0:
        # Through the origin: time in proportion to work (all runs the same size, or a noisy small sample).
        intercept = 0.0
        slope = sum(x * y for x, y in points) / sum(x * x for x in xs)
    logs = [math.log(y / (intercept + slope * x)) for x, y in points if y > 0]
    low, high = (_quantile(logs, 0.1), _quantile(logs, 0.9)) if len(logs) >= 10 else (min(logs), max(logs))
    # A few runs show less of the spread than there is: widen the band the way a prediction interval widens.
    widen = math.sqrt((len(logs) + 1) / max(1, len(logs) - 1))
    return Fit(intercept, slope, math.exp(min(low, 0.0) * widen), math.exp(max(high, 0.0) * widen), len(points))


@dataclass(frozen=True)
class Estimate:
    """The expected GPU time with a band, its cost, and where the numbers come from."""

    seconds: float | None
    low: float | None
    high: float | None
    cost_usd: float | None
    gpu: str
    basis: str
    """`history`, `measured` (bench-gpu's speed table), `published`, or `none` (the preview engine before it has
    any runs to go by)."""
    execution_timeout_s: int | None
    """The policy.executionTimeout (seconds) the request should carry, or None when the endpoint's own suffices."""
    endpoint_timeout_s: int
    note: str
    frames_known: bool = True

    def as_json(self) -> dict[str, Any]:
        """The CLI's JSON object: the same numbers the Submit page shows."""
        return {
            "seconds": self.seconds,
            "low": self.low,
            "high": self.high,
            "cost_usd": self.cost_usd,
            "gpu": self.gpu,
            "basis": self.basis,
            "execution_timeout_s": self.execution_timeout_s,
        }


def _published(work: Work, gpu: str) -> tuple[float, tuple[float, float], str]:
    """Seconds for the work from the published table, its band, and a note naming the source."""
    own = {(f.gpu, f.lora): f for f in PUBLISHED}
    h200_ratio = own[("H200 PRO", True)].per_unit / own[("H200 PRO", False)].per_unit
    figure = own.get((gpu, work.lora))
    if figure is not None:
        per_unit, band, note = figure.per_unit, PUBLISHED_BAND, figure.source
    elif (gpu, False) in own and work.lora:
        base = own[(gpu, False)]
        per_unit, band = base.per_unit * h200_ratio, SCALED_BAND
        note = f"{base.source}, with the LoRA's speed-up as measured on the H200"
    else:
        base = own[("H200 PRO", work.lora)]
        per_unit = base.per_unit * BF16_TFLOPS["H200 PRO"] / BF16_TFLOPS.get(gpu, BF16_TFLOPS["H200 PRO"])
        band, note = SCALED_BAND, f"{base.source}, scaled to this GPU by its BF16 throughput"
    untracked = [name for name, on in (("TeaCache", work.teacache), ("quant", work.quant)) if on]
    if untracked:
        note += f"; {' and '.join(untracked)} not in the published figures"
    return per_unit * work.units, band, note


class SpeedTableError(ValueError):
    """A speed table that cannot be read; the message names the file, the line and what to fix."""


@dataclass(frozen=True)
class Measured:
    """One bench-gpu line: a GPU running one size and variant of InfiniteTalk at full size on random weights."""

    gpu: str
    """The price-table row (gpu_class of the CUDA name)."""
    gpu_name: str
    date: str
    size: str
    lora: bool
    quant: str | None
    teacache: bool
    speakers: int
    frame_num: int
    s_per_step: float
    outside_per_clip_s: float
    """Seconds of the job outside sampling (embedding, T5/CLIP/VAE encode, VAE decode, the video's encode) per
    clip: for one clip of frame_num frames, as the bench runs it."""

    @property
    def source(self) -> str:
        return f"measured on {self.gpu_name}, {self.date}, random weights at full size"

    def seconds(self, work: Work) -> float:
        """The work's time: each clip's sampling steps and its part outside sampling, scaled by frames per clip."""
        per_clip = self.outside_per_clip_s + self.s_per_step * work.steps
        return work.clips * per_clip * work.frame_num / self.frame_num


_LINE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "gpu": str, "date": str, "size": str, "lora": bool, "teacache": bool, "speakers": int, "frame_num": int,
    "clips": int, "s_per_step": (int, float), "outside_sampling_s": (int, float),
}  # fmt: skip


def _measured(line: dict[str, Any], where: str) -> Measured | None:
    """A usable line as a Measured, None for lines that say nothing about a real GPU's default speed (another
    bench, tiny scale, skipped or failed settings, a non-default attention kernel, VRAM offloading)."""
    if line.get("bench") != BENCH_LINE or line.get("scale") != "full" or line.get("status") != "ok":
        return None
    if line.get("attention") != line.get("default_attention") or line.get("num_persistent_param_in_dit") is not None:
        return None
    for name, kind in _LINE_FIELDS.items():
        if not isinstance(line.get(name), kind):
            raise SpeedTableError(f"{where}: `{name}` is missing or not {getattr(kind, '__name__', 'a number')}")
    row = gpu_class(line["gpu"])
    if row is None or row == CPU:
        return None
    clips = max(1, line["clips"])
    return Measured(
        row, line["gpu"], line["date"], line["size"], line["lora"], line.get("quant") or None, line["teacache"],
        line["speakers"], line["frame_num"], float(line["s_per_step"]), float(line["outside_sampling_s"]) / clips,
    )  # fmt: skip


def read_speed_table(path: Path) -> tuple[Measured, ...]:
    """The usable lines of a bench-gpu speed table (JSON lines); a line that is not JSON, or a bench-gpu line
    without its fields, is a SpeedTableError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpeedTableError(f"{SPEED_TABLE_VAR}: {path} cannot be read ({error.strerror or error})") from None
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{SPEED_TABLE_VAR}: {path} line {number}"
        try:
            line = json.loads(raw)
        except ValueError:
            raise SpeedTableError(f"{where} is not JSON: give the lines `python -m worker bench-gpu` prints") from None
        if not isinstance(line, dict):
            raise SpeedTableError(f"{where} is not a JSON object: give the lines bench-gpu prints")
        measured = _measured(line, where)
        if measured is not None:
            found.append(measured)
    return tuple(found)


_TABLES: dict[tuple[str, float], tuple[Measured, ...]] = {}


def speed_table(env: Mapping[str, str] | None = None) -> tuple[Measured, ...]:
    """The speed table in force: STUDIO_SPEED_TABLE's file, else docs/gpu-speed.jsonl where one is committed,
    else none. Read again when the file changes."""
    env = os.environ if env is None else env
    named = env.get(SPEED_TABLE_VAR, "").strip()
    path = Path(named).expanduser() if named else MEASURED_TABLE
    if not named and not path.exists():
        return ()
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError as error:
        raise SpeedTableError(f"{SPEED_TABLE_VAR}: {path} cannot be read ({error.strerror or error})") from None
    if key not in _TABLES:
        _TABLES[key] = read_speed_table(path)
    return _TABLES[key]


def _from_table(work: Work, gpu: str, table: tuple[Measured, ...]) -> tuple[float, str] | None:
    """Seconds for the work from the newest measured line that fits, and a note naming it; None when the
    table does not cover this GPU and LoRA setting."""
    lines = sorted((m for m in table if m.gpu == gpu and m.lora == work.lora), key=lambda m: m.date, reverse=True)
    exact = (work.size, work.quant, work.teacache, work.speakers)
    for measured in lines:
        if (measured.size, measured.quant, measured.teacache, measured.speakers) == exact:
            return measured.seconds(work), measured.source
    base = [m for m in lines if (m.quant, m.teacache, m.speakers) == (None, False, 1)]
    for measured in base:
        if measured.size == work.size:
            note = measured.source
            untracked = [n for n, on in (("TeaCache", work.teacache), ("quant", work.quant)) if on]
            if work.speakers == 2:
                untracked.append("two speakers")
            if untracked:
                note += f"; {' and '.join(untracked)} not measured (the plain model's figure)"
            return measured.seconds(work), note
    for measured in base:
        factor = size_factor(work.size) / size_factor(measured.size)
        return measured.seconds(work) * factor, f"{measured.source}; {work.size} scaled from {measured.size}"
    return None


def history_points(runs: list[dict[str, Any]], work: Work, gpu: str) -> list[tuple[float, float]]:
    """(units, seconds) of the finished runs that did the same variant of work on the same GPU."""
    points = []
    for run in runs:
        if run.get("status") != JobStatus.COMPLETED or gpu_class(run.get("gpu_name")) != gpu:
            continue
        done = work_of_run(run)
        seconds = run_seconds(run)
        if done is not None and seconds is not None and done.variant == work.variant:
            points.append((done.units, seconds))
    return points


def timeout_for(high: float | None, endpoint_timeout_s: int) -> int | None:
    """The policy.executionTimeout to send when the band's high end would pass the endpoint's own timeout."""
    if high is None or high <= endpoint_timeout_s:
        return None
    wanted = math.ceil((high * TIMEOUT_MARGIN + TIMEOUT_SLACK_S) / 60) * 60
    return min(wanted, MAX_TIMEOUT_S)


def estimate(
    work: Work,
    gpu: str | None,
    runs: list[dict[str, Any]],
    prices: PriceTable,
    *,
    endpoint_timeout_s: int = RUNPOD_DEFAULT_TIMEOUT_S,
    gpu_count: int = 1,
    table: tuple[Measured, ...] = (),
) -> Estimate:
    """The estimate for one job on `gpu` (a price-table row, a CUDA name, or `cpu` for the preview engine),
    from the endpoint's past runs when enough are similar, else from the speed table's measured figures where
    they cover the GPU, else from the published figures."""
    row = CPU if work.engine == "preview" else (gpu_class(gpu) or DEFAULT_GPU)
    fitted = fit(history_points(runs, work, row))
    if fitted is not None:
        middle = fitted.seconds(work.units)
        band = (fitted.low_ratio, fitted.high_ratio)
        basis, note = "history", f"{fitted.runs} similar past runs on this endpoint"
    elif row == CPU:
        return Estimate(
            None, None, None, 0.0, CPU, "none", None, endpoint_timeout_s,
            f"the local preview engine costs $0; a time estimate needs {MIN_HISTORY} similar preview runs",
            work.frames_known,
        )  # fmt: skip
    elif (measured := _from_table(work, row, table)) is not None:
        (middle, note), band, basis = measured, MEASURED_BAND, "measured"
    else:
        middle, band, note = _published(work, row)
        basis = "published"
    if not work.frames_known:
        note += "; the speech's length is not known, so the frame cap is assumed"
    low, high = middle * band[0], middle * band[1]
    price = prices.per_second(row)
    cost = None if price is None else round(math.ceil(middle) * price * max(1, gpu_count), 4)
    return Estimate(
        round(middle, 1),
        round(low, 1),
        round(high, 1),
        0.0 if row == CPU else cost,
        row,
        basis,
        timeout_for(high, endpoint_timeout_s),
        endpoint_timeout_s,
        note,
        work.frames_known,
    )


def combined(parts: list[Estimate]) -> Estimate:
    """A batch's estimate: its items run one after another on one worker, so times and costs add up."""
    first = parts[0]

    def total(name: str) -> float | None:
        values = [getattr(part, name) for part in parts]
        return None if any(v is None for v in values) else round(sum(values), 4)

    bases = {part.basis for part in parts}
    high = total("high")
    return Estimate(
        total("seconds"),
        total("low"),
        high,
        total("cost_usd"),
        first.gpu,
        "history"
        if bases == {"history"}
        else "published"
        if "published" in bases
        else "measured"
        if "measured" in bases
        else first.basis,
        timeout_for(high, first.endpoint_timeout_s),
        first.endpoint_timeout_s,
        f"{len(parts)} jobs one after another; " + first.note,
        all(part.frames_known for part in parts),
    )


def endpoint_timeout(settings: Any) -> int:
    """The execution timeout a job meets when its request names none: the local endpoint's
    STUDIO_EXECUTION_TIMEOUT_S, or RunPod's default (an endpoint's own setting is not readable through /v2)."""
    return int(settings.execution_timeout_s) if settings.is_local_endpoint else RUNPOD_DEFAULT_TIMEOUT_S


def engine_for(settings: Any) -> str:
    """The engine the configured endpoint runs: the preview engine on the local endpoint when STUDIO_ENGINE
    says so (the launcher starts both with the same value), InfiniteTalk on RunPod."""
    return "preview" if settings.is_local_endpoint and settings.engine == "preview" else "infinitetalk"


def target_gpu(settings: Any, runs: list[dict[str, Any]], chosen: str | None = None) -> str:
    """The GPU to estimate for: the one chosen, `cpu` for the local preview engine, STUDIO_GPU, the GPU the
    endpoint's latest run recorded, else DEFAULT_GPU."""
    if chosen:
        return gpu_class(chosen) or chosen
    if engine_for(settings) == "preview":
        return CPU
    if settings.gpu:
        return gpu_class(settings.gpu) or settings.gpu
    for run in runs:
        row = gpu_class(run.get("gpu_name"))
        if row and row != CPU:
            return row
    return DEFAULT_GPU


def recent_runs(catalog: Any, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's latest finished runs, newest first: what the history basis and the GPU default read."""
    cursor = catalog.conn.execute(
        "SELECT status, engine, gpu_name, gpu_count, params, frames, execution_ms, total_ms FROM runs "
        "WHERE endpoint_id = ? AND finished_at IS NOT NULL AND batch_items IS NULL "
        "ORDER BY finished_at DESC LIMIT ?",
        (endpoint_id, HISTORY_RUNS),
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def estimate_job(
    job_input: dict[str, Any],
    speech_s: list[float | None] | float | None,
    *,
    settings: Any,
    runs: list[dict[str, Any]],
    gpu: str | None = None,
) -> Estimate:
    """The estimate for a job input (one job or a batch) on the configured endpoint; `speech_s` is the speech's
    length per job (None where unknown)."""
    items = batch if isinstance(batch := job_input.get("batch"), list) else [job_input]
    lengths = speech_s if isinstance(speech_s, list) else [speech_s] * len(items)
    row = target_gpu(settings, runs, gpu)
    # A GPU named by the caller means the GPU worker, even from a machine whose local endpoint runs the preview.
    engine = "infinitetalk" if gpu and row != CPU else engine_for(settings)
    prices = PriceTable.from_settings(settings)
    try:
        table, problem = speed_table(), ""
    except SpeedTableError as error:
        table, problem = (), f"; {error}, so it is not used"
    timeout_s = endpoint_timeout(settings)
    parts = [
        estimate(work_for(item, length, engine), row, runs, prices, endpoint_timeout_s=timeout_s, table=table)
        for item, length in zip(items, lengths, strict=False)
    ]
    result = parts[0] if len(parts) == 1 else combined(parts)
    return replace(result, note=result.note + problem) if problem else result


def _speech_of(item: dict[str, Any]) -> float | None:
    """The speech's length of one job, when its recordings are files here (ffprobe); None for URLs and inline
    data, which the estimate does not download (tts_audio is timed from its text instead)."""
    from pathlib import Path

    from worker.inputs import classify
    from worker.media import probe

    audio = item.get("cond_audio")
    if not isinstance(audio, dict):
        return None
    lengths = []
    for person in ("person1", "person2"):
        ref = audio.get(person)
        if ref is None:
            continue
        if not isinstance(ref, str) or classify(ref) != "path" or not Path(ref).is_file():
            return None
        lengths.append(probe(Path(ref), field=f"cond_audio.{person}").duration_s or 0.0)
    if not lengths:
        return None
    return sum(lengths) if item.get("audio_type", "add") == "add" else max(lengths)


def main(payload: Any, settings: Any, gpu: str | None = None) -> int:
    """`studio estimate PAYLOAD [--gpu NAME]`: print the estimate as one JSON object."""
    from pathlib import Path

    from catalog import Catalog
    from client.payloads import load_payload
    from core.contract import BatchInput, JobError, JobFailure, parse_job_input

    try:
        job_input = load_payload(Path(payload))
        parsed = parse_job_input(job_input)
        items = [item.model_dump(mode="json") for item in parsed.batch] if isinstance(parsed, BatchInput) else None
        lengths = [_speech_of(item) for item in (job_input.get("batch") or [job_input])]
        from client.catalog_prices import refresh

        catalogue_problem = refresh(settings)  # RunPod's own prices, with an API key (read at most once a day)
        prices = PriceTable.from_settings(settings)
        try:
            speed_table()
        except SpeedTableError as table_error:
            from core.contract import ErrorCode

            raise JobError(ErrorCode.INPUT_VALIDATION, str(table_error)) from None
        if gpu and gpu_class(gpu) is None:
            from core.contract import ErrorCode
            from core.prices import SHORT_NAMES

            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                f"--gpu: {gpu!r} is not a GPU of RunPod's price table; use one of {', '.join(SHORT_NAMES.values())}",
            )
    except JobError as error:
        print(json.dumps(JobFailure.of(error), indent=2))
        return 2
    runs: list[dict[str, Any]] = []
    if settings.catalog_file.exists():
        runs = recent_runs(Catalog(settings.catalog_file, prices), settings.endpoint_id)
    full = {"batch": items} if items is not None else parsed.model_dump(mode="json")
    result = estimate_job(full, lengths if items is not None else lengths[0], settings=settings, runs=runs, gpu=gpu)
    answer = result.as_json()
    split = _split(full, lengths[0] if items is None else None, settings, runs, gpu)
    if split is not None:
        answer["split"] = split
    print(json.dumps(answer))
    print(f"{describe(result)} ({result.note})", file=sys.stderr)
    if split is not None:
        wall = "" if split["split_wall_s"] is None else f": ≈ {minutes(split['split_wall_s'])}"
        print(
            f"split into {split['parts']} parts of ≈ {split['part_s']:.0f} s on {split['parallel']} workers{wall}, "
            f"each part's executionTimeout {split['part_execution_timeout_s']} s (docs/split.md)",
            file=sys.stderr,
        )
    where = f" ({catalogue_problem})" if catalogue_problem else ""
    print(f"price: {prices.source(result.gpu)}{where}", file=sys.stderr)
    return 0


def _split(
    job: dict[str, Any], speech_s: float | None, settings: Any, runs: list[dict[str, Any]], gpu: str | None
) -> dict[str, Any] | None:
    """The split choice for speech `submit` would split (docs/split.md): time on one worker against N workers,
    and each part's executionTimeout; None for a batch, unknown speech, or speech short enough for one take."""
    from core.contract import SplitDefaults

    if speech_s is None or speech_s <= SplitDefaults.SPLIT_ABOVE_S:
        return None
    from client.api import StudioClient
    from client.fanout import default_parallel, split_estimate

    parallel = default_parallel(StudioClient(settings, attempts=1))
    return split_estimate(job, speech_s, settings=settings, runs=runs, parallel=parallel, gpu=gpu)


def minutes(seconds: float) -> str:
    """A duration as people say it: `40 s`, `6 min`, `1 h 5 min`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if round(seconds / 60) < 60:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def describe(result: Estimate) -> str:
    """The estimate in one line: `≈ 6 min (4 min–9 min) on H100 PRO, ≈ $0.42`."""
    from core.prices import SHORT_NAMES

    if result.seconds is None:
        return "no time estimate yet; the local preview engine costs $0"
    low, high = result.low or 0.0, result.high or 0.0
    where = "on the local preview engine" if result.gpu == CPU else f"on {SHORT_NAMES.get(result.gpu, result.gpu)}"
    cost = (
        "$0 (the preview engine runs here, nothing is billed)"
        if result.gpu == CPU
        else ("cost unknown (no price for this GPU)" if result.cost_usd is None else f"≈ ${result.cost_usd:.2f}")
    )
    return f"≈ {minutes(result.seconds)} ({minutes(low)}–{minutes(high)}) {where}, {cost}"
