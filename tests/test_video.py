"""Tests for utils/world/video.py, moving-shape clips: determinism, splits, trajectories, time-reversal symmetry,
tubelets vs Conv3d, and the Phase 2 lesson (frame averages cannot tell left from right; tubelets can)."""
from __future__ import annotations

import hashlib
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from utils.vision import frame_average, num_tubelets, to_video_tensor, tubelets
from utils.world import BACKGROUND_RGB, COLORS, MARGIN, SHAPES, SIZES, World, caption, render, sample_scene
from utils.world.video import (
    DEFAULT_SPEED,
    DIRECTIONS,
    OPPOSITE,
    VideoWorld,
    clip_caption,
    fit_scene,
    fits,
    half_travel,
    moving_clip,
    show_clip,
    trajectory,
)


def digest(video: VideoWorld, split: str, n: int) -> str:
    frames, labels = video.arrays(split, n)
    h = hashlib.sha256(frames.tobytes())
    h.update(labels.tobytes())
    for i in range(n):
        h.update(video.clip(split, i)["caption"].encode())
    return h.hexdigest()


def ink(frames: np.ndarray) -> np.ndarray:
    """Per-frame pixel mass: summed |pixel - background| over (H, W, 3)."""
    return np.abs(frames.astype(np.int64) - np.array(BACKGROUND_RGB)).sum(axis=(-3, -2, -1))


