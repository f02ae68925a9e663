"""Tests for utils/evaluation.py: POPE's three splits — balanced, true, the same "yes" questions in each, and
negatives ranked by frequency (popular) or by co-occurrence with what is present (adversarial)."""
from __future__ import annotations

import numpy as np
import pytest

from utils import dpo, evaluation
from utils.world import HUBS, PARTNERS, World


@pytest.fixture(scope="module")
def prior_world() -> World:
    return World(seed=0, image_size=32, cooccurrence=0.8)


def asked(rows, answer):
    return [(i, tuple(q.removeprefix("is there a ").removesuffix("?").split())) for i, q, a in rows if a == answer]


def test_class_statistics_count_objects_and_pairs():
    scenes = World(seed=0).scenes("train", 50)
    frequency, together = evaluation.class_statistics(scenes)
    assert frequency.sum() == sum(len(s) for s in scenes)
    assert (together == together.T).all() and (np.diag(together) == 0).all()
    assert together.sum() == sum(len(s) * (len(s) - 1) for s in scenes)


@pytest.mark.parametrize("split", evaluation.POPE_SPLITS)
def test_every_split_is_balanced_true_and_shares_its_yes_questions(prior_world, split):
    scenes = prior_world.scenes("val", 200)
    holdout = frozenset({("red", "triangle")})
    rows = evaluation.pope_probe(scenes, split, per_scene=2, holdout=holdout,
                                 reference=prior_world.scenes("train", 1000))
    yes, no = asked(rows, "yes"), asked(rows, "no")
    assert len(yes) == sum(min(2, len(s)) for s in scenes) and len(no) == 2 * len(scenes)
    assert all(scenes[i].find(*c) is not None for i, c in yes)
    assert all(scenes[i].find(*c) is None and c not in holdout for i, c in no)
    assert yes == asked(evaluation.pope_probe(scenes, "random", 2, holdout=holdout), "yes")
    assert len(set(no)) == len(no)                                   # no question asked twice about one scene


def test_the_random_split_is_phase_8s_probe():
    scenes = World(seed=0).scenes("val", 100)
    assert evaluation.pope_probe(scenes, "random", 2, seed=3) == dpo.existence_probe(scenes, 2, seed=3)


def test_popular_asks_about_frequent_classes_and_adversarial_about_partners(prior_world):
    reference = prior_world.scenes("train", 2000)
    frequency, together = evaluation.class_statistics(reference)
    index = {c: i for i, c in enumerate(evaluation.CLASSES)}
    scenes = prior_world.scenes("val", 300)
    negatives = {split: asked(evaluation.pope_probe(scenes, split, 2, reference=reference), "no")
                 for split in evaluation.POPE_SPLITS}
    mean_frequency = {s: np.mean([frequency[index[c]] for _, c in rows]) for s, rows in negatives.items()}
    assert mean_frequency["popular"] > 1.5 * mean_frequency["random"], mean_frequency
    hub_share = {s: np.mean([c in HUBS for _, c in rows]) for s, rows in negatives.items()}
    assert hub_share["popular"] > 0.9 and hub_share["random"] < 0.3, hub_share

    def partner_share(rows):        # negatives that are the partner of an object in the image
        return np.mean([any(PARTNERS[(o.color, o.shape)] == c for o in scenes[i].objects) for i, c in rows])

    # with two negatives per scene the second is often filler (few partners are absent); the first is the partner
    first = {s: asked(evaluation.pope_probe(scenes, s, 1, reference=reference), "no") for s in evaluation.POPE_SPLITS}
    assert partner_share(first["adversarial"]) > 0.75 > 0.5 > partner_share(first["popular"]), first
    assert partner_share(negatives["adversarial"]) > partner_share(negatives["popular"]) + 0.1
    assert partner_share(negatives["popular"]) > 0.2 > 0.1 > partner_share(negatives["random"])
    with pytest.raises(ValueError, match="split must be one of"):
        evaluation.pope_probe(scenes, "hard")


def test_ngram_contamination_finds_planted_items_anywhere_and_nothing_else():
    bench = ["is the red circle left of the blue square?", "what color is the small circle?"]
    texts = ["photo of my cat", "Q: Is the red circle left of the blue square? A: yes",
             "nice one. WHAT COLOR IS THE SMALL CIRCLE", "the red circle and the blue square are left of a tree"]
    assert evaluation.ngram_contamination(texts, bench, n=6).tolist() == [False, True, True, False]
    assert not evaluation.ngram_contamination(texts, [], n=6).any()
    assert evaluation.word_ngrams("A b, c!", 2) == {("a", "b"), ("b", "c")}


