"""Submit's face picker: the faces of a photo are found by the worker's own detector, picking one fills the job's
bbox, and the preview engine animates exactly the face picked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from catalog import Catalog
from core.contract import JobParams
from core.settings import Settings
from dashboard import state
from dashboard.face_picker import DRAW, PERSON_COLOURS, SHOWN_WIDTH, drawn, faces, person_mark
from tests.dashboard_support import MEDIA, dashboard_env, local_endpoint, open_page
from worker.engines.preview import PreviewEngine
from worker.faces import face_boxes
from worker.geometry import Fit, fit_image, output_size
from worker.media import probe, read_image, read_video_frames
from worker.prepared import PreparedJob, Speaker

TWO_PEOPLE = MEDIA / "two_people.jpg"


def video_size(path: Path) -> tuple[int, int]:
    info = probe(path, field="test")
    assert info.width and info.height
    return info.width, info.height


@pytest.fixture(scope="module")
def endpoint_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with local_endpoint(tmp_path_factory.mktemp("faces")) as env:
        yield env


@pytest.fixture
def data_dir(endpoint_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    dashboard_env(monkeypatch, Path(endpoint_env["STUDIO_DATA_DIR"]), int(endpoint_env["STUDIO_LOCAL_PORT"]))
    return Path(endpoint_env["STUDIO_DATA_DIR"])


def test_the_picker_shows_the_faces_the_worker_finds() -> None:
    image, boxes = faces(TWO_PEOPLE.read_bytes(), "image")
    assert image is not None
    assert boxes == face_boxes(read_image(TWO_PEOPLE, field="test"))
    assert len(boxes) == 2 and boxes[0][0] < image.shape[1] / 2 < boxes[1][0], "left face first, then right"


def test_each_persons_box_is_thick_large_and_in_the_colour_of_that_persons_controls() -> None:
    """Issue 29: a 387 px picture with thin grey boxes and tiny numbers, and no colour tying a face to a person."""
    image, boxes = faces(TWO_PEOPLE.read_bytes(), "image")
    assert image is not None and image.shape[1] < SHOWN_WIDTH
    out = drawn(image, boxes, {"person1": boxes[1], "person2": boxes[0]})
    scale = out.shape[1] / image.shape[1]
    assert out.shape[1] >= SHOWN_WIDTH, "drawn at least as wide as it is shown"
    for person, box in (("person1", boxes[1]), ("person2", boxes[0])):
        colour, name = PERSON_COLOURS[person]
        left, top, _, bottom = (round(v * scale) for v in box)
        middle = (top + bottom) // 2
        edge = [tuple(int(c) for c in out[middle, x]) for x in range(left - 8, left + 9)]
        assert edge.count(colour) >= 6, f"{person}: a line at least 6 px thick in its colour ({edge})"
        assert person_mark(int(person[-1])).startswith(f":{name}[■]"), "the controls carry the same colour"
    assert PERSON_COLOURS["person1"][0] != PERSON_COLOURS["person2"][0]


def test_picking_the_second_face_of_two_people_fills_the_jobs_bbox_with_it(data_dir: Path) -> None:
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload("two.jpg", TWO_PEOPLE.read_bytes(), "image/jpeg")
    at.audio_input(key="submit.p1_record").upload("one.wav", (MEDIA / "speech_2.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value("The man on the right speaks")
    at.run()
    picker = at.selectbox(key="submit.face.person1")
    assert picker.options[1:3] == ["Face 1", "Face 2"] and picker.options[-1] == DRAW
    picker.set_value("Face 2").run()
    at.button(key="submit.go").click().run()

    assert not at.exception and at.title[0].value == "Live jobs", [e.value for e in at.error]
    run = Catalog(data_dir / "catalog.db").get(at.session_state[state.SUBMITTED][-1])
    assert run is not None
    second = face_boxes(read_image(TWO_PEOPLE, field="test"))[1]
    assert run["params"]["bbox"] == {"person1": second}


def test_a_box_drawn_by_hand_becomes_the_bbox(data_dir: Path) -> None:
    at = open_page("submit")
    at.file_uploader(key="submit.cond_upload").upload("two.jpg", TWO_PEOPLE.read_bytes(), "image/jpeg")
    at.audio_input(key="submit.p1_record").upload("one.wav", (MEDIA / "speech_2.wav").read_bytes())
    at.text_area(key="submit.prompt").set_value("A box drawn by hand")
    at.run()
    at.selectbox(key="submit.face.person1").set_value(DRAW).run()
    for name, value in (("left", 500), ("top", 30), ("right", 660), ("bottom", 150)):
        at.number_input(key=f"submit.face.person1.{name}").set_value(value)
    at.button(key="submit.go").click().run()

    assert at.title[0].value == "Live jobs", [e.value for e in at.error]
    run = Catalog(data_dir / "catalog.db").get(at.session_state[state.SUBMITTED][-1])
    assert run is not None and run["params"]["bbox"] == {"person1": [500, 30, 660, 150]}


@pytest.mark.parametrize("picked", [0, 1])
def test_the_preview_animates_exactly_the_face_picked(picked: int, settings: Settings, tmp_path: Path) -> None:
    image = read_image(TWO_PEOPLE, field="test")
    box = face_boxes(image)[picked]
    params = JobParams.model_validate(
        {
            "prompt": "one of two people speaks",
            "cond_video": str(TWO_PEOPLE),
            "bbox": {"person1": box},
            "cond_audio": {"person1": str(MEDIA / "speech_2.wav")},
        }
    )
    width, height = output_size(image.shape[1], image.shape[0], params.size)
    samples = np.zeros(16000, np.float32)
    job = PreparedJob(
        job_id="picked", params=params, seed=1, work_dir=tmp_path, cond_path=TWO_PEOPLE, cond_kind="image",
        cond_size=(image.shape[1], image.shape[0]), soundtrack=tmp_path / "unused.wav",
        speakers=[Speaker("person1", tmp_path / "unused.wav", samples)], num_frames=25, width=width, height=height,
    )  # fmt: skip
    first = fit_image(image, width, height)

    (animated,) = PreviewEngine(settings)._place_faces(job, first)

    x, y, w, h = Fit.cover(image.shape[1], image.shape[0], width, height).box(box)
    centre = (animated[0] + animated[2] / 2, animated[1] + animated[3] / 2)
    assert x <= centre[0] <= x + w and y <= centre[1] <= y + h, (animated, (x, y, w, h))
    assert not job.warnings


def test_for_a_video_the_picker_shows_its_first_frame_and_the_faces_on_it() -> None:
    clip = MEDIA / "clip.mp4"
    image, boxes = faces(clip.read_bytes(), "video")
    first = next(iter(read_video_frames(clip, *video_size(clip), field="test")))

    assert image is not None and image.shape == first.shape
    assert boxes == face_boxes(image)
    assert np.abs(image.astype(int) - first.astype(int)).mean() < 4, "the first frame, not another"
