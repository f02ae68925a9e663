"""The shapes world's environment (Phase 10): gymnasium's API and checker, seeded episodes, the expert."""
import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from utils.world import DEFAULT_HOLDOUT
from utils.world.reach import (
    INSTRUCTION_CHARSET,
    ShapesReach,
    expert_action,
    inside,
    render_with_gripper,
    seeds_with_target,
)


def test_gymnasium_checker_passes_directly_and_through_make():
    check_env(ShapesReach(), skip_render_check=True)
    env = gymnasium.make("ShapesReach-v0", render_mode="rgb_array")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert env.render().shape == obs["image"].shape == (32, 32, 3)


def test_the_instruction_is_in_the_observation_space_only_with_a_space_in_the_charset():
    env = ShapesReach()
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space and " " in INSTRUCTION_CHARSET
    assert obs["instruction"] not in spaces.Text(64)  # gymnasium's default charset has no space: the pitfall


def test_an_episode_is_a_pure_function_of_split_and_seed():
    a, b = ShapesReach("val"), ShapesReach("val")
    oa, ia = a.reset(seed=7)
    a.step([0.3, -0.2])
    ob, ib = b.reset(seed=7)
    assert np.array_equal(oa["image"], ob["image"]) and oa["instruction"] == ob["instruction"]
    assert ia["gripper"] == ib["gripper"]
    oa, _ = a.reset(seed=7)                      # the same seed again, after steps, gives the same start
    assert np.array_equal(oa["image"], ob["image"])
    other = ShapesReach("test").reset(seed=7)[0]
    assert not np.array_equal(other["image"], ob["image"])   # the splits do not share episodes


def test_train_never_shows_the_held_out_class_and_test_does():
    env = ShapesReach("train")
    for seed in range(300):
        env.reset(seed=seed)
        assert not any((o.color, o.shape) in DEFAULT_HOLDOUT for o in env.scene.objects)
    seeds = seeds_with_target("test", "red", "triangle", 5)
    env = ShapesReach("test")
    for s in seeds:
        assert env.reset(seed=s)[0]["instruction"] == "move to the red triangle"
    with pytest.raises(AssertionError, match="held out"):
        seeds_with_target("train", "red", "triangle", 1)


def test_the_expert_always_succeeds_and_a_random_policy_rarely_does():
    env = ShapesReach("test")
    rng = np.random.default_rng(0)
    expert, random = [], []
    for seed in range(100):
        for policy, wins in ((lambda: expert_action(env), expert), (lambda: rng.uniform(-1, 1, 2), random)):
            env.reset(seed=seed)
            done = False
            while not done:
                _, reward, terminated, truncated, info = env.step(policy())
                done = terminated or truncated
            wins.append(terminated)
            assert reward == float(terminated) and info["success"] == terminated
    assert all(expert) and np.mean(random) < 0.25


def test_step_clips_the_action_and_the_gripper_and_truncates():
    env = ShapesReach(max_steps=3)
    env.reset(seed=0, options={"gripper": (0.5, 0.5)})
    env.step([10.0, -10.0])                       # clipped to one step of step_size
    assert np.allclose(env.gripper, [0.5 + env.step_size, 0.5 - env.step_size])
    for _ in range(10):
        env.gripper = np.array([0.95, 0.95])
        env.step([1.0, 1.0])
        assert env.gripper.max() <= 0.96
    env.reset(seed=0, options={"gripper": (0.04, 0.04), "target": 0})
    results = [env.step([0.0, 0.0]) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True] and not any(r[2] for r in results)


def test_the_gripper_is_drawn_on_top_and_success_means_inside_the_box():
    env = ShapesReach()
    env.reset(seed=1)
    target = env.target
    plain = render_with_gripper(env.scene, (2.0, 2.0))           # off the canvas: the scene alone
    with_gripper = render_with_gripper(env.scene, (target.x, target.y))
    assert (with_gripper.sum(-1) < plain.sum(-1)).sum() >= 4      # dark pixels where the cross is
    assert inside((target.x, target.y), target) and not inside((target.x + 2 * target.half, target.y), target)
