"""A GUI agent: the zoo VLM fine-tuned to click on the world's interface screens (Phase 10).

SeeClick (Cheng et al., 2024) and UI-TARS (Qin et al., 2025) act on a computer by reading a screenshot and writing
*where to click* as text. Here the screens are :mod:`utils.world.ui`'s (64×64 pixels: menus, buttons and fields with
text labels) and the click is two of Phase 5's location tokens, ``<locX> <locY>``, each one of ``CLICK_BINS`` = 16
bins of 4 pixels: the grounding recipe of the zoo VLM with a point instead of a box.

The agent is the zoo VLM with three changes: the screen's words (labels, "click", "menu", ...) and 16 location
tokens join its vocabulary; its convolutional tower reads the 64-pixel screen whole, giving an 8×8 grid of tokens
instead of 4×4 (the learned grid positions are interpolated to the larger grid, as ViTs interpolate theirs at a new
resolution); and its position table grows to hold them. It learns by imitation, next-token prediction of the
scripted expert's clicks (:func:`utils.world.ui.expert_click`), one example per click of an episode, so the second
click of a menu task is learned on the screen with the menu open.

``make models MODEL=tiny-gui-shapes`` trains it (with a blind twin that never sees the screen, the text-only
baseline); the notebook measures click accuracy and closed-loop success against it and against random clicks.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .clip import ZOO_CLIP, clip_grid_tokens, normalize_images
from .vla import act
from .vlm import TinyVLM, add_grounding_tokens, encode_with_labels, extend_positions, extend_vocabulary, train_vlm
from .world import ui

ZOO_GUI = ZOO_CLIP.parent / "tiny-gui-shapes"
ZOO_VLM_PATH = ZOO_CLIP.parent / "tiny-vlm-shapes"
CLICK_BINS = 16          # <loc0> .. <loc15> per axis: 4-pixel bins on a 64-pixel screen
GRID = 8                 # the tower's grid on a 64-pixel screen (stride 8)
N_POSITIONS = 96         # text + 64 screen tokens + the click
GUI_WORDS: tuple[str, ...] = tuple(dict.fromkeys(
    ("click", "open", "choose", "menu", "field") + ui.BUTTON_LABELS + ui.FIELD_LABELS + tuple(ui.MENUS)
    + tuple(item for items in ui.MENUS.values() for item in items)))


def gui_prompt(instruction: str) -> str:
    """The agent's prompt: the instruction, then the screen (``<image>``); the click follows."""
    return f"{instruction} <image>"


def click_to_text(click: Sequence[float], bins: int = CLICK_BINS) -> str:
    """A click (x, y) in [0, 1]² as two location tokens ``"<locX> <locY>"``: each coordinate's bin of ``bins``
    equal bins (a coordinate of 1.0 falls in the last)."""
    q = [min(bins - 1, max(0, int(float(v) * bins))) for v in click]
    return f"<loc{q[0]}> <loc{q[1]}>"


def text_to_click(text: str, bins: int = CLICK_BINS) -> np.ndarray | None:
    """The first two ``<locK>`` tokens of ``text`` as a click at their bins' centres, float32 (2,) in [0, 1]; None
    when fewer than two are present."""
    import re

    k = [int(m) for m in re.findall(r"<loc(\d+)>", text)][:2]
    if len(k) < 2:
        return None
    return ((np.array(k, dtype=np.float32) + 0.5) / bins).astype(np.float32)


def interpolate_grid_positions(image_pos: torch.Tensor, grid: int) -> torch.Tensor:
    """Learned grid position vectors (n², D) resized to (grid², D) by bilinear interpolation over the 2-D grid."""
    n = int(round(image_pos.shape[0] ** 0.5))
    assert n * n == image_pos.shape[0], f"{image_pos.shape[0]} positions are not a square grid"
    square = image_pos.T.reshape(1, -1, n, n)
    resized = F.interpolate(square, size=(grid, grid), mode="bilinear", align_corners=False)
    return resized.reshape(image_pos.shape[1], grid * grid).T.contiguous()