def centroids(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink centroid (x, y) of every frame of (T, H, W, 3), in normalised units."""
    w = np.abs(frames.astype(np.float64) - np.array(BACKGROUND_RGB)).sum(-1)  # (T, H, W)
    size = frames.shape[1]
    ys, xs = (np.mgrid[0:size, 0:size] + 0.5) / size
    return (w * xs).sum((1, 2)) / w.sum((1, 2)), (w * ys).sum((1, 2)) / w.sum((1, 2))


# ---------------------------------------------------------------------------------------------------------
# Determinism and splits


def test_same_seed_same_bytes_different_seed_or_split_different():
    a, b, c = VideoWorld(1), VideoWorld(1), VideoWorld(2)
    assert digest(a, "train", 40) == digest(b, "train", 40)
    assert digest(a, "train", 40) != digest(c, "train", 40)
    assert digest(a, "train", 40) != digest(a, "val", 40)


def test_clip_independent_of_call_order_and_matches_arrays():
    video = VideoWorld(0)
    frames, labels = video.arrays("val", 8)
    for i in (7, 3, 0):
        item = video.clip("val", i)
        assert np.array_equal(item["frames"], frames[i]) and item["label"] == labels[i]
        assert DIRECTIONS[item["label"]] == item["direction"] and item["index"] == i
    assert frames.dtype == np.uint8 and frames.shape == (8, 8, 32, 32, 3) and labels.dtype == np.int64


def test_splits_are_disjoint_streams_and_not_the_world_scenes():
    video = VideoWorld(0)
    scenes = {split: [video.sample(split, i)[0] for i in range(300)] for split in ("train", "val", "test")}
    assert not set(scenes["train"]) & set(scenes["val"])
    assert not set(scenes["train"]) & set(scenes["test"])
    assert not set(scenes["val"]) & set(scenes["test"])
    world_scenes = World(0).scenes("train", 300)  # same seed, but VideoWorld uses its own stream
    assert not set(scenes["train"]) & set(world_scenes)
    assert not any(s.has(color="red", shape="triangle") for s in scenes["train"])  # the world's holdout
    assert any(s.has(color="red", shape="triangle") for s in scenes["val"] + scenes["test"])


def test_labels_balanced_and_restricted_directions():
    _, labels = VideoWorld(0).arrays("train", 800)
    counts = np.bincount(labels, minlength=4)
    assert counts.min() > 150, counts
    _, labels = VideoWorld(0, directions=("left", "right")).arrays("train", 200)
    assert set(labels.tolist()) == {DIRECTIONS.index("left"), DIRECTIONS.index("right")}


# ---------------------------------------------------------------------------------------------------------
# Trajectories


@pytest.mark.parametrize("image_size,n_frames", [(32, 8), (64, 6)])
def test_objects_inside_every_frame_and_mass_constant(image_size, n_frames):
    video = VideoWorld(3, image_size=image_size, n_frames=n_frames, max_objects=3)
    for i in range(60):
        scene, direction = video.sample("train", i)
        assert fits(scene, n_frames)
        for frame_scene in trajectory(scene, direction, n_frames):
            for o in frame_scene.objects:
                for v in (o.x, o.y):
                    assert MARGIN - 1e-3 <= v - o.half and v + o.half <= 1 - MARGIN + 1e-3
        frames = video.clip("train", i)["frames"]
        mass = ink(frames)
        assert mass.min() > 0.93 * mass.mean() and mass.max() < 1.07 * mass.mean(), mass  # nothing is clipped


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_objects_move_in_the_direction_at_constant_speed(direction):
    rng = np.random.default_rng(5)
    for _ in range(10):
        scene = sample_scene(rng, 1)
        frames = moving_clip(scene, direction, n_frames=8, image_size=64)
        cx, cy = centroids(frames)
        step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
        assert np.allclose(np.diff(cx), step[0] * DEFAULT_SPEED, atol=0.004)
        assert np.allclose(np.diff(cy), step[1] * DEFAULT_SPEED, atol=0.004)
        mx, my = centroids(render(fit_scene(scene), 64)[None])  # centred on the (fitted) scene position
        assert abs(cx.mean() - mx[0]) < 0.005 and abs(cy.mean() - my[0]) < 0.005


def test_fit_scene_shifts_rigidly_when_it_can():
    rng, a, n_rigid = np.random.default_rng(0), half_travel(8), 0
    for _ in range(300):
        scene = sample_scene(rng, 2)
        fitted = fit_scene(scene)
        assert fit_scene(fitted) == fitted and fits(fitted)
        if fits(scene):
            assert fitted == scene
        for o in fitted.objects:  # room to travel half_travel in every direction
            assert all(o.half + MARGIN + a - 2e-4 <= v <= 1 - o.half - MARGIN - a + 2e-4 for v in (o.x, o.y))
        lows = [o.half + MARGIN + a for o in scene.objects]
        rigid = all(max(lo - v for lo, v in zip(lows, vs)) <= min(1 - lo - v for lo, v in zip(lows, vs))
                    for vs in ([o.x for o in scene.objects], [o.y for o in scene.objects]))
        if rigid:  # the layout fits somewhere: it is moved as a whole, gaps kept
            n_rigid += 1
            (p, q), (p1, q1) = scene.objects, fitted.objects
            assert abs((p.x - q.x) - (p1.x - q1.x)) < 2e-4 and abs((p.y - q.y) - (p1.y - q1.y)) < 2e-4
    assert n_rigid > 100


# ---------------------------------------------------------------------------------------------------------
# The lesson's key property: time reversal = opposite direction, so frame averages carry no direction sign


def test_time_reversal_is_the_opposite_direction_byte_for_byte():
    scenes = [VideoWorld(0, max_objects=3).sample("test", i)[0] for i in range(20)]
    scenes += World(0, image_size=32).scenes("train", 20)  # arbitrary scenes, fitted on the fly
    for scene in scenes:
        for d in DIRECTIONS:
            clip = moving_clip(scene, d)
            assert np.array_equal(clip[::-1], moving_clip(scene, OPPOSITE[d]))
            assert trajectory(scene, d)[::-1] == trajectory(scene, OPPOSITE[d])


def test_opposite_directions_have_identical_frame_averages_and_midpoints():
    video = VideoWorld(1)
    for i in range(20):
        scene, _ = video.sample("val", i)
        clips = {d: moving_clip(scene, d).astype(np.int64) for d in DIRECTIONS}
        assert np.array_equal(clips["left"].sum(0), clips["right"].sum(0))  # exact time averages
        assert np.array_equal(clips["up"].sum(0), clips["down"].sum(0))
        assert not np.array_equal(clips["left"], clips["right"])  # but the clips themselves differ
        x = to_video_tensor(np.stack([clips["left"], clips["right"]]).astype(np.uint8))
        assert torch.allclose(frame_average(x)[0], frame_average(x)[1], atol=1e-6)
        mids = {d: np.mean([[o.x, o.y] for s in trajectory(scene, d) for o in s.objects], 0) for d in DIRECTIONS}
        for d in DIRECTIONS:  # every direction has the same midpoint: where the clip is says nothing of where to
            assert np.allclose(mids[d], mids["left"], atol=1e-9)


# ---------------------------------------------------------------------------------------------------------
# Tokens


@pytest.mark.parametrize("shape,t,p", [((2, 8, 3, 32, 32), 2, 4), ((3, 5, 3, 18, 20), 2, 4), ((1, 4, 1, 16, 16), 4, 8),
                                       ((2, 3, 3, 12, 12), 1, 3)])
def test_tubelets_equal_conv3d_patch_embedding(shape, t, p):
    torch.manual_seed(0)
    b, tt, c, h, w = shape
    video = torch.rand(shape, dtype=torch.float64)
    conv = nn.Conv3d(c, 7, kernel_size=(t, p, p), stride=(t, p, p)).double()
    with torch.no_grad():
        ref = conv(video.transpose(1, 2)).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = tubelets(video, t, p)
        ours = tokens @ conv.weight.reshape(7, -1).T + conv.bias
    n = num_tubelets(tt, h, t, p) if h == w else (tt // t) * (h // p) * (w // p)
    assert tokens.shape == (b, n, c * t * p * p)
    assert torch.allclose(ours, ref, atol=1e-10)


def test_tubelet_layout_and_counts():
    video = torch.arange(2 * 4 * 3 * 8 * 8).reshape(2, 4, 3, 8, 8)  # (B, T, C, H, W)
    tokens = tubelets(video, 2, 4)
    assert tokens.shape == (2, num_tubelets(4, 8, 2, 4), 3 * 2 * 4 * 4) == (2, 8, 96)
    # token 5 = (time 1, row 0, col 1); its values in (C, t, p, p) order
    assert torch.equal(tokens[1, 5], video[1, 2:4, :, 0:4, 4:8].permute(1, 0, 2, 3).reshape(-1))
    assert num_tubelets(8, 32, 2, 4) == 256 and num_tubelets(8, 32, 1, 4) == 512
    assert num_tubelets(16, 224, 2, 16) == 1568  # ViViT/VideoMAE-B on 16 frames of 224 px
    frames, _ = VideoWorld(0).arrays("train", 3)
    x = to_video_tensor(frames)
    assert x.shape == (3, 8, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert frame_average(x).shape == (3, 3, 32, 32)
    assert torch.allclose(frame_average(torch.from_numpy(frames).movedim(-1, -3)) / 255, frame_average(x))


# ---------------------------------------------------------------------------------------------------------
# Captions and display


def test_captions_use_the_world_vocabulary():
    video = VideoWorld(0, max_objects=2)
    vocab = set(COLORS) | set(SHAPES) | set(SIZES) | {"a", "and", "moves", "move", "to", "the", "left", "right",
                                                        "up", "down"}
    for i in range(40):
        item = video.clip("train", i)
        text, scene = item["caption"], item["scene"]
        assert text.endswith(".") and set(re.findall(r"[a-z]+", text)) <= vocab
        assert text == caption(scene, template=0)[:-1] + (" moves " if len(scene) == 1 else " move ") + {
            "left": "to the left", "right": "to the right", "up": "up", "down": "down"}[item["direction"]] + "."
    scene = video.sample("train", 0)[0]
    assert clip_caption(scene, "left").endswith("to the left.")


def test_show_clip_returns_figure():
    import matplotlib.pyplot as plt

    item = VideoWorld(0).clip("train", 0)
    fig = show_clip(item["frames"], title=item["caption"])
    assert len(fig.axes) == 8
    plt.close(fig)
    fig, axes = plt.subplots(2, 8)
    assert show_clip(to_video_tensor(item["frames"]), ax_row=axes[1], title="tensor") is fig
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# The Phase 2 lesson, as a learning test


def _token_mlp_accuracy(train_tokens, train_labels, test_tokens, test_labels, steps=150, hidden=16) -> float:
    """A shared token embedding (Linear + ReLU, i.e. a patch embedding) and a linear head on all embedded tokens
    (flattened, so it also sees *where* each token is: a leak of direction through position would be found)."""
    torch.manual_seed(0)
    mu = train_tokens.mean(dim=(0, 1))
    embed = nn.Sequential(nn.Linear(train_tokens.shape[-1], hidden), nn.ReLU(), nn.Flatten())
    head = nn.Linear(hidden * train_tokens.shape[1], 2)
    opt = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(train_tokens), (64,), generator=gen)
        loss = nn.functional.cross_entropy(head(embed(train_tokens[idx] - mu)), train_labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = head(embed(test_tokens - mu)).argmax(1)
    return (pred == test_labels).float().mean().item()


def test_frame_average_is_at_chance_on_left_vs_right_but_tubelets_are_not():
    video = VideoWorld(0, directions=("left", "right"))
    frames, labels = video.arrays("train", 512)
    y_train = torch.from_numpy((labels == DIRECTIONS.index("right")).astype(np.int64))
    # test set: 128 val scenes, each as a "left" clip and as a "right" clip
    scenes = [video.sample("val", i)[0] for i in range(128)]
    test_frames = np.stack([moving_clip(s, d) for d in ("left", "right") for s in scenes])
    y_test = torch.cat([torch.zeros(128, dtype=torch.long), torch.ones(128, dtype=torch.long)])
    x_train, x_test = to_video_tensor(frames), to_video_tensor(test_frames)

    def averaged(x: torch.Tensor) -> torch.Tensor:  # average frames first, then 4x4 patches
        return tubelets(frame_average(x).unsqueeze(1), 1, 4)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and robust on a busy 2-core machine
    try:
        acc_avg = _token_mlp_accuracy(averaged(x_train), y_train, averaged(x_test), y_test)
        acc_tube = _token_mlp_accuracy(tubelets(x_train, 2, 4), y_train, tubelets(x_test, 2, 4), y_test)
    finally:
        torch.set_num_threads(threads)
    # each test scene appears with both labels and (up to float rounding) identical frame averages, so any
    # classifier of frame averages scores 0.5 here; a clip that started at the scene position would not
    assert abs(acc_avg - 0.5) <= 0.05, acc_avg
    assert acc_tube > 0.9, acc_tube


# ----------------------------------------------------------------------------------------------------------
# One mover (Phase 6's video questions)


def test_one_mover_moves_and_the_others_stay():
    video = VideoWorld(0, movers="one", min_objects=2, max_objects=2)
    movers = []
    for i in range(60):
        scene, direction, moving = video.motion("train", i)
        assert len(moving) == 1 and 0 <= moving[0] < 2
        movers.append(moving[0])
        frames = trajectory(scene, direction, 8, moving=moving)
        for j in range(len(scene)):
            path = {(f.objects[j].x, f.objects[j].y) for f in frames}
            assert (len(path) == 8) == (j in moving)  # the mover takes 8 places, the other keeps one
        item = video.clip("train", i)
        assert item["moving"] == moving and np.array_equal(item["frames"], moving_clip(scene, direction, moving=moving))
        assert item["caption"].count(" stays") == 1
    assert 15 <= sum(movers) <= 45  # which object moves is drawn, not always the first


def test_movers_all_keeps_the_phase2_stream():
    a, b = VideoWorld(3), VideoWorld(3, movers="all")
    for i in range(20):
        scene = a.sample("val", i)[0]
        assert b.sample("val", i)[0] == scene and a.motion("val", i)[2] == tuple(range(len(scene)))
    one = VideoWorld(3, movers="one")
    assert all(one.sample("val", i) == a.sample("val", i) for i in range(20))  # same scenes, one mover drawn after


def test_a_still_object_is_the_same_in_every_frame_and_time_reversal_still_holds():
    scene = VideoWorld(0, movers="one", min_objects=2, max_objects=2).sample("test", 5)[0]
    for d in DIRECTIONS:
        clip = moving_clip(scene, d, moving=[1])
        assert np.array_equal(clip[::-1], moving_clip(scene, OPPOSITE[d], moving=[1]))
    with pytest.raises(AssertionError, match="must index"):
        trajectory(scene, "left", moving=[2])
    assert clip_caption(scene, "up", moving=[0]) == (f"a {scene.objects[0].describe()} moves up and a "
                                                     f"{scene.objects[1].describe()} stays.")
