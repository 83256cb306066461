"""Test stand-in for wan/multitalk.py: InfiniteTalkPipeline's contract without the diffusion model.

See ../README.md. Records each build in BUILDS and each call in CALLS so tests can read what the engine passed.
"""

from __future__ import annotations

import json
import math
import os
from functools import partial
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

BUILDS: list[dict[str, Any]] = []
CALLS: list[dict[str, Any]] = []
MEMORY_BUDGET: int | None = None
"""When set, a clip of more than this many pixels (frame_num x height x width) raises CUDA's OOM error."""

# InfiniteTalk's size buckets (wan/utils/multitalk_utils.py): height/width ratio -> [height, width].
ASPECT_RATIO_627 = {
    "0.26": ([320, 1216], 1), "0.38": ([384, 1024], 1), "0.50": ([448, 896], 1), "0.67": ([512, 768], 1),
    "0.82": ([576, 704], 1), "1.00": ([640, 640], 1), "1.22": ([704, 576], 1), "1.50": ([768, 512], 1),
    "1.86": ([832, 448], 1), "2.00": ([896, 448], 1), "2.50": ([960, 384], 1), "2.83": ([1088, 384], 1),
    "3.60": ([1152, 320], 1), "3.80": ([1216, 320], 1), "4.00": ([1280, 320], 1),
}  # fmt: skip
ASPECT_RATIO_960 = {
    "0.22": ([448, 2048], 1), "0.29": ([512, 1792], 1), "0.36": ([576, 1600], 1), "0.45": ([640, 1408], 1),
    "0.55": ([704, 1280], 1), "0.63": ([768, 1216], 1), "0.76": ([832, 1088], 1), "0.88": ([896, 1024], 1),
    "1.00": ([960, 960], 1), "1.14": ([1024, 896], 1), "1.31": ([1088, 832], 1), "1.50": ([1152, 768], 1),
    "1.58": ([1216, 768], 1), "1.82": ([1280, 704], 1), "1.91": ([1344, 704], 1), "2.20": ([1408, 640], 1),
    "2.30": ([1472, 640], 1), "2.67": ([1536, 576], 1), "2.89": ([1664, 576], 1), "3.62": ([1856, 512], 1),
    "3.75": ([1920, 512], 1),
}  # fmt: skip
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".flv", ".wmv", ".webm", ".mpeg", ".mpg")


def extract_specific_frames(path: str, frame_id: int) -> np.ndarray:
    """RGB frame `frame_id` of a video (its last frame past the end), or the image (wan/utils/utils.py)."""
    if os.path.splitext(path)[1].lower() in VIDEO_EXTS:
        capture = cv2.VideoCapture(path)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.set(cv2.CAP_PROP_POS_FRAMES, min(frame_id, count - 1))
        ok, frame = capture.read()
        capture.release()
        assert ok, f"cannot read frame {frame_id} of {path}"
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return np.asarray(Image.open(path).convert("RGB"))


def resize_and_centercrop(image: np.ndarray, target_h: int, target_w: int) -> torch.Tensor:
    """Scale to cover the target, crop the centre; (3, H, W) in [-1, 1]."""
    scale = max(target_h / image.shape[0], target_w / image.shape[1])
    final_h, final_w = math.ceil(scale * image.shape[0]), math.ceil(scale * image.shape[1])
    resized = cv2.resize(image, (final_w, final_h), interpolation=cv2.INTER_LINEAR)
    top, left = (final_h - target_h) // 2, (final_w - target_w) // 2
    crop = resized[top : top + target_h, left : left + target_w]
    return (torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255 - 0.5) * 2


