"""The GUI world: random screens with menus, buttons and fields, and the click environment over them."""
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from utils.world import ui


def _screens(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [ui.sample_screen(rng) for _ in range(n)]


def test_layouts_vary_and_keep_every_widget_on_the_screen_apart_and_labelled_once():
    screens = _screens()
    for s in screens:
        boxes = [w.box for w in s.menus + s.widgets]
        assert all(0 <= x0 < x1 <= s.size and 0 <= y0 < y1 <= s.size for x0, y0, x1, y1 in boxes)
        assert not any(ui._overlaps(b, [c for c in boxes if c is not b], 0) for b in boxes)
        labels = [w.label for w in s.menus + s.widgets]
        assert len(labels) == len(set(labels)) and 2 <= len(s.menus) and 3 <= len(s.widgets) <= 5
        assert all(w.box[1] >= ui.BAR_HEIGHT for w in s.widgets)
    assert len({tuple(w.box for w in s.widgets) for s in screens}) == len(screens)
    assert {w.color for s in screens for w in s.widgets if w.kind == "button"} == set(ui.BUTTON_RGB)
    assert any(w.kind == "field" for s in screens for w in s.widgets)


def test_an_open_menu_hides_what_lies_under_it():
    for s in _screens(100):
        name = s.menus[0].label
        opened = ui.open_menu(s, name)
        assert [i.label for i in opened.items] == list(ui.MENUS[name]) and opened.open_menu == name
        for item in opened.items:
            assert opened.widget_at(*item.centre) == item
        covered = [w for w in s.widgets if any(ui._overlaps(w.box, [i.box], 0) for i in opened.items)]
        for w in covered:
            x0, y0, x1, y1 = w.box
            hidden = [(x, y) for x in range(x0, x1) for y in range(y0, y1) if opened.widget_at(x, y) != w]
            assert hidden                                    # part of it sits under the drop-down
        assert ui.open_menu(opened, None).items == ()


def test_rendering_is_deterministic_and_an_open_menu_changes_the_screen():
    s = _screens(1)[0]
    image = ui.render_screen(s)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert np.array_equal(image, ui.render_screen(s))
    assert not np.array_equal(image, ui.render_screen(ui.open_menu(s, s.menus[0].label)))


def test_the_env_passes_gymnasiums_checker_directly_and_through_make():
    check_env(ui.ShapesUI(), skip_render_check=True)
    env = gymnasium.make("ShapesUI-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_episodes_are_keyed_by_split_and_seed():
    a, b, c = ui.ShapesUI("train"), ui.ShapesUI("train"), ui.ShapesUI("test")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    oc, _ = c.reset(seed=5)
    assert np.array_equal(oa["image"], ob["image"]) and oa["instruction"] == ob["instruction"]
    assert not np.array_equal(oa["image"], oc["image"])


@pytest.mark.parametrize("kind", ui.TASK_KINDS)
def test_the_expert_does_every_kind_of_task_in_the_fewest_clicks(kind):
    env = ui.ShapesUI("val", kinds=(kind,))
    for seed in range(60):
        obs, info = env.reset(seed=seed)
        assert info["task"].kind == kind and obs["instruction"] == info["task"].instruction
        for _ in range(info["task"].clicks):
            obs, reward, terminated, truncated, info = env.step(ui.expert_click(env))
        assert reward == 1.0 and terminated and not truncated and info["outcome"] == "success"


def test_a_wrong_click_fails_another_menu_opens_and_nothing_closes_it():
    env = ui.ShapesUI("val", kinds=("button",))
    seed = next(s for s in range(100) if sum(w.kind == "button" for w in env.reset(seed=s)[1]["screen"].widgets) > 1)
    _, info = env.reset(seed=seed)
    other = next(w for w in info["screen"].widgets if w.kind == "button" and w.label != info["task"].label)
    _, reward, terminated, _, info = env.step(np.array(other.centre) / env.size)
    assert (reward, terminated, info["outcome"]) == (0.0, True, "wrong widget")
    _, info = env.reset(seed=seed)
    menu = info["screen"].menus[0]
    _, reward, terminated, truncated, info = env.step(np.array(menu.centre) / env.size)
    assert (reward, terminated, truncated, info["outcome"]) == (0.0, False, False, "menu")
    assert info["screen"].open_menu == menu.label
    empty = next((x, y) for y in range(63, 20, -1) for x in range(63, 0, -1) if env.screen.widget_at(x, y) is None)
    _, _, _, _, info = env.step(np.array(empty) / env.size)
    assert info["outcome"] == "nothing" and info["screen"].open_menu is None
    for _ in range(2):
        _, _, terminated, truncated, _ = env.step(np.array(empty) / env.size)
    assert truncated and not terminated                     # the fourth click: out of time


def test_random_clicks_rarely_succeed():
    env, rng, wins = ui.ShapesUI("val"), np.random.default_rng(0), 0
    for seed in range(200):
        env.reset(seed=seed)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.uniform(0, 1, 2))
            done = terminated or truncated
        wins += reward
    assert wins / 200 < 0.2
