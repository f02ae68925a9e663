"""A noisy web crawl of the shapes world, every defect labelled (Phase 8).

A data pipeline (deduplication, a safety filter, CLIP-score filtering, size and aspect filters, a text-overlay
score, recaptioning) is only as good as the precision and recall of its stages, and those can be measured only
against the truth. :class:`Crawl` delivers image–alt-text records the way a web scrape does — encoded bytes of any
size, PNG or JPEG, alt text good, generic or wrong, duplicates and near-duplicates — and with each record the set
of its true defects. Record ``i`` is a pure function of (seed, i): the same seed gives the same bytes in any process,
in any order of access.

The defects (``DEFECTS``; a record has none, one, or an image defect and a text defect):

* ``exact_duplicate``  the same bytes as an earlier record (the first copy is not marked); it keeps that record's
                       image defects
* ``near_duplicate``   an earlier record's image cropped by up to 2 pixels a side and resized back, brightness
                       jittered and re-encoded as JPEG; it keeps that record's image defects
* ``low_resolution``   a thumbnail, at most 16 pixels on a side
* ``extreme_aspect``   a banner or a strip: one side at least three times the other
* ``text_overlay``     a watermark burnt into the pixels (rendered letters across the image)
* ``unsafe``           the stand-in for content that must be removed (below)
* ``generic_text``     alt text that says nothing about the image: "IMG_0423.jpg", "photo", "untitled"...
* ``wrong_text``       the caption of another scene
* ``partial_text``     alt text that names one of the scene's objects and no other ("a blue square", "red circle"):
                       true but short, the commonest kind of web alt text, which recaptioning is for

The stand-in for unsafe content is a marked pattern, a band of magenta and black hazard stripes across the image.
It stands for NSFW and child sexual abuse material, whose removal is mandatory and is done in practice with
hash-matching services run by child-safety organisations and with trained classifiers — never with hand-made rules,
and never by collecting such material. A pattern lets the course measure a safety filter's recall without any.

Typical use::

    crawl = Crawl(seed=0)
    record = crawl.record(17)              # CrawlRecord: key, url, alt_text, data (bytes), defects, scene, ...
    image = record.image()                 # uint8 (H, W, 3), decoded as a pipeline would
    records = crawl.records(5000)          # the first 5,000 records
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .language import CAPTION_TEMPLATES, caption
from .rendered_text import render_text, sample_text
from .rendering import render
from .scene import Scene, sample_scene
from .vocabulary import DEFAULT_HOLDOUT

IMAGE_DEFECTS: tuple[str, ...] = ("exact_duplicate", "near_duplicate", "low_resolution", "extreme_aspect",
                                  "text_overlay", "unsafe")
TEXT_DEFECTS: tuple[str, ...] = ("generic_text", "wrong_text", "partial_text")
DEFECTS: tuple[str, ...] = IMAGE_DEFECTS + TEXT_DEFECTS
INHERITED: frozenset[str] = frozenset({"low_resolution", "extreme_aspect", "text_overlay", "unsafe"})
# How often each defect is drawn for a record (image defects are exclusive; text defects too); the rest is clean.
DEFAULT_RATES: dict[str, float] = {"exact_duplicate": 0.08, "near_duplicate": 0.08, "low_resolution": 0.05,
                                   "extreme_aspect": 0.05, "text_overlay": 0.08, "unsafe": 0.02,
                                   "generic_text": 0.10, "wrong_text": 0.15, "partial_text": 0.35}
PARTIAL_ALT_TEXTS: tuple[str, ...] = ("a {size} {color} {shape}", "{color} {shape}", "a {color} {shape}",
                                      "{size} {color} {shape}", "my {color} {shape}")
GENERIC_ALT_TEXTS: tuple[str, ...] = ("IMG_{n:04d}.jpg", "DSC_{n:04d}.JPG", "photo", "image", "untitled",
                                      "picture {n}", "screenshot_{n}.png", "click here", "thumbnail", "")
DOMAINS: tuple[str, ...] = ("shapes-blog.example", "img.cdn-shapes.example", "forum.shapes.example",
                            "shop.shapes.example", "wiki.shapes.example")
HAZARD_RGB: tuple[tuple[int, int, int], tuple[int, int, int]] = ((230, 0, 200), (20, 20, 20))
IMAGE_SIZE = 64       # the size an original image is rendered at
# Web images are busier than one shape on grey: with single-object scenes, independently drawn originals often look
# alike (one small shape in a similar place) and near-duplicate truth stops meaning much (see the datasheet).
MIN_OBJECTS = 2
CRAWL_STREAM = 8      # the crawl's generators: default_rng([seed, CRAWL_STREAM, index, part])


@dataclass(frozen=True)
class CrawlRecord:
    """One downloaded record: what a pipeline sees (``key``, ``url``, ``alt_text``, ``data``) and the truth about
    it (``defects``; ``scene``, the scene the image shows, and ``source``, the record an image was copied from)."""

    index: int
    key: str
    url: str
    alt_text: str
    data: bytes                 # the encoded image, as downloaded
    format: str                 # "png" or "jpeg"
    defects: tuple[str, ...]    # sorted, from DEFECTS; () for a clean record
    scene: Scene                # the scene shown (for a duplicate: its source's scene)
    source: int | None = None   # for exact and near duplicates: the index of the record copied

    def image(self) -> np.ndarray:
        """The decoded image, uint8 (H, W, 3)."""
        return np.array(Image.open(io.BytesIO(self.data)).convert("RGB"))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, read from the encoded header."""
        return Image.open(io.BytesIO(self.data)).size

    @property
    def true_caption(self) -> str:
        """The caption of the scene the image shows (template 0): what a perfect recaptioner would write."""
        return caption(self.scene)

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes: equal for exact duplicates, and the exact-dedup key."""
        return hashlib.sha256(self.data).hexdigest()


class Crawl:
    """A seeded, deterministic crawl of image–alt-text records with their true defects.

    Scenes are drawn as the training split of the world draws them (the ``holdout`` pairs never appear), with
    ``min_objects`` to 4 objects, so a model trained on the crawl can be tested on the world's clean val and test
    scenes. ``rates`` overrides :data:`DEFAULT_RATES` (a defect's probability per record; image defects exclude each
    other, text defects too).
    """

    def __init__(self, seed: int = 0, rates: dict[str, float] | None = None,
                 holdout=DEFAULT_HOLDOUT, image_size: int = IMAGE_SIZE, min_objects: int = MIN_OBJECTS) -> None:
        self.seed = seed
        self.rates = {**DEFAULT_RATES, **(rates or {})}
        unknown = set(self.rates) - set(DEFECTS)
        assert not unknown, f"unknown defects {sorted(unknown)}; choose from {DEFECTS}"
        assert sum(self.rates[d] for d in IMAGE_DEFECTS) <= 1 and sum(self.rates[d] for d in TEXT_DEFECTS) <= 1
        self.holdout = frozenset(holdout)
        self.image_size = image_size
        self.min_objects = min_objects

    def __repr__(self) -> str:
        return f"Crawl(seed={self.seed}, min_objects={self.min_objects}, rates={self.rates})"

    def _rng(self, index: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, CRAWL_STREAM, index, part])

    def _draw(self, index: int, kinds: tuple[str, ...], part: int) -> str | None:
        """The defect among ``kinds`` drawn for record ``index`` (None: clean on that side)."""
        u = self._rng(index, part).random()
        for kind in kinds:
            if u < self.rates[kind]:
                return kind
            u -= self.rates[kind]
        return None

    def image_defect(self, index: int) -> str | None:
        """The image defect drawn for record ``index``, or None (record 0 has nothing to copy: never a duplicate)."""
        kind = self._draw(index, IMAGE_DEFECTS, 0)
        return None if index == 0 and kind in ("exact_duplicate", "near_duplicate") else kind

    def source(self, index: int) -> int:
        """The record whose image record ``index`` shows: itself, or for a duplicate the original it copies (a
        duplicate of a duplicate goes back to the original)."""
        while self.image_defect(index) in ("exact_duplicate", "near_duplicate"):
            index = int(self._rng(index, 1).integers(index))
        return index

    def scene(self, index: int) -> Scene:
        """The scene record ``index`` was drawn with (the world's training distribution, ``min_objects``..4 objects)."""
        return sample_scene(self._rng(index, 2), None, self.holdout, self.min_objects)

    def record(self, index: int) -> CrawlRecord:
        """Record ``index``: a pure function of (seed, index)."""
        kind = self.image_defect(index)
        original = self.source(index)
        scene = self.scene(original)
        rng = self._rng(index, 3)
        if kind == "exact_duplicate":
            copied = self.record(original)
            data, fmt, image_defects = copied.data, copied.format, set(copied.defects) & INHERITED
        elif kind == "near_duplicate":
            copied = self.record(original)
            data, fmt = _encode(near_copy(copied.image(), rng), "jpeg", int(rng.integers(60, 90)))
            image_defects = set(copied.defects) & INHERITED
        else:
            image = self.original_image(scene, kind, rng)
            fmt = "jpeg" if rng.random() < 0.3 else "png"
            data, fmt = _encode(image, fmt, 92)
            image_defects = set()
        defects = image_defects | ({kind} if kind else set())
        alt_text, text_defect = self._alt_text(index, scene)
        if text_defect:
            defects.add(text_defect)
        ext = "jpg" if fmt == "jpeg" else "png"
        url = f"https://{DOMAINS[int(rng.integers(len(DOMAINS)))]}/media/{int(rng.integers(10**6)):06d}.{ext}"
        return CrawlRecord(index, f"crawl-{index:07d}", url, alt_text, data, fmt,
                           tuple(sorted(defects, key=DEFECTS.index)), scene,
                           original if kind in ("exact_duplicate", "near_duplicate") else None)

    def original_image(self, scene: Scene, kind: str | None, rng: np.random.Generator) -> np.ndarray:
        """The pixels of a record that is not a duplicate: the rendered scene, with its image defect applied."""
        image = render(scene, self.image_size)
        if kind == "low_resolution":
            side = int(rng.integers(8, 17))
            return np.array(Image.fromarray(image).resize((side, side), Image.BOX))
        if kind == "extreme_aspect":
            return banner(image, ratio=int(rng.integers(3, 6)), wide=bool(rng.random() < 0.5))
        if kind == "text_overlay":
            return overlay_text(image, sample_text(rng, int(rng.integers(3, 6))), rng)
        if kind == "unsafe":
            return hazard_band(image, rng)
        return image

    def _alt_text(self, index: int, scene: Scene) -> tuple[str, str | None]:
        """(alt text, its text defect or None)."""
        kind = self._draw(index, TEXT_DEFECTS, 4)
        rng = self._rng(index, 5)
        if kind == "generic_text":
            return GENERIC_ALT_TEXTS[int(rng.integers(len(GENERIC_ALT_TEXTS)))].format(n=int(rng.integers(10**4))), kind
        if kind == "wrong_text":
            other = sample_scene(rng, None, self.holdout, self.min_objects)
            while caption(other) == caption(scene):
                other = sample_scene(rng, None, self.holdout, self.min_objects)
            return caption(other, template=int(rng.integers(CAPTION_TEMPLATES))), kind
        if kind == "partial_text":
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            form = PARTIAL_ALT_TEXTS[int(rng.integers(len(PARTIAL_ALT_TEXTS)))]
            return form.format(size=obj.size, color=obj.color, shape=obj.shape), kind
        return caption(scene, template=int(rng.integers(CAPTION_TEMPLATES))), None

    def records(self, n: int, start: int = 0) -> list[CrawlRecord]:
        """Records ``start`` .. ``start + n - 1``."""
        return [self.record(i) for i in range(start, start + n)]


def _encode(image: np.ndarray, fmt: str, quality: int) -> tuple[bytes, str]:
    """(bytes, format) of ``image`` encoded as PNG or JPEG (Pillow: deterministic for one Pillow build)."""
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image).save(buffer, format="PNG", optimize=False)
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), fmt


