"""Tests for utils/speechlm.py: frame stacking, the spoken-question VLM's prompt, training pairs from the world's
answers, and a short training run of the audio projector."""
from __future__ import annotations

import pytest
import torch

from utils import speechlm
from utils.vqa import ANSWERS
from utils.world import World, answer


def test_stack_frames_lays_neighbours_end_to_end():
    x = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    out = speechlm.stack_frames(x, 3)
    assert out.shape == (2, 2, 9)
    assert torch.equal(out[1, 1], torch.cat([x[1, 3], x[1, 4], x[1, 5]]))  # frames 3, 4, 5; frame 6 dropped


@pytest.fixture(scope="module")
def hearing():
    from utils.vlm import ZOO_VLM, TinyVLM

    vlm = TinyVLM.from_pretrained(ZOO_VLM)
    torch.manual_seed(0)
    return speechlm.SpokenVLM(vlm, audio_dim=8, stack=5, n_audio_tokens=6, hidden=16)


def test_spoken_vlm_scores_answers_and_freezes_the_vlm(hearing):
    world = World(seed=0, image_size=32)
    from utils import clip as uclip

    images, _ = world.arrays("train", 4)
    grid = uclip.clip_grid_tokens(hearing.vlm.visual, uclip.normalize_images(images), hearing.vlm.layer)
    states = torch.randn(4, 30, 8)
    assert hearing.audio_tokens(states).shape == (4, 6, hearing.vlm.lm.config.n_embd)
    scores = hearing.answer_scores(grid, states)
    assert scores.shape == (4, len(ANSWERS)) and torch.isfinite(scores).all()
    assert hearing.answer_scores(grid, None).shape == (4, len(ANSWERS))  # no question at all
    trainable = {n for n, p in hearing.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("projector", "audio_pos")) for n in trainable)


def test_spoken_pairs_use_the_worlds_answers():
    world = World(seed=0, image_size=32)
    qs = ["how many red objects are there?", "is there a blue circle?", "what color is the triangle?"]
    pairs = speechlm.spoken_pairs(world, "train", qs, 50, per_question=5)
    assert {q for q, _, _ in pairs} == {0, 1, 2} and len(pairs) <= 15
    for q, s, a in pairs:
        qa = answer(world.scene("train", s), qs[q])
        assert qa is not None and a in ANSWERS


def test_training_the_projector_lowers_the_loss(hearing):
    world = World(seed=0, image_size=32)
    from utils import clip as uclip

    images, _ = world.arrays("train", 40)
    grid = uclip.clip_grid_tokens(hearing.vlm.visual, uclip.normalize_images(images), hearing.vlm.layer)
    qs = ["is there a red circle?", "how many objects are there?"]
    states = torch.randn(2, 30, 8)
    pairs = speechlm.spoken_pairs(world, "train", qs, 40, per_question=20)
    history = speechlm.train_spoken(hearing, grid, states, pairs, steps=40, batch_size=16, lr=3e-3, desc="test")
    assert sum(history.losses[-5:]) < sum(history.losses[:5])


def test_constant_scores_give_the_most_common_answer_everywhere():
    answers = ["yes", "no", "yes", "red", "yes"]
    best, scores = speechlm.constant_scores(answers, len(answers))
    assert best == "yes" and scores.shape == (5, len(ANSWERS))
    acc = speechlm.accuracy_by_kind(scores, answers, ["exists", "exists", "exists", "color", "position"])
    assert acc["all"] == pytest.approx(0.6) and acc["color"] == 0.0
