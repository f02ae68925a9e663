"""Images and video as token sequences. Introduced in Phase 0 (token counts, Exercise 0.8), extended in Phase 2:
patchify, the ViT input embedding, a minimal ViT, a small CNN, and video clips as tensors and tubelet tokens
(the clips themselves are the world's: :mod:`utils.world.video`). Audio tokens live with audio
(:func:`utils.audio.spectrogram_tokens`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def num_patch_tokens(image_size: int, patch_size: int) -> int:
    """Patch tokens a ViT makes from a square ``image_size`` image: (image_size // patch_size) ** 2 (no CLS)."""
    return (image_size // patch_size) ** 2


def patch_embed_tokens(image_size: int, patch_size: int, dim: int = 8) -> int:
    """Count tokens by running a real (strided-convolution) patch embedding on a blank image."""
    embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
    with torch.no_grad():
        grid = embed(torch.zeros(1, 3, image_size, image_size))  # (1, dim, H/P, W/P)
    return grid.flatten(2).shape[-1]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into non-overlapping p × p patches: (B, N, C·p·p), N = (H // p)·(W // p).

    Patches in raster order (row by row); inside a patch the values are flattened channel first, then rows,
    then columns — the order of ``F.unfold`` and of a strided conv's weight, so that
    ``patchify(x, p) @ conv.weight.reshape(D, -1).T + conv.bias`` equals the conv patch embedding.
    Reference of Exercise 2.1 (patchify); also cuts spectrograms into audio tokens.
    """
    b, c, h, w = images.shape
    nh, nw = h // patch_size, w // patch_size
    x = images[:, :, : nh * patch_size, : nw * patch_size]
    x = x.reshape(b, c, nh, patch_size, nw, patch_size).permute(0, 2, 4, 1, 3, 5)  # (B, nh, nw, C, p, p)
    return x.reshape(b, nh * nw, c * patch_size * patch_size)


def vit_embed(images: torch.Tensor, patch_embed: nn.Conv2d, cls_token: torch.Tensor,
              pos_embed: torch.Tensor) -> torch.Tensor:
    """The input of a ViT: patch tokens from a strided conv, a learned [CLS] token in front, plus learned
    position embeddings. images (B, C, H, W), cls_token (1, 1, D), pos_embed (1, N + 1, D) → (B, N + 1, D).
    Reference of Exercise 2.2 (the ViT's input embedding)."""
    tokens = patch_embed(images).flatten(2).transpose(1, 2)               # (B, N, D)
    cls = cls_token.expand(len(images), -1, -1)                           # (B, 1, D)
    return torch.cat([cls, tokens], dim=1) + pos_embed


class TinyViT(nn.Module):
    """A minimal Vision Transformer: :func:`vit_embed`, pre-norm transformer blocks, [CLS] pooling, a linear
    head. ``embed`` replaces :func:`vit_embed` (Phase 2 passes the learner's). Introduced in Phase 2."""

    def __init__(self, image_size: int = 32, patch_size: int = 4, dim: int = 64, depth: int = 2, heads: int = 4,
                 n_classes: int = 10, embed=None) -> None:
        super().__init__()
        self.n_patches = num_patch_tokens(image_size, patch_size)
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, self.n_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True,
                                                               norm_first=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)
        self.embed = embed or vit_embed

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens (B, N + 1, D), [CLS] first."""
        x = self.embed(images, self.patch_embed, self.cls_token, self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images)[:, 0])

    @torch.no_grad()
    def cls_attention(self, images: torch.Tensor) -> torch.Tensor:
        """How much the [CLS] token attends to each patch in the last block (averaged over heads): (B, N)."""
        x = self.embed(images, self.patch_embed, self.cls_token, self.pos_embed)
        for block in self.blocks[:-1]:
            x = block(x)
        last = self.blocks[-1]
        h = last.norm1(x)
        _, weights = last.self_attn(h, h, h, need_weights=True, average_attn_weights=True)
        return weights[:, 0, 1:]


def small_cnn(n_classes: int, width: int = 16, image_size: int = 32) -> nn.Sequential:
    """Two conv blocks and an MLP head: the course's baseline image classifier (Phase 0, reused in Phase 2).
    ``model[:-1]`` gives its 64-d penultimate features."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),            # 32 -> 16
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 -> 8
        nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, 64), nn.ReLU(), nn.Linear(64, n_classes))


# ----------------------------------------------------------------------------------------------------------
# Video clips as tensors and tubelet tokens (Phase 2): the video counterpart of patchify


def to_video_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clips (..., T, H, W, 3) -> float tensor (..., T, 3, H, W) in [0, 1] (the layout tubelets expects)."""
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    return x.movedim(-1, -3).float() / 255.0


def frame_average(video: torch.Tensor) -> torch.Tensor:
    """Average a clip over time: (B, T, C, H, W) -> (B, C, H, W) (uint8 input is averaged as float)."""
    assert video.ndim == 5, f"expected (B, T, C, H, W), got shape {tuple(video.shape)}"
    return (video if video.is_floating_point() else video.float()).mean(dim=1)


def num_tubelets(n_frames: int, image_size: int, t: int, p: int) -> int:
    """Tubelet tokens from a clip of ``n_frames`` square frames: (n_frames // t) * (image_size // p) ** 2."""
    return (n_frames // t) * (image_size // p) ** 2


def tubelets(video: torch.Tensor, t: int, p: int) -> torch.Tensor:
    """Cut clips into non-overlapping t x p x p tubelets: (B, T, C, H, W) -> (B, N, C * t * p * p) with
    N = (T // t) * (H // p) * (W // p); leftover frames/rows/columns are dropped, as a strided conv does.

    Token order: time-major, then rows, then columns, i.e. token (i, j, k) -> index (i * H//p + j) * W//p + k.
    Within a token the values are flattened in (C, t, p, p) order (channel slowest, column fastest). This is
    the layout of the ViViT/VideoMAE tubelet embedding: with ``conv = nn.Conv3d(C, D, (t, p, p), stride=(t, p, p))``

        conv(video.transpose(1, 2)).flatten(2).transpose(1, 2)
        == tubelets(video, t, p) @ conv.weight.reshape(D, -1).T + conv.bias
    """
    assert video.ndim == 5, f"expected (B, T, C, H, W), got shape {tuple(video.shape)}"
    b, tt, c, h, w = video.shape
    nt, nh, nw = tt // t, h // p, w // p
    assert nt > 0 and nh > 0 and nw > 0, f"clip {tuple(video.shape)} is smaller than one tubelet ({t}, {p}, {p})"
    x = video[:, : nt * t, :, : nh * p, : nw * p]
    x = x.reshape(b, nt, t, c, nh, p, nw, p)
    x = x.permute(0, 1, 4, 6, 3, 2, 5, 7)  # (B, nt, nh, nw, C, t, p, p)
    return x.reshape(b, nt * nh * nw, c * t * p * p)
