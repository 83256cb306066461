"""Submit's face picker: which face in the photo speaks, as the job's `bbox`.

In a photo with two people, the worker has to be told who is person 1 and who is person 2; typing a bbox by
hand was the only way. Here the photo (or a video's first frame) is shown with the faces found on it boxed and
numbered, and a choice per person assigns a face, or a box drawn by hand where no face was found. The faces are
found by the worker's own detector (worker.engines.preview_face.face_boxes), so the boxes shown are the ones the
preview engine animates; InfiniteTalk takes the same boxes as each person's region.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from worker.contract import JobError
from worker.engines.preview_face import default_box, face_boxes
from worker.media import run_ffmpeg

AUTO = "Found by the worker"
DRAW = "A box I draw"
COLOURS = [(255, 196, 0), (0, 200, 255), (170, 170, 170)]
"""Person 1's box, person 2's box, a face nobody was given (RGB)."""


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


def drawn(image: np.ndarray, boxes: list[list[int]], chosen: dict[str, list[int] | None]) -> np.ndarray:
    """The picture with every found face boxed and numbered, and each person's box in that person's colour."""
    import cv2

    out = image.copy()
    thickness = max(2, round(min(image.shape[:2]) / 200))
    given = {tuple(box): person for person, box in chosen.items() if box}
    for index, box in enumerate(boxes, 1):
        if tuple(box) not in given:
            cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), COLOURS[2], thickness)
            cv2.putText(out, str(index), (box[0] + 4, box[1] + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, COLOURS[2], 2)
    for box, person in given.items():
        colour = COLOURS[0] if person == "person1" else COLOURS[1]
        cv2.rectangle(out, box[:2], box[2:], colour, thickness + 1)
        label = f"P{person[-1]}"
        cv2.putText(out, label, (box[0] + 4, box[1] + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
    return out


def _hand_box(person: int, size: tuple[int, int], people: int, key: str) -> list[int] | None:
    """Four numbers for a box drawn by hand, starting where a face most likely is."""
    width, height = size
    x, y, w, h = default_box(width, height, person - 1, people)
    start = [max(0, round(x)), max(0, round(y)), min(width, round(x + w)), min(height, round(y + h))]
    columns = st.columns(4)
    names = ("left", "top", "right", "bottom")
    limits = (width, height, width, height)
    values = [
        int(column.number_input(name, 0, limit, start[i], key=f"{key}.person{person}.{name}"))
        for i, (column, name, limit) in enumerate(zip(columns, names, limits, strict=True))
    ]
    if values[2] <= values[0] or values[3] <= values[1]:
        st.warning(f"Person {person}'s box needs right > left and bottom > top.", icon=":material/crop_free:")
        return None
    return values


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
    with st.expander(f"Who speaks · {note}", expanded=people > 1 or found > 1):
        options = [AUTO, *(f"Face {index}" for index in range(1, found + 1)), DRAW]
        chosen: dict[str, list[int] | None] = {}
        for person in range(1, people + 1):
            choice = st.selectbox(f"Person {person}'s face", options, key=f"{key}.person{person}")
            if choice == DRAW:
                chosen[f"person{person}"] = _hand_box(person, (width, height), people, key)
            elif choice.startswith("Face "):
                chosen[f"person{person}"] = boxes[int(choice.removeprefix("Face ")) - 1]
            else:
                chosen[f"person{person}"] = None
        st.image(drawn(image, boxes, chosen), caption="Numbered: the faces found. P1, P2: the people's faces.")
        if chosen.get("person2") and not chosen.get("person1"):
            st.caption("Pick person 1's face too: a box for person 2 alone is not used.")
    if not chosen.get("person1"):
        return None
    return {name: box for name, box in chosen.items() if box}
