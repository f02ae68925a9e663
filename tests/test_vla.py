"""utils.vla: actions as tokens, demonstrations, the two heads, closed-loop rollouts (Phase 10)."""
import numpy as np
import pytest
import torch

from utils import vla
from utils.world.reach import ShapesReach, expert_action


def test_bins_cover_the_range_in_equal_steps_and_decode_to_centres():
    a = np.array([-1.0, -1 + 2 / 256, 0.0, 1.0, 7.0, -7.0])
    assert vla.action_to_bins(a).tolist() == [0, 1, 128, 255, 255, 0]
    x = np.random.default_rng(0).uniform(-1, 1, 10000)
    assert np.abs(vla.bins_to_action(vla.action_to_bins(x)) - x).max() <= 1 / 256 + 1e-12
    assert vla.action_text([0.0, -1.0]) == "<act128> <act0>"


def test_the_vocabulary_grows_by_the_action_tokens_and_the_task_words():
    model = vla.build_vla()
    ids = model.tokenizer.convert_tokens_to_ids(vla.action_tokens())
    assert len(set(ids)) == 256 and model.tokenizer.unk_token_id not in ids
    assert model.lm.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    tokens = model.tokenizer.tokenize(vla.vla_prompt("move to the red circle") + " " + vla.action_text([0.5, -0.5]))
    assert "<unk>" not in tokens and tokens[-2:] == ["<act192>", "<act64>"]


def test_demonstrations_are_labelled_by_the_expert_even_when_the_executed_move_is_noisy():
    demos = vla.collect_demonstrations("train", 20, noise=0.5)
    env = ShapesReach("train")
    for e in (0, 7, 19):
        rows = np.flatnonzero(demos.episode == e)
        obs, _ = env.reset(seed=e)
        assert np.array_equal(demos.images[rows[0]], obs["image"])
        assert np.allclose(demos.actions[rows[0]], expert_action(env))
    clean = vla.collect_demonstrations("train", 20, noise=0.0)
    assert len(np.unique(clean.episode)) == 20 and len(clean) < len(demos)   # noise makes episodes longer


def test_rollouts_of_the_expert_and_of_a_random_policy():
    expert = vla.rollout(vla.ExpertPolicy(), "test", range(30), keep_frames=True)
    assert expert.success.all() and len(expert.frames) == 30
    assert all(len(f) == n + 1 for f, n in zip(expert.frames, expert.steps))
    assert vla.rollout(vla.random_policy(0), "test", range(100)).success.mean() < 0.25


def test_token_policy_writes_only_action_tokens_and_regression_stays_in_range():
    model = vla.build_vla()
    images = np.stack([ShapesReach().reset(seed=s)[0]["image"] for s in range(4)])
    texts = ["move to the red circle"] * 4
    policy = vla.TokenPolicy(model)
    bins = policy.bins(images, texts)
    assert bins.shape == (4, 2) and bins.min() >= 0 and bins.max() < 256
    assert np.allclose(policy(images, texts), vla.bins_to_action(bins))
    actions = vla.RegressionPolicy(vla.RegressionVLA(model))(images, texts)
    assert actions.shape == (4, 2) and np.abs(actions).max() < 1


def test_a_few_steps_of_imitation_lower_the_losses_and_the_regression_vla_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    demos = vla.collect_demonstrations("train", 40)
    model = vla.build_vla()
    features = vla.image_batch_features(model, demos.images)
    history = vla.train_token_vla(model, demos, features, steps=30, batch_size=32, report=False)
    assert np.mean(history.losses[-5:]) < np.mean(history.losses[:5])
    reg = vla.RegressionVLA(vla.build_vla())
    history = vla.train_regression_vla(reg, demos, features, steps=30, batch_size=32, report=False)
    assert np.mean(history.losses[-5:]) < np.mean(history.losses[:5])
    vla.save_regression_vla(reg, tmp_path / "reg")
    loaded = vla.load_regression_vla(tmp_path / "reg")
    with torch.no_grad():
        texts = demos.instructions[:8]
        assert torch.allclose(reg.eval()(features[:8], texts), loaded(features[:8], texts), atol=1e-6)


@pytest.mark.parametrize("n_bins", [8, 256])
def test_decoding_what_was_encoded_is_within_half_a_bin(n_bins):
    x = np.linspace(-1, 1, 1001)
    assert np.abs(vla.bins_to_action(vla.action_to_bins(x, n_bins), n_bins) - x).max() <= 1 / n_bins + 1e-12
