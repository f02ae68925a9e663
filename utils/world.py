"""The shapes world: the course's single synthetic multimodal dataset.

Introduced in Phase 0 and used by every later phase. A *scene* is a tiny scene graph: one to four coloured
shapes on a light grey canvas. From a scene we derive every modality the course needs, all exactly consistent
with each other because they are computed from the same graph:

    scene graph  ->  image (render)          ->  pixels, uint8 (H, W, 3)
                 ->  caption (caption)       ->  "a small red circle and a large blue square."
                 ->  questions (questions)   ->  QA("is there a green square?", "no", "exists")
                 ->  boxes (Obj.bbox)        ->  (x0, y0, x1, y1) in pixels
                 ->  depth (render_depth)    ->  float32 (H, W), each object's distance, 1.0 = background

Depth (Phase 4) is a hidden attribute drawn per object from its own stream: it is not visible in the RGB
image, so "which object is nearest?" needs the depth map. Rendered text (Phase 5, :func:`render_text`) is a
separate modality: short random strings drawn on the same background, for reading small text at low resolution.

Vocabulary: 4 shapes x 6 colours x 2 sizes. The (colour, shape) pairs in ``holdout`` (by default "red
triangle") never appear in the training split but do appear in val/test, so compositional generalisation
can be measured. Everything is seeded: the same ``World(seed)`` gives byte-identical images and identical
text in any process (no global RNG, no Python ``hash()``, no set-iteration order).

Typical use::

    world = World(seed=0)
    images, scenes = world.arrays("train", 2000)      # uint8 (N, 64, 64, 3) + scene graphs
    item = world.item("val", 3)                       # one example with every annotation
    ds = world.dataset("train", 1000)                 # torch Dataset, images as float CHW in [0, 1]
    show_gallery(images[:16], [caption(s) for s in scenes[:16]])
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# ----------------------------------------------------------------------------------------------------------
# Vocabulary

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


# ----------------------------------------------------------------------------------------------------------
# Scene graph


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
) -> Scene:
    """Sample a random scene with ``n_objects`` objects (default: uniform in [min_objects, max_objects]).

    Objects lie fully inside the image, their boxes are at least GAP apart, every (colour, shape) pair
    occurs at most once, and no (colour, shape) pair in ``holdout`` is ever used. Placement is rejection
    sampling; the result depends only on the state of ``rng``.
    """
    if n_objects is None:
        n_objects = int(rng.integers(min_objects, max_objects + 1))
    assert 1 <= n_objects <= 6, f"n_objects must be in 1..6, got {n_objects}"
    pairs = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in holdout]  # fixed order
    while True:  # retry the whole scene in the (rare) case the objects do not fit
        objects: list[Obj] = []
        chosen = rng.choice(len(pairs), size=n_objects, replace=False)
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


# ----------------------------------------------------------------------------------------------------------
# Rendering


def _check_image_size(image_size: int) -> None:
    assert MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE, f"image_size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}"


def _polygon(obj: Obj, scale: float) -> list[tuple[float, float]] | None:
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
    _check_image_size(image_size)
    big = image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        fill = COLOR_RGB[obj.color]
        poly = _polygon(obj, big)
        if poly is None:
            cx, cy, h = obj.x * big, obj.y * big, obj.half * big
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    return np.array(canvas.reduce(SUPERSAMPLE))  # a writable copy


# ----------------------------------------------------------------------------------------------------------
# Captions

CAPTION_TEMPLATES = 5  # number of paraphrase templates; template ids are 0..CAPTION_TEMPLATES-1


def _join(phrases: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _where(obj: Obj) -> str:
    """Coarse location of an object in the image, e.g. "in the top left" or "on the right"."""
    v = "top" if obj.y < 1 / 3 else "bottom" if obj.y > 2 / 3 else "middle"
    h = "left" if obj.x < 1 / 3 else "right" if obj.x > 2 / 3 else "center"
    if v == "middle":
        return "in the center" if h == "center" else f"on the {h}"
    return f"at the {v}" if h == "center" else f"in the {v} {h}"


def caption(scene: Scene, rng: np.random.Generator | None = None, template: int | None = None) -> str:
    """Describe a scene in one sentence, naming every object's size, colour and shape.

    ``template`` picks one of CAPTION_TEMPLATES paraphrases; if None it is drawn from ``rng`` (template 0
    when ``rng`` is None too). Templates:

    0. "a small red circle and a large blue square."
    1. "there is a small red circle and a large blue square."
    2. "two objects: a small red circle and a large blue square."
    3. "an image showing a small red circle and a large blue square."
    4. spatial: "a small red circle to the left of a large blue square." / "from top to bottom: ..." /
       single object: "a small red circle in the top left."
    """
    if template is None:
        template = 0 if rng is None else int(rng.integers(CAPTION_TEMPLATES))
    assert 0 <= template < CAPTION_TEMPLATES, f"template must be in 0..{CAPTION_TEMPLATES - 1}"
    objs = scene.objects
    listed = _join(["a " + o.describe() for o in objs])
    if template == 0:
        text = listed
    elif template == 1:
        text = "there is " + listed
    elif template == 2:
        text = f"{NUMBER_WORDS[len(objs)]} object{'s' if len(objs) > 1 else ''}: {listed}"
    elif template == 3:
        text = "an image showing " + listed
    elif len(objs) == 1:
        text = f"a {objs[0].describe()} {_where(objs[0])}"
    else:  # spatial: order along the axis on which the objects are most spread out
        xs, ys = [o.x for o in objs], [o.y for o in objs]
        horizontal = max(xs) - min(xs) >= max(ys) - min(ys)
        ordered = sorted(objs, key=(lambda o: o.x) if horizontal else (lambda o: o.y))
        phrases = ["a " + o.describe() for o in ordered]
        if len(objs) == 2:
            text = f"{phrases[0]} {'to the left of' if horizontal else 'above'} {phrases[1]}"
        else:
            text = f"from {'left to right' if horizontal else 'top to bottom'}: {_join(phrases)}"
    return text + "."


# ----------------------------------------------------------------------------------------------------------
# Questions and answers

QA_KINDS: tuple[str, ...] = ("color", "shape", "size", "count", "exists", "position")
POSITION_MIN_DELTA = 0.15  # only ask "left of"/"above" when the centres differ clearly along that axis


@dataclass(frozen=True)
class QA:
    """A question about a scene, its answer (one word: a colour, shape, size, digit, "yes" or "no"), and its kind."""

    question: str
    answer: str
    kind: str


def _candidates(scene: Scene, rng: np.random.Generator, holdout: frozenset[tuple[str, str]]) -> dict[str, list[QA]]:
    """Every question we are willing to ask about ``scene``, grouped by kind. Answers are computed from the
    scene graph, so they are correct by construction; ambiguous questions are never generated, and no
    question names a ``holdout`` (colour, shape) pair."""
    objs = scene.objects
    out: dict[str, list[QA]] = {k: [] for k in QA_KINDS}
    # color / shape: only when the reference is unambiguous
    for shape in SHAPES:
        if scene.count(shape=shape) == 1:
            o = next(o for o in objs if o.shape == shape)
            out["color"].append(QA(f"what color is the {shape}?", o.color, "color"))
    for color in COLORS:
        if scene.count(color=color) == 1:
            o = next(o for o in objs if o.color == color)
            out["shape"].append(QA(f"what shape is the {color} object?", o.shape, "shape"))
    for o in objs:  # (colour, shape) is unique within a scene
        out["size"].append(QA(f"what size is the {o.color} {o.shape}?", o.size, "size"))
    # count: all objects, every present colour/shape, plus one absent colour/shape (answer "0")
    out["count"].append(QA("how many objects are there?", str(len(objs)), "count"))
    absent_colors = [c for c in COLORS if not scene.has(color=c)]
    absent_shapes = [s for s in SHAPES if not scene.has(shape=s)]
    colors = [c for c in COLORS if scene.has(color=c)] + [absent_colors[int(rng.integers(len(absent_colors)))]]
    shapes = [s for s in SHAPES if scene.has(shape=s)]
    if absent_shapes:
        shapes.append(absent_shapes[int(rng.integers(len(absent_shapes)))])
    for c in colors:
        out["count"].append(QA(f"how many {c} objects are there?", str(scene.count(color=c)), "count"))
    for s in shapes:
        out["count"].append(QA(f"how many {PLURAL[s]} are there?", str(scene.count(shape=s)), "count"))
    # exists: one "yes" per object, and one "no" near miss per object (same shape, a colour not present)
    for o in objs:
        out["exists"].append(QA(f"is there a {o.color} {o.shape}?", "yes", "exists"))
        missing = [c for c in COLORS if not scene.has(color=c, shape=o.shape) and (c, o.shape) not in holdout]
        if missing:
            c = missing[int(rng.integers(len(missing)))]
            out["exists"].append(QA(f"is there a {c} {o.shape}?", "no", "exists"))
    # position: every ordered pair, along each axis where the centres are clearly apart (half yes, half no)
    for a in objs:
        for b in objs:
            if a is b:
                continue
            ref_a, ref_b = f"the {a.color} {a.shape}", f"the {b.color} {b.shape}"
            if abs(a.x - b.x) > POSITION_MIN_DELTA:
                out["position"].append(QA(f"is {ref_a} left of {ref_b}?", "yes" if a.x < b.x else "no", "position"))
                out["position"].append(QA(f"is {ref_a} right of {ref_b}?", "yes" if a.x > b.x else "no", "position"))
            if abs(a.y - b.y) > POSITION_MIN_DELTA:
                out["position"].append(QA(f"is {ref_a} above {ref_b}?", "yes" if a.y < b.y else "no", "position"))
                out["position"].append(QA(f"is {ref_a} below {ref_b}?", "yes" if a.y > b.y else "no", "position"))
    return out


def questions(
    scene: Scene,
    rng: np.random.Generator | None = None,
    n: int | None = None,
    holdout: frozenset[tuple[str, str]] = frozenset(),
) -> list[QA]:
    """Questions about a scene with answers that are correct by construction.

    With ``n=None`` return every candidate question (grouped by kind, in QA_KINDS order). Otherwise return
    ``n`` questions (fewer if the scene has fewer), drawn round-robin over the available kinds in a random
    order so that the kinds stay balanced. ``rng=None`` means a fixed generator (deterministic output).
    "No" questions never mention a ``holdout`` pair (World passes its holdout for the train split).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    pools = _candidates(scene, rng, holdout)
    if n is None:
        return [qa for kind in QA_KINDS for qa in pools[kind]]
    kinds = [k for k in QA_KINDS if pools[k]]
    kinds = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    out: list[QA] = []
    while len(out) < n and kinds:
        for kind in list(kinds):
            if len(out) == n:
                break
            pool = pools[kind]
            out.append(pool.pop(int(rng.integers(len(pool)))))
            if not pool:
                kinds.remove(kind)
    return out


