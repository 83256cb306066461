"""Submit's face picker: which face in the photo speaks, as the job's `bbox`.

In a photo with two people, the worker has to be told who is person 1 and who is person 2; typing a bbox by
hand was the only way. Here the photo (or a video's first frame) is shown with the faces found on it boxed and
numbered. Clicking a face assigns it to the person being set (person 1, or person 2 when two speak); dragging
draws a box by hand where no face was found; a choice per person says the same in words and can be set without
the picture (what the AppTests drive). The faces are found by the worker's own detector
(worker.faces.face_boxes), so the boxes shown are the ones the preview engine animates;
InfiniteTalk takes the same boxes as each person's region.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from core.contract import JobError, Limits
from worker.faces import default_box, face_boxes
from worker.media import run_ffmpeg

AUTO = "Found by the worker"
DRAW = "A box I draw"
PERSON_COLOURS = {"person1": ((245, 159, 0), "orange"), "person2": ((28, 126, 214), "blue")}
"""Each person's colour (RGB) and its Streamlit Markdown name: the person's box on the picture and the square in
that person's controls share it, so a face is tied to its person at a glance (issue 29)."""
FREE = (255, 255, 255)
"""A face nobody was given: white, with a dark rim, readable on light and dark photos alike."""
SHOWN_WIDTH = 960
"""The picture is drawn at least this wide: a small photo's boxes and numbers were thin and tiny once the browser
scaled the 387 px picture (issue 29); lines and labels are sized for this width."""
SIDES = ("left", "top", "right", "bottom")
DRAG_PX = 8
"""A press and release further apart than this (on the shown picture) is a drawn box, not a click."""


