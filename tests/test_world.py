"""Tests for utils/world.py, the shapes world: determinism, holdout, captions, QA correctness, speed."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from utils.world import (
    CAPTION_TEMPLATES,
    COLOR_RGB,
    COLORS,
    QA,
    QA_KINDS,
    SHAPES,
    SIZES,
    Scene,
    World,
    caption,
    class_id,
    class_names,
    collate,
    describe,
    questions,
    render,
    sample_scene,
    show_gallery,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def digest(world: World, split: str, n: int) -> str:
    """sha256 over images and captions of the first n items' images and template-0 captions."""
    images, scenes = world.arrays(split, n)
    h = hashlib.sha256(images.tobytes())
    for s in scenes:
        h.update(caption(s).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_same_bytes_different_seed_different():
    a, b, c = World(1), World(1), World(2)
    assert digest(a, "train", 30) == digest(b, "train", 30)
    assert digest(a, "train", 30) != digest(c, "train", 30)
    assert digest(a, "train", 30) != digest(a, "val", 30)
    for i in (0, 5, 17):
        ia, ib = a.item("train", i), b.item("train", i)
        assert ia["caption"] == ib["caption"] and ia["qa"] == ib["qa"]
        assert np.array_equal(ia["image"], ib["image"])


def test_byte_identical_across_processes():
    code = (
        "import hashlib; from utils.world import World, caption\n"
        "images, scenes = World(3).arrays('train', 50)\n"
        "h = hashlib.sha256(images.tobytes())\n"
        "[h.update(caption(s).encode()) for s in scenes]\n"
        "print(h.hexdigest())\n"
    )
    env = {"PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == digest(World(3), "train", 50)


def test_scene_independent_of_call_order():
    w1, w2 = World(0), World(0)
    first = w1.scene("train", 7)
    w2.arrays("train", 20)
    w2.item("val", 3)
    w2.scene("test", 7)
    assert w2.scene("train", 7) == first
    assert World(0).item("train", 7)["scene"] == first


# ---------------------------------------------------------------------------------------------------------
# Scene sampling and rendering


def test_holdout_respected_in_train_and_present_in_test():
    world = World(0)
    for i in range(2000):
        s = world.scene("train", i)
        assert not s.has(color="red", shape="triangle"), f"holdout pair in train scene {i}"
    assert any(world.scene("test", i).has(color="red", shape="triangle") for i in range(300))
    assert any(world.scene("val", i).has(color="red", shape="triangle") for i in range(300))
    # a custom holdout
    custom = World(0, holdout=[("blue", "circle"), ("green", "square")])
    for i in range(500):
        s = custom.scene("train", i)
        assert not s.has(color="blue", shape="circle") and not s.has(color="green", shape="square")


def test_sample_scene_holdout_and_counts():
    rng = np.random.default_rng(0)
    hold = frozenset({("yellow", "diamond")})
    for _ in range(200):
        s = sample_scene(rng, holdout=hold)
        assert 1 <= len(s) <= 4 and not s.has(color="yellow", shape="diamond")
    assert len(sample_scene(rng, n_objects=3)) == 3


@pytest.mark.parametrize("size", [32, 64])
def test_boxes_inside_no_overlap_and_shapes(size):
    world = World(0, image_size=size)
    images, scenes = world.arrays("train", 300)
    assert images.dtype == np.uint8 and images.shape == (300, size, size, 3)
    counts = set()
    for s in scenes:
        counts.add(len(s))
        pairs = [(o.color, o.shape) for o in s.objects]
        assert len(set(pairs)) == len(pairs), "(colour, shape) pairs are unique within a scene"
        boxes = s.boxes(size)
        assert boxes.shape == (len(s), 4) and boxes.dtype == np.int64
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                disjoint = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
                assert disjoint, f"overlapping boxes {a} {b}"
        for o in s.objects:
            assert o.shape in SHAPES and o.color in COLORS and o.size in SIZES and 0 < o.x < 1 and 0 < o.y < 1
    assert counts == {1, 2, 3, 4}


def test_render_pixels_match_scene():
    world = World(0, image_size=64)
    for i in range(20):
        s = world.scene("val", i)
        img = render(s, 64)
        assert tuple(img[0, 0]) == (235, 235, 235)  # background in the corner (objects keep a margin)
        for o in s.objects:
            cx, cy = int(o.x * 64), int(o.y * 64)
            centre = img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).astype(int)
            # the centre of every shape is filled with (close to) its colour
            assert np.abs(centre - np.array(COLOR_RGB[o.color])).max(axis=1).min() <= 8
    with pytest.raises(AssertionError):
        render(world.scene("val", 0), 8)


def test_colors_distinct():
    rgb = np.array(list(COLOR_RGB.values()), dtype=float)
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert d[~np.eye(len(rgb), dtype=bool)].min() > 60


def test_speed_2000_scenes():
    t0 = time.perf_counter()
    images, scenes = World(0).arrays("train", 2000)
    elapsed = time.perf_counter() - t0
    assert len(scenes) == 2000 and images.shape == (2000, 64, 64, 3)
    assert elapsed < 5.0, f"2000 scenes took {elapsed:.2f}s"


# ---------------------------------------------------------------------------------------------------------
# Captions


def test_captions_mention_every_object_and_use_many_templates():
    world = World(0)
    seen = set()
    rng = np.random.default_rng(0)
    for i in range(200):
        s = world.scene("train", i)
        for t in range(CAPTION_TEMPLATES):
            text = caption(s, template=t)
            assert text == text.lower() and text.endswith(".")
            for o in s.objects:
                assert describe(o) in text, (describe(o), text)
        seen.add(caption(s, rng))
        item = world.item("train", i)
        for color, shape, size in item["labels"]:
            assert f"{size} {color} {shape}" in item["caption"]
    prefixes = {re.sub(r"a (small|large) .*", "", c)[:12] for c in seen}
    assert len(prefixes) >= 4, prefixes
    assert caption(world.scene("train", 0)) == caption(world.scene("train", 0), template=0)
    assert describe(world.scene("train", 0).objects[0]).count(" ") == 2


def test_spatial_caption_is_correct():
    world = World(0)
    for i in range(300):
        s = world.scene("train", i)
        if len(s) != 2:
            continue
        text = caption(s, template=4)
        m = re.fullmatch(r"a (\w+ \w+ \w+) (to the left of|above) a (\w+ \w+ \w+)\.", text)
        assert m, text
        a, b = (next(o for o in s.objects if describe(o) == m.group(k)) for k in (1, 3))
        assert (a.x < b.x) if m.group(2) == "to the left of" else (a.y < b.y)


def test_mismatch_rate():
    world = World(0, mismatch_rate=0.3)
    n, mismatched = 2000, 0
    for i in range(n):
        item = world.item("train", i)
        if not item["caption_matches"]:
            mismatched += 1
            # the caption describes a scene with different contents
            described = set(re.findall(r"(small|large) (\w+) (\w+)", item["caption"]))
            actual = {(size, color, shape) for color, shape, size in item["labels"]}
            assert described != actual
        else:
            for color, shape, size in item["labels"]:
                assert f"{size} {color} {shape}" in item["caption"]
    assert abs(mismatched / n - 0.3) < 0.05, mismatched / n
    assert all(world.item("val", i)["caption_matches"] for i in range(100))  # only train is noisy
    clean = World(0)
    assert all(clean.item("train", i)["caption_matches"] for i in range(300))


# ---------------------------------------------------------------------------------------------------------
# Questions and answers (answers recomputed here from the scene graph)

PLURALS = {s + "s": s for s in SHAPES}


def reference_answer(scene: Scene, q: str) -> str:
    """Independent re-implementation of the answer to question ``q`` about ``scene``."""
    objs = scene.objects
    if m := re.fullmatch(r"what color is the (\w+)\?", q):
        (o,) = [o for o in objs if o.shape == m.group(1)]  # must be unambiguous
        return o.color
    if m := re.fullmatch(r"what shape is the (\w+) object\?", q):
        (o,) = [o for o in objs if o.color == m.group(1)]
        return o.shape
    if m := re.fullmatch(r"what size is the (\w+) (\w+)\?", q):
        (o,) = [o for o in objs if o.color == m.group(1) and o.shape == m.group(2)]
        return o.size
    if q == "how many objects are there?":
        return str(len(objs))
    if m := re.fullmatch(r"how many (\w+) objects are there\?", q):
        return str(sum(o.color == m.group(1) for o in objs))
    if m := re.fullmatch(r"how many (\w+) are there\?", q):
        return str(sum(o.shape == PLURALS[m.group(1)] for o in objs))
    if m := re.fullmatch(r"is there a (\w+) (\w+)\?", q):
        return "yes" if any(o.color == m.group(1) and o.shape == m.group(2) for o in objs) else "no"
    if m := re.fullmatch(r"is the (\w+) (\w+) (left of|right of|above|below) the (\w+) (\w+)\?", q):
        (a,) = [o for o in objs if (o.color, o.shape) == (m.group(1), m.group(2))]
        (b,) = [o for o in objs if (o.color, o.shape) == (m.group(4), m.group(5))]
        rel = {"left of": a.x < b.x, "right of": a.x > b.x, "above": a.y < b.y, "below": a.y > b.y}[m.group(3)]
        return "yes" if rel else "no"
    raise AssertionError(f"unrecognised question: {q}")


def test_qa_answers_correct_and_kinds_covered():
    world = World(0)
    kinds, exists_answers, position_answers = set(), set(), set()
    for i in range(200):
        scene = world.scene("train", i)
        all_qa = questions(scene)
        sampled = world.item("train", i)["qa"]
        assert len(sampled) <= world.questions_per_item
        assert not any("red triangle" in qa.question for qa in sampled)  # train text never names the holdout
        for qa in all_qa + sampled:
            assert isinstance(qa, QA) and qa.kind in QA_KINDS
            assert qa.answer == reference_answer(scene, qa.question), (qa, scene)
            kinds.add(qa.kind)
            if qa.kind == "exists":
                exists_answers.add(qa.answer)
            if qa.kind == "position":
                position_answers.add(qa.answer)
            if qa.kind == "count":
                assert qa.answer in {"0", "1", "2", "3", "4"}
    assert kinds == set(QA_KINDS)
    assert exists_answers == {"yes", "no"} and position_answers == {"yes", "no"}


def test_questions_deterministic_and_balanced():
    scene = World(0).scene("train", 11)
    assert questions(scene) == questions(scene)
    a = questions(scene, np.random.default_rng(5), n=6)
    b = questions(scene, np.random.default_rng(5), n=6)
    assert a == b and len(a) == min(6, len(questions(scene)))
    assert len({qa.kind for qa in a}) >= min(4, len({qa.kind for qa in questions(scene)}))
    assert len(set(a)) == len(a)  # no repeats


# ---------------------------------------------------------------------------------------------------------
# Dataset, classification split, gallery


def test_item_keys_and_types():
    item = World(0, image_size=32).item("test", 4)
    assert set(item) >= {"image", "caption", "caption_matches", "qa", "boxes", "labels", "scene", "index"}
    assert item["image"].shape == (32, 32, 3) and item["image"].dtype == np.uint8
    assert item["boxes"].shape == (len(item["scene"]), 4)
    assert item["labels"] == item["scene"].labels() and item["index"] == 4


def test_dataset_tensors():
    world = World(0, image_size=32)
    ds = world.dataset("train", 40)
    assert len(ds) == 40
    x = ds[3]
    assert x["image"].shape == (3, 32, 32) and x["image"].dtype == torch.float32
    assert 0.0 <= float(x["image"].min()) and float(x["image"].max()) <= 1.0
    assert torch.equal(x["image"], torch.from_numpy(world.item("train", 3)["image"]).permute(2, 0, 1).float() / 255)
    images, captions = ds.tensors()
    assert images.shape == (40, 3, 32, 32) and len(captions) == 40 and captions[3] == x["caption"]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 32, 32) and len(batch["caption"]) == 8
    flipped = world.dataset("train", 4, transform=lambda t: t.flip(-1))
    assert torch.equal(flipped[0]["image"], ds[0]["image"].flip(-1))


