"""Named parameter sets for the Submit page: each is the contract's defaults plus a few deliberate changes.

A preset sets every parameter, so choosing one gives the same job whatever was set before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.forms import PARAM_NAMES, form_defaults


@dataclass(frozen=True)
class Preset:
    """A named parameter set and what it is for."""

    name: str
    summary: str
    changes: dict[str, Any]

    def params(self) -> dict[str, Any]:
        """Every form parameter: a new form's values with this preset's changes applied."""
        return {**form_defaults(), **self.changes}


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            # Not "Fast preview": the preview is the CPU engine; this is InfiniteTalk with 8 sampling steps instead
            # of 40 (issue 29), so the name says what it changes.
            "8-step draft",
            "480p, the first 81 frames (3.2 s), 8 sampling steps instead of 40, with TeaCache: a rough, quick look "
            "at framing and lip sync on the GPU worker (lower quality than the default).",
            {"size": "infinitetalk-480", "mode": "clip", "frame_num": 81, "sample_steps": 8, "use_teacache": True},
        ),
        Preset(
            "4-step LoRA",
            "480p, the whole speech, lightx2v LoRA with 4 steps and low guidance, as InfiniteTalk's fast recipe.",
            {
                "size": "infinitetalk-480",
                "mode": "streaming",
                "lora": True,
                "lora_scale": 1.0,
                "sample_steps": 4,
                "sample_shift": 2.0,
                "sample_text_guide_scale": 1.0,
                "sample_audio_guide_scale": 2.0,
                "num_persistent_param_in_dit": 0,
            },
        ),
        Preset(
            "Quality",
            "720p, the whole speech, 40 steps with the model's default guidance: slowest, best looking.",
            {"size": "infinitetalk-720", "mode": "streaming", "sample_steps": 40},
        ),
    )
}


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        return left is right or left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return abs(float(left) - float(right)) < 1e-9  # a number widget hands 2 back as 2.0
    return bool(left == right)


def matching(params: dict[str, Any]) -> str | None:
    """The name of the preset the form's parameters are exactly, or None once any parameter differs from each.

    The Submit page shows it, so a user knows whether the parameters are still a preset's after editing one.
    """
    for preset in PRESETS.values():
        wanted = preset.params()
        if all(_same(params.get(name), wanted[name]) for name in PARAM_NAMES):
            return preset.name
    return None


def is_default(params: dict[str, Any]) -> bool:
    """Whether the parameters are still a new form's."""
    defaults = form_defaults()
    return all(_same(params.get(name), defaults[name]) for name in PARAM_NAMES)
