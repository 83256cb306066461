"""Output framing shared by every engine: the video's size for a size bucket, and how the input maps onto it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worker.contract import SIZES

MIN_ASPECT = 9 / 16
MAX_ASPECT = 16 / 9
"""Inputs wider or taller than this are centre-cropped to it, as InfiniteTalk's size buckets stop there."""


def _multiple_of_16(value: float) -> int:
    return max(16, round(value / 16.0) * 16)


def output_size(width: int, height: int, size: str) -> tuple[int, int]:
    """The (width, height) of the video: the input's aspect ratio (clamped) at the size bucket's area."""
    short, long = SIZES[size]
    aspect = min(max(width / height, MIN_ASPECT), MAX_ASPECT)
    area = short * long
    out_h = math.sqrt(area / aspect)
    return _multiple_of_16(out_h * aspect), _multiple_of_16(out_h)


@dataclass(frozen=True)
class Fit:
    """Scale-to-cover then centre-crop: how input pixels land in the output frame."""

    scale: float
    offset_x: float
    offset_y: float

    @classmethod
    def cover(cls, src_w: int, src_h: int, dst_w: int, dst_h: int) -> Fit:
        """The transform that fills dst with src, cropping the overflow equally on both sides."""
        scale = max(dst_w / src_w, dst_h / src_h)
        return cls(scale, (src_w * scale - dst_w) / 2.0, (src_h * scale - dst_h) / 2.0)

    def box(self, box: list[int] | tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """An input [x0, y0, x1, y1] box as output (x, y, w, h)."""
        x0, y0, x1, y1 = box
        return (
            x0 * self.scale - self.offset_x,
            y0 * self.scale - self.offset_y,
            (x1 - x0) * self.scale,
            (y1 - y0) * self.scale,
        )


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB image to cover width×height and crop the centre."""
    import cv2

    src_h, src_w = image.shape[:2]
    fit = Fit.cover(src_w, src_h, width, height)
    scaled_w = max(width, round(src_w * fit.scale))
    scaled_h = max(height, round(src_h * fit.scale))
    interpolation = cv2.INTER_AREA if fit.scale < 1 else cv2.INTER_CUBIC
    scaled = cv2.resize(image, (scaled_w, scaled_h), interpolation=interpolation)
    x0 = (scaled_w - width) // 2
    y0 = (scaled_h - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])
