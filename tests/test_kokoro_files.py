"""Kokoro without its model: which engine speaks, the voice list the dashboard offers, the files KOKORO_DIR must
hold, what a worker says when they are missing, and that the GPU image bakes what the Kokoro path needs. None of
this needs torch, misaki or the weights."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.contract import Defaults, ErrorCode, JobError, JobParams, Stage
from core.settings import Settings
from tests.conftest import EXAMPLES, SHORT_JOB
from tests.test_dockerfile import DOCKERFILE, args_and_env, instructions
from worker.audio import EspeakSpeech, turn_voices, voice_catalogue
from worker.kokoro_tts import (
    DEFAULT_VOICES,
    KOKORO_FILES,
    KOKORO_MODEL_FILE,
    KOKORO_REPO,
    KOKORO_VOICES,
    KokoroCatalogue,
    KokoroSpeech,
    files_error,
)
from worker.pipeline import run_job
from worker.speech_engines import load_speech_engine

PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")


def test_the_gpu_engine_speaks_with_kokoro_and_the_preview_with_espeak() -> None:
    assert Settings.from_env({"STUDIO_ENGINE": "infinitetalk"}).speech_engine == "kokoro"
    assert Settings.from_env({}).speech_engine == "espeak"
    forced = Settings.from_env({"STUDIO_ENGINE": "infinitetalk", "STUDIO_TTS_ENGINE": "espeak"})
    assert forced.speech_engine == "espeak"
    settings = Settings.from_env({"KOKORO_DIR": "/models/kokoro", "STUDIO_KOKORO_G2P": "espeak"})
    assert settings.kokoro_dir == Path("/models/kokoro") and settings.kokoro_g2p == "espeak"


def test_a_client_of_a_runpod_endpoint_expects_kokoro_and_of_the_local_one_its_own_engine() -> None:
    assert Settings.from_env({"RUNPOD_ENDPOINT_ID": "abc"}).endpoint_speech_engine == "kokoro"
    assert Settings.from_env({"RUNPOD_ENDPOINT_ID": "abc", "STUDIO_TTS_ENGINE": "espeak"}).endpoint_speech_engine == (
        "espeak"
    )
    assert Settings.from_env({}).endpoint_speech_engine == "espeak"
    assert Settings.from_env({"STUDIO_ENGINE": "infinitetalk"}).endpoint_speech_engine == "kokoro"


def test_an_unknown_speech_engine_is_refused_by_name(settings: Settings) -> None:
    with pytest.raises(JobError) as caught:
        load_speech_engine(settings.with_(tts_engine="festival"))
    assert caught.value.code == ErrorCode.PIPELINE_LOAD
    assert "STUDIO_TTS_ENGINE='festival'" in caught.value.message and "espeak, kokoro" in caught.value.message


def test_an_unknown_g2p_is_refused_by_its_setting(tmp_path: Path) -> None:
    with pytest.raises(JobError) as caught:
        KokoroSpeech.load(tmp_path, tmp_path, g2p="festival")
    assert caught.value.code == ErrorCode.PIPELINE_LOAD
    assert caught.value.message == "tts_audio: STUDIO_KOKORO_G2P='festival' is not a G2P: use misaki or espeak"


def test_kokoro_dir_holds_the_config_the_model_and_one_file_per_english_voice() -> None:
    assert KOKORO_REPO == "hexgrad/Kokoro-82M"
    assert KOKORO_FILES[:2] == ("config.json", KOKORO_MODEL_FILE) == ("config.json", "kokoro-v1_0.pth")
    voices = [name for name in KOKORO_FILES if name.startswith("voices/")]
    assert len(voices) == len(KOKORO_VOICES) == 28
    assert {"voices/am_adam.pt", "voices/af_heart.pt", "voices/bf_emma.pt", "voices/bm_george.pt"} <= set(voices)
    assert all(re.fullmatch(r"voices/[ab][fm]_[a-z]+\.pt", name) for name in voices)


def test_the_kokoro_voice_list_offers_infinitetalks_defaults_first_and_describes_each_voice() -> None:
    catalogue = voice_catalogue("kokoro")
    assert isinstance(catalogue, KokoroCatalogue)
    offered = catalogue.offered()
    assert offered[:2] == list(DEFAULT_VOICES) == ["am_adam", "af_heart"]
    assert sorted(offered) == sorted(voice.name for voice in KOKORO_VOICES)
    assert catalogue.describe("bf_emma") == "bf_emma · Emma, British English, female"
    assert catalogue.describe("am_michael") == "am_michael · Michael, American English, male"


def test_a_voice_list_for_an_unknown_engine_is_refused() -> None:
    with pytest.raises(JobError) as caught:
        voice_catalogue("festival")
    assert caught.value.message == "'festival' is not a speech engine: use espeak or kokoro"


def test_each_engine_refuses_the_others_voice_names() -> None:
    kokoro = voice_catalogue("kokoro")
    assert kokoro.refusal("af_heart") is None
    refusal = kokoro.refusal("af_hearts")
    assert refusal is not None and "Kokoro has no voice 'af_hearts'; did you mean af_heart" in refusal
    assert kokoro.refusal(Defaults.TTS_VOICE_1) is not None
    assert EspeakSpeech().refusal("am_adam") is not None
    assert EspeakSpeech().refusal(Defaults.TTS_VOICE_1) is None


def test_a_job_naming_no_voice_speaks_each_engines_default_for_each_person() -> None:
    job = JobParams.model_validate({"prompt": "p", "cond_video": PORTRAIT, "tts_audio": {"text": "(s1) Hi (s2) Hi"}})
    kokoro = KokoroSpeech(model=None, pipeline_class=type, kokoro_dir=Path("/nowhere"), g2p="espeak")
    assert turn_voices(job, kokoro) == {
        1: ("am_adam", "tts_audio.human1_voice"),
        2: ("af_heart", "tts_audio.human2_voice"),
    }
    assert turn_voices(job, EspeakSpeech())[1] == (Defaults.TTS_VOICE_1, "tts_audio.human1_voice")
    named = JobParams.model_validate(
        {"prompt": "p", "cond_video": PORTRAIT, "tts_audio": {"text": "Hi", "human1_voice": "bf_lily"}}
    )
    assert turn_voices(named, kokoro)[1] == ("bf_lily", "tts_audio.human1_voice")


def test_missing_kokoro_files_are_named_with_kokoro_dir(tmp_path: Path) -> None:
    assert files_error(tmp_path) is not None
    message = files_error(tmp_path).message  # type: ignore[union-attr]
    assert f"Kokoro's files are missing from {tmp_path} (set KOKORO_DIR)" in message
    assert "config.json, kokoro-v1_0.pth, voices/af_heart.pt" in message and "and 25 more" in message
    for name in KOKORO_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert files_error(tmp_path) is None
    (tmp_path / "voices" / "bm_lewis.pt").unlink()
    lone = files_error(tmp_path)
    assert lone is not None and lone.message.endswith(
        "voices/bm_lewis.pt. Download hexgrad/Kokoro-82M there (docs/gpu.md lists the files), or set "
        "STUDIO_TTS_ENGINE=espeak to speak with espeak-ng"
    )


def test_a_tts_job_on_a_worker_without_kokoro_fails_with_e_pipeline_load_naming_kokoro_dir(
    settings: Settings, tmp_path: Path
) -> None:
    kokoro = settings.with_(tts_engine="kokoro", kokoro_dir=tmp_path / "no-kokoro")
    job = {"prompt": "p", "cond_video": PORTRAIT, "tts_audio": {"text": "Hello", "human1_voice": "af_heart"}}
    output = run_job(job, "job-1", settings=kokoro, sink=lambda _: None)
    assert output["status"] == "error"
    assert output["error"]["code"] == ErrorCode.PIPELINE_LOAD
    assert output["error"]["at_stage"] == Stage.AUDIO_STARTED
    assert f"{tmp_path / 'no-kokoro'} (set KOKORO_DIR)" in output["error"]["message"]
    recorded = {**SHORT_JOB, "cond_video": PORTRAIT}
    assert run_job(recorded, "job-2", settings=kokoro, sink=lambda _: None)["status"] == "success", "speech still runs"


def test_the_image_points_kokoro_dir_at_the_settings_default_and_bakes_kokoro_with_the_weights() -> None:
    env = args_and_env()
    assert Path(env["KOKORO_DIR"]) == Settings().kokoro_dir == Settings.from_env(env).kokoro_dir
    assert Path(env["KOKORO_DIR"]) == Path(env["MODELS_DIR"]) / "Kokoro-82M", "where `weights fetch --to` puts it"
    bake = [rest for keyword, rest in instructions() if keyword == "RUN" and "weights fetch" in rest]
    assert len(bake) == 1 and "BAKE_WEIGHTS" in bake[0]
    variants = re.search(r"--variant (\S+);", bake[0])
    assert variants and "kokoro" in variants.group(1).split(",")


def test_the_image_bakes_the_spacy_model_misakis_english_g2p_loads() -> None:
    text = DOCKERFILE.read_text()
    assert "en_core_web_sm-3.8.0-py3-none-any.whl" in text
    spacy_model = [rest for keyword, rest in instructions() if keyword == "RUN" and "en_core_web_sm" in rest]
    requirements = (DOCKERFILE.parent / "requirements-worker.txt").read_text()
    assert spacy_model and "spacy==3.8.7" in requirements and "misaki==0.9.4" in requirements