# ----------------------------------------------------------------------------------------------------------
# Depth (Phase 4)

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
    _check_image_size(image_size)
    assert len(depths) == len(scene), "need one depth per object"
    big = image_size * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)  # 0 = background, k + 1 = object k
    draw = ImageDraw.Draw(canvas)
    for k, obj in enumerate(scene.objects):
        poly = _polygon(obj, big)
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


# ----------------------------------------------------------------------------------------------------------
# Rendered text (Phase 5)

# Upper-case letters and digits without the easily confused I/1, O/0/Q and 8/B: a 30-character alphabet in
# which every string is unambiguous to read, even at low resolution.
TEXT_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ2345679"
TEXT_RGB: tuple[int, int, int] = (30, 30, 30)
TEXT_FONT_SCALE = 0.9  # default font size / image height; DejaVu capitals are 0.73 em, so ~66% of the height


@lru_cache(maxsize=16)
def _font(size_px: int) -> ImageFont.FreeTypeFont:
    """matplotlib's bundled DejaVu Sans at ``size_px`` pixels (cached)."""
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
    font = _font(font_px * SUPERSAMPLE)
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


# ----------------------------------------------------------------------------------------------------------
# The world: splits, items, datasets


class World:
    """A seeded, infinite, deterministic source of scenes, split into "train", "val" and "test".

    Scene ``index`` of ``split`` depends only on (seed, split, index), never on call order. Train scenes never
    contain a ``holdout`` (colour, shape) pair; val/test scenes are sampled without that restriction. With
    ``mismatch_rate > 0`` a train item's caption is, with that probability, replaced by the caption of a
    different scene (noisy web-style alt text); val/test captions are always correct.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 64,
        holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT,
        mismatch_rate: float = 0.0,
        min_objects: int = 1,
        max_objects: int = 4,
        questions_per_item: int = 6,
    ) -> None:
        _check_image_size(image_size)
        assert 0.0 <= mismatch_rate <= 1.0
        assert 1 <= min_objects <= max_objects <= 4
        self.seed = seed
        self.image_size = image_size
        self.holdout: frozenset[tuple[str, str]] = frozenset((c, s) for c, s in holdout)
        for c, s in self.holdout:
            assert c in COLORS and s in SHAPES, f"unknown holdout pair {(c, s)}"
        self.mismatch_rate = mismatch_rate
        self.min_objects = min_objects
        self.max_objects = max_objects
        self.questions_per_item = questions_per_item

    def __repr__(self) -> str:
        return (
            f"World(seed={self.seed}, image_size={self.image_size}, holdout={sorted(self.holdout)}, "
            f"mismatch_rate={self.mismatch_rate}, objects={self.min_objects}..{self.max_objects})"
        )

    def _rng(self, split: str, index: int, stream: int | None = None) -> np.random.Generator:
        """Generator for (seed, split, index); ``stream`` (>= 1) gives independent generators for text etc."""
        assert split in SPLITS, f"split must be one of {tuple(SPLITS)}, got {split!r}"
        key = [self.seed, SPLITS[split], index] + ([] if stream is None else [stream])
        return np.random.default_rng(key)

    def _holdout(self, split: str) -> frozenset[tuple[str, str]]:
        return self.holdout if split == "train" else frozenset()

    def scene(self, split: str, index: int) -> Scene:
        """Scene ``index`` of ``split``; a pure function of (seed, split, index)."""
        rng = self._rng(split, index)
        return sample_scene(rng, None, self._holdout(split), self.min_objects, self.max_objects)

    def scenes(self, split: str, n: int) -> list[Scene]:
        """Scenes 0..n-1 of ``split``."""
        return [self.scene(split, i) for i in range(n)]

    def render(self, scene: Scene) -> np.ndarray:
        """Render a scene at this world's image size."""
        return render(scene, self.image_size)

    def render_all(self, scenes: Sequence[Scene]) -> np.ndarray:
        """Render scenes into one uint8 array (n, H, W, 3)."""
        images = np.empty((len(scenes), self.image_size, self.image_size, 3), dtype=np.uint8)
        for i, s in enumerate(scenes):
            images[i] = self.render(s)
        return images

    def arrays(self, split: str, n: int) -> tuple[np.ndarray, list[Scene]]:
        """Images of scenes 0..n-1 as one uint8 array (n, H, W, 3), and the scenes."""
        scenes = self.scenes(split, n)
        return self.render_all(scenes), scenes

    def item(self, split: str, index: int) -> dict[str, Any]:
        """One example with every annotation.

        Keys: "image" uint8 (H, W, 3); "caption" str; "caption_matches" bool (False only for train captions
        swapped under ``mismatch_rate``); "qa" list[QA]; "boxes" int64 (n, 4) pixel boxes (x0, y0, x1, y1);
        "labels" list of (colour, shape, size); "scene" Scene; "index" int.
        """
        scene = self.scene(split, index)
        rng = self._rng(split, index, stream=1)
        matches = not (split == "train" and rng.random() < self.mismatch_rate)
        described = scene
        while not matches:  # borrow the caption of another train scene with different contents
            other = self.scene(split, int(rng.integers(2**31)))
            if sorted(other.labels()) != sorted(scene.labels()):
                described = other
                break
        return {
            "image": self.render(scene),
            "caption": caption(described, rng),
            "caption_matches": matches,
            "qa": questions(scene, rng, self.questions_per_item, self._holdout(split)),
            "boxes": scene.boxes(self.image_size),
            "labels": scene.labels(),
            "scene": scene,
            "index": index,
        }

    def dataset(self, split: str, n: int, transform: Transform | None = None) -> ShapesDataset:
        """A torch Dataset of items 0..n-1 of ``split`` (images precomputed once)."""
        return ShapesDataset([self.item(split, i) for i in range(n)], transform)

    def single_object_split(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray, list[Scene]]:
        """Scenes with exactly one object, for (colour, shape) classification.

        Returns uint8 images (n, H, W, 3), int64 class ids (n,) indexing :func:`class_names`, and the scenes.
        Train never shows a holdout pair (so those classes can be tested zero-shot); val/test show all 24.
        """
        scenes = [sample_scene(self._rng(split, i, stream=2), 1, self._holdout(split)) for i in range(n)]
        images = self.render_all(scenes)
        labels = np.array([class_id(s.objects[0].color, s.objects[0].shape) for s in scenes], dtype=np.int64)
        return images, labels, scenes

    # Phase 4: depth (stream 3) and Phase 5: rendered text (stream 4). Neither touches streams 0-2, so
    # scenes, images, captions and QA are unchanged.

    def depths(self, split: str, index: int) -> np.ndarray:
        """Depths of the objects of scene ``index`` of ``split``, float32 (n,). Introduced in Phase 4."""
        return object_depths(self.scene(split, index), self._rng(split, index, stream=3))

    def depth_map(self, split: str, index: int) -> np.ndarray:
        """Depth map float32 (H, W) of scene ``index`` of ``split``, aligned with its image. Introduced in Phase 4."""
        return render_depth(self.scene(split, index), self.depths(split, index), self.image_size)

    def depth_arrays(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray, list[Scene], list[np.ndarray]]:
        """Scenes 0..n-1 of ``split`` as uint8 images (n, H, W, 3), float32 depth maps (n, H, W), the scenes,
        and each scene's object depths. Introduced in Phase 4."""
        images, scenes = self.arrays(split, n)
        depths = [object_depths(s, self._rng(split, i, stream=3)) for i, s in enumerate(scenes)]
        maps = np.empty((n, self.image_size, self.image_size), dtype=np.float32)
        for i, (s, d) in enumerate(zip(scenes, depths)):
            maps[i] = render_depth(s, d, self.image_size)
        return images, maps, scenes, depths

    def text_item(self, split: str, index: int, length: int = 4, height: int = 32, width: int = 128) -> dict[str, Any]:
        """A rendered random string: keys "image" uint8 (height, width, 3) and "text" str. Introduced in Phase 5."""
        text = sample_text(self._rng(split, index, stream=4), length)
        return {"image": render_text(text, height, width), "text": text}


