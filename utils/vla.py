"""Vision-language-action models (Phase 10): a VLM that answers with actions, as RT-2 and OpenVLA do.

An action is a vector of continuous numbers (here the gripper's move (dx, dy) in [-1, 1]²). RT-2 and OpenVLA make
each number one *token*: the range of each dimension is cut into 256 bins (here 256 equal bins; OpenVLA's code takes
256 edges, so 255 intervals), and bin i is written as a vocabulary token (``<act{i}>`` here, new ones; OpenVLA
overwrites the 256 least-used tokens of Llama's vocabulary). The VLM is
then fine-tuned by imitation, with the same next-token loss as captioning, on (image, instruction) -> the expert's
action tokens, and at run time its generated tokens are mapped back to bin centres::

    vla = build_vla()                                        # the zoo VLM + <act0>..<act255> + "task", "move" ...
    demos = collect_demonstrations("train", 3000)           # the scripted expert in ShapesReach, with noise
    train_token_vla(vla, demos, image_batch_features(vla, demos.images), steps=2000)
    result = rollout(TokenPolicy(vla), "test", range(200))  # closed loop: success rate over 200 episodes

:class:`RegressionPolicy` is the other way to output an action: a linear head on the LM's last hidden state
trained with the mean squared error (RT-1 and RT-2 discretised instead; OpenVLA-OFT went back to a regression head,
with an L1 loss). :func:`action_to_bins`, :func:`bins_to_action` and :func:`run_episode` are the references of
Exercises 10.1, 10.2 and 10.3.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from . import env
from .clip import normalize_images
from .train import adamw_one_cycle, infinite_batches, train, update
from .vlm import (
    IMAGE_TOKEN,
    ZOO_VLM,
    TinyVLM,
    encode_prompts,
    encode_with_labels,
    extend_vocabulary,
    train_vlm,
)
from .world.reach import ShapesReach, expert_action

ACTION_BINS = 256          # per action dimension, as RT-2 and OpenVLA
ACTION_DIMS = 2            # (dx, dy)
VLA_WORDS: tuple[str, ...] = ("task", "action", "move")


# ----------------------------------------------------------------------------------------------------------
# Actions as tokens


def action_to_bins(actions, n_bins: int = ACTION_BINS, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Each number of ``actions`` (any shape) -> the index of its bin: [low, high] is cut into ``n_bins`` equal
    bins, bin i covering [low + i·w, low + (i+1)·w) with w = (high - low) / n_bins; ``high`` itself goes to the last
    bin, and values outside the range are clipped first. Returns int64 of the same shape."""
    a = np.clip(np.asarray(actions, dtype=np.float64), low, high)
    return np.minimum(np.floor((a - low) / (high - low) * n_bins), n_bins - 1).astype(np.int64)