def build_gui_agent(path: str | Path = ZOO_VLM_PATH, screen_size: int = ui.SCREEN_SIZE) -> TinyVLM:
    """The agent's starting point: a trained VLM (default: the zoo's) with the screens' words and ``CLICK_BINS``
    location tokens in its vocabulary, a position table of ``N_POSITIONS``, and grid positions for the 8×8 grid the
    tower gives on a ``screen_size``-pixel screen."""
    agent = TinyVLM.from_pretrained(path)
    extend_vocabulary(agent.lm, agent.tokenizer, words=GUI_WORDS)
    add_grounding_tokens(agent.lm, agent.tokenizer, CLICK_BINS)
    extend_positions(agent.lm, N_POSITIONS)
    with torch.no_grad():
        grid = clip_grid_tokens(agent.visual.eval(), torch.zeros(1, 3, screen_size, screen_size), agent.layer)
    side = int(round(grid.shape[1] ** 0.5))
    agent.image_pos = nn.Parameter(interpolate_grid_positions(agent.image_pos.data, side))
    agent.image_size = screen_size
    return agent


@dataclass
class Clicks:
    """Expert clicks, one row per click: the instruction, the click float32 (M, 2) in [0, 1], the widget clicked
    (``targets``), the task's ``kind``, the ``episode`` (its seed) and ``step`` it came from, and which of the
    ``images`` (uint8 (S, 64, 64, 3), each screen once) it was made on: ``screen`` (M,)."""

    images: np.ndarray
    screen: np.ndarray
    instructions: list[str]
    clicks: np.ndarray
    targets: list[ui.Widget]
    kinds: list[str]
    episode: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.clicks)


def every_task(screen: ui.Screen) -> list[ui.Task]:
    """Every task a screen offers: each button and field, each menu, and each item of each menu."""
    tasks = [ui.Task(w.kind, w.label) for w in screen.widgets]
    tasks += [ui.Task("menu", m.label) for m in screen.menus]
    tasks += [ui.Task("item", item, m.label) for m in screen.menus for item in ui.MENUS[m.label]]
    return tasks


def collect_clicks(split: str, seeds: Iterable[int], all_tasks: bool = False, **env_kwargs) -> Clicks:
    """Run the scripted expert on the episodes ``seeds`` of ``split`` and keep every (screen, instruction, click).
    With ``all_tasks`` every screen the expert saw also gets the expert's next click for every other task it offers
    (:func:`every_task`): the same renders, five to twenty times the examples of reading a label."""
    env = ui.ShapesUI(split, **env_kwargs)
    images: list[np.ndarray] = []
    rows: dict[str, list] = {k: [] for k in ("screen", "instructions", "clicks", "targets", "kinds", "episode", "step")}

    def add(screen_index: int, task: ui.Task, target: ui.Widget, seed: int, step: int) -> None:
        x, y = target.centre
        for key, value in (("screen", screen_index), ("instructions", task.instruction),
                           ("clicks", np.array([x / env.size, y / env.size], dtype=np.float32)), ("targets", target),
                           ("kinds", task.kind), ("episode", seed), ("step", step)):
            rows[key].append(value)

    for seed in seeds:
        obs, info = env.reset(seed=seed)
        done, step = False, 0
        while not done:
            images.append(obs["image"])
            here = len(images) - 1
            add(here, env.task, info["target"], seed, step)
            if all_tasks:
                for task in every_task(env.screen):
                    if task != env.task:
                        add(here, task, ui.target_widget(env.screen, task), seed, step)
            obs, _, terminated, truncated, info = env.step(ui.expert_click(env))
            done, step = terminated or truncated, step + 1
    return Clicks(np.stack(images), np.array(rows["screen"]), rows["instructions"],
                  np.stack(rows["clicks"]).astype(np.float32), rows["targets"], rows["kinds"],
                  np.array(rows["episode"]), np.array(rows["step"]))