def _decode(data: bytes, kind: str) -> np.ndarray | None:
    """The photo, or the video's first frame, as RGB."""
    import cv2

    if kind == "video":
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "video"
            source.write_bytes(data)
            try:
                data = run_ffmpeg(
                    ["-i", str(source), "-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "pipe:1"],
                    at_stage="face picker",
                    what="the video's first frame",
                )
            except (JobError, subprocess.SubprocessError):
                return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@st.cache_data(max_entries=16, show_spinner="Looking for faces…")
def faces(data: bytes, kind: str) -> tuple[np.ndarray | None, list[list[int]]]:
    """The picture and the faces found on it (bbox lists, left to right)."""
    image = _decode(data, kind)
    return image, face_boxes(image) if image is not None else []


def line_width(shown_width: int) -> int:
    """How thick a box's line is on a picture this wide: 6 px at SHOWN_WIDTH."""
    return max(4, round(shown_width / 160))


def person_mark(person: int) -> str:
    """A person's square in their colour, for the labels of that person's controls (`:orange[■] Person 1`)."""
    return f":{PERSON_COLOURS[f'person{person}'][1]}[■] Person {person}"


def drawn(image: np.ndarray, boxes: list[list[int]], chosen: dict[str, list[int] | None]) -> np.ndarray:
    """The picture, at least SHOWN_WIDTH wide, with every found face in a thick box under a large filled label:
    "Face N" in white while nobody has it, "Person N" in that person's colour once given."""
    import cv2

    scale = max(1.0, SHOWN_WIDTH / image.shape[1])
    out = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale > 1 else image.copy()
    thickness = line_width(out.shape[1])
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, out.shape[1] / SHOWN_WIDTH
    given = {tuple(box): person for person, box in chosen.items() if box}

    def mark(box: tuple[int, ...], colour: tuple[int, int, int], text: str, ink: tuple[int, int, int]) -> None:
        left, top, right, bottom = (round(v * scale) for v in box)
        cv2.rectangle(out, (left, top), (right, bottom), (20, 20, 20), thickness + 4)  # a dark rim
        cv2.rectangle(out, (left, top), (right, bottom), colour, thickness)
        (width, height), base = cv2.getTextSize(text, font, font_scale, 2)
        pad = round(6 * font_scale)
        cv2.rectangle(out, (left, top), (left + width + 2 * pad, top + height + base + 2 * pad), colour, -1)
        cv2.putText(out, text, (left + pad, top + height + pad), font, font_scale, ink, 2, cv2.LINE_AA)

    for index, box in enumerate(boxes, 1):
        if tuple(box) not in given:
            mark(tuple(box), FREE, f"Face {index}", (20, 20, 20))
    for corners, person in given.items():
        colour = PERSON_COLOURS[person][0]
        mark(corners, colour, f"Person {person[-1]}", (20, 20, 20) if person == "person1" else (255, 255, 255))
    return out


def _start_box(person: int, size: tuple[int, int], people: int) -> list[int]:
    """Where a hand-drawn box starts: where a face most likely is."""
    width, height = size
    x, y, w, h = default_box(width, height, person - 1, people)
    return [max(0, round(x)), max(0, round(y)), min(width, round(x + w)), min(height, round(y + h))]


def _hand_box(person: int, size: tuple[int, int], people: int, key: str) -> list[int] | None:
    """Four numbers for a box drawn by hand (dragging on the picture fills them in)."""
    width, height = size
    start = _start_box(person, size, people)
    columns = st.columns(4)
    limits = (width, height, width, height)
    values = [
        int(column.number_input(name, 0, limit, start[i], key=f"{key}.person{person}.{name}"))
        for i, (column, name, limit) in enumerate(zip(columns, SIDES, limits, strict=True))
    ]
    if values[2] - values[0] < Limits.MIN_BBOX_SIDE or values[3] - values[1] < Limits.MIN_BBOX_SIDE:
        st.warning(
            f"Person {person}'s box needs right > left and bottom > top, at least {Limits.MIN_BBOX_SIDE} px apart "
            "(the worker refuses a smaller box).",
            icon=":material/crop_free:",
        )
        return None
    return values


def _held(person: int, boxes: list[list[int]], size: tuple[int, int], people: int, key: str) -> list[int] | None:
    """What the form holds for a person so far (before its widgets are drawn this run), to draw on the picture."""
    choice = st.session_state.get(f"{key}.person{person}", AUTO)
    if choice == DRAW:
        start = _start_box(person, size, people)
        return [int(st.session_state.get(f"{key}.person{person}.{n}", v)) for n, v in zip(SIDES, start, strict=True)]
    if isinstance(choice, str) and choice.startswith("Face "):
        index = int(choice.removeprefix("Face ")) - 1
        return boxes[index] if index < len(boxes) else None
    return None


def _take_pointer(value: dict | None, boxes: list[list[int]], size: tuple[int, int], person: int, key: str) -> bool:
    """Apply a click (the face under it goes to `person`) or a drag (a box drawn by hand for `person`); True when
    the form changed. Each pointer event is taken once (its time is remembered)."""
    if not value or "x1" not in value or value.get("unix_time") == st.session_state.get(f"{key}.pointer"):
        return False
    st.session_state[f"{key}.pointer"] = value.get("unix_time")
    width, height = size
    scale = width / max(1, float(value.get("width") or width))
    x1, y1, x2, y2 = (float(value[name]) for name in ("x1", "y1", "x2", "y2"))
    if abs(x2 - x1) > DRAG_PX and abs(y2 - y1) > DRAG_PX:
        drawn_box = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
        limits = (width, height, width, height)
        box = [min(limit, max(0, round(v * scale))) for v, limit in zip(drawn_box, limits, strict=True)]
        st.session_state[f"{key}.person{person}"] = DRAW
        for name, v in zip(SIDES, box, strict=True):
            st.session_state[f"{key}.person{person}.{name}"] = v
        return True
    x, y = x1 * scale, y1 * scale
    hit = next((i for i, b in enumerate(boxes) if b[0] <= x <= b[2] and b[1] <= y <= b[3]), None)
    if hit is None:
        st.toast("No face there: click inside a box, or drag to draw one.", icon=":material/crop_free:")
        return False
    st.session_state[f"{key}.person{person}"] = f"Face {hit + 1}"
    return True


def pick(data: bytes | None, kind: str | None, people: int, key: str) -> dict[str, list[int]] | None:
    """Draw the picker for a photo or video; return the job's bbox, or None to let the worker find the faces."""
    if data is None or kind not in ("image", "video"):
        return None
    image, boxes = faces(data, kind)
    if image is None:
        return None
    height, width = image.shape[:2]
    found = len(boxes)
    note = f"{found} face{'s' if found != 1 else ''} found" if found else "no face found: draw a box by hand"
    options = [AUTO, *(f"Face {index}" for index in range(1, found + 1)), DRAW]
    for person in range(1, people + 1):
        if st.session_state.get(f"{key}.person{person}", AUTO) not in options:  # a new photo with fewer faces
            st.session_state.pop(f"{key}.person{person}", None)
    with st.expander(f"Who speaks · {note}", expanded=people > 1 or found > 1):
        target = 1
        if people > 1:
            setting = st.radio(
                "Clicking sets",
                ["Person 1", "Person 2"],
                key=f"{key}.target",
                horizontal=True,
                format_func=lambda name: person_mark(int(name[-1])),
            )
            target = int(setting[-1])
        held = {f"person{n}": _held(n, boxes, (width, height), people, key) for n in range(1, people + 1)}
        pointer = streamlit_image_coordinates(
            drawn(image, boxes, held), key=f"{key}.picture", width="stretch", click_and_drag=True,
            cursor="crosshair",
        )  # fmt: skip
        st.caption(
            "Click a face to give it to the person being set (its box takes that person's colour), or drag to draw "
            "a box by hand."
        )
        if _take_pointer(pointer, boxes, (width, height), target, key):
            st.rerun()
        chosen: dict[str, list[int] | None] = {}
        for person in range(1, people + 1):
            choice = st.selectbox(f"{person_mark(person)}'s face", options, key=f"{key}.person{person}")
            if choice == DRAW:
                chosen[f"person{person}"] = _hand_box(person, (width, height), people, key)
            elif choice.startswith("Face "):
                chosen[f"person{person}"] = boxes[int(choice.removeprefix("Face ")) - 1]
            else:
                chosen[f"person{person}"] = None
        if chosen.get("person2") and not chosen.get("person1"):
            st.caption("Pick person 1's face too: a box for person 2 alone is not used.")
    if not chosen.get("person1"):
        return None
    return {name: box for name, box in chosen.items() if box}
