"""A tiny, randomly initialised InfiniteTalk: the real model classes at a few MB, in the real weights' file layout.

InfiniteTalk's code fixes some sizes in its factories rather than in config.json: umt5-xxl (T5), ViT-H/14 (CLIP),
the VAE's base width of 96, `MLPProj(1280, dim)` for CLIP features, `AudioProjModel`'s 12 wav2vec2 layers x 768,
and the size buckets (480p and 720p frames). `use_tiny_sizes(modules)` points those factories at small sizes,
from outside the source, so the pipeline that reads the tree `build_tree` writes is InfiniteTalk's own code end to
end: the same constructors, the same strict `load_state_dict` over seven DiT shards plus InfiniteTalk's weights,
the same optimum-quanto `requantize`, the same LoRA keys. Everything runs; nothing looks like a face.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from worker.variants import CKPT_COMMON, DIT_SHARDS, T5_CHECKPOINT, WeightPaths

BUCKET_SCALE = 4
"""Tiny frames are InfiniteTalk's size buckets divided by this (aspect ratios kept; still multiples of 16)."""


@dataclass(frozen=True)
class TinySizes:
    """Every size the tiny tree is built with: config.json's and those InfiniteTalk's factories fix."""

    t5: dict[str, Any] = field(
        default_factory=lambda: {
            "vocab_size": 256, "dim": 32, "dim_attn": 32, "dim_ffn": 64, "num_heads": 2,
            "encoder_layers": 1, "decoder_layers": 1, "num_buckets": 32,
        }
    )  # fmt: skip
    clip: dict[str, Any] = field(
        default_factory=lambda: {
            "embed_dim": 16, "vision_dim": 16, "vision_heads": 2, "vision_layers": 2,
            "vocab_size": 256, "text_dim": 16, "text_heads": 2, "text_layers": 1,
        }
    )  # fmt: skip
    vae_dim: int = 8
    wav2vec_layers: int = 3
    wav2vec_hidden: int = 24
    dit: dict[str, Any] = field(
        default_factory=lambda: {
            "dim": 32, "ffn_dim": 64, "freq_dim": 32, "num_heads": 2, "num_layers": 2,
            "text_dim": 32, "intermediate_dim": 16, "output_dim": 16, "context_tokens": 4,
        }
    )  # fmt: skip
    lora_rank: int = 4

    def config_json(self) -> dict[str, Any]:
        """config.json as the Wan2.1-I2V-14B-480P download has it, at tiny sizes."""
        return {
            "_class_name": "WanModel",
            "_diffusers_version": "0.30.0",
            "model_type": "i2v",
            "in_dim": 36,
            "out_dim": 16,
            "text_len": 512,
            "eps": 1e-06,
            **self.dit,
        }

    def dit_kwargs(self) -> dict[str, Any]:
        """WanModel's keyword arguments, as InfiniteTalkPipeline passes config.json (diffusers drops `_` keys)."""
        return {key: value for key, value in self.config_json().items() if not key.startswith("_")}


SIZES = TinySizes()
VAE_CONFIG = {
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
}
"""wan.modules.vae._video_vae's architecture (only its width, `dim`, is made tiny)."""


def _module(name: str) -> Any:
    return sys.modules[name]


