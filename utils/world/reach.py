"""A robot-style task in the shapes world, with the ``gymnasium`` API (Phase 10): move a gripper to the named object.

The world's first environment. A scene of two or three objects is drawn with a dark cross, the *gripper*, on top;
the instruction names one object ("move to the blue square"). An action is a continuous move (dx, dy) in
[-1, 1]², scaled by ``step_size`` (a fraction of the image width); the episode ends with reward 1 when the
gripper's centre is inside the target's box, or is cut off after ``max_steps`` moves::

    env = ShapesReach(split="train")
    obs, info = env.reset(seed=0)            # obs = {"image": uint8 (32, 32, 3), "instruction": "move to the ..."}
    obs, reward, terminated, truncated, info = env.step(expert_action(env))
    gymnasium.make("ShapesReach-v0")          # the same, through gymnasium's registry and wrappers

Like :class:`~utils.world.World`, an episode is a pure function of (split, seed): ``reset(seed=s)`` draws the scene,
the target and the gripper's start from a generator keyed by both, so the splits never share an episode. "train"
scenes never contain a held-out (colour, shape) pair (the red triangle), so an instruction that names it is new to
a policy trained on "train" demonstrations. :func:`expert_action` is the scripted expert that demonstrations come
from: it moves towards the target's centre, each axis by at most one full move.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from PIL import Image, ImageDraw

from .rendering import check_image_size, draw_objects
from .scene import Obj, Scene, sample_scene
from .vocabulary import BACKGROUND_RGB, DEFAULT_HOLDOUT, SPLITS, SUPERSAMPLE

# The instruction's characters. gymnasium's Text space defaults to letters and digits, with no space: an
# instruction would then not be "in" the observation space and gymnasium's env checker would reject the env.
INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyz "
GRIPPER_RGB: tuple[int, int, int] = (30, 30, 30)
GRIPPER_ARM, GRIPPER_WIDTH = 0.08, 0.035        # the cross: half its span and its stroke, in image widths
GRIPPER_BOUNDS = (0.04, 0.96)                   # where the gripper's centre may go
MIN_START_DISTANCE = 0.3                        # the gripper starts at least this far from the target's centre


def instruction_for(target: Obj) -> str:
    """The task's text: ``"move to the <colour> <shape>"`` ((colour, shape) is unique in a scene)."""
    return f"move to the {target.color} {target.shape}"


def render_with_gripper(scene: Scene, gripper: tuple[float, float], image_size: int = 32) -> np.ndarray:
    """A scene as :func:`~utils.world.render` draws it, plus the gripper (a dark cross centred at ``gripper``, in
    normalised coordinates) on top: uint8 (image_size, image_size, 3)."""
    check_image_size(image_size)
    big = image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUND_RGB)
    draw = ImageDraw.Draw(canvas)
    draw_objects(draw, scene, big)
    x, y = gripper[0] * big, gripper[1] * big
    arm, half = GRIPPER_ARM * big, GRIPPER_WIDTH * big / 2
    draw.rectangle((x - arm, y - half, x + arm, y + half), fill=GRIPPER_RGB)
    draw.rectangle((x - half, y - arm, x + half, y + arm), fill=GRIPPER_RGB)
    return np.array(canvas.reduce(SUPERSAMPLE))


def inside(gripper: Iterable[float], target: Obj) -> bool:
    """Success: the gripper's centre lies inside the target's bounding box."""
    gx, gy = gripper
    return abs(gx - target.x) <= target.half and abs(gy - target.y) <= target.half


