"""Checks for the Phase 10 exercises (the frontier: actions as tokens, ...).

Oracles: the definition of equal-width binning, written out on hand-picked values that sit on bin edges, just
inside them and outside the range (10.1, 10.2), with OpenVLA's ``np.digitize`` tokenizer as one of the mistakes it
names (its own convention is another, equally valid one: the course fixes one and the check says which).

10.1 a continuous action to bins, 10.2 bins back to actions, 10.3 a closed-loop episode, 10.4 FastV's choice of
image tokens, 10.5 a step of PGD, 10.6 a defence with a gradient an attacker can use, 10.7 embedding a watermark,
10.8 its detector's z-score, 10.9 grid positions for a larger screen (the notebook's order).

Besides the known mistakes, each check probes properties every right answer has: bins never decrease as the action
grows, every value lands in the bin whose edges hold it, the number of bins and the range are parameters, the shape
of the input is kept; decoding lands inside the bin and undoes encoding to within half a bin.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import efficient as uefficient
from .. import gui as ugui
from .. import safety as usafety
from .. import vla as uvla
from .. import watermark as uwatermark
from . import CheckFailed, Mismatch, Unsolved, register
from .oracles import Probe, describe, require_properties

# References captured at import: a notebook rebinds names to a learner's passing version.
_to_bins, _to_action = uvla.action_to_bins, uvla.bins_to_action
_fastv_keep = uefficient.fastv_keep
_pgd_step, _squeeze = usafety.pgd_step, usafety.squeeze
_embed, _detection_z = uwatermark.embed, uwatermark.detection_z
_interpolate = ugui.interpolate_grid_positions


def _array(out, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` as a NumPy array of ``shape`` (from an array, a tensor or a list); feedback otherwise."""
    if out is None or out is Ellipsis:
        raise Unsolved
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should return an array of shape {shape}; it returned {describe(out)}.") from None
    if arr.dtype == object or arr.shape != shape:
        raise CheckFailed(f"{what} should return an array of the input's shape {shape}; it returned "
                          f"{describe(out) if arr.dtype == object else f'shape {arr.shape}'}. Bin every number where "
                          "it is: a batch of actions (B, 2) gives bins (B, 2).")
    return arr


# --- 10.1 a continuous action to bins ------------------------------------------------------------------------------

_W = 2 / 256  # one bin's width on [-1, 1]
# on edges, just inside them, the ends, and beyond the ends; a (9, 2) batch of (dx, dy) actions
_ACTIONS = np.array([[-1.0, 1.0], [0.0, -0.0], [_W, -_W], [_W - 1e-9, 1 - 1e-9], [0.3, -0.7],
                     [2.5, -3.0], [-1 + 0.5 * _W, 1 - 0.5 * _W], [0.123456, 0.987654], [-0.5, 0.5]])


@register("10.1", "a continuous action to bins", uvla.action_to_bins, hints=(
    "A token vocabulary is finite, an action is not: cut the range of each number into equal bins and keep only "
    "which bin it fell in. What should happen to a value outside the range, and to the top of the range itself?",
    "Section 1, actions as tokens (RT-2, OpenVLA): with w = (high − low) / n_bins, bin i holds [low + i·w, "
    "low + (i+1)·w). Two cases decide most mistakes: values outside [low, high], and `high` itself, which that rule "
    "would put one bin past the last. The bins are integers, one per number, in the input's shape.",
    "Worked sub-step: with 256 bins on [−1, 1], w = 2/256; 0.0 lands in bin floor(1 / w) = 128, −1 in bin 0, an "
    "action of 5.0 is clipped to 1.0 and lands in bin 255.",
))
def _check_to_bins(fn) -> str:
    out = fn(_ACTIONS.copy(), 256, -1.0, 1.0)
    got = _array(out, "action_to_bins", _ACTIONS.shape)
    want = _to_bins(_ACTIONS)
    if np.array_equal(got, want):
        if not np.issubdtype(got.dtype, np.integer):
            raise CheckFailed(f"the bins are right but their type is {got.dtype}: a bin is an index (into the "
                              "action tokens), so return integers, e.g. .astype(np.int64).")
        require_properties(_to_bins_probes(fn))
        return ("0.0 → bin 128, −1 → 0, +1 and 2.5 → 255 (clipped): every number is now one of 256 symbols, a token "
                "the VLM can write.")
    a, clipped = _ACTIONS, np.clip(_ACTIONS, -1, 1)
    mistakes = [
        (np.floor((a + 1) / 2 * 256), "values outside [low, high] were not clipped: 2.5 and −3.0 should land in the "
                                      "last and the first bin, not beyond them. Clip the actions first."),
        (np.floor((clipped + 1) / 2 * 256), "+1 (the top of the range) lands in bin 256, one past the last: there "
                                            "are 256 bins, 0..255. Cap the index at n_bins − 1."),
        (np.minimum(np.floor((a + 1) / 2 * 256), 255), "values below the range were not clipped: −3.0 lands in a "
                                                        "negative bin. Clip both ends."),
        (np.round((clipped + 1) / 2 * 255), "that scales by n_bins − 1 and rounds: it puts 256 evenly spaced *points* "
                                            "on the range, with ±1 at the ends, instead of cutting the range into 256 "
                                            "equal bins. Divide by the bin width (high − low) / n_bins and floor."),
        (np.minimum(np.round((clipped + 1) / 2 * 256), 255), "that rounds to the nearest edge instead of flooring: a "
                                                              "value just below an edge jumps into the next bin. "
                                                              "Bin i holds [low + i·w, low + (i+1)·w): floor."),
        (np.digitize(clipped, np.linspace(-1, 1, 256)), "that is OpenVLA's np.digitize over 256 edges: it counts "
                                                        "from 1 and makes 255 bins, with +1 alone in the 256th. This "
                                                        "course uses 256 equal bins numbered 0..255."),
        (255 - want, "the bins run backwards: bin 0 should hold the lowest values (−1) and bin 255 the highest."),
        (want.astype(float) * _W - 1, "that returns the bin's lower edge as a number; return the bin's index (an "
                                      "integer 0..n_bins − 1): the index is what becomes a token."),
    ]
    for wrong, hint in mistakes:
        if wrong.shape == got.shape and np.allclose(got.astype(float), wrong.astype(float)):
            raise CheckFailed(hint)
    require_properties(_to_bins_probes(fn))
    rows = np.flatnonzero((got != want).any(1))
    raise Mismatch(f"the actions {_ACTIONS[rows[:3]].tolist()} gave bins {got[rows[:3]].tolist()}; expected "
                   f"{want[rows[:3]].tolist()}.")


