"""`python -m worker selftest`: InfiniteTalk's real code, end to end through the worker, on tiny random weights.

Run it on a freshly built GPU image before downloading ~80 GB of weights, on a laptop, or in CI: it builds a tiny
checkpoint tree in the real weights' layout (tiny.py), runs jobs through `run_job` with the InfiniteTalk engine
(cases.py) and prints one line per case and a JSON summary. On a GPU InfiniteTalk runs on CUDA with the kernels
the image has; without one, cpu.py lets the same code run on the CPU. Exit 0 only when every case passed.

What it proves: the image's Python, packages and InfiniteTalk source import and work together; the engine's
mapping, progress, cancel, variants (LoRA, quantisation, VRAM management, two speakers) and encoder work against
the real pipeline. What it cannot: the quality of a real video, or the speed and memory of the 14B weights.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.contract import ErrorCode, JobError, JobFailure, Stage
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT
from worker.variants import DEFAULT_SRC, ENV_VARS

if TYPE_CHECKING:
    from worker.selftest.cases import Bench

SOURCE_HINT = (
    "point INFINITETALK_SRC at InfiniteTalk's source (git clone https://github.com/MeiGen-AI/InfiniteTalk and "
    f"check out {INFINITETALK_COMMIT}; the GPU image has it at {DEFAULT_SRC})"
)


@dataclass
class CaseReport:
    """One case's outcome, as printed and summarised."""

    name: str
    status: str
    frames: int
    seconds: float
    device: str
    error: str | None = None

    def line(self) -> str:
        text = f"{self.name}: {self.status}, {self.frames} frames, {self.seconds:.1f} s, {self.device}"
        return f"{text}: {self.error}" if self.error else text


