"""The world's vocabulary: shapes, colours, sizes, their RGB values, splits, layout constants (Phase 0)."""
from __future__ import annotations

from collections.abc import Callable

import torch

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES: tuple[str, ...] = ("small", "large")

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 55, 180),
    "orange": (245, 130, 15),
}
BACKGROUND_RGB: tuple[int, int, int] = (235, 235, 235)

# Side of an object's bounding box as a fraction of the image width.
SIZE_SCALE: dict[str, float] = {"small": 0.18, "large": 0.28}

PLURAL: dict[str, str] = {s: s + "s" for s in SHAPES}
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six")

Transform = Callable[[torch.Tensor], torch.Tensor]  # image tensor (3, H, W) -> tensor

SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}  # split name -> code used in the seed
DEFAULT_HOLDOUT: tuple[tuple[str, str], ...] = (("red", "triangle"),)

# Phase 9's co-occurrence prior (``World(cooccurrence=p)``): a few common "hub" classes, the way COCO has people,
# cars and chairs, and each class's partner, the hub it tends to appear with. Fixed by the vocabulary, not the seed.
HUBS: tuple[tuple[str, str], ...] = (("blue", "square"), ("green", "circle"), ("yellow", "diamond"),
                                     ("purple", "triangle"))


def _partners() -> dict[tuple[str, str], tuple[str, str]]:
    """Every class's partner: hubs pair with the next hub; the other 20 classes take the hubs in turn."""
    others = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in HUBS]
    table = {h: HUBS[(i + 1) % len(HUBS)] for i, h in enumerate(HUBS)}
    table.update({c: HUBS[i % len(HUBS)] for i, c in enumerate(others)})
    return table


PARTNERS: dict[tuple[str, str], tuple[str, str]] = _partners()

MARGIN = 0.02  # min distance between an object's box and the image border (normalised units)
GAP = 0.07  # min gap between two objects' boxes; > 2 px even at 32 px, so pixel boxes never touch
SUPERSAMPLE = 4  # render at 4x resolution, then box-filter down: anti-aliased and deterministic
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 256  # the course uses 32..64


def class_names() -> list[str]:
    """All 24 (colour, shape) classes as text, e.g. ``"red circle"``; index = class id in :func:`class_id`."""
    return [f"{c} {s}" for c in COLORS for s in SHAPES]


def class_id(color: str, shape: str) -> int:
    """Class id of a (colour, shape) pair: its index in :func:`class_names`."""
    return COLORS.index(color) * len(SHAPES) + SHAPES.index(shape)


