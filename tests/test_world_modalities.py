"""Tests for the shapes world's extra modalities: depth maps (Phase 4) and rendered text (Phase 5)."""
from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from utils.world import (
    BACKGROUND_RGB,
    DEPTH_MIN_GAP,
    DEPTH_RANGE,
    TEXT_ALPHABET,
    Scene,
    World,
    nearest_object,
    object_depths,
    render,
    render_depth,
    render_text,
    sample_scene,
    sample_text,
)

BG = np.array(BACKGROUND_RGB, dtype=np.uint8)

# sha256 of the annotations of World(0) items train/val 0..4, computed with utils/world.py before depth and
# text were added: the new modalities use their own rng streams and must not change any existing output.
ITEM_ANNOTATIONS_DIGEST = "6faa6c6d567bc4b9ae85370b834161c221ecc4c10aaa618d3837028db7201716"
ITEM_KEYS = ["boxes", "caption", "caption_matches", "image", "index", "labels", "qa", "scene"]


def centre_pixel(obj, image_size: int) -> tuple[int, int]:
    """(row, col) of the pixel containing the object's centre (inside every shape, far from its edges)."""
    return int(obj.y * image_size), int(obj.x * image_size)


# ---------------------------------------------------------------------------------------------------------
# Existing outputs unchanged


def test_item_unchanged_by_new_modalities():
    h = hashlib.sha256()
    for split in ("train", "val"):
        for i in range(5):
            world = World(0)
            before = world.item(split, i)
            world.depth_map(split, i)
            world.text_item(split, i)
            it = world.item(split, i)
            assert sorted(it) == ITEM_KEYS
            assert np.array_equal(it["image"], before["image"]) and it["qa"] == before["qa"]
            assert np.array_equal(it["image"], render(it["scene"]))
            h.update(repr((it["caption"], it["caption_matches"], it["qa"], it["labels"], it["boxes"].tolist(),
                           it["index"])).encode())
            h.update(repr(it["scene"]).encode())
    assert h.hexdigest() == ITEM_ANNOTATIONS_DIGEST


# ---------------------------------------------------------------------------------------------------------
# Depth (Phase 4)


def test_depth_deterministic_and_index_dependent():
    a, b = World(0), World(0)
    assert a.depth_map("train", 3).tobytes() == b.depth_map("train", 3).tobytes()
    assert a.depths("train", 3).tobytes() == b.depths("train", 3).tobytes()
    assert a.depth_map("train", 3).tobytes() != a.depth_map("train", 4).tobytes()
    assert a.depth_map("train", 3).tobytes() != a.depth_map("val", 3).tobytes()
    scene = a.scene("train", 3)
    assert object_depths(scene, np.random.default_rng(5)).tobytes() == object_depths(
        scene, np.random.default_rng(5)
    ).tobytes()


def test_depths_in_range_and_distinct():
    rng = np.random.default_rng(0)
    scenes = World(1).scenes("train", 200) + [sample_scene(rng, n_objects=6) for _ in range(50)]
    lo, hi = DEPTH_RANGE
    for scene in scenes:
        d = object_depths(scene, rng)
        assert d.dtype == np.float32 and d.shape == (len(scene),)
        assert np.all((d >= lo) & (d <= hi)), d
        for x, y in itertools.combinations(d.tolist(), 2):
            assert abs(x - y) >= DEPTH_MIN_GAP, d
    # depths spread over the whole range, and the nearest object is not always the first one
    all_d = np.concatenate([World(1).depths("val", i) for i in range(200)])
    assert all_d.min() < lo + 0.05 and all_d.max() > hi - 0.05
    firsts = [int(np.argmin(World(1).depths("val", i))) for i in range(200) if len(World(1).scene("val", i)) > 1]
    assert 0 < firsts.count(0) < len(firsts)


