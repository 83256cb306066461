"""Refresh the screenshots in docs/images/ from the browser tests' full-page ones.

    .venv/bin/python -m pytest tests/test_browser.py tests/test_browser_compare.py tests/test_browser_partial.py \
        tests/test_browser_signin.py tests/test_browser_split.py
    .venv/bin/python -m tests.docs_screenshots

Each page is cropped below its last content and scaled to 1000 px wide JPEG, so docs/dashboard.md stays light.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "test-artifacts" / "screenshots"
TARGET = ROOT / "docs" / "images"
PAGES = {
    "2-submit-filled": "submit",
    "13-submit-live-meter": "submit-live-meter",
    "3-live-running": "live-running",
    "live-partial-video": "live-partial-video",
    "4-live-finished": "live-finished",
    "10-live-cancel-confirm": "live-cancel-confirm",
    "12-live-failed-retry": "live-failed-retry",
    "5-history-search": "history",
    "6-history-detail": "history-detail",
    "9-compare": "compare",
    "8-health": "health",
    "signin-1-signed-out": "signin",
    "split-2-live-parts": "live-split-parts",
    "split-4-history": "history-split",
}
WIDTH = 1000
SIDEBAR = 320


def crop_to_content(image: Image.Image) -> Image.Image:
    """Cut the blank page below the last thing drawn right of the sidebar (full-page shots are viewport-tall)."""
    region = image.crop((SIDEBAR, 0, image.width - 20, image.height))
    ground = Image.new("RGB", region.size, image.getpixel((image.width - 40, image.height - 2)))
    box = ImageChops.difference(region, ground).convert("L").point(lambda v: 255 if v > 12 else 0).getbbox()
    bottom = min(image.height, box[3] + 40) if box else image.height
    return image.crop((0, 0, image.width, max(bottom, 400)))


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for source, name in PAGES.items():
        with Image.open(SOURCE / f"{source}.png") as shot:
            page = crop_to_content(shot.convert("RGB"))
        page = page.resize((WIDTH, round(page.height * WIDTH / page.width)), Image.LANCZOS)
        page.save(TARGET / f"{name}.jpg", quality=72, optimize=True)
        print(f"docs/images/{name}.jpg  {page.width}×{page.height}")


if __name__ == "__main__":
    main()