def screen_features(agent: TinyVLM, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """The tower's grid tokens of uint8 screens (M, S, S, 3) -> (M, 64, C), the tower in eval mode (its batch
    norms use their stored statistics, whatever mode the agent was left in)."""
    agent.visual.eval()
    with torch.no_grad():
        return torch.cat([clip_grid_tokens(agent.visual, normalize_images(images[i:i + batch_size]).to(agent.device),
                                           agent.layer).cpu() for i in range(0, len(images), batch_size)])


def train_gui_agent(agent: TinyVLM, clicks: Clicks, features: torch.Tensor, *, steps: int, batch_size: int = 128,
                    lr: float = 2e-3, seed: int = 0, **kwargs):
    """Imitation: next-token cross-entropy on the expert's two location tokens (and <eos>), nothing on the prompt.
    Trains the projector, the grid positions and the LM on the frozen tower's ``features`` of ``clicks.images``.
    Returns the History."""
    ids, labels = encode_with_labels(agent.tokenizer, [gui_prompt(t) for t in clicks.instructions],
                                     [click_to_text(c) for c in clicks.clicks])
    return train_vlm(agent, features, torch.as_tensor(clicks.screen), ids, labels, steps=steps,
                     params=agent.connector_parameters() + list(agent.lm.parameters()), batch_size=batch_size, lr=lr,
                     seed=seed, desc="GUI agent", **kwargs)


@torch.no_grad()
def predict_clicks(agent: TinyVLM, features: torch.Tensor, instructions: Sequence[str],
                   batch_size: int = 512) -> np.ndarray:
    """The agent's clicks, float32 (B, 2) in [0, 1]: the likeliest x token among the location tokens, then the
    likeliest y token given it (greedy decoding restricted to the location tokens), at their bins' centres."""
    agent.eval()
    loc = agent.tokenizer.convert_tokens_to_ids([f"<loc{i}>" for i in range(CLICK_BINS)])
    out = []
    for i in range(0, len(instructions), batch_size):
        f = features[i:i + batch_size]
        prompts = [gui_prompt(t) for t in instructions[i:i + batch_size]]
        x = agent.next_word_logprobs(f, prompts)[:, loc].argmax(1)
        y = agent.next_word_logprobs(f, [f"{p} <loc{int(k)}>" for p, k in zip(prompts, x)])[:, loc].argmax(1)
        out.append(((torch.stack([x, y], 1).float() + 0.5) / CLICK_BINS).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def click_hits(clicks: np.ndarray, targets: Sequence[ui.Widget], size: int = ui.SCREEN_SIZE) -> np.ndarray:
    """1.0 where a click (in [0, 1]²) lands inside the target widget's box, else 0.0 (float64 (M,))."""
    return np.array([t.contains(*(np.asarray(c, dtype=float) * size)) for c, t in zip(clicks, targets)], dtype=float)


class ClickPolicy:
    """A trained agent as a policy: (screens uint8 (B, S, S, 3), instructions) -> clicks float32 (B, 2), in one
    batch (the convention of :func:`utils.vla.rollout`)."""

    def __init__(self, agent: TinyVLM) -> None:
        self.agent = agent

    def __call__(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        return predict_clicks(self.agent, screen_features(self.agent, images), list(instructions))


class BlindClickPolicy(ClickPolicy):
    """The text-only baseline as a policy: the blind arm, given zeros where the screen's tokens would be."""

    def __call__(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        width = next(m for m in self.agent.projector if isinstance(m, nn.Linear)).in_features
        blank = torch.zeros(len(images), self.agent.image_pos.shape[0], width)
        return predict_clicks(self.agent, blank, list(instructions))


class RandomClicks:
    """Clicks uniformly at random on the screen (seeded): the floor."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        return self.rng.uniform(0, 1, size=(len(images), 2)).astype(np.float32)


class ExpertClicks:
    """The scripted expert as a policy (the ceiling): it reads each env's state, not the pixels, so :func:`rollout`
    hands it the envs of the running episodes."""

    uses_state = True

    def __call__(self, images: np.ndarray, instructions: Sequence[str], envs: Sequence[ui.ShapesUI]) -> np.ndarray:
        return np.stack([ui.expert_click(e) for e in envs])


def rollout(policy: Callable, split: str, seeds: Iterable[int], **env_kwargs) -> dict[str, np.ndarray]:
    """Run ``policy`` closed-loop in one :class:`~utils.world.ui.ShapesUI` episode per seed of ``split``, all at
    once (one batched policy call per round of clicks over the episodes still running). Returns per episode
    ``success`` (1/0), the ``clicks`` used, the task's ``kind`` and the last click's ``outcome``."""
    seeds = list(seeds)
    envs = [ui.ShapesUI(split, **env_kwargs) for _ in seeds]
    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]
    kinds = np.array([env.task.kind for env in envs])
    success = np.zeros(len(envs))
    used = np.zeros(len(envs), dtype=np.int64)
    outcome = np.array([""] * len(envs), dtype=object)
    running = np.ones(len(envs), bool)
    while running.any():
        active = np.flatnonzero(running)
        images, texts = np.stack([obs[i]["image"] for i in active]), [obs[i]["instruction"] for i in active]
        actions = act(policy, images, texts, [envs[i] for i in active])
        for i, action in zip(active, actions):
            obs[i], reward, terminated, truncated, info = envs[i].step(action)
            used[i] += 1
            success[i], outcome[i] = reward, info["outcome"]
            running[i] = not (terminated or truncated)
    return {"success": success, "clicks": used, "kind": kinds, "outcome": outcome}
