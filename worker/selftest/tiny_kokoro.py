"""A tiny Kokoro-82M folder in the real KOKORO_DIR layout: config.json, kokoro-v1_0.pth and voices/*.pt.

The model is Kokoro's own KModel (InfiniteTalk's `kokoro/` package) built from a config with tiny hidden sizes and
random weights, so the worker's Kokoro path runs end to end in seconds on a CPU. One thing is set rather than
random: the duration predictor's last layer, so that every phoneme lasts exactly `frames_per_phoneme` frames
(25 ms each at Kokoro's 24 kHz: 600 samples a frame). With it, how long a turn is spoken follows from how many
phonemes it has, which is what the tests and the selftest check. Voice tensors are random, of the real shape
(510 x 1 x 256), one per name in KOKORO_VOICES, each distinct.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.kokoro_tts import KOKORO_MODEL_FILE, KOKORO_VOICES, import_kokoro

SAMPLES_PER_FRAME = 600
"""Kokoro's decoder turns one duration frame into 600 samples at 24 kHz (upsample 10 x 6, iSTFT hop 5, F0 x 2)."""
MAX_DUR = 8
STYLE_DIM = 128
"""Kokoro splits a voice's 256 numbers at 128 (decoder | prosody): the one size that cannot be made tiny."""


def phoneme_symbols() -> str:
    """Every symbol misaki's English G2Ps (lexicon and espeak-ng) write, and punctuation: the tiny vocabulary."""
    from misaki.en import GB_VOCAB, PUNCTS, US_VOCAB

    return "".join(sorted(set(US_VOCAB) | set(GB_VOCAB) | set(PUNCTS) | set(" ɚɐeoːɒɔæʔɾᵻʲ")))


def tiny_config() -> dict[str, Any]:
    """Kokoro's config.json with a tiny ALBERT and one layer where it can; hidden_dim stays 512, which the
    decoder's fixed channels (asr_res) require."""
    vocab = {symbol: index + 1 for index, symbol in enumerate(phoneme_symbols())}
    return {
        "vocab": vocab,
        "n_token": len(vocab) + 1,
        "hidden_dim": 512,
        "style_dim": STYLE_DIM,
        "n_layer": 1,
        "max_dur": MAX_DUR,
        "dropout": 0.0,
        "n_mels": 80,
        "text_encoder_kernel_size": 5,
        "dim_in": 64,
        "max_conv_dim": 512,
        "multispeaker": True,
        "plbert": {
            "hidden_size": 16,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 512,
            "num_hidden_layers": 1,
            "embedding_size": 8,
            "dropout": 0.0,
        },
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            "resblock_dilation_sizes": [[1, 3, 5]],
            "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,
        },
    }


def build_tiny_kokoro(folder: Path, src_dir: Path, frames_per_phoneme: int = 2, seed: int = 0) -> Path:
    """Write a tiny Kokoro folder and return it. KModel is built from the config with an empty weights file (so
    it keeps its random initialisation), its duration layer set, and its state saved as kokoro-v1_0.pth."""
    import torch

    assert 1 <= frames_per_phoneme <= MAX_DUR
    model_class, _ = import_kokoro(src_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(tiny_config(), ensure_ascii=False))
    empty = folder / "empty.pth"
    torch.save({}, empty)
    torch.manual_seed(seed)
    try:
        model = model_class(repo_id=str(folder), config=str(folder / "config.json"), model=str(empty))
    finally:
        empty.unlink()
    duration = model.predictor.duration_proj.linear_layer
    with torch.no_grad():
        # duration = sum(sigmoid(logits)) frames: `frames_per_phoneme` logits far above 0, the rest far below.
        duration.weight.zero_()
        duration.bias.copy_(torch.tensor([20.0] * frames_per_phoneme + [-20.0] * (MAX_DUR - frames_per_phoneme)))
    # Half precision on disk halves the file (about 120 MB, nearly all of it the decoder, whose channels Kokoro's
    # code fixes); KModel's load_state_dict copies the values into its float32 parameters.
    state = {
        name: {key: value.half() if value.is_floating_point() else value for key, value in module.items()}
        for name, module in (
            (name, getattr(model, name).state_dict())
            for name in ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
        )
    }
    torch.save(state, folder / KOKORO_MODEL_FILE)
    voices = folder / "voices"
    voices.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(seed + 1)
    for voice in KOKORO_VOICES:
        pack = torch.randn(510, 1, 2 * STYLE_DIM, generator=generator) * 0.5
        torch.save(pack, voices / f"{voice.name}.pt")
    return folder
