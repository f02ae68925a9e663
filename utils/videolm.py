"""Video-language models (Phase 6): the Phase 5 VLM answering questions about clips.

Two ways to turn a clip into tokens for the same language model::

    frames, pairs = video_questions(VideoWorld(0, movers="one", min_objects=2, max_objects=2), "train", 2000)
    vlm = frame_vlm()                                    # the zoo VLM, reading 8 frames as 8 images
    feats = frame_tokens(vlm.visual, frames)             # (B, 8, 16, 128): the zoo CLIP's grid per frame
    feats = pool_video_tokens(feats, time=2)             # (B, 4, 16, 128): the long-video token budget
    train_video_vlm(vlm, feats.flatten(1, 2), pairs, steps=300)

    tube = tubelet_vlm(t=2, p=8)                         # raw t x p x p tubelets, a new linear embedding
    x = uvision.tubelets(uvision.to_video_tensor(frames), 2, 8)  # (B, 64, 384)

The frame VLM is LLaVA-Video's recipe (frames as images, the image tower frozen, optional pooling of tokens over
time and space); the tubelet VLM is the ViViT/TubeViT side: spatiotemporal patches embedded by one linear map
(a Conv3d with kernel = stride), so every token already spans several frames.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import env
from .clip import clip_grid_tokens, normalize_images
from .metrics import per_kind_accuracy
from .train import History, adamw_one_cycle, infinite_batches, median_seconds, train, update
from .vision import to_video_tensor, tubelets
from .vlm import (
    ZOO_VLM,
    TinyVLM,
    encode_with_labels,
    extend_positions,
    extend_vocabulary,
    mlp_projector,
    splice_image_tokens,
    vqa_prompt,
)
from .world import QA
from .world.video import DIRECTIONS, VideoWorld

# Words the video questions and answers add to the zoo VLM's vocabulary.
VIDEO_WORDS: tuple[str, ...] = ("which", "way", "does", "move", "moves", "up", "down")
VIDEO_KINDS: tuple[str, ...] = ("direction", "mover")
VIDEO_ANSWERS: tuple[str, ...] = DIRECTIONS + ("circle", "square", "triangle", "diamond")
TEXT_POSITIONS = 24  # room for the prompt and answer around the clip's tokens
ZOO_VIDEO_VLM = ZOO_VLM.parent / "tiny-video-vlm-shapes"      # frames (make models MODEL=tiny-video-vlm-shapes)
ZOO_TUBELET_VLM = ZOO_VLM.parent / "tiny-tubelet-vlm-shapes"  # tubelets (make models MODEL=tiny-tubelet-vlm-shapes)


def video_questions(video: VideoWorld, split: str, n_clips: int) -> tuple[np.ndarray, list[tuple[int, QA]]]:
    """Clips 0..n_clips-1 of ``split`` (uint8 (n, T, H, W, 3)) and their questions as (clip index, QA) pairs.

    Two kinds per clip: ``"direction"``, "which way does the red circle move?" about a moving object (answer
    left / right / up / down), and ``"mover"``, "which shape moves?" (answer its shape; asked only when no
    still object has the same shape). Needs a world whose clips have a still object, e.g.
    ``VideoWorld(movers="one", min_objects=2, max_objects=2)``; the answers are read from the clip's scene.
    """
    frames, pairs = [], []
    for i in range(n_clips):
        clip = video.clip(split, i)
        frames.append(clip["frames"])
        objects = clip["scene"].objects
        movers = [objects[j] for j in clip["moving"]]
        still = [o for j, o in enumerate(objects) if j not in clip["moving"]]
        o = movers[0]
        pairs.append((i, QA(f"which way does the {o.color} {o.shape} move?", clip["direction"], "direction")))
        if len(movers) == 1 and all(s.shape != o.shape for s in still):
            pairs.append((i, QA("which shape moves?", o.shape, "mover")))
    return np.stack(frames), pairs


def frame_tokens(visual: nn.Module, frames: np.ndarray, layer: str = "layer2") -> torch.Tensor:
    """Every frame through the frozen image tower: uint8 clips (B, T, H, W, 3) -> grid tokens (B, T, N, C)."""
    b, t = frames.shape[:2]
    grid = clip_grid_tokens(visual, normalize_images(frames.reshape(b * t, *frames.shape[2:])), layer)
    return grid.reshape(b, t, *grid.shape[1:])


def pool_video_tokens(tokens: torch.Tensor, time: int = 1, space: int = 1) -> torch.Tensor:
    """Average video tokens over groups of ``time`` consecutive frames and ``space`` x ``space`` grid windows:
    (B, T, N, C) -> (B, T // time, N // space**2, C), with N a square grid in row-major order. Average pooling is
    LLaVA-Video's way of fitting long clips into the context (Qwen2-VL merges 2 frames x 2 x 2 patches with a learned
    MLP instead). ``time=T`` keeps one averaged frame."""
    b, t, n, c = tokens.shape
    side = int(round(n ** 0.5))
    assert side * side == n, f"N={n} tokens are not a square grid"
    assert t % time == 0 and side % space == 0, f"time={time} must divide T={t} and space={space} the side {side}"
    x = tokens.reshape(b, t // time, time, side // space, space, side // space, space, c)
    return x.mean(dim=(2, 4, 6)).reshape(b, t // time, (side // space) ** 2, c)


def _video_lm(vlm: TinyVLM, n_tokens: int) -> None:
    """Grow the zoo VLM's LM for video: the question words, and positions for ``n_tokens`` clip tokens + text."""
    extend_vocabulary(vlm.lm, vlm.tokenizer, VIDEO_WORDS, special=())
    extend_positions(vlm.lm, n_tokens + TEXT_POSITIONS)