def source_dir(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """InfiniteTalk's source folder: INFINITETALK_SRC, else where the GPU image puts it."""
    env = os.environ if env is None else env
    return Path(env.get("INFINITETALK_SRC") or DEFAULT_SRC)


def prepare_runtime(src: Path) -> tuple[str, dict[str, str]]:
    """Import InfiniteTalk the way the engine does, on CUDA as it is or on the CPU through cpu.py, with the tiny
    sizes; returns the device and which kernels run (InfiniteTalk's own or a stand-in)."""
    import torch

    from worker.engines.infinitetalk import import_infinitetalk
    from worker.selftest import cpu, tiny

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")  # @torch.compile needs a C++ toolchain on CPU
        torch._dynamo.config.disable = True
        cpu.install()
    else:
        cpu.install_kernel_standins()
    modules = import_infinitetalk(src)
    if device == "cpu":
        cpu.adapt(modules)
    elif not (cpu.has_module("flash_attn") or cpu.has_module("flash_attn_interface")):
        cpu.use_attention_standin()
    tiny.use_tiny_sizes()
    kernels = {}
    for name in ("xformers", "flash_attention", "xfuser"):
        partly = f"{name}.ops.memory_efficient_attention"
        if name in cpu.STAND_INS:
            kernels[name] = "stand-in (SDPA)" if name != "xfuser" else "stand-in (one process)"
        elif partly in cpu.STAND_INS:
            kernels[name] = "installed; memory_efficient_attention stand-in (SDPA)"
        else:
            kernels[name] = "installed"
    return device, kernels


def run_selftest(
    cases: list[str] | None = None, keep: Path | None = None, out: Callable[[str], None] = print
) -> dict[str, Any]:
    """Build the tiny tree, run the cases, return the summary (printing a line per case through `out`)."""
    from worker.selftest.cases import CASES

    began = time.perf_counter()
    chosen = cases or list(CASES)
    summary: dict[str, Any] = {
        "status": "failed",
        "device": "cpu",
        "python": platform.python_version(),
        "infinitetalk_commit": INFINITETALK_COMMIT,
        "cases": [],
    }
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        summary["error"] = f"--cases: no case named {', '.join(unknown)}; the cases are {', '.join(CASES)}"
        return summary
    src = source_dir()
    if not (src / "wan" / "multitalk.py").exists():
        summary["error"] = f"InfiniteTalk's source is not at {src}: {SOURCE_HINT}"
        return summary
    work = Path(tempfile.mkdtemp(prefix="infinitetalk-selftest-"))
    try:
        summary.update(_run(chosen, src, keep or work / "models", work, out))
    except Exception as error:  # the runtime or the tree could not be set up: say where, fail the whole run
        summary["error"] = f"{type(error).__name__}: {error}"
        summary["traceback"] = traceback.format_exc(limit=8)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    return summary


def _run(chosen: list[str], src: Path, tree: Path, work: Path, out: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from core.settings import Settings
    from worker.engines import load_engine
    from worker.engines.infinitetalk import InfiniteTalkEngine
    from worker.selftest import tiny
    from worker.selftest.cases import Bench
    from worker.selftest.media import make_media

    device, kernels = prepare_runtime(src)
    paths = tiny.build_tree(tree)
    weights = {var: str(getattr(paths, name)) for name, var in ENV_VARS.items()} | {"INFINITETALK_SRC": str(src)}
    settings = Settings(data_dir=work / "data", engine="infinitetalk", store="volume", weights=weights)
    if "kokoro" in chosen:  # about 130 MB even tiny (Kokoro's decoder fixes its channels): built only when asked
        from worker.kokoro_tts import spacy_model_installed
        from worker.selftest.tiny_kokoro import build_tiny_kokoro

        kokoro_dir = build_tiny_kokoro(work / "Kokoro-82M", src, frames_per_phoneme=2)
        # The image's misaki English G2P where its spaCy model is installed (the GPU image); espeak-ng's elsewhere.
        g2p = "misaki" if spacy_model_installed() else "espeak"
        if g2p == "espeak":
            from worker.selftest import cpu

            cpu.STAND_INS["en_core_web_sm"] = (
                "espeak-ng's G2P for Kokoro (spaCy's English model, a GitHub release the image installs, is absent)"
            )
        settings = settings.with_(kokoro_dir=kokoro_dir, kokoro_g2p=g2p)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    engine = load_engine(settings)
    assert isinstance(engine, InfiniteTalkEngine)
    bench = Bench(settings=settings, engine=engine, media=make_media(work / "media"))
    with contextlib.redirect_stdout(sys.stderr):  # InfiniteTalk prints as it goes; stdout keeps the report
        result = _cases(bench, chosen, device, kernels, tree, out)
    if "kokoro" in chosen:
        result["kokoro_g2p"] = settings.kokoro_g2p
    return result


def _cases(
    bench: Bench, chosen: list[str], device: str, kernels: dict[str, str], tree: Path, out: Callable[[str], None]
) -> dict[str, Any]:
    import torch

    from worker.selftest import cpu, tiny
    from worker.selftest.cases import CASES

    reports = []
    for name in chosen:
        started = time.perf_counter()
        try:
            frames, status, error = CASES[name](bench), "passed", None
        except Exception as failure:
            frames, status, error = 0, "failed", f"{type(failure).__name__}: {failure}"
        report = CaseReport(name, status, frames, round(time.perf_counter() - started, 2), device, error)
        out(report.line())
        reports.append(asdict(report))
    result: dict[str, Any] = {
        "status": "ok" if all(r["status"] == "passed" for r in reports) else "failed",
        "device": device,
        "torch": torch.__version__,
        "kernels": kernels,
        "stand_ins": dict(cpu.STAND_INS),
        "tree_mb": round(tiny.tree_bytes(tree) / 1e6, 1),
        "cases": reports,
    }
    if device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(0)
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def is_selftest_request(job_input: Any) -> bool:
    """A RunPod job whose input is `{"selftest": {...}}` (RunPod Hub's test run, .runpod/tests.json)."""
    return isinstance(job_input, dict) and set(job_input) == {"selftest"} and isinstance(job_input["selftest"], dict)


def run_selftest_job(job_input: dict[str, Any], timeout_s: float = 900.0) -> dict[str, Any]:
    """Run the selftest for a RunPod job in a child process, so the tiny sizes it patches into InfiniteTalk's
    modules never touch the worker's own pipeline. The result carries the summary; a failure also sets `error`,
    which RunPod reports as a FAILED job."""
    import subprocess

    cases = job_input["selftest"].get("cases")
    args = [sys.executable, "-m", "worker", "selftest"]
    if isinstance(cases, list) and all(isinstance(name, str) for name in cases):
        args += ["--cases", ",".join(cases)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as silent:
        summary = {"status": "failed", "error": f"the selftest did not report: {type(silent).__name__}: {silent}"}
    if summary.get("status") == "ok":
        return {"status": "success", "selftest": summary}
    failed = [case["name"] for case in summary.get("cases", []) if case.get("status") != "passed"]
    message = summary.get("error") or f"selftest cases failed: {', '.join(failed)}"
    error = JobError(
        ErrorCode.PIPELINE_LOAD, f"InfiniteTalk's selftest failed: {message}", at_stage=Stage.PIPELINE_WARM_STARTED
    )
    return JobFailure.of(error, selftest=summary)


def main(argv: list[str] | None = None, prog: str = "python -m worker selftest") -> int:
    """The command line: run the selftest and print the summary as the last line (`prog`: the command as typed)."""
    from worker.selftest.cases import CASES

    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.replace("python -m worker selftest", prog) + f"\nexample:\n  {prog} --cases photo,audio\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cases", help=f"comma-separated cases to run (default: all): {', '.join(CASES)}")
    parser.add_argument("--keep", type=Path, help="build the tiny weights tree in this folder and keep it")
    args = parser.parse_args(argv)
    cases = [name.strip() for name in args.cases.split(",") if name.strip()] if args.cases else None
    stdout = sys.stdout
    summary = run_selftest(cases, args.keep, out=lambda line: print(line, file=stdout, flush=True))
    if summary.get("error"):
        print(f"selftest failed: {summary['error']}", file=sys.stderr)
    print(json.dumps(summary), flush=True)
    return 0 if summary["status"] == "ok" else 1
