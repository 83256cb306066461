"""The form's own words for the contract's field names, and messages rewritten in them.

The worker names fields as the contract spells them (`cond_audio.person1: …`); on the page the user knows them by
their labels ("Person 1's speech"), so every message the Submit page, Live and History show passes through
`in_words` (issue 16: errors spoke of `cond_audio.person1` and a timestamped temp file name).
"""

from __future__ import annotations

import re

PREVIEW_ENGINE_LINE = (
    "This endpoint runs the **preview engine**, not InfiniteTalk: it moves the mouth with the speech, blinks and "
    "sways the head, so you can check framing, timing and length in seconds for free. The real model runs on a GPU "
    "worker (docs/gpu.md)."
)
"""Said on first open, above the form, and beside every preview result (Live, History's cards and detail), so a
preview is never taken for InfiniteTalk's output (issue 29)."""
PREVIEW_BADGE = ":violet-badge[:material/science: Preview engine]"
"""The Markdown badge every preview result carries; Streamlit draws it inline beside the status."""

PARAM_LABELS = {
    "size": "Size",
    "mode": "Mode",
    "frame_num": "Frames per clip",
    "max_frame_num": "Most frames (streaming)",
    "sample_steps": "Sampling steps",
    "base_seed": "Seed (-1: random)",
    "sample_shift": "Sample shift",
    "sample_text_guide_scale": "Text guidance",
    "sample_audio_guide_scale": "Audio guidance",
    "motion_frame": "Motion frames",
    "color_correction_strength": "Colour correction",
    "use_teacache": "TeaCache",
    "teacache_thresh": "TeaCache threshold",
    "use_apg": "APG",
    "apg_momentum": "APG momentum",
    "apg_norm_threshold": "APG norm threshold",
    "num_persistent_param_in_dit": "Parameters kept on the GPU",
    "offload_model": "Offload the model between steps",
    "quant": "Quantisation",
    "quant_dir": "Quantised weights folder",
    "lora": "lightx2v LoRA",
    "lora_scale": "LoRA scale",
}
FIELD_LABELS = {
    "cond_video": "Portrait",
    "cond_audio.person1": "Person 1's speech",
    "cond_audio.person2": "Person 2's speech",
    "cond_audio": "Speech",
    "tts_audio.text": "Text to speak",
    "tts_audio.human1_voice": "Voice of person 1",
    "tts_audio.human2_voice": "Voice of person 2",
    "tts_audio": "Text to speech",
    "audio_type": "How they talk",
    "bbox": "Face boxes",
    "prompt": "Prompt",
    **PARAM_LABELS,
}

_ANY = "|".join(re.escape(name) for name in sorted(FIELD_LABELS, key=len, reverse=True))
_NAMES = re.compile(
    rf"`({_ANY})`"  # quoted: any field
    rf"|(?:(?<=^)|(?<=[;(] ))({_ANY})(?=: )"  # a message's subject, `field: …`
    rf"|(?<![\w.])({'|'.join(re.escape(n) for n in FIELD_LABELS if '_' in n or '.' in n)})(?![\w.])"  # snake/dotted
)
"""Plain words such as "size" or "mode" are left alone inside a sentence: only a quoted name, a message's subject
or a name no sentence uses (snake_case, dotted) is a field."""


def label(name: str) -> str:
    """A field's label on the form; a field the contract gained since is named in words from its own name."""
    return FIELD_LABELS.get(name) or name.replace("_", " ").replace(".", " ").capitalize()


def in_words(message: str | None) -> str:
    """A worker or contract message with every field name replaced by the form's label for it; `Prompt: is empty`
    reads `Prompt is empty`."""
    named = _NAMES.sub(lambda match: FIELD_LABELS[next(group for group in match.groups() if group)], message or "")
    return named.replace(": is empty:", " is empty:")


def field_message(name: str, message: str) -> str:
    """A message about one field, shown under that field, as a sentence that names it (`Prompt is empty: …`)."""
    return in_words(f"{name}: {message}")
