"""The weights download lands every file the engine checks for at cold start, for every variant."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from worker.engines.infinitetalk_args import MODELS_ROOT, Variant, WeightPaths
from worker.engines.infinitetalk_weights import Download, plan

PATHS = WeightPaths()
VARIANTS = [
    Variant(),
    Variant(speakers=2),
    Variant(lora=True),
    Variant(quant="fp8", quant_dir=PATHS.quant_dir),
    Variant(speakers=2, quant="int8", quant_dir=PATHS.quant_dir),
]


def covered(path: Path, downloads: list[Download]) -> bool:
    """Whether a download puts this file (or folder) under the models root."""
    relative = path.relative_to(MODELS_ROOT)
    folder, rest = relative.parts[0], "/".join(relative.parts[1:])
    for item in downloads:
        if item.folder != folder:
            continue
        if item.patterns is None or any(fnmatch.fnmatch(rest, pattern) for pattern in item.patterns):
            return True
    return False


@pytest.mark.parametrize("variant", VARIANTS, ids=Variant.describe)
def test_the_download_plan_covers_what_the_variant_loads(variant: Variant) -> None:
    downloads = plan(lora=variant.lora, quant=variant.quant)
    wav2vec = [PATHS.wav2vec_dir / name for name in ("config.json", "preprocessor_config.json", "model.safetensors")]
    for path in [*wav2vec, *(path for path, _ in variant.required_files(PATHS))]:
        assert covered(path, downloads), f"nothing downloads {path}"


def test_the_lora_and_quantised_weights_are_only_fetched_when_asked_for() -> None:
    base = plan(lora=False, quant=None)
    assert not covered(PATHS.lora_file(), base)
    assert not covered(PATHS.quant_dir / "t5_fp8.safetensors", base)
    assert covered(PATHS.quant_dir / "t5_map_fp8.json", plan(lora=False, quant="fp8"))
    assert not covered(PATHS.quant_dir / "t5_int8.safetensors", plan(lora=False, quant="fp8"))