def test_single_object_split():
    world = World(0)
    names = class_names()
    assert len(names) == len(COLORS) * len(SHAPES) and names[class_id("red", "triangle")] == "red triangle"
    images, labels, scenes = world.single_object_split("train", 600)
    assert images.shape == (600, 64, 64, 3) and labels.shape == (600,)
    assert all(len(s) == 1 and names[y] == f"{s.objects[0].color} {s.objects[0].shape}" for s, y in zip(scenes, labels))
    assert class_id("red", "triangle") not in set(labels.tolist())
    _, test_labels, _ = world.single_object_split("test", 600)
    assert set(test_labels.tolist()) == set(range(len(names)))


def test_show_gallery_returns_figure():
    from matplotlib.figure import Figure

    world = World(0, image_size=32)
    images, scenes = world.arrays("train", 10)
    fig = show_gallery(images, [caption(s) for s in scenes], ncols=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 10
    fig2 = show_gallery([world.item("val", i) for i in range(3)])
    fig3 = show_gallery(world.dataset("val", 4).tensors()[0])
    assert isinstance(fig2, Figure) and isinstance(fig3, Figure)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_answer_agrees_with_every_question_the_world_asks():
    """answer(scene, q) gives the world's own answer for every question questions() generates (Phase 6 asks fixed,
    spoken questions about many scenes with it), and None where a question does not apply."""
    import numpy as np

    from utils.world import answer, questions

    world = World(seed=0)
    for i in range(300):
        scene = world.scene("val", i)
        for qa in questions(scene, np.random.default_rng(i)):
            assert answer(scene, qa.question) == qa, qa
    scene = world.scene("val", 0)
    absent = next(s for s in ("circle", "square", "triangle", "diamond") if not scene.has(shape=s))
    assert answer(scene, f"what color is the {absent}?") is None
    assert answer(scene, f"is the red {absent} left of the blue {absent}?") is None
    with pytest.raises(ValueError):
        answer(scene, "what is the meaning of this?")


def test_cooccurrence_prior_pairs_objects_with_their_hub_and_leaves_the_default_world_alone():
    from collections import Counter

    from utils.world import HUBS, PARTNERS

    assert World(seed=0, cooccurrence=0.0).scenes("train", 300) == World(seed=0).scenes("train", 300)
    assert set(PARTNERS.values()) == set(HUBS) and len(PARTNERS) == 24
    assert all(PARTNERS[h] != h for h in HUBS)
    rates, hub_share = {}, {}
    for p in (0.0, 0.8):
        scenes = World(seed=0, cooccurrence=p).scenes("train", 3000)
        multi = [s for s in scenes if len(s) >= 2]
        rates[p] = np.mean([s.find(*PARTNERS[(s.objects[0].color, s.objects[0].shape)]) is not None for s in multi])
        kinds = Counter((o.color, o.shape) for s in scenes for o in s.objects)
        hub_share[p] = sum(kinds[h] for h in HUBS) / sum(kinds.values())
        assert ("red", "triangle") not in kinds                           # the holdout still never appears in train
        assert all(len({(o.color, o.shape) for o in s.objects}) == len(s) for s in scenes)
    assert rates[0.0] < 0.15 and 0.75 < rates[0.8] < 0.85, rates       # ~p (minus the pairs already drawn) vs chance
    assert hub_share[0.0] < 0.2 < 0.3 < hub_share[0.8], hub_share        # 4 of 24 classes: 1/6 without the prior
    val = World(seed=0, cooccurrence=0.8).scenes("val", 2000)
    assert np.mean([s.find(*PARTNERS[(s.objects[0].color, s.objects[0].shape)]) is not None
                    for s in val if len(s) >= 2]) > 0.75                  # the prior holds in every split
