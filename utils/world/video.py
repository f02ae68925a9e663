"""Videos in the shapes world: short clips of shapes moving in a straight line. Introduced in Phase 2.

The world's video modality (the clips and their captions); turning clips into tensors and tubelet tokens is
the encoder's side and lives in :mod:`utils.vision`.

A clip is a scene from :mod:`utils.world` whose objects all move together, at constant speed, in one of four
directions. Every frame is drawn by :func:`utils.world.render`, so clips look exactly like the world's images::

    video = VideoWorld(seed=0)                       # 32 px, 8 frames
    item = video.clip("train", 0)                    # frames uint8 (8, 32, 32, 3), direction, scene, caption
    frames, labels = video.arrays("train", 512)      # uint8 (512, 8, 32, 32, 3), int64 indices into DIRECTIONS
    x = uvision.to_video_tensor(frames)              # float (512, 8, 3, 32, 32) in [0, 1]
    tokens = uvision.tubelets(x, t=2, p=4)           # (512, 4 * 8 * 8, 3 * 2 * 4 * 4)
    show_clip(item["frames"], title=item["caption"])

The Phase 2 lesson: trajectories are symmetric about their midpoint, which is the scene's position. Hence a
clip played backwards *is* the clip of the opposite direction (byte for byte), and the time-average of a clip
is identical for "left" and "right" (and for "up" and "down"). A model that averages frames first can see
along which axis things moved (the smear is horizontal or vertical) but never which way; a model that looks at
spatiotemporal (tubelet) patches can.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .display import to_hwc_uint8
from .language import join_phrases
from .rendering import check_image_size, render
from .scene import Scene, sample_scene
from .vocabulary import DEFAULT_HOLDOUT, MARGIN, SPLITS

DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
# Unit step of each direction in image coordinates (x to the right, y downwards).
DIRECTION_STEP: dict[str, tuple[float, float]] = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0),
                                                  "down": (0.0, 1.0)}
OPPOSITE: dict[str, str] = {"left": "right", "right": "left", "up": "down", "down": "up"}
MOVERS: tuple[str, ...] = ("all", "one")  # VideoWorld(movers=...): every object moves, or one of them
DIRECTION_PHRASE: dict[str, str] = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}

DEFAULT_SPEED = 0.04  # normalised units per frame: 1.28 px/frame at 32 px; 8 frames travel 0.28 (9 px)
FIT_TOLERANCE = 1e-4  # positions have 4 decimals; bounds are met up to this (0.003 px at 32 px)
VIDEO_STREAM = 10  # extra seed key, so VideoWorld(seed) scenes differ from World(seed) scenes


def _check_direction(direction: str) -> None:
    assert direction in DIRECTIONS, f"direction must be one of {DIRECTIONS}, got {direction!r}"


def half_travel(n_frames: int, speed: float = DEFAULT_SPEED) -> float:
    """How far (normalised units) an object moves from the trajectory's midpoint to its first or last frame."""
    return (n_frames - 1) / 2 * speed


def _shift_bounds(scene: Scene, n_frames: int, speed: float) -> tuple[tuple[float, float], ...] | None:
    """Per axis (x, y), the interval of rigid shifts that let every object of ``scene`` travel ``half_travel``
    in any direction while staying MARGIN inside the image (up to FIT_TOLERANCE); None if an interval is empty."""
    a = half_travel(n_frames, speed)
    objs = scene.objects
    assert objs, "a clip needs at least one object"
    assert a + max(o.half for o in objs) + MARGIN <= 0.5, f"speed {speed} is too fast for {n_frames} frames"
    lows = [o.half + MARGIN + a for o in objs]  # each object's centre must stay in [low, 1 - low] on both axes
    bounds = []
    for coords in ([o.x for o in objs], [o.y for o in objs]):
        lo = max(low - v for low, v in zip(lows, coords)) - FIT_TOLERANCE
        hi = min(1 - low - v for low, v in zip(lows, coords)) + FIT_TOLERANCE
        if lo > hi:
            return None
        bounds.append((lo, hi))
    return tuple(bounds)


def _shifted(scene: Scene, dx: float, dy: float) -> Scene:
    if dx == 0.0 and dy == 0.0:
        return scene
    return Scene(tuple(replace(o, x=round(o.x + dx, 4), y=round(o.y + dy, 4)) for o in scene.objects))


