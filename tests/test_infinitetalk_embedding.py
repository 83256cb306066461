"""Speech features the InfiniteTalk engine computes: InfiniteTalk's get_embedding, checked on a tiny randomly
initialised wav2vec2 saved to a temp dir (the real chinese-wav2vec2-base is 360 MB and not needed to check the
computation)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from core.contract import AUDIO_SAMPLE_RATE, FPS  # noqa: E402
from worker.embedding import SpeechEncoder, frames_of, pad_to_frames  # noqa: E402
from worker.selftest.tiny import save_tiny_wav2vec2  # noqa: E402

LAYERS = 3
HIDDEN = 24


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("wav2vec2"), layers=LAYERS, hidden=HIDDEN)


@pytest.fixture(scope="module")
def encoder(tiny_wav2vec2: Path) -> SpeechEncoder:
    return SpeechEncoder.load(tiny_wav2vec2)


def speech(seconds: float, seed: int = 1) -> np.ndarray:
    """A voiced-like signal: harmonics with a syllable-rate envelope plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.2 * voice * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_features_have_one_row_per_video_frame_and_one_vector_per_layer(encoder: SpeechEncoder) -> None:
    samples = speech(2.0)
    features = encoder.encode(samples)
    assert features.shape == (2 * FPS, LAYERS, HIDDEN)
    assert features.dtype == torch.float32
    assert features.device.type == "cpu"
    assert torch.isfinite(features).all()


def test_frame_count_is_exact_for_whole_frames_and_rounds_down_otherwise() -> None:
    # 82 frames of 640 samples: float arithmetic (82 * 640 / 16000 * 25) would give 81.999..., int() 81.
    assert frames_of(np.zeros(82 * 640, np.float32)) == 82
    assert frames_of(np.zeros(82 * 640 + 639, np.float32)) == 82
    assert frames_of(np.zeros(639, np.float32)) == 0


def test_padding_adds_silence_up_to_the_frames_asked_for_and_never_cuts() -> None:
    samples = speech(1.0)
    padded = pad_to_frames(samples, 82)
    assert padded.size == 82 * 640
    assert np.array_equal(padded[: samples.size], samples)
    assert not padded[samples.size :].any()
    assert pad_to_frames(samples, 10).size == samples.size


def test_loudness_does_not_change_the_features_because_the_extractor_normalises(encoder: SpeechEncoder) -> None:
    samples = speech(1.2)
    quiet, loud = encoder.encode(samples * 0.1), encoder.encode(samples)
    torch.testing.assert_close(quiet, loud, rtol=1e-3, atol=1e-3)


def test_different_speech_gives_different_features_and_the_same_speech_the_same(encoder: SpeechEncoder) -> None:
    first, again = encoder.encode(speech(1.0, seed=1)), encoder.encode(speech(1.0, seed=1))
    other = encoder.encode(speech(1.0, seed=1)[::-1].copy())
    assert torch.equal(first, again)
    assert not torch.allclose(first, other, atol=1e-3)


def test_saved_features_load_the_way_generate_infinitetalk_reads_them(encoder: SpeechEncoder, tmp_path: Path) -> None:
    path = encoder.save(speech(1.0), tmp_path / "person1.pt")
    loaded = torch.load(path)
    assert loaded.shape == (FPS, LAYERS, HIDDEN)
    assert not torch.isnan(loaded).any()


def test_speech_shorter_than_a_frame_is_refused(encoder: SpeechEncoder) -> None:
    with pytest.raises(ValueError, match="shorter than one video frame"):
        encoder.encode(np.zeros(100, np.float32))


def _infinitetalk_src() -> Path:
    return Path(os.environ.get("INFINITETALK_SRC") or "/opt/InfiniteTalk")


@pytest.fixture
def upstream_wav2vec2() -> Iterator[type]:
    src = _infinitetalk_src()
    if not (src / "src" / "audio_analysis" / "wav2vec2.py").exists():
        pytest.skip(f"InfiniteTalk's source is not at {src} (set INFINITETALK_SRC; the GPU image has it)")
    sys.path.insert(0, str(src))
    try:
        yield importlib.import_module("src.audio_analysis.wav2vec2").Wav2Vec2Model
    finally:
        sys.path.remove(str(src))
        for name in [name for name in sys.modules if name == "src" or name.startswith("src.")]:
            del sys.modules[name]


def test_matches_infinitetalks_own_get_embedding(upstream_wav2vec2: type, tiny_wav2vec2: Path) -> None:
    """get_embedding from generate_infinitetalk.py, step by step, with InfiniteTalk's Wav2Vec2Model.

    Its forward sets config.output_attentions, which transformers 4.5x refuses under the default sdpa
    attention: one reason the engine runs the same computation on the stock model instead.
    """
    samples = speech(1.64)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(str(tiny_wav2vec2), local_files_only=True)
    upstream = upstream_wav2vec2.from_pretrained(str(tiny_wav2vec2), local_files_only=True, attn_implementation="eager")
    upstream.feature_extractor._freeze_parameters()
    video_length = len(samples) / AUDIO_SAMPLE_RATE * 25
    feature = np.squeeze(extractor(samples, sampling_rate=AUDIO_SAMPLE_RATE).input_values)
    feature = torch.from_numpy(feature).float().unsqueeze(0)
    with torch.no_grad():
        embeddings = upstream(feature, seq_len=int(video_length), output_hidden_states=True)
    expected = torch.stack(embeddings.hidden_states[1:], dim=1).squeeze(0).permute(1, 0, 2)

    ours = SpeechEncoder.load(tiny_wav2vec2).encode(samples)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
