"""utils.dpo: hallucination probes, preference pairs and the DPO loss (Phase 8)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import dpo
from utils.world import World


@pytest.fixture(scope="module")
def scenes():
    return World(seed=0, image_size=32).scenes("val", 60)


def test_dpo_loss_is_the_papers_formula_with_its_gradient():
    g = torch.Generator().manual_seed(0)
    pc, pr = torch.randn(8, generator=g, requires_grad=True), torch.randn(8, generator=g, requires_grad=True)
    rc, rr = torch.randn(8, generator=g), torch.randn(8, generator=g)
    beta = 0.3
    loss = dpo.dpo_loss(pc, pr, rc, rr, beta)
    margin = (pc - rc) - (pr - rr)
    expected = np.mean([-math.log(1 / (1 + math.exp(-beta * m))) for m in margin.tolist()])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d/d(log π(chosen)) = −β σ(−β·margin) / B: pushed up, hardest where the margin is most wrong; rejected opposite
    weight = beta * torch.sigmoid(-beta * margin.detach()) / 8
    assert torch.allclose(pc.grad, -weight, atol=1e-7) and torch.allclose(pr.grad, weight, atol=1e-7)
    # at the start (policy = reference) the loss is log 2 whatever the answers
    assert dpo.dpo_loss(rc, rr, rc, rr).item() == pytest.approx(math.log(2))


def test_yes_no_metrics_match_hand_counts():
    said = [True, True, False, True, False, False]
    truth = [True, False, False, True, True, False]
    m = dpo.yes_no_metrics(said, truth)
    assert m["accuracy"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == 0.5 and m["hallucination"] == pytest.approx(1 / 3)
    always_yes = dpo.yes_no_metrics([True] * 6, truth)
    assert always_yes["recall"] == 1.0 and always_yes["hallucination"] == 1.0 and always_yes["yes_ratio"] == 1.0


def test_existence_probe_is_balanced_and_true(scenes):
    rows = dpo.existence_probe(scenes, per_scene=2, holdout=frozenset({("red", "triangle")}))
    answers = [a for *_, a in rows]
    assert answers.count("yes") <= answers.count("no") and answers.count("yes") > 0.4 * len(rows)
    for i, q, a in rows:
        color, shape = q[len("is there a "):-1].split()
        assert scenes[i].has(color=color, shape=shape) == (a == "yes")
        assert a == "yes" or (color, shape) != ("red", "triangle")      # never asked about a held-out class
    assert rows == dpo.existence_probe(scenes, per_scene=2, holdout=frozenset({("red", "triangle")}))


def test_caption_instructions_never_ask_about_what_is_absent(scenes):
    rows = dpo.caption_instructions(scenes)
    existence = [a for _, q, a in rows if q.startswith("is there")]
    assert existence and set(existence) == {"yes"}
    sizes = {(i, q): a for i, q, a in rows if q.startswith("what size")}
    for (i, q), a in sizes.items():
        color, shape = q[len("what size is the "):-1].split()
        assert scenes[i].find(color, shape).size == a


def test_preference_pairs_choose_the_grounded_answer(scenes):
    pairs = dpo.preference_pairs(scenes)
    assert {(c, r) for *_, c, r in pairs} == {("yes", "no"), ("no", "yes")}
    for i, q, chosen, _ in pairs:
        color, shape = q[len("is there a "):-1].split()
        assert scenes[i].has(color=color, shape=shape) == (chosen == "yes")


def test_answer_logps_are_the_vlms_own_answer_scores():
    from utils.clip import normalize_images
    from utils.vlm import ZOO_VLM, TinyVLM

    vlm = TinyVLM.from_pretrained(ZOO_VLM)
    images, scenes = World(seed=0, image_size=32).arrays("val", 6)
    with torch.no_grad():
        features = vlm.image_features(normalize_images(images))
        rows = dpo.existence_probe(scenes, 1)
        index = [i for i, *_ in rows]
        questions = [q for _, q, _ in rows]
        expected = vlm.answer_scores(features[index], questions, ("yes", "no"))
        logprobs = dpo.next_word_logprobs(vlm, features[index], questions)
        yes = dpo.answer_logps(vlm, features[index], questions, ["yes"] * len(rows), logprobs)
        no = dpo.answer_logps(vlm, features[index], questions, ["no"] * len(rows))
    assert torch.allclose(torch.stack([yes, no], 1), expected, atol=1e-5)
    said = dpo.answer_words(vlm, features, rows) == "yes"
    assert dpo.yes_no_metrics(said, [a == "yes" for *_, a in rows])["accuracy"] > 0.9