def bins_to_action(bins, n_bins: int = ACTION_BINS, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Bin indices -> the centres of their bins (float64, same shape): the inverse of :func:`action_to_bins` up
    to half a bin."""
    b = np.asarray(bins, dtype=np.float64)
    return low + (b + 0.5) * (high - low) / n_bins


def action_tokens(n_bins: int = ACTION_BINS) -> list[str]:
    """The action vocabulary: ``<act0>`` .. ``<act{n_bins-1}>``, one token per bin."""
    return [f"<act{i}>" for i in range(n_bins)]


def action_text(action: Sequence[float], n_bins: int = ACTION_BINS) -> str:
    """An action as the text the VLA is trained to write: ``"<act201> <act55>"``."""
    return " ".join(f"<act{i}>" for i in action_to_bins(action, n_bins))


def vla_prompt(instruction: str) -> str:
    """The text around the image: ``"task: <instruction> <image> action:"`` (the action tokens follow)."""
    return f"task: {instruction} {IMAGE_TOKEN} action:"


def add_action_tokens(vlm: TinyVLM, n_bins: int = ACTION_BINS) -> int:
    """Give a VLM the words of the tasks and the ``n_bins`` action tokens (the library way: new tokenizer entries
    and rows of the embedding table); returns how many were added."""
    return extend_vocabulary(vlm.lm, vlm.tokenizer, words=VLA_WORDS, special=(IMAGE_TOKEN, *action_tokens(n_bins)))


def build_vla(path=ZOO_VLM, n_bins: int = ACTION_BINS) -> TinyVLM:
    """The VLA's starting point: a trained VLM (default: the zoo's) with the action vocabulary added."""
    vla = TinyVLM.from_pretrained(path)
    add_action_tokens(vla, n_bins)
    return vla


# ----------------------------------------------------------------------------------------------------------
# Demonstrations


@dataclass
class Demonstrations:
    """(observation, expert action) pairs: ``images`` uint8 (M, S, S, 3), ``instructions`` (M,), the expert's
    ``actions`` float32 (M, 2), the ``episode`` each pair came from (M,), and where the gripper was, ``grippers``
    (M, 2) in normalised coordinates (for plots; the policy sees only the image)."""

    images: np.ndarray
    instructions: list[str]
    actions: np.ndarray
    episode: np.ndarray
    grippers: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def collect_demonstrations(split: str, n_episodes: int, noise: float = 0.5, seed: int = 0,
                           **env_kwargs) -> Demonstrations:
    """Roll out the scripted expert in :class:`ShapesReach` episodes 0..n_episodes-1 of ``split`` and record every
    (observation, expert action). With ``noise`` > 0 the move *executed* is the expert's plus Gaussian noise of that
    standard deviation while the *label* stays the expert's (DART, Laskey et al. 2017): the demonstrations then
    visit the off-course states a learned policy drifts into, and show how to come back from them."""
    env_ = ShapesReach(split, **env_kwargs)
    rng = np.random.default_rng(seed)
    images, texts, actions, episode, grippers = [], [], [], [], []
    for e in range(n_episodes):
        obs, _ = env_.reset(seed=e)
        done = False
        while not done:
            a = expert_action(env_)
            images.append(obs["image"])
            texts.append(obs["instruction"])
            actions.append(a)
            episode.append(e)
            grippers.append(env_.gripper.copy())
            executed = a + noise * rng.standard_normal(2) if noise > 0 else a
            obs, _, terminated, truncated, _ = env_.step(executed)
            done = terminated or truncated
    return Demonstrations(np.stack(images), texts, np.stack(actions).astype(np.float32), np.array(episode),
                          np.stack(grippers))


def image_batch_features(vlm: TinyVLM, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """The frozen tower's grid tokens of uint8 images (M, S, S, 3) -> (M, N, C), in batches."""
    with torch.no_grad():
        return torch.cat([vlm.image_features(normalize_images(images[i:i + batch_size]).to(vlm.device)).cpu()
                          for i in range(0, len(images), batch_size)])


# ----------------------------------------------------------------------------------------------------------
# Training: action tokens, or a regression head


def train_token_vla(vla: TinyVLM, demos: Demonstrations, features: torch.Tensor, *, steps: int,
                    batch_size: int = 128, lr: float = 2e-3, seed: int = 0, n_bins: int = ACTION_BINS, **kwargs):
    """Imitation with the VLM's own loss: next-token cross-entropy on the expert's action tokens (and the closing
    <eos>), nothing on the prompt. Trains the projector and the LM. Returns the History."""
    ids, labels = encode_with_labels(vla.tokenizer, [vla_prompt(t) for t in demos.instructions],
                                     [action_text(a, n_bins) for a in demos.actions])
    return train_vlm(vla, features, torch.arange(len(demos)), ids, labels, steps=steps,
                     params=vla.connector_parameters() + list(vla.lm.parameters()), batch_size=batch_size, lr=lr,
                     seed=seed, desc="VLA (tokens)", **kwargs)


