"""InfiniteTalk's arguments for one job: the one mapping from the job contract to `InfiniteTalkPipeline(...)` and
`generate_infinitetalk(...)`, and the InfiniteTalk source it is written against.

The variant and its weight files are worker/variants.py's, the clip count worker/clips.py's. Nothing here imports
torch, so the mapping is tested on any machine. The names on the InfiniteTalk side are those of
MeiGen-AI/InfiniteTalk at INFINITETALK_COMMIT (`generate_infinitetalk.py`, `wan/multitalk.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.contract import ErrorCode, JobError, Stage
from worker.clips import chunk_count
from worker.prepared import PreparedJob
from worker.variants import Variant, WeightPaths, job_variant

INFINITETALK_COMMIT = "0107cd96421b3b1bef7728bde14447dbff7b2db2"
"""The InfiniteTalk source the GPU image checks out (Dockerfile.worker's INFINITETALK_COMMIT must match)."""
TASK = "infinitetalk-14B"


def _invalid(field_name: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field_name}: {message}", at_stage=Stage.PIPELINE_WARM_STARTED)


@dataclass(frozen=True)
class InfiniteTalkCall:
    """One job as InfiniteTalk's arguments."""

    variant: Variant
    input_data: dict[str, Any]
    """generate_infinitetalk's `input_data`: prompt, cond_video, cond_audio (embedding files), bbox, ..."""
    generate_kwargs: dict[str, Any]
    extra_args: dict[str, Any]
    """The attributes generate_infinitetalk reads from its `extra_args` namespace."""
    chunks: int
    warnings: list[str]

    def cli_args(self, paths: WeightPaths, input_json: str) -> list[str]:
        """The same run as `python generate_infinitetalk.py ...` arguments (its input_json names the WAVs)."""
        kwargs, extra = self.generate_kwargs, self.extra_args
        args = [
            "--task", TASK,
            "--ckpt_dir", str(paths.ckpt_dir),
            "--wav2vec_dir", str(paths.wav2vec_dir),
            "--infinitetalk_dir", str(paths.infinitetalk_dir / self.variant.people / "infinitetalk.safetensors"),
            "--input_json", input_json,
            "--size", kwargs["size_buckget"],
            "--mode", "streaming" if kwargs["max_frames_num"] > kwargs["frame_num"] else "clip",
            "--frame_num", str(kwargs["frame_num"]),
            "--max_frame_num", str(kwargs["max_frames_num"]),
            "--motion_frame", str(kwargs["motion_frame"]),
            "--sample_steps", str(kwargs["sampling_steps"]),
            "--sample_shift", f"{kwargs['shift']:g}",
            "--sample_text_guide_scale", f"{kwargs['text_guide_scale']:g}",
            "--sample_audio_guide_scale", f"{kwargs['audio_guide_scale']:g}",
            "--color_correction_strength", f"{kwargs['color_correction_strength']:g}",
            "--base_seed", str(kwargs["seed"]),
            "--offload_model", str(kwargs["offload_model"]),
        ]  # fmt: skip
        if extra["use_teacache"]:
            args += ["--use_teacache", "--teacache_thresh", f"{extra['teacache_thresh']:g}"]
        if extra["use_apg"]:
            args += ["--use_apg", "--apg_momentum", f"{extra['apg_momentum']:g}"]
            args += ["--apg_norm_threshold", f"{extra['apg_norm_threshold']:g}"]
        if self.variant.num_persistent_param_in_dit is not None:
            args += ["--num_persistent_param_in_dit", str(self.variant.num_persistent_param_in_dit)]
        quant_file = self.variant.quant_file()
        if quant_file is not None:
            args += ["--quant", str(self.variant.quant), "--quant_dir", str(quant_file)]
        if self.variant.lora:
            args += ["--lora_dir", str(paths.lora_file()), "--lora_scale", f"{self.variant.lora_scale:g}"]
        return args


def _bbox(job: PreparedJob) -> tuple[dict[str, list[int]] | None, list[str]]:
    """InfiniteTalk's bbox for two speakers, or none (one speaker: it does not read it)."""
    bbox = job.params.bbox
    if bbox is None:
        return None, []
    if len(job.speakers) < 2:
        return None, ["bbox: InfiniteTalk animates a single speaker's whole face and does not use bbox"]
    if bbox.person2 is None:
        raise _invalid("bbox.person2", "InfiniteTalk needs a box for each speaker; add bbox.person2 or drop bbox")
    # InfiniteTalk fills mask[x_min:x_max, y_min:y_max] on an (height, width) mask, so its "x" runs down the
    # rows: the contract's [x_min, y_min, x_max, y_max] (x across) goes in as [y_min, x_min, y_max, x_max].
    swapped = {
        name: [box[1], box[0], box[3], box[2]] for name, box in (("person1", bbox.person1), ("person2", bbox.person2))
    }
    return swapped, []


def map_job(
    job: PreparedJob,
    *,
    cond_path: Path,
    embeddings: list[Path],
    paths: WeightPaths,
    allowed_roots: tuple[Path, ...],
) -> InfiniteTalkCall:
    """Map a prepared job onto InfiniteTalk's pipeline variant, generate_infinitetalk arguments and extra_args.

    `max_frames_num` is the job's frame count (the audio's length, capped by frame_num in clip mode or
    max_frame_num in streaming mode), so InfiniteTalk renders exactly the clips that cover it.
    """
    params = job.params
    if len(embeddings) != len(job.speakers):
        raise ValueError(f"{len(embeddings)} embedding files for {len(job.speakers)} speakers")
    if job.num_frames > params.frame_num and params.motion_frame >= params.frame_num:
        raise _invalid(
            "motion_frame",
            f"streaming steps frame_num - motion_frame frames per clip, so motion_frame ({params.motion_frame}) "
            f"must be smaller than frame_num ({params.frame_num})",
        )
    bbox, warnings = _bbox(job)
    input_data: dict[str, Any] = {
        "prompt": params.prompt,
        "cond_video": str(cond_path),
        "cond_audio": {speaker.name: str(path) for speaker, path in zip(job.speakers, embeddings, strict=True)},
        "audio_type": params.audio_type,
        "video_audio": str(job.soundtrack),
    }
    if bbox is not None:
        input_data["bbox"] = bbox
    generate_kwargs = {
        "size_buckget": params.size,
        "motion_frame": params.motion_frame,
        "frame_num": params.frame_num,
        "shift": params.resolved_sample_shift(),
        "sampling_steps": params.sample_steps,
        "text_guide_scale": params.sample_text_guide_scale,
        "audio_guide_scale": params.sample_audio_guide_scale,
        "seed": job.seed,
        "offload_model": params.offload_model,
        "max_frames_num": job.num_frames,
        "color_correction_strength": params.color_correction_strength,
        "progress": True,
    }
    extra_args = {
        "size": params.size,
        "use_teacache": params.use_teacache,
        "teacache_thresh": params.teacache_thresh,
        "use_apg": params.use_apg,
        "apg_momentum": params.apg_momentum,
        "apg_norm_threshold": params.apg_norm_threshold,
    }
    return InfiniteTalkCall(
        variant=job_variant(params, len(job.speakers), paths, allowed_roots),
        input_data=input_data,
        generate_kwargs=generate_kwargs,
        extra_args=extra_args,
        chunks=chunk_count(job.num_frames, params.frame_num, params.motion_frame),
        warnings=warnings,
    )
