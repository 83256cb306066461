"""Face boxes (`bbox`) are checked against the picture they mark, and as numbers (issue 27): a box beyond the
picture, 2**63, 1e30, a 1-pixel box and booleans all ran to success without a word. Each is now one
E_INPUT_VALIDATION naming the field and what to send instead, before any frame is decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.contract import ErrorCode, JobParams
from core.settings import Settings
from tests.conftest import EXAMPLES
from worker.pipeline import run_job

PORTRAIT = str(EXAMPLES / "media" / "portrait.jpg")  # 512×512
TWO_PEOPLE = str(EXAMPLES / "media" / "two_people.jpg")
SPEECH = [str(EXAMPLES / "media" / f"speech_{n}.wav") for n in (1, 2)]


def run(tmp_path: Path, bbox: Any, cond_video: str = PORTRAIT, speakers: int = 1) -> dict[str, Any]:
    audio = {f"person{n + 1}": SPEECH[n] for n in range(speakers)}
    payload = {"prompt": "p", "cond_video": cond_video, "cond_audio": audio, "mode": "clip", "frame_num": 5,
               "bbox": bbox}  # fmt: skip
    return run_job(payload, "bbox-job", settings=Settings(data_dir=tmp_path, input_roots=(EXAMPLES,)), sink=print)


@pytest.mark.parametrize(
    ("box", "says"),
    [
        ([0, 0, 5000, 5000], "bbox.person1: [0, 0, 5000, 5000] reaches beyond the 512×512 picture; give a box "
         "inside it (x_max <= 512, y_max <= 512), or leave bbox out to let the worker find the faces"),
        ([600, 600, 700, 700], "reaches beyond the 512×512 picture"),
        ([100, 100, 513, 300], "reaches beyond the 512×512 picture"),
        ([0, 0, 2**63, 100], "bbox.person1: give [x_min, y_min, x_max, y_max] in the picture's pixels: each "
         "between 0 and 8192"),
        ([0, 0, 1e30, 100], "bbox.person1: give [x_min, y_min, x_max, y_max] in the picture's pixels: four whole "
         "numbers, not true/false, fractions or text"),
        ([0, 0, 100.0, 100], "four whole numbers"),
        ([True, False, 100, 100], "four whole numbers"),
        ([0, 0, "100", 100], "four whole numbers"),
        ([10, 10, 11, 11], "bbox.person1: the box is 1×1 px; draw it around the face, at least 16 px a side"),
        ([10, 10, 200, 20], "the box is 190×10 px"),
        ([-1, 0, 100, 100], "each between 0 and 8192"),
        ([100, 0, 50, 100], "with x_max > x_min and y_max > y_min"),
    ],
)  # fmt: skip
def test_a_box_that_cannot_mark_a_face_in_the_picture_is_one_clear_error(tmp_path: Path, box: Any, says: str) -> None:
    output = run(tmp_path, {"person1": box})
    assert output["status"] == "error", output
    error = output["error"]
    assert error["code"] == ErrorCode.INPUT_VALIDATION and not error["retryable"]
    assert says in error["message"] and "\n" not in error["message"]
    assert not list(tmp_path.rglob("*.mp4")), "refused before anything was made"


def test_the_second_persons_box_is_named_when_it_is_the_one_outside(tmp_path: Path) -> None:
    output = run(tmp_path, {"person1": [10, 10, 200, 200], "person2": [0, 0, 9000, 100]}, TWO_PEOPLE, speakers=2)
    assert output["error"]["message"].startswith("bbox.person2: ")


def test_a_box_inside_the_picture_still_runs_edge_to_edge(tmp_path: Path) -> None:
    output = run(tmp_path, {"person1": [0, 0, 512, 512]})
    assert output["status"] == "success", output


def test_the_contract_holds_what_it_can_check_without_the_picture() -> None:
    """The dashboard validates with the same model before sending (a job never leaves with a 1-pixel box)."""
    base = {"prompt": "p", "cond_video": PORTRAIT, "cond_audio": {"person1": SPEECH[0]}}
    assert JobParams.model_validate({**base, "bbox": {"person1": [0, 0, 16, 16]}}).bbox is not None
    for box in ([0, 0, 15, 16], [0, 0, True, 16], [0, 0, 8193, 16], [0.5, 0, 16, 16]):
        with pytest.raises(ValueError, match=r"bbox\.person1"):
            JobParams.model_validate({**base, "bbox": {"person1": box}})
