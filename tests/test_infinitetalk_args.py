"""The one mapping from the job contract to InfiniteTalk's arguments, pinned parameter by parameter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.contract import ErrorCode, JobError, JobParams
from worker.clips import chunk_count, embedding_frames
from worker.engines.infinitetalk_args import InfiniteTalkCall, map_job
from worker.prepared import PreparedJob, Speaker
from worker.variants import LIGHTX2V_LORA, Variant, WeightPaths, preload_variant

PATHS = WeightPaths.from_weights(
    {
        "CKPT_DIR": "/models/Wan2.1-I2V-14B-480P",
        "INFINITETALK_DIR": "/models/InfiniteTalk",
        "WAV2VEC_DIR": "/models/chinese-wav2vec2-base",
        "LORA_DIR": "/models/lightx2v",
        "INFINITETALK_SRC": "/opt/InfiniteTalk",
    }
)
ROOTS = (Path("/runpod-volume"),)


def prepared(work: Path, num_frames: int = 150, speakers: int = 1, **fields: object) -> PreparedJob:
    audio: dict[str, str] = {"person1": "a.wav"} | ({"person2": "b.wav"} if speakers == 2 else {})
    params = JobParams.model_validate({"prompt": "a woman talks", "cond_video": "p.jpg", "cond_audio": audio, **fields})
    tracks = [Speaker(name, work / f"{name}.wav", np.zeros(num_frames * 640, np.float32)) for name in list(audio)]
    return PreparedJob(
        job_id="job-1",
        params=params,
        seed=1234,
        work_dir=work,
        cond_path=work / "cond.jpeg",
        cond_kind="image",
        cond_size=(600, 800),
        soundtrack=work / "soundtrack.wav",
        speakers=tracks,
        num_frames=num_frames,
        width=544,
        height=736,
    )


def mapped(job: PreparedJob) -> InfiniteTalkCall:
    embeddings = [job.work_dir / f"{speaker.name}.pt" for speaker in job.speakers]
    return map_job(job, cond_path=job.cond_path, embeddings=embeddings, paths=PATHS, allowed_roots=ROOTS)


def test_defaults_map_to_infinitetalks_own_defaults(tmp_path: Path) -> None:
    job = prepared(tmp_path, num_frames=81)
    call = mapped(job)
    assert call.input_data == {
        "prompt": "a woman talks",
        "cond_video": str(tmp_path / "cond.jpeg"),
        "cond_audio": {"person1": str(tmp_path / "person1.pt")},
        "audio_type": "add",
        "video_audio": str(tmp_path / "soundtrack.wav"),
    }
    assert call.generate_kwargs == {
        "size_buckget": "infinitetalk-480",
        "motion_frame": 9,
        "frame_num": 81,
        "shift": 7.0,
        "sampling_steps": 40,
        "text_guide_scale": 5.0,
        "audio_guide_scale": 4.0,
        "seed": 1234,
        "offload_model": True,
        "max_frames_num": 81,
        "color_correction_strength": 1.0,
        "progress": True,
    }
    assert call.extra_args == {
        "size": "infinitetalk-480",
        "use_teacache": False,
        "teacache_thresh": 0.2,
        "use_apg": False,
        "apg_momentum": -0.75,
        "apg_norm_threshold": 55.0,
    }
    assert call.variant == Variant(speakers=1)
    assert call.chunks == 1
    assert call.warnings == []


def test_every_generation_parameter_reaches_infinitetalk(tmp_path: Path) -> None:
    job = prepared(
        tmp_path,
        num_frames=400,
        size="infinitetalk-720",
        mode="streaming",
        frame_num=41,
        max_frame_num=400,
        sample_steps=8,
        sample_shift=2.5,
        sample_text_guide_scale=1.0,
        sample_audio_guide_scale=2.0,
        motion_frame=5,
        color_correction_strength=0.3,
        use_teacache=True,
        teacache_thresh=0.3,
        use_apg=True,
        apg_momentum=-0.5,
        apg_norm_threshold=40.0,
        offload_model=False,
        audio_type="para",
        prompt="two friends chat",
    )
    call = mapped(job)
    assert call.input_data["prompt"] == "two friends chat"
    assert call.input_data["audio_type"] == "para"
    assert call.generate_kwargs == {
        "size_buckget": "infinitetalk-720",
        "motion_frame": 5,
        "frame_num": 41,
        "shift": 2.5,
        "sampling_steps": 8,
        "text_guide_scale": 1.0,
        "audio_guide_scale": 2.0,
        "seed": 1234,
        "offload_model": False,
        "max_frames_num": 400,
        "color_correction_strength": 0.3,
        "progress": True,
    }
    assert call.extra_args == {
        "size": "infinitetalk-720",
        "use_teacache": True,
        "teacache_thresh": 0.3,
        "use_apg": True,
        "apg_momentum": -0.5,
        "apg_norm_threshold": 40.0,
    }
    assert call.chunks == 1 + -(-(400 - 41) // (41 - 5))


def test_720p_defaults_to_shift_11(tmp_path: Path) -> None:
    assert mapped(prepared(tmp_path, size="infinitetalk-720")).generate_kwargs["shift"] == 11.0


def test_clip_mode_renders_the_audio_length_capped_at_one_clip(tmp_path: Path) -> None:
    call = mapped(prepared(tmp_path, num_frames=57, frame_num=81))
    assert call.generate_kwargs["max_frames_num"] == 57
    assert call.chunks == 1


def test_lora_quant_and_persistent_params_choose_the_pipeline_variant(tmp_path: Path) -> None:
    lora = mapped(prepared(tmp_path, lora=True, lora_scale=0.8, num_persistent_param_in_dit=0)).variant
    assert lora == Variant(speakers=1, lora=True, lora_scale=0.8, num_persistent_param_in_dit=0)
    assert lora.pipeline_kwargs(PATHS) == {
        "checkpoint_dir": "/models/Wan2.1-I2V-14B-480P",
        "quant_dir": None,
        "device_id": 0,
        "rank": 0,
        "t5_fsdp": False,
        "dit_fsdp": False,
        "use_usp": False,
        "t5_cpu": False,
        "lora_dir": [f"/models/lightx2v/{LIGHTX2V_LORA}"],
        "lora_scales": [0.8],
        "quant": None,
        "dit_path": None,
        "infinitetalk_dir": "/models/InfiniteTalk/single/infinitetalk.safetensors",
    }
    quant = mapped(prepared(tmp_path, speakers=2, quant="fp8", quant_dir="/runpod-volume/q")).variant
    assert quant.pipeline_kwargs(PATHS) | {"quant_dir": None, "quant": None, "infinitetalk_dir": None} == Variant(
        speakers=2
    ).pipeline_kwargs(PATHS) | {"quant_dir": None, "quant": None, "infinitetalk_dir": None}
    assert quant.pipeline_kwargs(PATHS)["quant"] == "fp8"
    assert quant.pipeline_kwargs(PATHS)["quant_dir"] == "/runpod-volume/q/infinitetalk_multi_fp8.safetensors"
    assert quant.pipeline_kwargs(PATHS)["infinitetalk_dir"] == "/models/InfiniteTalk/multi/infinitetalk.safetensors"


def test_lora_with_quantisation_is_refused_because_infinitetalk_would_ignore_the_lora(tmp_path: Path) -> None:
    with pytest.raises(JobError) as caught:
        mapped(prepared(tmp_path, lora=True, quant="int8", quant_dir="/runpod-volume/q"))
    assert caught.value.code == ErrorCode.INPUT_VALIDATION
    assert caught.value.message.startswith("lora:")


def test_quant_dir_outside_the_model_folders_is_refused(tmp_path: Path) -> None:
    for outside in ("/etc", "/runpod-volume/../etc", "../../../etc"):
        with pytest.raises(JobError, match=r"quant_dir: .* outside") as caught:
            mapped(prepared(tmp_path, quant="fp8", quant_dir=outside))
        assert caught.value.code == ErrorCode.INPUT_VALIDATION
    relative = mapped(prepared(tmp_path, quant="int8", quant_dir="v2")).variant
    assert relative.quant_file() == PATHS.quant_dir / "v2" / "infinitetalk_single_int8.safetensors"


def test_two_speakers_get_infinitetalks_row_first_bboxes(tmp_path: Path) -> None:
    job = prepared(tmp_path, speakers=2, bbox={"person1": [10, 20, 110, 220], "person2": [300, 40, 420, 260]})
    call = mapped(job)
    # InfiniteTalk slices mask[x_min:x_max, y_min:y_max] on a (height, width) mask: its x runs down the rows.
    assert call.input_data["bbox"] == {"person1": [20, 10, 220, 110], "person2": [40, 300, 260, 420]}
    assert call.input_data["cond_audio"] == {
        "person1": str(tmp_path / "person1.pt"),
        "person2": str(tmp_path / "person2.pt"),
    }
    assert call.variant.people == "multi"


def test_bbox_for_one_speaker_is_dropped_with_a_warning(tmp_path: Path) -> None:
    call = mapped(prepared(tmp_path, bbox={"person1": [10, 20, 110, 220]}))
    assert "bbox" not in call.input_data
    assert call.warnings and call.warnings[0].startswith("bbox:")


def test_two_speakers_with_one_box_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JobError, match=r"bbox\.person2: .*add bbox\.person2"):
        mapped(prepared(tmp_path, speakers=2, bbox={"person1": [10, 20, 110, 220]}))


def test_streaming_needs_motion_frame_below_frame_num_or_infinitetalk_never_advances(tmp_path: Path) -> None:
    with pytest.raises(JobError, match=r"motion_frame: .*smaller than frame_num \(9\)") as caught:
        mapped(prepared(tmp_path, num_frames=100, mode="streaming", frame_num=9, motion_frame=9))
    assert caught.value.code == ErrorCode.INPUT_VALIDATION


@pytest.mark.parametrize(
    ("num_frames", "frame_num", "motion_frame", "chunks"),
    [(81, 81, 9, 1), (50, 81, 9, 1), (82, 81, 9, 2), (153, 81, 9, 2), (154, 81, 9, 3), (1000, 81, 9, 14)],
)
def test_chunk_count_follows_infinitetalks_clip_loop(
    num_frames: int, frame_num: int, motion_frame: int, chunks: int
) -> None:
    assert chunk_count(num_frames, frame_num, motion_frame) == chunks


def test_features_always_cover_more_than_one_clip() -> None:
    assert embedding_frames(40, 81) == 82
    assert embedding_frames(81, 81) == 82
    assert embedding_frames(500, 81) == 500


def test_cli_equivalent_names_every_argument(tmp_path: Path) -> None:
    job = prepared(
        tmp_path, num_frames=300, mode="streaming", max_frame_num=300, use_teacache=True, use_apg=True, lora=True
    )
    args = mapped(job).cli_args(PATHS, "job.json")
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["--task"] == "infinitetalk-14B"
    assert pairs["--mode"] == "streaming"
    assert pairs["--max_frame_num"] == "300"
    assert pairs["--input_json"] == "job.json"
    assert pairs["--lora_dir"] == f"/models/lightx2v/{LIGHTX2V_LORA}"
    assert {"--use_teacache", "--use_apg", "--teacache_thresh", "--apg_momentum", "--base_seed"} <= set(args)


def test_weight_paths_default_to_the_network_volume_and_quant_follows_infinitetalk_dir() -> None:
    defaults = WeightPaths.from_weights({})
    assert defaults.ckpt_dir == Path("/runpod-volume/models/Wan2.1-I2V-14B-480P")
    assert defaults.src_dir == Path("/opt/InfiniteTalk")
    assert WeightPaths.from_weights({"INFINITETALK_DIR": "/w/IT"}).quant_dir == Path("/w/IT/quant_models")
    assert WeightPaths.from_weights({"LORA_DIR": "/w/my.safetensors"}).lora_file() == Path("/w/my.safetensors")


def test_preload_reads_the_job_field_names_and_names_itself_when_wrong() -> None:
    assert preload_variant(None, PATHS, ROOTS) == Variant()
    assert preload_variant('{"speakers": 2, "lora": true}', PATHS, ROOTS) == Variant(speakers=2, lora=True)
    for raw, detail in (("{nope", "not JSON"), ('{"speakerz": 2}', "speakerz"), ('{"speakers": 3}', "speakers")):
        with pytest.raises(JobError) as caught:
            preload_variant(raw, PATHS, ROOTS)
        assert caught.value.code == ErrorCode.PIPELINE_LOAD
        assert caught.value.message.startswith("INFINITETALK_PRELOAD: ")
        assert detail in caught.value.message