class VideoVLM(TinyVLM):
    """A :class:`~utils.vlm.TinyVLM` that reads a clip as frames: features (B, T', N', C) are the frames' grid
    tokens, pooled or not (:func:`pool_video_tokens`). Each token gets a learned position for its (frame, cell),
    pooled the same way as the tokens, so one model serves every token budget; the tokens go to the LM frame
    after frame (T' * N' of them at the ``<image>`` placeholder)."""

    def embed(self, features: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        t, n = self.image_pos.shape[:2]
        side, kept_side = int(round(n ** 0.5)), int(round(features.shape[2] ** 0.5))
        assert t % features.shape[1] == 0 and side % kept_side == 0, (
            f"features {tuple(features.shape)} do not pool a {t}-frame clip of {n} tokens")
        pos = pool_video_tokens(self.image_pos[None], t // features.shape[1], side // kept_side)[0]
        image = (self.projector(features) + pos).flatten(1, 2)
        return splice_image_tokens(self.lm.get_input_embeddings()(input_ids), input_ids, image, self.image_token_id)

    def save_pretrained(self, path: str | Path, card: dict | None = None) -> None:
        """TinyVLM's files, marked ``"video": "frames"`` for :func:`load_video_vlm`."""
        super().save_pretrained(path, card)
        config_path = Path(path) / "vlm_config.json"
        config = json.loads(config_path.read_text())
        config.update(video="frames", n_frames=self.image_pos.shape[0])
        config_path.write_text(json.dumps(config, indent=1) + "\n")


def frame_vlm(n_frames: int = 8, device: str = "cpu") -> VideoVLM:
    """The zoo VLM made to read ``n_frames`` frames: its tower and projector as trained on images, and positions
    (frames, cells) that start as the image's grid positions plus, per frame, the LM's own position vector of
    the frame's number (so the order of frames is visible from the first step; both are then trained)."""
    image = TinyVLM.from_pretrained(ZOO_VLM, device=device)
    vlm = VideoVLM(image.visual, image.projector, image.lm, image.tokenizer, image.layer, image.image_size)
    grid = image.image_pos.data  # (N, D)
    order = image.lm.transformer.wpe.weight.data[:n_frames]  # (T, D)
    vlm.image_pos = nn.Parameter(grid[None] + order[:, None])
    _video_lm(vlm, n_frames * grid.shape[0])
    return _freeze_tower(vlm.to(device))


def tubelet_tokens(frames: np.ndarray, t: int = 2, p: int = 8) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> standardised tubelet tokens (B, (T // t) * (H // p) * (W // p), 3 * t * p * p):
    :func:`utils.vision.tubelets` of the clips in [0, 1], centred and scaled as ``(x - 0.5) / 0.25``."""
    return (tubelets(to_video_tensor(frames), t, p) - 0.5) / 0.25


def tubelet_vlm(n_frames: int = 8, image_size: int = 32, t: int = 2, p: int = 8, seed: int = 0,
                device: str = "cpu") -> TinyVLM:
    """The zoo VLM's LM reading raw t x p x p tubelets (:func:`tubelet_tokens`): a new MLP projector whose first
    layer is the tubelet embedding (a Conv3d with kernel = stride, written as a Linear) and a new learned position
    per tubelet. No image tower: what a token means is learned here, from the clips alone."""
    vlm = TinyVLM.from_pretrained(ZOO_VLM, device=device)
    n = (n_frames // t) * (image_size // p) ** 2
    d = vlm.lm.config.n_embd
    torch.manual_seed(seed)
    vlm.projector = mlp_projector(3 * t * p * p, d, d).to(device)
    vlm.image_pos = nn.Parameter(torch.zeros(n, d, device=device))
    _video_lm(vlm, n)
    return _freeze_tower(vlm)


def load_video_vlm(path: str | Path, device: str = "cpu") -> TinyVLM:
    """A saved video VLM: :class:`VideoVLM` if its vlm_config.json says ``"video": "frames"``, else a tubelet
    :class:`~utils.vlm.TinyVLM`; both through ``TinyVLM.from_pretrained``'s files, the tower frozen."""
    config = json.loads((Path(path) / "vlm_config.json").read_text())
    cls = VideoVLM if config.get("video") == "frames" else TinyVLM
    return _freeze_tower(cls.from_pretrained(path, device=device))


def _freeze_tower(vlm: TinyVLM) -> TinyVLM:
    """The image tower never trains here (frame tokens are computed once; a tubelet VLM does not use it)."""
    for q in vlm.visual.parameters():
        q.requires_grad_(False)
    return vlm


def trained_parameters(vlm: TinyVLM) -> int:
    """How many parameters video training updates: projector, positions and LM (not the frozen tower)."""
    return sum(q.numel() for q in vlm.parameters() if q.requires_grad)


BUDGETS: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (4, 1), (8, 1), (1, 2), (2, 2), (4, 2), (8, 2))


def video_training_data(vlm: TinyVLM, pairs: Sequence[tuple[int, QA]]
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clip index, input ids, labels) for training from (clip index, QA) pairs."""
    index = torch.tensor([i for i, _ in pairs])
    ids, labels = encode_with_labels(vlm.tokenizer, [vqa_prompt(qa.question) for _, qa in pairs],
                                     [qa.answer for _, qa in pairs])
    return index, ids, labels


def train_video_vlm(vlm: TinyVLM, features: torch.Tensor, pairs: Sequence[tuple[int, QA]], *, steps: int,
                    budgets: Sequence[tuple[int, int]] | None = None, batch_size: int = 64, lr: float = 2e-3,
                    seed: int = 0, desc: str = "video VLM", report: bool = True) -> History:
    """Train every parameter of ``vlm`` that requires a gradient on video QA (AdamW, one-cycle).

    ``features``: per clip, (T, N, C) frame tokens for a :class:`VideoVLM` or (N, C) tubelet tokens. With
    ``budgets`` ((time, space) pairs, e.g. :data:`BUDGETS`) step k pools its batch by ``budgets[k % len]``, so
    one model learns to answer from every token budget."""
    index, ids, labels = video_training_data(vlm, pairs)
    params = [q for q in vlm.parameters() if q.requires_grad]
    optimizer, schedule = adamw_one_cycle(params, lr, steps)
    done = [0]

    def step(batch: tuple[torch.Tensor, ...]) -> float:
        idx, i, lab = (b.to(vlm.device) for b in batch)
        f = features[idx.cpu()].to(vlm.device)
        if budgets:
            f = pool_video_tokens(f, *budgets[done[0] % len(budgets)])
        done[0] += 1
        vlm.train()
        return update(vlm.loss(f, i, lab), optimizer, schedule)

    return train(step, infinite_batches((index, ids, labels), batch_size, env.generator(seed)), steps, desc=desc,
                 report=report)


def video_scores(vlm: TinyVLM, features: torch.Tensor, pairs: Sequence[tuple[int, QA]],
                 candidates: Sequence[str] = VIDEO_ANSWERS) -> torch.Tensor:
    """Log-probabilities (len(pairs), len(candidates)) of each answer word, given each pair's clip tokens; 128
    questions at a time (with 128 clip tokens each, a batch of 512 held 0.3 GB of activations)."""
    vlm.eval()
    return vlm.answer_scores(features[[i for i, _ in pairs]], [qa.question for _, qa in pairs], candidates,
                             batch_size=128)


def video_accuracy(vlm: TinyVLM, features: torch.Tensor, pairs: Sequence[tuple[int, QA]]) -> dict[str, float]:
    """Accuracy per question kind (and ``"all"``) of ``vlm``'s best-scored answer word."""
    best = video_scores(vlm, features, pairs).argmax(1).tolist()
    return per_kind_accuracy([VIDEO_ANSWERS[j] == qa.answer for j, (_, qa) in zip(best, pairs)],
                             [qa.kind for _, qa in pairs], VIDEO_KINDS)


def seconds_per_step(vlm: TinyVLM, features: torch.Tensor, pairs: Sequence[tuple[int, QA]], steps: int = 10,
                     batch_size: int = 64) -> float:
    """Median seconds of one training step (forward, backward, update) on a copy of ``vlm``: the cost side of
    the token budget. The model passed in is not changed."""
    import copy

    model = copy.deepcopy(vlm)
    index, ids, labels = video_training_data(model, pairs[:batch_size])
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    f = features[index]

    def step() -> None:
        optimizer.zero_grad()
        model.loss(f, ids, labels).backward()
        optimizer.step()

    return median_seconds(step, steps, warmup=1)


def budget_label(frames: int, tokens_per_frame: int) -> str:
    """"8 frames × 16 tokens" (how a clip's token budget is spent), for tables and figures."""
    return f"{frames} frame{'s' if frames != 1 else ''} × {tokens_per_frame} tokens"
