"""Download InfiniteTalk's weights into the folder layout the engine expects (the defaults under a models root).

    python -m worker.engines.infinitetalk_weights /runpod-volume/models [--lora] [--quant fp8|int8]

Run it once in a pod with the network volume attached, or at image build time (Dockerfile.worker's
BAKE_WEIGHTS=1). Only the standard library and huggingface_hub are imported, so the Dockerfile can run this file
on its own before the worker's code is copied in.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Download:
    """One Hugging Face repository (or part of it) and the folder under the models root it goes to."""

    repo_id: str
    folder: str
    patterns: tuple[str, ...] | None = None
    revision: str | None = None


BASE = (
    Download("Wan-AI/Wan2.1-I2V-14B-480P", "Wan2.1-I2V-14B-480P"),
    Download("TencentGameMate/chinese-wav2vec2-base", "chinese-wav2vec2-base"),
    # The safetensors weights of wav2vec2 live only in this pull request's revision (InfiniteTalk's README).
    Download("TencentGameMate/chinese-wav2vec2-base", "chinese-wav2vec2-base", ("model.safetensors",), "refs/pr/1"),
    Download("MeiGen-AI/InfiniteTalk", "InfiniteTalk", ("single/*", "multi/*")),
)
LORA = Download(
    "Kijai/WanVideo_comfy", "lightx2v", ("Wan21_T2V_14B_lightx2v_cfg_step_distill_lora_rank32.safetensors",)
)


def quant_download(quant: str) -> Download:
    """InfiniteTalk's quantised DiT (single and multi) and T5 for int8 or fp8."""
    return Download("MeiGen-AI/InfiniteTalk", "InfiniteTalk", (f"quant_models/*_{quant}.*",))


def plan(*, lora: bool, quant: str | None) -> list[Download]:
    """What to download for the base model plus the optional LoRA and quantised weights."""
    return [*BASE, *([LORA] if lora else []), *([quant_download(quant)] if quant else [])]


def download(root: Path, downloads: list[Download]) -> None:
    """Fetch each download into root/folder (files already there are kept)."""
    from huggingface_hub import snapshot_download

    for item in downloads:
        print(f"{item.repo_id} -> {root / item.folder}", flush=True)
        snapshot_download(
            repo_id=item.repo_id,
            local_dir=str(root / item.folder),
            allow_patterns=list(item.patterns) if item.patterns else None,
            revision=item.revision,
        )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and download."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the models root, e.g. /runpod-volume/models")
    parser.add_argument("--lora", action="store_true", help="also the lightx2v 4-step LoRA")
    parser.add_argument("--quant", choices=["int8", "fp8"], help="also InfiniteTalk's quantised weights")
    args = parser.parse_args(argv)
    download(args.root, plan(lora=args.lora, quant=args.quant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