class ShapesReach(gymnasium.Env):
    """Move the gripper to the object the instruction names. Observation: ``{"image", "instruction"}``; action:
    (dx, dy) in [-1, 1]² (clipped), a move of ``step_size`` image widths per unit; reward 1 on success, else 0.

    ``reset(options=...)`` may fix the episode: ``{"scene": Scene, "target": index, "gripper": (x, y)}``."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, split: str = "train", image_size: int = 32, max_steps: int = 12, step_size: float = 0.12,
                 min_objects: int = 2, max_objects: int = 3, holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT,
                 render_mode: str | None = None) -> None:
        assert split in SPLITS, f"split must be one of {tuple(SPLITS)}, got {split!r}"
        assert render_mode in (None, "rgb_array"), f"render_mode must be None or 'rgb_array', got {render_mode!r}"
        check_image_size(image_size)
        self.split, self.image_size, self.max_steps, self.step_size = split, image_size, max_steps, step_size
        self.min_objects, self.max_objects, self.render_mode = min_objects, max_objects, render_mode
        self.holdout = frozenset(holdout) if split == "train" else frozenset()
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "instruction": spaces.Text(max_length=64, charset=INSTRUCTION_CHARSET)})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.scene: Scene | None = None
        self.target: Obj | None = None
        self.gripper = np.zeros(2)
        self.steps_taken = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:  # (split, seed) -> its own stream, as World keys scenes by (seed, split, index)
            self.np_random = np.random.default_rng([seed, SPLITS[self.split], 10])
        options = options or {}
        rng = self.np_random
        self.scene = options.get("scene") or sample_scene(rng, None, self.holdout, self.min_objects, self.max_objects)
        self.target = self.scene.objects[options.get("target", int(rng.integers(len(self.scene))))]
        if "gripper" in options:
            self.gripper = np.array(options["gripper"], dtype=float)
        else:
            low, high = GRIPPER_BOUNDS
            while True:  # a start far enough from the target that the task needs a few moves
                self.gripper = rng.uniform(low, high, size=2)
                if np.hypot(*(self.gripper - (self.target.x, self.target.y))) >= MIN_START_DISTANCE:
                    break
        self.steps_taken = 0
        return self._observation(), self._info()

    def step(self, action):
        assert self.scene is not None, "call reset() before step()"
        move = np.clip(np.asarray(action, dtype=float).reshape(2), -1.0, 1.0) * self.step_size
        self.gripper = np.clip(self.gripper + move, *GRIPPER_BOUNDS)
        self.steps_taken += 1
        success = inside(self.gripper, self.target)
        truncated = not success and self.steps_taken >= self.max_steps
        return self._observation(), float(success), success, truncated, self._info()

    def render(self) -> np.ndarray | None:
        return self.image() if self.render_mode == "rgb_array" else None

    def image(self) -> np.ndarray:
        """The current frame: the scene with the gripper on top."""
        return render_with_gripper(self.scene, tuple(self.gripper), self.image_size)

    def _observation(self) -> dict[str, Any]:
        return {"image": self.image(), "instruction": instruction_for(self.target)}

    def _info(self) -> dict[str, Any]:
        offset = np.array([self.target.x, self.target.y]) - self.gripper
        return {"target": self.target, "gripper": tuple(float(v) for v in self.gripper),
                "distance": float(np.hypot(*offset)), "success": inside(self.gripper, self.target)}


def expert_action(env: ShapesReach) -> np.ndarray:
    """The scripted expert: towards the target's centre, each axis as far as one move allows (the offset over
    ``step_size``, clipped to [-1, 1] per axis; float32 (2,)). Works on a wrapped env too (it reads
    ``env.unwrapped``)."""
    e = env.unwrapped
    offset = np.array([e.target.x, e.target.y]) - e.gripper
    return np.clip(offset / e.step_size, -1.0, 1.0).astype(np.float32)


def seeds_with_target(split: str, color: str, shape: str, n: int, **env_kwargs) -> list[int]:
    """The first ``n`` seeds of ``split`` whose episode asks for the (``color``, ``shape``) object: e.g. the held-out
    red triangle, which "train" never shows, to measure a policy on an instruction it was never trained on."""
    probe, seeds, seed = ShapesReach(split, **env_kwargs), [], 0
    while len(seeds) < n:
        probe.reset(seed=seed)
        if (probe.target.color, probe.target.shape) == (color, shape):
            seeds.append(seed)
        seed += 1
        assert seed < 1000 * n + 10000, f"no {color} {shape} targets in {split!r} (held out of it?)"
    return seeds


gymnasium.register(id="ShapesReach-v0", entry_point=ShapesReach)