@pytest.mark.parametrize("size", [32, 64])
def test_depth_map_values_and_alignment_with_rgb(size):
    world = World(2, image_size=size)
    images, maps, scenes, depths = world.depth_arrays("train", 40)
    assert images.shape == (40, size, size, 3) and images.dtype == np.uint8
    assert maps.shape == (40, size, size) and maps.dtype == np.float32 and len(scenes) == len(depths) == 40
    for i, (image, dmap, scene, d) in enumerate(zip(images, maps, scenes, depths)):
        assert np.array_equal(dmap, world.depth_map("train", i)) and np.array_equal(d, world.depths("train", i))
        assert np.array_equal(image, render(scene, size))
        assert dmap[0, 0] == 1.0 and dmap.max() == 1.0 and dmap.min() == d.min()
        for obj, depth in zip(scene.objects, d):
            assert dmap[centre_pixel(obj, size)] == depth  # fully covered pixels hold the exact depth
        # Same silhouettes as the RGB render. Every colour differs from the background by >= 35 in some
        # channel, so even a 1/16-covered edge pixel changes the RGB value: the masks agree exactly.
        foreground = (image != BG).any(axis=-1)
        assert np.array_equal(foreground, dmap < 1.0)
        # anti-aliased edges blend object depth with the background, never beyond either
        assert np.all(dmap >= d.min())


def test_render_depth_background_only_and_length_check():
    empty = render_depth(Scene(()), [], 32)
    assert empty.shape == (32, 32) and np.all(empty == 1.0)
    scene = World(0).scene("train", 0)
    with pytest.raises(AssertionError):
        render_depth(scene, [0.5] * (len(scene) + 1))


def test_nearest_object():
    world = World(3)
    for i in range(50):
        scene, d = world.scene("test", i), world.depths("test", i)
        near = nearest_object(scene, d)
        assert all(depth > d.min() for o, depth in zip(scene.objects, d) if o is not near)
        assert world.depth_map("test", i)[centre_pixel(near, world.image_size)] == d.min()


# ---------------------------------------------------------------------------------------------------------
# Rendered text (Phase 5)


def test_text_alphabet_and_sampling():
    assert len(set(TEXT_ALPHABET)) == len(TEXT_ALPHABET) == 30
    assert not set("IOQ018") & set(TEXT_ALPHABET)
    rng = np.random.default_rng(0)
    texts = [sample_text(rng, 6) for _ in range(200)]
    assert all(len(t) == 6 and set(t) <= set(TEXT_ALPHABET) for t in texts)
    assert len(set(texts)) == len(texts)
    assert set("".join(texts)) == set(TEXT_ALPHABET)


def test_text_item_deterministic_and_index_dependent():
    a, b = World(0), World(0)
    ia, ib = a.text_item("train", 1), b.text_item("train", 1)
    assert sorted(ia) == ["image", "text"] and ia["text"] == ib["text"]
    assert ia["image"].tobytes() == ib["image"].tobytes()
    other = a.text_item("train", 2)
    assert other["text"] != ia["text"] and other["image"].tobytes() != ia["image"].tobytes()
    assert np.array_equal(ia["image"], render_text(ia["text"]))
    wide = a.text_item("val", 0, length=8, height=32, width=256)
    assert len(wide["text"]) == 8 and wide["image"].shape == (32, 256, 3)


def test_render_text_pixels():
    image = render_text("AB3K")
    assert image.shape == (32, 128, 3) and image.dtype == np.uint8
    ink = (image.astype(int).sum(-1) < BG.astype(int).sum() - 60)  # clearly darker than the background
    assert ink.sum() > 50
    assert np.all(image[0] == BG) and np.all(image[-1] == BG)  # margin above and below
    rows, cols = np.nonzero(ink)
    assert abs((rows.min() + rows.max()) / 2 - 15.5) <= 1.5 and abs((cols.min() + cols.max()) / 2 - 63.5) <= 1.5
    assert 0.5 * 32 <= rows.max() - rows.min() + 1 <= 0.8 * 32  # glyphs fill about two thirds of the height
    assert not np.array_equal(render_text("AB3K"), render_text("AB3X"))
    assert render_text("AB3K").tobytes() == image.tobytes()


@pytest.mark.parametrize("length,width", [(4, 128), (8, 256)])
def test_text_fits(length, width):
    for text in ("W" * length, "M" * length, sample_text(np.random.default_rng(length), length)):
        image = render_text(text, 32, width)
        assert image.shape == (32, width, 3)
        assert np.all(image[:, 0] == BG) and np.all(image[:, -1] == BG)  # nothing touches the sides
    with pytest.raises(AssertionError):
        render_text("W" * (length + 2), 32, width)
