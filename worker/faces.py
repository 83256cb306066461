"""Faces: finding them with OpenCV's bundled Haar cascades (the preview engine, and the face picker the
dashboard draws from the same boxes), and moving mouth and eyes (the preview engine's FaceRig).

A `FaceRig` is built once per face box. Opening the mouth is a smooth vertical remap around the lip line (the
lower lip and jaw slide down, the upper lip a little up) with a dark mouth interior faded into the gap; a blink
pulls the eyelid skin down over each eye. Both touch only small regions, so a frame costs a fraction of a
millisecond per face.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import cv2

Box = tuple[float, float, float, float]
"""(x, y, w, h) in output pixels."""

MOUTH_LINE = 0.79
"""Where the lips meet, as a fraction of a Haar face box's height."""
MAX_OPENING = 0.085
"""The widest jaw drop, as a fraction of the face box's height."""
UPPER_LIP_SHARE = 0.3
"""How much of the opening the upper lip takes (it moves up while the jaw moves down)."""
MOUTH_INTERIOR_RGB = np.array([74.0, 30.0, 30.0], np.float32)


@cache
def _cascade(name: str) -> cv2.CascadeClassifier:
    import cv2
    import cv2.data  # the Haar cascades' folder; cv2's stubs only know it imported by name

    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise FileNotFoundError(f"OpenCV's {name} is missing from {cv2.data.haarcascades}")
    return classifier


FACE_CASCADE = "haarcascade_frontalface_alt2.xml"
"""alt2 rejects the helmets, patches and hands that the default frontal cascade mistakes for faces."""
EYE_CASCADE = "haarcascade_eye.xml"


def load_detectors() -> None:
    """Load the face and eye cascades now, so a missing file fails at start-up, not mid-job."""
    _cascade(FACE_CASCADE)
    _cascade(EYE_CASCADE)


def find_faces(frame: np.ndarray, limit: int = 2) -> list[Box]:
    """The `limit` most confident frontal faces in an RGB frame, ordered left to right."""
    import cv2

    gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    side = min(gray.shape)
    found, _, weights = _cascade(FACE_CASCADE).detectMultiScale3(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 12),) * 2, outputRejectLevels=True
    )
    ranked = sorted(zip(weights, found, strict=True), key=lambda pair: float(pair[0]), reverse=True)
    boxes: list[Box] = [(float(x), float(y), float(w), float(h)) for _, (x, y, w, h) in ranked[:limit]]
    return sorted(boxes, key=lambda b: b[0])


PICKABLE_FACES = 6
"""The most faces Submit's face picker offers."""


def face_boxes(image: np.ndarray, limit: int = PICKABLE_FACES) -> list[list[int]]:
    """The faces in an RGB image as `[x_min, y_min, x_max, y_max]` in its own pixels, left to right.

    This is the one detector: Submit's face picker shows these boxes and puts the chosen ones in the job's bbox,
    and the preview engine finds faces (and the face inside a bbox) with the same `find_faces`.
    """
    return [[round(x), round(y), round(x + w), round(y + h)] for x, y, w, h in find_faces(image, limit=limit)]


def default_box(width: int, height: int, person: int, people: int) -> Box:
    """Where a face most likely is when none is found: centred, or in the left/right half for two people."""
    side = min(width / (2.6 if people == 2 else 2.2), height / 2.2)
    centre_x = width * ((0.25 + 0.5 * person) if people == 2 else 0.5)
    return (centre_x - side / 2, height * 0.42 - side / 2, side, side)


def mouth_box(face: Box) -> tuple[int, int, int, int]:
    """The mouth region (x0, y0, x1, y1) the rig animates; tests measure motion inside it."""
    x, y, w, h = face
    cx, cy = x + w / 2, y + MOUTH_LINE * h
    return int(cx - 0.3 * w), int(cy - 0.12 * h), int(cx + 0.3 * w), int(cy + 0.16 * h)