def _to_bins_probes(fn) -> list[Probe]:
    grid = np.linspace(-1.2, 1.2, 1001)

    def bins(x, n=256, low=-1.0, high=1.0):
        out = fn(np.array(x, dtype=float), n, low, high)
        return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out)

    def in_own_bin(n: int, low: float, high: float) -> bool:
        x = np.clip(np.random.default_rng(n).uniform(low, high, 500), low, np.nextafter(high, low))
        b = bins(x, n, low, high)
        w = (high - low) / n
        return bool(np.all((low + b * w <= x + 1e-12) & (x < low + (b + 1) * w + 1e-12)))

    return [
        Probe("monotone", lambda: bool(np.all(np.diff(bins(grid)) >= 0)),
              "a larger action should never get a smaller bin: the bins must not decrease as the action grows."),
        Probe("bins", lambda: bins([-1.0, 0.0, 1.0], 8).tolist() == [0, 4, 7],
              "with n_bins = 8, −1, 0 and 1 should be bins 0, 4 and 7: use the n_bins you are given."),
        Probe("range", lambda: bins([0.0, 2.5, 10.0], 8, 0.0, 10.0).tolist() == [0, 2, 7],
              "with low = 0 and high = 10 (8 bins), 0, 2.5 and 10 should be bins 0, 2 and 7: use the low and high you "
              "are given, not −1 and 1."),
        Probe("own bin", lambda: in_own_bin(256, -1.0, 1.0) and in_own_bin(10, -3.0, 2.0),
              "every value should land in the bin whose edges hold it: bin i holds [low + i·w, low + (i+1)·w) with "
              "w = (high − low) / n_bins."),
        Probe("shape", lambda: bins(np.zeros((2, 3, 2))).shape == (2, 3, 2) and bins(0.5).shape == (),
              "the output should have the input's shape, for one number, a (B, 2) batch or any other shape."),
    ]


# --- 10.2 bins back to actions -------------------------------------------------------------------------------------

_BINS = np.array([[0, 255], [128, 127], [1, 254], [64, 200], [17, 93]])


@register("10.2", "bins back to actions", uvla.bins_to_action, hints=(
    "A bin stands for every value in it. Which single value of the bin is wrong by the least, at worst?",
    "Section 1, actions as tokens: decoding returns one value per bin, the same for every action that fell in it. "
    "Of all the values in a bin, one is never further than w / 2 from any of them, w = (high − low) / n_bins.",
    "Worked sub-step: with 256 bins on [−1, 1], bin 128 covers [0, 2/256) and decodes to 1/256 ≈ 0.0039; bin 0 "
    "decodes to −1 + 1/256.",
))
def _check_to_action(fn) -> str:
    got = _array(fn(_BINS.copy(), 256, -1.0, 1.0), "bins_to_action", _BINS.shape).astype(float)
    want = _to_action(_BINS)
    if np.allclose(got, want, atol=1e-9):
        require_properties(_to_action_probes(fn))
        return (f"bin 128 → {want[1, 0]:.4f}, bin 0 → {want[0, 0]:.4f}: the centres, so a round trip through the "
                "tokens moves an action by at most half a bin (1/256).")
    b = _BINS.astype(float)
    mistakes = [
        (-1 + b * _W, "that is each bin's lower edge: decoding then errs by up to a whole bin, always downwards. "
                      "Return the centre, half a bin higher."),
        (-1 + (b + 1) * _W, "that is each bin's upper edge; return the centre, half a bin lower."),
        (np.linspace(-1, 1, 256)[_BINS], "that reads the bins off np.linspace(low, high, n_bins): 256 points with "
                                         "±1 at the ends, spaced 2/255 apart, are not the centres of 256 equal bins "
                                         "(spaced 2/256)."),
        (b * _W, "the range's start is missing: add low (here −1) to the offset inside the range."),
        (1 - (b + 0.5) * _W, "the bins are read backwards: bin 0 holds the lowest values, so it decodes near low."),
        (b / 256, "that is the bin's index over n_bins, a share of the range, not an action in [low, high]: multiply "
                  "by the range's width and add low."),
    ]
    for wrong, hint in mistakes:
        if np.allclose(got, wrong, atol=1e-9):
            raise CheckFailed(hint)
    require_properties(_to_action_probes(fn))
    raise Mismatch(f"bins {_BINS[:2].tolist()} decoded to {np.round(got[:2], 5).tolist()}; expected "
                   f"{np.round(want[:2], 5).tolist()}.")


def _to_action_probes(fn) -> list[Probe]:
    def decode(b, n=256, low=-1.0, high=1.0):
        out = fn(np.asarray(b), n, low, high)
        return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out, dtype=float)

    def round_trip(n: int, low: float, high: float) -> bool:
        x = np.random.default_rng(n).uniform(low - 1, high + 1, 2000)
        err = np.abs(decode(_to_bins(x, n, low, high), n, low, high) - np.clip(x, low, high))
        return bool(err.max() <= (high - low) / n / 2 + 1e-9)

    return [
        Probe("inside", lambda: bool(np.all(np.abs(decode(np.arange(256)) - (-1 + (np.arange(256) + 0.5) * _W))
                                            < _W / 2)),
              "every bin should decode to a value inside that bin, [low + i·w, low + (i+1)·w)."),
        Probe("range", lambda: np.allclose(decode([0, 7], 8, 0.0, 10.0), [0.625, 9.375]),
              "with low = 0, high = 10 and 8 bins, bins 0 and 7 should decode to 0.625 and 9.375: use the low, high "
              "and n_bins you are given."),
        Probe("round trip", lambda: round_trip(256, -1.0, 1.0) and round_trip(16, -2.0, 3.0),
              "decoding what action_to_bins encoded should land within half a bin of the (clipped) action; the "
              "centre is the value that guarantees it."),
        Probe("shape", lambda: decode(np.zeros((2, 3), dtype=int)).shape == (2, 3),
              "the output should have the input's shape."),
    ]


# --- 10.3 a closed-loop episode ------------------------------------------------------------------------------------