def _rigid_fit(scene: Scene, n_frames: int, speed: float, rng: np.random.Generator | None = None) -> Scene | None:
    """``scene`` shifted rigidly so that it can travel ``half_travel`` in any direction while staying MARGIN
    inside the image; None if no shift does. Without ``rng`` the smallest shift is used (none if ``scene``
    already fits); with ``rng`` the shift is uniform over all valid ones (no pile-up at the borders)."""
    bounds = _shift_bounds(scene, n_frames, speed)
    if bounds is None:
        return None
    if rng is None:
        dx, dy = (min(max(0.0, lo), hi) for lo, hi in bounds)
    else:
        dx, dy = (float(rng.uniform(lo, hi)) for lo, hi in bounds)
    return _shifted(scene, dx, dy)


def fit_scene(scene: Scene, n_frames: int = 8, speed: float = DEFAULT_SPEED) -> Scene:
    """The trajectory midpoint scene: ``scene`` moved so that every object stays inside the image (MARGIN from
    the border) while it travels ``half_travel`` in *any* of the four directions.

    The whole scene is shifted rigidly by the smallest amount that fits (no shift if it already fits), so the
    layout, and the gaps between objects, are kept. Only if no rigid shift fits are objects clamped one by one
    (they may then overlap). The result does not depend on the direction, so neither does the midpoint.
    """
    fitted = _rigid_fit(scene, n_frames, speed)
    if fitted is not None:
        return fitted
    a = half_travel(n_frames, speed)

    def clamp(v: float, lo: float) -> float:  # bounds rounded inwards to the world's 4 decimals
        return min(max(v, math.ceil(lo * 1e4) / 1e4), math.floor((1 - lo) * 1e4) / 1e4)

    return Scene(tuple(replace(o, x=clamp(o.x, o.half + MARGIN + a), y=clamp(o.y, o.half + MARGIN + a))
                       for o in scene.objects))


def fits(scene: Scene, n_frames: int = 8, speed: float = DEFAULT_SPEED) -> bool:
    """True if ``scene`` can be a trajectory midpoint as it is (:func:`fit_scene` leaves it unchanged)."""
    return fit_scene(scene, n_frames, speed) == scene


def _check_moving(scene: Scene, moving: Collection[int] | None) -> frozenset[int]:
    if moving is None:
        return frozenset(range(len(scene)))
    moving = frozenset(int(i) for i in moving)
    assert all(0 <= i < len(scene) for i in moving), (
        f"moving {sorted(moving)} must index the scene's {len(scene)} objects")
    return moving


def trajectory(scene: Scene, direction: str, n_frames: int = 8, speed: float = DEFAULT_SPEED,
               moving: Collection[int] | None = None) -> list[Scene]:
    """Per-frame scenes of a clip: :func:`fit_scene` gives the midpoint, and in frame k every object whose index
    is in ``moving`` (default: all) is moved by (k - (n_frames - 1) / 2) * speed in ``direction``; the others
    stay at the midpoint.

    The offsets are antisymmetric in k, so ``trajectory(s, d)[::-1] == trajectory(s, OPPOSITE[d])`` exactly
    (floating point included); per-frame boxes for tracking come from ``Scene.boxes`` of each frame.
    """
    _check_direction(direction)
    assert n_frames >= 1, "a clip needs at least one frame"
    mid = fit_scene(scene, n_frames, speed)
    moving = _check_moving(mid, moving)
    sx, sy = DIRECTION_STEP[direction]
    frames = []
    for k in range(n_frames):
        off = (k - (n_frames - 1) / 2) * speed
        frames.append(Scene(tuple(replace(o, x=o.x + sx * off, y=o.y + sy * off) if i in moving else o
                                  for i, o in enumerate(mid.objects))))
    return frames


