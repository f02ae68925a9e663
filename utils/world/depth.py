"""Depth: each object's hidden distance and the depth map, a third modality (Phase 4)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .rendering import check_image_size, polygon
from .scene import Obj, Scene
from .vocabulary import SUPERSAMPLE

DEPTH_RANGE: tuple[float, float] = (0.2, 0.8)  # object depths (distance from the camera); background is 1.0
DEPTH_MIN_GAP = 0.1  # any two objects' depths differ by at least this, so "nearest" is never ambiguous
BACKGROUND_DEPTH = 1.0


def object_depths(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Depth of every object of ``scene``, float32 (n,) in DEPTH_RANGE, pairwise at least DEPTH_MIN_GAP apart.

    Introduced in Phase 4. Depth is independent of size and position, so it cannot be read from the RGB
    image. Sampled uniformly among valid configurations (sorted uniform draws spread by the gap, then shuffled
    over the objects); the result depends only on the state of ``rng``.
    """
    n = len(scene)
    lo, hi = DEPTH_RANGE
    gap = DEPTH_MIN_GAP + 1e-3  # slack so the guarantee survives rounding to 4 decimals and float32
    assert (n - 1) * gap <= hi - lo, f"{n} objects do not fit in DEPTH_RANGE with gap {DEPTH_MIN_GAP}"
    spread = np.sort(rng.uniform(0.0, hi - lo - (n - 1) * gap, size=n)) + gap * np.arange(n) + lo
    depths = np.empty(n, dtype=np.float32)
    depths[rng.permutation(n)] = np.round(spread, 4)
    return depths


def render_depth(scene: Scene, depths: Sequence[float], image_size: int = 64) -> np.ndarray:
    """Depth map of a scene, float32 (image_size, image_size): BACKGROUND_DEPTH (1.0) where no object is, and
    each object's silhouette filled with its depth.

    Introduced in Phase 4. Silhouettes are exactly those of :func:`render` (same geometry on the same
    SUPERSAMPLE canvas, box-filtered down), so the map aligns pixel-for-pixel with the RGB image; edge pixels
    average object and background depth by coverage. Fully covered pixels hold the object's depth exactly.
    """
    check_image_size(image_size)
    assert len(depths) == len(scene), "need one depth per object"
    big = image_size * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)  # 0 = background, k + 1 = object k
    draw = ImageDraw.Draw(canvas)
    for k, obj in enumerate(scene.objects):
        poly = polygon(obj, big)
        if poly is None:
            cx, cy, h = obj.x * big, obj.y * big, obj.half * big
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=k + 1)
        else:
            draw.polygon(poly, fill=k + 1)
    labels = np.asarray(canvas).reshape(image_size, SUPERSAMPLE, image_size, SUPERSAMPLE)
    total = np.zeros((image_size, image_size))  # float64: sum of subpixel depths, exact for full coverage
    covered = np.zeros((image_size, image_size), dtype=np.int64)
    for k in range(len(scene)):
        count = (labels == k + 1).sum(axis=(1, 3))
        total += count * float(np.float32(depths[k]))
        covered += count
    total += (SUPERSAMPLE**2 - covered) * BACKGROUND_DEPTH
    return (total / SUPERSAMPLE**2).astype(np.float32)


def nearest_object(scene: Scene, depths: Sequence[float]) -> Obj:
    """The object with the smallest depth (closest to the camera). Introduced in Phase 4."""
    assert len(depths) == len(scene) > 0
    return scene.objects[int(np.argmin(np.asarray(depths)))]