class _EpisodeEnv:
    """A scripted stand-in for a gymnasium env, to test an episode loop: the observation counts the moves; it ends
    by termination at move ``goal`` or by truncation at move ``limit``; its rewards are dense (−0.1 a move, +0.1 at
    the goal), so their sum is not the success; it records the seed, the actions and any misuse."""

    def __init__(self, goal: int | None, limit: int) -> None:
        self.goal, self.limit = goal, limit
        self.seeds: list[int | None] = []
        self.actions: list[float] = []
        self.t, self.ended, self.stale, self.late = 0, False, 0, 0

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        self.t, self.ended = 0, False
        return self._obs(), {}

    def step(self, action):
        if self.ended:
            self.late += 1
            if self.late > 50:
                raise _Runaway
        a = float(np.asarray(action).reshape(-1)[0])
        if a != self.t:
            self.stale += 1
        self.actions.append(a)
        self.t += 1
        terminated = self.goal is not None and self.t >= self.goal
        truncated = not terminated and self.t >= self.limit
        self.ended = self.ended or terminated or truncated
        return self._obs(), (0.1 if terminated else -0.1), terminated, truncated, {}

    def _obs(self) -> dict:
        return {"image": np.full((2, 2, 3), self.t, dtype=np.uint8), "instruction": f"move {self.t}"}


class _Runaway(Exception):
    pass


def _policy(obs) -> np.ndarray:
    """Acts on what it sees: its action is the move counter in the observation (the env notices a stale one)."""
    return np.array([float(obs["image"][0, 0, 0]), 0.0], dtype=np.float32)


def _episode(fn, goal: int | None, limit: int, seed: int = 7):
    env = _EpisodeEnv(goal, limit)
    try:
        out = fn(env, _policy, seed)
    except _Runaway:
        raise CheckFailed("the loop kept calling step() long after the episode had ended: an episode ends when "
                          "step() says terminated *or* truncated (out of time); stop on either.") from None
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed(f"run_episode should return (success, moves); it returned {describe(out)}.")
    success, moves = out
    if isinstance(success, (np.bool_, np.integer)):
        success = bool(success)
    if not isinstance(success, (bool, int)) or not isinstance(moves, (int, np.integer)):
        raise CheckFailed(f"run_episode should return (a bool, an int): whether the goal was reached and how many "
                          f"moves were made; it returned ({describe(success)}, {describe(moves)}).")
    return env, bool(success), int(moves)


@register("10.3", "a closed-loop episode", uvla.run_episode, hints=(
    "Closed loop means the policy sees the result of its last move before it chooses the next one. How does a "
    "gymnasium episode start, and what two ways can it end?",
    "Section 1, the environment: env.reset(seed=seed) returns (observation, info); env.step(action) returns "
    "(observation, reward, terminated, truncated, info). Loop: ask the policy for an action on the newest "
    "observation, step, count the move, and stop when terminated or truncated. Success is termination.",
    "Worked sub-step: with a goal reached on the 3rd move, the loop calls step() exactly 3 times and returns "
    "(True, 3); if the time limit of 5 moves comes first, it returns (False, 5).",
))
def _check_run_episode(fn) -> str:
    env, success, moves = _episode(fn, goal=3, limit=5)
    if env.late:
        raise CheckFailed("the loop called step() after the episode had ended: stop as soon as step() returns "
                          "terminated or truncated.")
    if env.seeds != [7]:
        if not env.seeds:
            raise CheckFailed("env.reset() was never called: every episode starts with obs, info = "
                              "env.reset(seed=seed).")
        if env.seeds[0] is None:
            raise CheckFailed("reset() was called without the seed: pass it, env.reset(seed=seed), or the episode "
                              "cannot be repeated (and every learner sees a different one).")
        raise CheckFailed(f"reset() was called {len(env.seeds)} times; call it once, with the seed, before the first "
                          "step: a reset starts a new episode.")
    if env.stale:
        raise CheckFailed("the policy acted on an old observation: after each step, give it the observation "
                          "step() returned, so it sees where its last move took it (that is the closed loop).")
    if moves != 3:
        raise CheckFailed(f"the goal was reached on the 3rd move, but {moves} moves were counted: count one per "
                          "step() call, not the reset.")
    if not success:
        raise CheckFailed("the goal was reached (step() returned terminated=True) but the episode was not counted a "
                          "success: success is termination, whatever the rewards added up to.")
    env, success, moves = _episode(fn, goal=None, limit=5)
    if success:
        raise CheckFailed("an episode cut off by the time limit (truncated=True, terminated=False) was counted a "
                          "success; only termination is.")
    if moves != 5 or env.late:
        raise CheckFailed(f"with a time limit of 5 moves, {moves} moves were counted: stop when truncated too.")
    env, success, moves = _episode(fn, goal=1, limit=5)
    if not success or moves != 1:
        raise CheckFailed("a goal reached on the very first move should give (True, 1): step at least once, and "
                          "stop on termination.")
    return "(True, 3) when the goal comes first, (False, 5) when time runs out: gymnasium's two endings."


# --- 10.4 FastV's choice of image tokens ---------------------------------------------------------------------------

# 3 rows, 4 heads, 8 image tokens: head 0 and the maximum over heads disagree with the mean over heads
_ATTENTION = torch.tensor(np.random.default_rng(104).dirichlet(np.ones(8) * 0.7, size=(3, 4)), dtype=torch.float32)
_ATTENTION[:, 0] = _ATTENTION[:, 0].flip(-1)
_ATTENTION[0, 2, 5] += 0.9                       # one head's spike: the maximum over heads keeps token 5


def _indices(out, what: str, shape: tuple[int, int]) -> torch.Tensor:
    if out is None or out is Ellipsis:
        raise Unsolved
    t = torch.as_tensor(np.asarray(out)) if not isinstance(out, torch.Tensor) else out
    if t.dtype == torch.bool:
        raise CheckFailed(f"{what} returned a boolean mask; return the kept tokens' *indices*, int64 of shape "
                          f"{shape}: the model gathers those positions.")
    if t.shape != shape:
        raise CheckFailed(f"{what} should return indices of shape {shape} (one row per example, `keep` per row); "
                          f"it returned {describe(out)}.")
    if t.is_floating_point():
        raise CheckFailed(f"{what} returned floats ({t.dtype}); return integer indices (int64): topk's .indices, "
                          "not its .values.")
    return t.long()