def moving_clip(
    scene: Scene, direction: str, n_frames: int = 8, image_size: int = 32, speed: float = DEFAULT_SPEED,
    moving: Collection[int] | None = None,
) -> np.ndarray:
    """Render a clip, uint8 (n_frames, image_size, image_size, 3), of the objects of ``scene`` listed in
    ``moving`` (default: all) moving in a straight line at ``speed`` (normalised units per frame) in
    ``direction`` while the others stay still; see :func:`trajectory`.

    The trajectory's midpoint is ``fit_scene(scene)`` (the scene itself when it fits), so for any scene
    ``moving_clip(s, "left")[::-1]`` equals ``moving_clip(s, "right")`` byte for byte and both have the same
    frame average.
    """
    check_image_size(image_size)
    return np.stack([render(s, image_size) for s in trajectory(scene, direction, n_frames, speed, moving)])


def clip_caption(scene: Scene, direction: str, moving: Collection[int] | None = None) -> str:
    """"a small red circle moves to the left." / "a small red circle and a large blue square move up." /
    "a small red circle moves up and a large blue square stays." (object phrases as in
    :func:`utils.world.caption`, template 0; ``moving`` as in :func:`trajectory`)."""
    _check_direction(direction)
    moving = _check_moving(scene, moving)
    movers = [o for i, o in enumerate(scene.objects) if i in moving]
    still = [o for i, o in enumerate(scene.objects) if i not in moving]
    parts = []
    if movers:
        verb = "moves" if len(movers) == 1 else "move"
        parts.append(f"{join_phrases(['a ' + o.describe() for o in movers])} {verb} {DIRECTION_PHRASE[direction]}")
    if still:
        verb = "stays" if len(still) == 1 else "stay"
        parts.append(f"{join_phrases(['a ' + o.describe() for o in still])} {verb}")
    return " and ".join(parts) + "."


