"""The GUI agent's pieces: clicks as location tokens, the agent built from the zoo VLM, the expert's clicks, and
closed-loop rollouts (the trained agent's numbers are the zoo card's, in test_zoo)."""
import numpy as np
import pytest
import torch

from utils import gui
from utils.world import ui


def test_a_click_becomes_two_location_tokens_and_back_to_its_bins_centre():
    assert gui.click_to_text([0.0, 1.0]) == "<loc0> <loc15>"
    assert gui.click_to_text([0.26, 0.5]) == "<loc4> <loc8>"
    for click in np.random.default_rng(0).uniform(0, 1, size=(50, 2)):
        back = gui.text_to_click(gui.click_to_text(click))
        assert np.all(np.abs(back - click) <= 0.5 / gui.CLICK_BINS + 1e-6)
    assert gui.text_to_click("no click here") is None


def test_grid_positions_interpolate_to_a_larger_grid():
    pos = torch.randn(16, 5)
    same = gui.interpolate_grid_positions(pos, 4)
    assert torch.allclose(same, pos, atol=1e-6)
    big = gui.interpolate_grid_positions(torch.ones(16, 5) * 3, 8)
    assert big.shape == (64, 5) and torch.allclose(big, torch.full((64, 5), 3.0))


@pytest.fixture(scope="module")
def agent():
    return gui.build_gui_agent()


def test_the_agent_reads_the_screen_whole_and_knows_its_words(agent):
    tokens = agent.tokenizer.tokenize("choose Copy from the Edit menu <image> <loc12> <loc3>")
    assert "<unk>" not in tokens and tokens[-2:] == ["<loc12>", "<loc3>"]
    clicks = gui.collect_clicks("val", range(3))
    features = gui.screen_features(agent, clicks.images)[clicks.screen]
    assert features.shape[:2] == (len(clicks), 64) and agent.image_pos.shape[0] == 64
    assert agent.lm.config.n_positions >= 8 + 64 + 3


def test_predictions_do_not_depend_on_the_batch(agent):
    clicks = gui.collect_clicks("val", range(6))
    features = gui.screen_features(agent, clicks.images)[clicks.screen]
    together = gui.predict_clicks(agent, features, clicks.instructions)
    alone = np.concatenate([gui.predict_clicks(agent, features[i:i + 1], clicks.instructions[i:i + 1])
                            for i in range(len(clicks))])
    assert np.array_equal(together, alone)
    assert together.shape == (len(clicks), 2) and ((together > 0) & (together < 1)).all()


def test_the_experts_clicks_hit_their_targets_and_menu_tasks_take_two():
    clicks = gui.collect_clicks("train", range(40))
    assert gui.click_hits(clicks.clicks, clicks.targets).all()
    per_episode = np.bincount(clicks.episode)
    kinds = {e: k for e, k in zip(clicks.episode, clicks.kinds)}
    assert all(per_episode[e] == (2 if kinds[e] == "item" else 1) for e in kinds)


def test_rollouts_score_the_expert_and_random_clicks():
    expert = gui.rollout(gui.ExpertClicks(), "val", range(60))
    assert expert["success"].mean() == 1.0
    assert all(c == (2 if k == "item" else 1) for c, k in zip(expert["clicks"], expert["kind"]))
    floor = gui.rollout(gui.RandomClicks(0), "val", range(200))
    assert floor["success"].mean() < 0.2 and set(floor["kind"]) == set(ui.TASK_KINDS)
    assert set(floor["outcome"]) <= {"success", "wrong widget", "menu", "nothing"}
