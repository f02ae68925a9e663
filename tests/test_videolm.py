"""Tests for utils/videolm.py: video questions from the world's clips, token pooling, the frame VLM's positions at
every budget, tubelet tokens, saving and loading, and a short training run."""
from __future__ import annotations

import pytest
import torch

from utils import videolm
from utils.world.video import DIRECTIONS, VideoWorld

WORLD = VideoWorld(0, movers="one", min_objects=2, max_objects=2)


def test_video_questions_read_their_answers_from_the_clip():
    frames, pairs = videolm.video_questions(WORLD, "train", 40)
    assert frames.shape == (40, 8, 32, 32, 3)
    kinds = [qa.kind for _, qa in pairs]
    assert kinds.count("direction") == 40 and 20 <= kinds.count("mover") <= 40
    for i, qa in pairs:
        clip = WORLD.clip("train", i)
        mover = clip["scene"].objects[clip["moving"][0]]
        if qa.kind == "direction":
            assert qa.answer == clip["direction"] and f"the {mover.color} {mover.shape} move" in qa.question
        else:
            assert qa.answer == mover.shape and qa.question == "which shape moves?"
            assert [o.shape for o in clip["scene"].objects].count(mover.shape) == 1  # never ambiguous
        assert qa.answer in videolm.VIDEO_ANSWERS


def test_pool_video_tokens_averages_frames_and_grid_windows():
    x = torch.arange(2 * 4 * 16 * 1, dtype=torch.float32).reshape(2, 4, 16, 1)
    assert torch.equal(videolm.pool_video_tokens(x), x)
    out = videolm.pool_video_tokens(x, time=2, space=2)
    assert out.shape == (2, 2, 4, 1)
    window = [0, 1, 4, 5]  # the top-left 2x2 square of a 4x4 grid
    assert out[0, 0, 0, 0] == x[0, :2, window, 0].mean()
    with pytest.raises(AssertionError):
        videolm.pool_video_tokens(x, time=3)


def test_time_pooling_to_one_frame_cannot_tell_a_clip_from_its_reverse():
    """The Phase 2 lesson, for the VLM's tokens: averaged over the whole clip, left and right look the same."""
    frames, _ = videolm.video_questions(WORLD, "val", 4)
    vlm = videolm.frame_vlm()
    tokens = videolm.frame_tokens(vlm.visual, frames)
    reverse = videolm.frame_tokens(vlm.visual, frames[:, ::-1].copy())
    assert torch.allclose(videolm.pool_video_tokens(tokens, 8), videolm.pool_video_tokens(reverse, 8), atol=1e-5)
    assert not torch.allclose(videolm.pool_video_tokens(tokens, 4), videolm.pool_video_tokens(reverse, 4), atol=1e-3)


@pytest.fixture(scope="module")
def data():
    return videolm.video_questions(WORLD, "train", 64)


def test_frame_vlm_reads_every_budget_and_survives_a_round_trip(data, tmp_path):
    frames, pairs = data
    vlm = videolm.frame_vlm()
    assert vlm.image_pos.shape == (8, 16, vlm.lm.config.n_embd)
    tokens = videolm.frame_tokens(vlm.visual, frames)
    assert tokens.shape == (64, 8, 16, 128)
    history = videolm.train_video_vlm(vlm, tokens, pairs, steps=8, budgets=videolm.BUDGETS, batch_size=16)
    assert len(history.losses) == 8
    for time_, space in videolm.BUDGETS:
        scores = videolm.video_scores(vlm, videolm.pool_video_tokens(tokens, time_, space), pairs[:6])
        assert scores.shape == (6, len(videolm.VIDEO_ANSWERS)) and torch.isfinite(scores).all()
    vlm.save_pretrained(tmp_path / "v")
    again = videolm.load_video_vlm(tmp_path / "v")
    assert isinstance(again, videolm.VideoVLM)
    assert videolm.video_accuracy(again, tokens, pairs) == videolm.video_accuracy(vlm.eval(), tokens, pairs)


def test_tubelet_vlm_trains_its_embedding_and_lowers_the_loss(data, tmp_path):
    frames, pairs = data
    x = videolm.tubelet_tokens(frames)
    assert x.shape == (64, 4 * 4 * 4, 3 * 2 * 8 * 8) and abs(float(x.mean())) < 2
    vlm = videolm.tubelet_vlm()
    history = videolm.train_video_vlm(vlm, x, pairs, steps=30, batch_size=32, lr=3e-3)
    assert history.losses[-1] < history.losses[0] / 2  # at least the answer words' prior
    assert videolm.seconds_per_step(vlm, x, pairs, steps=2) > 0
    vlm.save_pretrained(tmp_path / "t")
    again = videolm.load_video_vlm(tmp_path / "t")
    assert not isinstance(again, videolm.VideoVLM)
    assert torch.allclose(videolm.video_scores(again, x, pairs[:5]), videolm.video_scores(vlm, x, pairs[:5]), atol=1e-5)


def test_budget_label():
    assert videolm.budget_label(1, 4) == "1 frame × 4 tokens" and videolm.budget_label(8, 16) == "8 frames × 16 tokens"
    assert set(DIRECTIONS) <= set(videolm.VIDEO_ANSWERS)