class VideoWorld:
    """A seeded, deterministic source of clips, split into "train", "val" and "test" like :class:`World`.

    Clip ``index`` of ``split`` depends only on (seed, split, index), never on call order: it uses the
    generator ``default_rng([seed, SPLITS[split], index, VIDEO_STREAM])`` (World's scheme plus a video stream,
    so splits are disjoint streams and VideoWorld(s) does not replay World(s)'s scenes). The direction is drawn
    uniformly from ``directions``, independently of the scene. A layout from :func:`utils.world.sample_scene` is
    placed by a rigid shift drawn uniformly among those that keep every object inside the image while it
    travels in any direction (layouts too wide for that are resampled); ``clip["scene"]`` is that placed scene,
    the midpoint of the motion, so it does not depend on the direction. Train scenes never contain a
    ``holdout`` (colour, shape) pair.

    ``movers="all"`` (Phase 2) moves every object; ``movers="one"`` (Phase 6's video QA: "which shape moves?")
    moves one object, drawn uniformly after the scene, and leaves the others still. ``clip["moving"]`` lists
    the indices of the objects that move either way.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 32,
        n_frames: int = 8,
        speed: float = DEFAULT_SPEED,
        directions: Sequence[str] = DIRECTIONS,
        min_objects: int = 1,
        max_objects: int = 2,
        holdout: Iterable[tuple[str, str]] = DEFAULT_HOLDOUT,
        movers: str = "all",
    ) -> None:
        check_image_size(image_size)
        assert movers in MOVERS, f"movers must be one of {MOVERS}, got {movers!r}"
        assert n_frames >= 1 and speed >= 0
        assert directions and all(d in DIRECTIONS for d in directions), f"directions must come from {DIRECTIONS}"
        assert 1 <= min_objects <= max_objects <= 3, "1..3 objects (more rarely fit a moving clip)"
        self.seed = seed
        self.image_size = image_size
        self.n_frames = n_frames
        self.speed = speed
        self.directions: tuple[str, ...] = tuple(directions)
        self.min_objects = min_objects
        self.max_objects = max_objects
        self.holdout: frozenset[tuple[str, str]] = frozenset((c, s) for c, s in holdout)
        self.movers = movers

    def __repr__(self) -> str:
        return (
            f"VideoWorld(seed={self.seed}, image_size={self.image_size}, n_frames={self.n_frames}, "
            f"speed={self.speed}, directions={self.directions}, objects={self.min_objects}..{self.max_objects}"
            + (f", movers={self.movers!r})" if self.movers != "all" else ")")
        )

    def _rng(self, split: str, index: int) -> np.random.Generator:
        """Generator for (seed, split, index), mirroring :meth:`World._rng` with an extra video stream key."""
        assert split in SPLITS, f"split must be one of {tuple(SPLITS)}, got {split!r}"
        return np.random.default_rng([self.seed, SPLITS[split], index, VIDEO_STREAM])

    def motion(self, split: str, index: int) -> tuple[Scene, str, tuple[int, ...]]:
        """The (midpoint scene, direction, indices of the moving objects) of clip ``index`` of ``split``; a pure
        function of (seed, split, index)."""
        rng = self._rng(split, index)
        direction = self.directions[int(rng.integers(len(self.directions)))]
        holdout = self.holdout if split == "train" else frozenset()
        n_objects = int(rng.integers(self.min_objects, self.max_objects + 1))  # drawn once: keeps counts uniform
        for _ in range(1000):
            fitted = _rigid_fit(sample_scene(rng, n_objects, holdout), self.n_frames, self.speed, rng)
            if fitted is not None:
                # drawn last, so movers="all" keeps the Phase 2 stream byte for byte
                moving = tuple(range(n_objects)) if self.movers == "all" else (int(rng.integers(n_objects)),)
                return fitted, direction, moving
        raise RuntimeError(f"no scene fits {self!r}; use fewer objects, fewer frames or a lower speed")

    def sample(self, split: str, index: int) -> tuple[Scene, str]:
        """The (midpoint scene, direction) of clip ``index`` of ``split`` (:meth:`motion` without the movers)."""
        return self.motion(split, index)[:2]

    def clip(self, split: str, index: int) -> dict[str, Any]:
        """One clip. Keys: "frames" uint8 (T, H, W, 3); "direction" str; "label" int (index in DIRECTIONS);
        "scene" the midpoint Scene; "moving" tuple of the moving objects' indices; "caption" str, e.g. "a small red
        circle moves to the left."; "index" int."""
        scene, direction, moving = self.motion(split, index)
        return {
            "frames": moving_clip(scene, direction, self.n_frames, self.image_size, self.speed, moving),
            "direction": direction,
            "label": DIRECTIONS.index(direction),
            "scene": scene,
            "moving": moving,
            "caption": clip_caption(scene, direction, moving),
            "index": index,
        }

    def arrays(self, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Clips 0..n-1 of ``split``: frames uint8 (n, T, H, W, 3) and labels int64 (n,) indexing DIRECTIONS."""
        frames = np.empty((n, self.n_frames, self.image_size, self.image_size, 3), dtype=np.uint8)
        labels = np.empty(n, dtype=np.int64)
        for i in range(n):
            scene, direction, moving = self.motion(split, i)
            frames[i] = moving_clip(scene, direction, self.n_frames, self.image_size, self.speed, moving)
            labels[i] = DIRECTIONS.index(direction)
        return frames, labels


# ----------------------------------------------------------------------------------------------------------
# Display


def show_clip(
    frames: Any,
    ax_row: Sequence[Any] | None = None,
    title: str | None = None,
    cell_size: float = 1.2,
    label_frames: bool = True,
):
    """Draw a clip as a film strip, one frame per axis, and return the matplotlib Figure.

    ``frames`` is uint8 (T, H, W, 3) or float (T, 3, H, W) in [0, 1] (array or tensor). With ``ax_row`` (at
    least T axes, e.g. a row of a ``plt.subplots`` grid) the frames are drawn there and ``title`` labels the
    row's first axis; otherwise a new 1 x T figure is made and ``title`` is its suptitle.
    """
    import matplotlib.pyplot as plt  # imported lazily: the rest of the module does not need matplotlib

    frames = list(frames)
    n = len(frames)
    own_figure = ax_row is None
    if ax_row is None:
        fig, axes = plt.subplots(1, n, figsize=(cell_size * n, cell_size + (0.4 if title else 0.2)), squeeze=False)
        ax_row = list(axes[0])
        if title:
            fig.suptitle(title, fontsize=9)
    else:
        ax_row = list(ax_row)
        assert len(ax_row) >= n, f"{n} frames need at least {n} axes, got {len(ax_row)}"
        fig = ax_row[0].figure
        if title:
            ax_row[0].set_ylabel(title, fontsize=7)
    for k, ax in enumerate(ax_row):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(to_hwc_uint8(frames[k]), interpolation="nearest")
        if label_frames:
            ax.set_title(f"t={k}", fontsize=7)
    if own_figure:
        fig.tight_layout()
    return fig
