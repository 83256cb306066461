"""InfiniteTalk's model variants and their weight files: where the weights are (WeightPaths, from env vars with
/runpod-volume defaults), which variant a job or INFINITETALK_PRELOAD needs (speakers, quantisation, LoRA,
offloading), and every file a variant reads.

The engine builds its pipeline from these, `weights check|fetch` lists and downloads exactly these files, and
`studio deploy` writes the same variables onto the endpoint. Nothing here imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.contract import Defaults, ErrorCode, JobError, JobParams, Stage, describe_validation_error

MODELS_ROOT = Path("/runpod-volume/models")
DEFAULT_SRC = Path("/opt/InfiniteTalk")
LIGHTX2V_LORA = "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors"
"""The 4-step lightx2v LoRA InfiniteTalk's README links; LORA_DIR may name this file or a folder holding it."""
DIT_SHARDS = tuple(f"diffusion_pytorch_model-{index:05d}-of-00007.safetensors" for index in range(1, 8))
"""The Wan2.1-I2V-14B-480P DiT shards InfiniteTalkPipeline merges with InfiniteTalk's audio weights."""
CKPT_COMMON = (
    "config.json",
    "Wan2.1_VAE.pth",
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    "xlm-roberta-large",
    "google/umt5-xxl",
)
T5_CHECKPOINT = "models_t5_umt5-xxl-enc-bf16.pth"
WAV2VEC_FILES = ("config.json", "preprocessor_config.json")
PRELOAD_VAR = "INFINITETALK_PRELOAD"
ENV_VARS = {
    "ckpt_dir": "CKPT_DIR",
    "infinitetalk_dir": "INFINITETALK_DIR",
    "wav2vec_dir": "WAV2VEC_DIR",
    "quant_dir": "QUANT_DIR",
    "lora_dir": "LORA_DIR",
    "src_dir": "INFINITETALK_SRC",
}
"""Each WeightPaths field's environment variable."""


@dataclass(frozen=True)
class WeightPaths:
    """Where the weights and InfiniteTalk's source are, from env vars with /runpod-volume defaults."""

    ckpt_dir: Path = MODELS_ROOT / "Wan2.1-I2V-14B-480P"
    infinitetalk_dir: Path = MODELS_ROOT / "InfiniteTalk"
    """Holds single/infinitetalk.safetensors and multi/infinitetalk.safetensors (MeiGen-AI/InfiniteTalk)."""
    wav2vec_dir: Path = MODELS_ROOT / "chinese-wav2vec2-base"
    quant_dir: Path = MODELS_ROOT / "InfiniteTalk" / "quant_models"
    lora_dir: Path = MODELS_ROOT / "lightx2v"
    src_dir: Path = DEFAULT_SRC

    @classmethod
    def under(cls, root: Path) -> WeightPaths:
        """The default layout (what infinitetalk_weights.py downloads) under another models root."""
        defaults = cls()
        return cls(
            **{
                item.name: root / getattr(defaults, item.name).relative_to(MODELS_ROOT)
                for item in fields(cls)
                if getattr(defaults, item.name).is_relative_to(MODELS_ROOT)
            }
        )

    @classmethod
    def from_weights(cls, weights: Mapping[str, str]) -> WeightPaths:
        """Paths from Settings.weights; QUANT_DIR defaults to INFINITETALK_DIR/quant_models."""
        values = {name: Path(weights[var]) for name, var in ENV_VARS.items() if weights.get(var)}
        if "quant_dir" not in values and "infinitetalk_dir" in values:
            values["quant_dir"] = values["infinitetalk_dir"] / "quant_models"
        return cls(**values)

    def lora_file(self) -> Path:
        """The LoRA file: LORA_DIR itself when it names a file, else the lightx2v file inside it."""
        return self.lora_dir if self.lora_dir.suffix == ".safetensors" else self.lora_dir / LIGHTX2V_LORA


@dataclass(frozen=True)
class Variant:
    """What InfiniteTalkPipeline is built with: a job needing another variant needs the model rebuilt."""

    speakers: int = 1
    quant: str | None = None
    quant_dir: Path | None = None
    lora: bool = False
    lora_scale: float = Defaults.LORA_SCALE
    num_persistent_param_in_dit: int | None = None

    @property
    def people(self) -> str:
        """InfiniteTalk's weight set: `single` or `multi` (two speakers)."""
        return "multi" if self.speakers == 2 else "single"

    def describe(self) -> str:
        """A short label for logs and warnings."""
        parts = [f"{self.people}-speaker"]
        if self.quant:
            parts.append(self.quant)
        if self.lora:
            parts.append(f"lightx2v LoRA x{self.lora_scale:g}")
        if self.num_persistent_param_in_dit is not None:
            parts.append(f"num_persistent_param_in_dit={self.num_persistent_param_in_dit}")
        return ", ".join(parts)

    def quant_file(self) -> Path | None:
        """The quantised DiT file InfiniteTalk loads (its JSON map lies beside it, T5's in the same folder)."""
        if not self.quant or self.quant_dir is None:
            return None
        return self.quant_dir / f"infinitetalk_{self.people}_{self.quant}.safetensors"

    def required_files(self, paths: WeightPaths) -> list[tuple[Path, str]]:
        """Every file or folder building this variant reads, each with the env var that places it."""
        needed = [(paths.ckpt_dir / name, "CKPT_DIR") for name in CKPT_COMMON]
        needed.append((paths.infinitetalk_dir / self.people / "infinitetalk.safetensors", "INFINITETALK_DIR"))
        quant_file = self.quant_file()
        if quant_file is not None:
            var = "QUANT_DIR" if self.quant_dir == paths.quant_dir else "quant_dir"
            needed += [
                (quant_file, var),
                (quant_file.with_suffix(".json"), var),
                (quant_file.parent / f"t5_{self.quant}.safetensors", var),
                (quant_file.parent / f"t5_map_{self.quant}.json", var),
            ]
        else:
            needed += [(paths.ckpt_dir / name, "CKPT_DIR") for name in (T5_CHECKPOINT, *DIT_SHARDS)]
        if self.lora:
            needed.append((paths.lora_file(), "LORA_DIR"))
        return needed

    def pipeline_kwargs(self, paths: WeightPaths) -> dict[str, Any]:
        """Keyword arguments for wan.InfiniteTalkPipeline, as generate_infinitetalk.py passes them on one GPU."""
        quant_file = self.quant_file()
        return {
            "checkpoint_dir": str(paths.ckpt_dir),
            "quant_dir": str(quant_file) if quant_file else None,
            "device_id": 0,
            "rank": 0,
            "t5_fsdp": False,
            "dit_fsdp": False,
            "use_usp": False,
            "t5_cpu": False,
            "lora_dir": [str(paths.lora_file())] if self.lora else None,
            "lora_scales": [self.lora_scale] if self.lora else None,
            "quant": self.quant,
            "dit_path": None,
            "infinitetalk_dir": str(paths.infinitetalk_dir / self.people / "infinitetalk.safetensors"),
        }


