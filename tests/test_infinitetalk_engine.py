"""The InfiniteTalk engine: weight checks at cold start (any machine), and what InfiniteTalk's real code cannot be
made to do on demand, with its `wan` replaced by the contract-following stand-in in tests/fake_infinitetalk: CUDA
running out of memory, and the exact arguments a build and a call receive.

Whole jobs through InfiniteTalk's real code (clips, streaming, cancel, LoRA, quantisation, video, two speakers)
are in tests/test_infinitetalk_real.py, through `python -m worker selftest`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.contract import ERROR_INFO, ErrorCode, JobError, Stage
from core.settings import Settings
from tests.conftest import EXAMPLES
from tests.fake_infinitetalk.install import FAKE_SRC, weights_tree
from worker.engines import load_engine
from worker.engines.infinitetalk import InfiniteTalkEngine
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT
from worker.pipeline import run_job
from worker.progress import CancelToken

PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")
TWO_PEOPLE = str(EXAMPLES / "media" / "two_people.jpg")
SPEECH_1 = str(EXAMPLES / "media" / "speech_1.wav")
SPEECH_2 = str(EXAMPLES / "media" / "speech_2.wav")
CLIP = str(EXAMPLES / "media" / "clip.mp4")


def job(**overrides: Any) -> dict[str, Any]:
    """A short job: 33-frame clips and 3 sampling steps keep the stand-in's work small."""
    return {
        "prompt": "a woman talks",
        "cond_video": PORTRAIT,
        "cond_audio": {"person1": SPEECH_1},
        "frame_num": 33,
        "sample_steps": 3,
        **overrides,
    }


# ------------------------------------------------------------------------------------------------------------
# Cold start: missing weights fail with E_PIPELINE_LOAD naming the path and its env var (no torch needed).
# ------------------------------------------------------------------------------------------------------------


def load_error(settings: Settings) -> JobError:
    with pytest.raises(JobError) as caught:
        InfiniteTalkEngine(settings).load()
    assert caught.value.code == ErrorCode.PIPELINE_LOAD
    assert caught.value.at_stage == Stage.PIPELINE_WARM_STARTED
    return caught.value


def test_without_weights_the_error_names_the_volume_paths_and_their_env_vars(settings: Settings) -> None:
    message = load_error(settings).message
    assert "/opt/InfiniteTalk/wan/multitalk.py (set INFINITETALK_SRC)" in message
    assert "/runpod-volume/models/chinese-wav2vec2-base/config.json (set WAV2VEC_DIR)" in message
    assert "/runpod-volume/models/Wan2.1-I2V-14B-480P/config.json (set CKPT_DIR)" in message
    assert "docs/gpu.md" in message


def test_one_missing_file_is_named_alone(settings: Settings, tmp_path: Path) -> None:
    env = weights_tree(tmp_path / "models")
    (tmp_path / "models" / "InfiniteTalk" / "single" / "infinitetalk.safetensors").unlink()
    message = load_error(settings.with_(weights=env)).message
    assert f"{tmp_path}/models/InfiniteTalk/single/infinitetalk.safetensors (set INFINITETALK_DIR)" in message
    assert message.count("(set ") == 1


def test_a_preloaded_lora_needs_its_file(settings: Settings, tmp_path: Path) -> None:
    env = weights_tree(tmp_path / "models", lora=False) | {"INFINITETALK_PRELOAD": '{"lora": true}'}
    message = load_error(settings.with_(weights=env)).message
    assert "lightx2v_cfg_step_distill_lora_rank32.safetensors (set LORA_DIR)" in message


def test_a_preloaded_quantised_model_needs_infinitetalks_quant_files(settings: Settings, tmp_path: Path) -> None:
    env = weights_tree(tmp_path / "models") | {"INFINITETALK_PRELOAD": '{"quant": "fp8"}'}
    message = load_error(settings.with_(weights=env)).message
    for name in ("infinitetalk_single_fp8.safetensors", "infinitetalk_single_fp8.json", "t5_fp8.safetensors"):
        assert f"quant_models/{name} (set QUANT_DIR)" in message
    # With quantisation the bf16 T5 and DiT shards are not read, so they are not asked for.
    assert "diffusion_pytorch_model" not in message


def test_without_torch_the_error_says_to_use_the_gpu_image(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "worker.embedding", raising=False)
    message = load_error(settings.with_(weights=weights_tree(tmp_path / "models"))).message
    assert "needs torch and transformers" in message and "Dockerfile.worker" in message