@register("10.4", "FastV's choice of image tokens", uefficient.fastv_keep, hints=(
    "After the first layers, the answer draws on few image tokens. Which ones, by the model's own account?",
    "Section 2, FastV: an image token's score is the attention the last text token pays it, averaged over the heads "
    "(dim 1 of (B, H, N)). Keep the best `keep` of each example, and give their indices back in the order the tokens "
    "had in the sequence.",
    "Worked sub-step: with head-averaged attention (0.1, 0.4, 0.2, 0.3) and keep = 2, the kept tokens are 1 and 3, "
    "returned as [1, 3].",
))
def _check_fastv_keep(fn) -> str:
    got = _indices(fn(_ATTENTION.clone(), 3), "fastv_keep", (3, 3))
    want = _fastv_keep(_ATTENTION, 3)
    if torch.equal(got, want):
        require_properties(_fastv_probes(fn))
        return ("the 3 most attended of 8 image tokens, in order: the rest can leave the sequence before the next "
                "layer.")
    mean = _ATTENTION.mean(1)
    mistakes = [
        (mean.topk(3, dim=1).indices, "the right tokens, but in the order of their attention: sort the indices, so "
                                      "the kept tokens keep the order they had in the sequence (a causal LM reads "
                                      "them in that order)."),
        ((-mean).topk(3, dim=1).indices.sort(1).values, "those are the *least* attended tokens: keep the ones with "
                                                         "the most attention (topk takes the largest)."),
        (_ATTENTION[:, 0].topk(3, dim=1).indices.sort(1).values, "that ranks by the first head alone; average the "
                                                                  "attention over all the heads first."),
        (_ATTENTION.amax(1).topk(3, dim=1).indices.sort(1).values, "that ranks by the largest attention of any "
                                                                    "head; FastV averages over the heads, so one "
                                                                    "head's spike does not decide."),
        (_ATTENTION.mean(2).topk(3, dim=1).indices.sort(1).values, "that averaged over the image tokens and ranked "
                                                                    "the heads: the heads are dim 1 of (B, H, N); "
                                                                    "average over them and rank the N tokens."),
    ]
    for wrong, hint in mistakes:
        if torch.equal(got, wrong):
            raise CheckFailed(hint)
    require_properties(_fastv_probes(fn))
    raise Mismatch(f"kept {got.tolist()}; expected {want.tolist()}.")


def _fastv_probes(fn) -> list[Probe]:
    perm = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])

    def keep(attention, k):
        return _indices(fn(attention.clone(), k), "fastv_keep", (attention.shape[0], k))

    def follows_permutation() -> bool:
        moved = keep(_ATTENTION[..., perm], 3)            # token j of the permuted row is token perm[j]
        return torch.equal(perm[moved].sort(1).values, keep(_ATTENTION, 3))

    return [
        Probe("all", lambda: torch.equal(keep(_ATTENTION, 8), torch.arange(8).expand(3, -1)),
              "with keep = N every token should be kept, as 0, 1, ..., N − 1."),
        Probe("permutation", follows_permutation,
              "the choice should follow the tokens, not their positions: shuffle the tokens and the same tokens "
              "should be kept."),
        Probe("rows", lambda: torch.equal(keep(_ATTENTION[1:2], 2), keep(_ATTENTION, 2)[1:2]),
              "each example's choice should depend on its own attention only."),
    ]



# --- 10.5 a step of PGD --------------------------------------------------------------------------------------------

_gp = torch.Generator().manual_seed(1050)
_ORIGINAL = torch.rand(2, 3, 4, 4, generator=_gp)
_ORIGINAL[0, 0, 0] = torch.tensor([0.0, 0.004, 0.996, 1.0])    # pixels at and near the ends of [0, 1]
_EPS, _ALPHA = 0.03, 0.04                                         # a step larger than the box: it binds
_CURRENT = (_ORIGINAL + (torch.rand(_ORIGINAL.shape, generator=_gp) * 2 - 1) * _EPS).clamp(0, 1)  # inside the box
_GRAD = torch.randn(_ORIGINAL.shape, generator=_gp) * 0.3
_GRAD[1, 2, 3] = 0.0                                            # a row of pixels the loss does not depend on


def _image(out, what: str = "pgd_step") -> torch.Tensor:
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what} should return a tensor of the images' shape; it returned {describe(out)}.")
    if out.shape != _ORIGINAL.shape:
        raise CheckFailed(f"{what} should return images of shape {tuple(_ORIGINAL.shape)} (the input's); it "
                          f"returned {describe(out)}.")
    return out.detach().float()


@register("10.5", "a step of PGD", usafety.pgd_step, hints=(
    "An attacker wants the loss to go *up*, as fast as possible, while no pixel moves further than ε from the "
    "original. Which direction, how far, and what to do with a step that leaves the allowed box?",
    "Section 3, adversarial images (Madry et al., 2018): step every pixel by alpha times the *sign* of the gradient "
    "(the steepest ascent under an L∞ budget), then project: clip into [original − eps, original + eps], and then "
    "into [0, 1] so the result is still an image.",
    "Worked sub-step: a pixel at 0.50 in the original, now at 0.52, with a positive gradient, alpha = 0.02 and "
    "eps = 0.03, steps to 0.54 and is clipped back to 0.53.",
))
def _check_pgd_step(fn) -> str:
    got = _image(fn(_CURRENT.clone(), _GRAD.clone(), _ORIGINAL.clone(), _EPS, _ALPHA))
    want = _pgd_step(_CURRENT, _GRAD, _ORIGINAL, _EPS, _ALPHA)
    if torch.allclose(got, want, atol=1e-6):
        require_properties(_pgd_probes(fn))
        return ("up the loss by the gradient's sign, back into the ε-box around the original, and into [0, 1]: "
                "ten such steps flip the zoo CLIP at ε = 4/255.")
    box = lambda x: torch.min(torch.max(x, _ORIGINAL - _EPS), _ORIGINAL + _EPS)   # noqa: E731
    sign = _GRAD.sign()
    mistakes = [
        (box(_CURRENT - _ALPHA * sign).clamp(0, 1), "that steps *down* the loss (gradient descent trains a model); "
                                                    "an attack climbs it: add alpha · sign(grad)."),
        (box(_CURRENT + _ALPHA * _GRAD).clamp(0, 1), "that steps along the raw gradient; under an L∞ budget the "
                                                     "steepest step is alpha times its *sign*, the same size for "
                                                     "every pixel."),
        ((_CURRENT + _ALPHA * sign).clamp(0, 1), "the step was not projected back: clip every pixel into "
                                                 "[original − eps, original + eps], or the perturbation grows past "
                                                 "the budget step after step."),
        (torch.min(torch.max(_CURRENT + _ALPHA * sign, _CURRENT - _EPS), _CURRENT + _EPS).clamp(0, 1),
         "that projects around the current image; the box is around the *original*, or each step could drift "
         "another eps further."),
        (box(_CURRENT + _ALPHA * sign), "pixels left [0, 1]: after projecting, clamp to [0, 1] so the result is "
                                        "still an image."),
        (box(_CURRENT + _EPS * sign).clamp(0, 1), "that steps by eps; use the step size alpha (several small steps "
                                                  "find a stronger attack than one big one)."),
        (box(_ORIGINAL + _ALPHA * sign).clamp(0, 1), "that steps from the original image every time; step from the "
                                                     "current `images`, so the steps add up."),
        (box(_CURRENT + _ALPHA * _GRAD / _GRAD.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1),
         "that takes an L2-normalised gradient step; with an L∞ budget use the sign of the gradient."),
    ]
    for wrong, hint in mistakes:
        if torch.allclose(got, wrong, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_pgd_probes(fn))
    raise Mismatch(f"the largest difference from the expected images is {(got - want).abs().max():.4f}.")