class ShapesDataset(torch.utils.data.Dataset):
    """Items of a World as a torch Dataset; each item is the :meth:`World.item` dict with "image" turned into
    a float tensor (3, H, W) in [0, 1] (then passed through ``transform``). Use :func:`collate` with a
    DataLoader, or :meth:`tensors` for full-batch work."""

    def __init__(self, items: list[dict[str, Any]], transform: Transform | None = None) -> None:
        assert items, "a ShapesDataset needs at least one item"
        self.images = torch.from_numpy(np.stack([it["image"] for it in items]))  # uint8 (N, H, W, 3), cached
        self.items = [{k: v for k, v in it.items() if k != "image"} for it in items]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = self.images[i].permute(2, 0, 1).float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, **self.items[i]}

    @property
    def captions(self) -> list[str]:
        """Every item's caption, in order."""
        return [it["caption"] for it in self.items]

    def tensors(self) -> tuple[torch.Tensor, list[str]]:
        """All images as one float tensor (N, 3, H, W) in [0, 1] (no transform), and all captions."""
        return self.images.permute(0, 3, 1, 2).float() / 255.0, self.captions


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for ShapesDataset: stacks "image" into (B, 3, H, W), "index" and
    "caption_matches" into tensors, and keeps every other field as a list."""
    out: dict[str, Any] = {k: [b[k] for b in batch] for k in batch[0]}
    out["image"] = torch.stack(out["image"])
    out["index"] = torch.tensor(out["index"], dtype=torch.long)
    out["caption_matches"] = torch.tensor(out["caption_matches"], dtype=torch.bool)
    return out


# ----------------------------------------------------------------------------------------------------------
# Display


def _to_hwc_uint8(image: Any) -> np.ndarray:
    """Accept uint8 HWC arrays or float CHW/HWC arrays/tensors in [0, 1]; return uint8 HWC."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def show_gallery(
    images: Any,
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    cell_size: float = 1.6,
    wrap: int = 24,
):
    """Plot images in a grid, each with its (wrapped) caption above it; returns the matplotlib Figure.

    ``images`` may be a uint8 array (N, H, W, 3), a float tensor (N, 3, H, W) in [0, 1], a list of such
    images, or a list of :meth:`World.item` dicts (their captions are used when ``captions`` is None).
    """
    import matplotlib.pyplot as plt  # imported lazily: the rest of the module does not need matplotlib

    images = list(images)
    if images and isinstance(images[0], dict):
        if captions is None:
            captions = [it["caption"] for it in images]
        images = [it["image"] for it in images]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    lines = max((len(textwrap.wrap(c, wrap)) for c in captions), default=0) if captions is not None else 0
    text_h = 0.13 * lines
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell_size * ncols, (cell_size + text_h) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(_to_hwc_uint8(images[i]), interpolation="nearest")
        if captions is not None:
            ax.set_title(textwrap.fill(captions[i], wrap), fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