class PreloadSpec(BaseModel):
    """INFINITETALK_PRELOAD: the variant built at cold start, in the job's own field names."""

    model_config = ConfigDict(extra="forbid")

    speakers: Literal[1, 2] = 1
    quant: Literal["int8", "fp8"] | None = None
    quant_dir: str | None = None
    lora: bool = False
    lora_scale: float = Field(default=Defaults.LORA_SCALE, ge=0.0, le=4.0)
    num_persistent_param_in_dit: int | None = Field(default=None, ge=0)


def _invalid(field_name: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field_name}: {message}", at_stage=Stage.PIPELINE_WARM_STARTED)


def _quant_folder(quant_dir: str | None, paths: WeightPaths, allowed: tuple[Path, ...]) -> Path:
    """A job's quant_dir: relative to QUANT_DIR, or an absolute folder under QUANT_DIR or an allowed root."""
    if not quant_dir:
        return paths.quant_dir
    folder = Path(quant_dir)
    if not folder.is_absolute():
        folder = paths.quant_dir / folder
    resolved = folder.resolve()
    if not any(resolved.is_relative_to(root.resolve()) for root in (paths.quant_dir, *allowed)):
        raise _invalid(
            "quant_dir",
            f"{quant_dir!r} is outside the worker's model folders; use a folder under {paths.quant_dir} "
            f"or {', '.join(str(root) for root in allowed)}",
        )
    return resolved


def make_variant(
    *,
    speakers: int,
    quant: str | None,
    quant_dir: str | None,
    lora: bool,
    lora_scale: float,
    num_persistent_param_in_dit: int | None,
    paths: WeightPaths,
    allowed_roots: tuple[Path, ...],
) -> Variant:
    """The pipeline variant for these settings; refuses LoRA with quantisation, which InfiniteTalk ignores."""
    if lora and quant:
        raise _invalid(
            "lora",
            "InfiniteTalk does not apply a LoRA to a quantised model; drop lora or quant "
            "(quant=fp8 saves memory, lora=true with sample_steps=4 saves time)",
        )
    return Variant(
        speakers=speakers,
        quant=quant,
        quant_dir=_quant_folder(quant_dir, paths, allowed_roots) if quant else None,
        lora=lora,
        lora_scale=lora_scale if lora else Defaults.LORA_SCALE,
        num_persistent_param_in_dit=num_persistent_param_in_dit,
    )


def preload_variant(raw: str | None, paths: WeightPaths, allowed_roots: tuple[Path, ...]) -> Variant:
    """The cold-start variant from INFINITETALK_PRELOAD (JSON), or the single-speaker base model."""
    if not raw:
        return Variant()
    try:
        spec = PreloadSpec.model_validate(json.loads(raw))
        return make_variant(**spec.model_dump(), paths=paths, allowed_roots=allowed_roots)
    except (json.JSONDecodeError, ValidationError, JobError) as error:
        if isinstance(error, ValidationError):
            detail = describe_validation_error(error)
        elif isinstance(error, JobError):
            detail = error.message
        else:
            detail = f"not JSON ({error.msg})"
        raise JobError(
            ErrorCode.PIPELINE_LOAD,
            f'{PRELOAD_VAR}: {detail}; example: {{"speakers": 1, "lora": true, "num_persistent_param_in_dit": 0}}',
            at_stage=Stage.PIPELINE_WARM_STARTED,
        ) from None


def job_variant(params: JobParams, speakers: int, paths: WeightPaths, allowed_roots: tuple[Path, ...]) -> Variant:
    """The pipeline variant a job needs."""
    return make_variant(
        speakers=speakers,
        quant=params.quant,
        quant_dir=params.quant_dir,
        lora=params.lora,
        lora_scale=params.lora_scale,
        num_persistent_param_in_dit=params.num_persistent_param_in_dit,
        paths=paths,
        allowed_roots=allowed_roots,
    )