def _find_eyes(frame: np.ndarray, face: Box) -> list[Box]:
    import cv2

    x, y, w, h = (round(v) for v in face)
    x0, y0 = max(0, x), max(0, y)
    upper = frame[y0 : max(y0 + 1, y + int(h * 0.6)), x0 : max(x0 + 1, x + w)]
    if upper.size == 0 or min(upper.shape[:2]) < 20:
        return []
    gray = cv2.equalizeHist(cv2.cvtColor(upper, cv2.COLOR_RGB2GRAY))
    found = _cascade(EYE_CASCADE).detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=6, minSize=(max(8, w // 10),) * 2, maxSize=(w // 3,) * 2
    )
    eyes = sorted(found, key=lambda e: e[2] * e[3], reverse=True)[:2]
    if len(eyes) < 2:
        return []
    return sorted(((x0 + ex, y0 + ey, ew, eh) for ex, ey, ew, eh in eyes), key=lambda e: e[0])


@dataclass
class _Region:
    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def around(cls, cx: float, cy: float, half_w: float, half_h: float, width: int, height: int) -> _Region | None:
        x0, y0 = max(0, int(cx - half_w)), max(0, int(cy - half_h))
        x1, y1 = min(width, int(cx + half_w) + 1), min(height, int(cy + half_h) + 1)
        return cls(x0, y0, x1, y1) if x1 - x0 > 2 and y1 - y0 > 2 else None

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        ys, xs = np.mgrid[self.y0 : self.y1, self.x0 : self.x1].astype(np.float32)
        return xs, ys


class FaceRig:
    """Mouth and eyelid animation for one face in frames of a fixed size."""

    def __init__(self, frame: np.ndarray, face: Box) -> None:
        height, width = frame.shape[:2]
        x, y, w, h = face
        self.face = face
        self.opening = MAX_OPENING * h
        cx, cy = x + w / 2, y + MOUTH_LINE * h
        self.mouth_centre = (cx, cy)
        self.mouth = _Region.around(cx, cy, 0.36 * w, 0.24 * h, width, height)
        if self.mouth is not None:
            xs, ys = self.mouth.grid()
            nx = (xs - cx) / (0.27 * w)
            ny = (ys - cy) / (0.2 * h)
            across = np.exp(-2.2 * nx**2)
            below = np.clip(1.0 - ny, 0.0, 1.0) ** 1.5 * (ny >= 0)
            above = np.clip(1.0 + ny, 0.0, 1.0) ** 1.5 * (ny < 0)
            # Where each output pixel samples from per unit of opening: below the lip line from higher up
            # (content slides down), above it from lower down (the upper lip rises).
            self._shift = (across * (below * (1 - UPPER_LIP_SHARE) - above * UPPER_LIP_SHARE)).astype(np.float32)
            self._xs, self._ys = xs, ys
            self._dx = (xs - cx) / (0.17 * w)
        eyes = _find_eyes(frame, face)
        if not eyes:
            eyes = [(x + w * fx - 0.11 * w, y + 0.38 * h - 0.06 * h, 0.22 * w, 0.12 * h) for fx in (0.31, 0.69)]
        self.eyes = [
            region
            for ex, ey, ew, eh in eyes
            if (region := _Region.around(ex + ew / 2, ey + eh / 2, ew * 0.42, eh * 0.3, width, height)) is not None
        ]

    def apply(self, frame: np.ndarray, openness: float, closure: float) -> None:
        """Open the mouth by `openness` and close the eyes by `closure` (both 0..1), in place."""
        if openness > 0 and self.mouth is not None:
            self._open_mouth(frame, openness)
        if closure > 0:
            for region in self.eyes:
                self._close_eye(frame, region, closure)

    def _open_mouth(self, frame: np.ndarray, openness: float) -> None:
        import cv2

        region = self.mouth
        assert region is not None
        gap = self.opening * openness
        patch = frame[region.y0 : region.y1, region.x0 : region.x1]
        map_y = self._ys - gap * self._shift
        moved = cv2.remap(
            frame, self._xs, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        ).astype(np.float32)
        # The dark inside of the mouth fills the gap between the parted lips.
        _, cy = self.mouth_centre
        half_gap = max(gap * 0.5, 0.5)
        centre = cy + gap * (0.5 - UPPER_LIP_SHARE)
        dy = (self._ys - centre) / half_gap
        r = self._dx**2 * (1.0 + 0.6 * openness) + dy**2
        # Soft-edged and lighter at the top, so the upper teeth of a smile stay visible through it.
        alpha = np.clip((1.0 - r) * 2.0, 0.0, 1.0) * min(1.0, openness * 3.0)
        alpha *= 0.35 + 0.5 * np.clip((dy + 1.0) / 2.0, 0.0, 1.0)
        shade = 1.0 - 0.4 * np.clip(dy, 0.0, 1.0)
        interior = MOUTH_INTERIOR_RGB[None, None, :] * shade[..., None]
        alpha = alpha[..., None]
        patch[...] = np.clip(moved * (1.0 - alpha) + interior * alpha, 0, 255).astype(np.uint8)

    @staticmethod
    def _close_eye(frame: np.ndarray, region: _Region, closure: float) -> None:
        patch = frame[region.y0 : region.y1, region.x0 : region.x1].astype(np.float32)
        rows, cols = patch.shape[:2]
        # The closed lid: skin blended from the rows just above and below the eye, with a darker lash line.
        ramp = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None, None]
        lid = (patch[:1] * (1.0 - ramp) + patch[-1:] * ramp) * 0.97
        lash = np.exp(-(((ramp[..., 0] - (0.3 + 0.4 * closure)) * rows / max(1.0, rows / 10)) ** 2))[..., None]
        lid *= 1.0 - 0.45 * lash
        ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
        ellipse = ((xs - cols / 2) / (cols / 2)) ** 2 + ((ys - rows / 2) / (rows / 2)) ** 2
        drawn = np.clip((rows * closure + 1.0 - ys) / 2.0, 0.0, 1.0)
        alpha = (drawn * np.clip((1.0 - ellipse) * 1.6, 0.0, 1.0) * min(1.0, closure * 1.2))[..., None]
        blended = patch * (1.0 - alpha) + lid * alpha
        frame[region.y0 : region.y1, region.x0 : region.x1] = np.clip(blended, 0, 255).astype(np.uint8)
