"""The form's own words for the contract's field names, and messages rewritten in them.

The worker names fields as the contract spells them (`cond_audio.person1: …`); on the page the user knows them by
their labels ("Person 1's speech"), so every message the Submit page, Live and History show passes through
`in_words` (issue 16: errors spoke of `cond_audio.person1` and a timestamped temp file name).
"""

from __future__ import annotations

import re

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
    """A worker or contract message with every field name replaced by the form's label for it."""
    return _NAMES.sub(lambda match: FIELD_LABELS[next(group for group in match.groups() if group)], message or "")