def last_hidden(vlm: TinyVLM, features: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    """The LM's final hidden state (B, D) at the last position of each prompt (with one ``<image>``)."""
    ids, att = encode_prompts(vlm.tokenizer, list(prompts))
    ids, att = ids.to(vlm.device), att.to(vlm.device).long()
    embeds = vlm.embed(features.to(vlm.device), ids)
    n_image = vlm.n_image_out(embeds, ids)
    mask = vlm.spliced_mask(embeds, ids, att)
    hidden = vlm.lm.transformer(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    last = att.sum(1) - 1 + n_image - 1
    return hidden[torch.arange(len(ids), device=hidden.device), last]


class RegressionVLA(nn.Module):
    """The continuous alternative: the same VLM, and a linear head from the last hidden state to (dx, dy), squashed
    into [-1, 1] by tanh and trained with the mean squared error."""

    def __init__(self, vlm: TinyVLM, dims: int = ACTION_DIMS) -> None:
        super().__init__()
        self.vlm = vlm
        self.head = nn.Linear(vlm.lm.config.n_embd, dims)

    def forward(self, features: torch.Tensor, instructions: Sequence[str]) -> torch.Tensor:
        return torch.tanh(self.head(last_hidden(self.vlm, features, [vla_prompt(t) for t in instructions])))


def save_regression_vla(model: RegressionVLA, path) -> None:
    """The VLM's parts (:meth:`TinyVLM.save_pretrained`) plus ``head.safetensors``."""
    model.vlm.save_pretrained(path)
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, Path(path) / "head.safetensors")


def load_regression_vla(path) -> RegressionVLA:
    """Reassemble a saved :class:`RegressionVLA`."""
    model = RegressionVLA(TinyVLM.from_pretrained(path))
    model.head.load_state_dict(load_file(Path(path) / "head.safetensors"))
    return model.eval()


def train_regression_vla(model: RegressionVLA, demos: Demonstrations, features: torch.Tensor, *, steps: int,
                         batch_size: int = 128, lr: float = 2e-3, seed: int = 0, **kwargs):
    """Imitation by regression: mean squared error between the head's (dx, dy) and the expert's. Same parameters
    as :func:`train_token_vla` (projector, LM) plus the head. Returns the History."""
    params = model.vlm.connector_parameters() + list(model.vlm.lm.parameters()) + list(model.head.parameters())
    optimizer, schedule = adamw_one_cycle(params, lr, steps)
    targets = torch.as_tensor(demos.actions)
    instructions = np.array(demos.instructions)

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        (idx,) = batch
        model.train()
        pred = model(features[idx].to(model.vlm.device), list(instructions[idx.numpy()]))
        return update(F.mse_loss(pred, targets[idx].to(pred.device)), optimizer, schedule)

    return train(step, infinite_batches((torch.arange(len(demos)),), batch_size, env.generator(seed)), steps,
                 desc="VLA (regression)", **kwargs)


# ----------------------------------------------------------------------------------------------------------
# Policies and closed-loop rollouts


Policy = Callable[[np.ndarray, Sequence[str]], np.ndarray]   # images uint8 (B, S, S, 3), instructions -> (B, 2)


class TokenPolicy:
    """Act with a token VLA: generate one action token per dimension, greedily and only among the action tokens
    (each conditioned on the ones before), and map them to bin centres."""

    def __init__(self, vla: TinyVLM, n_bins: int = ACTION_BINS, dims: int = ACTION_DIMS) -> None:
        self.vla, self.n_bins, self.dims = vla, n_bins, dims
        self.ids = torch.tensor(vla.tokenizer.convert_tokens_to_ids(action_tokens(n_bins)))

    @torch.no_grad()
    def bins(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        """The bins the VLA writes (B, dims)."""
        self.vla.eval()
        features = image_batch_features(self.vla, images)
        prompts = [vla_prompt(t) for t in instructions]
        out = []
        for _ in range(self.dims):
            logp = self.vla.next_word_logprobs(features, prompts)[:, self.ids.to(self.vla.device)]
            best = logp.argmax(1).cpu().numpy()
            out.append(best)
            prompts = [f"{p} <act{b}>" for p, b in zip(prompts, best)]
        return np.stack(out, 1)

    def __call__(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        return bins_to_action(self.bins(images, instructions), self.n_bins).astype(np.float32)


class RegressionPolicy:
    """Act with a :class:`RegressionVLA`: its (dx, dy), as is."""

    def __init__(self, model: RegressionVLA) -> None:
        self.model = model

    @torch.no_grad()
    def __call__(self, images: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
        self.model.eval()
        return self.model(image_batch_features(self.model.vlm, images), list(instructions)).cpu().numpy()


def random_policy(seed: int = 0) -> Policy:
    """The floor: uniform random moves in [-1, 1]²."""
    rng = np.random.default_rng(seed)
    return lambda images, instructions: rng.uniform(-1, 1, size=(len(images), ACTION_DIMS)).astype(np.float32)


class ExpertPolicy:
    """The scripted expert as a policy (the ceiling): it reads each env's state, not the pixels, so
    :func:`rollout` hands it the envs of the running episodes."""

    uses_state = True

    def __call__(self, images: np.ndarray, instructions: Sequence[str], envs: Sequence[ShapesReach]) -> np.ndarray:
        return np.stack([expert_action(e) for e in envs])


def run_episode(env, policy: Callable[[dict], np.ndarray], seed: int) -> tuple[bool, int]:
    """One closed-loop episode with gymnasium's API (the reference of Exercise 10.3): reset with ``seed``, then
    feed the policy each new observation and step with its action until the episode *terminates* (the goal was
    reached) or is *truncated* (out of time). Returns (success, moves): success is termination, not truncation."""
    obs, _ = env.reset(seed=seed)
    moves = 0
    while True:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        moves += 1
        if terminated or truncated:
            return bool(terminated), moves


@dataclass
class Rollouts:
    """Closed-loop results: ``success`` (E,) bool, ``steps`` (E,) moves taken, and, if kept, each episode's
    ``frames`` (list of uint8 (T+1, S, S, 3)), the gripper's ``paths`` (list of (T+1, 2), normalised coordinates)
    and ``instructions``."""

    success: np.ndarray
    steps: np.ndarray
    frames: list[np.ndarray] | None = None
    instructions: list[str] | None = None
    paths: list[np.ndarray] | None = None


def act(policy: Callable, images: np.ndarray, instructions: Sequence[str], envs: Sequence) -> np.ndarray:
    """One batched policy call of a closed-loop rollout: ``policy(images, instructions)``, or, for a policy with
    ``uses_state`` (a scripted expert, which reads the state rather than the pixels), with the running ``envs`` too.
    Shared by the VLA's and the GUI agent's rollouts."""
    if getattr(policy, "uses_state", False):
        return policy(images, instructions, envs)
    return policy(images, instructions)


def rollout(policy: Policy, split: str, seeds: Iterable[int], keep_frames: bool = False, **env_kwargs) -> Rollouts:
    """Run ``policy`` closed-loop in one :class:`ShapesReach` episode per seed of ``split``, all episodes in step
    (one batched policy call per time step over the episodes still running). A policy maps (images, instructions)
    to actions; one with ``uses_state`` (:class:`ExpertPolicy`) also gets the running envs."""
    seeds = list(seeds)
    envs = [ShapesReach(split, **env_kwargs) for _ in seeds]
    obs = [e.reset(seed=s)[0] for e, s in zip(envs, seeds)]
    frames = [[o["image"]] for o in obs] if keep_frames else None
    paths = [[e.gripper.copy()] for e in envs] if keep_frames else None
    running = np.ones(len(envs), bool)
    success = np.zeros(len(envs), bool)
    steps = np.zeros(len(envs), np.int64)
    while running.any():
        active = np.flatnonzero(running)
        images, texts = np.stack([obs[i]["image"] for i in active]), [obs[i]["instruction"] for i in active]
        actions = act(policy, images, texts, [envs[i] for i in active])
        for i, a in zip(active, actions):
            obs[i], _, terminated, truncated, _ = envs[i].step(a)
            steps[i] += 1
            if keep_frames:
                frames[i].append(obs[i]["image"])
                paths[i].append(envs[i].gripper.copy())
            if terminated or truncated:
                running[i], success[i] = False, terminated
    if not keep_frames:
        return Rollouts(success, steps)
    return Rollouts(success, steps, [np.stack(f) for f in frames], [o["instruction"] for o in obs],
                    [np.stack(p) for p in paths])