def _pgd_probes(fn) -> list[Probe]:
    def run(current=_CURRENT, grad=_GRAD, eps=_EPS, alpha=_ALPHA):
        return _image(fn(current.clone(), grad.clone(), _ORIGINAL.clone(), eps, alpha))

    return [
        Probe("budget", lambda: bool(((run() - _ORIGINAL).abs() <= _EPS + 1e-6).all())
              and bool(((run(alpha=1.0) - _ORIGINAL).abs() <= _EPS + 1e-6).all()),
              "every pixel must stay within eps of the original, however big the step."),
        Probe("valid", lambda: bool(((run(alpha=1.0) >= 0) & (run(alpha=1.0) <= 1)).all()),
              "the result must stay a valid image, every pixel in [0, 1]."),
        Probe("no gradient", lambda: torch.allclose(run(grad=torch.zeros_like(_GRAD)), _CURRENT, atol=1e-6),
              "where the gradient is 0 (the loss does not depend on the pixel), a pixel inside the budget should "
              "not move."),
        Probe("gradient size", lambda: torch.allclose(run(grad=10 * _GRAD), run(), atol=1e-6),
              "a gradient ten times larger should give the same step: under an L∞ budget only its sign matters."),
    ]


# --- 10.6 bit-depth squeezing, with a straight-through gradient ------------------------------------------------------

_PIXELS = torch.tensor([[[[0.0, 0.03, 0.034, 0.5], [0.52, 0.97, 0.999, 1.0]]]])   # (1, 1, 2, 4): ends, near levels


def _squeezed(fn, x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The answer's output on ``x`` (a leaf that requires grad), and the gradient of out · w for a fixed w."""
    x = x.clone().requires_grad_(True)
    out = fn(x, bits)
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise CheckFailed(f"squeeze should return a tensor of the images' shape {tuple(x.shape)}; it returned "
                          f"{describe(out)}.")
    if not out.requires_grad:
        return out.detach(), None
    w = torch.linspace(-1, 1, x.numel()).view_as(x)
    (out * w).sum().backward()
    return out.detach(), x.grad


@register("10.6", "a defence with a gradient an attacker can use", usafety.squeeze, hints=(
    "Rounding removes a change unless it carries the pixel across a rounding boundary. But what is the gradient of "
    "rounding, and what can an attacker do when it is zero almost everywhere?",
    "Section 3, a defence: the 2^bits levels are k / (2^bits − 1), 0 and 1 included. For the backward pass, the "
    "straight-through estimator (BPDA, Athalye et al., 2018): the value is the rounded one, the gradient that of the "
    "identity; `.detach()` on the part of the value that should carry no gradient does it.",
    "Worked sub-step: with bits = 2 the levels are 0, 1/3, 2/3 and 1; a pixel at 0.40 becomes 1/3, and the gradient of "
    "the output with respect to that pixel is 1.",
))
def _check_squeeze(fn) -> str:
    got, grad = _squeezed(fn, _PIXELS, 4)
    want = _squeeze(_PIXELS, 4).detach()
    levels = 15
    if torch.allclose(got, want, atol=1e-6):
        w = torch.linspace(-1, 1, _PIXELS.numel()).view_as(_PIXELS)
        if grad is None or torch.count_nonzero(grad) == 0:
            raise CheckFailed("the values are right, but no gradient flows back through them (torch.round's gradient "
                              "is 0): an attack through this defence gets no signal and the defence *looks* strong "
                              "for the wrong reason. Pass the gradient straight through: images + (rounded − "
                              "images).detach().")
        if not torch.allclose(grad, w, atol=1e-6):
            raise CheckFailed("a gradient flows back, but it is not the identity's: the straight-through estimator "
                              "passes the incoming gradient unchanged, images + (rounded − images).detach().")
        require_properties(_squeeze_probes(fn))
        return ("16 levels forward, the identity backward: an adaptive attack sees through the rounding, and the "
                "defence is measured for what it does.")
    mistakes = [
        (torch.round(_PIXELS * 16) / 16, "that rounds to 17 levels spaced 1/16 apart; 4 bits give 16 levels, 0..15, "
                                         "spaced 1/15 (so that 0 and 1 are both levels): multiply by 2^bits − 1."),
        (torch.floor(_PIXELS * levels) / levels, "that floors instead of rounding: every pixel moves down, by up to a "
                                                  "whole step. Round to the nearest level."),
        (torch.round(_PIXELS * levels), "those are the level indices 0..15, not pixel values: divide by 2^bits − 1 "
                                        "to map them back into [0, 1]."),
        (torch.round(_PIXELS * 4) / 4, "that uses `bits` as the number of steps; the number of levels is 2^bits."),
    ]
    for wrong, hint in mistakes:
        if torch.allclose(got, wrong, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_squeeze_probes(fn))
    raise Mismatch(f"got {got.flatten().tolist()}; expected {want.flatten().tolist()}.")


def _squeeze_probes(fn) -> list[Probe]:
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(106))

    def out(images, bits):
        return _squeezed(fn, images, bits)[0]

    return [
        Probe("levels", lambda: torch.allclose(out(x, 3) * 7, torch.round(out(x, 3) * 7), atol=1e-5),
              "with bits = 3 every output pixel should be one of the 8 levels k/7: use the bits you are given."),
        Probe("nearest", lambda: bool(((out(x, 4) - x).abs() <= 0.5 / 15 + 1e-6).all()),
              "every pixel should move to its nearest level, at most half a step (1/30 for 4 bits)."),
        Probe("idempotent", lambda: torch.allclose(out(out(x, 4), 4), out(x, 4), atol=1e-6),
              "squeezing twice should change nothing: a level is its own nearest level."),
    ]


