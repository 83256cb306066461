"""A fake InfiniteTalk install for the engine tests: this folder as INFINITETALK_SRC, an empty-file weights tree
laid out as InfiniteTalk's README downloads it (the tiny wav2vec2 comes from worker.selftest.tiny)."""

from __future__ import annotations

from pathlib import Path

FAKE_SRC = Path(__file__).resolve().parent

CKPT = "Wan2.1-I2V-14B-480P"
# What `huggingface-cli download Wan-AI/Wan2.1-I2V-14B-480P` lays out and InfiniteTalkPipeline reads.
CKPT_FILES = [
    "config.json",
    "Wan2.1_VAE.pth",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    "google/umt5-xxl/tokenizer.json",
    "xlm-roberta-large/tokenizer.json",
    *(f"diffusion_pytorch_model-{i:05d}-of-00007.safetensors" for i in range(1, 8)),
]
LORA = "Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors"


def weights_tree(root: Path, *, wav2vec: bool = True, lora: bool = True, quant: str | None = None) -> dict[str, str]:
    """Create the weight files (empty, or tiny where read) under root; return the env vars that point at them."""
    files = [f"{CKPT}/{name}" for name in CKPT_FILES]
    files += ["InfiniteTalk/single/infinitetalk.safetensors", "InfiniteTalk/multi/infinitetalk.safetensors"]
    if lora:
        files.append(f"lightx2v/{LORA}")
    if quant:
        for people in ("single", "multi"):
            files += [
                f"InfiniteTalk/quant_models/infinitetalk_{people}_{quant}.{ext}" for ext in ("safetensors", "json")
            ]
        files += [f"InfiniteTalk/quant_models/t5_{quant}.safetensors", f"InfiniteTalk/quant_models/t5_map_{quant}.json"]
    if wav2vec:
        files += [
            f"chinese-wav2vec2-base/{name}" for name in ("config.json", "preprocessor_config.json", "model.safetensors")
        ]
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}" if path.suffix == ".json" else "")
    return {
        "CKPT_DIR": str(root / CKPT),
        "INFINITETALK_DIR": str(root / "InfiniteTalk"),
        "WAV2VEC_DIR": str(root / "chinese-wav2vec2-base"),
        "LORA_DIR": str(root / "lightx2v"),
        "INFINITETALK_SRC": str(FAKE_SRC),
    }