def use_tiny_sizes(sizes: TinySizes = SIZES) -> None:
    """Make InfiniteTalk's fixed-size factories build the tiny sizes (its modules must be imported)."""
    t5, clip, vae = _module("wan.modules.t5"), _module("wan.modules.clip"), _module("wan.modules.vae")
    model, utils = _module("wan.modules.multitalk_model"), _module("wan.utils.multitalk_utils")
    if getattr(t5, "_tiny", False):
        return
    t5.umt5_xxl = partial(t5.umt5_xxl, **sizes.t5)
    clip.clip_xlm_roberta_vit_h_14 = partial(clip.clip_xlm_roberta_vit_h_14, **sizes.clip)
    vae._video_vae = partial(vae._video_vae, dim=sizes.vae_dim)
    mlp_proj = model.MLPProj
    vision_dim = sizes.clip["vision_dim"]
    model.MLPProj = lambda in_dim, out_dim: mlp_proj(vision_dim, out_dim)
    model.AudioProjModel = partial(model.AudioProjModel, blocks=sizes.wav2vec_layers, channels=sizes.wav2vec_hidden)
    for name in ("ASPECT_RATIO_627", "ASPECT_RATIO_960"):
        buckets = getattr(utils, name)
        setattr(
            utils,
            name,
            {ratio: ([h // BUCKET_SCALE, w // BUCKET_SCALE], n) for ratio, ([h, w], n) in buckets.items()},
        )
    t5._tiny = True


# ------------------------------------------------------------------------------------------------------------
# The tree.
# ------------------------------------------------------------------------------------------------------------


def _save_tokenizer(folder: Path, *, pad: str, eos: str, unk: str, bos: str | None = None) -> None:
    """A word-level fast tokenizer built offline, saved so AutoTokenizer.from_pretrained(folder) loads it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [token for token in (pad, eos, unk, bos) if token]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = "a the man woman person talks speaks to camera in studio warmly bright and of with".split()  # noqa: SIM905
    vocab = {token: index for index, token in enumerate(dict.fromkeys([*specials, *words, *letters]))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=pad, eos_token=eos, unk_token=unk)
    if bos:
        fast.bos_token = bos
    fast.save_pretrained(str(folder))


def save_tiny_wav2vec2(folder: Path, *, layers: int = SIZES.wav2vec_layers, hidden: int = SIZES.wav2vec_hidden) -> Path:
    """A randomly initialised wav2vec2 with a real config and feature extractor, as from_pretrained reads it."""
    import transformers

    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True
    ).save_pretrained(folder)
    return folder


def _randomise_zeros(state: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random values for weights a fresh model zero-initialises (the DiT's head): an all-zero tensor would
    make the output constant and fp8's per-tensor scale 0/0."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not tensor.any():
            state[name] = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * 0.05
    return state


def _is_infinitetalk_key(name: str) -> bool:
    """Weights InfiniteTalk adds to Wan2.1-I2V (its infinitetalk.safetensors): the audio adapter."""
    return name.startswith("audio_proj.") or ".audio_cross_attn." in name or ".norm_x." in name


def _dit_state(seed: int, sizes: TinySizes) -> dict[str, torch.Tensor]:
    model_module = _module("wan.modules.multitalk_model")
    torch.manual_seed(seed)
    dit = model_module.WanModel(weight_init=True, **sizes.dit_kwargs())
    state = {name: tensor.detach().clone().contiguous() for name, tensor in dit.state_dict().items()}
    return _randomise_zeros(state, torch.Generator().manual_seed(seed + 1))


def _save_quantised(module: torch.nn.Module, weights: Any, path: Path, map_path: Path) -> None:
    """optimum-quanto's quantize + freeze, saved as InfiniteTalk's quant_models files (weights + map JSON)."""
    from optimum.quanto import freeze, quantization_map, quantize
    from safetensors.torch import save_file

    quantize(module, weights=weights)
    freeze(module)
    state = {name: tensor.contiguous() for name, tensor in module.state_dict().items()}
    save_file(state, str(path))
    map_path.write_text(json.dumps(quantization_map(module)))


def build_tree(root: Path, sizes: TinySizes = SIZES, *, quant: tuple[str, ...] = ("int8", "fp8")) -> WeightPaths:
    """Write a complete tiny weights tree under root, in the layout docs/gpu.md downloads; return its paths.

    InfiniteTalk's modules must be imported and `use_tiny_sizes` applied (the models are built by its own code).
    """
    from optimum.quanto import qfloat8, qint8
    from safetensors.torch import save_file

    t5, clip, vae, model_module = (
        _module("wan.modules.t5"), _module("wan.modules.clip"), _module("wan.modules.vae"),
        _module("wan.modules.multitalk_model"),
    )  # fmt: skip
    paths = WeightPaths.under(root)
    ckpt = paths.ckpt_dir
    for folder in (ckpt, paths.infinitetalk_dir / "single", paths.infinitetalk_dir / "multi", paths.lora_dir):
        folder.mkdir(parents=True, exist_ok=True)
    (ckpt / "config.json").write_text(json.dumps(sizes.config_json(), indent=2))
    _save_tokenizer(ckpt / "google" / "umt5-xxl", pad="<pad>", eos="</s>", unk="<unk>")
    _save_tokenizer(ckpt / "xlm-roberta-large", pad="<pad>", eos="</s>", unk="<unk>", bos="<s>")

    torch.manual_seed(1)
    text_encoder = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.float32, device="cpu")
    torch.save({k: v.to(torch.bfloat16) for k, v in text_encoder.state_dict().items()}, ckpt / T5_CHECKPOINT)
    torch.manual_seed(2)
    clip_model = clip.clip_xlm_roberta_vit_h_14(pretrained=False, dtype=torch.float32, device="cpu")
    torch.save({k: v.half() for k, v in clip_model.state_dict().items()}, ckpt / CKPT_COMMON[2])
    torch.manual_seed(3)
    vae_model = vae.WanVAE_(dim=sizes.vae_dim, z_dim=16, **VAE_CONFIG)
    torch.save(vae_model.state_dict(), ckpt / CKPT_COMMON[1])  # float32: WanVAE loads it with assign=True

    # The DiT: Wan2.1-I2V's weights in seven shards, InfiniteTalk's audio adapter apart, once per weight set.
    base = _dit_state(10, sizes)
    wan_keys = sorted(name for name in base if not _is_infinitetalk_key(name))
    for index, shard in enumerate(DIT_SHARDS):
        save_file({name: base[name] for name in wan_keys[index :: len(DIT_SHARDS)]}, str(ckpt / shard))
    audio = {}
    for people, seed in (("single", 20), ("multi", 30)):
        audio[people] = {name: t for name, t in _dit_state(seed, sizes).items() if _is_infinitetalk_key(name)}
        save_file(audio[people], str(paths.infinitetalk_dir / people / "infinitetalk.safetensors"))

    # The lightx2v LoRA: low-rank deltas on every linear layer of the blocks, with diffusion_model. keys.
    generator = torch.Generator().manual_seed(40)
    lora: dict[str, torch.Tensor] = {}
    for name in wan_keys:
        tensor = base[name]
        if name.startswith("blocks.") and name.endswith(".weight") and tensor.ndim == 2:
            stem = f"diffusion_model.{name[: -len('.weight')]}"
            lora[f"{stem}.lora_down.weight"] = torch.randn(sizes.lora_rank, tensor.shape[1], generator=generator)
            lora[f"{stem}.lora_up.weight"] = torch.randn(tensor.shape[0], sizes.lora_rank, generator=generator) * 0.1
    save_file({k: v.to(torch.bfloat16) for k, v in lora.items()}, str(paths.lora_file()))

    # InfiniteTalk's quant_models: the DiT (single and multi) and T5, quantised with optimum-quanto.
    if quant:
        paths.quant_dir.mkdir(parents=True, exist_ok=True)
    for name in quant:
        weights = {"int8": qint8, "fp8": qfloat8}[name]
        for people in ("single", "multi"):
            dit = model_module.WanModel(weight_init=False, **sizes.dit_kwargs())
            dit.load_state_dict(base | audio[people])
            quant_stem = paths.quant_dir / f"infinitetalk_{people}_{name}"
            _save_quantised(dit, weights, quant_stem.with_suffix(".safetensors"), quant_stem.with_suffix(".json"))
        encoder = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.float32, device="cpu")
        encoder.load_state_dict(text_encoder.state_dict())
        _save_quantised(
            encoder, weights, paths.quant_dir / f"t5_{name}.safetensors", paths.quant_dir / f"t5_map_{name}.json"
        )

    save_tiny_wav2vec2(paths.wav2vec_dir, layers=sizes.wav2vec_layers, hidden=sizes.wav2vec_hidden)
    return paths


def tree_bytes(root: Path) -> int:
    """The tree's size on disk."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