# --- 10.7 embedding a watermark ------------------------------------------------------------------------------------

_gw = np.random.default_rng(107)
_MARK_IMAGES = _gw.integers(0, 256, size=(3, 4, 5, 3)).astype(np.uint8)
_MARK_IMAGES[0, 0, :, 0] = [0, 1, 254, 255, 128]          # pixels at the ends, where a step can leave [0, 255]
_MARK_PATTERN = _gw.choice([-1.0, 1.0], size=(4, 5, 3))
_MARK_PATTERN[0, :, :] = [[-1, 1, -1], [-1, 1, 1], [1, -1, 1], [1, -1, -1], [1, 1, 1]]
_STRENGTH = 2.5                                             # a half level: rounding and truncating differ


def _marked(fn, images=_MARK_IMAGES, pattern=_MARK_PATTERN, strength=_STRENGTH) -> np.ndarray:
    out = fn(images.copy(), pattern.copy(), strength)
    if out is None or out is Ellipsis:
        raise Unsolved
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    arr = np.asarray(out)
    if arr.shape != images.shape:
        raise CheckFailed(f"embed should return marked images of the input's shape {images.shape}; it returned "
                          f"{describe(out)}.")
    return arr


@register("10.7", "embedding a watermark", uwatermark.embed, hints=(
    "The mark is a faint pattern added to every pixel. But the images are 8-bit: what happens to a pixel at 255 "
    "when you add 2.5 to it, and what kind of number must a saved image hold?",
    "Section 3, an invisible watermark (Cox et al., 1997): compute in floats, image + strength × pattern, then round "
    "to the nearest level, clip into [0, 255] and return uint8 (`np.clip`, `np.round`, `.astype(np.uint8)`).",
    "Worked sub-step: a pixel at 254 with pattern +1 and strength 2.5 becomes 256.5 → 256 after rounding (NumPy "
    "rounds halves to even) → 255 after clipping; a pixel at 1 with pattern −1 becomes −1.5 → −2 → 0.",
))
def _check_embed(fn) -> str:
    got = _marked(fn)
    want = _embed(_MARK_IMAGES, _MARK_PATTERN, _STRENGTH)
    if got.dtype == want.dtype and np.array_equal(got, want):
        require_properties(_embed_probes(fn))
        return ("strength × pattern added in floats, rounded, clipped, uint8: at strength 2 the mark costs 42 dB of "
                "PSNR, invisible, and the detector below still finds it.")
    x = _MARK_IMAGES.astype(np.float64)
    p = _MARK_PATTERN
    with np.errstate(invalid="ignore", over="ignore"):
        mistakes = [
            ((x + _STRENGTH * p).astype(np.uint8), "pixels wrapped around: 255 + 2.5 cast to uint8 is 1, not 255, "
                                                   "and −1.5 wraps to 254 or 255 — a white pixel turned black. Clip "
                                                   "into [0, 255] before casting to uint8."),
            (_MARK_IMAGES + (_STRENGTH * p).astype(np.int64).astype(np.uint8),
             "that adds in uint8, which wraps around modulo 256 (254 + 3 is 1), and truncates the strength. Compute in "
             "floats, then round and clip into [0, 255]."),
            (np.clip(x + _STRENGTH * p, 0, 255).astype(np.uint8), "that truncates instead of rounding: `.astype` "
                                                                   "cuts 2.5 down to 2, so the mark is biased towards "
                                                                   "darker pixels. Round to the nearest level first."),
            (np.clip(np.round(x - _STRENGTH * p), 0, 255).astype(np.uint8), "that subtracts the pattern: the detector "
                                                                              "then finds a negative correlation. Add "
                                                                              "strength × pattern."),
            (np.clip(np.round(x + p), 0, 255).astype(np.uint8), "that adds the bare pattern (±1); scale it by the "
                                                                 "strength you are given."),
            (np.clip(np.round(x + 255 * _STRENGTH * p), 0, 255).astype(np.uint8),
             "that scales the strength by 255: the strength is already in levels of 0..255, as the images are."),
            (np.clip(np.round(x * (1 + _STRENGTH * p / 255)), 0, 255).astype(np.uint8),
             "that scales the pixels (a multiplicative mark); add strength × pattern, the same step for a dark pixel "
             "as for a bright one."),
        ]
    for wrong, hint in mistakes:
        if np.array_equal(got.astype(np.int64), wrong.astype(np.int64)):
            raise CheckFailed(hint)
    if np.array_equal(np.asarray(got, dtype=np.float64), want.astype(np.float64)):
        raise CheckFailed(f"the values are right but the type is {got.dtype}; return uint8 images (`.astype(np.uint8)`"
                          "), what an 8-bit PNG holds.")
    if np.allclose(np.asarray(got, dtype=np.float64), x + _STRENGTH * p):
        raise CheckFailed("those are the exact sums, not 8-bit pixels: round to the nearest level, clip into "
                          "[0, 255] and return uint8.")
    require_properties(_embed_probes(fn))
    diff = np.abs(np.asarray(got, dtype=np.float64) - want)
    raise Mismatch(f"{int((diff > 0).sum())} of {want.size} pixels differ, by up to {diff.max():.1f}.")