def test_suite_outcomes_give_per_example_outcomes_for_every_row():
    """A small run of the suite on the zoo VLM: every row present, one outcome per example, all in [0, 1], and the
    rows agree with the library's own measurements of the same questions."""
    from utils import vlm, vqa

    world = World(seed=0, image_size=32)
    model = vlm.TinyVLM.from_pretrained(vlm.ZOO_VLM)
    out = evaluation.suite_outcomes(model, world, qa_scenes=30, caption_scenes=4, grounding_scenes=6, pope_scenes=10,
                                    reference_scenes=300)
    kinds = ["QA: position", "QA: exists", "QA: size", "QA: count", "QA: shape", "QA: color"]
    assert set(out) == {*kinds, "captioning: recall", "grounding: IoU", "grounding: IoU > 0.5", "POPE random",
                        "POPE popular", "POPE adversarial"}
    _, pairs = vqa.vqa_examples(world, "val", 30)
    assert sum(len(out[k]) for k in kinds) == len(pairs) == 180
    assert len(out["captioning: recall"]) == 4
    assert len(out["grounding: IoU"]) == sum(len(s) for s in world.scenes("val", 6))
    assert all(((v >= 0) & (v <= 1)).all() for v in out.values())
    assert (out["grounding: IoU > 0.5"] == (out["grounding: IoU"] > 0.5)).all()
    assert np.mean(np.concatenate([out[k] for k in kinds])) > 0.95          # the zoo VLM's card: 0.997
    assert out["POPE random"].mean() > 0.9 and len(out["POPE random"]) == len(out["POPE adversarial"])


@pytest.mark.parametrize("shift", evaluation.SHIFTS)
def test_shifted_images_keep_the_scene_and_change_only_the_picture(shift):
    world = World(seed=0, image_size=32)
    images, scenes = world.arrays("val", 6)
    out = evaluation.shifted_images(scenes, shift)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(evaluation.shifted_images(scenes, shift), out)            # the same shift every time
    if shift == "clean":
        assert np.array_equal(out, images)
    else:
        assert not np.array_equal(out, images)
    if shift == "dark background":
        assert (out[:, 0, 0] == 60).all()                                             # a corner is canvas
    with pytest.raises(ValueError, match="shift must be one of"):
        evaluation.shifted_images(scenes, "fog")


def test_template_outcomes_read_answers_three_ways():
    """Under the trained template every extraction rule agrees with the course's scorer; a template the model never
    saw scores lower, and restricting the answer to the question's options never scores below the 19 answer words."""
    from utils import clip, vlm, vqa

    world = World(seed=0, image_size=32)
    model = vlm.TinyVLM.from_pretrained(vlm.ZOO_VLM)
    images, pairs = vqa.vqa_examples(world, "val", 40)
    features = model.image_features(clip.normalize_images(images))
    trained = evaluation.TEMPLATES["trained"]
    scorer = vqa.correct_answers(model.answer_scores(features[[i for i, _ in pairs]], [qa.question for _, qa in pairs]),
                                 pairs)
    assert np.array_equal(evaluation.template_outcomes(model, features, pairs, trained, "answer words"), scorer)
    assert evaluation.template_outcomes(model, features, pairs, trained, "any word").mean() > 0.95
    odd = {rule: evaluation.template_outcomes(model, features, pairs, evaluation.TEMPLATES["the answer is"], rule)
           for rule in evaluation.EXTRACTIONS}
    assert odd["any word"].mean() < 0.5 and odd["the kind's options"].mean() >= odd["answer words"].mean()
    assert evaluation.kind_options("color") == evaluation.COLORS and evaluation.kind_options("exists") == ("yes", "no")
    with pytest.raises(ValueError, match="extraction must be one of"):
        evaluation.template_outcomes(model, features, pairs[:2], trained, "regex")


def test_plant_copies_keeps_the_length_and_plants_each_item_k_times():
    rows = np.arange(1000)
    items = {1: np.array([2000, 2001]), 4: np.array([3000]), 16: np.array([4000, 4001])}
    out = evaluation.plant_copies(rows, items, seed=3)
    assert len(out) == len(rows)
    for k, v in items.items():
        assert all((out == i).sum() == k for i in v)
    kept = out[out < 1000]
    assert len(kept) == 1000 - (2 + 4 + 32) and len(set(kept)) == len(kept)   # the rest is the clean schedule
    assert (evaluation.plant_copies(rows, items, seed=3) == out).all()
    assert (evaluation.plant_copies(rows, {}, seed=3) == rows).all()
    with pytest.raises(ValueError, match="do not fit"):
        evaluation.plant_copies(rows[:10], {16: np.array([1])})
