"""Scene graphs: objects with a shape, colour, size and position; sampling a scene (Phase 0)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .vocabulary import COLORS, GAP, MARGIN, PARTNERS, SHAPES, SIZE_SCALE, SIZES


@dataclass(frozen=True)
class Obj:
    """One object: a shape of some colour and size, centred at (x, y) in normalised [0, 1] coordinates."""

    shape: str
    color: str
    size: str
    x: float
    y: float

    @property
    def half(self) -> float:
        """Half the side of the object's bounding box, in normalised units."""
        return SIZE_SCALE[self.size] / 2

    def bbox(self, image_size: int) -> tuple[int, int, int, int]:
        """Pixel bounding box (x0, y0, x1, y1) in an image of ``image_size`` pixels; x1, y1 are exclusive."""
        h, s = self.half, image_size
        return (
            max(0, math.floor((self.x - h) * s)),
            max(0, math.floor((self.y - h) * s)),
            min(s, math.ceil((self.x + h) * s)),
            min(s, math.ceil((self.y + h) * s)),
        )

    def describe(self) -> str:
        """Short noun phrase, e.g. ``"small red circle"``."""
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A scene graph: a tuple of objects. Within a scene every (colour, shape) pair is unique, so a phrase
    like "the red circle" always names exactly one object."""

    objects: tuple[Obj, ...]

    def __len__(self) -> int:
        return len(self.objects)

    def count(self, shape: str | None = None, color: str | None = None, size: str | None = None) -> int:
        """Number of objects matching every given attribute (``None`` matches anything)."""
        return sum(
            (shape is None or o.shape == shape)
            and (color is None or o.color == color)
            and (size is None or o.size == size)
            for o in self.objects
        )

    def has(self, shape: str | None = None, color: str | None = None, size: str | None = None) -> bool:
        """True if at least one object matches every given attribute."""
        return self.count(shape, color, size) > 0

    def find(self, color: str, shape: str) -> Obj | None:
        """The object with this (colour, shape), or ``None``."""
        for o in self.objects:
            if o.color == color and o.shape == shape:
                return o
        return None

    def labels(self) -> list[tuple[str, str, str]]:
        """(colour, shape, size) of every object, in scene order."""
        return [(o.color, o.shape, o.size) for o in self.objects]

    def boxes(self, image_size: int) -> np.ndarray:
        """Pixel boxes of every object, int64 array of shape (n, 4), rows (x0, y0, x1, y1)."""
        return np.array([o.bbox(image_size) for o in self.objects], dtype=np.int64).reshape(-1, 4)


def describe(obj: Obj) -> str:
    """Short noun phrase for an object, e.g. ``"small red circle"``."""
    return obj.describe()


def _overlaps(a: Obj, b: Obj) -> bool:
    """True if the two objects' boxes, grown by GAP, intersect."""
    d = a.half + b.half + GAP
    return abs(a.x - b.x) < d and abs(a.y - b.y) < d


def sample_scene(
    rng: np.random.Generator,
    n_objects: int | None = None,
    holdout: frozenset[tuple[str, str]] = frozenset(),
    min_objects: int = 1,
    max_objects: int = 4,
    cooccurrence: float = 0.0,
) -> Scene:
    """Sample a random scene with ``n_objects`` objects (default: uniform in [min_objects, max_objects]).

    Objects lie fully inside the image, their boxes are at least GAP apart, every (colour, shape) pair
    occurs at most once, and no (colour, shape) pair in ``holdout`` is ever used. Placement is rejection
    sampling; the result depends only on the state of ``rng``.

    With ``cooccurrence`` p > 0, a scene of two or more objects gets, with probability p, its first object's
    partner (:data:`PARTNERS`, one of the hub classes) as its second object, when the partner is not held out and
    not already there. At p = 0 no extra random number is drawn, so every scene is the same as before the knob.
    """
    if n_objects is None:
        n_objects = int(rng.integers(min_objects, max_objects + 1))
    assert 1 <= n_objects <= 6, f"n_objects must be in 1..6, got {n_objects}"
    pairs = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in holdout]  # fixed order
    while True:  # retry the whole scene in the (rare) case the objects do not fit
        objects: list[Obj] = []
        chosen = rng.choice(len(pairs), size=n_objects, replace=False)
        if cooccurrence > 0 and n_objects >= 2 and rng.random() < cooccurrence:
            partner = PARTNERS[pairs[int(chosen[0])]]
            if partner in pairs and pairs.index(partner) not in chosen:
                chosen[1] = pairs.index(partner)
        for k in chosen:
            color, shape = pairs[int(k)]
            size = SIZES[int(rng.integers(len(SIZES)))]
            lo = SIZE_SCALE[size] / 2 + MARGIN
            for _ in range(100):
                x, y = rng.uniform(lo, 1 - lo, size=2)
                obj = Obj(shape, color, size, round(float(x), 4), round(float(y), 4))
                if not any(_overlaps(obj, other) for other in objects):
                    objects.append(obj)
                    break
            else:
                break  # could not place this object: start over
        if len(objects) == n_objects:
            return Scene(tuple(objects))