def _embed_probes(fn) -> list[Probe]:
    def run(strength):
        return np.asarray(_marked(fn, strength=strength), dtype=np.float64)

    return [
        Probe("range", lambda: bool(((run(40.0) >= 0) & (run(40.0) <= 255)).all()),
              "with a large strength some pixels must stop at 0 or 255; every output pixel must be a valid level."),
        Probe("zero", lambda: np.array_equal(run(0.0), _MARK_IMAGES.astype(np.float64)),
              "with strength 0 the images should come back unchanged."),
        Probe("step", lambda: bool((np.abs(run(1.0) - _MARK_IMAGES) <= 1).all()),
              "with strength 1 no pixel should move by more than one level; a pixel at 0 or 255 that jumps to the "
              "other end was pushed out of [0, 255] and wrapped around when cast to uint8: clip before casting."),
        Probe("every number", lambda: bool((np.abs(run(3.0) - _MARK_IMAGES)[(_MARK_IMAGES > 3) & (_MARK_IMAGES < 252)]
                                            == 3).all()),
              "with strength 3 every pixel of every channel should move by 3 levels (unless it stops at 0 or 255): "
              "add the pattern to all of the image, its three channels included."),
    ]


# --- 10.8 the detector's z-score -----------------------------------------------------------------------------------

_gz = np.random.default_rng(108)
_Z_PATTERN = _gz.choice([-1.0, 1.0], size=(6, 6, 3))
_Z_PATTERN[0] = 1.0                                               # the pattern's own mean is not 0
_Z_RESIDUALS = _gz.normal(0, [[[[3.0]]], [[[10.0]]], [[[1.0]]], [[[6.0]]]], size=(4, 6, 6, 3))
_Z_RESIDUALS[1] += 6.0 * _Z_PATTERN                               # one marked, one offset
_Z_RESIDUALS[3] += 5.0


def _zs(fn, residuals=_Z_RESIDUALS, pattern=_Z_PATTERN) -> np.ndarray:
    out = fn(residuals.copy(), pattern.copy())
    if out is None or out is Ellipsis:
        raise Unsolved
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed(f"detection_z should return one number per image; it returned {describe(out)}.") from None
    if arr.shape != (len(residuals),):
        raise CheckFailed(f"detection_z should return one z-score per image, shape ({len(residuals)},); it "
                          f"returned {describe(out)}. Sum over each image's pixels and channels, not over the batch.")
    return arr


@register("10.8", "the detector's z-score", uwatermark.detection_z, hints=(
    "A detector needs a number that means the same on every image: how big is the correlation with the pattern "
    "compared with what the image's own noise would give by chance?",
    "Section 3, an invisible watermark: per image, remove the residual's mean, correlate with the pattern "
    "(Σ r · p over pixels and channels), and divide by std(r) · ‖p‖ — the spread that correlation has when r is "
    "noise independent of p. Then z is about N(0, 1) on an unmarked image, whatever its contrast.",
    "Worked sub-step: for a residual of 3,072 numbers with std 10 and a ±1 pattern, ‖p‖ = √3072 ≈ 55.4, so a "
    "correlation Σ r · p of 2,216 gives z = 2216 / (10 · 55.4) = 4.0.",
))
def _check_detection_z(fn) -> str:
    got = _zs(fn)
    want = _detection_z(_Z_RESIDUALS, _Z_PATTERN)
    if np.allclose(got, want, rtol=1e-2, atol=1e-6):   # std with ddof=1 is as right: 1 part in 2n
        require_properties(_z_probes(fn))
        return ("z ≈ N(0, 1) without the mark, whatever the image's contrast; the marked image here scores "
                f"{want[1]:.1f}. The threshold 4 is then one number for every image.")
    r = _Z_RESIDUALS
    p = _Z_PATTERN
    axes = (1, 2, 3)
    rc = r - r.mean(axis=axes, keepdims=True)
    n = p.size
    norm = np.linalg.norm(p)
    corr = (rc * p).sum(axis=axes)
    pc = p - p.mean()
    mistakes = [
        ((r * p).sum(axis=axes) / (r.std(axis=axes) * norm),
         "the residual's mean was not removed: an image a little brighter on average correlates with any pattern "
         "whose signs do not cancel. Subtract each image's mean first."),
        (corr, "that is the raw correlation: it grows with the image's contrast, so no threshold fits every image. "
               "Divide by std(r) · ‖p‖."),
        (corr / n, "that divides by the number of pixels; the chance spread of Σ r · p is std(r) · ‖p‖ (‖p‖ = √n for a "
                   "±1 pattern), so divide by that, or a high-contrast image looks marked."),
        (corr / (r.std(axis=axes) * n), "that divides by std(r) · n; the chance spread of Σ r · p is std(r) · ‖p‖, "
                                        "and ‖p‖ = √n for a ±1 pattern, not n."),
        (corr / (rc.std() * norm), "that uses one standard deviation for the whole batch: each image has its own noise "
                                   "level, so compute std(r) per image."),
        (np.abs(corr / (rc.std(axis=axes) * norm)), "that takes the absolute value: a residual *anti*-correlated with "
                                                    "the pattern is not marked with it. Keep the sign."),
        ((rc * pc).sum(axis=axes) / (np.linalg.norm(rc.reshape(len(r), -1), axis=1) * np.linalg.norm(pc)),
         "that is the correlation coefficient, between −1 and 1: its spread under no mark is 1/√n, so one threshold "
         "would not fit images of another size. Divide Σ r · p by std(r) · ‖p‖ instead."),
        (corr / (rc.var(axis=axes) * norm), "that divides by the variance; divide by the standard deviation, std(r)."),
        (((r - np.median(r, axis=axes, keepdims=True)) * p).sum(axis=axes) / (r.std(axis=axes) * norm),
         "that removes each image's median; remove its mean, the centre that std(r) is measured around."),
    ]
    for wrong, hint in mistakes:
        if np.allclose(got, wrong, rtol=1e-3, atol=1e-6):
            raise CheckFailed(hint)
    require_properties(_z_probes(fn))
    raise Mismatch(f"got {np.round(got, 3).tolist()}; expected {np.round(want, 3).tolist()}.")


