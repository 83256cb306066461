"""`python -m worker weights check` prints every file each variant loads, present with its size or missing with
the env var that places it, and exits 1 when anything is missing; against the selftest's tiny tree (the real
layout) nothing is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HAS_INFINITETALK_SRC, ROOT, SelftestRun
from worker.engines.infinitetalk_weights import COMPONENTS, VARIANTS, weight_files
from worker.selftest import SOURCE_HINT
from worker.variants import WeightPaths


def worker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CKPT_DIR", "INFINITETALK_DIR", "WAV2VEC_DIR",
             "QUANT_DIR", "LORA_DIR", "KOKORO_DIR", "INFINITETALK_PRELOAD")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], cwd=ROOT, env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def needed(name: str, paths: WeightPaths, root: Path) -> list[tuple[Path, str]]:
    if name in VARIANTS:
        return weight_files(VARIANTS[name](paths), paths)
    return COMPONENTS[name].needed(root / COMPONENTS[name].folder)


def lay_out(root: Path, names: list[str], size: int = 10) -> WeightPaths:
    """Every file the named variants and models need, `size` bytes each (folders get one file)."""
    paths = WeightPaths.under(root)
    for name in names:
        for path, _ in needed(name, paths, root):
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x" * size)
            else:
                path.mkdir(parents=True, exist_ok=True)
                (path / "tokenizer.json").write_bytes(b"x" * size)
    return paths


def test_missing_files_are_listed_with_their_env_var_and_the_exit_status_is_1(tmp_path: Path) -> None:
    paths = lay_out(tmp_path, ["base"], size=2_500_000)
    (paths.infinitetalk_dir / "single" / "infinitetalk.safetensors").unlink()
    done = worker("weights", "check", "--variant", "base,lora", "--dir", str(tmp_path))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "base (single-speaker):"
    assert f"  present     2.5 MB  {paths.ckpt_dir / 'Wan2.1_VAE.pth'}" in lines
    assert f"  present     2.5 MB  {paths.ckpt_dir / 'google' / 'umt5-xxl'}" in lines  # a folder: its files' total
    single = paths.infinitetalk_dir / "single" / "infinitetalk.safetensors"
    assert lines.count(f"  missing             {single}  (set INFINITETALK_DIR)") == 2  # base and lora
    assert f"  missing             {paths.lora_file()}  (set LORA_DIR)" in lines
    assert lines[-1] == "Missing files for: base (1), lora (2). `python -m worker weights fetch` gets them."


def test_every_variant_complete_is_exit_0_and_lists_exactly_the_engines_files(tmp_path: Path) -> None:
    everything = [*VARIANTS, *COMPONENTS]
    paths = lay_out(tmp_path, everything)
    done = worker("weights", "check", "--variant", "all", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stdout
    listed = [line.split("  ")[-1] for line in done.stdout.splitlines() if line.startswith("  present")]
    assert listed == [str(path) for name in everything for path, _ in needed(name, paths, tmp_path)]
    assert "kokoro" in everything and f"{tmp_path / 'Kokoro-82M' / 'voices' / 'am_adam.pt'}" in listed
    assert done.stdout.splitlines()[-1] == f"Nothing missing for {', '.join(everything)}."


def test_without_dir_it_checks_where_the_env_vars_point_and_adds_the_preload_variant(tmp_path: Path) -> None:
    paths = lay_out(tmp_path / "elsewhere", ["base", "multi", "lora", "kokoro", "fp8"])
    env = {
        "CKPT_DIR": str(paths.ckpt_dir),
        "INFINITETALK_DIR": str(paths.infinitetalk_dir),
        "WAV2VEC_DIR": str(paths.wav2vec_dir),
        "LORA_DIR": str(paths.lora_dir),
        "KOKORO_DIR": str(tmp_path / "elsewhere" / "Kokoro-82M"),
        "INFINITETALK_PRELOAD": '{"quant": "fp8"}',
    }
    done = worker("weights", "check", env=env)
    assert done.returncode == 0, done.stdout
    headings = [line for line in done.stdout.splitlines() if not line.startswith("  ")]
    assert headings == [
        "base (single-speaker):",
        "multi (multi-speaker):",
        "lora (single-speaker, lightx2v LoRA x1):",
        "kokoro (Kokoro-82M text to speech):",
        "fp8 (INFINITETALK_PRELOAD) (single-speaker, fp8):",
        "Nothing missing for base, multi, lora, kokoro, fp8 (INFINITETALK_PRELOAD).",
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    unknown = worker("weights", "check", "--variant", "bf16", "--dir", str(tmp_path))
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert unknown.stderr.strip().startswith("weights check: --variant: 'bf16' is not one of base, multi, lora")
    preload = worker("weights", "check", env={"INFINITETALK_PRELOAD": '{"speakers": 3}'})
    assert preload.returncode == 2 and len(preload.stderr.strip().splitlines()) == 1
    assert preload.stderr.startswith("weights check: INFINITETALK_PRELOAD: speakers")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # it may set up the selftest's run: minutes on a busy CPU
@pytest.mark.skipif(not HAS_INFINITETALK_SRC, reason=f"no InfiniteTalk source: {SOURCE_HINT}")
def test_the_selftests_tiny_tree_has_every_file_of_every_variant(selftest_run: SelftestRun) -> None:
    """The tree `python -m worker selftest --keep` builds is in the real layout: the same check finds it whole (its
    InfiniteTalk part; the tiny Kokoro is built only for the kokoro case, elsewhere). The tree is the one the
    session's run of every case kept (tests/conftest.py's selftest_run)."""
    built = selftest_run.done
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    done = worker("weights", "check", "--variant", ",".join(VARIANTS), "--dir", str(selftest_run.tree))
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == f"Nothing missing for {', '.join(VARIANTS)}."
