"""Speech features for InfiniteTalk: wav2vec2 hidden states, one stack of layer vectors per 25 fps video frame.

This is InfiniteTalk's `get_embedding` (generate_infinitetalk.py) together with the `forward` of its
Wav2Vec2Model subclass (src/audio_analysis/wav2vec2.py), run on a stock `transformers.Wav2Vec2Model`: the
convolutional features are resampled linearly to one per video frame *before* the transformer, and every
layer's hidden state is kept. Written against the stock model so the same code runs (and is tested) without
InfiniteTalk's source; tests/test_infinitetalk_embedding.py checks it against the subclass where that source is.

Imports torch and transformers: only the InfiniteTalk engine imports this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from core.contract import AUDIO_SAMPLE_RATE, FPS


def frames_of(samples: np.ndarray) -> int:
    """Video frames the speech covers: InfiniteTalk's int(duration * 25), in integers so that an exact
    multiple of 640 samples is never rounded down by float error."""
    return samples.size * FPS // AUDIO_SAMPLE_RATE


def pad_to_frames(samples: np.ndarray, frames: int) -> np.ndarray:
    """Speech padded with trailing silence to cover at least `frames` video frames."""
    needed = -(-frames * AUDIO_SAMPLE_RATE // FPS)
    return np.pad(samples.astype(np.float32), (0, max(0, needed - samples.size)))


class SpeechEncoder:
    """wav2vec2 loaded once from a local folder (chinese-wav2vec2-base in production)."""

    def __init__(self, feature_extractor: Wav2Vec2FeatureExtractor, model: Wav2Vec2Model, device: str = "cpu") -> None:
        self.feature_extractor = feature_extractor
        self.model = model
        self.device = device

    @classmethod
    def load(cls, wav2vec_dir: Path, device: str = "cpu") -> SpeechEncoder:
        """Load the model and its feature extractor from disk only (InfiniteTalk's custom_init)."""
        model = Wav2Vec2Model.from_pretrained(str(wav2vec_dir), local_files_only=True).to(device)
        model.feature_extractor._freeze_parameters()
        model.eval()
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(wav2vec_dir), local_files_only=True)
        return cls(extractor, model, device)

    @property
    def layers(self) -> int:
        """Transformer layers, i.e. vectors per frame."""
        return int(self.model.config.num_hidden_layers)

    def encode(self, samples: np.ndarray) -> torch.Tensor:
        """Features of 16 kHz mono speech as a float32 CPU tensor of shape (frames, layers, hidden_size)."""
        seq_len = frames_of(samples)
        if seq_len < 1:
            raise ValueError("speech shorter than one video frame has no features")
        values = np.squeeze(self.feature_extractor(samples, sampling_rate=AUDIO_SAMPLE_RATE).input_values)
        inputs = torch.from_numpy(np.asarray(values, dtype=np.float32)).to(self.device).unsqueeze(0)
        model = self.model
        with torch.no_grad():
            features = model.feature_extractor(inputs).transpose(1, 2)
            # One feature per video frame (InfiniteTalk's linear_interpolation), then the transformer.
            features = F.interpolate(features.transpose(1, 2), size=seq_len, align_corners=True, mode="linear")
            hidden, _ = model.feature_projection(features.transpose(1, 2))
            hidden = model._mask_hidden_states(hidden)
            encoded = model.encoder(hidden, output_hidden_states=True, return_dict=True)
        # Every layer's output (the first entry is the encoder's input), as (frames, layers, hidden_size).
        stacked = torch.stack(encoded.hidden_states[1:], dim=1).squeeze(0)
        return stacked.permute(1, 0, 2).contiguous().float().cpu()

    def save(self, samples: np.ndarray, path: Path) -> Path:
        """Encode speech and save the tensor where generate_infinitetalk's torch.load reads it."""
        torch.save(self.encode(samples), path)
        return path