def _z_probes(fn) -> list[Probe]:
    noise = np.random.default_rng(1080).normal(0, 5, size=(400, 8, 8, 3))
    pattern = np.random.default_rng(1081).choice([-1.0, 1.0], size=(8, 8, 3))

    def z(residuals, pat=pattern):
        return _zs(fn, residuals, pat)

    return [
        Probe("contrast", lambda: np.allclose(z(noise[:8] * 7.0), z(noise[:8]), rtol=1e-3, atol=1e-6),
              "multiplying an image's residual by 7 (more contrast) should not change its z-score: divide by the "
              "residual's own standard deviation."),
        Probe("offset", lambda: np.allclose(z(noise[:8] + 3.0), z(noise[:8]), rtol=1e-3, atol=1e-6),
              "adding a constant to a residual should not change its z-score: remove each image's mean."),
        Probe("sign", lambda: np.allclose(z(noise[:8], -pattern), -z(noise[:8]), rtol=1e-3, atol=1e-6),
              "the negated pattern should give the negated z-score."),
        Probe("calibrated", lambda: abs(z(noise).mean()) < 0.2 and 0.85 < z(noise).std() < 1.15,
              "on residuals of pure noise (no mark) the z-scores should have mean about 0 and spread about 1: that "
              "is what lets one threshold mean the same false-alarm rate on every image."),
        Probe("batch", lambda: np.allclose(z(noise[:3])[1], z(noise[1:2])[0], rtol=1e-3, atol=1e-6),
              "an image's z-score should not depend on the other images in the batch: compute everything per image."),
    ]


# --- 10.9 grid positions for a larger screen -----------------------------------------------------------------------

_POS = torch.randn(16, 5, generator=torch.Generator().manual_seed(109))     # a 4×4 grid of 5-dim position vectors


def _grid_out(fn, pos: torch.Tensor = _POS, grid: int = 8) -> torch.Tensor:
    out = fn(pos.clone(), grid)
    if out is None or out is Ellipsis:
        raise Unsolved
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"interpolate_grid_positions should return a tensor of shape ({grid * grid}, "
                          f"{pos.shape[1]}); it returned {describe(out)}.")
    if tuple(out.shape) != (grid * grid, pos.shape[1]):
        raise CheckFailed(f"interpolate_grid_positions should return one vector per cell of the new grid, shape "
                          f"({grid * grid}, {pos.shape[1]}); it returned shape {tuple(out.shape)}.")
    return out.detach().float()


@register("10.9", "grid positions for a larger screen", ugui.interpolate_grid_positions, hints=(
    "The 16 position vectors belong to the cells of a 4×4 grid, row by row. On the larger screen the grid is 8×8: "
    "what does a cell of the new grid sit between, on the old one?",
    "Section 6, a GUI agent: put the vectors back on their grid, (n², D) → (1, D, n, n) (transpose first, so the "
    "D numbers of a cell stay together), resize the grid with `F.interpolate(..., size=(grid, grid), "
    "mode=\"bilinear\", align_corners=False)` as ViTs do at a new resolution, and flatten back to (grid², D).",
    "Worked sub-step: row r, column c of the old grid is vector r · n + c; `pos.T.reshape(1, D, n, n)[0, :, r, c]` "
    "is that vector.",
))
def _check_interpolate(fn) -> str:
    got = _grid_out(fn)
    want = _interpolate(_POS, 8)
    if torch.allclose(got, want, atol=1e-5):
        require_properties(_interpolate_probes(fn))
        return ("the 4×4 grid's positions, bilinearly resized to 8×8: the agent starts from where the zoo VLM's "
                "image tokens sat, on a grid four times as large.")
    d = _POS.shape[1]
    square = _POS.T.reshape(1, d, 4, 4)

    def resize(x, **kw):
        return F.interpolate(x, size=(8, 8), **kw).reshape(d, 64).T

    mistakes = [
        (F.interpolate(_POS.T[None], size=64, mode="linear", align_corners=False)[0].T,
         "that interpolates along the flattened sequence of 16 vectors: the end of one row runs into the start of the "
         "next. The vectors live on a 2-D grid: reshape to (1, D, 4, 4) and resize both axes."),
        (resize(square, mode="nearest"), "that repeats each vector over a 2×2 block (nearest neighbour): the new grid "
                                         "has only 16 different positions. Use bilinear interpolation."),
        (resize(square, mode="bilinear", align_corners=True), "that lines up the grids' corners (align_corners=True); "
                                                              "ViTs (timm, Hugging Face) line up the cells' edges: "
                                                              "align_corners=False."),
        (resize(square, mode="bicubic", align_corners=False), "that is bicubic interpolation (timm's default); this "
                                                               "exercise asks for bilinear."),
        (resize(_POS.reshape(1, d, 4, 4), mode="bilinear", align_corners=False),
         "the vectors were reshaped without transposing: (16, D) → (1, D, 4, 4) directly mixes the numbers of "
         "different cells. Transpose to (D, 16) first, so each channel is a 4×4 map."),
        (resize(square.transpose(2, 3), mode="bilinear", align_corners=False),
         "rows and columns are swapped: the cells are stored row by row, vector r · n + c at row r, column c."),
    ]
    for wrong, hint in mistakes:
        if wrong.shape == got.shape and torch.allclose(got, wrong, atol=1e-5):
            raise CheckFailed(hint)
    require_properties(_interpolate_probes(fn))
    raise Mismatch(f"the largest difference from the expected positions is {(got - want).abs().max():.4f}.")


def _interpolate_probes(fn) -> list[Probe]:
    ramp = torch.arange(4.0).repeat(4)[:, None].repeat(1, 3)          # the column index, cell by cell
    return [
        Probe("grid", lambda: tuple(torch.as_tensor(fn(_POS.clone(), 6)).shape) == (36, 5),
              "use the grid size you are given: grid = 6 gives 36 vectors."),
        Probe("same size", lambda: torch.allclose(_grid_out(fn, _POS, 4), _POS, atol=1e-5),
              "resizing a 4×4 grid to 4×4 should give the same vectors back. If it does not, look at how the grid "
              "is flattened back: (1, D, g, g) → (D, g²) → transpose to (g², D), the inverse of the way in."),
        Probe("constant", lambda: torch.allclose(_grid_out(fn, torch.full((16, 3), 2.5), 8), torch.full((64, 3), 2.5),
                                                 atol=1e-5),
              "position vectors that are all the same should stay the same on the larger grid."),
        Probe("columns", lambda: bool((_grid_out(fn, ramp, 8).reshape(8, 8, 3).diff(dim=1) >= -1e-6).all())
              and torch.allclose(_grid_out(fn, ramp, 8).reshape(8, 8, 3).diff(dim=0), torch.zeros(7, 8, 3),
                                 atol=1e-5),
              "a vector that grows from left to right (the same in every row) should still grow from left to right, "
              "and not change down a column: keep rows as rows."),
    ]
