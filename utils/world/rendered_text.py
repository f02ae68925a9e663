"""Rendered text: short random strings in DejaVu Sans, for reading at low resolution (Phase 5)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .vocabulary import BACKGROUND_RGB, SUPERSAMPLE

# Upper-case letters and digits without the easily confused I/1, O/0/Q and 8/B: a 30-character alphabet in
# which every string is unambiguous to read, even at low resolution.
TEXT_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ2345679"
TEXT_RGB: tuple[int, int, int] = (30, 30, 30)
TEXT_FONT_SCALE = 0.9  # default font size / image height; DejaVu capitals are 0.73 em, so ~66% of the height


@lru_cache(maxsize=16)
def text_font(size_px: int) -> ImageFont.FreeTypeFont:
    """matplotlib's bundled DejaVu Sans at ``size_px`` pixels (cached): the font of the world's rendered text and of
    its interface screens (:mod:`utils.world.ui`)."""
    from matplotlib import font_manager  # imported lazily, as in show_gallery

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), size_px)


def render_text(text: str, height: int = 32, width: int = 128, font_px: int | None = None) -> np.ndarray:
    """Draw ``text`` as a uint8 array (height, width, 3): dark TEXT_RGB glyphs, centred (by ink) on BACKGROUND_RGB.

    Introduced in Phase 5. Font: DejaVu Sans (bundled with matplotlib), ``font_px`` pixels (default
    TEXT_FONT_SCALE * height, so capitals fill about two thirds of the height). Drawn on a SUPERSAMPLE-times
    larger canvas and box-filtered down like :func:`render`; deterministic for a given Pillow/FreeType.
    Asserts that the text fits with a margin of one pixel on every side.
    """
    assert text, "render_text needs a non-empty string"
    font_px = round(TEXT_FONT_SCALE * height) if font_px is None else font_px
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    font = text_font(font_px * SUPERSAMPLE)
    x0, y0, x1, y1 = font.getbbox(text)
    assert x1 - x0 <= big_w - 2 * SUPERSAMPLE, f"{text!r} at {font_px}px does not fit in width {width}"
    assert y1 - y0 <= big_h - 2 * SUPERSAMPLE, f"{text!r} at {font_px}px does not fit in height {height}"
    canvas = Image.new("RGB", (big_w, big_h), BACKGROUND_RGB)
    origin = ((big_w - (x1 - x0)) // 2 - x0, (big_h - (y1 - y0)) // 2 - y0)
    ImageDraw.Draw(canvas).text(origin, text, font=font, fill=TEXT_RGB)
    return np.array(canvas.reduce(SUPERSAMPLE))


def sample_text(rng: np.random.Generator, length: int = 4) -> str:
    """A random string of ``length`` characters from TEXT_ALPHABET. Introduced in Phase 5."""
    return "".join(TEXT_ALPHABET[int(i)] for i in rng.integers(len(TEXT_ALPHABET), size=length))