def near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A re-posted copy: up to 2 pixels (of 64) cropped from each side, resized back, brightness shifted ±8 levels."""
    h, w = image.shape[:2]
    top, left, bottom, right = (int(v) for v in rng.integers(0, max(1, min(h, w) // 32) + 1, size=4))
    cropped = Image.fromarray(image[top:h - bottom, left:w - right]).resize((w, h), Image.BILINEAR)
    shift = int(rng.integers(-8, 9))
    return np.clip(np.asarray(cropped).astype(np.int16) + shift, 0, 255).astype(np.uint8)


def banner(image: np.ndarray, ratio: int, wide: bool) -> np.ndarray:
    """The image shrunk to half its side and centred in a ``ratio``:1 banner (``wide``) or strip of background."""
    side = image.shape[0] // 2
    small = np.array(Image.fromarray(image).resize((side, side), Image.BOX))
    out = np.empty((side, side * ratio, 3) if wide else (side * ratio, side, 3), np.uint8)
    out[:] = image[0, 0]
    start = (ratio - 1) * side // 2
    if wide:
        out[:, start:start + side] = small
    else:
        out[start:start + side] = small
    return out


def overlay_text(image: np.ndarray, text: str, rng: np.random.Generator) -> np.ndarray:
    """``text`` burnt across the image as a semi-transparent dark watermark, in a band at a random height."""
    h, w = image.shape[:2]
    band_h = h // 4
    glyphs = render_text(text, height=band_h, width=w).astype(np.float32)
    ink = 1.0 - glyphs.mean(-1, keepdims=True) / 235.0          # 0 on background, ~0.87 on letters
    y = int(rng.integers(0, h - band_h + 1))
    out = image.astype(np.float32)
    out[y:y + band_h] = out[y:y + band_h] * (1 - 0.8 * ink) + 20 * 0.8 * ink
    return out.round().clip(0, 255).astype(np.uint8)


def hazard_band(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The unsafe stand-in: a diagonal band of magenta and black stripes across a third of the image."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    offset = int(rng.integers(-h // 4, h // 4 + 1))
    band = np.abs(yy - xx - offset) < h // 6
    stripes = ((yy + xx) // max(2, h // 8)) % 2 == 0
    out = image.copy()
    out[band & stripes] = HAZARD_RGB[0]
    out[band & ~stripes] = HAZARD_RGB[1]
    return out
