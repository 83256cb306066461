"""Output framing shared by every engine: the video's size for a size bucket, and how the input maps onto it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# InfiniteTalk's own size buckets (wan/utils/multitalk_utils.py, ASPECT_RATIO_627 and ASPECT_RATIO_960): height/width
# ratio → (height, width). Every engine renders at the bucket InfiniteTalk would pick, so a preview has the
# framing of the GPU video.
BUCKETS: dict[str, dict[float, tuple[int, int]]] = {
    "infinitetalk-480": {
        0.26: (320, 1216),
        0.38: (384, 1024),
        0.50: (448, 896),
        0.67: (512, 768),
        0.82: (576, 704),
        1.00: (640, 640),
        1.22: (704, 576),
        1.50: (768, 512),
        1.86: (832, 448),
        2.00: (896, 448),
        2.50: (960, 384),
        2.83: (1088, 384),
        3.60: (1152, 320),
        3.80: (1216, 320),
        4.00: (1280, 320),
    },
    "infinitetalk-720": {
        0.22: (448, 2048),
        0.29: (512, 1792),
        0.36: (576, 1600),
        0.45: (640, 1408),
        0.55: (704, 1280),
        0.63: (768, 1216),
        0.76: (832, 1088),
        0.88: (896, 1024),
        1.00: (960, 960),
        1.14: (1024, 896),
        1.31: (1088, 832),
        1.50: (1152, 768),
        1.58: (1216, 768),
        1.82: (1280, 704),
        1.91: (1344, 704),
        2.20: (1408, 640),
        2.30: (1472, 640),
        2.67: (1536, 576),
        2.89: (1664, 576),
        3.62: (1856, 512),
        3.75: (1920, 512),
    },
}


def output_size(width: int, height: int, size: str) -> tuple[int, int]:
    """The (width, height) of the video: the size bucket whose aspect ratio is closest to the input's,
    chosen as InfiniteTalk chooses it (the input is then scaled to cover it and centre-cropped)."""
    buckets = BUCKETS[size]
    ratio = height / width
    closest = min(buckets, key=lambda key: abs(key - ratio))
    out_h, out_w = buckets[closest]
    return out_w, out_h


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
