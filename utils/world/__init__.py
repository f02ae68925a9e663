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
can be measured. ``World(cooccurrence=p)`` (Phase 9) gives the world a co-occurrence prior: with probability p a
scene's first object comes with its partner, one of four common "hub" classes (``PARTNERS``, ``HUBS``), as people and
chairs keep turning up together in real photos; p = 0 (the default) leaves every scene as it was. Everything is
seeded: the same ``World(seed)`` gives byte-identical images and identical
text in any process (no global RNG, no Python ``hash()``, no set-iteration order).

Typical use::

    world = World(seed=0)
    images, scenes = world.arrays("train", 2000)      # uint8 (N, 64, 64, 3) + scene graphs
    item = world.item("val", 3)                       # one example with every annotation
    ds = world.dataset("train", 1000)                 # torch Dataset, images as float CHW in [0, 1]
    show_gallery(images[:16], [caption(s) for s in scenes[:16]])

The package, one module per part of the world (later phases add theirs here: phrases and accents, UI
screens, the noisy web crawl, environments for agents):

* ``vocabulary``     shapes, colours, sizes, RGB values, splits, layout constants
* ``scene``          scene graphs (``Obj``, ``Scene``) and ``sample_scene``
* ``rendering``      ``render``: a scene graph to an anti-aliased uint8 image
* ``language``       ``caption`` (five paraphrase templates) and ``questions`` (``QA``)
* ``depth``          hidden per-object depths and the depth map (Phase 4)
* ``rendered_text``  ``render_text``: short strings in DejaVu Sans (Phase 5)
* ``dataset``        ``World``: seeded splits, items, arrays, a torch ``Dataset``
* ``display``        ``show_gallery``
* ``video``          ``VideoWorld``: clips of shapes moving in one of four directions (Phase 2), all of them or one
                     while the others stay still (Phase 6)
* ``speech``         the spoken words of data/speech/: ``load_speech``, ``voice_split``, ``WORDS`` (Phase 2)
* ``reach``          ``ShapesReach``: a gymnasium environment, move a gripper to the named object, and its scripted
                     expert (Phase 10)
* ``ui``             ``ShapesUI``: screens of a small interface (menus, buttons, fields with text labels, random
                     layouts) and a gymnasium environment of clicks on them, one or two per task, with its scripted
                     expert (Phase 10's GUI agent)
* ``crawl``          ``Crawl``: a noisy web crawl of image–alt-text records with every defect labelled (duplicates,
                     thumbnails, banners, watermarks, an unsafe stand-in, generic or wrong alt text; Phase 8;
                     datasheet: docs/datasheets/shapes-crawl.md)

Everything public of the image world is re-exported here, so ``from utils.world import World, caption`` is the way
to import it. ``video``, ``speech``, ``crawl``, ``reach`` and ``ui`` are imported as modules (``from utils.world import
crawl``): ``import utils.world`` does not load them (speech needs soundfile and the files in data/speech/, reach and
ui need gymnasium; video and crawl are worlds of their own built on the image world).
"""
from __future__ import annotations

from .dataset import ShapesDataset, World, collate
from .depth import BACKGROUND_DEPTH, DEPTH_MIN_GAP, DEPTH_RANGE, nearest_object, object_depths, render_depth
from .display import show_gallery, to_hwc_uint8
from .language import (
    CAPTION_TEMPLATES,
    POSITION_MIN_DELTA,
    QA,
    QA_KINDS,
    answer,
    caption,
    join_phrases,
    position_phrase,
    questions,
)
from .rendered_text import TEXT_ALPHABET, TEXT_FONT_SCALE, TEXT_RGB, render_text, sample_text
from .rendering import check_image_size, polygon, render
from .scene import Obj, Scene, describe, sample_scene
from .vocabulary import (
                         BACKGROUND_RGB,
                         COLOR_RGB,
                         COLORS,
                         DEFAULT_HOLDOUT,
                         GAP,
                         HUBS,
                         MARGIN,
                         MAX_IMAGE_SIZE,
                         MIN_IMAGE_SIZE,
                         NUMBER_WORDS,
                         PARTNERS,
                         PLURAL,
                         SHAPES,
                         SIZE_SCALE,
                         SIZES,
                         SPLITS,
                         SUPERSAMPLE,
                         Transform,
                         class_id,
                         class_names,
)

__all__ = [
    "BACKGROUND_DEPTH", "BACKGROUND_RGB", "CAPTION_TEMPLATES", "COLORS", "COLOR_RGB", "DEFAULT_HOLDOUT",
    "DEPTH_MIN_GAP", "DEPTH_RANGE", "GAP", "HUBS", "MARGIN", "MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "NUMBER_WORDS",
    "Obj", "PARTNERS", "PLURAL", "POSITION_MIN_DELTA", "QA", "QA_KINDS", "SHAPES", "SIZES", "SIZE_SCALE", "SPLITS",
    "SUPERSAMPLE",
    "Scene", "ShapesDataset", "TEXT_ALPHABET", "TEXT_FONT_SCALE", "TEXT_RGB", "Transform", "World", "answer", "caption",
    "check_image_size", "class_id", "class_names", "collate", "describe", "join_phrases", "nearest_object",
    "object_depths", "polygon", "position_phrase", "questions", "render", "render_depth", "render_text", "sample_scene",
    "sample_text", "show_gallery", "to_hwc_uint8",
]