def test_without_a_cuda_gpu_the_error_says_so(settings: Settings, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    message = load_error(settings.with_(weights=weights_tree(tmp_path / "models"))).message
    assert "no CUDA GPU is visible" in message and "STUDIO_ENGINE=preview" in message


def test_a_gpu_worker_never_falls_back_to_the_preview_engine(settings: Settings) -> None:
    with pytest.raises(JobError) as caught:
        load_engine(settings.with_(engine="infinitetalk"))
    assert caught.value.code == ErrorCode.PIPELINE_LOAD

    output = run_job(job(), "job-1", settings=settings.with_(engine="infinitetalk"), sink=lambda _: None)
    assert output["status"] == "error"
    assert output["error"]["code"] == ErrorCode.PIPELINE_LOAD
    assert output["error"]["at_stage"] == Stage.PIPELINE_WARM_STARTED
    assert "(set CKPT_DIR)" in output["error"]["message"]


# ------------------------------------------------------------------------------------------------------------
# Whole jobs on CPU: real audio, wav2vec2 (tiny, random), mapping, progress, cancel, encoder; stand-in `wan`.
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from worker.selftest.tiny import save_tiny_wav2vec2

    return save_tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2"))


@pytest.fixture
def fake_wan(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """InfiniteTalk's wan, as the stand-in, with a GPU reported present; unloaded afterwards."""
    monkeypatch.setattr("worker.engines.infinitetalk.cuda_available", lambda: True)
    yield None
    multitalk = sys.modules.get("wan.multitalk")
    if multitalk is not None:
        multitalk.BUILDS.clear()
        multitalk.CALLS.clear()
        multitalk.MEMORY_BUDGET = None
    for name in [name for name in sys.modules if name == "wan" or name.startswith("wan.")]:
        del sys.modules[name]
    if str(FAKE_SRC) in sys.path:
        sys.path.remove(str(FAKE_SRC))


@pytest.fixture
def gpu_settings(settings: Settings, tmp_path: Path, tiny_wav2vec2: Path, fake_wan: Any) -> Settings:
    env = weights_tree(tmp_path / "models", wav2vec=False) | {"WAV2VEC_DIR": str(tiny_wav2vec2)}
    return settings.with_(engine="infinitetalk", weights=env)


@pytest.fixture
def engine(gpu_settings: Settings) -> InfiniteTalkEngine:
    loaded = InfiniteTalkEngine(gpu_settings)
    loaded.load()
    return loaded


def wan_multitalk() -> Any:
    return importlib.import_module("wan.multitalk")


def run(
    settings: Settings, engine: InfiniteTalkEngine, job_input: dict[str, Any], cancel: CancelToken | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    output = run_job(job_input, "job-1", settings=settings, sink=events.append, engine=engine, cancel=cancel)
    return output, events


def generation_details(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["details"] for event in events if event["stage"] == Stage.GENERATION and "step" in event["details"]]


def test_cold_start_builds_the_single_speaker_model_once(engine: InfiniteTalkEngine, gpu_settings: Settings) -> None:
    builds = wan_multitalk().BUILDS
    assert len(builds) == 1
    assert (
        builds[0]["infinitetalk_dir"] == f"{gpu_settings.weights['INFINITETALK_DIR']}/single/infinitetalk.safetensors"
    )
    assert builds[0]["lora_dir"] is None and builds[0]["quant"] is None
    assert engine.version == f"1.0.0+infinitetalk.{INFINITETALK_COMMIT[:7]}"


def test_cuda_out_of_memory_becomes_e_oom_with_the_advice(engine: InfiniteTalkEngine, gpu_settings: Settings) -> None:
    wan_multitalk().MEMORY_BUDGET = 1000
    output, _ = run(gpu_settings, engine, job())
    assert output["error"]["code"] == ErrorCode.OOM
    assert output["error"]["at_stage"] == Stage.GENERATION
    assert output["error"]["retryable"] is False
    assert ERROR_INFO[ErrorCode.OOM]["advice"] in output["error"]["message"]


def test_a_preloaded_variant_serves_its_jobs_without_a_reload(gpu_settings: Settings) -> None:
    weights = dict(gpu_settings.weights) | {"INFINITETALK_PRELOAD": '{"lora": true, "num_persistent_param_in_dit": 0}'}
    settings = gpu_settings.with_(weights=weights)
    engine = InfiniteTalkEngine(settings)
    engine.load()
    output, _ = run(settings, engine, job(lora=True, num_persistent_param_in_dit=0, sample_steps=2))
    assert output["status"] == "success", output
    assert len(wan_multitalk().BUILDS) == 1
    assert wan_multitalk().CALLS[-1]["persistent_params"] == 0


def test_two_speakers_use_the_multi_model_and_their_boxes(engine: InfiniteTalkEngine, gpu_settings: Settings) -> None:
    payload = job(
        cond_video=TWO_PEOPLE,
        cond_audio={"person1": SPEECH_1, "person2": SPEECH_2},
        audio_type="para",
        bbox={"person1": [10, 20, 110, 220], "person2": [300, 40, 420, 260]},
    )
    output, _ = run(gpu_settings, engine, payload)
    assert output["status"] == "success", output
    call = wan_multitalk().CALLS[-1]
    assert set(call["input_data"]["cond_audio"]) == {"person1", "person2"}
    assert call["input_data"]["bbox"] == {"person1": [20, 10, 220, 110], "person2": [40, 300, 260, 420]}
    assert wan_multitalk().BUILDS[-1]["infinitetalk_dir"].endswith("/multi/infinitetalk.safetensors")


def test_a_streaming_jobs_clips_reach_the_encoder_as_each_finishes_and_its_partial_video_is_published(
    engine: InfiniteTalkEngine, gpu_settings: Settings
) -> None:
    """generate_infinitetalk runs in a thread; each clip InfiniteTalk's loop finishes is encoded, and published as
    the video so far, while the next clip is still sampling; the final video is the whole one."""
    settings = gpu_settings.with_(partial_every_s=0.0)
    output, events = run(settings, engine, job(mode="streaming", frame_num=33, motion_frame=9))

    assert output["status"] == "success", output
    clips = max(e["details"]["chunks"] for e in events if "chunks" in e["details"])
    assert clips >= 3
    during = [e for e in events if e["stage"] == Stage.GENERATION and "partial_video" in e]
    assert during, "a partial video was announced while InfiniteTalk was still generating"
    first = during[0]["partial_video"]
    assert first["clips_done"] < first["clips_total"] == clips
    later_steps = [e["details"].get("chunk") for e in events[events.index(during[0]) :] if "step" in e["details"]]
    assert later_steps and max(later_steps) > first["clips_done"], "clips were still rendering after it"
    assert output["video"]["frames"] == round(output["video"]["duration_s"] * 25)
