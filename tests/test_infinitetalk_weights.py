"""One list of weight files: what the engine checks at cold start is what `weights check` prints and what
`weights fetch` downloads, for every variant, and each file has a public repository to come from."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.contract import ErrorCode, JobError
from core.settings import Settings
from worker.engines.infinitetalk import InfiniteTalkEngine
from worker.engines.infinitetalk_weights import (
    SOURCES,
    VARIANTS,
    cold_start_files,
    source_files,
    variant_name,
    wanted,
    weight_files,
)
from worker.variants import LIGHTX2V_LORA, WeightPaths, preload_variant

ROOT = Path("/models-root")
PATHS = WeightPaths.under(ROOT)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_variant_is_the_engines_cold_start_list_less_the_source(name: str) -> None:
    variant = VARIANTS[name](PATHS)
    engine = [*cold_start_files(PATHS), *variant.required_files(PATHS)]
    assert [*source_files(PATHS), *weight_files(variant, PATHS)] == engine
    assert variant_name(variant) == name


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_file_a_variant_needs_comes_from_a_known_public_repository(name: str) -> None:
    items = wanted(ROOT, weight_files(VARIANTS[name](PATHS), PATHS))
    assert items and all(item.source is SOURCES[item.folder.name] for item in items)
    assert all((item.folder / item.path_in_repo) == item.local for item in items)


def test_wav2vec2_safetensors_come_from_the_pull_request_revision_and_the_rest_from_main() -> None:
    items = {item.path_in_repo: item for item in wanted(ROOT, weight_files(VARIANTS["base"](PATHS), PATHS))}
    assert items["model.safetensors"].revision == "refs/pr/1"
    assert items["model.safetensors"].source.repo_id == "TencentGameMate/chinese-wav2vec2-base"
    assert items["preprocessor_config.json"].revision == "main"


def test_the_lora_and_quantised_weights_belong_only_to_their_variants() -> None:
    base = {path for path, _ in weight_files(VARIANTS["base"](PATHS), PATHS)}
    assert PATHS.lora_dir / LIGHTX2V_LORA not in base
    assert not any("quant_models" in str(path) for path in base)
    fp8 = {path for path, _ in weight_files(VARIANTS["fp8"](PATHS), PATHS)}
    assert PATHS.quant_dir / "t5_map_fp8.json" in fp8 and PATHS.quant_dir / "t5_int8.safetensors" not in fp8
    assert not any(path.name.startswith("diffusion_pytorch_model") for path in fp8)  # the quantised DiT replaces them


def test_a_path_outside_the_default_layout_has_no_repository() -> None:
    with pytest.raises(ValueError, match="no public repository is known for /models-root/elsewhere"):
        wanted(ROOT, [(ROOT / "elsewhere" / "x.safetensors", "CKPT_DIR")])


def test_the_engine_refuses_to_start_naming_the_first_file_of_the_same_list(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, weights={"CKPT_DIR": str(tmp_path / "ckpt")})
    engine = InfiniteTalkEngine(settings)
    paths = engine.paths
    with pytest.raises(JobError) as refused:
        engine.load()
    first_missing = next(path for path, _ in cold_start_files(paths) if not path.exists())
    assert refused.value.code == ErrorCode.PIPELINE_LOAD
    assert f"{first_missing} (set " in refused.value.message
    preload = preload_variant(None, paths, ())
    assert variant_name(preload) == "base"
