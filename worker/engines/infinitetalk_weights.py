"""Which weight files each model variant needs, and which public Hugging Face repository each one comes from.

This is the one list. The engine's cold-start check (`InfiniteTalkEngine.load`) refuses to start when any file
of `cold_start_files` + `Variant.required_files` is missing; `python -m worker weights check` prints the same
files, present or missing; `python -m worker weights fetch` downloads exactly those files, each from the repo
that SOURCES names for its folder. So the three can never disagree about what "the weights" are.

Kokoro-82M (text to speech) is listed beside the variants, with worker/kokoro_tts.py's own file list. Nothing here
imports torch or huggingface_hub: the check runs on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import Settings
from worker.kokoro_tts import KOKORO_FILES, KOKORO_REPO
from worker.variants import WAV2VEC_FILES, Variant, WeightPaths

WAV2VEC_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
"""wav2vec2's weights: either file loads; `model.safetensors` is the one fetched (InfiniteTalk's README)."""


def source_files(paths: WeightPaths) -> list[tuple[Path, str]]:
    """InfiniteTalk's source checkout (in the GPU image, not a download)."""
    return [(paths.src_dir / "wan" / "multitalk.py", "INFINITETALK_SRC")]


def wav2vec_files(paths: WeightPaths) -> list[tuple[Path, str]]:
    """wav2vec2's config, feature extractor and weights (either weights file counts)."""
    needed = [(paths.wav2vec_dir / name, "WAV2VEC_DIR") for name in WAV2VEC_FILES]
    weights = [paths.wav2vec_dir / name for name in WAV2VEC_WEIGHTS]
    present = [path for path in weights if path.exists()]
    needed.append((present[0] if present else weights[0], "WAV2VEC_DIR"))
    return needed


def cold_start_files(paths: WeightPaths) -> list[tuple[Path, str]]:
    """What every variant needs besides its own weights: InfiniteTalk's source and wav2vec2."""
    return [*source_files(paths), *wav2vec_files(paths)]


def weight_files(variant: Variant, paths: WeightPaths) -> list[tuple[Path, str]]:
    """Every weight file or folder the engine reads to build this variant at cold start (the source aside)."""
    return [*wav2vec_files(paths), *variant.required_files(paths)]


# ------------------------------------------------------------------------------------------------------------
# Named variants, as `weights check|fetch --variant` takes them.
# ------------------------------------------------------------------------------------------------------------

VARIANTS: dict[str, Callable[[WeightPaths], Variant]] = {
    "base": lambda paths: Variant(),
    "multi": lambda paths: Variant(speakers=2),
    "lora": lambda paths: Variant(lora=True),
    "multi-lora": lambda paths: Variant(speakers=2, lora=True),
    "int8": lambda paths: Variant(quant="int8", quant_dir=paths.quant_dir),
    "fp8": lambda paths: Variant(quant="fp8", quant_dir=paths.quant_dir),
    "multi-int8": lambda paths: Variant(speakers=2, quant="int8", quant_dir=paths.quant_dir),
    "multi-fp8": lambda paths: Variant(speakers=2, quant="fp8", quant_dir=paths.quant_dir),
}
"""Each combination whose files differ: speakers (single/multi weights) x quantisation or LoRA. lora_scale and
num_persistent_param_in_dit change no file, so they have no name here."""
DEFAULT_VARIANTS = ("base", "multi", "lora", "kokoro")
"""What a default job, a two-speaker job, examples/gpu_fast_lora.json and a tts_audio job load (Kokoro speaks on
the GPU image); quantised weights only on request."""
KOKORO_FOLDER = "Kokoro-82M"


def variant_name(variant: Variant) -> str:
    """The name in VARIANTS of a variant's files (`base`, `multi-fp8`, ...)."""
    parts = (["multi"] if variant.speakers == 2 else []) + ([variant.quant] if variant.quant else [])
    return "-".join(parts + (["lora"] if variant.lora else [])) or "base"


@dataclass(frozen=True)
class Component:
    """Another model the worker loads besides InfiniteTalk: its folder, the env var that moves it, and its files
    (relative to the folder, as in its repository), from the module that loads it."""

    description: str
    folder: str
    """Its folder under a models root in the default layout (and its SOURCES key)."""
    env_var: str
    files: tuple[str, ...]
    configured: Callable[[Settings], Path]
    """Where this worker's settings put the folder."""

    def needed(self, folder: Path) -> list[tuple[Path, str]]:
        return [(folder / name, self.env_var) for name in self.files]


COMPONENTS: dict[str, Component] = {
    "kokoro": Component(
        "Kokoro-82M text to speech", KOKORO_FOLDER, "KOKORO_DIR", KOKORO_FILES, lambda settings: settings.kokoro_dir
    ),
}
"""Models other than InfiniteTalk's variants, by the name `--variant` takes, each with the file list its own module
checks (Kokoro: worker/kokoro_tts.py's KOKORO_FILES). Another model registers here, with a SOURCES entry for its
folder; `weights check` and `weights fetch` then cover it with no other change."""


# ------------------------------------------------------------------------------------------------------------
# Where each folder under the models root comes from.
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A public Hugging Face model repository whose files land in one folder under the models root, with the
    same relative paths (`google/umt5-xxl/tokenizer.json` is the repo's `google/umt5-xxl/tokenizer.json`)."""

    repo_id: str
    revision: str = "main"
    revisions: Mapping[str, str] = field(default_factory=dict)
    """Files fetched from another revision than `revision`, by path in the repo."""

    def revision_for(self, path_in_repo: str) -> str:
        """The revision a file comes from."""
        return self.revisions.get(path_in_repo, self.revision)


SOURCES: dict[str, Source] = {
    "Wan2.1-I2V-14B-480P": Source("Wan-AI/Wan2.1-I2V-14B-480P"),
    # The safetensors weights of wav2vec2 live only in this pull request's revision (InfiniteTalk's README).
    "chinese-wav2vec2-base": Source(
        "TencentGameMate/chinese-wav2vec2-base", revisions={"model.safetensors": "refs/pr/1"}
    ),
    "InfiniteTalk": Source("MeiGen-AI/InfiniteTalk"),
    # The 4-step lightx2v LoRA InfiniteTalk's README links (Kijai's ComfyUI weights repo).
    "lightx2v": Source("Kijai/WanVideo_comfy"),
    KOKORO_FOLDER: Source(KOKORO_REPO),
}
"""The repo for each top-level folder of the default layout (WeightPaths.under(root)), as InfiniteTalk's README
downloads them: `huggingface-cli download <repo> --local-dir <root>/<folder>`."""


@dataclass(frozen=True)
class Wanted:
    """One path the engine needs, as a path in a Hugging Face repo (a file, or a folder of files)."""

    local: Path
    folder: Path
    """The local folder the repo's paths are relative to (`<root>/<SOURCES key>`)."""
    source: Source
    path_in_repo: str

    @property
    def revision(self) -> str:
        return self.source.revision_for(self.path_in_repo)


def wanted(root: Path, needed: list[tuple[Path, str]]) -> list[Wanted]:
    """Where each needed path under root comes from (paths outside the default layout are a ValueError)."""
    found = []
    for path in dict.fromkeys(path for path, _var in needed):
        relative = path.relative_to(root)
        folder = relative.parts[0]
        if folder not in SOURCES:
            raise ValueError(f"{path}: no public repository is known for {root / folder}")
        found.append(Wanted(path, root / folder, SOURCES[folder], "/".join(relative.parts[1:])))
    return found
