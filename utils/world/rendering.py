"""Rendering a scene graph to an anti-aliased uint8 image (Phase 0)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .scene import Obj, Scene
from .vocabulary import BACKGROUND_RGB, COLOR_RGB, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, SUPERSAMPLE


def check_image_size(image_size: int) -> None:
    assert MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE, f"image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}"


def polygon(obj: Obj, scale: float) -> list[tuple[float, float]] | None:
    """Polygon vertices in canvas pixels for the polygonal shapes; None for the circle."""
    cx, cy, h = obj.x * scale, obj.y * scale, obj.half * scale
    if obj.shape == "square":
        h *= 0.85  # a full-box square looks much bigger than the other shapes
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if obj.shape == "triangle":
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if obj.shape == "diamond":
        return [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    return None


def render(scene: Scene, image_size: int = 64, background: tuple[int, int, int] = BACKGROUND_RGB) -> np.ndarray:
    """Draw a scene as a uint8 array of shape (image_size, image_size, 3).

    Shapes are drawn with PIL on a SUPERSAMPLE-times larger canvas and reduced with a box filter, which gives
    anti-aliased edges and bit-exact, platform-independent output.
    """
    check_image_size(image_size)
    big = image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), background)
    draw_objects(ImageDraw.Draw(canvas), scene, big)
    return np.array(canvas.reduce(SUPERSAMPLE))  # a writable copy


def draw_objects(draw: ImageDraw.ImageDraw, scene: Scene, scale: float) -> None:
    """Draw a scene's objects onto a PIL canvas ``scale`` pixels wide (what :func:`render` does before it reduces;
    the environments of Phase 10 draw more on top)."""
    for obj in scene.objects:
        fill = COLOR_RGB[obj.color]
        poly = polygon(obj, scale)
        if poly is None:
            cx, cy, h = obj.x * scale, obj.y * scale, obj.half * scale
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
        else:
            draw.polygon(poly, fill=fill)


