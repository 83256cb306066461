"""The Live log in words: every contract stage has a phrase, and generation counts clips, steps or frames."""

from __future__ import annotations

import pytest

from core.contract import ErrorCode, Stage
from dashboard.jobs import STAGE_WORDS, _log_line, stage_words


def test_every_stage_of_the_contract_has_words() -> None:
    stages = {value for name, value in vars(Stage).items() if name.isupper() and isinstance(value, str)}
    assert stages == set(STAGE_WORDS)
    assert all("_" not in words for words in STAGE_WORDS.values()), "words, not identifiers"


@pytest.mark.parametrize(
    ("stage", "details", "words"),
    [
        # InfiniteTalk: sampling steps inside each clip.
        (Stage.GENERATION, {"done": 12, "total": 24, "chunk": 2, "chunks": 3, "step": 4, "steps": 8},
         "Generating: clip 2 of 3, step 4 of 8"),
        # The preview engine: frames.
        (Stage.GENERATION, {"done": 25, "total": 81, "chunk": 1, "chunks": 2, "frame": 25, "frames": 81},
         "Generating: clip 1 of 2, frame 25 of 81"),
        (Stage.GENERATION, {"done": 25, "total": 81}, "Generating: progress 25 of 81"),
        (Stage.GENERATION, {"reloading": "fp8 + LoRA"}, "Loading other weights (fp8 + LoRA)"),
        (Stage.MUXING_STARTED, {}, "Encoding the video"),
        (Stage.GENERATION_STARTED, {"frames": 81, "width": 640}, "Starting to generate 81 frames"),
        (Stage.ERROR, {"code": "E_WORKER_LOST"}, "Stopped by an error (E_WORKER_LOST)"),
        (Stage.ERROR, {"code": ErrorCode.CANCELLED}, "Cancelled"),
        ("a_future_stage", {}, "a_future_stage"),
    ],
)  # fmt: skip
def test_a_progress_event_reads_as_words(stage: str, details: dict, words: str) -> None:
    assert stage_words(stage, details) == words


def test_a_log_line_is_time_percent_and_words_without_raw_counters() -> None:
    """`generation done=25 total=81 chunk=1 chunks=2` was the whole line before."""
    event = {"at": "2026-01-02T03:04:05Z", "stage": Stage.GENERATION, "pct": 40.0,
             "details": {"done": 25, "total": 81, "chunk": 1, "chunks": 2, "frame": 25, "frames": 81}}  # fmt: skip
    line = _log_line(event)
    assert line.endswith(" 40.0%  Generating: clip 1 of 2, frame 25 of 81")
    assert "=" not in line and "generation" not in line