class InfiniteTalkPipeline:
    def __init__(
        self,
        config: Any,
        checkpoint_dir: str,
        quant_dir: str | None = None,
        device_id: int = 0,
        rank: int = 0,
        t5_fsdp: bool = False,
        dit_fsdp: bool = False,
        use_usp: bool = False,
        t5_cpu: bool = False,
        init_on_cpu: bool = True,
        num_timesteps: int = 1000,
        use_timestep_transform: bool = True,
        lora_dir: list[str] | None = None,
        lora_scales: list[float] | None = None,
        quant: str | None = None,
        dit_path: str | None = None,
        infinitetalk_dir: str | None = None,
    ) -> None:
        if quant is not None and quant not in ("int8", "fp8"):
            raise ValueError("quant must be 'int8', 'fp8', or None(default fp32 model)")
        with open(os.path.join(checkpoint_dir, "config.json")) as handle:
            json.load(handle)
        for path in [infinitetalk_dir, quant_dir, *(lora_dir or [])]:
            if path is not None:
                with open(path, "rb"):
                    pass
        self.config = config
        self.rank = rank
        self.vram_management = False
        self.persistent_params: int | None = None
        self.sample_neg_prompt = config.sample_neg_prompt
        BUILDS.append(
            {
                "checkpoint_dir": checkpoint_dir,
                "quant_dir": quant_dir,
                "quant": quant,
                "lora_dir": lora_dir,
                "lora_scales": lora_scales,
                "infinitetalk_dir": infinitetalk_dir,
                "t5_cpu": t5_cpu,
            }
        )

    def enable_vram_management(self, num_persistent_param_in_dit: int | None = None) -> None:
        self.persistent_params = num_persistent_param_in_dit

    def generate_infinitetalk(
        self,
        input_data: dict[str, Any],
        size_buckget: str = "infinitetalk-480",
        motion_frame: int = 25,
        frame_num: int = 81,
        shift: float = 5.0,
        sampling_steps: int = 40,
        text_guide_scale: float = 5.0,
        audio_guide_scale: float = 4.0,
        n_prompt: str = "",
        seed: int = -1,
        offload_model: bool = True,
        max_frames_num: int = 1000,
        face_scale: float = 0.05,
        progress: bool = True,
        color_correction_strength: float = 0.0,
        extra_args: Any = None,
    ) -> torch.Tensor:
        CALLS.append(
            {
                "input_data": input_data,
                "size_buckget": size_buckget,
                "motion_frame": motion_frame,
                "frame_num": frame_num,
                "shift": shift,
                "sampling_steps": sampling_steps,
                "text_guide_scale": text_guide_scale,
                "audio_guide_scale": audio_guide_scale,
                "seed": seed,
                "offload_model": offload_model,
                "max_frames_num": max_frames_num,
                "color_correction_strength": color_correction_strength,
                "extra_args": vars(extra_args),
                "persistent_params": self.persistent_params,
            }
        )
        # Read as InfiniteTalk does (teacache_init takes model_scale=extra_args.size).
        assert extra_args.size == size_buckget
        _ = (extra_args.use_teacache, extra_args.teacache_thresh, extra_args.use_apg)
        cond_file_path = input_data["cond_video"]
        cond_image = extract_specific_frames(cond_file_path, 0)
        buckets = ASPECT_RATIO_627 if size_buckget == "infinitetalk-480" else ASPECT_RATIO_960
        ratio = cond_image.shape[0] / cond_image.shape[1]
        closest = sorted(buckets, key=lambda key: abs(float(key) - ratio))[0]
        target_h, target_w = buckets[closest][0]
        if MEMORY_BUDGET is not None and frame_num * target_h * target_w > MEMORY_BUDGET:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        human_number = len(input_data["cond_audio"])
        paths = [input_data["cond_audio"]["person1"], input_data["cond_audio"].get("person2")]
        full_audio_embs = []
        for path in paths[:human_number]:
            if not os.path.exists(path):
                continue
            full_audio_emb = torch.load(path)
            if torch.isnan(full_audio_emb).any() or full_audio_emb.shape[0] <= frame_num:
                continue
            full_audio_embs.append(full_audio_emb)
        assert len(full_audio_embs) == human_number, "Aduio file not exists or length not satisfies frame nums."
        if human_number == 2 and "bbox" in input_data:
            assert len(input_data["bbox"]) == len(input_data["cond_audio"])

        torch.manual_seed(seed)
        clip_length = frame_num
        is_first_clip = True
        arrive_last_frame = False
        cur_motion_frames_num = 1
        audio_start_idx = 0
        audio_end_idx = audio_start_idx + clip_length
        gen_video_list = []
        miss_lengths: list[int] = []
        reference = resize_and_centercrop(cond_image, target_h, target_w)
        while True:
            indices = torch.clamp(torch.arange(audio_start_idx, audio_end_idx), max=full_audio_embs[0].shape[0] - 1)
            energy = sum(emb[indices].abs().mean(dim=(1, 2)) for emb in full_audio_embs)
            progress_wrap = partial(tqdm, total=sampling_steps) if progress else (lambda x: x)
            for _ in progress_wrap(range(sampling_steps)):
                pass
            gain = 1.0 + 0.5 * torch.tanh(energy - energy.mean())
            videos = (reference[:, None] * gain[None, :, None, None]).clamp(-1, 1)[None]  # B C T H W
            gen_video_list.append(videos if is_first_clip else videos[:, :, cur_motion_frames_num:])
            if arrive_last_frame:
                break
            is_first_clip = False
            cur_motion_frames_num = motion_frame
            audio_start_idx += frame_num - cur_motion_frames_num
            audio_end_idx = audio_start_idx + clip_length
            cond_image = extract_specific_frames(cond_file_path, audio_start_idx)
            reference = resize_and_centercrop(cond_image, target_h, target_w)
            if audio_end_idx >= min(max_frames_num, len(full_audio_embs[0])):
                arrive_last_frame = True
                miss_lengths = []
                for human_index in range(human_number):
                    if audio_end_idx >= len(full_audio_embs[human_index]):
                        miss_length = audio_end_idx - len(full_audio_embs[human_index]) + 3
                        add = torch.flip(full_audio_embs[human_index][-1 * miss_length :], dims=[0])
                        full_audio_embs[human_index] = torch.cat([full_audio_embs[human_index], add], dim=0)
                        miss_lengths.append(miss_length)
                    else:
                        miss_lengths.append(0)
            if max_frames_num <= frame_num:
                break
        gen_video_samples = torch.cat(gen_video_list, dim=2)[:, :, : int(max_frames_num)].to(torch.float32)
        if max_frames_num > frame_num and sum(miss_lengths) > 0:
            gen_video_samples = gen_video_samples[:, :, : full_audio_emb.shape[0]]
        return gen_video_samples[0]
